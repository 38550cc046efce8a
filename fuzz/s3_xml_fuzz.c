/* s3_xml_fuzz.c: fuzz target for the S3 client's readers of server answers (src/s3/s3_xml.c).
 * The first byte picks the reader: 0 Error, 1 ListBucketResult, 2 InitiateMultipartUploadResult,
 * 3 the root element, 4 an ISO 8601 time. Properties: an accepted Error has a code of letters
 * and digits and a one-line message; a listing gives non-empty keys and, when truncated, a
 * token; an upload id is printable without spaces. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "s3/s3_internal.h"

int fuzz_verdict;

static int on_key(const char *key, const struct s3_object_info *info, void *ud) {
        if (!key[0] || strlen(key) > S3_KEY_MAX)
                abort();
        (*(unsigned *) ud)++;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char code[64], msg[256], root[64];
        bool truncated = false;
        char *token = NULL, *id = NULL;
        unsigned keys = 0;
        int r = -1;

        fuzz_verdict = 0;
        if (size < 1)
                return 0;
        switch (data[0]) {
        case 0:
                r = s3_xml_error(data + 1, size - 1, code, msg);
                if (r == 0) {
                        for (const char *c = code; *c; c++)
                                if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                                      (*c >= '0' && *c <= '9') || *c == '.'))
                                        abort();
                        if (strchr(msg, '\n') || strchr(msg, '\r'))
                                abort();
                }
                break;
        case 1:
                r = s3_xml_list(data + 1, size - 1, on_key, &keys, &truncated, &token);
                if (r == 0 && truncated != (token != NULL))
                        abort();
                free(token);
                break;
        case 2:
                r = s3_xml_upload_id(data + 1, size - 1, &id);
                if (r == 0)
                        for (const char *c = id; *c; c++)
                                if ((unsigned char) *c <= 0x20 || (unsigned char) *c >= 0x7f)
                                        abort();
                free(id);
                break;
        case 3:
                r = s3_xml_root(data + 1, size - 1, root);
                break;
        case 4: {
                char s[64];
                int64_t t;
                if (size - 1 >= sizeof s || memchr(data + 1, 0, size - 1))
                        return 0;
                memcpy(s, data + 1, size - 1);
                s[size - 1] = 0;
                r = s3_parse_time(s, &t);
                if (r == 0 && t < 0)
                        abort();
                break;
        }
        default:
                return 0;
        }
        fuzz_verdict = r == 0;
        return 0;
}
