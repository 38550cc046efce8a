/* p11_uri.c: parsing PKCS#11 URIs (RFC 7512, section 2.3) and reading their PIN file. */
#include "p11_uri.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Percent-decodes [p, p+n) into out (size bytes, room for a NUL). Returns the decoded length. */
static int pct_decode(const char *p, size_t n, uint8_t *out, size_t size, size_t *ret_len) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                int c = (unsigned char) p[i];
                if (c == '%') {
                        if (i + 2 >= n)
                                return -EINVAL;
                        int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
                        if (h < 0 || l < 0)
                                return -EINVAL;
                        c = h << 4 | l;
                        i += 2;
                }
                if (o + 1 >= size)
                        return -E2BIG;
                out[o++] = (uint8_t) c;
        }
        out[o] = 0;
        *ret_len = o;
        return 0;
}

static int set_text(char *dst, size_t size, const char *v, size_t n, const char **why) {
        size_t len;
        int r = pct_decode(v, n, (uint8_t *) dst, size, &len);
        if (r < 0) {
                *why = r == -E2BIG ? "an attribute of the PKCS#11 URI is too long"
                                   : "bad percent-encoding in the PKCS#11 URI";
                return -EINVAL;
        }
        if (strlen(dst) != len) {
                *why = "a NUL byte in the PKCS#11 URI";
                return -EINVAL;
        }
        return 0;
}

/* One "name=value" of the path or the query. RFC 7512 puts pin-source and module-path in the
 * query; they are also taken in the path, where many tools (and coffre's docs) write them. */
static int attr(struct p11_uri *u, const char *a, size_t n, unsigned *seen, const char **why) {
        const char *eq = memchr(a, '=', n);
        if (!eq) {
                *why = "a PKCS#11 URI attribute without '='";
                return -EINVAL;
        }
        size_t kl = (size_t) (eq - a);
        const char *v = eq + 1;
        size_t vl = n - kl - 1;
        static const char *const names[] = { "token", "object", "id", "type", "pin-source", "module-path" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                if (strlen(names[i]) != kl || memcmp(names[i], a, kl) != 0)
                        continue;
                if (*seen & (1u << i)) {
                        *why = "a PKCS#11 URI attribute given twice";
                        return -EINVAL;
                }
                *seen |= 1u << i;
                switch (i) {
                case 0:
                        return set_text(u->token, sizeof u->token, v, vl, why);
                case 1:
                        return set_text(u->object, sizeof u->object, v, vl, why);
                case 2: {
                        uint8_t id[P11_ID_MAX + 1];
                        int r = pct_decode(v, vl, id, sizeof id, &u->id_len);
                        if (r < 0 || u->id_len == 0) {
                                *why = "bad id in the PKCS#11 URI";
                                return -EINVAL;
                        }
                        memcpy(u->id, id, u->id_len);
                        return 0;
                }
                case 3:
                        return set_text(u->type, sizeof u->type, v, vl, why);
                case 5:
                        return set_text(u->module_path, sizeof u->module_path, v, vl, why);
                default:
                        break;
                }
                char src[P11_PATH_MAX + 8];
                int r = set_text(src, sizeof src, v, vl, why);
                if (r < 0)
                        return r;
                if (strncmp(src, "file:", 5) != 0 || !src[5]) {
                        *why = "pin-source must be file:PATH";
                        return -EINVAL;
                }
                if (strlen(src + 5) > P11_PATH_MAX) {
                        *why = "pin-source path too long";
                        return -EINVAL;
                }
                memcpy(u->pin_source, src + 5, strlen(src + 5) + 1);
                return 0;
        }
        /* RFC 7512 also allows the PIN itself in the URI: never in coffre's settings */
        if ((kl == 9 && memcmp(a, "pin-value", 9) == 0) || (kl == 3 && memcmp(a, "pin", 3) == 0)) {
                *why = "a PIN in the PKCS#11 URI is refused: use pin-source=file:PATH";
                return -EINVAL;
        }
        *why = "unknown attribute in the PKCS#11 URI";
        return -EINVAL;
}

int p11_uri_parse(const char *s, struct p11_uri *ret, const char **ret_reason) {
        struct p11_uri u = {};
        unsigned seen = 0;
        const char *why = "not a PKCS#11 URI";

        if (!ret || !ret_reason)
                return -EINVAL;
        if (!p11_uri_is(s) || strlen(s) > P11_URI_MAX) {
                *ret_reason = p11_uri_is(s) ? "PKCS#11 URI too long" : why;
                return -EINVAL;
        }
        const char *p = s + 7, *q = strchr(p, '?');
        const char *end = q ? q : p + strlen(p);
        while (p < end) {
                const char *sep = memchr(p, ';', (size_t) (end - p));
                size_t n = (size_t) ((sep ? sep : end) - p);
                if (n > 0 && attr(&u, p, n, &seen, &why) < 0) {
                        *ret_reason = why;
                        return -EINVAL;
                }
                p += n + (sep ? 1 : 0);
        }
        if (q) {
                p = q + 1;
                end = p + strlen(p);
                while (p < end) {
                        const char *sep = memchr(p, '&', (size_t) (end - p));
                        size_t n = (size_t) ((sep ? sep : end) - p);
                        if (n > 0 && attr(&u, p, n, &seen, &why) < 0) {
                                *ret_reason = why;
                                return -EINVAL;
                        }
                        p += n + (sep ? 1 : 0);
                }
        }
        if (!u.object[0] && u.id_len == 0) {
                *ret_reason = "the PKCS#11 URI names no object (object= or id=)";
                return -EINVAL;
        }
        *ret = u;
        return 0;
}

const char *p11_uri_module(const struct p11_uri *u) {
        return u->module_path[0] ? u->module_path : P11_DEFAULT_MODULE;
}

int p11_uri_read_pin(const struct p11_uri *u, char **ret_pin) {
        struct stat st;

        if (!u || !ret_pin)
                return -EINVAL;
        if (!u->pin_source[0])
                return -ENOENT;
        _cleanup_close_ int fd = open(u->pin_source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if ((st.st_mode & 077) != 0 || st.st_uid != geteuid())
                return -EPERM;
        if (sodium_init() < 0)
                return -EIO;
        char *pin = sodium_malloc(P11_PIN_MAX + 2);
        if (!pin)
                return -ENOMEM;
        ssize_t n = read_full(fd, pin, P11_PIN_MAX + 1);
        if (n < 0) {
                sodium_free(pin);
                return (int) n;
        }
        if (n > 0 && pin[n - 1] == '\n')
                n--;
        if (n > 0 && pin[n - 1] == '\r')
                n--;
        if (n == 0 || n > (ssize_t) P11_PIN_MAX || memchr(pin, 0, (size_t) n) || memchr(pin, '\n', (size_t) n)) {
                sodium_free(pin);
                return -EBADMSG;
        }
        pin[n] = 0;
        *ret_pin = pin;
        return 0;
}
