/*
 * The one RBAC table of the gateway (ADR 0028): which role may call which route
 * permission. Routes name their permission ("orders:read", cleave/http.h); a token names
 * its roles. Documented for users in docs/rbac.md, whose matrix the tests check.
 */
#include <string.h>

#include "auth.h"

typedef struct rbac_role {
    const char *name;
    /* Space-separated permissions; "*" is every permission. */
    const char *permissions;
    /* Allowed only on what the caller owns (cl_ctx.own_only): its accounts and orders. */
    bool own_only;
} rbac_role;

static const rbac_role roles[] = {
    /* No token: browsing the catalog. */
    {HOST_ROLE_ANONYMOUS, "catalog:read", false},
    /* Browse, and its own accounts and orders only. */
    {"customer", "catalog:read payments:read payments:write orders:read orders:write", true},
    /* Runs the shop: the catalog, stock, shipments, deposits; reads orders and accounts. */
    {"staff",
     "catalog:read catalog:write inventory:read inventory:write shipping:read shipping:write "
     "operations:read orders:read payments:read payments:deposit",
     false},
    /* Everything, users, clients and keys included. */
    {"admin", "*", false},
};

/* Whether the space-separated list has the word. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, " ");

        if (len == n && strncmp(p, word, n) == 0) {
            return true;
        }
        p += len;
        p += *p == ' ';
    }
    return false;
}

bool host_rbac_allows(const char *role, const char *permission, bool *own_only)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcmp(roles[i].name, role) != 0) {
            continue;
        }
        if (strcmp(roles[i].permissions, "*") == 0 || has_word(roles[i].permissions, permission)) {
            *own_only = roles[i].own_only;
            return true;
        }
        return false;
    }
    return false;
}

bool host_rbac_role_own_only(const char *role, bool *own_only)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcmp(roles[i].name, role) == 0) {
            *own_only = roles[i].own_only;
            return true;
        }
    }
    return false;
}
