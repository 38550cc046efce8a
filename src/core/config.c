/* config.c: reading and writing DATA/coffre.conf with inih. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fileio.h"
#include "log.h"

void vault_config_defaults(struct vault_config *c) {
        *c = (struct vault_config){
                .max_body = UINT64_C(4) << 30,
                .max_connections = 256,
                .max_connections_per_ip = 64,
                .idle_timeout = 30,
                .shutdown_timeout = 30,
                .stall_timeout = 10,
                .header_timeout = 10,
                .body_min_rate = 1024,
                .body_rate_window = 30,
                .cosigned_checkpoints = 1024,
                .sandbox = true,
                .argon2_memory = UINT64_C(19) << 20,
                .argon2_passes = 2,
                .hash_slots = 4,
                .hash_wait_ms = 1000,
                .login_account_burst = 10,
                .login_account_per_minute = 6,
                .login_address_burst = 60,
                .login_address_per_minute = 60,
                .login_fail_free = 3,
                .login_address_fail_free = 20,
                .login_fail_delay_ms = 1000,
                .login_fail_delay_max_ms = 900000,
                .login_fail_window = 900,
                .login_max_keys = 65536,
                .session_idle = 1800,
                .session_lifetime = 43200,
                .seal = true,
                .tsa_accuracy_ms = 1000,
                .checkpoint_ts_interval = 60,
                .tsa_timeout = 10,
                .tsa_retry_max = 300,
        };
        snprintf(c->tsa_access, sizeof c->tsa_access, "token");
        snprintf(c->listen, sizeof c->listen, "127.0.0.1:8443");
        snprintf(c->metrics_access, sizeof c->metrics_access, "token");
        snprintf(c->tls_cert, sizeof c->tls_cert, "tls/cert.pem");
        snprintf(c->tls_key, sizeof c->tls_key, "tls/key.pem");
        snprintf(c->master_key, sizeof c->master_key, "keys/master.key");
        snprintf(c->default_class, sizeof c->default_class, "accounting-10y");
}

int parse_size(const char *s, uint64_t *ret) {
        char *end = NULL;
        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        unsigned shift = 0;
        if (*end == 'K' || *end == 'k')
                shift = 10;
        else if (*end == 'M' || *end == 'm')
                shift = 20;
        else if (*end == 'G' || *end == 'g')
                shift = 30;
        else if (*end == 'T' || *end == 't')
                shift = 40;
        if (shift)
                end++;
        if (*end != 0 || v > (UINT64_MAX >> shift))
                return -EINVAL;
        *ret = (uint64_t) v << shift;
        return 0;
}

/* Values with '#' or a ';' after a blank are refused: inih reads " ;" as the start of a comment,
 * so such a value would not survive being written back. A ';' inside a word stays (PKCS#11 URIs). */
static int copy_str(char *dst, size_t n, const char *v) {
        size_t l = strlen(v);
        if (l >= n || strchr(v, '#') || v[0] == ';' || strstr(v, " ;") || strstr(v, "\t;"))
                return 0;
        memcpy(dst, v, l + 1);
        return 1;
}

static int parse_uint(const char *v, unsigned *ret) {
        char *end = NULL;
        errno = 0;
        unsigned long x = strtoul(v, &end, 10);
        if (errno || end == v || *end || x > 1000000)
                return 0;
        *ret = (unsigned) x;
        return 1;
}

static int parse_bool(const char *v, bool *ret) {
        if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "1") == 0)
                *ret = true;
        else if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "0") == 0)
                *ret = false;
        else
                return 0;
        return 1;
}

