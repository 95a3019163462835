/* SPDX-License-Identifier: MIT */
/*
 * Acceptance tests of the coherence core (DESIGN.md, "Coherence model"):
 * real utxoiq-api processes on one shared database (a SQLite file, or one
 * PostgreSQL database under UC_TEST_DB=postgresql) and one real
 * redis-server, driven over HTTP and redis-cli only (hiredis for the raw
 * bytes redis-cli cannot carry). A "stale read" is a GET of an insight's
 * stats that started after a rating write was acknowledged (HTTP 200) and
 * still shows the totals from before that write. What is promised, and
 * asserted here:
 *
 *  - healthy: no stale read anywhere, on any instance;
 *  - a fault on Redis (writes paused, out of memory, killed): no read on
 *    any instance is stale more than STALE_BOUND_MS after the write's
 *    answer, and none once the fault is over;
 *  - a restart of the service or of Redis (even one that reloads an old
 *    snapshot): no stale read at all;
 *  - an entry that is not what it claims (wrong type, another entry's
 *    bytes, garbage, 50 MB) is never served: the reader gets its own
 *    totals, as JSON, and the entry is replaced;
 *  - the in-process memory backend says it is per-process, and still
 *    converges across instances within the bound;
 *  - the near cache's channel killed, Redis hung, flushed and restarted
 *    in one randomized run: within each fault's window no read is stale
 *    more than STALE_BOUND_MS after the write's answer, and outside the
 *    windows no more than the near cache's invalidation lag.
 *
 * Every scenario prints "FIGURE <scenario> ..." lines (reads, stale reads,
 * max staleness) before it asserts, so that a failing run still yields its
 * figures. Services run with UTXOCACHE_LOG_TAIL_MS (how often an instance
 * tails the invalidation log) and short Redis timeouts; every wait is
 * bounded, and the only time bounds asserted are derived from those
 * settings and from the fault's own length. Built twice: test_coherence
 * (short) and, with UC_FAULTS_LONG, faults_coherence (a longer randomized
 * run).
 */
#include "api_test.h"

#include <curl/curl.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/wait.h>

#include "../faults/fault_load.h"
#include "pg_server.h"
#include "redis_server.h"
#include "util.h"

#ifndef UC_FAULTS_LONG
#define UC_FAULTS_LONG 0
#endif

/* Configured on every service under test. */
#define LOG_TAIL_MS 100
#define REDIS_CONNECT_MS 150
#define REDIS_COMMAND_MS 150
#define REDIS_ACQUIRE_MS 100 /* the library's default */
/* Reconnect backoff cap and breaker cooldown: how soon an instance uses a
 * Redis that answers again. The library's defaults, set explicitly so that
 * the window derived from them stays right if the defaults move. */
#define BACKOFF_MAX_MS 2000
#define BREAKER_COOLDOWN_MS 1000
#define RECOVERY_MS (BACKOFF_MAX_MS + BREAKER_COOLDOWN_MS)
/* The promise: under a single fault, stale for at most this long. */
#define STALE_BOUND_MS 1000
/* Reads after a fault ended must be fresh once the writer's instance and
 * the reader's have had two log-tail intervals past the write. */
#define AFTER_FAULT_GRACE_MS (2 * LOG_TAIL_MS)
/* A loaded 2-core machine under sanitizers. */
#define SLACK_MS 2500
/* A write may wait on Redis a few times (several tries, a reconnect). */
#define REDIS_BOUND_MS                                                         \
    (3 * (REDIS_CONNECT_MS + REDIS_COMMAND_MS + REDIS_ACQUIRE_MS) + SLACK_MS)

#define RESTART_PAUSE_MS 3000 /* restart_with_pending */
#define PAUSE_MS 2000         /* two_instances_pause */
#define OOM_MS 2000           /* two_instances_oom: how long it stays full */
#define AFTER_MS 1500         /* reads after a fault ended */
#define READ_GAP_MS 10
#define WARM_WAIT_MS 5000
#define BIG_VALUE_OFFSET 52428799L      /* SETRANGE offset: a 50 MB value */
#define RSS_GROWTH_MAX_KB (20L * 1024L) /* over 8 reads of it */
#define BIG_READS 8

/* Redis is killed at RW_KILL_PCT % of the randomized run and restarted at
 * RW_UP_PCT %; the rest after the recovery window is healthy again. */
#define RW_KILL_PCT 20
#define RW_UP_PCT 37
#if UC_FAULTS_LONG
#define RW_MS 30000
#define RW_WRITERS 4
#define RW_READERS 4
#define RW_KEYS_PER_WRITER 60
#else
#define RW_MS 12000
#define RW_WRITERS 3
#define RW_READERS 3
#define RW_KEYS_PER_WRITER 25
#endif
#define RW_MAX_OPS 100000

/* The near-cache fault run: four faults one after the other, each in a
 * window of its own, with NF_GAP_MS of healthy load before each and after
 * the last (reads there may lag by the invalidation lag, no more). Redis is
 * hung for NF_STOP_MS and down for NF_DOWN_MS; the writes are spread over
 * NF_MS, the sum of the windows and gaps plus NF_SLACK_MS for the commands
 * that inject the faults, and the load is stopped NF_TAIL_MS after the
 * last window, however long the steps took. */
#define NF_STOP_MS 400
#if UC_FAULTS_LONG
#define NF_GAP_MS 3000
#define NF_DOWN_MS 3000
#define NF_WRITERS 4
#define NF_READERS 4
#define NF_KEYS_PER_WRITER 80
#else
#define NF_GAP_MS 500
#define NF_DOWN_MS 1000
#define NF_WRITERS 3
#define NF_READERS 3
#define NF_KEYS_PER_WRITER 40
#endif
#define NF_SLACK_MS 1500
/* Reads made after the last window, before the load is stopped. */
#define NF_TAIL_MS 500
#define NF_MS                                                                  \
    (5 * NF_GAP_MS + 4 * STALE_BOUND_MS + NF_STOP_MS + NF_DOWN_MS +            \
     2 * RECOVERY_MS + NF_SLACK_MS)

#define MAX_INSTANCES 3
#define BODY_CAP (64 * 1024)
#define KEYS_MAX 16

#define FIGURE(name, fmtstr, ...)                                              \
    do {                                                                       \
        printf("FIGURE %s " fmtstr "\n", name, __VA_ARGS__);                   \
        fflush(stdout);                                                        \
    } while (0)

/* A count that must be zero; names it and its value when it is not. */
#define assert_none(what, v)                                                   \
    do {                                                                       \
        size_t n_ = (size_t)(v);                                               \
        if (n_ != 0) {                                                         \
            fprintf(stderr, "%s: %zu, want 0\n", what, n_);                    \
        }                                                                      \
        assert_int_equal(n_, 0);                                               \
    } while (0)

/* ---- the world a scenario runs in ---------------------------------------- */

/*
 * One test's servers: the instances it started, its redis-server, its
 * database. Lives in the cmocka state, so the teardown stops all of it
 * even when an assertion ended the test half-way.
 */
typedef struct {
    uc_test_api_t api[MAX_INSTANCES];
    CURL *curl[MAX_INSTANCES]; /* reads, one keep-alive handle each */
    int napi;
    uc_test_redis_t redis;
    int redis_started;
    char dbdir[512];
    char db_url[1024];
} world_t;

static int world_setup(void **state)
{
    world_t *w = calloc(1, sizeof(*w));
    *state = w;
    return w != NULL ? 0 : -1;
}

static int world_teardown(void **state)
{
    world_t *w = *state;
    for (int i = 0; i < w->napi; i++) {
        uc_test_api_destroy(&w->api[i]);
        if (w->curl[i] != NULL) {
            curl_easy_cleanup(w->curl[i]);
        }
    }
    if (w->redis_started) {
        uc_test_redis_stop(&w->redis);
    }
    if (w->dbdir[0] != '\0') {
        uc_test_rmtree(w->dbdir);
    }
    free(w);
    return 0;
}

/* The database every instance of the test shares. */
static void world_db(world_t *w)
{
    if (uc_test_pg_selected()) {
        if (!uc_test_pg_available()) {
            skip();
        }
        assert_int_equal(uc_test_pg_fresh_db(w->db_url, sizeof(w->db_url)), 0);
        FIGURE("database", "%s", "postgresql");
        return;
    }
    assert_int_equal(uc_test_mkdtemp(w->dbdir, sizeof(w->dbdir), "coh"), 0);
    fmt(w->db_url, sizeof(w->db_url), "sqlite:%s/shared.db", w->dbdir);
    FIGURE("database", "%s", "sqlite");
}

