/* SPDX-License-Identifier: MIT */
/*
 * The cache on a real six-node Redis Cluster (tests/support/redis_cluster.h)
 * through the public API, configured as a user would: REDIS_URL naming one
 * node. Checks that:
 *   - the mode is detected, the topology has 3 primaries covering 16384
 *     slots, and entries land on every primary;
 *   - multi-key get and set across nodes, and a keyspace-wide invalidation
 *     (SCAN + UNLINK on every primary), work;
 *   - a slot migrated by hand (IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE)
 *     is followed through ASK while it moves and MOVED after;
 *   - a killed primary: every read answers (from the loader while the slot
 *     has no primary), the promoted replica is distrusted and the cache's
 *     keys on it dropped, the other nodes' entries stay hits, and the cache
 *     serves that node's keys again after the failover (time printed);
 *   - a hung primary: reads of its keys answer within bounds, the others
 *     stay hits;
 *   - the whole cluster down: every read answers from the loader.
 *
 * Without redis-server 7.0+ and redis-cli each test fails, or skips when
 * UC_TEST_ALLOW_SKIP=1 (scripts/ctest-verdict then still reports it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <pthread.h>

#include "cluster.h"
#include "redis_cluster.h"
#include "util.h"
#include "utxocache/utxocache.h"

#define NKEYS 300
#define PREFIX "cc:"
#define FAILOVER_WAIT_MS 20000

#define FIGURE(name, fmtstr, ...)                                              \
    do {                                                                       \
        printf("FIGURE %s " fmtstr "\n", name, __VA_ARGS__);                   \
        fflush(stdout);                                                        \
    } while (0)

typedef struct {
    uc_test_cluster_t cl;
    uc_cache_t *c;
    uc_keyspace_t *ks;
    _Atomic unsigned loads;
    unsigned version; /* loader values carry it */
} world_t;

static int load_item(void *arg, const char *const *fields, size_t nfields,
                     char **val, size_t *len)
{
    world_t *w = arg;
    char buf[96];
    int n;

    assert_int_equal(nfields, 1);
    atomic_fetch_add(&w->loads, 1);
    n = snprintf(buf, sizeof(buf), "item-%s-v%u", fields[0], w->version);
    *val = malloc((size_t)n + 1);
    if (*val == NULL) {
        return UC_ENOMEM;
    }
    memcpy(*val, buf, (size_t)n + 1);
    *len = (size_t)n;
    return UC_OK;
}

/* The library's log on stderr when UC_TEST_VERBOSE is set. */
static void log_line(void *arg, uc_log_level_t level, const char *msg)
{
    (void)arg;
    fprintf(stderr, "log %d: %s\n", (int)level, msg);
}

static int setup(void **state)
{
    world_t *w = calloc(1, sizeof(*w));

    *state = w;
    return w != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    world_t *w = *state;

    uc_cache_destroy(w->c);
    uc_test_cluster_stop(&w->cl);
    free(w);
    return 0;
}

/* The cluster and a cache on it, REDIS_URL naming node 0 only. */
static void world_start(world_t *w, int near)
{
    char why[200];
    char url[64];
    char err[256];
    uc_config_t cfg;
    uc_keyspace_def_t def;

    if (!uc_test_cluster_available(why, sizeof(why))) {
        if (getenv("UC_TEST_ALLOW_SKIP") != NULL) {
            skip();
        }
        fail_msg("%s", why);
    }
    assert_int_equal(uc_test_cluster_start(&w->cl), 0);
    uc_config_init(&cfg);
    /* Refills after writes would make the misses these tests expect hits. */
    cfg.refill_top = -1;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", w->cl.node[0].port);
    assert_int_equal(uc_config_parse_url(&cfg, url, err, sizeof(err)), UC_OK);
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "%s", PREFIX);
    cfg.backend = UC_BACKEND_REDIS;
    cfg.near_off = !near;
    cfg.breaker_cooldown_ms = 200;
    /* The loads are counted: no warming after a failover's drop. */
    cfg.warm_top = -1;
    if (getenv("UC_TEST_VERBOSE") != NULL) {
        cfg.log_fn = log_line;
        cfg.log_level = UC_LOG_DEBUG;
    }
    assert_int_equal(uc_cache_create(&cfg, &w->c, err, sizeof(err)), UC_OK);
    memset(&def, 0, sizeof(def));
    def.name = "item";
    def.pattern = "item:{id}";
    def.ttl_s = 600;
    def.loader = load_item;
    def.loader_arg = w;
    def.refresh_beta = -1; /* no early refresh: loads are counted */
    assert_int_equal(uc_cache_add_keyspaces(w->c, &def, 1, err, sizeof(err)),
                     UC_OK);
    w->ks = uc_cache_keyspace(w->c, "item");
    assert_non_null(w->ks);
}

