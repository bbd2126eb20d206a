/*
 * TLS for the HTTP server: the server's own SSL_CTX, built here with OpenSSL and handed to
 * civetweb (its external_ssl_ctx callback), and the compatibility objects that civetweb
 * 1.15 as packaged needs to run TLS with OpenSSL 3 at all (ADR 0035).
 */
/* dlinfo() and Dl_serinfo are GNU extensions. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cleave/util.h"
#include "http_internal.h"

/* Set by the build: where the compatibility objects are, relative to the binary's folder. */
#ifndef CLEAVE_TLS_COMPAT_RELDIR
#define CLEAVE_TLS_COMPAT_RELDIR "../lib/cleave"
#endif

/*
 * TLS 1.2 ciphers: forward secrecy and AEAD only. TLS 1.3 has its own list, whose
 * OpenSSL default (AES-GCM and ChaCha20-Poly1305) is kept.
 */
#define TLS_CIPHERS_12   "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
/* Intermediate CAs allowed between a client's certificate and the trusted CA. */
#define TLS_VERIFY_DEPTH 4

static pthread_once_t compat_once = PTHREAD_ONCE_INIT;
static cl_status compat_status = CL_OK;
static char compat_message[256];

/* The newest OpenSSL error as text (or what failed, when OpenSSL recorded nothing). */
static const char *openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();

    if (e == 0) {
        cl_strlcpy(buf, "no reason given", len);
    } else {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

/*
 * dlopen()s lib from each folder the executable's own search path names: its RUNPATH (a
 * binary built against the installed platform gets the install's lib/cleave there),
 * LD_LIBRARY_PATH, the system's. Done here rather than by dlopen(lib): glibc searches the
 * RUNPATH of the object that calls dlopen, and under AddressSanitizer that is the
 * sanitizer's runtime, not the executable.
 */
static void *open_on_search_path(const char *lib)
{
    void *self = dlopen(NULL, RTLD_LAZY);
    Dl_serinfo size;
    Dl_serinfo *info = NULL;
    void *h = NULL;

    if (self == NULL || dlinfo(self, RTLD_DI_SERINFOSIZE, &size) != 0) {
        goto out;
    }
    info = malloc(size.dls_size);
    if (info == NULL) {
        goto out;
    }
    *info = size;
    if (dlinfo(self, RTLD_DI_SERINFOSIZE, info) != 0 || dlinfo(self, RTLD_DI_SERINFO, info) != 0) {
        goto out;
    }
    for (unsigned i = 0; h == NULL && i < info->dls_cnt; i++) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s", info->dls_serpath[i].dls_name, lib);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
out:
    free(info);
    if (self != NULL) {
        dlclose(self);
    }
    return h;
}

/*
 * dlopen()s lib from the folder the build and the install put it in, relative to this
 * binary, else from the executable's search path, so that a binary built against the
 * installed platform elsewhere finds it too (cleave_add_host gives it the RUNPATH).
 */
static void *open_compat(const char *lib, char *why, size_t whylen)
{
    char exe[PATH_MAX];
    char path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    void *h = NULL;

    if (n > 0) {
        char *slash;

        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(path, sizeof(path), "%s/%s/%s", exe, CLEAVE_TLS_COMPAT_RELDIR, lib);
            h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        }
    }
    if (h == NULL) {
        h = open_on_search_path(lib);
    }
    if (h == NULL) {
        snprintf(why, whylen, "%s: not next to the binary (%s) nor on its library path", lib,
                 CLEAVE_TLS_COMPAT_RELDIR);
    }
    return h;
}

static void load_compat(void)
{
    char why[160] = "";
    void *ssl;

    /*
     * Loaded for good, never closed: civetweb keeps what it dlsym()ed for the life of the
     * process. Crypto first, as civetweb loads them in that order.
     */
    if (open_compat("libcleave-compat-crypto.so", why, sizeof(why)) == NULL ||
        open_compat("libcleave-compat-ssl.so", why, sizeof(why)) == NULL) {
        compat_status = CL_UNAVAILABLE;
        snprintf(compat_message, sizeof(compat_message),
                 "TLS needs Cleave's OpenSSL 3 shim for civetweb (installed in lib/cleave): %.150s",
                 why);
        return;
    }
    /* What civetweb's own dlopen("libssl.so") will get must have the missing function. */
    ssl = dlopen("libssl.so", RTLD_LAZY | RTLD_NOLOAD);
    if (ssl == NULL || dlsym(ssl, "SSL_get_peer_certificate") == NULL) {
        compat_status = CL_UNAVAILABLE;
        snprintf(compat_message, sizeof(compat_message),
                 "TLS: the libssl.so civetweb loads lacks SSL_get_peer_certificate");
    }
    if (ssl != NULL) {
        dlclose(ssl);
    }
}

