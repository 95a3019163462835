/* SPDX-License-Identifier: MIT */
/*
 * get-or-load as explicit steps (the contract is in keyspace.h), and the
 * keyspace get and set that share its envelope handling:
 *
 *   judge   pending invalidation or untrusted dataset: bypass the cache
 *   read    one bounded read of the entry's key (never more than the cap)
 *   open    envelope check: a lease is a fill in progress; a corrupt value,
 *           another key's value, an oversized one or one the validator
 *           rejects is deleted (poison never blocks the next fill)
 *   lease   on a miss, a random token set in the entry's key only if absent
 *   load    the loader, without any lock
 *   store   compare-and-set on the token: fails if an invalidation deleted
 *           the lease meanwhile, so an old read is never stored
 */
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"

/* The lease of a load that will not store is shortened to this, so that
 * the next reader does not take it for a fill in progress. */
#define LEASE_RELEASE_MS 1

typedef struct {
    uc_keyspace_t *ks;
    char key[UC_KEY_MAX + 1];
    size_t klen;
    char fk[UC__FULLKEY_MAX];
    size_t fklen;
} entry_t;

static int entry_of(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, entry_t *e)
{
    int rc = uc__keyspace_build(ks, fields, nfields, 0, e->key, sizeof(e->key),
                                &e->klen);

    if (rc != UC_OK) {
        return UC_EINVAL;
    }
    e->ks = ks;
    e->fklen = uc__full_key(ks->cache, e->key, e->klen, e->fk);
    return e->fklen > 0 ? UC_OK : UC_EINVAL;
}

/* Deletes a value that is not what it claims; counts and logs it. */
static void drop_corrupt(uc_cache_t *c, const entry_t *e, const char *why)
{
    UC__COUNT2(c, e->ks, corrupt);
    (void)c->be->ops->del(c->be, e->fk, e->fklen, NULL);
    uc__log_limited(&c->env, &c->corrupt_log, UC_LOG_WARN,
                    "keyspace '%s': cached value %s; deleted", e->ks->name,
                    why);
}

/*
 * Reads and opens the entry. Returns UC_OK with the payload in *val, *len
 * (malloc()ed), UC_MISS (*leased set when a lease holds the key), or the
 * store's error. Corrupt values are deleted and read as UC_MISS.
 */
static int read_entry(uc_cache_t *c, const entry_t *e,
                      uc_validator_fn validator, void *validator_arg,
                      char **val, size_t *len, uc__meta_t *meta, int *leased)
{
    uc_keyspace_t *ks = e->ks;
    uint64_t t0 = uc__now_us(&c->env);
    char *v = NULL;
    size_t vlen = 0;
    int rc = c->be->ops->get_max(c->be, e->fk, e->fklen,
                                 ks->max_value + UC__ENV_HEADER, &v, &vlen);

    *leased = 0;
    if (rc == UC_EUNAVAILABLE && atomic_load(&c->be->distrust) != 0) {
        /* Not a failure: a changed dataset, which the caller handles. */
        return rc;
    }
    if (rc == UC_ETOOBIG) {
        UC__COUNT2(c, ks, too_big);
        drop_corrupt(c, e, "over the keyspace's size cap");
        rc = UC_MISS;
    } else if (rc == UC_ECORRUPT) {
        /* WRONGTYPE: a key of another type where the entry should be. */
        drop_corrupt(c, e, "of the wrong type");
        rc = UC_MISS;
    } else if (rc == UC_OK) {
        switch (uc__envelope_open(e->fk, e->fklen, v, &vlen, meta)) {
        case UC__ENV_OK:
            if (validator != NULL && !validator(validator_arg, v, vlen)) {
                drop_corrupt(c, e, "rejected by the validator");
                rc = UC_MISS;
            }
            break;
        case UC__ENV_LEASE:
            *leased = 1;
            rc = UC_MISS;
            break;
        case UC__ENV_CORRUPT:
        default:
            drop_corrupt(c, e, "without a valid envelope for its key");
            rc = UC_MISS;
            break;
        }
    }
    uc__count_get(c, ks, rc, t0);
    if (rc != UC_OK) {
        free(v);
        return rc;
    }
    *val = v;
    *len = vlen;
    return UC_OK;
}

/* Makes sure a loader's buffer is NUL-terminated, as get's values are. */
static int terminate(char **val, size_t len)
{
    char *p = realloc(*val, len + 1);
    if (p == NULL) {
        return UC_ENOMEM;
    }
    p[len] = '\0';
    *val = p;
    return UC_OK;
}