/* One get-or-load of item i; returns its source, checks the value. */
static uc_source_t read_item(world_t *w, int i, unsigned want_version)
{
    char id[16];
    const char *f[1] = {id};
    uc_load_result_t r;
    char want[96];
    int rc;

    snprintf(id, sizeof(id), "%d", i);
    rc = uc_keyspace_get_or_load(w->ks, f, 1, NULL, &r);
    assert_int_equal(rc, UC_OK);
    snprintf(want, sizeof(want), "item-%s-v%u", id, want_version);
    assert_string_equal(r.data, want);
    uc_free(r.data);
    return r.source;
}

/* The full key of item i and its slot. */
static unsigned item_slot(int i)
{
    char key[64];
    int n = snprintf(key, sizeof(key), PREFIX "item:%d", i);

    return uc__key_slot(key, (size_t)n);
}

/* Keys of our prefix on node i (SCAN). */
static long count_keys(world_t *w, int node)
{
    redisContext *rc = uc_test_cluster_connect(&w->cl, node);
    char cursor[32] = "0";
    long n = 0;

    assert_non_null(rc);
    do {
        redisReply *r = redisCommand(rc,
                                     "SCAN %s MATCH " PREFIX "item:* "
                                     "COUNT 1000",
                                     cursor);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        n += (long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(rc);
    return n;
}

static void test_routing(void **state)
{
    world_t *w = *state;
    uc_redis_topology_t topo;
    uc_redis_node_t nodes[UC_REDIS_NODES_MAX];
    size_t n, primaries = 0;
    unsigned slots = 0;

    world_start(w, 0);
    for (int i = 0; i < NKEYS; i++) {
        assert_int_equal(read_item(w, i, 0), UC_FROM_LOADER);
    }
    assert_int_equal(atomic_load(&w->loads), NKEYS);
    for (int i = 0; i < NKEYS; i++) {
        assert_int_equal(read_item(w, i, 0), UC_FROM_CACHE);
    }
    assert_int_equal(atomic_load(&w->loads), NKEYS);

    n = uc_cache_redis_nodes(w->c, &topo, nodes, UC_REDIS_NODES_MAX);
    assert_int_equal(topo.mode, UC_REDIS_CLUSTER);
    assert_true(n >= 3);
    for (size_t i = 0; i < n && i < UC_REDIS_NODES_MAX; i++) {
        if (nodes[i].role == UC_NODE_PRIMARY && nodes[i].slots > 0) {
            primaries++;
            slots += nodes[i].slots;
            assert_true(nodes[i].commands > 0);
            assert_int_equal(nodes[i].trusted, 1);
        }
    }
    assert_int_equal(primaries, 3);
    assert_int_equal(slots, UC_TEST_CLUSTER_SLOTS);
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        if (uc_test_cluster_is_primary(&w->cl, i) == 1) {
            long k = count_keys(w, i);
            printf("node %d (primary): %ld keys\n", i, k);
            assert_true(k > NKEYS / 6);
        }
    }

    /* Raw multi-key calls spanning every node, one pipeline per node. */
    {
        char kb[NKEYS][32], vb[NKEYS][32];
        const char *keys[NKEYS], *vals[NKEYS];
        size_t klens[NKEYS], vlens[NKEYS];
        uc_value_t out[NKEYS];

        for (int i = 0; i < NKEYS; i++) {
            klens[i] = (size_t)snprintf(kb[i], sizeof(kb[i]), "raw:%d", i);
            vlens[i] = (size_t)snprintf(vb[i], sizeof(vb[i]), "val-%d", i);
            keys[i] = kb[i];
            vals[i] = vb[i];
        }
        assert_int_equal(
            uc_cache_mset(w->c, NKEYS, keys, klens, vals, vlens, 60000), UC_OK);
        memset(out, 0, sizeof(out));
        assert_int_equal(uc_cache_mget(w->c, NKEYS, keys, klens, out), UC_OK);
        for (int i = 0; i < NKEYS; i++) {
            assert_int_equal(out[i].status, UC_OK);
            assert_int_equal(out[i].len, vlens[i]);
            assert_memory_equal(out[i].data, vals[i], vlens[i]);
            uc_free(out[i].data);
        }
    }

    /* A keyspace-wide invalidation reaches every primary. */
    assert_int_equal(
        uc_keyspace_invalidate(w->ks, (const char *[]){NULL}, 1, NULL), UC_OK);
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        if (uc_test_cluster_is_primary(&w->cl, i) == 1) {
            assert_int_equal(count_keys(w, i), 0);
        }
    }
    assert_int_equal(read_item(w, 7, 0), UC_FROM_LOADER);
}

