/* SPDX-License-Identifier: MIT */
/*
 * The database interface of utxoiq-api: one opaque handle and one table of
 * function pointers (the shape of BIND's dns_dbmethods). Under it, one
 * database layer that both drivers share, and one driver per backend:
 *
 *   src/server/db/db.c       this interface: choosing the driver, the
 *                            wrappers, the call figures
 *   src/server/db/pool.c     the connection pool (bounded waits, dead and
 *                            broken connections dropped)
 *   src/server/db/migrate.c  the migration runner (schema_migrations, one
 *                            transaction per migration, a lock between
 *                            processes)
 *   src/server/db/rows.c     the row mapping: result rows to the structs
 *                            below, one reader per row type
 *   src/server/db/errors.c   the one error table: statuses, their messages
 *                            and log levels, and both drivers' codes
 *   src/server/db/sqlite.c   the SQLite driver (embedded default),
 *                            uq_db_sqlite_open()
 *   src/server/db/pg.c       the PostgreSQL driver through libpq,
 *                            uq_db_pg_open(); compiled only when the build
 *                            defines UC_HAVE_PG (src/server/CMakeLists.txt,
 *                            UC_SERVER_POSTGRES)
 *
 * A driver holds what truly differs between the backends: connecting, running
 * a statement, its SQL and its schema (as data for the runner), and how a
 * write and its invalidation records share one transaction (one statement
 * with CTEs, one round trip, on PostgreSQL; an IMMEDIATE transaction of a
 * few local statements on SQLite). The layer's internal interface is
 * db_int.h.
 *
 * uq_db_open() picks the backend from the URL: "sqlite:PATH" (or a bare
 * path) for SQLite, "postgresql://..." / "postgres://..." for PostgreSQL.
 * uq_db_url_from_env() builds that URL from DATABASE_URL or the existing
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
 * metadata is heap text), which are freed with uq_db_metrics_free(), and
 * retention results, released with uq_db_retention_release(). Outputs are
 * written only when a call returns UQ_DB_OK.
 *
 * Thread safety: a uq_db_t is thread-safe (each backend keeps a pool of
 * connections); any number of threads may share it. uq_db_close() must not
 * race with other calls.
 *
 * Every value reaches SQL as a bound parameter; no backend ever splices input
 * into SQL text.
 *
 * Cache invalidation log: every write method takes `inv, ninv, inv_ids`, the
 * cache entries that the write makes stale. Those records go into the table
 * cache_invalidations in the same transaction as the write, so a committed
 * write always leaves its records behind and a failed one never does, even
 * when the process dies before it could touch the cache. The cache library
 * tails the table (uq_db_inval_after / _pending), applies the records, marks
 * them applied and prunes them later.
 */
#ifndef UQ_SERVER_DB_H
#define UQ_SERVER_DB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes -------------------------------------------------------- */

typedef enum {
    UQ_DB_OK = 0,
    UQ_DB_NOTFOUND = 1,      /* no such row: a normal outcome */
    UQ_DB_ENOMEM = -1,       /* out of memory */
    UQ_DB_EINVAL = -2,       /* bad argument (a programmer error upstream) */
    UQ_DB_ECONSTRAINT = -3,  /* a CHECK / NOT NULL / FK constraint refused */
    UQ_DB_EUNAVAILABLE = -4, /* cannot connect, or the connection broke */
    UQ_DB_EBUSY = -5,        /* lock or pool wait ran out of time */
    UQ_DB_EIO = -6,          /* any other database error (logged) */
    UQ_DB_ECONFIG = -7,      /* bad URL or options, unknown scheme */
    UQ_DB_EREADONLY = -8,    /* the database takes no writes: read-only,
                                full, or its file deleted or replaced */
} uq_db_status_t;

/* Static message for a status; never NULL. */
const char *uq_db_strerror(int status);

/* ---- limits shared by the service and the backends ----------------------- */

/*
 * Buffer sizes in bytes. Where the API counts characters (the original's
 * VARCHAR(n), which PostgreSQL counts in characters), a buffer holds n
 * characters of four bytes each.
 */
#define UQ_DB_ID_MAX 128 /* user_id of a key (bytes) */
/* A feedback row's insight_id and user_id: at most 100 characters, as the
 * original's VARCHAR(100); the buffers hold 4 bytes of UTF-8 per character. */
