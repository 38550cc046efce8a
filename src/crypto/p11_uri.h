/* p11_uri.h: PKCS#11 URIs (RFC 7512) as coffre reads them: which module, token and object, and a
 * PIN from a file (pin-source=file:...). A PIN in the URI itself (pin-value) is refused: the URI
 * sits in coffre.conf, which holds no secret. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define P11_URI_MAX 1024u
#define P11_LABEL_MAX 128u /* token labels are 32 bytes, object labels are free: bounded here */
#define P11_ID_MAX 64u
#define P11_PATH_MAX 512u
#define P11_PIN_MAX 256u
/* used when the URI names no module-path: p11-kit's proxy, which loads every registered module */
#define P11_DEFAULT_MODULE "p11-kit-proxy.so"

struct p11_uri {
        char token[P11_LABEL_MAX + 1];  /* token label; empty: any token */
        char object[P11_LABEL_MAX + 1]; /* object label; empty: match by id only */
        uint8_t id[P11_ID_MAX];
        size_t id_len;
        char type[16];                      /* "private", "secret-key", ... or empty */
        char pin_source[P11_PATH_MAX + 1];  /* a path (file: stripped); empty: no login */
        char module_path[P11_PATH_MAX + 1]; /* empty: P11_DEFAULT_MODULE */
};

static inline bool p11_uri_is(const char *s) {
        return s && s[0] == 'p' && s[1] == 'k' && s[2] == 'c' && s[3] == 's' && s[4] == '1' && s[5] == '1' &&
               s[6] == ':';
}

/* Parses s. -EINVAL with *ret_reason (static text) for a URI that is not one coffre can use:
 * unknown or repeated attribute, bad percent-encoding, pin-value, a pin-source other than a file,
 * no object and no id, too long. */
int p11_uri_parse(const char *s, struct p11_uri *ret, const char **ret_reason) _warn_unused_;
/* Reads the PIN from the pin-source file into sodium_malloc'd memory (free with sodium_free; it
 * wipes). The file must be a regular file of ours that group and others cannot read (-EPERM);
 * one trailing newline is dropped; -EBADMSG when it is empty or longer than P11_PIN_MAX.
 * -ENOENT when the URI names no pin-source. */
int p11_uri_read_pin(const struct p11_uri *u, char **ret_pin) _warn_unused_;
/* The module to load. */
const char *p11_uri_module(const struct p11_uri *u);
