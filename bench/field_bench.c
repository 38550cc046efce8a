/* field_bench.c: coffre-field-bench, what decrypting document names costs a listing.
 *
 * Usage: coffre-field-bench DATA [ROUNDS [LIMIT]]
 * With the server stopped, opens the vault in DATA (filled by coffre-load) and, for the first
 * organisation's newest LIMIT documents (default 1000), times ROUNDS rounds (default 200) of, in
 * turn:
 *   store  the metadata query alone (store document_list: the rows, names still sealed), the
 *          clear names copied in as a clear-name column was, and the JSON of the answer as
 *          GET /v1/documents builds it: what a listing of clear names cost;
 *   vault  vault_document_list (the same query, then every name decrypted) and the same JSON;
 *   names  the decryption of the LIMIT names alone (vault_names_open, as the listing does it).
 * The two listings alternate round by round so that drift affects both alike. Prints the median
 * and 90th percentile of each, in microseconds, and `ratio` = vault / store (medians). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "api/api.h"
#include "core/fields.h"
#include "core/vault.h"
#include "core/vault_internal.h"
#include "log.h"

static double now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p) {
        qsort(v, n, sizeof *v, cmp_double);
        size_t i = (size_t) (p * (double) (n - 1) + 0.5);
        return v[i];
}

static int first_org(const struct store_org *o, void *ud) {
        struct vault_actor *a = ud;
        if (!a->org_id[0])
                snprintf(a->org_id, sizeof a->org_id, "%s", o->id);
        return 0;
}

/* The answer's body as api_documents_list makes it; returns its length (to keep it observed). */
static size_t answer_json(const struct store_document *d, size_t n) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
                json_array_append_new(arr, api_document_json(&d[i]));
        json_t *o = json_pack("{s:o, s:n}", "documents", arr ? arr : json_array(), "next_cursor");
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        size_t l = s ? strlen(s) : 0;
        free(s);
        json_decref(o);
        return l;
}

int main(int argc, char **argv) {
        if (argc < 2 || argc > 4) {
                fprintf(stderr, "usage: coffre-field-bench DATA [ROUNDS [LIMIT]]\n");
                return 2;
        }
        size_t rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 200;
        size_t limit = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000;
        if (rounds < 1 || rounds > 100000 || limit < 1 || limit > 1000) {
                fprintf(stderr, "coffre-field-bench: ROUNDS must be 1..100000 and LIMIT 1..1000\n");
                return 2;
        }
        if (sodium_init() < 0)
                return 1;
        log_set_level(LOG_LEVEL_WARN);

        struct vault *v = NULL;
        int r = vault_open(argv[1], &v);
        if (r < 0) {
                fprintf(stderr, "coffre-field-bench: cannot open the vault: %s\n", strerror(-r));
                return 1;
        }
        struct vault_actor a = { .role = "admin" };
        r = v->store->ops->org_foreach(v->store, first_org, &a);
        double *ts = calloc(rounds, sizeof *ts), *tv = calloc(rounds, sizeof *tv), *tn = calloc(rounds, sizeof *tn);
        size_t got = 0, bytes_s = 0, bytes_v = 0, n_clear = 0;
        struct store_document *clear = NULL;
        if (r < 0 || !a.org_id[0] || !ts || !tv || !tn) {
                fprintf(stderr, "coffre-field-bench: no organisation\n");
                r = -EINVAL;
                goto out;
        }
        /* The clear names, once, to give the store's rows what a clear-name column gave them. */
        {
                struct store_document_filter f = {
                        .org_id = a.org_id, .created_after = INT64_MIN, .created_before = INT64_MAX, .limit = limit
                };
                char *cursor = NULL;
                r = vault_document_list(v, &a, &f, NULL, &clear, &n_clear, &cursor);
                free(cursor);
        }
        for (size_t i = 0; r >= 0 && i < rounds; i++) {
                struct store_document_filter f = {
                        .org_id = a.org_id, .created_after = INT64_MIN, .created_before = INT64_MAX, .limit = limit
                };
                struct store_document *d = NULL;
                char *cursor = NULL;
                size_t n = 0;

                double t0 = now_us();
                r = v->store->ops->document_list(v->store, &f, &d, &n, &cursor);
                for (size_t k = 0; r >= 0 && k < n; k++) {
                        if (k >= n_clear || strcmp(d[k].id, clear[k].id) != 0) {
                                r = -ESTALE; /* the vault changed under the bench */
                                break;
                        }
                        memcpy(d[k].name, clear[k].name, sizeof d[k].name); /* the old column copy */
                }
                if (r >= 0)
                        bytes_s = answer_json(d, n);
                ts[i] = now_us() - t0;
                /* the names alone, on those very rows */
                t0 = now_us();
                size_t failed = 0;
                if (r >= 0)
                        r = vault_names_open(v, d, n, &failed);
                tn[i] = now_us() - t0;
                if (r >= 0 && n > 0 && strcmp(d[0].name, clear[0].name) != 0)
                        r = -EBADMSG;
                vault_document_list_free(d, n);
                free(cursor);
                if (r < 0)
                        break;

                t0 = now_us();
                r = vault_document_list(v, &a, &f, NULL, &d, &n, &cursor);
                if (r >= 0)
                        bytes_v = answer_json(d, n);
                tv[i] = now_us() - t0;
                got = n;
                vault_document_list_free(d, n);
                free(cursor);
        }
        if (r < 0) {
                fprintf(stderr, "coffre-field-bench: %s\n", strerror(-r));
                goto out;
        }
        double ms = pct(ts, rounds, 0.5), mv = pct(tv, rounds, 0.5), mn = pct(tn, rounds, 0.5);
        printf("rows=%zu rounds=%zu json_bytes=%zu/%zu\n", got, rounds, bytes_s, bytes_v);
        printf("store median_us=%.0f p90_us=%.0f\n", ms, pct(ts, rounds, 0.9));
        printf("vault median_us=%.0f p90_us=%.0f\n", mv, pct(tv, rounds, 0.9));
        printf("names median_us=%.0f p90_us=%.0f per_name_us=%.2f\n", mn, pct(tn, rounds, 0.9),
               got ? mn / (double) got : 0.0);
        printf("result ratio=%.3f\n", mv / ms);
out:
        vault_document_list_free(clear, n_clear);
        free(ts);
        free(tv);
        free(tn);
        vault_close(v);
        return r < 0 ? 1 : 0;
}
