/* SPDX-License-Identifier: MIT */
/*
 * The cache history of history.h. A sampler thread wakes every interval
 * (a condition variable on the monotonic clock, so a stop is seen at once),
 * copies the library's statistics without holding the history's lock, then
 * takes the lock to push one point into the ring. A point holds cumulative
 * counters, as the library gives them, so that a reader can difference any
 * two points; the latency percentiles are the exception, since a histogram
 * per point would be large: each point holds the p50 and p99 of what
 * happened since the point before it, computed from the difference of the
 * two cumulative histograms.
 *
 * The library does not time loaders, so the service does: the keyspaces are
 * declared with uq_history_loader()'s wrappers, which time uq_api_loader's
 * functions into per-keyspace atomics. Their mean is what one database load
 * of a keyspace costs, which the dashboard multiplies by the hits to say how
 * much database time the cache saved.
 */
#include "history.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring.h"

/* The request-duration buckets of prometheus.c (upper bounds, µs; the last
 * bucket is +Inf), which app.h does not export. */
_Static_assert(UQ_LAT_BUCKETS == 17,
               "request buckets changed: see prometheus.c");
static const uint64_t req_bounds_us[UQ_LAT_BUCKETS - 1] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

/* The counters kept per keyspace and in total, as X(name). */
#define COUNTS(X)                                                              \
    X(hits)                                                                    \
    X(misses)                                                                  \
    X(near_hits)                                                               \
    X(negative_hits)                                                           \
    X(loads)                                                                   \
    X(loader_calls)                                                            \
    X(loader_us)                                                               \
    X(stale_served)                                                            \
    X(bypasses)                                                                \
    X(fallbacks)                                                               \
    X(errors)                                                                  \
    X(near_evictions)                                                          \
    X(near_bytes)                                                              \
    X(refills)                                                                 \
    X(refill_hits)                                                             \
    X(refill_skipped)

typedef struct {
#define FIELD(name) uint64_t name;
    COUNTS(FIELD)
#undef FIELD
} counts_t;

/* One sample. Latencies are -1 when nothing was measured in the interval;
 * redis_evicted is -1 when the server did not answer INFO. */
typedef struct {
    int64_t t_ms; /* wall clock, ms since the epoch */
    counts_t ks[UQ_KS_COUNT];
    counts_t tot;
    uint64_t near_budget;
    uint64_t near_entries;
    uint64_t requests;
    uint64_t breaker_opens;
    uint64_t breaker_rejects;
    uint64_t pending_invalidations;
    int64_t redis_evicted;
    int64_t get_p50, get_p99; /* cache reads, µs (upper bounds) */
    int64_t req_p50, req_p99; /* requests, µs (upper bounds) */
    int64_t lag_p50, lag_p99; /* invalidation lag, µs (upper bounds) */
    uint8_t breaker;          /* uc_breaker_state_t */
    uint8_t channel;          /* uc_channel_state_t */
    uint8_t near_enabled;
} point_t;

/* What one sampling copies out of the library and the app. */
typedef struct {
    int64_t t_ms;
    uc_stats_t ks[UQ_KS_COUNT];
    uc_near_usage_t near_ks[UQ_KS_COUNT];
    uc_stats_t tot;
    uc_near_stats_t near;
    uc_pool_stats_t pool;
    int have_info;
    uc_server_info_t info;
    uint64_t req_lat[UQ_LAT_BUCKETS];
    uint64_t requests;
    uint64_t loader_calls[UQ_KS_COUNT];
    uint64_t loader_us[UQ_KS_COUNT];
} raw_t;

/* Cumulative histograms of the newest stored point, the base of the next
 * point's percentiles. */
typedef struct {
    uint64_t get_us[UC_HIST_BUCKETS];
    uint64_t lag_us[UC_HIST_BUCKETS];
    uint64_t req[UQ_LAT_BUCKETS];
} base_t;

struct uq_history {
    uq_app_t *app;
    unsigned interval_s;
    atomic_uint_fast64_t loader_calls[UQ_KS_COUNT];
    atomic_uint_fast64_t loader_us[UQ_KS_COUNT];