/* Node index and id of the primary serving `slot`. */
static int primary_of(world_t *w, unsigned slot, char *id, size_t cap)
{
    int node = uc_test_cluster_slot_primary(&w->cl, slot);
    redisContext *rc;
    redisReply *r;

    assert_true(node >= 0);
    rc = uc_test_cluster_connect(&w->cl, node);
    assert_non_null(rc);
    r = redisCommand(rc, "CLUSTER MYID");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(id, cap, "%s", r->str);
    freeReplyObject(r);
    redisFree(rc);
    return node;
}

static void command_ok(world_t *w, int node, const char *fmt, ...)
{
    redisContext *rc = uc_test_cluster_connect(&w->cl, node);
    redisReply *r;
    va_list ap;

    assert_non_null(rc);
    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) {
        fail_msg("node %d: %s", node, r->str);
    }
    freeReplyObject(r);
    redisFree(rc);
}

static void test_migration(void **state)
{
    world_t *w = *state;
    char src_id[64], dst_id[64];
    int a = 1, b = -1, src, dst = -1;
    unsigned slot;
    uc_redis_topology_t topo;
    uc_redis_node_t nodes[UC_REDIS_NODES_MAX];
    size_t n;
    uint64_t ask = 0, moved = 0;

    world_start(w, 0);
    slot = item_slot(a);
    src = primary_of(w, slot, src_id, sizeof(src_id));
    /* b: another item in the same slot does not exist in general; use a
     * second item on the source node that stays behind. */
    for (int i = 2; i < 5000 && b < 0; i++) {
        if (item_slot(i) != slot &&
            uc_test_cluster_slot_primary(&w->cl, item_slot(i)) == src) {
            b = i;
        }
    }
    assert_true(b > 0);
    for (int i = 0; i < UC_TEST_CLUSTER_NODES && dst < 0; i++) {
        if (i != src && uc_test_cluster_is_primary(&w->cl, i) == 1) {
            dst = i;
        }
    }
    assert_true(dst >= 0);
    {
        redisContext *rc = uc_test_cluster_connect(&w->cl, dst);
        redisReply *r = redisCommand(rc, "CLUSTER MYID");
        snprintf(dst_id, sizeof(dst_id), "%s", r->str);
        freeReplyObject(r);
        redisFree(rc);
    }
    assert_int_equal(read_item(w, a, 0), UC_FROM_LOADER);
    assert_int_equal(read_item(w, b, 0), UC_FROM_LOADER);
    assert_int_equal(read_item(w, a, 0), UC_FROM_CACHE);

    /* Half-way: the slot is migrating and its key already moved, so the
     * source answers ASK for it. */
    command_ok(w, dst, "CLUSTER SETSLOT %u IMPORTING %s", slot, src_id);
    command_ok(w, src, "CLUSTER SETSLOT %u MIGRATING %s", slot, dst_id);
    command_ok(w, src, "MIGRATE 127.0.0.1 %d " PREFIX "item:%d 0 5000",
               w->cl.node[dst].port, a);
    assert_int_equal(read_item(w, a, 0), UC_FROM_CACHE);
    /* Done: the slot is the target's; the cache's map is older (MOVED). */
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        if (uc_test_cluster_is_primary(&w->cl, i) == 1) {
            command_ok(w, i, "CLUSTER SETSLOT %u NODE %s", slot, dst_id);
        }
    }
    assert_int_equal(read_item(w, a, 0), UC_FROM_CACHE);
    assert_int_equal(read_item(w, b, 0), UC_FROM_CACHE);
    n = uc_cache_redis_nodes(w->c, &topo, nodes, UC_REDIS_NODES_MAX);
    for (size_t i = 0; i < n && i < UC_REDIS_NODES_MAX; i++) {
        ask += nodes[i].ask;
        moved += nodes[i].moved;
    }
    FIGURE("cluster_migration", "ask=%llu moved=%llu loads=%u",
           (unsigned long long)ask, (unsigned long long)moved,
           atomic_load(&w->loads));
    assert_true(ask >= 1);
    assert_true(moved >= 1);
    assert_int_equal(atomic_load(&w->loads), 2);
}