#define UQ_DB_FB_ID_CHARS 100
#define UQ_DB_FB_ID_BYTES (4 * UQ_DB_FB_ID_CHARS)
#define UQ_DB_CREATED_BY_MAX 400 /* a job's created_by: 100 characters */
#define UQ_DB_NAME_MAX                                                         \
    400                        /* service_name (100 characters), metric_type   \
                                  and job_type (50 characters) */
#define UQ_DB_UNIT_MAX 80      /* metric unit: 20 characters */
#define UQ_DB_UUID_LEN 36      /* canonical UUID text */
#define UQ_DB_COMMENT_MAX 4000 /* bytes; the API allows 1000 characters */
#define UQ_DB_REASON_MAX 2000  /* bytes; the API allows 500 characters */
/* error_message and metric_metadata have no limit of their own (the
 * original's TEXT and JSONB): these are the request bodies' caps. */
#define UQ_DB_ERRMSG_MAX 65536
#define UQ_DB_METADATA_MAX 1048576
#define UQ_DB_KEY_PREFIX_MAX 16 /* api key lookup prefix */
#define UQ_DB_HASH_HEX_LEN 64   /* SHA-256 as lower-case hex */

/* A timestamp that is absent (SQL NULL). */
#define UQ_DB_NULL_TIME INT64_MIN

/* ---- rows ---------------------------------------------------------------- */

/*
 * insight_feedback. rating 0 and empty strings stand for SQL NULL. id is the
 * row's public UUID (lower case, version 4); the integer key beside it stays
 * inside the backends, where it orders ties and keys the pages.
 */
typedef struct {
    char id[UQ_DB_UUID_LEN + 1];
    char insight_id[UQ_DB_FB_ID_BYTES + 1];
    char user_id[UQ_DB_FB_ID_BYTES + 1];
    int rating; /* 1..5, 0: none */
    int has_comment;
    char comment[UQ_DB_COMMENT_MAX + 1];
    char flag_type[16]; /* "inaccurate" | "misleading" | "spam" | "" */
    int has_flag_reason;
    char flag_reason[UQ_DB_REASON_MAX + 1];
    int64_t created_at; /* µs since epoch, UTC */
    int64_t updated_at;
} uq_db_feedback_t;

/* Which part of a feedback row a write sets. */
enum {
    UQ_DB_FB_RATING = (1 << 0),  /* rating (and comment when has_comment) */
    UQ_DB_FB_COMMENT = (1 << 1), /* comment */
    UQ_DB_FB_FLAG = (1 << 2), /* flag_type and flag_reason (NULL if absent) */
};

/*
 * One rate/comment/flag write. The upsert inserts the row for
 * (insight_id, user_id) or merges into it atomically (INSERT ... ON CONFLICT
 * DO UPDATE ... RETURNING): only the parts named in `fields` change;
 * UQ_DB_FB_RATING also sets the comment when has_comment is set (a NULL
 * comment then clears it), and keeps the old comment otherwise;
 * UQ_DB_FB_FLAG sets flag_reason to NULL when has_flag_reason is 0.
 * created_at is `now` on insert and kept on update; updated_at is `now`.
 * The backend gives a new row its UUID (uuid.h); an update keeps
 * the row's.
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
} uq_db_feedback_write_t;

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
} uq_db_feedback_stats_t;

/* backfill_jobs. */
typedef struct {
    char id[UQ_DB_UUID_LEN + 1];
    char job_type[UQ_DB_NAME_MAX + 1];
    int64_t start_block;
    int64_t end_block;
    int64_t current_block;
    char status[16]; /* running | completed | failed | paused */
    double progress_percentage;
    int64_t estimated_completion; /* UQ_DB_NULL_TIME when absent */
    int has_error_message;
    char error_message[UQ_DB_ERRMSG_MAX + 1];
    int64_t started_at;
    int64_t completed_at; /* UQ_DB_NULL_TIME when absent */
    int has_created_by;
    char created_by[UQ_DB_CREATED_BY_MAX + 1];
} uq_db_job_t;

