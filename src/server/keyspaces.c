/* SPDX-License-Identifier: MIT */
/*
 * The web-api's keyspace declarations (see keyspaces.h). Values are the
 * final JSON bodies, which fit the library's default 1 MiB cap: a page is at
 * most 1000 metrics of at most a few hundred bytes each.
 *
 * Entries carry tags, so that a client's write invalidates what it changed
 * with one write per tag, never by a scan: the entity it touched
 * (insight:{insight_id}, user:{user_id}, metrics:{service}:{metric_type},
 * backfill:jobs for every list of jobs). There is no tag for a whole
 * family: on Redis Cluster a tag's version lives on one primary, and a tag
 * every entry carried would make every entry a miss while that primary
 * fails over, and send every Redis hit to it. Retention, an operator's
 * rare run, invalidates whole keyspaces by pattern instead.
 */
#include "keyspaces.h"

static const char *const TAGS_INSIGHT[] = {"insight:{insight_id}", NULL};
static const char *const TAGS_USER[] = {"user:{user_id}", NULL};
static const char *const TAGS_JOBS[] = {"backfill:jobs", NULL};
static const char *const TAGS_SERIES[] = {"metrics:{service}:{metric_type}",
                                          NULL};

static const uc_keyspace_def_t keyspaces[UQ_KS_COUNT] = {
    [UQ_KS_FEEDBACK_STATS] = {"feedback_stats", "feedback:stats:{insight_id}",
                              3600, 0, NULL, NULL, NULL, NULL, 0, 0, 0, 0.0,
                              TAGS_INSIGHT},
    /* An unknown job id is remembered for 5 s: a client polling a job that
     * does not exist (yet) does not reach the database on every poll. A
     * job's creation invalidates its key, so the 404 never outlives it. */
    [UQ_KS_BACKFILL_JOB] = {"backfill_job", "backfill:job:{job_id}", 300, 0,
                            NULL, NULL, NULL, NULL, 0, 5, 0, 0.0, NULL},
    /* One entry per series, window start (a whole minute), limit and
     * offset, so an entry holds exactly the answer of that query. */
    [UQ_KS_RECENT_METRICS] = {"recent_metrics_page",
                              "metrics:{service}:{metric_type}:recent:"
                              "{window}:{limit}:{offset}",
                              120, 0, NULL, NULL, NULL, NULL, 0, 0, 0, 0.0,
                              TAGS_SERIES},
    [UQ_KS_AGG_METRICS] = {"aggregated_metrics",
                           "metrics:{service}:{metric_type}:agg:{interval}:"
                           "{start}:{end}",
                           3600, 0, NULL, NULL, NULL, NULL, 0, 0, 0, 0.0,
                           TAGS_SERIES},
    /* A page of an insight's comments. */
    [UQ_KS_FEEDBACK_COMMENTS] = {.name = "feedback_comments",
                                 .pattern = "feedback:comments:{insight_id}:"
                                            "{limit}:{offset}",
                                 .ttl_s = 600,
                                 .tags = TAGS_INSIGHT},
    /* A page of one user's feedback (private: the key names the user). */
    [UQ_KS_FEEDBACK_USER] = {.name = "feedback_user",
                             .pattern =
                                 "feedback:user:{user_id}:{limit}:{offset}",
                             .ttl_s = 600,
                             .tags = TAGS_USER},
    /* A page of the job list; status and job_type are "-" when not given,
     * else "=" and the value, so that no value stands for "not given". */
    [UQ_KS_BACKFILL_JOBS] = {.name = "backfill_jobs",
                             .pattern = "backfill:jobs:{status}:{job_type}:"
                                        "{limit}:{offset}",
                             .ttl_s = 300,
                             .tags = TAGS_JOBS},
    /* A page of a series' metrics in an explicit window; start and end in
     * µs since the epoch, "-" when not given. */
    [UQ_KS_METRICS_WINDOW] = {.name = "metrics_window",
                              .pattern = "metrics:{service}:{metric_type}:"
                                         "window:{start}:{end}:{limit}:"
                                         "{offset}",
                              .ttl_s = 600,
                              .tags = TAGS_SERIES},
};

const uc_keyspace_def_t *uq_utxoiq_keyspaces(size_t *n)
{
    *n = UQ_KS_COUNT;
    return keyspaces;
}
