/*
 * identity's password hashing (argon2id) and the token endpoint's rate limit, tested
 * directly: what the contract suite cannot see through the operations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <argon2.h>
#include <cmocka.h>

#include "internal.h"
#include "test_module.h"

/* Cheap parameters, except where a test is about the parameters. */
static const identity_argon2 cheap = {.t = 1, .m_kib = 1024, .p = 1};

static void test_argon2id_hash_verifies_only_its_password(void **state)
{
    char hash[IDENTITY_HASH_MAX];
    cl_error err = {0};

    (void)state;
    assert_int_equal(identity_password_hash(&cheap, "correct horse", hash, &err), CL_OK);
    assert_memory_equal(hash, "$argon2id$v=19$", 15);
    assert_true(identity_password_verify(hash, "correct horse"));
    assert_false(identity_password_verify(hash, "correct horsE"));
    assert_false(identity_password_verify(hash, "correct horse "));
    assert_false(identity_password_verify(hash, ""));
}

static void test_argon2id_salts_every_hash(void **state)
{
    char a[IDENTITY_HASH_MAX];
    char b[IDENTITY_HASH_MAX];
    cl_error err = {0};

    (void)state;
    assert_int_equal(identity_password_hash(&cheap, "same password", a, &err), CL_OK);
    assert_int_equal(identity_password_hash(&cheap, "same password", b, &err), CL_OK);
    assert_string_not_equal(a, b);
    assert_true(identity_password_verify(a, "same password"));
    assert_true(identity_password_verify(b, "same password"));
}

/* The configured parameters are the ones used, and they travel with the hash. */
static void test_argon2id_records_its_parameters(void **state)
{
    static const identity_argon2 owasp = {.t = 2, .m_kib = 19456, .p = 1};
    char hash[IDENTITY_HASH_MAX];
    cl_error err = {0};

    (void)state;
    assert_int_equal(identity_password_hash(&owasp, "pw-12345", hash, &err), CL_OK);
    assert_non_null(strstr(hash, "$m=19456,t=2,p=1$"));
    assert_int_equal(identity_password_hash(&cheap, "pw-12345", hash, &err), CL_OK);
    assert_non_null(strstr(hash, "$m=1024,t=1,p=1$"));
    /* Verifying reads them from the hash: settings changed since do not matter. */
    assert_true(identity_password_verify(hash, "pw-12345"));
}

static void test_argon2id_refuses_what_is_not_an_argon2id_hash(void **state)
{
    char hash[IDENTITY_HASH_MAX];
    char other[IDENTITY_HASH_MAX];
    cl_error err = {0};

    (void)state;
    assert_false(identity_password_verify("", "x"));
    assert_false(identity_password_verify("plain-text-password", "plain-text-password"));
    assert_false(identity_password_verify(NULL, "x"));
    assert_int_equal(identity_password_hash(&cheap, "pw-12345", hash, &err), CL_OK);
    /* argon2i is not argon2id, even with the same bytes after the name. */
    snprintf(other, sizeof(other), "$argon2i$%s", hash + strlen("$argon2id$"));
    assert_false(identity_password_verify(other, "pw-12345"));
    /* A truncated hash verifies nothing. */
    hash[strlen(hash) - 4] = '\0';
    assert_false(identity_password_verify(hash, "pw-12345"));
}

/*
 * A decoy is well-formed: argon2 decodes it and runs the hash, and only the comparison
 * fails (a malformed string would fail fast, at no cost, and give unknown users away).
 */
static void test_argon2id_decoy_is_checked_at_full_cost_and_fails(void **state)
{
    static const identity_argon2 owasp = {.t = 2, .m_kib = 19456, .p = 1};
    char a[IDENTITY_HASH_MAX];
    char b[IDENTITY_HASH_MAX];
    cl_error err = {0};

    (void)state;
    assert_int_equal(identity_password_decoy(&cheap, a, &err), CL_OK);
    assert_int_equal(identity_password_decoy(&cheap, b, &err), CL_OK);
    assert_string_not_equal(a, b);
    assert_non_null(strstr(a, "$m=1024,t=1,p=1$"));
    assert_int_equal(argon2id_verify(a, "", 0), ARGON2_VERIFY_MISMATCH);
    assert_int_equal(argon2id_verify(a, "password", 8), ARGON2_VERIFY_MISMATCH);
    assert_false(identity_password_verify(a, ""));
    /* The same length as a real hash at that cost: salt and hash sizes are the same. */
    assert_int_equal(identity_password_hash(&cheap, "x", b, &err), CL_OK);
    assert_int_equal(strlen(a), strlen(b));
    assert_int_equal(identity_password_decoy(&owasp, a, &err), CL_OK);
    assert_non_null(strstr(a, "$m=19456,t=2,p=1$"));
}

