/* SPDX-License-Identifier: MIT */
/*
 * The SQLite driver of the database layer (db.h): the embedded default. The
 * layer's pool, row mapping, error table and migration runner do the rest.
 * One file in WAL mode, shared by a small pool of connections so that readers
 * run in parallel while SQLite serialises writers (busy_timeout makes a
 * writer wait for the lock instead of failing). Each connection keeps its
 * prepared statements for its whole life; every value is bound, never
 * spliced into SQL. Timestamps are INTEGER microseconds since the epoch, UTC.
 * Versioned migrations live in this file as SQLite SQL and are recorded in
 * schema_migrations. A write that carries invalidation records runs in one
 * IMMEDIATE transaction with their inserts; a write without any stays the
 * single autocommit statement it always was.
 */
#include "db.h"
#include "db_int.h"
#include "uuid.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- migrations ---------------------------------------------------------- */

/* Each migration is one script: SQLite runs its statements in turn. */
#define SCRIPT(...) ((const char *const[]){__VA_ARGS__, NULL})

static const uq__db_migration_t migrations[] = {
    {1, "initial schema",
     SCRIPT(
         "CREATE TABLE backfill_jobs ("
         " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
         " job_type TEXT NOT NULL CHECK (length(job_type) BETWEEN 1 AND 128),"
         " start_block INTEGER NOT NULL CHECK (start_block >= 0),"
         " end_block INTEGER NOT NULL CHECK (end_block >= start_block),"
         " current_block INTEGER NOT NULL CHECK (current_block >= 0),"
         " status TEXT NOT NULL DEFAULT 'running' CHECK (status IN"
         "  ('running', 'completed', 'failed', 'paused')),"
         " progress_percentage REAL NOT NULL DEFAULT 0"
         "  CHECK (progress_percentage BETWEEN 0 AND 100),"
         " estimated_completion INTEGER,"
         " error_message TEXT CHECK (error_message IS NULL OR"
         "  length(error_message) <= 1000),"
         " started_at INTEGER NOT NULL,"
         " completed_at INTEGER,"
         " created_by TEXT CHECK (created_by IS NULL OR"
         "  length(created_by) BETWEEN 1 AND 128));"
         "CREATE INDEX backfill_jobs_started ON backfill_jobs (started_at, id);"
         "CREATE INDEX backfill_jobs_status ON backfill_jobs (status, "
         "started_at);"
         "CREATE TABLE insight_feedback ("
         " id INTEGER PRIMARY KEY,"
         " insight_id TEXT NOT NULL CHECK (length(insight_id) BETWEEN 1 AND "
         "128),"
         " user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),"
         " rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),"
         " comment TEXT CHECK (comment IS NULL OR"
         "  length(comment) BETWEEN 1 AND 1000),"
         " flag_type TEXT CHECK (flag_type IS NULL OR flag_type IN"
         "  ('inaccurate', 'misleading', 'spam')),"
         " flag_reason TEXT CHECK (flag_reason IS NULL OR"
         "  length(flag_reason) <= 500),"
         " created_at INTEGER NOT NULL,"
         " updated_at INTEGER NOT NULL,"
         " UNIQUE (insight_id, user_id));"
         "CREATE INDEX insight_feedback_user ON insight_feedback"
         " (user_id, updated_at);"
         "CREATE INDEX insight_feedback_updated ON insight_feedback "
         "(updated_at);"
         "CREATE TABLE system_metrics ("
         " id INTEGER PRIMARY KEY,"
         " service_name TEXT NOT NULL CHECK (length(service_name)"
         "  BETWEEN 1 AND 128),"
         " metric_type TEXT NOT NULL CHECK (length(metric_type)"
         "  BETWEEN 1 AND 128),"
         " metric_value REAL NOT NULL,"
         " unit TEXT NOT NULL CHECK (length(unit) BETWEEN 1 AND 32),"
         " timestamp INTEGER NOT NULL,"
         " metric_metadata TEXT CHECK (metric_metadata IS NULL OR"
         "  json_valid(metric_metadata)));"
         "CREATE INDEX system_metrics_series ON system_metrics"
         " (service_name, metric_type, timestamp);"
         "CREATE INDEX system_metrics_time ON system_metrics (timestamp);"
         "CREATE TABLE api_keys ("
         " id INTEGER PRIMARY KEY,"
         " prefix TEXT NOT NULL UNIQUE,"
         " key_hash TEXT NOT NULL CHECK (length(key_hash) = 64),"
         " user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),"
         " role TEXT NOT NULL CHECK (role IN ('user', 'service', 'admin')),"
         " created_at INTEGER NOT NULL);"),
     NULL, NULL},
    /* AUTOINCREMENT because readers tail by id: without it, pruning the
     * newest rows would let SQLite hand their ids out again. Lengths are
     * bytes (a BLOB's length), as db.h states them. The partial indexes
     * hold only pending rows and only applied rows, so the tail's pending
     * query and the pruner each read just what they need. */
    {2, "cache invalidation log",
     SCRIPT(
         "CREATE TABLE cache_invalidations ("
         " id INTEGER PRIMARY KEY AUTOINCREMENT,"
         " keyspace TEXT NOT NULL CHECK (length(CAST(keyspace AS BLOB))"
         "  BETWEEN 1 AND 31),"
         " target TEXT NOT NULL CHECK (length(CAST(target AS BLOB))"
         "  BETWEEN 1 AND 1024),"
         " created_at INTEGER NOT NULL,"
         " applied_at INTEGER);"
         "CREATE INDEX cache_invalidations_pending ON cache_invalidations (id)"
         " WHERE applied_at IS NULL;"
         "CREATE INDEX cache_invalidations_applied ON cache_invalidations"
         " (applied_at) WHERE applied_at IS NOT NULL;"),
     NULL, NULL},
    /* One row that the readiness probe rewrites: a real write, committed,
     * is the only check that the database can still take writes. */
    {3, "service write probe",
     SCRIPT("CREATE TABLE service_probe ("
            " id INTEGER PRIMARY KEY CHECK (id = 1),"
            " probed_at INTEGER NOT NULL);"),
     NULL, NULL},
    /* Revocation, and keys imported from the original service: those have
     * no lookup prefix (it never stored one that could serve) and are found
     * by their hash, hence the unique hash. SQLite cannot drop NOT NULL in
     * place, so the table is rebuilt; ids are kept, so nothing that names a
     * key by id changes. */
    {4, "api key revocation and import",
     SCRIPT(
         "CREATE TABLE api_keys_v4 ("
         " id INTEGER PRIMARY KEY,"
         " prefix TEXT UNIQUE CHECK (prefix IS NULL OR"
         "  length(prefix) BETWEEN 1 AND 16),"
         " key_hash TEXT NOT NULL UNIQUE CHECK (length(key_hash) = 64),"
         " user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),"
         " role TEXT NOT NULL CHECK (role IN ('user', 'service', 'admin')),"
         " created_at INTEGER NOT NULL,"
         " name TEXT CHECK (name IS NULL OR"
         "  length(CAST(name AS BLOB)) BETWEEN 1 AND 400),"
         " origin_id TEXT UNIQUE CHECK (origin_id IS NULL OR"
         "  length(origin_id) BETWEEN 1 AND 128),"
         " origin_prefix TEXT CHECK (origin_prefix IS NULL OR"
         "  length(origin_prefix) BETWEEN 1 AND 20),"
         " last_used_at INTEGER,"
         " revoked_at INTEGER,"
         " CHECK ((prefix IS NULL) = (origin_id IS NOT NULL)));"
         "INSERT INTO api_keys_v4 (id, prefix, key_hash, user_id, role,"
         " created_at) SELECT id, prefix, key_hash, user_id, role, created_at"
         " FROM api_keys;"
         "DROP TABLE api_keys;"
         "ALTER TABLE api_keys_v4 RENAME TO api_keys;"),
     NULL, NULL},
    /* The original service's clients see feedback and metric ids as UUID
     * strings. They go in a column beside the integer key rather than
     * replacing it: adding a column leaves the table in place (replacing a
     * primary key means copying every row into a new table), and the
     * integer stays what ties are broken by. uq_uuid4() is the service's
     * generator registered on each connection (open_conn), so existing
     * rows get their ids from the same code as new ones. ALTER TABLE cannot
     * add a NOT NULL column without a constant default; every insert sets
     * the id, and the unique index keeps two rows from sharing one. The
     * user page now follows created_at, the original's order. */
    {5, "uuid ids for feedback and metrics",
     SCRIPT("ALTER TABLE insight_feedback ADD COLUMN public_id TEXT"
            " CHECK (public_id IS NULL OR length(public_id) = 36);"
            "UPDATE insight_feedback SET public_id = uq_uuid4();"
            "CREATE UNIQUE INDEX insight_feedback_public_id ON insight_feedback"
            " (public_id);"
            "ALTER TABLE system_metrics ADD COLUMN public_id TEXT"
            " CHECK (public_id IS NULL OR length(public_id) = 36);"
            "UPDATE system_metrics SET public_id = uq_uuid4();"
            "CREATE UNIQUE INDEX system_metrics_public_id ON system_metrics"
            " (public_id);"
            "DROP INDEX insight_feedback_user;"
            "CREATE INDEX insight_feedback_user ON insight_feedback"
            " (user_id, created_at);"),
     NULL, NULL},
    /* The original's error_message is TEXT: a worker's long failure trace
     * must be recorded, not refused. SQLite cannot drop a CHECK, so the
     * table is built again without it, the same columns in the same order
     * (its own documented procedure: create, copy, drop, rename). */
    {6, "unbounded backfill error_message",
     SCRIPT(
         "CREATE TABLE backfill_jobs_new ("
         " id TEXT PRIMARY KEY CHECK (length(id) = 36),"
         " job_type TEXT NOT NULL CHECK (length(job_type) BETWEEN 1 AND 128),"
         " start_block INTEGER NOT NULL CHECK (start_block >= 0),"
         " end_block INTEGER NOT NULL CHECK (end_block >= start_block),"
         " current_block INTEGER NOT NULL CHECK (current_block >= 0),"
         " status TEXT NOT NULL DEFAULT 'running' CHECK (status IN"
         "  ('running', 'completed', 'failed', 'paused')),"
         " progress_percentage REAL NOT NULL DEFAULT 0"
         "  CHECK (progress_percentage BETWEEN 0 AND 100),"
         " estimated_completion INTEGER,"
         " error_message TEXT,"
         " started_at INTEGER NOT NULL,"
         " completed_at INTEGER,"
         " created_by TEXT CHECK (created_by IS NULL OR"
         "  length(created_by) BETWEEN 1 AND 128));"
         "INSERT INTO backfill_jobs_new SELECT id, job_type, start_block,"
         " end_block, current_block, status, progress_percentage,"
         " estimated_completion, error_message, started_at, completed_at,"
         " created_by FROM backfill_jobs;"
         "DROP TABLE backfill_jobs;"
         "ALTER TABLE backfill_jobs_new RENAME TO backfill_jobs;"
         "CREATE INDEX backfill_jobs_started ON backfill_jobs (started_at, id);"
         "CREATE INDEX backfill_jobs_status ON backfill_jobs"
         " (status, started_at);"),
     NULL, NULL},
};

