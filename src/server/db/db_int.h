/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the database backends (sqlite.c, pg.c) and defined in
 * db.c. Not part of the db.h interface: only the backend files include this
 * header, so that what the two backends have in common is written once.
 */
#ifndef UQ_SERVER_DB_INT_H
#define UQ_SERVER_DB_INT_H

#include "db.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* The monotonic clock, which bounds every wait of the layer: a wall clock
 * stepped back must not stretch one. */
static inline uint64_t uq__db_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t uq__db_mono_ms(void)
{
    return uq__db_mono_us() / 1000u;
}

/* A backend handle's logging callback, as given in uq_db_options_t. */
typedef struct {
    uq_db_log_fn fn; /* may be NULL: nothing is logged */
    void *arg;
} uq__db_logger_t;

/*
 * Formats a message and hands it to lg's callback at `level` (levels as
 * uc_log_level_t); does nothing without a callback. A message longer than
 * the internal buffer is cut short rather than dropped. Never fails.
 */
void uq__db_logf(const uq__db_logger_t *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the connection pool (pool.c) ---------------------------------------- */

/* A driver's connections, as the pool handles them: opaque pointers. */
typedef struct {
    /* Makes one connection within the handle's timeout; NULL after writing
     * why into err (one line, no password). */
    void *(*connect)(void *arg, char *err, size_t errlen);
    /* 1 when an idle connection may be lent again without a round trip;
     * NULL: always. Called with the pool's lock held: must not block. */
    int (*alive)(void *arg, void *conn);
    void (*close)(void *arg, void *conn);
} uq__db_pool_ops_t;

/* How a lent connection comes back (uq__db_pool_release). */
enum {
    UQ__DB_POOL_KEEP = 0,      /* healthy: lend it again */
    UQ__DB_POOL_DROP = 1,      /* close it; its slot is free */
    UQ__DB_POOL_DROP_IDLE = 2, /* close it and every idle one */
};

typedef struct uq__db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a connection came back or a slot freed */
    void **idle;       /* max entries; idle[0..n_idle-1] are free to lend */
    int n_idle;
    int n_open; /* idle + lent + being connected; never above max */
    int lent;
    int max;
    int timeout_ms;
    int ready; /* the lock and condition exist */
    const uq__db_pool_ops_t *ops;
    void *arg;
    const uq__db_logger_t *log;
    const char *what; /* names the pool in log lines */
    uint64_t connects, connect_failures, dropped, waits, timeouts;
} uq__db_pool_t;

/* What uq_db_figures() reports of a pool. */
typedef struct {
    int size, open, idle, lent;
    uint64_t connects, connect_failures, dropped, waits, timeouts;
} uq__db_pool_figures_t;

/* Sets up an empty pool of at most max connections whose waits last at
 * most timeout_ms; `what` and log are borrowed for the pool's life.
 * UQ_DB_OK or UQ_DB_ENOMEM. */
int uq__db_pool_init(uq__db_pool_t *p, int max, int timeout_ms,
                     const uq__db_pool_ops_t *ops, void *arg,
                     const uq__db_logger_t *log, const char *what);

/* Closes the idle connections; none may be lent. Safe on a pool whose
 * init failed (zeroed). */
void uq__db_pool_destroy(uq__db_pool_t *p);

/* Adds a connection opened by the driver itself (at open, to find a bad
 * path or server at once) as idle. UQ_DB_EINVAL when the pool is full. */
int uq__db_pool_adopt(uq__db_pool_t *p, void *conn);

/* Borrows a connection: an idle one that is alive, a new one while the pool
 * is below its size, else the first to come back within the timeout.
 * UQ_DB_OK and *out; UQ_DB_EBUSY when the wait ran out; UQ_DB_EUNAVAILABLE
 * when a new connection could not be made (both logged). */
int uq__db_pool_acquire(uq__db_pool_t *p, void **out);

/* Returns a borrowed connection; how is a UQ__DB_POOL_* value. */
void uq__db_pool_release(uq__db_pool_t *p, void *conn, int how);

/* A consistent snapshot; all zero for NULL. */
void uq__db_pool_figures(uq__db_pool_t *p, uq__db_pool_figures_t *out);

/* ---- row mapping (rows.c) ------------------------------------------------ */

/*
 * One row of a driver's result as the row mapping reads it: the driver's
 * accessors over its own result type (a PGresult and a row number, an
 * SQLite statement stepped to the row). text() gives the value's bytes and
 * their length; i64() and f64() convert the value. The readers never call
 * those three on SQL NULL (is_null() first).
 */
typedef struct uq__db_row uq__db_row_t;

