/*
 * platform/auth/pkcs8.h: the PKCS#8 codec against the openssl command line tool, an
 * independent implementation. Keys OpenSSL made parse into the numbers `openssl pkey -text`
 * printed for them; what the writers make, OpenSSL accepts and writes back byte for byte;
 * and every malformed or foreign key is refused for its own reason.
 */
#include <nettle/base64.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

#include "../../platform/auth/pkcs8.h"

/*
 * Fixed keys made by `openssl genpkey` (OpenSSL 3.0), with the numbers `openssl pkey -text
 * -noout` printed for them. ECZ's private scalar starts with a zero byte.
 */
static const char EC1_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmIO3KbsEN6J7p6Kv\n"
                              "lGcx8OxhXf/4toIh5Po10xJ9efShRANCAARIX1KRBM+NhJJqx2TgBh0aov7jw5ry\n"
                              "2Fza2g1UWQ5eXGu5yeIWZ5ShDE5whcavw3RIu8wH/E4sRc5oRGrF4C6a\n"
                              "-----END PRIVATE KEY-----\n";
static const char EC1_D[] = "9883b729bb0437a27ba7a2af946731f0ec615dfff8b68221e4fa35d3127d79f4";
static const char EC1_PUB[] = "04485f529104cf8d84926ac764e0061d1aa2fee3c39af2d85cdada0d54590e5e"
                              "5c6bb9c9e2166794a10c4e7085c6afc37448bbcc07fc4e2c45ce68446ac5e02e"
                              "9a";
static const char ECZ_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgADfybmL2e0VAykhm\n"
                              "MHOr7m43/jtUYzAubYo715+n6UShRANCAAQtUL43l8xDscPNJRRO3/GeluHrHjHQ\n"
                              "uBMBHaNLnAtWKOFBuP6Qu9rYRNRxjgnDlZsvgQ8Uyj/xLfr6Loh0S/xM\n"
                              "-----END PRIVATE KEY-----\n";
static const char ECZ_D[] = "0037f26e62f67b4540ca48663073abee6e37fe3b5463302e6d8a3bd79fa7e944";
static const char ECZ_PUB[] = "042d50be3797cc43b1c3cd25144edff19e96e1eb1e31d0b813011da34b9c0b56"
                              "28e141b8fe90bbdad844d4718e09c3959b2f810f14ca3ff12dfafa2e88744bfc"
                              "4c";
static const char RSA_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDYdUB8/LFGSfGl\n"
                              "zBU9t5DIT2LW/4ZTfJ869ee1WLfiGG0lv1c8Z49pDyTzsrmKU9UmebWeVlg63Tr9\n"
                              "PgVCxHD8ymDnWH04148pUu5qpwbcANJb+hzZyf0c+BO95shjTk78XJOd9GKKqUCt\n"
                              "g3ORAd75Olo8/CQixzaSaJQLQyEYyyGaWu5QkqcgOpGyHmrYMCv3MUJYIeSpnCCg\n"
                              "tusGoMugFn0EP+D8nNYi625FsZpHYJOdDeZ4ODRgaaMHKHINIvCP36TyXaRzE9nT\n"
                              "5lyKV47nnlS/iY6X6M/M+BBYqJo3lDLT9pvN62tWLdBMPuqmTmvqKXzVRcsQ6cvc\n"
                              "6O89AohTAgMBAAECggEAAOK98E+nuWC9FI9uDidtorwxwdfK02r2SytNbEBgLunT\n"
                              "AdgIwdkEol/q/UpKbbv5FSQOBQdXwL89/2JHwDsF4VWXVEBYRtQZpF16rJoMB6Nt\n"
                              "45ggPRiRU2iFICj3wfGZ63jE1ofKTW9IMfg7OqkrdzvwuZYoibHkpxsMHAhayXtY\n"
                              "CrrQemVdJS8v8lXlkX3qVBPF69CZyjAPK9ciNWf6j9U7lOw7pvG3IKQahiUdbhR6\n"
                              "jCToWmA6wYeHdydEQ/3rSqqkBXac6P5jTYBi2e20dn1ZtfqvieQBUBydeKJYkuop\n"
                              "JY8RsohdIVdsy+gsvtnEfVRcZO4ZWZBzNIx3eRchaQKBgQD1rkbGBkEg64eAxh9U\n"
                              "/ZCxiLbeGp/+At30QydNfItUV464iALSunPHf5TcPn1K9PWPthgfs6deNFfOBUXq\n"
                              "YhUP9PoqTfH2zfytMNqqCmJw43iCMW36S0W6PwkGPKZ0/iJLCvgE1lixTZR/9jtW\n"
                              "cdik7v/uCeiDO+yoRe/Bc9HzGQKBgQDhjMC/PUN70WsvSgSWMvEckRDoDeoDz3Vw\n"
                              "FLfSe76gCOzhc/uXjlbPnEapVp/LFCLRqrPAIgptEyLceFsMwFtot5mQ0VG0s+vG\n"
                              "HqYrb/5KOIMvURwy2q0SlDUgJWk0uhiWwAmkPBbJlsk7VeHcu4cc9tmh7WtVMzYA\n"
                              "HExevFzQSwKBgG7kK+PD/O+r/+x7ALdvADlx+QCFSgPwLVjMWtgZyBXYs33NPmD5\n"
                              "cbrxdjJ3LjyAFrq4OWlNwNS/kYZXUPh7LwCV1bj0l6uLzGor6/bmWwqTUdiKERbx\n"
                              "lNZ9D0i2ZXfXIYl3uP0N9tiIqOedL6lUF7JSgkhiRoW9rZNChfZunaw5AoGAQDEq\n"
                              "+kKZXjfv5XmPbJ/690JiKWksXQFCTy/WUVVen3Vq1Y+I301nb5bulWtN9yI39qw6\n"
                              "lEgb54c2uMCYSTzFxzvZvNmWA3PhenVmnZ42JTGIRIM1H1QVReBgblG3a4Y7UUw+\n"
                              "cjuX0K/VfcmniobkoV2v+uHzVkBI8icbpSq+z5kCgYEAspVvnf4T0Xjqf1+0cq8U\n"
                              "OEU+F/+Fw1csI0XvGRWsF4LJ/bX1+Ge7XWh4xsjxHdohxR85eSySKfqVsLQm9Ky3\n"
                              "R6CovKSjO5G8Uqj3sdf4lgs1DxBr9f3MNCqXbMhnX02hYIdYJspulO53AlUroN3w\n"
                              "BGWlgmakFD9WMvil+0TM28c=\n"
                              "-----END PRIVATE KEY-----\n";