/* ---- statements ---------------------------------------------------------- */

#define FB_COLS                                                                \
    "public_id, insight_id, user_id, rating, comment, flag_type, "             \
    "flag_reason, "                                                            \
    "created_at, updated_at"
#define JOB_COLS                                                               \
    "id, job_type, start_block, end_block, current_block, status, "            \
    "progress_percentage, estimated_completion, error_message, started_at, "   \
    "completed_at, created_by"
#define METRIC_COLS                                                            \
    "public_id, service_name, metric_type, metric_value, unit, timestamp, "    \
    "metric_metadata"

enum {
    ST_PING,
    ST_PROBE,
    ST_FB_RATE,
    ST_FB_COMMENT,
    ST_FB_FLAG,
    ST_FB_STATS,
    ST_FB_COMMENTS,
    ST_FB_COMMENTS_COUNT,
    ST_FB_USER,
    ST_FB_USER_COUNT,
    ST_JOB_CREATE,
    ST_JOB_PROGRESS,
    ST_JOB_GET,
    ST_JOB_LIST,
    ST_JOB_COUNT,
    ST_METRIC_INSERT,
    ST_METRIC_LIST,
    ST_METRIC_AGG,
    ST_RET_JOBS,
    ST_RET_FB_IDS,
    ST_RET_FB_DEL,
    ST_RET_METRIC_SERIES,
    ST_RET_METRIC_DEL,
    ST_KEY_CREATE,
    ST_KEY_LOOKUP,
    ST_KEY_LOOKUP_HASH,
    ST_KEY_LIST,
    ST_KEY_REVOKE,
    ST_KEY_IMPORT,
    ST_BEGIN,
    ST_COMMIT,
    ST_INV_INSERT,
    ST_INV_AFTER,
    ST_INV_PENDING,
    ST_INV_MARK,
    ST_INV_PRUNE,
    ST_INV_LAST,
    ST_COUNT
};

#define INV_COLS "id, keyspace, target, created_at, applied_at IS NOT NULL"
#define KEY_COLS                                                               \
    "id, prefix, key_hash, user_id, role, created_at, name, origin_id, "       \
    "origin_prefix, last_used_at, revoked_at"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_PING] = "SELECT 1",
    [ST_PROBE] =
        "INSERT INTO service_probe (id, probed_at) VALUES (1, ?1)"
        " ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
    [ST_FB_RATE] =
        "INSERT INTO insight_feedback (public_id, insight_id, user_id, rating,"
        " comment, created_at, updated_at)"
        " VALUES (uq_uuid4(), ?1, ?2, ?3, ?4, ?5, ?5)"
        " ON CONFLICT (insight_id, user_id) DO UPDATE SET"
        " rating = excluded.rating,"
        " comment = CASE WHEN ?6 THEN excluded.comment"
        "  ELSE insight_feedback.comment END,"
        " updated_at = excluded.updated_at RETURNING " FB_COLS,
    [ST_FB_COMMENT] =
        "INSERT INTO insight_feedback (public_id, insight_id, user_id, comment,"
        " created_at, updated_at) VALUES (uq_uuid4(), ?1, ?2, ?3, ?4, ?4)"
        " ON CONFLICT (insight_id, user_id) DO UPDATE SET"
        " comment = excluded.comment,"
        " updated_at = excluded.updated_at RETURNING " FB_COLS,
    [ST_FB_FLAG] =
        "INSERT INTO insight_feedback (public_id, insight_id, user_id,"
        " flag_type, flag_reason, created_at, updated_at)"
        " VALUES (uq_uuid4(), ?1, ?2, ?3, ?4, ?5, ?5)"
        " ON CONFLICT (insight_id, user_id) DO UPDATE SET"
        " flag_type = excluded.flag_type,"
        " flag_reason = excluded.flag_reason,"
        " updated_at = excluded.updated_at RETURNING " FB_COLS,
    [ST_FB_STATS] = "SELECT count(rating), coalesce(avg(rating), 0),"
                    " count(CASE WHEN rating = 1 THEN 1 END),"
                    " count(CASE WHEN rating = 2 THEN 1 END),"
                    " count(CASE WHEN rating = 3 THEN 1 END),"
                    " count(CASE WHEN rating = 4 THEN 1 END),"
                    " count(CASE WHEN rating = 5 THEN 1 END),"
                    " count(comment), count(flag_type),"
                    " count(CASE WHEN flag_type = 'inaccurate' THEN 1 END),"
                    " count(CASE WHEN flag_type = 'misleading' THEN 1 END),"
                    " count(CASE WHEN flag_type = 'spam' THEN 1 END)"
                    " FROM insight_feedback WHERE insight_id = ?1",
    [ST_FB_COMMENTS] = "SELECT " FB_COLS " FROM insight_feedback"
                       " WHERE insight_id = ?1 AND comment IS NOT NULL"
                       " ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
    [ST_FB_COMMENTS_COUNT] = "SELECT count(*) FROM insight_feedback"
                             " WHERE insight_id = ?1 AND comment IS NOT NULL",
    [ST_FB_USER] = "SELECT " FB_COLS " FROM insight_feedback"
                   " WHERE user_id = ?1"
                   " ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
    [ST_FB_USER_COUNT] =
        "SELECT count(*) FROM insight_feedback WHERE user_id = ?1",
    [ST_JOB_CREATE] = "INSERT INTO backfill_jobs (" JOB_COLS ") VALUES"
                      " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_JOB_PROGRESS] =
        "UPDATE backfill_jobs SET current_block = ?2,"
        " progress_percentage = ?3, status = coalesce(?4, status),"
        " estimated_completion = coalesce(?5, estimated_completion),"
        " error_message = coalesce(?6, error_message),"
        " completed_at = CASE WHEN ?4 = 'completed' THEN ?7"
        " ELSE completed_at END WHERE id = ?1 RETURNING " JOB_COLS,
    [ST_JOB_GET] = "SELECT " JOB_COLS " FROM backfill_jobs WHERE id = ?1",
    [ST_JOB_LIST] = "SELECT " JOB_COLS " FROM backfill_jobs"
                    " WHERE (?1 IS NULL OR status = ?1)"
                    " AND (?2 IS NULL OR job_type = ?2)"
                    " ORDER BY started_at DESC, id DESC LIMIT ?3 OFFSET ?4",
    [ST_JOB_COUNT] = "SELECT count(*) FROM backfill_jobs"
                     " WHERE (?1 IS NULL OR status = ?1)"
                     " AND (?2 IS NULL OR job_type = ?2)",
    [ST_METRIC_INSERT] =
        "INSERT INTO system_metrics (public_id, service_name, metric_type,"
        " metric_value, unit, timestamp, metric_metadata)"
        " VALUES (uq_uuid4(), ?1, ?2, ?3, ?4, ?5, ?6)"
        " RETURNING " METRIC_COLS,
    [ST_METRIC_LIST] = "SELECT " METRIC_COLS " FROM system_metrics"
                       " WHERE (?1 IS NULL OR service_name = ?1)"
                       " AND (?2 IS NULL OR metric_type = ?2)"
                       " AND (?3 IS NULL OR timestamp >= ?3)"
                       " AND (?4 IS NULL OR timestamp < ?4)"
                       " ORDER BY timestamp DESC, id DESC LIMIT ?5 OFFSET ?6",
    [ST_METRIC_AGG] =
        "SELECT ((timestamp - ?3) / ?4) * ?4 + ?3 AS bucket,"
        " avg(metric_value), min(metric_value), max(metric_value), count(*)"
        " FROM system_metrics WHERE service_name = ?1 AND metric_type = ?2"
        " AND timestamp >= ?5 AND timestamp < ?6"
        " GROUP BY bucket ORDER BY bucket",
    [ST_RET_JOBS] =
        "DELETE FROM backfill_jobs WHERE started_at < ?1 RETURNING id",
    [ST_RET_FB_IDS] = "SELECT DISTINCT insight_id FROM insight_feedback"
                      " WHERE updated_at < ?1",
    [ST_RET_FB_DEL] = "DELETE FROM insight_feedback WHERE updated_at < ?1",
    [ST_RET_METRIC_SERIES] =
        "SELECT DISTINCT service_name, metric_type FROM system_metrics"
        " WHERE timestamp < ?1",
    [ST_RET_METRIC_DEL] = "DELETE FROM system_metrics WHERE timestamp < ?1",
    [ST_KEY_CREATE] =
        "INSERT INTO api_keys (prefix, key_hash, user_id, role, created_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_KEY_LOOKUP] = "SELECT " KEY_COLS " FROM api_keys WHERE prefix = ?1",
    [ST_KEY_LOOKUP_HASH] = "SELECT " KEY_COLS " FROM api_keys"
                           " WHERE key_hash = ?1 AND prefix IS NULL",
    [ST_KEY_LIST] = "SELECT " KEY_COLS " FROM api_keys ORDER BY id",
    [ST_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = coalesce(revoked_at,"
                      " ?2) WHERE id = ?1 RETURNING revoked_at",
    /* The WHERE makes a stored origin_id with another hash come back with
     * no row, which the caller reports instead of changing the key. */
    [ST_KEY_IMPORT] =
        "INSERT INTO api_keys (prefix, key_hash, user_id, role, created_at,"
        " name, origin_id, origin_prefix, last_used_at, revoked_at)"
        " VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        " ON CONFLICT (origin_id) DO UPDATE SET user_id = excluded.user_id,"
        " role = excluded.role, name = excluded.name,"
        " origin_prefix = excluded.origin_prefix,"
        " last_used_at = CASE WHEN api_keys.last_used_at IS NULL OR"
        "  excluded.last_used_at > api_keys.last_used_at"
        "  THEN coalesce(excluded.last_used_at, api_keys.last_used_at)"
        "  ELSE api_keys.last_used_at END,"
        " revoked_at = coalesce(api_keys.revoked_at, excluded.revoked_at)"
        " WHERE api_keys.key_hash = excluded.key_hash RETURNING id",
    /* Prepared once per connection like the rest: parsing BEGIN and COMMIT
     * on every write would cost more than the record insert itself. */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_INV_INSERT] = "INSERT INTO cache_invalidations (keyspace, target,"
                      " created_at) VALUES (?1, ?2, ?3)",
    [ST_INV_AFTER] = "SELECT " INV_COLS " FROM cache_invalidations"
                     " WHERE id > ?1 ORDER BY id LIMIT ?2",
    [ST_INV_PENDING] = "SELECT " INV_COLS " FROM cache_invalidations"
                       " INDEXED BY cache_invalidations_pending"
                       " WHERE applied_at IS NULL ORDER BY id LIMIT ?1",
    [ST_INV_MARK] = "UPDATE cache_invalidations SET applied_at = ?2"
                    " WHERE id = ?1 AND applied_at IS NULL",
    [ST_INV_PRUNE] = "DELETE FROM cache_invalidations WHERE id IN"
                     " (SELECT id FROM cache_invalidations"
                     "  INDEXED BY cache_invalidations_applied"
                     "  WHERE applied_at < ?1 LIMIT ?2)",
    [ST_INV_LAST] = "SELECT coalesce(max(id), 0) FROM cache_invalidations",
};

