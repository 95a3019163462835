/* SPDX-License-Identifier: MIT */
/*
 * The redis backend against a real redis-server that each test starts on a
 * free loopback port: every operation round-trips (binary values too), the
 * conditional stores (cas through EVALSHA with its EVAL fallback, add as
 * SET NX) and capped reads hold on the server, the dataset marker follows
 * the server through a restart and a FLUSHALL, and the faults a cache meets
 * in production behave as specified: nothing listening, a name that does
 * not resolve, a hung server (SIGSTOP) that must open the breaker without
 * any call waiting past its timeouts, a late reply that must never answer
 * another request, a restart, authentication with a password and with an
 * ACL user (the password never logged), pattern delete in batches smaller
 * than the match, and many threads on one handle.
 *
 * Timing: calls are measured only to assert upper bounds derived from the
 * configured timeouts (plus generous slack for a loaded machine), never a
 * speed target.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_fixture.h"
#include "redis_server.h"
#include "store.h"
#include "util.h"
#include "utxocache/utxocache.h"

#define CONNECT_MS 200
#define COMMAND_MS 200
#define ACQUIRE_MS 100
#define COOLDOWN_MS 400
#define BACKOFF_MAX_MS 200
/* Slack for a loaded 2-core machine under sanitizers. */
#define SLACK_MS 1500
#define CALL_BOUND_MS (CONNECT_MS + COMMAND_MS + ACQUIRE_MS + SLACK_MS)

/* ---- log capture ----------------------------------------------------------
 */

typedef struct {
    pthread_mutex_t mu;
    char text[65536];
    size_t len;
    unsigned lines;
} logbuf_t;

static void capture_log(void *arg, uc_log_level_t level, const char *msg)
{
    logbuf_t *lb = arg;
    size_t n = strlen(msg);

    (void)level;
    pthread_mutex_lock(&lb->mu);
    if (lb->len + n + 2 < sizeof(lb->text)) {
        memcpy(lb->text + lb->len, msg, n);
        lb->len += n;
        lb->text[lb->len++] = '\n';
        lb->text[lb->len] = '\0';
    }
    lb->lines++;
    pthread_mutex_unlock(&lb->mu);
}

/* ---- fixtures -------------------------------------------------------------
 */

static void base_config(uc_config_t *cfg, int port)
{
    uc_test_redis_config(cfg, port);
    /* These suites count keys and server clients of the store alone; the
     * near cache's channel (two connections and a probe key of its own) is
     * tested by test_track and test_near_cache. */
    cfg->near_off = 1;
    cfg->connect_timeout_ms = CONNECT_MS;
    cfg->command_timeout_ms = COMMAND_MS;
    cfg->acquire_timeout_ms = ACQUIRE_MS;
    cfg->breaker_threshold = 3;
    cfg->breaker_cooldown_ms = COOLDOWN_MS;
    cfg->backoff_base_ms = 20;
    cfg->backoff_max_ms = BACKOFF_MAX_MS;
    cfg->max_connections = 4;
    /*
     * The worker's periodic marker check takes a pooled connection and
     * reports to the breaker like any call; these tests count connections,
     * timeouts and breaker steps exactly, so it runs only once, at start.
     * The trust tests call verify themselves.
     */
    cfg->trust_check_ms = 600000;
}

/* A key's value as redis-cli sees it, or "" (first line only). */
static void cli_get(uc_test_redis_t *r, const char *args, const char *cmd,
                    char *out, size_t outlen)
{
    assert_int_equal(uc_test_redis_cli(r, args, cmd, out, outlen), 0);
}

/* Sets key=val through the cache and reads it back. */
static void assert_roundtrip(uc_cache_t *c, const char *key, const char *val)
{
    char *got = NULL;
    size_t len = 0;

    assert_int_equal(uc_cache_set(c, key, strlen(key), val, strlen(val), 0),
                     UC_OK);
    assert_int_equal(uc_cache_get(c, key, strlen(key), &got, &len), UC_OK);
    assert_int_equal(len, strlen(val));
    assert_memory_equal(got, val, len);
    uc_free(got);
}

/* ---- every operation ------------------------------------------------------
 */

