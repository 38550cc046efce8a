/* authz.c: the permission table (route name -> roles, token scope, credentials), its check,
 * and its renderings for docs/security.md and for the tests. The table is the only place that
 * says who may call a route; server.c asks it before any handler runs. */
#include "authz.h"

#include <errno.h>
#include <string.h>

#include <jansson.h>

#define O AUTHZ_ROLE_OWNER
#define A AUTHZ_ROLE_ADMIN
#define C AUTHZ_ROLE_ACCOUNTANT
#define V AUTHZ_ROLE_VIEWER
#define U AUTHZ_ROLE_AUDITOR
#define P AUTHZ_ROLE_OPERATOR

#define TOK AUTHZ_CRED_TOKEN
#define SES AUTHZ_CRED_SESSION
#define ENR AUTHZ_CRED_ENROL
#define BOOT AUTHZ_CRED_BOOTSTRAP

#define S_DR VAULT_SCOPE_DOCUMENTS_READ
#define S_DW VAULT_SCOPE_DOCUMENTS_WRITE
#define S_AR VAULT_SCOPE_AUDIT_READ
#define S_W VAULT_SCOPE_WITNESS
#define S_ACC VAULT_SCOPE_ACCOUNTS

/* Who may do what (docs/security.md explains the choices):
 * - accountant reads and writes documents, viewer reads them, auditor sees their metadata and
 *   the audit log but no content; only owner and admin delete (retention still applies);
 * - owner and admin also manage users, the organisation's tokens and its settings; everyone
 *   may hold tokens of their own, scoped within their own rights (accounts.c checks that);
 * - operator manages organisations, creates the first user of one, and reaches no document
 *   route at all;
 * - the log's public parts (checkpoint, key, proofs, hash tiles) are open to every role and to
 *   a token of any scope, and are all a token of the witness scope alone can reach (with
 *   posting cosignatures), and so are the checkpoints' timestamps;
 * - a document's seal (CAdES) is read by whoever reads its metadata: it holds the content's
 *   digest, not the content, and checking it is an auditor's work too; its evidence bundle
 *   holds the content itself, so it is read by those who read the content (not the auditor);
 * - the time-stamping authority (tsa.*) is public here: [tsa] access decides in its handler
 *   (api/tsa.c), "public" or "token", any API token or login session, of any role or scope;
 * - a password, a second factor and sessions are changed through a session only, never with
 *   an API token; tokens are minted from a session only;
 * - an enrol-only session reaches the TOTP enrolment and logout; the bootstrap token reaches
 *   users.create alone (the handler limits it to the first owner and the operator). */