/*
 * A progress report. current_block and progress_percentage are always set;
 * status is NULL to keep the current one; estimated_completion is
 * UQ_DB_NULL_TIME to keep the current one; error_message NULL keeps it.
 * A report with status "completed" sets completed_at to `now` (again, when
 * it was set); any other report leaves completed_at as it is, as the
 * original service did: "failed" does not set it, resuming does not clear
 * it.
 */
typedef struct {
    int64_t current_block;
    double progress_percentage;
    const char *status;
    int64_t estimated_completion;
    const char *error_message;
    int64_t now;
} uq_db_job_progress_t;

/* system_metrics. metadata is NULL or JSON text (owned by the row). id is
 * the row's public UUID, given by the backend on insert. */
typedef struct {
    char id[UQ_DB_UUID_LEN + 1];
    char service_name[UQ_DB_NAME_MAX + 1];
    char metric_type[UQ_DB_NAME_MAX + 1];
    double metric_value;
    char unit[UQ_DB_UNIT_MAX + 1];
    int64_t timestamp; /* set by the service, not the client */
    char *metadata;
} uq_db_metric_t;

/* A metric to insert; metadata NULL or JSON text (borrowed). */
typedef struct {
    const char *service_name;
    const char *metric_type;
    double metric_value;
    const char *unit;
    int64_t timestamp;
    const char *metadata;
} uq_db_metric_new_t;

/*
 * Filter of a metrics list. NULL strings and UQ_DB_NULL_TIME bounds do not
 * filter. start is inclusive, end exclusive.
 */
typedef struct {
    const char *service_name;
    const char *metric_type;
    int64_t start;
    int64_t end;
} uq_db_metric_filter_t;

typedef enum {
    UQ_DB_HOUR = 0,
    UQ_DB_DAY = 1,
    UQ_DB_WEEK = 2,
} uq_db_interval_t;

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
} uq_db_bucket_t;

/* Width and origin of an interval in µs (the rule above). */
int64_t uq_db_interval_width_us(uq_db_interval_t iv);
int64_t uq_db_interval_origin_us(uq_db_interval_t iv);

/* A (service_name, metric_type) pair touched by retention. */
typedef struct {
    char service_name[UQ_DB_NAME_MAX + 1];
    char metric_type[UQ_DB_NAME_MAX + 1];
} uq_db_series_t;

/*
 * What a retention run deleted, so the service can invalidate exactly that:
 * the deleted jobs' ids, the distinct insight ids whose feedback went, and
 * the distinct series whose metrics went. Arrays are malloc()ed; release the
 * whole struct with uq_db_retention_release().
 */
typedef struct {
    int64_t jobs_deleted;
    int64_t feedback_deleted;
    int64_t metrics_deleted;
    char (*job_ids)[UQ_DB_UUID_LEN + 1];
    size_t n_job_ids;
    char (*insight_ids)[UQ_DB_FB_ID_BYTES + 1];
    size_t n_insight_ids;
    uq_db_series_t *series;
    size_t n_series;
} uq_db_retention_t;

/*
 * Retention cut-offs in µs: rows strictly older than these go.
 * backfill_jobs by started_at, insight_feedback by updated_at,
 * system_metrics by timestamp. One transaction.
 */
typedef struct {
    int64_t jobs_before;
    int64_t feedback_before;
    int64_t metrics_before;
} uq_db_retention_cutoffs_t;

#define UQ_DB_KEY_NAME_MAX 400         /* bytes: the original's 100 chars */
#define UQ_DB_KEY_ORIGIN_PREFIX_MAX 20 /* the original's key_prefix column */

/*
 * api_keys. A key of ours has a public lookup prefix and the SHA-256 of the
 * whole key; a key imported from the original service has no prefix (""),
 * only the original's unsalted SHA-256 and its row id (origin_id), and is
 * found by that hash. Exactly one of prefix and origin_id is set.
 */
typedef struct {
    int64_t id;
    char prefix[UQ_DB_KEY_PREFIX_MAX + 1]; /* "" for an imported key */
    char hash_hex[UQ_DB_HASH_HEX_LEN + 1];
    char user_id[UQ_DB_ID_MAX + 1];
    char role[16]; /* user | service | admin */
    int64_t created_at;
    char name[UQ_DB_KEY_NAME_MAX + 1];                   /* "" when none */
    char origin_id[UQ_DB_ID_MAX + 1];                    /* "" when ours */
    char origin_prefix[UQ_DB_KEY_ORIGIN_PREFIX_MAX + 1]; /* "" when none */
    int64_t last_used_at; /* UQ_DB_NULL_TIME when not recorded */
    int64_t revoked_at;   /* UQ_DB_NULL_TIME while the key is valid */
} uq_db_api_key_t;

