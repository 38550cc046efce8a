/* system.c: /healthz, /metrics and the OpenAPI description. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "backup/status.h"
#include "core/accounts.h"
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
                if (http_header_add(r, "Retry-After", "5") < 0)
                        return -ENOMEM;
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
        /* an answer that cannot be queued closes the connection: refused either way */
        if (http_header_add(r, "Retry-After", "5") < 0 ||
            http_respond_problem(r, 503, "checkpoint-stalled", "Service unavailable",
                                 "No audit checkpoint could be signed for too long; changes are refused until "
                                 "checkpointing resumes.") < 0)
                log_warn("the 503 checkpoint-stalled answer could not be queued");
        return 1;
}

/* /metrics tells counts across all organisations: by default only an admin token reads it. */
static int metrics_allowed(struct http_request *r) {
        const char *mode = vault_get_config(http_vault(r))->metrics_access;
        if (strcmp(mode, "public") == 0)
                return 0;
        if (strcmp(mode, "loopback") == 0)
                return http_peer_is_loopback(r) ? 0 : -EPERM;
        int k = http_authenticate(r);
        if (k < 0)
                return k;
        const char *role = http_actor(r)->role;
        return strcmp(role, "owner") == 0 || strcmp(role, "admin") == 0 || strcmp(role, "operator") == 0 ? 0 : -EPERM;
}

int api_system_metrics(struct http_request *r) {
        uint64_t count = 0, bytes = 0;
        int k = metrics_allowed(r);
        if (k == -EACCES) {
                if (http_header_add(r, "WWW-Authenticate", "Bearer realm=\"coffre\"") < 0)
                        return -ENOMEM;
                return http_respond_problem(r, 401, "unauthorized", "Unauthorized",
                                            "/metrics needs an owner's, admin's or operator's bearer token ([server] metrics = token).");
        }
        if (k == -EPERM)
                return http_respond_problem(r, 403, "forbidden", "Forbidden",
                                            "/metrics is not open to this caller (see [server] metrics).");
        if (k < 0)
                return k;
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, 1 << 20);
        k = http_server_metrics(http_request_server(r), &b);
        if (k < 0)
                return k;
        vault_stats(http_vault(r), &count, &bytes);
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
        k = accounts_metrics(vault_accounts(http_vault(r)), &b);
        if (k < 0)
                return k;
        struct vault_cert_expiry ce;
        vault_cert_expiry(http_vault(r), &ce);
        const struct {
                const char *name;
                int64_t not_after;
        } certs[] = { { "ca", ce.ca }, { "tsa", ce.tsa }, { "seal", ce.seal } };
        k = buf_printf(&b, "# HELP coffre_seal_certificate_expiry_seconds Seconds until the vault's CA, TSA and "
                           "(soonest) seal certificate expire (negative once expired; under 30 days is a warning).\n"
                           "# TYPE coffre_seal_certificate_expiry_seconds gauge\n");
        for (size_t i = 0; k >= 0 && i < ELEMENTSOF(certs); i++)
                if (certs[i].not_after)
                        k = buf_printf(&b, "coffre_seal_certificate_expiry_seconds{certificate=\"%s\"} %lld\n",
                                       certs[i].name, (long long) (certs[i].not_after - (int64_t) time(NULL)));
        struct vault_seal_upgrade_stats us;
        vault_seal_upgrade_stats(http_vault(r), &us);
        if (k >= 0 && us.enabled)
                k = buf_printf(&b,
                               "# HELP coffre_seal_upgrade_queued B-B seals waiting for the external TSA.\n"
                               "# TYPE coffre_seal_upgrade_queued gauge\n"
                               "coffre_seal_upgrade_queued %llu\n"
                               "# HELP coffre_seal_upgraded_total B-B seals raised to B-T since start.\n"
                               "# TYPE coffre_seal_upgraded_total counter\n"
                               "coffre_seal_upgraded_total %llu\n"
                               "# HELP coffre_seal_timestamp_failures_total External TSA exchanges that gave no "
                               "valid timestamp (at ingest or upgrade).\n"
                               "# TYPE coffre_seal_timestamp_failures_total counter\n"
                               "coffre_seal_timestamp_failures_total %llu\n",
                               (unsigned long long) us.queued, (unsigned long long) us.upgraded,
                               (unsigned long long) us.failures);
        if (k < 0)
                return k;
        k = backup_status_metrics(vault_dir(http_vault(r)), (int64_t) time(NULL), &b); /* written by backup run */
        if (k < 0)
                return k;
        return http_respond_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *) b.data, b.len);
}

extern const char coffre_openapi_yaml[];
extern const size_t coffre_openapi_yaml_len;

int api_system_openapi(struct http_request *r) {
        return http_respond_text(r, 200, "application/yaml", coffre_openapi_yaml, coffre_openapi_yaml_len);
}
