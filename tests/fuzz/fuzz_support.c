/*
 * What the fuzz targets share: strings from input bytes and the modules' operations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

_Noreturn void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
    abort();
}

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    FUZZ_CHECK(s != NULL);
    if (size > 0) {
        memcpy(s, data, size);
    }
    s[size] = '\0';
    return s;
}

char *fuzz_line(const uint8_t **data, size_t *size)
{
    const uint8_t *nl = memchr(*data, '\n', *size);
    size_t len = nl != NULL ? (size_t)(nl - *data) : *size;
    char *line = fuzz_cstr(*data, len);
    size_t used = nl != NULL ? len + 1 : len;

    *data += used;
    *size -= used;
    return line;
}

size_t fuzz_op_count(void)
{
    size_t n = 0;

    for (size_t m = 0; fuzz_modules[m] != NULL; m++) {
        n += fuzz_modules[m]->nops;
    }
    return n;
}

const cl_op *fuzz_op(size_t i)
{
    for (size_t m = 0; fuzz_modules[m] != NULL; m++) {
        if (i < fuzz_modules[m]->nops) {
            return &fuzz_modules[m]->ops[i];
        }
        i -= fuzz_modules[m]->nops;
    }
    fuzz_fail(__FILE__, __LINE__, "operation index out of range");
}
