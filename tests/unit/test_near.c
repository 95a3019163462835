/* SPDX-License-Identifier: MIT */
/*
 * The near cache (src/lib/near.c): put, get and replace; entries that
 * outlive their eviction while referenced (and the handle itself); the
 * ticket against invalidations and flushes; per-class budgets and shrinking
 * them; the heap a full class really holds, with and without references
 * outstanding; S3-FIFO's resistance to a scan; and threads mixing every
 * operation, checked after they joined (also run under TSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "near.h"
#include "utxocache/error.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

/* ---- helpers ------------------------------------------------------------ */

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uc__near_meta_t meta_of(const char *val, size_t len, uint64_t stale_ms)
{
    uc__near_meta_t m;
    memset(&m, 0, sizeof(m));
    m.produced_ms = 1000;
    m.expires_ms = 2000;
    m.stale_ms = stale_ms;
    m.load_us = 42;
    m.hash = fnv1a(val, len);
    return m;
}

static uc__near_t *near_new(size_t nclasses, size_t budget)
{
    uc__near_t *n = NULL;
    assert_int_equal(uc__near_create(nclasses, &n), UC_OK);
    assert_non_null(n);
    for (size_t c = 0; c < nclasses; c++) {
        assert_int_equal(uc__near_set_budget(n, c, budget), UC_OK);
    }
    return n;
}

/* put with a fresh ticket and no stale_ms; the put's return code. */
static int put_s(uc__near_t *n, size_t cls, const char *key, const char *val,
                 uc__near_entry_t **out)
{
    uc__near_meta_t m = meta_of(val, strlen(val), 0);
    return uc__near_put(n, cls, key, strlen(key), uc__near_ticket(n), val,
                        strlen(val), &m, 0, out);
}

static int put_t(uc__near_t *n, size_t cls, const char *key, uint64_t ticket,
                 const char *val)
{
    uc__near_meta_t m = meta_of(val, strlen(val), 0);
    return uc__near_put(n, cls, key, strlen(key), ticket, val, strlen(val), &m,
                        0, NULL);
}

static uc__near_entry_t *get_s(uc__near_t *n, size_t cls, const char *key)
{
    return uc__near_get(n, cls, key, strlen(key), 0);
}

static void check_entry(const uc__near_entry_t *e, const char *key,
                        const char *want)
{
    size_t klen = 0;
    const char *k;
    assert_non_null(e);
    k = uc__near_key(e, &klen);
    assert_int_equal(klen, strlen(key));
    assert_memory_equal(k, key, klen);
    assert_int_equal(uc__near_len(e), strlen(want));
    assert_memory_equal(uc__near_value(e), want, strlen(want));
    assert_int_equal(uc__near_value(e)[strlen(want)], '\0');
    assert_true(uc__near_meta(e)->hash == fnv1a(want, strlen(want)));
}

static void check_value(uc__near_t *n, size_t cls, const char *key,
                        const char *want)
{
    uc__near_entry_t *e = get_s(n, cls, key);
    check_entry(e, key, want);
    uc__near_release(e);
}

static void check_miss(uc__near_t *n, size_t cls, const char *key)
{
    assert_null(get_s(n, cls, key));
}

static uc__near_stats_t stats_of(uc__near_t *n, size_t cls)
{
    uc__near_stats_t st;
    uc__near_stats(n, cls, &st);
    return st;
}

/* Fills class cls with `bytes` worth of fresh keys (prefix + counter) of
 * vlen-byte values, each put once. */
static void fill(uc__near_t *n, size_t cls, const char *prefix, size_t bytes,
                 size_t vlen)
{
    char key[64];
    char *val = malloc(vlen + 1);
    uc__near_meta_t m;
    assert_non_null(val);
    memset(val, 'f', vlen);
    val[vlen] = '\0';
    m = meta_of(val, vlen, 0);
    for (size_t i = 0; i * vlen < bytes; i++) {
        snprintf(key, sizeof(key), "%s%zu", prefix, i);
        assert_true(uc__near_put(n, cls, key, strlen(key), uc__near_ticket(n),
                                 val, vlen, &m, 0, NULL) >= 0);
    }
    free(val);
}

/* ---- put, get, replace -------------------------------------------------- */

static void put_get_replace(void **state)
{
    uc__near_t *n = near_new(1, 4 * MIB);
    uc__near_entry_t *old, *e = NULL;
    uc__near_stats_t st;
    (void)state;

    check_miss(n, 0, "a");
    assert_int_equal(put_s(n, 0, "a", "alpha", &e), 1);
    check_entry(e, "a", "alpha");
    assert_int_equal(uc__near_meta(e)->load_us, 42);
    assert_int_equal(uc__near_meta(e)->expires_ms, 2000);
    uc__near_release(e);
    check_value(n, 0, "a", "alpha");
    check_miss(n, 0, "A");
    check_miss(n, 0, "alpha");

    /* A replacement is what the next get sees; a reader of the old entry
     * keeps reading the old bytes. */
    old = get_s(n, 0, "a");
    assert_int_equal(put_s(n, 0, "a", "beta, longer", NULL), 1);
    check_value(n, 0, "a", "beta, longer");
    check_entry(old, "a", "alpha");
    uc__near_release(old);

    /* The hit returns the very entry the put gave: no copy. */
    assert_int_equal(put_s(n, 0, "b", "bee", &e), 1);
    old = get_s(n, 0, "b");
    assert_ptr_equal(old, e);
    uc__near_release(old);
    uc__near_release(e);

    st = stats_of(n, 0);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.inserts, 3);
    assert_int_equal(st.refused, 0);
    assert_int_equal(st.dead_bytes, 0);
    assert_int_equal(st.hits, 4);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.budget, 4 * MIB);
    assert_true(st.bytes >= st.index_bytes + 2 * (UC__NEAR_HEADER + 5));
    uc__near_release(NULL);
    uc__near_destroy(n);
    uc__near_destroy(NULL);
}

