/*
 * Test support: a throwaway PKI for mutual TLS (ADR 0035), made by the
 * openssl command in a directory of the test's, valid for a day, P-256 keys:
 *
 *   ca.crt/.key        the deployment's CA
 *   server.crt/.key    a service's certificate, subjectAltName 127.0.0.1 and localhost
 *   host.crt/.key      a client certificate (EKU clientAuth) that ca signed
 *   other-ca.crt/.key  another CA
 *   stranger.crt/.key  a client certificate that other-ca signed
 */
#ifndef CLEAVE_TEST_TLS_CERTS_H
#define CLEAVE_TEST_TLS_CERTS_H

#include <stddef.h>

/* Makes every file above in dir (which must exist). Returns 0, or -1 after printing why. */
int test_tls_make(const char *dir);

/* "<dir>/<name>.<ext>" into buf[size]; returns buf. */
char *test_tls_file(char *buf, size_t size, const char *dir, const char *name, const char *ext);

/*
 * "KEY=<dir>/<name>.<ext>" into buf[size], a setting for a process's environment
 * ("CLEAVE_TLS_CERT", "server", "crt"); returns buf.
 */
char *test_tls_setting(char *buf, size_t size, const char *key, const char *dir, const char *name,
                       const char *ext);

#endif
