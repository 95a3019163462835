/* SPDX-License-Identifier: MIT */
/*
 * Every key shape the library writes, in one place: the prefix, an entry's
 * key, and the invalidation targets that cover entries. A target is a key
 * of its keyspace's shape in which a field may be '*' ("any value"). Field
 * values are escaped (keyspace.c), so they never hold '*' or ':', which is
 * why a '*' here stands for exactly one field: the bytes up to the next ':'.
 * The dataset marker (redis.c, "uc:dataset") and leases (which live in the
 * entry's own key) need no other shape.
 *
 * Tags: a tag's version lives at <prefix>uc:tag:<tag>, in the reserved
 * space no keyspace reaches (patterns starting "uc:" are refused), under
 * the prefix the near cache's channel follows. A target naming a tag is
 * "#<tag>": no key target starts with '#', as a key pattern starts with
 * literal text [A-Za-z0-9._:-] and a field value's '#' is escaped (%23).
 */
#include <string.h>

#include "cache_int.h"

/* A tag's version is kept at least this long (see uc__tag_ttl_ms()). */
#define TAG_TTL_MIN_MS (7u * 86400u * 1000u)

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

int uc__tag_valid(const char *tag, size_t len)
{
    if (tag == NULL || len == 0 || len > UC_TAG_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = tag[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
              c == ':' || c == '%')) {
            return 0;
        }
    }
    return 1;
}

size_t uc__tag_key(const uc_cache_t *c, const char *tag, size_t len, char *buf)
{
    if (!uc__tag_valid(tag, len) ||
        c->plen + UC__TAG_SPACE_LEN + len >= UC__FULLKEY_MAX) {
        return 0;
    }
    memcpy(buf, c->env.cfg.key_prefix, c->plen);
    memcpy(buf + c->plen, UC__TAG_SPACE, UC__TAG_SPACE_LEN);
    memcpy(buf + c->plen + UC__TAG_SPACE_LEN, tag, len);
    buf[c->plen + UC__TAG_SPACE_LEN + len] = '\0';
    return c->plen + UC__TAG_SPACE_LEN + len;
}

int uc__entry_tag_key(const uc_keyspace_t *ks, size_t i,
                      const char *const *fields, size_t nfields, char *fk,
                      size_t *fklen)
{
    const uc_cache_t *c = ks->cache;
    size_t at = c->plen + UC__TAG_SPACE_LEN, len;
    int rc = uc__tag_build(ks, i, fields, nfields, fk + at,
                           UC__FULLKEY_MAX - at, &len);

    if (rc != UC_OK) {
        return UC_EINVAL;
    }
    memcpy(fk, c->env.cfg.key_prefix, c->plen);
    memcpy(fk + c->plen, UC__TAG_SPACE, UC__TAG_SPACE_LEN);
    *fklen = at + len;
    return UC_OK;
}

int uc__target_covers_tags(const char *target, const char *const *tags,
                           const size_t *lens, size_t ntags)
{
    size_t tlen;

    if (target[0] != UC__TAG_TARGET) {
        return 0;
    }
    tlen = strlen(target + 1);
    for (size_t i = 0; i < ntags; i++) {
        if (lens[i] == tlen && memcmp(tags[i], target + 1, tlen) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * A tag's version is written with a TTL, so that the versions of entities
 * nobody reads any more do not pile up forever; a version that expires
 * reads as changed, which costs its entries one miss and never serves an
 * old value. The TTL is twice the longest life any entry can have (its
 * TTL, jitter included, plus its serve-stale grace), and at least a week:
 * an entry filled when its tag's version was written never outlives it.
 */
uint64_t uc__tag_ttl_ms(const uc_cache_t *c)
{
    uint64_t longest = 0;
    size_t n = atomic_load(&((uc_cache_t *)c)->nks);

    for (size_t i = 0; i < n; i++) {
        const uc_keyspace_t *ks = c->ks[i];
        uint64_t life = (uint64_t)ks->ttl_s * (100u + ks->jitter_pct) * 10u +
                        (uint64_t)ks->stale_s * 1000u +
                        (uint64_t)ks->negative_ttl_s * 1000u;
        if (life > longest) {
            longest = life;
        }
    }
    return 2 * longest > TAG_TTL_MIN_MS ? 2 * longest : TAG_TTL_MIN_MS;
}