/* ---- handle and pool ----------------------------------------------------- */

typedef struct {
    sqlite3 *h;
    sqlite3_stmt *st[ST_COUNT];
} conn_t;

typedef struct {
    uq_db_t base;
    char *path;
    int timeout_ms;
    uq__db_logger_t log;
    uq__db_pool_t pool; /* of conn_t */
    int nconns;
} sqlite_db_t;

/* Maps an SQLite result code to a db status (the layer's error table),
 * logging real errors at the level the table gives them. */
static int status_of(sqlite_db_t *d, conn_t *c, int rc, const char *what)
{
    int st = uq__db_status_of_sqlite(rc);

    if (st == UQ_DB_OK || st == UQ_DB_ENOMEM) {
        return st;
    }
    if (rc == SQLITE_CONSTRAINT_COMMITHOOK) {
        /* The commit hook refused: see on_commit(). */
        uq__db_logf(&d->log, uq__db_log_level(st),
                    "sqlite %s: '%s' was deleted or replaced since it "
                    "was opened; the write was rolled back",
                    what, d->path);
        return st;
    }
    uq__db_logf(&d->log, uq__db_log_level(st), "sqlite %s: %s", what,
                sqlite3_errmsg(c->h));
    return st;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void close_conn(conn_t *c);
static int open_conn(sqlite_db_t *d, conn_t *c, char *err, size_t errlen);

/* The pool's callbacks (pool.c) over heap conn_t. SQLite connections never
 * go bad on their own (the file is local), so none is ever dropped, and
 * every one is opened at start: the pool only lends them out. */
static void *pool_connect(void *arg, char *err, size_t errlen)
{
    conn_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        snprintf(err, errlen, "open sqlite: out of memory");
        return NULL;
    }
    if (open_conn(arg, c, err, errlen) != UQ_DB_OK) {
        close_conn(c);
        free(c);
        return NULL;
    }
    return c;
}

static void pool_close(void *arg, void *conn)
{
    (void)arg;
    close_conn(conn);
    free(conn);
}

static const uq__db_pool_ops_t pool_ops = {pool_connect, NULL, pool_close};

/* Borrows a free connection, waiting at most timeout_ms; NULL on timeout
 * (logged by the pool). */
static conn_t *acquire(sqlite_db_t *d)
{
    void *c = NULL;

    return uq__db_pool_acquire(&d->pool, &c) == UQ_DB_OK ? c : NULL;
}

static void release(sqlite_db_t *d, conn_t *c)
{
    uq__db_pool_release(&d->pool, c, UQ__DB_POOL_KEEP);
}

/*
 * Returns the connection's prepared statement `idx`, preparing it on first
 * use; NULL on failure (logged). The statement is reset and unbound.
 */
static sqlite3_stmt *stmt(sqlite_db_t *d, conn_t *c, int idx)
{
    if (c->st[idx] == NULL) {
        int rc =
            sqlite3_prepare_v3(c->h, stmt_sql[idx], -1,
                               SQLITE_PREPARE_PERSISTENT, &c->st[idx], NULL);
        if (rc != SQLITE_OK) {
            uq__db_logf(&d->log, 3, "sqlite prepare %d: %s", idx,
                        sqlite3_errmsg(c->h));
            c->st[idx] = NULL;
            return NULL;
        }
    }
    return c->st[idx];
}

static void done(sqlite3_stmt *s)
{
    if (s != NULL) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v == NULL) {
        return sqlite3_bind_null(s, i);
    }
    return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static int bind_time(sqlite3_stmt *s, int i, int64_t t)
{
    if (t == UQ_DB_NULL_TIME) {
        return sqlite3_bind_null(s, i);
    }
    return sqlite3_bind_int64(s, i, t);
}

static int exec(sqlite_db_t *d, conn_t *c, const char *sql)
{
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, NULL);
    return status_of(d, c, rc, sql);
}

/* Rows as the layer's row mapping reads them (rows.c): the statement,
 * stepped to the row. */
static int row_is_null(const uq__db_row_t *x, int col)
{
    return sqlite3_column_type((sqlite3_stmt *)x->res, col) == SQLITE_NULL;
}

static const char *row_text(const uq__db_row_t *x, int col, size_t *len)
{
    sqlite3_stmt *s = (sqlite3_stmt *)x->res;
    /* text first, then bytes: the order SQLite documents for the length
     * of the text just converted. */
    const char *t = (const char *)sqlite3_column_text(s, col);
    *len = (size_t)sqlite3_column_bytes(s, col);
    return t;
}

static int64_t row_i64(const uq__db_row_t *x, int col)
{
    return sqlite3_column_int64((sqlite3_stmt *)x->res, col);
}

static double row_f64(const uq__db_row_t *x, int col)
{
    return sqlite3_column_double((sqlite3_stmt *)x->res, col);
}

static const uq__db_row_ops_t row_ops = {row_is_null, row_text, row_i64,
                                         row_f64};

/* The row s is stepped to, for a reader. */
static uq__db_row_t row_of(sqlite3_stmt *s)
{
    uq__db_row_t x = {&row_ops, s, 0};
    return x;
}

/* Grows a row array to hold at least want elements of size sz. */
static int grow(void **arr, size_t *cap, size_t want, size_t sz)
{
    if (want <= *cap) {
        return 0;
    }
    size_t ncap = *cap == 0 ? 16 : *cap * 2;
    while (ncap < want) {
        ncap *= 2;
    }
    void *p = realloc(*arr, ncap * sz);
    if (p == NULL) {
        return -1;
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Runs a one-row count statement (already bound); result in *out. */
static int step_count(sqlite_db_t *d, conn_t *c, sqlite3_stmt *s, int64_t *out)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        return UQ_DB_OK;
    }
    return rc == SQLITE_DONE ? UQ_DB_EIO : status_of(d, c, rc, "count");
}

/*
 * Copies the current row of s into the array element at row; returns a db
 * status (UQ_DB_ENOMEM when the row holds heap text that cannot be copied).
 * One reader per row type lets every list query share step_rows().
 */
typedef uq__db_reader_fn row_reader_fn;