typedef struct {
    int (*is_null)(const uq__db_row_t *r, int col);
    const char *(*text)(const uq__db_row_t *r, int col, size_t *len);
    int64_t (*i64)(const uq__db_row_t *r, int col);
    double (*f64)(const uq__db_row_t *r, int col);
} uq__db_row_ops_t;

struct uq__db_row {
    const uq__db_row_ops_t *ops;
    const void *res; /* the driver's result */
    int row;         /* the row within it, where the driver needs one */
};

/*
 * Copies a row into the db.h struct at dst; UQ_DB_OK, UQ_DB_EIO when a text
 * value does not fit its field, UQ_DB_ENOMEM when heap text (a metric's
 * metadata) cannot be copied. Columns in the order of the drivers' lists:
 * feedback (FB_COLS), job (JOB_COLS), metric (METRIC_COLS), api key
 * (KEY_COLS), invalidation record (INV_COLS, applied as an integer 0/1),
 * statistics (12 counts and the average), bucket (bucket, avg, min, max,
 * count), series (service, type); the last four read column 0 only.
 */
typedef int (*uq__db_reader_fn)(const uq__db_row_t *r, void *dst);

int uq__db_read_feedback(const uq__db_row_t *r, void *dst);
int uq__db_read_job(const uq__db_row_t *r, void *dst);
int uq__db_read_metric(const uq__db_row_t *r, void *dst);
int uq__db_read_api_key(const uq__db_row_t *r, void *dst);
int uq__db_read_inval(const uq__db_row_t *r, void *dst);
int uq__db_read_feedback_stats(const uq__db_row_t *r, void *dst);
int uq__db_read_bucket(const uq__db_row_t *r, void *dst);
int uq__db_read_series(const uq__db_row_t *r, void *dst);
int uq__db_read_job_id(const uq__db_row_t *r, void *dst);     /* UUID text */
int uq__db_read_insight_id(const uq__db_row_t *r, void *dst); /* id text */
int uq__db_read_i64(const uq__db_row_t *r, void *dst);        /* int64_t */

/* A growing array of rows of one struct type. */
typedef struct {
    void *items; /* malloc()ed; the caller frees it */
    size_t n;    /* rows started, a half-read one included */
    size_t cap;
} uq__db_rows_t;

/* Appends one row read through read(); on failure the row stays counted
 * in a->n, so that the caller frees its heap text with the rest. */
int uq__db_rows_push(uq__db_rows_t *a, size_t sz, uq__db_reader_fn read,
                     const uq__db_row_t *row);

/* ---- the migration runner (migrate.c) -------------------------------------
 */

/* One versioned migration of a driver's schema, in the driver's SQL. */
typedef struct {
    int version;
    const char *name;
    const char *const *sql; /* NULL-terminated statements */
    /* Optional: runs after sql in the migration's transaction, on the
     * runner's arg; UQ_DB_OK or the failure that rolls it back. */
    int (*fill)(void *arg);
    const char *const *after; /* NULL-terminated, may be NULL */
} uq__db_migration_t;

/* A driver's primitives for the runner, all on one borrowed connection
 * (the runner's arg); each returns a status, failures logged by the
 * driver. */
typedef struct {
    const char *backend; /* names the driver in log lines */
    /* CREATE TABLE IF NOT EXISTS schema_migrations(version, name,
     * applied_at) in the driver's SQL. */
    const char *ledger_sql;
    /* Begins one migration's transaction, holding the lock that serialises
     * migrating processes until it ends. */
    int (*begin)(void *arg);
    int (*exec)(void *arg, const char *sql); /* no parameters */
    /* *done = 1 when the version is in schema_migrations. */
    int (*recorded)(void *arg, int version, int *done);
    int (*record)(void *arg, int version, const char *name);
    int (*commit)(void *arg);
    void (*rollback)(void *arg); /* after a failure; never fails */
} uq__db_migrator_t;

/* Applies the migrations of list[0..n-1] (in version order) that are not
 * recorded yet, each in its own transaction; *applied (may be NULL) counts
 * them. Stops at the first failure, which it logs and returns. */
int uq__db_migrate_run(const uq__db_migrator_t *m, void *arg,
                       const uq__db_migration_t *list, size_t n,
                       const uq__db_logger_t *log, int *applied);

/* ---- the error table (errors.c) ------------------------------------------ */

/* The status of a failed PostgreSQL statement by its SQLSTATE (NULL or
 * malformed: UQ_DB_EIO). */
int uq__db_status_of_sqlstate(const char *state);

/* The status of an SQLite result code, primary or extended; SQLITE_OK,
 * _ROW and _DONE are UQ_DB_OK. */
int uq__db_status_of_sqlite(int rc);

/* The level (as uc_log_level_t) a failure with this status is logged at. */
int uq__db_log_level(int status);

#endif