static void binary_keys_and_values(void **state)
{
    static const char k1[] = {'k', '\0', '1'};
    static const char k2[] = {'k', '\0', '2'};
    static const char val[] = {'\0', 'x', '\0', '\xff'};
    uc__near_t *n = near_new(1, 4 * MIB);
    uc__near_meta_t m = meta_of(val, sizeof(val), 0);
    uc__near_entry_t *e;
    (void)state;

    assert_int_equal(uc__near_put(n, 0, k1, sizeof(k1), uc__near_ticket(n), val,
                                  sizeof(val), &m, 0, NULL),
                     1);
    assert_null(uc__near_get(n, 0, k2, sizeof(k2), 0));
    assert_null(uc__near_get(n, 0, k1, 1, 0));
    e = uc__near_get(n, 0, k1, sizeof(k1), 0);
    assert_non_null(e);
    assert_int_equal(uc__near_len(e), sizeof(val));
    assert_memory_equal(uc__near_value(e), val, sizeof(val));
    assert_int_equal(uc__near_value(e)[sizeof(val)], '\0');
    uc__near_release(e);

    /* The empty key and the empty value are values like others. */
    m = meta_of("", 0, 0);
    assert_int_equal(
        uc__near_put(n, 0, "", 0, uc__near_ticket(n), NULL, 0, &m, 0, NULL), 1);
    e = uc__near_get(n, 0, "", 0, 0);
    assert_non_null(e);
    assert_int_equal(uc__near_len(e), 0);
    assert_string_equal(uc__near_value(e), "");
    uc__near_release(e);
    uc__near_destroy(n);
}

static void bad_arguments(void **state)
{
    uc__near_t *n = near_new(2, 4 * MIB);
    uc__near_meta_t m = meta_of("v", 1, 0);
    uc__near_entry_t *e = NULL; /* errors write nothing to it */
    uc__near_t *none = NULL;
    uc__near_stats_t st;
    char *big;
    (void)state;

    assert_int_equal(uc__near_create(0, &none), UC_EINVAL);
    assert_null(none);
    assert_int_equal(uc__near_create(1, NULL), UC_EINVAL);
    assert_int_equal(
        uc__near_put(n, 2, "k", 1, uc__near_ticket(n), "v", 1, &m, 0, &e),
        UC_EINVAL);
    assert_int_equal(
        uc__near_put(n, 0, "k", 1, uc__near_ticket(n), "v", 1, NULL, 0, &e),
        UC_EINVAL);
    assert_int_equal(
        uc__near_put(n, 0, NULL, 1, uc__near_ticket(n), "v", 1, &m, 0, &e),
        UC_EINVAL);
    assert_int_equal(
        uc__near_put(n, 0, "k", 1, uc__near_ticket(n), NULL, 1, &m, 0, &e),
        UC_EINVAL);
    big = calloc(1, UC__NEAR_KEY_MAX + 1);
    assert_non_null(big);
    assert_int_equal(uc__near_put(n, 0, big, UC__NEAR_KEY_MAX + 1,
                                  uc__near_ticket(n), "v", 1, &m, 0, &e),
                     UC_ETOOBIG);
    free(big);
    assert_null(e);
    assert_null(uc__near_get(n, 2, "k", 1, 0));
    assert_int_equal(uc__near_set_budget(n, 2, MIB), UC_EINVAL);
    uc__near_flush_class(n, 2);
    uc__near_stats(n, 2, &st);
    assert_int_equal(st.budget, 0);
    assert_int_equal(st.entries, 0);
    uc__near_destroy(n);
}

/* An entry over 1/UC__NEAR_ENTRY_SHARE of its shard is never installed, but
 * the caller still gets a copy to serve from; so does a disabled class. */