const struct authz_rule authz_rules[] = {
        { "healthz", .public_ = true },
        { "metrics", .public_ = true }, /* [server] metrics decides, in the handler */
        { "openapi", .public_ = true },
        { "ui.index", .public_ = true }, /* the web interface's static files */
        { "ui.file", .public_ = true },
        { "auth.login", .public_ = true },
        { "auth.logout", .roles = AUTHZ_ROLES_ALL, .creds = SES | ENR },
        { "auth.logout_all", .roles = AUTHZ_ROLES_ALL, .creds = SES },

        { "documents.create", .roles = O | A | C, .scopes = S_DW, .creds = TOK | SES },
        { "documents.list", .roles = O | A | C | V | U, .scopes = S_DR, .creds = TOK | SES },
        { "documents.get", .roles = O | A | C | V | U, .scopes = S_DR, .creds = TOK | SES },
        { "documents.content", .roles = O | A | C | V, .scopes = S_DR, .creds = TOK | SES },
        { "documents.delete", .roles = O | A, .scopes = S_DW, .creds = TOK | SES },
        { "documents.audit", .roles = O | A | U, .scopes = S_AR, .creds = TOK | SES },
        { "documents.seal", .roles = O | A | C | V | U, .scopes = S_DR, .creds = TOK | SES },
        { "documents.evidence", .roles = O | A | C | V, .scopes = S_DR, .creds = TOK | SES },
        /* retention and legal holds: owner and admin act (an early deletion under a governance
         * lock is the owner's alone, in core/lifecycle.c); the auditor sees the active holds */
        { "documents.update", .roles = O | A, .scopes = S_DW, .creds = TOK | SES },
        { "holds.create", .roles = O | A, .scopes = S_DW, .creds = TOK | SES },
        { "holds.delete", .roles = O | A, .scopes = S_DW, .creds = TOK | SES },
        { "holds.create_many", .roles = O | A, .scopes = S_DW, .creds = TOK | SES },
        { "holds.list", .roles = O | A | U, .scopes = S_DR, .creds = TOK | SES },

        { "tsa.timestamp", .public_ = true }, /* [tsa] access decides, in the handler */
        { "tsa.certificate", .public_ = true },

        { "audit.checkpoint", .roles = AUTHZ_ROLES_ALL, .scopes = VAULT_SCOPE_ALL, .creds = TOK | SES },
        { "audit.checkpoint_timestamp", .roles = AUTHZ_ROLES_ALL, .scopes = VAULT_SCOPE_ALL, .creds = TOK | SES },
        { "audit.cosignature", .roles = O | A | P, .scopes = S_W, .creds = TOK | SES },
        { "audit.verifier_key", .roles = AUTHZ_ROLES_ALL, .scopes = VAULT_SCOPE_ALL, .creds = TOK | SES },
        { "audit.proof.inclusion", .roles = AUTHZ_ROLES_ALL, .scopes = VAULT_SCOPE_ALL, .creds = TOK | SES },
        { "audit.proof.consistency", .roles = AUTHZ_ROLES_ALL, .scopes = VAULT_SCOPE_ALL, .creds = TOK | SES },
        /* a tile of entries (level "entries") also needs audit.entries' rule: see api/audit.c */
        { "audit.tile", .roles = AUTHZ_ROLES_ALL, .scopes = VAULT_SCOPE_ALL, .creds = TOK | SES },
        { "audit.entries", .roles = O | A | U, .scopes = S_AR, .creds = TOK | SES },

        { "users.create", .roles = O | A | P, .scopes = S_ACC, .creds = TOK | SES | BOOT },
        { "users.list", .roles = O | A, .scopes = S_ACC, .creds = TOK | SES },
        { "users.me", .roles = AUTHZ_ROLES_ALL, .scopes = S_DR | S_DW | S_AR | S_ACC, .creds = TOK | SES },
        { "users.password", .roles = AUTHZ_ROLES_ALL, .creds = SES },
        { "users.get", .roles = O | A, .scopes = S_ACC, .creds = TOK | SES },
        { "users.update", .roles = O | A, .scopes = S_ACC, .creds = TOK | SES },
        { "users.delete", .roles = O | A, .scopes = S_ACC, .creds = TOK | SES },

        { "totp.enroll", .roles = AUTHZ_ROLES_ALL, .creds = SES | ENR },
        { "totp.confirm", .roles = AUTHZ_ROLES_ALL, .creds = SES | ENR },
        { "totp.disable", .roles = AUTHZ_ROLES_ALL, .creds = SES },

        { "tokens.create", .roles = AUTHZ_ROLES_ALL, .creds = SES },
        { "tokens.list", .roles = AUTHZ_ROLES_ALL, .scopes = S_ACC, .creds = TOK | SES },
        { "tokens.delete", .roles = AUTHZ_ROLES_ALL, .scopes = S_ACC, .creds = TOK | SES },

        { "orgs.create", .roles = P, .scopes = S_ACC, .creds = TOK | SES },
        { "orgs.list", .roles = O | A | P, .scopes = S_ACC, .creds = TOK | SES },
        { "orgs.get", .roles = O | A | P, .scopes = S_ACC, .creds = TOK | SES },
        { "orgs.update", .roles = O | A | P, .scopes = S_ACC, .creds = TOK | SES },

        /* sandbox probes of a -Dtest_hooks=true build (src/api/testhook.c) */
        { "test.clock", .public_ = true, .test_only = true },
        { "test.open", .test_only = true, .roles = O | A, .scopes = S_DR | S_DW | S_AR | S_ACC, .creds = TOK | SES },
        { "test.syscall", .test_only = true, .roles = O | A, .scopes = S_DR | S_DW | S_AR | S_ACC, .creds = TOK | SES },
};
const size_t authz_rules_count = ELEMENTSOF(authz_rules);

