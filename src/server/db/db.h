/* SPDX-License-Identifier: MIT */
/*
 * The database interface of utxoiq-api: one opaque handle and one table of
 * function pointers (the shape of BIND's dns_dbmethods), with one backend
 * per file:
 *
 *   src/server/db/sqlite.c   SQLite (embedded default), uc_db_sqlite_open()
 *   src/server/db/pg.c       PostgreSQL through libpq, uc_db_pg_open(); it is
 *                            compiled only when the build defines UC_HAVE_PG
 *                            (src/server/CMakeLists.txt, UC_SERVER_POSTGRES)
 *
 * uc_db_open() picks the backend from the URL: "sqlite:PATH" (or a bare
 * path) for SQLite, "postgresql://..." / "postgres://..." for PostgreSQL.
 * uc_db_url_from_env() builds that URL from DATABASE_URL or the existing
 * service's DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME.
 *
 * Rows cross the interface as plain C structs with fixed-size, NUL-terminated
 * string fields (every field is capped by the service's validation, so the
 * caps below are also the API's limits) and timestamps as int64 microseconds
 * since the Unix epoch, UTC. The service turns rows into JSON, so both
 * backends produce byte-identical responses. Backends never format JSON
 * except to store metric_metadata, which they keep as the text they were given.
 *
 * Ownership: arguments are borrowed for the call. Single rows are written into
 * caller-owned structs. Lists come back as a malloc()ed array through
 * `**rows` that the caller frees with free(), except metric rows (their
 * metadata is heap text), which are freed with uc_db_metrics_free(), and
 * retention results, released with uc_db_retention_release(). Outputs are
 * written only when a call returns UC_DB_OK.
 *
 * Thread safety: a uc_db_t is thread-safe (each backend keeps a pool of
 * connections); any number of threads may share it. uc_db_close() must not
 * race with other calls.
 *
 * Every value reaches SQL as a bound parameter; no backend ever splices input
 * into SQL text.
 */
#ifndef UC_SERVER_DB_H
#define UC_SERVER_DB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes -------------------------------------------------------- */

typedef enum {
    UC_DB_OK = 0,
    UC_DB_NOTFOUND = 1,      /* no such row: a normal outcome */
    UC_DB_ENOMEM = -1,       /* out of memory */
    UC_DB_EINVAL = -2,       /* bad argument (a programmer error upstream) */
    UC_DB_ECONSTRAINT = -3,  /* a CHECK / NOT NULL / FK constraint refused */
    UC_DB_EUNAVAILABLE = -4, /* cannot connect, or the connection broke */
    UC_DB_EBUSY = -5,        /* lock or pool wait ran out of time */
    UC_DB_EIO = -6,          /* any other database error (logged) */
    UC_DB_ECONFIG = -7,      /* bad URL or options, unknown scheme */
} uc_db_status_t;

/* Static message for a status; never NULL. */
const char *uc_db_strerror(int status);

/* ---- limits shared by the service and the backends ----------------------- */

#define UC_DB_ID_MAX 128        /* insight_id, user_id, created_by (bytes) */
#define UC_DB_NAME_MAX 128      /* service_name, metric_type, job_type */
#define UC_DB_UNIT_MAX 32       /* metric unit */
#define UC_DB_UUID_LEN 36       /* canonical UUID text */
#define UC_DB_COMMENT_MAX 4000  /* bytes; the API allows 1000 characters */
#define UC_DB_REASON_MAX 2000   /* bytes; the API allows 500 characters */
#define UC_DB_ERRMSG_MAX 4000   /* bytes; the API allows 1000 characters */
#define UC_DB_METADATA_MAX 8192 /* bytes of metric_metadata JSON text */
#define UC_DB_KEY_PREFIX_MAX 16 /* api key lookup prefix */
#define UC_DB_HASH_HEX_LEN 64   /* SHA-256 as lower-case hex */

/* A timestamp that is absent (SQL NULL). */
#define UC_DB_NULL_TIME INT64_MIN

/* ---- rows ---------------------------------------------------------------- */