/* n, e, d, p, q, dp, dq, qi as `openssl pkey -text` prints them, leading zeros dropped. */
static const char *const RSA_HEX[8] = {
    /* modulus */
    "d875407cfcb14649f1a5cc153db790c84f62d6ff86537c9f3af5e7b558b7e218"
    "6d25bf573c678f690f24f3b2b98a53d52679b59e56583add3afd3e0542c470fc"
    "ca60e7587d38d78f2952ee6aa706dc00d25bfa1cd9c9fd1cf813bde6c8634e4e"
    "fc5c939df4628aa940ad83739101def93a5a3cfc2422c7369268940b432118cb"
    "219a5aee5092a7203a91b21e6ad8302bf731425821e4a99c20a0b6eb06a0cba0"
    "167d043fe0fc9cd622eb6e45b19a4760939d0de67838346069a30728720d22f0"
    "8fdfa4f25da47313d9d3e65c8a578ee79e54bf898e97e8cfccf81058a89a3794"
    "32d3f69bcdeb6b562dd04c3eeaa64e6bea297cd545cb10e9cbdce8ef3d028853",
    /* publicExponent */
    "010001",
    /* privateExponent */
    "e2bdf04fa7b960bd148f6e0e276da2bc31c1d7cad36af64b2b4d6c40602ee9d3"
    "01d808c1d904a25feafd4a4a6dbbf915240e050757c0bf3dff6247c03b05e155"
    "9754405846d419a45d7aac9a0c07a36de398203d18915368852028f7c1f199eb"
    "78c4d687ca4d6f4831f83b3aa92b773bf0b9962889b1e4a71b0c1c085ac97b58"
    "0abad07a655d252f2ff255e5917dea5413c5ebd099ca300f2bd7223567fa8fd5"
    "3b94ec3ba6f1b720a41a86251d6e147a8c24e85a603ac1878777274443fdeb4a"
    "aaa405769ce8fe634d8062d9edb4767d59b5faaf89e401501c9d78a25892ea29"
    "258f11b2885d21576ccbe82cbed9c47d545c64ee19599073348c7779172169",
    /* prime1 */
    "f5ae46c6064120eb8780c61f54fd90b188b6de1a9ffe02ddf443274d7c8b5457"
    "8eb88802d2ba73c77f94dc3e7d4af4f58fb6181fb3a75e3457ce0545ea62150f"
    "f4fa2a4df1f6cdfcad30daaa0a6270e37882316dfa4b45ba3f09063ca674fe22"
    "4b0af804d658b14d947ff63b5671d8a4eeffee09e8833beca845efc173d1f319",
    /* prime2 */
    "e18cc0bf3d437bd16b2f4a049632f11c9110e80dea03cf757014b7d27bbea008"
    "ece173fb978e56cf9c46a9569fcb1422d1aab3c0220a6d1322dc785b0cc05b68"
    "b79990d151b4b3ebc61ea62b6ffe4a38832f511c32daad12943520256934ba18"
    "96c009a43c16c996c93b55e1dcbb871cf6d9a1ed6b553336001c4c5ebc5cd04b",
    /* exponent1 */
    "6ee42be3c3fcefabffec7b00b76f003971f900854a03f02d58cc5ad819c815d8"
    "b37dcd3e60f971baf17632772e3c8016bab839694dc0d4bf91865750f87b2f00"
    "95d5b8f497ab8bcc6a2bebf6e65b0a9351d88a1116f194d67d0f48b66577d721"
    "8977b8fd0df6d888a8e79d2fa95417b2528248624685bdad934285f66e9dac39",
    /* exponent2 */
    "40312afa42995e37efe5798f6c9ffaf7426229692c5d01424f2fd651555e9f75"
    "6ad58f88df4d676f96ee956b4df72237f6ac3a94481be78736b8c098493cc5c7"
    "3bd9bcd9960373e17a75669d9e362531884483351f541545e0606e51b76b863b"
    "514c3e723b97d0afd57dc9a78a86e4a15daffae1f3564048f2271ba52abecf99",
    /* coefficient */
    "b2956f9dfe13d178ea7f5fb472af1438453e17ff85c3572c2345ef1915ac1782"
    "c9fdb5f5f867bb5d6878c6c8f11dda21c51f39792c9229fa95b0b426f4acb747"
    "a0a8bca4a33b91bc52a8f7b1d7f8960b350f106bf5fdcc342a976cc8675f4da1"
    "60875826ca6e94ee7702552ba0ddf00465a58266a4143f5632f8a5fb44ccdbc7",
};
static const char P384_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDAmSafZ6GzbPYYJt6/u\n"
                               "cRBPqPJqKBbBdYe3kBPBWDfV/ILLwXIS4iOESkGEFA6QGLShZANiAAS24clu+5tw\n"
                               "q7PkTHZgfGta6fIbVP5qQHSrzKA3WGajRuotkHGm6IAfgmcgiWvJOaLiRX4WagrO\n"
                               "Eo9+zjGad5ea0chPCu2zyMPSiD4g4gFMck88TShriIoA8bL3rtyWZec=\n"
                               "-----END PRIVATE KEY-----\n";
