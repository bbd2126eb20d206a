/*
 * libcleave-compat-crypto.so: an empty object whose SONAME is "libcrypto.so" and which
 * depends on libcrypto.so.3 (ADR 0035).
 *
 * civetweb 1.15 dlopen()s "libcrypto.so" before "libssl.so". That unversioned name is a
 * symbolic link shipped only by libssl-dev, so a machine or container without development
 * packages has no such file. Once the platform has loaded this object, the dynamic loader
 * answers that dlopen() with it, and dlsym() finds every function in libcrypto.so.3.
 */

/* ISO C wants at least one declaration in a translation unit; nothing uses it. */
extern const int cleave_compat_crypto;
const int cleave_compat_crypto = 1;
