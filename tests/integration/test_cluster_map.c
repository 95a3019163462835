/* SPDX-License-Identifier: MIT */
/*
 * The slot map (src/lib/cluster.c) against a real six-node Redis Cluster
 * (tests/support/redis_cluster.h): the map built from CLUSTER SHARDS names,
 * for every slot, the primary CLUSTER NODES names; 2000 random keys sent to
 * the node the map picks come back without a redirect, and sent to another
 * primary come back MOVED to exactly that slot and node; after a manual
 * failover, a killed primary and a hung (SIGSTOP) one, a refetched map has
 * moved the slots, and only those, to the promoted replica.
 *
 * Prints FIGURE lines: cluster creation, manual failover, failover after a
 * kill and after a hang (until the replica answers ROLE master), and a
 * killed node's rejoin.
 *
 * Without redis-server 7.0+ and redis-cli each test fails, or skips when
 * UC_TEST_ALLOW_SKIP=1 (scripts/ctest-verdict then still reports it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "redis_cluster.h"
#include "util.h"
#include "utxocache/error.h"

#define NKEYS 2000
/* The longest a failover may take here: node timeout 1000 ms, then the
 * replica's 500-1000 ms delay and its election, a few seconds in all. */
#define FAILOVER_WAIT_MS 20000

#define FIGURE(name, fmtstr, ...)                                              \
    do {                                                                       \
        printf("FIGURE %s " fmtstr "\n", name, __VA_ARGS__);                   \
        fflush(stdout);                                                        \
    } while (0)

static int setup(void **state)
{
    uc_test_cluster_t *c = calloc(1, sizeof(*c));

    *state = c;
    return c != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    uc_test_cluster_t *c = *state;

    uc_test_cluster_stop(c);
    free(c);
    return 0;
}

static void start_cluster(uc_test_cluster_t *c)
{
    char why[256] = "";
    const char *allow = getenv("UC_TEST_ALLOW_SKIP");

    if (!uc_test_cluster_available(why, sizeof(why))) {
        if (allow != NULL && strcmp(allow, "1") == 0) {
            print_message("skipped: %s\n", why);
            skip();
        }
        fail_msg("%s (UC_TEST_ALLOW_SKIP=1 skips)", why);
    }
    if (uc_test_cluster_start(c) != 0) {
        fail_msg("could not start the cluster");
    }
    FIGURE("cluster_create_ms", "%llu", (unsigned long long)c->create_ms);
}

/* CLUSTER SHARDS from node i, built into a map, or the test fails. */
static uc__slotmap_t *fetch_map(const uc_test_cluster_t *c, int i)
{
    redisContext *ctx = uc_test_cluster_connect(c, i);
    uc__slotmap_t *m = NULL;
    char err[256] = "";
    redisReply *r;
    int rc;

    assert_non_null(ctx);
    r = redisCommand(ctx, "CLUSTER SHARDS");
    if (r == NULL) {
        fail_msg("CLUSTER SHARDS on node %d: %s", i, ctx->errstr);
    }
    rc = uc__slotmap_from_shards(r, &m, err, sizeof(err));
    freeReplyObject(r);
    redisFree(ctx);
    if (rc != UC_OK) {
        fail_msg("map from node %d: %s: %s", i, uc_err_name(rc), err);
    }
    return m;
}

/* The fixture's node index of map node k. */
static int fixture_index(const uc_test_cluster_t *c, const uc__slotmap_t *m,
                         int k)
{
    const uc__cluster_node_t *n = uc__slotmap_node(m, (size_t)k);
    int idx;

    assert_non_null(n);
    assert_string_equal(n->host, "127.0.0.1");
    idx = uc_test_cluster_node_of_port(c, n->port);
    if (idx < 0) {
        fail_msg("map node %d has port %d, which no fixture node has", k,
                 n->port);
    }
    return idx;
}