/*
 * Steps s to its end, appending each row to *arr (elements of sz bytes,
 * capacity *cap, *cnt in use) through read. Returns UQ_DB_OK at the end of
 * the rows, else a status (`what` names the operation in the log). On
 * failure the rows read so far, a half-read one included, stay in *arr and
 * are counted in *cnt, so that the caller frees them as its row type needs.
 */
static int step_rows(sqlite_db_t *d, conn_t *c, sqlite3_stmt *s,
                     const char *what, size_t sz, row_reader_fn read,
                     void **arr, size_t *cap, size_t *cnt)
{
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (grow(arr, cap, *cnt + 1, sz) != 0) {
            return UQ_DB_ENOMEM;
        }
        uq__db_row_t x = row_of(s);
        int st = read(&x, (char *)*arr + *cnt * sz);
        (*cnt)++;
        if (st != UQ_DB_OK) {
            return st;
        }
    }
    if (rc != SQLITE_DONE) {
        return status_of(d, c, rc, what);
    }
    return UQ_DB_OK;
}

/*
 * Binds the filter of a paged query from ?1 on, the same way on the page
 * statement and on its count; returns how many parameters it bound, because
 * the page's LIMIT and OFFSET are the two that follow.
 */
typedef int (*filter_binder_fn)(sqlite3_stmt *s, const void *arg);

/*
 * Runs a page statement and its count statement, both filtered by
 * bind(arg), in one read transaction so that the total matches the page.
 * On UQ_DB_OK *rows (malloc()ed, the caller free()s it), *n and *total are
 * written; on failure nothing is written and nothing leaks. Rows must own
 * no heap memory, since a failed page is released with free() alone.
 */
static int paged_query(sqlite_db_t *d, int page_idx, int count_idx,
                       const char *what, filter_binder_fn bind, const void *arg,
                       int limit, int offset, size_t sz, row_reader_fn read,
                       void **rows, size_t *n, int64_t *total)
{
    conn_t *c = acquire(d);
    sqlite3_stmt *s = NULL;
    sqlite3_stmt *cs = NULL;
    void *arr = NULL;
    size_t cap = 0;
    size_t cnt = 0;
    int64_t tot = 0;
    int st;

    if (c == NULL) {
        return UQ_DB_EBUSY;
    }
    st = exec(d, c, "BEGIN");
    if (st != UQ_DB_OK) {
        release(d, c);
        return st;
    }
    s = stmt(d, c, page_idx);
    cs = stmt(d, c, count_idx);
    if (s == NULL || cs == NULL) {
        st = UQ_DB_EIO;
        goto cleanup;
    }
    int nfilter = bind(s, arg);
    sqlite3_bind_int(s, nfilter + 1, limit);
    sqlite3_bind_int(s, nfilter + 2, offset);
    st = step_rows(d, c, s, what, sz, read, &arr, &cap, &cnt);
    if (st != UQ_DB_OK) {
        goto cleanup;
    }
    bind(cs, arg);
    st = step_count(d, c, cs, &tot);
    if (st != UQ_DB_OK) {
        goto cleanup;
    }
    *rows = arr;
    *n = cnt;
    *total = tot;
    arr = NULL;
cleanup:
    done(s);
    done(cs);
    sqlite3_exec(c->h, "COMMIT", NULL, NULL, NULL);
    release(d, c);
    free(arr);
    return st;
}

/*
 * Runs statement idx once on connection c, bound by bind(arg).
 * With read == NULL the statement must finish without a row (a plain
 * write). Otherwise its first row goes through read into row, and no row
 * at all gives if_none (UQ_DB_NOTFOUND, or UQ_DB_EIO where a row is
 * certain). A write with RETURNING is stepped on to its end after the row,
 * because only that finishes, and so commits, the statement. Returns a db
 * status; row may be written even on failure, so callers pass a local.
 */
static int step_one(sqlite_db_t *d, conn_t *c, int idx, const char *what,
                    filter_binder_fn bind, const void *arg, row_reader_fn read,
                    void *row, int if_none)
{
    sqlite3_stmt *s;
    int st = UQ_DB_OK;
    int rc;

    s = stmt(d, c, idx);
    if (s == NULL) {
        return UQ_DB_EIO;
    }
    bind(s, arg);
    rc = sqlite3_step(s);
    if (read == NULL) {
        if (rc != SQLITE_DONE) {
            st = status_of(d, c, rc, what);
            if (st == UQ_DB_OK) {
                st = UQ_DB_EIO;
            }
        }
    } else if (rc == SQLITE_DONE) {
        st = if_none;
    } else if (rc != SQLITE_ROW) {
        st = status_of(d, c, rc, what);
    } else {
        uq__db_row_t x = row_of(s);
        st = read(&x, row);
        if (st == UQ_DB_OK && !sqlite3_stmt_readonly(s)) {
            rc = sqlite3_step(s);
            if (rc != SQLITE_DONE) {
                st = status_of(d, c, rc, what);
            }
        }
    }
    done(s);
    return st;
}

/* step_one() on a connection borrowed for the call. */
static int run_one(sqlite_db_t *d, int idx, const char *what,
                   filter_binder_fn bind, const void *arg, row_reader_fn read,
                   void *row, int if_none)
{
    conn_t *c = acquire(d);
    int st;

    if (c == NULL) {
        return UQ_DB_EBUSY;
    }
    st = step_one(d, c, idx, what, bind, arg, read, row, if_none);
    release(d, c);
    return st;
}

/* Runs one of the prepared transaction statements (ST_BEGIN, ST_COMMIT). */
static int tx_step(sqlite_db_t *d, conn_t *c, int idx, const char *what)
{
    sqlite3_stmt *s = stmt(d, c, idx);
    int st;

    if (s == NULL) {
        return UQ_DB_EIO;
    }
    st = status_of(d, c, sqlite3_step(s), what);
    done(s);
    return st;
}

/* Ends a failed transaction; harmless when none is open. */
static void tx_rollback(conn_t *c)
{
    if (!sqlite3_get_autocommit(c->h)) {
        sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
    }
}

/* The invalidation records that ride along with one write. */
typedef struct {
    const uq_db_inval_t *inv;
    size_t n;
    int64_t created_at;
    int64_t *ids; /* the caller's, may be NULL: written only on success */
} inval_batch_t;

/*
 * Inserts b's records on c inside the caller's open transaction, writing
 * their ids to ids[0..b->n-1]. Returns a db status; a failed insert leaves
 * the transaction for the caller to roll back.
 */
static int insert_records(sqlite_db_t *d, conn_t *c, const inval_batch_t *b,
                          int64_t *ids)
{
    sqlite3_stmt *s;

    if (b->n == 0) {
        return UQ_DB_OK;
    }
    s = stmt(d, c, ST_INV_INSERT);
    if (s == NULL) {
        return UQ_DB_EIO;
    }
    for (size_t i = 0; i < b->n; i++) {
        bind_text(s, 1, b->inv[i].keyspace);
        bind_text(s, 2, b->inv[i].target);
        sqlite3_bind_int64(s, 3, b->created_at);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_DONE) {
            int st = status_of(d, c, rc, "invalidation insert");
            done(s);
            return st != UQ_DB_OK ? st : UQ_DB_EIO;
        }
        ids[i] = sqlite3_last_insert_rowid(c->h);
        done(s);
    }
    return UQ_DB_OK;
}

/*
 * run_one() for a write that carries the records of b: the statement and
 * the record inserts in one IMMEDIATE transaction, committed only when all
 * succeeded. Without records it is run_one() itself, so that such writes
 * cost what they always did. The ids reach b->ids only on UQ_DB_OK.
 */
static int run_write(sqlite_db_t *d, int idx, const char *what,
                     filter_binder_fn bind, const void *arg, row_reader_fn read,
                     void *row, int if_none, const inval_batch_t *b)
{
    int64_t *ids;
    conn_t *c;
    int st;

    if (b->n == 0) {
        return run_one(d, idx, what, bind, arg, read, row, if_none);
    }
    ids = malloc(b->n * sizeof(*ids));
    if (ids == NULL) {
        return UQ_DB_ENOMEM;
    }
    c = acquire(d);
    if (c == NULL) {
        free(ids);
        return UQ_DB_EBUSY;
    }
    st = tx_step(d, c, ST_BEGIN, what);
    if (st == UQ_DB_OK) {
        st = step_one(d, c, idx, what, bind, arg, read, row, if_none);
    }
    if (st == UQ_DB_OK) {
        st = insert_records(d, c, b, ids);
    }
    if (st == UQ_DB_OK) {
        st = tx_step(d, c, ST_COMMIT, what);
    }
    if (st != UQ_DB_OK) {
        tx_rollback(c);
    }
    release(d, c);
    if (st == UQ_DB_OK && b->ids != NULL) {
        memcpy(b->ids, ids, b->n * sizeof(*ids));
    }
    free(ids);
    return st;
}

/*
 * Runs statement idx, bound by bind(arg), on a borrowed connection and
 * collects all its rows. The rows read come back in *arr and *cnt whatever
 * the status, so that the caller frees a failed list as its row type needs.
 */
static int list_query(sqlite_db_t *d, int idx, const char *what,
                      filter_binder_fn bind, const void *arg, size_t sz,
                      row_reader_fn read, void **arr, size_t *cnt)
{
    conn_t *c = acquire(d);
    sqlite3_stmt *s;
    size_t cap = 0;
    int st;

    if (c == NULL) {
        return UQ_DB_EBUSY;
    }
    s = stmt(d, c, idx);
    if (s == NULL) {
        st = UQ_DB_EIO;
    } else {
        bind(s, arg);
        st = step_rows(d, c, s, what, sz, read, arr, &cap, cnt);
    }
    done(s);
    release(d, c);
    return st;
}

