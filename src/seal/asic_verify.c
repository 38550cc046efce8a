/* asic_verify.c: coffre verify FILE.asics (see asic_verify.h). */
#include "asic_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/ess.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "audit/entry.h"
#include "audit/merkle.h"
#include "audit/note.h"
#include "buf.h"
#include "fileio.h"
#include "hex.h"
#include "seal/tsr_check.h"
#include "zipw.h"

#define MIMETYPE "application/vnd.etsi.asic-s+zip"

static const char *const required[] = {
        "META-INF/signature.p7s", "META-INF/seal-chain.pem", "META-INF/tsa-chain.pem", "META-INF/checkpoint.txt",
        "META-INF/log.vkey",      "META-INF/audit.json",     "META-INF/VERIFY.txt",    "META-INF/checkpoint.tsr",
};

struct zentry {
        char name[256];
        uint64_t size, data_off, lh_off;
        uint32_t crc;
};

struct ctx {
        int fd;
        uint64_t file_size;
        FILE *out;
        char *reason;
        size_t reason_size;
        struct zentry e[ASIC_MAX_ENTRIES];
        size_t n;
        int doc; /* index of the document entry */
        struct buf small[ELEMENTSOF(required)];
        uint8_t doc_sha256[32];
        int64_t seal_time; /* the seal's time-stamp, seconds */
};

static int failv(struct ctx *c, const char *check, const char *fmt, va_list ap) _printf_(3, 0);
static int failv(struct ctx *c, const char *check, const char *fmt, va_list ap) {
        char why[200];
        vsnprintf(why, sizeof why, fmt, ap);
        if (c->out)
                fprintf(c->out, "FAIL %s: %s\n", check, why);
        if (c->reason && c->reason_size)
                snprintf(c->reason, c->reason_size, "%.60s: %.190s", check, why);
        return -EBADMSG;
}

static int fail(struct ctx *c, const char *check, const char *fmt, ...) _printf_(3, 4);
static int fail(struct ctx *c, const char *check, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = failv(c, check, fmt, ap);
        va_end(ap);
        return r;
}

static void ok(struct ctx *c, const char *fmt, ...) _printf_(2, 3);
static void ok(struct ctx *c, const char *fmt, ...) {
        va_list ap;
        if (!c->out)
                return;
        fputs("ok   ", c->out);
        va_start(ap, fmt);
        vfprintf(c->out, fmt, ap);
        va_end(ap);
        fputc('\n', c->out);
}

static uint16_t g16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}
static uint32_t g32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}
static uint64_t g64(const uint8_t *p) {
        return (uint64_t) g32(p) | (uint64_t) g32(p + 4) << 32;
}

static int pread_full(struct ctx *c, void *p, size_t n, uint64_t off) {
        if (off > c->file_size || n > c->file_size - off)
                return -EBADMSG;
        size_t done = 0;
        while (done < n) {
                ssize_t k = pread(c->fd, (uint8_t *) p + done, n - done, (off_t) (off + done));
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -EBADMSG;
                done += (size_t) k;
        }
        return 0;
}

/* ---- 1. the container ---- */

