/* SPDX-License-Identifier: MIT */
/*
 * The utxoIQ web-api's cache keyspaces: declared once, here, and used by
 * both the service (utxoiq-api) and the operator's command line (utxocache),
 * so that `utxocache invalidate --keyspace NAME` reaches exactly the entries
 * the service caches. The library itself knows no application keyspace.
 */
#ifndef UQ_SERVER_KEYSPACES_H
#define UQ_SERVER_KEYSPACES_H

#include <stddef.h>

#include <utxocache/utxocache.h>

enum {
    UQ_KS_FEEDBACK_STATS = 0,
    UQ_KS_BACKFILL_JOB,
    UQ_KS_RECENT_METRICS,
    UQ_KS_AGG_METRICS,
    UQ_KS_FEEDBACK_COMMENTS,
    UQ_KS_FEEDBACK_USER,
    UQ_KS_BACKFILL_JOBS,
    UQ_KS_METRICS_WINDOW,
    UQ_KS_COUNT
};

/*
 * The table, indexed by the UC_KS_* values, with the existing service's
 * TTLs, and the tags each entry carries:
 *   feedback_stats       feedback:stats:{insight_id}                 3600 s
 *   backfill_job         backfill:job:{job_id}                        300 s
 *   recent_metrics_page  metrics:{service}:{metric_type}:recent:
 *                        {window}:{limit}:{offset}                    120 s
 *   aggregated_metrics   metrics:{service}:{metric_type}:agg:{interval}:
 *                        {start}:{end}                               3600 s
 *   feedback_comments    feedback:comments:{insight_id}:{limit}:{offset}
 *                                                                     600 s
 *   feedback_user        feedback:user:{user_id}:{limit}:{offset}     600 s
 *   backfill_jobs        backfill:jobs:{status}:{job_type}:{limit}:{offset}
 *                                                                     300 s
 *   metrics_window       metrics:{service}:{metric_type}:window:{start}:
 *                        {end}:{limit}:{offset}                       600 s
 * Tags: insight:{insight_id} (stats, comments), user:{user_id},
 * backfill:jobs (job lists), metrics:{service}:{metric_type} (recent pages,
 * aggregates, windows); backfill_job has none (its writes name its key).
 * Sets *n to UQ_KS_COUNT.
 */
const uc_keyspace_def_t *uq_utxoiq_keyspaces(size_t *n);

#endif