static void world_redis(world_t *w, const char *extra_conf)
{
    assert_int_equal(uc_test_redis_start(&w->redis, extra_conf), 0);
    w->redis_started = 1;
}

/* Starts one more instance on the world's database (and on its Redis when
 * with_redis); returns its index. */
static int instance(world_t *w, int with_redis)
{
    char redis_url[80], tail[64], cmd_to[64], conn_to[64], backoff[64];
    char cooldown[64];
    const char *env[10];
    size_t n = 0;
    assert_true(w->napi < MAX_INSTANCES);
    if (with_redis) {
        fmt(redis_url, sizeof(redis_url), "REDIS_URL=redis://127.0.0.1:%d/0",
            w->redis.port);
        env[n++] = redis_url;
    }
    fmt(tail, sizeof(tail), "UTXOCACHE_LOG_TAIL_MS=%d", LOG_TAIL_MS);
    fmt(cmd_to, sizeof(cmd_to), "REDIS_COMMAND_TIMEOUT_MS=%d",
        REDIS_COMMAND_MS);
    fmt(conn_to, sizeof(conn_to), "REDIS_CONNECT_TIMEOUT_MS=%d",
        REDIS_CONNECT_MS);
    fmt(backoff, sizeof(backoff), "UTXOCACHE_BACKOFF_MAX_MS=%d",
        BACKOFF_MAX_MS);
    fmt(cooldown, sizeof(cooldown), "UTXOCACHE_BREAKER_COOLDOWN_MS=%d",
        BREAKER_COOLDOWN_MS);
    env[n++] = tail;
    env[n++] = cmd_to;
    env[n++] = conn_to;
    env[n++] = backoff;
    env[n++] = cooldown;
    env[n++] = "UTXOIQ_ACCESS_LOG=0";
    env[n] = NULL;
    int i = w->napi++;
    assert_int_equal(uc_test_api_start(&w->api[i], w->db_url, env), 0);
    return i;
}

/* SIGKILL of an instance this test started, and a bounded reap. */
static void api_kill(uc_test_api_t *a)
{
    int status;
    if (a->pid <= 0) {
        return;
    }
    kill(a->pid, SIGKILL);
    uint64_t deadline = uc_test_now_ms() + 5000;
    while (uc_test_now_ms() < deadline) {
        pid_t p = waitpid(a->pid, &status, WNOHANG);
        if (p == a->pid || (p < 0 && errno == ECHILD)) {
            break;
        }
        uc_test_sleep_ms(5);
    }
    a->pid = 0;
}

/* Stops an instance with SIGTERM and prints its exit status; the caller
 * asserts it is 0 (after its other figures are out). */
static int stop_instance(world_t *w, int i, const char *scenario)
{
    int rc = uc_test_api_stop(&w->api[i]);
    FIGURE(scenario, "instance=%d exit_status=%d", i, rc);
    return rc;
}

/* A fresh insight id. The counter has a fixed width, so no id of a run is
 * a substring of another (keys are found by the id they contain). */
static void coh_id(char *buf, size_t cap, const char *tag)
{
    static unsigned n;
    snprintf(buf, cap, "coh-%s-%ld-%04u", tag, (long)getpid(), ++n);
}

/* A key of a new user: every write is a new rating, never an update. */
static void new_key(world_t *w, int i, char *key, size_t cap)
{
    char user[64];
    uniq(user, sizeof(user), "cohuser");
    assert_int_equal(uc_test_api_key(&w->api[i], user, "user", key, cap), 0);
}

/* ---- HTTP ---------------------------------------------------------------- */

/* One GET of an insight's stats as the client saw it. */
typedef struct {
    uint64_t start_us, end_us;
    long status;     /* 0: no answer */
    int hit;         /* X-Cache: HIT */
    int json_ct;     /* Content-Type: application/json */
    int own;         /* the body is JSON naming the insight asked for */
    long long total; /* total_ratings; -1 when absent or not JSON */
    size_t len;      /* body bytes (counted past the cap) */
} rd_t;

typedef struct {
    char *p;
    size_t kept;
    size_t len;
    int hit;
    int json_ct;
} reply_t;

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    reply_t *r = arg;
    size_t len = sz * n;
    size_t take = len;
    if (r->kept + take > BODY_CAP) {
        take = BODY_CAP - r->kept;
    }
    memcpy(r->p + r->kept, p, take);
    r->kept += take;
    r->p[r->kept] = '\0';
    r->len += len;
    return len;
}

/* 1 when the header line is "name: value..." (value as a prefix). */
static int header_is(const char *line, size_t len, const char *name,
                     const char *value)
{
    size_t nl = strlen(name);
    size_t vl = strlen(value);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') {
        return 0;
    }
    size_t i = nl + 1;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) {
        i++;
    }
    return len - i >= vl && strncasecmp(line + i, value, vl) == 0;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    reply_t *r = arg;
    size_t len = sz * n;
    r->hit |= header_is(p, len, "X-Cache", "HIT");
    r->json_ct |= header_is(p, len, "Content-Type", "application/json");
    return len;
}

/*
 * GET of the stats of insight on instance i, alternating between the two
 * routes that serve them (?insight_id= and /{id}). The body is kept up to
 * BODY_CAP bytes; a stats answer is far smaller.
 */
static rd_t stats_read(world_t *w, int i, const char *insight)
{
    static unsigned turn;
    char url[512];
    rd_t r;
    reply_t rep = {NULL, 0, 0, 0, 0};
    memset(&r, 0, sizeof(r));
    r.total = -1;
    if (w->curl[i] == NULL) {
        w->curl[i] = curl_easy_init();
    }
    rep.p = malloc(BODY_CAP + 1);
    if (w->curl[i] == NULL || rep.p == NULL) {
        free(rep.p);
        return r;
    }
    rep.p[0] = '\0';
    CURL *c = w->curl[i];
    curl_easy_reset(c);
    if (turn++ % 2 == 0) {
        fmt(url, sizeof(url), "http://127.0.0.1:%d/api/v1/feedback/stats/%s",
            w->api[i].port, insight);
    } else {
        fmt(url, sizeof(url),
            "http://127.0.0.1:%d/api/v1/feedback/stats?insight_id=%s",
            w->api[i].port, insight);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &rep);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &rep);
    r.start_us = uc_test_now_us();
    CURLcode rc = curl_easy_perform(c);
    r.end_us = uc_test_now_us();
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    }
    r.hit = rep.hit;
    r.json_ct = rep.json_ct;
    r.len = rep.len;
    json_t *j =
        rep.len == rep.kept ? json_loadb(rep.p, rep.kept, 0, NULL) : NULL;
    json_t *t = json_object_get(j, "total_ratings");
    json_t *id = json_object_get(j, "insight_id");
    if (json_is_integer(t)) {
        r.total = (long long)json_integer_value(t);
    }
    r.own = json_is_string(id) && strcmp(json_string_value(id), insight) == 0;
    json_decref(j);
    free(rep.p);
    return r;
}

/* 1 when a read answered 200 with the insight's own JSON showing total. */
static int read_right(const rd_t *r, long long total)
{
    return r->status == 200 && r->json_ct && r->own && r->total == total;
}

/* One rating write as the client saw it. */
typedef struct {
    long status;
    uint64_t start_us, end_us; /* end: when the answer arrived */
} wr_t;

static wr_t rate_as(world_t *w, int i, const char *key, const char *insight,
                    int rating)
{
    char body[256];
    uc_test_http_t h;
    wr_t r = {0, 0, 0};
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":%d}", insight,
        rating);
    r.start_us = uc_test_now_us();
    int rc = uc_test_http(&w->api[i], "POST", "/api/v1/feedback/rate", key,
                          body, strlen(body), NULL, &h);
    r.end_us = uc_test_now_us();
    if (rc == 0) {
        r.status = h.status;
        if (h.status != 200) {
            fprintf(stderr, "rate: %ld %s\n", h.status, h.body);
        }
        uc_test_http_release(&h);
    }
    return r;
}

