/* authz.h: the permission table: for each route name, the roles that may call it, the token
 * scope it needs and the credentials that may use it. Checked in one place (server.c) after
 * authentication and before any handler; a route without an entry is refused. Handlers keep the
 * object-level rules (another organisation's id is 404, who may grant which role). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "core/vault.h"
#include "http.h"
#include "macro.h"

/* Roles, as bits */
#define AUTHZ_ROLE_OWNER (1u << 0)
#define AUTHZ_ROLE_ADMIN (1u << 1)
#define AUTHZ_ROLE_ACCOUNTANT (1u << 2)
#define AUTHZ_ROLE_VIEWER (1u << 3)
#define AUTHZ_ROLE_AUDITOR (1u << 4)
#define AUTHZ_ROLE_OPERATOR (1u << 5)
#define AUTHZ_ROLES_ORG \
        (AUTHZ_ROLE_OWNER | AUTHZ_ROLE_ADMIN | AUTHZ_ROLE_ACCOUNTANT | AUTHZ_ROLE_VIEWER | AUTHZ_ROLE_AUDITOR)
#define AUTHZ_ROLES_ALL (AUTHZ_ROLES_ORG | AUTHZ_ROLE_OPERATOR)
#define AUTHZ_N_ROLES 6u

/* Credentials, as bits (1 << enum vault_credential) */
#define AUTHZ_CRED_TOKEN (1u << VAULT_CRED_TOKEN)
#define AUTHZ_CRED_SESSION (1u << VAULT_CRED_SESSION)
#define AUTHZ_CRED_ENROL (1u << VAULT_CRED_ENROL)
#define AUTHZ_CRED_BOOTSTRAP (1u << VAULT_CRED_BOOTSTRAP)

struct authz_rule {
        const char *route; /* the route's name in src/api/routes.c */
        bool public_;      /* no credential at all (the handler may check one itself, as /metrics does) */
        bool test_only;    /* a probe of a -Dtest_hooks=true build: not part of the API nor of the docs */
        uint32_t roles;    /* AUTHZ_ROLE_*: the caller's role (for tokens and sessions) must be one */
        uint32_t scopes;   /* VAULT_SCOPE_*: an API token must hold at least one of them */
        uint32_t creds;    /* AUTHZ_CRED_*: the credentials that may call it */
};

/* The table, in the order docs/security.md shows it. */
extern const struct authz_rule authz_rules[];
extern const size_t authz_rules_count;

/* The rule of a route name, or NULL when the table has none. */
const struct authz_rule *authz_rule_find(const char *route_name);
/* AUTHZ_ROLE_* bit of a role name; 0 for an unknown one. */
uint32_t authz_role_bit(const char *role);
const char *authz_role_name(unsigned i); /* i < AUTHZ_N_ROLES, in bit order */

/* 0 when actor a may call the route of this name, -EPERM otherwise: no entry in the table,
 * an unknown role or credential, a role, credential or token scope the entry does not admit.
 * Public routes answer 0 whatever a is (NULL included). */
int authz_check_name(const char *route_name, const struct vault_actor *a) _warn_unused_;
int authz_check(const struct http_route *route, const struct vault_actor *a) _warn_unused_;

/* The table as docs/security.md shows it (a Markdown table, test-only routes left out), or as
 * JSON for tests: every route of routes[] with its rule (null when it has none). */
int authz_render_markdown(const struct http_route *routes, size_t n_routes, struct buf *out) _warn_unused_;
int authz_render_json(const struct http_route *routes, size_t n_routes, struct buf *out) _warn_unused_;
