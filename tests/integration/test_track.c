/* SPDX-License-Identifier: MIT */
/*
 * The near cache's invalidation channel (src/lib/track.c) against a real
 * redis-server of each test's own: it becomes healthy; writes, deletes and
 * expiries under the prefix arrive as keys and others do not; FLUSHALL is a
 * null-message flush; a killed subscriber, a stopped server and a restarted
 * one are flushes followed by recovery, within bounds measured from the
 * fault; AUTH with a password and with an ACL user; the ticket changes
 * before on_flush runs; stop is bounded. A node set: two servers as two
 * nodes, each one's writes delivered, one killed and restarted; the same
 * set again changes nothing, a changed one is a topology flush; on a real
 * Redis Cluster one node per primary with a tag of its own slots, every
 * heartbeat back and every primary's writes delivered.
 *
 * The callbacks only record, under a mutex; every assertion runs on the
 * test's thread. Absence ("a key outside the prefix is not delivered") is
 * asserted behind a fence: a later write under the prefix that did arrive,
 * so the channel was provably delivering when the other key would have come.
 *
 * Prints FIGURE lines: heartbeat lag p50/p99/max and detection times.
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
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "redis_cluster.h"
#include "redis_fixture.h"
#include "track.h"
#include "util.h"

#define PREFIX "trk:"
#define KEYS_MAX 4096
#define KEY_LEN 96
#define FLUSHES_MAX 64
#define LAGS_MAX 8192

/* What the callbacks saw; all under mu. */
typedef struct {
    uc__flush_reason_t why;
    uint64_t at_us;
    uint64_t ticket; /* uc__track_ticket() inside the callback */
} flush_ev_t;

typedef struct {
    pthread_mutex_t mu;
    _Atomic(uc__track_t *) t; /* published after start, for the callbacks */
    size_t nkeys;
    char keys[KEYS_MAX][KEY_LEN];
    size_t nflush;
    flush_ev_t flush[FLUSHES_MAX];
    int healthy;
    uint64_t healthy_us;
    size_t lags_at_healthy; /* heartbeats seen when on_healthy last ran */
    size_t nlags;
    uint64_t lags[LAGS_MAX];
    int after_stop; /* a callback ran after uc__track_stop returned */
    int stopped;
} rec_t;

typedef struct {
    uc_test_fixture_t f;
    uc__env_t env;
    rec_t rec, rec2; /* rec2: a second instance's */
    uc__track_t *t, *t2;
    redisContext *cli;
    char auth_user[64], auth_pass[64];
    uc_test_redis_t r2; /* a second server, for node sets */
    uc_test_cluster_t *cl;
} fx_t;

/* ---- callbacks -------------------------------------------------------------
 */