static void too_big_and_disabled(void **state)
{
    const size_t budget = 1 * MIB;
    const size_t cap = budget / UC__NEAR_SHARDS / UC__NEAR_ENTRY_SHARE;
    uc__near_t *n = near_new(2, budget);
    size_t vlen = cap; /* with its header, over the cap */
    char *val = malloc(vlen + 1);
    uc__near_entry_t *e = NULL;
    uc__near_meta_t m;
    uc__near_stats_t st;
    (void)state;

    assert_non_null(val);
    memset(val, 'x', vlen);
    val[vlen] = '\0';
    m = meta_of(val, vlen, 0);
    assert_int_equal(
        uc__near_put(n, 0, "big", 3, uc__near_ticket(n), val, vlen, &m, 0, &e),
        0);
    assert_non_null(e);
    assert_int_equal(uc__near_len(e), vlen);
    assert_memory_equal(uc__near_value(e), val, vlen);
    uc__near_release(e);
    assert_int_equal(uc__near_put(n, 0, "big", 3, uc__near_ticket(n), val, vlen,
                                  &m, 0, NULL),
                     0);
    check_miss(n, 0, "big");
    /* Just under the cap goes in. */
    vlen = cap - UC__NEAR_HEADER - 3 - 32;
    m = meta_of(val, vlen, 0);
    assert_int_equal(uc__near_put(n, 0, "big", 3, uc__near_ticket(n), val, vlen,
                                  &m, 0, NULL),
                     1);
    st = stats_of(n, 0);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.inserts, 1);
    assert_int_equal(st.entries, 1);

    assert_int_equal(uc__near_set_budget(n, 1, 0), UC_OK);
    e = NULL;
    assert_int_equal(put_s(n, 1, "k", "v", &e), 0);
    check_entry(e, "k", "v");
    uc__near_release(e);
    assert_int_equal(put_s(n, 1, "k", "v", NULL), 0);
    check_miss(n, 1, "k");
    st = stats_of(n, 1);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.bytes, 0);
    free(val);
    uc__near_destroy(n);
}

/* An entry at or past its stale_ms is dropped by get; one already past it
 * is not installed; stale_ms 0 is never. */
static void stale_entries_dropped(void **state)
{
    uc__near_t *n = near_new(1, 4 * MIB);
    uc__near_meta_t m = meta_of("v", 1, 1000);
    uc__near_meta_t never = meta_of("w", 1, 0);
    uc__near_entry_t *e;
    (void)state;

    assert_int_equal(
        uc__near_put(n, 0, "s", 1, uc__near_ticket(n), "v", 1, &m, 500, NULL),
        1);
    assert_int_equal(uc__near_put(n, 0, "w", 1, uc__near_ticket(n), "w", 1,
                                  &never, 500, NULL),
                     1);
    e = uc__near_get(n, 0, "s", 1, 999);
    assert_non_null(e);
    uc__near_release(e);
    /* now_ms 0: no judgement of time at all. */
    e = uc__near_get(n, 0, "s", 1, 0);
    assert_non_null(e);
    uc__near_release(e);
    assert_null(uc__near_get(n, 0, "s", 1, 1000));
    assert_null(uc__near_get(n, 0, "s", 1, 0));
    assert_int_equal(stats_of(n, 0).expired, 1);
    assert_int_equal(
        uc__near_put(n, 0, "s", 1, uc__near_ticket(n), "v", 1, &m, 1000, NULL),
        0);
    e = uc__near_get(n, 0, "w", 1, UINT64_MAX);
    assert_non_null(e);
    uc__near_release(e);
    assert_int_equal(stats_of(n, 0).entries, 1);
    uc__near_destroy(n);
}

/* ---- references --------------------------------------------------------- */

/* The bytes an evicted, invalidated, flushed or replaced entry still holds
 * for its reader stay charged until the reader lets go. */
static void reference_outlives_removal(void **state)
{
    const size_t budget = 256 * KIB;
    uc__near_t *n = near_new(1, budget);
    uc__near_entry_t *e[5] = {NULL};
    uc__near_stats_t st;
    size_t charges = 0;
    (void)state;

    /* Each entry leaves the cache its own way while its reader holds it. */
    assert_int_equal(put_s(n, 0, "evicted", "value 0", &e[0]), 1);
    fill(n, 0, "filler:", 8 * budget, 500);
    check_miss(n, 0, "evicted");
    assert_true(stats_of(n, 0).evictions > 0);
    assert_int_equal(stats_of(n, 0).dead_bytes, uc__near_charge(e[0]));

    assert_int_equal(put_s(n, 0, "invalidated", "value 1", &e[1]), 1);
    uc__near_invalidate(n, "invalidated", strlen("invalidated"));
    check_miss(n, 0, "invalidated");

    assert_int_equal(put_s(n, 0, "replaced", "value 3", &e[3]), 1);
    assert_int_equal(put_s(n, 0, "replaced", "value 3, new", NULL), 1);
    check_value(n, 0, "replaced", "value 3, new");

    assert_int_equal(put_s(n, 0, "flushed", "value 2", &e[2]), 1);
    uc__near_flush(n);
    check_miss(n, 0, "flushed");
    check_miss(n, 0, "replaced");
    for (int i = 0; i < 4; i++) {
        charges += uc__near_charge(e[i]);
        assert_true(uc__near_charge(e[i]) >= UC__NEAR_HEADER + 8);
    }

    st = stats_of(n, 0);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.dead_bytes, charges);
    assert_int_equal(st.bytes, charges);
    check_entry(e[0], "evicted", "value 0");
    check_entry(e[1], "invalidated", "value 1");
    check_entry(e[2], "flushed", "value 2");
    check_entry(e[3], "replaced", "value 3");

    /* Refs taken on a held entry last as long as the last of them. */
    uc__near_retain(e[0]);
    uc__near_release(e[0]);
    check_entry(e[0], "evicted", "value 0");
    for (int i = 0; i < 4; i++) {
        uc__near_release(e[i]);
    }
    st = stats_of(n, 0);
    assert_int_equal(st.dead_bytes, 0);
    assert_int_equal(st.bytes, 0);

    /* Shrinking to 0 drops the entry from under its reader, too. */
    assert_int_equal(put_s(n, 0, "shrunk", "value 4", &e[4]), 1);
    assert_int_equal(uc__near_set_budget(n, 0, 0), UC_OK);
    check_miss(n, 0, "shrunk");
    assert_int_equal(stats_of(n, 0).dead_bytes, uc__near_charge(e[4]));
    check_entry(e[4], "shrunk", "value 4");
    uc__near_release(e[4]);
    assert_int_equal(stats_of(n, 0).bytes, 0);
    uc__near_destroy(n);
}

