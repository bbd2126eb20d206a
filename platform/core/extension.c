/* The table of registered optional subsystems (cleave/extension.h). */
#include "cleave/extension.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t extensions_mu = PTHREAD_MUTEX_INITIALIZER;
static const cl_extension *extensions[CL_MAX_EXTENSIONS];
static int nextensions;

/* Call with extensions_mu held. */
static const cl_extension *find_locked(const char *kind, const char *name)
{
    for (int i = 0; i < nextensions; i++) {
        if (strcmp(extensions[i]->kind, kind) == 0 && strcmp(extensions[i]->name, name) == 0) {
            return extensions[i];
        }
    }
    return NULL;
}

cl_status cl_extension_register(const cl_extension *ext, cl_error *err)
{
    cl_status st = CL_OK;

    if (ext == NULL || ext->kind == NULL || ext->name == NULL || ext->impl == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_extension_register: missing field");
    }
    pthread_mutex_lock(&extensions_mu);
    if (find_locked(ext->kind, ext->name) != NULL) {
        goto out;
    }
    if (nextensions == CL_MAX_EXTENSIONS) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "too many extensions (at most %d)",
                          CL_MAX_EXTENSIONS);
        goto out;
    }
    extensions[nextensions++] = ext;
out:
    pthread_mutex_unlock(&extensions_mu);
    return st;
}

const void *cl_extension_find(const char *kind, const char *name)
{
    const cl_extension *ext;

    pthread_mutex_lock(&extensions_mu);
    ext = find_locked(kind, name);
    pthread_mutex_unlock(&extensions_mu);
    return ext != NULL ? ext->impl : NULL;
}

cl_status cl_extension_require(const char *kind, const char *name, const char *setting,
                               const void **impl, cl_error *err)
{
    const void *found = cl_extension_find(kind, name);

    if (found == NULL) {
        return cl_error_set(err, CL_INVALID, setting,
                            "%s asks for %s, but this binary was built without cleave_%s: "
                            "link Cleave::%s and wire it (cleave_wire ... WITH %s)",
                            setting, name, name, name, name);
    }
    *impl = found;
    return CL_OK;
}