/* Readers of random items alongside the main thread, during a fault. */
typedef struct {
    world_t *w;
    _Atomic int stop;
    unsigned seed;
    unsigned long reads, bad;
} readers_t;

static void *reader_main(void *arg)
{
    readers_t *r = arg;
    unsigned seed = r->seed;

    while (!atomic_load(&r->stop)) {
        char id[16], want[96];
        const char *f[1] = {id};
        uc_load_result_t res;
        int i = (int)(rand_r(&seed) % NKEYS);

        snprintf(id, sizeof(id), "%d", i);
        snprintf(want, sizeof(want), "item-%s-v0", id);
        if (uc_keyspace_get_or_load(r->w->ks, f, 1, NULL, &res) != UC_OK ||
            strcmp(res.data, want) != 0) {
            r->bad++;
        }
        if (res.data != NULL) {
            uc_free(res.data);
        }
        r->reads++;
    }
    return NULL;
}

#define NREADERS 3

static void test_failover(void **state)
{
    pthread_t th[NREADERS];
    readers_t rd[NREADERS];
    world_t *w = *state;
    int victim, victim_item = -1, other_item = -1;
    uint64_t t0, back_ms = 0;
    unsigned loads_before;
    unsigned reads = 0, fallbacks = 0;
    uc_redis_topology_t topo;

    world_start(w, 0);
    victim = uc_test_cluster_slot_primary(&w->cl, item_slot(0));
    assert_true(victim >= 0);
    for (int i = 0; i < NKEYS; i++) {
        assert_int_equal(read_item(w, i, 0), UC_FROM_LOADER);
        if (uc_test_cluster_slot_primary(&w->cl, item_slot(i)) == victim) {
            victim_item = victim_item < 0 ? i : victim_item;
        } else if (other_item < 0) {
            other_item = i;
        }
    }
    assert_true(victim_item >= 0 && other_item >= 0);
    loads_before = atomic_load(&w->loads);

    for (int i = 0; i < NREADERS; i++) {
        memset(&rd[i], 0, sizeof(rd[i]));
        rd[i].w = w;
        rd[i].seed = 17u + (unsigned)i;
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
    }
    uc_test_cluster_kill(&w->cl, victim);
    t0 = uc_test_now_ms();
    /* Every read answers; the victim's keys from the loader until the
     * replica took over and its keys were dropped; then hits again. */
    for (;;) {
        uc_source_t s = read_item(w, victim_item, 0);
        uint64_t now = uc_test_now_ms();

        reads++;
        if (s == UC_FROM_CACHE && now - t0 > 100) {
            back_ms = now - t0;
            break;
        }
        if (s == UC_FROM_FALLBACK || s == UC_FROM_BYPASS) {
            fallbacks++;
        }
        assert_true(now - t0 < FAILOVER_WAIT_MS);
        uc_test_sleep_ms(10);
    }
    {
        unsigned long reads_all = 0, bad_all = 0;

        for (int i = 0; i < NREADERS; i++) {
            atomic_store(&rd[i].stop, 1);
            pthread_join(th[i], NULL);
            reads_all += rd[i].reads;
            bad_all += rd[i].bad;
        }
        FIGURE("cluster_failover_readers", "threads=%d reads=%lu wrong=%lu",
               NREADERS, reads_all, bad_all);
        assert_int_equal(bad_all, 0);
        assert_true(reads_all > 0);
    }
    /* A MOVED may have routed the slot to the new primary before a slot
     * map showed the takeover: the next refresh (1 s) shows it. */
    for (uint64_t until = uc_test_now_ms() + 3000;;) {
        uc_cache_redis_nodes(w->c, &topo, NULL, 0);
        if (topo.failovers >= 1 || uc_test_now_ms() > until) {
            break;
        }
        uc_test_sleep_ms(20);
    }
    FIGURE("cluster_failover",
           "cache_used_again_ms=%llu reads=%u fallbacks=%u failovers=%llu "
           "refreshes=%llu",
           (unsigned long long)back_ms, reads, fallbacks,
           (unsigned long long)topo.failovers,
           (unsigned long long)topo.refreshes);
    {
        uc_redis_node_t nodes[UC_REDIS_NODES_MAX];
        size_t n = uc_cache_redis_nodes(w->c, NULL, nodes, UC_REDIS_NODES_MAX);

        for (size_t i = 0; i < n && i < UC_REDIS_NODES_MAX; i++) {
            printf("node %s role=%d slots=%u trusted=%d distrusts=%llu "
                   "commands=%llu failures=%llu\n",
                   nodes[i].addr, (int)nodes[i].role, nodes[i].slots,
                   nodes[i].trusted, (unsigned long long)nodes[i].distrusts,
                   (unsigned long long)nodes[i].commands,
                   (unsigned long long)nodes[i].failures);
        }
        printf("victim node %d port %d, other item %d slot %u on node %d\n",
               victim, w->cl.node[victim].port, other_item,
               item_slot(other_item),
               uc_test_cluster_slot_primary(&w->cl, item_slot(other_item)));
    }
    assert_true(topo.failovers >= 1);
    /* The promoted replica's copy was dropped: the victim's entry was
     * loaded again, and others on that node will be too... */
    assert_true((unsigned)atomic_load(&w->loads) > loads_before);
    /* ...while an entry on another node is still a hit. */
    loads_before = atomic_load(&w->loads);
    assert_int_equal(read_item(w, other_item, 0), UC_FROM_CACHE);
    assert_int_equal(atomic_load(&w->loads), loads_before);
}