/* The fixture index of the primary serving `slot` per the map. */
static int map_owner(const uc_test_cluster_t *c, const uc__slotmap_t *m,
                     unsigned slot)
{
    int k = uc__slotmap_primary(m, slot);

    if (k < 0) {
        fail_msg("slot %u unassigned in the map", slot);
    }
    return fixture_index(c, m, k);
}

/*
 * The map agrees with CLUSTER NODES of node `asked` on every slot, has
 * `nprimaries` primaries serving slots, all online, and each replica it
 * lists follows a primary.
 */
static void check_map(const uc_test_cluster_t *c, const uc__slotmap_t *m,
                      int asked, int nprimaries)
{
    int *owner = malloc(UC_TEST_CLUSTER_SLOTS * sizeof(*owner));
    int n = 0;

    assert_non_null(owner);
    assert_int_equal(uc_test_cluster_owners(c, asked, owner), 0);
    for (unsigned s = 0; s < UC__CLUSTER_SLOTS; s++) {
        int got = map_owner(c, m, s);
        if (got != owner[s]) {
            fail_msg("slot %u: map says node %d, CLUSTER NODES says %d", s, got,
                     owner[s]);
        }
    }
    free(owner);
    for (int k = uc__slotmap_next_primary(m, -1); k >= 0;
         k = uc__slotmap_next_primary(m, k)) {
        const uc__cluster_node_t *p = uc__slotmap_node(m, (size_t)k);
        assert_int_equal(p->role, UC__NODE_PRIMARY);
        assert_int_equal(p->health, UC__HEALTH_ONLINE);
        assert_int_equal(p->primary, k);
        n++;
    }
    assert_int_equal(n, nprimaries);
    for (size_t k = 0; k < uc__slotmap_nnodes(m); k++) {
        const uc__cluster_node_t *r = uc__slotmap_node(m, k);
        if (r->role == UC__NODE_REPLICA) {
            assert_true(r->primary >= 0);
            assert_int_equal(uc__slotmap_node(m, (size_t)r->primary)->role,
                             UC__NODE_PRIMARY);
        }
    }
}

/* The map index of a replica following map primary k, or -1. */
static int replica_of(const uc__slotmap_t *m, int k)
{
    for (size_t i = 0; i < uc__slotmap_nnodes(m); i++) {
        const uc__cluster_node_t *n = uc__slotmap_node(m, i);
        if (n->role == UC__NODE_REPLICA && n->primary == k) {
            return (int)i;
        }
    }
    return -1;
}

/* Waits (bounded) until node i answers ROLE master; the ms it took. */
static uint64_t wait_primary(const uc_test_cluster_t *c, int i, uint64_t t0)
{
    uint64_t deadline = t0 + FAILOVER_WAIT_MS;

    while (uc_test_cluster_is_primary(c, i) != 1) {
        if (uc_test_now_ms() > deadline) {
            fail_msg("node %d not primary within %d ms", i, FAILOVER_WAIT_MS);
        }
        uc_test_sleep_ms(10);
    }
    return uc_test_now_ms() - t0;
}

static redisReply *get(redisContext *ctx, const char *key)
{
    redisReply *r = redisCommand(ctx, "GET %s", key);

    if (r == NULL) {
        fail_msg("GET '%s': %s", key, ctx->errstr);
    }
    return r;
}

/* GET key over ctx, a node that does not serve it: it must come back MOVED
 * to `slot` at `port`, which is map node `map_index` when m is given. */