static const char ED_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                             "MC4CAQAwBQYDK2VwBCIEIHhisB5VZKkVgMuW2JDPcJOAak3Y0UvYQc9e7VUcFksg\n"
                             "-----END PRIVATE KEY-----\n";
static const char ENC_PEM[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
                              "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAiwRGrWAZA04wICCAAw\n"
                              "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEOGRyXk1e+ophHUpZZwPX7IEgZCB\n"
                              "ZGZx9yM+YVR4GAQLazqlyyM5SpHSHn9tJrtFwO+Hztvz//mriEChNrROHyMD6apC\n"
                              "y3Z5tBvXBqdoThVb9I1NDJNHrYRTmTevnEMEb3zCeHYIVBvcJ86JnRs3lf50/YJO\n"
                              "FgUiXpv5b+cR45E1iJsWTr4jhxt3PZsqWs2SIAF3JlUFhbaITdniWXQFJqrKGx8=\n"
                              "-----END ENCRYPTED PRIVATE KEY-----\n";
static const char ECTRAD_PEM[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIJiDtym7BDeie6eir5RnMfDsYV3/+LaCIeT6NdMSfXn0oAoGCCqGSM49\n"
    "AwEHoUQDQgAESF9SkQTPjYSSasdk4AYdGqL+48Oa8thc2toNVFkOXlxrucniFmeU\n"
    "oQxOcIXGr8N0SLvMB/xOLEXOaERqxeAumg==\n"
    "-----END EC PRIVATE KEY-----\n";

/* A scratch directory for the files the openssl tool reads, made by the group setup. */
static char tmp_dir[] = "/tmp/test_pkcs8.XXXXXX";
#define OUT_FILE "openssl.out"

typedef struct buf {
    unsigned char b[8192];
    size_t n;
} buf;

static void add(buf *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof(b->b));
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static unsigned hex_digit(char c)
{
    const char *digits = "0123456789abcdef";
    const char *at = strchr(digits, c);

    assert_true(c != '\0' && at != NULL);
    return (unsigned)(at - digits);
}

/* Appends the bytes spelled in (lowercase) hex; spaces are for the reader. */
static void add_hex(buf *b, const char *hex)
{
    for (const char *s = hex; *s != '\0';) {
        if (*s == ' ') {
            s++;
            continue;
        }
        assert_true(b->n < sizeof(b->b));
        b->b[b->n++] = (unsigned char)(hex_digit(s[0]) << 4 | hex_digit(s[1]));
        s += 2;
    }
}

/* Makes b's contents the contents of a DER element with tag (lengths written by hand here). */
static void wrap(buf *b, unsigned char tag)
{
    unsigned char head[4] = {tag};
    size_t h = 2;

    if (b->n < 0x80) {
        head[1] = (unsigned char)b->n;
    } else if (b->n < 0x100) {
        head[1] = 0x81;
        head[2] = (unsigned char)b->n;
        h = 3;
    } else {
        head[1] = 0x82;
        head[2] = (unsigned char)(b->n >> 8);
        head[3] = (unsigned char)b->n;
        h = 4;
    }
    assert_true(b->n + h <= sizeof(b->b));
    memmove(b->b + h, b->b, b->n);
    memcpy(b->b, head, h);
    b->n += h;
}

#define OID_EC   "06 07 2a8648ce3d0201"
#define OID_P256 "06 08 2a8648ce3d030107"
#define OID_P384 "06 05 2b81040022"
#define OID_RSA  "06 09 2a864886f70d010101"

/* PrivateKeyInfo { version, SEQUENCE { alg_hex }, OCTET STRING { key }, after_hex }. */
static void pkcs8_of(buf *out, const char *version_hex, const char *alg_hex, const buf *key,
                     const char *after_hex)
{
    buf alg = {.n = 0};
    buf octets = *key;

    out->n = 0;
    add_hex(out, version_hex);
    add_hex(&alg, alg_hex);
    wrap(&alg, 0x30);
    add(out, alg.b, alg.n);
    wrap(&octets, 0x04);
    add(out, octets.b, octets.n);
    add_hex(out, after_hex);
    wrap(out, 0x30);
}

static void hex_bytes(buf *b, const char *hex)
{
    b->n = 0;
    add_hex(b, hex);
}

/* An ECPrivateKey SEQUENCE of EC1's numbers: version_hex, then d, then extra_hex. */
static void ec1_inner(buf *out, const char *version_hex, const char *extra_hex)
{
    buf d;

    hex_bytes(&d, EC1_D);
    out->n = 0;
    add_hex(out, version_hex);
    add_hex(out, "04 20");
    add(out, d.b, d.n);
    add_hex(out, extra_hex);
    wrap(out, 0x30);
}

/* The PEM of der, in 64-character lines. Caller frees. */
static char *pem_of(const unsigned char *der, size_t n, const char *label)
{
    size_t size = 2 * strlen(label) + 64 + BASE64_ENCODE_RAW_LENGTH(n) + n / 48 + 2;
    char *pem = malloc(size);
    char *w = pem;

    assert_non_null(pem);
    w += sprintf(w, "-----BEGIN %s-----\n", label);
    for (size_t off = 0; off < n; off += 48) {
        size_t chunk = n - off < 48 ? n - off : 48;
        base64_encode_raw(w, chunk, der + off);
        w += BASE64_ENCODE_RAW_LENGTH(chunk);
        *w++ = '\n';
    }
    sprintf(w, "-----END %s-----\n", label);
    return pem;
}

static char *pem_of_buf(const buf *b)
{
    return pem_of(b->b, b->n, "PRIVATE KEY");
}

/* The DER inside a PEM, decoded here (base64 between the first and last line). */
static void der_of(const char *pem, buf *out)
{
    const char *body = strchr(pem, '\n') + 1;
    const char *end = strstr(body, "-----END");
    struct base64_decode_ctx ctx;
    size_t n = 0;

    assert_true(BASE64_DECODE_LENGTH((size_t)(end - body)) <= sizeof(out->b));
    base64_decode_init(&ctx);
    assert_true(base64_decode_update(&ctx, &n, out->b, (size_t)(end - body), body));
    assert_true(base64_decode_final(&ctx));
    out->n = n;
}

static void assert_bytes_hex(cl__bytes got, const char *hex)
{
    buf want;

    hex_bytes(&want, hex);
    assert_int_equal(got.n, want.n);
    assert_memory_equal(got.p, want.b, want.n);
}

/* pem must be refused as invalid with a message containing needle. */
static void assert_refused(const char *pem, const char *needle)
{
    cl__pkcs8 k = {.der = NULL};
    cl_error err = {.status = CL_OK};
    cl_status st = cl__pkcs8_read(pem, &k, &err);

    if (st != CL_INVALID || err.status != CL_INVALID || strstr(err.message, needle) == NULL) {
        print_error("status %d, message \"%s\"; wanted CL_INVALID and \"%s\"\n", (int)st,
                    err.message, needle);
        fail();
    }
    assert_null(k.der);
}

static void assert_der_refused(const buf *der, const char *needle)
{
    char *pem = pem_of_buf(der);

    assert_refused(pem, needle);
    free(pem);
}

static void read_ok(const char *pem, cl__pkcs8 *k)
{
    cl_error err = {.status = CL_OK};

    if (cl__pkcs8_read(pem, k, &err) != CL_OK) {
        print_error("refused: %s\n", err.message);
        fail();
    }
}

/* Writes text to a file of the scratch directory; returns its path (static storage). */
static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/*
 * Runs the openssl tool with args (NULL-terminated, without "openssl"); its standard output
 * (caller frees), or NULL when it failed. No shell: the arguments are passed as they are.
 */
static char *openssl(const char *const args[])
{
    char *argv[16] = {"openssl"};
    char out_path[128];
    posix_spawn_file_actions_t actions;
    pid_t pid;
    int status = 0;
    FILE *f;
    char *out;
    long size;

    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(i + 2 < sizeof(argv) / sizeof(argv[0]));
        argv[i + 1] = (char *)args[i];
    }
    snprintf(out_path, sizeof(out_path), "%s/%s", tmp_dir, OUT_FILE);
    assert_int_equal(posix_spawn_file_actions_init(&actions), 0);
    assert_int_equal(
        posix_spawn_file_actions_addopen(&actions, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
        0);
    assert_int_equal(posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0), 0);
    assert_int_equal(posix_spawnp(&pid, "openssl", &actions, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return NULL;
    }
    f = fopen(out_path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size >= 0);
    rewind(f);
    out = malloc((size_t)size + 1);
    assert_non_null(out);
    assert_int_equal(fread(out, 1, (size_t)size, f), (size_t)size);
    out[size] = '\0';
    fclose(f);
    return out;
}

/* The key OpenSSL's pkey tool writes back after reading pem; NULL when it refuses pem. */
static char *openssl_rewrite(const char *pem)
{
    const char *path = write_file("key.pem", pem);
    char *check = openssl((const char *const[]){"pkey", "-in", path, "-check", "-noout", NULL});

    if (check == NULL) {
        return NULL;
    }
    free(check);
    return openssl((const char *const[]){"pkey", "-in", path, NULL});
}

static void assert_openssl_text_equal(const char *a, const char *b)
{
    char *ta = openssl(
        (const char *const[]){"pkey", "-in", write_file("a.pem", a), "-text", "-noout", NULL});
    char *tb = openssl(
        (const char *const[]){"pkey", "-in", write_file("b.pem", b), "-text", "-noout", NULL});

    assert_non_null(ta);
    assert_non_null(tb);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmp_dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    static const char *const files[] = {"key.pem", "a.pem", "b.pem", OUT_FILE};
    char path[128];

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmp_dir, files[i]);
        unlink(path);
    }
    return rmdir(tmp_dir);
}

