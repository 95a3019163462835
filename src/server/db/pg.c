/* SPDX-License-Identifier: MIT */
/*
 * The PostgreSQL driver of the database layer (db.h), through libpq. The
 * layer's pool (pool.c) lends a connection to one method call, waiting at
 * most timeout_ms for a free slot; connections are made lazily, so the
 * service starts serving again on its own once the database is back. A
 * connection that failed, timed out or was left inside a transaction is
 * closed instead of returned, and an idle one is checked for a hang-up from
 * the server before it is lent out (a restarted server closes every socket).
 * Rows are read by the layer's row mapping (rows.c), SQLSTATEs mapped by its
 * error table (errors.c), the schema applied by its runner (migrate.c).
 * Each query runs through the asynchronous libpq calls with a client-side
 * deadline, because statement_timeout cannot help when the server itself is
 * frozen. Every value is a bound parameter of PQsendQueryParams in text
 * form; SQL text is constant. Timestamps are timestamptz and cross the wire
 * as bigint microseconds since the epoch, so no time zone is ever involved.
 * The connection string holds the password: it lives only in the parameter
 * arrays given to libpq, and logs and errors show the URL with "***".
 * A single-statement write that carries invalidation records becomes one
 * statement still: the write in a data-modifying CTE and the records
 * inserted beside it from two text arrays, so the pair commits or fails
 * together in one round trip.
 */
#include "db.h"
#include "db_int.h"
#include "uuid.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

/* Time granted past statement_timeout before the client gives up on a
 * reply: the server's own timeout should fire first and say so. */
#define PG_GRACE_MS 1000
#define PG_MAX_PARAMS 16

/* ---- migrations ---------------------------------------------------------- */

/*
 * The same versions as the SQLite backend, in PostgreSQL's dialect: identity
 * ids, timestamptz, a real uuid type, and json (not jsonb) for metadata so
 * that the text given is the text returned, byte for byte, as on SQLite.
 * Each statement runs on its own (PQsendQueryParams takes one statement).
 */