static void expect_moved(redisContext *ctx, const char *key, unsigned slot,
                         int port, const uc__slotmap_t *m, int map_index)
{
    redisReply *r = get(ctx, key);
    uc__redirect_t rd;

    if (r->type != REDIS_REPLY_ERROR ||
        uc__redirect_parse(r->str, r->len, &rd) != UC_OK) {
        fail_msg("GET '%s' on a wrong node: type %d '%s', not a redirect", key,
                 r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    }
    assert_int_equal(rd.kind, UC__REDIRECT_MOVED);
    assert_int_equal(rd.slot, slot);
    assert_string_equal(rd.host, "127.0.0.1");
    assert_int_equal(rd.port, port);
    if (m != NULL) {
        assert_int_equal(uc__slotmap_find(m, rd.host, rd.port), map_index);
    }
    freeReplyObject(r);
}

/* GET key over ctx, the node serving it: answered (nil or a value). */
static void expect_served(redisContext *ctx, const char *key)
{
    redisReply *r = get(ctx, key);

    if (r->type != REDIS_REPLY_NIL && r->type != REDIS_REPLY_STRING) {
        fail_msg("GET '%s' on the map's node: type %d '%s'", key, r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    }
    freeReplyObject(r);
}

static void connect_all(const uc_test_cluster_t *c,
                        redisContext *ctx[UC_TEST_CLUSTER_NODES])
{
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        ctx[i] = c->node[i].pid > 0 ? uc_test_cluster_connect(c, i) : NULL;
    }
}

static void free_all(redisContext *ctx[UC_TEST_CLUSTER_NODES])
{
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        redisFree(ctx[i]);
        ctx[i] = NULL;
    }
}

/*
 * After a failover of map primary `old_k` to replica `new_i` (fixture
 * index): the slots old_k served are now new_i's, every other slot has the
 * owner it had, and the map fetched from node `asked` agrees with the
 * cluster.
 */
static void check_moved_slots(const uc_test_cluster_t *c,
                              const uc__slotmap_t *before,
                              const uc__slotmap_t *after, int old_k, int new_i,
                              int asked)
{
    unsigned moved = 0;

    check_map(c, after, asked, 3);
    for (unsigned s = 0; s < UC__CLUSTER_SLOTS; s++) {
        int was = uc__slotmap_primary(before, s);
        int now = map_owner(c, after, s);
        if (was == old_k) {
            assert_int_equal(now, new_i);
            moved++;
        } else {
            assert_int_equal(now, fixture_index(c, before, was));
        }
    }
    assert_int_equal(moved, uc__slotmap_node(before, (size_t)old_k)->nslots);
}