/* Entries held past uc__near_destroy() stay readable; the last release
 * frees them and the handle (ASan reports a leak or a use after free). */
static void reference_outlives_destroy(void **state)
{
    uc__near_t *n = near_new(3, MIB);
    uc__near_entry_t *a = NULL, *b = NULL, *c;
    (void)state;

    assert_int_equal(put_s(n, 0, "a", "alpha", &a), 1);
    assert_int_equal(put_s(n, 2, "b", "beta", NULL), 1);
    b = get_s(n, 2, "b");
    assert_int_equal(put_s(n, 1, "c", "gamma", NULL), 1);
    c = get_s(n, 1, "c");
    uc__near_destroy(n);
    check_entry(a, "a", "alpha");
    check_entry(b, "b", "beta");
    uc__near_release(a);
    check_entry(c, "c", "gamma");
    uc__near_release(c);
    check_entry(b, "b", "beta");
    uc__near_release(b);
}

/* ---- tickets ------------------------------------------------------------ */

static void ticket_vs_invalidate(void **state)
{
    uc__near_t *n = near_new(2, 4 * MIB);
    uc__near_entry_t *e = NULL;
    uc__near_meta_t m = meta_of("old", 3, 0);
    uint64_t t;
    (void)state;

    /* The read started before the invalidation: the value it got may be
     * the old one, so it must not go in (but may be served once). */
    t = uc__near_ticket(n);
    uc__near_invalidate(n, "k", 1);
    assert_int_equal(uc__near_put(n, 0, "k", 1, t, "old", 3, &m, 0, &e), 0);
    check_entry(e, "k", "old");
    uc__near_release(e);
    assert_int_equal(put_t(n, 1, "k", t, "old"), 0);
    check_miss(n, 0, "k");
    check_miss(n, 1, "k");
    /* A read started after it installs. */
    t = uc__near_ticket(n);
    assert_int_equal(put_t(n, 0, "k", t, "new"), 1);
    check_value(n, 0, "k", "new");

    /* Installed before the invalidation: the invalidation removes it from
     * every class. */
    assert_int_equal(put_s(n, 1, "k", "new", NULL), 1);
    uc__near_invalidate(n, "k", 1);
    check_miss(n, 0, "k");
    check_miss(n, 1, "k");
    assert_int_equal(stats_of(n, 0).invalidations, 1);
    assert_int_equal(stats_of(n, 1).invalidations, 1);
    assert_int_equal(stats_of(n, 0).refused, 1);
    assert_int_equal(stats_of(n, 1).refused, 1);
    uc__near_destroy(n);
}

/* Keys share generation slots: an invalidation of one key refuses only the
 * few puts of other keys that fall in its slot. */
static void ticket_other_keys(void **state)
{
    enum { OTHERS = 20000 };
    uc__near_t *n = near_new(1, 64 * MIB);
    char key[32];
    unsigned refused = 0;
    uint64_t t;
    (void)state;

    t = uc__near_ticket(n);
    uc__near_invalidate(n, "x", 1);
    for (unsigned i = 0; i < OTHERS; i++) {
        int rc;
        snprintf(key, sizeof(key), "other:%u", i);
        rc = put_t(n, 0, key, t, "v");
        assert_true(rc == 0 || rc == 1);
        refused += rc == 0;
    }
    /* OTHERS / UC__NEAR_GEN_SLOTS = 2.4 expected. */
    print_message("refused by slot collisions: %u of %u\n", refused, OTHERS);
    assert_true(refused <= 20);
    assert_int_equal(put_t(n, 0, "x", t, "v"), 0);
    assert_int_equal(stats_of(n, 0).entries, OTHERS - refused);
    uc__near_destroy(n);
}

