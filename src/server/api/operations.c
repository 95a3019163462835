/* SPDX-License-Identifier: MIT */
/*
 * The operator's endpoints: retention, the database's own figures (the
 * original's database routes), the cache's statistics and warming, health
 * and readiness, and the Prometheus exposition.
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the database's own figures (the original's database routes) -------- */

/* Naive ISO 8601 in UTC with microseconds, as the original's Python wrote
 * datetime.utcnow().isoformat(). */
static void naive_iso(int64_t us, char *ts, size_t cap)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    size_t n = strftime(ts, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, cap - n, ".%06lld", (long long)(us % 1000000));
}

static double pct_of(uint64_t part, uint64_t whole)
{
    return whole > 0 ? (double)part * 100.0 / (double)whole : 0.0;
}

/* The database's figures now, and the time they were read (naive ISO). */
static void db_figures_now(uq_app_t *app, uq_db_figures_t *f, char *ts,
                           size_t cap)
{
    uq_db_figures(app->db, f);
    naive_iso(uq_now_us(app), ts, cap);
}

/* Connections of the pool open and not lent to a call. */
static int pool_checked_in(const uq_db_figures_t *f)
{
    return f->idle;
}

/* Seconds a call took on average. */
static double avg_query_s(const uq_db_figures_t *f)
{
    return f->queries > 0 ? (double)f->total_us / 1e6 / (double)f->queries
                          : 0.0;
}

void api_h_db_pool(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    uq_db_figures_t f;
    char ts[40];

    (void)req;
    db_figures_now(app, &f, ts, sizeof(ts));
    uq_resp_json(res, 200,
                 json_pack("{s:s,s:{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:s}}",
                           "status", "success", "metrics", "size", f.pool_size,
                           "checked_in", pool_checked_in(&f), "checked_out",
                           f.checked_out, "overflow", 0, "total_connections",
                           f.open, "waits", (json_int_t)f.waits,
                           "wait_timeouts", (json_int_t)f.timeouts,
                           "connect_failures", (json_int_t)f.connect_failures,
                           "dropped", (json_int_t)f.dropped, "timestamp", ts));
}

void api_h_db_queries(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    uq_db_figures_t f;
    char ts[40];

    (void)req;
    db_figures_now(app, &f, ts, sizeof(ts));
    uq_resp_json(res, 200,
                 json_pack("{s:s,s:{s:I,s:I,s:f,s:f,s:f,s:f,s:s}}", "status",
                           "success", "metrics", "total_queries",
                           (json_int_t)f.queries, "slow_queries",
                           (json_int_t)f.slow, "slow_query_percentage",
                           pct_of(f.slow, f.queries), "average_query_time",
                           avg_query_s(&f), "total_query_time",
                           (double)f.total_us / 1e6, "slow_query_threshold",
                           UQ_DB_SLOW_QUERY_US / 1e6, "timestamp", ts));
}

void api_h_db_publish(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    uq_db_figures_t f;
    (void)req;
    uq_db_figures(app->db, &f);
    const struct {
        const char *type, *unit;
        double v;
    } m[] = {
        {"connection_pool_size", "connections", f.pool_size},
        {"connection_pool_checked_in", "connections", pool_checked_in(&f)},
        {"connection_pool_checked_out", "connections", f.checked_out},
        {"connection_pool_overflow", "connections", 0},
        {"connection_pool_total", "connections", f.open},
        {"query_count", "queries", (double)f.queries},
        {"slow_query_count", "queries", (double)f.slow},
        {"slow_query_percentage", "percent", pct_of(f.slow, f.queries)},
        {"average_query_time_ms", "ms", avg_query_s(&f) * 1e3},
    };
    enum { N = sizeof(m) / sizeof(m[0]) };
    uq_db_metric_new_t in[N];
    uq_db_metric_t out[N];
    int64_t now = uq_now_us(app);
    uq_stale_t *stale = uq_stale_new();

    memset(in, 0, sizeof(in));
    memset(out, 0, sizeof(out));
    for (size_t i = 0; i < N; i++) {
        in[i].service_name = "utxoiq-api";
        in[i].metric_type = m[i].type;
        in[i].metric_value = m[i].v;
        in[i].unit = m[i].unit;
        in[i].timestamp = now;
        if (stale != NULL) {
            api_stale_series(app, stale, in[i].service_name, in[i].metric_type);
        }
    }
    int st = STALE_WRITE(app, stale,
                         uq_db_metrics_insert(app->db, in, N, out, stale->inv,
                                              stale->n, stale->ids));
    if (api_db_failed(res, st) == 0) {
        uq_stale_apply(app, stale);
        uq_db_metrics_free(out, N, 0);
        uq_resp_json(res, 200,
                     json_pack("{s:s,s:s}", "status", "success", "message",
                               "Database metrics published"));
        res->cache_control = CC_PRIVATE;
    }
    uq_stale_free(stale);
}