/* ---- cache invalidation log ---------------------------------------------- */

#define UQ_DB_INVAL_KEYSPACE_MAX 32 /* with NUL */
#define UQ_DB_INVAL_TARGET_MAX 1025 /* with NUL */
/* Records one call may insert; a write that stales more wants a glob. */
#define UQ_DB_INVAL_BATCH_MAX 1024
/* Rows one uq_db_inval_prune() call deletes at most, so that it never holds
 * the table (or SQLite's single write lock) for long. */
#define UQ_DB_INVAL_PRUNE_MAX 10000

/*
 * What one write makes stale: a cache keyspace and a key or glob in it.
 * keyspace is 1..31 bytes and target 1..1024 bytes, both printable ASCII
 * (0x20..0x7e); anything else is refused with UQ_DB_EINVAL before any SQL
 * runs, and CHECK constraints hold the same lengths in the database.
 */
typedef struct {
    const char *keyspace;
    const char *target;
} uq_db_inval_t;

/* One record of the log as read back. */
typedef struct {
    int64_t id;
    char keyspace[UQ_DB_INVAL_KEYSPACE_MAX];
    char target[UQ_DB_INVAL_TARGET_MAX];
    int64_t created_at; /* us since the epoch */
    int applied;        /* nonzero once applied_at is set */
} uq_db_inval_row_t;

/* ---- the handle and its methods ------------------------------------------ */

typedef struct uq_db uq_db_t;

typedef void (*uq_db_log_fn)(void *arg, int level, const char *msg);

typedef struct {
    const char *url;  /* "sqlite:PATH" or "postgresql://..." */
    int pool_size;    /* connections; 0: 8 */
    int timeout_ms;   /* busy_timeout / statement and pool wait; 0: 5000 */
    uq_db_log_fn log; /* may be NULL; levels as uc_log_level_t */
    void *log_arg;
} uq_db_options_t;

/*
 * The methods every backend implements. All return a uq_db_status_t.
 * Paging: limit >= 1, offset >= 0 (validated by the service). Lists are
 * ordered newest first (ties broken by id descending), except the aggregate
 * (oldest bucket first).
 *
 * Writes take three trailing arguments: inv[0..ninv-1] are inserted into
 * the invalidation log in the write's own transaction (all or nothing: a
 * write that fails leaves no record, a record that fails rolls the write
 * back and its status is returned), and on UQ_DB_OK inv_ids[i] receives the
 * id given to inv[i]. inv and inv_ids may be NULL when ninv is 0; inv_ids
 * may also be NULL when the caller does not need the ids. A record's
 * created_at is the write's own `now` where it has one (feedback, progress),
 * else the clock. ninv above UQ_DB_INVAL_BATCH_MAX is UQ_DB_EINVAL. The
 * wrappers validate the records before dispatching, so backends can rely on
 * valid records.
 *
 * Where a type of PostgreSQL refuses a value that SQLite keeps as text, the
 * backends answer with different statuses; the service never sends such a
 * value (it makes metadata with jansson and checks job ids are UUIDs).
 * Metric metadata that is not JSON is UQ_DB_EINVAL on PostgreSQL (its json
 * type) and UQ_DB_ECONSTRAINT on SQLite (a CHECK on json_valid()). A job
 * id that is not a UUID is UQ_DB_EINVAL on PostgreSQL (its uuid type); on
 * SQLite no job has it (UQ_DB_NOTFOUND).
 */
