/*
 * libcleave-compat-ssl.so: what civetweb 1.15 as packaged needs from "libssl.so" and
 * OpenSSL 3 no longer exports (ADR 0035).
 *
 * civetweb loads OpenSSL itself, dlopen("libssl.so") then dlsym() for each function, and
 * Debian's build still looks up SSL_get_peer_certificate, which OpenSSL 3 renamed to
 * SSL_get1_peer_certificate (the old name is only a macro now). The pointer stays NULL
 * and the first TLS connection calls it. This object's SONAME is "libssl.so": once the
 * platform has loaded it (cl__http_tls_load_compat), the dynamic loader answers
 * civetweb's dlopen("libssl.so") with it, and dlsym() on that handle searches it and then
 * its dependencies, the real libssl.so.3 and libcrypto.so.3, for everything else.
 */
#include <openssl/ssl.h>

/* The header maps the old name onto the new one; the old one is what must exist here. */
#undef SSL_get_peer_certificate

X509 *SSL_get_peer_certificate(const SSL *s);

/* Same contract as the 1.1 function: a new reference the caller frees (X509_free). */
X509 *SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}