/* ---- retention ----------------------------------------------------------- */

/* The original's retention periods in days (its RetentionConfig). */
#define JOBS_DAYS 180
#define FEEDBACK_DAYS 730
#define METRICS_ARCHIVE_DAYS 90
#define METRICS_DELETE_DAYS 365

static json_t *naive_json(int64_t us)
{
    char ts[40];
    uq_time_format_naive(us, ts, sizeof(ts));
    return json_string(ts);
}

/* One table's result in the original's shape. There is no archive store
 * here: nothing is archived, so archived_count is 0 and archive_uri null. */
static json_t *archived_json(int64_t deleted, int64_t cutoff)
{
    return json_pack("{s:i,s:I,s:n,s:o}", "archived_count", 0, "deleted_count",
                     (json_int_t)deleted, "archive_uri", "cutoff_date",
                     naive_json(cutoff));
}

/*
 * POST /retention/run with the original's periods and answer:
 * {status, message, results: {execution_time, backfill_jobs, feedback,
 * metrics_archive, metrics_delete}}; metrics are deleted after 365 days,
 * and the 90-day archive step reports that it archived nothing. What the
 * run invalidated in the cache is added under "invalidation".
 */
void api_h_retention(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    const int64_t day = INT64_C(86400000000);
    int64_t now = uq_now_us(app);
    uq_db_retention_cutoffs_t c = {now - JOBS_DAYS * day,
                                   now - FEEDBACK_DAYS * day,
                                   now - METRICS_DELETE_DAYS * day};
    uq_db_retention_t r;
    size_t failed = 0;
    (void)req;

    /* Which rows go is known only inside the transaction, so the records
     * name every keyspace whole (a pattern each, which scans): a rare,
     * operator-run call that costs hits once and keeps the invalidation
     * durable. The only write of the service that scans. */
    uq_stale_t *stale = uq_stale_new();
    const char *any[UC_KEYSPACE_FIELDS_MAX] = {NULL};
    if (stale != NULL) {
        for (int k = 0; k < UQ_KS_COUNT; k++) {
            (void)uq_stale_add(app, stale, k, any);
        }
    }
    int st = STALE_WRITE(
        app, stale,
        uq_db_retention_run(app->db, &c, &r, stale->inv, stale->n, stale->ids));
    if (api_db_failed(res, st) != 0) {
        uq_stale_free(stale);
        return;
    }
    failed = uq_stale_apply(app, stale);
    uq_stale_free(stale);
    json_t *results = json_pack(
        "{s:o,s:o,s:o,s:{s:i,s:[],s:o},s:{s:I,s:o}}", "execution_time",
        naive_json(now), "backfill_jobs",
        archived_json(r.jobs_deleted, c.jobs_before), "feedback",
        archived_json(r.feedback_deleted, c.feedback_before), "metrics_archive",
        "archived_count", 0, "archive_uris", "cutoff_date",
        naive_json(now - METRICS_ARCHIVE_DAYS * day), "metrics_delete",
        "deleted_count", (json_int_t)r.metrics_deleted, "cutoff_date",
        naive_json(c.metrics_before));
    uq_resp_json(
        res, 200,
        json_pack("{s:s,s:s,s:o,s:{s:I,s:I,s:I,s:I}}", "status", "success",
                  "message", "Retention policies executed successfully",
                  "results", results, "invalidation", "backfill_jobs",
                  (json_int_t)r.n_job_ids, "insights",
                  (json_int_t)r.n_insight_ids, "metric_series",
                  (json_int_t)r.n_series, "failures", (json_int_t)failed));
    res->cache_control = CC_PRIVATE;
    uq_db_retention_release(&r);
}