static void test_pkcs8_reads_openssl_ec_keys(void **state)
{
    cl__pkcs8 k = {.der = NULL};

    (void)state;
    read_ok(EC1_PEM, &k);
    assert_int_equal(k.type, CL__PKCS8_EC_P256);
    assert_bytes_hex(k.d, EC1_D);
    assert_bytes_hex(k.pub, EC1_PUB);
    cl__pkcs8_free(&k);
    assert_null(k.der);
    /* The scalar keeps its leading zero byte: it is stored as 32 bytes. */
    read_ok(ECZ_PEM, &k);
    assert_int_equal(k.d.n, 32);
    assert_int_equal(k.d.p[0], 0);
    assert_bytes_hex(k.d, ECZ_D);
    assert_bytes_hex(k.pub, ECZ_PUB);
    cl__pkcs8_free(&k);
    /* Freeing twice, or a zeroed key, or NULL, is harmless. */
    cl__pkcs8_free(&k);
    cl__pkcs8_free(NULL);
}

static void test_pkcs8_reads_openssl_rsa_key(void **state)
{
    cl__pkcs8 k = {.der = NULL};
    const cl__bytes *got[8] = {&k.rsa_n, &k.rsa_e,  &k.rsa_d,  &k.rsa_p,
                               &k.rsa_q, &k.rsa_dp, &k.rsa_dq, &k.rsa_qi};

    (void)state;
    read_ok(RSA_PEM, &k);
    assert_int_equal(k.type, CL__PKCS8_RSA);
    for (size_t i = 0; i < 8; i++) {
        assert_bytes_hex(*got[i], RSA_HEX[i]);
    }
    assert_int_equal(k.rsa_n.n, 256);
    cl__pkcs8_free(&k);
}

