/* SPDX-License-Identifier: MIT */
/*
 * A bound on what one reply may make hiredis allocate. hiredis 0.14's
 * reader allocates an array's element list as soon as it reads the
 * "*<count>" header, with no limit: twelve bytes from the server
 * ("*1000000000\r\n") ask for 8 GB. A server is not to be trusted that
 * far (a compromised or impersonated Redis, a proxy gone wrong), so every
 * reader the library uses counts the elements of the reply it is building,
 * nested arrays included, and refuses a reply that announces more than its
 * limit: the read fails as out of memory before anything is allocated, and
 * the connection is dropped like any broken one.
 *
 * The guard is the caller's (one per connection), installed once on the
 * connection's reader; it is not thread-safe, as the reader is not.
 */
#ifndef UC_LIB_REPLY_GUARD_H
#define UC_LIB_REPLY_GUARD_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* Elements one reply may hold in all, by default: far above any reply the
 * library asks for (a SCAN page, CLUSTER SHARDS), except a multi-get of
 * more keys, which raises the limit for its own reply. */
#define UC__REPLY_ELEMENTS_DEFAULT ((size_t)1 << 20)

typedef struct {
    size_t limit; /* elements one reply may hold */
    size_t used;  /* in the reply being read */
} uc__reply_guard_t;

/* Installs g (limit UC__REPLY_ELEMENTS_DEFAULT) on the reader r. */
void uc__reply_guard_install(redisReader *r, uc__reply_guard_t *g);

#endif