/* ---- operations ---------------------------------------------------------- */

/* Every counter of the library's table, by its own name. */
static json_t *stats_json(const uc_stats_t *s)
{
    json_t *o = json_object();

    json_object_set_new(o, "hit_rate", json_real(uc_stats_hit_rate(s)));
#define FIELD(name, help)                                                      \
    json_object_set_new(o, #name, json_integer((json_int_t)s->name));
    UC_STATS_COUNTERS(FIELD)
#undef FIELD
    /* The same reads by tier: a near hit never reaches Redis; every other
     * read that found a value found it in Redis. */
    uint64_t redis_hits = s->hits > s->near_hits ? s->hits - s->near_hits : 0;
    json_object_set_new(o, "tiers",
                        json_pack("{s:{s:I,s:I},s:{s:I,s:I}}", "near", "hits",
                                  (json_int_t)s->near_hits, "misses",
                                  (json_int_t)(redis_hits + s->misses), "redis",
                                  "hits", (json_int_t)redis_hits, "misses",
                                  (json_int_t)s->misses));
    return o;
}

static json_t *near_usage_json(const uc_near_usage_t *u)
{
    return json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "budget_bytes",
        (json_int_t)u->budget_bytes, "bytes", (json_int_t)u->bytes, "entries",
        (json_int_t)u->entries, "inserts", (json_int_t)u->inserts, "evictions",
        (json_int_t)u->evictions, "invalidations", (json_int_t)u->invalidations,
        "refused", (json_int_t)u->refused);
}

/* The keyspace's record of its most read entries: its memory and its ten
 * most read keys. */
static json_t *hot_json(const uc_keyspace_t *ks)
{
    uc_hot_entry_t top[10];
    size_t n = uc_keyspace_hot(ks, top, 10);
    json_t *arr = json_array();

    for (size_t i = 0; i < n && i < 10 && arr != NULL; i++) {
        json_array_append_new(arr,
                              json_pack("{s:s,s:I}", "key", top[i].key, "reads",
                                        (json_int_t)top[i].reads));
    }
    return json_pack("{s:I,s:o}", "bytes",
                     (json_int_t)uc_keyspace_hot_bytes(ks), "top", arr);
}

/* The near cache and its invalidation channel. */
static json_t *near_json(uq_app_t *app)
{
    static const char *const CHANNEL[] = {"none", "down", "connecting",
                                          "healthy"};
    uc_near_stats_t ns;
    uint64_t n = 0;

    uc_cache_near_stats(app->cache, &ns);
    for (int i = 0; i < UC_HIST_BUCKETS; i++) {
        n += ns.lag_us[i];
    }
    json_t *lag = json_pack(
        "{s:I,s:I,s:I,s:I}", "samples", (json_int_t)n, "p50_us_le",
        (json_int_t)uc_stats_percentile_us(ns.lag_us, 0.5), "p99_us_le",
        (json_int_t)uc_stats_percentile_us(ns.lag_us, 0.99), "max_us_le",
        (json_int_t)uc_stats_percentile_us(ns.lag_us, 1.0));
    json_t *o = json_pack(
        "{s:b,s:s,s:o,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I,s:I},s:I,s:I,"
        "s:o}",
        "enabled", ns.enabled, "channel",
        CHANNEL[ns.channel <= UC_CHANNEL_HEALTHY ? ns.channel : 0], "usage",
        near_usage_json(&ns.usage), "channel_connects",
        (json_int_t)ns.channel_connects, "channel_connect_failures",
        (json_int_t)ns.channel_connect_failures, "messages",
        (json_int_t)ns.messages, "keys_invalidated",
        (json_int_t)ns.keys_invalidated, "flushes", "total",
        (json_int_t)ns.flushes, "null_message", (json_int_t)ns.flushes_null,
        "channel_lost", (json_int_t)ns.flushes_lost, "heartbeat_late",
        (json_int_t)ns.flushes_heartbeat, "dataset",
        (json_int_t)ns.flushes_dataset, "topology",
        (json_int_t)ns.flushes_topology, "heartbeats_sent",
        (json_int_t)ns.heartbeats_sent, "heartbeats_late",
        (json_int_t)ns.heartbeats_late, "invalidation_lag", lag);
    return o;
}

