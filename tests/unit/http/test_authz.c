/* test_authz.c: the permission table: every route of the API has an entry, anything unknown is
 * refused, and the credentials with narrow rights (witness tokens, the bootstrap token,
 * enrol-only sessions) reach exactly what docs/security.md says. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "http/authz.h"

static struct vault_actor actor(const char *role, enum vault_credential cred, uint32_t scopes) {
        struct vault_actor a = { .credential = cred, .scopes = scopes };
        snprintf(a.role, sizeof a.role, "%s", role);
        snprintf(a.org_id, sizeof a.org_id, "0123456789abcdef0123456789abcdef");
        snprintf(a.actor_id, sizeof a.actor_id, "fedcba9876543210fedcba9876543210");
        return a;
}

static bool allowed(const char *route, const struct vault_actor *a) {
        int r = authz_check_name(route, a);
        assert_true(r == 0 || r == -EPERM);
        return r == 0;
}

static bool in(const char *name, const char *const *set, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(name, set[i]) == 0)
                        return true;
        return false;
}

/* Every route the server answers has a rule, public in both places or in neither. */
static void test_every_route_has_a_rule(void **state) {
        (void) state;
        assert_true(api_routes_count >= 10);
        for (size_t i = 0; i < api_routes_count; i++) {
                const struct authz_rule *rule = authz_rule_find(api_routes[i].name);
                if (!rule)
                        fail_msg("route %s (%s %s) has no entry in the permission table (src/http/authz.c)",
                                 api_routes[i].name, api_routes[i].method, api_routes[i].pattern);
                if (rule->public_ != api_routes[i].public_)
                        fail_msg("route %s is %spublic in routes.c but %spublic in the permission table",
                                 api_routes[i].name, api_routes[i].public_ ? "" : "not ", rule->public_ ? "" : "not ");
        }
}

/* No rule outlives its route (test-only routes exist only in a -Dtest_hooks=true build). */
static void test_every_rule_has_a_route(void **state) {
        (void) state;
        for (size_t i = 0; i < authz_rules_count; i++) {
                bool found = false;
                for (size_t k = 0; k < api_routes_count && !found; k++)
                        found = strcmp(api_routes[k].name, authz_rules[i].route) == 0;
                if (!found && !authz_rules[i].test_only)
                        fail_msg("the permission table has a rule for %s, which src/api/routes.c does not route",
                                 authz_rules[i].route);
        }
}

/* Each rule is complete, and names its route once. */
static void test_rules_are_well_formed(void **state) {
        (void) state;
        for (size_t i = 0; i < authz_rules_count; i++) {
                const struct authz_rule *rule = &authz_rules[i];
                for (size_t k = i + 1; k < authz_rules_count; k++)
                        if (strcmp(rule->route, authz_rules[k].route) == 0)
                                fail_msg("%s has two entries", rule->route);
                if (rule->public_) {
                        assert_int_equal(rule->roles | rule->scopes | rule->creds, 0);
                        continue;
                }
                if (!rule->roles || !rule->creds)
                        fail_msg("%s admits no role or no credential", rule->route);
                if ((rule->creds & AUTHZ_CRED_TOKEN) && !rule->scopes)
                        fail_msg("%s admits tokens but names no scope", rule->route);
                if (!(rule->creds & AUTHZ_CRED_TOKEN) && rule->scopes)
                        fail_msg("%s names a scope but admits no token", rule->route);
        }
}

