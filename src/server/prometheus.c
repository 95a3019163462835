/* SPDX-License-Identifier: MIT */
/*
 * The Prometheus side of utxoiq-api: the per-route request counters the HTTP
 * layer records, and the text exposition of GET /metrics. Every family is
 * written by one call of family(), which puts its `# HELP` and `# TYPE` lines
 * once and is followed by all of its samples, so a family's lines are always
 * contiguous. The cache families are generated from the library's
 * UC_STATS_COUNTERS table, so every counter of /api/v1/monitoring/cache/stats
 * is here too. Names carry base units (seconds, bytes) and counters end in
 * _total.
 *
 * The cache latency histograms come from the library's log2 buckets (bucket
 * i counts durations below 2^i µs). Their cumulative `le` buckets are exact;
 * the library keeps no sum of durations, so _sum is estimated from the
 * buckets (each observation taken at the mean of its bucket) and says so in
 * its HELP text.
 */
#include "app.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- recording ----------------------------------------------------------- */

static const int status_codes[UQ_STATUS_SLOTS] = {
    200, 201, 304, 400, 401, 403, 404, 405, 413, 415, 422, 500, 503, 0};
#define STATUS_OTHER 13

/* Upper bounds of the request-duration buckets; the last bucket is +Inf.
 * They reach 10 s so that a write waiting out the 5 s database timeout is
 * not lumped with everything else in +Inf. */
static const uint64_t lat_bounds_us[UQ_LAT_BUCKETS - 1] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

static int status_slot(int status)
{
    for (int i = 0; i < STATUS_OTHER; i++) {
        if (status_codes[i] == status) {
            return i;
        }
    }
    return STATUS_OTHER;
}

void uq_metrics_record(uq_app_t *app, size_t route, int status, uint64_t us)
{
    uq_route_metrics_t *m = &app->routes[route];
    int b = UQ_LAT_BUCKETS - 1;
    for (int i = 0; i < UQ_LAT_BUCKETS - 1; i++) {
        if (us <= lat_bounds_us[i]) {
            b = i;
            break;
        }
    }
    atomic_fetch_add(&m->by_status[status_slot(status)], 1);
    atomic_fetch_add(&m->lat[b], 1);
    atomic_fetch_add(&m->lat_sum_us, us);
    atomic_fetch_add(&m->count, 1);
}

/* ---- a growing text buffer ----------------------------------------------- */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
    int failed;
} sbuf_t;

/* The whole exposition is a few hundred lines; past this something is
 * wrong, and the scrape fails rather than growing without bound. */
#define METRICS_TEXT_MAX (4u * 1024u * 1024u)

static void sb_printf(sbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    if (b->failed) {
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        int w = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)w < b->cap - b->len) {
            b->len += (size_t)w;
            return;
        }
        size_t ncap = b->cap * 2 + (size_t)w;
        char *np = ncap <= METRICS_TEXT_MAX ? realloc(b->p, ncap) : NULL;
        if (np == NULL) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

/* The header of one family. help is plain text: a backslash or a newline in
 * it is escaped as the text format asks. */
