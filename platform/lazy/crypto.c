/*
 * libcrypto, loaded on the first call (lazy.h, ADR 0047, ADR 0060): what the HTTP server's
 * TLS set-up (platform/http/tls.c) calls besides libssl, to read OpenSSL's error queue.
 * Tokens and hashes are Nettle's, so a server without CLEAVE_TLS_CERT never maps libcrypto,
 * which cost 1.4 MB resident loaded and 4 MB once OpenSSL 3 had initialised itself.
 */
#include <openssl/err.h>

#include "lazy.h"

/* Every function of libcrypto the tree's executables call. */
#define CRYPTO_FUNCTIONS(R, V, N)                                                                  \
    R(unsigned long, ERR_peek_last_error, (void), ())                                              \
    V(ERR_error_string_n, (unsigned long e, char *buf, size_t len), (e, buf, len))                 \
    V(ERR_clear_error, (void), ())

CL__LAZY_SHIM(CRYPTO_FUNCTIONS, CLEAVE_LAZY_SONAME)