/* In doubt, no: unknown routes, roles, credentials and a missing caller are refused. */
static void test_fail_closed(void **state) {
        (void) state;
        struct vault_actor owner = actor("owner", VAULT_CRED_SESSION, VAULT_SCOPE_ALL);

        assert_int_equal(authz_check_name("documents.list", &owner), 0);
        assert_int_equal(authz_check_name("documents.nonesuch", &owner), -EPERM);
        assert_int_equal(authz_check_name("", &owner), -EPERM);
        assert_int_equal(authz_check_name(NULL, &owner), -EPERM);
        assert_int_equal(authz_check_name("documents.list", NULL), -EPERM);

        struct http_route unknown = { "GET", "/v1/new", "new.thing", .begin = NULL };
        assert_int_equal(authz_check(&unknown, &owner), -EPERM);
        assert_int_equal(authz_check(NULL, &owner), -EPERM);
        /* a route public in routes.c but not in the table is refused too */
        struct http_route sneaky = { "GET", "/v1/documents", "documents.list", .public_ = true };
        assert_int_equal(authz_check(&sneaky, NULL), -EPERM);
        struct http_route healthz = { "GET", "/healthz", "healthz", .public_ = true };
        assert_int_equal(authz_check(&healthz, NULL), 0);

        struct vault_actor a = actor("superuser", VAULT_CRED_SESSION, VAULT_SCOPE_ALL);
        assert_int_equal(authz_check_name("documents.list", &a), -EPERM);
        a = actor("", VAULT_CRED_SESSION, VAULT_SCOPE_ALL);
        assert_int_equal(authz_check_name("documents.list", &a), -EPERM);
        a = actor("Owner", VAULT_CRED_SESSION, VAULT_SCOPE_ALL);
        assert_int_equal(authz_check_name("documents.list", &a), -EPERM);
        a = actor("owner", (enum vault_credential) 17, VAULT_SCOPE_ALL);
        assert_int_equal(authz_check_name("documents.list", &a), -EPERM);
        a = actor("owner", (enum vault_credential) - 1, VAULT_SCOPE_ALL);
        assert_int_equal(authz_check_name("documents.list", &a), -EPERM);
        /* a token without scopes reaches nothing */
        a = actor("owner", VAULT_CRED_TOKEN, 0);
        for (size_t i = 0; i < authz_rules_count; i++)
                if (!authz_rules[i].public_)
                        assert_false(allowed(authz_rules[i].route, &a));
}

/* A token holding only the witness scope reaches the log's public parts (checkpoints and their
 * timestamps, key, proofs, tiles) and cosignatures. */
static void test_witness_scope(void **state) {
        (void) state;
        static const char *const witness_routes[] = {
                "audit.checkpoint",      "audit.checkpoint_timestamp", "audit.cosignature", "audit.verifier_key",
                "audit.proof.inclusion", "audit.proof.consistency",    "audit.tile",
        };
        for (unsigned ri = 0; ri < AUTHZ_N_ROLES; ri++) {
                const char *role = authz_role_name(ri);
                struct vault_actor w = actor(role, VAULT_CRED_TOKEN, VAULT_SCOPE_WITNESS);
                for (size_t i = 0; i < authz_rules_count; i++) {
                        const struct authz_rule *rule = &authz_rules[i];
                        if (rule->public_)
                                continue;
                        bool ok = allowed(rule->route, &w);
                        if (ok && !in(rule->route, witness_routes, ELEMENTSOF(witness_routes)))
                                fail_msg("a witness token (creator's role: %s) reaches %s", role, rule->route);
                }
        }
        struct vault_actor w = actor("owner", VAULT_CRED_TOKEN, VAULT_SCOPE_WITNESS);
        for (size_t i = 0; i < ELEMENTSOF(witness_routes); i++)
                if (!allowed(witness_routes[i], &w))
                        fail_msg("an owner's witness token cannot reach %s", witness_routes[i]);
        /* the entries themselves are not the witness's business */
        assert_false(allowed("audit.entries", &w));
        assert_false(allowed("documents.audit", &w));
}

/* The bootstrap token of coffre init reaches users.create and nothing else. */
static void test_bootstrap(void **state) {
        (void) state;
        static const char *const roles[] = { "", "admin", "owner", "operator" };
        for (size_t ri = 0; ri < ELEMENTSOF(roles); ri++) {
                struct vault_actor b = actor(roles[ri], VAULT_CRED_BOOTSTRAP, VAULT_SCOPE_ALL);
                for (size_t i = 0; i < authz_rules_count; i++) {
                        const struct authz_rule *rule = &authz_rules[i];
                        bool want = rule->public_ || strcmp(rule->route, "users.create") == 0;
                        if (allowed(rule->route, &b) != want)
                                fail_msg("the bootstrap token %s %s", want ? "cannot reach" : "reaches", rule->route);
                }
        }
}