static const char *const role_names[AUTHZ_N_ROLES] = {
        "owner", "admin", "accountant", "viewer", "auditor", "operator"
};

static const struct {
        uint32_t bit;
        const char *name;
} scope_names[] = {
        { VAULT_SCOPE_DOCUMENTS_READ, "documents:read" },
        { VAULT_SCOPE_DOCUMENTS_WRITE, "documents:write" },
        { VAULT_SCOPE_AUDIT_READ, "audit:read" },
        { VAULT_SCOPE_WITNESS, "witness" },
        { VAULT_SCOPE_ACCOUNTS, "accounts" },
};

static const struct {
        uint32_t bit;
        const char *name; /* in the JSON rendering */
        const char *text; /* in docs/security.md */
} cred_names[] = {
        { AUTHZ_CRED_TOKEN, "token", "token" },
        { AUTHZ_CRED_SESSION, "session", "session" },
        { AUTHZ_CRED_ENROL, "enrol", "enrol-only session" },
        { AUTHZ_CRED_BOOTSTRAP, "bootstrap", "bootstrap token" },
};

const char *authz_role_name(unsigned i) {
        return i < AUTHZ_N_ROLES ? role_names[i] : NULL;
}

uint32_t authz_role_bit(const char *role) {
        for (unsigned i = 0; role && i < AUTHZ_N_ROLES; i++)
                if (strcmp(role, role_names[i]) == 0)
                        return 1u << i;
        return 0;
}

const struct authz_rule *authz_rule_find(const char *route_name) {
        for (size_t i = 0; route_name && i < authz_rules_count; i++)
                if (strcmp(authz_rules[i].route, route_name) == 0)
                        return &authz_rules[i];
        return NULL;
}

int authz_check_name(const char *route_name, const struct vault_actor *a) {
        const struct authz_rule *rule = authz_rule_find(route_name);

        if (!rule)
                return -EPERM; /* fail closed: a route nobody wrote a rule for is nobody's */
        if (rule->public_)
                return 0;
        if (!a || (unsigned) a->credential > VAULT_CRED_BOOTSTRAP)
                return -EPERM;
        uint32_t cred = 1u << a->credential;
        if (!(rule->creds & cred))
                return -EPERM;
        /* the bootstrap token has no role of its own: users.create limits what it creates */
        if (cred == AUTHZ_CRED_BOOTSTRAP)
                return 0;
        if (!(rule->roles & authz_role_bit(a->role)))
                return -EPERM;
        if (cred == AUTHZ_CRED_TOKEN && !(rule->scopes & a->scopes))
                return -EPERM;
        return 0;
}

int authz_check(const struct http_route *route, const struct vault_actor *a) {
        if (!route)
                return -EPERM;
        if (route->public_) {
                /* a public route must say so in the table too, or the two disagree: refuse */
                const struct authz_rule *rule = authz_rule_find(route->name);
                return rule && rule->public_ ? 0 : -EPERM;
        }
        return authz_check_name(route->name, a);
}

/* ---- renderings ---- */

static const struct http_route *first_route(const struct http_route *routes, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(routes[i].name, name) == 0)
                        return &routes[i];
        return NULL;
}

static int append_list(struct buf *out, uint32_t bits, bool roles) {
        bool first = true;
        size_t n = roles ? AUTHZ_N_ROLES : ELEMENTSOF(scope_names);

        for (size_t i = 0; i < n; i++) {
                uint32_t bit = roles ? 1u << i : scope_names[i].bit;
                if (!(bits & bit))
                        continue;
                int r = buf_printf(out, "%s%s", first ? "" : ", ", roles ? role_names[i] : scope_names[i].name);
                if (r < 0)
                        return r;
                first = false;
        }
        return first ? buf_append_str(out, "—") : 0;
}