static void ticket_vs_flush(void **state)
{
    uc__near_t *n = near_new(2, 4 * MIB);
    uint64_t t;
    (void)state;

    assert_int_equal(put_s(n, 0, "a", "1", NULL), 1);
    assert_int_equal(put_s(n, 1, "b", "2", NULL), 1);
    t = uc__near_ticket(n);
    uc__near_flush(n);
    check_miss(n, 0, "a");
    check_miss(n, 1, "b");
    assert_int_equal(put_t(n, 0, "a", t, "1"), 0);
    assert_int_equal(put_t(n, 1, "z", t, "1"), 0);
    t = uc__near_ticket(n);
    assert_int_equal(put_t(n, 0, "a", t, "1"), 1);
    assert_int_equal(put_t(n, 1, "b", t, "2"), 1);

    /* A class flush refuses its own class's older tickets only. */
    uc__near_flush_class(n, 1);
    check_value(n, 0, "a", "1");
    check_miss(n, 1, "b");
    assert_int_equal(put_t(n, 1, "b", t, "2"), 0);
    assert_int_equal(put_t(n, 0, "c", t, "3"), 1);
    assert_int_equal(put_t(n, 1, "b", uc__near_ticket(n), "2"), 1);
    assert_int_equal(stats_of(n, 0).flushes, 1);
    assert_int_equal(stats_of(n, 1).flushes, 2);
    assert_int_equal(stats_of(n, 1).refused, 2);
    uc__near_destroy(n);
}

/* ---- budgets ------------------------------------------------------------ */

static void class_budgets(void **state)
{
    uc__near_t *n = near_new(2, 0);
    uc__near_stats_t a, b;
    (void)state;

    assert_int_equal(uc__near_set_budget(n, 0, 1 * MIB), UC_OK);
    assert_int_equal(uc__near_set_budget(n, 1, 256 * KIB), UC_OK);
    /* One key, one value per class. */
    assert_int_equal(put_s(n, 0, "same", "zero", NULL), 1);
    assert_int_equal(put_s(n, 1, "same", "one", NULL), 1);
    check_value(n, 0, "same", "zero");
    check_value(n, 1, "same", "one");

    fill(n, 0, "a:", 4 * MIB, 300);
    fill(n, 1, "b:", 4 * MIB, 300);
    a = stats_of(n, 0);
    b = stats_of(n, 1);
    assert_true(a.bytes <= 1 * MIB);
    assert_true(b.bytes <= 256 * KIB);
    /* Full to within what a shard's last entry could not fill. */
    assert_true(a.bytes > 1 * MIB * 9 / 10);
    assert_true(b.bytes > 256 * KIB * 8 / 10);
    assert_true(a.entries > 3 * b.entries);
    assert_true(a.evictions > 0 && b.evictions > 0);

    /* Shrinking evicts at once, and growing lets it fill again. */
    assert_int_equal(uc__near_set_budget(n, 0, 128 * KIB), UC_OK);
    a = stats_of(n, 0);
    assert_int_equal(a.budget, 128 * KIB);
    assert_true(a.bytes <= 128 * KIB);
    assert_true(a.entries > 0);
    b = stats_of(n, 1);
    assert_true(b.bytes > 256 * KIB * 8 / 10);
    assert_int_equal(uc__near_set_budget(n, 0, 2 * MIB), UC_OK);
    fill(n, 0, "c:", 4 * MIB, 300);
    a = stats_of(n, 0);
    assert_true(a.bytes <= 2 * MIB && a.bytes > 2 * MIB * 9 / 10);

    assert_int_equal(uc__near_set_budget(n, 0, 0), UC_OK);
    a = stats_of(n, 0);
    assert_int_equal(a.bytes, 0);
    assert_int_equal(a.entries, 0);
    assert_int_equal(a.index_bytes, 0);
    check_miss(n, 0, "c:1");
    uc__near_destroy(n);
}

/* ---- the heap a class really holds -------------------------------------- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HEAP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HEAP_SANITIZED 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define HEAP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HEAP_TSAN 1
#endif
#endif

#ifdef HEAP_SANITIZED
/* The sanitizers replace malloc; their allocator counts its bytes in use. */
size_t __sanitizer_get_current_allocated_bytes(void);

static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
/* glibc's bytes in use: arena chunks plus mmapped ones (the big arrays). */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#endif

/* A value length of many sizes: mostly small, some up to 16 KiB. */
static size_t any_len(uint64_t *rng)
{
    uint64_t x = *rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    switch (x % 10) {
    case 0:
    case 1:
    case 2:
        return (size_t)(x >> 8) % 64;
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
        return 64 + (size_t)(x >> 8) % 960;
    default:
        return 1024 + (size_t)(x >> 8) % (15 * 1024);
    }
}

/*
 * The heap growth of a full class against its budget. The bound: 5 % of
 * the budget (allocator caches, fragmentation) plus UC__NEAR_UNCHARGED per
 * entry alive. sanitized builds count with the sanitizer's allocator;
 * under TSan that allocator rounds to its size classes where
 * malloc_usable_size() reports the size asked for, so there the heap is
 * compared with the charge plus that rounding instead.
 */
