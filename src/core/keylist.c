/* keylist.c: `coffre key list`: what the vault uses for its master key, its audit log, its CA,
 * TSA and seals (a file of DATA/keys/ or a PKCS#11 URI), with each certificate's subject and
 * notAfter, and a warning for one that expires within 30 days. Reads, never writes; works
 * while the server runs. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto/p11_uri.h"
#include "fileio.h"
#include "log.h"
#include "vault.h"

#define KEYLIST_WARN_SECONDS (30 * 86400)

static int64_t not_after(const X509 *x) {
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
                return -1;
        return (int64_t) timegm(&tm);
}

/* Where the private key is: the file itself, or the PKCS#11 URI a key file names. */
static void key_where(const char *keys, const char *key_name, char *out, size_t size) {
        _cleanup_free_ char *p = path_join(keys, key_name);
        struct buf b;
        if (!p || read_file(p, 4096, &b) < 0) {
                snprintf(out, size, "keys/%s (unreadable)", key_name);
                return;
        }
        if (b.len > 7 && p11_uri_is((const char *) b.data) && buf_str(&b)) {
                char *s = buf_str(&b);
                s[strcspn(s, "\r\n")] = 0;
                snprintf(out, size, "%s", s);
        } else
                snprintf(out, size, "keys/%s", key_name);
        buf_free_secure(&b);
}

static int print_cert(FILE *out, const char *kind, const char *keys, const char *key_name, const char *cert_name,
                      int64_t now, unsigned *warnings) {
        _cleanup_free_ char *cp = path_join(keys, cert_name);
        char where[1100], subject[256] = "?", when[32] = "?";
        if (!cp)
                return -ENOMEM;
        FILE *f = fopen(cp, "re");
        X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        if (f)
                fclose(f);
        ERR_clear_error();
        key_where(keys, key_name, where, sizeof where);
        if (!x) {
                fprintf(out, "%-6s %s\n       certificate keys/%s: missing or not PEM\n", kind, where, cert_name);
                (*warnings)++;
                return 0;
        }
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
        int64_t t = not_after(x);
        time_t tt = (time_t) t;
        struct tm tm;
        if (t >= 0 && gmtime_r(&tt, &tm))
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        X509_free(x);
        const char *state = "ok";
        char left[64];
        if (t < now) {
                state = "EXPIRED";
                (*warnings)++;
        } else if (t - now < KEYLIST_WARN_SECONDS) {
                snprintf(left, sizeof left, "WARNING: expires in %lld days", (long long) ((t - now) / 86400));
                state = left;
                (*warnings)++;
        }
        fprintf(out, "%-6s %s\n       subject %s, notAfter %s, %s\n", kind, where, subject, when, state);
        return 0;
}

int vault_key_list(const char *dir, FILE *out, unsigned *ret_warnings) {
        _cleanup_free_ char *conf = path_join(dir, "coffre.conf");
        _cleanup_free_ char *keys = path_join(dir, "keys");
        struct vault_config c;
        unsigned warnings = 0;
        if (!conf || !keys)
                return -ENOMEM;
        int r = vault_config_load(conf, &c);
        if (r == -ENOENT)
                return log_error_errno(r, "%s is not a coffre vault (no coffre.conf)", dir);
        if (r < 0)
                return r;
        int64_t now = (int64_t) time(NULL);
        if (p11_uri_is(c.master_key))
                fprintf(out, "%-6s %s\n       AES-256 wrapping key and HMAC key on the token (never leave it)\n",
                        "master", c.master_key);
        else
                fprintf(out, "%-6s %s\n       32-byte file\n", "master", c.master_key);
        _cleanup_free_ char *vk = path_join(keys, "log.vkey");
        struct buf b;
        if (vk && read_file(vk, 4096, &b) >= 0 && buf_str(&b)) {
                char *s = buf_str(&b);
                s[strcspn(s, "\r\n")] = 0;
                fprintf(out, "%-6s keys/log.key\n       Ed25519 note key, verifier key %s\n", "log", s);
                buf_free(&b);
        }
        r = print_cert(out, "ca", keys, "ca.key", "ca.pem", now, &warnings);
        if (r >= 0)
                r = print_cert(out, "tsa", keys, "tsa.key", "tsa.pem", now, &warnings);
        DIR *d = r >= 0 ? opendir(keys) : NULL;
        struct dirent *e;
        while (d && r >= 0 && (e = readdir(d))) {
                size_t n = strlen(e->d_name);
                if (strncmp(e->d_name, "seal-", 5) != 0 || n < 9 || strcmp(e->d_name + n - 4, ".pem") != 0 || n > 200)
                        continue;
                char key_name[256];
                snprintf(key_name, sizeof key_name, "%.*s.key", (int) (n - 4), e->d_name);
                r = print_cert(out, "seal", keys, key_name, e->d_name, now, &warnings);
        }
        if (d)
                closedir(d);
        if (r >= 0 && ret_warnings)
                *ret_warnings = warnings;
        return r;
}
