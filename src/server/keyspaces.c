/* SPDX-License-Identifier: MIT */
/*
 * The web-api's keyspace declarations (see keyspaces.h). Values are the
 * final JSON bodies, which fit the library's default 1 MiB cap: a page is at
 * most 1000 metrics of at most a few hundred bytes each.
 */
#include "keyspaces.h"

static const uc_keyspace_def_t keyspaces[UC_KS_COUNT] = {
    [UC_KS_FEEDBACK_STATS] = {"feedback_stats", "feedback:stats:{insight_id}",
                              3600, 0, NULL, NULL, NULL, NULL},
    /* An unknown job id is remembered for 5 s: a client polling a job that
     * does not exist (yet) does not reach the database on every poll. A
     * job's creation invalidates its key, so the 404 never outlives it. */
    [UC_KS_BACKFILL_JOB] = {"backfill_job", "backfill:job:{job_id}", 300, 0,
                            NULL, NULL, NULL, NULL, 0, 5, 0, 0.0},
    /* One entry per series, window start (a whole minute), limit and
     * offset, so an entry holds exactly the answer of that query. */
    [UC_KS_RECENT_METRICS] = {"recent_metrics_page",
                              "metrics:{service}:{metric_type}:recent:"
                              "{window}:{limit}:{offset}",
                              120, 0, NULL, NULL, NULL, NULL},
    [UC_KS_AGG_METRICS] = {"aggregated_metrics",
                           "metrics:{service}:{metric_type}:agg:{interval}:"
                           "{start}:{end}",
                           3600, 0, NULL, NULL, NULL, NULL},
};

const uc_keyspace_def_t *uc_utxoiq_keyspaces(size_t *n)
{
    *n = UC_KS_COUNT;
    return keyspaces;
}