static double ms_between(uint64_t from_us, uint64_t to_us)
{
    return to_us >= from_us ? (double)(to_us - from_us) / 1000.0
                            : -(double)(from_us - to_us) / 1000.0;
}

/* Reads insight on instance i until one is a HIT (bounded); every read must
 * answer 200 with its own `total`. A precondition of most scenarios. */
static void warm(world_t *w, int i, const char *insight, long long total)
{
    uint64_t deadline = uc_test_now_ms() + WARM_WAIT_MS;
    while (uc_test_now_ms() < deadline) {
        rd_t r = stats_read(w, i, insight);
        if (!read_right(&r, total)) {
            fail_msg("warm '%s' on instance %d: status %ld total %lld "
                     "(want 200, %lld)",
                     insight, i, r.status, r.total, total);
        }
        if (r.hit) {
            return;
        }
        uc_test_sleep_ms(20);
    }
    fail_msg("warm '%s' on instance %d: no X-Cache HIT within %d ms", insight,
             i, WARM_WAIT_MS);
}

/* ---- judging reads around one write -------------------------------------- */

/*
 * Reads of an insight that had `before` ratings until a write acknowledged
 * at ack_us made it `after`. A read that started before the ack may show
 * either; one that started after it and shows `before` is stale, by the
 * time between the ack and its start.
 */
typedef struct {
    size_t reads, ok, wrong, hits;
    size_t stale;             /* started after the ack, showed `before` */
    size_t stale_beyond;      /* ... more than STALE_BOUND_MS after it */
    size_t stale_after_fault; /* ... after the fault was over */
    double max_staleness_ms;
    uint64_t first_fresh_us; /* start of the first fresh read after the ack */
} tally_t;

static void judge(tally_t *t, const rd_t *r, long long before, long long after,
                  uint64_t ack_us, uint64_t after_fault_us)
{
    t->reads++;
    if (r->status != 200) {
        return;
    }
    t->ok++;
    t->hits += r->hit != 0;
    if (!r->json_ct || !r->own || (r->total != before && r->total != after)) {
        t->wrong++;
        return;
    }
    if (r->start_us < ack_us) {
        return;
    }
    if (r->total == after) {
        if (t->first_fresh_us == 0) {
            t->first_fresh_us = r->start_us;
        }
        return;
    }
    double ms = ms_between(ack_us, r->start_us);
    t->stale++;
    t->max_staleness_ms = ms > t->max_staleness_ms ? ms : t->max_staleness_ms;
    t->stale_beyond += ms > (double)STALE_BOUND_MS;
    t->stale_after_fault += r->start_us >= after_fault_us;
}

/* Reads on instance i, READ_GAP_MS apart, until until_us; judged. */
static void read_until(world_t *w, int i, const char *insight,
                       uint64_t until_us, tally_t *t, long long before,
                       long long after, uint64_t ack_us,
                       uint64_t after_fault_us)
{
    while (uc_test_now_us() < until_us) {
        rd_t r = stats_read(w, i, insight);
        judge(t, &r, before, after, ack_us, after_fault_us);
        uc_test_sleep_ms(READ_GAP_MS);
    }
}

static void tally_figure(const char *scenario, const tally_t *t,
                         const wr_t *write, uint64_t ack_us)
{
    double converge =
        t->first_fresh_us != 0 ? ms_between(ack_us, t->first_fresh_us) : -1.0;
    FIGURE(scenario,
           "reads=%zu reads_200=%zu stale_reads=%zu max_staleness_ms=%.1f "
           "stale_beyond_%dms=%zu stale_after_fault=%zu wrong=%zu hits=%zu "
           "first_fresh_after_ms=%.1f write_status=%ld write_ms=%.1f",
           t->reads, t->ok, t->stale, t->max_staleness_ms, STALE_BOUND_MS,
           t->stale_beyond, t->stale_after_fault, t->wrong, t->hits, converge,
           write->status, ms_between(write->start_us, write->end_us));
}

/* ---- Redis --------------------------------------------------------------- */

/* redis-cli <command> that must answer `want` (redis-cli exits 0 on error
 * replies too, so the output is what counts). */
static void cli_expect(world_t *w, const char *command, const char *want)
{
    char out[512] = "";
    int rc = uc_test_redis_cli(&w->redis, NULL, command, out, sizeof(out));
    if (rc != 0 || strcmp(out, want) != 0) {
        fail_msg("redis-cli %s: exit %d, '%s' (want '%s')", command, rc, out,
                 want);
    }
}

static redisContext *rconnect(world_t *w)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", w->redis.port, tv);
    if (c == NULL || c->err != 0) {
        fail_msg("connect to redis: %s", c != NULL ? c->errstr : "no memory");
    }
    redisSetTimeout(c, tv);
    return c;
}

/* A field of INFO <section> as an integer; -1 when absent. */
static long long redis_info(world_t *w, const char *section, const char *field)
{
    redisContext *c = rconnect(w);
    redisReply *r = redisCommand(c, "INFO %s", section);
    long long v = -1;
    char name[80];
    fmt(name, sizeof(name), "\n%s:", field);
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, name);
        if (p != NULL) {
            v = strtoll(p + strlen(name), NULL, 10);
        }
    }
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/*
 * The Redis key holding the cached entry of insight: among the keys whose
 * name contains the id (redis-cli --scan), the one that takes the most
 * memory; other keys naming it (counters, markers) are small. Nothing else
 * about the key format is assumed. Fails the test when there is none.
 */
static void entry_key(world_t *w, const char *insight, char *key, size_t cap)
{
    char cmd[512], line[1024];
    long long best = -1;
    fmt(cmd, sizeof(cmd),
        "redis-cli -h 127.0.0.1 -p %d --scan --pattern '*%s*' 2>/dev/null",
        w->redis.port, insight);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    redisContext *c = rconnect(w);
    while (fgets(line, sizeof(line), p) != NULL) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (n == 0) {
            continue;
        }
        redisReply *r = redisCommand(c, "MEMORY USAGE %b", line, n);
        if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > best &&
            n < cap) {
            best = r->integer;
            memcpy(key, line, n + 1);
        }
        freeReplyObject(r);
    }
    redisFree(c);
    pclose(p);
    if (best < 0) {
        fail_msg("no Redis key contains '%s'", insight);
    }
}

/* A command through hiredis (binary-safe arguments) whose reply must be
 * of type `type`; returns it (the caller frees it). */
static redisReply *rcmd(redisContext *c, int type, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    redisReply *r = redisvCommand(c, f, ap);
    va_end(ap);
    if (r == NULL || r->type != type) {
        fail_msg("redis %s: %s", f,
                 r == NULL                      ? c->errstr
                 : r->type == REDIS_REPLY_ERROR ? r->str
                                                : "unexpected reply type");
    }
    return r;
}

/* ---- processes ----------------------------------------------------------- */

/* VmRSS of a process in kB, or -1. */
static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    long v = -1;
    fmt(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* 1 when the server log of instance i contains text. */
static int log_contains(const uc_test_api_t *a, const char *text)
{
    char line[2048];
    int found = 0;
    FILE *f = fopen(a->log, "r");
    if (f == NULL) {
        return 0;
    }
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, text) != NULL;
    }
    fclose(f);
    return found;
}

/* ---- 1. a write whose invalidation failed, then a crash ------------------ */