/*
 * ours, written from pem's numbers, is pem byte for byte, and OpenSSL reads it, writes it
 * back unchanged and prints the numbers it prints for pem. Frees ours.
 */
static void assert_written_as_openssl(char *ours, const char *pem)
{
    char *theirs;

    assert_non_null(ours);
    assert_string_equal(ours, pem);
    theirs = openssl_rewrite(ours);
    assert_non_null(theirs);
    assert_string_equal(ours, theirs);
    assert_openssl_text_equal(ours, pem);
    free(theirs);
    free(ours);
}

/* Parses an EC key, writes it again and checks it is the very PEM OpenSSL writes. */
static void ec_round_trip(const char *pem)
{
    cl__pkcs8 k = {.der = NULL};
    unsigned char d[32] = {0};

    read_ok(pem, &k);
    assert_int_equal(k.type, CL__PKCS8_EC_P256);
    assert_int_equal(k.pub.n, 65);
    assert_true(k.d.n <= 32);
    memcpy(d + 32 - k.d.n, k.d.p, k.d.n);
    assert_written_as_openssl(cl__pkcs8_write_ec(d, k.pub.p), pem);
    cl__pkcs8_free(&k);
}

static void test_pkcs8_ec_writer_matches_openssl(void **state)
{
    (void)state;
    ec_round_trip(EC1_PEM);
    ec_round_trip(ECZ_PEM);
    for (int i = 0; i < 4; i++) {
        char *fresh = openssl((const char *const[]){"genpkey", "-algorithm", "EC", "-pkeyopt",
                                                    "ec_paramgen_curve:P-256", NULL});
        assert_non_null(fresh);
        ec_round_trip(fresh);
        free(fresh);
    }
}

static void rsa_round_trip(const char *pem)
{
    cl__pkcs8 k = {.der = NULL};
    cl__bytes v[8];
    unsigned char padded[8][600];
    char *ours;

    read_ok(pem, &k);
    assert_int_equal(k.type, CL__PKCS8_RSA);
    v[0] = k.rsa_n;
    v[1] = k.rsa_e;
    v[2] = k.rsa_d;
    v[3] = k.rsa_p;
    v[4] = k.rsa_q;
    v[5] = k.rsa_dp;
    v[6] = k.rsa_dq;
    v[7] = k.rsa_qi;
    assert_written_as_openssl(cl__pkcs8_write_rsa(v), pem);
    /* Leading zero bytes on the way in change nothing. */
    for (size_t i = 0; i < 8; i++) {
        assert_true(v[i].n + 3 <= sizeof(padded[i]));
        memset(padded[i], 0, 3);
        memcpy(padded[i] + 3, v[i].p, v[i].n);
        v[i].p = padded[i];
        v[i].n += 3;
    }
    ours = cl__pkcs8_write_rsa(v);
    assert_non_null(ours);
    assert_string_equal(ours, pem);
    free(ours);
    cl__pkcs8_free(&k);
}

static void test_pkcs8_rsa_writer_matches_openssl(void **state)
{
    char *fresh;

    (void)state;
    rsa_round_trip(RSA_PEM);
    fresh = openssl((const char *const[]){"genpkey", "-algorithm", "RSA", "-pkeyopt",
                                          "rsa_keygen_bits:2048", NULL});
    assert_non_null(fresh);
    rsa_round_trip(fresh);
    free(fresh);
}