static int read_central(struct ctx *c) {
        const char *chk = "container";
        uint8_t eocd[22];
        if (c->file_size < 22 || pread_full(c, eocd, 22, c->file_size - 22) < 0 || g32(eocd) != 0x06054b50u)
                return fail(c, chk, "no ZIP end record at the end of the file (truncated, or data after it)");
        if (g16(eocd + 4) || g16(eocd + 6) || g16(eocd + 8) != g16(eocd + 10) || g16(eocd + 20))
                return fail(c, chk, "a multi-disk ZIP or one with a comment");
        uint64_t count = g16(eocd + 10), cd_size = g32(eocd + 12), cd_off = g32(eocd + 16);
        uint64_t cd_end = c->file_size - 22;
        /* ZIP64: a locator just before the end record says where the ZIP64 end record is */
        uint8_t loc[20], e64[56];
        bool is64 =
                c->file_size >= 22 + 20 && pread_full(c, loc, 20, c->file_size - 42) >= 0 && g32(loc) == 0x07064b50u;
        if (cd_off == 0xffffffffu && !is64)
                return fail(c, chk, "a ZIP64 end record is announced but missing");
        if (is64) {
                if (pread_full(c, e64, 56, g64(loc + 8)) < 0 || g32(e64) != 0x06064b50u ||
                    g64(loc + 8) + 56 != c->file_size - 42)
                        return fail(c, chk, "a damaged ZIP64 end record");
                count = g64(e64 + 32);
                cd_size = g64(e64 + 40);
                cd_off = g64(e64 + 48);
                cd_end = g64(loc + 8);
        }
        if (count == 0 || count > ASIC_MAX_ENTRIES)
                return fail(c, chk, "%llu entries (a bundle has %zu)", (unsigned long long) count,
                            ELEMENTSOF(required) + 2);
        if (cd_off > cd_end || cd_size != cd_end - cd_off || cd_size > ASIC_MAX_SMALL)
                return fail(c, chk, "the central directory is not where the end record says");
        _cleanup_free_ uint8_t *cd = malloc(cd_size ? cd_size : 1);
        if (!cd)
                return -ENOMEM;
        if (pread_full(c, cd, cd_size, cd_off) < 0)
                return fail(c, chk, "cannot read the central directory");
        size_t p = 0;
        uint64_t next_data = 0;
        for (uint64_t i = 0; i < count; i++) {
                if (p + 46 > cd_size || g32(cd + p) != 0x02014b50u)
                        return fail(c, chk, "a damaged central directory entry");
                uint16_t flags = g16(cd + p + 8), method = g16(cd + p + 10), nl = g16(cd + p + 28),
                         el = g16(cd + p + 30), cl = g16(cd + p + 32);
                struct zentry *z = &c->e[c->n];
                z->crc = g32(cd + p + 16);
                uint64_t csize = g32(cd + p + 20), usize = g32(cd + p + 24), lh = g32(cd + p + 42);
                if (p + 46 + nl + el + cl > cd_size || nl == 0 || nl > 255)
                        return fail(c, chk, "a damaged central directory entry");
                memcpy(z->name, cd + p + 46, nl);
                z->name[nl] = 0;
                if (strlen(z->name) != nl)
                        return fail(c, chk, "a NUL in an entry name");
                /* ZIP64 extra field: the values that are 0xffffffff, in order */
                for (size_t x = p + 46 + nl; x + 4 <= p + 46 + nl + el;) {
                        uint16_t id = g16(cd + x), len = g16(cd + x + 2);
                        if (x + 4 + len > p + 46 + nl + el)
                                return fail(c, chk, "a damaged extra field");
                        if (id == 0x0001) {
                                size_t q = x + 4, qe = x + 4 + len;
                                if (usize == 0xffffffffu && q + 8 <= qe)
                                        usize = g64(cd + q), q += 8;
                                if (csize == 0xffffffffu && q + 8 <= qe)
                                        csize = g64(cd + q), q += 8;
                                if (lh == 0xffffffffu && q + 8 <= qe)
                                        lh = g64(cd + q), q += 8;
                        }
                        x += 4 + len;
                }
                if (method != 0 || csize != usize)
                        return fail(c, chk, "%s is compressed (a bundle stores every entry)", z->name);
                if (flags & 0x0001)
                        return fail(c, chk, "%s is encrypted", z->name);
                for (size_t k = 0; k < c->n; k++)
                        if (strcmp(c->e[k].name, z->name) == 0)
                                return fail(c, chk, "%s appears twice", z->name);
                z->size = usize;
                z->lh_off = lh;
                /* its local header: same name, stored, then the data; entries in order, no overlap */
                uint8_t l[30];
                if (lh != next_data || pread_full(c, l, 30, lh) < 0 || g32(l) != 0x04034b50u || g16(l + 8) != 0 ||
                    g16(l + 26) != nl)
                        return fail(c, chk, "the local header of %s does not match the directory", z->name);
                char lname[256];
                if (pread_full(c, lname, nl, lh + 30) < 0 || memcmp(lname, z->name, nl) != 0)
                        return fail(c, chk, "the local header of %s does not match the directory", z->name);
                z->data_off = lh + 30 + nl + g16(l + 28);
                if (!(g16(l + 6) & 0x0008) &&
                    (g32(l + 14) != z->crc || (g32(l + 18) != 0xffffffffu && g32(l + 22) != usize)))
                        return fail(c, chk, "the local header of %s does not match the directory", z->name);
                if (z->data_off > cd_off || z->size > cd_off - z->data_off)
                        return fail(c, chk, "%s runs past the central directory", z->name);
                next_data = z->data_off + z->size;
                if (g16(l + 6) & 0x0008) { /* a data descriptor follows: its CRC and sizes must be the same */
                        uint8_t d[24];
                        bool z64 = g32(l + 18) == 0xffffffffu;
                        size_t dl = z64 ? 24 : 16;
                        if (pread_full(c, d, dl, next_data) < 0 || g32(d) != 0x08074b50u || g32(d + 4) != z->crc ||
                            (z64 ? g64(d + 16) != usize : g32(d + 12) != usize))
                                return fail(c, chk, "the data descriptor of %s does not match the directory", z->name);
                        next_data += dl;
                }
                c->n++;
                p += 46 + nl + el + cl;
        }
        if (p != cd_size || next_data != cd_off)
                return fail(c, chk, "bytes between the entries and the central directory, or a damaged directory");
        return 0;
}