static void all_ops_round_trip(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    static const char bin[] = {'a', '\0', 'b', '\xff', '\r', '\n', '\0'};
    char *val = NULL;
    size_t len = 0;
    int64_t ttl = 0;
    int existed = -1;
    uint64_t count = 0;
    size_t removed = 0;
    uint64_t rtt = 0;
    uc_server_info_t info;
    char out[256];

    uc_test_fixture_start(f, NULL);
    base_config(&cfg, f->r.port);
    cfg.db = 3;
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "t:");
    c = uc_test_open_cache(&cfg);
    assert_string_equal(uc_cache_backend_name(c), "redis");

    /* Binary value, binary key. */
    assert_int_equal(uc_cache_set(c, "k\0bin", 5, bin, sizeof(bin), 0), UC_OK);
    assert_int_equal(uc_cache_get(c, "k\0bin", 5, &val, &len), UC_OK);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(val, bin, sizeof(bin));
    assert_int_equal(val[len], '\0');
    uc_free(val);
    val = NULL;
    /* Empty value is a value, not a miss. */
    assert_int_equal(uc_cache_set(c, "empty", 5, "", 0, 0), UC_OK);
    assert_int_equal(uc_cache_get(c, "empty", 5, &val, &len), UC_OK);
    assert_int_equal(len, 0);
    uc_free(val);
    val = NULL;
    assert_int_equal(uc_cache_get(c, "absent", 6, &val, &len), UC_MISS);
    assert_null(val);

    /* The prefix and SELECT reach the server. */
    cli_get(&f->r, "-n 3", "GET t:empty", out, sizeof(out));
    assert_string_equal(out, "");
    cli_get(&f->r, "-n 3", "EXISTS t:empty", out, sizeof(out));
    assert_string_equal(out, "1");
    cli_get(&f->r, "-n 0", "EXISTS t:empty", out, sizeof(out));
    assert_string_equal(out, "0");

    /* TTLs: PX, none, missing. */
    assert_int_equal(uc_cache_set(c, "ttl", 3, "v", 1, 60000), UC_OK);
    assert_int_equal(uc_cache_ttl(c, "ttl", 3, &ttl), UC_OK);
    assert_true(ttl > 0 && ttl <= 60000);
    assert_int_equal(uc_cache_ttl(c, "empty", 5, &ttl), UC_OK);
    assert_int_equal(ttl, -1);
    assert_int_equal(uc_cache_ttl(c, "absent", 6, &ttl), UC_MISS);

    assert_int_equal(uc_cache_exists(c, "ttl", 3), UC_OK);
    assert_int_equal(uc_cache_exists(c, "absent", 6), UC_MISS);
    assert_int_equal(uc_cache_del(c, "ttl", 3, &existed), UC_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(uc_cache_del(c, "ttl", 3, &existed), UC_OK);
    assert_int_equal(existed, 0);
    assert_int_equal(uc_cache_exists(c, "ttl", 3), UC_MISS);

    /* mset then mget with a miss in the middle. */
    {
        const char *keys[3] = {"m:1", "m:absent", "m:2"};
        size_t klens[3] = {3, 8, 3};
        const char *mk[2] = {"m:1", "m:2"};
        size_t mkl[2] = {3, 3};
        const char *mv[2] = {"one", "t\0o"};
        size_t mvl[2] = {3, 3};
        uc_value_t vals[3];

        assert_int_equal(uc_cache_mset(c, 2, mk, mkl, mv, mvl, 30000), UC_OK);
        memset(vals, 0, sizeof(vals));
        assert_int_equal(uc_cache_mget(c, 3, keys, klens, vals), UC_OK);
        assert_int_equal(vals[0].status, UC_OK);
        assert_int_equal(vals[0].len, 3);
        assert_memory_equal(vals[0].data, "one", 3);
        assert_int_equal(vals[1].status, UC_MISS);
        assert_int_equal(vals[2].status, UC_OK);
        assert_memory_equal(vals[2].data, "t\0o", 3);
        uc_values_release(vals, 3);
        assert_int_equal(uc_cache_ttl(c, "m:2", 3, &ttl), UC_OK);
        assert_true(ttl > 0 && ttl <= 30000);
    }

    assert_int_equal(uc_cache_count_pattern(c, "m:*", &count), UC_OK);
    assert_int_equal(count, 2);
    assert_int_equal(uc_cache_delete_pattern(c, "m:*", &removed), UC_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(uc_cache_exists(c, "m:1", 3), UC_MISS);
    assert_int_equal(uc_cache_exists(c, "empty", 5), UC_OK);

    assert_int_equal(uc_cache_ping(c, &rtt), UC_OK);
    memset(&info, 0, sizeof(info));
    assert_int_equal(uc_cache_server_info(c, &info), UC_OK);
    assert_memory_equal(info.version, "7.", 2);
    /* t:empty and t:k\0bin in db 3, and the dataset marker t:uc:dataset
     * once the cache has adopted the dataset. */
    cli_get(&f->r, "-n 3", "EXISTS t:uc:dataset", out, sizeof(out));
    assert_int_equal(info.keys, 2 + strtoul(out, NULL, 10));
    assert_true(info.used_memory > 0);
    assert_true(info.server_hits > 0);
    assert_true(info.server_misses > 0);

    /* Sequential calls reuse one connection. */
    assert_int_equal(uc_test_pool_stats(c).connects, 1);
    assert_int_equal(uc_test_pool_stats(c).breaker, UC_BREAKER_CLOSED);
    uc_cache_destroy(c);
}

/* ---- conditional stores and capped reads, through the backend table ----- */

/*
 * A redis backend on the fixture's server with `prefix` (may be "") for its
 * dataset marker; env is the caller's and must outlive the backend.
 */
static uc__backend_t *open_backend(uc_test_fixture_t *f, uc__env_t *env,
                                   const char *prefix)
{
    uc__backend_t *b = NULL;
    char err[256] = "";

    memset(env, 0, sizeof(*env));
    base_config(&env->cfg, f->r.port);
    env->cfg.idle_timeout_ms = 60000;
    env->cfg.scan_batch = 500;
    snprintf(env->cfg.key_prefix, sizeof(env->cfg.key_prefix), "%s", prefix);
    if (uc__redis_create(env, &b, err, sizeof(err)) != UC_OK) {
        fail_msg("uc__redis_create: %s", err);
    }
    return b;
}

/* The server's run_id from INFO server (40 hex digits). */
static void server_run_id(uc_test_fixture_t *f, char *out, size_t outlen)
{
    char line[256];

    cli_get(&f->r, NULL, "INFO server | grep '^run_id:'", line, sizeof(line));
    assert_memory_equal(line, "run_id:", 7);
    assert_int_equal(strlen(line + 7), 40);
    snprintf(out, outlen, "%s", line + 7);
}

/* The server's count of calls of one command (INFO commandstats), 0 if it
 * has not run since the last CONFIG RESETSTAT. */
static long command_calls(uc_test_fixture_t *f, const char *cmd)
{
    char query[128], line[512];
    const char *p = NULL;

    snprintf(query, sizeof(query), "INFO commandstats | grep '^cmdstat_%s:'",
             cmd);
    line[0] = '\0';
    (void)uc_test_redis_cli_reply(&f->r, NULL, query, line, sizeof(line));
    p = strstr(line, "calls=");
    return p != NULL ? strtol(p + 6, NULL, 10) : 0;
}

/* The value of a key through the backend's plain get, which must exist. */
static void check_stored(uc__backend_t *b, const char *key, const char *want)
{
    char *val = NULL;
    size_t len = 0;

    assert_int_equal(b->ops->get(b, key, strlen(key), &val, &len), UC_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(val, want, len);
    free(val);
}

static void cas_add_get_max_on_redis(void **state)
{
    uc_test_fixture_t *f = *state;
    uc__env_t env;
    uc__backend_t *b = NULL;
    char *val = NULL;
    size_t len = 0;
    int64_t ttl = 0;
    char out[64];
    long evals = 0, evalshas = 0;

    uc_test_fixture_start(f, NULL);
    b = open_backend(f, &env, "");
    /* A fresh server has no marker: the first keyspace read finds that
     * out, and adopting the dataset opens the keyspace path. */
    assert_int_equal(b->ops->get_max(b, "v", 1, 10, &val, &len),
                     UC_EUNAVAILABLE);
    assert_int_equal(b->ops->adopt(b), UC_OK);
    assert_int_equal(atomic_load(&b->distrust), 0);

    /* cas: the expected value swaps in the new one, with its TTL. */
    assert_int_equal(b->ops->set(b, "v", 1, "old", 3, 0), UC_OK);
    assert_int_equal(b->ops->cas(b, "v", 1, "old", 3, "new", 3, 50000), UC_OK);
    check_stored(b, "v", "new");
    assert_int_equal(b->ops->ttl(b, "v", 1, &ttl), UC_OK);
    assert_true(ttl > 0 && ttl <= 50000);
    /* Anything but exactly the stored bytes is refused, and changes
     * nothing. */
    assert_int_equal(b->ops->cas(b, "v", 1, "old", 3, "x", 1, 0), UC_ESTALE);
    assert_int_equal(b->ops->cas(b, "v", 1, "ne", 2, "x", 1, 0), UC_ESTALE);
    assert_int_equal(b->ops->cas(b, "v", 1, "new\0", 4, "x", 1, 0), UC_ESTALE);
    assert_int_equal(b->ops->cas(b, "v", 1, "", 0, "x", 1, 0), UC_ESTALE);
    check_stored(b, "v", "new");
    assert_int_equal(b->ops->ttl(b, "v", 1, &ttl), UC_OK);
    assert_true(ttl > 0 && ttl <= 50000);
    /* An absent key holds nothing to match; nothing is created. */
    assert_int_equal(b->ops->cas(b, "absent", 6, "new", 3, "x", 1, 0),
                     UC_ESTALE);
    cli_get(&f->r, NULL, "EXISTS absent", out, sizeof(out));
    assert_string_equal(out, "0");
    /* Binary-safe through the script's arguments. */
    assert_int_equal(b->ops->set(b, "bin", 3, "a\0b", 3, 0), UC_OK);
    assert_int_equal(b->ops->cas(b, "bin", 3, "a\0c", 3, "x", 1, 0), UC_ESTALE);
    assert_int_equal(b->ops->cas(b, "bin", 3, "a\0b", 3, "c\0d", 3, 0), UC_OK);
    assert_int_equal(b->ops->get(b, "bin", 3, &val, &len), UC_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(val, "c\0d", 3);
    free(val);
    val = NULL;

    /* The server forgot the script: EVALSHA falls back to EVAL once. */
    cli_get(&f->r, NULL, "SCRIPT FLUSH", out, sizeof(out));
    cli_get(&f->r, NULL, "CONFIG RESETSTAT", out, sizeof(out));
    assert_int_equal(b->ops->cas(b, "v", 1, "new", 3, "newer", 5, 0), UC_OK);
    check_stored(b, "v", "newer");
    assert_int_equal(b->ops->ttl(b, "v", 1, &ttl), UC_OK);
    assert_int_equal(ttl, -1);
    assert_int_equal(command_calls(f, "eval"), 1);
    /* And from then on EVALSHA alone, now that the script is known again. */
    evals = command_calls(f, "eval");
    evalshas = command_calls(f, "evalsha");
    assert_int_equal(b->ops->cas(b, "v", 1, "old", 3, "x", 1, 0), UC_ESTALE);
    assert_int_equal(b->ops->cas(b, "v", 1, "newer", 5, "newest", 6, 0), UC_OK);
    assert_int_equal(command_calls(f, "eval"), evals);
    assert_int_equal(command_calls(f, "evalsha"), evalshas + 2);
    check_stored(b, "v", "newest");

    /* add: SET NX PX. */
    assert_int_equal(b->ops->add(b, "lock", 4, "a", 1, 5000), UC_OK);
    assert_int_equal(b->ops->ttl(b, "lock", 4, &ttl), UC_OK);
    assert_true(ttl > 0 && ttl <= 5000);
    assert_int_equal(b->ops->add(b, "lock", 4, "b", 1, 5000), UC_ESTALE);
    check_stored(b, "lock", "a");
    /* An empty value is still a value that is there. */
    assert_int_equal(b->ops->set(b, "emptied", 7, "", 0, 0), UC_OK);
    assert_int_equal(b->ops->add(b, "emptied", 7, "b", 1, 0), UC_ESTALE);
    cli_get(&f->r, NULL, "DEL lock", out, sizeof(out));
    assert_int_equal(b->ops->add(b, "lock", 4, "c", 1, 0), UC_OK);
    assert_int_equal(b->ops->ttl(b, "lock", 4, &ttl), UC_OK);
    assert_int_equal(ttl, -1);
    /* Expired is absent. */
    assert_int_equal(b->ops->add(b, "brief", 5, "1", 1, 30), UC_OK);
    uc_test_sleep_ms(100);
    assert_int_equal(b->ops->add(b, "brief", 5, "2", 1, 0), UC_OK);
    check_stored(b, "brief", "2");

    /* get_max: the cap is inclusive; empty and absent are misses. */
    assert_int_equal(b->ops->set(b, "five", 4, "12345", 5, 0), UC_OK);
    assert_int_equal(b->ops->get_max(b, "five", 4, 5, &val, &len), UC_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(val, "12345", 5);
    assert_int_equal(val[5], '\0');
    free(val);
    val = NULL;
    assert_int_equal(b->ops->get_max(b, "five", 4, 4, &val, &len), UC_ETOOBIG);
    assert_null(val);
    assert_int_equal(b->ops->get_max(b, "emptied", 7, 10, &val, &len), UC_MISS);
    assert_int_equal(b->ops->get_max(b, "absent", 6, 10, &val, &len), UC_MISS);
    assert_null(val);
    /* A megabyte under a 1000-byte cap is refused without being read. */
    {
        size_t mb = (size_t)1 << 20;
        char *big = malloc(mb);

        assert_non_null(big);
        memset(big, 'm', mb);
        assert_int_equal(b->ops->set(b, "big", 3, big, mb, 0), UC_OK);
        assert_int_equal(b->ops->get_max(b, "big", 3, 1000, &val, &len),
                         UC_ETOOBIG);
        assert_null(val);
        assert_int_equal(b->ops->get_max(b, "big", 3, mb, &val, &len), UC_OK);
        assert_int_equal(len, mb);
        assert_memory_equal(val, big, mb);
        free(val);
        val = NULL;
        free(big);
    }
    /* Another type where an entry should be is a value that is not one
     * (store.h: UC_ECORRUPT, for the caller to delete), and nothing
     * overwrites it. */
    cli_get(&f->r, NULL, "LPUSH list x", out, sizeof(out));
    assert_int_equal(b->ops->get_max(b, "list", 4, 1000, &val, &len),
                     UC_ECORRUPT);
    assert_null(val);
    /* mget_max: the same answers, each key its own, in one call. */
    {
        const char *keys[6] = {"five",   "five", "emptied",
                               "absent", "big",  "list"};
        size_t klens[6] = {4, 4, 7, 6, 3, 4};
        uc_value_t mv[6];
        int want[6] = {UC_OK, UC_OK, UC_MISS, UC_MISS, UC_ETOOBIG, UC_ECORRUPT};

        memset(mv, 0, sizeof(mv));
        assert_int_equal(b->ops->mget_max(b, 6, keys, klens, 5, mv), UC_OK);
        for (size_t i = 0; i < 6; i++) {
            assert_int_equal(mv[i].status, want[i]);
        }
        assert_int_equal(mv[0].len, 5);
        assert_memory_equal(mv[0].data, "12345", 5);
        assert_memory_equal(mv[1].data, "12345", 5);
        for (size_t i = 0; i < 6; i++) {
            free(mv[i].data);
        }
    }
    assert_int_equal(b->ops->add(b, "list", 4, "v", 1, 0), UC_ESTALE);
    {
        int rc = b->ops->cas(b, "list", 4, "x", 1, "v", 1, 0);

        assert_true(rc == UC_ESERVER || rc == UC_ESTALE);
    }
    cli_get(&f->r, NULL, "TYPE list", out, sizeof(out));
    assert_string_equal(out, "list");
    assert_int_equal(atomic_load(&b->distrust), 0);
    assert_int_equal(b->ops->ping(b), UC_OK);
    b->ops->destroy(b);
}

/* ---- dataset trust --------------------------------------------------------
 */

/* The dataset marker as redis-cli sees it ("" when absent). */
static void marker_of(uc_test_fixture_t *f, const char *prefix, char *out,
                      size_t outlen)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "GET %suc:dataset", prefix);
    cli_get(&f->r, NULL, cmd, out, outlen);
}

/* Whether the keyspace path is refused (distrust) or served (a miss). */
static void assert_distrusted(uc__backend_t *b, int want)
{
    char *val = NULL;
    size_t len = 0;
    int rc = b->ops->get_max(b, "probe", 5, 100, &val, &len);

    assert_int_equal(rc, want ? UC_EUNAVAILABLE : UC_MISS);
    assert_int_equal(atomic_load(&b->distrust), want);
    assert_null(val);
}

/*
 * Two instances start together on a new server: both distrust it. The
 * first adopts it (drops, marks) and fills; the second's restore finds the
 * marker naming the server and adopts without dropping that fill.
 */
static void second_adopter_keeps_first_fills(void **state)
{
    uc_test_fixture_t *f = *state;
    uc__env_t e1, e2;
    uc__backend_t *b1, *b2;
    size_t removed = 99;

    uc_test_fixture_start(f, NULL);
    b1 = open_backend(f, &e1, "");
    b2 = open_backend(f, &e2, "");
    assert_distrusted(b1, 1);
    assert_distrusted(b2, 1);
    assert_int_equal(b1->ops->restore(b1, "*", NULL, NULL, &removed), UC_OK);
    assert_int_equal(atomic_load(&b1->distrust), 0);
    assert_int_equal(b1->ops->put(b1, "fill", 4, "fresh", 5, 0), UC_OK);

    removed = 99;
    assert_int_equal(b2->ops->restore(b2, "*", NULL, NULL, &removed), UC_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(atomic_load(&b2->distrust), 0);
    check_stored(b2, "fill", "fresh");
    b1->ops->destroy(b1);
    b2->ops->destroy(b2);
}

static void dataset_trust_follows_the_server(void **state)
{
    uc_test_fixture_t *f = *state;
    uc__env_t env;
    uc__backend_t *b = NULL;
    char run_id[64], run_id2[64], out[128];
    char *val = NULL;
    size_t len = 0;
    size_t removed = 0;
    int existed = 0;

    uc_test_fixture_start(f, NULL);
    b = open_backend(f, &env, "t:");
    assert_int_equal(atomic_load(&b->distrust), 0);
    assert_int_equal(atomic_load(&b->distrust_epoch), 0);

    /* A fresh server: no marker, so the first connection distrusts it. */
    assert_distrusted(b, 1);
    assert_int_equal(atomic_load(&b->distrust_epoch), 1);
    assert_int_equal(b->ops->add(b, "k", 1, "v", 1, 0), UC_EUNAVAILABLE);
    assert_int_equal(b->ops->cas(b, "k", 1, "v", 1, "w", 1, 0),
                     UC_EUNAVAILABLE);
    {
        const char *keys[1] = {"k"};
        size_t klens[1] = {1};
        uc_value_t mv[1] = {{UC_OK, NULL, 0}};

        assert_int_equal(b->ops->mget_max(b, 1, keys, klens, 10, mv),
                         UC_EUNAVAILABLE);
        assert_null(mv[0].data);
    }
    /* The raw operations still work, so the core can drop what it had. */
    assert_int_equal(b->ops->set(b, "t:k", 3, "v", 1, 0), UC_OK);
    assert_int_equal(b->ops->get(b, "t:k", 3, &val, &len), UC_OK);
    free(val);
    val = NULL;
    assert_int_equal(b->ops->del(b, "t:k", 3, &existed), UC_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(b->ops->delete_pattern(b, "t:*", NULL, NULL, &removed),
                     UC_OK);
    /* Checking again finds the same: still distrusted, no second flush. */
    assert_int_equal(b->ops->verify(b), UC_OK);
    assert_int_equal(atomic_load(&b->distrust), 1);
    assert_int_equal(atomic_load(&b->distrust_epoch), 1);
    marker_of(f, "t:", out, sizeof(out));
    assert_string_equal(out, "");

    /* adopt: the marker names this server, and the keyspace path is open. */
    assert_int_equal(b->ops->adopt(b), UC_OK);
    assert_int_equal(atomic_load(&b->distrust), 0);
    server_run_id(f, run_id, sizeof(run_id));
    marker_of(f, "t:", out, sizeof(out));
    assert_string_equal(out, run_id);
    marker_of(f, "", out, sizeof(out)); /* under the prefix only */
    assert_string_equal(out, "");
    assert_distrusted(b, 0);
    assert_int_equal(b->ops->add(b, "t:k", 3, "v", 1, 0), UC_OK);
    assert_int_equal(b->ops->cas(b, "t:k", 3, "v", 1, "w", 1, 0), UC_OK);
    assert_int_equal(b->ops->verify(b), UC_OK);
    assert_int_equal(atomic_load(&b->distrust), 0);
    assert_int_equal(atomic_load(&b->distrust_epoch), 1);

    /* A restart on the same port: a new run_id, seen on the new
     * connection before any data command runs on it. */
    assert_int_equal(uc_test_redis_restart(&f->r), 0);
    server_run_id(f, run_id2, sizeof(run_id2));
    assert_string_not_equal(run_id, run_id2);
    /* Refused means not done: the write does not land in the new
     * dataset either. */
    assert_int_equal(b->ops->add(b, "t:after", 7, "v", 1, 0), UC_EUNAVAILABLE);
    assert_int_equal(atomic_load(&b->distrust), 1);
    assert_int_equal(atomic_load(&b->distrust_epoch), 2);
    cli_get(&f->r, NULL, "EXISTS t:after", out, sizeof(out));
    assert_string_equal(out, "0");
    assert_distrusted(b, 1);
    assert_int_equal(b->ops->adopt(b), UC_OK);
    marker_of(f, "t:", out, sizeof(out));
    assert_string_equal(out, run_id2);
    assert_distrusted(b, 0);

    /* FLUSHALL keeps the connections: only verify can see it. */
    assert_int_equal(b->ops->add(b, "t:k", 3, "v", 1, 0), UC_OK);
    cli_get(&f->r, NULL, "FLUSHALL", out, sizeof(out));
    assert_distrusted(b, 0);
    assert_int_equal(b->ops->verify(b), UC_OK);
    assert_int_equal(atomic_load(&b->distrust), 1);
    assert_int_equal(atomic_load(&b->distrust_epoch), 3);
    assert_distrusted(b, 1);
    assert_int_equal(b->ops->adopt(b), UC_OK);
    marker_of(f, "t:", out, sizeof(out));
    assert_string_equal(out, run_id2);
    assert_distrusted(b, 0);
    assert_int_equal(atomic_load(&b->distrust_epoch), 3);
    b->ops->destroy(b);
}

/* What a backend's first connection makes of each state of the marker. */
static void dataset_marker_table(void **state)
{
    enum { MISSING, RUN_ID, OTHER_ID, OTHER_PREFIX, NOT_A_STRING };
    static const struct {
        const char *name;
        int marker;
        int distrust;
    } cases[] = {
        {"missing", MISSING, 1},
        {"this server's run_id", RUN_ID, 0},
        {"another server's run_id", OTHER_ID, 1},
        {"only under another prefix", OTHER_PREFIX, 1},
        {"a list", NOT_A_STRING, 1},
    };
    uc_test_fixture_t *f = *state;
    char run_id[64], cmd[160], out[128];

    uc_test_fixture_start(f, NULL);
    server_run_id(f, run_id, sizeof(run_id));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uc__env_t env;
        uc__backend_t *b = NULL;
        char *val = NULL;
        size_t len = 0;
        int rc, distrust;

        cli_get(&f->r, NULL, "FLUSHALL", out, sizeof(out));
        cmd[0] = '\0';
        switch (cases[i].marker) {
        case RUN_ID:
            snprintf(cmd, sizeof(cmd), "SET m:uc:dataset %s", run_id);
            break;
        case OTHER_ID:
            snprintf(cmd, sizeof(cmd), "SET m:uc:dataset %040d", 7);
            break;
        case OTHER_PREFIX:
            snprintf(cmd, sizeof(cmd), "SET n:uc:dataset %s", run_id);
            break;
        case NOT_A_STRING:
            snprintf(cmd, sizeof(cmd), "RPUSH m:uc:dataset %s", run_id);
            break;
        default:
            break;
        }
        if (cmd[0] != '\0') {
            cli_get(&f->r, NULL, cmd, out, sizeof(out));
        }
        b = open_backend(f, &env, "m:");
        rc = b->ops->get_max(b, "m:k", 3, 10, &val, &len);
        distrust = atomic_load(&b->distrust);
        b->ops->destroy(b); /* before a failure jumps out of the test */
        if (rc != (cases[i].distrust ? UC_EUNAVAILABLE : UC_MISS) ||
            distrust != cases[i].distrust) {
            fail_msg("marker %s: get_max -> %s, distrust %d", cases[i].name,
                     uc_err_name(rc), distrust);
        }
    }
}

/* ---- nothing there --------------------------------------------------------
 */

static void refused_fails_fast(void **state)
{
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    logbuf_t lb;
    char *val = NULL;
    size_t len = 0;
    int rc = 0;

    (void)state;
    memset(&lb, 0, sizeof(lb));
    pthread_mutex_init(&lb.mu, NULL);
    base_config(&cfg, uc_test_free_port());
    cfg.log_fn = capture_log;
    cfg.log_arg = &lb;
    c = uc_test_open_cache(&cfg);
    for (int i = 0; i < 10; i++) {
        uint64_t t0 = uc_test_now_ms();

        rc = uc_cache_get(c, "k", 1, &val, &len);
        assert_true(uc_test_now_ms() - t0 < CALL_BOUND_MS);
        if (i == 0) {
            assert_int_equal(rc, UC_ECONNREFUSED);
        } else if (rc != UC_ECONNREFUSED) {
            assert_int_equal(rc, UC_EUNAVAILABLE);
        }
    }
    assert_null(val);
    assert_true(uc_test_pool_stats(c).connect_failures >= 1);
    /* Connection failures are logged, and rate limited. */
    pthread_mutex_lock(&lb.mu);
    assert_non_null(strstr(lb.text, "connection refused"));
    assert_true(lb.lines < 10);
    pthread_mutex_unlock(&lb.mu);
    uc_cache_destroy(c);
    pthread_mutex_destroy(&lb.mu);
}

static void unresolvable_host(void **state)
{
    uc_config_t cfg;
    uc_cache_t *c = NULL;

    (void)state;
    base_config(&cfg, 6379);
    snprintf(cfg.host, sizeof(cfg.host), "nonexistent.invalid");
    c = uc_test_open_cache(&cfg);
    assert_int_equal(uc_cache_set(c, "k", 1, "v", 1, 0), UC_ERESOLVE);
    /* One attempt for the call; the worker's first marker check, racing
     * with it, may make a second. */
    assert_true(uc_test_pool_stats(c).connect_failures >= 1);
    assert_true(uc_test_pool_stats(c).connect_failures <= 2);
    uc_cache_destroy(c);
}

/* ---- a hung server --------------------------------------------------------
 */

/* Calls until one succeeds, within `bound_ms`; returns the calls it took. */
static int until_ok(uc_cache_t *c, unsigned bound_ms)
{
    uint64_t until = uc_test_now_ms() + bound_ms;
    int calls = 0;

    for (;;) {
        calls++;
        if (uc_cache_ping(c, NULL) == UC_OK) {
            return calls;
        }
        if (uc_test_now_ms() >= until) {
            fail_msg("no successful call within %u ms", bound_ms);
        }
        uc_test_sleep_ms(10);
    }
}

static void hung_server_opens_breaker(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    uc_pool_stats_t st;
    int timeouts = 0;
    int calls = 0;

    uc_test_fixture_start(f, NULL);
    base_config(&cfg, f->r.port);
    c = uc_test_open_cache(&cfg);
    assert_roundtrip(c, "k", "v");

    assert_int_equal(uc_test_redis_signal(&f->r, SIGSTOP), 0);
    /* Every call is answered within the configured waits. */
    while (uc_test_pool_stats(c).breaker != UC_BREAKER_OPEN && calls < 20) {
        char *val = NULL;
        size_t len = 0;
        uint64_t t0 = uc_test_now_ms();
        int rc = uc_cache_get(c, "k", 1, &val, &len);

        assert_true(uc_test_now_ms() - t0 < CALL_BOUND_MS);
        assert_true(rc == UC_ETIMEDOUT || rc == UC_EUNAVAILABLE);
        timeouts += rc == UC_ETIMEDOUT;
        calls++;
    }
    st = uc_test_pool_stats(c);
    assert_int_equal(st.breaker, UC_BREAKER_OPEN);
    assert_int_equal(st.breaker_opens, 1);
    /* The worker's first marker check may be one of the failures that
     * open it. A connection opened while the server is stopped times out
     * in its own marker check, before it is pooled: a connect failure,
     * not a discard. */
    assert_true(timeouts >= cfg.breaker_threshold - 1);
    assert_true(timeouts <= cfg.breaker_threshold);
    assert_true(st.discarded + st.connect_failures >= (uint64_t)timeouts);

    /* Open: refused at once, without waiting for any timeout. */
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = uc_test_now_ms();

        assert_int_equal(uc_cache_set(c, "k", 1, "w", 1, 0), UC_EUNAVAILABLE);
        assert_true(uc_test_now_ms() - t0 < COMMAND_MS);
    }
    assert_true(uc_test_pool_stats(c).breaker_rejects >= 5);

    /* Back: after the cooldown a probe closes it again. */
    assert_int_equal(uc_test_redis_signal(&f->r, SIGCONT), 0);
    until_ok(c, COOLDOWN_MS + BACKOFF_MAX_MS + COMMAND_MS + SLACK_MS);
    assert_int_equal(uc_test_pool_stats(c).breaker, UC_BREAKER_CLOSED);
    assert_roundtrip(c, "k", "after");
    uc_cache_destroy(c);
}

/*
 * Starts the fixture's server and opens a cache with one pooled connection
 * (so a later request must reuse the connection a timed-out one used) and a
 * breaker that does not open; k1 and k2 round-trip before it is returned.
 */
static uc_cache_t *open_one_connection(uc_test_fixture_t *f)
{
    uc_config_t cfg;
    uc_cache_t *c = NULL;

    uc_test_fixture_start(f, NULL);
    base_config(&cfg, f->r.port);
    cfg.max_connections = 1;
    cfg.breaker_threshold = 100;
    c = uc_test_open_cache(&cfg);
    assert_roundtrip(c, "k1", "value-one");
    assert_roundtrip(c, "k2", "value-two");
    return c;
}

/* A reply that arrives after its request timed out answers nobody else. */
static void late_reply_never_answers_another_request(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_cache_t *c = NULL;
    char *val = NULL;
    size_t len = 0;

    c = open_one_connection(f);

    /*
     * A stopped server leaves our GET of k1 unanswered past the command
     * timeout; once it runs again it answers "value-one" on that connection.
     * Repeated so that a reused connection could not slip through by luck.
     */
    for (int attempt = 0; attempt < 5; attempt++) {
        int rc = 0;

        assert_int_equal(uc_test_redis_signal(&f->r, SIGSTOP), 0);
        rc = uc_cache_get(c, "k1", 2, &val, &len);
        assert_int_equal(uc_test_redis_signal(&f->r, SIGCONT), 0);
        assert_int_equal(rc, UC_ETIMEDOUT);
        rc = uc_cache_get(c, "k2", 2, &val, &len);
        assert_int_equal(rc, UC_OK);
        assert_int_equal(len, 9);
        assert_memory_equal(val, "value-two", 9);
        uc_free(val);
        val = NULL;
    }
    assert_true(uc_test_pool_stats(c).discarded >= 5);
    uc_cache_destroy(c);
}

typedef struct {
    uc_test_redis_t *r;
    int rc;
} sleeper_t;

static void *sleeper_main(void *arg)
{
    sleeper_t *s = arg;
    char out[64];

    s->rc = uc_test_redis_cli(s->r, NULL, "DEBUG SLEEP 0.8", out, sizeof(out));
    return NULL;
}

static void debug_sleep_times_out_and_next_get_is_its_own(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_cache_t *c = NULL;
    sleeper_t sl;
    pthread_t th;
    char *val = NULL;
    size_t len = 0;
    int rc = UC_OK;
    uint64_t until = 0;

    c = open_one_connection(f);

    sl.r = &f->r;
    sl.rc = -1;
    assert_int_equal(pthread_create(&th, NULL, sleeper_main, &sl), 0);
    /* Once the server sleeps, GET k1 times out (bounded retry until then). */
    until = uc_test_now_ms() + 5000;
    do {
        rc = uc_cache_get(c, "k1", 2, &val, &len);
        if (rc == UC_OK) {
            uc_free(val);
            val = NULL;
            uc_test_sleep_ms(5);
        }
    } while (rc == UC_OK && uc_test_now_ms() < until);
    assert_int_equal(rc, UC_ETIMEDOUT);
    pthread_join(th, NULL);
    assert_int_equal(sl.rc, 0);
    /* The sleep is over: k1's reply was sent to a connection we dropped. */
    assert_int_equal(uc_cache_get(c, "k2", 2, &val, &len), UC_OK);
    assert_int_equal(len, 9);
    assert_memory_equal(val, "value-two", 9);
    uc_free(val);
    uc_cache_destroy(c);
}

/* ---- restart --------------------------------------------------------------
 */

static void restart_recovers_without_double_failure(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    int failed_before = 0;

    uc_test_fixture_start(f, NULL);
    base_config(&cfg, f->r.port);
    c = uc_test_open_cache(&cfg);
    assert_roundtrip(c, "k", "v");

    /* Restart with idle connections left over from the old server. */
    assert_int_equal(uc_test_redis_restart(&f->r), 0);
    for (int i = 0; i < 30; i++) {
        int rc = uc_cache_set(c, "k", 1, "v2", 2, 0);

        assert_false(rc != UC_OK && failed_before);
        failed_before = rc != UC_OK;
    }
    assert_false(failed_before);

    /* Calls while it is down fail fast; once it is back, it recovers. */
    uc_test_redis_kill(&f->r);
    for (int i = 0; i < 10; i++) {
        uint64_t t0 = uc_test_now_ms();
        int rc = uc_cache_ping(c, NULL);

        assert_true(rc == UC_ECONNREFUSED || rc == UC_EUNAVAILABLE ||
                    rc == UC_EIO);
        assert_true(uc_test_now_ms() - t0 < CALL_BOUND_MS);
    }
    assert_int_equal(uc_test_redis_restart(&f->r), 0);
    until_ok(c, COOLDOWN_MS + BACKOFF_MAX_MS + SLACK_MS);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(uc_cache_set(c, "k", 1, "v3", 2, 0), UC_OK);
    }
    assert_roundtrip(c, "k", "v4");
    assert_int_equal(uc_test_pool_stats(c).breaker, UC_BREAKER_CLOSED);
    uc_cache_destroy(c);
}

/* ---- authentication -------------------------------------------------------
 */

static void assert_not_logged(logbuf_t *lb, const char *secret)
{
    pthread_mutex_lock(&lb->mu);
    assert_null(strstr(lb->text, secret));
    pthread_mutex_unlock(&lb->mu);
}

static void auth_requirepass(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    logbuf_t lb;

    memset(&lb, 0, sizeof(lb));
    pthread_mutex_init(&lb.mu, NULL);
    uc_test_fixture_start(f, "requirepass Right-Pass-42\n");
    base_config(&cfg, f->r.port);
    cfg.log_fn = capture_log;
    cfg.log_arg = &lb;
    cfg.log_level = UC_LOG_DEBUG;

    snprintf(cfg.password, sizeof(cfg.password), "Right-Pass-42");
    c = uc_test_open_cache(&cfg);
    assert_roundtrip(c, "k", "v");
    uc_cache_destroy(c);

    snprintf(cfg.password, sizeof(cfg.password), "Wrong-Pass-17");
    c = uc_test_open_cache(&cfg);
    assert_int_equal(uc_cache_set(c, "k", 1, "v", 1, 0), UC_EAUTH);
    uc_cache_destroy(c);

    cfg.password[0] = '\0';
    c = uc_test_open_cache(&cfg);
    assert_int_equal(uc_cache_set(c, "k", 1, "v", 1, 0), UC_EAUTH);
    uc_cache_destroy(c);

    pthread_mutex_lock(&lb.mu);
    assert_true(lb.lines >= 1);
    pthread_mutex_unlock(&lb.mu);
    assert_not_logged(&lb, "Right-Pass-42");
    assert_not_logged(&lb, "Wrong-Pass-17");
    pthread_mutex_destroy(&lb.mu);
}

static void auth_acl_user(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    logbuf_t lb;
    char out[64];

    memset(&lb, 0, sizeof(lb));
    pthread_mutex_init(&lb.mu, NULL);
    uc_test_fixture_start(f, "user app on >Acl-Secret-9 ~* +@all\n"
                             "user default off\n");
    base_config(&cfg, f->r.port);
    cfg.log_fn = capture_log;
    cfg.log_arg = &lb;
    snprintf(cfg.username, sizeof(cfg.username), "app");
    snprintf(cfg.password, sizeof(cfg.password), "Acl-Secret-9");
    c = uc_test_open_cache(&cfg);
    assert_roundtrip(c, "acl", "yes");
    uc_cache_destroy(c);
    cli_get(&f->r, "--user app --pass Acl-Secret-9 --no-auth-warning",
            "GET acl", out, sizeof(out));
    assert_string_equal(out, "yes");

    snprintf(cfg.password, sizeof(cfg.password), "Not-The-Secret");
    c = uc_test_open_cache(&cfg);
    assert_int_equal(uc_cache_ping(c, NULL), UC_EAUTH);
    uc_cache_destroy(c);
    assert_not_logged(&lb, "Acl-Secret-9");
    assert_not_logged(&lb, "Not-The-Secret");
    pthread_mutex_destroy(&lb.mu);
}

/* ---- pattern delete -------------------------------------------------------
 */

static int accept_even(void *arg, const char *key, size_t klen)
{
    (void)arg;
    return klen > 0 && (key[klen - 1] - '0') % 2 == 0;
}

static void pattern_delete_in_small_batches(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    uc__env_t env;
    uc__backend_t *b = NULL;
    char key[64];
    char err[128];
    size_t removed = 0;
    uint64_t count = 0;
    char out[64];

    uc_test_fixture_start(f, NULL);
    base_config(&cfg, f->r.port);
    cfg.scan_batch = 7;
    c = uc_test_open_cache(&cfg);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof(key), "match:%d", i);
        assert_int_equal(uc_cache_set(c, key, (size_t)n, "x", 1, 0), UC_OK);
    }
    for (int i = 0; i < 30; i++) {
        int n = snprintf(key, sizeof(key), "other:%d", i);
        assert_int_equal(uc_cache_set(c, key, (size_t)n, "x", 1, 0), UC_OK);
    }
    /* A key that a too-wide pattern would also take. */
    assert_int_equal(uc_cache_set(c, "matchless", 9, "x", 1, 0), UC_OK);

    assert_int_equal(uc_cache_count_pattern(c, "match:*", &count), UC_OK);
    assert_int_equal(count, 100);
    assert_int_equal(uc_cache_delete_pattern(c, "match:*", &removed), UC_OK);
    assert_int_equal(removed, 100);
    assert_int_equal(uc_cache_count_pattern(c, "match:*", &count), UC_OK);
    assert_int_equal(count, 0);
    assert_int_equal(uc_cache_count_pattern(c, "other:*", &count), UC_OK);
    assert_int_equal(count, 30);
    assert_int_equal(uc_cache_exists(c, "matchless", 9), UC_OK);
    /* 31, and the dataset marker once the cache has adopted the dataset. */
    cli_get(&f->r, NULL, "EXISTS uc:dataset", out, sizeof(out));
    count = 31 + strtoul(out, NULL, 10);
    cli_get(&f->r, NULL, "DBSIZE", out, sizeof(out));
    assert_int_equal(strtoul(out, NULL, 10), count);
    uc_cache_destroy(c);

    /* The backend's filter decides key by key. */
    memset(&env, 0, sizeof(env));
    base_config(&env.cfg, f->r.port);
    env.cfg.scan_batch = 4;
    env.cfg.idle_timeout_ms = 60000;
    assert_int_equal(uc__redis_create(&env, &b, err, sizeof(err)), UC_OK);
    assert_int_equal(
        b->ops->count_pattern(b, "other:*", accept_even, NULL, &count), UC_OK);
    assert_int_equal(count, 15);
    assert_int_equal(
        b->ops->delete_pattern(b, "other:*", accept_even, NULL, &removed),
        UC_OK);
    assert_int_equal(removed, 15);
    assert_int_equal(b->ops->count_pattern(b, "other:*", NULL, NULL, &count),
                     UC_OK);
    assert_int_equal(count, 15);
    assert_int_equal(b->ops->exists(b, "other:1", 7), UC_OK);
    assert_int_equal(b->ops->exists(b, "other:2", 7), UC_MISS);
    b->ops->destroy(b);
}

