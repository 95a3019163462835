/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by cache.c and keyspace.c: the handle and keyspace
 * structs, and the compiled form of a key pattern.
 */
#ifndef UC_LIB_CACHE_INT_H
#define UC_LIB_CACHE_INT_H

#include "backend.h"
#include "stats.h"
#include "utxocache/keyspace.h"

#define UC__KEYSPACES_MAX 64
/* Reserved for generation counters; no keyspace pattern may start so. */
#define UC__GEN_ENTRY "uc:g:"
#define UC__GEN_SPACE "uc:G:"

/* One piece of a compiled pattern: literal text or a field slot. */
typedef struct {
    const char *lit; /* NULL for a field */
    size_t len;
    size_t field; /* index, when lit == NULL */
} uc__part_t;

struct uc_keyspace {
    uc_cache_t *cache;
    char name[UC_KEYSPACE_NAME_MAX];
    const char *pattern;
    uint32_t ttl_s;
    size_t nfields;
    char fields[UC_KEYSPACE_FIELDS_MAX][UC_KEYSPACE_NAME_MAX];
    size_t nparts;
    uc__part_t parts[2 * UC_KEYSPACE_FIELDS_MAX + 1];
    uc__stats_t stats;
};

struct uc_cache {
    uc__env_t env;
    uc__backend_t *be;
    size_t plen; /* strlen(env.cfg.key_prefix) */
    uc__stats_t totals;
    size_t nks;
    uc_keyspace_t *ks[UC__KEYSPACES_MAX];
};

/*
 * Compiles def into ks (name, fields, parts). Returns UC_OK or UC_EINVAL with
 * a message in err.
 */
int uc__keyspace_compile(uc_keyspace_t *ks, const uc_keyspace_def_t *def,
                         char *err, size_t errlen);

/*
 * Writes the key of ks for the given fields into buf; a NULL field is
 * written as the glob '*' when `glob` is set and is an error otherwise.
 */
int uc__keyspace_build(const uc_keyspace_t *ks, const char *const *fields,
                       size_t nfields, int glob, char *buf, size_t cap,
                       size_t *len);

/*
 * Nonzero when key[0..klen) (without prefix) has exactly ks's shape and
 * agrees with every non-NULL field (already escaped in `escaped`).
 */
int uc__keyspace_matches(const uc_keyspace_t *ks, const char *key, size_t klen,
                         const char *const *escaped);

#endif
