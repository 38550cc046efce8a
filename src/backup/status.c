/* status.c: DATA/backup/status (see status.h). */
#include "backup/status.h"

#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "fileio.h"

static json_t *load(const char *path) {
        _cleanup_buf_ struct buf b = {};
        json_t *j;

        buf_init(&b, BACKUP_STATUS_MAX);
        if (read_file(path, BACKUP_STATUS_MAX, &b) < 0)
                return json_object();
        j = json_loadb((const char *) b.data, b.len, 0, NULL);
        if (!json_is_object(j) || !json_is_object(json_object_get(j, "destinations"))) {
                json_decref(j);
                return json_object();
        }
        return j;
}

int backup_status_record(const char *data_dir, const struct backup_status_entry *e, size_t n) {
        _cleanup_free_ char *path = path_join(data_dir, BACKUP_STATUS_FILE), *text = NULL;
        json_t *root, *dests;
        int r;

        if (!path)
                return -ENOMEM;
        root = load(path);
        if (!root)
                return -ENOMEM;
        dests = json_object_get(root, "destinations");
        if (!dests) {
                dests = json_object();
                json_object_set_new(root, "destinations", dests);
        }
        for (size_t i = 0; i < n; i++) {
                json_t *d = json_object_get(dests, e[i].destination);
                json_int_t last_ok = d ? json_integer_value(json_object_get(d, "last_success")) : 0;
                json_int_t ok_secs_bytes = d ? json_integer_value(json_object_get(d, "bytes")) : 0;
                json_int_t ok_added = d ? json_integer_value(json_object_get(d, "added")) : 0;
                double ok_secs = d ? json_real_value(json_object_get(d, "seconds")) : 0;
                if (e[i].ok) {
                        last_ok = (json_int_t) e[i].time;
                        ok_secs_bytes = (json_int_t) e[i].bytes;
                        ok_added = (json_int_t) e[i].added;
                        ok_secs = e[i].seconds;
                }
                json_object_set_new(dests, e[i].destination,
                                    json_pack("{s:I,s:b,s:I,s:f,s:I,s:I}", "last_run", (json_int_t) e[i].time,
                                              "last_ok", e[i].ok, "last_success", last_ok, "seconds", ok_secs, "bytes",
                                              ok_secs_bytes, "added", ok_added));
        }
        text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(root);
        if (!text)
                return -ENOMEM;
        _cleanup_free_ char *dir = path_join(data_dir, BACKUP_STATUS_DIR);
        r = dir ? mkdir_p(dir, 0700) : -ENOMEM;
        if (r < 0)
                return r;
        r = write_file_atomic(path, text, strlen(text), 0600, 0);
        return r;
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static int label(struct buf *b, const char *s) {
        int r = 0;
        for (const char *p = s; r >= 0 && *p; p++) {
                if (*p == '\\' || *p == '"')
                        r = buf_printf(b, "\\%c", *p);
                else if (*p == '\n')
                        r = buf_append_str(b, "\\n");
                else
                        r = buf_append(b, p, 1);
        }
        return r;
}

int backup_status_metrics(const char *data_dir, int64_t now, struct buf *b) {
        _cleanup_free_ char *path = path_join(data_dir, BACKUP_STATUS_FILE);
        static const char *const names[] = {
                "coffre_backup_last_success_timestamp_seconds",
                "coffre_backup_last_run_ok",
                "coffre_backup_last_duration_seconds",
                "coffre_backup_last_bytes_read",
                "coffre_backup_last_bytes_added",
                "coffre_backup_overdue",
        };
        static const char *const help[] = {
                "Unix time of the last successful backup run to the destination (0: never).",
                "Whether the last backup run to the destination succeeded.",
                "Duration of the last successful backup run to the destination.",
                "Bytes of the vault read by the last successful run.",
                "Bytes the last successful run added to the destination.",
                "1 when the destination has had no successful backup for two hours.",
        };
        json_t *root, *dests, *d;
        const char *url;
        int r = 0;

        if (!path)
                return -ENOMEM;
        root = load(path);
        if (!root)
                return -ENOMEM;
        dests = json_object_get(root, "destinations");
        if (!dests || json_object_size(dests) == 0) {
                json_decref(root);
                return 0;
        }
        for (size_t m = 0; r >= 0 && m < ELEMENTSOF(names); m++) {
                r = buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", names[m], help[m], names[m]);
                json_object_foreach(dests, url, d) {
                        json_int_t last_ok = json_integer_value(json_object_get(d, "last_success"));
                        if (r >= 0)
                                r = buf_printf(b, "%s{destination=\"", names[m]);
                        if (r >= 0)
                                r = label(b, url);
                        if (r < 0)
                                break;
                        switch (m) {
                        case 0:
                                r = buf_printf(b, "\"} %lld\n", (long long) last_ok);
                                break;
                        case 1:
                                r = buf_printf(b, "\"} %d\n", json_is_true(json_object_get(d, "last_ok")));
                                break;
                        case 2:
                                r = buf_printf(b, "\"} %.3f\n", json_real_value(json_object_get(d, "seconds")));
                                break;
                        case 3:
                                r = buf_printf(b, "\"} %lld\n",
                                               (long long) json_integer_value(json_object_get(d, "bytes")));
                                break;
                        case 4:
                                r = buf_printf(b, "\"} %lld\n",
                                               (long long) json_integer_value(json_object_get(d, "added")));
                                break;
                        default:
                                r = buf_printf(b, "\"} %d\n", now - (int64_t) last_ok > BACKUP_OVERDUE_SEC);
                        }
                }
        }
        json_decref(root);
        return r < 0 ? r : 0;
}