static void test_restart_with_pending(void **state)
{
    world_t *w = *state;
    char id[64], k1[128], k2[128];
    tally_t t;
    memset(&t, 0, sizeof(t));
    world_db(w);
    world_redis(w, NULL);
    int a = instance(w, 1);
    new_key(w, a, k1, sizeof(k1));
    new_key(w, a, k2, sizeof(k2));
    coh_id(id, sizeof(id), "rp");
    assert_int_equal(rate_as(w, a, k1, id, 3).status, 200);
    warm(w, a, id, 1);

    cli_expect(w, "CLIENT PAUSE 3000 WRITE", "OK");
    uint64_t paused_us = uc_test_now_us();
    wr_t wr = rate_as(w, a, k2, id, 5);
    api_kill(&w->api[a]);
    uint64_t killed_us = uc_test_now_us();
    cli_expect(w, "CLIENT UNPAUSE", "OK");

    /* A new instance on the same database and Redis: from its first read
     * on, the write is visible. */
    int b = instance(w, 1);
    for (int i = 0; i < 20; i++) {
        rd_t r = stats_read(w, b, id);
        judge(&t, &r, 1, 2, wr.end_us, 0);
        uc_test_sleep_ms(25);
    }
    tally_figure("restart_with_pending", &t, &wr, wr.end_us);
    FIGURE("restart_with_pending",
           "acked_during_pause=%s killed_after_ack_ms=%.1f",
           wr.end_us < paused_us + RESTART_PAUSE_MS * 1000u ? "yes" : "no",
           ms_between(wr.end_us, killed_us));
    int exit_b = stop_instance(w, b, "restart_with_pending");

    assert_int_equal(wr.status, 200);
    /* Answered within the configured Redis timeouts while Redis still
     * refused writes: the invalidation cannot have gone through. */
    assert_true(wr.end_us < paused_us + RESTART_PAUSE_MS * 1000u);
    assert_true(ms_between(wr.start_us, wr.end_us) <= (double)REDIS_BOUND_MS);
    assert_int_equal(t.ok, t.reads);
    assert_none("wrong", t.wrong);
    assert_none("stale_reads", t.stale);
    assert_int_equal(exit_b, 0);
}

/* ---- 2. Redis restarted from an old snapshot ----------------------------- */

static void test_redis_rdb_restart(void **state)
{
    world_t *w = *state;
    char id[64], k1[128], k2[128], key[512], cmd[600], out[64];
    tally_t t;
    memset(&t, 0, sizeof(t));
    world_db(w);
    /* The support config saves nothing on its own ("save" is empty) and
     * keeps dump.rdb in the server's directory: SAVE below is the only
     * snapshot, and a restart in the same directory loads it. */
    world_redis(w, NULL);
    int a = instance(w, 1);
    new_key(w, a, k1, sizeof(k1));
    new_key(w, a, k2, sizeof(k2));
    coh_id(id, sizeof(id), "rdb");
    assert_int_equal(rate_as(w, a, k1, id, 2).status, 200);
    warm(w, a, id, 1);
    entry_key(w, id, key, sizeof(key));
    cli_expect(w, "SAVE", "OK");

    wr_t wr = rate_as(w, a, k2, id, 4);
    assert_int_equal(wr.status, 200);
    /* The service is frozen while Redis restarts and the test looks at the
     * reloaded dataset, so that what it finds is what the snapshot held,
     * not what the service did about it. */
    assert_int_equal(kill(w->api[a].pid, SIGSTOP), 0);
    uc_test_redis_kill(&w->redis);
    int restarted = uc_test_redis_restart(&w->redis);
    fmt(cmd, sizeof(cmd), "EXISTS '%s'", key);
    int cli_rc = uc_test_redis_cli(&w->redis, NULL, cmd, out, sizeof(out));
    assert_int_equal(kill(w->api[a].pid, SIGCONT), 0);
    assert_int_equal(restarted, 0);
    assert_int_equal(cli_rc, 0);
    FIGURE("redis_rdb_restart", "old_entry_reloaded=%s", out);
    /* The restarted server really holds the entry from before the write. */
    assert_string_equal(out, "1");

    for (int i = 0; i < 30; i++) {
        rd_t r = stats_read(w, a, id);
        judge(&t, &r, 1, 2, wr.end_us, 0);
        uc_test_sleep_ms(50);
    }
    tally_figure("redis_rdb_restart", &t, &wr, wr.end_us);
    int exit_a = stop_instance(w, a, "redis_rdb_restart");
    assert_int_equal(t.ok, t.reads);
    assert_none("wrong", t.wrong);
    assert_none("stale_reads", t.stale);
    assert_int_equal(exit_a, 0);
}

/* ---- 3 and 4. two instances, one Redis refusing writes ------------------- */

/* The assertions shared by the two-instance fault scenarios. */
static void assert_bounded(const tally_t *t, const wr_t *wr,
                           uint64_t fault_end_us)
{
    assert_int_equal(wr->status, 200);
    assert_true(ms_between(wr->start_us, wr->end_us) <= (double)REDIS_BOUND_MS);
    /* The write was answered while the fault lasted: the scenario tests
     * the fault, not the recovery from it. */
    assert_true(wr->end_us < fault_end_us);
    assert_int_equal(t->ok, t->reads);
    assert_none("wrong", t->wrong);
    assert_none("stale_beyond_bound", t->stale_beyond);
    assert_none("stale_after_fault", t->stale_after_fault);
}

static void test_two_instances_pause(void **state)
{
    world_t *w = *state;
    char id[64], k1[128], k2[128], cmd[64];
    tally_t t;
    memset(&t, 0, sizeof(t));
    world_db(w);
    world_redis(w, NULL);
    int a = instance(w, 1);
    int b = instance(w, 1);
    new_key(w, a, k1, sizeof(k1));
    new_key(w, a, k2, sizeof(k2));
    coh_id(id, sizeof(id), "pause");
    assert_int_equal(rate_as(w, a, k1, id, 1).status, 200);
    warm(w, a, id, 1);
    warm(w, b, id, 1);

    fmt(cmd, sizeof(cmd), "CLIENT PAUSE %d WRITE", PAUSE_MS);
    cli_expect(w, cmd, "OK");
    /* Measured after redis-cli returned: the pause ends no later. */
    uint64_t fault_end = uc_test_now_us() + PAUSE_MS * 1000u;
    wr_t wr = rate_as(w, a, k2, id, 5);
    uint64_t after_fault = (fault_end > wr.end_us ? fault_end : wr.end_us) +
                           AFTER_FAULT_GRACE_MS * 1000u;
    read_until(w, b, id, fault_end + AFTER_MS * 1000u, &t, 1, 2, wr.end_us,
               after_fault);
    cli_expect(w, "CLIENT UNPAUSE", "OK");
    tally_figure("two_instances_pause", &t, &wr, wr.end_us);
    int exit_a = stop_instance(w, a, "two_instances_pause");
    int exit_b = stop_instance(w, b, "two_instances_pause");
    assert_bounded(&t, &wr, fault_end);
    assert_int_equal(exit_a, 0);
    assert_int_equal(exit_b, 0);
}

static void test_two_instances_oom(void **state)
{
    world_t *w = *state;
    char id[64], k1[128], k2[128], cmd[96], out[512];
    tally_t t;
    memset(&t, 0, sizeof(t));
    world_db(w);
    world_redis(w, "maxmemory-policy noeviction\n");
    int a = instance(w, 1);
    int b = instance(w, 1);
    new_key(w, a, k1, sizeof(k1));
    new_key(w, a, k2, sizeof(k2));
    coh_id(id, sizeof(id), "oom");
    assert_int_equal(rate_as(w, a, k1, id, 3).status, 200);
    warm(w, a, id, 1);
    warm(w, b, id, 1);

    /* 1 MB above what the server uses now, then filled past it. */
    long long used = redis_info(w, "memory", "used_memory");
    assert_true(used > 0);
    fmt(cmd, sizeof(cmd), "CONFIG SET maxmemory %lld", used + 1048576LL);
    cli_expect(w, cmd, "OK");
    cli_expect(w, "DEBUG POPULATE 20000 filler 100", "OK");
    assert_int_equal(uc_test_redis_cli_reply(&w->redis, NULL, "SET cohprobe x",
                                             out, sizeof(out)),
                     0);
    if (strstr(out, "OOM") == NULL) {
        fail_msg("redis not out of memory: SET answered '%s'", out);
    }
    uint64_t oom_us = uc_test_now_us();
    wr_t wr = rate_as(w, a, k2, id, 1);
    read_until(w, b, id, oom_us + OOM_MS * 1000u, &t, 1, 2, wr.end_us,
               UINT64_MAX);
    cli_expect(w, "CONFIG SET maxmemory 0", "OK");
    uint64_t fault_end = uc_test_now_us();
    uint64_t after_fault = (fault_end > wr.end_us ? fault_end : wr.end_us) +
                           AFTER_FAULT_GRACE_MS * 1000u;
    read_until(w, b, id, fault_end + AFTER_MS * 1000u, &t, 1, 2, wr.end_us,
               after_fault);
    tally_figure("two_instances_oom", &t, &wr, wr.end_us);
    int exit_a = stop_instance(w, a, "two_instances_oom");
    int exit_b = stop_instance(w, b, "two_instances_oom");
    assert_bounded(&t, &wr, fault_end);
    assert_int_equal(exit_a, 0);
    assert_int_equal(exit_b, 0);
}