/* A session that must enrol its second factor first reaches the enrolment and logout only. */
static void test_enrol_only(void **state) {
        (void) state;
        static const char *const enrol_routes[] = { "totp.enroll", "totp.confirm", "auth.logout" };
        for (unsigned ri = 0; ri < AUTHZ_N_ROLES; ri++) {
                struct vault_actor e = actor(authz_role_name(ri), VAULT_CRED_ENROL, VAULT_SCOPE_ALL);
                for (size_t i = 0; i < authz_rules_count; i++) {
                        const struct authz_rule *rule = &authz_rules[i];
                        bool want = rule->public_ || in(rule->route, enrol_routes, ELEMENTSOF(enrol_routes));
                        if (allowed(rule->route, &e) != want)
                                fail_msg("an enrol-only session of %s %s %s", authz_role_name(ri),
                                         want ? "cannot reach" : "reaches", rule->route);
                }
        }
}

/* The roles of issue 9, route by route, for a session (all of the user's rights). */
static void test_roles(void **state) {
        (void) state;
        struct {
                const char *role;
                const char *yes[12];
                const char *no[16];
        } cases[] = {
                { "operator",
                  { "orgs.create", "orgs.list", "orgs.get", "orgs.update", "users.me", "tokens.create",
                    "audit.checkpoint" },
                  { "documents.create", "documents.list", "documents.get", "documents.content", "documents.delete",
                    "documents.audit", "users.list", "users.get", "users.delete", "audit.entries" } },
                { "auditor",
                  { "documents.list", "documents.get", "documents.audit", "audit.entries", "audit.tile", "users.me" },
                  { "documents.content", "documents.create", "documents.delete", "users.list", "users.create",
                    "orgs.update", "orgs.create", "audit.cosignature" } },
                { "viewer",
                  { "documents.list", "documents.get", "documents.content", "users.me", "users.password" },
                  { "documents.create", "documents.delete", "documents.audit", "audit.entries", "users.list",
                    "orgs.get", "orgs.list" } },
                { "accountant",
                  { "documents.create", "documents.list", "documents.get", "documents.content" },
                  { "documents.delete", "documents.audit", "audit.entries", "users.create", "users.update",
                    "orgs.update" } },
                { "admin",
                  { "documents.create", "documents.delete", "documents.audit", "users.create", "users.update",
                    "users.delete", "tokens.create", "tokens.delete", "orgs.get", "orgs.update", "audit.entries" },
                  { "orgs.create" } },
                { "owner",
                  { "documents.create", "documents.content", "documents.delete", "users.create", "users.list",
                    "tokens.list", "orgs.list", "orgs.update", "audit.cosignature" },
                  { "orgs.create" } },
        };
        for (size_t c = 0; c < ELEMENTSOF(cases); c++) {
                struct vault_actor s = actor(cases[c].role, VAULT_CRED_SESSION, VAULT_SCOPE_ALL);
                for (size_t i = 0; i < ELEMENTSOF(cases[c].yes) && cases[c].yes[i]; i++)
                        if (!allowed(cases[c].yes[i], &s))
                                fail_msg("%s cannot reach %s", cases[c].role, cases[c].yes[i]);
                for (size_t i = 0; i < ELEMENTSOF(cases[c].no) && cases[c].no[i]; i++)
                        if (allowed(cases[c].no[i], &s))
                                fail_msg("%s reaches %s", cases[c].role, cases[c].no[i]);
        }
        /* the operator reaches no document route with any credential */
        for (enum vault_credential cr = VAULT_CRED_TOKEN; cr <= VAULT_CRED_ENROL; cr++) {
                struct vault_actor op = actor("operator", cr, VAULT_SCOPE_ALL);
                for (size_t i = 0; i < authz_rules_count; i++)
                        if (strncmp(authz_rules[i].route, "documents.", 10) == 0)
                                assert_false(allowed(authz_rules[i].route, &op));
        }
}