static void test_pkcs8_rsa_writer_encodes_small_and_zero_integers(void **state)
{
    static const unsigned char top[] = {0x80};
    static const unsigned char zero[] = {0, 0};
    static const unsigned char e[] = {0x01, 0x00, 0x01};
    cl__bytes v[8] = {{top, 1}, {e, 3}, {zero, 2}, {NULL, 0}, {top, 1}, {e, 1}, {e, 3}, {top, 1}};
    cl__pkcs8 k = {.der = NULL};
    buf der;
    char *pem = cl__pkcs8_write_rsa(v);

    (void)state;
    assert_non_null(pem);
    der_of(pem, &der);
    /* OpenSSL parses the structure (the numbers are no key), so check the bytes here. */
    {
        buf want;
        hex_bytes(&want, "30 38 02 01 00 30 0d " OID_RSA " 05 00 04 24 30 22 02 01 00"
                         " 02 02 00 80 02 03 01 00 01 02 01 00 02 01 00 02 02 00 80"
                         " 02 01 01 02 03 01 00 01 02 02 00 80");
        assert_int_equal(der.n, want.n);
        assert_memory_equal(der.b, want.b, want.n);
    }
    read_ok(pem, &k);
    assert_int_equal(k.rsa_d.n, 0);
    assert_int_equal(k.rsa_p.n, 0);
    assert_int_equal(k.rsa_n.n, 1);
    assert_int_equal(k.rsa_n.p[0], 0x80);
    cl__pkcs8_free(&k);
    free(pem);
}

static void test_pkcs8_refuses_other_pem(void **state)
{
    char *text;

    (void)state;
    assert_refused(ENC_PEM, "encrypted");
    assert_refused(ECTRAD_PEM, "label is \"EC PRIVATE KEY\"");
    assert_refused("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                   "label is \"PUBLIC KEY\"");
    assert_refused("", "not PEM");
    assert_refused("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg", "not PEM");
    assert_refused("-----BEGIN PRIVATE KEY-----\nMIGH\n", "no -----END PRIVATE KEY-----");
    assert_refused("-----BEGIN PRIVATE KEY----- x\nMIGH\n-----END PRIVATE KEY-----\n",
                   "BEGIN line");
    /* Two blocks: the second is text after the first's END line. */
    text = malloc(2 * sizeof(EC1_PEM));
    assert_non_null(text);
    snprintf(text, 2 * sizeof(EC1_PEM), "%s%s", EC1_PEM, EC1_PEM);
    assert_refused(text, "text after its END line");
    free(text);
}

static void test_pkcs8_accepts_whitespace_around_the_block(void **state)
{
    char text[sizeof(EC1_PEM) + 16];
    cl__pkcs8 k = {.der = NULL};

    (void)state;
    snprintf(text, sizeof(text), " \n\t%s\n\n  ", EC1_PEM);
    read_ok(text, &k);
    assert_bytes_hex(k.d, EC1_D);
    cl__pkcs8_free(&k);
}

static void test_pkcs8_refuses_other_algorithms_and_curves(void **state)
{
    (void)state;
    assert_refused(P384_PEM, "not on P-256");
    assert_refused(P384_PEM, "1.3.132.0.34");
    assert_refused(ED_PEM, "neither id-ecPublicKey on P-256 nor rsaEncryption");
    assert_refused(ED_PEM, "1.3.101.112");
}

static void test_pkcs8_refuses_malformed_base64(void **state)
{
    char text[sizeof(EC1_PEM)];
    char *line2;

    (void)state;
    /* One character dropped from the middle: the base64 no longer ends on a byte. */
    memcpy(text, EC1_PEM, sizeof(EC1_PEM));
    line2 = strchr(strchr(text, '\n') + 1, '\n') + 1;
    memmove(line2 + 10, line2 + 11, strlen(line2 + 11) + 1);
    assert_refused(text, "base64 is malformed");
    /* A character outside the alphabet. */
    memcpy(text, EC1_PEM, sizeof(EC1_PEM));
    line2 = strchr(strchr(text, '\n') + 1, '\n') + 1;
    line2[5] = '*';
    assert_refused(text, "base64 is malformed");
    /* Padding in the middle. */
    memcpy(text, EC1_PEM, sizeof(EC1_PEM));
    line2 = strchr(strchr(text, '\n') + 1, '\n') + 1;
    line2[4] = '=';
    assert_refused(text, "base64 is malformed");
    /* Truncated at a line: valid base64 of a DER that stops inside the key. */
    memcpy(text, EC1_PEM, sizeof(EC1_PEM));
    line2 = strchr(strchr(text, '\n') + 1, '\n') + 1;
    snprintf(line2, sizeof(text) - (size_t)(line2 - text), "-----END PRIVATE KEY-----\n");
    assert_refused(text, "runs past its container");
}