static int read_small(struct ctx *c, const struct zentry *z, struct buf *b) {
        if (z->size > ASIC_MAX_SMALL)
                return fail(c, "container", "%s is too large (%llu bytes)", z->name, (unsigned long long) z->size);
        buf_init(b, ASIC_MAX_SMALL + 1);
        int r = buf_reserve(b, (size_t) z->size + 1);
        if (r < 0)
                return r;
        if (pread_full(c, b->data, (size_t) z->size, z->data_off) < 0)
                return fail(c, "container", "cannot read %s", z->name);
        b->len = (size_t) z->size;
        if (zipw_crc32(0, b->data, b->len) != z->crc)
                return fail(c, "container", "the CRC-32 of %s is wrong (the file was changed)", z->name);
        return buf_str(b) ? 0 : -ENOMEM;
}

static int check_container(struct ctx *c) {
        int r = read_central(c);
        if (r < 0)
                return r;
        if (c->n < 1 || strcmp(c->e[0].name, "mimetype") != 0 || c->e[0].lh_off != 0)
                return fail(c, "container", "mimetype is not the first entry");
        uint8_t l[30];
        if (pread_full(c, l, 30, 0) < 0 || g16(l + 28) != 0 || (g16(l + 6) & 0x0008))
                return fail(c, "container", "mimetype has an extra field or a data descriptor");
        struct buf m;
        r = read_small(c, &c->e[0], &m);
        if (r >= 0 && (m.len != strlen(MIMETYPE) || memcmp(m.data, MIMETYPE, m.len) != 0))
                r = fail(c, "container", "mimetype is not %s", MIMETYPE);
        buf_free(&m);
        if (r < 0)
                return r;
        c->doc = -1;
        bool seen[ELEMENTSOF(required)] = {};
        for (size_t i = 1; i < c->n; i++) {
                const char *nm = c->e[i].name;
                size_t k;
                for (k = 0; k < ELEMENTSOF(required); k++)
                        if (strcmp(nm, required[k]) == 0)
                                break;
                if (k < ELEMENTSOF(required)) {
                        seen[k] = true;
                        r = read_small(c, &c->e[i], &c->small[k]);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (strncmp(nm, "META-INF/", 9) == 0)
                        return fail(c, "container", "an unexpected file in META-INF: %s", nm);
                if (strchr(nm, '/') || c->doc >= 0)
                        return fail(c, "container", "more than one document in the bundle (%s)", nm);
                c->doc = (int) i;
        }
        for (size_t k = 0; k < ELEMENTSOF(required); k++)
                if (!seen[k])
                        return fail(c, "container", "%s is missing", required[k]);
        if (c->doc < 0)
                return fail(c, "container", "no document in the bundle");
        ok(c, "container: ASiC-S (mimetype first, stored, %s), %zu entries, every CRC of META-INF right", MIMETYPE,
           c->n);
        return 0;
}

/* ---- 2. the document ---- */

static int check_document(struct ctx *c, const struct asic_verify_options *o) {
        const struct zentry *z = &c->e[c->doc];
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t *chunk = malloc(1 << 16);
        uint32_t crc = 0;
        int r = md && chunk && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
        for (uint64_t off = 0; r >= 0 && off < z->size;) {
                size_t n = (size_t) MIN((uint64_t) 1 << 16, z->size - off);
                r = pread_full(c, chunk, n, z->data_off + off);
                if (r >= 0) {
                        crc = zipw_crc32(crc, chunk, n);
                        r = EVP_DigestUpdate(md, chunk, n) == 1 ? 0 : -EIO;
                }
                off += n;
        }
        unsigned l = 0;
        if (r >= 0)
                r = EVP_DigestFinal_ex(md, c->doc_sha256, &l) == 1 ? 0 : -EIO;
        EVP_MD_CTX_free(md);
        free(chunk);
        if (r < 0)
                return fail(c, "document", "cannot read it from the bundle");
        if (crc != z->crc)
                return fail(c, "document", "the CRC-32 of %s is wrong (the file was changed)", z->name);
        char hex[65];
        hex_encode(c->doc_sha256, 32, hex);
        ok(c, "document: \"%s\", %llu bytes, SHA-256 %s", z->name, (unsigned long long) z->size, hex);
        if (o->document) {
                _cleanup_close_ int fd = open(o->document, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                EVP_MD_CTX *m2 = EVP_MD_CTX_new();
                uint8_t buf[65536], h[32];
                ssize_t k = 0;
                r = m2 && EVP_DigestInit_ex(m2, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
                while (r >= 0 && (k = read(fd, buf, sizeof buf)) > 0)
                        r = EVP_DigestUpdate(m2, buf, (size_t) k) == 1 ? 0 : -EIO;
                if (k < 0)
                        r = -errno;
                if (r >= 0)
                        r = EVP_DigestFinal_ex(m2, h, &l) == 1 ? 0 : -EIO;
                EVP_MD_CTX_free(m2);
                if (r < 0)
                        return r;
                if (CRYPTO_memcmp(h, c->doc_sha256, 32) != 0)
                        return fail(c, "document", "%s is not the document of the bundle (another SHA-256)",
                                    o->document);
                ok(c, "document: %s is the bundled document", o->document);
        }
        return 0;
}

/* ---- 3. the seal ---- */

/* A BIO reading the document's bytes from the bundle, so CMS_verify hashes it without a copy. */
struct region {
        struct ctx *c;
        uint64_t off, left;
};

static int region_read(BIO *b, char *out, size_t n, size_t *ret) {
        struct region *g = BIO_get_data(b);
        size_t k = (size_t) MIN((uint64_t) n, g->left);
        if (k == 0) {
                *ret = 0;
                return 0;
        }
        if (pread_full(g->c, out, k, g->off) < 0)
                return 0;
        g->off += k;
        g->left -= k;
        *ret = k;
        return 1;
}

static long region_ctrl(BIO *b, int cmd, long num, void *ptr) {
        (void) num, (void) ptr;
        struct region *g = BIO_get_data(b);
        if (cmd == BIO_CTRL_EOF)
                return g->left == 0;
        if (cmd == BIO_CTRL_FLUSH)
                return 1;
        return 0;
}

static STACK_OF(X509) * pem_certs(const char *pem) {
        BIO *b = BIO_new_mem_buf(pem, -1);
        STACK_OF(X509) *sk = sk_X509_new_null();
        X509 *x;
        while (b && sk && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
                if (!sk_X509_push(sk, x))
                        X509_free(x);
        BIO_free(b);
        ERR_clear_error();
        return sk;
}

static void openssl_why(char *buf, size_t size) {
        unsigned long e = ERR_peek_last_error();
        const char *data = NULL;
        int flags = 0;
        ERR_peek_last_error_all(NULL, NULL, NULL, &data, &flags);
        const char *reason = e ? ERR_reason_error_string(e) : NULL;
        snprintf(buf, size, "%s%s%s", reason ? reason : "rejected",
                 data && *data && (flags & ERR_TXT_STRING) ? ": " : "",
                 data && *data && (flags & ERR_TXT_STRING) ? data : "");
        ERR_clear_error();
}

static int check_seal(struct ctx *c, const struct asic_verify_options *o, int64_t *ret_ts_time) {
        const struct buf *sig = &c->small[0], *chain = &c->small[1], *tsa = &c->small[2];
        const unsigned char *p = sig->data;
        char why[256];
        int r = 0;
        CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long) sig->len);
        if (!cms || p != sig->data + sig->len) {
                CMS_ContentInfo_free(cms);
                ERR_clear_error();
                return fail(c, "seal", "META-INF/signature.p7s is not one DER CMS object");
        }
        STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
        if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed || !CMS_is_detached(cms) || !sis ||
            sk_CMS_SignerInfo_num(sis) != 1) {
                CMS_ContentInfo_free(cms);
                return fail(c, "seal", "not a detached SignedData with one signer");
        }
        CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, 0);

        /* the time-stamp token first: its genTime is when the chain must have been valid */
        ASN1_OCTET_STRING *sigval = CMS_SignerInfo_get0_signature(si);
        int ti = CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, -1);
        X509_ATTRIBUTE *ta = ti >= 0 ? CMS_unsigned_get_attr(si, ti) : NULL;
        ASN1_TYPE *tt = ta && X509_ATTRIBUTE_count(ta) == 1 ? X509_ATTRIBUTE_get0_type(ta, 0) : NULL;
        if (!tt || tt->type != V_ASN1_SEQUENCE || !sigval) {
                CMS_ContentInfo_free(cms);
                return fail(c, "seal", "no signature time-stamp (a B-B seal, or a damaged one)");
        }
        if (c->out)
                fprintf(c->out, "     signature time-stamp (RFC 3161 token over the signature value):\n");
        /* the token carries the TSA certificate at most: the bundled chain fills in the rest */
        struct tsr_check_options to = { .ca_file = o->ca_file,
                                        .ca_pem = o->ca_file ? NULL : buf_str((struct buf *) tsa),
                                        .untrusted_pem = buf_str((struct buf *) tsa) };
        struct tsr_check_result tr;
        r = tsr_check_token(tt->value.sequence->data, (size_t) tt->value.sequence->length,
                            BIO_new_mem_buf(sigval->data, sigval->length), &to, c->out, &tr);
        if (r < 0) {
                CMS_ContentInfo_free(cms);
                return fail(c, "seal time-stamp", "%s", tr.reason);
        }
        *ret_ts_time = tr.gen_time;

        /* the CMS signature over the document, and the seal certificate's chain at that time */
        X509_STORE *store = X509_STORE_new();
        STACK_OF(X509) *anchors = o->ca_file ? NULL : pem_certs(buf_str((struct buf *) chain));
        if (o->ca_file) {
                if (!store || X509_STORE_load_file(store, o->ca_file) != 1) {
                        X509_STORE_free(store);
                        CMS_ContentInfo_free(cms);
                        ERR_clear_error();
                        return -EINVAL;
                }
        } else
                for (int i = 0; store && anchors && i < sk_X509_num(anchors); i++)
                        if (X509_check_issued(sk_X509_value(anchors, i), sk_X509_value(anchors, i)) == X509_V_OK)
                                X509_STORE_add_cert(store, sk_X509_value(anchors, i)); /* the bundled root only */
        sk_X509_pop_free(anchors, X509_free);
        X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), (time_t) tr.gen_time);
        X509_VERIFY_PARAM_set_purpose(X509_STORE_get0_param(store), X509_PURPOSE_ANY);
        BIO_METHOD *bm = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(), "asic entry");
        BIO *content = bm ? BIO_new(bm) : NULL;
        struct region g = { .c = c, .off = c->e[c->doc].data_off, .left = c->e[c->doc].size };
        if (bm) {
                BIO_meth_set_read_ex(bm, region_read);
                BIO_meth_set_ctrl(bm, region_ctrl);
        }
        if (content) {
                BIO_set_data(content, &g);
                BIO_set_init(content, 1);
        }
        ERR_clear_error();
        /* the seal carries its certificate alone: the bundled chain gives the intermediates, added
         * to the parsed object (CMS_verify builds chains from the certificates inside it only) */
        STACK_OF(X509) *extra = pem_certs(buf_str((struct buf *) chain));
        for (int i = 0; extra && i < sk_X509_num(extra); i++)
                CMS_add1_cert(cms, sk_X509_value(extra, i)); /* a duplicate is refused: fine */
        ERR_clear_error();
        bool good = content && CMS_verify(cms, NULL, store, content, NULL, CMS_BINARY) == 1;
        sk_X509_pop_free(extra, X509_free);
        if (!good)
                openssl_why(why, sizeof why);
        BIO_free(content);
        BIO_meth_free(bm);
        X509_STORE_free(store);
        if (!good) {
                CMS_ContentInfo_free(cms);
                return fail(c, "seal", "%s", why);
        }
        X509 *signer = NULL;
        CMS_SignerInfo_get0_algs(si, NULL, &signer, NULL, NULL);
        char subject[256] = "?";
        if (signer)
                X509_NAME_oneline(X509_get_subject_name(signer), subject, sizeof subject);
        ok(c, "seal: CMS signature over the document verifies (signer %s), chain valid at the time-stamp, trusted: %s",
           subject, o->ca_file ? o->ca_file : "the bundled CA only (give --ca for an independent check)");

        /* signing-certificate-v2: the signed attribute names the certificate that signed */
        int ai = CMS_signed_get_attr_by_NID(si, NID_id_smime_aa_signingCertificateV2, -1);
        X509_ATTRIBUTE *aa = ai >= 0 ? CMS_signed_get_attr(si, ai) : NULL;
        ASN1_TYPE *at = aa && X509_ATTRIBUTE_count(aa) == 1 ? X509_ATTRIBUTE_get0_type(aa, 0) : NULL;
        ESS_SIGNING_CERT_V2 *v2 = NULL;
        if (at && at->type == V_ASN1_SEQUENCE) {
                const unsigned char *q = at->value.sequence->data;
                v2 = d2i_ESS_SIGNING_CERT_V2(NULL, &q, at->value.sequence->length);
        }
        STACK_OF(X509) *one = sk_X509_new_null();
        if (one && signer)
                sk_X509_push(one, signer);
        good = v2 && one && signer && OSSL_ESS_check_signing_certs(NULL, v2, one, 1) > 0;
        ERR_clear_error();
        sk_X509_free(one);
        ESS_SIGNING_CERT_V2_free(v2);
        CMS_ContentInfo_free(cms);
        if (!good)
                return fail(c, "seal", "the signing-certificate-v2 attribute is missing or names another certificate");
        ok(c, "seal: signing-certificate-v2 names the signer's certificate");
        return 0;
}