/* insight_feedback. rating 0 and empty strings stand for SQL NULL. */
typedef struct {
    int64_t id;
    char insight_id[UC_DB_ID_MAX + 1];
    char user_id[UC_DB_ID_MAX + 1];
    int rating; /* 1..5, 0: none */
    int has_comment;
    char comment[UC_DB_COMMENT_MAX + 1];
    char flag_type[16]; /* "inaccurate" | "misleading" | "spam" | "" */
    int has_flag_reason;
    char flag_reason[UC_DB_REASON_MAX + 1];
    int64_t created_at; /* µs since epoch, UTC */
    int64_t updated_at;
} uc_db_feedback_t;

/* Which part of a feedback row a write sets. */
enum {
    UC_DB_FB_RATING = (1 << 0),  /* rating (and comment when has_comment) */
    UC_DB_FB_COMMENT = (1 << 1), /* comment */
    UC_DB_FB_FLAG = (1 << 2), /* flag_type and flag_reason (NULL if absent) */
};

/*
 * One rate/comment/flag write. The upsert inserts the row for
 * (insight_id, user_id) or merges into it atomically (INSERT ... ON CONFLICT
 * DO UPDATE ... RETURNING): only the parts named in `fields` change;
 * UC_DB_FB_RATING also sets the comment when has_comment is set, and keeps
 * the old comment otherwise; UC_DB_FB_FLAG sets flag_reason to NULL when
 * has_flag_reason is 0. created_at is `now` on insert and kept on update;
 * updated_at is `now`.
 */
typedef struct {
    unsigned fields;
    const char *insight_id;
    const char *user_id;
    int rating;
    int has_comment;
    const char *comment;
    const char *flag_type;
    int has_flag_reason;
    const char *flag_reason;
    int64_t now;
} uc_db_feedback_write_t;

/*
 * Feedback statistics of one insight, computed by ONE SQL aggregate over
 * insight_feedback WHERE insight_id = ?: count(rating), avg(rating),
 * the count per rating value, count(comment), count(flag_type) and the count
 * per flag type. average_rating is the raw average (0 when no ratings); the
 * service rounds it to 2 decimals.
 */
typedef struct {
    int64_t total_ratings;
    double average_rating;
    int64_t rating_distribution[5]; /* index 0 is rating 1 */
    int64_t total_comments;
    int64_t total_flags;
    int64_t flag_inaccurate;
    int64_t flag_misleading;
    int64_t flag_spam;
} uc_db_feedback_stats_t;

/* backfill_jobs. */
typedef struct {
    char id[UC_DB_UUID_LEN + 1];
    char job_type[UC_DB_NAME_MAX + 1];
    int64_t start_block;
    int64_t end_block;
    int64_t current_block;
    char status[16]; /* running | completed | failed | paused */
    double progress_percentage;
    int64_t estimated_completion; /* UC_DB_NULL_TIME when absent */
    int has_error_message;
    char error_message[UC_DB_ERRMSG_MAX + 1];
    int64_t started_at;
    int64_t completed_at; /* UC_DB_NULL_TIME when absent */
    int has_created_by;
    char created_by[UC_DB_ID_MAX + 1];
} uc_db_job_t;

/*
 * A progress report. current_block and progress_percentage are always set;
 * status is NULL to keep the current one; estimated_completion is
 * UC_DB_NULL_TIME to keep the current one; error_message NULL keeps it.
 * When the resulting status is "completed" or "failed" and completed_at is
 * NULL, completed_at becomes `now`.
 */
typedef struct {
    int64_t current_block;
    double progress_percentage;
    const char *status;
    int64_t estimated_completion;
    const char *error_message;
    int64_t now;
} uc_db_job_progress_t;

/* system_metrics. metadata is NULL or JSON text (owned by the row). */
typedef struct {
    int64_t id;
    char service_name[UC_DB_NAME_MAX + 1];
    char metric_type[UC_DB_NAME_MAX + 1];
    double metric_value;
    char unit[UC_DB_UNIT_MAX + 1];
    int64_t timestamp; /* set by the service, not the client */
    char *metadata;
} uc_db_metric_t;

/* A metric to insert; metadata NULL or JSON text (borrowed). */
typedef struct {
    const char *service_name;
    const char *metric_type;
    double metric_value;
    const char *unit;
    int64_t timestamp;
    const char *metadata;
} uc_db_metric_new_t;