static void on_keys(void *arg, const char *const *keys, const size_t *klens,
                    size_t n)
{
    rec_t *r = arg;

    pthread_mutex_lock(&r->mu);
    r->after_stop |= r->stopped;
    for (size_t i = 0; i < n && r->nkeys < KEYS_MAX; i++) {
        size_t l = klens[i] < KEY_LEN - 1 ? klens[i] : KEY_LEN - 1;
        memcpy(r->keys[r->nkeys], keys[i], l);
        r->keys[r->nkeys][l] = '\0';
        r->nkeys++;
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_flush(void *arg, uc__flush_reason_t why)
{
    rec_t *r = arg;
    uc__track_t *t = atomic_load(&r->t);
    uint64_t tk = t != NULL ? uc__track_ticket(t) : UINT64_MAX;
    uint64_t now = uc_test_now_us();

    pthread_mutex_lock(&r->mu);
    r->after_stop |= r->stopped;
    if (r->nflush < FLUSHES_MAX) {
        r->flush[r->nflush].why = why;
        r->flush[r->nflush].at_us = now;
        r->flush[r->nflush].ticket = tk;
        r->nflush++;
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_healthy(void *arg)
{
    rec_t *r = arg;
    uint64_t now = uc_test_now_us();

    pthread_mutex_lock(&r->mu);
    r->after_stop |= r->stopped;
    r->healthy++;
    r->healthy_us = now;
    r->lags_at_healthy = r->nlags;
    pthread_mutex_unlock(&r->mu);
}

static void on_heartbeat(void *arg, uint64_t lag_us)
{
    rec_t *r = arg;

    pthread_mutex_lock(&r->mu);
    if (r->nlags < LAGS_MAX) {
        r->lags[r->nlags++] = lag_us;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- fixture ---------------------------------------------------------------
 */

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));

    if (fx == NULL || pthread_mutex_init(&fx->rec.mu, NULL) != 0) {
        free(fx);
        return -1;
    }
    if (pthread_mutex_init(&fx->rec2.mu, NULL) != 0) {
        pthread_mutex_destroy(&fx->rec.mu);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

/* The channel goes before the server, so that its thread never outlives
 * the fixture it reports into, even when an assertion failed half-way. */
static int teardown(void **state)
{
    fx_t *fx = *state;

    uc__track_stop(fx->t);
    uc__track_stop(fx->t2);
    if (fx->cli != NULL) {
        redisFree(fx->cli);
    }
    if (fx->f.started) {
        uc_test_redis_stop(&fx->f.r);
    }
    if (fx->r2.dir[0] != '\0') {
        uc_test_redis_stop(&fx->r2);
    }
    if (fx->cl != NULL) {
        uc_test_cluster_stop(fx->cl);
        free(fx->cl);
    }
    pthread_mutex_destroy(&fx->rec.mu);
    pthread_mutex_destroy(&fx->rec2.mu);
    free(fx);
    return 0;
}

static void server_start(fx_t *fx, const char *extra)
{
    uc_test_fixture_start(&fx->f, extra);
}

/* The test's own connection for writes and faults (AUTH as configured). */
static void cli_connect(fx_t *fx)
{
    struct timeval tv = {2, 0};
    redisReply *r;

    if (fx->cli != NULL) {
        redisFree(fx->cli);
    }
    fx->cli = redisConnectWithTimeout("127.0.0.1", fx->f.r.port, tv);
    assert_non_null(fx->cli);
    assert_int_equal(fx->cli->err, 0);
    redisSetTimeout(fx->cli, tv);
    if (fx->auth_pass[0] != '\0') {
        r = fx->auth_user[0] != '\0'
                ? redisCommand(fx->cli, "AUTH %s %s", fx->auth_user,
                               fx->auth_pass)
                : redisCommand(fx->cli, "AUTH %s", fx->auth_pass);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
}

static void vcmd(redisContext *c, const char *fmt, va_list ap)
{
    redisReply *r = redisvCommand(c, fmt, ap);

    if (r == NULL) {
        fail_msg("'%s': %s", fmt, c->errstr);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fail_msg("'%s': %s", fmt, r->str);
    }
    freeReplyObject(r);
}

/* Runs a command on the test's connection; the reply must not be an error. */
static void cmd(fx_t *fx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vcmd(fx->cli, fmt, ap);
    va_end(ap);
}

/* The same on another connection of the test's. */
static void cmd_on(redisContext *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vcmd(c, fmt, ap);
    va_end(ap);
}

/* A connection of the test's own to a server without AUTH. */
static redisContext *connect_port(int port)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    assert_non_null(c);
    if (c->err != 0) {
        fail_msg("connect to %d: %s", port, c->errstr);
    }
    redisSetTimeout(c, tv);
    return c;
}

/* Keys matching pattern in c's database, counted with SCAN. */
static size_t scan_count(redisContext *c, const char *pattern)
{
    size_t n = 0;
    char cursor[32] = "0";
    redisReply *r;

    do {
        r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        n += r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

static void env_init_at(fx_t *fx, const char *prefix, int port)
{
    uc_config_t *cfg = &fx->env.cfg;

    uc_test_redis_config(cfg, port);
    cfg->connect_timeout_ms = 250;
    cfg->command_timeout_ms = 250;
    cfg->backoff_base_ms = 25;
    cfg->backoff_max_ms = 500;
    snprintf(cfg->key_prefix, sizeof(cfg->key_prefix), "%s", prefix);
    snprintf(cfg->username, sizeof(cfg->username), "%s", fx->auth_user);
    snprintf(cfg->password, sizeof(cfg->password), "%s", fx->auth_pass);
}

static void env_init(fx_t *fx, const char *prefix)
{
    env_init_at(fx, prefix, fx->f.r.port);
}

static void track_start(fx_t *fx, const uc__track_opts_t *opts)
{
    uc__track_cb_t cb = {on_keys, on_flush, on_healthy, on_heartbeat, &fx->rec};
    char err[256] = "";
    int rc = uc__track_start(&fx->env, opts, &cb, &fx->t, err, sizeof(err));

    if (rc != UC_OK) {
        fail_msg("uc__track_start: %s: %s", uc_err_name(rc), err);
    }
    atomic_store(&fx->rec.t, fx->t);
}

static void track_stop(fx_t *fx)
{
    uc__track_stop(fx->t);
    fx->t = NULL;
    atomic_store(&fx->rec.t, NULL);
    pthread_mutex_lock(&fx->rec.mu);
    fx->rec.stopped = 1;
    pthread_mutex_unlock(&fx->rec.mu);
}

/* ---- reading the record ----------------------------------------------------
 */

static size_t key_count(fx_t *fx, const char *key)
{
    size_t n = 0;

    pthread_mutex_lock(&fx->rec.mu);
    for (size_t i = 0; i < fx->rec.nkeys; i++) {
        n += strcmp(fx->rec.keys[i], key) == 0;
    }
    pthread_mutex_unlock(&fx->rec.mu);
    return n;
}

static size_t keys_with_prefix(fx_t *fx, const char *p)
{
    size_t n = 0;

    pthread_mutex_lock(&fx->rec.mu);
    for (size_t i = 0; i < fx->rec.nkeys; i++) {
        n += strncmp(fx->rec.keys[i], p, strlen(p)) == 0;
    }
    pthread_mutex_unlock(&fx->rec.mu);
    return n;
}

/* Waits until key was delivered at least n times; the time it took. */
static uint64_t wait_key(fx_t *fx, const char *key, size_t n, unsigned ms)
{
    uint64_t t0 = uc_test_now_us();

    while (key_count(fx, key) < n) {
        if (uc_test_now_us() - t0 > (uint64_t)ms * 1000u) {
            fail_msg("'%s' delivered %zu times, not %zu, within %u ms", key,
                     key_count(fx, key), n, ms);
        }
        uc_test_sleep_ms(1);
    }
    return uc_test_now_us() - t0;
}

static size_t nflush(fx_t *fx)
{
    size_t n;

    pthread_mutex_lock(&fx->rec.mu);
    n = fx->rec.nflush;
    pthread_mutex_unlock(&fx->rec.mu);
    return n;
}

/* Waits for flush number `idx` (0-based) and returns it. */
static flush_ev_t wait_flush(fx_t *fx, size_t idx, unsigned ms)
{
    uint64_t t0 = uc_test_now_us();
    flush_ev_t ev;

    while (nflush(fx) <= idx) {
        if (uc_test_now_us() - t0 > (uint64_t)ms * 1000u) {
            fail_msg("no flush #%zu within %u ms (%zu so far)", idx + 1, ms,
                     nflush(fx));
        }
        uc_test_sleep_ms(1);
    }
    pthread_mutex_lock(&fx->rec.mu);
    ev = fx->rec.flush[idx];
    pthread_mutex_unlock(&fx->rec.mu);
    return ev;
}

static int healthy_count(fx_t *fx)
{
    int n;

    pthread_mutex_lock(&fx->rec.mu);
    n = fx->rec.healthy;
    pthread_mutex_unlock(&fx->rec.mu);
    return n;
}

/* When on_healthy last ran. */
static uint64_t healthy_at(fx_t *fx)
{
    uint64_t at;

    pthread_mutex_lock(&fx->rec.mu);
    at = fx->rec.healthy_us;
    pthread_mutex_unlock(&fx->rec.mu);
    return at;
}

/* Waits until on_healthy ran n times in all and the state says so. */
static void wait_healthy(fx_t *fx, int n, unsigned ms)
{
    uint64_t t0 = uc_test_now_us();

    while (healthy_count(fx) < n ||
           uc__track_state(fx->t) != UC__TRACK_HEALTHY) {
        if (uc_test_now_us() - t0 > (uint64_t)ms * 1000u) {
            uc__track_stats_t st;
            uc__track_stats(fx->t, &st);
            fail_msg("not healthy (#%d) within %u ms: state %d, connects "
                     "%llu, failures %llu, heartbeats %llu/%llu",
                     n, ms, st.state, (unsigned long long)st.connects,
                     (unsigned long long)st.connect_failures,
                     (unsigned long long)st.heartbeats_ok,
                     (unsigned long long)st.heartbeats_sent);
        }
        uc_test_sleep_ms(1);
    }
}

/* A fence: a fresh key under the prefix, written and seen delivered. */
static void fence(fx_t *fx, const char *prefix)
{
    static unsigned n;
    char key[64];

    snprintf(key, sizeof(key), "%sfence:%u", prefix, ++n);
    cmd(fx, "SET %s 1", key);
    wait_key(fx, key, 1, 2000);
}

static uc__track_stats_t stats(fx_t *fx)
{
    uc__track_stats_t st;

    uc__track_stats(fx->t, &st);
    return st;
}

/* A standard start: server, client, channel, healthy. */
static void up(fx_t *fx, const char *extra, const uc__track_opts_t *opts)
{
    server_start(fx, extra);
    cli_connect(fx);
    env_init(fx, PREFIX);
    track_start(fx, opts);
    wait_healthy(fx, 1, 5000);
}

/* ---- tests -----------------------------------------------------------------
 */

static void becomes_healthy_after_heartbeat(void **state)
{
    fx_t *fx = *state;
    uc__track_stats_t st;

    server_start(fx, NULL);
    cli_connect(fx);
    env_init(fx, PREFIX);
    track_start(fx, NULL);
    wait_healthy(fx, 1, 5000);
    /* on_healthy came after a heartbeat, not at the subscribe ack. */
    pthread_mutex_lock(&fx->rec.mu);
    assert_int_equal(fx->rec.lags_at_healthy, 1);
    pthread_mutex_unlock(&fx->rec.mu);
    st = stats(fx);
    assert_int_equal(st.state, UC__TRACK_HEALTHY);
    assert_int_equal(st.connects, 1);
    assert_true(st.heartbeats_ok >= 1);
    assert_true(st.heartbeats_sent >= st.heartbeats_ok);
    assert_int_equal(st.epoch, 0);
    assert_int_equal(nflush(fx), 0);
    /* One subscriber with tracking on, redirected to itself, in BCAST. */
    redisReply *r = redisCommand(fx->cli, "CLIENT LIST TYPE pubsub");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(r->str, "flags=P"));
    assert_non_null(strstr(r->str, "sub=1"));
    freeReplyObject(r);
    r = redisCommand(fx->cli, "INFO stats");
    assert_non_null(r);
    assert_non_null(strstr(r->str, "tracking_total_prefixes:1"));
    freeReplyObject(r);
}

static void writes_under_prefix_arrive(void **state)
{
    fx_t *fx = *state;
    uc__track_stats_t st;
    uint64_t t0;

    up(fx, NULL, NULL);
    cmd(fx, "SET " PREFIX "a 1");
    wait_key(fx, PREFIX "a", 1, 2000);
    cmd(fx, "DEL " PREFIX "a");
    wait_key(fx, PREFIX "a", 2, 2000);
    /* Expiry: the SET's own invalidation, then the expiry's. */
    cmd(fx, "SET " PREFIX "e 1 PX 50");
    wait_key(fx, PREFIX "e", 1, 2000);
    wait_key(fx, PREFIX "e", 2, 3000);
    /* A write in another database invalidates too: tracking is
     * database-agnostic. */
    cmd(fx, "SELECT 3");
    cmd(fx, "SET " PREFIX "db3 1");
    wait_key(fx, PREFIX "db3", 1, 2000);
    cmd(fx, "SELECT 0");
    /* Outside the prefix: nothing, behind a fence. */
    cmd(fx, "SET other:b 1");
    cmd(fx, "SET trk 1"); /* the prefix without its colon */
    fence(fx, PREFIX);
    assert_int_equal(key_count(fx, "other:b"), 0);
    assert_int_equal(key_count(fx, "trk"), 0);
    /* Several keys of one MSET come in one message. */
    cmd(fx, "MSET " PREFIX "m1 1 " PREFIX "m2 2");
    wait_key(fx, PREFIX "m1", 1, 2000);
    wait_key(fx, PREFIX "m2", 1, 2000);
    /* Heartbeat keys never reach on_keys, though they are under the
     * prefix and came back all along. */
    t0 = uc_test_now_ms();
    while ((st = stats(fx)).heartbeats_ok < 3) {
        assert_true(uc_test_now_ms() - t0 < 2000);
        uc_test_sleep_ms(5);
    }
    assert_int_equal(keys_with_prefix(fx, PREFIX "uc:hb:"), 0);
    assert_true(st.keys >= 8);
    assert_true(st.messages >= 7);
    assert_int_equal(nflush(fx), 0);
}

static void empty_prefix_tracks_every_key(void **state)
{
    fx_t *fx = *state;

    server_start(fx, NULL);
    cli_connect(fx);
    env_init(fx, "");
    track_start(fx, NULL);
    wait_healthy(fx, 1, 5000);
    cmd(fx, "SET anything 1");
    wait_key(fx, "anything", 1, 2000);
    cmd(fx, "SET x:y:z 1");
    wait_key(fx, "x:y:z", 1, 2000);
    assert_int_equal(keys_with_prefix(fx, "uc:hb:"), 0);
}

/* A PUBLISH on the channel is not tracking's: no keys, no flush. */
static void publish_on_channel_ignored(void **state)
{
    fx_t *fx = *state;
    uc__track_stats_t before, after;

    up(fx, NULL, NULL);
    before = stats(fx);
    cmd(fx, "PUBLISH __redis__:invalidate " PREFIX "fake");
    fence(fx, PREFIX);
    after = stats(fx);
    assert_int_equal(key_count(fx, PREFIX "fake"), 0);
    assert_int_equal(nflush(fx), 0);
    assert_int_equal(after.epoch, before.epoch);
    assert_int_equal(after.flushes_lost, 0);
    assert_int_equal(uc__track_state(fx->t), UC__TRACK_HEALTHY);
}

static void flushall_is_null_flush(void **state)
{
    fx_t *fx = *state;
    uint64_t before = 0, t0;
    flush_ev_t ev;

    up(fx, NULL, NULL);
    before = uc__track_ticket(fx->t);
    t0 = uc_test_now_us();
    cmd(fx, "FLUSHALL");
    ev = wait_flush(fx, 0, 1000);
    printf("FIGURE track_detect_flushall_us %llu\n",
           (unsigned long long)(ev.at_us - t0));
    assert_int_equal(ev.why, UC__FLUSH_NULL_MSG);
    /* The ticket had changed when on_flush ran: epoch + 1, still healthy. */
    assert_int_equal(UC__TRACK_TICKET_EPOCH(ev.ticket),
                     UC__TRACK_TICKET_EPOCH(before) + 1);
    assert_int_equal(UC__TRACK_TICKET_STATE(ev.ticket), UC__TRACK_HEALTHY);
    assert_int_equal(uc__track_state(fx->t), UC__TRACK_HEALTHY);
    /* FLUSHDB of another database is the same message. */
    cmd(fx, "SELECT 5");
    cmd(fx, "FLUSHDB");
    cmd(fx, "SELECT 0");
    ev = wait_flush(fx, 1, 1000);
    assert_int_equal(ev.why, UC__FLUSH_NULL_MSG);
    assert_int_equal(uc__track_epoch(fx->t),
                     UC__TRACK_TICKET_EPOCH(before) + 2);
    /* The channel carries on. */
    fence(fx, PREFIX);
    assert_int_equal(stats(fx).flushes_null, 2);
    assert_int_equal(stats(fx).connects, 1);
}

static void killed_subscriber_is_lost_then_healthy(void **state)
{
    fx_t *fx = *state;
    uint64_t before, t0;
    flush_ev_t ev;
    uc__track_stats_t st;

    up(fx, NULL, NULL);
    before = uc__track_ticket(fx->t);
    t0 = uc_test_now_us();
    cmd(fx, "CLIENT KILL TYPE pubsub");
    ev = wait_flush(fx, 0, 1000);
    printf("FIGURE track_detect_kill_us %llu\n",
           (unsigned long long)(ev.at_us - t0));
    assert_int_equal(ev.why, UC__FLUSH_LOST);
    assert_int_not_equal(UC__TRACK_TICKET_STATE(ev.ticket), UC__TRACK_HEALTHY);
    assert_int_equal(UC__TRACK_TICKET_EPOCH(ev.ticket),
                     UC__TRACK_TICKET_EPOCH(before) + 1);
    wait_healthy(fx, 2, 3000);
    printf("FIGURE track_recover_kill_us %llu\n",
           (unsigned long long)(healthy_at(fx) - t0));
    /* Tracking was set up again on the new subscriber. */
    cmd(fx, "SET " PREFIX "after 1");
    wait_key(fx, PREFIX "after", 1, 2000);
    st = stats(fx);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.flushes_lost, 1);
    assert_int_equal(nflush(fx), 1);
}

/* The heartbeat connection dying is a loss as well: nothing proves the
 * channel any more. */
static void killed_heartbeat_connection_is_lost(void **state)
{
    fx_t *fx = *state;
    flush_ev_t ev;

    up(fx, NULL, NULL);
    cmd(fx, "CLIENT KILL TYPE normal SKIPME yes");
    ev = wait_flush(fx, 0, 1000);
    assert_int_equal(ev.why, UC__FLUSH_LOST);
    wait_healthy(fx, 2, 3000);
}

static void stopped_server_is_late_heartbeat(void **state)
{
    fx_t *fx = *state;
    uint64_t t0, dt;
    flush_ev_t ev;
    uc__track_stats_t st;

    up(fx, NULL, NULL);
    t0 = uc_test_now_us();
    assert_int_equal(uc_test_redis_signal(&fx->f.r, SIGSTOP), 0);
    ev = wait_flush(fx, 0, 3000);
    dt = ev.at_us - t0;
    printf("FIGURE track_detect_sigstop_us %llu\n", (unsigned long long)dt);
    assert_int_equal(ev.why, UC__FLUSH_HEARTBEAT);
    assert_int_not_equal(UC__TRACK_TICKET_STATE(ev.ticket), UC__TRACK_HEALTHY);
    /* hb_ms 100 + deadline 250 + slack */
    assert_true(dt < 1000000u);
    /* It stays down while the server is stopped. */
    uc_test_sleep_ms(600);
    assert_int_not_equal(uc__track_state(fx->t), UC__TRACK_HEALTHY);
    assert_int_equal(healthy_count(fx), 1);
    t0 = uc_test_now_us();
    assert_int_equal(uc_test_redis_signal(&fx->f.r, SIGCONT), 0);
    wait_healthy(fx, 2, 5000);
    printf("FIGURE track_recover_sigcont_us %llu\n",
           (unsigned long long)(healthy_at(fx) - t0));
    st = stats(fx);
    assert_int_equal(st.flushes_heartbeat, 1);
    assert_true(st.heartbeats_late >= 1);
    /* Still one flush: the failed attempts while stopped were not healthy
     * and flush nothing. */
    assert_int_equal(nflush(fx), 1);
    fence(fx, PREFIX);
}

static void restarted_server_flushes_then_healthy(void **state)
{
    fx_t *fx = *state;
    uint64_t t0;
    flush_ev_t ev;

    up(fx, NULL, NULL);
    t0 = uc_test_now_us();
    uc_test_redis_kill(&fx->f.r);
    ev = wait_flush(fx, 0, 1000);
    printf("FIGURE track_detect_restart_us %llu\n",
           (unsigned long long)(ev.at_us - t0));
    assert_int_equal(ev.why, UC__FLUSH_LOST);
    /* Down while there is no server: reconnects fail and back off. */
    uc_test_sleep_ms(300);
    assert_int_not_equal(uc__track_state(fx->t), UC__TRACK_HEALTHY);
    assert_true(stats(fx).connect_failures >= 1);
    assert_int_equal(uc_test_redis_restart(&fx->f.r), 0);
    wait_healthy(fx, 2, 5000);
    cli_connect(fx);
    cmd(fx, "SET " PREFIX "new 1");
    wait_key(fx, PREFIX "new", 1, 2000);
    assert_int_equal(nflush(fx), 1);
}

static void password_auth(void **state)
{
    fx_t *fx = *state;

    snprintf(fx->auth_pass, sizeof(fx->auth_pass), "s3cret-pw");
    up(fx, "requirepass s3cret-pw\n", NULL);
    cmd(fx, "SET " PREFIX "p 1");
    wait_key(fx, PREFIX "p", 1, 2000);
}

static void wrong_password_never_healthy(void **state)
{
    fx_t *fx = *state;
    uc__track_stats_t st;

    server_start(fx, "requirepass right\n");
    env_init(fx, PREFIX);
    snprintf(fx->env.cfg.password, sizeof(fx->env.cfg.password), "wrong");
    track_start(fx, NULL);
    uc_test_sleep_ms(800);
    st = stats(fx);
    assert_int_not_equal(st.state, UC__TRACK_HEALTHY);
    assert_int_equal(st.connects, 0);
    assert_true(st.connect_failures >= 2);
    assert_int_equal(healthy_count(fx), 0);
}

/* The keys of database db matching pattern, counted with SCAN. */
static size_t count_matching(fx_t *fx, int db, const char *pattern)
{
    size_t n = 0;
    char cursor[32] = "0";
    redisReply *r;

    cmd(fx, "SELECT %d", db);
    do {
        r = redisCommand(fx->cli, "SCAN %s MATCH %s COUNT 1000", cursor,
                         pattern);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        n += r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    cmd(fx, "SELECT 0");
    return n;
}

/*
 * An ACL user with only what the channel needs (client|id, client|tracking,
 * subscribe on the one channel, set under the prefix, select), on database
 * 2: it becomes healthy, and the heartbeat keys are written there and
 * nowhere else. The test's own connection is an admin.
 */
static void acl_user_and_database(void **state)
{
    fx_t *fx = *state;

    snprintf(fx->auth_user, sizeof(fx->auth_user), "admin");
    snprintf(fx->auth_pass, sizeof(fx->auth_pass), "admin-pw");
    server_start(fx, "user default off\n"
                     "user admin on >admin-pw ~* &* +@all\n"
                     "user chan on >chan-pw ~" PREFIX "* resetchannels "
                     "&__redis__:invalidate -@all +auth +select +set "
                     "+client|id +client|tracking +subscribe\n");
    cli_connect(fx);
    env_init(fx, PREFIX);
    snprintf(fx->env.cfg.username, sizeof(fx->env.cfg.username), "chan");
    snprintf(fx->env.cfg.password, sizeof(fx->env.cfg.password), "chan-pw");
    fx->env.cfg.db = 2;
    track_start(fx, NULL);
    wait_healthy(fx, 1, 5000);
    cmd(fx, "SET " PREFIX "acl 1");
    wait_key(fx, PREFIX "acl", 1, 2000);
    assert_true(count_matching(fx, 2, PREFIX "uc:hb:*") >= 1);
    assert_int_equal(count_matching(fx, 0, PREFIX "uc:hb:*"), 0);
    assert_int_equal(nflush(fx), 0);
}

/* Without +client|tracking the channel cannot start and says so. */
static void acl_without_tracking_fails(void **state)
{
    fx_t *fx = *state;
    uc__track_stats_t st;

    server_start(fx, "user default off\n"
                     "user ro on >ro-pw ~" PREFIX "* &* -@all +auth "
                     "+select +set +client|id +subscribe\n");
    env_init(fx, PREFIX);
    snprintf(fx->env.cfg.username, sizeof(fx->env.cfg.username), "ro");
    snprintf(fx->env.cfg.password, sizeof(fx->env.cfg.password), "ro-pw");
    track_start(fx, NULL);
    uc_test_sleep_ms(600);
    st = stats(fx);
    assert_int_not_equal(st.state, UC__TRACK_HEALTHY);
    assert_true(st.connect_failures >= 1);
    assert_int_equal(st.connects, 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* ~1000 heartbeats at 5 ms: exact lags from on_heartbeat, and the
 * histogram and counters agree with them. */
static void heartbeat_lag_figures(void **state)
{
    fx_t *fx = *state;
    uc__track_opts_t opts = UC__TRACK_OPTS_INIT;
    uc__track_stats_t st;
    static uint64_t lags[LAGS_MAX];
    uint64_t hist_total = 0, t0;
    size_t n;

    opts.hb_ms = 5;
    opts.hb_deadline_ms = 250;
    up(fx, NULL, &opts);
    t0 = uc_test_now_us();
    for (;;) {
        pthread_mutex_lock(&fx->rec.mu);
        n = fx->rec.nlags;
        pthread_mutex_unlock(&fx->rec.mu);
        if (n >= 1000) {
            break;
        }
        if (uc_test_now_us() - t0 > 30000000u) {
            fail_msg("only %zu heartbeats back in 30 s", n);
        }
        uc_test_sleep_ms(20);
    }
    /* Lags first, then the figures: every lag copied is already counted. */
    pthread_mutex_lock(&fx->rec.mu);
    n = fx->rec.nlags;
    memcpy(lags, fx->rec.lags, n * sizeof(lags[0]));
    pthread_mutex_unlock(&fx->rec.mu);
    st = stats(fx);
    track_stop(fx);
    qsort(lags, n, sizeof(lags[0]), cmp_u64);
    printf("FIGURE track_hb_lag_us n=%zu p50=%llu p99=%llu max=%llu "
           "(histogram p50<%llu p99<%llu)\n",
           n, (unsigned long long)lags[n / 2],
           (unsigned long long)lags[(n * 99) / 100],
           (unsigned long long)lags[n - 1],
           (unsigned long long)uc_stats_percentile_us(st.lag_us, 0.5),
           (unsigned long long)uc_stats_percentile_us(st.lag_us, 0.99));

    for (unsigned i = 0; i < UC_HIST_BUCKETS; i++) {
        hist_total += st.lag_us[i];
    }
    assert_true(st.heartbeats_ok >= n);
    /* One ack may fall between the two reads of a live copy. */
    assert_true(hist_total + 1 >= st.heartbeats_ok &&
                hist_total <= st.heartbeats_ok + 1);
    assert_true(st.heartbeats_sent >= st.heartbeats_ok);
    assert_true(st.lag_max_us >= lags[n - 1]);
    assert_int_equal(st.heartbeats_late, 0);
    assert_int_equal(st.flushes_heartbeat, 0);
    /* Loopback: the median far under the deadline. */
    assert_true(lags[n / 2] < 50000u);
}

/* Two instances on one server: each healthy, neither sees the other's
 * heartbeats as keys, both see a write. */
static void two_instances(void **state)
{
    fx_t *fx = *state;
    uc__track_cb_t cb = {on_keys, on_flush, on_healthy, NULL, &fx->rec2};
    char err[128];
    uint64_t t0;
    int h;

    up(fx, NULL, NULL);
    assert_int_equal(
        uc__track_start(&fx->env, NULL, &cb, &fx->t2, err, sizeof(err)), UC_OK);
    t0 = uc_test_now_ms();
    do {
        pthread_mutex_lock(&fx->rec2.mu);
        h = fx->rec2.healthy;
        pthread_mutex_unlock(&fx->rec2.mu);
        assert_true(uc_test_now_ms() - t0 < 5000);
        uc_test_sleep_ms(1);
    } while (h == 0);
    uc_test_sleep_ms(300); /* heartbeats of both go around */
    cmd(fx, "SET " PREFIX "both 1");
    wait_key(fx, PREFIX "both", 1, 2000);
    t0 = uc_test_now_ms();
    for (;;) {
        pthread_mutex_lock(&fx->rec2.mu);
        size_t nk = fx->rec2.nkeys;
        pthread_mutex_unlock(&fx->rec2.mu);
        if (nk > 0) {
            break;
        }
        assert_true(uc_test_now_ms() - t0 < 2000);
        uc_test_sleep_ms(1);
    }
    uc__track_stop(fx->t2);
    fx->t2 = NULL;
    assert_int_equal(fx->rec2.healthy, 1);
    assert_int_equal(fx->rec2.nkeys, 1);
    assert_string_equal(fx->rec2.keys[0], PREFIX "both");
    assert_int_equal(keys_with_prefix(fx, PREFIX "uc:hb:"), 0);
}

static void stop_when_healthy_flushes_last(void **state)
{
    fx_t *fx = *state;
    uint64_t before;
    flush_ev_t ev;

    up(fx, NULL, NULL);
    before = uc__track_ticket(fx->t);
    track_stop(fx);
    assert_int_equal(nflush(fx), 1);
    ev = wait_flush(fx, 0, 0);
    assert_int_equal(ev.why, UC__FLUSH_STOP);
    /* on_flush read the ticket before the handle was unpublished. */
    assert_int_equal(UC__TRACK_TICKET_EPOCH(ev.ticket),
                     UC__TRACK_TICKET_EPOCH(before) + 1);
    assert_int_equal(UC__TRACK_TICKET_STATE(ev.ticket), UC__TRACK_DOWN);
    cmd(fx, "SET " PREFIX "late 1");
    uc_test_sleep_ms(100);
    assert_int_equal(key_count(fx, PREFIX "late"), 0);
    assert_int_equal(fx->rec.after_stop, 0);
}

/* Stop is bounded whatever the channel is waiting for: a stopped server
 * mid-handshake, a refused port between retries. */
static void stop_is_bounded(void **state)
{
    fx_t *fx = *state;
    uint64_t t0, dt;

    server_start(fx, NULL);
    env_init(fx, PREFIX);
    assert_int_equal(uc_test_redis_signal(&fx->f.r, SIGSTOP), 0);
    track_start(fx, NULL);
    uc_test_sleep_ms(100); /* connected by the kernel, no reply */
    assert_int_equal(uc__track_state(fx->t), UC__TRACK_CONNECTING);
    t0 = uc_test_now_us();
    track_stop(fx);
    dt = uc_test_now_us() - t0;
    printf("FIGURE track_stop_handshake_us %llu\n", (unsigned long long)dt);
    assert_true(dt < 300000u);
    assert_int_equal(nflush(fx), 0);
    assert_int_equal(uc_test_redis_signal(&fx->f.r, SIGCONT), 0);

    /* Nothing listening: the thread is in its backoff. */
    fx->env.cfg.port = uc_test_free_port();
    fx->env.cfg.backoff_base_ms = 2000;
    fx->env.cfg.backoff_max_ms = 2000;
    fx->rec.stopped = 0;
    track_start(fx, NULL);
    uc_test_sleep_ms(200);
    assert_int_equal(uc__track_state(fx->t), UC__TRACK_DOWN);
    t0 = uc_test_now_us();
    track_stop(fx);
    dt = uc_test_now_us() - t0;
    assert_true(dt < 100000u);
}

static void bad_config_refused(void **state)
{
    uc__env_t env;
    uc__track_opts_t opts = UC__TRACK_OPTS_INIT;
    uc__track_t *t = (uc__track_t *)(uintptr_t)1;
    char err[128] = "";

    (void)state;
    memset(&env, 0, sizeof(env));
    uc_config_init(&env.cfg);
    assert_int_equal(uc__track_start(&env, NULL, NULL, &t, err, sizeof(err)),
                     UC_ECONFIG);
    assert_non_null(strstr(err, "host"));
    assert_ptr_equal(t, (uc__track_t *)(uintptr_t)1);
    uc_test_redis_config(&env.cfg, 6379);
    opts.hb_ms = -1;
    assert_int_equal(uc__track_start(&env, &opts, NULL, &t, err, sizeof(err)),
                     UC_ECONFIG);
    opts.hb_ms = 1;
    opts.hb_deadline_ms = 1000; /* would need 1002 heartbeat keys */
    assert_int_equal(uc__track_start(&env, &opts, NULL, &t, err, sizeof(err)),
                     UC_ECONFIG);
    assert_ptr_equal(t, (uc__track_t *)(uintptr_t)1);
    assert_string_equal(uc__flush_reason_name(UC__FLUSH_HEARTBEAT),
                        "heartbeat");
    uc__track_stop(NULL);
}

/* ---- barriers --------------------------------------------------------------
 */

typedef struct {
    fx_t *fx;
    int ok;
} barrier_arg_t;

static void *barrier_thread(void *arg)
{
    barrier_arg_t *a = arg;

    for (int i = 0; i < 200; i++) {
        a->ok += uc__track_barrier(a->fx->t, 2000);
    }
    return NULL;
}

/* A barrier returns once the invalidations Redis queued before it have
 * been delivered, long before the next regular heartbeat; concurrent
 * barriers share heartbeats without making one late; on a stopped server
 * it gives up at its bound. */
static void barrier_delivers_what_came_before(void **state)
{
    fx_t *fx = *state;
    uc__track_opts_t opts = UC__TRACK_OPTS_INIT;
    barrier_arg_t args[4];
    pthread_t th[4];
    uc__track_stats_t st;
    uint64_t t0;
    char key[64];

    /* Regular heartbeats 2 s apart: only a barrier's can be this quick. */
    opts.hb_ms = 2000;
    opts.hb_deadline_ms = 4000;
    up(fx, NULL, &opts);
    t0 = uc_test_now_us();
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), PREFIX "b%d", i);
        cmd(fx, "SET %s 1", key);
        assert_int_equal(uc__track_barrier(fx->t, 1000), 1);
        assert_int_equal(key_count(fx, key), 1);
    }
    printf("FIGURE track_barrier_us %llu\n",
           (unsigned long long)((uc_test_now_us() - t0) / 50u));
    assert_true(uc_test_now_us() - t0 < 2000000u);

    for (int i = 0; i < 4; i++) {
        args[i].fx = fx;
        args[i].ok = 0;
        assert_int_equal(pthread_create(&th[i], NULL, barrier_thread, &args[i]),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 200);
    }
    st = stats(fx);
    assert_int_equal(st.heartbeats_late, 0);
    assert_int_equal(nflush(fx), 0);

    assert_int_equal(uc_test_redis_signal(&fx->f.r, SIGSTOP), 0);
    t0 = uc_test_now_us();
    assert_int_equal(uc__track_barrier(fx->t, 100), 0);
    uint64_t dt = uc_test_now_us() - t0;
    assert_int_equal(uc_test_redis_signal(&fx->f.r, SIGCONT), 0);
    assert_true(dt >= 90000u && dt < 1000000u);
}

/* ---- node sets -------------------------------------------------------------
 */

static uc__track_node_t node_of(const char *host, int port, const char *tag)
{
    uc__track_node_t n;

    memset(&n, 0, sizeof(n));
    snprintf(n.host, sizeof(n.host), "%s", host);
    n.port = port;
    snprintf(n.tag, sizeof(n.tag), "%s", tag);
    return n;
}

/* The channel's per-node figures; their count must be n. */
static void node_stats(fx_t *fx, uc__track_node_stat_t *out, size_t n)
{
    assert_int_equal(uc__track_node_stats(fx->t, out, n), n);
}

/* Waits until node i of n has had at least k heartbeats back. */
static void wait_node_heartbeats(fx_t *fx, size_t n, size_t i, uint64_t k,
                                 unsigned ms)
{
    uc__track_node_stat_t ns[UC__TRACK_NODES_MAX];
    uint64_t t0 = uc_test_now_us();

    for (;;) {
        node_stats(fx, ns, n);
        if (ns[i].heartbeats_ok >= k) {
            return;
        }
        if (uc_test_now_us() - t0 > (uint64_t)ms * 1000u) {
            fail_msg("node %zu (%s:%d): %llu heartbeats back, not %llu, "
                     "within %u ms",
                     i, ns[i].host, ns[i].port,
                     (unsigned long long)ns[i].heartbeats_ok,
                     (unsigned long long)k, ms);
        }
        uc_test_sleep_ms(2);
    }
}

/*
 * Two standalone servers passed as two nodes: a write on either arrives;
 * SIGKILL of one is a flush (the other's link stays healthy and keeps
 * delivering) and the handle is healthy again once that server is back.
 */
static void two_servers_as_two_nodes(void **state)
{
    fx_t *fx = *state;
    uc__track_node_t nodes[2];
    uc__track_node_stat_t ns[2];
    redisContext *c2;
    flush_ev_t ev;
    uint64_t before, t0;

    up(fx, NULL, NULL);
    assert_int_equal(uc_test_redis_start(&fx->r2, NULL), 0);
    nodes[0] = node_of("127.0.0.1", fx->f.r.port, "");
    nodes[1] = node_of("127.0.0.1", fx->r2.port, "");
    before = uc__track_ticket(fx->t);
    assert_int_equal(uc__track_set_nodes(fx->t, nodes, 2), UC_OK);
    /* A node added to a healthy channel: a topology flush, then healthy
     * once both links are proven. */
    ev = wait_flush(fx, 0, 2000);
    assert_int_equal(ev.why, UC__FLUSH_TOPOLOGY);
    assert_int_not_equal(UC__TRACK_TICKET_STATE(ev.ticket), UC__TRACK_HEALTHY);
    assert_int_equal(UC__TRACK_TICKET_EPOCH(ev.ticket),
                     UC__TRACK_TICKET_EPOCH(before) + 1);
    wait_healthy(fx, 2, 5000);
    node_stats(fx, ns, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(ns[i].host, "127.0.0.1");
        assert_int_equal(ns[i].port, nodes[i].port);
        assert_int_equal(ns[i].state, UC__TRACK_HEALTHY);
        assert_true(ns[i].heartbeats_ok >= 1);
        assert_int_equal(ns[i].reconnects, 0);
    }

    c2 = connect_port(fx->r2.port);
    cmd(fx, "SET " PREFIX "on1 1");
    wait_key(fx, PREFIX "on1", 1, 2000);
    cmd_on(c2, "SET " PREFIX "on2 1");
    wait_key(fx, PREFIX "on2", 1, 2000);
    /* Each server got heartbeat keys, untagged as standalone ones, and
     * none of them reached on_keys. */
    wait_node_heartbeats(fx, 2, 1, 3, 2000);
    assert_true(scan_count(fx->cli, PREFIX "uc:hb:*") >= 1);
    assert_true(scan_count(c2, PREFIX "uc:hb:*") >= 1);
    assert_int_equal(scan_count(c2, PREFIX "uc:hb:{*"), 0);
    assert_int_equal(keys_with_prefix(fx, PREFIX "uc:hb:"), 0);
    redisFree(c2);
    assert_int_equal(nflush(fx), 1);

    t0 = uc_test_now_us();
    uc_test_redis_kill(&fx->r2);
    ev = wait_flush(fx, 1, 2000);
    printf("FIGURE track_nodes_detect_kill_us %llu\n",
           (unsigned long long)(ev.at_us - t0));
    assert_int_equal(ev.why, UC__FLUSH_LOST);
    assert_int_not_equal(UC__TRACK_TICKET_STATE(ev.ticket), UC__TRACK_HEALTHY);
    assert_int_equal(UC__TRACK_TICKET_EPOCH(ev.ticket),
                     UC__TRACK_TICKET_EPOCH(before) + 2);
    /* Not healthy while one node is missing, and no longer fresh once its
     * last proof is older than hb_ms + hb_deadline_ms; the other's link
     * is healthy. */
    uc_test_sleep_ms(500);
    assert_int_not_equal(uc__track_state(fx->t), UC__TRACK_HEALTHY);
    assert_false(uc__track_fresh(fx->t));
    node_stats(fx, ns, 2);
    assert_int_equal(ns[0].state, UC__TRACK_HEALTHY);
    assert_int_not_equal(ns[1].state, UC__TRACK_HEALTHY);
    assert_int_equal(ns[0].flushes_lost + ns[0].flushes_heartbeat, 0);
    assert_int_equal(ns[1].flushes_lost, 1);
    /* The live node's invalidations still arrive (to clear placeholders). */
    cmd(fx, "SET " PREFIX "during 1");
    wait_key(fx, PREFIX "during", 1, 2000);

    t0 = uc_test_now_us();
    assert_int_equal(uc_test_redis_restart(&fx->r2), 0);
    wait_healthy(fx, 3, 5000);
    printf("FIGURE track_nodes_recover_restart_us %llu\n",
           (unsigned long long)(healthy_at(fx) - t0));
    node_stats(fx, ns, 2);
    assert_int_equal(ns[1].state, UC__TRACK_HEALTHY);
    assert_int_equal(ns[1].reconnects, 1);
    assert_int_equal(ns[0].reconnects, 0);
    c2 = connect_port(fx->r2.port);
    cmd_on(c2, "SET " PREFIX "again 1");
    redisFree(c2);
    wait_key(fx, PREFIX "again", 1, 2000);
    /* The failed attempts while the server was gone flushed nothing. */
    assert_int_equal(nflush(fx), 2);
    assert_int_equal(stats(fx).flushes_lost, 1);
    assert_int_equal(stats(fx).flushes_topology, 1);
}

/*
 * The same set again changes nothing; a changed one (a tag, a node added,
 * a node removed) is a topology flush each time, and a kept link stays
 * connected through it. Two links to one server (two names for it) see
 * each other's heartbeats, and neither passes them on.
 */
static void set_nodes_same_or_changed(void **state)
{
    fx_t *fx = *state;
    uc__track_node_t a, b, two[2], rev[2], bad[UC__TRACK_NODES_MAX + 1];
    uc__track_node_stat_t ns[2];
    uint64_t before;
    flush_ev_t ev;
    char pattern[64];

    up(fx, NULL, NULL);
    a = node_of("127.0.0.1", fx->f.r.port, "");
    /* Refused: nothing, too many, a bad port, an empty host, a brace in a
     * tag, one node twice. */
    memset(bad, 0, sizeof(bad));
    for (int i = 0; i <= UC__TRACK_NODES_MAX; i++) {
        bad[i] = node_of("127.0.0.1", 1000 + i, "");
    }
    assert_int_equal(uc__track_set_nodes(fx->t, NULL, 1), UC_EINVAL);
    assert_int_equal(uc__track_set_nodes(fx->t, &a, 0), UC_EINVAL);
    assert_int_equal(uc__track_set_nodes(fx->t, bad, UC__TRACK_NODES_MAX + 1),
                     UC_EINVAL);
    b = node_of("127.0.0.1", 0, "");
    assert_int_equal(uc__track_set_nodes(fx->t, &b, 1), UC_EINVAL);
    b = node_of("", fx->f.r.port, "");
    assert_int_equal(uc__track_set_nodes(fx->t, &b, 1), UC_EINVAL);
    b = node_of("127.0.0.1", fx->f.r.port, "a}b");
    assert_int_equal(uc__track_set_nodes(fx->t, &b, 1), UC_EINVAL);
    two[0] = a;
    two[1] = node_of("127.0.0.1", fx->f.r.port, "x");
    assert_int_equal(uc__track_set_nodes(fx->t, two, 2), UC_EINVAL);

    /* The set it already has: applied, and nothing happens. */
    before = uc__track_ticket(fx->t);
    assert_int_equal(uc__track_set_nodes(fx->t, &a, 1), UC_OK);
    uc_test_sleep_ms(200);
    fence(fx, PREFIX);
    assert_int_equal(nflush(fx), 0);
    assert_int_equal(uc__track_ticket(fx->t), before);
    assert_int_equal(stats(fx).connects, 1);

    /* A tag changed: a new link. */
    b = node_of("127.0.0.1", fx->f.r.port, "x");
    assert_int_equal(uc__track_set_nodes(fx->t, &b, 1), UC_OK);
    ev = wait_flush(fx, 0, 2000);
    assert_int_equal(ev.why, UC__FLUSH_TOPOLOGY);
    assert_int_not_equal(UC__TRACK_TICKET_STATE(ev.ticket), UC__TRACK_HEALTHY);
    assert_int_equal(UC__TRACK_TICKET_EPOCH(ev.ticket),
                     UC__TRACK_TICKET_EPOCH(before) + 1);
    wait_healthy(fx, 2, 5000);
    node_stats(fx, ns, 1);
    assert_string_equal(ns[0].tag, "x");
    assert_int_equal(ns[0].state, UC__TRACK_HEALTHY);
    assert_int_equal(stats(fx).connects, 2);
    snprintf(pattern, sizeof(pattern), "%s", PREFIX "uc:hb:{x}:*");
    assert_true(scan_count(fx->cli, pattern) >= 1);

    /* A node added: the server under a second name. */
    two[0] = b;
    two[1] = node_of("localhost", fx->f.r.port, "");
    assert_int_equal(uc__track_set_nodes(fx->t, two, 2), UC_OK);
    ev = wait_flush(fx, 1, 2000);
    assert_int_equal(ev.why, UC__FLUSH_TOPOLOGY);
    wait_healthy(fx, 3, 5000);
    wait_node_heartbeats(fx, 2, 1, 3, 2000);
    node_stats(fx, ns, 2);
    assert_string_equal(ns[1].host, "localhost");
    assert_true(ns[0].heartbeats_ok >= 3);
    assert_int_equal(stats(fx).connects, 3);

    /* The same two in the other order: the same set. */
    rev[0] = two[1];
    rev[1] = two[0];
    assert_int_equal(uc__track_set_nodes(fx->t, rev, 2), UC_OK);
    uc_test_sleep_ms(200);
    fence(fx, PREFIX);
    assert_int_equal(nflush(fx), 2);
    assert_int_equal(uc__track_state(fx->t), UC__TRACK_HEALTHY);

    /* A node removed: the kept link, still connected, proves itself
     * again before the channel is healthy. */
    assert_int_equal(uc__track_set_nodes(fx->t, &b, 1), UC_OK);
    ev = wait_flush(fx, 2, 2000);
    assert_int_equal(ev.why, UC__FLUSH_TOPOLOGY);
    assert_int_not_equal(UC__TRACK_TICKET_STATE(ev.ticket), UC__TRACK_HEALTHY);
    wait_healthy(fx, 4, 5000);
    node_stats(fx, ns, 1);
    assert_string_equal(ns[0].host, "127.0.0.1");
    assert_int_equal(stats(fx).connects, 3);
    assert_int_equal(stats(fx).flushes_topology, 3);
    fence(fx, PREFIX);
    assert_int_equal(keys_with_prefix(fx, PREFIX "uc:hb:"), 0);
    assert_int_equal(nflush(fx), 3);
    assert_string_equal(uc__flush_reason_name(UC__FLUSH_TOPOLOGY), "topology");
}

typedef struct {
    const int *owner;
    int node;
} owns_arg_t;

static int owns_slot(void *arg, unsigned slot)
{
    const owns_arg_t *a = arg;

    return a->owner[slot] == a->node;
}

/* The tags found are the first that fit, and only tags that fit. */
static void pick_tag_fits(void **state)
{
    static int owner[UC__CLUSTER_SLOTS];
    owns_arg_t a = {owner, 1};
    char tag[UC__TRACK_TAG_MAX] = "untouched";
    char key[128];

    (void)state;
    for (unsigned s = 0; s < UC__CLUSTER_SLOTS; s++) {
        owner[s] = s < 5000 ? 0 : s < 5001 ? 1 : 2; /* node 1: one slot */
    }
    assert_int_equal(uc__track_pick_tag(PREFIX, owns_slot, &a, tag), UC_OK);
    snprintf(key, sizeof(key), PREFIX "uc:hb:{%s}:0123456789abcdef:7", tag);
    assert_int_equal(uc__key_slot(key, strlen(key)), 5000);
    for (unsigned i = 0; i < 3; i++) {
        a.node = (int)i;
        assert_int_equal(uc__track_pick_tag("", owns_slot, &a, tag), UC_OK);
        snprintf(key, sizeof(key), "uc:hb:{%s}:0123456789abcdef:12", tag);
        assert_int_equal(owner[uc__key_slot(key, strlen(key))], (int)i);
    }
    /* A node without slots has no tag. */
    a.node = 3;
    snprintf(tag, sizeof(tag), "untouched");
    assert_int_equal(uc__track_pick_tag(PREFIX, owns_slot, &a, tag), UC_MISS);
    assert_string_equal(tag, "untouched");
    /* A prefix with a tag of its own: every heartbeat key is in its slot;
     * its owner gets a tag, the others none, at once. */
    a.node = owner[uc__key_slot("app{x}:", 7)];
    assert_int_equal(uc__track_pick_tag("app{x}:", owns_slot, &a, tag), UC_OK);
    a.node = (a.node + 1) % 3;
    assert_int_equal(uc__track_pick_tag("app{x}:", owns_slot, &a, tag),
                     UC_MISS);
    /* "{}" first: whole keys would hash. */
    assert_int_equal(uc__track_pick_tag("a{}b:", owns_slot, &a, tag),
                     UC_EINVAL);
}

/*
 * A real Redis Cluster: one node per primary, each with a tag of its own
 * slots. Every heartbeat comes back (none late), each primary holds its
 * link's heartbeat keys, and a write on each primary arrives.
 */
static void cluster_one_node_per_primary(void **state)
{
    fx_t *fx = *state;
    static int owner[UC_TEST_CLUSTER_SLOTS];
    uc__track_node_t nodes[UC_TEST_CLUSTER_NODES];
    uc__track_node_stat_t ns[UC_TEST_CLUSTER_NODES];
    int prim[UC_TEST_CLUSTER_NODES];
    size_t n = 0, flushes;
    char why[256] = "";
    const char *allow = getenv("UC_TEST_ALLOW_SKIP");
    uint64_t t0;

    if (!uc_test_cluster_available(why, sizeof(why))) {
        if (allow != NULL && strcmp(allow, "1") == 0) {
            print_message("skipped: %s\n", why);
            skip();
        }
        fail_msg("%s (UC_TEST_ALLOW_SKIP=1 skips)", why);
    }
    fx->cl = calloc(1, sizeof(*fx->cl));
    assert_non_null(fx->cl);
    if (uc_test_cluster_start(fx->cl) != 0) {
        fail_msg("could not start the cluster");
    }
    assert_int_equal(uc_test_cluster_owners(fx->cl, 0, owner), 0);
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        owns_arg_t a = {owner, i};
        char key[128];

        if (uc_test_cluster_is_primary(fx->cl, i) != 1) {
            continue;
        }
        nodes[n] = node_of("127.0.0.1", fx->cl->node[i].port, "");
        assert_int_equal(
            uc__track_pick_tag(PREFIX, owns_slot, &a, nodes[n].tag), UC_OK);
        snprintf(key, sizeof(key), PREFIX "uc:hb:{%s}:", nodes[n].tag);
        assert_int_equal(owner[uc__key_slot(key, strlen(key))], i);
        prim[n++] = i;
    }
    assert_int_equal(n, 3);

    env_init_at(fx, PREFIX, nodes[0].port);
    t0 = uc_test_now_us();
    track_start(fx, NULL);
    assert_int_equal(uc__track_set_nodes(fx->t, nodes, n), UC_OK);
    wait_healthy(fx, 1, 10000);
    printf("FIGURE track_cluster_healthy_us %llu\n",
           (unsigned long long)(healthy_at(fx) - t0));
    /* The first link (the configured node, untagged) may have been proven
     * before the set replaced it: only topology flushes so far. */
    flushes = nflush(fx);
    for (size_t i = 0; i < flushes; i++) {
        assert_int_equal(wait_flush(fx, i, 0).why, UC__FLUSH_TOPOLOGY);
    }
    node_stats(fx, ns, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ns[i].port, nodes[i].port);
        assert_string_equal(ns[i].tag, nodes[i].tag);
        assert_int_equal(ns[i].state, UC__TRACK_HEALTHY);
    }
    for (size_t i = 0; i < n; i++) {
        wait_node_heartbeats(fx, n, i, 5, 3000);
    }
    /* Every heartbeat key is on the primary its tag names. */
    for (size_t i = 0; i < n; i++) {
        redisContext *c = uc_test_cluster_connect(fx->cl, prim[i]);
        char pattern[64];

        assert_non_null(c);
        snprintf(pattern, sizeof(pattern), PREFIX "uc:hb:{%s}:*", nodes[i].tag);
        assert_true(scan_count(c, pattern) >= 1);
        redisFree(c);
    }
    /* A write on each primary, to a key of its own slots. */
    for (size_t i = 0; i < n; i++) {
        redisContext *c = uc_test_cluster_connect(fx->cl, prim[i]);
        char key[64];
        unsigned j = 0;

        assert_non_null(c);
        do {
            snprintf(key, sizeof(key), PREFIX "k%u", j++);
        } while (owner[uc__key_slot(key, strlen(key))] != prim[i]);
        cmd_on(c, "SET %s 1", key);
        redisFree(c);
        wait_key(fx, key, 1, 2000);
    }
    assert_int_equal(keys_with_prefix(fx, PREFIX "uc:hb:"), 0);
    assert_int_equal(stats(fx).heartbeats_late, 0);
    assert_int_equal(nflush(fx), flushes);
    assert_int_equal(uc__track_state(fx->t), UC__TRACK_HEALTHY);
    assert_true(uc__track_fresh(fx->t));

    /* The tag matters: with another primary's tag, node 0's heartbeats
     * are refused (-MOVED) and never come back, so the channel stays
     * unhealthy; its own tag again, and it is healthy. */
    {
        uc__track_node_t wrong[UC_TEST_CLUSTER_NODES];
        memcpy(wrong, nodes, n * sizeof(nodes[0]));
        memcpy(wrong[0].tag, nodes[1].tag, sizeof(wrong[0].tag));
        assert_int_equal(uc__track_set_nodes(fx->t, wrong, n), UC_OK);
        assert_int_equal(wait_flush(fx, flushes, 2000).why, UC__FLUSH_TOPOLOGY);
        uc_test_sleep_ms(800);
        assert_int_not_equal(uc__track_state(fx->t), UC__TRACK_HEALTHY);
        node_stats(fx, ns, n);
        assert_int_not_equal(ns[0].state, UC__TRACK_HEALTHY);
        assert_int_equal(ns[0].heartbeats_ok, 0);
        assert_int_equal(ns[1].state, UC__TRACK_HEALTHY);
        assert_true(stats(fx).heartbeats_late >= 1);
        assert_int_equal(nflush(fx), flushes + 1);
        /* A change while not healthy flushes nothing more. */
        assert_int_equal(uc__track_set_nodes(fx->t, nodes, n), UC_OK);
        wait_healthy(fx, healthy_count(fx) + 1, 5000);
        assert_int_equal(nflush(fx), flushes + 1);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_config_refused),
        T(becomes_healthy_after_heartbeat),
        T(writes_under_prefix_arrive),
        T(empty_prefix_tracks_every_key),
        T(publish_on_channel_ignored),
        T(flushall_is_null_flush),
        T(killed_subscriber_is_lost_then_healthy),
        T(killed_heartbeat_connection_is_lost),
        T(stopped_server_is_late_heartbeat),
        T(restarted_server_flushes_then_healthy),
        T(password_auth),
        T(wrong_password_never_healthy),
        T(acl_user_and_database),
        T(acl_without_tracking_fails),
        T(two_instances),
        T(stop_when_healthy_flushes_last),
        T(stop_is_bounded),
        T(heartbeat_lag_figures),
        T(barrier_delivers_what_came_before),
        cmocka_unit_test(pick_tag_fits),
        T(two_servers_as_two_nodes),
        T(set_nodes_same_or_changed),
        T(cluster_one_node_per_primary),
    };

    /* Every fault here is one a real deployment meets; a SIGPIPE from the
     * channel's writes would end this process, which is part of the test. */
    signal(SIGPIPE, SIG_DFL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
