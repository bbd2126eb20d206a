/*
 * Test support: a throwaway PKI for mutual TLS, made by the openssl command (tls_certs.h).
 */
#include "tls_certs.h"

#include <stdio.h>

#include "proc.h"

#define TLS_PATH_LEN 512

char *test_tls_file(char *buf, size_t size, const char *dir, const char *name, const char *ext)
{
    snprintf(buf, size, "%s/%s.%s", dir, name, ext);
    return buf;
}

char *test_tls_setting(char *buf, size_t size, const char *key, const char *dir, const char *name,
                       const char *ext)
{
    snprintf(buf, size, "%s=%s/%s.%s", key, dir, name, ext);
    return buf;
}

/* Runs the openssl command; 0, or -1 after printing what it said. */
static int run_openssl(char *const argv[])
{
    char out[4096];

    if (test_run(CLEAVE_OPENSSL, argv, NULL, out, sizeof(out)) != 0) {
        fprintf(stderr, "openssl %s failed:\n%s\n", argv[1], out);
        return -1;
    }
    return 0;
}

/* A self-signed CA <name>.crt with its key <name>.key. */
static int make_ca(const char *dir, const char *name)
{
    char key[TLS_PATH_LEN], crt[TLS_PATH_LEN], subj[64];
    char *argv[] = {
        "openssl", "req",     "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes",  "-keyout", key,     "-out",    crt,  "-subj",    subj,
        "-days",   "1",       NULL};

    test_tls_file(key, sizeof(key), dir, name, "key");
    test_tls_file(crt, sizeof(crt), dir, name, "crt");
    snprintf(subj, sizeof(subj), "/CN=%s", name);
    return run_openssl(argv);
}

/* A certificate <name>.crt and key <name>.key signed by ca, with the extensions ext. */
static int make_leaf(const char *dir, const char *name, const char *ca, const char *ext)
{
    char key[TLS_PATH_LEN], csr[TLS_PATH_LEN], crt[TLS_PATH_LEN], extf[TLS_PATH_LEN];
    char ca_crt[TLS_PATH_LEN], ca_key[TLS_PATH_LEN], subj[64];
    char *req[] = {
        "openssl", "req",     "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes",  "-keyout", key,    "-out",    csr,  "-subj",    subj,
        NULL};
    char *sign[] = {"openssl", "x509", "-req", "-in",   csr, "-CA",      ca_crt, "-CAkey",
                    ca_key,    "-out", crt,    "-days", "1", "-extfile", extf,   "-CAcreateserial",
                    NULL};
    FILE *f;

    test_tls_file(key, sizeof(key), dir, name, "key");
    test_tls_file(csr, sizeof(csr), dir, name, "csr");
    test_tls_file(crt, sizeof(crt), dir, name, "crt");
    test_tls_file(extf, sizeof(extf), dir, name, "ext");
    test_tls_file(ca_crt, sizeof(ca_crt), dir, ca, "crt");
    test_tls_file(ca_key, sizeof(ca_key), dir, ca, "key");
    snprintf(subj, sizeof(subj), "/CN=%s", name);
    f = fopen(extf, "w");
    if (f == NULL) {
        perror(extf);
        return -1;
    }
    fputs(ext, f);
    fclose(f);
    return run_openssl(req) == 0 && run_openssl(sign) == 0 ? 0 : -1;
}

int test_tls_make(const char *dir)
{
    if (make_ca(dir, "ca") != 0 || make_ca(dir, "other-ca") != 0 ||
        make_leaf(dir, "server", "ca",
                  "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n") !=
            0 ||
        make_leaf(dir, "host", "ca", "extendedKeyUsage=clientAuth\n") != 0 ||
        make_leaf(dir, "stranger", "other-ca", "extendedKeyUsage=clientAuth\n") != 0) {
        return -1;
    }
    return 0;
}