static void test_routing_and_manual_failover(void **state)
{
    uc_test_cluster_t *c = *state;
    redisContext *ctx[UC_TEST_CLUSTER_NODES];
    unsigned per_primary[UC_TEST_CLUSTER_NODES] = {0};
    uc__slotmap_t *m;
    uc__slotmap_t *after;
    uint32_t seed = (uint32_t)uc_test_now_us() | 1u;
    uint32_t x = seed;
    unsigned slot;
    int p_k, r_k, p_i, r_i, other_i;
    uint64_t t0, took;
    redisReply *rep;

    start_cluster(c);
    m = fetch_map(c, 0);
    assert_int_equal(uc__slotmap_nnodes(m), UC_TEST_CLUSTER_NODES);
    check_map(c, m, 0, 3);
    connect_all(c, ctx);

    print_message("keys from seed %u\n", seed);
    for (int k = 0; k < NKEYS; k++) {
        char key[64];
        int owner_k;
        int owner_i;
        int wrong_i;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        snprintf(key, sizeof(key), "uc:cluster:%d:%08x", k, x);
        slot = uc__key_slot(key, strlen(key));
        owner_k = uc__slotmap_primary(m, slot);
        owner_i = fixture_index(c, m, owner_k);
        assert_non_null(ctx[owner_i]);
        expect_served(ctx[owner_i], key);
        per_primary[owner_i]++;
        /* Any other primary redirects to the owner. */
        wrong_i = fixture_index(c, m,
                                uc__slotmap_next_primary(m, owner_k) >= 0
                                    ? uc__slotmap_next_primary(m, owner_k)
                                    : uc__slotmap_next_primary(m, -1));
        assert_int_not_equal(wrong_i, owner_i);
        expect_moved(ctx[wrong_i], key, slot, c->node[owner_i].port, m,
                     owner_k);
    }
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        if (per_primary[i] > 0) {
            print_message("node %d served %u keys\n", i, per_primary[i]);
        }
    }

    /* Manual failover of the primary of "foo"'s slot to its replica. */
    slot = uc__key_slot("foo", 3);
    p_k = uc__slotmap_primary(m, slot);
    r_k = replica_of(m, p_k);
    assert_true(r_k >= 0);
    p_i = fixture_index(c, m, p_k);
    r_i = fixture_index(c, m, r_k);
    rep = redisCommand(ctx[r_i], "SET foo bar");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ERROR); /* a replica: MOVED */
    freeReplyObject(rep);
    rep = redisCommand(ctx[p_i], "SET foo bar");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);

    t0 = uc_test_now_ms();
    rep = redisCommand(ctx[r_i], "CLUSTER FAILOVER");
    assert_non_null(rep);
    if (rep->type != REDIS_REPLY_STATUS) {
        fail_msg("CLUSTER FAILOVER: %s", rep->str);
    }
    freeReplyObject(rep);
    took = wait_primary(c, r_i, t0);
    FIGURE("manual_failover_ms", "%llu", (unsigned long long)took);
    assert_int_equal(uc_test_cluster_wait_ok(c, 15000), 0);
    FIGURE("manual_failover_agreed_ms", "%llu",
           (unsigned long long)(uc_test_now_ms() - t0));

    /* Asked of a third node, which only heard of the failover. */
    other_i = fixture_index(c, m,
                            uc__slotmap_next_primary(m, p_k) >= 0
                                ? uc__slotmap_next_primary(m, p_k)
                                : uc__slotmap_next_primary(m, -1));
    after = fetch_map(c, other_i);
    check_moved_slots(c, m, after, p_k, r_i, other_i);
    /* The former primary follows the new one, and says so. */
    {
        int old_in_after =
            uc__slotmap_find(after, "127.0.0.1", c->node[p_i].port);
        int new_in_after =
            uc__slotmap_find(after, "127.0.0.1", c->node[r_i].port);
        assert_true(old_in_after >= 0 && new_in_after >= 0);
        assert_int_equal(uc__slotmap_node(after, (size_t)old_in_after)->role,
                         UC__NODE_REPLICA);
        assert_int_equal(uc__slotmap_node(after, (size_t)old_in_after)->primary,
                         new_in_after);
        expect_moved(ctx[p_i], "foo", slot, c->node[r_i].port, after,
                     new_in_after);
    }
    /* The write made before the failover is on the new primary. */
    rep = get(ctx[r_i], "foo");
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "bar");
    freeReplyObject(rep);

    uc__slotmap_free(after);
    uc__slotmap_free(m);
    free_all(ctx);
}

/* A key of `slot` ("{<tag>}...", the tag found by search). */
static void key_of_slot(unsigned slot, char *key, size_t len)
{
    for (unsigned n = 0;; n++) {
        char tag[16];
        snprintf(tag, sizeof(tag), "%u", n);
        if (uc__key_slot(tag, strlen(tag)) == slot) {
            snprintf(key, len, "{%s}:survivor", tag);
            return;
        }
    }
}

/*
 * SET a key of `slot` on primary i and WAIT until its replica has it: the
 * write must then outlive the primary. It also moves the replication
 * offset off 0, below which Redis reports a replica as "loading".
 */
static void write_acked(const uc_test_cluster_t *c, int i, unsigned slot)
{
    redisContext *ctx = uc_test_cluster_connect(c, i);
    char key[64];
    redisReply *r;

    assert_non_null(ctx);
    key_of_slot(slot, key, sizeof(key));
    r = redisCommand(ctx, "SET %s %s", key, "kept");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(ctx, "WAIT 1 5000");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(ctx);
}

static void check_written(const uc_test_cluster_t *c, int i, unsigned slot)
{
    redisContext *ctx = uc_test_cluster_connect(c, i);
    char key[64];
    redisReply *r;

    assert_non_null(ctx);
    key_of_slot(slot, key, sizeof(key));
    r = get(ctx, key);
    if (r->type != REDIS_REPLY_STRING || strcmp(r->str, "kept") != 0) {
        fail_msg("'%s' on the new primary: type %d", key, r->type);
    }
    freeReplyObject(r);
    redisFree(ctx);
}