/* Filter binders for the queries above. */

static int bind_key(sqlite3_stmt *s, const void *arg)
{
    bind_text(s, 1, arg);
    return 1;
}

typedef struct {
    const char *status;
    const char *job_type;
} job_filter_t;

static int bind_job_filter(sqlite3_stmt *s, const void *arg)
{
    const job_filter_t *f = arg;
    bind_text(s, 1, f->status);
    bind_text(s, 2, f->job_type);
    return 2;
}

/*
 * Binds a feedback write to the statement its single field selects
 * (ST_FB_RATE, ST_FB_COMMENT or ST_FB_FLAG): the pair first, the time last.
 */
static int bind_feedback_write(sqlite3_stmt *s, const void *arg)
{
    const uq_db_feedback_write_t *w = arg;
    int i = 3;

    bind_text(s, 1, w->insight_id);
    bind_text(s, 2, w->user_id);
    if (w->fields == UQ_DB_FB_RATING) {
        sqlite3_bind_int(s, i++, w->rating);
        bind_text(s, i++, w->has_comment ? w->comment : NULL);
        sqlite3_bind_int(s, 6, w->has_comment != 0);
    } else if (w->fields == UQ_DB_FB_COMMENT) {
        bind_text(s, i++, w->comment);
    } else {
        bind_text(s, i++, w->flag_type);
        bind_text(s, i++, w->has_flag_reason ? w->flag_reason : NULL);
    }
    sqlite3_bind_int64(s, i, w->now);
    return i;
}

static int bind_job(sqlite3_stmt *s, const void *arg)
{
    const uq_db_job_t *j = arg;
    bind_text(s, 1, j->id);
    bind_text(s, 2, j->job_type);
    sqlite3_bind_int64(s, 3, j->start_block);
    sqlite3_bind_int64(s, 4, j->end_block);
    sqlite3_bind_int64(s, 5, j->current_block);
    bind_text(s, 6, j->status);
    sqlite3_bind_double(s, 7, j->progress_percentage);
    bind_time(s, 8, j->estimated_completion);
    bind_text(s, 9, j->has_error_message ? j->error_message : NULL);
    sqlite3_bind_int64(s, 10, j->started_at);
    bind_time(s, 11, j->completed_at);
    bind_text(s, 12, j->has_created_by ? j->created_by : NULL);
    return 12;
}

typedef struct {
    const char *job_id;
    const uq_db_job_progress_t *p;
} job_update_t;

static int bind_progress(sqlite3_stmt *s, const void *arg)
{
    const job_update_t *u = arg;
    bind_text(s, 1, u->job_id);
    sqlite3_bind_int64(s, 2, u->p->current_block);
    sqlite3_bind_double(s, 3, u->p->progress_percentage);
    bind_text(s, 4, u->p->status);
    bind_time(s, 5, u->p->estimated_completion);
    bind_text(s, 6, u->p->error_message);
    sqlite3_bind_int64(s, 7, u->p->now);
    return 7;
}

static int bind_api_key(sqlite3_stmt *s, const void *arg)
{
    const uq_db_api_key_t *k = arg;
    bind_text(s, 1, k->prefix);
    bind_text(s, 2, k->hash_hex);
    bind_text(s, 3, k->user_id);
    bind_text(s, 4, k->role);
    sqlite3_bind_int64(s, 5, k->created_at);
    return 5;
}

/* "" is stored as NULL: the optional columns' CHECKs refuse empty text. */
static int bind_opt_text(sqlite3_stmt *s, int i, const char *v)
{
    return bind_text(s, i, v[0] != '\0' ? v : NULL);
}

static int bind_key_import(sqlite3_stmt *s, const void *arg)
{
    const uq_db_api_key_t *k = arg;
    bind_text(s, 1, k->hash_hex);
    bind_text(s, 2, k->user_id);
    bind_text(s, 3, k->role);
    sqlite3_bind_int64(s, 4, k->created_at);
    bind_opt_text(s, 5, k->name);
    bind_text(s, 6, k->origin_id);
    bind_opt_text(s, 7, k->origin_prefix);
    bind_time(s, 8, k->last_used_at);
    bind_time(s, 9, k->revoked_at);
    return 9;
}

typedef struct {
    int64_t id;
    int64_t now;
} key_revoke_t;

static int bind_key_revoke(sqlite3_stmt *s, const void *arg)
{
    const key_revoke_t *r = arg;
    sqlite3_bind_int64(s, 1, r->id);
    sqlite3_bind_int64(s, 2, r->now);
    return 2;
}

/* ---- opening and closing ------------------------------------------------- */

static void close_conn(conn_t *c)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(c->st[i]);
        c->st[i] = NULL;
    }
    sqlite3_close_v2(c->h);
    c->h = NULL;
}

static void sq_close(uq_db_t *db)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    uq__db_pool_destroy(&d->pool);
    free(d->path);
    free(d);
}

/*
 * The commit hook of every connection. A database file deleted or replaced
 * under the running service is still open here, and SQLite (in WAL mode)
 * keeps committing into the unlinked inode: every such write would answer
 * 200 and be gone at the next start. So each commit first asks SQLite
 * whether the file at the path is still the one it has open (one stat);
 * when it is not, the hook turns the COMMIT into a ROLLBACK, which the
 * statement reports as SQLITE_CONSTRAINT_COMMITHOOK (UQ_DB_EREADONLY).
 */
static int on_commit(void *arg)
{
    sqlite3 *h = arg;
    int moved = 0;
    if (sqlite3_file_control(h, "main", SQLITE_FCNTL_HAS_MOVED, &moved) !=
        SQLITE_OK) {
        return 0;
    }
    return moved != 0;
}

/* SQL's uq_uuid4(): a new row id from the one generator (uq_db_uuid_new). */
static void sql_uuid4(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char id[UQ_DB_UUID_LEN + 1];

    (void)argc;
    (void)argv;
    if (uq_db_uuid_new(id) != 0) {
        sqlite3_result_error(ctx, "uq_uuid4: no randomness", -1);
        return;
    }
    sqlite3_result_text(ctx, id, UQ_DB_UUID_LEN, SQLITE_TRANSIENT);
}

static int open_conn(sqlite_db_t *d, conn_t *c, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(
        d->path, &c->h,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "open sqlite '%s': %s", d->path,
                 c->h != NULL ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
        return UQ_DB_EUNAVAILABLE;
    }
    sqlite3_busy_timeout(c->h, d->timeout_ms);
    sqlite3_extended_result_codes(c->h, 1);
    /* DIRECTONLY: only our statements call it, never a schema object. */
    rc = sqlite3_create_function(c->h, "uq_uuid4", 0,
                                 SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL,
                                 sql_uuid4, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "configure sqlite '%s': %s", d->path,
                 sqlite3_errmsg(c->h));
        return UQ_DB_EUNAVAILABLE;
    }
    sqlite3_commit_hook(c->h, on_commit, c->h);
    /* WAL lets readers run beside the one writer; NORMAL sync is durable
     * across application crashes, which is what a cache-fronted API needs.
     * Switching a fresh file to WAL takes a lock that SQLite may refuse at
     * once, without its busy handler, while another connection (another
     * process starting on the same file) holds one: that is retried until
     * the timeout, never failed on the first refusal. */
    struct timespec pause = {0, 10 * 1000 * 1000};
    uint64_t t0 = uq__db_mono_ms();
    for (;;) {
        rc = sqlite3_exec(c->h,
                          "PRAGMA journal_mode = WAL;"
                          "PRAGMA synchronous = NORMAL;"
                          "PRAGMA foreign_keys = ON;",
                          NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) {
            break;
        }
        if (uq__db_mono_ms() - t0 >= (uint64_t)d->timeout_ms) {
            break;
        }
        nanosleep(&pause, NULL);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "configure sqlite '%s': %s", d->path,
                 sqlite3_errmsg(c->h));
        return UQ_DB_EUNAVAILABLE;
    }
    return UQ_DB_OK;
}

/* ---- methods ------------------------------------------------------------- */

/* The migration runner's primitives (migrate.c) on one connection. Each
 * migration's transaction is IMMEDIATE: it takes the write lock first, so
 * two processes migrating at once run one after the other and the second
 * finds the work done. */
typedef struct {
    sqlite_db_t *d;
    conn_t *c;
} mig_conn_t;

static int mig_exec(void *arg, const char *sql)
{
    mig_conn_t *m = arg;
    return exec(m->d, m->c, sql);
}

static int mig_begin(void *arg)
{
    return mig_exec(arg, "BEGIN IMMEDIATE");
}

static int mig_recorded(void *arg, int version, int *done)
{
    mig_conn_t *m = arg;
    sqlite3_stmt *chk = NULL;
    int rc = sqlite3_prepare_v2(
        m->c->h, "SELECT 1 FROM schema_migrations WHERE version = ?1", -1, &chk,
        NULL);

    if (rc != SQLITE_OK) {
        return status_of(m->d, m->c, rc, "migrate");
    }
    sqlite3_bind_int(chk, 1, version);
    rc = sqlite3_step(chk);
    sqlite3_finalize(chk);
    *done = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE
               ? UQ_DB_OK
               : status_of(m->d, m->c, rc, "migrate");
}

