/*
 * Fuzz target: the config file parser. Input: byte 0, then the file's content. When
 * byte 0 is odd every module's settings are declared as the cleave host declares them;
 * when even only the platform's keys are, which runs several times faster (setting up
 * the keys of a load compares them pairwise, and libFuzzer hooks every comparison).
 * What the parser accepts, every key can be read back from; what it refuses gets a
 * message.
 */
#include <string.h>

#include "config_internal.h"
#include "fuzz.h"

static cl_settings config_settings[32];
static const cl_settings *config_owners[33];

static void config_init(void)
{
    size_t n = 0;

    for (size_t m = 0; fuzz_modules[m] != NULL; m++) {
        const cl_module_api *api = fuzz_modules[m];

        FUZZ_CHECK(n < sizeof(config_settings) / sizeof(config_settings[0]));
        config_settings[n] = (cl_settings){api->name, true, api->settings, api->nsettings};
        config_owners[n] = &config_settings[n];
        n++;
    }
    config_owners[n] = NULL;
}

/* Whether text[0..size) contains s (memmem is a GNU extension). */
static int contains(const uint8_t *text, size_t size, const char *s)
{
    size_t n = strlen(s);

    for (size_t i = 0; n <= size && i <= size - n; i++) {
        if (memcmp(text + i, s, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A value is set exactly when it has a source, and is the default or came from the file. */
static void config_check_key(const cl_config *cfg, const cl_setting *key, const uint8_t *data,
                             size_t size)
{
    const char *v = cl_config_get(cfg, key->name);
    const char *src = cl_config_source(cfg, key->name);

    FUZZ_CHECK((v == NULL) == (src == NULL));
    if (src == NULL) {
        return;
    }
    if (strcmp(src, "default") == 0) {
        FUZZ_CHECK(key->def != NULL && strcmp(v, key->def) == 0);
    } else {
        FUZZ_CHECK(strcmp(src, "file") == 0);
        FUZZ_CHECK(contains(data, size, v));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const cl_settings *const *owners;
    cl_config *cfg = NULL;
    cl_error err = {0};

    if (config_owners[0] == NULL) {
        config_init();
    }
    if (size < 1) {
        return 0;
    }
    owners = (data[0] & 1) != 0 ? config_owners : NULL;
    data++;
    size--;
    if (cl__config_load_text("fuzz.conf", (const char *)data, size, NULL, owners, &cfg, &err) ==
        CL_OK) {
        FUZZ_CHECK(cfg != NULL);
        /* The platform's own keys always have a value: a default or what the file said. */
        FUZZ_CHECK(cl_config_get(cfg, "CLEAVE_LISTEN") != NULL);
        FUZZ_CHECK(cl_config_int(cfg, "CLEAVE_HTTP_THREADS") >= 1);
        for (size_t m = 0; owners != NULL && fuzz_modules[m] != NULL; m++) {
            const cl_module_api *api = fuzz_modules[m];

            for (size_t i = 0; i < api->nsettings; i++) {
                config_check_key(cfg, &api->settings[i], data, size);
            }
        }
        cl_config_free(cfg);
    } else {
        FUZZ_CHECK(cfg == NULL);
        FUZZ_CHECK(err.status != CL_OK && err.message[0] != '\0');
    }
    return 0;
}