static const char *const migration_1[] = {
    "CREATE TABLE backfill_jobs ("
    " id uuid PRIMARY KEY,"
    " job_type text NOT NULL CHECK (length(job_type) BETWEEN 1 AND 128),"
    " start_block bigint NOT NULL CHECK (start_block >= 0),"
    " end_block bigint NOT NULL CHECK (end_block >= start_block),"
    " current_block bigint NOT NULL CHECK (current_block >= 0),"
    " status text NOT NULL DEFAULT 'running' CHECK (status IN"
    "  ('running', 'completed', 'failed', 'paused')),"
    " progress_percentage double precision NOT NULL DEFAULT 0"
    "  CHECK (progress_percentage BETWEEN 0 AND 100),"
    " estimated_completion timestamptz,"
    " error_message text CHECK (error_message IS NULL OR"
    "  length(error_message) <= 1000),"
    " started_at timestamptz NOT NULL,"
    " completed_at timestamptz,"
    " created_by text CHECK (created_by IS NULL OR"
    "  length(created_by) BETWEEN 1 AND 128))",
    "CREATE INDEX backfill_jobs_started ON backfill_jobs (started_at, id)",
    "CREATE INDEX backfill_jobs_status ON backfill_jobs (status, started_at)",
    "CREATE TABLE insight_feedback ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " insight_id text NOT NULL CHECK (length(insight_id) BETWEEN 1 AND 128),"
    " user_id text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),"
    " rating smallint CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),"
    " comment text CHECK (comment IS NULL OR"
    "  length(comment) BETWEEN 1 AND 1000),"
    " flag_type text CHECK (flag_type IS NULL OR flag_type IN"
    "  ('inaccurate', 'misleading', 'spam')),"
    " flag_reason text CHECK (flag_reason IS NULL OR"
    "  length(flag_reason) <= 500),"
    " created_at timestamptz NOT NULL,"
    " updated_at timestamptz NOT NULL,"
    " CONSTRAINT insight_feedback_one_per_user UNIQUE (insight_id, user_id))",
    "CREATE INDEX insight_feedback_user ON insight_feedback"
    " (user_id, updated_at)",
    "CREATE INDEX insight_feedback_updated ON insight_feedback (updated_at)",
    "CREATE TABLE system_metrics ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " service_name text NOT NULL CHECK (length(service_name)"
    "  BETWEEN 1 AND 128),"
    " metric_type text NOT NULL CHECK (length(metric_type)"
    "  BETWEEN 1 AND 128),"
    " metric_value double precision NOT NULL,"
    " unit text NOT NULL CHECK (length(unit) BETWEEN 1 AND 32),"
    " \"timestamp\" timestamptz NOT NULL,"
    " metric_metadata json)",
    "CREATE INDEX system_metrics_series ON system_metrics"
    " (service_name, metric_type, \"timestamp\")",
    "CREATE INDEX system_metrics_time ON system_metrics (\"timestamp\")",
    "CREATE TABLE api_keys ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " prefix text NOT NULL UNIQUE,"
    " key_hash text NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),"
    " user_id text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),"
    " role text NOT NULL CHECK (role IN ('user', 'service', 'admin')),"
    " created_at timestamptz NOT NULL)",
    NULL,
};

/*
 * The invalidation log. Times are bigint microseconds here (not timestamptz)
 * because nothing but the cache library reads them. Lengths are bytes. The
 * partial indexes hold only pending rows (the tail's pending query) and only
 * applied rows (the pruner), so neither grows with the other's rows.
 */
static const char *const migration_2[] = {
    "CREATE TABLE cache_invalidations ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " keyspace text NOT NULL CHECK (octet_length(keyspace) BETWEEN 1 AND 31),"
    " target text NOT NULL CHECK (octet_length(target) BETWEEN 1 AND 1024),"
    " created_at bigint NOT NULL,"
    " applied_at bigint)",
    "CREATE INDEX cache_invalidations_pending ON cache_invalidations (id)"
    " WHERE applied_at IS NULL",
    "CREATE INDEX cache_invalidations_applied ON cache_invalidations"
    " (applied_at) WHERE applied_at IS NOT NULL",
    NULL,
};

/* One row that the readiness probe rewrites: a real write, committed, is
 * the only check that the database still takes writes (a read-only
 * standby, default_transaction_read_only, a full disk). */
static const char *const migration_3[] = {
    "CREATE TABLE service_probe ("
    " id integer PRIMARY KEY CHECK (id = 1),"
    " probed_at bigint NOT NULL)",
    NULL,
};

/* Revocation, and keys imported from the original service: those have no
 * lookup prefix (it never stored one that could serve) and are found by
 * their hash, hence the unique hash. */
static const char *const migration_4[] = {
    "ALTER TABLE api_keys ALTER COLUMN prefix DROP NOT NULL,"
    " ADD CONSTRAINT api_keys_prefix_length CHECK (prefix IS NULL OR"
    "  length(prefix) BETWEEN 1 AND 16),"
    " ADD COLUMN name text CHECK (name IS NULL OR"
    "  octet_length(name) BETWEEN 1 AND 400),"
    " ADD COLUMN origin_id text UNIQUE CHECK (origin_id IS NULL OR"
    "  length(origin_id) BETWEEN 1 AND 128),"
    " ADD COLUMN origin_prefix text CHECK (origin_prefix IS NULL OR"
    "  length(origin_prefix) BETWEEN 1 AND 20),"
    " ADD COLUMN last_used_at timestamptz,"
    " ADD COLUMN revoked_at timestamptz,"
    " ADD CONSTRAINT api_keys_hash_unique UNIQUE (key_hash),"
    " ADD CONSTRAINT api_keys_one_kind CHECK"
    "  ((prefix IS NULL) = (origin_id IS NOT NULL))",
    NULL,
};

/*
 * UUID ids for feedback and metric rows, as the original's clients see
 * them, in a column beside the integer key rather than in its place: adding
 * a column rewrites no index and no other table, and the integer stays what
 * ties are broken by. Existing rows get their ids from the service's own
 * generator (fill_public_ids, between the two halves), then the column
 * becomes NOT NULL and UNIQUE. The user page now follows created_at, the
 * original's order.
 */
static const char *const migration_5[] = {
    "ALTER TABLE insight_feedback ADD COLUMN public_id uuid",
    "ALTER TABLE system_metrics ADD COLUMN public_id uuid",
    NULL,
};
static const char *const migration_5_after[] = {
    "ALTER TABLE insight_feedback ALTER COLUMN public_id SET NOT NULL",
    "ALTER TABLE insight_feedback ADD CONSTRAINT insight_feedback_public_id"
    " UNIQUE (public_id)",
    "ALTER TABLE system_metrics ALTER COLUMN public_id SET NOT NULL",
    "ALTER TABLE system_metrics ADD CONSTRAINT system_metrics_public_id"
    " UNIQUE (public_id)",
    "DROP INDEX insight_feedback_user",
    "CREATE INDEX insight_feedback_user ON insight_feedback"
    " (user_id, created_at)",
    NULL,
};

/* The original's error_message is TEXT: a worker's long failure trace must
 * be recorded, not refused. The column CHECK has PostgreSQL's default name
 * (table_column_check). */
static const char *const migration_6[] = {
    "ALTER TABLE backfill_jobs"
    " DROP CONSTRAINT IF EXISTS backfill_jobs_error_message_check",
    NULL,
};

typedef struct sess sess_t;

static int fill_public_ids(void *arg);

static const uq__db_migration_t migrations[] = {
    {1, "initial schema", migration_1, NULL, NULL},
    {2, "cache invalidation log", migration_2, NULL, NULL},
    {3, "service write probe", migration_3, NULL, NULL},
    {4, "api key revocation and import", migration_4, NULL, NULL},
    {5, "uuid ids for feedback and metrics", migration_5, fill_public_ids,
     migration_5_after},
    {6, "unbounded backfill error_message", migration_6, NULL, NULL},
};

/* Any constant will do; it only has to be the same in every process. */
#define PG_MIGRATION_LOCK "7561746f69712d6d"

/* ---- SQL ----------------------------------------------------------------- */

/* bigint µs <-> timestamptz, exactly (integer arithmetic, no time zone). */
#define TS_IN(n)                                                               \
    "(timestamptz 'epoch' + $" n "::bigint * interval '1 microsecond')"
#define TS_OUT(col) "(extract(epoch FROM " col ") * 1000000)::bigint"

#define FB_COLS                                                                \
    "public_id::text, insight_id, user_id, coalesce(rating, 0), comment,"      \
    " coalesce(flag_type, ''), flag_reason, " TS_OUT(                          \
        "created_at") ", " TS_OUT("updated_at")
#define FB_NCOLS 9
#define JOB_COLS                                                                  \
    "id::text, job_type, start_block, end_block, current_block, status,"          \
    " progress_percentage, " TS_OUT(                                              \
        "estimated_completion") ","                                               \
                                " error_message, " TS_OUT(                        \
                                    "started_at") ", " TS_OUT("completed_at") "," \
                                                                              " created_by"
#define JOB_NCOLS 12
#define METRIC_COLS                                                            \
    "public_id::text, service_name, metric_type, metric_value, unit, " TS_OUT( \
        "\"timestamp\"") ", metric_metadata"
#define METRIC_NCOLS 7
#define KEY_COLS                                                                    \
    "id, prefix, key_hash, user_id, role, " TS_OUT(                                 \
        "created_at") ", name, origin_id, origin_prefix, " TS_OUT("last_used_"      \
                                                                  "at") ","         \
                                                                        " " TS_OUT( \
                                                                            "revoked_at")
#define KEY_NCOLS 11

/*
 * Inserts invalidation records from two text arrays ($ks keyspaces, $tg
 * targets, in step) with created_at $at, in array order, so that ids taken
 * in one statement rise with the array index (a sequence only grows).
 */
#define INV_ROWS(ks, tg, at)                                                   \
    "INSERT INTO cache_invalidations (keyspace, target, created_at)"           \
    " SELECT k, t, $" at "::bigint FROM unnest($" ks "::text[], $" tg          \
    "::text[]) WITH ORDINALITY AS u(k, t, o)"

/*
 * A write and its records as one statement: the write's rows, then one more
 * column with the records' ids as a bigint array in id order. The records
 * go in only when the write produced a row (an update of an unknown id
 * writes none), and any error in either undoes both.
 */
#define WITH_INV(write, ks, tg, at)                                            \
    "WITH w AS (" write "), i AS (" INV_ROWS(                                  \
        ks, tg, at) " WHERE EXISTS (SELECT 1 FROM w) ORDER BY o RETURNING id)" \
                    " SELECT w.*, (SELECT array_agg(id ORDER BY id) FROM "     \
                    "i)::text FROM w"

/* Records on their own: one row, the ids array. */
static const char SQL_INV_APPEND[] = "WITH i AS (" INV_ROWS(
    "1", "2", "3") " ORDER BY o RETURNING id)"
                   " SELECT array_agg(id ORDER BY id)::text FROM i";

#define INV_COLS                                                               \
    "id, keyspace, target, created_at, (applied_at IS NOT NULL)::int"
#define INV_NCOLS 5

static const char SQL_INV_AFTER[] =
    "SELECT " INV_COLS " FROM cache_invalidations"
    " WHERE id > $1 ORDER BY id LIMIT $2";
static const char SQL_INV_PENDING[] =
    "SELECT " INV_COLS " FROM cache_invalidations"
    " WHERE applied_at IS NULL ORDER BY id LIMIT $1";
static const char SQL_INV_MARK[] =
    "UPDATE cache_invalidations SET applied_at = $2"
    " WHERE id = ANY ($1::bigint[]) AND applied_at IS NULL";
static const char SQL_INV_PRUNE[] =
    "DELETE FROM cache_invalidations WHERE id IN"
    " (SELECT id FROM cache_invalidations WHERE applied_at < $1 LIMIT $2)";
static const char SQL_INV_LAST[] =
    "SELECT coalesce(max(id), 0) FROM cache_invalidations";

/*
 * One statement for every kind of feedback write: the parts not being set
 * go in as NULL on insert and keep their old value on conflict; $8..$10 say
 * which parts this write sets. ON CONFLICT DO UPDATE is atomic under READ
 * COMMITTED, so two first writes for one (insight, user) never fail.
 */
#define FB_UPSERT_SQL                                                          \
    "INSERT INTO insight_feedback AS f (insight_id, user_id, rating, comment," \
    " flag_type, flag_reason, created_at, updated_at, public_id)"              \
    " VALUES ($1, $2, $3::smallint, $4, $5, $6, " TS_IN("7") ", " TS_IN(       \
        "7") ", $11::uuid)"                                                    \
             " ON CONFLICT (insight_id, user_id) DO UPDATE SET"                \
             " rating = CASE WHEN $8::boolean THEN excluded.rating ELSE "      \
             "f.rating END,"                                                   \
             " comment = CASE WHEN $9::boolean THEN excluded.comment"          \
             "  ELSE f.comment END,"                                           \
             " flag_type = CASE WHEN $10::boolean THEN excluded.flag_type"     \
             "  ELSE f.flag_type END,"                                         \
             " flag_reason = CASE WHEN $10::boolean THEN excluded.flag_reason" \
             "  ELSE f.flag_reason END,"                                       \
             " updated_at = excluded.updated_at"                               \
             " RETURNING " FB_COLS

static const char SQL_FB_UPSERT[] = FB_UPSERT_SQL;
static const char SQL_FB_UPSERT_INV[] =
    WITH_INV(FB_UPSERT_SQL, "12", "13", "14");

/* The statistics of one insight: one aggregate, one row, always. */
static const char SQL_FB_STATS[] =
    "SELECT count(rating), coalesce(avg(rating), 0)::float8,"
    " count(*) FILTER (WHERE rating = 1), count(*) FILTER (WHERE rating = 2),"
    " count(*) FILTER (WHERE rating = 3), count(*) FILTER (WHERE rating = 4),"
    " count(*) FILTER (WHERE rating = 5),"
    " count(comment), count(flag_type),"
    " count(*) FILTER (WHERE flag_type = 'inaccurate'),"
    " count(*) FILTER (WHERE flag_type = 'misleading'),"
    " count(*) FILTER (WHERE flag_type = 'spam')"
    " FROM insight_feedback WHERE insight_id = $1";

/*
 * A page and the total in one statement and one snapshot: the count is the
 * left side, so it comes back even when the page is empty (a row of NULLs).
 */
static const char SQL_FB_COMMENTS[] =
    "SELECT p.*, t.total FROM"
    " (SELECT count(*) AS total FROM insight_feedback"
    "  WHERE insight_id = $1 AND comment IS NOT NULL) t"
    " LEFT JOIN LATERAL (SELECT " FB_COLS " FROM insight_feedback"
    "  WHERE insight_id = $1 AND comment IS NOT NULL"
    "  ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3) p ON true";

static const char SQL_FB_USER[] =
    "SELECT p.*, t.total FROM"
    " (SELECT count(*) AS total FROM insight_feedback WHERE user_id = $1) t"
    " LEFT JOIN LATERAL (SELECT " FB_COLS " FROM insight_feedback"
    "  WHERE user_id = $1"
    "  ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3) p ON true";

#define JOB_CREATE_SQL                                                         \
    "INSERT INTO backfill_jobs (id, job_type, start_block, end_block,"         \
    " current_block, status, progress_percentage, estimated_completion,"       \
    " error_message, started_at, completed_at, created_by)"                    \
    " VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, " TS_IN("8") ", $9, " TS_IN(   \
        "10") ", " TS_IN("11") ", $12)"

static const char SQL_JOB_CREATE[] = JOB_CREATE_SQL;
static const char SQL_JOB_CREATE_INV[] =
    WITH_INV(JOB_CREATE_SQL " RETURNING id", "13", "14", "15");

#define JOB_PROGRESS_SQL                                                       \
    "UPDATE backfill_jobs SET current_block = $2,"                             \
    " progress_percentage = $3, status = coalesce($4, status),"                \
    " estimated_completion = coalesce(" TS_IN(                                 \
        "5") ", estimated_completion),"                                        \
             " error_message = coalesce($6, error_message),"                   \
             " completed_at = CASE WHEN $4 = 'completed' THEN " TS_IN(         \
                 "7") " ELSE completed_at END"                                 \
                      " WHERE id = $1::uuid RETURNING " JOB_COLS

static const char SQL_JOB_PROGRESS[] = JOB_PROGRESS_SQL;
static const char SQL_JOB_PROGRESS_INV[] =
    WITH_INV(JOB_PROGRESS_SQL, "8", "9", "10");

static const char SQL_JOB_GET[] =
    "SELECT " JOB_COLS " FROM backfill_jobs WHERE id = $1::uuid";

static const char SQL_JOB_LIST[] =
    "SELECT p.*, t.total FROM"
    " (SELECT count(*) AS total FROM backfill_jobs"
    "  WHERE ($1::text IS NULL OR status = $1)"
    "  AND ($2::text IS NULL OR job_type = $2)) t"
    " LEFT JOIN LATERAL (SELECT " JOB_COLS " FROM backfill_jobs"
    "  WHERE ($1::text IS NULL OR status = $1)"
    "  AND ($2::text IS NULL OR job_type = $2)"
    "  ORDER BY started_at DESC, id DESC LIMIT $3 OFFSET $4) p ON true";

static const char SQL_METRIC_INSERT[] =
    "INSERT INTO system_metrics (service_name, metric_type, metric_value,"
    " unit, \"timestamp\", metric_metadata, public_id)"
    " VALUES ($1, $2, $3, $4, " TS_IN("5") ", $6::json, $7::uuid)"
                                           " RETURNING " METRIC_COLS;

static const char SQL_METRIC_LIST[] =
    "SELECT " METRIC_COLS " FROM system_metrics"
    " WHERE ($1::text IS NULL OR service_name = $1)"
    " AND ($2::text IS NULL OR metric_type = $2)"
    " AND ($3::bigint IS NULL OR \"timestamp\" >= " TS_IN(
        "3") ")"
             " AND ($4::bigint IS NULL OR \"timestamp\" < " TS_IN(
                 "4") ")"
                      " ORDER BY \"timestamp\" DESC, id DESC LIMIT $5 OFFSET "
                      "$6";

/*
 * Buckets by date_bin: origin + floor((t - origin) / width) * width on the
 * absolute timeline, the rule db.h states (weeks from Monday 1970-01-05),
 * which is date_trunc('hour' | 'day' | 'week') in UTC. The range filter is
 * on the bare column so the series index serves it.
 */
static const char SQL_METRIC_AGG[] = "SELECT " TS_OUT(
    "b") ", avg(metric_value), min(metric_value),"
         " max(metric_value), count(*) FROM (SELECT date_bin("
         "  $3::bigint * interval '1 microsecond', \"timestamp\", " TS_IN(
             "4") "  ) AS b, metric_value FROM system_metrics"
                  "  WHERE service_name = $1 AND metric_type = $2"
                  "  AND \"timestamp\" >= " TS_IN(
                      "5") " AND \"timestamp\" < " TS_IN("6") " ) s GROUP BY b "
                                                              "ORDER BY b";

static const char SQL_RET_JOBS[] =
    "DELETE FROM backfill_jobs WHERE started_at < " TS_IN(
        "1") " RETURNING id::text";
static const char SQL_RET_FB[] =
    "WITH d AS (DELETE FROM insight_feedback WHERE updated_at < " TS_IN(
        "1") " RETURNING insight_id) SELECT insight_id, count(*) FROM d"
             " GROUP BY insight_id";
static const char SQL_RET_METRICS[] =
    "WITH d AS (DELETE FROM system_metrics WHERE \"timestamp\" < " TS_IN(
        "1") " RETURNING service_name, metric_type)"
             " SELECT service_name, metric_type, count(*) FROM d"
             " GROUP BY service_name, metric_type";

static const char SQL_KEY_CREATE[] =
    "INSERT INTO api_keys (prefix, key_hash, user_id, role, created_at)"
    " VALUES ($1, $2, $3, $4, " TS_IN("5") ")";
static const char SQL_KEY_LOOKUP[] =
    "SELECT " KEY_COLS " FROM api_keys WHERE prefix = $1";
static const char SQL_KEY_LOOKUP_HASH[] = "SELECT " KEY_COLS " FROM api_keys"
                                          " WHERE key_hash = $1"
                                          " AND prefix IS NULL";
static const char SQL_KEY_LIST[] =
    "SELECT " KEY_COLS " FROM api_keys ORDER BY id";
static const char SQL_KEY_REVOKE[] =
    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, " TS_IN(
        "2") ") WHERE id = $1 RETURNING " TS_OUT("revoked_at");