static void check_heap(uc__near_t *n, size_t heap0, size_t budget,
                       size_t dead_entries, size_t at_least, const char *when)
{
    uc__near_stats_t st = stats_of(n, 0);
    size_t alive = (size_t)st.entries + dead_entries;
    size_t delta = heap_in_use() - heap0;
    size_t bound = budget + budget / 20 + alive * UC__NEAR_UNCHARGED;

    print_message("%s: heap +%zu bytes, charged %" PRIu64 " (index %" PRIu64
                  ", dead %" PRIu64 "), %zu entries alive; bound %zu\n",
                  when, delta, st.bytes, st.index_bytes, st.dead_bytes, alive,
                  bound);
    assert_true(st.bytes <= budget);
#ifdef HEAP_TSAN
    bound += (size_t)st.bytes / 4;
#endif
    if (delta > bound) {
        fail_msg("%s: heap grew %zu bytes, over %zu", when, delta, bound);
    }
    /* The measure itself works: what the class holds shows up in it. */
    if (delta < at_least) {
        fail_msg("%s: heap grew %zu bytes only, expected %zu", when, delta,
                 at_least);
    }
}

static void heap_within_budget(void **state)
{
    enum { HELD_MAX = 8192 };
    const size_t budget = 8 * MIB;
    uc__near_entry_t **held = calloc(HELD_MAX, sizeof(*held));
    char *val = malloc(16 * KIB + 1);
    size_t nheld = 0, held_bytes = 0;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    size_t heap_before, heap0;
    char key[32];
    uc__near_t *n;
    (void)state;

    assert_non_null(held);
    assert_non_null(val);
    memset(val, 'v', 16 * KIB);
    heap_before = heap_in_use();
    n = near_new(1, budget);
    heap0 = heap_in_use();

    /* Four budgets' worth of keys of many sizes, no reference kept. */
    for (size_t i = 0, total = 0; total < 4 * budget; i++) {
        size_t len = any_len(&rng);
        uc__near_meta_t m = meta_of(val, len, 0);
        snprintf(key, sizeof(key), "k:%08zu", i);
        assert_true(uc__near_put(n, 0, key, strlen(key), uc__near_ticket(n),
                                 val, len, &m, 0, NULL) >= 0);
        total += len + strlen(key);
    }
    check_heap(n, heap0, budget, 0, budget * 9 / 10, "filled");

    /* Four more, a reader keeping every third entry it put until it holds
     * half a budget: as they are evicted they stay on the heap, charged. */
    for (size_t i = 0, total = 0; total < 4 * budget; i++) {
        size_t len = any_len(&rng);
        uc__near_meta_t m = meta_of(val, len, 0);
        uc__near_entry_t *e = NULL;
        int keep = i % 3 == 0 && held_bytes < budget / 2 && nheld < HELD_MAX;
        snprintf(key, sizeof(key), "h:%08zu", i);
        assert_true(uc__near_put(n, 0, key, strlen(key), uc__near_ticket(n),
                                 val, len, &m, 0, keep ? &e : NULL) >= 0);
        if (e != NULL) {
            held[nheld++] = e;
            held_bytes += uc__near_charge(e);
        }
        total += len + strlen(key);
    }
    {
        uc__near_stats_t st = stats_of(n, 0);
        size_t dead_entries = nheld; /* at most; some may still be in */
        assert_true(st.dead_bytes > budget / 4);
        check_heap(n, heap0, budget, dead_entries, budget * 9 / 10,
                   "with references held");
    }
    for (size_t i = 0; i < nheld; i++) {
        uc__near_release(held[i]);
    }
    assert_int_equal(stats_of(n, 0).dead_bytes, 0);
    /* What readers gave back is free again, and the class fills up. */
    check_heap(n, heap0, budget, 0, 0, "references released");
    for (size_t i = 0, total = 0; total < 2 * budget; i++) {
        size_t len = any_len(&rng);
        uc__near_meta_t m = meta_of(val, len, 0);
        snprintf(key, sizeof(key), "r:%08zu", i);
        assert_true(uc__near_put(n, 0, key, strlen(key), uc__near_ticket(n),
                                 val, len, &m, 0, NULL) >= 0);
        total += len + strlen(key);
    }
    check_heap(n, heap0, budget, 0, budget * 9 / 10, "refilled");

    uc__near_destroy(n);
    /* Everything went back (but what the allocator keeps for reuse). */
    assert_true(heap_in_use() <= heap_before + budget / 20);
    free(val);
    free(held);
}

/* ---- S3-FIFO ------------------------------------------------------------ */

/* A hot set, used a few times, survives one pass over keys worth four
 * budgets that are never read again; LRU or FIFO would lose all of it. */
