/* SPDX-License-Identifier: MIT */
/*
 * The database interface (db.h): the contract every backend meets. Each
 * contract test runs once per backend, through each_backend(): SQLite (a
 * file in a directory of the test's own) and a real PostgreSQL that this
 * test starts on a free loopback port. What they must both do: migrations
 * applied once (and exactly once by handles racing on a fresh database),
 * every method with known data, the atomic feedback upsert under concurrent
 * first writes, the one-statement statistics, pages, jobs, bucket
 * arithmetic, retention, API keys, the upgrade of a database of the
 * previous schema, the URL from the environment, and the cache-invalidation
 * log with every kind of write. Where the backends legitimately differ (the
 * class of error a type of one raises and a CHECK of the other does, as
 * db.h states it), the test asserts each backend's own value.
 *
 * A few tests are about PostgreSQL itself and run on it alone: the pool
 * across a server that freezes, goes away and comes back, open errors that
 * hide the password, and no log line holding it (every log line of every
 * handle is collected and checked).
 *
 * Each backend has one database shared by all the tests of this file (one
 * group); each test uses its own ids so that none depends on another's
 * rows. Checks of what the rows really are run SQL beside the interface,
 * on the backend's own database.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>

#include "assert_uuid.h"
#include "db.h"
#include "pg_server.h"
#include "util.h"

/* 2024-01-01T00:00:00Z, a Monday, in µs. */
#define T0 INT64_C(1704067200000000)
#define SEC INT64_C(1000000)
#define HOUR (3600 * SEC)
#define DAY (24 * HOUR)

static uc_test_pg_t g_pg;
static uq_db_t *g_db;
/* The same interface on SQLite, in a directory of this test's own. */
static uq_db_t *g_sq;
static char g_sq_dir[256];
static char g_sq_url[320];

/* Every log line of every handle: kept for log_contains(), and each one
 * checked for the password as it arrives. */
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_log[65536];
static size_t g_log_len;
static int g_password_leaked;

static void collect_log(void *arg, int level, const char *msg)
{
    size_t len = strlen(msg);
    (void)arg;
    (void)level;
    pthread_mutex_lock(&g_log_mu);
    if (g_pg.password[0] != '\0' && strstr(msg, g_pg.password) != NULL) {
        g_password_leaked = 1;
    }
    if (g_log_len + len + 2 >= sizeof(g_log)) {
        g_log_len = 0; /* keep the newest lines */
    }
    if (len + 2 < sizeof(g_log)) {
        memcpy(g_log + g_log_len, msg, len);
        g_log_len += len;
        g_log[g_log_len++] = '\n';
    }
    g_log[g_log_len] = '\0';
    pthread_mutex_unlock(&g_log_mu);
}

static int log_contains(const char *needle)
{
    int found;
    pthread_mutex_lock(&g_log_mu);
    found = strstr(g_log, needle) != NULL;
    pthread_mutex_unlock(&g_log_mu);
    return found;
}

static int open_db(const char *url, int pool, int timeout_ms, uq_db_t **out,
                   char *err, size_t errlen)
{
    uq_db_options_t o;
    memset(&o, 0, sizeof(o));
    o.url = url;
    o.pool_size = pool;
    o.timeout_ms = timeout_ms;
    o.log = collect_log;
    return uq_db_open(&o, out, err, errlen);
}

static int group_setup(void **state)
{
    char err[512];
    (void)state;
    if (uc_test_mkdtemp(g_sq_dir, sizeof(g_sq_dir), "dbtest") != 0) {
        return -1;
    }
    snprintf(g_sq_url, sizeof(g_sq_url), "sqlite:%s/db.sqlite", g_sq_dir);
    if (open_db(g_sq_url, 4, 5000, &g_sq, err, sizeof(err)) != UQ_DB_OK) {
        fprintf(stderr, "open sqlite: %s\n", err);
        return -1;
    }
    if (!uc_test_pg_available()) {
        return 0; /* SQLite alone; the PostgreSQL-only tests skip */
    }
    if (uc_test_pg_start(&g_pg) != 0) {
        goto fail;
    }
    if (open_db(g_pg.url, 4, 5000, &g_db, err, sizeof(err)) != UQ_DB_OK) {
        fprintf(stderr, "open: %s\n", err);
        uc_test_pg_stop(&g_pg);
        goto fail;
    }
    return 0;
fail:
    /* cmocka runs no teardown after a failed setup. */
    uq_db_close(g_sq);
    g_sq = NULL;
    uc_test_rmtree(g_sq_dir);
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    uq_db_close(g_db);
    g_db = NULL;
    uc_test_pg_stop(&g_pg);
    uq_db_close(g_sq);
    g_sq = NULL;
    if (g_sq_dir[0] != '\0') {
        uc_test_rmtree(g_sq_dir);
    }
    return 0;
}

/* For the tests about PostgreSQL itself: skips without it, makes sure the
 * schema exists otherwise. */
static void need_pg(void)
{
    if (g_db == NULL) {
        skip();
    }
    assert_int_equal(uq_db_migrate(g_db, NULL), UQ_DB_OK);
}

/* An integer from the test database through psql, as the superuser: for
 * what only the server's own catalogs tell. */
static int psql_int(const char *sql)
{
    char out[64];
    assert_int_equal(uc_test_pg_psql(&g_pg, sql, out, sizeof(out)), 0);
    return (int)strtol(out, NULL, 10);
}

/* ---- the backends -------------------------------------------------------- */

/*
 * Every contract test runs on both backends, one after the other: SQLite in
 * a file of the test's own, and the PostgreSQL above when it is installed.
 * Each starts from an empty invalidation log (emptied through the interface
 * itself), so that the log's counts are exact.
 */
typedef struct {
    const char *name; /* as uq_db_backend_name() says it */
    uq_db_t **db;
} backend_t;

static const backend_t g_backends[] = {
    {"sqlite", &g_sq},
    {"postgresql", &g_db},
};

#define NBACKENDS (sizeof(g_backends) / sizeof(g_backends[0]))
#define ROWS_CAP 64

static int is_pg(const char *name)
{
    return strcmp(name, "postgresql") == 0;
}

/* What a backend answers for metric_metadata that is not JSON (db.h):
 * PostgreSQL's json type refuses it as a data exception, SQLite's CHECK
 * (json_valid) as a constraint. */
static int bad_json_status(const char *name)
{
    return is_pg(name) ? UQ_DB_EINVAL : UQ_DB_ECONSTRAINT;
}

/* The URL of a backend's shared database. */
static const char *url_of(const char *name)
{
    return is_pg(name) ? g_pg.url : g_sq_url;
}

/*
 * Runs sql (one or more statements) straight on the database at url (as
 * uq_db_open takes it), beside the interface. Returns 0; else SQLite's
 * extended result code, or -1 on PostgreSQL, with the message in err.
 */
static int sql_run(const char *url, const char *sql, char *err, size_t cap)
{
    int rc = 0;

    err[0] = '\0';
    if (strncmp(url, "sqlite:", 7) == 0) {
        sqlite3 *h = NULL;
        rc = sqlite3_open(url + 7, &h);
        if (rc == SQLITE_OK) {
            sqlite3_extended_result_codes(h, 1);
            sqlite3_busy_timeout(h, 5000);
            rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK) {
            snprintf(err, cap, "%s", sqlite3_errmsg(h));
        }
        sqlite3_close(h);
        return rc;
    }
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, cap, "%s", PQerrorMessage(c));
        rc = -1;
    } else {
        PGresult *r = PQexec(c, sql);
        ExecStatusType t = PQresultStatus(r);
        if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
            snprintf(err, cap, "%s", PQerrorMessage(c));
            rc = -1;
        }
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

/* The one integer a query answers, straight from the database at url:
 * what the rows really are, not what the interface says they are. */
static int64_t sql_int(const char *url, const char *sql)
{
    char err[512] = "";
    int64_t v = 0;
    int ok = 0;

    if (strncmp(url, "sqlite:", 7) == 0) {
        sqlite3 *h = NULL;
        sqlite3_stmt *s = NULL;
        if (sqlite3_open_v2(url + 7, &h, SQLITE_OPEN_READONLY, NULL) ==
                SQLITE_OK &&
            sqlite3_busy_timeout(h, 5000) == SQLITE_OK &&
            sqlite3_prepare_v2(h, sql, -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW) {
            v = sqlite3_column_int64(s, 0);
            ok = 1;
        } else {
            snprintf(err, sizeof(err), "%s", sqlite3_errmsg(h));
        }
        sqlite3_finalize(s);
        sqlite3_close(h);
    } else {
        PGconn *c = PQconnectdb(url);
        PGresult *r = NULL;
        if (PQstatus(c) == CONNECTION_OK) {
            r = PQexec(c, sql);
        }
        if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
            PQntuples(r) == 1 && PQnfields(r) == 1) {
            v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            ok = 1;
        } else {
            snprintf(err, sizeof(err), "%s", PQerrorMessage(c));
        }
        PQclear(r);
        PQfinish(c);
    }
    if (!ok) {
        fail_msg("%s: %s", sql, err);
    }
    return v;
}

/* sql_int() on a backend's shared database. */
static int64_t count_in(const char *name, const char *sql)
{
    return sql_int(url_of(name), sql);
}

/* A new, empty database of the backend's, named by tag, for a test that
 * must start from nothing: its URL goes to url. */
static void fresh_db(const char *name, const char *tag, char *url, size_t cap)
{
    char sql[256];

    if (!is_pg(name)) {
        snprintf(url, cap, "sqlite:%s/%s.sqlite", g_sq_dir, tag);
        return;
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s_%s OWNER %s", g_pg.dbname,
             tag, g_pg.user);
    assert_int_equal(uc_test_pg_psql(&g_pg, sql, NULL, 0), 0);
    snprintf(url, cap, "%s_%s", g_pg.url, tag);
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Marks everything applied and prunes it all, leaving an empty log. */
static void reset_log(uq_db_t *db)
{
    uq_db_inval_row_t *rows = calloc(256, sizeof(*rows));
    int64_t ids[256];
    int64_t removed = 0;
    size_t n = 0;

    assert_non_null(rows);
    for (;;) {
        assert_int_equal(uq_db_inval_pending(db, rows, 256, &n), UQ_DB_OK);
        if (n == 0) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            ids[i] = rows[i].id;
        }
        assert_int_equal(uq_db_inval_mark_applied(db, ids, n, 1), UQ_DB_OK);
    }
    do {
        assert_int_equal(uq_db_inval_prune(db, INT64_MAX, &removed), UQ_DB_OK);
    } while (removed > 0);
    assert_int_equal(uq_db_inval_after(db, 0, rows, 1, &n), UQ_DB_OK);
    assert_int_equal(n, 0);
    free(rows);
}

static size_t count_pending(uq_db_t *db)
{
    uq_db_inval_row_t *rows = calloc(ROWS_CAP, sizeof(*rows));
    size_t n = 0;

    assert_non_null(rows);
    assert_int_equal(uq_db_inval_pending(db, rows, ROWS_CAP, &n), UQ_DB_OK);
    free(rows);
    return n;
}

static int64_t last_id(uq_db_t *db)
{
    int64_t id = -1;
    assert_int_equal(uq_db_inval_last_id(db, &id), UQ_DB_OK);
    return id;
}

/*
 * Runs fn once per backend that is there; skips when none is. Names each
 * backend before it runs, so that a failed assertion's line says which
 * backend failed it.
 */
static void each_backend(void (*fn)(uq_db_t *db, const char *name))
{
    int ran = 0;

    for (size_t i = 0; i < NBACKENDS; i++) {
        uq_db_t *db = *g_backends[i].db;
        if (db == NULL) {
            continue;
        }
        print_message("  on %s\n", g_backends[i].name);
        assert_string_equal(uq_db_backend_name(db), g_backends[i].name);
        assert_int_equal(uq_db_migrate(db, NULL), UQ_DB_OK);
        reset_log(db);
        fn(db, g_backends[i].name);
        ran++;
    }
    if (ran == 0) {
        skip();
    }
}

/* ---- migrations ---------------------------------------------------------- */

typedef struct {
    const char *url;
    int applied;
    int status;
} migrate_arg_t;

static void *migrate_thread(void *p)
{
    migrate_arg_t *a = p;
    char err[256];
    uq_db_t *db = NULL;

    a->status = open_db(a->url, 1, 5000, &db, err, sizeof(err));
    if (a->status == UQ_DB_OK) {
        a->status = uq_db_migrate(db, &a->applied);
    }
    uq_db_close(db);
    return NULL;
}

/* Raw rows that insight_feedback's own constraints must refuse on SQLite,
 * by the extended result code each must fail with. */
static const struct {
    const char *sql;
    int rc;
} g_sq_refusals[] = {
    {"INSERT INTO insight_feedback (insight_id, user_id, rating,"
     " created_at, updated_at) VALUES ('ins-raw', 'u2', 6, 0, 0)",
     SQLITE_CONSTRAINT_CHECK},
    {"INSERT INTO insight_feedback (insight_id, user_id, flag_type,"
     " created_at, updated_at) VALUES ('ins-raw', 'u3', 'boring', 0, 0)",
     SQLITE_CONSTRAINT_CHECK},
    {"INSERT INTO insight_feedback (insight_id, user_id, rating,"
     " created_at, updated_at) VALUES ('ins-raw', 'u1', 4, 0, 0)",
     SQLITE_CONSTRAINT_UNIQUE},
};