/* A token reaches what its scopes and its creator's role both allow, and nothing that needs a
 * session (password, second factor, minting tokens, logout). */
static void test_token_scopes(void **state) {
        (void) state;
        struct vault_actor r = actor("owner", VAULT_CRED_TOKEN, VAULT_SCOPE_DOCUMENTS_READ);
        assert_true(allowed("documents.list", &r));
        assert_true(allowed("documents.content", &r));
        assert_true(allowed("users.me", &r));
        assert_false(allowed("documents.create", &r));
        assert_false(allowed("documents.delete", &r));
        assert_false(allowed("audit.entries", &r));
        assert_false(allowed("users.list", &r));
        /* the log's public parts take any scope: proofs of the documents it reads */
        assert_true(allowed("audit.checkpoint", &r));
        assert_true(allowed("audit.proof.inclusion", &r));
        assert_false(allowed("audit.cosignature", &r));

        struct vault_actor w = actor("accountant", VAULT_CRED_TOKEN, VAULT_SCOPE_DOCUMENTS_WRITE);
        assert_true(allowed("documents.create", &w));
        assert_false(allowed("documents.list", &w));
        assert_false(allowed("documents.delete", &w)); /* the scope does not lift the role */

        struct vault_actor all = actor("viewer", VAULT_CRED_TOKEN, VAULT_SCOPE_ALL);
        assert_false(allowed("documents.create", &all));
        assert_true(allowed("documents.content", &all));

        struct vault_actor acc = actor("admin", VAULT_CRED_TOKEN, VAULT_SCOPE_ALL);
        static const char *const session_only[] = { "users.password", "totp.enroll", "totp.confirm",   "totp.disable",
                                                    "tokens.create",  "auth.logout", "auth.logout_all" };
        for (size_t i = 0; i < ELEMENTSOF(session_only); i++) {
                assert_false(allowed(session_only[i], &acc));
                struct vault_actor s = actor("admin", VAULT_CRED_SESSION, 0);
                assert_true(allowed(session_only[i], &s));
        }
        assert_true(allowed("users.list", &acc));
        assert_true(allowed("tokens.delete", &acc));
}

/* The JSON rendering lists every route with its rule, for the matrix test. */
static void test_render(void **state) {
        (void) state;
        struct buf b;
        buf_init(&b, 1 << 20);
        assert_int_equal(authz_render_json(api_routes, api_routes_count, &b), 0);
        json_error_t err;
        json_t *doc = json_loadb((const char *) b.data, b.len, 0, &err);
        assert_non_null(doc);
        json_t *routes = json_object_get(doc, "routes");
        assert_int_equal(json_array_size(routes), api_routes_count);
        json_decref(doc);
        buf_clear(&b);
        assert_int_equal(authz_render_markdown(api_routes, api_routes_count, &b), 0);
        const char *md = buf_str(&b);
        assert_non_null(strstr(
                md,
                "| `documents.content` | `GET /v1/documents/{id}/content` | owner, admin, accountant, viewer | documents:read | token, session |\n"));
        assert_null(strstr(md, "test.open"));
        buf_free(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_route_has_a_rule),
                cmocka_unit_test(test_every_rule_has_a_route),
                cmocka_unit_test(test_rules_are_well_formed),
                cmocka_unit_test(test_fail_closed),
                cmocka_unit_test(test_witness_scope),
                cmocka_unit_test(test_bootstrap),
                cmocka_unit_test(test_enrol_only),
                cmocka_unit_test(test_roles),
                cmocka_unit_test(test_token_scopes),
                cmocka_unit_test(test_render),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