static int mig_record(void *arg, int version, const char *name)
{
    mig_conn_t *m = arg;
    sqlite3_stmt *rec = NULL;
    int rc = sqlite3_prepare_v2(m->c->h,
                                "INSERT INTO schema_migrations"
                                " (version, name, applied_at)"
                                " VALUES (?1, ?2, ?3)",
                                -1, &rec, NULL);

    if (rc != SQLITE_OK) {
        return status_of(m->d, m->c, rc, "record migration");
    }
    sqlite3_bind_int(rec, 1, version);
    sqlite3_bind_text(rec, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(rec, 3, now_us());
    rc = sqlite3_step(rec);
    sqlite3_finalize(rec);
    return rc == SQLITE_DONE ? UQ_DB_OK
                             : status_of(m->d, m->c, rc, "record migration");
}

static int mig_commit(void *arg)
{
    return mig_exec(arg, "COMMIT");
}

static void mig_rollback(void *arg)
{
    mig_conn_t *m = arg;
    if (!sqlite3_get_autocommit(m->c->h)) {
        sqlite3_exec(m->c->h, "ROLLBACK", NULL, NULL, NULL);
    }
}

static const uq__db_migrator_t migrator = {
    "sqlite",
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at INTEGER NOT NULL)",
    mig_begin,
    mig_exec,
    mig_recorded,
    mig_record,
    mig_commit,
    mig_rollback,
};

static int sq_migrate(uq_db_t *db, int *applied)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    mig_conn_t m = {d, acquire(d)};
    int st;

    if (m.c == NULL) {
        return UQ_DB_EBUSY;
    }
    st = uq__db_migrate_run(&migrator, &m, migrations,
                            sizeof(migrations) / sizeof(migrations[0]), &d->log,
                            applied);
    release(d, m.c);
    return st;
}

static int sq_ping(uq_db_t *db)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    conn_t *c = acquire(d);
    sqlite3_stmt *s;
    int st;
    if (c == NULL) {
        return UQ_DB_EBUSY;
    }
    s = stmt(d, c, ST_PING);
    if (s == NULL) {
        st = UQ_DB_EIO;
    } else {
        int rc = sqlite3_step(s);
        st = rc == SQLITE_ROW ? UQ_DB_OK : status_of(d, c, rc, "ping");
    }
    done(s);
    release(d, c);
    return st;
}

static int sq_probe_write(uq_db_t *db, int64_t now)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    conn_t *c = acquire(d);
    sqlite3_stmt *s;
    int st;
    if (c == NULL) {
        return UQ_DB_EBUSY;
    }
    s = stmt(d, c, ST_PROBE);
    if (s == NULL) {
        st = UQ_DB_EIO;
    } else {
        sqlite3_bind_int64(s, 1, now);
        st = status_of(d, c, sqlite3_step(s), "write probe");
    }
    done(s);
    release(d, c);
    return st;
}

