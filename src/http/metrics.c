/* metrics.c: request counters and duration histograms per route (Prometheus text format 0.0.4). */
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const double buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])
#define MAX_SERIES 256

struct series {
        const char *route; /* static string from the route table */
        unsigned status;
        uint64_t count;
};

struct histogram {
        const char *route;
        uint64_t counts[N_BUCKETS];
        uint64_t total;
        double sum;
};

struct metrics {
        pthread_mutex_t lock;
        struct series series[MAX_SERIES];
        size_t n_series;
        struct histogram hist[MAX_SERIES];
        size_t n_hist;
        uint64_t bytes_in, bytes_out;
        uint64_t cut_header, cut_body;
};

int metrics_new(struct metrics **ret) {
        struct metrics *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        pthread_mutex_init(&m->lock, NULL);
        *ret = m;
        return 0;
}

void metrics_free(struct metrics *m) {
        if (!m)
                return;
        pthread_mutex_destroy(&m->lock);
        free(m);
}

void metrics_observe(struct metrics *m, const char *route, unsigned status, double seconds, uint64_t bytes_in,
                     uint64_t bytes_out) {
        pthread_mutex_lock(&m->lock);
        m->bytes_in += bytes_in;
        m->bytes_out += bytes_out;
        size_t i;
        for (i = 0; i < m->n_series; i++)
                if (m->series[i].route == route && m->series[i].status == status)
                        break;
        if (i == m->n_series && i < MAX_SERIES)
                m->series[m->n_series++] = (struct series){ .route = route, .status = status };
        if (i < MAX_SERIES)
                m->series[i].count++;
        for (i = 0; i < m->n_hist; i++)
                if (m->hist[i].route == route)
                        break;
        if (i == m->n_hist && i < MAX_SERIES)
                m->hist[m->n_hist++] = (struct histogram){ .route = route };
        if (i < MAX_SERIES) {
                struct histogram *h = &m->hist[i];
                for (size_t b = 0; b < N_BUCKETS; b++)
                        if (seconds <= buckets[b])
                                h->counts[b]++;
                h->total++;
                h->sum += seconds;
        }
        pthread_mutex_unlock(&m->lock);
}

void metrics_count_cut(struct metrics *m, bool header_deadline, unsigned n) {
        pthread_mutex_lock(&m->lock);
        if (header_deadline)
                m->cut_header += n;
        else
                m->cut_body += n;
        pthread_mutex_unlock(&m->lock);
}

int metrics_render(struct metrics *m, struct buf *b) {
        int r = 0;
        pthread_mutex_lock(&m->lock);
        r = buf_append_str(b, "# HELP coffre_http_requests_total HTTP requests answered, by route and status.\n"
                              "# TYPE coffre_http_requests_total counter\n");
        for (size_t i = 0; r >= 0 && i < m->n_series; i++)
                r = buf_printf(b, "coffre_http_requests_total{route=\"%s\",code=\"%u\"} %llu\n", m->series[i].route,
                               m->series[i].status, (unsigned long long) m->series[i].count);
        if (r >= 0)
                r = buf_append_str(b, "# HELP coffre_http_request_duration_seconds Time from request to last byte sent.\n"
                                      "# TYPE coffre_http_request_duration_seconds histogram\n");
        for (size_t i = 0; r >= 0 && i < m->n_hist; i++) {
                const struct histogram *h = &m->hist[i];
                for (size_t k = 0; r >= 0 && k < N_BUCKETS; k++)
                        r = buf_printf(b, "coffre_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                                       h->route, buckets[k], (unsigned long long) h->counts[k]);
                if (r >= 0)
                        r = buf_printf(b,
                                       "coffre_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                                       "coffre_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                                       "coffre_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                                       h->route, (unsigned long long) h->total, h->route, h->sum, h->route,
                                       (unsigned long long) h->total);
        }
        if (r >= 0)
                r = buf_printf(b,
                               "# HELP coffre_http_bytes_received_total Request body bytes received.\n"
                               "# TYPE coffre_http_bytes_received_total counter\n"
                               "coffre_http_bytes_received_total %llu\n"
                               "# HELP coffre_http_bytes_sent_total Response body bytes sent.\n"
                               "# TYPE coffre_http_bytes_sent_total counter\n"
                               "coffre_http_bytes_sent_total %llu\n",
                               (unsigned long long) m->bytes_in, (unsigned long long) m->bytes_out);
        if (r >= 0)
                r = buf_printf(b,
                               "# HELP coffre_http_slow_connections_closed_total Connections closed for being too slow.\n"
                               "# TYPE coffre_http_slow_connections_closed_total counter\n"
                               "coffre_http_slow_connections_closed_total{reason=\"header_deadline\"} %llu\n"
                               "coffre_http_slow_connections_closed_total{reason=\"body_rate\"} %llu\n",
                               (unsigned long long) m->cut_header, (unsigned long long) m->cut_body);
        pthread_mutex_unlock(&m->lock);
        return r;
}