/* The WHERE makes a stored origin_id with another hash come back with no
 * row, which the caller reports instead of changing the key. */
static const char SQL_KEY_IMPORT[] =
    "INSERT INTO api_keys AS k (prefix, key_hash, user_id, role, created_at,"
    " name, origin_id, origin_prefix, last_used_at, revoked_at)"
    " VALUES (NULL, $1, $2, $3, " TS_IN("4") ", $5, $6, $7, " TS_IN(
        "8") ", " TS_IN("9") ")"
                             " ON CONFLICT (origin_id) DO UPDATE SET"
                             " user_id = excluded.user_id,"
                             " role = excluded.role, name = excluded.name,"
                             " origin_prefix = excluded.origin_prefix,"
                             " last_used_at = greatest(k.last_used_at,"
                             "  excluded.last_used_at),"
                             " revoked_at = coalesce(k.revoked_at,"
                             "  excluded.revoked_at)"
                             " WHERE k.key_hash = excluded.key_hash"
                             " RETURNING id";

/* ---- handle -------------------------------------------------------------- */

/*
 * Connection keywords given to libpq: our defaults first, then the URL
 * (expanded by libpq, so its own query parameters win over the defaults),
 * then the settings the pool depends on, which nothing may override.
 */
enum { KW_MAX = 12 };

typedef struct {
    uq_db_t base;

    uq__db_pool_t pool; /* of PGconn */
    int max;

    int timeout_ms;
    const char *kw[KW_MAX];
    const char *val[KW_MAX];
    char *url;          /* holds the password: only for libpq */
    char connect_s[16]; /* connect_timeout, seconds */
    char options[128];  /* -c statement_timeout=... */
    char where[256];    /* the URL with its password as "***" */
    char what[280];     /* "postgresql 'where'", the pool's name in logs */
    uq__db_logger_t log;
} pg_db_t;

/* libpq messages end in newlines and may span lines; a log wants one line. */
static void one_line(const char *in, char *out, size_t cap)
{
    size_t j = 0;

    if (cap == 0) {
        return;
    }
    for (size_t i = 0; in != NULL && in[i] != '\0' && j + 1 < cap; i++) {
        char ch = in[i];
        if (ch == '\n' || ch == '\r' || ch == '\t') {
            ch = ' ';
        }
        if (ch == ' ' && (j == 0 || out[j - 1] == ' ')) {
            continue;
        }
        out[j++] = ch;
    }
    while (j > 0 && out[j - 1] == ' ') {
        j--;
    }
    out[j] = '\0';
}

/*
 * Waits until fd is ready for `events` or deadline (mono_ms) passes.
 * Returns 1 when ready, 0 on timeout, -1 on error.
 */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = uq__db_mono_ms();
        struct pollfd p = {fd, events, 0};
        int rc;
        if (now >= deadline) {
            return 0;
        }
        rc = poll(&p, 1, (int)(deadline - now));
        if (rc > 0) {
            return 1;
        }
        if (rc == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -1;
        }
    }
}

/*
 * Server notices (NOTICE, WARNING) would go to stderr by libpq's default;
 * the service prints nothing itself, so they go to the log callback.
 */
static void on_notice(void *arg, const PGresult *res)
{
    pg_db_t *d = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    char msg[512];
    int level = sev != NULL && strcmp(sev, "WARNING") == 0 ? 2 : 0;

    one_line(PQresultErrorMessage(res), msg, sizeof(msg));
    uq__db_logf(&d->log, level, "postgresql '%s': server says: %s", d->where,
                msg);
}

/*
 * Makes one connection within timeout_ms (libpq's own connect_timeout works
 * in whole seconds and only per address, so the poll loop keeps the bound).
 * Returns the connection in non-blocking mode, or NULL after logging why.
 */
static PGconn *connect_one(pg_db_t *d, char *err, size_t errlen)
{
    uint64_t deadline = uq__db_mono_ms() + (uint64_t)d->timeout_ms;
    PGconn *c = PQconnectStartParams(d->kw, d->val, 1);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    char why[512];

    if (c == NULL) {
        snprintf(err, errlen, "connect '%s': out of memory", d->where);
        return NULL;
    }
    while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        int rc;
        if (st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING) {
            rc = wait_fd(PQsocket(c),
                         st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                         deadline);
            if (rc == 0) {
                snprintf(err, errlen, "connect '%s': timed out after %d ms",
                         d->where, d->timeout_ms);
                PQfinish(c);
                return NULL;
            }
            if (rc < 0) {
                break;
            }
        }
        st = PQconnectPoll(c);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        one_line(PQerrorMessage(c), why, sizeof(why));
        /* Messages are cut rather than overflow; precision keeps the
         * compiler's truncation check quiet at -O2. */
        snprintf(err, errlen, "connect '%.200s': %.200s", d->where,
                 why[0] != '\0' ? why : "failed");
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeReceiver(c, on_notice, d);
    if (PQsetnonblocking(c, 1) != 0) {
        snprintf(err, errlen, "connect '%s': cannot make non-blocking",
                 d->where);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/*
 * True when an idle connection still looks usable without a round trip: no
 * hang-up or error has arrived on its socket since it was returned. A server
 * that restarted closed the socket, so this catches the common case of a
 * pool full of connections to a server that is gone.
 */
static int idle_alive(PGconn *c)
{
    struct pollfd p;
    PGnotify *n;

    if (PQstatus(c) != CONNECTION_OK ||
        PQtransactionStatus(c) != PQTRANS_IDLE) {
        return 0;
    }
    /* A dying backend first sends a notice, then closes: read until the
     * socket is quiet (a few rounds at most) so the close is seen too. */
    for (int round = 0; round < 4; round++) {
        p.fd = PQsocket(c);
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, 0) == 0) {
            return 1;
        }
        if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
            return 0;
        }
        while ((n = PQnotifies(c)) != NULL) {
            PQfreemem(n);
        }
    }
    return 0; /* still chattering while idle: not to be trusted */
}

/* The pool's callbacks (pool.c) over libpq connections. */
static void *pool_connect(void *arg, char *err, size_t errlen)
{
    return connect_one(arg, err, errlen);
}

static int pool_alive(void *arg, void *conn)
{
    (void)arg;
    return idle_alive(conn);
}

static void pool_close(void *arg, void *conn)
{
    (void)arg;
    PQfinish(conn);
}

static const uq__db_pool_ops_t pool_ops = {pool_connect, pool_alive,
                                           pool_close};

/* Borrows a connection from the pool (see uq__db_pool_acquire). */
static int acquire(pg_db_t *d, PGconn **out)
{
    void *c = NULL;
    int st = uq__db_pool_acquire(&d->pool, &c);

    if (st == UQ_DB_OK) {
        *out = c;
    }
    return st;
}

/*
 * Returns a borrowed connection. It goes back to the pool only when it is
 * healthy, outside any transaction and not marked broken; otherwise it is
 * closed and its slot freed, so the next borrower connects afresh.
 */
/* How a session ends: broken drops its connection; RELEASE_DROP_IDLE also
 * drops every idle one, which is in the same state as the server. */
#define RELEASE_DROP_IDLE UQ__DB_POOL_DROP_IDLE

static void release(pg_db_t *d, PGconn *c, int broken)
{
    int keep = !broken && PQstatus(c) == CONNECTION_OK &&
               PQtransactionStatus(c) == PQTRANS_IDLE;

    uq__db_pool_release(&d->pool, c,
                        keep                          ? UQ__DB_POOL_KEEP
                        : broken == RELEASE_DROP_IDLE ? UQ__DB_POOL_DROP_IDLE
                                                      : UQ__DB_POOL_DROP);
}

/* A borrowed connection for the length of one method call. */
struct sess {
    pg_db_t *d;
    PGconn *c;
    int broken; /* set when the connection must not be reused */
};

static int sess_open(pg_db_t *d, sess_t *s)
{
    s->d = d;
    s->c = NULL;
    s->broken = 0;
    return acquire(d, &s->c);
}

static void sess_close(sess_t *s)
{
    if (s->c != NULL) {
        release(s->d, s->c, s->broken);
        s->c = NULL;
    }
}

/*
 * Runs one statement with text parameters and waits for its result until
 * timeout_ms plus a grace period. Returns UQ_DB_OK with *res (the caller
 * PQclear()s it) when the statement succeeded, or a status after logging
 * what failed (`what` names the operation). A connection that broke or
 * timed out is marked broken and later closed: a late reply must never
 * answer the next statement.
 */
/* How sess_send() hands a statement to libpq. */
enum {
    OP_PARAMS,   /* PQsendQueryParams: parsed and planned on every call */
    OP_PREPARE,  /* PQsendPrepare of `name` on this connection */
    OP_PREPARED, /* PQsendQueryPrepared of `name` */
};

/* Not a db status: the connection has no statement of that name yet
 * (SQLSTATE 26000). Only sess_exec_named() ever sees it. */
#define PG_NO_SUCH_STATEMENT 100