/* ---- 5. an entry of the wrong type --------------------------------------- */

static void test_poisoned_entry(void **state)
{
    world_t *w = *state;
    char id[64], k1[128], k2[128], key[512], cmd[600];
    size_t reads = 0, right = 0;
    tally_t t;
    memset(&t, 0, sizeof(t));
    world_db(w);
    world_redis(w, NULL);
    int a = instance(w, 1);
    new_key(w, a, k1, sizeof(k1));
    new_key(w, a, k2, sizeof(k2));
    coh_id(id, sizeof(id), "poison");
    assert_int_equal(rate_as(w, a, k1, id, 4).status, 200);
    warm(w, a, id, 1);
    entry_key(w, id, key, sizeof(key));
    /* In one step, so nothing can refill the key in between. */
    redisContext *c = rconnect(w);
    freeReplyObject(rcmd(c, REDIS_REPLY_INTEGER, "EVAL %s 1 %s",
                         "redis.call('DEL', KEYS[1]); "
                         "return redis.call('LPUSH', KEYS[1], 'a')",
                         key));
    redisFree(c);

    /* Answered from the database, and the poisoned key replaced: a later
     * read is a HIT again (bounded wait). */
    uint64_t t0 = uc_test_now_us();
    uint64_t hit_us = 0;
    uint64_t deadline = t0 + WARM_WAIT_MS * 1000u;
    while (hit_us == 0 && uc_test_now_us() < deadline) {
        rd_t r = stats_read(w, a, id);
        reads++;
        right += (size_t)read_right(&r, 1);
        if (r.hit && read_right(&r, 1)) {
            hit_us = r.start_us;
        }
        uc_test_sleep_ms(20);
    }
    fmt(cmd, sizeof(cmd), "TYPE '%s'", key);
    char type[64] = "";
    uc_test_redis_cli(&w->redis, NULL, cmd, type, sizeof(type));

    /* Writes still invalidate that entry. */
    wr_t wr = rate_as(w, a, k2, id, 2);
    for (int i = 0; i < 10; i++) {
        rd_t r = stats_read(w, a, id);
        judge(&t, &r, 1, 2, wr.end_us, 0);
        uc_test_sleep_ms(20);
    }
    FIGURE("poisoned_entry",
           "reads=%zu right=%zu hit_again=%s hit_after_ms=%.1f "
           "key_type_after=%s",
           reads, right, hit_us != 0 ? "yes" : "no",
           hit_us != 0 ? ms_between(t0, hit_us) : -1.0, type);
    tally_figure("poisoned_entry_write", &t, &wr, wr.end_us);
    int exit_a = stop_instance(w, a, "poisoned_entry");
    assert_int_equal(right, reads);
    assert_true(hit_us != 0);
    assert_int_equal(wr.status, 200);
    assert_int_equal(t.ok, t.reads);
    assert_none("wrong", t.wrong);
    assert_none("stale_reads", t.stale);
    assert_int_equal(exit_a, 0);
}

/* ---- 6. another entry's bytes, garbage, a huge value --------------------- */

static void test_foreign_and_garbage_values(void **state)
{
    world_t *w = *state;
    char x[64], y[64], kx[512], ky[512];
    char k[3][128];
    size_t foreign = 0, wrong_foreign = 0, wrong_garbage = 0, not_json = 0;
    size_t wrong_big = 0;
    world_db(w);
    world_redis(w, NULL);
    int a = instance(w, 1);
    for (int i = 0; i < 3; i++) {
        new_key(w, a, k[i], sizeof(k[i]));
    }
    coh_id(x, sizeof(x), "fx");
    coh_id(y, sizeof(y), "fy");
    assert_int_equal(rate_as(w, a, k[0], x, 2).status, 200);
    assert_int_equal(rate_as(w, a, k[1], y, 5).status, 200);
    assert_int_equal(rate_as(w, a, k[2], y, 5).status, 200);
    warm(w, a, x, 1);
    warm(w, a, y, 2);
    entry_key(w, x, kx, sizeof(kx));
    entry_key(w, y, ky, sizeof(ky));
    assert_string_not_equal(kx, ky);

    /* Y's entry, byte for byte and whatever its type, at X's key. */
    redisContext *c = rconnect(w);
    redisReply *d = rcmd(c, REDIS_REPLY_STRING, "DUMP %s", ky);
    freeReplyObject(rcmd(c, REDIS_REPLY_STATUS, "RESTORE %s 0 %b REPLACE", kx,
                         d->str, d->len));
    freeReplyObject(d);
    for (int i = 0; i < 5; i++) {
        rd_t r = stats_read(w, a, x);
        foreign += r.total == 2 || (r.status == 200 && !r.own);
        wrong_foreign += !read_right(&r, 1);
    }

    freeReplyObject(rcmd(c, REDIS_REPLY_STATUS, "SET %s %s", kx, "not json"));
    for (int i = 0; i < 5; i++) {
        rd_t r = stats_read(w, a, x);
        not_json += r.status == 200 && !r.json_ct;
        wrong_garbage += !read_right(&r, 1);
    }

    /* A 50 MB value at X's key (after whatever the key holds now). */
    redisReply *sr =
        rcmd(c, REDIS_REPLY_INTEGER, "SETRANGE %s %ld x", kx, BIG_VALUE_OFFSET);
    long long big_len = sr->integer;
    freeReplyObject(sr);
    redisFree(c);
    long rss0 = rss_kb(w->api[a].pid);
    long rss_max = rss0;
    size_t max_body = 0;
    for (int i = 0; i < BIG_READS; i++) {
        rd_t r = stats_read(w, a, x);
        wrong_big += !read_right(&r, 1);
        max_body = r.len > max_body ? r.len : max_body;
        long now = rss_kb(w->api[a].pid);
        rss_max = now > rss_max ? now : rss_max;
    }
    FIGURE("foreign_value", "reads=5 foreign_reads=%zu wrong=%zu", foreign,
           wrong_foreign);
    FIGURE("garbage_value", "reads=5 not_json_content_type=%zu wrong=%zu",
           not_json, wrong_garbage);
    FIGURE("big_value",
           "value_bytes=%lld reads=%d wrong=%zu max_body_bytes=%zu "
           "rss_before_kb=%ld rss_growth_kb=%ld bound_kb=%ld",
           big_len, BIG_READS, wrong_big, max_body, rss0, rss_max - rss0,
           RSS_GROWTH_MAX_KB);
    int exit_a = stop_instance(w, a, "foreign_and_garbage_values");
    assert_none("foreign", foreign);
    assert_none("wrong_foreign", wrong_foreign);
    assert_none("not_json", not_json);
    assert_none("wrong_garbage", wrong_garbage);
    assert_int_equal(big_len, BIG_VALUE_OFFSET + 1);
    assert_none("wrong_big", wrong_big);
    assert_true(rss0 > 0);
    assert_true(rss_max - rss0 <= RSS_GROWTH_MAX_KB);
    assert_int_equal(exit_a, 0);
}

/* ---- 7. the memory backend on two instances ------------------------------ */

/* The "scope" string of obj (or of obj's member `member`), or "absent". */
static void scope_of(json_t *obj, const char *member, char *out, size_t cap)
{
    json_t *o = member != NULL ? json_object_get(obj, member) : obj;
    json_t *s = json_object_get(o, "scope");
    snprintf(out, cap, "%s",
             json_is_string(s) ? json_string_value(s) : "absent");
}