static void family(sbuf_t *b, const char *name, const char *type,
                   const char *help)
{
    sb_printf(b, "# HELP %s ", name);
    for (const char *p = help; *p != '\0'; p++) {
        if (*p == '\\') {
            sb_printf(b, "\\\\");
        } else if (*p == '\n') {
            sb_printf(b, "\\n");
        } else {
            sb_printf(b, "%c", *p);
        }
    }
    sb_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* Copies s into out as a label value: backslash, quote and newline escaped,
 * other control bytes dropped, cut to cap. */
static void label_value(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    for (; *s != '\0' && k + 3 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\' || c == '"') {
            out[k++] = '\\';
            out[k++] = (char)c;
        } else if (c == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else if (c >= 0x20 && c != 0x7f) {
            out[k++] = (char)c;
        }
    }
    out[k] = '\0';
}

/* Writes us microseconds as exact decimal seconds ("0.0001", "3e-06" would
 * be rounded by %g past six digits), for `le` labels. */
static void le_seconds(uint64_t us, char *buf, size_t cap)
{
    int n =
        snprintf(buf, cap, "%llu.%06llu", (unsigned long long)(us / 1000000),
                 (unsigned long long)(us % 1000000));
    if (n <= 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return;
    }
    while (n > 1 && buf[n - 1] == '0') {
        buf[--n] = '\0';
    }
    if (buf[n - 1] == '.') {
        buf[n - 1] = '\0';
    }
}

/* ---- HTTP ---------------------------------------------------------------- */

static void prom_http(sbuf_t *b, uq_app_t *app)
{
    size_t n;
    const uq_route_t *rt = uq_api_routes(&n);

    family(b, "utxoiq_http_requests_total", "counter",
           "HTTP requests answered, by route and status (unmatched: no "
           "route; a series appears with its first request).");
    for (size_t i = 0; i <= n; i++) {
        const char *name = i < n ? rt[i].name : "unmatched";
        for (int s = 0; s < UQ_STATUS_SLOTS; s++) {
            uint64_t v = atomic_load(&app->routes[i].by_status[s]);
            if (v == 0) {
                continue;
            }
            if (s == STATUS_OTHER) {
                sb_printf(b,
                          "utxoiq_http_requests_total{route=\"%s\","
                          "status=\"other\"} %llu\n",
                          name, (unsigned long long)v);
            } else {
                sb_printf(b,
                          "utxoiq_http_requests_total{route=\"%s\","
                          "status=\"%d\"} %llu\n",
                          name, status_codes[s], (unsigned long long)v);
            }
        }
    }

    family(b, "utxoiq_http_request_duration_seconds", "histogram",
           "Time from the request's headers to its queued response, by "
           "route.");
    for (size_t i = 0; i <= n; i++) {
        const uq_route_metrics_t *m = &app->routes[i];
        const char *name = i < n ? rt[i].name : "unmatched";
        uint64_t cum = 0;
        uint64_t c[UQ_LAT_BUCKETS];
        /* The buckets are read first and _count is their sum, so the
         * histogram stays consistent while requests keep coming. */
        for (int k = 0; k < UQ_LAT_BUCKETS; k++) {
            c[k] = atomic_load(&m->lat[k]);
            cum += c[k];
        }
        if (cum == 0) {
            continue;
        }
        cum = 0;
        for (int k = 0; k < UQ_LAT_BUCKETS; k++) {
            cum += c[k];
            if (k < UQ_LAT_BUCKETS - 1) {
                char le[32];
                le_seconds(lat_bounds_us[k], le, sizeof(le));
                sb_printf(b,
                          "utxoiq_http_request_duration_seconds_bucket{route="
                          "\"%s\",le=\"%s\"} %llu\n",
                          name, le, (unsigned long long)cum);
            } else {
                sb_printf(b,
                          "utxoiq_http_request_duration_seconds_bucket{route="
                          "\"%s\",le=\"+Inf\"} %llu\n",
                          name, (unsigned long long)cum);
            }
        }
        sb_printf(b,
                  "utxoiq_http_request_duration_seconds_sum{route=\"%s\"} "
                  "%.6f\n",
                  name, (double)atomic_load(&m->lat_sum_us) / 1e6);
        sb_printf(b,
                  "utxoiq_http_request_duration_seconds_count{route=\"%s\"} "
                  "%llu\n",
                  name, (unsigned long long)cum);
    }

    family(b, "utxoiq_http_inflight", "gauge",
           "HTTP requests being read or served right now.");
    sb_printf(b, "utxoiq_http_inflight %d\n", atomic_load(&app->inflight));
}

/* ---- cache --------------------------------------------------------------- */

/*
 * One latency histogram of the library (get_us or set_us of each keyspace)
 * as a Prometheus histogram in seconds. Bucket i counts whole microseconds
 * d < 2^i, that is d <= 2^i - 1, so its `le` is (2^i - 1) µs exactly: bucket
 * 0 (d = 0) is le="0", bucket 1 (d = 1) le="0.000001", bucket 2 (2..3 µs)
 * le="0.000003", and so on; the last bucket, which also takes every slower
 * operation, is +Inf. The _sum takes each observation at the mean of its
 * bucket's integers (the last bucket's lower half), so it is within a
 * factor of 1.5 of the true sum.
 */
static void prom_cache_hist(sbuf_t *b, const char *name, uq_app_t *app,
                            const uc_stats_t *s, int set)
{
    for (int i = 0; i < UQ_KS_COUNT; i++) {
        const uint64_t *h = set ? s[i].set_us : s[i].get_us;
        const char *ks = uc_keyspace_name(app->ks[i]);
        uint64_t cum = 0;
        double sum_us = 0;
        for (int k = 0; k < UC_HIST_BUCKETS; k++) {
            cum += h[k];
            if (k > 0) {
                double lo = (double)((uint64_t)1 << (k - 1));
                double hi = (double)((uint64_t)1 << k) - 1;
                sum_us += (double)h[k] * (lo + hi) / 2;
            }
            if (k < UC_HIST_BUCKETS - 1) {
                char le[32];
                le_seconds(((uint64_t)1 << k) - 1, le, sizeof(le));
                sb_printf(b, "%s_bucket{keyspace=\"%s\",le=\"%s\"} %llu\n",
                          name, ks, le, (unsigned long long)cum);
            } else {
                sb_printf(b, "%s_bucket{keyspace=\"%s\",le=\"+Inf\"} %llu\n",
                          name, ks, (unsigned long long)cum);
            }
        }
        sb_printf(b, "%s_sum{keyspace=\"%s\"} %.6f\n", name, ks, sum_us / 1e6);
        sb_printf(b, "%s_count{keyspace=\"%s\"} %llu\n", name, ks,
                  (unsigned long long)cum);
    }
}

static void prom_cache(sbuf_t *b, uq_app_t *app)
{
    uc_stats_t s[UQ_KS_COUNT], tot;
    char help[512];

    for (int i = 0; i < UQ_KS_COUNT; i++) {
        uc_keyspace_stats(app->ks[i], &s[i]);
    }
    uc_cache_stats(app->cache, &tot);

    /* Per keyspace, then the handle's totals (which also count operations
     * outside any keyspace) as families of their own, so that a sum over
     * the keyspace label never counts anything twice. */
#define KS_FAMILY(name, text)                                                  \
    family(b, "utxoiq_cache_" #name "_total", "counter",                       \
           "Cache " text ", by keyspace.");                                    \
    for (int i = 0; i < UQ_KS_COUNT; i++) {                                    \
        sb_printf(b, "utxoiq_cache_" #name "_total{keyspace=\"%s\"} %llu\n",   \
                  uc_keyspace_name(app->ks[i]),                                \
                  (unsigned long long)s[i].name);                              \
    }
    UC_STATS_COUNTERS(KS_FAMILY)
#undef KS_FAMILY
#define ALL_FAMILY(name, text)                                                 \
    family(b, "utxoiq_cache_all_" #name "_total", "counter",                   \
           "Cache " text ", over the whole cache handle (keyspaced or "        \
           "not).");                                                           \
    sb_printf(b, "utxoiq_cache_all_" #name "_total %llu\n",                    \
              (unsigned long long)tot.name);
    UC_STATS_COUNTERS(ALL_FAMILY)
#undef ALL_FAMILY

    family(b, "utxoiq_cache_hit_ratio", "gauge",
           "hits / (hits + misses) since start, by keyspace; 0 before the "
           "first read (rates are better derived from the counters).");
    for (int i = 0; i < UQ_KS_COUNT; i++) {
        sb_printf(b, "utxoiq_cache_hit_ratio{keyspace=\"%s\"} %.4f\n",
                  uc_keyspace_name(app->ks[i]), uc_stats_hit_rate(&s[i]));
    }
    family(b, "utxoiq_cache_ttl_seconds", "gauge",
           "Time to live of a keyspace's entries.");
    for (int i = 0; i < UQ_KS_COUNT; i++) {
        sb_printf(b, "utxoiq_cache_ttl_seconds{keyspace=\"%s\"} %lld\n",
                  uc_keyspace_name(app->ks[i]),
                  (long long)uc_keyspace_ttl(app->ks[i]));
    }
    family(b, "utxoiq_cache_get_duration_seconds", "histogram",
           "Cache read latency, by keyspace. Buckets are exact; _sum is an "
           "estimate from the buckets (each read at its bucket's mean, "
           "within a factor of 1.5).");
    prom_cache_hist(b, "utxoiq_cache_get_duration_seconds", app, s, 0);
    family(b, "utxoiq_cache_set_duration_seconds", "histogram",
           "Cache store latency, by keyspace. Buckets are exact; _sum is an "
           "estimate from the buckets (each store at its bucket's mean, "
           "within a factor of 1.5).");
    prom_cache_hist(b, "utxoiq_cache_set_duration_seconds", app, s, 1);

    family(b, "utxoiq_cache_pending_invalidations", "gauge",
           "Invalidations not applied yet; reads of their entries go to the "
           "database until they are.");
    sb_printf(b, "utxoiq_cache_pending_invalidations %llu\n",
              (unsigned long long)tot.pending_invalidations);

    label_value(uc_cache_backend_name(app->cache), help, sizeof(help));
    family(b, "utxoiq_cache_info", "gauge",
           "The cache backend and whether its entries are shared between "
           "instances (scope=shared) or per-process (scope=process); always "
           "1.");
    sb_printf(b, "utxoiq_cache_info{backend=\"%s\",scope=\"%s\"} 1\n", help,
              app->cache_local ? "process" : "shared");
}

static void counter1(sbuf_t *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "counter", help);
    sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* The near cache: memory per keyspace, the channel, its flushes and the
 * invalidation lag. */
static void prom_near(sbuf_t *b, uq_app_t *app)
{
    uc_near_usage_t u[UQ_KS_COUNT];
    uc_near_stats_t ns;
    uint64_t cum = 0;
    double sum_us = 0;

    uc_cache_near_stats(app->cache, &ns);
    for (int i = 0; i < UQ_KS_COUNT; i++) {
        uc_keyspace_near_usage(app->ks[i], &u[i]);
    }
#define NEAR_FAMILY(field, type, suffix, text)                                 \
    family(b, "utxoiq_cache_near_" #field suffix, type, text);                 \
    for (int i = 0; i < UQ_KS_COUNT; i++) {                                    \
        sb_printf(b,                                                           \
                  "utxoiq_cache_near_" #field suffix "{keyspace=\"%s\"} "      \
                  "%llu\n",                                                    \
                  uc_keyspace_name(app->ks[i]),                                \
                  (unsigned long long)u[i].field);                             \
    }
    NEAR_FAMILY(budget_bytes, "gauge", "",
                "Bytes the near cache may hold for a keyspace.")
    NEAR_FAMILY(bytes, "gauge", "",
                "Bytes the near cache holds for a keyspace, per-entry "
                "overhead included.")
    NEAR_FAMILY(entries, "gauge", "", "Entries in the near cache.")
    NEAR_FAMILY(inserts, "counter", "_total", "Entries kept in the near cache.")
    NEAR_FAMILY(evictions, "counter", "_total",
                "Near-cache entries dropped to stay within the budget.")
    NEAR_FAMILY(invalidations, "counter", "_total",
                "Near-cache entries dropped by an invalidation.")
    NEAR_FAMILY(refused, "counter", "_total",
                "Values not kept in the near cache (an invalidation raced "
                "the read, or over the budget).")
#undef NEAR_FAMILY
    family(b, "utxoiq_cache_near_channel_state", "gauge",
           "The near cache's invalidation channel: 1 for the current state "
           "(none: no near cache; down and connecting: bypassed).");
    static const char *const CHANNEL[] = {"none", "down", "connecting",
                                          "healthy"};
    for (int i = 0; i <= UC_CHANNEL_HEALTHY; i++) {
        sb_printf(b, "utxoiq_cache_near_channel_state{state=\"%s\"} %d\n",
                  CHANNEL[i], (int)ns.channel == i);
    }
    family(b, "utxoiq_cache_near_flushes_total", "counter",
           "Times the whole near cache was dropped, by reason.");
    sb_printf(b,
              "utxoiq_cache_near_flushes_total{reason=\"null_message\"} %llu\n"
              "utxoiq_cache_near_flushes_total{reason=\"channel_lost\"} %llu\n"
              "utxoiq_cache_near_flushes_total{reason=\"heartbeat_late\"} "
              "%llu\n"
              "utxoiq_cache_near_flushes_total{reason=\"dataset\"} %llu\n"
              "utxoiq_cache_near_flushes_total{reason=\"topology\"} %llu\n",
              (unsigned long long)ns.flushes_null,
              (unsigned long long)ns.flushes_lost,
              (unsigned long long)ns.flushes_heartbeat,
              (unsigned long long)ns.flushes_dataset,
              (unsigned long long)ns.flushes_topology);
    counter1(b, "utxoiq_cache_near_channel_connects_total",
             "Invalidation channel connections made.", ns.channel_connects);
    counter1(b, "utxoiq_cache_near_invalidation_messages_total",
             "Invalidation messages received from Redis.", ns.messages);
    counter1(b, "utxoiq_cache_near_heartbeats_late_total",
             "Probes whose invalidation did not come back in time.",
             ns.heartbeats_late);
    family(b, "utxoiq_cache_near_invalidation_lag_seconds", "histogram",
           "Time from a probe's write to its invalidation's arrival. Buckets "
           "are exact; _sum is an estimate from the buckets.");
    for (int i = 0; i < UC_HIST_BUCKETS; i++) {
        cum += ns.lag_us[i];
        if (i > 0) {
            double lo = (double)((uint64_t)1 << (i - 1));
            double hi = (double)((uint64_t)1 << i) - 1;
            sum_us += (double)ns.lag_us[i] * (lo + hi) / 2;
        }
        if (i < UC_HIST_BUCKETS - 1) {
            char le[32];
            le_seconds(((uint64_t)1 << i) - 1, le, sizeof(le));
            sb_printf(b,
                      "utxoiq_cache_near_invalidation_lag_seconds_bucket{le="
                      "\"%s\"} %llu\n",
                      le, (unsigned long long)cum);
        }
    }
    sb_printf(b,
              "utxoiq_cache_near_invalidation_lag_seconds_bucket{le=\"+Inf\"} "
              "%llu\n"
              "utxoiq_cache_near_invalidation_lag_seconds_sum %.6f\n"
              "utxoiq_cache_near_invalidation_lag_seconds_count %llu\n",
              (unsigned long long)cum, sum_us / 1e6, (unsigned long long)cum);
}

static void gauge1(sbuf_t *b, const char *name, const char *help, double v)
{
    family(b, name, "gauge", help);
    sb_printf(b, "%s %.17g\n", name, v);
}

static void prom_pool(sbuf_t *b, uq_app_t *app)
{
    uc_pool_stats_t ps;
    uc_cache_pool_stats(app->cache, &ps);

    family(b, "utxoiq_cache_pool_connections", "gauge",
           "Redis connections of the pool, by state (all 0 on the memory "
           "backend).");
    sb_printf(b,
              "utxoiq_cache_pool_connections{state=\"in_use\"} %u\n"
              "utxoiq_cache_pool_connections{state=\"idle\"} %u\n",
              ps.in_use, ps.idle);
    gauge1(b, "utxoiq_cache_pool_max_connections",
           "Largest number of Redis connections the pool opens.", ps.max);
    counter1(b, "utxoiq_cache_pool_connects_total", "Redis connections opened.",
             ps.connects);
    counter1(b, "utxoiq_cache_pool_connect_failures_total",
             "Redis connection attempts that failed.", ps.connect_failures);
    counter1(b, "utxoiq_cache_pool_discarded_total",
             "Redis connections closed after an error or a timeout.",
             ps.discarded);
    counter1(b, "utxoiq_cache_pool_idle_closed_total",
             "Redis connections closed for idleness.", ps.idle_closed);
    counter1(b, "utxoiq_cache_pool_waits_total",
             "Connection acquires that had to wait.", ps.waits);
    counter1(b, "utxoiq_cache_pool_acquire_timeouts_total",
             "Connection acquires that gave up.", ps.acquire_timeouts);
    gauge1(b, "utxoiq_cache_breaker_state",
           "Redis circuit breaker: 0 closed, 1 open, 2 half-open.",
           (double)ps.breaker);
    counter1(b, "utxoiq_cache_breaker_opens_total",
             "Times the Redis circuit breaker opened.", ps.breaker_opens);
    counter1(b, "utxoiq_cache_pipelined_batches_total",
             "Writes to Redis that carried the commands of two or more "
             "concurrent calls (auto-pipelining).",
             ps.batches);
    counter1(b, "utxoiq_cache_pipelined_calls_total",
             "Calls sent in those writes.", ps.batched);
    counter1(b, "utxoiq_cache_breaker_rejects_total",
             "Cache calls answered unavailable at once by the open breaker.",
             ps.breaker_rejects);
}

/* The Redis server's own figures (INFO); utxoiq_redis_up is 0 and the rest
 * absent when INFO fails. Nothing on the memory backend. */
static void prom_redis(sbuf_t *b, uq_app_t *app)
{
    uc_server_info_t si;
    char ver[80];

    if (strcmp(uc_cache_backend_name(app->cache), "redis") != 0) {
        return;
    }
    int ok = uc_cache_server_info(app->cache, &si) == UC_OK;
    gauge1(b, "utxoiq_redis_up",
           "1 when the Redis server answered INFO for this scrape, else 0.",
           ok ? 1 : 0);
    if (!ok) {
        return;
    }
    label_value(si.version, ver, sizeof(ver));
    family(b, "utxoiq_redis_info", "gauge",
           "The Redis server's version; always 1.");
    sb_printf(b, "utxoiq_redis_info{version=\"%s\"} 1\n", ver);
    gauge1(b, "utxoiq_redis_memory_used_bytes",
           "Memory the Redis server uses (INFO used_memory).",
           (double)si.used_memory);
    gauge1(b, "utxoiq_redis_memory_max_bytes",
           "The Redis server's maxmemory; 0: unlimited.",
           (double)si.max_memory);
    gauge1(b, "utxoiq_redis_keys",
           "Keys in the selected Redis database (all keyspaces and any "
           "other user of it).",
           (double)si.keys);
    counter1(b, "utxoiq_redis_evicted_keys_total",
             "Keys the Redis server evicted under maxmemory.", si.evicted_keys);
    counter1(b, "utxoiq_redis_expired_keys_total",
             "Keys the Redis server expired.", si.expired_keys);
}

/*
 * The Redis servers behind the cache, one series per node and family with
 * labels node ("host:port") and role. Their number is bounded by the
 * library's UC_REDIS_NODES_MAX; a node changing role (a failover) starts
 * a new series. Nothing on the memory backend.
 */
#define NODE_LABELS_MAX (2 * (UC_HOST_MAX + 8) + 32)

/* The per-node families: name, type, help, and the field they show. */
enum {
    NF_COMMANDS,
    NF_FAILURES,
    NF_MOVED,
    NF_ASK,
    NF_TRYAGAIN,
    NF_DISTRUSTS,
    NF_SLOTS,
    NF_UP,
    NF_TRUSTED,
    NF_COUNT
};

static const struct {
    const char *name;
    const char *type;
    const char *help;
} node_families[NF_COUNT] = {
    {"utxoiq_cache_redis_node_commands_total", "counter",
     "Commands the cache sent to a Redis node."},
    {"utxoiq_cache_redis_node_failures_total", "counter",
     "Calls that broke a connection to a Redis node."},
    {"utxoiq_cache_redis_node_moved_total", "counter",
     "MOVED answers of a Redis Cluster node (a slot changed owner)."},
    {"utxoiq_cache_redis_node_ask_total", "counter",
     "ASK answers of a Redis Cluster node (a slot being migrated)."},
    {"utxoiq_cache_redis_node_tryagain_total", "counter",
     "TRYAGAIN and CLUSTERDOWN answers of a Redis Cluster node."},
    {"utxoiq_cache_redis_node_distrusts_total", "counter",
     "Times a Redis node's dataset was not trusted (its cache keys are "
     "dropped before it serves again)."},
    {"utxoiq_cache_redis_node_slots", "gauge",
     "Hash slots a Redis node serves (16384 for a standalone server, 0 for "
     "a replica)."},
    {"utxoiq_cache_redis_node_up", "gauge",
     "1 when a Redis node's circuit breaker is not open and the cluster "
     "does not mark it failed, else 0."},
    {"utxoiq_cache_redis_node_trusted", "gauge",
     "1 when a Redis node's dataset is trusted, else 0."},
};

static uint64_t node_value(const uc_redis_node_t *o, int f)
{
    switch (f) {
    case NF_COMMANDS:
        return o->commands;
    case NF_FAILURES:
        return o->failures;
    case NF_MOVED:
        return o->moved;
    case NF_ASK:
        return o->ask;
    case NF_TRYAGAIN:
        return o->tryagain;
    case NF_DISTRUSTS:
        return o->distrusts;
    case NF_SLOTS:
        return o->slots;
    case NF_UP:
        return o->pool.breaker != UC_BREAKER_OPEN && !o->failed;
    default:
        return o->trusted != 0;
    }
}

static void prom_redis_nodes(sbuf_t *b, uq_app_t *app)
{
    static const char *const ROLE[] = {"unknown", "primary", "replica"};
    uc_redis_topology_t t;
    uc_redis_node_t *nodes;
    char(*labels)[NODE_LABELS_MAX];
    size_t n;

    if (strcmp(uc_cache_backend_name(app->cache), "redis") != 0) {
        return;
    }
    nodes = calloc(UC_REDIS_NODES_MAX, sizeof(*nodes));
    labels = calloc(UC_REDIS_NODES_MAX, sizeof(*labels));
    if (nodes == NULL || labels == NULL) {
        free(nodes);
        free(labels);
        b->failed = 1;
        return;
    }
    n = uc_cache_redis_nodes(app->cache, &t, nodes, UC_REDIS_NODES_MAX);
    if (n > UC_REDIS_NODES_MAX) {
        n = UC_REDIS_NODES_MAX;
    }
    gauge1(b, "utxoiq_cache_redis_cluster",
           "1 when the cache's Redis is a Redis Cluster, 0 for a standalone "
           "server (or while no server has answered yet).",
           t.mode == UC_REDIS_CLUSTER ? 1 : 0);
    counter1(b, "utxoiq_cache_redis_topology_refreshes_total",
             "Redis Cluster slot maps read (CLUSTER SHARDS).", t.refreshes);
    counter1(b, "utxoiq_cache_redis_topology_refresh_failures_total",
             "Slot map refreshes in which no Redis Cluster node answered.",
             t.refresh_failures);
    counter1(b, "utxoiq_cache_redis_topology_failovers_total",
             "Replicas seen taking over a primary's slots.", t.failovers);
    counter1(b, "utxoiq_cache_redis_topology_slot_moves_total",
             "Hash slots seen changing owner.", t.slot_moves);
    counter1(b, "utxoiq_cache_redis_topology_unrouted_total",
             "Cache calls for a hash slot no Redis Cluster node served.",
             t.unrouted);
    for (size_t i = 0; i < n; i++) {
        char addr[NODE_LABELS_MAX - 32];
        const uc_redis_node_t *o = &nodes[i];
        label_value(o->addr, addr, sizeof(addr));
        snprintf(labels[i], sizeof(labels[i]), "node=\"%s\",role=\"%s\"", addr,
                 ROLE[o->role <= UC_NODE_REPLICA ? o->role : 0]);
    }
    for (int f = 0; f < NF_COUNT; f++) {
        family(b, node_families[f].name, node_families[f].type,
               node_families[f].help);
        for (size_t i = 0; i < n; i++) {
            sb_printf(b, "%s{%s} %llu\n", node_families[f].name, labels[i],
                      (unsigned long long)node_value(&nodes[i], f));
        }
    }
    free(labels);
    free(nodes);
}

/* ---- process ------------------------------------------------------------- */

/* Reads a small /proc file into buf (NUL-terminated); -1 when it cannot. */
static int read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0 ? 0 : -1;
}

/* The standard process_* families, as the Go and Python clients name them,
 * from /proc/self. A figure that cannot be read is left out. */
static void prom_process(sbuf_t *b)
{
    char buf[4096];
    long tick = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long ut = 0, st = 0, start = 0, vsize = 0;
    long long rss = 0;
    int have_stat = 0;

    if (read_small("/proc/self/stat", buf, sizeof(buf)) == 0) {
        /* The command name may hold spaces and parentheses: the fields
         * that follow start after the last ')'. */
        char *p = strrchr(buf, ')');
        if (p != NULL &&
            sscanf(p + 1,
                   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                   "%*d %*d %*d %*d %*d %*d %llu %llu %lld",
                   &ut, &st, &start, &vsize, &rss) == 5) {
            have_stat = tick > 0;
        }
    }
    if (have_stat) {
        family(b, "process_cpu_seconds_total", "counter",
               "User and system CPU time spent.");
        sb_printf(b, "process_cpu_seconds_total %.2f\n",
                  (double)(ut + st) / (double)tick);
        gauge1(b, "process_resident_memory_bytes", "Resident memory size.",
               (double)rss * (double)page);
        gauge1(b, "process_virtual_memory_bytes", "Virtual memory size.",
               (double)vsize);
        unsigned long long btime = 0;
        if (read_small("/proc/stat", buf, sizeof(buf)) == 0) {
            const char *q = strstr(buf, "\nbtime ");
            if (q != NULL && sscanf(q + 7, "%llu", &btime) == 1) {
                gauge1(b, "process_start_time_seconds",
                       "Start time of the process since the Unix epoch.",
                       (double)btime + (double)start / (double)tick);
            }
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] != '.') {
                n++;
            }
        }
        closedir(d);
        /* The directory stream's own descriptor is not the service's. */
        gauge1(b, "process_open_fds", "Open file descriptors.",
               (double)(n > 0 ? n - 1 : 0));
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        gauge1(b, "process_max_fds", "Limit on open file descriptors.",
               (double)rl.rlim_cur);
    }
}