static void migrations_apply_once_on(uq_db_t *db, const char *name)
{
    int applied = -1;
    char url[320], err[512];
    uq_db_t *fresh = NULL;
    migrate_arg_t a[3];
    pthread_t th[3];

    /* The shared database was migrated before this ran: nothing is left. */
    assert_int_equal(uq_db_migrate(db, &applied), UQ_DB_OK);
    assert_int_equal(applied, 0);

    /* A database of its own, migrated from nothing. */
    fresh_db(name, "f", url, sizeof(url));
    assert_int_equal(open_db(url, 2, 5000, &fresh, err, sizeof(err)), UQ_DB_OK);
    applied = -1;
    assert_int_equal(uq_db_migrate(fresh, &applied), UQ_DB_OK);
    assert_int_equal(applied, 6);
    assert_int_equal(uq_db_migrate(fresh, &applied), UQ_DB_OK);
    assert_int_equal(applied, 0);
    uq_db_close(fresh);
    assert_int_equal(sql_int(url, "SELECT count(*) FROM schema_migrations"), 6);
    /* Every table of the schema; on SQLite, sqlite_sequence (its own, for
     * AUTOINCREMENT) is none of them. */
    assert_int_equal(
        sql_int(url, is_pg(name)
                         ? "SELECT count(*) FROM"
                           " information_schema.tables"
                           " WHERE table_schema = 'public'"
                         : "SELECT count(*) FROM sqlite_master"
                           " WHERE type = 'table'"
                           " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"),
        7);
    /* The constraints live in the database, not only in the service. */
    if (is_pg(name)) {
        assert_int_equal(
            sql_int(url, "SELECT count(*) FROM pg_constraint c JOIN pg_class t"
                         " ON t.oid = c.conrelid"
                         " WHERE t.relname = 'insight_feedback'"
                         " AND c.contype IN ('c', 'u')"),
            8);
    } else {
        /* SQLite has no catalog of constraints: the refusals themselves,
         * beside a row that goes in (so that the statements are sound). */
        assert_int_equal(
            sql_run(url,
                    "INSERT INTO insight_feedback (insight_id, user_id,"
                    " rating, created_at, updated_at)"
                    " VALUES ('ins-raw', 'u1', 5, 0, 0)",
                    err, sizeof(err)),
            SQLITE_OK);
        for (size_t i = 0; i < sizeof(g_sq_refusals) / sizeof(g_sq_refusals[0]);
             i++) {
            int rc = sql_run(url, g_sq_refusals[i].sql, err, sizeof(err));
            if (rc != g_sq_refusals[i].rc) {
                fail_msg("refusal %zu: got %d (%s), want %d", i, rc, err,
                         g_sq_refusals[i].rc);
            }
        }
        assert_int_equal(sql_int(url, "SELECT count(*) FROM insight_feedback"),
                         1);
    }

    /* A fresh database migrated by three processes' worth of handles at
     * once: PostgreSQL's advisory lock, SQLite's write lock let exactly one
     * apply each migration. */
    fresh_db(name, "m", url, sizeof(url));
    for (int i = 0; i < 3; i++) {
        a[i].url = url;
        a[i].applied = -1;
        a[i].status = -100;
        assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &a[i]),
                         0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].status, UQ_DB_OK);
    }
    /* Every migration, each applied exactly once, whoever applied it. */
    assert_int_equal(a[0].applied + a[1].applied + a[2].applied, 6);
    assert_int_equal(sql_int(url, "SELECT count(*) FROM schema_migrations"), 6);
}

static void migrations_apply_once(void **state)
{
    (void)state;
    each_backend(migrations_apply_once_on);
}

/* ---- feedback ------------------------------------------------------------ */

static uq_db_feedback_write_t fb_write(unsigned fields, const char *insight,
                                       const char *user, int64_t now)
{
    uq_db_feedback_write_t w;
    memset(&w, 0, sizeof(w));
    w.fields = fields;
    w.insight_id = insight;
    w.user_id = user;
    w.now = now;
    return w;
}

static void feedback_upsert_merges_on(uq_db_t *db, const char *name)
{
    uq_db_feedback_write_t w;
    uq_db_feedback_t row, first;
    const int64_t t1 = T0 + 123456, t2 = t1 + SEC, t3 = t2 + SEC;

    w = fb_write(UQ_DB_FB_RATING, "ins-merge", "alice", t1);
    w.rating = 3;
    assert_int_equal(uq_db_feedback_upsert(db, &w, &first, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_uuid4(first.id);
    assert_string_equal(first.insight_id, "ins-merge");
    assert_string_equal(first.user_id, "alice");
    assert_int_equal(first.rating, 3);
    assert_false(first.has_comment);
    assert_string_equal(first.flag_type, "");
    assert_true(first.created_at == t1 && first.updated_at == t1);

    w = fb_write(UQ_DB_FB_COMMENT, "ins-merge", "alice", t2);
    w.comment = "très utile \xe2\x9c\x93 'quoted' ; DROP TABLE x; --";
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_OK);
    /* The merge keeps the row's id. */
    assert_string_equal(row.id, first.id);
    assert_int_equal(row.rating, 3);
    assert_true(row.has_comment);
    assert_string_equal(row.comment, w.comment);
    assert_true(row.created_at == t1 && row.updated_at == t2);

    /* A rating without a comment keeps the comment. */
    w = fb_write(UQ_DB_FB_RATING, "ins-merge", "alice", t3);
    w.rating = 5;
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_int_equal(row.rating, 5);
    assert_true(row.has_comment);
    assert_string_equal(row.comment,
                        "très utile \xe2\x9c\x93 'quoted' ; DROP TABLE x; --");

    /* A rating with a comment replaces it. */
    w.has_comment = 1;
    w.comment = "changed";
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_string_equal(row.comment, "changed");

    w = fb_write(UQ_DB_FB_FLAG, "ins-merge", "alice", t3);
    w.flag_type = "spam";
    w.has_flag_reason = 1;
    w.flag_reason = "ads";
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_string_equal(row.flag_type, "spam");
    assert_true(row.has_flag_reason);
    assert_string_equal(row.flag_reason, "ads");
    assert_int_equal(row.rating, 5);

    /* A flag without a reason clears the old reason. */
    w.flag_type = "misleading";
    w.has_flag_reason = 0;
    w.flag_reason = NULL;
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_string_equal(row.flag_type, "misleading");
    assert_false(row.has_flag_reason);
    assert_true(row.created_at == t1);
    assert_int_equal(count_in(name, "SELECT count(*) FROM insight_feedback"
                                    " WHERE insight_id = 'ins-merge'"),
                     1);
}

static void feedback_upsert_merges(void **state)
{
    (void)state;
    each_backend(feedback_upsert_merges_on);
}

static void feedback_constraints_refuse_on(uq_db_t *db, const char *name)
{
    uq_db_feedback_write_t w;
    uq_db_feedback_t row;

    w = fb_write(UQ_DB_FB_RATING, "ins-bad", "bob", T0);
    w.rating = 6;
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_ECONSTRAINT);
    w.rating = 0;
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_ECONSTRAINT);
    w = fb_write(UQ_DB_FB_FLAG, "ins-bad", "bob", T0);
    w.flag_type = "boring";
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_ECONSTRAINT);
    w = fb_write(0, "ins-bad", "bob", T0);
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_EINVAL);
    assert_int_equal(count_in(name, "SELECT count(*) FROM insight_feedback"
                                    " WHERE insight_id = 'ins-bad'"),
                     0);
    /* The pool survives statement errors: the next call works. */
    assert_int_equal(uq_db_ping(db), UQ_DB_OK);
}

static void feedback_constraints_refuse(void **state)
{
    (void)state;
    each_backend(feedback_constraints_refuse_on);
}

static void put(uq_db_t *db, const char *insight, const char *user, int rating,
                const char *comment, const char *flag, int64_t now)
{
    uq_db_feedback_write_t w;
    uq_db_feedback_t row;

    if (rating != 0) {
        w = fb_write(UQ_DB_FB_RATING, insight, user, now);
        w.rating = rating;
        assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                         UQ_DB_OK);
    }
    if (comment != NULL) {
        w = fb_write(UQ_DB_FB_COMMENT, insight, user, now);
        w.comment = comment;
        assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                         UQ_DB_OK);
    }
    if (flag != NULL) {
        w = fb_write(UQ_DB_FB_FLAG, insight, user, now);
        w.flag_type = flag;
        assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                         UQ_DB_OK);
    }
}

static void feedback_stats_aggregate_on(uq_db_t *db, const char *name)
{
    uq_db_feedback_stats_t s;

    (void)name;
    put(db, "ins-stats", "u1", 5, "great", "spam", T0);
    put(db, "ins-stats", "u2", 4, NULL, NULL, T0);
    put(db, "ins-stats", "u3", 4, "ok", NULL, T0);
    put(db, "ins-stats", "u4", 1, NULL, NULL, T0);
    put(db, "ins-stats", "u5", 0, "meh", "spam", T0);
    put(db, "ins-stats", "u6", 0, NULL, "inaccurate", T0);
    put(db, "ins-other", "u1", 1, "other", "misleading", T0);

    memset(&s, 0xff, sizeof(s));
    assert_int_equal(uq_db_feedback_stats(db, "ins-stats", &s), UQ_DB_OK);
    assert_int_equal(s.total_ratings, 4);
    assert_true(s.average_rating > 3.4999 && s.average_rating < 3.5001);
    assert_int_equal(s.rating_distribution[0], 1);
    assert_int_equal(s.rating_distribution[1], 0);
    assert_int_equal(s.rating_distribution[2], 0);
    assert_int_equal(s.rating_distribution[3], 2);
    assert_int_equal(s.rating_distribution[4], 1);
    assert_int_equal(s.total_comments, 3);
    assert_int_equal(s.total_flags, 3);
    assert_int_equal(s.flag_inaccurate, 1);
    assert_int_equal(s.flag_misleading, 0);
    assert_int_equal(s.flag_spam, 2);

    memset(&s, 0xff, sizeof(s));
    assert_int_equal(uq_db_feedback_stats(db, "ins-none", &s), UQ_DB_OK);
    assert_int_equal(s.total_ratings, 0);
    assert_true(s.average_rating == 0.0);
    assert_int_equal(s.rating_distribution[4], 0);
    assert_int_equal(s.total_comments, 0);
    assert_int_equal(s.total_flags, 0);
    assert_int_equal(s.flag_spam, 0);
}

static void feedback_stats_aggregate(void **state)
{
    (void)state;
    each_backend(feedback_stats_aggregate_on);
}

static void feedback_pages_on(uq_db_t *db, const char *name)
{
    uq_db_feedback_t *rows = NULL;
    size_t n = 0;
    int64_t total = -1;
    char user[16], text[16];

    (void)name;
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "pager%d", i);
        snprintf(text, sizeof(text), "c%d", i);
        put(db, "ins-page", user, 0, text, NULL, T0 + i * SEC);
    }
    put(db, "ins-page", "rater-only", 2, NULL, NULL, T0 + 10 * SEC);
    put(db, "ins-page2", "pager1", 3, NULL, NULL, T0 + 20 * SEC);

    assert_int_equal(
        uq_db_feedback_comments(db, "ins-page", 2, 0, &rows, &n, &total),
        UQ_DB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(total, 5);
    assert_string_equal(rows[0].comment, "c4");
    assert_string_equal(rows[1].comment, "c3");
    free(rows);

    assert_int_equal(
        uq_db_feedback_comments(db, "ins-page", 2, 4, &rows, &n, &total),
        UQ_DB_OK);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].comment, "c0");
    free(rows);

    /* Past the end: an empty page, and still the total. */
    rows = NULL;
    assert_int_equal(
        uq_db_feedback_comments(db, "ins-page", 10, 50, &rows, &n, &total),
        UQ_DB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(total, 5);
    free(rows);

    assert_int_equal(
        uq_db_feedback_by_user(db, "pager1", 10, 0, &rows, &n, &total),
        UQ_DB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(total, 2);
    assert_string_equal(rows[0].insight_id, "ins-page2");
    assert_string_equal(rows[1].insight_id, "ins-page");
    free(rows);

    rows = NULL;
    assert_int_equal(
        uq_db_feedback_by_user(db, "nobody", 10, 0, &rows, &n, &total),
        UQ_DB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(total, 0);
    free(rows);
}

static void feedback_pages(void **state)
{
    (void)state;
    each_backend(feedback_pages_on);
}

/* ---- concurrency --------------------------------------------------------- */

#define RACE_THREADS 8
#define RACE_KEYS 40

typedef struct {
    uq_db_t *db;
    pthread_barrier_t *start;
    int idx;
    int failures;
} race_arg_t;

static void *race_thread(void *p)
{
    race_arg_t *a = p;
    char insight[32];

    pthread_barrier_wait(a->start);
    for (int k = 0; k < RACE_KEYS; k++) {
        uq_db_feedback_write_t w;
        uq_db_feedback_t row;
        snprintf(insight, sizeof(insight), "ins-race-%d", k);
        /* Every thread's first write to each key races the others'. */
        w = fb_write(UQ_DB_FB_RATING, insight, "same-user",
                     T0 + a->idx * SEC + k);
        switch ((a->idx + k) % 3) {
        case 0:
            w.rating = 1 + (a->idx + k) % 5;
            break;
        case 1:
            w.fields = UQ_DB_FB_COMMENT;
            w.comment = "racing";
            break;
        default:
            w.fields = UQ_DB_FB_FLAG;
            w.flag_type = "spam";
            break;
        }
        if (uq_db_feedback_upsert(a->db, &w, &row, NULL, 0, NULL) != UQ_DB_OK ||
            strcmp(row.insight_id, insight) != 0) {
            a->failures++;
        }
    }
    return NULL;
}

static void concurrent_upserts_never_fail_on(uq_db_t *db, const char *name)
{
    pthread_barrier_t start;
    pthread_t th[RACE_THREADS];
    race_arg_t args[RACE_THREADS];
    uq_db_feedback_stats_t s;

    pthread_barrier_init(&start, NULL, RACE_THREADS);
    for (int i = 0; i < RACE_THREADS; i++) {
        args[i].db = db;
        args[i].start = &start;
        args[i].idx = i;
        args[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]),
                         0);
    }
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&start);
    for (int i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(args[i].failures, 0);
    }
    /* One row per key, whatever the interleaving. */
    assert_int_equal(count_in(name, "SELECT count(*) FROM insight_feedback"
                                    " WHERE insight_id LIKE 'ins-race-%'"),
                     RACE_KEYS);
    assert_int_equal(uq_db_feedback_stats(db, "ins-race-0", &s), UQ_DB_OK);
    assert_true(s.total_ratings <= 1 && s.total_comments == 1 &&
                s.total_flags == 1);
    /* The pool never held more connections than its size (4). Only
     * PostgreSQL has a server that counts them; SQLite's pool is a fixed
     * array of that size. */
    if (is_pg(name)) {
        assert_true(psql_int("SELECT count(*) FROM pg_stat_activity"
                             " WHERE application_name = 'utxoiq-api'"
                             " AND datname = current_database()") <= 4);
    }
    /* And every call gave its connection back. */
    uq_db_figures_t fig;
    uq_db_figures(db, &fig);
    assert_int_equal(fig.pool_size, 4);
    assert_int_equal(fig.checked_out, 0);
}