/*
 * A primary killed (SIGKILL) or hung (SIGSTOP): its replica takes over,
 * the map follows, and the node, once back, rejoins as a replica of it.
 */
static void failover_of_lost_primary(uc_test_cluster_t *c, int hang)
{
    const char *how = hang ? "hang" : "kill";
    char name[64];
    uc__slotmap_t *m;
    uc__slotmap_t *after;
    uc__slotmap_t *back;
    int p_k, r_k, p_i, r_i, k;
    uint64_t t0, took;

    start_cluster(c);
    m = fetch_map(c, 0);
    check_map(c, m, 0, 3);
    p_k = uc__slotmap_primary(m, 0);
    r_k = replica_of(m, p_k);
    assert_true(r_k >= 0);
    p_i = fixture_index(c, m, p_k);
    r_i = fixture_index(c, m, r_k);
    write_acked(c, p_i, 0);

    t0 = uc_test_now_ms();
    if (hang) {
        assert_int_equal(uc_test_cluster_pause(c, p_i), 0);
    } else {
        uc_test_cluster_kill(c, p_i);
    }
    took = wait_primary(c, r_i, t0);
    snprintf(name, sizeof(name), "%s_failover_ms", how);
    FIGURE(name, "%llu", (unsigned long long)took);
    assert_int_equal(uc_test_cluster_wait_ok(c, 15000), 0);

    after = fetch_map(c, r_i);
    check_moved_slots(c, m, after, p_k, r_i, r_i);
    /* The lost node is listed, failed and slotless, and not visited. */
    k = uc__slotmap_find(after, "127.0.0.1", c->node[p_i].port);
    assert_true(k >= 0);
    assert_int_equal(uc__slotmap_node(after, (size_t)k)->health,
                     UC__HEALTH_FAILED);
    assert_int_equal(uc__slotmap_node(after, (size_t)k)->nslots, 0);
    for (int q = uc__slotmap_next_primary(after, -1); q >= 0;
         q = uc__slotmap_next_primary(after, q)) {
        assert_int_not_equal(q, k);
    }
    assert_int_equal(uc_test_cluster_slot_primary(c, 0), r_i);
    check_written(c, r_i, 0);

    t0 = uc_test_now_ms();
    if (hang) {
        assert_int_equal(uc_test_cluster_resume(c, p_i), 0);
    } else {
        assert_int_equal(uc_test_cluster_restart(c, p_i), 0);
    }
    assert_int_equal(uc_test_cluster_wait_ok(c, 20000), 0);
    snprintf(name, sizeof(name), "%s_rejoin_ms", how);
    FIGURE(name, "%llu", (unsigned long long)(uc_test_now_ms() - t0));
    back = fetch_map(c, p_i);
    check_map(c, back, p_i, 3);
    k = uc__slotmap_find(back, "127.0.0.1", c->node[p_i].port);
    assert_true(k >= 0);
    assert_int_equal(uc__slotmap_node(back, (size_t)k)->role, UC__NODE_REPLICA);
    assert_int_equal(uc__slotmap_node(back, (size_t)k)->health,
                     UC__HEALTH_ONLINE);
    assert_int_equal(
        fixture_index(c, back, uc__slotmap_node(back, (size_t)k)->primary),
        r_i);
    assert_int_equal(uc_test_cluster_is_primary(c, p_i), 0);

    uc__slotmap_free(back);
    uc__slotmap_free(after);
    uc__slotmap_free(m);
}

static void test_killed_primary(void **state)
{
    failover_of_lost_primary(*state, 0);
}

static void test_hung_primary(void **state)
{
    failover_of_lost_primary(*state, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routing_and_manual_failover, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_killed_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hung_primary, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
