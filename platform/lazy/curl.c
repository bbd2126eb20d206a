/*
 * libcurl, loaded on the first call (lazy.h, ADR 0047): what the remote bindings, the
 * span exporter and `cleave advise` call. A process that never calls them never maps
 * libcurl, nor the GnuTLS, LDAP, Kerberos, SSH and RTMP libraries it links.
 */
#define CURL_DISABLE_TYPECHECK /* its macros would rename curl_easy_setopt's definition */
#include <curl/curl.h>
#include <stdarg.h>

#include "lazy.h"

/* Every function of libcurl the tree calls; the variadic two are written out below. */
#define CURL_FUNCTIONS(R, V, N)                                                                    \
    R(CURLcode, curl_global_init, (long flags), (flags))                                           \
    V(curl_global_cleanup, (void), ())                                                             \
    R(CURL *, curl_easy_init, (void), ())                                                          \
    R(CURLcode, curl_easy_perform, (CURL * curl), (curl))                                          \
    V(curl_easy_cleanup, (CURL * curl), (curl))                                                    \
    V(curl_easy_reset, (CURL * curl), (curl))                                                      \
    R(const char *, curl_easy_strerror, (CURLcode code), (code))                                   \
    R(struct curl_slist *, curl_slist_append, (struct curl_slist * list, const char *data),        \
      (list, data))                                                                                \
    V(curl_slist_free_all, (struct curl_slist * list), (list))                                     \
    R(CURLcode, curl_easy_send, (CURL * curl, const void *buffer, size_t buflen, size_t *n),       \
      (curl, buffer, buflen, n))                                                                   \
    R(CURLcode, curl_easy_recv, (CURL * curl, void *buffer, size_t buflen, size_t *n),             \
      (curl, buffer, buflen, n))                                                                   \
    N(curl_easy_setopt)                                                                            \
    N(curl_easy_getinfo)

CL__LAZY_SHIM(CURL_FUNCTIONS, CLEAVE_LAZY_SONAME)

typedef CURLcode (*setopt_fn)(CURL *, CURLoption, ...);
typedef CURLcode (*getinfo_fn)(CURL *, CURLINFO, ...);

/*
 * curl_easy_setopt takes one argument after the option, of the type the option's number
 * says (CURLOPTTYPE_* in curl.h): it is read as that type and passed on as that type, as
 * libcurl reads it.
 */
CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
    setopt_fn real = (setopt_fn)cl__lazy_get(&lazy_lib, cl__lazy_i_curl_easy_setopt);
    CURLcode rc;
    va_list ap;

    va_start(ap, option);
    /*
     * The option numbers of one type are that type's CURLOPTTYPE_* plus less than 10000.
     * The branches differ only in va_arg's type, which bugprone-branch-clone ignores.
     */
    /* NOLINTBEGIN(bugprone-branch-clone) */
    switch ((int)option / 10000 * 10000) {
    case CURLOPTTYPE_LONG:
        rc = real(curl, option, va_arg(ap, long));
        break;
    case CURLOPTTYPE_FUNCTIONPOINT:
        rc = real(curl, option, va_arg(ap, cl__lazy_fn));
        break;
    case CURLOPTTYPE_OFF_T:
        rc = real(curl, option, va_arg(ap, curl_off_t));
        break;
    default:
        /* OBJECTPOINT (strings, lists, callbacks' data) and BLOB: a pointer. */
        rc = real(curl, option, va_arg(ap, void *));
        break;
    }
    /* NOLINTEND(bugprone-branch-clone) */
    va_end(ap);
    return rc;
}

/* curl_easy_getinfo's one argument after the info is a pointer to the result, always. */
CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
    getinfo_fn real = (getinfo_fn)cl__lazy_get(&lazy_lib, cl__lazy_i_curl_easy_getinfo);
    CURLcode rc;
    va_list ap;

    va_start(ap, info);
    rc = real(curl, info, va_arg(ap, void *));
    va_end(ap);
    return rc;
}