static void scan_resistance(void **state)
{
    enum { HOT = 300, VLEN = 500 };
    const size_t budget = 1 * MIB;
    uc__near_t *n = near_new(1, budget);
    char val[VLEN + 1];
    char key[32];
    unsigned kept = 0;
    uc__near_stats_t st;
    (void)state;

    memset(val, 'h', VLEN);
    val[VLEN] = '\0';
    for (unsigned i = 0; i < HOT; i++) {
        snprintf(key, sizeof(key), "hot:%u", i);
        assert_int_equal(put_s(n, 0, key, val, NULL), 1);
    }
    for (unsigned round = 0; round < 3; round++) {
        for (unsigned i = 0; i < HOT; i++) {
            snprintf(key, sizeof(key), "hot:%u", i);
            uc__near_release(get_s(n, 0, key));
        }
    }
    fill(n, 0, "scan:", 4 * budget, VLEN);
    st = stats_of(n, 0);
    assert_true(st.evictions > 4 * budget / (VLEN + 100) / 2);
    for (unsigned i = 0; i < HOT; i++) {
        uc__near_entry_t *e;
        snprintf(key, sizeof(key), "hot:%u", i);
        e = get_s(n, 0, key);
        kept += e != NULL;
        uc__near_release(e);
    }
    print_message("hot entries kept: %u of %u\n", kept, HOT);
    assert_int_equal(kept, HOT);
    uc__near_destroy(n);
}

/* ---- threads ------------------------------------------------------------ */

#define ST_THREADS 4
#define ST_KEYS 512
#define ST_HELD 8
#define ST_SECONDS 1
#define ST_BUDGET (128 * KIB)

typedef struct {
    uc__near_t *n;
    _Atomic uint64_t *ver; /* the "store": each key's current version */
    /* Per key, the highest version whose invalidation has returned: from
     * then on no get may return an older one. */
    _Atomic uint64_t *done;
    _Atomic int *stop;
    unsigned id;
    /* Counted by the thread, read by the main thread after join. */
    uint64_t gets, hits, puts, installed, writes, flushes;
    uint64_t bad; /* entries whose bytes did not match their key and meta */
    char why[128];
} st_arg_t;

static size_t st_value(unsigned k, uint64_t v, char *buf, size_t cap)
{
    size_t len = 24 + (size_t)((k * 7u + v * 13u) % 900u);
    int head = snprintf(buf, cap, "k%04u v%012" PRIu64 "|", k, v);
    assert_true(len < cap);
    for (size_t i = (size_t)head; i < len; i++) {
        buf[i] = (char)('a' + (i + k + v) % 26);
    }
    buf[len] = '\0';
    return len;
}

/* Checks that an entry is exactly the value of its key at some version;
 * returns that version, or UINT64_MAX (and says why in a). */
static uint64_t st_check(st_arg_t *a, const uc__near_entry_t *e, unsigned k)
{
    char want[1024];
    char key[16];
    unsigned kk = 0;
    uint64_t v = 0;
    size_t klen, len;
    const char *kp = uc__near_key(e, &klen);

    snprintf(key, sizeof(key), "s:%u", k);
    if (klen != strlen(key) || memcmp(kp, key, klen) != 0 ||
        sscanf(uc__near_value(e), "k%4u v%12" SCNu64 "|", &kk, &v) != 2 ||
        kk != k) {
        snprintf(a->why, sizeof(a->why), "entry of key %u is not its own", k);
        return UINT64_MAX;
    }
    len = st_value(k, v, want, sizeof(want));
    if (uc__near_len(e) != len ||
        memcmp(uc__near_value(e), want, len + 1) != 0 ||
        uc__near_meta(e)->hash != fnv1a(want, len)) {
        snprintf(a->why, sizeof(a->why), "key %u v%" PRIu64 ": bytes differ", k,
                 v);
        return UINT64_MAX;
    }
    return v;
}

static void *st_worker(void *p)
{
    st_arg_t *a = p;
    uc__near_entry_t *held[ST_HELD] = {NULL};
    unsigned held_k[ST_HELD] = {0};
    uint64_t rng = 0x2545f4914f6cdd1dULL * (a->id + 1);
    char val[1024];
    char key[16];

    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        unsigned k, op;
        size_t cls;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        k = (unsigned)(rng >> 8) % ST_KEYS;
        op = (unsigned)(rng >> 40) % 1000;
        cls = k % 2;
        snprintf(key, sizeof(key), "s:%u", k);
        if (op < 600) {
            uint64_t floor = atomic_load(&a->done[k]);
            uc__near_entry_t *e = uc__near_get(a->n, cls, key, strlen(key), 0);
            uint64_t v;
            a->gets++;
            if (e == NULL) {
                continue;
            }
            a->hits++;
            v = st_check(a, e, k);
            if (v == UINT64_MAX) {
                a->bad++;
            } else if (v < floor) {
                snprintf(a->why, sizeof(a->why),
                         "key %u: got v%" PRIu64 " after v%" PRIu64
                         " was invalidated",
                         k, v, floor);
                a->bad++;
            }
            /* Keep some for a while, checking them again on release: an
             * entry never changes under its reader. */
            {
                unsigned slot = (unsigned)(rng >> 20) % ST_HELD;
                if (held[slot] != NULL &&
                    st_check(a, held[slot], held_k[slot]) == UINT64_MAX) {
                    a->bad++;
                }
                uc__near_release(held[slot]);
                held[slot] = e;
                held_k[slot] = k;
            }
        } else if (op < 900) {
            /* A miss's fill: ticket, then read the store, then put. */
            uint64_t t = uc__near_ticket(a->n);
            uint64_t v = atomic_load(&a->ver[k]);
            size_t len;
            /* Now and then the store answers slowly, as over a network,
             * and a write slips in before the put. */
            if ((op & 15) == 0) {
                sched_yield();
            }
            len = st_value(k, v, val, sizeof(val));
            uc__near_meta_t m = meta_of(val, len, 0);
            uc__near_entry_t *e = NULL;
            int rc = uc__near_put(a->n, cls, key, strlen(key), t, val, len, &m,
                                  0, op & 1 ? &e : NULL);
            a->puts++;
            if (rc < 0) {
                snprintf(a->why, sizeof(a->why), "put -> %d", rc);
                a->bad++;
            }
            a->installed += rc == 1;
            if (e != NULL && st_check(a, e, k) != v) {
                a->bad++;
            }
            uc__near_release(e);
        } else if (op < 998) {
            /* A write: the store first, then the invalidation. */
            uint64_t v = atomic_fetch_add(&a->ver[k], 1) + 1;
            uint64_t cur = atomic_load(&a->done[k]);
            uc__near_invalidate(a->n, key, strlen(key));
            while (cur < v &&
                   !atomic_compare_exchange_weak(&a->done[k], &cur, v)) {
            }
            a->writes++;
        } else if (op == 998) {
            uc__near_flush_class(a->n, cls);
            a->flushes++;
        } else {
            uc__near_flush(a->n);
            a->flushes++;
        }
    }
    for (unsigned i = 0; i < ST_HELD; i++) {
        if (held[i] != NULL && st_check(a, held[i], held_k[i]) == UINT64_MAX) {
            a->bad++;
        }
        uc__near_release(held[i]);
    }
    return NULL;
}