/* ---- many threads ---------------------------------------------------------
 */

#define THREADS 8
#define ROUNDS 150

typedef struct {
    uc_cache_t *c;
    int id;
    int errors;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char key[32];
    char val[64];

    for (int i = 0; i < ROUNDS; i++) {
        int kn = snprintf(key, sizeof(key), "w%d:%d", w->id, i % 10);
        int vn = snprintf(val, sizeof(val), "v-%d-%d", w->id, i);
        char *got = NULL;
        size_t len = 0;
        int existed = 0;

        if (uc_cache_set(w->c, key, (size_t)kn, val, (size_t)vn, 60000) !=
            UC_OK) {
            w->errors++;
            continue;
        }
        if (uc_cache_get(w->c, key, (size_t)kn, &got, &len) != UC_OK ||
            len != (size_t)vn || memcmp(got, val, len) != 0) {
            w->errors++;
        }
        uc_free(got);
        if (i % 5 == 0) {
            const char *keys[2] = {key, "absent"};
            size_t klens[2] = {(size_t)kn, 6};
            uc_value_t vals[2];

            if (uc_cache_mget(w->c, 2, keys, klens, vals) != UC_OK ||
                vals[0].status != UC_OK || vals[1].status != UC_MISS ||
                vals[0].len != (size_t)vn) {
                w->errors++;
            } else {
                uc_values_release(vals, 2);
            }
        }
        if (i % 7 == 0 &&
            (uc_cache_del(w->c, key, (size_t)kn, &existed) != UC_OK ||
             existed != 1 ||
             uc_cache_exists(w->c, key, (size_t)kn) != UC_MISS)) {
            w->errors++;
        }
    }
    return NULL;
}