/*
 * The near cache on a cluster: hits without a round trip once every
 * primary's channel is proven, and a delete made through another handle
 * (another instance) on any primary reaches this handle's near cache.
 */
static void test_near_coherent(void **state)
{
    world_t *w = *state;
    uc_cache_t *c2 = NULL;
    uc_keyspace_t *ks2;
    uc_near_stats_t ns;
    uc_stats_t st;
    char err[256];
    uc_config_t cfg;
    uc_keyspace_def_t def;
    char url[64];
    uint64_t worst_us = 0;
    int items[3] = {-1, -1, -1};
    int owners[3] = {-1, -1, -1};

    world_start(w, 1);
    /* One item on each primary. */
    for (int i = 0; i < NKEYS; i++) {
        int p = uc_test_cluster_slot_primary(&w->cl, item_slot(i));
        for (int k = 0; k < 3; k++) {
            if (owners[k] == p) {
                break;
            }
            if (owners[k] < 0) {
                owners[k] = p;
                items[k] = i;
                break;
            }
        }
    }
    for (int k = 0; k < 3; k++) {
        assert_true(items[k] >= 0);
    }
    /* The channel is proven within a bound: then reads hit the near cache. */
    for (uint64_t until = uc_test_now_ms() + 5000;;) {
        uc_cache_near_stats(w->c, &ns);
        if (ns.channel == UC_CHANNEL_HEALTHY) {
            break;
        }
        assert_true(uc_test_now_ms() < until);
        uc_test_sleep_ms(10);
    }
    {
        uc_redis_node_t nodes[UC_REDIS_NODES_MAX];
        size_t n = uc_cache_redis_nodes(w->c, NULL, nodes, UC_REDIS_NODES_MAX);
        int healthy = 0;

        for (size_t i = 0; i < n && i < UC_REDIS_NODES_MAX; i++) {
            if (nodes[i].role == UC_NODE_PRIMARY && nodes[i].slots > 0) {
                assert_int_equal(nodes[i].channel, UC_CHANNEL_HEALTHY);
                assert_true(nodes[i].channel_heartbeats > 0);
                healthy++;
            } else {
                assert_int_equal(nodes[i].channel, UC_CHANNEL_NONE);
            }
        }
        assert_int_equal(healthy, 3);
    }
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < 3; k++) {
            (void)read_item(w, items[k], 0);
        }
    }
    uc_cache_stats(w->c, &st);
    assert_true(st.near_hits >= 3);

    uc_config_init(&cfg);
    /* Refills after writes would make the misses these tests expect hits. */
    cfg.refill_top = -1;

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", w->cl.node[3].port);
    assert_int_equal(uc_config_parse_url(&cfg, url, err, sizeof(err)), UC_OK);
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "%s", PREFIX);
    cfg.backend = UC_BACKEND_REDIS;
    cfg.near_off = 1;
    assert_int_equal(uc_cache_create(&cfg, &c2, err, sizeof(err)), UC_OK);
    memset(&def, 0, sizeof(def));
    def.name = "item";
    def.pattern = "item:{id}";
    def.ttl_s = 600;
    assert_int_equal(uc_cache_add_keyspaces(c2, &def, 1, err, sizeof(err)),
                     UC_OK);
    ks2 = uc_cache_keyspace(c2, "item");
    w->version = 1; /* the database changed; the other instance deletes */
    for (int k = 0; k < 3; k++) {
        char id[16];
        const char *f[1] = {id};
        uint64_t t0;

        snprintf(id, sizeof(id), "%d", items[k]);
        assert_int_equal(uc_keyspace_del(ks2, f, 1, NULL), UC_OK);
        t0 = uc_test_now_us();
        for (;;) {
            uc_load_result_t r;
            char want[96];

            assert_int_equal(uc_keyspace_get_or_load(w->ks, f, 1, NULL, &r),
                             UC_OK);
            snprintf(want, sizeof(want), "item-%s-v1", id);
            if (strcmp(r.data, want) == 0) {
                uc_free(r.data);
                break;
            }
            uc_free(r.data);
            assert_true(uc_test_now_us() - t0 < 1000000u);
            uc_test_sleep_ms(1);
        }
        t0 = uc_test_now_us() - t0;
        worst_us = t0 > worst_us ? t0 : worst_us;
    }
    FIGURE("cluster_near_invalidation", "primaries=3 worst_lag_ms=%.2f",
           (double)worst_us / 1000.0);
    uc_cache_destroy(c2);
}