static void test_pkcs8_refuses_non_canonical_der(void **state)
{
    buf good;
    buf der;

    (void)state;
    der_of(EC1_PEM, &good);
    /* 30 81 87 | 02 01 00 | 30 13 ... | 04 6d 30 6b 02 01 01 04 20 <d> a1 44 03 42 00 04 ... */
    assert_int_equal(good.n, 138);
    assert_int_equal(good.b[27], 0x04);

    der = good;
    add_hex(&der, "00");
    assert_der_refused(&der, "trailing bytes after the key");

    /* The privateKey OCTET STRING claims one byte more than the PrivateKeyInfo holds. */
    der = good;
    der.b[28]++;
    assert_der_refused(&der, "runs past its container");
    /* The outer length claims more than there is. */
    der = good;
    der.b[2]++;
    assert_der_refused(&der, "runs past its container");

    /* 30 82 00 87: the right length, in one byte more than needed. */
    der.n = 0;
    add_hex(&der, "30 82 00 87");
    add(&der, good.b + 3, good.n - 3);
    assert_der_refused(&der, "non-minimal length");
    /* 81 for a length below 128. */
    der = good;
    der.n = 0;
    add(&der, good.b, 6);
    add_hex(&der, "30 81 13");
    add(&der, good.b + 8, good.n - 8);
    der.b[2]++;
    assert_der_refused(&der, "non-minimal length");
    /* An indefinite length. */
    der = good;
    der.n = 0;
    add_hex(&der, "30 80");
    add(&der, good.b + 3, good.n - 3);
    add_hex(&der, "00 00");
    assert_der_refused(&der, "indefinite length");

    /* Versions. */
    der = good;
    der.b[5] = 1;
    assert_der_refused(&der, "PrivateKeyInfo version is not 0");
    der = good;
    der.b[33] = 0;
    assert_der_refused(&der, "ECPrivateKey version is not 1");
    /* A negative and a non-minimal INTEGER as the version. */
    der = good;
    der.b[5] = 0xff;
    assert_der_refused(&der, "negative INTEGER");
    der.n = 0;
    add_hex(&der, "30 81 88 02 02 00 00");
    add(&der, good.b + 6, good.n - 6);
    assert_der_refused(&der, "non-minimally encoded INTEGER");
}

static void test_pkcs8_ec_structure(void **state)
{
    buf inner;
    buf der;
    buf pub;
    cl__pkcs8 k = {.der = NULL};
    char *pem;
    char hex[300];

    (void)state;
    hex_bytes(&pub, EC1_PUB);
    /* No public key: accepted, pub.n == 0. */
    ec1_inner(&inner, "020101", "");
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "");
    pem = pem_of_buf(&der);
    read_ok(pem, &k);
    assert_bytes_hex(k.d, EC1_D);
    assert_int_equal(k.pub.n, 0);
    assert_null(k.pub.p);
    cl__pkcs8_free(&k);
    free(pem);

    /* [0] P-256 inside the ECPrivateKey (as in SEC1 files) and attributes after: accepted. */
    snprintf(hex, sizeof(hex), "a0 0a " OID_P256 " a1 44 03 42 00 %s", EC1_PUB);
    ec1_inner(&inner, "020101", hex);
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "a0 03 02 01 05");
    pem = pem_of_buf(&der);
    read_ok(pem, &k);
    assert_bytes_hex(k.pub, EC1_PUB);
    cl__pkcs8_free(&k);
    free(pem);

    /* [0] naming another curve. */
    ec1_inner(&inner, "020101", "a0 07 " OID_P384);
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "");
    assert_der_refused(&der, "not on P-256");
    /* Explicit curve parameters in the AlgorithmIdentifier. */
    ec1_inner(&inner, "020101", "");
    pkcs8_of(&der, "020100", OID_EC "30 00", &inner, "");
    assert_der_refused(&der, "not on P-256");
    /* No curve at all. */
    pkcs8_of(&der, "020100", OID_EC, &inner, "");
    assert_der_refused(&der, "where the EC key's curve OID should be");

    /* A BIT STRING with unused bits, a compressed point, a short point. */
    snprintf(hex, sizeof(hex), "a1 44 03 42 01 %s", EC1_PUB);
    ec1_inner(&inner, "020101", hex);
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "");
    assert_der_refused(&der, "not an uncompressed P-256 point");
    snprintf(hex, sizeof(hex), "a1 44 03 42 00 02%s", EC1_PUB + 2);
    ec1_inner(&inner, "020101", hex);
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "");
    assert_der_refused(&der, "not an uncompressed P-256 point");
    ec1_inner(&inner, "020101", "a1 04 03 02 00 04");
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "");
    assert_der_refused(&der, "not an uncompressed P-256 point");

    /* Something after the public key, inside and after the ECPrivateKey. */
    snprintf(hex, sizeof(hex), "a1 44 03 42 00 %s 05 00", EC1_PUB);
    ec1_inner(&inner, "020101", hex);
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "");
    assert_der_refused(&der, "trailing bytes after the ECPrivateKey's fields");
    ec1_inner(&inner, "020101", "");
    add_hex(&inner, "00");
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "");
    assert_der_refused(&der, "trailing bytes after the ECPrivateKey");
    /* Something other than attributes after the privateKey. */
    ec1_inner(&inner, "020101", "");
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "05 00");
    assert_der_refused(&der, "trailing bytes after the PrivateKeyInfo's privateKey");

    /* A scalar of 33 bytes, and one stored short (31 bytes): refused, then accepted. */
    inner.n = 0;
    add_hex(&inner, "020101 04 21 01");
    hex_bytes(&der, EC1_D);
    add(&inner, der.b, der.n);
    wrap(&inner, 0x30);
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "");
    assert_der_refused(&der, "longer than 32 bytes");
    inner.n = 0;
    add_hex(&inner, "020101 04 1f");
    hex_bytes(&der, EC1_D);
    add(&inner, der.b + 1, der.n - 1);
    wrap(&inner, 0x30);
    pkcs8_of(&der, "020100", OID_EC OID_P256, &inner, "");
    pem = pem_of_buf(&der);
    read_ok(pem, &k);
    assert_bytes_hex(k.d, EC1_D + 2);
    cl__pkcs8_free(&k);
    free(pem);
    (void)pub;
}

