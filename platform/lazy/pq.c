/*
 * libpq, loaded on the first call (lazy.h, ADR 0047): what the PostgreSQL driver and its
 * migrations call. A process on SQLite never maps libpq, nor the GnuTLS, LDAP and
 * Kerberos libraries it links.
 */
#include <libpq-fe.h>

#include "lazy.h"

/* Every function of libpq the tree calls. */
#define PQ_FUNCTIONS(R, V, N)                                                                      \
    R(PGconn *, PQconnectdb, (const char *conninfo), (conninfo))                                   \
    R(PGconn *, PQconnectdbParams,                                                                 \
      (const char *const *keywords, const char *const *values, int expand_dbname),                 \
      (keywords, values, expand_dbname))                                                           \
    V(PQfinish, (PGconn * conn), (conn))                                                           \
    R(PQconninfoOption *, PQconninfoParse, (const char *conninfo, char **errmsg),                  \
      (conninfo, errmsg))                                                                          \
    V(PQconninfoFree, (PQconninfoOption * options), (options))                                     \
    R(ConnStatusType, PQstatus, (const PGconn *conn), (conn))                                      \
    R(PGTransactionStatusType, PQtransactionStatus, (const PGconn *conn), (conn))                  \
    R(char *, PQerrorMessage, (const PGconn *conn), (conn))                                        \
    R(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn * conn, PQnoticeProcessor proc, void *arg), \
      (conn, proc, arg))                                                                           \
    R(PGresult *, PQexec, (PGconn * conn, const char *query), (conn, query))                       \
    R(PGresult *, PQprepare,                                                                       \
      (PGconn * conn, const char *name, const char *query, int n, const Oid *types),               \
      (conn, name, query, n, types))                                                               \
    R(PGresult *, PQexecPrepared,                                                                  \
      (PGconn * conn, const char *name, int n, const char *const *values, const int *lengths,      \
       const int *formats, int resultFormat),                                                      \
      (conn, name, n, values, lengths, formats, resultFormat))                                     \
    R(ExecStatusType, PQresultStatus, (const PGresult *res), (res))                                \
    R(char *, PQresultErrorMessage, (const PGresult *res), (res))                                  \
    R(char *, PQresultErrorField, (const PGresult *res, int code), (res, code))                    \
    R(int, PQntuples, (const PGresult *res), (res))                                                \
    R(char *, PQcmdTuples, (PGresult * res), (res))                                                \
    R(int, PQnfields, (const PGresult *res), (res))                                                \
    R(char *, PQgetvalue, (const PGresult *res, int tup_num, int field_num),                       \
      (res, tup_num, field_num))                                                                   \
    R(int, PQgetisnull, (const PGresult *res, int tup_num, int field_num),                         \
      (res, tup_num, field_num))                                                                   \
    V(PQclear, (PGresult * res), (res))                                                            \
    V(PQfreemem, (void *ptr), (ptr))

CL__LAZY_SHIM(PQ_FUNCTIONS, CLEAVE_LAZY_SONAME)
