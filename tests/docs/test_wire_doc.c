/*
 * docs/wire-api.md is what `cleave modules --wire` prints from the operation
 * declarations: a change to any module's operations must come with the regenerated doc.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proc.h"

static void test_wire_doc_matches_the_declarations(void **state)
{
    static char generated[1 << 20], committed[1 << 20];
    char bin[512];
    char *argv[] = {"cleave", "modules", "--wire", NULL};
    FILE *f = fopen(CLEAVE_SOURCE_DIR "/docs/wire-api.md", "r");
    size_t n;

    (void)state;
    assert_non_null(f);
    n = fread(committed, 1, sizeof(committed) - 1, f);
    committed[n] = '\0';
    fclose(f);
    snprintf(bin, sizeof(bin), "%s/cleave", CLEAVE_BIN_DIR);
    assert_int_equal(test_run(bin, argv, NULL, generated, sizeof(generated)), 0);
    if (strcmp(generated, committed) != 0) {
        fail_msg("docs/wire-api.md is stale: regenerate it with "
                 "`build/bin/cleave modules --wire > docs/wire-api.md`");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_doc_matches_the_declarations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