int authz_render_markdown(const struct http_route *routes, size_t n_routes, struct buf *out) {
        int r = buf_append_str(out, "| route | call | roles | a token needs one of | credentials |\n"
                                    "|---|---|---|---|---|\n");
        for (size_t i = 0; r >= 0 && i < authz_rules_count; i++) {
                const struct authz_rule *rule = &authz_rules[i];
                if (rule->test_only)
                        continue;
                const struct http_route *rt = first_route(routes, n_routes, rule->route);
                r = rt ? buf_printf(out, "| `%s` | `%s %s` | ", rule->route, rt->method, rt->pattern)
                       : buf_printf(out, "| `%s` | — | ", rule->route);
                if (r < 0)
                        break;
                if (rule->public_) {
                        r = buf_append_str(out, "public | — | none |\n");
                        continue;
                }
                r = rule->roles == AUTHZ_ROLES_ALL ? buf_append_str(out, "all") : append_list(out, rule->roles, true);
                if (r >= 0)
                        r = buf_append_str(out, " | ");
                if (r >= 0)
                        r = !(rule->creds & AUTHZ_CRED_TOKEN) ? buf_append_str(out, "(no token)")
                            : rule->scopes == VAULT_SCOPE_ALL ? buf_append_str(out, "any")
                                                              : append_list(out, rule->scopes, false);
                if (r >= 0)
                        r = buf_append_str(out, " | ");
                bool first = true;
                for (size_t k = 0; r >= 0 && k < ELEMENTSOF(cred_names); k++)
                        if (rule->creds & cred_names[k].bit) {
                                r = buf_printf(out, "%s%s", first ? "" : ", ", cred_names[k].text);
                                first = false;
                        }
                if (r >= 0)
                        r = buf_append_str(out, " |\n");
        }
        return r < 0 ? r : 0;
}

static json_t *names_json(uint32_t bits, bool roles) {
        json_t *a = json_array();
        size_t n = roles ? AUTHZ_N_ROLES : ELEMENTSOF(scope_names);
        for (size_t i = 0; a && i < n; i++) {
                uint32_t bit = roles ? 1u << i : scope_names[i].bit;
                if ((bits & bit) &&
                    json_array_append_new(a, json_string(roles ? role_names[i] : scope_names[i].name)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

static json_t *rule_json(const struct authz_rule *rule) {
        json_t *creds = json_array();
        for (size_t k = 0; creds && k < ELEMENTSOF(cred_names); k++)
                if ((rule->creds & cred_names[k].bit) &&
                    json_array_append_new(creds, json_string(cred_names[k].name)) < 0) {
                        json_decref(creds);
                        creds = NULL;
                }
        if (!creds)
                return NULL;
        return json_pack("{s:b,s:b,s:o*,s:o*,s:o}", "public", rule->public_, "test_only", rule->test_only, "roles",
                         names_json(rule->roles, true), "scopes", names_json(rule->scopes, false), "credentials",
                         creds);
}

int authz_render_json(const struct http_route *routes, size_t n_routes, struct buf *out) {
        _cleanup_(json_decrefp) json_t *arr = json_array();
        if (!arr)
                return -ENOMEM;
        for (size_t i = 0; i < n_routes; i++) {
                const struct authz_rule *rule = authz_rule_find(routes[i].name);
                json_t *rj = rule ? rule_json(rule) : json_null();
                json_t *o = rj ? json_pack("{s:s,s:s,s:s,s:b,s:o}", "name", routes[i].name, "method", routes[i].method,
                                           "pattern", routes[i].pattern, "public", routes[i].public_, "rule", rj)
                               : NULL;
                if (!o || json_array_append_new(arr, o) < 0)
                        return -ENOMEM;
        }
        _cleanup_(json_decrefp) json_t *doc =
                json_pack("{s:O,s:o,s:o}", "routes", arr, "roles", names_json(AUTHZ_ROLES_ALL, true), "scopes",
                          names_json(VAULT_SCOPE_ALL, false));
        if (!doc)
                return -ENOMEM;
        _cleanup_free_ char *s = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        if (!s)
                return -ENOMEM;
        int r = buf_append_str(out, s);
        if (r >= 0)
                r = buf_append_str(out, "\n");
        return r < 0 ? r : 0;
}