/* Stores the loaded value in place of our lease, or gives the lease up. */
static void store_fill(uc_cache_t *c, const entry_t *e, const char *lease,
                       const char *v, size_t vlen, uint64_t load_us,
                       uint64_t *produced)
{
    uc_keyspace_t *ks = e->ks;
    uint64_t ttl = (uint64_t)ks->ttl_s * 1000u;
    uc__meta_t meta;
    char *wrapped = NULL;
    size_t wlen = 0;
    uint64_t t0;
    int rc;

    meta.produced_ms = uc__wall_ms();
    meta.load_us = load_us > UINT32_MAX ? UINT32_MAX : (uint32_t)load_us;
    meta.expires_ms = meta.produced_ms + ttl;
    *produced = meta.produced_ms;
    if (vlen > ks->max_value) {
        UC__COUNT2(c, ks, too_big);
        rc = UC_ETOOBIG;
    } else {
        rc =
            uc__envelope_wrap(e->fk, e->fklen, v, vlen, &meta, &wrapped, &wlen);
    }
    if (rc != UC_OK) {
        /* Hand the key back so that the next reader fills it. */
        (void)c->be->ops->cas(c->be, e->fk, e->fklen, lease, UC__LEASE_LEN,
                              lease, UC__LEASE_LEN, LEASE_RELEASE_MS);
        return;
    }
    t0 = uc__now_us(&c->env);
    rc = c->be->ops->cas(c->be, e->fk, e->fklen, lease, UC__LEASE_LEN, wrapped,
                         wlen, ttl);
    if (rc == UC_EUNAVAILABLE && atomic_load(&c->be->distrust) != 0) {
        /* The dataset changed under the fill: the lease went with it. */
        rc = UC_ESTALE;
    }
    uc__count_set(c, ks, rc, t0);
    if (rc == UC_ESTALE) {
        UC__COUNT2(c, ks, stale_rejects);
    }
    free(wrapped);
}

/*
 * Whether the store's dataset may be used; when it was just found changed,
 * one caller drops it at once (the others bypass until that is done), so a
 * cache does not wait for the worker's next tick.
 */
static int trusted(uc_cache_t *c)
{
    if (atomic_load_explicit(&c->be->distrust, memory_order_acquire) == 0) {
        return 1;
    }
    return uc__trust_restore(c) == UC_OK;
}

int uc_keyspace_get_or_load(uc_keyspace_t *ks, const char *const *fields,
                            size_t nfields, const uc_load_opts_t *opts,
                            uc_load_result_t *out)
{
    uc_cache_t *c = ks->cache;
    uc_loader_fn loader = ks->loader;
    void *loader_arg = ks->loader_arg;
    uc_validator_fn validator = ks->validator;
    void *validator_arg = ks->validator_arg;
    char lease[UC__LEASE_LEN];
    uc__meta_t meta = {0, 0, 0, 0};
    uc_source_t source = UC_FROM_LOADER;
    char *v = NULL;
    size_t vlen = 0;
    uint64_t produced = 0, t0;
    int rc, have_lease = 0, leased = 0;
    entry_t e;

    if (opts != NULL && opts->loader != NULL) {
        loader = opts->loader;
        loader_arg = opts->loader_arg;
    }
    if (opts != NULL && opts->validator != NULL) {
        validator = opts->validator;
        validator_arg = opts->validator_arg;
    }
    if (loader == NULL || out == NULL ||
        entry_of(ks, fields, nfields, &e) != UC_OK) {
        return UC_EINVAL;
    }

    /* judge */
    if (uc__pending_covers(c, ks, e.key, e.klen) || !trusted(c)) {
        UC__COUNT2(c, ks, bypasses);
        source = UC_FROM_BYPASS;
        rc = UC_EUNAVAILABLE;
    } else {
        /* read, open */
        rc = read_entry(c, &e, validator, validator_arg, &v, &vlen, &meta,
                        &leased);
        if (rc == UC_EUNAVAILABLE &&
            atomic_load_explicit(&c->be->distrust, memory_order_acquire)) {
            /* This read's new connection found a changed dataset. */
            if (trusted(c)) {
                rc = read_entry(c, &e, validator, validator_arg, &v, &vlen,
                                &meta, &leased);
            } else {
                UC__COUNT2(c, ks, bypasses);
                source = UC_FROM_BYPASS;
            }
        }
        if (rc == UC_OK) {
            out->data = v;
            out->len = vlen;
            out->source = UC_FROM_CACHE;
            out->produced_ms = meta.produced_ms;
            out->hash = meta.value_hash;
            return UC_OK;
        }
    }

    /* lease */
    if (rc == UC_MISS && leased) {
        UC__COUNT2(c, ks, lease_conflicts);
    } else if (rc == UC_MISS) {
        uc__lease_new(c, lease);
        uint64_t t1 = uc__now_us(&c->env);
        int lrc = c->be->ops->add(c->be, e.fk, e.fklen, lease, UC__LEASE_LEN,
                                  (uint64_t)c->env.cfg.lease_ms);
        if (lrc == UC_OK) {
            have_lease = 1;
        } else if (lrc == UC_ESTALE) {
            /* Filled or leased between our read and now. */
            UC__COUNT2(c, ks, lease_conflicts);
        } else if (lrc == UC_EUNAVAILABLE &&
                   atomic_load(&c->be->distrust) != 0) {
            /* A changed dataset, found by this call's new connection. */
            UC__COUNT2(c, ks, bypasses);
        } else {
            /* The fill's first write failed (OOM, ...): a failed store. */
            uc__count_set(c, ks, lrc, t1);
        }
    } else if (source != UC_FROM_BYPASS) {
        source = UC_FROM_FALLBACK;
        UC__COUNT2(c, ks, fallbacks);
    }

    /* load */
    UC__COUNT2(c, ks, loads);
    v = NULL;
    vlen = 0;
    t0 = uc__now_us(&c->env);
    rc = loader(loader_arg, fields, nfields, &v, &vlen);
    if (rc == UC_OK && v == NULL && vlen > 0) {
        rc = UC_EINVAL;
    }
    if (rc == UC_OK) {
        rc = terminate(&v, vlen);
    }
    if (rc != UC_OK) {
        free(v);
        UC__COUNT2(c, ks, load_errors);
        if (have_lease) {
            (void)c->be->ops->cas(c->be, e.fk, e.fklen, lease, UC__LEASE_LEN,
                                  lease, UC__LEASE_LEN, LEASE_RELEASE_MS);
        }
        return rc;
    }

    /* store */
    if (have_lease) {
        store_fill(c, &e, lease, v, vlen, uc__now_us(&c->env) - t0, &produced);
    } else {
        produced = uc__wall_ms();
    }
    out->data = v;
    out->len = vlen;
    out->source = source;
    out->produced_ms = produced;
    out->hash = uc__hash64(v, vlen);
    return UC_OK;
}