static void concurrent_upserts_never_fail(void **state)
{
    (void)state;
    each_backend(concurrent_upserts_never_fail_on);
}

/* ---- backfill jobs ------------------------------------------------------- */

static uq_db_job_t make_job(const char *id, const char *type, int64_t start)
{
    uq_db_job_t j;
    memset(&j, 0, sizeof(j));
    snprintf(j.id, sizeof(j.id), "%s", id);
    snprintf(j.job_type, sizeof(j.job_type), "%s", type);
    j.start_block = 100;
    j.end_block = 200;
    j.current_block = 100;
    snprintf(j.status, sizeof(j.status), "running");
    j.estimated_completion = UQ_DB_NULL_TIME;
    j.started_at = start;
    j.completed_at = UQ_DB_NULL_TIME;
    return j;
}

static void jobs_lifecycle_on(uq_db_t *db, const char *name)
{
    uq_db_job_t j =
        make_job("0b0e6b6c-5a1e-4c3e-9d7a-000000000001", "blocks", T0 + 5);
    uq_db_job_t got;
    uq_db_job_progress_t p;

    j.has_created_by = 1;
    snprintf(j.created_by, sizeof(j.created_by), "admin-1");
    assert_int_equal(uq_db_job_create(db, &j, NULL, 0, NULL), UQ_DB_OK);
    assert_int_equal(uq_db_job_create(db, &j, NULL, 0, NULL),
                     UQ_DB_ECONSTRAINT);

    assert_int_equal(uq_db_job_get(db, j.id, &got), UQ_DB_OK);
    assert_string_equal(got.id, j.id);
    assert_string_equal(got.job_type, "blocks");
    assert_true(got.start_block == 100 && got.end_block == 200);
    assert_string_equal(got.status, "running");
    assert_true(got.estimated_completion == UQ_DB_NULL_TIME);
    assert_true(got.completed_at == UQ_DB_NULL_TIME);
    assert_true(got.started_at == T0 + 5);
    assert_false(got.has_error_message);
    assert_true(got.has_created_by);
    assert_string_equal(got.created_by, "admin-1");

    memset(&p, 0, sizeof(p));
    p.current_block = 150;
    p.progress_percentage = 50.25;
    p.estimated_completion = T0 + HOUR;
    p.now = T0 + 60 * SEC;
    assert_int_equal(uq_db_job_progress(db, j.id, &p, &got, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_true(got.current_block == 150);
    assert_true(got.progress_percentage == 50.25);
    assert_string_equal(got.status, "running");
    assert_true(got.estimated_completion == T0 + HOUR);
    assert_true(got.completed_at == UQ_DB_NULL_TIME);

    p.current_block = 200;
    p.progress_percentage = 100;
    p.status = "completed";
    p.estimated_completion = UQ_DB_NULL_TIME; /* keeps the old one */
    p.now = T0 + 120 * SEC;
    assert_int_equal(uq_db_job_progress(db, j.id, &p, &got, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_string_equal(got.status, "completed");
    assert_true(got.completed_at == T0 + 120 * SEC);
    assert_true(got.estimated_completion == T0 + HOUR);

    /* Only "completed" touches completed_at, as in the original: failing
     * leaves it, completing again sets it again. */
    p.status = "failed";
    p.error_message = "disk full";
    p.now = T0 + 180 * SEC;
    assert_int_equal(uq_db_job_progress(db, j.id, &p, &got, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_string_equal(got.status, "failed");
    assert_true(got.completed_at == T0 + 120 * SEC);
    assert_true(got.has_error_message);
    assert_string_equal(got.error_message, "disk full");
    p.status = "completed";
    p.error_message = NULL;
    p.now = T0 + 240 * SEC;
    assert_int_equal(uq_db_job_progress(db, j.id, &p, &got, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_true(got.completed_at == T0 + 240 * SEC);
    assert_string_equal(got.error_message, "disk full");

    /* error_message has no length limit of its own (migration 6). */
    char *trace = malloc(5001);
    assert_non_null(trace);
    memset(trace, 't', 5000);
    trace[5000] = '\0';
    p.status = "failed";
    p.error_message = trace;
    assert_int_equal(uq_db_job_progress(db, j.id, &p, &got, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_string_equal(got.error_message, trace);
    free(trace);
    p.error_message = NULL;

    p.status = "exploded";
    assert_int_equal(uq_db_job_progress(db, j.id, &p, &got, NULL, 0, NULL),
                     UQ_DB_ECONSTRAINT);
    p.status = NULL;
    assert_int_equal(uq_db_job_progress(db,
                                        "0b0e6b6c-5a1e-4c3e-9d7a-00000000ffff",
                                        &p, &got, NULL, 0, NULL),
                     UQ_DB_NOTFOUND);
    assert_int_equal(
        uq_db_job_get(db, "0b0e6b6c-5a1e-4c3e-9d7a-00000000ffff", &got),
        UQ_DB_NOTFOUND);
    /* Not a UUID at all (db.h): PostgreSQL's uuid type refuses it; SQLite
     * keeps ids as text, where no job has it. On both it is a value, never
     * SQL: no row comes back. */
    assert_int_equal(uq_db_job_get(db, "' OR 1=1 --", &got),
                     is_pg(name) ? UQ_DB_EINVAL : UQ_DB_NOTFOUND);
}

static void jobs_lifecycle(void **state)
{
    (void)state;
    each_backend(jobs_lifecycle_on);
}

static void jobs_list_filters_and_pages_on(uq_db_t *db, const char *name)
{
    char id[40];
    uq_db_job_t *rows = NULL;
    size_t n = 0;
    int64_t total = -1;

    (void)name;
    for (int i = 0; i < 6; i++) {
        uq_db_job_t j;
        snprintf(id, sizeof(id), "1b0e6b6c-5a1e-4c3e-9d7a-%012d", i);
        j = make_job(id, i % 2 == 0 ? "list-even" : "list-odd",
                     T0 + DAY + i * SEC);
        if (i == 4) {
            snprintf(j.status, sizeof(j.status), "paused");
        }
        assert_int_equal(uq_db_job_create(db, &j, NULL, 0, NULL), UQ_DB_OK);
    }
    assert_int_equal(
        uq_db_job_list(db, NULL, "list-even", 2, 0, &rows, &n, &total),
        UQ_DB_OK);
    assert_int_equal(total, 3);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].id, "1b0e6b6c-5a1e-4c3e-9d7a-000000000004");
    assert_string_equal(rows[1].id, "1b0e6b6c-5a1e-4c3e-9d7a-000000000002");
    free(rows);

    assert_int_equal(
        uq_db_job_list(db, "paused", "list-even", 10, 0, &rows, &n, &total),
        UQ_DB_OK);
    assert_int_equal(total, 1);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].status, "paused");
    free(rows);

    rows = NULL;
    assert_int_equal(
        uq_db_job_list(db, "running", "list-odd", 10, 3, &rows, &n, &total),
        UQ_DB_OK);
    assert_int_equal(total, 3);
    assert_int_equal(n, 0);
    free(rows);
}

static void jobs_list_filters_and_pages(void **state)
{
    (void)state;
    each_backend(jobs_list_filters_and_pages_on);
}

/* ---- metrics ------------------------------------------------------------- */

static uq_db_metric_new_t metric(const char *svc, const char *type, double v,
                                 int64_t ts, const char *meta)
{
    uq_db_metric_new_t m;
    m.service_name = svc;
    m.metric_type = type;
    m.metric_value = v;
    m.unit = "ms";
    m.timestamp = ts;
    m.metadata = meta;
    return m;
}

static void metrics_insert_and_list_on(uq_db_t *db, const char *name)
{
    static const char meta[] = "{\"b\": 1,   \"a\" : [2, \"x\"]}";
    uq_db_metric_new_t in[3];
    uq_db_metric_t out[3];
    uq_db_metric_t *rows = NULL;
    uq_db_metric_filter_t f;
    size_t n = 0;

    in[0] = metric("svc-list", "latency", 1.5, T0 + 1, meta);
    in[1] = metric("svc-list", "latency", 0.1, T0 + 2, NULL);
    in[2] = metric("svc-list", "errors", 3, T0 + 3, NULL);
    assert_int_equal(uq_db_metrics_insert(db, in, 3, out, NULL, 0, NULL),
                     UQ_DB_OK);
    for (int i = 0; i < 3; i++) {
        assert_uuid4(out[i].id);
    }
    assert_string_not_equal(out[0].id, out[1].id);
    assert_string_not_equal(out[1].id, out[2].id);
    /* The metadata text comes back byte for byte (json, not jsonb). */
    assert_string_equal(out[0].metadata, meta);
    assert_null(out[1].metadata);
    assert_true(out[1].metric_value == 0.1);
    assert_true(out[2].timestamp == T0 + 3);
    uq_db_metrics_free(out, 3, 0);

    memset(&f, 0, sizeof(f));
    f.service_name = "svc-list";
    f.metric_type = "latency";
    f.start = UQ_DB_NULL_TIME;
    f.end = UQ_DB_NULL_TIME;
    assert_int_equal(uq_db_metrics_list(db, &f, 10, 0, &rows, &n), UQ_DB_OK);
    assert_int_equal(n, 2);
    assert_true(rows[0].timestamp == T0 + 2); /* newest first */
    assert_string_equal(rows[1].metadata, meta);
    /* A read gives each row the id its insert answered. */
    assert_string_equal(rows[0].id, out[1].id);
    assert_string_equal(rows[1].id, out[0].id);
    uq_db_metrics_free(rows, n, 1);

    /* start inclusive, end exclusive. */
    f.metric_type = NULL;
    f.start = T0 + 2;
    f.end = T0 + 3;
    assert_int_equal(uq_db_metrics_list(db, &f, 10, 0, &rows, &n), UQ_DB_OK);
    assert_int_equal(n, 1);
    assert_true(rows[0].timestamp == T0 + 2);
    uq_db_metrics_free(rows, n, 1);

    /* All or none: one bad row (metadata that is not JSON) and the whole
     * batch is rolled back. */
    in[0] = metric("svc-batch", "x", 1, T0, NULL);
    in[1] = metric("svc-batch", "x", 2, T0, "{not json");
    assert_int_equal(uq_db_metrics_insert(db, in, 2, out, NULL, 0, NULL),
                     bad_json_status(name));
    assert_int_equal(count_in(name, "SELECT count(*) FROM system_metrics"
                                    " WHERE service_name = 'svc-batch'"),
                     0);
    assert_int_equal(uq_db_ping(db), UQ_DB_OK);
}

static void metrics_insert_and_list(void **state)
{
    (void)state;
    each_backend(metrics_insert_and_list_on);
}

/* The bucket rule of db.h, computed here independently of SQL. */
static int64_t bucket_of(int64_t t, uq_db_interval_t iv)
{
    int64_t w = uq_db_interval_width_us(iv);
    int64_t o = uq_db_interval_origin_us(iv);
    int64_t q = (t - o) / w;
    if ((t - o) % w < 0) {
        q--;
    }
    return o + q * w;
}

static void metrics_aggregate_buckets_on(uq_db_t *db, const char *name)
{
    /* Sunday 2023-12-31 12:00, then Monday 2024-01-01 00:30 and 01:10,
     * 01:50, then Tuesday 09:00. */
    const int64_t ts[5] = {T0 - 12 * HOUR, T0 + 30 * 60 * SEC,
                           T0 + HOUR + 10 * 60 * SEC, T0 + HOUR + 50 * 60 * SEC,
                           T0 + DAY + 9 * HOUR};
    const double vs[5] = {10, 1, 2, 6, 100};
    uq_db_metric_new_t in[5];
    uq_db_metric_t out[5];
    uq_db_bucket_t *b = NULL;
    size_t n = 0;

    (void)name;
    for (int i = 0; i < 5; i++) {
        in[i] = metric("svc-agg", "cpu", vs[i], ts[i], NULL);
    }
    assert_int_equal(uq_db_metrics_insert(db, in, 5, out, NULL, 0, NULL),
                     UQ_DB_OK);
    uq_db_metrics_free(out, 5, 0);

    assert_int_equal(uq_db_metrics_aggregate(db, "svc-agg", "cpu", UQ_DB_HOUR,
                                             T0, T0 + 2 * DAY, &b, &n),
                     UQ_DB_OK);
    assert_int_equal(n, 3); /* the Sunday point is outside the window */
    assert_true(b[0].bucket == T0 && b[0].count == 1);
    assert_true(b[1].bucket == T0 + HOUR && b[1].count == 2);
    assert_true(b[1].avg_value == 4.0 && b[1].min_value == 2.0 &&
                b[1].max_value == 6.0);
    assert_true(b[2].bucket == bucket_of(ts[4], UQ_DB_HOUR));
    free(b);

    assert_int_equal(uq_db_metrics_aggregate(db, "svc-agg", "cpu", UQ_DB_DAY,
                                             T0 - DAY, T0 + 2 * DAY, &b, &n),
                     UQ_DB_OK);
    assert_int_equal(n, 3);
    assert_true(b[0].bucket == T0 - DAY && b[0].count == 1);
    assert_true(b[1].bucket == T0 && b[1].count == 3);
    assert_true(b[1].avg_value == 3.0);
    assert_true(b[2].bucket == T0 + DAY && b[2].max_value == 100.0);
    free(b);

    /* Weeks start on Monday 00:00 UTC: Sunday falls in the week before. */
    assert_int_equal(uq_db_metrics_aggregate(db, "svc-agg", "cpu", UQ_DB_WEEK,
                                             T0 - 7 * DAY, T0 + 7 * DAY, &b,
                                             &n),
                     UQ_DB_OK);
    assert_int_equal(n, 2);
    assert_true(b[0].bucket == T0 - 7 * DAY);
    assert_true(b[0].bucket == bucket_of(ts[0], UQ_DB_WEEK));
    assert_true(b[0].count == 1 && b[0].avg_value == 10.0);
    assert_true(b[1].bucket == T0 && b[1].count == 4);
    assert_true(b[1].min_value == 1.0 && b[1].max_value == 100.0);
    assert_true(b[1].avg_value == 27.25);
    free(b);

    b = NULL;
    assert_int_equal(uq_db_metrics_aggregate(db, "svc-agg", "nothing",
                                             UQ_DB_HOUR, T0, T0 + DAY, &b, &n),
                     UQ_DB_OK);
    assert_int_equal(n, 0);
    free(b);
}

static void metrics_aggregate_buckets(void **state)
{
    (void)state;
    each_backend(metrics_aggregate_buckets_on);
}

/* ---- retention ----------------------------------------------------------- */

static void retention_deletes_and_reports_on(uq_db_t *db, const char *name)
{
    const int64_t old = INT64_C(946684800000000); /* 2000-01-01 */
    const int64_t cut = old + DAY;
    uq_db_job_t j =
        make_job("2b0e6b6c-5a1e-4c3e-9d7a-000000000001", "ret", old);
    uq_db_metric_new_t in[3];
    uq_db_metric_t out[3];
    uq_db_retention_cutoffs_t c = {cut, cut, cut};
    uq_db_retention_t r;
    uq_db_job_t got;

    assert_int_equal(uq_db_job_create(db, &j, NULL, 0, NULL), UQ_DB_OK);
    put(db, "ins-ret-a", "old1", 2, NULL, NULL, old);
    put(db, "ins-ret-a", "old2", 3, NULL, NULL, old);
    put(db, "ins-ret-b", "new1", 4, NULL, NULL, T0);
    in[0] = metric("svc-ret", "a", 1, old, NULL);
    in[1] = metric("svc-ret", "a", 1, old + 1, NULL);
    in[2] = metric("svc-ret", "b", 1, T0, NULL);
    assert_int_equal(uq_db_metrics_insert(db, in, 3, out, NULL, 0, NULL),
                     UQ_DB_OK);
    uq_db_metrics_free(out, 3, 0);

    assert_int_equal(uq_db_retention_run(db, &c, &r, NULL, 0, NULL), UQ_DB_OK);
    assert_int_equal(r.jobs_deleted, 1);
    assert_int_equal(r.n_job_ids, 1);
    assert_string_equal(r.job_ids[0], j.id);
    assert_int_equal(r.feedback_deleted, 2);
    assert_int_equal(r.n_insight_ids, 1);
    assert_string_equal(r.insight_ids[0], "ins-ret-a");
    assert_int_equal(r.metrics_deleted, 2);
    assert_int_equal(r.n_series, 1);
    assert_string_equal(r.series[0].service_name, "svc-ret");
    assert_string_equal(r.series[0].metric_type, "a");
    uq_db_retention_release(&r);

    assert_int_equal(uq_db_job_get(db, j.id, &got), UQ_DB_NOTFOUND);
    assert_int_equal(count_in(name, "SELECT count(*) FROM insight_feedback"
                                    " WHERE insight_id LIKE 'ins-ret-%'"),
                     1);
    assert_int_equal(count_in(name, "SELECT count(*) FROM system_metrics"
                                    " WHERE service_name = 'svc-ret'"),
                     1);

    /* Nothing left to delete: a run that reports nothing. */
    assert_int_equal(uq_db_retention_run(db, &c, &r, NULL, 0, NULL), UQ_DB_OK);
    assert_true(r.jobs_deleted == 0 && r.feedback_deleted == 0 &&
                r.metrics_deleted == 0 && r.n_series == 0);
    uq_db_retention_release(&r);
}

static void retention_deletes_and_reports(void **state)
{
    (void)state;
    each_backend(retention_deletes_and_reports_on);
}

/* ---- api keys ------------------------------------------------------------ */

static void api_keys_store_and_find_on(uq_db_t *db, const char *name)
{
    uq_db_api_key_t k, got;

    (void)name;
    memset(&k, 0, sizeof(k));
    snprintf(k.prefix, sizeof(k.prefix), "pfx12345");
    memset(k.hash_hex, 'a', UQ_DB_HASH_HEX_LEN);
    k.hash_hex[UQ_DB_HASH_HEX_LEN] = '\0';
    snprintf(k.user_id, sizeof(k.user_id), "svc-user");
    snprintf(k.role, sizeof(k.role), "service");
    k.created_at = T0 + 7;
    assert_int_equal(uq_db_api_key_create(db, &k), UQ_DB_OK);
    assert_int_equal(uq_db_api_key_create(db, &k), UQ_DB_ECONSTRAINT);

    assert_int_equal(uq_db_api_key_lookup(db, "pfx12345", &got), UQ_DB_OK);
    assert_true(got.id > 0);
    assert_string_equal(got.hash_hex, k.hash_hex);
    assert_string_equal(got.user_id, "svc-user");
    assert_string_equal(got.role, "service");
    assert_true(got.created_at == T0 + 7);
    assert_int_equal(uq_db_api_key_lookup(db, "nope", &got), UQ_DB_NOTFOUND);

    snprintf(k.prefix, sizeof(k.prefix), "pfx-root");
    snprintf(k.role, sizeof(k.role), "root");
    assert_int_equal(uq_db_api_key_create(db, &k), UQ_DB_ECONSTRAINT);
}

static void api_keys_store_and_find(void **state)
{
    (void)state;
    each_backend(api_keys_store_and_find_on);
}

/* Imported keys: found by hash, revoked once, re-imported without change,
 * and a conflicting batch leaves nothing behind. */
static void api_keys_import_and_revoke_on(uq_db_t *db, const char *name)
{
    uq_db_api_key_t k[2], got, *rows = NULL;
    size_t failed = 99, n = 0;
    int64_t at = 0;

    (void)name;
    memset(k, 0, sizeof(k));
    for (int i = 0; i < 2; i++) {
        snprintf(k[i].origin_id, sizeof(k[i].origin_id), "imp-%d", i);
        memset(k[i].hash_hex, i == 0 ? 'b' : 'c', UQ_DB_HASH_HEX_LEN);
        snprintf(k[i].user_id, sizeof(k[i].user_id), "imp-user");
        snprintf(k[i].role, sizeof(k[i].role), "user");
        snprintf(k[i].origin_prefix, sizeof(k[i].origin_prefix), "abc%d", i);
        k[i].created_at = T0;
        k[i].last_used_at = UQ_DB_NULL_TIME;
        k[i].revoked_at = i == 1 ? T0 + 5 : UQ_DB_NULL_TIME;
    }
    assert_int_equal(uq_db_api_key_import(db, k, 2, &failed), UQ_DB_OK);
    assert_int_equal(uq_db_api_key_lookup_hash(db, k[0].hash_hex, &got),
                     UQ_DB_OK);
    assert_string_equal(got.origin_id, "imp-0");
    assert_string_equal(got.prefix, "");
    assert_true(got.revoked_at == UQ_DB_NULL_TIME);
    assert_true(got.last_used_at == UQ_DB_NULL_TIME);

    assert_int_equal(uq_db_api_key_revoke(db, got.id, T0 + 9, &at), UQ_DB_OK);
    assert_true(at == T0 + 9);
    assert_int_equal(uq_db_api_key_revoke(db, got.id, T0 + 20, &at), UQ_DB_OK);
    assert_true(at == T0 + 9);
    assert_int_equal(uq_db_api_key_revoke(db, 987654321, T0, &at),
                     UQ_DB_NOTFOUND);

    /* Again: no new row, and the revocation stays. */
    assert_int_equal(uq_db_api_key_import(db, k, 2, &failed), UQ_DB_OK);
    assert_int_equal(uq_db_api_key_lookup_hash(db, k[0].hash_hex, &got),
                     UQ_DB_OK);
    assert_true(got.revoked_at == T0 + 9);

    /* A new id with a stored hash, after a fine new row: neither goes in. */
    snprintf(k[0].origin_id, sizeof(k[0].origin_id), "imp-new");
    memset(k[0].hash_hex, 'd', UQ_DB_HASH_HEX_LEN);
    snprintf(k[1].origin_id, sizeof(k[1].origin_id), "imp-other");
    assert_int_equal(uq_db_api_key_import(db, k, 2, &failed),
                     UQ_DB_ECONSTRAINT);
    assert_int_equal(failed, 1);
    assert_int_equal(uq_db_api_key_lookup_hash(db, k[0].hash_hex, &got),
                     UQ_DB_NOTFOUND);

    assert_int_equal(uq_db_api_key_list(db, &rows, &n), UQ_DB_OK);
    size_t imported = 0;
    for (size_t i = 0; i < n; i++) {
        imported += strncmp(rows[i].origin_id, "imp-", 4) == 0;
    }
    assert_int_equal(imported, 2);
    free(rows);
}

static void api_keys_import_and_revoke(void **state)
{
    (void)state;
    each_backend(api_keys_import_and_revoke_on);
}

/* ---- ping and the write probe -------------------------------------------- */

/*
 * The readiness probe's write really reaches the database: one row, its
 * time the clock's at the call; a probe within max_age_ms answers from the
 * cache and writes nothing, a probe past it writes again.
 */
static void write_probe_reaches_the_database_on(uq_db_t *db, const char *name)
{
    const char *sql = "SELECT probed_at FROM service_probe WHERE id = 1";
    int64_t lo, hi, at;

    assert_int_equal(uq_db_ping(db), UQ_DB_OK);
    /* Nothing probed the shared handle yet: the cache says writable. */
    assert_int_equal(uq_db_write_probe_cached(db), UQ_DB_OK);
    lo = wall_us();
    assert_int_equal(uq_db_write_probe(db, 0), UQ_DB_OK);
    hi = wall_us();
    assert_int_equal(count_in(name, "SELECT count(*) FROM service_probe"), 1);
    at = count_in(name, sql);
    assert_true(at >= lo && at <= hi);

    assert_int_equal(uq_db_write_probe(db, 60000), UQ_DB_OK);
    assert_true(count_in(name, sql) == at);
    assert_int_equal(uq_db_write_probe_cached(db), UQ_DB_OK);

    lo = wall_us();
    assert_int_equal(uq_db_write_probe(db, 0), UQ_DB_OK);
    hi = wall_us();
    at = count_in(name, sql);
    assert_true(at >= lo && at <= hi);
    assert_int_equal(count_in(name, "SELECT count(*) FROM service_probe"), 1);
}

static void write_probe_reaches_the_database(void **state)
{
    (void)state;
    each_backend(write_probe_reaches_the_database_on);
}

/* ---- cache invalidation log ---------------------------------------------- */

/* A fresh job id for each call, so that cases never collide. */
static void next_job_id(char *buf, size_t cap)
{
    static int seq;
    snprintf(buf, cap, "4d1e6b6c-5a1e-4c3e-9d7a-%012d", ++seq);
}

/*
 * One kind of write carrying records: returns the write's status and sets
 * *at to the created_at its records must have (UQ_DB_NULL_TIME: the clock
 * at the time of the call).
 */
typedef int (*inval_write_fn)(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                              int64_t *ids, int64_t *at);

static int w_feedback(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                      int64_t *ids, int64_t *at)
{
    uq_db_feedback_write_t w =
        fb_write(UQ_DB_FB_RATING, "ins-inv-write", "dora", T0 + 11);
    uq_db_feedback_t row;
    w.rating = 4;
    *at = w.now;
    return uq_db_feedback_upsert(db, &w, &row, inv, n, ids);
}

static int w_job_create(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                        int64_t *ids, int64_t *at)
{
    uq_db_job_t j = make_job("", "inv", T0);
    next_job_id(j.id, sizeof(j.id));
    *at = UQ_DB_NULL_TIME;
    return uq_db_job_create(db, &j, inv, n, ids);
}

static int w_job_progress(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                          int64_t *ids, int64_t *at)
{
    uq_db_job_t j = make_job("", "inv", T0);
    uq_db_job_progress_t p;
    uq_db_job_t got;
    int st;

    next_job_id(j.id, sizeof(j.id));
    st = uq_db_job_create(db, &j, NULL, 0, NULL);
    if (st != UQ_DB_OK) {
        return st;
    }
    memset(&p, 0, sizeof(p));
    p.current_block = 120;
    p.progress_percentage = 20;
    p.estimated_completion = UQ_DB_NULL_TIME;
    p.now = T0 + 22;
    *at = p.now;
    return uq_db_job_progress(db, j.id, &p, &got, inv, n, ids);
}

static int w_metrics(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                     int64_t *ids, int64_t *at)
{
    uq_db_metric_new_t in[2] = {metric("svc-inv", "a", 1, T0, NULL),
                                metric("svc-inv", "b", 2, T0, NULL)};
    uq_db_metric_t out[2];
    int st = uq_db_metrics_insert(db, in, 2, out, inv, n, ids);
    if (st == UQ_DB_OK) {
        uq_db_metrics_free(out, 2, 0);
    }
    *at = UQ_DB_NULL_TIME;
    return st;
}

static int w_retention(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                       int64_t *ids, int64_t *at)
{
    /* Cut-offs before anything the tests write: nothing goes, and the
     * records are still written. */
    uq_db_retention_cutoffs_t c = {1, 1, 1};
    uq_db_retention_t r;
    int st = uq_db_retention_run(db, &c, &r, inv, n, ids);
    if (st == UQ_DB_OK) {
        uq_db_retention_release(&r);
    }
    *at = UQ_DB_NULL_TIME;
    return st;
}

static int w_append(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                    int64_t *ids, int64_t *at)
{
    *at = T0 + 33;
    return uq_db_inval_append(db, inv, n, *at, ids);
}

static const struct {
    const char *name;
    inval_write_fn fn;
} g_inval_writes[] = {
    {"feedback upsert", w_feedback},  {"job create", w_job_create},
    {"job progress", w_job_progress}, {"metrics insert", w_metrics},
    {"retention", w_retention},       {"append", w_append},
};

#define NWRITES (sizeof(g_inval_writes) / sizeof(g_inval_writes[0]))

static void check_row(const uq_db_inval_row_t *r, int64_t id,
                      const uq_db_inval_t *want, int64_t at, int64_t lo,
                      int64_t hi)
{
    assert_true(r->id == id);
    assert_string_equal(r->keyspace, want->keyspace);
    assert_string_equal(r->target, want->target);
    if (at != UQ_DB_NULL_TIME) {
        assert_true(r->created_at == at);
    } else {
        assert_true(r->created_at >= lo && r->created_at <= hi);
    }
}

static void records_ride_with_writes_on(uq_db_t *db, const char *name)
{
    /* Targets as the library writes them: keys, globs, and the characters
     * that SQL, LIKE and array literals treat specially. */
    const uq_db_inval_t inv[2] = {
        {"feedback", "insight:{ins-inv-write}:*"},
        {"stats", "50%_off \"quoted\" back\\slash, {x}; DROP TABLE y; --"},
    };
    uq_db_inval_row_t *rows = calloc(ROWS_CAP, sizeof(*rows));
    int64_t all_ids[2 * NWRITES];
    int64_t at[NWRITES], lo[NWRITES], hi[NWRITES];
    int64_t last = last_id(db);
    size_t n = 0;

    assert_non_null(rows);
    for (size_t k = 0; k < NWRITES; k++) {
        int64_t ids[2] = {-7, -7};
        lo[k] = wall_us();
        int st = g_inval_writes[k].fn(db, inv, 2, ids, &at[k]);
        hi[k] = wall_us();
        if (st != UQ_DB_OK) {
            fail_msg("%s: %s: %s", name, g_inval_writes[k].name,
                     uq_db_strerror(st));
        }
        assert_true(ids[0] > last && ids[1] > ids[0]);
        /* The tail sees exactly this write's records, in order. */
        assert_int_equal(uq_db_inval_after(db, last, rows, ROWS_CAP, &n),
                         UQ_DB_OK);
        assert_int_equal(n, 2);
        for (int i = 0; i < 2; i++) {
            check_row(&rows[i], ids[i], &inv[i], at[k], lo[k], hi[k]);
            assert_false(rows[i].applied);
        }
        all_ids[2 * k] = ids[0];
        all_ids[2 * k + 1] = ids[1];
        last = ids[1];
    }
    assert_true(last_id(db) == last);

    /* All of them pending, oldest first; cap bounds both reads. */
    assert_int_equal(uq_db_inval_pending(db, rows, ROWS_CAP, &n), UQ_DB_OK);
    assert_int_equal(n, 2 * NWRITES);
    for (size_t i = 0; i < n; i++) {
        check_row(&rows[i], all_ids[i], &inv[i % 2], at[i / 2], lo[i / 2],
                  hi[i / 2]);
    }
    assert_int_equal(uq_db_inval_pending(db, rows, 3, &n), UQ_DB_OK);
    assert_int_equal(n, 3);
    assert_true(rows[2].id == all_ids[2]);
    assert_int_equal(uq_db_inval_after(db, all_ids[0], rows, 2, &n), UQ_DB_OK);
    assert_int_equal(n, 2);
    assert_true(rows[0].id == all_ids[1] && rows[1].id == all_ids[2]);
    n = 99;
    assert_int_equal(uq_db_inval_after(db, 0, rows, 0, &n), UQ_DB_OK);
    assert_int_equal(n, 0);

    /* Without records a write adds nothing. */
    int64_t unused;
    assert_int_equal(w_feedback(db, NULL, 0, NULL, &unused), UQ_DB_OK);
    assert_true(last_id(db) == last);
    free(rows);
}

static void inval_records_ride_with_writes(void **state)
{
    (void)state;
    each_backend(records_ride_with_writes_on);
}

/* ---- writes that fail leave no record ------------------------------------ */

static char g_long_target[UQ_DB_INVAL_TARGET_MAX + 1];

static int f_rating(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                    int64_t *ids)
{
    uq_db_feedback_write_t w =
        fb_write(UQ_DB_FB_RATING, "ins-inv-fail", "erin", T0);
    uq_db_feedback_t row;
    w.rating = 6;
    return uq_db_feedback_upsert(db, &w, &row, inv, n, ids);
}

static int f_job_taken(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                       int64_t *ids)
{
    uq_db_job_t j = make_job("", "inv", T0);
    next_job_id(j.id, sizeof(j.id));
    if (uq_db_job_create(db, &j, NULL, 0, NULL) != UQ_DB_OK) {
        return -100;
    }
    return uq_db_job_create(db, &j, inv, n, ids);
}

static int f_progress_unknown(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                              int64_t *ids)
{
    uq_db_job_progress_t p;
    uq_db_job_t got;
    char id[UQ_DB_UUID_LEN + 1];

    next_job_id(id, sizeof(id));
    memset(&p, 0, sizeof(p));
    p.estimated_completion = UQ_DB_NULL_TIME;
    p.now = T0;
    return uq_db_job_progress(db, id, &p, &got, inv, n, ids);
}

static int f_metrics_bad(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                         int64_t *ids)
{
    uq_db_metric_new_t in[2] = {metric("svc-inv-fail", "a", 1, T0, NULL),
                                metric("svc-inv-fail", "a", 1, T0, "{no")};
    uq_db_metric_t out[2];
    return uq_db_metrics_insert(db, in, 2, out, inv, n, ids);
}

/*
 * The cases below call the method table past the wrappers' checks, so that
 * the database's CHECK refuses the record itself: the write it rode with
 * must be rolled back.
 */
static int f_record_refused_upsert(uq_db_t *db, const uq_db_inval_t *inv,
                                   size_t n, int64_t *ids)
{
    uq_db_feedback_write_t w =
        fb_write(UQ_DB_FB_RATING, "ins-inv-refused", "finn", T0);
    uq_db_feedback_t row;
    uq_db_inval_t bad[2] = {inv[0], {"feedback", g_long_target}};
    (void)n;
    w.rating = 3;
    return db->methods->feedback_upsert(db, &w, &row, bad, 2, ids);
}

static int f_record_refused_metrics(uq_db_t *db, const uq_db_inval_t *inv,
                                    size_t n, int64_t *ids)
{
    uq_db_metric_new_t in[1] = {metric("svc-inv-refused", "a", 1, T0, NULL)};
    uq_db_metric_t out[1];
    uq_db_inval_t bad[2] = {inv[0], {"feedback", g_long_target}};
    (void)n;
    return db->methods->metrics_insert(db, in, 1, out, bad, 2, ids);
}

static int f_record_refused_retention(uq_db_t *db, const uq_db_inval_t *inv,
                                      size_t n, int64_t *ids)
{
    /* A job old enough to go, then a retention run whose record fails:
     * the job must still be there afterwards. */
    uq_db_job_t j = make_job("", "inv-ret", 1000);
    uq_db_retention_cutoffs_t c = {2000, 1, 1};
    uq_db_retention_t r;
    uq_db_inval_t bad[2] = {inv[0], {"jobs", g_long_target}};
    (void)n;
    next_job_id(j.id, sizeof(j.id));
    if (uq_db_job_create(db, &j, NULL, 0, NULL) != UQ_DB_OK) {
        return -100;
    }
    return db->methods->retention_run(db, &c, &r, bad, 2, ids);
}

/* Not a status: the backend's own answer to metadata that is not JSON. */
#define BAD_JSON 100

typedef int (*inval_fail_fn)(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                             int64_t *ids);

static const struct {
    const char *name;
    inval_fail_fn fn;
    int want; /* a status, or BAD_JSON (the backends differ in the class) */
} g_inval_failures[] = {
    {"rating out of range", f_rating, UQ_DB_ECONSTRAINT},
    {"job id taken", f_job_taken, UQ_DB_ECONSTRAINT},
    {"progress of an unknown job", f_progress_unknown, UQ_DB_NOTFOUND},
    {"metrics batch with bad metadata", f_metrics_bad, BAD_JSON},
    {"record refused beside an upsert", f_record_refused_upsert,
     UQ_DB_ECONSTRAINT},
    {"record refused beside metrics", f_record_refused_metrics,
     UQ_DB_ECONSTRAINT},
    {"record refused beside retention", f_record_refused_retention,
     UQ_DB_ECONSTRAINT},
};

static void failed_writes_leave_nothing_on(uq_db_t *db, const char *name)
{
    const uq_db_inval_t inv[1] = {{"feedback", "insight:ins-inv-fail"}};
    uq_db_feedback_stats_t s;
    uq_db_metric_filter_t f;
    uq_db_metric_t *mrows = NULL;
    size_t mn = 0;
    int64_t before = last_id(db);

    memset(g_long_target, 'x', UQ_DB_INVAL_TARGET_MAX);
    g_long_target[UQ_DB_INVAL_TARGET_MAX] = '\0';
    for (size_t k = 0;
         k < sizeof(g_inval_failures) / sizeof(g_inval_failures[0]); k++) {
        int64_t ids[2] = {-7, -7};
        int st = g_inval_failures[k].fn(db, inv, 1, ids);
        int want = g_inval_failures[k].want;
        if (want == BAD_JSON) {
            want = bad_json_status(name);
        }
        if (st != want) {
            fail_msg("%s: %s: got %d (%s)", name, g_inval_failures[k].name, st,
                     uq_db_strerror(st));
        }
        /* No record, and the ids are untouched. */
        assert_true(ids[0] == -7 && ids[1] == -7);
        assert_int_equal(count_pending(db), 0);
    }
    /* The writes themselves were undone with their records. */
    assert_int_equal(uq_db_feedback_stats(db, "ins-inv-refused", &s), UQ_DB_OK);
    assert_int_equal(s.total_ratings, 0);
    memset(&f, 0, sizeof(f));
    f.service_name = "svc-inv-refused";
    f.start = UQ_DB_NULL_TIME;
    f.end = UQ_DB_NULL_TIME;
    assert_int_equal(uq_db_metrics_list(db, &f, 10, 0, &mrows, &mn), UQ_DB_OK);
    assert_int_equal(mn, 0);
    uq_db_metrics_free(mrows, mn, 1);
    uq_db_job_t *jrows = NULL;
    size_t jn = 0;
    int64_t jtotal = 0;
    assert_int_equal(
        uq_db_job_list(db, NULL, "inv-ret", 10, 0, &jrows, &jn, &jtotal),
        UQ_DB_OK);
    assert_int_equal(jtotal, 1);
    free(jrows);
    /* PostgreSQL may have spent ids on rolled-back rows; none is visible. */
    assert_true(last_id(db) == before);
    assert_int_equal(uq_db_ping(db), UQ_DB_OK);
}

static void inval_failed_writes_leave_nothing(void **state)
{
    (void)state;
    each_backend(failed_writes_leave_nothing_on);
}

/* ---- refusals ------------------------------------------------------------ */

static void refusals_on(uq_db_t *db, const char *name)
{
    static char ks32[UQ_DB_INVAL_KEYSPACE_MAX + 1];
    static char ks31[UQ_DB_INVAL_KEYSPACE_MAX];
    static char tg1024[UQ_DB_INVAL_TARGET_MAX];
    static uq_db_inval_t many[UQ_DB_INVAL_BATCH_MAX + 1];
    uq_db_inval_row_t *rows = calloc(4, sizeof(*rows));
    const struct {
        const char *keyspace;
        const char *target;
        size_t n;
    } bad[] = {
        {ks32, "k", 1},                 /* keyspace one byte too long */
        {"", "k", 1},                   /* empty keyspace */
        {NULL, "k", 1},                 /* no keyspace */
        {"feedback", NULL, 1},          /* no target */
        {"feedback", "", 1},            /* empty target */
        {"feedback", g_long_target, 1}, /* target one byte too long */
        {"feedback", "line\nbreak", 1}, /* not printable */
        {"feedback", "caf\xc3\xa9", 1}, /* not ASCII */
        {"feedback", "k", UQ_DB_INVAL_BATCH_MAX + 1}, /* too many */
    };
    int64_t before = last_id(db);
    size_t n = 0;

    assert_non_null(rows);
    memset(ks32, 'k', UQ_DB_INVAL_KEYSPACE_MAX);
    memset(ks31, 'k', UQ_DB_INVAL_KEYSPACE_MAX - 1);
    memset(tg1024, '*', UQ_DB_INVAL_TARGET_MAX - 1);
    memset(g_long_target, 'x', UQ_DB_INVAL_TARGET_MAX);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ids[1] = {-7};
        int64_t at;
        for (size_t k = 0; k < bad[i].n; k++) {
            many[k].keyspace = k == 0 ? bad[i].keyspace : "feedback";
            many[k].target = k == 0 ? bad[i].target : "k";
        }
        if (uq_db_inval_append(db, many, bad[i].n, T0, ids) != UQ_DB_EINVAL ||
            w_feedback(db, many, bad[i].n, ids, &at) != UQ_DB_EINVAL) {
            fail_msg("%s: bad record %zu was not refused", name, i);
        }
        assert_true(ids[0] == -7);
    }
    assert_int_equal(uq_db_inval_append(db, NULL, 1, T0, NULL), UQ_DB_EINVAL);
    assert_true(last_id(db) == before);
    assert_int_equal(count_pending(db), 0);

    /* The limits themselves are fine, and come back byte for byte. */
    many[0].keyspace = ks31;
    many[0].target = tg1024;
    int64_t id = 0;
    assert_int_equal(uq_db_inval_append(db, many, 1, T0, &id), UQ_DB_OK);
    assert_int_equal(uq_db_inval_after(db, before, rows, 4, &n), UQ_DB_OK);
    assert_int_equal(n, 1);
    assert_true(rows[0].id == id);
    assert_string_equal(rows[0].keyspace, ks31);
    assert_string_equal(rows[0].target, tg1024);
    free(rows);
}

static void inval_refuses_bad_records(void **state)
{
    (void)state;
    each_backend(refusals_on);
}

/* ---- applying and pruning ------------------------------------------------ */

static void append_n(uq_db_t *db, size_t n, int64_t at, int64_t *ids)
{
    static uq_db_inval_t batch[UQ_DB_INVAL_BATCH_MAX];

    for (size_t i = 0; i < UQ_DB_INVAL_BATCH_MAX; i++) {
        batch[i].keyspace = "metrics";
        batch[i].target = "series:*";
    }
    for (size_t off = 0; off < n; off += UQ_DB_INVAL_BATCH_MAX) {
        size_t k =
            n - off < UQ_DB_INVAL_BATCH_MAX ? n - off : UQ_DB_INVAL_BATCH_MAX;
        assert_int_equal(uq_db_inval_append(db, batch, k, at, ids + off),
                         UQ_DB_OK);
    }
}

static void mark_applied_on(uq_db_t *db, const char *name)
{
    uq_db_inval_row_t *rows = calloc(8, sizeof(*rows));
    int64_t ids[4];
    int64_t removed = -1;
    size_t n = 0;

    (void)name;
    assert_non_null(rows);
    append_n(db, 4, T0, ids);
    /* Two applied at t=100, plus an unknown id that is ignored. */
    int64_t first[3] = {ids[0], ids[2], ids[3] + 1000000};
    assert_int_equal(uq_db_inval_mark_applied(db, first, 3, 100), UQ_DB_OK);
    assert_int_equal(uq_db_inval_pending(db, rows, 8, &n), UQ_DB_OK);
    assert_int_equal(n, 2);
    assert_true(rows[0].id == ids[1] && rows[1].id == ids[3]);
    assert_int_equal(uq_db_inval_after(db, 0, rows, 8, &n), UQ_DB_OK);
    assert_int_equal(n, 4);
    assert_true(rows[0].applied && !rows[1].applied && rows[2].applied &&
                !rows[3].applied);

    /* Again, later: nothing changes, not even applied_at (pruning before
     * t=200 still finds both). */
    assert_int_equal(uq_db_inval_mark_applied(db, first, 3, 500), UQ_DB_OK);
    assert_int_equal(uq_db_inval_mark_applied(db, NULL, 0, 500), UQ_DB_OK);
    assert_int_equal(count_pending(db), 2);
    assert_int_equal(uq_db_inval_prune(db, 200, &removed), UQ_DB_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(count_pending(db), 2);
    free(rows);
}

static void inval_mark_applied_is_idempotent(void **state)
{
    (void)state;
    each_backend(mark_applied_on);
}

#define PRUNE_ROWS (UQ_DB_INVAL_PRUNE_MAX + 5)

static void prune_on(uq_db_t *db, const char *name)
{
    int64_t *ids = calloc(PRUNE_ROWS, sizeof(*ids));
    int64_t pending[3], old[2], recent[2];
    int64_t removed = -1;

    (void)name;
    assert_non_null(ids);
    append_n(db, 3, T0, pending);
    append_n(db, 2, T0, old);
    append_n(db, 2, T0, recent);
    assert_int_equal(uq_db_inval_mark_applied(db, old, 2, 1000), UQ_DB_OK);
    assert_int_equal(uq_db_inval_mark_applied(db, recent, 2, 3000), UQ_DB_OK);

    /* Only applied ones older than the cut-off go; pending ones never. */
    assert_int_equal(uq_db_inval_prune(db, 1000, &removed), UQ_DB_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(uq_db_inval_prune(db, 2000, &removed), UQ_DB_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(uq_db_inval_prune(db, 2000, NULL), UQ_DB_OK);
    assert_int_equal(uq_db_inval_prune(db, INT64_MAX, &removed), UQ_DB_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(count_pending(db), 3);

    /* Bounded: a backlog larger than one call's share takes two calls. */
    append_n(db, PRUNE_ROWS, T0, ids);
    assert_int_equal(uq_db_inval_mark_applied(db, ids, PRUNE_ROWS, 5000),
                     UQ_DB_OK);
    assert_int_equal(uq_db_inval_prune(db, INT64_MAX, &removed), UQ_DB_OK);
    assert_int_equal(removed, UQ_DB_INVAL_PRUNE_MAX);
    assert_int_equal(uq_db_inval_prune(db, INT64_MAX, &removed), UQ_DB_OK);
    assert_int_equal(removed, PRUNE_ROWS - UQ_DB_INVAL_PRUNE_MAX);
    assert_int_equal(uq_db_inval_prune(db, INT64_MAX, &removed), UQ_DB_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(count_pending(db), 3);
    free(ids);
}

static void inval_prune_is_bounded(void **state)
{
    (void)state;
    each_backend(prune_on);
}

static void last_id_on(uq_db_t *db, const char *name)
{
    const uq_db_inval_t inv[1] = {{"jobs", "job:*"}};
    int64_t id = 0, seen;

    (void)name;
    assert_int_equal(uq_db_inval_append(db, inv, 1, T0, &id), UQ_DB_OK);
    assert_true(last_id(db) == id);
    seen = id;
    /* Emptied, the log reports 0, and still never hands out an old id. */
    reset_log(db);
    assert_true(last_id(db) == 0);
    assert_int_equal(uq_db_inval_append(db, inv, 1, T0, &id), UQ_DB_OK);
    assert_true(id > seen);
    assert_true(last_id(db) == id);
}

static void inval_last_id_and_no_reuse(void **state)
{
    (void)state;
    each_backend(last_id_on);
}

/* ---- concurrent writers -------------------------------------------------- */

#define INV_THREADS 4
#define INV_WRITES 40

typedef struct {
    uq_db_t *db;
    pthread_barrier_t *start;
    int idx;
    int failures;
    int64_t ids[INV_WRITES];
    char targets[INV_WRITES][48];
} inv_writer_t;

/* No assertions here: results are collected and checked by the main
 * thread. */
static void *inv_writer(void *p)
{
    inv_writer_t *a = p;
    char user[32];

    snprintf(user, sizeof(user), "writer-%d", a->idx);
    pthread_barrier_wait(a->start);
    for (int k = 0; k < INV_WRITES; k++) {
        uq_db_feedback_write_t w;
        uq_db_feedback_t row;
        uq_db_inval_t inv;
        snprintf(a->targets[k], sizeof(a->targets[k]), "t%d:k%d", a->idx, k);
        inv.keyspace = "feedback";
        inv.target = a->targets[k];
        w = fb_write(UQ_DB_FB_RATING, "ins-inv-race", user, T0 + k);
        w.rating = 1 + k % 5;
        a->ids[k] = -1;
        if (uq_db_feedback_upsert(a->db, &w, &row, &inv, 1, &a->ids[k]) !=
            UQ_DB_OK) {
            a->failures++;
        }
    }
    return NULL;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

static void concurrent_on(uq_db_t *db, const char *name)
{
    static inv_writer_t args[INV_THREADS];
    pthread_t th[INV_THREADS];
    pthread_barrier_t start;
    int64_t all[INV_THREADS * INV_WRITES];
    uq_db_inval_row_t *rows =
        calloc(INV_THREADS * INV_WRITES + 1, sizeof(*rows));
    int64_t before = last_id(db);
    size_t n = 0;

    assert_non_null(rows);
    pthread_barrier_init(&start, NULL, INV_THREADS);
    for (int i = 0; i < INV_THREADS; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        args[i].db = db;
        args[i].start = &start;
        args[i].idx = i;
        assert_int_equal(pthread_create(&th[i], NULL, inv_writer, &args[i]), 0);
    }
    for (int i = 0; i < INV_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&start);
    for (int i = 0; i < INV_THREADS; i++) {
        if (args[i].failures != 0) {
            fail_msg("%s: writer %d: %d writes failed", name, i,
                     args[i].failures);
        }
        memcpy(all + i * INV_WRITES, args[i].ids, sizeof(args[i].ids));
    }
    /* Distinct ids, all above where the log stood. */
    qsort(all, INV_THREADS * INV_WRITES, sizeof(all[0]), cmp_i64);
    assert_true(all[0] > before);
    for (int i = 1; i < INV_THREADS * INV_WRITES; i++) {
        assert_true(all[i] > all[i - 1]);
    }
    /* None lost: the log holds exactly those, each with its own target. */
    assert_int_equal(
        uq_db_inval_after(db, before, rows, INV_THREADS * INV_WRITES + 1, &n),
        UQ_DB_OK);
    assert_int_equal(n, INV_THREADS * INV_WRITES);
    for (size_t r = 0; r < n; r++) {
        int found = 0;
        assert_true(rows[r].id == all[r]);
        for (int i = 0; i < INV_THREADS && !found; i++) {
            for (int k = 0; k < INV_WRITES && !found; k++) {
                found = args[i].ids[k] == rows[r].id &&
                        strcmp(args[i].targets[k], rows[r].target) == 0;
            }
        }
        assert_true(found);
    }
    free(rows);
}

static void inval_concurrent_writers(void **state)
{
    (void)state;
    each_backend(concurrent_on);
}

/* ---- cost of a record ---------------------------------------------------- */

#define FIG_WRITES 2000
#define FIG_ROUNDS 4

/*
 * The rate endpoint's write with and without one record, interleaved in
 * rounds so that drift (cache warmth, WAL growth) falls on both alike.
 * Prints FIGURE lines; asserts only that the writes succeed.
 */
static void figures_on(uq_db_t *db, const char *name)
{
    double secs[2] = {0, 0};
    char insight[32], user[32], target[64];

    for (int round = 0; round < FIG_ROUNDS; round++) {
        for (int with = 0; with < 2; with++) {
            int64_t t0 = wall_us();
            for (int i = 0; i < FIG_WRITES / FIG_ROUNDS; i++) {
                uq_db_feedback_write_t w;
                uq_db_feedback_t row;
                uq_db_inval_t inv;
                int64_t id;
                snprintf(insight, sizeof(insight), "ins-fig-%d", i % 50);
                snprintf(user, sizeof(user), "fig-%d-%d-%d", with, round, i);
                snprintf(target, sizeof(target), "insight:%s:*", insight);
                inv.keyspace = "feedback";
                inv.target = target;
                w = fb_write(UQ_DB_FB_RATING, insight, user, T0 + i);
                w.rating = 1 + i % 5;
                assert_int_equal(uq_db_feedback_upsert(db, &w, &row, &inv,
                                                       with ? 1 : 0, &id),
                                 UQ_DB_OK);
            }
            secs[with] += (double)(wall_us() - t0) / 1e6;
        }
    }
    printf("FIGURE inval_upsert_%s_plain_per_s %.0f\n", name,
           FIG_WRITES / secs[0]);
    printf("FIGURE inval_upsert_%s_with_record_per_s %.0f\n", name,
           FIG_WRITES / secs[1]);
    printf("FIGURE inval_upsert_%s_ratio %.2f\n", name, secs[0] / secs[1]);
}

static void inval_write_cost_figures(void **state)
{
    (void)state;
    each_backend(figures_on);
}

/* ---- opening and configuration ------------------------------------------- */

/* PostgreSQL only: a SQLite URL holds no password, and only a server
 * refuses one. */
static void open_errors_hide_the_password(void **state)
{
    char url[512], err[512];
    uq_db_t *db = NULL;
    int rc;

    (void)state;
    need_pg();
    snprintf(url, sizeof(url), "postgresql://%s:Wr0ngSecret@127.0.0.1:%d/%s",
             g_pg.user, g_pg.port, g_pg.dbname);
    rc = open_db(url, 2, 2000, &db, err, sizeof(err));
    assert_int_equal(rc, UQ_DB_EUNAVAILABLE);
    assert_null(db);
    assert_non_null(strstr(err, "password authentication failed"));
    assert_null(strstr(err, "Wr0ngSecret"));
    assert_non_null(strstr(err, "***"));

    snprintf(url, sizeof(url),
             "postgresql://%s:Wr0ngSecret@127.0.0.1:notaport/%s", g_pg.user,
             g_pg.dbname);
    rc = open_db(url, 2, 2000, &db, err, sizeof(err));
    assert_int_equal(rc, UQ_DB_ECONFIG);
    assert_null(strstr(err, "Wr0ngSecret"));

    /* Nothing listens there: refused at once, reported as unavailable. */
    snprintf(url, sizeof(url), "postgresql://u:Wr0ngSecret@127.0.0.1:%d/db",
             uc_test_free_port());
    rc = open_db(url, 2, 2000, &db, err, sizeof(err));
    assert_int_equal(rc, UQ_DB_EUNAVAILABLE);
    assert_null(strstr(err, "Wr0ngSecret"));
    assert_false(log_contains("Wr0ngSecret"));
}

/*
 * The environment names each backend's database as the existing service's
 * did: PostgreSQL by DB_HOST and the other DB_* variables, SQLite by
 * DATABASE_URL (which wins over DB_*) or, when nothing is set, by the
 * fallback. The handle opened from it reaches the very database the shared
 * handle uses: a record appended through one is the other's newest.
 */
static void open_from_db_env_on(uq_db_t *db, const char *name)
{
    static const char *const vars[] = {"DATABASE_URL", "DB_HOST",
                                       "DB_PORT",      "DB_USER",
                                       "DB_PASSWORD",  "DB_NAME"};
    const uq_db_inval_t inv[1] = {{"jobs", "env:*"}};
    char url[512], port[16], err[512];
    uq_db_t *env_db = NULL;
    int64_t id = 0, seen = -1;

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        unsetenv(vars[i]);
    }
    if (is_pg(name)) {
        snprintf(port, sizeof(port), "%d", g_pg.port);
        setenv("DB_HOST", "127.0.0.1", 1);
        setenv("DB_PORT", port, 1);
        setenv("DB_USER", g_pg.user, 1);
        setenv("DB_PASSWORD", g_pg.password, 1);
        setenv("DB_NAME", g_pg.dbname, 1);
        assert_int_equal(uq_db_url_from_env(url, sizeof(url), "sqlite:x.db"),
                         UQ_DB_OK);
    } else {
        assert_int_equal(uq_db_url_from_env(url, sizeof(url), g_sq_url),
                         UQ_DB_OK);
        assert_string_equal(url, g_sq_url);
        setenv("DATABASE_URL", g_sq_url, 1);
        setenv("DB_HOST", "127.0.0.1", 1);
        assert_int_equal(uq_db_url_from_env(url, sizeof(url), "sqlite:x.db"),
                         UQ_DB_OK);
        assert_string_equal(url, g_sq_url);
    }
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        unsetenv(vars[i]);
    }
    assert_int_equal(open_db(url, 1, 2000, &env_db, err, sizeof(err)),
                     UQ_DB_OK);
    assert_string_equal(uq_db_backend_name(env_db), name);
    assert_int_equal(uq_db_ping(env_db), UQ_DB_OK);
    assert_int_equal(uq_db_inval_append(db, inv, 1, T0, &id), UQ_DB_OK);
    assert_int_equal(uq_db_inval_last_id(env_db, &seen), UQ_DB_OK);
    assert_true(seen == id);
    uq_db_close(env_db);
}

static void open_from_db_env(void **state)
{
    (void)state;
    each_backend(open_from_db_env_on);
}

/* ---- outages: PostgreSQL only -------------------------------------------- */

/*
 * A server that freezes, goes away and comes back, and the pool across it:
 * SQLite is a file in the process, with no server to lose. These tests use
 * the shared server itself, so they run last.
 */

static void frozen_server_times_out_then_recovers(void **state)
{
    char err[512];
    uq_db_t *db = NULL;
    uq_db_feedback_stats_t s;

    (void)state;
    need_pg();
    assert_int_equal(open_db(g_pg.url, 2, 300, &db, err, sizeof(err)),
                     UQ_DB_OK);
    for (int i = 0; i < 4; i++) {
        char user[16];
        snprintf(user, sizeof(user), "frozen%d", i);
        put(db, "ins-frozen", user, 1 + i, NULL, NULL, T0);
    }
    assert_int_equal(uq_db_ping(db), UQ_DB_OK);
    assert_true(uc_test_pg_signal(&g_pg, SIGSTOP) > 0);
    /* The pooled connection gets no reply: the client deadline answers.
     * A new connection gets no startup reply: the connect deadline does. */
    assert_int_equal(uq_db_feedback_stats(db, "ins-frozen", &s),
                     UQ_DB_EUNAVAILABLE);
    assert_int_equal(uq_db_ping(db), UQ_DB_EUNAVAILABLE);
    assert_true(uc_test_pg_signal(&g_pg, SIGCONT) > 0);
    /* The timed-out connections were thrown away: a late reply cannot
     * answer this call. */
    assert_int_equal(uq_db_feedback_stats(db, "ins-frozen", &s), UQ_DB_OK);
    assert_int_equal(s.total_ratings, 4);
    assert_true(log_contains("no reply within") || log_contains("timed out"));
    uq_db_close(db);
}

static void *stats_thread(void *p)
{
    int *failures = p;
    uq_db_feedback_stats_t s;
    for (int i = 0; i < 30; i++) {
        if (uq_db_feedback_stats(g_db, "ins-outage", &s) != UQ_DB_OK) {
            (*failures)++;
        }
    }
    return NULL;
}

/* Runs a burst of parallel reads so that the pool holds several idle
 * connections afterwards; returns how many the server sees. */
static int warm_pool(void)
{
    pthread_t th[4];
    int failures[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(
            pthread_create(&th[i], NULL, stats_thread, &failures[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(failures[i], 0);
    }
    return psql_int("SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = 'utxoiq-api'"
                    " AND datname = current_database()");
}

/* Last in the group: it takes the shared server down and up again. */
static void database_down_then_back(void **state)
{
    uq_db_feedback_stats_t s;
    uq_db_feedback_write_t w;
    uq_db_feedback_t row;
    uq_db_job_t got;
    int port = g_pg.port;

    (void)state;
    need_pg();
    /* Fill the pool with live connections first. */
    assert_int_equal(uq_db_feedback_stats(g_db, "ins-outage", &s), UQ_DB_OK);
    w = fb_write(UQ_DB_FB_RATING, "ins-outage", "carol", T0);
    w.rating = 2;
    assert_int_equal(uq_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UQ_DB_OK);

    uq_db_figures_t f0, f1;
    uq_db_figures(g_db, &f0);
    assert_int_equal(uc_test_pg_down(&g_pg), 0);
    assert_int_equal(uq_db_ping(g_db), UQ_DB_EUNAVAILABLE);
    assert_int_equal(uq_db_feedback_stats(g_db, "ins-outage", &s),
                     UQ_DB_EUNAVAILABLE);
    assert_int_equal(uq_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UQ_DB_EUNAVAILABLE);
    assert_int_equal(
        uq_db_job_get(g_db, "0b0e6b6c-5a1e-4c3e-9d7a-000000000001", &got),
        UQ_DB_EUNAVAILABLE);
    assert_true(log_contains("connect '"));
    assert_true(log_contains(":***@127.0.0.1"));
    /* The pool's figures tell the outage: the connections to the stopped
     * server were dropped, the new ones failed, and none is left lent. */
    uq_db_figures(g_db, &f1);
    assert_true(f1.connect_failures >= f0.connect_failures + 3);
    assert_true(f1.dropped > f0.dropped);
    assert_int_equal(f1.checked_out, 0);
    assert_int_equal(f1.open, f1.idle);

    /* Same handle, no reopen: the very next calls work again. */
    assert_int_equal(uc_test_pg_up(&g_pg), 0);
    assert_int_equal(g_pg.port, port);
    assert_int_equal(uq_db_feedback_stats(g_db, "ins-outage", &s), UQ_DB_OK);
    assert_int_equal(s.total_ratings, 1);
    w.rating = 4;
    assert_int_equal(uq_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_int_equal(row.rating, 4);
    assert_int_equal(uq_db_ping(g_db), UQ_DB_OK);

    /* A restart between two requests: the pool is full of connections to
     * the old server, and still not one call fails afterwards. */
    assert_true(warm_pool() >= 2);
    assert_int_equal(uc_test_pg_down(&g_pg), 0);
    assert_int_equal(uc_test_pg_up(&g_pg), 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(uq_db_feedback_stats(g_db, "ins-outage", &s),
                         UQ_DB_OK);
        assert_int_equal(s.rating_distribution[3], 1);
    }
    /* The restarted server has none of the statements the pool prepared:
     * a write with a record prepares its statement again, unnoticed. */
    const uq_db_inval_t inv = {"feedback", "insight:ins-outage:*"};
    int64_t id = 0;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(uq_db_feedback_upsert(g_db, &w, &row, &inv, 1, &id),
                         UQ_DB_OK);
        assert_true(id > 0);
    }
}

/* Last: no log line any test above made the backend write held the
 * password. PostgreSQL only: its URL is the only one with a password. A
 * test, not the group teardown, since cmocka ignores a teardown that
 * fails. */
static void no_log_line_holds_the_password(void **state)
{
    (void)state;
    need_pg();
    assert_true(log_contains("connect '")); /* the scan saw real lines */
    if (g_password_leaked) {
        fail_msg("a log line contained the database password");
    }
}

/* ---- the original's feedback semantics ----------------------------------- */

static void fb_put(uq_db_t *db, unsigned fields, const char *insight,
                   const char *user, int64_t now, uq_db_feedback_t *out)
{
    uq_db_feedback_write_t w = fb_write(fields, insight, user, now);
    w.rating = 4;
    w.comment = "c";
    w.flag_type = "spam";
    assert_int_equal(uq_db_feedback_upsert(db, &w, out, NULL, 0, NULL),
                     UQ_DB_OK);
}

static void feedback_semantics_on(uq_db_t *db, const char *name)
{
    uq_db_feedback_t row, a, b;
    uq_db_feedback_t *rows = NULL;
    size_t n = 0;
    int64_t total = -1;
    char ins[64], u1[64], u2[64];

    (void)name;
    snprintf(ins, sizeof(ins), "ins-sem-%s", name);
    snprintf(u1, sizeof(u1), "sem-a-%s", name);
    snprintf(u2, sizeof(u2), "sem-b-%s", name);
    /* a is created first but updated last: the pages follow created_at
     * (the original's order), so b still comes first. */
    fb_put(db, UQ_DB_FB_COMMENT, ins, u1, T0, &a);
    fb_put(db, UQ_DB_FB_COMMENT, ins, u2, T0 + SEC, &b);
    fb_put(db, UQ_DB_FB_COMMENT, ins, u1, T0 + 9 * SEC, &row);
    assert_string_equal(row.id, a.id);
    assert_int_equal(uq_db_feedback_comments(db, ins, 10, 0, &rows, &n, &total),
                     UQ_DB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(total, 2);
    assert_string_equal(rows[0].id, b.id);
    assert_string_equal(rows[1].id, a.id);
    free(rows);
    fb_put(db, UQ_DB_FB_RATING, ins, u1, T0 + 10 * SEC, &row);
    assert_int_equal(uq_db_feedback_by_user(db, u1, 10, 0, &rows, &n, &total),
                     UQ_DB_OK);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].id, a.id);
    free(rows);

    /* A rating whose comment is set but NULL clears the comment. */
    uq_db_feedback_write_t w =
        fb_write(UQ_DB_FB_RATING, ins, u1, T0 + 11 * SEC);
    w.rating = 2;
    w.has_comment = 1;
    w.comment = NULL;
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_false(row.has_comment);
    assert_int_equal(row.rating, 2);

    /* An empty flag reason is kept as "", not as NULL. */
    w = fb_write(UQ_DB_FB_FLAG, ins, u2, T0 + 12 * SEC);
    w.flag_type = "spam";
    w.has_flag_reason = 1;
    w.flag_reason = "";
    assert_int_equal(uq_db_feedback_upsert(db, &w, &row, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_true(row.has_flag_reason);
    assert_string_equal(row.flag_reason, "");
    assert_string_equal(row.id, b.id);

    /* 100 characters of two bytes each fit the row and come back whole. */
    char wide[2 * UQ_DB_FB_ID_CHARS + 1];
    for (int i = 0; i < UQ_DB_FB_ID_CHARS; i++) {
        memcpy(wide + 2 * i, "\xc3\xa9", 2);
    }
    wide[2 * UQ_DB_FB_ID_CHARS] = '\0';
    fb_put(db, UQ_DB_FB_RATING, wide, wide, T0, &row);
    assert_string_equal(row.insight_id, wide);
    assert_string_equal(row.user_id, wide);
}

static void feedback_original_semantics(void **state)
{
    (void)state;
    each_backend(feedback_semantics_on);
}

/* ---- upgrading a database of the previous schema ------------------------- */

/*
 * The previous version's schema (migrations 1 to 4) with rows written the
 * way it wrote them, made from a migrated database by undoing migration 5:
 * its columns, indexes and record go.
 */
static const char SQ_DOWNGRADE[] =
    "DROP INDEX insight_feedback_public_id;"
    "ALTER TABLE insight_feedback DROP COLUMN public_id;"
    "DROP INDEX system_metrics_public_id;"
    "ALTER TABLE system_metrics DROP COLUMN public_id;"
    "DROP INDEX insight_feedback_user;"
    "CREATE INDEX insight_feedback_user ON insight_feedback"
    " (user_id, updated_at);"
    "DELETE FROM schema_migrations WHERE version = 5;"
    "INSERT INTO insight_feedback (insight_id, user_id, rating, comment,"
    " created_at, updated_at) VALUES"
    " ('ins-old', 'u-old', 4, 'kept', 1704067200000000, 1704067201000000),"
    " ('ins-old', 'u-old2', NULL, NULL, 1704067202000000, 1704067202000000);"
    "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s"
    " WHERE i < 1203) INSERT INTO system_metrics (service_name, metric_type,"
    " metric_value, unit, timestamp, metric_metadata)"
    " SELECT 'svc-old', 'cpu', i + 0.5, 'percent', 1704067200000000 + i,"
    " '{\"i\": ' || i || '}' FROM s;";

static const char PG_DOWNGRADE[] =
    "ALTER TABLE insight_feedback DROP COLUMN public_id;"
    "ALTER TABLE system_metrics DROP COLUMN public_id;"
    "DROP INDEX insight_feedback_user;"
    "CREATE INDEX insight_feedback_user ON insight_feedback"
    " (user_id, updated_at);"
    "DELETE FROM schema_migrations WHERE version = 5;"
    "INSERT INTO insight_feedback (insight_id, user_id, rating, comment,"
    " created_at, updated_at) VALUES"
    " ('ins-old', 'u-old', 4, 'kept', timestamptz '2024-01-01 00:00:00Z',"
    "  timestamptz '2024-01-01 00:00:01Z'),"
    " ('ins-old', 'u-old2', NULL, NULL, timestamptz '2024-01-01 00:00:02Z',"
    "  timestamptz '2024-01-01 00:00:02Z');"
    /* More than one batch of the migration's fill. */
    "INSERT INTO system_metrics (service_name, metric_type, metric_value,"
    " unit, \"timestamp\", metric_metadata)"
    " SELECT 'svc-old', 'cpu', i + 0.5, 'percent',"
    " timestamptz '2024-01-01 00:00:00Z' + i * interval '1 microsecond',"
    " ('{\"i\": ' || i || '}')::json FROM generate_series(1, 1203) AS i;";

static void check_upgraded(const char *url)
{
    char err[256];
    uq_db_t *db = NULL;
    uq_db_feedback_t *rows = NULL, *again = NULL;
    uq_db_metric_t *m = NULL;
    uq_db_metric_filter_t f;
    size_t n = 0, n2 = 0;
    int64_t total = 0;
    int applied = -1;

    assert_int_equal(open_db(url, 2, 5000, &db, err, sizeof(err)), UQ_DB_OK);
    assert_int_equal(uq_db_migrate(db, &applied), UQ_DB_OK);
    assert_int_equal(applied, 1);

    assert_int_equal(
        uq_db_feedback_by_user(db, "u-old", 10, 0, &rows, &n, &total),
        UQ_DB_OK);
    assert_int_equal(n, 1);
    assert_uuid4(rows[0].id);
    assert_string_equal(rows[0].insight_id, "ins-old");
    assert_int_equal(rows[0].rating, 4);
    assert_string_equal(rows[0].comment, "kept");
    assert_true(rows[0].created_at == T0 && rows[0].updated_at == T0 + SEC);
    /* The id is stored, not made up per read. */
    assert_int_equal(
        uq_db_feedback_by_user(db, "u-old", 10, 0, &again, &n2, &total),
        UQ_DB_OK);
    assert_string_equal(again[0].id, rows[0].id);
    free(again);
    /* A merge into an upgraded row keeps its id. */
    uq_db_feedback_t merged;
    uq_db_feedback_write_t w =
        fb_write(UQ_DB_FB_RATING, "ins-old", "u-old", T0 + 5 * SEC);
    w.rating = 1;
    assert_int_equal(uq_db_feedback_upsert(db, &w, &merged, NULL, 0, NULL),
                     UQ_DB_OK);
    assert_string_equal(merged.id, rows[0].id);
    assert_string_equal(merged.comment, "kept");
    free(rows);

    memset(&f, 0, sizeof(f));
    f.service_name = "svc-old";
    f.start = UQ_DB_NULL_TIME;
    f.end = UQ_DB_NULL_TIME;
    assert_int_equal(uq_db_metrics_list(db, &f, 1000, 0, &m, &n), UQ_DB_OK);
    assert_int_equal(n, 1000);
    for (size_t i = 0; i < n; i++) {
        assert_uuid4(m[i].id);
        if (i > 0) {
            assert_string_not_equal(m[i].id, m[i - 1].id);
        }
    }
    assert_true(m[0].metric_value == 1203.5);
    assert_string_equal(m[0].metadata, "{\"i\": 1203}");
    uq_db_metrics_free(m, n, 1);
    assert_int_equal(uq_db_metrics_list(db, &f, 1000, 1000, &m, &n), UQ_DB_OK);
    assert_int_equal(n, 203);
    assert_uuid4(m[202].id);
    uq_db_metrics_free(m, n, 1);
    uq_db_close(db);
}

static void migration_upgrades_old_database_on(uq_db_t *db, const char *name)
{
    char url[320], err[512];
    uq_db_t *fresh = NULL;

    (void)db;
    /* A database of its own, migrated, then taken back to the previous
     * schema beside the interface. */
    fresh_db(name, "u", url, sizeof(url));
    assert_int_equal(open_db(url, 1, 5000, &fresh, err, sizeof(err)), UQ_DB_OK);
    assert_int_equal(uq_db_migrate(fresh, NULL), UQ_DB_OK);
    uq_db_close(fresh);
    if (sql_run(url, is_pg(name) ? PG_DOWNGRADE : SQ_DOWNGRADE, err,
                sizeof(err)) != 0) {
        fail_msg("%s downgrade: %s", name, err);
    }
    check_upgraded(url);
}

static void migration_upgrades_old_database(void **state)
{
    (void)state;
    each_backend(migration_upgrades_old_database_on);
}

/*
 * A database from before the key revocation migration (version 4) that
 * already holds keys, the case of an operator upgrading a running service:
 * the migration rebuilds (SQLite) or alters (PostgreSQL) the table, and
 * every key must still be found by its prefix, unrevoked, with its hash,
 * role and owner, and take a revocation. The old table is made by hand beside
 * the interface, as version 1 created it.
 */
#define KEY_HASH_A                                                             \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY_HASH_B                                                             \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char SQ_KEYS_V1[] =
    "DROP TABLE api_keys;"
    "CREATE TABLE api_keys ("
    " id INTEGER PRIMARY KEY,"
    " prefix TEXT NOT NULL UNIQUE,"
    " key_hash TEXT NOT NULL CHECK (length(key_hash) = 64),"
    " user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),"
    " role TEXT NOT NULL CHECK (role IN ('user', 'service', 'admin')),"
    " created_at INTEGER NOT NULL);"
    "INSERT INTO api_keys (prefix, key_hash, user_id, role, created_at)"
    " VALUES ('oldkey01', '" KEY_HASH_A
    "', 'u-old', 'admin', 1704067200000000),"
    " ('oldkey02', '" KEY_HASH_B "', 'u-old2', 'user', 1704067201000000);"
    "DELETE FROM schema_migrations WHERE version = 4;";

static const char PG_KEYS_V1[] =
    "DROP TABLE api_keys;"
    "CREATE TABLE api_keys ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " prefix text NOT NULL UNIQUE,"
    " key_hash text NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),"
    " user_id text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),"
    " role text NOT NULL CHECK (role IN ('user', 'service', 'admin')),"
    " created_at timestamptz NOT NULL);"
    "INSERT INTO api_keys (prefix, key_hash, user_id, role, created_at)"
    " VALUES ('oldkey01', '" KEY_HASH_A "', 'u-old', 'admin',"
    "  timestamptz '2024-01-01 00:00:00Z'),"
    " ('oldkey02', '" KEY_HASH_B "', 'u-old2', 'user',"
    "  timestamptz '2024-01-01 00:00:01Z');"
    "DELETE FROM schema_migrations WHERE version = 4;";

static void keys_survive_upgrade_on(uq_db_t *db, const char *name)
{
    char url[320], err[512];
    uq_db_t *fresh = NULL;
    uq_db_api_key_t k, *rows = NULL;
    size_t n = 0;
    int applied = -1;
    int64_t at = 0;

    (void)db;
    fresh_db(name, "k", url, sizeof(url));
    assert_int_equal(open_db(url, 1, 5000, &fresh, err, sizeof(err)), UQ_DB_OK);
    assert_int_equal(uq_db_migrate(fresh, NULL), UQ_DB_OK);
    uq_db_close(fresh);
    if (sql_run(url, is_pg(name) ? PG_KEYS_V1 : SQ_KEYS_V1, err, sizeof(err)) !=
        0) {
        fail_msg("%s downgrade: %s", name, err);
    }
    assert_int_equal(open_db(url, 1, 5000, &fresh, err, sizeof(err)), UQ_DB_OK);
    assert_int_equal(uq_db_migrate(fresh, &applied), UQ_DB_OK);
    assert_int_equal(applied, 1);

    assert_int_equal(uq_db_api_key_lookup(fresh, "oldkey01", &k), UQ_DB_OK);
    assert_string_equal(k.hash_hex, KEY_HASH_A);
    assert_string_equal(k.user_id, "u-old");
    assert_string_equal(k.role, "admin");
    assert_true(k.created_at == T0);
    assert_true(k.revoked_at == UQ_DB_NULL_TIME);
    assert_int_equal(uq_db_api_key_lookup(fresh, "oldkey02", &k), UQ_DB_OK);
    assert_string_equal(k.hash_hex, KEY_HASH_B);
    assert_string_equal(k.role, "user");
    /* Keys made here are not imported ones: the hash lookup (imports
     * only) does not see them. */
    assert_int_equal(uq_db_api_key_lookup_hash(fresh, KEY_HASH_B, &k),
                     UQ_DB_NOTFOUND);
    assert_int_equal(uq_db_api_key_lookup(fresh, "oldkey02", &k), UQ_DB_OK);
    assert_int_equal(uq_db_api_key_list(fresh, &rows, &n), UQ_DB_OK);
    assert_int_equal(n, 2);
    free(rows);
    /* The migrated table takes what version 4 added: revocation. */
    assert_int_equal(uq_db_api_key_revoke(fresh, k.id, T0 + SEC, &at),
                     UQ_DB_OK);
    assert_true(at == T0 + SEC);
    assert_int_equal(uq_db_api_key_lookup(fresh, "oldkey02", &k), UQ_DB_OK);
    assert_true(k.revoked_at == T0 + SEC);
    uq_db_close(fresh);
}

static void keys_survive_upgrade(void **state)
{
    (void)state;
    each_backend(keys_survive_upgrade_on);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migrations_apply_once),
        cmocka_unit_test(feedback_upsert_merges),
        cmocka_unit_test(feedback_constraints_refuse),
        cmocka_unit_test(feedback_stats_aggregate),
        cmocka_unit_test(feedback_pages),
        cmocka_unit_test(concurrent_upserts_never_fail),
        cmocka_unit_test(jobs_lifecycle),
        cmocka_unit_test(jobs_list_filters_and_pages),
        cmocka_unit_test(metrics_insert_and_list),
        cmocka_unit_test(metrics_aggregate_buckets),
        cmocka_unit_test(retention_deletes_and_reports),
        cmocka_unit_test(api_keys_store_and_find),
        cmocka_unit_test(api_keys_import_and_revoke),
        cmocka_unit_test(write_probe_reaches_the_database),
        cmocka_unit_test(feedback_original_semantics),
        cmocka_unit_test(migration_upgrades_old_database),
        cmocka_unit_test(keys_survive_upgrade),
        cmocka_unit_test(inval_records_ride_with_writes),
        cmocka_unit_test(inval_failed_writes_leave_nothing),
        cmocka_unit_test(inval_refuses_bad_records),
        cmocka_unit_test(inval_mark_applied_is_idempotent),
        cmocka_unit_test(inval_prune_is_bounded),
        cmocka_unit_test(inval_last_id_and_no_reuse),
        cmocka_unit_test(inval_concurrent_writers),
        cmocka_unit_test(inval_write_cost_figures),
        cmocka_unit_test(open_errors_hide_the_password),
        cmocka_unit_test(open_from_db_env),
        cmocka_unit_test(frozen_server_times_out_then_recovers),
        cmocka_unit_test(database_down_then_back),
        cmocka_unit_test(no_log_line_holds_the_password),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
