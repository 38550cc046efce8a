/* tsa_client.c: posts RFC 3161 queries to an external TSA with libcurl and returns its replies
 * for cades_add_timestamp() to check (status, nonce, imprint, signature and chain with OpenSSL's
 * TS_VERIFY_CTX against the CA file read here). */
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "log.h"
#include "tsa_client.h"

struct tsa_client {
        char *url;
        char *username;
        char *password;
        unsigned timeout_ms;
        X509_STORE *trust;
};

static char *dup_or_null(const char *s) {
        return s && *s ? strdup(s) : NULL;
}

static int load_trust(const char *path, X509_STORE **ret) {
        X509_STORE *st = X509_STORE_new();
        int n = 0;
        if (!st)
                return -ENOMEM;
        FILE *f = fopen(path, "re");
        if (!f) {
                int r = -errno;
                X509_STORE_free(st);
                return r;
        }
        X509 *x;
        while ((x = PEM_read_X509(f, NULL, NULL, NULL))) {
                if (X509_STORE_add_cert(st, x) == 1)
                        n++;
                X509_free(x);
        }
        fclose(f);
        ERR_clear_error();
        if (n == 0) {
                X509_STORE_free(st);
                return -EINVAL;
        }
        *ret = st;
        return 0;
}

int tsa_client_new(const struct tsa_client_options *o, struct tsa_client **ret) {
        if (!o->url || (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0))
                return -EINVAL;
        if (!o->ca_file || !*o->ca_file)
                return -EINVAL;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -ENOMEM;
        struct tsa_client *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->url = strdup(o->url);
        c->username = dup_or_null(o->username);
        c->password = c->username ? strdup(o->password ? o->password : "") : NULL;
        c->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
        if (!c->url || (o->username && *o->username && (!c->username || !c->password))) {
                tsa_client_free(c);
                return -ENOMEM;
        }
        int r = load_trust(o->ca_file, &c->trust);
        if (r < 0) {
                tsa_client_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

void tsa_client_free(struct tsa_client *c) {
        if (!c)
                return;
        if (c->password) {
                OPENSSL_cleanse(c->password, strlen(c->password));
                free(c->password);
        }
        free(c->username);
        free(c->url);
        X509_STORE_free(c->trust);
        free(c);
}

X509_STORE *tsa_client_trust(struct tsa_client *c) {
        return c->trust;
}

struct reply_buf {
        uint8_t *p;
        size_t len;
        bool too_big;
};

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
        struct reply_buf *b = ud;
        size_t add = size * n;
        if (add > TSA_CLIENT_REPLY_MAX - b->len) {
                b->too_big = true;
                return 0;
        }
        uint8_t *p = OPENSSL_realloc(b->p, b->len + add);
        if (!p)
                return 0;
        memcpy(p + b->len, data, add);
        b->p = p;
        b->len += add;
        return add;
}

static int curl_errno(CURLcode rc) {
        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
                return -ECONNREFUSED;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

int tsa_client_post(void *client, const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len) {
        struct tsa_client *c = client;
        struct reply_buf b = { 0 };
        struct curl_slist *h = NULL;
        long status = 0;
        char *ctype = NULL;
        int r = 0;

        CURL *e = curl_easy_init();
        if (!e)
                return -ENOMEM;
        h = curl_slist_append(h, "Content-Type: application/timestamp-query");
        struct curl_slist *h2 = h ? curl_slist_append(h, "Expect:") : NULL;
        if (!h2) {
                curl_slist_free_all(h);
                curl_easy_cleanup(e);
                return -ENOMEM;
        }
        h = h2;
        curl_easy_setopt(e, CURLOPT_URL, c->url);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *) req);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) len);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) c->timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) c->timeout_ms);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        if (c->username) {
                curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
                curl_easy_setopt(e, CURLOPT_USERNAME, c->username);
                curl_easy_setopt(e, CURLOPT_PASSWORD, c->password);
        }
        CURLcode rc = curl_easy_perform(e);
        if (rc != CURLE_OK) {
                r = b.too_big ? -EFBIG : curl_errno(rc);
                log_warn("external TSA: %s", curl_easy_strerror(rc));
        } else {
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
                curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ctype);
                if (status != 200 || !ctype || strncmp(ctype, "application/timestamp-reply", 27) != 0) {
                        log_warn("external TSA: HTTP status %ld, content type %s", status, ctype ? ctype : "none");
                        r = -EPROTO;
                }
        }
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        if (r < 0 || b.len == 0) {
                OPENSSL_free(b.p);
                return r < 0 ? r : -EPROTO;
        }
        *ret = b.p;
        *ret_len = b.len;
        return 0;
}
