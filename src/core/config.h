/* config.h: the vault's settings file DATA/coffre.conf (INI). Holds paths and limits, never secrets. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

#define VAULT_MAX_WITNESSES 16
#define VAULT_MAX_PKCS11_PATHS 4
#define VAULT_MAX_CLASSES 64

/* A retention class ([class NAME] sections, docs/operations.md "Retention classes"). */
enum vault_class_start {
        VAULT_START_DOCUMENT_DATE,   /* the document's date (?document_date=, default the ingest day) */
        VAULT_START_FISCAL_YEAR_END, /* the first fiscal year end on or after the document's date */
        VAULT_START_INGEST,          /* the instant of ingest */
};
enum vault_class_lock {
        VAULT_LOCK_COMPLIANCE, /* no one deletes before the end, no override */
        VAULT_LOCK_GOVERNANCE, /* an owner may delete early with a reason (logged) */
};
struct vault_class {
        char name[65];
        unsigned years, months, days; /* duration = years + months + days, in the calendar */
        enum vault_class_start start;
        enum vault_class_lock lock;
        bool erase_on_expiry; /* on_expiry = erase (the sweeper erases) or review (listed only) */
};

struct vault_config {
        char vault_id[33];
        char listen[64];
        uint64_t max_body;            /* bytes */
        unsigned max_connections;
        unsigned max_connections_per_ip;
        unsigned idle_timeout;        /* seconds */
        unsigned shutdown_timeout;    /* seconds to let in-flight requests finish */
        unsigned header_timeout;      /* seconds from accept to the end of the request headers */
        unsigned body_min_rate;       /* bytes per second a body must keep up... */
        unsigned body_rate_window;    /* ...over each window of this many seconds */
        char metrics_access[16];      /* who may read /metrics: "token", "loopback" or "public" */
        bool sandbox;                 /* [server] sandbox: Landlock + seccomp once serving */
        char tls_cert[256];           /* relative to DATA or absolute */
        char tls_key[256];
        char master_key[1024];                         /* a path, or a pkcs11: URI (the key on a token) */
        char pkcs11_path[VAULT_MAX_PKCS11_PATHS][256]; /* [keys] pkcs11_path: what the PKCS#11 module
                                                        * reads and writes once sandboxed (its token store) */
        size_t n_pkcs11_path;
        char audit_origin[128];
        char default_class[65];
        char witness[VAULT_MAX_WITNESSES][512]; /* [audit] witness = <vkey>, one line each */
        size_t n_witness;
        unsigned stall_timeout;       /* [audit] seconds without a checkpoint before writes get 503 */
        unsigned cosigned_checkpoints; /* [audit] cosigned_checkpoints: how many keep cosignatures */
        uint64_t argon2_memory;       /* [auth] argon2_memory: bytes per password hash, >= 19 MiB */
        unsigned argon2_passes;       /* [auth] argon2_passes: >= 2 */
        unsigned hash_slots;          /* [auth] hash_slots: password hashes running at once */
        unsigned hash_wait_ms;        /* [auth] hash_wait_ms: wait for a free slot before a 503 */
        /* [auth] login_*: the rate limits of POST /v1/auth/login (docs/security.md, "Rate limits"),
         * one token bucket per account (by e-mail, known or not) and one per client address. */
        unsigned login_account_burst, login_account_per_minute;
        unsigned login_address_burst, login_address_per_minute;
        unsigned login_fail_free, login_address_fail_free; /* failures before any delay */
        unsigned login_fail_delay_ms, login_fail_delay_max_ms; /* first delay, doubled up to max */
        unsigned login_fail_window;  /* seconds after the last failure's delay that they are forgotten */
        unsigned login_max_keys;     /* accounts and addresses tracked, each table */
        unsigned session_idle;       /* [auth] session_idle: seconds a session lives unused */
        unsigned session_lifetime;   /* [auth] session_lifetime: seconds a session lives at most */
        bool seal;                     /* [seal] enabled: every document is sealed (CAdES-B-T) */
        char seal_exempt[512];         /* [seal] exempt_classes: comma-separated classes stored unsealed */
        char tsa_policy[128];          /* [tsa] policy: dotted OID in every token */
        unsigned tsa_accuracy_ms;      /* [tsa] accuracy_ms */
        char tsa_access[16];           /* [tsa] access: "token" (any valid token) or "public" */
        char tsa_url[512];               /* [tsa] url: an external RFC 3161 TSA ("": the built-in one) */
        char tsa_username[128];          /* [tsa] username: basic authentication to it ("": none) */
        char tsa_password_file[512];     /* [tsa] password_file: its password (first line) */
        char tsa_ca_file[512];           /* [tsa] ca_file: PEM CA(s) its tokens must chain to */
        unsigned tsa_timeout;            /* [tsa] timeout: seconds for one exchange with it */
        unsigned tsa_retry_max;          /* [tsa] retry_max: longest wait between upgrade attempts, s */
        unsigned checkpoint_ts_interval; /* [audit] checkpoint_timestamp_interval: seconds (0: every checkpoint) */
        struct vault_class classes[VAULT_MAX_CLASSES]; /* the four defaults, then [class NAME] */
        size_t n_classes;
        unsigned fiscal_year_end_month, fiscal_year_end_day; /* [lifecycle] fiscal_year_end = MM-DD */
        unsigned lifecycle_interval; /* [lifecycle] interval: seconds between sweeps, 0 = none */
};

/* Whether documents of class are sealed under c. */
bool vault_config_seals_class(const struct vault_config *c, const char *class_);

/* The class named name, or NULL. */
const struct vault_class *vault_config_class(const struct vault_config *c, const char *name);
/* Parses a duration "10y", "6m", "90d" (a number and one unit, or several: "1y6m"). */
int vault_parse_duration(const char *s, struct vault_class *ret) _warn_unused_;

void vault_config_defaults(struct vault_config *c);
/* Reads DATA/coffre.conf over the defaults. -EINVAL with a logged line number on a bad file. */
int vault_config_load(const char *path, struct vault_config *c) _warn_unused_;
int vault_config_write(const char *path, const struct vault_config *c) _warn_unused_;
/* Parses "1234", "64K", "10M", "4G" into bytes. */
int parse_size(const char *s, uint64_t *ret) _warn_unused_;
