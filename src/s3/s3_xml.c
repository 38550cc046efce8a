/* s3_xml.c: reading the few XML answers of S3 the client needs (Error, ListBucketResult,
 * InitiateMultipartUploadResult, CompleteMultipartUploadResult) with libxml2: no network, no
 * DTD, no entity substitution, a cap on the size, elements matched by local name (S3 answers
 * carry a namespace, some compatible servers none). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "s3/s3_internal.h"

static void xml_freep(xmlDoc **d) {
        if (*d)
                xmlFreeDoc(*d);
}

static void xml_silent(void *ctx, const char *msg, ...) {
}

static int parse(const uint8_t *p, size_t n, xmlDoc **ret) {
        xmlDoc *d;

        if (!p || n == 0 || n > S3_RESPONSE_XML_MAX)
                return -EBADMSG;
        xmlSetGenericErrorFunc(NULL, xml_silent);
        d = xmlReadMemory((const char *) p, (int) n, NULL, NULL,
                          XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!d)
                return -EBADMSG;
        if (d->intSubset || d->extSubset || !xmlDocGetRootElement(d)) {
                xmlFreeDoc(d);
                return -EBADMSG;
        }
        *ret = d;
        return 0;
}

static bool is(const xmlNode *x, const char *name) {
        return x && x->type == XML_ELEMENT_NODE && strcmp((const char *) x->name, name) == 0;
}

static xmlNode *child(const xmlNode *x, const char *name) {
        for (xmlNode *c = x ? x->children : NULL; c; c = c->next)
                if (is(c, name))
                        return c;
        return NULL;
}

/* The text of an element into out (cap), -EBADMSG when missing or too long or not plain text. */
static int text(const xmlNode *x, char *out, size_t cap) {
        size_t n = 0;
        if (!x)
                return -EBADMSG;
        for (xmlNode *c = x->children; c; c = c->next) {
                if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
                        return -EBADMSG;
                size_t l = strlen((const char *) c->content);
                if (n + l >= cap)
                        return -EBADMSG;
                memcpy(out + n, c->content, l);
                n += l;
        }
        out[n] = 0;
        return 0;
}

int s3_xml_root(const uint8_t *p, size_t n, char out[64]) {
        _cleanup_(xml_freep) xmlDoc *d = NULL;
        int r = parse(p, n, &d);
        if (r < 0)
                return r;
        const xmlNode *root = xmlDocGetRootElement(d);
        if (strlen((const char *) root->name) >= 64)
                return -EBADMSG;
        snprintf(out, 64, "%s", (const char *) root->name);
        return 0;
}

int s3_xml_error(const uint8_t *p, size_t n, char code[64], char msg[256]) {
        _cleanup_(xml_freep) xmlDoc *d = NULL;
        int r = parse(p, n, &d);
        if (r < 0)
                return r;
        const xmlNode *root = xmlDocGetRootElement(d);
        if (!is(root, "Error") || text(child(root, "Code"), code, 64) < 0 || !code[0])
                return -EBADMSG;
        for (const char *c = code; *c; c++)
                if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.'))
                        return -EBADMSG;
        if (text(child(root, "Message"), msg, 256) < 0)
                msg[0] = 0;
        /* one line, printable: the message goes into logs and terminals */
        for (char *c = msg; *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                        *c = ' ';
        return 0;
}

int s3_parse_time(const char *s, int64_t *ret) {
        struct tm tm = {};
        int y, mo, dd, h, mi, sec, used = 0;

        if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &dd, &h, &mi, &sec, &used) != 6 || used != 19)
                return -EINVAL;
        s += used;
        if (*s == '.') {
                s++;
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                while (*s >= '0' && *s <= '9')
                        s++;
        }
        if (strcmp(s, "Z") != 0 || y < 1970 || y > 9999 || mo < 1 || mo > 12 || dd < 1 || dd > 31 || h > 23 ||
            mi > 59 || sec > 60)
                return -EINVAL;
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = dd;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        *ret = (int64_t) timegm(&tm);
        return 0;
}

int s3_xml_list(const uint8_t *p, size_t n, s3_list_fn fn, void *ud, bool *ret_truncated, char **ret_token) {
        _cleanup_(xml_freep) xmlDoc *d = NULL;
        char tmp[64], key[S3_KEY_MAX + 1], tok[1025];
        bool truncated;
        int r = parse(p, n, &d);
        if (r < 0)
                return r;
        const xmlNode *root = xmlDocGetRootElement(d);
        if (!is(root, "ListBucketResult") || text(child(root, "IsTruncated"), tmp, sizeof tmp) < 0)
                return -EBADMSG;
        if (strcmp(tmp, "true") == 0)
                truncated = true;
        else if (strcmp(tmp, "false") == 0)
                truncated = false;
        else
                return -EBADMSG;
        if (truncated && (text(child(root, "NextContinuationToken"), tok, sizeof tok) < 0 || !tok[0]))
                return -EBADMSG; /* a truncated page without a way on would loop or stop short */
        for (const xmlNode *c = root->children; c; c = c->next) {
                struct s3_object_info info = {};
                char *end;
                if (!is(c, "Contents"))
                        continue;
                if (text(child(c, "Key"), key, sizeof key) < 0 || !key[0] ||
                    text(child(c, "Size"), tmp, sizeof tmp) < 0 || tmp[0] < '0' || tmp[0] > '9')
                        return -EBADMSG;
                errno = 0;
                info.size = strtoull(tmp, &end, 10);
                if (errno || *end)
                        return -EBADMSG;
                if (text(child(c, "LastModified"), tmp, sizeof tmp) < 0 || s3_parse_time(tmp, &info.last_modified) < 0)
                        return -EBADMSG;
                if (text(child(c, "ETag"), tmp, sizeof tmp) == 0) {
                        const char *v = tmp;
                        size_t l = strlen(v);
                        if (l >= 2 && v[0] == '"' && v[l - 1] == '"') {
                                v++;
                                l -= 2;
                        }
                        if (l < sizeof info.etag) {
                                memcpy(info.etag, v, l);
                                info.etag[l] = 0;
                        }
                }
                r = fn(key, &info, ud);
                if (r < 0)
                        return r;
        }
        *ret_truncated = truncated;
        if (truncated) {
                *ret_token = strdup(tok);
                if (!*ret_token)
                        return -ENOMEM;
        }
        return 0;
}

int s3_xml_upload_id(const uint8_t *p, size_t n, char **ret) {
        _cleanup_(xml_freep) xmlDoc *d = NULL;
        char id[1025];
        int r = parse(p, n, &d);
        if (r < 0)
                return r;
        const xmlNode *root = xmlDocGetRootElement(d);
        if (!is(root, "InitiateMultipartUploadResult") || text(child(root, "UploadId"), id, sizeof id) < 0 || !id[0])
                return -EBADMSG;
        for (const char *c = id; *c; c++)
                if ((unsigned char) *c <= 0x20 || (unsigned char) *c >= 0x7f)
                        return -EBADMSG;
        *ret = strdup(id);
        return *ret ? 0 : -ENOMEM;
}