static void test_memory_two_instances(void **state)
{
    world_t *w = *state;
    char id[64], k1[128], k2[128], scope_ready[64], scope_stats[64];
    api_res_t res;
    tally_t t;
    memset(&t, 0, sizeof(t));
    world_db(w);
    int a = instance(w, 0);
    int b = instance(w, 0);
    new_key(w, a, k1, sizeof(k1));
    new_key(w, a, k2, sizeof(k2));
    coh_id(id, sizeof(id), "mem");
    assert_int_equal(rate_as(w, a, k1, id, 2).status, 200);
    warm(w, a, id, 1);
    warm(w, b, id, 1);

    wr_t wr = rate_as(w, a, k2, id, 4);
    read_until(w, b, id, wr.end_us + (STALE_BOUND_MS + AFTER_MS) * 1000u, &t, 1,
               2, wr.end_us, UINT64_MAX);

    api_req(&w->api[b], &res, "GET", "/readyz", NULL, NULL, NULL);
    long ready_status = res.h.status;
    scope_of(res.j, "cache", scope_ready, sizeof(scope_ready));
    api_free(&res);
    api_req(&w->api[b], &res, "GET", "/api/v1/monitoring/cache/stats", NULL,
            NULL, NULL);
    long stats_status = res.h.status;
    scope_of(res.j, NULL, scope_stats, sizeof(scope_stats));
    api_free(&res);
    int warned = log_contains(&w->api[b], "per-process");

    tally_figure("memory_two_instances", &t, &wr, wr.end_us);
    FIGURE("memory_two_instances",
           "readyz_cache_scope=%s cache_stats_scope=%s "
           "per_process_warning=%s",
           scope_ready, scope_stats, warned ? "yes" : "no");
    int exit_a = stop_instance(w, a, "memory_two_instances");
    int exit_b = stop_instance(w, b, "memory_two_instances");
    assert_int_equal(wr.status, 200);
    assert_int_equal(t.ok, t.reads);
    assert_none("wrong", t.wrong);
    /* New total within the bound after the write's answer, then always. */
    assert_none("stale_beyond_bound", t.stale_beyond);
    assert_true(t.first_fresh_us != 0);
    assert_int_equal(ready_status, 200);
    assert_string_equal(scope_ready, "process");
    assert_int_equal(stats_status, 200);
    assert_string_equal(scope_stats, "process");
    assert_true(warned);
    assert_int_equal(exit_a, 0);
    assert_int_equal(exit_b, 0);
}

/* ---- 8. randomized: writers on one instance, readers on the other -------- */

/* UC_FAULTS_SEED repeats a run's pauses; printed so a failure replays. */
static unsigned seed(void)
{
    const char *e = getenv("UC_FAULTS_SEED");
    unsigned v = (unsigned)uc_test_now_us();
    if (e != NULL && e[0] != '\0') {
        v = (unsigned)strtoul(e, NULL, 10);
    }
    FIGURE("seed", "UC_FAULTS_SEED=%u", v);
    return v;
}

static void until(const uc_fault_load_t *l, unsigned at_ms)
{
    while (uc_fault_now(l) < (uint64_t)at_ms * 1000u) {
        uc_test_sleep_ms(5);
    }
}

/* Stale reads that started outside [from_us, to_us): the checker run on
 * every write and only the reads outside the window. */
static size_t stale_outside(const uc_fault_load_t *l, uint64_t from_us,
                            uint64_t to_us)
{
    size_t n, k = 0;
    uc_fault_check_t c;
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    uc_fault_op_t *keep = calloc(n + 1, sizeof(*keep));
    assert_non_null(keep);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == UC_FAULT_WRITE || ops[i].start_us < from_us ||
            ops[i].start_us >= to_us) {
            keep[k++] = ops[i];
        }
    }
    uc_fault_check_ops(keep, k, &c);
    free(keep);
    /* A read may see the old value for the near cache's invalidation lag
     * (a write's invalidation reaches the other instance after the write's
     * answer); beyond it, never. */
    return c.stale_beyond_lag;
}

/* Keys, instances and load of a randomized run. */
typedef struct {
    const char *tag;
    int readers, writers;
    size_t nkeys;
    unsigned ms, keys_per_writer;
    /* The load's bound when the test stops it itself (uc_fault_stop());
     * 0: ms. The writes are spread over ms either way. */
    unsigned max_ms;
} rw_plan_t;

/*
 * The common start of the randomized runs: the database, Redis, two
 * instances (a for the writers' keys and writes, b for the reads), one
 * insight warmed on both, and the load started. keys and kp hold
 * plan->nkeys entries and are freed here when the load cannot start.
 */
static void rw_start(world_t *w, const rw_plan_t *plan, char (*keys)[128],
                     const char **kp, char *id, size_t idcap, int *a, int *b,
                     uc_fault_load_t **l)
{
    assert_non_null(keys);
    assert_non_null(kp);
    world_db(w);
    world_redis(w, NULL);
    *a = instance(w, 1);
    *b = instance(w, 1);
    for (size_t i = 0; i < plan->nkeys; i++) {
        new_key(w, *a, keys[i], sizeof(keys[i]));
        kp[i] = keys[i];
    }
    coh_id(id, idcap, plan->tag);
    warm(w, *a, id, 0);
    warm(w, *b, id, 0);

    uc_fault_opts_t o = {
        .port = w->api[*a].port,
        .read_port = w->api[*b].port,
        .insight = id,
        .readers = plan->readers,
        .writers = plan->writers,
        .keys = kp,
        .nkeys = plan->nkeys,
        .duration_ms = plan->max_ms > 0 ? plan->max_ms : plan->ms,
        .max_ops = RW_MAX_OPS,
        .read_gap_ms = 2,
        .write_gap_ms = plan->ms / plan->keys_per_writer,
        .seed = seed(),
    };
    int started = uc_fault_start(l, &o);
    if (started != 0) {
        free(keys);
        free(kp);
    }
    assert_int_equal(started, 0);
}

static void test_randomized_two_instances(void **state)
{
    world_t *w = *state;
    char id[64];
    enum { NKEYS = RW_WRITERS * RW_KEYS_PER_WRITER };
    char(*keys)[128] = calloc(NKEYS, sizeof(*keys));
    const char **kp = calloc(NKEYS, sizeof(*kp));
    uc_fault_load_t *l = NULL;
    uc_fault_check_t c;
    const rw_plan_t plan = {"rw",  RW_READERS,         RW_WRITERS, NKEYS,
                            RW_MS, RW_KEYS_PER_WRITER, 0};
    int a, b;
    rw_start(w, &plan, keys, kp, id, sizeof(id), &a, &b, &l);
    until(l, RW_MS * RW_KILL_PCT / 100);
    uint64_t t_kill = uc_fault_now(l);
    uc_test_redis_kill(&w->redis);
    until(l, RW_MS * RW_UP_PCT / 100);
    int restarted = uc_test_redis_restart(&w->redis);
    uint64_t t_up = uc_fault_now(l);
    uc_fault_wait(l);
    uc_fault_check(l, &c);
    /* The fault window: Redis away, then the time an instance may take to
     * use it again, then the staleness bound. */
    uint64_t t_end = t_up + (uint64_t)(RECOVERY_MS + STALE_BOUND_MS) * 1000u;
    size_t outside = stale_outside(l, t_kill, t_end);
    size_t before_kill = stale_outside(l, t_kill, UINT64_MAX);
    size_t since_up = stale_outside(l, 0, t_up);
    FIGURE("randomized_two_instances",
           "reads=%zu reads_200=%zu writes=%zu writes_200=%zu 5xx=%zu "
           "no_answer=%zu stale_reads=%zu max_staleness_ms=%.1f "
           "stale_beyond_lag_outside_fault=%zu stale_before_kill=%zu "
           "stale_while_down=%zu stale_since_restart=%zu impossible=%zu "
           "hits=%zu down_ms=%.0f window_after_restart_ms=%d",
           c.reads, c.reads_ok, c.writes, c.writes_ok, c.status_5xx,
           c.no_answer, c.stale_reads, c.max_staleness_ms, outside, before_kill,
           c.stale_reads - before_kill - since_up, since_up, c.impossible_reads,
           c.hits, ms_between(t_kill, t_up), RECOVERY_MS + STALE_BOUND_MS);
    uc_fault_free(l);
    free(keys);
    free(kp);
    int exit_a = stop_instance(w, a, "randomized_two_instances");
    int exit_b = stop_instance(w, b, "randomized_two_instances");
    assert_int_equal(restarted, 0);
    assert_true(c.reads > 0);
    assert_true(c.writes_ok > 0);
    assert_none("no_answer", c.no_answer);
    assert_none("status_5xx", c.status_5xx);
    assert_none("impossible_reads", c.impossible_reads);
    assert_true(c.max_staleness_ms <= (double)STALE_BOUND_MS);
    assert_none("stale_outside_fault", outside);
    assert_int_equal(exit_a, 0);
    assert_int_equal(exit_b, 0);
}