typedef struct uq_db_methods {
    const char *name; /* "sqlite" | "postgresql" */

    void (*close)(uq_db_t *db);

    /*
     * Applies the backend's versioned migrations not yet recorded in
     * schema_migrations(version, name, applied_at), each in its own
     * transaction, in version order; *applied (may be NULL) counts them.
     * Safe to run concurrently from two processes (the second waits or
     * finds nothing to do).
     */
    int (*migrate)(uq_db_t *db, int *applied);

    /* Round trip to the database (SELECT 1). */
    int (*ping)(uq_db_t *db);

    /* Rewrites the one row of service_probe (probed_at = now) in a
     * transaction of its own and commits: a write that really reaches the
     * database. UQ_DB_EREADONLY when the database takes no writes. */
    int (*probe_write)(uq_db_t *db, int64_t now);

    /* Upserts one feedback row and returns the stored row in *out. */
    int (*feedback_upsert)(uq_db_t *db, const uq_db_feedback_write_t *w,
                           uq_db_feedback_t *out, const uq_db_inval_t *inv,
                           size_t ninv, int64_t *inv_ids);

    /* Statistics of one insight (all zero when it has no feedback). */
    int (*feedback_stats)(uq_db_t *db, const char *insight_id,
                          uq_db_feedback_stats_t *out);

    /*
     * Rows of one insight with a comment, newest created_at first (the
     * original's order), one page; *total counts all of that insight's rows
     * with a comment.
     */
    int (*feedback_comments)(uq_db_t *db, const char *insight_id, int limit,
                             int offset, uq_db_feedback_t **rows, size_t *n,
                             int64_t *total);

    /* One user's rows, newest created_at first; *total counts them all. */
    int (*feedback_by_user)(uq_db_t *db, const char *user_id, int limit,
                            int offset, uq_db_feedback_t **rows, size_t *n,
                            int64_t *total);

    /* Inserts a job as given (the service fills id, status, timestamps). */
    int (*job_create)(uq_db_t *db, const uq_db_job_t *job,
                      const uq_db_inval_t *inv, size_t ninv, int64_t *inv_ids);

    /* Applies a progress report; UQ_DB_NOTFOUND for an unknown id (and then
     * no record is written either). */
    int (*job_progress)(uq_db_t *db, const char *job_id,
                        const uq_db_job_progress_t *p, uq_db_job_t *out,
                        const uq_db_inval_t *inv, size_t ninv,
                        int64_t *inv_ids);

    int (*job_get)(uq_db_t *db, const char *job_id, uq_db_job_t *out);

    /* Jobs newest started_at first; status / job_type NULL: any. */
    int (*job_list)(uq_db_t *db, const char *status, const char *job_type,
                    int limit, int offset, uq_db_job_t **rows, size_t *n,
                    int64_t *total);

    /* Inserts n >= 1 metrics in ONE transaction (all or none); out[i] is
     * the stored row of in[i] (caller's array of n, filled only on success;
     * release its metadata with uq_db_metrics_free(out, n, 0)). */
    int (*metrics_insert)(uq_db_t *db, const uq_db_metric_new_t *in, size_t n,
                          uq_db_metric_t *out, const uq_db_inval_t *inv,
                          size_t ninv, int64_t *inv_ids);

    /* Metrics newest timestamp first, one page. */
    int (*metrics_list)(uq_db_t *db, const uq_db_metric_filter_t *f, int limit,
                        int offset, uq_db_metric_t **rows, size_t *n);

    /* Buckets of one series in [start, end), oldest first; empty buckets
     * are absent. service_name and metric_type are required. */
    int (*metrics_aggregate)(uq_db_t *db, const char *service_name,
                             const char *metric_type, uq_db_interval_t iv,
                             int64_t start, int64_t end, uq_db_bucket_t **rows,
                             size_t *n);

    /* Deletes rows past the cut-offs in one transaction (see above); the
     * records are inserted in it whether or not any row went. */
    int (*retention_run)(uq_db_t *db, const uq_db_retention_cutoffs_t *c,
                         uq_db_retention_t *out, const uq_db_inval_t *inv,
                         size_t ninv, int64_t *inv_ids);

    /* Stores a key (prefix unique); key->id and created_at as given except
     * id, which the database assigns. */
    int (*api_key_create)(uq_db_t *db, const uq_db_api_key_t *key);

    /* The key with that prefix; UQ_DB_NOTFOUND if none. The caller compares
     * the hash in constant time and checks revoked_at. */
    int (*api_key_lookup)(uq_db_t *db, const char *prefix,
                          uq_db_api_key_t *out);

    /* Contracts at the uq_db_api_key_* wrappers below. */
    int (*api_key_lookup_hash)(uq_db_t *db, const char *hash_hex,
                               uq_db_api_key_t *out);
    int (*api_key_list)(uq_db_t *db, uq_db_api_key_t **rows, size_t *n);
    int (*api_key_revoke)(uq_db_t *db, int64_t id, int64_t now_us,
                          int64_t *revoked_at);
    int (*api_key_import)(uq_db_t *db, const uq_db_api_key_t *keys, size_t n,
                          size_t *failed_at);

    /* The invalidation log; contracts at the uq_db_inval_* wrappers. */
    int (*inval_after)(uq_db_t *db, int64_t after_id, uq_db_inval_row_t *out,
                       size_t cap, size_t *n);
    int (*inval_pending)(uq_db_t *db, uq_db_inval_row_t *out, size_t cap,
                         size_t *n);
    int (*inval_mark_applied)(uq_db_t *db, const int64_t *ids, size_t n,
                              int64_t now_us);
    int (*inval_prune)(uq_db_t *db, int64_t before_us, int64_t *removed);
    int (*inval_last_id)(uq_db_t *db, int64_t *id);
    int (*inval_append)(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                        int64_t now_us, int64_t *ids);
} uq_db_methods_t;

