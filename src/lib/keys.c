/* SPDX-License-Identifier: MIT */
/*
 * Every key shape the library writes, in one place: the prefix, an entry's
 * key, and the invalidation targets that cover entries. A target is a key
 * of its keyspace's shape in which a field may be '*' ("any value"). Field
 * values are escaped (keyspace.c), so they never hold '*' or ':', which is
 * why a '*' here stands for exactly one field: the bytes up to the next ':'.
 * The dataset marker (redis.c, "uc:dataset") and leases (which live in the
 * entry's own key) need no other shape.
 */
#include <string.h>

#include "cache_int.h"

size_t uc__full_key(const uc_cache_t *c, const char *key, size_t klen,
                    char *buf)
{
    if (klen > UC_KEY_MAX || (klen > 0 && key == NULL)) {
        return 0;
    }
    memcpy(buf, c->env.cfg.key_prefix, c->plen);
    if (klen > 0) {
        memcpy(buf + c->plen, key, klen);
    }
    buf[c->plen + klen] = '\0';
    return c->plen + klen;
}

int uc__entry_key(const uc_keyspace_t *ks, const char *const *fields,
                  size_t nfields, char *fk, size_t *fklen)
{
    char key[UC_KEY_MAX + 1];
    size_t klen;
    int rc =
        uc__keyspace_build(ks, fields, nfields, 0, key, sizeof(key), &klen);

    if (rc != UC_OK) {
        return rc == UC_ETOOBIG ? UC_EINVAL : rc;
    }
    *fklen = uc__full_key(ks->cache, key, klen, fk);
    return *fklen > 0 ? UC_OK : UC_EINVAL;
}

int uc__target_covers(const char *target, const char *key, size_t klen)
{
    size_t k = 0;

    for (const char *t = target; *t != '\0'; t++) {
        if (*t == '*') {
            size_t start = k;
            while (k < klen && key[k] != ':') {
                k++;
            }
            if (k == start) {
                return 0;
            }
            continue;
        }
        if (k == klen || key[k] != *t) {
            return 0;
        }
        k++;
    }
    return k == klen;
}

int uc__target_filter(void *arg, const char *key, size_t klen)
{
    const uc_keyspace_t *ks = ((const void *const *)arg)[0];
    const char *target = ((const void *const *)arg)[1];
    size_t plen = ks->cache->plen;

    if (klen < plen) {
        return 0;
    }
    return uc__keyspace_matches(ks, key + plen, klen - plen, NULL) &&
           uc__target_covers(target, key + plen, klen - plen);
}
