/*
 * libssl, loaded on the first call (lazy.h, ADR 0047): what the HTTP server's TLS set-up
 * (platform/http/tls.c) calls to build its SSL_CTX. A server without CLEAVE_TLS_CERT never
 * maps libssl: loading it alone cost some 250 KB resident (its relocations and data), for
 * a library that only TLS uses. libcrypto is loaded likewise (crypto.c).
 */
#include <openssl/ssl.h>

#include "lazy.h"

/* Every function of libssl the tree calls; the SSL_CTX_set_* macros go through ctrl. */
#define SSL_FUNCTIONS(R, V, N)                                                                     \
    R(const SSL_METHOD *, TLS_server_method, (void), ())                                           \
    R(SSL_CTX *, SSL_CTX_new, (const SSL_METHOD *meth), (meth))                                    \
    V(SSL_CTX_free, (SSL_CTX * ctx), (ctx))                                                        \
    R(long, SSL_CTX_ctrl, (SSL_CTX * ctx, int cmd, long larg, void *parg), (ctx, cmd, larg, parg)) \
    R(uint64_t, SSL_CTX_set_options, (SSL_CTX * ctx, uint64_t op), (ctx, op))                      \
    R(int, SSL_CTX_set_cipher_list, (SSL_CTX * ctx, const char *str), (ctx, str))                  \
    R(int, SSL_CTX_use_certificate_chain_file, (SSL_CTX * ctx, const char *file), (ctx, file))     \
    R(int, SSL_CTX_use_PrivateKey_file, (SSL_CTX * ctx, const char *file, int type),               \
      (ctx, file, type))                                                                           \
    R(int, SSL_CTX_check_private_key, (const SSL_CTX *ctx), (ctx))                                 \
    R(int, SSL_CTX_load_verify_locations, (SSL_CTX * ctx, const char *file, const char *path),     \
      (ctx, file, path))                                                                           \
    V(SSL_CTX_set_verify, (SSL_CTX * ctx, int mode, SSL_verify_cb callback),                       \
      (ctx, mode, callback))                                                                       \
    V(SSL_CTX_set_verify_depth, (SSL_CTX * ctx, int depth), (ctx, depth))                          \
    R(int, SSL_CTX_set_session_id_context,                                                         \
      (SSL_CTX * ctx, const unsigned char *sid_ctx, unsigned int sid_ctx_len),                     \
      (ctx, sid_ctx, sid_ctx_len))

CL__LAZY_SHIM(SSL_FUNCTIONS, CLEAVE_LAZY_SONAME)
