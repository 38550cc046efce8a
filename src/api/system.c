/* system.c: /healthz, /metrics and the OpenAPI description. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "core/ledger.h"
#include "core/vault.h"
#include "log.h"
#include "buf.h"
#include "fileio.h"

int api_system_healthz(struct http_request *r) {
        struct ledger *l = vault_ledger(http_vault(r));
        struct ledger_health h;
        int k = ledger_health(l, &h);

        if (k < 0)
                return http_respond_errno(r, k, "cannot read the audit service's state");
        if (!h.signer_up || h.stalled) {
                (void) http_header_add(r, "Retry-After", "5");
                return http_respond_problem(r, 503, "unhealthy", "Service unavailable",
                                            !h.signer_up ? "The signer is down: no checkpoint can be signed until it is back."
                                                         : "No checkpoint has been signed for longer than the stall timeout.");
        }
        return http_respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

int api_refuse_if_stalled(struct http_request *r) {
        if (!ledger_stalled(vault_ledger(http_vault(r))))
                return 0;
        log_warn("refusing a state change: no checkpoint for longer than the stall timeout");
        (void) http_header_add(r, "Retry-After", "5");
        (void) http_respond_problem(r, 503, "checkpoint-stalled", "Service unavailable",
                                    "No audit checkpoint could be signed for too long; changes are refused until "
                                    "checkpointing resumes.");
        return 1;
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
        k = buf_printf(&b,
                       "# HELP coffre_documents_stored Documents in the vault.\n"
                       "# TYPE coffre_documents_stored gauge\n"
                       "coffre_documents_stored %llu\n"
                       "# HELP coffre_bytes_stored Plaintext bytes of the documents in the vault.\n"
                       "# TYPE coffre_bytes_stored gauge\n"
                       "coffre_bytes_stored %llu\n",
                       (unsigned long long) count, (unsigned long long) bytes);
        if (k < 0)
                return k;
        return http_respond_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *) b.data, b.len);
}

extern const char coffre_openapi_yaml[];
extern const size_t coffre_openapi_yaml_len;

int api_system_openapi(struct http_request *r) {
        return http_respond_text(r, 200, "application/yaml", coffre_openapi_yaml, coffre_openapi_yaml_len);
}