static int sess_send(sess_t *s, const char *what, int op, const char *name,
                     const char *sql, int n, const char *const *vals,
                     PGresult **res)
{
    pg_db_t *d = s->d;
    uint64_t deadline =
        uq__db_mono_ms() + (uint64_t)d->timeout_ms + (uint64_t)PG_GRACE_MS;
    PGresult *keep = NULL;
    PGresult *r;
    const char *state;
    char why[512];
    int st;

    if (s->broken) {
        return UQ_DB_EUNAVAILABLE;
    }
    if (!(op == OP_PREPARE ? PQsendPrepare(s->c, name, sql, 0, NULL)
          : op == OP_PREPARED
              ? PQsendQueryPrepared(s->c, name, n, vals, NULL, NULL, 0)
              : PQsendQueryParams(s->c, sql, n, NULL, vals, NULL, NULL, 0))) {
        goto conn_error;
    }
    for (;;) {
        int f = PQflush(s->c);
        if (f == 0) {
            break;
        }
        if (f < 0) {
            goto conn_error;
        }
        f = wait_fd(PQsocket(s->c), POLLIN | POLLOUT, deadline);
        if (f == 0) {
            goto timed_out;
        }
        if (f < 0 || !PQconsumeInput(s->c)) {
            goto conn_error;
        }
    }
    for (;;) {
        while (PQisBusy(s->c)) {
            int w = wait_fd(PQsocket(s->c), POLLIN, deadline);
            if (w == 0) {
                PQclear(keep);
                goto timed_out;
            }
            if (w < 0 || !PQconsumeInput(s->c)) {
                PQclear(keep);
                goto conn_error;
            }
        }
        r = PQgetResult(s->c);
        if (r == NULL) {
            break;
        }
        /* Keep the first error, else the last result. */
        if (keep == NULL || PQresultStatus(keep) == PGRES_TUPLES_OK ||
            PQresultStatus(keep) == PGRES_COMMAND_OK) {
            PQclear(keep);
            keep = r;
        } else {
            PQclear(r);
        }
    }
    if (keep == NULL) {
        goto conn_error;
    }
    if (PQresultStatus(keep) == PGRES_TUPLES_OK ||
        PQresultStatus(keep) == PGRES_COMMAND_OK) {
        *res = keep;
        return UQ_DB_OK;
    }
    state = PQresultErrorField(keep, PG_DIAG_SQLSTATE);
    st = uq__db_status_of_sqlstate(state);
    if (op == OP_PREPARED && PQstatus(s->c) == CONNECTION_OK && state != NULL &&
        strcmp(state, "26000") == 0) {
        PQclear(keep);
        return PG_NO_SUCH_STATEMENT;
    }
    if (PQstatus(s->c) != CONNECTION_OK) {
        s->broken = 1;
        st = UQ_DB_EUNAVAILABLE;
    }
    if (st == UQ_DB_EREADONLY) {
        /* A read-only session (a standby, or a database set to
         * default_transaction_read_only) stays so, and so do the idle ones
         * opened meanwhile: only fresh connections can find the server
         * writable again (or reach the new primary of a multi-host URL). */
        s->broken = RELEASE_DROP_IDLE;
    }
    one_line(PQresultErrorMessage(keep), why, sizeof(why));
    uq__db_logf(&d->log, uq__db_log_level(st), "postgresql %s: %s", what, why);
    PQclear(keep);
    return st;

timed_out:
    s->broken = 1;
    uq__db_logf(&d->log, 3, "postgresql %s on '%s': no reply within %d ms",
                what, d->where, d->timeout_ms + PG_GRACE_MS);
    return UQ_DB_EUNAVAILABLE;

conn_error:
    s->broken = 1;
    one_line(PQerrorMessage(s->c), why, sizeof(why));
    uq__db_logf(&d->log, 3, "postgresql %s on '%s': %s", what, d->where,
                why[0] != '\0' ? why : "connection lost");
    return UQ_DB_EUNAVAILABLE;
}

static int sess_exec(sess_t *s, const char *what, const char *sql, int n,
                     const char *const *vals, PGresult **res)
{
    return sess_send(s, what, OP_PARAMS, NULL, sql, n, vals, res);
}

/*
 * sess_exec() of a statement kept prepared on the connection under `name`:
 * planning the write-with-records statements costs more than running them,
 * so they are parsed once per connection. A connection that lacks the
 * statement (new, or to a restarted server) prepares it and runs it again;
 * each of those steps has the usual deadline. Only for statements outside
 * a transaction, since the failed first try would abort one.
 */
static int sess_exec_named(sess_t *s, const char *what, const char *name,
                           const char *sql, int n, const char *const *vals,
                           PGresult **res)
{
    PGresult *r = NULL;
    int st = sess_send(s, what, OP_PREPARED, name, sql, n, vals, res);

    if (st != PG_NO_SUCH_STATEMENT) {
        return st;
    }
    st = sess_send(s, what, OP_PREPARE, name, sql, 0, NULL, &r);
    PQclear(r);
    if (st != UQ_DB_OK) {
        return st;
    }
    st = sess_send(s, what, OP_PREPARED, name, sql, n, vals, res);
    return st == PG_NO_SUCH_STATEMENT ? UQ_DB_EIO : st;
}

/* Runs a statement whose result is not needed. */
static int sess_run(sess_t *s, const char *what, const char *sql, int n,
                    const char *const *vals)
{
    PGresult *r = NULL;
    int st = sess_exec(s, what, sql, n, vals, &r);
    PQclear(r);
    return st;
}

/* Ends a transaction after a failure; a connection that cannot roll back
 * is closed (release() refuses one left inside a transaction anyway). */
static void sess_rollback(sess_t *s)
{
    if (!s->broken && PQtransactionStatus(s->c) != PQTRANS_IDLE &&
        sess_run(s, "rollback", "ROLLBACK", 0, NULL) != UQ_DB_OK) {
        s->broken = 1;
    }
}

/* ---- parameters and values ----------------------------------------------- */

/* Text parameters of one statement; numbers are formatted into slots. */
typedef struct {
    const char *v[PG_MAX_PARAMS];
    char num[PG_MAX_PARAMS][40];
    int n;
} params_t;

static void p_str(params_t *p, const char *s)
{
    p->v[p->n++] = s;
}

static void p_i64(params_t *p, int64_t x)
{
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, x);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

/* %.17g round-trips every double; PostgreSQL reads it back exactly. */
static void p_f64(params_t *p, double x)
{
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%.17g", x);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static void p_bool(params_t *p, int b)
{
    p->v[p->n++] = b ? "t" : "f";
}

/* UQ_DB_NULL_TIME becomes SQL NULL. */
static void p_time(params_t *p, int64_t t)
{
    if (t == UQ_DB_NULL_TIME) {
        p->v[p->n++] = NULL;
    } else {
        p_i64(p, t);
    }
}

static int64_t v_i64(const PGresult *r, int row, int col, int64_t if_null)
{
    const char *s;
    char *end;
    long long v;

    if (PQgetisnull(r, row, col)) {
        return if_null;
    }
    s = PQgetvalue(r, row, col);
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s) {
        return if_null;
    }
    return (int64_t)v;
}

static double v_f64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) {
        return 0.0;
    }
    return strtod(PQgetvalue(r, row, col), NULL);
}

/* Rows as the layer's row mapping reads them (rows.c). */
static int row_is_null(const uq__db_row_t *x, int col)
{
    return PQgetisnull(x->res, x->row, col);
}

static const char *row_text(const uq__db_row_t *x, int col, size_t *len)
{
    *len = (size_t)PQgetlength(x->res, x->row, col);
    return PQgetvalue(x->res, x->row, col);
}

static int64_t row_i64(const uq__db_row_t *x, int col)
{
    return v_i64(x->res, x->row, col, 0);
}

static double row_f64(const uq__db_row_t *x, int col)
{
    return v_f64(x->res, x->row, col);
}

static const uq__db_row_ops_t row_ops = {row_is_null, row_text, row_i64,
                                         row_f64};

/* Row `row` of r, for a reader. */
static uq__db_row_t row_at(const PGresult *r, int row)
{
    uq__db_row_t x = {&row_ops, r, row};
    return x;
}

/* ---- queries ------------------------------------------------------------- */

/* The layer's row readers (rows.c) serve every method. */
typedef uq__db_reader_fn row_reader_fn;

/*
 * Runs one statement on a borrowed connection, outside any transaction.
 * On UQ_DB_OK *res is the result (the caller PQclear()s it); on failure
 * *res is untouched and the status says why (logged by sess_exec()).
 */
static int query(pg_db_t *d, const char *what, const char *sql,
                 const params_t *p, PGresult **res)
{
    sess_t s;
    int st = sess_open(d, &s);

    if (st != UQ_DB_OK) {
        return st;
    }
    st = sess_exec(&s, what, sql, p->n, p->v, res);
    sess_close(&s);
    return st;
}

/* Runs a statement whose result is not needed. */
static int query_run(pg_db_t *d, const char *what, const char *sql,
                     const params_t *p)
{
    PGresult *r = NULL;
    int st = query(d, what, sql, p, &r);

    PQclear(r);
    return st;
}

/*
 * Runs a statement that returns at most one row and reads it into row
 * (which may be written even on failure: callers pass a local). No row
 * gives if_none: UQ_DB_NOTFOUND for a lookup, UQ_DB_EIO where a row is
 * certain (an aggregate, an upsert's RETURNING).
 */
static int query_row(pg_db_t *d, const char *what, const char *sql,
                     const params_t *p, row_reader_fn read, void *row,
                     int if_none)
{
    PGresult *r = NULL;
    int st = query(d, what, sql, p, &r);

    if (st == UQ_DB_OK) {
        int nt = PQntuples(r);
        if (nt == 1) {
            uq__db_row_t x = row_at(r, 0);
            st = read(&x, row);
        } else {
            st = nt == 0 ? if_none : UQ_DB_EIO;
        }
    }
    PQclear(r);
    return st;
}

/*
 * Reads rows [first, first + nt) of r into a calloc()ed array of sz-byte
 * elements. The array and the count of rows started (a half-read one
 * included) come back even on failure, so that the caller frees them as
 * its row type needs; an empty range gives NULL and 0.
 */
static int read_rows(const PGresult *r, int nt, size_t sz, row_reader_fn read,
                     void **arr, size_t *count)
{
    int st = UQ_DB_OK;

    *arr = NULL;
    *count = 0;
    if (nt <= 0) {
        return UQ_DB_OK;
    }
    *arr = calloc((size_t)nt, sz);
    if (*arr == NULL) {
        return UQ_DB_ENOMEM;
    }
    for (int i = 0; i < nt && st == UQ_DB_OK; i++) {
        uq__db_row_t x = row_at(r, i);
        st = read(&x, (char *)*arr + (size_t)i * sz);
        (*count)++;
    }
    return st;
}

/*
 * Runs a "page plus total" statement (SQL_FB_COMMENTS / SQL_JOB_LIST
 * shape: ncols row columns, then the total; an empty page is one row of
 * NULLs, so the total still arrives) and hands back the page as a
 * malloc()ed array of sz-byte rows. Rows must own no heap memory, since a
 * failed page is released with free() alone. Outputs are written only on
 * UQ_DB_OK.
 */
static int paged_query(pg_db_t *d, const char *what, const char *sql,
                       const params_t *p, int ncols, size_t sz,
                       row_reader_fn read, void **rows, size_t *n,
                       int64_t *total)
{
    PGresult *r = NULL;
    void *arr = NULL;
    size_t count = 0;
    int64_t tot = 0;
    int st = query(d, what, sql, p, &r);

    if (st == UQ_DB_OK && (PQntuples(r) < 1 || PQnfields(r) != ncols + 1)) {
        st = UQ_DB_EIO;
    }
    if (st == UQ_DB_OK) {
        tot = v_i64(r, 0, ncols, 0);
        if (!PQgetisnull(r, 0, 0)) {
            st = read_rows(r, PQntuples(r), sz, read, &arr, &count);
        }
    }
    PQclear(r);
    if (st != UQ_DB_OK) {
        free(arr);
        return st;
    }
    *rows = arr;
    *n = count;
    *total = tot;
    return UQ_DB_OK;
}

/* ---- invalidation records ------------------------------------------------ */

/* The keyspaces and targets of a batch as two PostgreSQL text-array
 * literals (heap strings, freed with inv_arrays_free()). */
typedef struct {
    char *ks;
    char *tg;
} inv_arrays_t;

