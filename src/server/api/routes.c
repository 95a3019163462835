/* SPDX-License-Identifier: MIT */
/*
 * The route table the router (http.c) serves, and the keyspaces' loaders:
 * one place that names every endpoint and every cached answer's builder.
 */
#include "api.h"


static const uc_route_t routes[] = {
    {"POST", "/api/v1/feedback/rate", UC_ROLE_USER, api_h_rate, "feedback_rate",
     0},
    {"POST", "/api/v1/feedback/comment", UC_ROLE_USER, api_h_comment,
     "feedback_comment", 0},
    {"POST", "/api/v1/feedback/flag", UC_ROLE_USER, api_h_flag, "feedback_flag",
     0},
    {"GET", "/api/v1/feedback/stats", 0, api_h_stats, "feedback_stats", 0},
    {"GET", "/api/v1/feedback/stats/{}", 0, api_h_stats, "feedback_stats_path",
     0},
    {"GET", "/api/v1/feedback/comments", 0, api_h_comments, "feedback_comments",
     0},
    {"GET", "/api/v1/feedback/user", UC_ROLE_USER, api_h_user_feedback,
     "feedback_user", 0},
    {"POST", "/api/v1/monitoring/backfill/start", UC_ROLE_ADMIN,
     api_h_backfill_start, "backfill_start", 0},
    {"POST", "/api/v1/monitoring/backfill/progress", UC_ROLE_SERVICE,
     api_h_backfill_progress, "backfill_progress", 0},
    {"GET", "/api/v1/monitoring/backfill/status", 0, api_h_backfill_list,
     "backfill_status", 0},
    {"GET", "/api/v1/monitoring/backfill/{}", 0, api_h_backfill_get,
     "backfill_job", 0},
    {"POST", "/api/v1/monitoring/metrics", UC_ROLE_SERVICE, api_h_metric,
     "metrics_post", 0},
    {"POST", "/api/v1/monitoring/metrics/batch", UC_ROLE_SERVICE,
     api_h_metric_batch, "metrics_batch", UC_API_BATCH_BODY_MAX},
    {"GET", "/api/v1/monitoring/metrics", 0, api_h_metrics_list, "metrics_list",
     0},
    {"GET", "/api/v1/monitoring/metrics/aggregate", 0, api_h_metrics_agg,
     "metrics_aggregate", 0},
    {"POST", "/api/v1/monitoring/retention/run", UC_ROLE_ADMIN, api_h_retention,
     "retention_run", 0},
    {"GET", "/api/v1/monitoring/cache/stats", 0, api_h_cache_stats,
     "cache_stats", 0},
    {"GET", "/api/v1/monitoring/database/pool", UC_ROLE_ADMIN, api_h_db_pool,
     "database_pool", 0},
    {"GET", "/api/v1/monitoring/database/queries", UC_ROLE_ADMIN,
     api_h_db_queries, "database_queries", 0},
    {"POST", "/api/v1/monitoring/database/publish-metrics", UC_ROLE_SERVICE,
     api_h_db_publish, "database_publish", 0},
    {"POST", "/api/v1/monitoring/cache/warm", UC_ROLE_ADMIN, api_h_cache_warm,
     "cache_warm", 0},
    {"GET", "/api/v1/monitoring/cache/history", 0, uc_history_handler,
     "cache_history", 0},
    {"GET", "/dashboard", 0, uc_dashboard_page, "dashboard", 0},
    {"GET", "/dashboard/{}", 0, uc_dashboard_file, "dashboard_file", 0},
    {"GET", "/health", 0, api_h_health, "health", 0},
    {"GET", "/healthz", 0, api_h_healthz, "healthz", 0},
    {"GET", "/readyz", 0, api_h_readyz, "readyz", 0},
    {"GET", "/metrics", 0, api_h_prometheus, "metrics", 0},
};

const uc_route_t *uc_api_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}

/* ---- the keyspaces' loaders ---------------------------------------------- */

/* Each builds the answer of one entry from its key fields (as the handler
 * above wrote them) and nothing else; arg is the app. */

uc_loader_fn uc_api_loader(int ks)
{
    switch (ks) {
    case UC_KS_FEEDBACK_STATS:
        return api_load_stats;
    case UC_KS_BACKFILL_JOB:
        return api_load_job;
    case UC_KS_RECENT_METRICS:
        return api_load_metrics;
    case UC_KS_AGG_METRICS:
        return api_load_agg;
    case UC_KS_FEEDBACK_COMMENTS:
        return api_load_comments;
    case UC_KS_FEEDBACK_USER:
        return api_load_user_feedback;
    case UC_KS_BACKFILL_JOBS:
        return api_load_jobs;
    case UC_KS_METRICS_WINDOW:
        return api_load_window;
    default:
        return NULL;
    }
}
