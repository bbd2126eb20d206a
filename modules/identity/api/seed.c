/*
 * identity's demo data, created through module's operations as a caller would: one user
 * of each role and the first-party demo client. The passwords are documented (README):
 * they are for `make run` on a laptop, never for a deployment.
 */
#include <string.h>

#include "api.h"

static const identity_user_request demo_users[] = {
    {.username = "alice", .password = "alice-customer-pw", .role = "customer"},
    {.username = "bob", .password = "bob-customer-pw", .role = "customer"},
    {.username = "sam", .password = "sam-staff-pw", .role = "staff"},
    {.username = "ada", .password = "ada-admin-pw", .role = "admin"},
};

cl_status identity_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts,
                        int *created)
{
    static const char *const grants[] = {"password", "refresh_token"};
    identity_client_request demo = {.client_id = "cleave-demo",
                                    .client_secret = "cleave-demo-secret-for-make-run-only",
                                    .grants = {.v = (char **)grants, .n = 2, .set = true},
                                    .audience = "cleave"};
    identity_client client = {0};
    cl_status rc;

    (void)opts; /* the same users and client whatever the catalog's size */
    *created = 0;
    for (size_t i = 0; i < sizeof(demo_users) / sizeof(demo_users[0]); i++) {
        identity_user u = {0};

        rc = identity_add_user(module, ctx, &demo_users[i], &u);
        cl_schema_free(&identity_user_type, &u);
        if (rc == CL_CONFLICT) {
            /* Seeded before: seed only ever adds to an empty module. */
            return CL_OK;
        }
        if (rc != CL_OK) {
            return rc;
        }
        (*created)++;
    }
    rc = identity_add_client(module, ctx, &demo, &client);
    if (rc == CL_OK) {
        (*created)++;
    }
    cl_schema_free(&identity_client_type, &client);
    return rc;
}