static void test_hung_primary(void **state)
{
    world_t *w = *state;
    int victim, victim_item = -1, other_item = -1;
    uint64_t worst = 0, t0;

    world_start(w, 0);
    victim = uc_test_cluster_slot_primary(&w->cl, item_slot(0));
    for (int i = 0; i < 60; i++) {
        (void)read_item(w, i, 0);
        if (uc_test_cluster_slot_primary(&w->cl, item_slot(i)) == victim) {
            victim_item = victim_item < 0 ? i : victim_item;
        } else if (other_item < 0) {
            other_item = i;
        }
    }
    assert_int_equal(uc_test_cluster_pause(&w->cl, victim), 0);
    t0 = uc_test_now_ms();
    while (uc_test_now_ms() - t0 < 800) {
        uint64_t s = uc_test_now_us();

        (void)read_item(w, victim_item, 0);
        s = uc_test_now_us() - s;
        worst = s > worst ? s : worst;
        assert_int_equal(read_item(w, other_item, 0), UC_FROM_CACHE);
    }
    assert_int_equal(uc_test_cluster_resume(&w->cl, victim), 0);
    FIGURE("cluster_hung_primary", "worst_read_ms=%.1f",
           (double)worst / 1000.0);
    /* A read waits at most about one command timeout (250 ms) before the
     * loader answers, and the breaker then answers at once. */
    assert_true(worst < 2000000u);
}

static void test_all_down(void **state)
{
    world_t *w = *state;
    uint64_t worst = 0;

    world_start(w, 0);
    for (int i = 0; i < 20; i++) {
        (void)read_item(w, i, 0);
    }
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        uc_test_cluster_kill(&w->cl, i);
    }
    w->version = 1; /* what the database says now */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20; i++) {
            uint64_t s = uc_test_now_us();
            uc_source_t src = read_item(w, i, 1);

            s = uc_test_now_us() - s;
            worst = s > worst ? s : worst;
            assert_true(src == UC_FROM_FALLBACK || src == UC_FROM_BYPASS);
        }
    }
    FIGURE("cluster_all_down", "worst_read_ms=%.1f", (double)worst / 1000.0);
    assert_true(worst < 2000000u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_near_coherent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hung_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_down, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