/* ---- 9. randomized, under the near cache's faults ------------------------ */

/* One fault's window on the load clock: reads that started in [from, to)
 * are judged against the fault's bound, the others against the lag. */
typedef struct {
    const char *name;
    uint64_t from_us, to_us;
} nf_window_t;

static void until_us(const uc_fault_load_t *l, uint64_t at_us)
{
    while (uc_fault_now(l) < at_us) {
        uc_test_sleep_ms(5);
    }
}

/* The checker on every write and on the reads that started inside window
 * `which`, or outside every window when which < 0. */
static void nf_check(const uc_fault_load_t *l, const nf_window_t *win,
                     size_t nwin, int which, uc_fault_check_t *c)
{
    size_t n, k = 0;
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    uc_fault_op_t *keep = calloc(n + 1, sizeof(*keep));
    assert_non_null(keep);
    for (size_t i = 0; i < n; i++) {
        int in = -1;
        for (size_t j = 0; j < nwin && in < 0; j++) {
            if (ops[i].start_us >= win[j].from_us &&
                ops[i].start_us < win[j].to_us) {
                in = (int)j;
            }
        }
        if (ops[i].kind == UC_FAULT_WRITE || in == which) {
            keep[k++] = ops[i];
        }
    }
    uc_fault_check_ops(keep, k, c);
    free(keep);
}

/* The start of the last stale read that started in [from, to), 0 when
 * none: how far into its window a fault's staleness reached. Each read is
 * judged on its own against every write. */
static uint64_t last_stale_us(const uc_fault_load_t *l, uint64_t from_us,
                              uint64_t to_us)
{
    size_t n, k = 0;
    uint64_t last = 0;
    uc_fault_check_t c;
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    uc_fault_op_t *keep = calloc(n + 1, sizeof(*keep));
    assert_non_null(keep);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == UC_FAULT_WRITE) {
            keep[k++] = ops[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind != UC_FAULT_READ || ops[i].start_us < from_us ||
            ops[i].start_us >= to_us || ops[i].start_us <= last) {
            continue;
        }
        keep[k] = ops[i];
        uc_fault_check_ops(keep, k + 1, &c);
        if (c.stale_reads > 0) {
            last = ops[i].start_us;
        }
    }
    free(keep);
    return last;
}

/* Writes acknowledged (200) inside [from, to): the fault met writes. */
static size_t writes_acked_in(const uc_fault_load_t *l, uint64_t from_us,
                              uint64_t to_us)
{
    size_t n, k = 0;
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    for (size_t i = 0; i < n; i++) {
        k += ops[i].kind == UC_FAULT_WRITE && ops[i].status == 200 &&
             ops[i].end_us >= from_us && ops[i].end_us < to_us;
    }
    return k;
}

/* What instance i's near cache has done so far. */
typedef struct {
    long long near_hits, lost, late, null_msg, dataset;
} nf_near_t;

static nf_near_t near_of(world_t *w, int i)
{
    api_res_t r;
    nf_near_t v;
    api_req(&w->api[i], &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL,
            NULL);
    assert_status(&r, 200);
    json_t *f = jget(jget(r.j, "near"), "flushes");
    v.near_hits = jint(jget(r.j, "totals"), "near_hits");
    v.lost = jint(f, "channel_lost");
    v.late = jint(f, "heartbeat_late");
    v.null_msg = jint(f, "null_message");
    v.dataset = jint(f, "dataset");
    api_free(&r);
    return v;
}

/* What instance i's near cache did between two readings. */
static nf_near_t near_delta(const nf_near_t *to, const nf_near_t *from)
{
    nf_near_t d = {to->near_hits - from->near_hits, to->lost - from->lost,
                   to->late - from->late, to->null_msg - from->null_msg,
                   to->dataset - from->dataset};
    return d;
}