/*
 * Filter of a metrics list. NULL strings and UC_DB_NULL_TIME bounds do not
 * filter. start is inclusive, end exclusive.
 */
typedef struct {
    const char *service_name;
    const char *metric_type;
    int64_t start;
    int64_t end;
} uc_db_metric_filter_t;

typedef enum {
    UC_DB_HOUR = 0,
    UC_DB_DAY = 1,
    UC_DB_WEEK = 2,
} uc_db_interval_t;

/*
 * One aggregate bucket. Buckets are computed in SQL on the microsecond
 * timestamp: bucket = origin + floor((timestamp - origin) / width) * width,
 * width = 3600 s, 86400 s or 604800 s; origin is 0 (1970-01-01T00:00:00Z)
 * for hour and day and 345600 s (1970-01-05, a Monday) for week, so weeks
 * start on Monday 00:00 UTC as in PostgreSQL's date_trunc('week').
 */
typedef struct {
    int64_t bucket; /* µs */
    double avg_value;
    double min_value;
    double max_value;
    int64_t count;
} uc_db_bucket_t;

/* Width and origin of an interval in µs (the rule above). */
int64_t uc_db_interval_width_us(uc_db_interval_t iv);
int64_t uc_db_interval_origin_us(uc_db_interval_t iv);

/* A (service_name, metric_type) pair touched by retention. */
typedef struct {
    char service_name[UC_DB_NAME_MAX + 1];
    char metric_type[UC_DB_NAME_MAX + 1];
} uc_db_series_t;

/*
 * What a retention run deleted, so the service can invalidate exactly that:
 * the deleted jobs' ids, the distinct insight ids whose feedback went, and
 * the distinct series whose metrics went. Arrays are malloc()ed; release the
 * whole struct with uc_db_retention_release().
 */
typedef struct {
    int64_t jobs_deleted;
    int64_t feedback_deleted;
    int64_t metrics_deleted;
    char (*job_ids)[UC_DB_UUID_LEN + 1];
    size_t n_job_ids;
    char (*insight_ids)[UC_DB_ID_MAX + 1];
    size_t n_insight_ids;
    uc_db_series_t *series;
    size_t n_series;
} uc_db_retention_t;

/*
 * Retention cut-offs in µs: rows strictly older than these go.
 * backfill_jobs by started_at, insight_feedback by updated_at,
 * system_metrics by timestamp. One transaction.
 */
typedef struct {
    int64_t jobs_before;
    int64_t feedback_before;
    int64_t metrics_before;
} uc_db_retention_cutoffs_t;

/* api_keys: the key's public prefix (for lookup) and its SHA-256. */
typedef struct {
    int64_t id;
    char prefix[UC_DB_KEY_PREFIX_MAX + 1];
    char hash_hex[UC_DB_HASH_HEX_LEN + 1];
    char user_id[UC_DB_ID_MAX + 1];
    char role[16]; /* user | service | admin */
    int64_t created_at;
} uc_db_api_key_t;

/* ---- the handle and its methods ------------------------------------------ */

typedef struct uc_db uc_db_t;

typedef void (*uc_db_log_fn)(void *arg, int level, const char *msg);

typedef struct {
    const char *url;  /* "sqlite:PATH" or "postgresql://..." */
    int pool_size;    /* connections; 0: 8 */
    int timeout_ms;   /* busy_timeout / statement and pool wait; 0: 5000 */
    uc_db_log_fn log; /* may be NULL; levels as uc_log_level_t */
    void *log_arg;
} uc_db_options_t;

/*
 * The methods every backend implements. All return a uc_db_status_t.
 * Paging: limit >= 1, offset >= 0 (validated by the service). Lists are
 * ordered newest first (ties broken by id descending), except the aggregate
 * (oldest bucket first).
 */