/* ---- 4. the audit log ---- */

static int b64_decode(const char *s, uint8_t *out, size_t max, size_t *ret) {
        size_t n = 0;
        if (!s || sodium_base642bin(out, max, s, strlen(s), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
                return -EBADMSG;
        *ret = n;
        return 0;
}

static int check_log(struct ctx *c, const struct asic_verify_options *o) {
        const char *chk = "audit log";
        _cleanup_buf_ struct buf trusted = {};
        const char *vkey = buf_str(&c->small[4]);
        if (o->log_key) {
                int r = read_file(o->log_key, 4096, &trusted);
                if (r < 0)
                        return r;
                vkey = buf_str(&trusted);
                if (!vkey)
                        return -ENOMEM;
        }
        char key[1024];
        snprintf(key, sizeof key, "%s", vkey);
        key[strcspn(key, "\r\n")] = 0;
        _cleanup_(note_verifier_freep) struct note_verifier *nv = NULL;
        if (note_verifier_from_vkey(key, &nv) < 0)
                return fail(c, chk, "the log verifier key is not a C2SP vkey");
        _cleanup_free_ char *body = NULL;
        const struct buf *note = &c->small[3];
        if (note_open((const char *) note->data, note->len, &nv, 1, &body, NULL) < 0)
                return fail(c, chk, "the checkpoint's signature does not verify under %s",
                            o->log_key ? o->log_key : "the bundled log key");
        _cleanup_free_ char *origin = NULL;
        uint64_t size;
        merkle_hash root;
        if (checkpoint_parse(body, strlen(body), &origin, &size, &root) < 0)
                return fail(c, chk, "the signed note is not a checkpoint");
        ok(c, "checkpoint: signed by %s, tree size %llu",
           o->log_key ? o->log_key : "the bundled log key (give --log-key for an independent check)",
           (unsigned long long) size);

        /* its time-stamp: over the note exactly as signed */
        if (c->out)
                fprintf(c->out, "     checkpoint time-stamp (RFC 3161 reply over META-INF/checkpoint.txt):\n");
        const char *tsa = buf_str(&c->small[2]);
        struct tsr_check_options to = { .ca_file = o->ca_file,
                                        .ca_pem = o->ca_file ? NULL : tsa,
                                        .untrusted_pem = tsa };
        struct tsr_check_result tr;
        int tr_r = tsr_check_reply(c->small[7].data, c->small[7].len, BIO_new_mem_buf(note->data, (int) note->len), &to,
                                   c->out, &tr);
        if (tr_r < 0)
                return fail(c, "checkpoint time-stamp", "%s", tr.reason[0] ? tr.reason : "cannot be checked");
        if (tr.gen_time < c->seal_time)
                return fail(c, "checkpoint time-stamp",
                            "earlier than the seal's time-stamp, yet the log holds the seal");

        json_error_t je;
        json_t *j = json_loadb((const char *) c->small[5].data, c->small[5].len, JSON_REJECT_DUPLICATES, &je);
        json_t *entries = j ? json_object_get(j, "entries") : NULL;
        json_t *jsize = j ? json_object_get(j, "checkpoint_size") : NULL;
        const char *jroot = j ? json_string_value(json_object_get(j, "checkpoint_root")) : NULL;
        uint8_t rb[64];
        size_t rl = 0;
        int r = 0;
        if (!json_is_array(entries) || !json_is_integer(jsize) || (uint64_t) json_integer_value(jsize) != size ||
            !jroot || b64_decode(jroot, rb, sizeof rb, &rl) < 0 || rl != 32 || CRYPTO_memcmp(rb, root.b, 32) != 0)
                r = fail(c, chk, "audit.json is not about the signed checkpoint");
        char doc_hex[65], seal_hex[65];
        uint8_t seal_sha[32];
        hex_encode(c->doc_sha256, 32, doc_hex);
        EVP_Digest(c->small[0].data, c->small[0].len, seal_sha, NULL, EVP_sha256(), NULL);
        hex_encode(seal_sha, 32, seal_hex);
        size_t n = r < 0 ? 0 : json_array_size(entries);
        bool created = false;
        char object[64] = "";
        for (size_t i = 0; r >= 0 && i < n; i++) {
                json_t *e = json_array_get(entries, i);
                json_t *ji = json_object_get(e, "index");
                json_t *jp = json_object_get(e, "inclusion_proof");
                const char *eb = json_string_value(json_object_get(e, "entry"));
                if (!json_is_integer(ji) || json_integer_value(ji) < 0 || !json_is_array(jp) || !eb ||
                    json_array_size(jp) > MERKLE_MAX_PROOF) {
                        r = fail(c, chk, "entry %zu of audit.json is malformed", i);
                        break;
                }
                uint64_t index = (uint64_t) json_integer_value(ji);
                size_t el = strlen(eb);
                _cleanup_free_ uint8_t *bytes = malloc(el + 1);
                size_t bl = 0;
                if (!bytes)
                        return -ENOMEM;
                merkle_hash proof[MERKLE_MAX_PROOF], leaf;
                size_t pl = json_array_size(jp);
                bool good = b64_decode(eb, bytes, el + 1, &bl) >= 0;
                for (size_t k = 0; good && k < pl; k++) {
                        size_t hl = 0;
                        good = b64_decode(json_string_value(json_array_get(jp, k)), proof[k].b, 32, &hl) >= 0 &&
                               hl == 32;
                }
                if (!good) {
                        r = fail(c, chk, "entry %zu of audit.json is malformed", i);
                        break;
                }
                merkle_leaf_hash(bytes, bl, &leaf);
                if (index >= size || merkle_verify_inclusion(&leaf, index, size, proof, pl, &root) < 0) {
                        r = fail(c, chk, "the inclusion proof of entry %llu does not lead to the checkpoint's root",
                                 (unsigned long long) index);
                        break;
                }
                struct audit_entry ae = {};
                if (audit_entry_parse((const char *) bytes, bl, &ae) < 0) {
                        r = fail(c, chk, "entry %llu is not an audit entry", (unsigned long long) index);
                        break;
                }
                /* document.seal names the seal's own SHA-256: the log binds this very signature too */
                bool is_seal = strcmp(ae.action, "document.seal") == 0;
                if (!ae.object || !ae.object_sha256 || strcmp(ae.object_sha256, is_seal ? seal_hex : doc_hex) != 0 ||
                    (object[0] && strcmp(object, ae.object) != 0))
                        r = fail(c, chk, "entry %llu is about another %s", (unsigned long long) index,
                                 is_seal ? "seal" : "document");
                else {
                        snprintf(object, sizeof object, "%s", ae.object);
                        created |= strcmp(ae.action, "document.create") == 0;
                        ok(c, "audit entry %llu (%s %s) is in the log: inclusion proof to the checkpoint holds",
                           (unsigned long long) index, ae.action, ae.time);
                }
                audit_entry_clear(&ae);
        }
        json_decref(j);
        if (r >= 0 && !created)
                r = fail(c, chk, "no document.create entry of this document under the checkpoint");
        return r;
}

int asic_verify_fd(int fd, const struct asic_verify_options *o, FILE *out, char *ret_reason, size_t reason_size) {
        struct stat st;
        if (!o || fstat(fd, &st) < 0)
                return -EINVAL;
        struct ctx c = { .fd = fd,
                         .file_size = (uint64_t) st.st_size,
                         .out = out,
                         .reason = ret_reason,
                         .reason_size = reason_size,
                         .doc = -1 };
        int64_t ts_time = 0;
        int r = check_container(&c);
        if (r >= 0)
                r = check_document(&c, o);
        if (r >= 0)
                r = check_seal(&c, o, &ts_time);
        c.seal_time = ts_time;
        if (r >= 0)
                r = check_log(&c, o);
        for (size_t k = 0; k < ELEMENTSOF(c.small); k++)
                buf_free(&c.small[k]);
        return r;
}

int asic_verify_file(const char *path, const struct asic_verify_options *o, FILE *out, char *ret_reason,
                     size_t reason_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return asic_verify_fd(fd, o, out, ret_reason, reason_size);
}