static void test_randomized_near_faults(void **state)
{
    world_t *w = *state;
    char id[64], out[64];
    enum { NKEYS = NF_WRITERS * NF_KEYS_PER_WRITER, NWIN = 4 };
    char(*keys)[128] = calloc(NKEYS, sizeof(*keys));
    const char **kp = calloc(NKEYS, sizeof(*kp));
    uc_fault_load_t *l = NULL;
    uc_fault_check_t c, in[NWIN], outside;
    nf_window_t win[NWIN] = {{"pubsub_killed", 0, 0},
                             {"redis_stopped", 0, 0},
                             {"flushall", 0, 0},
                             {"redis_restarted", 0, 0}};
    nf_near_t pre[NWIN], post[NWIN], felt[NWIN], zero = {0, 0, 0, 0, 0};
    long long hits_before[NWIN], flushes[NWIN];
    double last_stale_ms[NWIN];
    size_t acked[NWIN];
    /* The faults' steps decide when the load has done its work: on a busy
     * machine they take longer than NF_MS planned for, and reads must go
     * on past the last window. */
    const rw_plan_t plan = {"nf",  NF_READERS,         NF_WRITERS, NKEYS,
                            NF_MS, NF_KEYS_PER_WRITER, 3 * NF_MS};
    int a, b;
    rw_start(w, &plan, keys, kp, id, sizeof(id), &a, &b, &l);
    const uint64_t gap = (uint64_t)NF_GAP_MS * 1000u;
    const uint64_t bound = (uint64_t)STALE_BOUND_MS * 1000u;
    const uint64_t recovery = (uint64_t)RECOVERY_MS * 1000u;

    /* 1. Both instances' invalidation subscribers killed. Nothing else is
     * touched: the window is the staleness bound past the kill. */
    until_us(l, gap);
    pre[0] = near_of(w, b);
    win[0].from_us = uc_fault_now(l);
    int kill_rc = uc_test_redis_cli(&w->redis, NULL, "CLIENT KILL TYPE pubsub",
                                    out, sizeof(out));
    long subscribers_killed = strtol(out, NULL, 10);
    win[0].to_us = uc_fault_now(l) + bound;

    /* 2. Redis hung: heartbeats and the writes' deletes go unanswered, and
     * the pool's commands time out, so the window is that of an outage:
     * the hang, the time an instance may take to use Redis again, the
     * bound. */
    until_us(l, win[0].to_us);
    post[0] = near_of(w, b);
    until_us(l, win[0].to_us + gap);
    pre[1] = near_of(w, b);
    win[1].from_us = uc_fault_now(l);
    int stop_rc = uc_test_redis_signal(&w->redis, SIGSTOP);
    until_us(l, win[1].from_us + (uint64_t)NF_STOP_MS * 1000u);
    int cont_rc = uc_test_redis_signal(&w->redis, SIGCONT);
    uint64_t t_cont = uc_fault_now(l);
    win[1].to_us = t_cont + recovery + bound;

    /* 3. FLUSHALL: the null message, and a dataset without its marker. */
    until_us(l, win[1].to_us);
    post[1] = near_of(w, b);
    until_us(l, win[1].to_us + gap);
    pre[2] = near_of(w, b);
    win[2].from_us = uc_fault_now(l);
    int flush_rc =
        uc_test_redis_cli(&w->redis, NULL, "FLUSHALL", out, sizeof(out));
    win[2].to_us = uc_fault_now(l) + bound;

    /* 4. Redis killed, restarted empty after NF_DOWN_MS: as in the
     * randomized run above. */
    until_us(l, win[2].to_us);
    post[2] = near_of(w, b);
    until_us(l, win[2].to_us + gap);
    pre[3] = near_of(w, b);
    win[3].from_us = uc_fault_now(l);
    uc_test_redis_kill(&w->redis);
    until_us(l, win[3].from_us + (uint64_t)NF_DOWN_MS * 1000u);
    int restarted = uc_test_redis_restart(&w->redis);
    uint64_t t_up = uc_fault_now(l);
    win[3].to_us = t_up + recovery + bound;
    until_us(l, win[3].to_us);
    post[3] = near_of(w, b);
    uint64_t t_last = uc_fault_now(l);
    until_us(l, t_last + (uint64_t)NF_TAIL_MS * 1000u);
    uc_fault_stop(l);
    uc_fault_wait(l);

    uc_fault_check(l, &c);
    nf_check(l, win, NWIN, -1, &outside);
    for (int i = 0; i < NWIN; i++) {
        nf_check(l, win, NWIN, i, &in[i]);
        acked[i] = writes_acked_in(l, win[i].from_us, win[i].to_us);
        uint64_t last = last_stale_us(l, win[i].from_us, win[i].to_us);
        last_stale_ms[i] = last != 0 ? ms_between(win[i].from_us, last) : -1.0;
        /* Near hits in the healthy gap before the fault, flushes from the
         * fault to the end of its window. */
        hits_before[i] =
            near_delta(&pre[i], i > 0 ? &post[i - 1] : &zero).near_hits;
        felt[i] = near_delta(&post[i], &pre[i]);
        flushes[i] =
            felt[i].lost + felt[i].late + felt[i].null_msg + felt[i].dataset;
    }
    size_t n, after_last = 0;
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    for (size_t i = 0; i < n; i++) {
        after_last += ops[i].kind == UC_FAULT_READ && ops[i].start_us >= t_last;
    }
    FIGURE("randomized_near_faults",
           "reads=%zu reads_200=%zu writes=%zu writes_200=%zu 5xx=%zu "
           "no_answer=%zu stale_reads=%zu max_staleness_ms=%.1f "
           "impossible=%zu hits=%zu run_ms=%d",
           c.reads, c.reads_ok, c.writes, c.writes_ok, c.status_5xx,
           c.no_answer, c.stale_reads, c.max_staleness_ms, c.impossible_reads,
           c.hits, NF_MS);
    FIGURE("randomized_near_faults",
           "window=outside reads=%zu stale_reads=%zu stale_beyond_lag=%zu "
           "max_staleness_ms=%.1f lag_ms=%.0f reads_after_last_window=%zu",
           outside.reads, outside.stale_reads, outside.stale_beyond_lag,
           outside.max_staleness_ms, UC_FAULT_NEAR_LAG_MS, after_last);
    for (int i = 0; i < NWIN; i++) {
        FIGURE("randomized_near_faults",
               "window=%s from_ms=%.0f length_ms=%.0f reads=%zu "
               "writes_acked=%zu stale_reads=%zu stale_beyond_lag=%zu "
               "max_staleness_ms=%.1f last_stale_read_at_ms=%.0f "
               "bound_ms=%d near_hits_before=%lld "
               "flushes_channel_lost=%lld flushes_heartbeat_late=%lld "
               "flushes_null_message=%lld flushes_dataset=%lld",
               win[i].name, (double)win[i].from_us / 1000.0,
               ms_between(win[i].from_us, win[i].to_us), in[i].reads, acked[i],
               in[i].stale_reads, in[i].stale_beyond_lag,
               in[i].max_staleness_ms, last_stale_ms[i], STALE_BOUND_MS,
               hits_before[i], felt[i].lost, felt[i].late, felt[i].null_msg,
               felt[i].dataset);
    }
    FIGURE("randomized_near_faults",
           "subscribers_killed=%ld stop_ms=%.0f down_ms=%.0f "
           "recovery_window_ms=%d",
           subscribers_killed, ms_between(win[1].from_us, t_cont),
           ms_between(win[3].from_us, t_up), RECOVERY_MS + STALE_BOUND_MS);
    uc_fault_free(l);
    free(keys);
    free(kp);
    int exit_a = stop_instance(w, a, "randomized_near_faults");
    int exit_b = stop_instance(w, b, "randomized_near_faults");
    assert_int_equal(kill_rc, 0);
    assert_int_equal(stop_rc, 0);
    assert_int_equal(cont_rc, 0);
    assert_int_equal(flush_rc, 0);
    assert_int_equal(restarted, 0);
    assert_true(c.reads > 0);
    assert_true(c.writes_ok > 0);
    assert_none("no_answer", c.no_answer);
    assert_none("status_5xx", c.status_5xx);
    assert_none("impossible_reads", c.impossible_reads);
    /* Outside the windows, the near cache's lag and no more. */
    assert_none("stale_beyond_lag_outside_windows", outside.stale_beyond_lag);
    assert_true(after_last > 0);
    /* Each fault met the near cache serving, writes being acknowledged and
     * reads being made, was felt by B's near cache (a flush), and left no
     * read stale more than STALE_BOUND_MS after the write's answer. */
    assert_true(subscribers_killed >= 2);
    for (int i = 0; i < NWIN; i++) {
        if (hits_before[i] == 0 || flushes[i] == 0 || acked[i] == 0 ||
            in[i].reads == 0 ||
            in[i].max_staleness_ms > (double)STALE_BOUND_MS) {
            fprintf(stderr,
                    "window %s: near hits before %lld, flushes %lld, writes "
                    "%zu, reads %zu, max staleness %.1f ms\n",
                    win[i].name, hits_before[i], flushes[i], acked[i],
                    in[i].reads, in[i].max_staleness_ms);
        }
        assert_true(hits_before[i] > 0);
        assert_true(flushes[i] > 0);
        assert_true(acked[i] > 0);
        assert_true(in[i].reads > 0);
        assert_true(in[i].max_staleness_ms <= (double)STALE_BOUND_MS);
    }
    assert_true(c.max_staleness_ms <= (double)STALE_BOUND_MS);
    assert_int_equal(exit_a, 0);
    assert_int_equal(exit_b, 0);
}

/* ---- 10. the operator's command line reaches what the service caches ---- */

/* Runs the utxocache binary against the world's Redis; its stdout's first
 * line goes to out. Returns its exit status (-1 when it could not run). */
static int run_cli(world_t *w, const char *const *args, char *out, size_t cap)
{
    char cmd[1024], url[80];
    size_t n;
    FILE *p;
    int st;

    fmt(url, sizeof(url), "redis://127.0.0.1:%d/0", w->redis.port);
    n = (size_t)snprintf(cmd, sizeof(cmd), "REDIS_URL=%s '%s'", url,
                         UC_CLI_PATH);
    for (size_t i = 0; args[i] != NULL && n < sizeof(cmd); i++) {
        n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " '%s'", args[i]);
    }
    p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }
    out[0] = '\0';
    if (fgets(out, (int)cap, p) != NULL) {
        out[strcspn(out, "\n")] = '\0';
    }
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli_invalidates_service_entries(void **state)
{
    world_t *w = *state;
    char id[64], k1[128], field[96], out[256];
    world_db(w);
    world_redis(w, NULL);
    int a = instance(w, 1);
    new_key(w, a, k1, sizeof(k1));
    coh_id(id, sizeof(id), "cli");
    assert_int_equal(rate_as(w, a, k1, id, 2).status, 200);
    warm(w, a, id, 1);

    /* An entry read by its key prints the service's JSON, not the
     * envelope it is stored in. */
    char rawkey[160];
    fmt(rawkey, sizeof(rawkey), "feedback:stats:%s", id);
    const char *get[] = {"get", rawkey, NULL};
    assert_int_equal(run_cli(w, get, out, sizeof(out)), 0);
    assert_true(out[0] == '{');
    assert_non_null(strstr(out, id));

    /* The CLI knows the service's keyspaces: one entry, by its field. */
    fmt(field, sizeof(field), "insight_id=%s", id);
    const char *args[] = {"invalidate", "--keyspace", "feedback_stats", field,
                          NULL};
    assert_int_equal(run_cli(w, args, out, sizeof(out)), 0);
    assert_string_equal(out, "1");
    rd_t r = stats_read(w, a, id);
    assert_int_equal(r.status, 200);
    assert_false(r.hit);
    assert_true(read_right(&r, 1));

    /* A keyspace the service does not cache is refused, not silently 0. */
    const char *bad[] = {"invalidate", "--keyspace", "recent_metrics", NULL};
    assert_int_equal(run_cli(w, bad, out, sizeof(out)), 2);
    assert_int_equal(stop_instance(w, a, "cli"), 0);
}

#define WORLD_TEST(f)                                                          \
    cmocka_unit_test_setup_teardown(f, world_setup, world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        WORLD_TEST(test_restart_with_pending),
        WORLD_TEST(test_redis_rdb_restart),
        WORLD_TEST(test_two_instances_pause),
        WORLD_TEST(test_two_instances_oom),
        WORLD_TEST(test_poisoned_entry),
        WORLD_TEST(test_foreign_and_garbage_values),
        WORLD_TEST(test_memory_two_instances),
        WORLD_TEST(test_randomized_two_instances),
        WORLD_TEST(test_randomized_near_faults),
        WORLD_TEST(test_cli_invalidates_service_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