static void test_pkcs8_rsa_structure(void **state)
{
    buf good;
    buf inner;
    buf der;
    cl__pkcs8 k = {.der = NULL};
    char *pem;
    size_t head;

    (void)state;
    der_of(RSA_PEM, &good);
    /* 30 82 xx xx 02 01 00 30 0d <OID_RSA> 05 00 04 82 xx xx <RSAPrivateKey> */
    assert_int_equal(good.b[22], 0x04);
    head = 26;
    inner.n = 0;
    add(&inner, good.b + head, good.n - head);

    /* Absent parameters: accepted. */
    pkcs8_of(&der, "020100", OID_RSA, &inner, "");
    pem = pem_of_buf(&der);
    read_ok(pem, &k);
    assert_bytes_hex(k.rsa_n, RSA_HEX[0]);
    cl__pkcs8_free(&k);
    free(pem);
    /* Parameters other than NULL. */
    pkcs8_of(&der, "020100", OID_RSA "06 00", &inner, "");
    assert_der_refused(&der, "rsaEncryption parameters are not NULL");
    pkcs8_of(&der, "020100", OID_RSA "05 01 00", &inner, "");
    assert_der_refused(&der, "NULL is not empty");
    pkcs8_of(&der, "020100", OID_RSA "05 00 05 00", &inner, "");
    assert_der_refused(&der, "trailing bytes after the rsaEncryption parameters");

    /* Version 1 (multi-prime). RSAPrivateKey: 30 82 xx xx 02 01 00 ... */
    der = good;
    assert_int_equal(der.b[head + 6], 0x00);
    der.b[head + 6] = 1;
    assert_der_refused(&der, "RSAPrivateKey version");
    /* otherPrimeInfos (or anything) after the coefficient. */
    inner.n = 0;
    add(&inner, good.b + head + 4, good.n - head - 4);
    add_hex(&inner, "30 00");
    wrap(&inner, 0x30);
    pkcs8_of(&der, "020100", OID_RSA "05 00", &inner, "");
    assert_der_refused(&der, "trailing bytes after the RSAPrivateKey's coefficient");
    /* A missing coefficient. */
    inner.n = 0;
    add(&inner, good.b + head + 4, good.n - head - 4);
    {
        /* Drop the last INTEGER: walk the elements after the version. */
        size_t off = 3;
        size_t last = 0;
        while (off < inner.n) {
            size_t len = inner.b[off + 1];
            size_t h = 2;
            if (len & 0x80) {
                size_t c = len & 0x7f;
                len = 0;
                for (size_t i = 0; i < c; i++) {
                    len = len << 8 | inner.b[off + 2 + i];
                }
                h += c;
            }
            last = off;
            off += h + len;
        }
        inner.n = last;
    }
    wrap(&inner, 0x30);
    pkcs8_of(&der, "020100", OID_RSA "05 00", &inner, "");
    assert_der_refused(&der, "where the RSA coefficient qinv should be");
}

static void test_pkcs8_writers_output_reads_back(void **state)
{
    unsigned char d[32];
    unsigned char pub[65];
    cl__pkcs8 k = {.der = NULL};
    char *pem;

    (void)state;
    for (size_t i = 0; i < 32; i++) {
        d[i] = (unsigned char)i; /* a leading zero byte: written as 32 bytes regardless */
    }
    pub[0] = 0x04;
    for (size_t i = 1; i < 65; i++) {
        pub[i] = (unsigned char)(0xff - i);
    }
    pem = cl__pkcs8_write_ec(d, pub);
    assert_non_null(pem);
    assert_int_equal(strlen(pem), strlen(EC1_PEM));
    read_ok(pem, &k);
    assert_int_equal(k.d.n, 32);
    assert_memory_equal(k.d.p, d, 32);
    assert_int_equal(k.pub.n, 65);
    assert_memory_equal(k.pub.p, pub, 65);
    cl__pkcs8_free(&k);
    free(pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pkcs8_reads_openssl_ec_keys),
        cmocka_unit_test(test_pkcs8_reads_openssl_rsa_key),
        cmocka_unit_test(test_pkcs8_ec_writer_matches_openssl),
        cmocka_unit_test(test_pkcs8_rsa_writer_matches_openssl),
        cmocka_unit_test(test_pkcs8_rsa_writer_encodes_small_and_zero_integers),
        cmocka_unit_test(test_pkcs8_writers_output_reads_back),
        cmocka_unit_test(test_pkcs8_refuses_other_pem),
        cmocka_unit_test(test_pkcs8_accepts_whitespace_around_the_block),
        cmocka_unit_test(test_pkcs8_refuses_other_algorithms_and_curves),
        cmocka_unit_test(test_pkcs8_refuses_malformed_base64),
        cmocka_unit_test(test_pkcs8_refuses_non_canonical_der),
        cmocka_unit_test(test_pkcs8_ec_structure),
        cmocka_unit_test(test_pkcs8_rsa_structure),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
