/* SPDX-License-Identifier: MIT */
/*
 * Demo data for `utxoiq-api seed`: insights with ratings, comments and flags
 * from a few dozen users, a handful of backfill jobs in every state, and a
 * day of metrics from four services. Values come from a fixed-seed
 * generator, so two seeded databases hold the same figures.
 */
#include "app.h"

#include <stdlib.h>
#include <string.h>

static uint64_t next(uint64_t *s)
{
    /* xorshift64*: small, fast, and good enough for demo figures. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static int seed_feedback(uq_app_t *app, int insights, uint64_t *rng, long *rows)
{
    static const char *const comments[] = {
        "Spot on, the whale moved right after.",
        "Useful context on the mempool backlog.",
        "Numbers look off compared to my node.",
        "Great call on the miner outflows.",
        "Would like more detail on the exchange cluster.",
    };
    static const char *const flags[] = {"inaccurate", "misleading", "spam"};
    int64_t now = uq_now_us(app);
    for (int i = 0; i < insights; i++) {
        char insight[32];
        snprintf(insight, sizeof(insight), "insight-%05d", i + 1);
        int users = 1 + (int)(next(rng) % 4);
        for (int u = 0; u < users; u++) {
            char user[32];
            uq_db_feedback_write_t w;
            uq_db_feedback_t out;
            snprintf(user, sizeof(user), "demo-user-%02d",
                     (int)((unsigned)(i * 7 + u * 13) % 60) + 1);
            memset(&w, 0, sizeof(w));
            w.insight_id = insight;
            w.user_id = user;
            w.now = now - (int64_t)(next(rng) % 86400) * 1000000;
            uint64_t r = next(rng);
            w.fields = UQ_DB_FB_RATING;
            w.rating = 1 + (int)(r % 5);
            if (r % 3 == 0) {
                w.has_comment = 1;
                w.comment = comments[(r >> 8) % 5];
            }
            if (uq_db_feedback_upsert(app->db, &w, &out, NULL, 0, NULL) !=
                UQ_DB_OK) {
                return -1;
            }
            (*rows)++;
            if (r % 17 == 0) {
                memset(&w, 0, sizeof(w));
                w.fields = UQ_DB_FB_FLAG;
                w.insight_id = insight;
                w.user_id = user;
                w.flag_type = flags[(r >> 16) % 3];
                w.now = now;
                if (uq_db_feedback_upsert(app->db, &w, &out, NULL, 0, NULL) !=
                    UQ_DB_OK) {
                    return -1;
                }
            }
        }
    }
    return 0;
}

static int seed_jobs(uq_app_t *app)
{
    static const char *const statuses[] = {"completed", "completed", "running",
                                           "running",   "failed",    "paused"};
    int64_t now = uq_now_us(app);
    for (int i = 0; i < 6; i++) {
        uq_db_job_t j;
        memset(&j, 0, sizeof(j));
        if (uq_uuid_new(j.id) != 0) {
            return -1;
        }
        snprintf(j.job_type, sizeof(j.job_type), "%s",
                 i % 2 == 0 ? "blocks" : "insights");
        j.start_block = 800000 + i * 10000;
        j.end_block = j.start_block + 10000;
        snprintf(j.status, sizeof(j.status), "%s", statuses[i]);
        int done = strcmp(j.status, "completed") == 0;
        j.progress_percentage = done ? 100.0 : 10.0 * (i + 1);
        j.current_block =
            j.start_block + (int64_t)(j.progress_percentage * 100.0);
        j.started_at = now - (int64_t)(6 - i) * 3600 * 1000000;
        j.estimated_completion =
            done ? UQ_DB_NULL_TIME : now + (int64_t)3600 * 1000000;
        j.completed_at = done || strcmp(j.status, "failed") == 0
                             ? j.started_at + (int64_t)1800 * 1000000
                             : UQ_DB_NULL_TIME;
        if (strcmp(j.status, "failed") == 0) {
            j.has_error_message = 1;
            snprintf(j.error_message, sizeof(j.error_message),
                     "bitcoind RPC timed out at block %lld",
                     (long long)j.current_block);
        }
        j.has_created_by = 1;
        snprintf(j.created_by, sizeof(j.created_by), "demo-admin");
        if (uq_db_job_create(app->db, &j, NULL, 0, NULL) != UQ_DB_OK) {
            return -1;
        }
    }
    return 0;
}

static int seed_metrics(uq_app_t *app, uint64_t *rng, long *rows)
{
    static const char *const services[] = {"web-api", "insight-generator",
                                           "chain-ingestor", "notifier"};
    static const char *const types[] = {"latency_ms", "cpu_percent",
                                        "requests_per_min"};
    static const char *const units[] = {"ms", "percent", "count"};
    enum { STEP_S = 300, BATCH = 500 };
    int64_t now = uq_now_us(app);
    uq_db_metric_new_t in[BATCH];
    uq_db_metric_t out[BATCH];
    size_t n = 0;
    for (int t = 86400; t > 0; t -= STEP_S) {
        for (int s = 0; s < 4; s++) {
            for (int k = 0; k < 3; k++) {
                double base = k == 0 ? 40.0 : k == 1 ? 35.0 : 1200.0;
                in[n].service_name = services[s];
                in[n].metric_type = types[k];
                in[n].unit = units[k];
                in[n].metric_value =
                    base * (0.5 + (double)(next(rng) % 1000) / 1000.0);
                in[n].timestamp = now - (int64_t)t * 1000000;
                in[n].metadata = k == 0 ? "{\"region\":\"eu-west\"}" : NULL;
                if (++n == BATCH) {
                    if (uq_db_metrics_insert(app->db, in, n, out, NULL, 0,
                                             NULL) != UQ_DB_OK) {
                        return -1;
                    }
                    uq_db_metrics_free(out, n, 0);
                    *rows += (long)n;
                    n = 0;
                }
            }
        }
    }
    if (n > 0) {
        if (uq_db_metrics_insert(app->db, in, n, out, NULL, 0, NULL) !=
            UQ_DB_OK) {
            return -1;
        }
        uq_db_metrics_free(out, n, 0);
        *rows += (long)n;
    }
    return 0;
}

/*
 * Seeding writes thousands of rows outside the handlers: instead of one
 * record per write, it records every keyspace whole in the invalidation log,
 * so services already running on this database drop what they cached.
 */
static int record_everything_stale(uq_app_t *app)
{
    uc_config_t cfg = UC_CONFIG_INIT;
    uc_cache_t *targets = NULL;
    const uc_keyspace_def_t *defs;
    const char *any[UC_KEYSPACE_FIELDS_MAX] = {NULL};
    char buf[UQ_KS_COUNT][UC_KEY_MAX + 1];
    uq_db_inval_t inv[UQ_KS_COUNT];
    size_t n, len;
    int rc = -1;

    /* Only to build the targets: a process-local store, never used. */
    cfg.backend = UC_BACKEND_MEMORY;
    defs = uq_utxoiq_keyspaces(&n);
    if (uc_cache_create(&cfg, &targets, NULL, 0) != UC_OK ||
        uc_cache_add_keyspaces(targets, defs, n, NULL, 0) != UC_OK) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        uc_keyspace_t *ks = uc_cache_keyspace(targets, defs[i].name);
        if (uc_keyspace_target(ks, any, uc_keyspace_nfields(ks), buf[i],
                               sizeof(buf[i]), &len) != UC_OK) {
            goto done;
        }
        inv[i].keyspace = defs[i].name;
        inv[i].target = buf[i];
    }
    rc = uq_db_inval_append(app->db, inv, n, uq_now_us(app), NULL) == UQ_DB_OK
             ? 0
             : -1;
done:
    uc_cache_destroy(targets);
    return rc;
}

int uq_seed(uq_app_t *app, int insights, FILE *out)
{
    uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);
    long fb = 0;
    long metrics = 0;
    if (seed_feedback(app, insights, &rng, &fb) != 0 || seed_jobs(app) != 0 ||
        seed_metrics(app, &rng, &metrics) != 0 ||
        record_everything_stale(app) != 0) {
        fprintf(stderr, "seed: database write failed\n");
        return -1;
    }
    fprintf(out,
            "seeded %d insights (%ld feedback rows), 6 backfill jobs, %ld "
            "metrics\n",
            insights, fb, metrics);
    return 0;
}
