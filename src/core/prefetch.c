/* prefetch.c: a bounded producer/consumer ring of decrypted segments for sequential reads. */
#include "prefetch.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>

struct slot {
        uint64_t seg;
        size_t len;
        int err;
        uint8_t data[PREFETCH_SEGMENT_MAX];
};

struct prefetch {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        prefetch_fill_fn fill;
        void *ud;
        uint64_t first, end;
        uint64_t produced; /* segments [first, produced) are filled */
        uint64_t consumed; /* segments below consumed are released; consumed itself may be in use */
        bool started;      /* the consumer holds segment `consumed` */
        bool stop;
        struct slot slots[PREFETCH_SLOTS];
};

static void *producer(void *arg) {
        struct prefetch *p = arg;

        for (uint64_t seg = p->first; seg < p->end; seg++) {
                pthread_mutex_lock(&p->lock);
                while (!p->stop && seg - p->consumed >= PREFETCH_SLOTS)
                        pthread_cond_wait(&p->cond, &p->lock);
                bool stop = p->stop;
                pthread_mutex_unlock(&p->lock);
                if (stop)
                        break;
                /* the slot is free: the consumer is at least PREFETCH_SLOTS segments behind */
                struct slot *s = &p->slots[seg % PREFETCH_SLOTS];
                s->seg = seg;
                s->len = 0;
                s->err = p->fill(p->ud, seg, s->data, &s->len);
                pthread_mutex_lock(&p->lock);
                p->produced = seg + 1;
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->lock);
                if (s->err < 0)
                        break;
        }
        return NULL;
}

int prefetch_new(uint64_t first, uint64_t end, prefetch_fill_fn fill, void *ud, struct prefetch **ret) {
        struct prefetch *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->fill = fill;
        p->ud = ud;
        p->first = p->produced = p->consumed = first;
        p->end = end;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        int r = pthread_create(&p->thread, NULL, producer, p);
        if (r != 0) {
                pthread_cond_destroy(&p->cond);
                pthread_mutex_destroy(&p->lock);
                free(p);
                return -r;
        }
        *ret = p;
        return 0;
}

int prefetch_get(struct prefetch *p, uint64_t seg, const uint8_t **ret, size_t *ret_len) {
        if (seg >= p->end || seg < p->first)
                return -ESPIPE;
        pthread_mutex_lock(&p->lock);
        if (p->started && seg == p->consumed + 1) {
                p->consumed = seg; /* release the previous segment's slot */
                pthread_cond_broadcast(&p->cond);
        } else if (!(seg == p->consumed && (p->started || seg == p->first))) {
                pthread_mutex_unlock(&p->lock);
                return -ESPIPE;
        }
        p->started = true;
        while (p->produced <= seg) {
                /* a failed fill stops the producer: its error sits in the slot it failed on */
                const struct slot *last = &p->slots[(p->produced - 1) % PREFETCH_SLOTS];
                if (p->produced > p->first && last->err < 0)
                        break;
                pthread_cond_wait(&p->cond, &p->lock);
        }
        pthread_mutex_unlock(&p->lock);
        const struct slot *s = &p->slots[seg % PREFETCH_SLOTS];
        if (s->seg != seg) {
                const struct slot *last = &p->slots[(p->produced - 1) % PREFETCH_SLOTS];
                return last->err < 0 ? last->err : -EIO;
        }
        if (s->err < 0)
                return s->err;
        *ret = s->data;
        *ret_len = s->len;
        return 0;
}

void prefetch_free(struct prefetch *p) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        sodium_memzero(p->slots, sizeof p->slots);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
}