static int handler(void *ud, const char *section, const char *name, const char *value) {
        struct vault_config *c = ud;
#define IS(s, n) (strcmp(section, s) == 0 && strcmp(name, n) == 0)
        if (IS("vault", "id"))
                return copy_str(c->vault_id, sizeof c->vault_id, value);
        if (IS("vault", "default_class"))
                return copy_str(c->default_class, sizeof c->default_class, value);
        if (IS("server", "listen"))
                return copy_str(c->listen, sizeof c->listen, value);
        if (IS("server", "max_body"))
                return parse_size(value, &c->max_body) == 0;
        if (IS("server", "max_connections"))
                return parse_uint(value, &c->max_connections);
        if (IS("server", "max_connections_per_ip"))
                return parse_uint(value, &c->max_connections_per_ip);
        if (IS("server", "idle_timeout"))
                return parse_uint(value, &c->idle_timeout);
        if (IS("server", "shutdown_timeout"))
                return parse_uint(value, &c->shutdown_timeout);
        if (IS("server", "header_timeout"))
                return parse_uint(value, &c->header_timeout) && c->header_timeout > 0;
        if (IS("server", "body_min_rate"))
                return parse_uint(value, &c->body_min_rate);
        if (IS("server", "body_rate_window"))
                return parse_uint(value, &c->body_rate_window) && c->body_rate_window > 0;
        if (IS("server", "metrics"))
                return (strcmp(value, "token") == 0 || strcmp(value, "loopback") == 0 ||
                        strcmp(value, "public") == 0) &&
                       copy_str(c->metrics_access, sizeof c->metrics_access, value);
        if (IS("server", "sandbox"))
                return parse_bool(value, &c->sandbox);
        if (IS("tls", "cert"))
                return copy_str(c->tls_cert, sizeof c->tls_cert, value);
        if (IS("tls", "key"))
                return copy_str(c->tls_key, sizeof c->tls_key, value);
        if (IS("keys", "master"))
                return copy_str(c->master_key, sizeof c->master_key, value);
        if (IS("keys", "pkcs11_path")) {
                if (c->n_pkcs11_path >= VAULT_MAX_PKCS11_PATHS || value[0] != '/')
                        return 0;
                return copy_str(c->pkcs11_path[c->n_pkcs11_path++], sizeof c->pkcs11_path[0], value);
        }
        if (IS("audit", "origin"))
                return copy_str(c->audit_origin, sizeof c->audit_origin, value);
        if (IS("audit", "stall_timeout"))
                return parse_uint(value, &c->stall_timeout) && c->stall_timeout > 0;
        if (IS("audit", "cosigned_checkpoints"))
                return parse_uint(value, &c->cosigned_checkpoints) && c->cosigned_checkpoints >= 1 &&
                       c->cosigned_checkpoints <= 1024;
        if (IS("seal", "enabled"))
                return parse_bool(value, &c->seal);
        if (IS("seal", "exempt_classes"))
                return copy_str(c->seal_exempt, sizeof c->seal_exempt, value);
        if (IS("tsa", "policy")) {
                ASN1_OBJECT *o = OBJ_txt2obj(value, 1);
                bool ok = o != NULL;
                ASN1_OBJECT_free(o);
                return ok && copy_str(c->tsa_policy, sizeof c->tsa_policy, value);
        }
        if (IS("tsa", "accuracy_ms"))
                return parse_uint(value, &c->tsa_accuracy_ms) && c->tsa_accuracy_ms >= 1 && c->tsa_accuracy_ms <= 60000;
        if (IS("tsa", "access"))
                return (strcmp(value, "token") == 0 || strcmp(value, "public") == 0) &&
                       copy_str(c->tsa_access, sizeof c->tsa_access, value);
        if (IS("tsa", "url"))
                return (strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0) &&
                       copy_str(c->tsa_url, sizeof c->tsa_url, value);
        if (IS("tsa", "username"))
                return copy_str(c->tsa_username, sizeof c->tsa_username, value);
        if (IS("tsa", "password_file"))
                return copy_str(c->tsa_password_file, sizeof c->tsa_password_file, value);
        if (IS("tsa", "ca_file"))
                return copy_str(c->tsa_ca_file, sizeof c->tsa_ca_file, value);
        if (IS("tsa", "retry_max"))
                return parse_uint(value, &c->tsa_retry_max) && c->tsa_retry_max >= 1 && c->tsa_retry_max <= 86400;
        if (IS("tsa", "timeout"))
                return parse_uint(value, &c->tsa_timeout) && c->tsa_timeout >= 1 && c->tsa_timeout <= 600;
        if (IS("audit", "checkpoint_timestamp_interval"))
                return parse_uint(value, &c->checkpoint_ts_interval) && c->checkpoint_ts_interval <= 3600;
        if (IS("audit", "witness")) {
                if (c->n_witness >= VAULT_MAX_WITNESSES)
                        return 0;
                return copy_str(c->witness[c->n_witness++], sizeof c->witness[0], value);
        }
        if (IS("auth", "argon2_memory"))
                return parse_size(value, &c->argon2_memory) == 0 && c->argon2_memory >= (UINT64_C(19) << 20) &&
                       c->argon2_memory <= (UINT64_C(4) << 30);
        if (IS("auth", "argon2_passes"))
                return parse_uint(value, &c->argon2_passes) && c->argon2_passes >= 2 && c->argon2_passes <= 100;
        if (IS("auth", "hash_slots"))
                return parse_uint(value, &c->hash_slots) && c->hash_slots >= 1 && c->hash_slots <= 1024;
        if (IS("auth", "session_idle"))
                return parse_uint(value, &c->session_idle) && c->session_idle >= 60;
        if (IS("auth", "session_lifetime"))
                return parse_uint(value, &c->session_lifetime) && c->session_lifetime >= 60;
        if (IS("auth", "hash_wait_ms"))
                return parse_uint(value, &c->hash_wait_ms) && c->hash_wait_ms <= 600000;
        if (IS("auth", "login_account_burst"))
                return parse_uint(value, &c->login_account_burst) && c->login_account_burst >= 1;
        if (IS("auth", "login_account_per_minute"))
                return parse_uint(value, &c->login_account_per_minute) && c->login_account_per_minute >= 1;
        if (IS("auth", "login_address_burst"))
                return parse_uint(value, &c->login_address_burst) && c->login_address_burst >= 1;
        if (IS("auth", "login_address_per_minute"))
                return parse_uint(value, &c->login_address_per_minute) && c->login_address_per_minute >= 1;
        if (IS("auth", "login_fail_free"))
                return parse_uint(value, &c->login_fail_free);
        if (IS("auth", "login_address_fail_free"))
                return parse_uint(value, &c->login_address_fail_free);
        if (IS("auth", "login_fail_delay_ms"))
                return parse_uint(value, &c->login_fail_delay_ms);
        if (IS("auth", "login_fail_delay_max_ms"))
                return parse_uint(value, &c->login_fail_delay_max_ms);
        if (IS("auth", "login_fail_window"))
                return parse_uint(value, &c->login_fail_window) && c->login_fail_window >= 1;
        if (IS("auth", "login_max_keys"))
                return parse_uint(value, &c->login_max_keys) && c->login_max_keys >= 16;
#undef IS
        if (strcmp(section, "backup") == 0)
                return 1; /* read by coffre backup (src/cli/cmd_backup.c) */
        log_warn("coffre.conf: unknown setting [%s] %s", section, name);
        return 1;
}

