/* The test hooks' configuration keys (CLEAVE_TEST_*), known only to a test build. */
#ifndef CLEAVE_TEST_HOOKS_H
#define CLEAVE_TEST_HOOKS_H

#include "cleave/config.h"

/* The owner "test": CLEAVE_TEST_CRASH_AT, CLEAVE_TEST_POISON and CLEAVE_TEST_RPC_FAULT. */
extern const cl_settings cleave_test_hooks;

#endif /* CLEAVE_TEST_HOOKS_H */
