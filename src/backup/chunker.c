/* chunker.c: the keyed gear / FastCDC chunker of backups (see chunker.h). */
#include "backup/chunker.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

void chunker_params_default(struct chunker_params *p) {
        *p = (struct chunker_params){ .min_size = 512u << 10, .avg_size = 1u << 20, .max_size = 8u << 20 };
}

int chunker_params_check(const struct chunker_params *p) {
        if (!p || p->min_size < CHUNKER_MIN_FLOOR || p->avg_size <= p->min_size || p->max_size <= p->avg_size ||
            p->max_size > CHUNKER_MAX_CEILING || (p->avg_size & (p->avg_size - 1)) != 0)
                return -EINVAL;
        return 0;
}

/* bits ones in the top bits of a 64-bit word: the gear hash's high bits depend on the last 64
 * bytes, its low bits only on the last few */
static uint64_t top_mask(unsigned bits) {
        return bits >= 64 ? ~UINT64_C(0) : ((UINT64_C(1) << bits) - 1) << (64 - bits);
}

int chunker_init(struct chunker *c, const struct chunker_params *p, const uint8_t key[CHUNKER_KEY_SIZE]) {
        static const char label[] = "coffre-cdc-gear";
        uint8_t msg[sizeof label], out[32];
        unsigned bits = 0;

        if (chunker_params_check(p) < 0 || !key)
                return -EINVAL;
        c->p = *p;
        while ((UINT32_C(1) << bits) < p->avg_size)
                bits++;
        /* FastCDC normalisation level 2: two bits more before the average, two fewer after */
        c->mask_small = top_mask(bits + 2);
        c->mask_large = top_mask(bits > 2 ? bits - 2 : 1);
        memcpy(msg, label, sizeof label - 1);
        for (unsigned i = 0; i < 256; i++) {
                msg[sizeof label - 1] = (uint8_t) i;
                crypto_generichash(out, sizeof out, msg, sizeof msg, key, CHUNKER_KEY_SIZE);
                uint64_t g = 0;
                for (unsigned k = 0; k < 8; k++)
                        g |= (uint64_t) out[k] << (8 * k);
                c->gear[i] = g;
        }
        sodium_memzero(out, sizeof out);
        return 0;
}

void chunker_wipe(struct chunker *c) {
        sodium_memzero(c, sizeof *c);
}

size_t chunker_cut(const struct chunker *c, const uint8_t *data, size_t n) {
        size_t end = n < c->p.max_size ? n : c->p.max_size;
        size_t mid = end < c->p.avg_size ? end : c->p.avg_size;
        uint64_t h = 0;
        size_t i;

        if (n <= c->p.min_size)
                return n;
        /* the hash starts at min_size - 64 so that a cut depends on the 64 bytes before it only */
        for (i = c->p.min_size - 64; i < c->p.min_size; i++)
                h = (h << 1) + c->gear[data[i]];
        for (; i < mid; i++) {
                h = (h << 1) + c->gear[data[i]];
                if ((h & c->mask_small) == 0)
                        return i + 1;
        }
        for (; i < end; i++) {
                h = (h << 1) + c->gear[data[i]];
                if ((h & c->mask_large) == 0)
                        return i + 1;
        }
        return end;
}