cl_status cl__http_tls_load_compat(cl_error *err)
{
    pthread_once(&compat_once, load_compat);
    if (compat_status != CL_OK) {
        return cl_error_set(err, compat_status, NULL, "%s", compat_message);
    }
    return CL_OK;
}

/* CL_INVALID naming setting when path cannot be read by this process. */
static cl_status check_readable(const char *setting, const char *path, cl_error *err)
{
    if (access(path, R_OK) != 0) {
        return cl_error_set(err, CL_INVALID, setting, "%s: cannot read '%s': %s", setting, path,
                            strerror(errno));
    }
    return CL_OK;
}

cl_status cl__http_tls_server_ctx(const cl_http_options *opt, void **out, cl_error *err)
{
    static const unsigned char session_context[] = "cleave";
    const struct {
        const char *setting;
        const char *path;
    } files[] = {
        {"CLEAVE_TLS_CERT", opt->tls_cert},
        {"CLEAVE_TLS_KEY", opt->tls_key},
        {"CLEAVE_TLS_CLIENT_CA", opt->tls_client_ca},
    };
    char reason[256];
    SSL_CTX *ctx = NULL;
    cl_status st = CL_OK;

    /* Mutual TLS or none: a listener that served TLS without checking clients would let
     * anyone who reaches it in, which is exactly what the settings are there to stop. */
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i].path == NULL || files[i].path[0] == '\0') {
            return cl_error_set(err, CL_INVALID, files[i].setting,
                                "TLS is half configured: %s is not set (mutual TLS needs "
                                "CLEAVE_TLS_CERT, CLEAVE_TLS_KEY and CLEAVE_TLS_CLIENT_CA)",
                                files[i].setting);
        }
        st = check_readable(files[i].setting, files[i].path, err);
        if (st != CL_OK) {
            return st;
        }
    }
    st = cl__http_tls_load_compat(err);
    if (st != CL_OK) {
        return st;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "TLS: cannot create a context: %s",
                          openssl_reason(reason, sizeof(reason)));
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "TLS: cipher list: %s",
                          openssl_reason(reason, sizeof(reason)));
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, opt->tls_cert) != 1) {
        st = cl_error_set(err, CL_INVALID, "CLEAVE_TLS_CERT",
                          "CLEAVE_TLS_CERT: '%s' is not a PEM certificate (chain): %s",
                          opt->tls_cert, openssl_reason(reason, sizeof(reason)));
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, opt->tls_key, SSL_FILETYPE_PEM) != 1) {
        st = cl_error_set(err, CL_INVALID, "CLEAVE_TLS_KEY",
                          "CLEAVE_TLS_KEY: '%s' is not an unencrypted PEM private key: %s",
                          opt->tls_key, openssl_reason(reason, sizeof(reason)));
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        st = cl_error_set(err, CL_INVALID, "CLEAVE_TLS_KEY",
                          "CLEAVE_TLS_KEY: '%s' does not belong to CLEAVE_TLS_CERT '%s'",
                          opt->tls_key, opt->tls_cert);
        ERR_clear_error();
        goto out;
    }
    /* Only this CA: never the system's store, which vouches for the whole web. */
    if (SSL_CTX_load_verify_locations(ctx, opt->tls_client_ca, NULL) != 1) {
        st = cl_error_set(err, CL_INVALID, "CLEAVE_TLS_CLIENT_CA",
                          "CLEAVE_TLS_CLIENT_CA: '%s' holds no PEM CA certificate: %s",
                          opt->tls_client_ca, openssl_reason(reason, sizeof(reason)));
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
    /*
     * Resumed sessions are refused when a server that verifies clients has no session id
     * context: without one, a client's second connection could fail its handshake.
     */
    SSL_CTX_set_session_id_context(ctx, session_context, sizeof(session_context) - 1);
    *out = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    return st;
}

void cl__http_tls_free(void *ctx)
{
    SSL_CTX_free(ctx);
}
