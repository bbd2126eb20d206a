/* Shared pieces of the module model: common types, operation lookup, default hooks. */
#include "cleave/module.h"

#include <string.h>

CL_TYPE_DEFINE(cl_money, CL_MONEY)

/* cl_empty has no fields: its storage byte exists only because C has no empty structs. */
const cl_type cl_empty_type = {"cl_empty", sizeof(cl_empty), NULL, 0};

const cl_op *cl_op_find(const cl_op *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].name, name) == 0) {
            return &list[i];
        }
    }
    return NULL;
}

cl_status cl_module_noop_start(void *self, cl_error *err)
{
    (void)self;
    (void)err;
    return CL_OK;
}

void cl_module_noop_stop(void *self)
{
    (void)self;
}

int cl_seed_count(const cl_seed_opts *opts, int all)
{
    return opts->limit > 0 && opts->limit < all ? opts->limit : all;
}