/*
 * The common head of every backend's handle: a backend defines
 * `struct uq_db_sqlite { uq_db_t base; ... }` with base first and sets
 * base.methods. The service only ever calls the uq_db_* wrappers below.
 */
struct uq_db {
    const uq_db_methods_t *methods;
    /* The write probe's cached outcome (uq_db_write_probe); zero as the
     * backends calloc() their handle. */
    _Atomic int64_t probe_at_us; /* monotonic; 0: never probed */
    _Atomic int probe_status;
    _Atomic int probing;
    /* The driver's connection pool (db_int.h), for uq_db_figures(). */
    struct uq__db_pool *pool;
    /* uq_db_figures(): set by uq_db_open and the wrappers, not backends. */
    int pool_size;
    _Atomic int q_inflight;
    _Atomic uint64_t q_count, q_slow, q_total_us;
};

/* A call slower than this counts as slow (the original service's 200 ms). */
#define UQ_DB_SLOW_QUERY_US 200000

/* The pool and the calls: the calls as the wrappers below count them, the
 * connections as the pool itself holds them. */
typedef struct {
    int pool_size;     /* connections the pool may hold */
    int checked_out;   /* connections lent to a call now */
    uint64_t queries;  /* calls made (each one statement or transaction) */
    uint64_t slow;     /* of them, over UQ_DB_SLOW_QUERY_US */
    uint64_t total_us; /* their time, summed */
    int open;          /* connections open now (idle and lent) */
    int idle;          /* of them, waiting to be lent */
    uint64_t connects; /* connections made since open, the first excluded */
    uint64_t connect_failures; /* attempts that failed */
    uint64_t dropped;          /* connections closed as broken or dead */
    uint64_t waits;            /* borrowers that had to wait for one */
    uint64_t timeouts;         /* of them, that gave up (UQ_DB_EBUSY) */
} uq_db_figures_t;

/* Any thread; takes the pool's lock for a moment. */
void uq_db_figures(uq_db_t *db, uq_db_figures_t *out);

/* ---- opening ------------------------------------------------------------- */

/*
 * Writes the database URL to use into buf: DATABASE_URL when set; else,
 * when DB_HOST is set, postgresql://DB_USER:DB_PASSWORD@DB_HOST:DB_PORT/DB_NAME
 * (user/password percent-encoded, port 5432 and name "utxoiq" by default);
 * else `fallback`. Returns UQ_DB_OK or UQ_DB_ECONFIG (too long).
 */
int uq_db_url_from_env(char *buf, size_t cap, const char *fallback);

/* Copies url into buf with any password replaced by "***" (for logs): the
 * userinfo's (which ends at the last '@' before the query) and any
 * password= query parameter's. The copy is cut to cap, never unmasked. */
void uq_db_url_describe(const char *url, char *buf, size_t cap);

/*
 * Opens the backend named by opt->url. No migration is run here. Returns
 * UQ_DB_OK and *out, or UQ_DB_ECONFIG / UQ_DB_EUNAVAILABLE / UQ_DB_ENOMEM
 * with a one-line message in err (never containing a password).
 */