bool vault_config_seals_class(const struct vault_config *c, const char *class_) {
        size_t n = strlen(class_);

        if (!c->seal)
                return false;
        for (const char *p = c->seal_exempt; *p;) {
                while (*p == ' ' || *p == ',')
                        p++;
                const char *e = p;
                while (*e && *e != ',' && *e != ' ')
                        e++;
                if (e > p && (size_t) (e - p) == n && memcmp(p, class_, n) == 0)
                        return false;
                p = e;
        }
        return true;
}

int vault_config_load(const char *path, struct vault_config *c) {
        vault_config_defaults(c);
        int r = ini_parse(path, handler, c);
        if (r < 0)
                return -ENOENT;
        if (r > 0) {
                log_error("%s: invalid setting on line %d", path, r);
                return -EINVAL;
        }
        if (c->tsa_url[0] && !c->tsa_ca_file[0]) {
                log_error("%s: [tsa] url needs ca_file (the CA its tokens must chain to)", path);
                return -EINVAL;
        }
        if (c->tsa_username[0] && !c->tsa_password_file[0]) {
                log_error("%s: [tsa] username needs password_file", path);
                return -EINVAL;
        }
        if (c->login_fail_delay_max_ms < c->login_fail_delay_ms) {
                log_error("%s: [auth] login_fail_delay_max_ms is below login_fail_delay_ms", path);
                return -EINVAL;
        }
        if (!c->vault_id[0]) {
                log_error("%s: [vault] id is missing", path);
                return -EINVAL;
        }
        return 0;
}

int vault_config_write(const char *path, const struct vault_config *c) {
        _cleanup_buf_ struct buf b = {};
        buf_init(&b, 0);
        int r = buf_printf(&b,
                           "# coffre vault settings. Secrets never go here: only paths.\n"
                           "[vault]\nid = %s\ndefault_class = %s\n\n"
                           "[server]\nlisten = %s\nmax_body = %llu\nmax_connections = %u\n"
                           "max_connections_per_ip = %u\nidle_timeout = %u\nshutdown_timeout = %u\n"
                           "header_timeout = %u\nbody_min_rate = %u\nbody_rate_window = %u\n"
                           "# metrics = token (an admin token), loopback (127.0.0.0/8, ::1) or public\n"
                           "metrics = %s\n\n"
                           "[tls]\ncert = %s\nkey = %s\n\n"
                           "[keys]\nmaster = %s\n"
                           "# pkcs11_path = <directory the PKCS#11 module keeps its tokens in>, one line each\n",
                           c->vault_id, c->default_class, c->listen, (unsigned long long) c->max_body,
                           c->max_connections, c->max_connections_per_ip, c->idle_timeout, c->shutdown_timeout,
                           c->header_timeout, c->body_min_rate, c->body_rate_window, c->metrics_access, c->tls_cert,
                           c->tls_key, c->master_key);
        for (size_t i = 0; r >= 0 && i < c->n_pkcs11_path; i++)
                r = buf_printf(&b, "pkcs11_path = %s\n", c->pkcs11_path[i]);
        if (r >= 0)
                r = buf_printf(&b,
                               "\n[seal]\n# enabled = no stores documents without a seal; exempt_classes = a, b\n"
                               "enabled = %s\n\n"
                               "[tsa]\n# access = token (any valid token) or public\naccess = %s\naccuracy_ms = %u\n\n"
                               "[audit]\norigin = %s\n"
                               "# witness = <vkey of a witness whose cosignatures are accepted>, one line each\n",
                               c->seal ? "yes" : "no", c->tsa_access, c->tsa_accuracy_ms, c->audit_origin);
        for (size_t i = 0; r >= 0 && i < c->n_witness; i++)
                r = buf_printf(&b, "witness = %s\n", c->witness[i]);
        if (r < 0)
                return r;
        return write_file_atomic(path, b.data, b.len, 0600, 0);
}
