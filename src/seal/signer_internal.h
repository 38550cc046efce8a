/* signer_internal.h: what the signer process (signer_child.c) and its parent side (signer.c)
 * share: the framing of the channel and the child's entry point. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "macro.h"
#include "seal/signer.h"

#define SIGNER_HDR 4u          /* the int32 at the head of every packet */
#define SIGNER_KEY_FILE_MAX 4096u
#define SIGNER_MAX_EXTENSIONS 8

static inline void signer_put_i32(uint8_t *p, int32_t v) {
        memcpy(p, &v, sizeof v); /* same host on both ends */
}

static inline int32_t signer_get_i32(const uint8_t *p) {
        int32_t v;
        memcpy(&v, p, sizeof v);
        return v;
}

static inline void signer_put_u64(uint8_t *p, uint64_t v) {
        for (unsigned i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static inline uint64_t signer_get_u64(const uint8_t *p) {
        uint64_t v = 0;
        for (unsigned i = 0; i < 8; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

/* One packet: head, then payload. 0 or a negative errno. */
int signer_send_msg(int fd, int32_t head, const void *payload, size_t len);
/* Receives one packet into buf (SIGNER_MAX_MSG + 1 bytes); returns its length, 0 at end of
 * stream, -EMSGSIZE when it was longer than allowed. */
ssize_t signer_recv_msg(int fd, uint8_t *buf);

/* The options signer_set_seal_options() recorded (defaults filled in). */
void signer_seal_options_get(struct signer_seal_options *ret);

/* Ignores the signals a terminal sends to the whole process group. */
void signer_ignore_terminal_signals(void);
/* The signer: never returns. fd is its channel; parent the pid that must remain its parent. */
_noreturn_ void signer_child_main(int fd, const char *keys_dir, const char *origin, char *const *extensions,
                                  size_t n_extensions, pid_t parent);
