/* SPDX-License-Identifier: MIT */
/*
 * Status codes of libutxocache. Every public function that can fail returns
 * one of these: UC_OK (0) on success, a positive outcome such as UC_MISS
 * where "not there" is a normal answer, and a negative code on failure. The
 * codes, their names and their messages come from one table, UC_ERRNO_MAP,
 * so they can never drift apart. The strings returned here are static and
 * must not be freed.
 */
#ifndef UTXOCACHE_ERROR_H
#define UTXOCACHE_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define UC_ERRNO_MAP(X)                                                        \
    X(OK, 0, "success")                                                        \
    X(MISS, 1, "not in the cache")                                             \
    X(ENOMEM, -1, "out of memory")                                             \
    X(EINVAL, -2, "invalid argument")                                          \
    X(ECONFIG, -3, "invalid configuration")                                    \
    X(EUNAVAILABLE, -4, "cache unavailable")                                   \
    X(ETIMEDOUT, -5, "timed out")                                              \
    X(EIO, -6, "input/output error")                                           \
    X(EPROTO, -7, "protocol error")                                            \
    X(EAUTH, -8, "authentication failed")                                      \
    X(ETOOBIG, -9, "value too large")                                          \
    X(EPOOL, -10, "no connection available before the acquire timeout")        \
    X(ESERVER, -11, "server returned an error")                                \
    X(ECORRUPT, -12, "cached value rejected by the validator")                 \
    X(ENOTSUP, -13, "not supported by this backend")                           \
    X(ERESOLVE, -14, "host name does not resolve")                             \
    X(ECONNREFUSED, -15, "connection refused")                                 \
    X(ESTALE, -16, "value superseded by a newer write")

typedef enum {
#define UC__ERR_ENUM(name, value, msg) UC_##name = (value),
    UC_ERRNO_MAP(UC__ERR_ENUM)
#undef UC__ERR_ENUM
} uc_status_t;

/*
 * Returns the message for a status ("connection refused"), or
 * "unknown status" for a value not in the table. Never NULL.
 */
UC_EXPORT const char *uc_strerror(int status);

/*
 * Returns the symbolic name of a status ("UC_ECONNREFUSED"), or
 * "UC_UNKNOWN" for a value not in the table. Never NULL.
 */
UC_EXPORT const char *uc_err_name(int status);

#ifdef __cplusplus
}
#endif
#endif /* UTXOCACHE_ERROR_H */