static int sq_feedback_upsert(uq_db_t *db, const uq_db_feedback_write_t *w,
                              uq_db_feedback_t *out, const uq_db_inval_t *inv,
                              size_t ninv, int64_t *inv_ids)
{
    inval_batch_t b = {inv, ninv, w->now, inv_ids};
    uq_db_feedback_t row;
    int idx;
    int st;

    if (w->fields == UQ_DB_FB_RATING) {
        idx = ST_FB_RATE;
    } else if (w->fields == UQ_DB_FB_COMMENT) {
        idx = ST_FB_COMMENT;
    } else if (w->fields == UQ_DB_FB_FLAG) {
        idx = ST_FB_FLAG;
    } else {
        return UQ_DB_EINVAL;
    }
    st = run_write((sqlite_db_t *)db, idx, "feedback upsert",
                   bind_feedback_write, w, uq__db_read_feedback, &row,
                   UQ_DB_EIO, &b);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int sq_feedback_stats(uq_db_t *db, const char *insight_id,
                             uq_db_feedback_stats_t *out)
{
    uq_db_feedback_stats_t row;
    int st = run_one((sqlite_db_t *)db, ST_FB_STATS, "stats", bind_key,
                     insight_id, uq__db_read_feedback_stats, &row, UQ_DB_EIO);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int sq_feedback_comments(uq_db_t *db, const char *insight_id, int limit,
                                int offset, uq_db_feedback_t **rows, size_t *n,
                                int64_t *total)
{
    return paged_query((sqlite_db_t *)db, ST_FB_COMMENTS, ST_FB_COMMENTS_COUNT,
                       "feedback page", bind_key, insight_id, limit, offset,
                       sizeof(**rows), uq__db_read_feedback, (void **)rows, n,
                       total);
}

static int sq_feedback_by_user(uq_db_t *db, const char *user_id, int limit,
                               int offset, uq_db_feedback_t **rows, size_t *n,
                               int64_t *total)
{
    return paged_query((sqlite_db_t *)db, ST_FB_USER, ST_FB_USER_COUNT,
                       "feedback page", bind_key, user_id, limit, offset,
                       sizeof(**rows), uq__db_read_feedback, (void **)rows, n,
                       total);
}

static int sq_job_create(uq_db_t *db, const uq_db_job_t *j,
                         const uq_db_inval_t *inv, size_t ninv,
                         int64_t *inv_ids)
{
    inval_batch_t b = {inv, ninv, ninv > 0 ? now_us() : 0, inv_ids};
    return run_write((sqlite_db_t *)db, ST_JOB_CREATE, "job create", bind_job,
                     j, NULL, NULL, UQ_DB_OK, &b);
}

static int sq_job_progress(uq_db_t *db, const char *job_id,
                           const uq_db_job_progress_t *p, uq_db_job_t *out,
                           const uq_db_inval_t *inv, size_t ninv,
                           int64_t *inv_ids)
{
    inval_batch_t b = {inv, ninv, p->now, inv_ids};
    job_update_t u = {job_id, p};
    uq_db_job_t row;
    int st =
        run_write((sqlite_db_t *)db, ST_JOB_PROGRESS, "job progress",
                  bind_progress, &u, uq__db_read_job, &row, UQ_DB_NOTFOUND, &b);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int sq_job_get(uq_db_t *db, const char *job_id, uq_db_job_t *out)
{
    uq_db_job_t row;
    int st = run_one((sqlite_db_t *)db, ST_JOB_GET, "job get", bind_key, job_id,
                     uq__db_read_job, &row, UQ_DB_NOTFOUND);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int sq_job_list(uq_db_t *db, const char *status, const char *job_type,
                       int limit, int offset, uq_db_job_t **rows, size_t *n,
                       int64_t *total)
{
    job_filter_t f = {status, job_type};
    return paged_query((sqlite_db_t *)db, ST_JOB_LIST, ST_JOB_COUNT, "job list",
                       bind_job_filter, &f, limit, offset, sizeof(**rows),
                       uq__db_read_job, (void **)rows, n, total);
}

static int sq_metrics_insert(uq_db_t *db, const uq_db_metric_new_t *in,
                             size_t n, uq_db_metric_t *out,
                             const uq_db_inval_t *inv, size_t ninv,
                             int64_t *inv_ids)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    inval_batch_t b = {inv, ninv, ninv > 0 ? now_us() : 0, inv_ids};
    conn_t *c;
    sqlite3_stmt *s = NULL;
    uq_db_metric_t *tmp;
    int64_t *ids = NULL;
    size_t got = 0;
    int st;

    if (n == 0) {
        return UQ_DB_EINVAL;
    }
    tmp = calloc(n, sizeof(*tmp));
    ids = calloc(ninv > 0 ? ninv : 1, sizeof(*ids));
    if (tmp == NULL || ids == NULL) {
        free(tmp);
        free(ids);
        return UQ_DB_ENOMEM;
    }
    c = acquire(d);
    if (c == NULL) {
        free(tmp);
        free(ids);
        return UQ_DB_EBUSY;
    }
    st = tx_step(d, c, ST_BEGIN, "metric insert");
    if (st != UQ_DB_OK) {
        goto cleanup;
    }
    s = stmt(d, c, ST_METRIC_INSERT);
    if (s == NULL) {
        st = UQ_DB_EIO;
        goto rollback;
    }
    for (size_t i = 0; i < n; i++) {
        bind_text(s, 1, in[i].service_name);
        bind_text(s, 2, in[i].metric_type);
        sqlite3_bind_double(s, 3, in[i].metric_value);
        bind_text(s, 4, in[i].unit);
        sqlite3_bind_int64(s, 5, in[i].timestamp);
        bind_text(s, 6, in[i].metadata);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) {
            st = status_of(d, c, rc, "metric insert");
            if (st == UQ_DB_OK) {
                st = UQ_DB_EIO;
            }
            goto rollback;
        }
        uq__db_row_t x = row_of(s);
        st = uq__db_read_metric(&x, &tmp[i]);
        got = i + 1;
        if (st != UQ_DB_OK) {
            goto rollback;
        }
        rc = sqlite3_step(s);
        if (rc != SQLITE_DONE) {
            st = status_of(d, c, rc, "metric insert");
            goto rollback;
        }
        done(s);
    }
    st = insert_records(d, c, &b, ids);
    if (st != UQ_DB_OK) {
        goto rollback;
    }
    st = tx_step(d, c, ST_COMMIT, "metric insert");
    if (st != UQ_DB_OK) {
        goto rollback;
    }
    memcpy(out, tmp, n * sizeof(*tmp));
    if (inv_ids != NULL && ninv > 0) {
        memcpy(inv_ids, ids, ninv * sizeof(*ids));
    }
    free(tmp);
    tmp = NULL;
    goto cleanup;

rollback:
    done(s);
    tx_rollback(c);
cleanup:
    release(d, c);
    uq_db_metrics_free(tmp, got, 1);
    free(ids);
    return st;
}

typedef struct {
    const uq_db_metric_filter_t *f;
    int limit;
    int offset;
} metric_page_t;

static int bind_metric_page(sqlite3_stmt *s, const void *arg)
{
    const metric_page_t *q = arg;
    bind_text(s, 1, q->f->service_name);
    bind_text(s, 2, q->f->metric_type);
    bind_time(s, 3, q->f->start);
    bind_time(s, 4, q->f->end);
    sqlite3_bind_int(s, 5, q->limit);
    sqlite3_bind_int(s, 6, q->offset);
    return 6;
}

static int sq_metrics_list(uq_db_t *db, const uq_db_metric_filter_t *f,
                           int limit, int offset, uq_db_metric_t **rows,
                           size_t *n)
{
    metric_page_t q = {f, limit, offset};
    void *arr = NULL;
    size_t cnt = 0;
    int st = list_query((sqlite_db_t *)db, ST_METRIC_LIST, "metrics list",
                        bind_metric_page, &q, sizeof(**rows),
                        uq__db_read_metric, &arr, &cnt);
    if (st != UQ_DB_OK) {
        uq_db_metrics_free(arr, cnt, 1);
        return st;
    }
    *rows = arr;
    *n = cnt;
    return UQ_DB_OK;
}

typedef struct {
    const char *service_name;
    const char *metric_type;
    uq_db_interval_t iv;
    int64_t start;
    int64_t end;
} bucket_query_t;

static int bind_bucket_query(sqlite3_stmt *s, const void *arg)
{
    const bucket_query_t *q = arg;
    bind_text(s, 1, q->service_name);
    bind_text(s, 2, q->metric_type);
    sqlite3_bind_int64(s, 3, uq_db_interval_origin_us(q->iv));
    sqlite3_bind_int64(s, 4, uq_db_interval_width_us(q->iv));
    sqlite3_bind_int64(s, 5, q->start);
    sqlite3_bind_int64(s, 6, q->end);
    return 6;
}

static int sq_metrics_aggregate(uq_db_t *db, const char *service_name,
                                const char *metric_type, uq_db_interval_t iv,
                                int64_t start, int64_t end,
                                uq_db_bucket_t **rows, size_t *n)
{
    bucket_query_t q = {service_name, metric_type, iv, start, end};
    void *arr = NULL;
    size_t cnt = 0;
    int st = list_query((sqlite_db_t *)db, ST_METRIC_AGG, "metrics aggregate",
                        bind_bucket_query, &q, sizeof(**rows),
                        uq__db_read_bucket, &arr, &cnt);
    if (st != UQ_DB_OK) {
        free(arr);
        return st;
    }
    *rows = arr;
    *n = cnt;
    return UQ_DB_OK;
}

/*
 * Collects the rows of retention statement idx (bound to the cutoff
 * `before`) into a new array at *arr, counted in *cnt; what is already
 * there on failure is the caller's to release with the retention result.
 */
static int collect_before(sqlite_db_t *d, conn_t *c, int idx, int64_t before,
                          const char *what, size_t sz, row_reader_fn read,
                          void **arr, size_t *cnt)
{
    size_t cap = 0;
    sqlite3_stmt *s = stmt(d, c, idx);
    int st;

    if (s == NULL) {
        return UQ_DB_EIO;
    }
    sqlite3_bind_int64(s, 1, before);
    st = step_rows(d, c, s, what, sz, read, arr, &cap, cnt);
    done(s);
    return st;
}

/* Runs retention delete idx for the cutoff `before`; rows gone in *deleted. */
static int delete_before(sqlite_db_t *d, conn_t *c, int idx, int64_t before,
                         const char *what, int64_t *deleted)
{
    sqlite3_stmt *s = stmt(d, c, idx);
    int rc;

    if (s == NULL) {
        return UQ_DB_EIO;
    }
    sqlite3_bind_int64(s, 1, before);
    rc = sqlite3_step(s);
    done(s);
    if (rc != SQLITE_DONE) {
        return status_of(d, c, rc, what);
    }
    *deleted = sqlite3_changes64(c->h);
    return UQ_DB_OK;
}

/*
 * Runs the retention statements on c inside an open transaction. The ids
 * and series are read before their rows go, so the caller can drop the
 * cache entries that described them.
 */
static int retention_steps(sqlite_db_t *d, conn_t *c,
                           const uq_db_retention_cutoffs_t *cut,
                           uq_db_retention_t *r)
{
    int st;

    st = collect_before(d, c, ST_RET_JOBS, cut->jobs_before, "retention jobs",
                        sizeof(*r->job_ids), uq__db_read_job_id,
                        (void **)&r->job_ids, &r->n_job_ids);
    if (st != UQ_DB_OK) {
        return st;
    }
    r->jobs_deleted = (int64_t)r->n_job_ids;
    st = collect_before(d, c, ST_RET_FB_IDS, cut->feedback_before,
                        "retention feedback", sizeof(*r->insight_ids),
                        uq__db_read_insight_id, (void **)&r->insight_ids,
                        &r->n_insight_ids);
    if (st == UQ_DB_OK) {
        st = delete_before(d, c, ST_RET_FB_DEL, cut->feedback_before,
                           "retention feedback", &r->feedback_deleted);
    }
    if (st == UQ_DB_OK) {
        st = collect_before(d, c, ST_RET_METRIC_SERIES, cut->metrics_before,
                            "retention metrics", sizeof(*r->series),
                            uq__db_read_series, (void **)&r->series,
                            &r->n_series);
    }
    if (st == UQ_DB_OK) {
        st = delete_before(d, c, ST_RET_METRIC_DEL, cut->metrics_before,
                           "retention metrics", &r->metrics_deleted);
    }
    return st;
}

static int sq_retention_run(uq_db_t *db, const uq_db_retention_cutoffs_t *cut,
                            uq_db_retention_t *out, const uq_db_inval_t *inv,
                            size_t ninv, int64_t *inv_ids)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    inval_batch_t b = {inv, ninv, ninv > 0 ? now_us() : 0, inv_ids};
    int64_t *ids = calloc(ninv > 0 ? ninv : 1, sizeof(*ids));
    uq_db_retention_t r;
    conn_t *c;
    int st;

    if (ids == NULL) {
        return UQ_DB_ENOMEM;
    }
    c = acquire(d);
    if (c == NULL) {
        free(ids);
        return UQ_DB_EBUSY;
    }
    memset(&r, 0, sizeof(r));
    st = tx_step(d, c, ST_BEGIN, "retention");
    if (st != UQ_DB_OK) {
        release(d, c);
        free(ids);
        return st;
    }
    st = retention_steps(d, c, cut, &r);
    if (st == UQ_DB_OK) {
        st = insert_records(d, c, &b, ids);
    }
    if (st == UQ_DB_OK) {
        st = tx_step(d, c, ST_COMMIT, "retention");
    }
    if (st != UQ_DB_OK) {
        tx_rollback(c);
        uq_db_retention_release(&r);
    } else {
        *out = r;
        if (inv_ids != NULL && ninv > 0) {
            memcpy(inv_ids, ids, ninv * sizeof(*ids));
        }
    }
    release(d, c);
    free(ids);
    return st;
}

static int sq_api_key_create(uq_db_t *db, const uq_db_api_key_t *k)
{
    return run_one((sqlite_db_t *)db, ST_KEY_CREATE, "api key create",
                   bind_api_key, k, NULL, NULL, UQ_DB_OK);
}

static int sq_api_key_lookup(uq_db_t *db, const char *prefix,
                             uq_db_api_key_t *out)
{
    uq_db_api_key_t row;
    int st =
        run_one((sqlite_db_t *)db, ST_KEY_LOOKUP, "api key lookup", bind_key,
                prefix, uq__db_read_api_key, &row, UQ_DB_NOTFOUND);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int sq_api_key_lookup_hash(uq_db_t *db, const char *hash_hex,
                                  uq_db_api_key_t *out)
{
    uq_db_api_key_t row;
    int st =
        run_one((sqlite_db_t *)db, ST_KEY_LOOKUP_HASH, "api key lookup",
                bind_key, hash_hex, uq__db_read_api_key, &row, UQ_DB_NOTFOUND);
    if (st == UQ_DB_OK) {
        *out = row;
    }
    return st;
}

static int bind_nothing(sqlite3_stmt *s, const void *arg)
{
    (void)s;
    (void)arg;
    return 0;
}

static int sq_api_key_list(uq_db_t *db, uq_db_api_key_t **rows, size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0;
    int st = list_query((sqlite_db_t *)db, ST_KEY_LIST, "api key list",
                        bind_nothing, NULL, sizeof(uq_db_api_key_t),
                        uq__db_read_api_key, &arr, &cnt);
    if (st != UQ_DB_OK) {
        free(arr);
        return st;
    }
    *rows = arr;
    *n = cnt;
    return UQ_DB_OK;
}

static int sq_api_key_revoke(uq_db_t *db, int64_t id, int64_t now_us,
                             int64_t *revoked_at)
{
    key_revoke_t r = {id, now_us};
    int64_t at = 0;
    int st = run_one((sqlite_db_t *)db, ST_KEY_REVOKE, "api key revoke",
                     bind_key_revoke, &r, uq__db_read_i64, &at, UQ_DB_NOTFOUND);
    if (st == UQ_DB_OK && revoked_at != NULL) {
        *revoked_at = at;
    }
    return st;
}

static int sq_api_key_import(uq_db_t *db, const uq_db_api_key_t *keys, size_t n,
                             size_t *failed_at)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    conn_t *c = acquire(d);
    size_t i = 0;
    int st;

    if (c == NULL) {
        return UQ_DB_EBUSY;
    }
    st = tx_step(d, c, ST_BEGIN, "api key import");
    for (; st == UQ_DB_OK && i < n; i++) {
        int64_t id = 0;
        /* No row back: the origin id is stored with another hash. */
        st = step_one(d, c, ST_KEY_IMPORT, "api key import", bind_key_import,
                      &keys[i], uq__db_read_i64, &id, UQ_DB_ECONSTRAINT);
        if (st != UQ_DB_OK) {
            break;
        }
    }
    if (st == UQ_DB_OK) {
        st = tx_step(d, c, ST_COMMIT, "api key import");
    }
    if (st != UQ_DB_OK) {
        tx_rollback(c);
        if (failed_at != NULL) {
            *failed_at = i;
        }
    }
    release(d, c);
    return st;
}

/* ---- invalidation log ---------------------------------------------------- */

typedef struct {
    int64_t after;
    int64_t limit;
} inval_page_t;

static int bind_inval_after(sqlite3_stmt *s, const void *arg)
{
    const inval_page_t *q = arg;
    sqlite3_bind_int64(s, 1, q->after);
    sqlite3_bind_int64(s, 2, q->limit);
    return 2;
}

static int bind_inval_pending(sqlite3_stmt *s, const void *arg)
{
    const inval_page_t *q = arg;
    sqlite3_bind_int64(s, 1, q->limit);
    return 1;
}

/* Runs a log read into a scratch array and copies it to out only when the
 * whole read succeeded. */
static int inval_read(sqlite_db_t *d, int idx, const char *what,
                      filter_binder_fn bind, int64_t after,
                      uq_db_inval_row_t *out, size_t cap, size_t *n)
{
    inval_page_t q = {after,
                      cap > (size_t)INT64_MAX ? INT64_MAX : (int64_t)cap};
    void *arr = NULL;
    size_t cnt = 0;
    int st = list_query(d, idx, what, bind, &q, sizeof(*out), uq__db_read_inval,
                        &arr, &cnt);

    if (st == UQ_DB_OK) {
        if (cnt > cap) {
            cnt = cap;
        }
        if (cnt > 0) {
            memcpy(out, arr, cnt * sizeof(*out));
        }
        *n = cnt;
    }
    free(arr);
    return st;
}

static int sq_inval_after(uq_db_t *db, int64_t after_id, uq_db_inval_row_t *out,
                          size_t cap, size_t *n)
{
    return inval_read((sqlite_db_t *)db, ST_INV_AFTER, "invalidations after",
                      bind_inval_after, after_id, out, cap, n);
}

static int sq_inval_pending(uq_db_t *db, uq_db_inval_row_t *out, size_t cap,
                            size_t *n)
{
    return inval_read((sqlite_db_t *)db, ST_INV_PENDING,
                      "invalidations pending", bind_inval_pending, 0, out, cap,
                      n);
}

static int sq_inval_mark_applied(uq_db_t *db, const int64_t *ids, size_t n,
                                 int64_t now)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    conn_t *c = acquire(d);
    sqlite3_stmt *s;
    int st;

    if (c == NULL) {
        return UQ_DB_EBUSY;
    }
    /* One transaction: one commit for the batch instead of one per id. */
    st = tx_step(d, c, ST_BEGIN, "invalidations applied");
    s = st == UQ_DB_OK ? stmt(d, c, ST_INV_MARK) : NULL;
    if (st == UQ_DB_OK && s == NULL) {
        st = UQ_DB_EIO;
    }
    for (size_t i = 0; st == UQ_DB_OK && i < n; i++) {
        sqlite3_bind_int64(s, 1, ids[i]);
        sqlite3_bind_int64(s, 2, now);
        st = status_of(d, c, sqlite3_step(s), "invalidations applied");
        done(s);
    }
    if (st == UQ_DB_OK) {
        st = tx_step(d, c, ST_COMMIT, "invalidations applied");
    }
    if (st != UQ_DB_OK) {
        tx_rollback(c);
    }
    release(d, c);
    return st;
}