int uc_keyspace_get(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, char **val, size_t *len)
{
    uc_cache_t *c = ks->cache;
    uc__meta_t meta;
    int leased = 0, rc;
    entry_t e;

    if (val == NULL || len == NULL ||
        entry_of(ks, fields, nfields, &e) != UC_OK) {
        return UC_EINVAL;
    }
    if (uc__pending_covers(c, ks, e.key, e.klen) || !trusted(c)) {
        return UC_MISS;
    }
    rc = read_entry(c, &e, ks->validator, ks->validator_arg, val, len, &meta,
                    &leased);
    if (rc == UC_EUNAVAILABLE && atomic_load(&c->be->distrust) != 0) {
        /* The read's new connection found a changed dataset. */
        rc = trusted(c) ? read_entry(c, &e, ks->validator, ks->validator_arg,
                                     val, len, &meta, &leased)
                        : UC_MISS;
    }
    return rc;
}

int uc_keyspace_set(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, const char *val, size_t len)
{
    uc_cache_t *c = ks->cache;
    uc__meta_t meta;
    char *wrapped = NULL;
    size_t wlen = 0;
    uint64_t t0;
    int rc;
    entry_t e;

    if ((len > 0 && val == NULL) ||
        entry_of(ks, fields, nfields, &e) != UC_OK) {
        return UC_EINVAL;
    }
    if (len > ks->max_value) {
        UC__COUNT2(c, ks, too_big);
        return UC_ETOOBIG;
    }
    meta.produced_ms = uc__wall_ms();
    meta.load_us = 0;
    meta.expires_ms = meta.produced_ms + (uint64_t)ks->ttl_s * 1000u;
    rc = uc__envelope_wrap(e.fk, e.fklen, val, len, &meta, &wrapped, &wlen);
    if (rc != UC_OK) {
        return rc;
    }
    t0 = uc__now_us(&c->env);
    rc = c->be->ops->put(c->be, e.fk, e.fklen, wrapped, wlen,
                         (uint64_t)ks->ttl_s * 1000u);
    if (rc == UC_EUNAVAILABLE && atomic_load(&c->be->distrust) != 0 &&
        trusted(c)) {
        /* This call's new connection found a changed dataset, now
         * dropped and adopted: store into the adopted one. */
        rc = c->be->ops->put(c->be, e.fk, e.fklen, wrapped, wlen,
                             (uint64_t)ks->ttl_s * 1000u);
    }
    uc__count_set(c, ks, rc, t0);
    free(wrapped);
    return rc;
}