    pthread_mutex_t lock; /* ring, base, stop */
    pthread_cond_t wake;
    uq_ring_t ring;
    base_t base;
    int stop;
    int running;
    pthread_t thread;
    raw_t scratch; /* the sampler thread's (or start's) alone */
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static long long env_range(const char *name, long long lo, long long hi,
                           long long def)
{
    const char *v = getenv(name);
    long long x = def;

    if (v != NULL && v[0] != '\0' && uq_parse_int(v, lo, hi, &x) != 0) {
        char range[48];
        snprintf(range, sizeof(range), "%lld..%lld", lo, hi);
        uq_log("warn", "setting out of range; the default is used", "name",
               name, "value", v, "range", range, NULL);
        x = def;
    }
    return x;
}

int uq_history_create(uq_app_t *app, uq_history_t **out)
{
    uq_history_t *h = calloc(1, sizeof(*h));
    pthread_condattr_t ca;
    int attr = 0, mutex = 0;

    if (h == NULL) {
        goto fail;
    }
    h->app = app;
    h->interval_s = (unsigned)env_range("UTXOIQ_HISTORY_INTERVAL_S", 1, 3600,
                                        UQ_HISTORY_INTERVAL_S_DEFAULT);
    size_t n =
        (size_t)env_range("UTXOIQ_HISTORY_SAMPLES", 2, UQ_HISTORY_SAMPLES_MAX,
                          UQ_HISTORY_SAMPLES_DEFAULT);
    if (uq_ring_init(&h->ring, sizeof(point_t), n) != 0) {
        goto fail;
    }
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        goto fail;
    }
    mutex = 1;
    if (pthread_condattr_init(&ca) != 0) {
        goto fail;
    }
    attr = 1;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&h->wake, &ca) != 0) {
        goto fail;
    }
    pthread_condattr_destroy(&ca);
    app->history = h;
    *out = h;
    return 0;

fail:
    uq_log("error", "cannot create the cache history", "error", "out of memory",
           NULL);
    if (attr) {
        pthread_condattr_destroy(&ca);
    }
    if (h != NULL) {
        if (mutex) {
            pthread_mutex_destroy(&h->lock);
        }
        uq_ring_release(&h->ring);
        free(h);
    }
    return -1;
}

/* ---- sampling ------------------------------------------------------------ */

/* Is route i one of the dashboard's own, left out of the request latency
 * so that watching the service does not change what is watched? */
static int own_route(const char *name)
{
    return strncmp(name, "dashboard", 9) == 0 ||
           strcmp(name, "cache_history") == 0;
}

/* Copies every figure a point needs. Takes no history lock: the library's
 * calls may do I/O (INFO), bounded by its own timeouts. */
static void collect(uq_history_t *h, raw_t *r)
{
    uq_app_t *app = h->app;
    size_t nroutes = 0;
    const uq_route_t *routes = uq_api_routes(&nroutes);

    memset(r, 0, sizeof(*r));
    r->t_ms = uq_now_us(app) / 1000;
    for (int k = 0; k < UQ_KS_COUNT; k++) {
        uc_keyspace_stats(app->ks[k], &r->ks[k]);
        uc_keyspace_near_usage(app->ks[k], &r->near_ks[k]);
        r->loader_calls[k] = atomic_load(&h->loader_calls[k]);
        r->loader_us[k] = atomic_load(&h->loader_us[k]);
    }
    uc_cache_stats(app->cache, &r->tot);
    uc_cache_near_stats(app->cache, &r->near);
    uc_cache_pool_stats(app->cache, &r->pool);
    r->have_info = uc_cache_server_info(app->cache, &r->info) == UC_OK;
    for (size_t i = 0; i < nroutes && i < UQ_ROUTES_MAX; i++) {
        if (own_route(routes[i].name)) {
            continue;
        }
        for (int b = 0; b < UQ_LAT_BUCKETS; b++) {
            r->req_lat[b] += atomic_load(&app->routes[i].lat[b]);
        }
        r->requests += atomic_load(&app->routes[i].count);
    }
}

/* Upper bound of the p-quantile of the difference of two cumulative
 * request histograms; -1 when nothing happened in between. */
static int64_t req_quantile(const uint64_t *now, const uint64_t *before,
                            double p)
{
    uint64_t d[UQ_LAT_BUCKETS], total = 0, seen = 0;

    for (int b = 0; b < UQ_LAT_BUCKETS; b++) {
        d[b] = now[b] > before[b] ? now[b] - before[b] : 0;
        total += d[b];
    }
    if (total == 0) {
        return -1;
    }
    uint64_t want = (uint64_t)(p * (double)total + 0.999999);
    for (int b = 0; b < UQ_LAT_BUCKETS - 1; b++) {
        seen += d[b];
        if (seen >= want) {
            return (int64_t)req_bounds_us[b];
        }
    }
    /* +Inf: the largest finite bound is all that can be said. */
    return (int64_t)req_bounds_us[UQ_LAT_BUCKETS - 2];
}