/*
 * The Redis servers behind the cache, as the library routes to them: the
 * mode ("standalone", "cluster", "unknown" until a server answered, "none"
 * on the memory backend), the topology counters, and one object per node
 * (primaries first, at most UC_REDIS_NODES_MAX). Apart from the "redis"
 * object so that it stays there when INFO fails, which is when it is most
 * useful.
 */
static json_t *topology_json(uq_app_t *app)
{
    static const char *const MODE[] = {"unknown", "standalone", "cluster"};
    static const char *const ROLE[] = {"unknown", "primary", "replica"};
    static const char *const BREAKER[] = {"closed", "open", "half_open"};
    static const char *const CHANNEL[] = {"none", "down", "connecting",
                                          "healthy"};
    int redis = strcmp(uc_cache_backend_name(app->cache), "redis") == 0;
    uc_redis_topology_t t;
    uc_redis_node_t *nodes = calloc(UC_REDIS_NODES_MAX, sizeof(*nodes));
    size_t n = 0;

    if (nodes == NULL) {
        return NULL;
    }
    n = uc_cache_redis_nodes(app->cache, &t, nodes, UC_REDIS_NODES_MAX);
    if (n > UC_REDIS_NODES_MAX) {
        n = UC_REDIS_NODES_MAX;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n && arr != NULL; i++) {
        const uc_redis_node_t *o = &nodes[i];
        const uc_pool_stats_t *ps = &o->pool;
        json_array_append_new(
            arr,
            json_pack(
                "{s:s,s:o,s:s,s:i,s:b,s:b,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:s,"
                "s:i,s:i,s:I,s:I}",
                "addr", o->addr, "id",
                o->id[0] != '\0' ? json_string(o->id) : json_null(), "role",
                ROLE[o->role <= UC_NODE_REPLICA ? o->role : 0], "slots",
                (int)o->slots, "trusted", o->trusted != 0, "failed",
                o->failed != 0, "channel",
                CHANNEL[o->channel <= UC_CHANNEL_HEALTHY ? o->channel : 0],
                "commands", (json_int_t)o->commands, "failures",
                (json_int_t)o->failures, "moved", (json_int_t)o->moved, "ask",
                (json_int_t)o->ask, "tryagain", (json_int_t)o->tryagain,
                "distrusts", (json_int_t)o->distrusts, "breaker",
                BREAKER[ps->breaker <= UC_BREAKER_HALF_OPEN ? ps->breaker : 0],
                "in_use", (int)ps->in_use, "idle", (int)ps->idle, "connects",
                (json_int_t)ps->connects, "connect_failures",
                (json_int_t)ps->connect_failures));
    }
    free(nodes);
    return json_pack(
        "{s:s,s:I,s:I,s:I,s:I,s:I,s:o}", "mode",
        !redis ? "none" : MODE[t.mode <= UC_REDIS_CLUSTER ? t.mode : 0],
        "refreshes", (json_int_t)t.refreshes, "refresh_failures",
        (json_int_t)t.refresh_failures, "failovers", (json_int_t)t.failovers,
        "slot_moves", (json_int_t)t.slot_moves, "unrouted",
        (json_int_t)t.unrouted, "nodes", arr);
}

