/* checkpoint_ts.c: the file of checkpoint timestamps (DATA/audit/checkpoint-timestamps) and the
 * check of one timestamp against its checkpoint note, for the server and `coffre audit verify`. */
#include "checkpoint_ts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ts.h>
#include <sodium.h>

#include "buf.h"
#include "fileio.h"
#include "seal/cades.h"

#define FILE_MAX ((size_t) 1 << 30)

int checkpoint_ts_append(const char *audit_dir, uint64_t size, const uint8_t *reply, size_t len) {
        _cleanup_free_ char *path = path_join(audit_dir, CHECKPOINT_TS_FILE);
        _cleanup_buf_ struct buf b = {};
        size_t blen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
        int r;

        buf_init(&b, 32 + blen + 1);
        if (!path)
                return -ENOMEM;
        if (len == 0 || len > CHECKPOINT_TS_REPLY_MAX)
                return -EINVAL;
        r = buf_printf(&b, "%llu ", (unsigned long long) size);
        if (r >= 0)
                r = buf_reserve(&b, blen + 1);
        if (r < 0)
                return r;
        sodium_bin2base64((char *) b.data + b.len, blen, reply, len, sodium_base64_VARIANT_ORIGINAL);
        b.len += blen - 1; /* without the NUL */
        b.data[b.len++] = '\n';

        bool existed = access(path, F_OK) == 0;
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        r = write_all(fd, b.data, b.len);
        if (r >= 0 && fdatasync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && !existed)
                r = fsync_parent(path);
        return r;
}

void checkpoint_ts_free(struct checkpoint_ts *v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i].reply);
        free(v);
}

int checkpoint_ts_load(const char *audit_dir, struct checkpoint_ts **ret, size_t *ret_n) {
        _cleanup_free_ char *path = path_join(audit_dir, CHECKPOINT_TS_FILE);
        _cleanup_buf_ struct buf b = {};
        struct checkpoint_ts *v = NULL;
        size_t n = 0;
        int r;

        buf_init(&b, FILE_MAX);
        if (!path)
                return -ENOMEM;
        r = read_file(path, FILE_MAX, &b);
        if (r == -ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        const char *p = (const char *) b.data, *end = p + b.len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl)
                        break; /* a torn last append: never acknowledged, left out */
                const char *sp = memchr(p, ' ', (size_t) (nl - p));
                char *e = NULL;
                unsigned long long size;
                size_t blen;
                if (!sp || sp == p || *p < '0' || *p > '9')
                        goto bad;
                errno = 0;
                size = strtoull(p, &e, 10);
                if (errno || e != sp)
                        goto bad;
                struct checkpoint_ts *nv = realloc(v, (n + 1) * sizeof *v);
                if (!nv) {
                        checkpoint_ts_free(v, n);
                        return -ENOMEM;
                }
                v = nv;
                v[n] = (struct checkpoint_ts){ .size = size, .reply = malloc(CHECKPOINT_TS_REPLY_MAX) };
                if (!v[n].reply) {
                        checkpoint_ts_free(v, n);
                        return -ENOMEM;
                }
                n++;
                if (sodium_base642bin(v[n - 1].reply, CHECKPOINT_TS_REPLY_MAX, sp + 1, (size_t) (nl - sp - 1), NULL,
                                      &blen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
                    blen == 0)
                        goto bad;
                v[n - 1].len = blen;
                p = nl + 1;
        }
        *ret = v;
        *ret_n = n;
        return 0;
bad:
        checkpoint_ts_free(v, n);
        return -EBADMSG;
}

int checkpoint_ts_verify(const uint8_t *reply, size_t len, const char *note, X509_STORE *trust, int64_t *ret_time_ms) {
        const unsigned char *p = reply;
        TS_RESP *resp = len <= CHECKPOINT_TS_REPLY_MAX ? d2i_TS_RESP(NULL, &p, (long) len) : NULL;
        TS_VERIFY_CTX *ctx = NULL;
        unsigned char *md = NULL;
        int r = -EBADMSG;

        if (!resp || p != reply + len || !note || !trust)
                goto out;
        ctx = TS_VERIFY_CTX_new();
        md = OPENSSL_malloc(32);
        if (!ctx || !md || EVP_Digest(note, strlen(note), md, NULL, EVP_sha256(), NULL) != 1 ||
            !X509_STORE_up_ref(trust))
                goto out;
        TS_VERIFY_CTX_set_flags(ctx, TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_IMPRINT);
        TS_VERIFY_CTX_set_store(ctx, trust);
        TS_VERIFY_CTX_set_imprint(ctx, TAKE_PTR(md), 32); /* owned by ctx now */
        if (TS_RESP_verify_response(ctx, resp) != 1)
                goto out;
        {
                /* the imprint algorithm must be SHA-256: the check above compares bytes only */
                TS_TST_INFO *tst = TS_RESP_get_tst_info(resp);
                const X509_ALGOR *alg = TS_MSG_IMPRINT_get_algo(TS_TST_INFO_get_msg_imprint(tst));
                if (OBJ_obj2nid(alg->algorithm) != NID_sha256 ||
                    cades_asn1_time_ms(TS_TST_INFO_get_time(tst), ret_time_ms) < 0)
                        goto out;
        }
        r = 0;
out:
        ERR_clear_error();
        OPENSSL_free(md);
        TS_VERIFY_CTX_free(ctx);
        TS_RESP_free(resp);
        return r;
}