/*
 * An unknown user's login is checked against the instance's decoy: it carries the
 * configured cost (so it costs what a real check costs) and no password matches it, not
 * even the empty one.
 */
static void test_identity_decoy_has_the_cost_and_matches_nothing(void **state)
{
    char *env[] = {"CLEAVE_IDENTITY_ARGON2_M_KIB=4096", "CLEAVE_IDENTITY_ARGON2_T=1", NULL};
    test_local_options opt = {.env = env};
    test_local t = {0};
    const struct identity_self *self;

    (void)state;
    assert_int_equal(test_local_open(&t, &identity_module, &opt), 0);
    self = t.handle.self;
    assert_memory_equal(self->decoy, "$argon2id$v=19$", 15);
    assert_non_null(strstr(self->decoy, "$m=4096,t=1,p=1$"));
    assert_false(identity_password_verify(self->decoy, ""));
    assert_false(identity_password_verify(self->decoy, "password"));
    test_local_close(&t);
}

static void test_digest_is_sha256_hex(void **state)
{
    char d[IDENTITY_DIGEST_SIZE];

    (void)state;
    identity_digest("abc", d);
    assert_string_equal(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_rate_limit_counts_per_key_per_minute(void **state)
{
    static identity_rate r;
    int64_t t0 = 1800000000000; /* on a minute boundary */
    int64_t retry = 0;

    (void)state;
    identity_rate_init(&r, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(identity_rate_take(&r, "c:web", t0 + i, &retry));
    }
    assert_false(identity_rate_take(&r, "c:web", t0 + 1000, &retry));
    assert_int_equal(retry, 59);
    /* Another key has its own count. */
    assert_true(identity_rate_take(&r, "a:192.0.2.1", t0 + 1000, &retry));
    /* The next minute starts afresh. */
    assert_true(identity_rate_take(&r, "c:web", t0 + 60000, &retry));
    identity_rate_destroy(&r);
}

/* The table's memory comes with its keys: none at start, one chunk for the first key. */
static void test_rate_limit_table_is_allocated_with_its_keys(void **state)
{
    static identity_rate r;
    int64_t retry = 0;
    int chunks = 0;

    (void)state;
    identity_rate_init(&r, 3);
    for (size_t i = 0; i < sizeof(r.chunks) / sizeof(r.chunks[0]); i++) {
        assert_null(r.chunks[i]);
    }
    assert_true(identity_rate_take(&r, "c:web", 1800000000000, &retry));
    for (size_t i = 0; i < sizeof(r.chunks) / sizeof(r.chunks[0]); i++) {
        chunks += r.chunks[i] != NULL;
    }
    assert_int_equal(chunks, 1);
    identity_rate_destroy(&r);
}

/* More live keys than the table holds: none is ever let through over its limit. */
static void test_rate_limit_never_lets_a_key_over_when_full(void **state)
{
    static identity_rate r;
    int64_t t0 = 1800000000000;
    int64_t retry = 0;
    char key[32];

    (void)state;
    identity_rate_init(&r, 1);
    for (int i = 0; i < 3 * IDENTITY_RATE_SLOTS; i++) {
        snprintf(key, sizeof(key), "a:10.0.%d.%d", i / 256, i % 256);
        (void)identity_rate_take(&r, key, t0, &retry);
    }
    for (int i = 0; i < 3 * IDENTITY_RATE_SLOTS; i++) {
        snprintf(key, sizeof(key), "a:10.0.%d.%d", i / 256, i % 256);
        assert_false(identity_rate_take(&r, key, t0 + 1, &retry));
    }
    identity_rate_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argon2id_hash_verifies_only_its_password),
        cmocka_unit_test(test_argon2id_salts_every_hash),
        cmocka_unit_test(test_argon2id_records_its_parameters),
        cmocka_unit_test(test_argon2id_refuses_what_is_not_an_argon2id_hash),
        cmocka_unit_test(test_argon2id_decoy_is_checked_at_full_cost_and_fails),
        cmocka_unit_test(test_identity_decoy_has_the_cost_and_matches_nothing),
        cmocka_unit_test(test_digest_is_sha256_hex),
        cmocka_unit_test(test_rate_limit_counts_per_key_per_minute),
        cmocka_unit_test(test_rate_limit_table_is_allocated_with_its_keys),
        cmocka_unit_test(test_rate_limit_never_lets_a_key_over_when_full),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