/* Writes s as one quoted array element at *pos: only '"' and '\\' need a
 * backslash inside quotes, whatever else a glob holds ({, }, commas). */
static void put_element(char *buf, size_t *pos, const char *s)
{
    buf[(*pos)++] = '"';
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            buf[(*pos)++] = '\\';
        }
        buf[(*pos)++] = *s;
    }
    buf[(*pos)++] = '"';
}

/* One array literal of field `target` (0: keyspace, 1: target) of inv. */
static char *array_of(const uq_db_inval_t *inv, size_t n, int target)
{
    size_t cap = 3;
    size_t pos = 0;
    char *buf;

    for (size_t i = 0; i < n; i++) {
        cap += 3 + 2 * strlen(target ? inv[i].target : inv[i].keyspace);
    }
    buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    buf[pos++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            buf[pos++] = ',';
        }
        put_element(buf, &pos, target ? inv[i].target : inv[i].keyspace);
    }
    buf[pos++] = '}';
    buf[pos] = '\0';
    return buf;
}

static void inv_arrays_free(inv_arrays_t *a)
{
    free(a->ks);
    free(a->tg);
    a->ks = NULL;
    a->tg = NULL;
}

/* Builds both arrays of n >= 1 records; UQ_DB_ENOMEM leaves none. */
static int inv_arrays(const uq_db_inval_t *inv, size_t n, inv_arrays_t *a)
{
    a->ks = array_of(inv, n, 0);
    a->tg = array_of(inv, n, 1);
    if (a->ks == NULL || a->tg == NULL) {
        inv_arrays_free(a);
        return UQ_DB_ENOMEM;
    }
    return UQ_DB_OK;
}

/*
 * Reads the bigint array text "{1,2,3}" (array_agg's output) of exactly n
 * ids into ids (may be NULL: checked only). Returns 0, or -1 when the text
 * is not n ids, and then ids is untouched.
 */
static int parse_ids(const char *text, size_t n, int64_t *ids)
{
    for (int pass = 0; pass < (ids != NULL ? 2 : 1); pass++) {
        const char *p = text;
        size_t k = 0;
        if (p == NULL || *p++ != '{') {
            return -1;
        }
        while (*p != '}') {
            char *end;
            long long v;
            errno = 0;
            v = strtoll(p, &end, 10);
            if (errno != 0 || end == p || k >= n) {
                return -1;
            }
            if (pass == 1) {
                ids[k] = (int64_t)v;
            }
            k++;
            p = *end == ',' ? end + 1 : end;
        }
        if (k != n || p[1] != '\0') {
            return -1;
        }
    }
    return 0;
}

/*
 * Runs a write with its n records on a borrowed connection: plain_sql when
 * n is 0 (the write as it always was), else inv_sql (a WITH_INV statement,
 * kept prepared as inv_name) with the record arrays and created_at appended
 * to p. The write's row, if
 * read != NULL, goes through read into row (callers pass a local); no row
 * gives if_none. The ids, in column ncols, reach ids only on UQ_DB_OK.
 */
static int run_write(pg_db_t *d, const char *what, const char *plain_sql,
                     const char *inv_name, const char *inv_sql, params_t *p,
                     row_reader_fn read, void *row, int if_none, int ncols,
                     const uq_db_inval_t *inv, size_t n, int64_t created_at,
                     int64_t *ids)
{
    inv_arrays_t a = {NULL, NULL};
    PGresult *r = NULL;
    sess_t s;
    int st;

    if (n == 0) {
        if (read == NULL) {
            return query_run(d, what, plain_sql, p);
        }
        return query_row(d, what, plain_sql, p, read, row, if_none);
    }
    st = inv_arrays(inv, n, &a);
    if (st != UQ_DB_OK) {
        return st;
    }
    p_str(p, a.ks);
    p_str(p, a.tg);
    p_i64(p, created_at);
    st = sess_open(d, &s);
    if (st == UQ_DB_OK) {
        st = sess_exec_named(&s, what, inv_name, inv_sql, p->n, p->v, &r);
        sess_close(&s);
    }
    if (st == UQ_DB_OK) {
        int nt = PQntuples(r);
        if (nt == 0) {
            st = if_none;
        } else if (nt != 1 || PQnfields(r) != ncols + 1) {
            st = UQ_DB_EIO;
        } else {
            if (read != NULL) {
                uq__db_row_t x = row_at(r, 0);
                st = read(&x, row);
            }
        }
        if (st == UQ_DB_OK &&
            parse_ids(PQgetvalue(r, 0, ncols), n, NULL) != 0) {
            uq__db_logf(&d->log, 3, "postgresql %s: bad record ids", what);
            st = UQ_DB_EIO;
        }
        if (st == UQ_DB_OK) {
            parse_ids(PQgetvalue(r, 0, ncols), n, ids);
        }
    }
    PQclear(r);
    inv_arrays_free(&a);
    return st;
}

/*
 * Inserts n records inside the session's open transaction (in_tx), or as a
 * prepared statement of their own outside one; their ids go to ids, which
 * may be NULL, only on UQ_DB_OK. Nothing happens for n == 0.
 */
static int sess_records(sess_t *s, const char *what, int in_tx,
                        const uq_db_inval_t *inv, size_t n, int64_t created_at,
                        int64_t *ids)
{
    inv_arrays_t a = {NULL, NULL};
    params_t p = {0};
    PGresult *r = NULL;
    int st;

    if (n == 0) {
        return UQ_DB_OK;
    }
    st = inv_arrays(inv, n, &a);
    if (st != UQ_DB_OK) {
        return st;
    }
    p_str(&p, a.ks);
    p_str(&p, a.tg);
    p_i64(&p, created_at);
    st = in_tx ? sess_exec(s, what, SQL_INV_APPEND, p.n, p.v, &r)
               : sess_exec_named(s, what, "uq_inval_append", SQL_INV_APPEND,
                                 p.n, p.v, &r);
    if (st == UQ_DB_OK &&
        (PQntuples(r) != 1 || parse_ids(PQgetvalue(r, 0, 0), n, NULL) != 0)) {
        uq__db_logf(&s->d->log, 3, "postgresql %s: bad record ids", what);
        st = UQ_DB_EIO;
    }
    if (st == UQ_DB_OK) {
        parse_ids(PQgetvalue(r, 0, 0), n, ids);
    }
    PQclear(r);
    inv_arrays_free(&a);
    return st;
}

static int64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- methods ------------------------------------------------------------- */

static void pg_close(uq_db_t *db)
{
    pg_db_t *d = (pg_db_t *)db;

    uq__db_pool_destroy(&d->pool);
    if (d->url != NULL) {
        /* The URL holds the password: do not leave it in freed memory. */
        volatile char *p = d->url;
        while (*p != '\0') {
            *p++ = '\0';
        }
        free(d->url);
    }
    free(d);
}

/*
 * Gives every feedback and metric row without a public id one, in batches of
 * FILL_BATCH rows, so that neither the id list nor one statement grows with
 * the table: the batch's integer keys and new UUIDs go in as two arrays.
 */
#define FILL_BATCH 500 /* the LIMIT of the selects below */

static int fill_table(sess_t *s, const char *sel, const char *upd)
{
    /* "{" + FILL_BATCH times (20 digits or 36 characters, and a comma). */
    size_t cap_ids = 2 + FILL_BATCH * 21, cap_uuids = 2 + FILL_BATCH * 37;
    char *ids = malloc(cap_ids), *uuids = malloc(cap_uuids);
    int st = ids != NULL && uuids != NULL ? UQ_DB_OK : UQ_DB_ENOMEM;

    while (st == UQ_DB_OK) {
        PGresult *r = NULL;
        size_t oi = 0, ou = 0;
        int n;

        st = sess_exec(s, "migrate", sel, 0, NULL, &r);
        n = st == UQ_DB_OK ? PQntuples(r) : 0;
        ids[oi++] = '{';
        uuids[ou++] = '{';
        for (int i = 0; i < n && st == UQ_DB_OK; i++) {
            char id[UQ_DB_UUID_LEN + 1];
            const char *key = PQgetvalue(r, i, 0);
            size_t klen = strlen(key);
            if (klen > 20 || uq_db_uuid_new(id) != 0) {
                st = UQ_DB_EIO;
                break;
            }
            if (i > 0) {
                ids[oi++] = ',';
                uuids[ou++] = ',';
            }
            memcpy(ids + oi, key, klen);
            oi += klen;
            memcpy(uuids + ou, id, UQ_DB_UUID_LEN);
            ou += UQ_DB_UUID_LEN;
        }
        PQclear(r);
        if (st != UQ_DB_OK || n == 0) {
            break;
        }
        ids[oi++] = '}';
        ids[oi] = '\0';
        uuids[ou++] = '}';
        uuids[ou] = '\0';
        const char *v[2] = {ids, uuids};
        st = sess_run(s, "migrate", upd, 2, v);
    }
    free(ids);
    free(uuids);
    return st;
}

static int fill_public_ids(void *arg)
{
    sess_t *s = arg;
    int st = fill_table(
        s,
        "SELECT id FROM insight_feedback WHERE public_id IS NULL"
        " ORDER BY id LIMIT 500",
        "UPDATE insight_feedback AS t SET public_id = u.p FROM"
        " unnest($1::bigint[], $2::uuid[]) AS u(i, p) WHERE t.id = u.i");
    if (st == UQ_DB_OK) {
        st = fill_table(
            s,
            "SELECT id FROM system_metrics WHERE public_id IS NULL"
            " ORDER BY id LIMIT 500",
            "UPDATE system_metrics AS t SET public_id = u.p FROM"
            " unnest($1::bigint[], $2::uuid[]) AS u(i, p) WHERE t.id = u.i");
    }
    return st;
}

/* The migration runner's primitives (migrate.c) on one session. Each
 * migration's transaction holds a transaction-scoped advisory lock, so
 * that two processes starting at once apply it exactly once. */
static int mig_begin(void *arg)
{
    sess_t *s = arg;
    int st = sess_run(s, "migrate", "BEGIN", 0, NULL);

    if (st == UQ_DB_OK) {
        st = sess_run(s, "migrate",
                      "SELECT pg_advisory_xact_lock(x'" PG_MIGRATION_LOCK
                      "'::bigint)",
                      0, NULL);
    }
    if (st == UQ_DB_OK) {
        /* "already exists, skipping" on every start is noise. */
        st = sess_run(s, "migrate", "SET LOCAL client_min_messages = warning",
                      0, NULL);
    }
    return st;
}

static int mig_exec(void *arg, const char *sql)
{
    return sess_run(arg, "migrate", sql, 0, NULL);
}

static int mig_recorded(void *arg, int version, int *done)
{
    params_t p = {0};
    PGresult *r = NULL;
    int st;

    p_i64(&p, version);
    st = sess_exec(arg, "migrate",
                   "SELECT 1 FROM schema_migrations WHERE version = $1", p.n,
                   p.v, &r);
    *done = st == UQ_DB_OK && PQntuples(r) > 0;
    PQclear(r);
    return st;
}