void api_h_cache_stats(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    int redis = strcmp(uc_cache_backend_name(app->cache), "redis") == 0;
    json_t *kss = json_object();
    uc_stats_t tot;
    uc_pool_stats_t ps;
    uc_server_info_t si;
    (void)req;

    for (int i = 0; i < UQ_KS_COUNT; i++) {
        uc_stats_t s;
        uc_keyspace_stats(app->ks[i], &s);
        json_t *o = stats_json(&s);
        json_object_set_new(o, "ttl_s",
                            json_integer(uc_keyspace_ttl(app->ks[i])));
        uc_near_usage_t u;
        uc_keyspace_near_usage(app->ks[i], &u);
        json_object_set_new(o, "near", near_usage_json(&u));
        json_object_set_new(o, "hot", hot_json(app->ks[i]));
        if (redis) {
            uint64_t keys = 0;
            if (uc_keyspace_count(app->ks[i], &keys) == UC_OK) {
                json_object_set_new(o, "keys", json_integer((json_int_t)keys));
            } else {
                json_object_set_new(o, "keys", json_null());
            }
        }
        json_object_set_new(kss, uc_keyspace_name(app->ks[i]), o);
    }
    uc_cache_stats(app->cache, &tot);
    uc_cache_pool_stats(app->cache, &ps);
    static const char *const BREAKER[] = {"closed", "open", "half_open"};
    json_t *totals = stats_json(&tot);
    json_object_set_new(totals, "pending_invalidations",
                        json_integer((json_int_t)tot.pending_invalidations));
    json_t *j = json_pack(
        "{s:s,s:o,s:o,s:{s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:I},"
        "s:{s:I,s:I,s:I}}",
        "backend", uc_cache_backend_name(app->cache), "totals", totals,
        "keyspaces", kss, "pool", "max", (int)ps.max, "in_use", (int)ps.in_use,
        "idle", (int)ps.idle, "connects", (json_int_t)ps.connects,
        "connect_failures", (json_int_t)ps.connect_failures, "discarded",
        (json_int_t)ps.discarded, "waits", (json_int_t)ps.waits,
        "acquire_timeouts", (json_int_t)ps.acquire_timeouts, "breaker",
        BREAKER[ps.breaker <= UC_BREAKER_HALF_OPEN ? ps.breaker : 0],
        "breaker_opens", (json_int_t)ps.breaker_opens, "breaker_rejects",
        (json_int_t)ps.breaker_rejects, "pipelined_batches",
        (json_int_t)ps.batches, "pipelined_calls", (json_int_t)ps.batched,
        "invalidation_queue", "pending", (json_int_t)tot.pending_invalidations,
        "failed", (json_int_t)tot.invalidation_failures, "retried",
        (json_int_t)tot.invalidations_applied_late);
    json_object_set_new(j, "scope",
                        json_string(app->cache_local ? "process" : "shared"));
    json_object_set_new(j, "near", near_json(app));
    json_object_set_new(j, "topology", topology_json(app));
    if (redis) {
        if (uc_cache_server_info(app->cache, &si) == UC_OK) {
            json_object_set_new(
                j, "redis",
                json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "version", si.version,
                          "used_memory", (json_int_t)si.used_memory,
                          "max_memory", (json_int_t)si.max_memory, "keys",
                          (json_int_t)si.keys, "evicted_keys",
                          (json_int_t)si.evicted_keys, "expired_keys",
                          (json_int_t)si.expired_keys));
        } else {
            json_object_set_new(j, "redis", json_null());
        }
    }
    uq_resp_json(res, 200, j);
}

void api_h_cache_warm(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    int rc = uc_cache_warm(app->cache);
    (void)req;

    if (rc == UC_OK) {
        uq_resp_json(res, 202, json_pack("{s:s}", "status", "queued"));
    } else if (rc == UC_EUNAVAILABLE) {
        uq_resp_error(res, 409, "a cache warm is queued or running already");
    } else if (rc == UC_ENOTSUP) {
        uq_resp_error(res, 409,
                      "cache warming is off (UTXOCACHE_WARM_TOP=0 or no "
                      "keyspace with a loader)");
    } else {
        uq_resp_error(res, 500, "cache warm: %s", uc_strerror(rc));
    }
    res->cache_control = CC_PRIVATE;
}

