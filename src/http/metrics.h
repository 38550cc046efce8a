/* metrics.h: request counters and duration histograms per route, in Prometheus text format. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

struct metrics;
int metrics_new(struct metrics **ret) _warn_unused_;
void metrics_free(struct metrics *m);
void metrics_observe(struct metrics *m, const char *route, unsigned status, double seconds, uint64_t bytes_in,
                     uint64_t bytes_out);
int metrics_render(struct metrics *m, struct buf *b) _warn_unused_;
/* Connections closed for being too slow: before their headers were in, or during a body. */
void metrics_count_cut(struct metrics *m, bool header_deadline, unsigned n);