static int mig_record(void *arg, int version, const char *name)
{
    params_t p = {0};

    p_i64(&p, version);
    p_str(&p, name);
    return sess_run(arg, "migrate",
                    "INSERT INTO schema_migrations (version, name)"
                    " VALUES ($1, $2)",
                    p.n, p.v);
}

static int mig_commit(void *arg)
{
    return sess_run(arg, "migrate", "COMMIT", 0, NULL);
}

static void mig_rollback(void *arg)
{
    sess_rollback(arg);
}

static const uq__db_migrator_t migrator = {
    "postgresql",
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())",
    mig_begin,
    mig_exec,
    mig_recorded,
    mig_record,
    mig_commit,
    mig_rollback,
};

static int pg_migrate(uq_db_t *db, int *applied)
{
    pg_db_t *d = (pg_db_t *)db;
    sess_t s;
    int st = sess_open(d, &s);

    if (st != UQ_DB_OK) {
        return st;
    }
    st = uq__db_migrate_run(&migrator, &s, migrations,
                            sizeof(migrations) / sizeof(migrations[0]), &d->log,
                            applied);
    sess_close(&s);
    return st;
}

static int pg_ping(uq_db_t *db)
{
    params_t p = {0};

    return query_run((pg_db_t *)db, "ping", "SELECT 1", &p);
}

static int pg_probe_write(uq_db_t *db, int64_t now)
{
    params_t p = {0};

    p_i64(&p, now);
    return query_run((pg_db_t *)db, "write probe",
                     "INSERT INTO service_probe (id, probed_at) VALUES (1, $1)"
                     " ON CONFLICT (id) DO UPDATE"
                     " SET probed_at = EXCLUDED.probed_at",
                     &p);
}