static void threads_mixed(void **state)
{
    uc__near_t *n = near_new(2, ST_BUDGET);
    _Atomic uint64_t *ver = calloc(ST_KEYS, sizeof(*ver));
    _Atomic uint64_t *done = calloc(ST_KEYS, sizeof(*done));
    _Atomic int stop = 0;
    pthread_t th[ST_THREADS];
    st_arg_t args[ST_THREADS];
    struct timespec pause = {ST_SECONDS, 0};
    uint64_t hits = 0, installed = 0, writes = 0, flushes = 0;
    uint64_t found[2] = {0, 0};
    (void)state;

    assert_non_null(ver);
    assert_non_null(done);
    for (unsigned i = 0; i < ST_THREADS; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        args[i].n = n;
        args[i].ver = ver;
        args[i].done = done;
        args[i].stop = &stop;
        args[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, st_worker, &args[i]), 0);
    }
    nanosleep(&pause, NULL);
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < ST_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    for (unsigned i = 0; i < ST_THREADS; i++) {
        if (args[i].bad != 0) {
            fail_msg("thread %u: %" PRIu64 " bad entries (last: %s)", i,
                     args[i].bad, args[i].why);
        }
        hits += args[i].hits;
        installed += args[i].installed;
        writes += args[i].writes;
        flushes += args[i].flushes;
    }
    print_message("%" PRIu64 " hits, %" PRIu64 " installs, %" PRIu64
                  " invalidating writes, %" PRIu64 " flushes\n",
                  hits, installed, writes, flushes);
    assert_true(hits > 0 && installed > 0 && writes > 0);

    /* No entry older than its key's last write survived, and the figures
     * agree with what is really there. */
    for (unsigned k = 0; k < ST_KEYS; k++) {
        char key[16];
        uc__near_entry_t *e;
        snprintf(key, sizeof(key), "s:%u", k);
        e = get_s(n, k % 2, key);
        if (e != NULL) {
            uint64_t v = st_check(&args[0], e, k);
            if (v != atomic_load(&ver[k])) {
                fail_msg("key %u: cached v%" PRIu64 " after write v%" PRIu64, k,
                         v, atomic_load(&ver[k]));
            }
            found[k % 2]++;
        }
        uc__near_release(e);
    }
    for (size_t c = 0; c < 2; c++) {
        uc__near_stats_t st = stats_of(n, c);
        assert_int_equal(st.dead_bytes, 0);
        assert_true(st.bytes <= ST_BUDGET);
        assert_int_equal(st.entries, found[c]);
        assert_true(st.inserts >= st.entries);
    }
    uc__near_flush(n);
    for (size_t c = 0; c < 2; c++) {
        assert_int_equal(stats_of(n, c).bytes, 0);
    }
    uc__near_destroy(n);
    free(ver);
    free(done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_replace),
        cmocka_unit_test(binary_keys_and_values),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(too_big_and_disabled),
        cmocka_unit_test(stale_entries_dropped),
        cmocka_unit_test(reference_outlives_removal),
        cmocka_unit_test(reference_outlives_destroy),
        cmocka_unit_test(ticket_vs_invalidate),
        cmocka_unit_test(ticket_other_keys),
        cmocka_unit_test(ticket_vs_flush),
        cmocka_unit_test(class_budgets),
        cmocka_unit_test(heap_within_budget),
        cmocka_unit_test(scan_resistance),
        cmocka_unit_test(threads_mixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
