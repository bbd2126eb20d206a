/* The loader behind the lazy shims (lazy.h, ADR 0047). */
#include "lazy.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Serialises the first calls into every shim's library; later calls never take it. */
static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;

static void load(cl__lazy_lib *lib)
{
    /* Local: a name is resolved in this library and what it links, never in the process. */
    void *handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);

    if (handle == NULL) {
        fprintf(stderr, "cleave: cannot load %s: %s\n", lib->soname, dlerror());
        abort();
    }
    for (size_t i = 0; i < lib->n; i++) {
        void *sym = dlsym(handle, lib->names[i]);

        if (sym == NULL) {
            fprintf(stderr, "cleave: %s has no %s: %s\n", lib->soname, lib->names[i], dlerror());
            abort();
        }
        /* POSIX guarantees that dlsym's pointer converts to the function's pointer. */
        memcpy(&lib->fns[i], &sym, sizeof(lib->fns[i]));
    }
    /* The library stays loaded for the process's life: its functions are in use from now. */
}

cl__lazy_fn cl__lazy_get(cl__lazy_lib *lib, int i)
{
    /* Acquire: a thread that sees loaded sees the table the loading thread filled. */
    if (!atomic_load_explicit(&lib->loaded, memory_order_acquire)) {
        pthread_mutex_lock(&load_mu);
        if (!atomic_load_explicit(&lib->loaded, memory_order_relaxed)) {
            load(lib);
            atomic_store_explicit(&lib->loaded, true, memory_order_release);
        }
        pthread_mutex_unlock(&load_mu);
    }
    return lib->fns[i];
}