int uq_db_open(const uq_db_options_t *opt, uq_db_t **out, char *err,
               size_t errlen);

/* Backend constructors (same contract as uq_db_open). */
int uq_db_sqlite_open(const uq_db_options_t *opt, uq_db_t **out, char *err,
                      size_t errlen);
#ifdef UC_HAVE_PG
int uq_db_pg_open(const uq_db_options_t *opt, uq_db_t **out, char *err,
                  size_t errlen);
#endif

/* ---- wrappers (dispatch through db->methods) ----------------------------- */

void uq_db_close(uq_db_t *db); /* accepts NULL */
const char *uq_db_backend_name(const uq_db_t *db);
int uq_db_migrate(uq_db_t *db, int *applied);
int uq_db_ping(uq_db_t *db);

/*
 * Whether the database takes writes, by a real write (probe_write), at most
 * once per max_age_ms: a later call within that time, or one made while
 * another thread's probe runs, returns the cached status. Returns UQ_DB_OK,
 * UQ_DB_EREADONLY, UQ_DB_EUNAVAILABLE, ... A write of the service that
 * fails with UQ_DB_EREADONLY updates the cached status at once.
 */
int uq_db_write_probe(uq_db_t *db, int max_age_ms);

/* The cached status alone, never probing (UQ_DB_OK before any probe). */
int uq_db_write_probe_cached(uq_db_t *db);
int uq_db_feedback_upsert(uq_db_t *db, const uq_db_feedback_write_t *w,
                          uq_db_feedback_t *out, const uq_db_inval_t *inv,
                          size_t ninv, int64_t *inv_ids);
int uq_db_feedback_stats(uq_db_t *db, const char *insight_id,
                         uq_db_feedback_stats_t *out);
int uq_db_feedback_comments(uq_db_t *db, const char *insight_id, int limit,
                            int offset, uq_db_feedback_t **rows, size_t *n,
                            int64_t *total);
int uq_db_feedback_by_user(uq_db_t *db, const char *user_id, int limit,
                           int offset, uq_db_feedback_t **rows, size_t *n,
                           int64_t *total);
int uq_db_job_create(uq_db_t *db, const uq_db_job_t *job,
                     const uq_db_inval_t *inv, size_t ninv, int64_t *inv_ids);
int uq_db_job_progress(uq_db_t *db, const char *job_id,
                       const uq_db_job_progress_t *p, uq_db_job_t *out,
                       const uq_db_inval_t *inv, size_t ninv, int64_t *inv_ids);
int uq_db_job_get(uq_db_t *db, const char *job_id, uq_db_job_t *out);
int uq_db_job_list(uq_db_t *db, const char *status, const char *job_type,
                   int limit, int offset, uq_db_job_t **rows, size_t *n,
                   int64_t *total);
int uq_db_metrics_insert(uq_db_t *db, const uq_db_metric_new_t *in, size_t n,
                         uq_db_metric_t *out, const uq_db_inval_t *inv,
                         size_t ninv, int64_t *inv_ids);
int uq_db_metrics_list(uq_db_t *db, const uq_db_metric_filter_t *f, int limit,
                       int offset, uq_db_metric_t **rows, size_t *n);
int uq_db_metrics_aggregate(uq_db_t *db, const char *service_name,
                            const char *metric_type, uq_db_interval_t iv,
                            int64_t start, int64_t end, uq_db_bucket_t **rows,
                            size_t *n);
int uq_db_retention_run(uq_db_t *db, const uq_db_retention_cutoffs_t *c,
                        uq_db_retention_t *out, const uq_db_inval_t *inv,
                        size_t ninv, int64_t *inv_ids);
int uq_db_api_key_create(uq_db_t *db, const uq_db_api_key_t *key);
int uq_db_api_key_lookup(uq_db_t *db, const char *prefix, uq_db_api_key_t *out);

/* The imported key (no prefix) whose stored hash is hash_hex (64 lower-case
 * hex digits); UQ_DB_NOTFOUND if none. Revoked keys are returned too. */
int uq_db_api_key_lookup_hash(uq_db_t *db, const char *hash_hex,
                              uq_db_api_key_t *out);

/* Every key, by id, as a malloc()ed array the caller free()s (NULL and 0
 * when there is none); written only on UQ_DB_OK. */