/* The same for the library's power-of-two histograms. */
static int64_t lib_quantile(const uint64_t *now, const uint64_t *before,
                            double p)
{
    uint64_t d[UC_HIST_BUCKETS], total = 0;

    for (int b = 0; b < UC_HIST_BUCKETS; b++) {
        d[b] = now[b] > before[b] ? now[b] - before[b] : 0;
        total += d[b];
    }
    return total == 0 ? -1 : (int64_t)uc_stats_percentile_us(d, p);
}

static void counts_from(counts_t *c, const uc_stats_t *s,
                        const uc_near_usage_t *u, uint64_t calls, uint64_t us)
{
    c->hits = s->hits;
    c->misses = s->misses;
    c->near_hits = s->near_hits;
    c->negative_hits = s->negative_hits;
    c->loads = s->loads;
    c->loader_calls = calls;
    c->loader_us = us;
    c->stale_served = s->stale_served;
    c->bypasses = s->bypasses;
    c->fallbacks = s->fallbacks;
    c->errors = s->errors;
    c->near_evictions = u->evictions;
    c->near_bytes = u->bytes;
    c->refills = s->refills;
    c->refill_hits = s->refill_hits;
    /* One series for the dashboard; cache/stats has each cause. */
    c->refill_skipped = s->refill_skipped_cold + s->refill_skipped_rate +
                        s->refill_skipped_overflow + s->refill_skipped_breaker;
}

/* Builds the point of r against base (the newest stored point's
 * histograms). Caller holds the lock. */
static void make_point(const raw_t *r, const base_t *base, point_t *p)
{
    memset(p, 0, sizeof(*p));
    p->t_ms = r->t_ms;
    uint64_t calls = 0, us = 0;
    for (int k = 0; k < UQ_KS_COUNT; k++) {
        counts_from(&p->ks[k], &r->ks[k], &r->near_ks[k], r->loader_calls[k],
                    r->loader_us[k]);
        calls += r->loader_calls[k];
        us += r->loader_us[k];
    }
    counts_from(&p->tot, &r->tot, &r->near.usage, calls, us);
    p->near_enabled = r->near.enabled != 0;
    p->near_budget = r->near.usage.budget_bytes;
    p->near_entries = r->near.usage.entries;
    p->requests = r->requests;
    p->breaker = (uint8_t)r->pool.breaker;
    p->channel = (uint8_t)r->near.channel;
    p->breaker_opens = r->pool.breaker_opens;
    p->breaker_rejects = r->pool.breaker_rejects;
    p->pending_invalidations = r->tot.pending_invalidations;
    p->redis_evicted = r->have_info ? (int64_t)r->info.evicted_keys : -1;
    p->get_p50 = lib_quantile(r->tot.get_us, base->get_us, 0.5);
    p->get_p99 = lib_quantile(r->tot.get_us, base->get_us, 0.99);
    p->lag_p50 = lib_quantile(r->near.lag_us, base->lag_us, 0.5);
    p->lag_p99 = lib_quantile(r->near.lag_us, base->lag_us, 0.99);
    p->req_p50 = req_quantile(r->req_lat, base->req, 0.5);
    p->req_p99 = req_quantile(r->req_lat, base->req, 0.99);
}

/* Pushes the point of r and makes r's histograms the new base. Caller holds
 * the lock. */
static void store(uq_history_t *h, const raw_t *r)
{
    point_t p;

    make_point(r, &h->base, &p);
    uq_ring_push(&h->ring, &p);
    memcpy(h->base.get_us, r->tot.get_us, sizeof(h->base.get_us));
    memcpy(h->base.lag_us, r->near.lag_us, sizeof(h->base.lag_us));
    memcpy(h->base.req, r->req_lat, sizeof(h->base.req));
}

