/*
 * The test hooks' configuration keys. Only a test build (CLEAVE_TESTS=ON) links this
 * library into its binaries (app/CMakeLists.txt, cleave_wire), so a production binary
 * does not know these keys and refuses them as unknown; the crash and poison tests set
 * them on the real binaries of a test build. The bus reads them (platform/bus), the host
 * hands CLEAVE_TEST_RPC_FAULT to the remote binding (platform/rpc).
 */
#include "test_hooks.h"

static const cl_setting hooks[] = {
    {"CLEAVE_TEST_CRASH_AT", CL_SETTING_STRING, NULL,
     "kill the process at a bus step (after-commit, after-publish, after-deliver) or a "
     "module's <module>.<point>, optionally :N for the N-th time"},
    {"CLEAVE_TEST_POISON", CL_SETTING_STRING, NULL,
     "bus handlers fail on payloads that contain this text"},
    {"CLEAVE_TEST_RPC_FAULT", CL_SETTING_STRING, NULL,
     "faults in calls to remote modules: <module>=unavailable|fail:N|delay:MS, comma-separated"},
};

const cl_settings cleave_test_hooks = {
    .owner = "test",
    .module = false,
    .list = hooks,
    .count = sizeof(hooks) / sizeof(hooks[0]),
};