static int pg_feedback_upsert(uq_db_t *db, const uq_db_feedback_write_t *w,
                              uq_db_feedback_t *out, const uq_db_inval_t *inv,
                              size_t ninv, int64_t *inv_ids)
{
    int set_rating = (w->fields & UQ_DB_FB_RATING) != 0;
    int set_comment =
        (w->fields & UQ_DB_FB_COMMENT) != 0 || (set_rating && w->has_comment);
    int set_flag = (w->fields & UQ_DB_FB_FLAG) != 0;
    params_t p = {0};
    uq_db_feedback_t row;
    char id[UQ_DB_UUID_LEN + 1];
    int st;

    if (w->fields == 0 ||
        (w->fields & ~(unsigned)(UQ_DB_FB_RATING | UQ_DB_FB_COMMENT |
                                 UQ_DB_FB_FLAG)) != 0 ||
        w->insight_id == NULL || w->user_id == NULL ||
        ((w->fields & UQ_DB_FB_COMMENT) != 0 && w->comment == NULL) ||
        (set_flag && w->flag_type == NULL)) {
        return UQ_DB_EINVAL;
    }
    /* Used only when the row is new; an update keeps the row's id. */
    if (uq_db_uuid_new(id) != 0) {
        return UQ_DB_EIO;
    }
    p_str(&p, w->insight_id);
    p_str(&p, w->user_id);
    if (set_rating) {
        p_i64(&p, w->rating);
    } else {
        p_str(&p, NULL);
    }
    p_str(&p, set_comment ? w->comment : NULL);
    p_str(&p, set_flag ? w->flag_type : NULL);
    p_str(&p, set_flag && w->has_flag_reason ? w->flag_reason : NULL);
    p_i64(&p, w->now);
    p_bool(&p, set_rating);
    p_bool(&p, set_comment);
    p_bool(&p, set_flag);
    p_str(&p, id);

    st = run_write((pg_db_t *)db, "feedback upsert", SQL_FB_UPSERT,
                   "uq_feedback_upsert_inval", SQL_FB_UPSERT_INV, &p,
                   uq__db_read_feedback, &row, UQ_DB_EIO, FB_NCOLS, inv, ninv,
                   w->now, inv_ids);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int pg_feedback_stats(uq_db_t *db, const char *insight_id,
                             uq_db_feedback_stats_t *out)
{
    params_t p = {0};
    uq_db_feedback_stats_t row;
    int st;

    if (insight_id == NULL) {
        return UQ_DB_EINVAL;
    }
    p_str(&p, insight_id);
    st = query_row((pg_db_t *)db, "feedback stats", SQL_FB_STATS, &p,
                   uq__db_read_feedback_stats, &row, UQ_DB_EIO);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

/* The two feedback pages differ only in their statement and key. */
static int feedback_page(pg_db_t *d, const char *what, const char *sql,
                         const char *key, int limit, int offset,
                         uq_db_feedback_t **rows, size_t *n, int64_t *total)
{
    params_t p = {0};

    if (key == NULL || limit < 1 || offset < 0) {
        return UQ_DB_EINVAL;
    }
    p_str(&p, key);
    p_i64(&p, limit);
    p_i64(&p, offset);
    return paged_query(d, what, sql, &p, FB_NCOLS, sizeof(**rows),
                       uq__db_read_feedback, (void **)rows, n, total);
}

static int pg_feedback_comments(uq_db_t *db, const char *insight_id, int limit,
                                int offset, uq_db_feedback_t **rows, size_t *n,
                                int64_t *total)
{
    return feedback_page((pg_db_t *)db, "feedback comments", SQL_FB_COMMENTS,
                         insight_id, limit, offset, rows, n, total);
}

static int pg_feedback_by_user(uq_db_t *db, const char *user_id, int limit,
                               int offset, uq_db_feedback_t **rows, size_t *n,
                               int64_t *total)
{
    return feedback_page((pg_db_t *)db, "feedback by user", SQL_FB_USER,
                         user_id, limit, offset, rows, n, total);
}

static int pg_job_create(uq_db_t *db, const uq_db_job_t *j,
                         const uq_db_inval_t *inv, size_t ninv,
                         int64_t *inv_ids)
{
    params_t p = {0};

    p_str(&p, j->id);
    p_str(&p, j->job_type);
    p_i64(&p, j->start_block);
    p_i64(&p, j->end_block);
    p_i64(&p, j->current_block);
    p_str(&p, j->status[0] != '\0' ? j->status : "running");
    p_f64(&p, j->progress_percentage);
    p_time(&p, j->estimated_completion);
    p_str(&p, j->has_error_message ? j->error_message : NULL);
    p_time(&p, j->started_at);
    p_time(&p, j->completed_at);
    p_str(&p, j->has_created_by ? j->created_by : NULL);
    return run_write((pg_db_t *)db, "job create", SQL_JOB_CREATE,
                     "uq_job_create_inval", SQL_JOB_CREATE_INV, &p, NULL, NULL,
                     UQ_DB_EIO, 1, inv, ninv, ninv > 0 ? clock_us() : 0,
                     inv_ids);
}

/* Runs a statement that returns zero or one job row. */
static int job_one(pg_db_t *d, const char *what, const char *sql,
                   const params_t *p, uq_db_job_t *out)
{
    uq_db_job_t row;
    int st = query_row(d, what, sql, p, uq__db_read_job, &row, UQ_DB_NOTFOUND);

    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int pg_job_progress(uq_db_t *db, const char *job_id,
                           const uq_db_job_progress_t *pr, uq_db_job_t *out,
                           const uq_db_inval_t *inv, size_t ninv,
                           int64_t *inv_ids)
{
    params_t p = {0};
    uq_db_job_t row;
    int st;

    if (job_id == NULL) {
        return UQ_DB_EINVAL;
    }
    p_str(&p, job_id);
    p_i64(&p, pr->current_block);
    p_f64(&p, pr->progress_percentage);
    p_str(&p, pr->status);
    p_time(&p, pr->estimated_completion);
    p_str(&p, pr->error_message);
    p_i64(&p, pr->now);
    st = run_write((pg_db_t *)db, "job progress", SQL_JOB_PROGRESS,
                   "uq_job_progress_inval", SQL_JOB_PROGRESS_INV, &p,
                   uq__db_read_job, &row, UQ_DB_NOTFOUND, JOB_NCOLS, inv, ninv,
                   pr->now, inv_ids);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int pg_job_get(uq_db_t *db, const char *job_id, uq_db_job_t *out)
{
    params_t p = {0};

    if (job_id == NULL) {
        return UQ_DB_EINVAL;
    }
    p_str(&p, job_id);
    return job_one((pg_db_t *)db, "job get", SQL_JOB_GET, &p, out);
}

static int pg_job_list(uq_db_t *db, const char *status, const char *job_type,
                       int limit, int offset, uq_db_job_t **rows, size_t *n,
                       int64_t *total)
{
    params_t p = {0};

    if (limit < 1 || offset < 0) {
        return UQ_DB_EINVAL;
    }
    p_str(&p, status);
    p_str(&p, job_type);
    p_i64(&p, limit);
    p_i64(&p, offset);
    return paged_query((pg_db_t *)db, "job list", SQL_JOB_LIST, &p, JOB_NCOLS,
                       sizeof(**rows), uq__db_read_job, (void **)rows, n,
                       total);
}

static int pg_metrics_insert(uq_db_t *db, const uq_db_metric_new_t *in,
                             size_t n, uq_db_metric_t *out,
                             const uq_db_inval_t *inv, size_t ninv,
                             int64_t *inv_ids)
{
    uq_db_metric_t *tmp;
    int64_t *ids;
    size_t done = 0;
    sess_t s;
    int st;

    if (n == 0 || in == NULL || out == NULL) {
        return UQ_DB_EINVAL;
    }
    tmp = calloc(n, sizeof(*tmp));
    ids = calloc(ninv > 0 ? ninv : 1, sizeof(*ids));
    if (tmp == NULL || ids == NULL) {
        free(tmp);
        free(ids);
        return UQ_DB_ENOMEM;
    }
    st = sess_open((pg_db_t *)db, &s);
    if (st != UQ_DB_OK) {
        free(tmp);
        free(ids);
        return st;
    }
    st = sess_run(&s, "metrics insert", "BEGIN", 0, NULL);
    for (size_t i = 0; i < n && st == UQ_DB_OK; i++) {
        params_t p = {0};
        PGresult *r = NULL;
        char id[UQ_DB_UUID_LEN + 1];
        if (uq_db_uuid_new(id) != 0) {
            st = UQ_DB_EIO;
            break;
        }
        p_str(&p, in[i].service_name);
        p_str(&p, in[i].metric_type);
        p_f64(&p, in[i].metric_value);
        p_str(&p, in[i].unit);
        p_i64(&p, in[i].timestamp);
        p_str(&p, in[i].metadata);
        p_str(&p, id);
        st = sess_exec(&s, "metrics insert", SQL_METRIC_INSERT, p.n, p.v, &r);
        if (st == UQ_DB_OK) {
            if (PQntuples(r) == 1) {
                uq__db_row_t x = row_at(r, 0);
                st = uq__db_read_metric(&x, &tmp[i]);
            } else {
                st = UQ_DB_EIO;
            }
            done = i + 1;
        }
        PQclear(r);
    }
    if (st == UQ_DB_OK) {
        st = sess_records(&s, "metrics insert", 1, inv, ninv, clock_us(), ids);
    }
    if (st == UQ_DB_OK) {
        st = sess_run(&s, "metrics insert", "COMMIT", 0, NULL);
    }
    if (st != UQ_DB_OK) {
        sess_rollback(&s);
    }
    sess_close(&s);
    if (st != UQ_DB_OK) {
        uq_db_metrics_free(tmp, done, 1);
        free(ids);
        return st;
    }
    memcpy(out, tmp, n * sizeof(*tmp));
    if (inv_ids != NULL && ninv > 0) {
        memcpy(inv_ids, ids, ninv * sizeof(*ids));
    }
    free(tmp);
    free(ids);
    return UQ_DB_OK;
}

static int pg_metrics_list(uq_db_t *db, const uq_db_metric_filter_t *f,
                           int limit, int offset, uq_db_metric_t **rows,
                           size_t *n)
{
    params_t p = {0};
    PGresult *r = NULL;
    uq_db_metric_t *arr = NULL;
    size_t count = 0;
    int st;

    if (f == NULL || limit < 1 || offset < 0) {
        return UQ_DB_EINVAL;
    }
    p_str(&p, f->service_name);
    p_str(&p, f->metric_type);
    p_time(&p, f->start);
    p_time(&p, f->end);
    p_i64(&p, limit);
    p_i64(&p, offset);
    st = query((pg_db_t *)db, "metrics list", SQL_METRIC_LIST, &p, &r);
    if (st == UQ_DB_OK) {
        st = read_rows(r, PQntuples(r), sizeof(*arr), uq__db_read_metric,
                       (void **)&arr, &count);
    }
    PQclear(r);
    if (st != UQ_DB_OK) {
        uq_db_metrics_free(arr, count, 1);
        return st;
    }
    *rows = arr;
    *n = count;
    return UQ_DB_OK;
}

static int pg_metrics_aggregate(uq_db_t *db, const char *service_name,
                                const char *metric_type, uq_db_interval_t iv,
                                int64_t start, int64_t end,
                                uq_db_bucket_t **rows, size_t *n)
{
    params_t p = {0};
    PGresult *r = NULL;
    uq_db_bucket_t *arr = NULL;
    size_t count = 0;
    int st;

    if (service_name == NULL || metric_type == NULL ||
        (iv != UQ_DB_HOUR && iv != UQ_DB_DAY && iv != UQ_DB_WEEK)) {
        return UQ_DB_EINVAL;
    }
    p_str(&p, service_name);
    p_str(&p, metric_type);
    p_i64(&p, uq_db_interval_width_us(iv));
    p_i64(&p, uq_db_interval_origin_us(iv));
    p_i64(&p, start);
    p_i64(&p, end);
    st = query((pg_db_t *)db, "metrics aggregate", SQL_METRIC_AGG, &p, &r);
    if (st == UQ_DB_OK) {
        st = read_rows(r, PQntuples(r), sizeof(*arr), uq__db_read_bucket,
                       (void **)&arr, &count);
    }
    PQclear(r);
    if (st != UQ_DB_OK) {
        free(arr);
        return st;
    }
    *rows = arr;
    *n = count;
    return UQ_DB_OK;
}

static int retention_step(sess_t *s, const char *what, const char *sql,
                          int64_t before, size_t sz, row_reader_fn read,
                          void **arr, size_t *n, int count_col,
                          int64_t *deleted)
{
    params_t p = {0};
    PGresult *r = NULL;
    int st;

    p_i64(&p, before);
    st = sess_exec(s, what, sql, p.n, p.v, &r);
    if (st != UQ_DB_OK) {
        return st;
    }
    st = read_rows(r, PQntuples(r), sz, read, arr, n);
    for (int i = 0; st == UQ_DB_OK && i < PQntuples(r); i++) {
        *deleted += count_col < 0 ? 1 : v_i64(r, i, count_col, 0);
    }
    PQclear(r);
    return st;
}

/* The three deletes of a retention run, inside the caller's transaction. */
static int retention_steps(sess_t *s, const uq_db_retention_cutoffs_t *c,
                           uq_db_retention_t *out)
{
    int st = retention_step(s, "retention jobs", SQL_RET_JOBS, c->jobs_before,
                            sizeof(*out->job_ids), uq__db_read_job_id,
                            (void **)&out->job_ids, &out->n_job_ids, -1,
                            &out->jobs_deleted);
    if (st == UQ_DB_OK) {
        st = retention_step(s, "retention feedback", SQL_RET_FB,
                            c->feedback_before, sizeof(*out->insight_ids),
                            uq__db_read_insight_id, (void **)&out->insight_ids,
                            &out->n_insight_ids, 1, &out->feedback_deleted);
    }
    if (st == UQ_DB_OK) {
        st = retention_step(s, "retention metrics", SQL_RET_METRICS,
                            c->metrics_before, sizeof(*out->series),
                            uq__db_read_series, (void **)&out->series,
                            &out->n_series, 2, &out->metrics_deleted);
    }
    return st;
}

static int pg_retention_run(uq_db_t *db, const uq_db_retention_cutoffs_t *c,
                            uq_db_retention_t *out, const uq_db_inval_t *inv,
                            size_t ninv, int64_t *inv_ids)
{
    uq_db_retention_t res;
    int64_t *ids;
    sess_t s;
    int st;

    if (c == NULL || out == NULL) {
        return UQ_DB_EINVAL;
    }
    ids = calloc(ninv > 0 ? ninv : 1, sizeof(*ids));
    if (ids == NULL) {
        return UQ_DB_ENOMEM;
    }
    memset(&res, 0, sizeof(res));
    st = sess_open((pg_db_t *)db, &s);
    if (st != UQ_DB_OK) {
        free(ids);
        return st;
    }
    st = sess_run(&s, "retention", "BEGIN", 0, NULL);
    if (st == UQ_DB_OK) {
        st = retention_steps(&s, c, &res);
    }
    if (st == UQ_DB_OK) {
        st = sess_records(&s, "retention", 1, inv, ninv, clock_us(), ids);
    }
    if (st == UQ_DB_OK) {
        st = sess_run(&s, "retention", "COMMIT", 0, NULL);
    }
    if (st != UQ_DB_OK) {
        sess_rollback(&s);
    }
    sess_close(&s);
    if (st != UQ_DB_OK) {
        uq_db_retention_release(&res);
        free(ids);
        return st;
    }
    *out = res;
    if (inv_ids != NULL && ninv > 0) {
        memcpy(inv_ids, ids, ninv * sizeof(*ids));
    }
    free(ids);
    return UQ_DB_OK;
}

static int pg_api_key_create(uq_db_t *db, const uq_db_api_key_t *key)
{
    params_t p = {0};

    p_str(&p, key->prefix);
    p_str(&p, key->hash_hex);
    p_str(&p, key->user_id);
    p_str(&p, key->role);
    p_i64(&p, key->created_at);
    return query_run((pg_db_t *)db, "api key create", SQL_KEY_CREATE, &p);
}

static int pg_api_key_lookup(uq_db_t *db, const char *prefix,
                             uq_db_api_key_t *out)
{
    params_t p = {0};
    uq_db_api_key_t row;
    int st;

    if (prefix == NULL) {
        return UQ_DB_EINVAL;
    }
    p_str(&p, prefix);
    st = query_row((pg_db_t *)db, "api key lookup", SQL_KEY_LOOKUP, &p,
                   uq__db_read_api_key, &row, UQ_DB_NOTFOUND);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int pg_api_key_lookup_hash(uq_db_t *db, const char *hash_hex,
                                  uq_db_api_key_t *out)
{
    params_t p = {0};
    uq_db_api_key_t row;
    int st;

    p_str(&p, hash_hex);
    st = query_row((pg_db_t *)db, "api key lookup", SQL_KEY_LOOKUP_HASH, &p,
                   uq__db_read_api_key, &row, UQ_DB_NOTFOUND);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int pg_api_key_list(uq_db_t *db, uq_db_api_key_t **rows, size_t *n)
{
    params_t p = {0};
    PGresult *r = NULL;
    void *arr = NULL;
    size_t count = 0;
    int st = query((pg_db_t *)db, "api key list", SQL_KEY_LIST, &p, &r);

    if (st == UQ_DB_OK && PQnfields(r) != KEY_NCOLS) {
        st = UQ_DB_EIO;
    }
    if (st == UQ_DB_OK) {
        st = read_rows(r, PQntuples(r), sizeof(uq_db_api_key_t),
                       uq__db_read_api_key, &arr, &count);
    }
    PQclear(r);
    if (st != UQ_DB_OK) {
        free(arr);
        return st;
    }
    *rows = arr;
    *n = count;
    return UQ_DB_OK;
}

static int pg_api_key_revoke(uq_db_t *db, int64_t id, int64_t now_us,
                             int64_t *revoked_at)
{
    params_t p = {0};
    int64_t at = 0;
    int st;

    p_i64(&p, id);
    p_i64(&p, now_us);
    st = query_row((pg_db_t *)db, "api key revoke", SQL_KEY_REVOKE, &p,
                   uq__db_read_i64, &at, UQ_DB_NOTFOUND);
    if (st == UQ_DB_OK && revoked_at != NULL) {
        *revoked_at = at;
    }
    return st;
}

/* "" goes as SQL NULL: the optional columns' CHECKs refuse empty text. */
static void p_opt_str(params_t *p, const char *s)
{
    p_str(p, s[0] != '\0' ? s : NULL);
}

static int pg_api_key_import(uq_db_t *db, const uq_db_api_key_t *keys, size_t n,
                             size_t *failed_at)
{
    sess_t s;
    size_t i = 0;
    int st = sess_open((pg_db_t *)db, &s);

    if (st != UQ_DB_OK) {
        return st;
    }
    st = sess_run(&s, "api key import", "BEGIN", 0, NULL);
    for (; st == UQ_DB_OK && i < n; i++) {
        const uq_db_api_key_t *k = &keys[i];
        params_t p = {0};
        PGresult *r = NULL;

        p_str(&p, k->hash_hex);
        p_str(&p, k->user_id);
        p_str(&p, k->role);
        p_i64(&p, k->created_at);
        p_opt_str(&p, k->name);
        p_str(&p, k->origin_id);
        p_opt_str(&p, k->origin_prefix);
        p_time(&p, k->last_used_at);
        p_time(&p, k->revoked_at);
        st = sess_exec(&s, "api key import", SQL_KEY_IMPORT, p.n, p.v, &r);
        /* No row back: the origin id is stored with another hash. */
        if (st == UQ_DB_OK && PQntuples(r) != 1) {
            st = UQ_DB_ECONSTRAINT;
        }
        PQclear(r);
        if (st != UQ_DB_OK) {
            break;
        }
    }
    if (st == UQ_DB_OK) {
        st = sess_run(&s, "api key import", "COMMIT", 0, NULL);
    }
    if (st != UQ_DB_OK) {
        sess_rollback(&s);
        if (failed_at != NULL) {
            *failed_at = i;
        }
    }
    sess_close(&s);
    return st;
}

/* ---- invalidation log ---------------------------------------------------- */

/* Runs a log read and copies its rows to out only when all of them were
 * read; more rows than cap (impossible with LIMIT) is an error. */
static int inval_read(pg_db_t *d, const char *what, const char *sql,
                      const params_t *p, uq_db_inval_row_t *out, size_t cap,
                      size_t *n)
{
    PGresult *r = NULL;
    void *arr = NULL;
    size_t count = 0;
    int st = query(d, what, sql, p, &r);

    if (st == UQ_DB_OK &&
        (PQnfields(r) != INV_NCOLS || (size_t)PQntuples(r) > cap)) {
        st = UQ_DB_EIO;
    }
    if (st == UQ_DB_OK) {
        st = read_rows(r, PQntuples(r), sizeof(*out), uq__db_read_inval, &arr,
                       &count);
    }
    PQclear(r);
    if (st == UQ_DB_OK) {
        if (count > 0) {
            memcpy(out, arr, count * sizeof(*out));
        }
        *n = count;
    }
    free(arr);
    return st;
}

static int64_t cap_limit(size_t cap)
{
    return cap > (size_t)INT64_MAX ? INT64_MAX : (int64_t)cap;
}

static int pg_inval_after(uq_db_t *db, int64_t after_id, uq_db_inval_row_t *out,
                          size_t cap, size_t *n)
{
    params_t p = {0};

    p_i64(&p, after_id);
    p_i64(&p, cap_limit(cap));
    return inval_read((pg_db_t *)db, "invalidations after", SQL_INV_AFTER, &p,
                      out, cap, n);
}

static int pg_inval_pending(uq_db_t *db, uq_db_inval_row_t *out, size_t cap,
                            size_t *n)
{
    params_t p = {0};

    p_i64(&p, cap_limit(cap));
    return inval_read((pg_db_t *)db, "invalidations pending", SQL_INV_PENDING,
                      &p, out, cap, n);
}

static int pg_inval_mark_applied(uq_db_t *db, const int64_t *ids, size_t n,
                                 int64_t now)
{
    /* "{" + n ids of at most 20 characters with a comma each + "}". */
    size_t cap = 3 + n * 21;
    char *arr = malloc(cap);
    size_t pos = 0;
    params_t p = {0};
    int st;

    if (arr == NULL) {
        return UQ_DB_ENOMEM;
    }
    arr[pos++] = '{';
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(arr + pos, cap - pos, "%s%" PRId64, i > 0 ? "," : "",
                         ids[i]);
        if (k < 0 || (size_t)k >= cap - pos) {
            free(arr);
            return UQ_DB_EINVAL;
        }
        pos += (size_t)k;
    }
    arr[pos++] = '}';
    arr[pos] = '\0';
    p_str(&p, arr);
    p_i64(&p, now);
    st = query_run((pg_db_t *)db, "invalidations applied", SQL_INV_MARK, &p);
    free(arr);
    return st;
}

static int pg_inval_prune(uq_db_t *db, int64_t before_us, int64_t *removed)
{
    params_t p = {0};
    PGresult *r = NULL;
    int st;

    p_i64(&p, before_us);
    p_i64(&p, UQ_DB_INVAL_PRUNE_MAX);
    st = query((pg_db_t *)db, "invalidations prune", SQL_INV_PRUNE, &p, &r);
    if (st == UQ_DB_OK && removed != NULL) {
        *removed = strtoll(PQcmdTuples(r), NULL, 10);
    }
    PQclear(r);
    return st;
}

static int pg_inval_last_id(uq_db_t *db, int64_t *id)
{
    params_t p = {0};
    int64_t v = 0;
    int st = query_row((pg_db_t *)db, "invalidations last id", SQL_INV_LAST, &p,
                       uq__db_read_i64, &v, UQ_DB_EIO);

    if (st == UQ_DB_OK) {
        *id = v;
    }
    return st;
}

static int pg_inval_append(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                           int64_t now, int64_t *ids)
{
    sess_t s;
    int st = sess_open((pg_db_t *)db, &s);

    if (st != UQ_DB_OK) {
        return st;
    }
    /* One statement, so autocommit makes it all or nothing. */
    st = sess_records(&s, "invalidations append", 0, inv, n, now, ids);
    sess_close(&s);
    return st;
}

static const uq_db_methods_t pg_methods = {
    .name = "postgresql",
    .close = pg_close,
    .migrate = pg_migrate,
    .ping = pg_ping,
    .probe_write = pg_probe_write,
    .feedback_upsert = pg_feedback_upsert,
    .feedback_stats = pg_feedback_stats,
    .feedback_comments = pg_feedback_comments,
    .feedback_by_user = pg_feedback_by_user,
    .job_create = pg_job_create,
    .job_progress = pg_job_progress,
    .job_get = pg_job_get,
    .job_list = pg_job_list,
    .metrics_insert = pg_metrics_insert,
    .metrics_list = pg_metrics_list,
    .metrics_aggregate = pg_metrics_aggregate,
    .retention_run = pg_retention_run,
    .api_key_create = pg_api_key_create,
    .api_key_lookup = pg_api_key_lookup,
    .api_key_lookup_hash = pg_api_key_lookup_hash,
    .api_key_list = pg_api_key_list,
    .api_key_revoke = pg_api_key_revoke,
    .api_key_import = pg_api_key_import,
    .inval_after = pg_inval_after,
    .inval_pending = pg_inval_pending,
    .inval_mark_applied = pg_inval_mark_applied,
    .inval_prune = pg_inval_prune,
    .inval_last_id = pg_inval_last_id,
    .inval_append = pg_inval_append,
};

/* ---- opening ------------------------------------------------------------- */

/*
 * Fills the keyword arrays. Defaults that the URL may override come before
 * "dbname" (the expanded URL); what the pool's correctness depends on comes
 * after it, so a URL cannot switch off the statement timeout.
 */
static void set_keywords(pg_db_t *d)
{
    int i = 0;
    int secs = (d->timeout_ms + 999) / 1000;

    /* libpq treats 1 s as 2 s; our poll loop is the real bound anyway. */
    snprintf(d->connect_s, sizeof(d->connect_s), "%d", secs < 2 ? 2 : secs);
    snprintf(d->options, sizeof(d->options),
             "-c statement_timeout=%d -c lock_timeout=%d"
             " -c idle_in_transaction_session_timeout=%d -c TimeZone=UTC",
             d->timeout_ms, d->timeout_ms, d->timeout_ms * 4);
    d->kw[i] = "connect_timeout";
    d->val[i++] = d->connect_s;
    d->kw[i] = "application_name";
    d->val[i++] = "utxoiq-api";
    d->kw[i] = "keepalives";
    d->val[i++] = "1";
    d->kw[i] = "keepalives_idle";
    d->val[i++] = "30";
    d->kw[i] = "keepalives_interval";
    d->val[i++] = "10";
    d->kw[i] = "keepalives_count";
    d->val[i++] = "3";
    d->kw[i] = "dbname";
    d->val[i++] = d->url;
    d->kw[i] = "options";
    d->val[i++] = d->options;
    d->kw[i] = "client_encoding";
    d->val[i++] = "UTF8";
    d->kw[i] = NULL;
    d->val[i] = NULL;
}

/*
 * libpq accepts any port text when parsing and fails only when connecting,
 * which would look like an outage; a typo in the port is a configuration
 * error. Ports are a comma-separated list of 1..65535 (or empty: default).
 */
static int ports_valid(const PQconninfoOption *info)
{
    for (const PQconninfoOption *o = info; o->keyword != NULL; o++) {
        long v = 0;
        int digits = 0;
        if (strcmp(o->keyword, "port") != 0 || o->val == NULL) {
            continue;
        }
        for (const char *p = o->val;; p++) {
            if (*p >= '0' && *p <= '9' && digits < 6) {
                v = v * 10 + (*p - '0');
                digits++;
            } else if (*p == ',' || *p == '\0') {
                if (digits > 0 && (v < 1 || v > 65535)) {
                    return 0;
                }
                if (*p == '\0') {
                    break;
                }
                v = 0;
                digits = 0;
            } else {
                return 0;
            }
        }
    }
    return 1;
}

int uq_db_pg_open(const uq_db_options_t *opt, uq_db_t **out, char *err,
                  size_t errlen)
{
    PQconninfoOption *info = NULL;
    char *perr = NULL;
    pg_db_t *d = NULL;
    PGconn *first = NULL;
    char where[256];
    char cerr[640];
    size_t len;

    if (opt == NULL || opt->url == NULL || out == NULL) {
        snprintf(err, errlen, "open postgresql: no URL");
        return UQ_DB_ECONFIG;
    }
    uq_db_url_describe(opt->url, where, sizeof(where));
    len = strlen(opt->url);
    if (len > 4096) {
        snprintf(err, errlen, "open postgresql: URL too long");
        return UQ_DB_ECONFIG;
    }
    /* Validate the URL up front; libpq's message may quote the URL, so
     * only our own, password-free description is reported. */
    info = PQconninfoParse(opt->url, &perr);
    if (info == NULL || !ports_valid(info)) {
        PQfreemem(perr);
        PQconninfoFree(info);
        snprintf(err, errlen, "open postgresql '%s': invalid connection URL",
                 where);
        return UQ_DB_ECONFIG;
    }
    PQconninfoFree(info);
    if (opt->pool_size < 0 || opt->pool_size > 1000 || opt->timeout_ms < 0) {
        snprintf(err, errlen, "open postgresql '%s': bad pool options", where);
        return UQ_DB_ECONFIG;
    }

    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        goto nomem;
    }
    d->base.methods = &pg_methods;
    d->max = opt->pool_size > 0 ? opt->pool_size : 8;
    d->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : 5000;
    if (d->timeout_ms > INT_MAX / 8) {
        d->timeout_ms = INT_MAX / 8;
    }
    d->log.fn = opt->log;
    d->log.arg = opt->log_arg;
    snprintf(d->where, sizeof(d->where), "%s", where);
    snprintf(d->what, sizeof(d->what), "postgresql '%s'", where);
    d->url = malloc(len + 1);
    if (d->url == NULL ||
        uq__db_pool_init(&d->pool, d->max, d->timeout_ms, &pool_ops, d, &d->log,
                         d->what) != UQ_DB_OK) {
        free(d->url);
        free(d);
        goto nomem;
    }
    d->base.pool = &d->pool;
    memcpy(d->url, opt->url, len + 1);
    set_keywords(d);

    /* One connection now, so that a wrong host or password is reported at
     * start; it stays in the pool. Later outages are survived, not fatal. */
    first = connect_one(d, cerr, sizeof(cerr));
    if (first == NULL) {
        snprintf(err, errlen, "%s", cerr);
        pg_close(&d->base);
        return UQ_DB_EUNAVAILABLE;
    }
    uq__db_pool_adopt(&d->pool, first);
    uq__db_logf(&d->log, 1,
                "postgresql: connected to '%s' (pool %d, timeout %d ms)",
                d->where, d->max, d->timeout_ms);
    *out = &d->base;
    return UQ_DB_OK;

nomem:
    snprintf(err, errlen, "open postgresql '%s': out of memory", where);
    return UQ_DB_ENOMEM;
}