typedef struct uc_db_methods {
    const char *name; /* "sqlite" | "postgresql" */

    void (*close)(uc_db_t *db);

    /*
     * Applies the backend's versioned migrations not yet recorded in
     * schema_migrations(version, name, applied_at), each in its own
     * transaction, in version order; *applied (may be NULL) counts them.
     * Safe to run concurrently from two processes (the second waits or
     * finds nothing to do).
     */
    int (*migrate)(uc_db_t *db, int *applied);

    /* Round trip to the database (SELECT 1). */
    int (*ping)(uc_db_t *db);

    /* Upserts one feedback row and returns the stored row in *out. */
    int (*feedback_upsert)(uc_db_t *db, const uc_db_feedback_write_t *w,
                           uc_db_feedback_t *out);

    /* Statistics of one insight (all zero when it has no feedback). */
    int (*feedback_stats)(uc_db_t *db, const char *insight_id,
                          uc_db_feedback_stats_t *out);

    /*
     * Rows of one insight with a comment, newest updated_at first, one page;
     * *total counts all of that insight's rows with a comment.
     */
    int (*feedback_comments)(uc_db_t *db, const char *insight_id, int limit,
                             int offset, uc_db_feedback_t **rows, size_t *n,
                             int64_t *total);

    /* One user's rows, newest updated_at first; *total counts them all. */
    int (*feedback_by_user)(uc_db_t *db, const char *user_id, int limit,
                            int offset, uc_db_feedback_t **rows, size_t *n,
                            int64_t *total);

    /* Inserts a job as given (the service fills id, status, timestamps). */
    int (*job_create)(uc_db_t *db, const uc_db_job_t *job);

    /* Applies a progress report; UC_DB_NOTFOUND for an unknown id. */
    int (*job_progress)(uc_db_t *db, const char *job_id,
                        const uc_db_job_progress_t *p, uc_db_job_t *out);

    int (*job_get)(uc_db_t *db, const char *job_id, uc_db_job_t *out);

    /* Jobs newest started_at first; status / job_type NULL: any. */
    int (*job_list)(uc_db_t *db, const char *status, const char *job_type,
                    int limit, int offset, uc_db_job_t **rows, size_t *n,
                    int64_t *total);

    /* Inserts n >= 1 metrics in ONE transaction (all or none); out[i] is
     * the stored row of in[i] (caller's array of n, filled only on success;
     * release its metadata with uc_db_metrics_free(out, n, 0)). */
    int (*metrics_insert)(uc_db_t *db, const uc_db_metric_new_t *in, size_t n,
                          uc_db_metric_t *out);

    /* Metrics newest timestamp first, one page. */
    int (*metrics_list)(uc_db_t *db, const uc_db_metric_filter_t *f, int limit,
                        int offset, uc_db_metric_t **rows, size_t *n);

    /* Buckets of one series in [start, end), oldest first; empty buckets
     * are absent. service_name and metric_type are required. */
    int (*metrics_aggregate)(uc_db_t *db, const char *service_name,
                             const char *metric_type, uc_db_interval_t iv,
                             int64_t start, int64_t end, uc_db_bucket_t **rows,
                             size_t *n);

    /* Deletes rows past the cut-offs in one transaction (see above). */
    int (*retention_run)(uc_db_t *db, const uc_db_retention_cutoffs_t *c,
                         uc_db_retention_t *out);

    /* Stores a key (prefix unique); key->id and created_at as given except
     * id, which the database assigns. */
    int (*api_key_create)(uc_db_t *db, const uc_db_api_key_t *key);

    /* The key with that prefix; UC_DB_NOTFOUND if none. The caller compares
     * the hash in constant time. */
    int (*api_key_lookup)(uc_db_t *db, const char *prefix,
                          uc_db_api_key_t *out);
} uc_db_methods_t;

/*
 * The common head of every backend's handle: a backend defines
 * `struct uc_db_sqlite { uc_db_t base; ... }` with base first and sets
 * base.methods. The service only ever calls the uc_db_* wrappers below.
 */
struct uc_db {
    const uc_db_methods_t *methods;
};

/* ---- opening ------------------------------------------------------------- */

/*
 * Writes the database URL to use into buf: DATABASE_URL when set; else,
 * when DB_HOST is set, postgresql://DB_USER:DB_PASSWORD@DB_HOST:DB_PORT/DB_NAME
 * (user/password percent-encoded, port 5432 and name "utxoiq" by default);
 * else `fallback`. Returns UC_DB_OK or UC_DB_ECONFIG (too long).
 */
