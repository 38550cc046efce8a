/* s3_probe.c: a small command-line driver of src/s3 for the integration tests (test_s3.py).
 * Settings from the AWS_* environment plus S3_BUCKET, S3_PATH_STYLE=1, S3_ATTEMPTS,
 * S3_BACKOFF_MS. Prints results on stdout, the client's error on stderr; exit 0, 1 on an S3
 * error (the first line of stderr then starts with the errno name), 2 on usage.
 *   s3-probe put KEY FILE [--if-none-match] [--part-size N] [--lock compliance|governance UNTIL]
 *   s3-probe get KEY [OFF LEN]            (bytes on stdout)
 *   s3-probe head KEY                     ("size N\nmtime T\netag E")
 *   s3-probe list PREFIX [MAX_KEYS]       ("KEY SIZE MTIME" per line)
 *   s3-probe delete KEY */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "s3/s3.h"

static int usage(void) {
        fprintf(stderr, "usage: s3-probe put|get|head|list|delete ...\n");
        return 2;
}

static int fail(struct s3_client *c, int r) {
        fprintf(stderr, "%s: %s\n", strerrorname_np(-r) ? strerrorname_np(-r) : "E?", s3_client_error(c));
        return 1;
}

static int list_one(const char *key, const struct s3_object_info *info, void *ud) {
        printf("%s %llu %lld\n", key, (unsigned long long) info->size, (long long) info->last_modified);
        return 0;
}

int main(int argc, char **argv) {
        _cleanup_(s3_client_freep) struct s3_client *c = NULL;
        struct s3_config cfg = {};
        const char *v;
        int r;

        if (argc < 3)
                return usage();
        s3_config_from_env(&cfg);
        cfg.bucket = getenv("S3_BUCKET");
        cfg.path_style = (v = getenv("S3_PATH_STYLE")) && strcmp(v, "1") == 0;
        if ((v = getenv("S3_ATTEMPTS")))
                cfg.max_attempts = (unsigned) atoi(v);
        if ((v = getenv("S3_BACKOFF_MS")))
                cfg.backoff_ms = (unsigned) atoi(v);
        cfg.connect_timeout_s = 5;
        cfg.timeout_s = 60;
        r = s3_client_new(&cfg, &c);
        if (r < 0) {
                fprintf(stderr, "%s: cannot set up the S3 client\n", strerrorname_np(-r));
                return 2;
        }
        if (strcmp(argv[1], "put") == 0 && argc >= 4) {
                struct s3_put_opts o = {};
                struct buf b;
                buf_init(&b, (size_t) 256 << 20);
                for (int i = 4; i < argc; i++) {
                        if (strcmp(argv[i], "--if-none-match") == 0)
                                o.if_none_match = true;
                        else if (strcmp(argv[i], "--part-size") == 0 && i + 1 < argc)
                                o.part_size = strtoull(argv[++i], NULL, 10);
                        else if (strcmp(argv[i], "--lock") == 0 && i + 2 < argc) {
                                o.lock = strcmp(argv[i + 1], "compliance") == 0 ? S3_LOCK_COMPLIANCE
                                                                                : S3_LOCK_GOVERNANCE;
                                o.lock_until = strtoll(argv[i + 2], NULL, 10);
                                i += 2;
                        } else
                                return usage();
                }
                r = read_file(argv[3], b.max, &b);
                if (r < 0) {
                        fprintf(stderr, "cannot read %s\n", argv[3]);
                        return 2;
                }
                r = s3_put(c, argv[2], b.data, b.len, &o);
                buf_free(&b);
                return r < 0 ? fail(c, r) : 0;
        }
        if (strcmp(argv[1], "get") == 0) {
                uint64_t off = 0, len = S3_WHOLE;
                struct buf b;
                if (argc == 5) {
                        off = strtoull(argv[3], NULL, 10);
                        len = strtoull(argv[4], NULL, 10);
                } else if (argc != 3)
                        return usage();
                buf_init(&b, (size_t) 256 << 20);
                r = s3_get_object(c, argv[2], off, len, &b);
                if (r < 0)
                        return fail(c, r);
                fwrite(b.data, 1, b.len, stdout);
                buf_free(&b);
                return 0;
        }
        if (strcmp(argv[1], "head") == 0) {
                struct s3_object_info info;
                r = s3_head_object(c, argv[2], &info);
                if (r < 0)
                        return fail(c, r);
                printf("size %llu\nmtime %lld\netag %s\n", (unsigned long long) info.size,
                       (long long) info.last_modified, info.etag);
                return 0;
        }
        if (strcmp(argv[1], "list") == 0) {
                r = s3_list_objects(c, argv[2], argc > 3 ? (unsigned) atoi(argv[3]) : 0, list_one, NULL);
                return r < 0 ? fail(c, r) : 0;
        }
        if (strcmp(argv[1], "delete") == 0) {
                r = s3_delete_object(c, argv[2]);
                return r < 0 ? fail(c, r) : 0;
        }
        return usage();
}
