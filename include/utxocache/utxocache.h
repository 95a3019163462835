/* SPDX-License-Identifier: MIT */
/*
 * libutxocache umbrella header: include this one. The library is a cache for
 * C services that sit in front of a database: Redis (through hiredis, with a
 * bounded connection pool and a circuit breaker) or an in-process LRU store,
 * typed keyspaces with TTLs, cache-aside get-or-load, and statistics.
 * Every module header states its ownership and thread-safety rules.
 */
#ifndef UTXOCACHE_H
#define UTXOCACHE_H

#include "cache.h"
#include "config.h"
#include "error.h"
#include "export.h"
#include "invlog.h"
#include "keyspace.h"

/*
 * UC_VERSION_MAJOR, _MINOR, _PATCH and UC_VERSION_STRING. The build generates
 * this header from the project's version, so it is found on the include path
 * (the build tree's or the installed one) rather than beside this file.
 */
#include <utxocache/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string, for checking the runtime against headers. */
UC_EXPORT const char *uc_version(void);

#ifdef __cplusplus
}
#endif
#endif /* UTXOCACHE_H */