static void threads_share_one_handle(void **state)
{
    uc_test_fixture_t *f = *state;
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    pthread_t th[THREADS];
    worker_t w[THREADS];
    uc_pool_stats_t st;

    uc_test_fixture_start(f, NULL);
    base_config(&cfg, f->r.port);
    cfg.acquire_timeout_ms = 5000;
    cfg.command_timeout_ms = 5000;
    c = uc_test_open_cache(&cfg);
    for (int i = 0; i < THREADS; i++) {
        w[i].c = c;
        w[i].id = i;
        w[i].errors = 0;
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].errors, 0);
    }
    st = uc_test_pool_stats(c);
    assert_int_equal(st.in_use, 0);
    assert_true(st.connects <= (uint64_t)cfg.max_connections);
    assert_true(st.idle <= (unsigned)cfg.max_connections);
    assert_int_equal(st.discarded, 0);
    uc_cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(all_ops_round_trip,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(cas_add_get_max_on_redis,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(second_adopter_keeps_first_fills,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(dataset_trust_follows_the_server,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(dataset_marker_table,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(refused_fails_fast,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(
            unresolvable_host, uc_test_fixture_setup, uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(hung_server_opens_breaker,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(
            late_reply_never_answers_another_request, uc_test_fixture_setup,
            uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(
            debug_sleep_times_out_and_next_get_is_its_own,
            uc_test_fixture_setup, uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(restart_recovers_without_double_failure,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(auth_requirepass, uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(auth_acl_user, uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(pattern_delete_in_small_batches,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
        cmocka_unit_test_setup_teardown(threads_share_one_handle,
                                        uc_test_fixture_setup,
                                        uc_test_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