static void *sampler(void *arg)
{
    uq_history_t *h = arg;

    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += (time_t)h->interval_s;
        int rc = 0;
        while (!h->stop && rc != ETIMEDOUT) {
            rc = pthread_cond_timedwait(&h->wake, &h->lock, &dl);
        }
        if (h->stop) {
            break;
        }
        pthread_mutex_unlock(&h->lock);
        collect(h, &h->scratch);
        pthread_mutex_lock(&h->lock);
        store(h, &h->scratch);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int uq_history_start(uq_history_t *h)
{
    collect(h, &h->scratch);
    pthread_mutex_lock(&h->lock);
    store(h, &h->scratch);
    pthread_mutex_unlock(&h->lock);
    /* Every signal blocked in the sampler, as in the library's threads:
     * SIGTERM is taken by the main thread's sigtimedwait (http.c), and a
     * thread that left it unblocked could take it instead, with its default
     * action (the process ends without draining). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&h->thread, NULL, sampler, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        uq_log("error", "cannot start the cache history's sampler", NULL);
        return -1;
    }
    h->running = 1;
    return 0;
}

void uq_history_stop(uq_history_t *h)
{
    if (h == NULL || !h->running) {
        return;
    }
    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    h->running = 0;
}

void uq_history_destroy(uq_history_t *h)
{
    if (h == NULL) {
        return;
    }
    uq_history_stop(h);
    if (h->app != NULL && h->app->history == h) {
        h->app->history = NULL;
    }
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    uq_ring_release(&h->ring);
    free(h);
}

/* ---- timed loaders ------------------------------------------------------- */

static int timed(int ks, void *arg, const char *const *fields, size_t n,
                 char **val, size_t *len)
{
    uq_app_t *app = arg;
    uc_loader_fn fn = uq_api_loader(ks);
    uint64_t t0 = mono_us();

    if (fn == NULL) {
        return UC_EINVAL;
    }
    int rc = fn(arg, fields, n, val, len);
    if (app->history != NULL) {
        atomic_fetch_add(&app->history->loader_calls[ks], 1);
        atomic_fetch_add(&app->history->loader_us[ks], mono_us() - t0);
    }
    return rc;
}

#define TIMED(k)                                                               \
    static int timed_##k(void *arg, const char *const *f, size_t n,            \
                         char **val, size_t *len)                              \
    {                                                                          \
        return timed(k, arg, f, n, val, len);                                  \
    }
TIMED(0)
TIMED(1)
TIMED(2)
TIMED(3)
TIMED(4)
TIMED(5)
TIMED(6)
TIMED(7)
#undef TIMED
_Static_assert(UQ_KS_COUNT == 8, "one timed loader per keyspace");

uc_loader_fn uq_history_loader(int ks)
{
    static const uc_loader_fn fns[UQ_KS_COUNT] = {
        timed_0, timed_1, timed_2, timed_3, timed_4, timed_5, timed_6, timed_7};
    if (ks < 0 || ks >= UQ_KS_COUNT || uq_api_loader(ks) == NULL) {
        return NULL;
    }
    return fns[ks];
}

/* ---- the JSON answer ----------------------------------------------------- */

static const char *const BREAKER[] = {"closed", "open", "half_open"};
static const char *const CHANNEL[] = {"none", "down", "connecting", "healthy"};

/* A latency or a gauge that may be unknown (-1): null then. */
static json_t *maybe(int64_t v)
{
    return v < 0 ? json_null() : json_integer((json_int_t)v);
}

/* The columns of one counts_t (a keyspace's, or the totals when ks < 0)
 * over pts[0..n). */
static json_t *counts_json(const point_t *const *pts, size_t n, int ks)
{
    json_t *o = json_object();

#define COLUMN(name)                                                           \
    {                                                                          \
        json_t *a = json_array();                                              \
        for (size_t i = 0; i < n && a != NULL; i++) {                          \
            const counts_t *c = ks < 0 ? &pts[i]->tot : &pts[i]->ks[ks];       \
            json_array_append_new(a, json_integer((json_int_t)c->name));       \
        }                                                                      \
        json_object_set_new(o, #name, a);                                      \
    }
    COUNTS(COLUMN)
#undef COLUMN
    return o;
}

/* One column of a point field over pts[0..n), each value through conv. */
#define POINT_COLUMN(obj, key, expr)                                           \
    do {                                                                       \
        json_t *a_ = json_array();                                             \
        for (size_t i = 0; i < n && a_ != NULL; i++) {                         \
            const point_t *p = pts[i];                                         \
            json_array_append_new(a_, (expr));                                 \
        }                                                                      \
        json_object_set_new((obj), (key), a_);                                 \
    } while (0)

static json_t *hot_json(uq_app_t *app)
{
    json_t *o = json_object();

    for (int k = 0; k < UQ_KS_COUNT; k++) {
        uc_hot_entry_t top[5];
        size_t m = uc_keyspace_hot(app->ks[k], top, 5);
        json_t *a = json_array();
        for (size_t i = 0; i < m && i < 5 && a != NULL; i++) {
            json_array_append_new(a,
                                  json_pack("{s:s,s:I}", "key", top[i].key,
                                            "reads", (json_int_t)top[i].reads));
        }
        json_object_set_new(o, uc_keyspace_name(app->ks[k]), a);
    }
    return o;
}

/* The whole answer over pts[0..n). */
static json_t *history_json(uq_history_t *h, const point_t *const *pts,
                            size_t n)
{
    uq_app_t *app = h->app;
    json_t *j = json_object();
    json_t *kss = json_object();
    json_t *near = json_object();
    json_t *lat = json_object();
    json_t *pool = json_object();
    json_t *redis = json_object();

    json_object_set_new(j, "interval_s", json_integer(h->interval_s));
    json_object_set_new(j, "capacity", json_integer((json_int_t)h->ring.cap));
    json_object_set_new(j, "memory_bytes",
                        json_integer((json_int_t)uq_ring_bytes(&h->ring)));
    json_object_set_new(j, "samples", json_integer((json_int_t)n));
    json_object_set_new(j, "backend",
                        json_string(uc_cache_backend_name(app->cache)));
    POINT_COLUMN(j, "t_ms", json_integer((json_int_t)p->t_ms));
    json_object_set_new(j, "totals", counts_json(pts, n, -1));
    for (int k = 0; k < UQ_KS_COUNT; k++) {
        json_object_set_new(kss, uc_keyspace_name(app->ks[k]),
                            counts_json(pts, n, k));
    }
    json_object_set_new(j, "keyspaces", kss);

    json_object_set_new(near, "enabled",
                        json_boolean(n > 0 && pts[n - 1]->near_enabled));
    POINT_COLUMN(near, "budget_bytes",
                 json_integer((json_int_t)p->near_budget));
    POINT_COLUMN(near, "entries", json_integer((json_int_t)p->near_entries));
    POINT_COLUMN(
        near, "channel",
        json_string(
            CHANNEL[p->channel <= UC_CHANNEL_HEALTHY ? p->channel : 0]));
    POINT_COLUMN(near, "lag_p50_us_le", maybe(p->lag_p50));
    POINT_COLUMN(near, "lag_p99_us_le", maybe(p->lag_p99));
    json_object_set_new(j, "near", near);

    POINT_COLUMN(lat, "requests", json_integer((json_int_t)p->requests));
    POINT_COLUMN(lat, "request_p50_us_le", maybe(p->req_p50));
    POINT_COLUMN(lat, "request_p99_us_le", maybe(p->req_p99));
    POINT_COLUMN(lat, "get_p50_us_le", maybe(p->get_p50));
    POINT_COLUMN(lat, "get_p99_us_le", maybe(p->get_p99));
    json_object_set_new(j, "latency", lat);

    POINT_COLUMN(
        pool, "breaker",
        json_string(
            BREAKER[p->breaker <= UC_BREAKER_HALF_OPEN ? p->breaker : 0]));
    POINT_COLUMN(pool, "breaker_opens",
                 json_integer((json_int_t)p->breaker_opens));
    POINT_COLUMN(pool, "breaker_rejects",
                 json_integer((json_int_t)p->breaker_rejects));
    POINT_COLUMN(pool, "pending_invalidations",
                 json_integer((json_int_t)p->pending_invalidations));
    json_object_set_new(j, "pool", pool);

    POINT_COLUMN(redis, "evicted_keys", maybe(p->redis_evicted));
    json_object_set_new(j, "redis", redis);
    json_object_set_new(j, "hot", hot_json(app));
    json_object_set_new(j, "live", json_true());
    return j;
}

void uq_history_handler(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    uq_history_t *h = app->history;
    raw_t *raw = malloc(sizeof(*raw));
    const point_t **pts = NULL;
    point_t live;
    json_t *j = NULL;
    (void)req;

    if (h == NULL || raw == NULL) {
        free(raw);
        uq_resp_error(res, 503, "the cache history is not available");
        return;
    }
    collect(h, raw);
    pthread_mutex_lock(&h->lock);
    size_t n = uq_ring_count(&h->ring);
    pts = malloc((n + 1) * sizeof(*pts));
    if (pts != NULL) {
        for (size_t i = 0; i < n; i++) {
            pts[i] = uq_ring_at(&h->ring, i);
        }
        /* The newest figures, against the newest stored point, so that the
         * last column is as current as the statistics endpoint. */
        make_point(raw, &h->base, &live);
        pts[n] = &live;
        j = history_json(h, pts, n + 1);
    }
    pthread_mutex_unlock(&h->lock);
    free(pts);
    free(raw);
    if (j == NULL) {
        uq_resp_error(res, 500, "out of memory");
        return;
    }
    uq_resp_json(res, 200, j);
}