void api_h_cache_hot(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    const char *names[UQ_KS_COUNT + 1];
    const char *name = NULL;
    const uc_keyspace_t *ks = NULL;
    page_t pg;

    for (int i = 0; i < UQ_KS_COUNT; i++) {
        names[i] = uc_keyspace_name(app->ks[i]);
    }
    names[UQ_KS_COUNT] = NULL;
    res->cache_control = CC_PRIVATE;
    if (api_q_enum(req, "keyspace", names, &name, res) != 0 ||
        api_q_page(req, 100, 10000, &pg, res) != 0) {
        return;
    }
    if (name == NULL) {
        uq_resp_error(res, 400,
                      "keyspace is required: one of the names "
                      "in /api/v1/monitoring/cache/stats");
        return;
    }
    for (int i = 0; i < UQ_KS_COUNT; i++) {
        if (names[i] == name) {
            ks = app->ks[i];
        }
    }
    size_t want = (size_t)(pg.limit + pg.offset);
    uc_hot_entry_t *top = malloc(want * sizeof(*top));
    if (top == NULL) {
        uq_resp_error(res, 503, "out of memory");
        return;
    }
    size_t held = uc_keyspace_hot(ks, top, want);
    size_t n = held < want ? held : want;
    json_t *arr = json_array();
    for (size_t i = (size_t)pg.offset; i < n && arr != NULL; i++) {
        json_array_append_new(arr,
                              json_pack("{s:s,s:I,s:I}", "key", top[i].key,
                                        "reads", (json_int_t)top[i].reads,
                                        "error", (json_int_t)top[i].error));
    }
    free(top);
    uq_resp_json(res, 200,
                 json_pack("{s:s,s:I,s:I,s:o}", "keyspace", name, "held",
                           (json_int_t)held, "bytes",
                           (json_int_t)uc_keyspace_hot_bytes(ks), "top", arr));
}

void api_h_healthz(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    (void)req;
    uq_resp_json(
        res, 200,
        json_pack("{s:s,s:I}", "status", "ok", "uptime_s",
                  (json_int_t)((uq_now_us(app) - app->started_at) / 1000000)));
}

void api_h_health(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    char ts[40];

    (void)req;
    naive_iso(uq_now_us(app), ts, sizeof(ts));
    uq_resp_json(res, 200,
                 json_pack("{s:s,s:s,s:s}", "status", "healthy", "timestamp",
                           ts, "version", UC_VERSION_STRING));
}

void api_h_readyz(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    uint64_t rtt = 0;
    (void)req;
    int dbst = uq_db_ping(app->db);
    int wst = dbst == UQ_DB_OK ? uq_db_write_probe(app->db, 1000) : dbst;
    int cst = uc_cache_ping(app->cache, &rtt);
    int draining = atomic_load(&app->draining);
    int ready = dbst == UQ_DB_OK && wst == UQ_DB_OK && !draining;
    const char *dbname = uq_db_backend_name(app->db);
    json_t *j = json_pack(
        "{s:s,s:{s:s,s:s,s:b},s:{s:s,s:s,s:I,s:s}}", "status",
        ready ? "ready" : "not ready", "database", "backend", dbname, "status",
        wst == UQ_DB_OK ? "ok" : uq_db_strerror(wst), "writable",
        wst == UQ_DB_OK, "cache", "backend", uc_cache_backend_name(app->cache),
        "status", cst == UC_OK ? "ok" : uc_strerror(cst), "rtt_us",
        (json_int_t)rtt, "scope", app->cache_local ? "process" : "shared");
    if (j != NULL && !ready) {
        char detail[160];
        if (wst != UQ_DB_OK) {
            snprintf(detail, sizeof(detail), "database '%s': %s", dbname,
                     uq_db_strerror(wst));
        } else {
            snprintf(detail, sizeof(detail), "draining");
        }
        json_object_set_new(j, "detail", json_string(detail));
    }
    if (app->cache_local && j != NULL) {
        json_object_set_new(
            json_object_get(j, "cache"), "warning",
            json_string("the memory backend is per-process: instances share "
                        "no entries and see each other's writes only through "
                        "the invalidation log, within its tail interval"));
    }
    uq_resp_json(res, ready ? 200 : 503, j);
}

void api_h_prometheus(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    size_t len = 0;
    char *text = uq_metrics_text(app, &len);
    (void)req;
    if (text == NULL) {
        uq_resp_error(res, 500, "out of memory");
        return;
    }
    res->status = 200;
    res->body = text;
    res->len = len;
    res->body_free = free;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