int uc_db_url_from_env(char *buf, size_t cap, const char *fallback);

/* Copies url into buf with any password replaced by "***" (for logs): the
 * userinfo's (which ends at the last '@' before the query) and any
 * password= query parameter's. The copy is cut to cap, never unmasked. */
void uc_db_url_describe(const char *url, char *buf, size_t cap);

/*
 * Opens the backend named by opt->url. No migration is run here. Returns
 * UC_DB_OK and *out, or UC_DB_ECONFIG / UC_DB_EUNAVAILABLE / UC_DB_ENOMEM
 * with a one-line message in err (never containing a password).
 */
int uc_db_open(const uc_db_options_t *opt, uc_db_t **out, char *err,
               size_t errlen);

/* Backend constructors (same contract as uc_db_open). */
int uc_db_sqlite_open(const uc_db_options_t *opt, uc_db_t **out, char *err,
                      size_t errlen);
#ifdef UC_HAVE_PG
int uc_db_pg_open(const uc_db_options_t *opt, uc_db_t **out, char *err,
                  size_t errlen);
#endif

/* ---- wrappers (dispatch through db->methods) ----------------------------- */

void uc_db_close(uc_db_t *db); /* accepts NULL */
const char *uc_db_backend_name(const uc_db_t *db);
int uc_db_migrate(uc_db_t *db, int *applied);
int uc_db_ping(uc_db_t *db);
int uc_db_feedback_upsert(uc_db_t *db, const uc_db_feedback_write_t *w,
                          uc_db_feedback_t *out);
int uc_db_feedback_stats(uc_db_t *db, const char *insight_id,
                         uc_db_feedback_stats_t *out);
int uc_db_feedback_comments(uc_db_t *db, const char *insight_id, int limit,
                            int offset, uc_db_feedback_t **rows, size_t *n,
                            int64_t *total);
int uc_db_feedback_by_user(uc_db_t *db, const char *user_id, int limit,
                           int offset, uc_db_feedback_t **rows, size_t *n,
                           int64_t *total);
int uc_db_job_create(uc_db_t *db, const uc_db_job_t *job);
int uc_db_job_progress(uc_db_t *db, const char *job_id,
                       const uc_db_job_progress_t *p, uc_db_job_t *out);
int uc_db_job_get(uc_db_t *db, const char *job_id, uc_db_job_t *out);
int uc_db_job_list(uc_db_t *db, const char *status, const char *job_type,
                   int limit, int offset, uc_db_job_t **rows, size_t *n,
                   int64_t *total);
int uc_db_metrics_insert(uc_db_t *db, const uc_db_metric_new_t *in, size_t n,
                         uc_db_metric_t *out);
int uc_db_metrics_list(uc_db_t *db, const uc_db_metric_filter_t *f, int limit,
                       int offset, uc_db_metric_t **rows, size_t *n);
int uc_db_metrics_aggregate(uc_db_t *db, const char *service_name,
                            const char *metric_type, uc_db_interval_t iv,
                            int64_t start, int64_t end, uc_db_bucket_t **rows,
                            size_t *n);
int uc_db_retention_run(uc_db_t *db, const uc_db_retention_cutoffs_t *c,
                        uc_db_retention_t *out);
int uc_db_api_key_create(uc_db_t *db, const uc_db_api_key_t *key);
int uc_db_api_key_lookup(uc_db_t *db, const char *prefix, uc_db_api_key_t *out);

/* ---- helpers for backends and callers ------------------------------------ */

/*
 * Frees the metadata of rows[0..n-1] and, when free_array is nonzero, the
 * array itself. Accepts NULL.
 */
void uc_db_metrics_free(uc_db_metric_t *rows, size_t n, int free_array);

/* Frees the arrays of a retention result and zeroes it. Accepts NULL. */
void uc_db_retention_release(uc_db_retention_t *r);

/*
 * Copies src into a fixed-size field of cap bytes (NUL included). Returns 0,
 * or -1 when it does not fit (dst then holds an empty string).
 */
int uc_db_copy_field(char *dst, size_t cap, const char *src, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* UC_SERVER_DB_H */
