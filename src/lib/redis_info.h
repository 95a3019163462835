/* SPDX-License-Identifier: MIT */
/*
 * Internal to the library: the parser of Redis INFO replies used by the
 * redis backend (redis.c). It is declared here rather than kept static so
 * that a fuzz target (tests/fuzz/fuzz_redis_info.c) can feed it arbitrary
 * bytes, since a reply is whatever the server, or anything posing as it,
 * sends.
 */
#ifndef UC_REDIS_INFO_H
#define UC_REDIS_INFO_H

#include <stddef.h>

#include <utxocache/cache.h>

/*
 * Reads the "name:value" lines of one INFO section, text[0..len) (need not
 * be NUL-terminated; lines end in "\n" or "\r\n"), into out: used_memory,
 * maxmemory, evicted_keys, expired_keys, keyspace_hits, keyspace_misses as
 * decimal unsigned 64-bit numbers, redis_version (cut to fit, always
 * NUL-terminated), and the keys= count of the "db<db>:" line. A field that
 * is absent or does not parse leaves its member as it was; the parser never
 * reads outside text and never fails.
 */
void uc__redis_parse_info(const char *text, size_t len, int db,
                          uc_server_info_t *out);

#endif