static int sq_inval_prune(uq_db_t *db, int64_t before_us, int64_t *removed)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    conn_t *c = acquire(d);
    sqlite3_stmt *s;
    int st;

    if (c == NULL) {
        return UQ_DB_EBUSY;
    }
    s = stmt(d, c, ST_INV_PRUNE);
    if (s == NULL) {
        st = UQ_DB_EIO;
    } else {
        sqlite3_bind_int64(s, 1, before_us);
        sqlite3_bind_int64(s, 2, UQ_DB_INVAL_PRUNE_MAX);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
            st = UQ_DB_OK;
            if (removed != NULL) {
                *removed = sqlite3_changes64(c->h);
            }
        } else {
            st = status_of(d, c, rc, "invalidations prune");
            st = st != UQ_DB_OK ? st : UQ_DB_EIO;
        }
    }
    done(s);
    release(d, c);
    return st;
}

static int sq_inval_last_id(uq_db_t *db, int64_t *id)
{
    int64_t v = 0;
    int st = run_one((sqlite_db_t *)db, ST_INV_LAST, "invalidations last id",
                     bind_nothing, NULL, uq__db_read_i64, &v, UQ_DB_EIO);
    if (st == UQ_DB_OK) {
        *id = v;
    }
    return st;
}

static int sq_inval_append(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                           int64_t now, int64_t *ids)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    inval_batch_t b = {inv, n, now, ids};
    int64_t *tmp = malloc(n * sizeof(*tmp));
    conn_t *c;
    int st;

    if (tmp == NULL) {
        return UQ_DB_ENOMEM;
    }
    c = acquire(d);
    if (c == NULL) {
        free(tmp);
        return UQ_DB_EBUSY;
    }
    st = tx_step(d, c, ST_BEGIN, "invalidations append");
    if (st == UQ_DB_OK) {
        st = insert_records(d, c, &b, tmp);
    }
    if (st == UQ_DB_OK) {
        st = tx_step(d, c, ST_COMMIT, "invalidations append");
    }
    if (st != UQ_DB_OK) {
        tx_rollback(c);
    }
    release(d, c);
    if (st == UQ_DB_OK && ids != NULL) {
        memcpy(ids, tmp, n * sizeof(*tmp));
    }
    free(tmp);
    return st;
}

static const uq_db_methods_t sqlite_methods = {
    .name = "sqlite",
    .close = sq_close,
    .migrate = sq_migrate,
    .ping = sq_ping,
    .probe_write = sq_probe_write,
    .feedback_upsert = sq_feedback_upsert,
    .feedback_stats = sq_feedback_stats,
    .feedback_comments = sq_feedback_comments,
    .feedback_by_user = sq_feedback_by_user,
    .job_create = sq_job_create,
    .job_progress = sq_job_progress,
    .job_get = sq_job_get,
    .job_list = sq_job_list,
    .metrics_insert = sq_metrics_insert,
    .metrics_list = sq_metrics_list,
    .metrics_aggregate = sq_metrics_aggregate,
    .retention_run = sq_retention_run,
    .api_key_create = sq_api_key_create,
    .api_key_lookup = sq_api_key_lookup,
    .api_key_lookup_hash = sq_api_key_lookup_hash,
    .api_key_list = sq_api_key_list,
    .api_key_revoke = sq_api_key_revoke,
    .api_key_import = sq_api_key_import,
    .inval_after = sq_inval_after,
    .inval_pending = sq_inval_pending,
    .inval_mark_applied = sq_inval_mark_applied,
    .inval_prune = sq_inval_prune,
    .inval_last_id = sq_inval_last_id,
    .inval_append = sq_inval_append,
};

int uq_db_sqlite_open(const uq_db_options_t *opt, uq_db_t **out, char *err,
                      size_t errlen)
{
    const char *path = opt->url;
    sqlite_db_t *d;
    int st = UQ_DB_OK;

    if (strncmp(path, "sqlite:", 7) == 0) {
        path += 7;
        /* sqlite:///abs/path and sqlite://rel both name a file. */
        if (strncmp(path, "//", 2) == 0) {
            path += 2;
        }
    }
    if (path[0] == '\0' || strcmp(path, ":memory:") == 0) {
        snprintf(err, errlen,
                 "open sqlite: a file path is required (pool of connections)");
        return UQ_DB_ECONFIG;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errlen, "open sqlite: out of memory");
        return UQ_DB_ENOMEM;
    }
    d->base.methods = &sqlite_methods;
    d->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : 5000;
    d->log.fn = opt->log;
    d->log.arg = opt->log_arg;
    d->nconns = opt->pool_size > 0 ? opt->pool_size : 8;
    d->path = strdup(path);
    if (d->path == NULL ||
        uq__db_pool_init(&d->pool, d->nconns, d->timeout_ms, &pool_ops, d,
                         &d->log, "sqlite") != UQ_DB_OK) {
        snprintf(err, errlen, "open sqlite: out of memory");
        st = UQ_DB_ENOMEM;
        goto fail;
    }
    d->base.pool = &d->pool;
    /* Every connection now: a path that cannot be opened is reported at
     * start, and no request ever waits for an open. */
    for (int i = 0; i < d->nconns; i++) {
        conn_t *c = pool_connect(d, err, errlen);
        if (c == NULL) {
            st = UQ_DB_EUNAVAILABLE;
            goto fail;
        }
        uq__db_pool_adopt(&d->pool, c);
    }
    *out = &d->base;
    return UQ_DB_OK;
fail:
    sq_close(&d->base);
    return st;
}