int uq_db_api_key_list(uq_db_t *db, uq_db_api_key_t **rows, size_t *n);

/* Sets revoked_at = now_us on key `id` unless it is revoked already, in
 * which case it keeps its first time; *revoked_at (may be NULL) gets the
 * time in effect. UQ_DB_NOTFOUND when there is no such key. */
int uq_db_api_key_revoke(uq_db_t *db, int64_t id, int64_t now_us,
                         int64_t *revoked_at);

/*
 * Imports keys[0..n-1] (prefix "", origin_id set) in one transaction: all
 * or nothing. A key whose origin_id is present already is updated (user,
 * role, name, origin prefix, the later last use) and never un-revoked, so
 * importing the same rows again changes nothing. A row whose hash belongs
 * to another key, or whose origin_id is stored with another hash, gives
 * UQ_DB_ECONSTRAINT; on any failure *failed_at (may be NULL) is the index of
 * the row that failed, or n when the commit did.
 */
int uq_db_api_key_import(uq_db_t *db, const uq_db_api_key_t *keys, size_t n,
                         size_t *failed_at);

/*
 * The invalidation log. Reads fill the caller's out[0..cap-1] and *n, only
 * on UQ_DB_OK; cap 0 gives *n = 0 without a query. Ids only grow: SQLite's
 * AUTOINCREMENT and PostgreSQL's identity never hand out an id twice, even
 * after the newest rows were pruned.
 */

/*
 * Records with id > after_id, oldest (lowest id) first, at most cap; *n set.
 * Served by the primary key. On PostgreSQL an id is taken when its row is
 * inserted, not when it commits, so a reader may see id 11 committed while
 * id 10 is still in flight (or was rolled back and will never appear): a
 * tail that moves after_id past a gap at once can skip a record. The cache
 * library holds its position at a gap for a short while before moving on,
 * and the pending query below catches whatever it still skips. SQLite has
 * one writer at a time, so there ids commit in order.
 */
int uq_db_inval_after(uq_db_t *db, int64_t after_id, uq_db_inval_row_t *out,
                      size_t cap, size_t *n);

/* Pending records (applied_at IS NULL), oldest first, at most cap; *n set.
 * A partial index holds only pending rows, so this stays cheap however
 * many applied rows the table keeps. */
int uq_db_inval_pending(uq_db_t *db, uq_db_inval_row_t *out, size_t cap,
                        size_t *n);

/* Sets applied_at = now_us on those of ids[0..n-1] still pending; applied
 * and unknown ids are left alone, so repeating a call is harmless. Any n
 * (ids are sent in batches of UQ_DB_INVAL_BATCH_MAX). */
int uq_db_inval_mark_applied(uq_db_t *db, const int64_t *ids, size_t n,
                             int64_t now_us);

/* Deletes at most UQ_DB_INVAL_PRUNE_MAX applied records with applied_at <
 * before_us (pending ones never); *removed (may be NULL) counts them. Call
 * again while it removes the maximum to catch up. */
int uq_db_inval_prune(uq_db_t *db, int64_t before_us, int64_t *removed);

/* The highest id in the log, 0 when it is empty. */
int uq_db_inval_last_id(uq_db_t *db, int64_t *id);

/* Appends inv[0..n-1] (n <= UQ_DB_INVAL_BATCH_MAX) in a transaction of their
 * own, created_at = now_us; ids (may be NULL) receive their ids. For writes
 * that have no row of their own, and for tests. */
int uq_db_inval_append(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                       int64_t now_us, int64_t *ids);

/* ---- helpers for backends and callers ------------------------------------ */

/*
 * Frees the metadata of rows[0..n-1] and, when free_array is nonzero, the
 * array itself. Accepts NULL.
 */
void uq_db_metrics_free(uq_db_metric_t *rows, size_t n, int free_array);

/* Frees the arrays of a retention result and zeroes it. Accepts NULL. */
void uq_db_retention_release(uq_db_retention_t *r);

/*
 * Copies src into a fixed-size field of cap bytes (NUL included). Returns 0,
 * or -1 when it does not fit (dst then holds an empty string).
 */
int uq_db_copy_field(char *dst, size_t cap, const char *src, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* UQ_SERVER_DB_H */