/* ---- the exposition ------------------------------------------------------ */

char *uq_metrics_text(uq_app_t *app, size_t *len)
{
    sbuf_t b = {malloc(32768), 0, 32768, 0};
    char ver[64];
    if (b.p == NULL) {
        return NULL;
    }
    label_value(uc_version(), ver, sizeof(ver));
    family(&b, "utxoiq_build_info", "gauge",
           "The service's library version; always 1.");
    sb_printf(&b, "utxoiq_build_info{version=\"%s\"} 1\n", ver);
    prom_http(&b, app);
    prom_cache(&b, app);
    prom_pool(&b, app);
    prom_near(&b, app);
    prom_redis(&b, app);
    prom_redis_nodes(&b, app);
    gauge1(&b, "utxoiq_database_writable",
           "1 when the last write probe of the database committed, 0 when "
           "it failed (see /readyz).",
           uq_db_write_probe_cached(app->db) == UQ_DB_OK ? 1 : 0);
    uq_log_stats_t ls;
    uq_log_stats(&ls);
    family(&b, "utxoiq_log_lines_total", "counter",
           "Log lines written, by level.");
    for (int i = 0; i < UQ_LOG_NLEVELS; i++) {
        sb_printf(&b, "utxoiq_log_lines_total{level=\"%s\"} %llu\n",
                  uq_log_level_name(i), (unsigned long long)ls.written[i]);
    }
    counter1(&b, "utxoiq_log_lines_suppressed_total",
             "Repeated warning and error lines the rate limit held back.",
             ls.suppressed);
    prom_process(&b);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
