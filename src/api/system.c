/* system.c: /healthz, /metrics and the OpenAPI description. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "buf.h"
#include "fileio.h"

int api_system_healthz(struct http_request *r) {
        return http_respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

int api_system_metrics(struct http_request *r) {
        uint64_t count = 0, bytes = 0;
        _cleanup_buf_ struct buf b;
        buf_init(&b, 1 << 20);
        int k = http_server_metrics(http_request_server(r), &b);
        if (k < 0)
                return k;
        k = vault_stats(http_vault(r), &count, &bytes);
        if (k < 0)
                return http_respond_errno(r, k, "cannot read the store's statistics");
        struct vault_durability_stats d;
        vault_durability_stats(http_vault(r), &d);
        k = buf_printf(&b,
                       "# HELP coffre_documents_stored Documents in the vault.\n"
                       "# TYPE coffre_documents_stored gauge\n"
                       "coffre_documents_stored %llu\n"
                       "# HELP coffre_bytes_stored Plaintext bytes of the documents in the vault.\n"
                       "# TYPE coffre_bytes_stored gauge\n"
                       "coffre_bytes_stored %llu\n"
                       "# HELP coffre_group_commits_total Syncs of each durable store's group commit since start.\n"
                       "# TYPE coffre_group_commits_total counter\n"
                       "coffre_group_commits_total{store=\"keyring\"} %llu\n"
                       "coffre_group_commits_total{store=\"audit\"} %llu\n"
                       "coffre_group_commits_total{store=\"meta\"} %llu\n"
                       "# HELP coffre_group_committed_total Items (keys, audit entries, document rows) those syncs made durable.\n"
                       "# TYPE coffre_group_committed_total counter\n"
                       "coffre_group_committed_total{store=\"keyring\"} %llu\n"
                       "coffre_group_committed_total{store=\"audit\"} %llu\n"
                       "coffre_group_committed_total{store=\"meta\"} %llu\n",
                       (unsigned long long) count, (unsigned long long) bytes, (unsigned long long) d.keyring_commits,
                       (unsigned long long) d.audit_groups, (unsigned long long) d.meta_commits,
                       (unsigned long long) d.keyring_keys, (unsigned long long) d.audit_entries,
                       (unsigned long long) d.meta_rows);
        if (k < 0)
                return k;
        return http_respond_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *) b.data, b.len);
}

extern const char coffre_openapi_yaml[];
extern const size_t coffre_openapi_yaml_len;

int api_system_openapi(struct http_request *r) {
        return http_respond_text(r, 200, "application/yaml", coffre_openapi_yaml, coffre_openapi_yaml_len);
}
