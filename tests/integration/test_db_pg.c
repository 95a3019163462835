/* SPDX-License-Identifier: MIT */
/*
 * The database interface (db.h) against a real PostgreSQL that this
 * test starts on a free loopback port: migrations applied once, every
 * method with known data, the atomic feedback upsert under concurrent first
 * writes, the one-statement statistics, bucket arithmetic, retention, and
 * the pool across a database that goes away, freezes and comes back. Every
 * log line the backend writes is collected and checked never to contain the
 * password. The server is shared by the tests of this file (one group);
 * each test uses its own ids so that none depends on another's rows.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "db.h"
#include "pg_server.h"
#include "util.h"

/* 2024-01-01T00:00:00Z, a Monday, in µs. */
#define T0 INT64_C(1704067200000000)
#define SEC INT64_C(1000000)
#define HOUR (3600 * SEC)
#define DAY (24 * HOUR)

static uc_test_pg_t g_pg;
static uc_db_t *g_db;

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

static int open_db(const char *url, int pool, int timeout_ms, uc_db_t **out,
                   char *err, size_t errlen)
{
    uc_db_options_t o;
    memset(&o, 0, sizeof(o));
    o.url = url;
    o.pool_size = pool;
    o.timeout_ms = timeout_ms;
    o.log = collect_log;
    return uc_db_open(&o, out, err, errlen);
}

static int group_setup(void **state)
{
    char err[512];
    (void)state;
    if (!uc_test_pg_available()) {
        return 0; /* every test skips */
    }
    if (uc_test_pg_start(&g_pg) != 0) {
        return -1;
    }
    if (open_db(g_pg.url, 4, 5000, &g_db, err, sizeof(err)) != UC_DB_OK) {
        fprintf(stderr, "open: %s\n", err);
        uc_test_pg_stop(&g_pg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    uc_db_close(g_db);
    g_db = NULL;
    uc_test_pg_stop(&g_pg);
    return 0;
}

/* Skips without PostgreSQL; makes sure the schema exists otherwise. */
static void need_db(void)
{
    if (g_db == NULL) {
        skip();
    }
    assert_int_equal(uc_db_migrate(g_db, NULL), UC_DB_OK);
}

static int psql_int(const char *sql)
{
    char out[64];
    assert_int_equal(uc_test_pg_psql(&g_pg, sql, out, sizeof(out)), 0);
    return (int)strtol(out, NULL, 10);
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
    uc_db_t *db = NULL;

    a->status = open_db(a->url, 1, 5000, &db, err, sizeof(err));
    if (a->status == UC_DB_OK) {
        a->status = uc_db_migrate(db, &a->applied);
    }
    uc_db_close(db);
    return NULL;
}

static void migrations_apply_once(void **state)
{
    int applied = -1;
    char sql[256], url[320];
    migrate_arg_t a[3];
    pthread_t th[3];

    (void)state;
    if (g_db == NULL) {
        skip();
    }
    assert_int_equal(uc_db_migrate(g_db, &applied), UC_DB_OK);
    assert_int_equal(applied, 2);
    assert_int_equal(uc_db_migrate(g_db, &applied), UC_DB_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(psql_int("SELECT count(*) FROM schema_migrations"), 2);
    assert_int_equal(psql_int("SELECT count(*) FROM information_schema.tables"
                              " WHERE table_schema = 'public'"),
                     6);
    /* The constraints live in the database, not only in the service. */
    assert_int_equal(
        psql_int("SELECT count(*) FROM pg_constraint c JOIN pg_class t"
                 " ON t.oid = c.conrelid WHERE t.relname = 'insight_feedback'"
                 " AND c.contype IN ('c', 'u')"),
        7);

    /* A fresh database migrated by three processes' worth of handles at
     * once: the advisory lock lets exactly one apply it. */
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s_m OWNER %s", g_pg.dbname,
             g_pg.user);
    assert_int_equal(uc_test_pg_psql(&g_pg, sql, NULL, 0), 0);
    snprintf(url, sizeof(url), "%s_m", g_pg.url);
    for (int i = 0; i < 3; i++) {
        a[i].url = url;
        a[i].applied = -1;
        a[i].status = -100;
        assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &a[i]),
                         0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].status, UC_DB_OK);
    }
    /* Both migrations, each applied exactly once, whoever applied it. */
    assert_int_equal(a[0].applied + a[1].applied + a[2].applied, 2);
}

/* ---- feedback ------------------------------------------------------------ */

static uc_db_feedback_write_t fb_write(unsigned fields, const char *insight,
                                       const char *user, int64_t now)
{
    uc_db_feedback_write_t w;
    memset(&w, 0, sizeof(w));
    w.fields = fields;
    w.insight_id = insight;
    w.user_id = user;
    w.now = now;
    return w;
}

static void feedback_upsert_merges(void **state)
{
    uc_db_feedback_write_t w;
    uc_db_feedback_t row, first;
    const int64_t t1 = T0 + 123456, t2 = t1 + SEC, t3 = t2 + SEC;

    (void)state;
    need_db();
    w = fb_write(UC_DB_FB_RATING, "ins-merge", "alice", t1);
    w.rating = 3;
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &first, NULL, 0, NULL),
                     UC_DB_OK);
    assert_true(first.id > 0);
    assert_string_equal(first.insight_id, "ins-merge");
    assert_string_equal(first.user_id, "alice");
    assert_int_equal(first.rating, 3);
    assert_false(first.has_comment);
    assert_string_equal(first.flag_type, "");
    assert_true(first.created_at == t1 && first.updated_at == t1);

    w = fb_write(UC_DB_FB_COMMENT, "ins-merge", "alice", t2);
    w.comment = "très utile \xe2\x9c\x93 'quoted' ; DROP TABLE x; --";
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_OK);
    assert_true(row.id == first.id);
    assert_int_equal(row.rating, 3);
    assert_true(row.has_comment);
    assert_string_equal(row.comment, w.comment);
    assert_true(row.created_at == t1 && row.updated_at == t2);

    /* A rating without a comment keeps the comment. */
    w = fb_write(UC_DB_FB_RATING, "ins-merge", "alice", t3);
    w.rating = 5;
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_OK);
    assert_int_equal(row.rating, 5);
    assert_true(row.has_comment);
    assert_string_equal(row.comment,
                        "très utile \xe2\x9c\x93 'quoted' ; DROP TABLE x; --");

    /* A rating with a comment replaces it. */
    w.has_comment = 1;
    w.comment = "changed";
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_OK);
    assert_string_equal(row.comment, "changed");

    w = fb_write(UC_DB_FB_FLAG, "ins-merge", "alice", t3);
    w.flag_type = "spam";
    w.has_flag_reason = 1;
    w.flag_reason = "ads";
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_OK);
    assert_string_equal(row.flag_type, "spam");
    assert_true(row.has_flag_reason);
    assert_string_equal(row.flag_reason, "ads");
    assert_int_equal(row.rating, 5);

    /* A flag without a reason clears the old reason. */
    w.flag_type = "misleading";
    w.has_flag_reason = 0;
    w.flag_reason = NULL;
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_OK);
    assert_string_equal(row.flag_type, "misleading");
    assert_false(row.has_flag_reason);
    assert_true(row.created_at == t1);
    assert_int_equal(psql_int("SELECT count(*) FROM insight_feedback"
                              " WHERE insight_id = 'ins-merge'"),
                     1);
}

static void feedback_constraints_refuse(void **state)
{
    uc_db_feedback_write_t w;
    uc_db_feedback_t row;

    (void)state;
    need_db();
    w = fb_write(UC_DB_FB_RATING, "ins-bad", "bob", T0);
    w.rating = 6;
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_ECONSTRAINT);
    w.rating = 0;
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_ECONSTRAINT);
    w = fb_write(UC_DB_FB_FLAG, "ins-bad", "bob", T0);
    w.flag_type = "boring";
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_ECONSTRAINT);
    w = fb_write(0, "ins-bad", "bob", T0);
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_EINVAL);
    assert_int_equal(psql_int("SELECT count(*) FROM insight_feedback"
                              " WHERE insight_id = 'ins-bad'"),
                     0);
    /* The pool survives statement errors: the next call works. */
    assert_int_equal(uc_db_ping(g_db), UC_DB_OK);
}

static void put(const char *insight, const char *user, int rating,
                const char *comment, const char *flag, int64_t now)
{
    uc_db_feedback_write_t w;
    uc_db_feedback_t row;

    if (rating != 0) {
        w = fb_write(UC_DB_FB_RATING, insight, user, now);
        w.rating = rating;
        assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                         UC_DB_OK);
    }
    if (comment != NULL) {
        w = fb_write(UC_DB_FB_COMMENT, insight, user, now);
        w.comment = comment;
        assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                         UC_DB_OK);
    }
    if (flag != NULL) {
        w = fb_write(UC_DB_FB_FLAG, insight, user, now);
        w.flag_type = flag;
        assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                         UC_DB_OK);
    }
}

static void feedback_stats_aggregate(void **state)
{
    uc_db_feedback_stats_t s;

    (void)state;
    need_db();
    put("ins-stats", "u1", 5, "great", "spam", T0);
    put("ins-stats", "u2", 4, NULL, NULL, T0);
    put("ins-stats", "u3", 4, "ok", NULL, T0);
    put("ins-stats", "u4", 1, NULL, NULL, T0);
    put("ins-stats", "u5", 0, "meh", "spam", T0);
    put("ins-stats", "u6", 0, NULL, "inaccurate", T0);
    put("ins-other", "u1", 1, "other", "misleading", T0);

    memset(&s, 0xff, sizeof(s));
    assert_int_equal(uc_db_feedback_stats(g_db, "ins-stats", &s), UC_DB_OK);
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
    assert_int_equal(uc_db_feedback_stats(g_db, "ins-none", &s), UC_DB_OK);
    assert_int_equal(s.total_ratings, 0);
    assert_true(s.average_rating == 0.0);
    assert_int_equal(s.rating_distribution[4], 0);
    assert_int_equal(s.total_comments, 0);
    assert_int_equal(s.total_flags, 0);
    assert_int_equal(s.flag_spam, 0);
}

static void feedback_pages(void **state)
{
    uc_db_feedback_t *rows = NULL;
    size_t n = 0;
    int64_t total = -1;
    char user[16], text[16];

    (void)state;
    need_db();
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "pager%d", i);
        snprintf(text, sizeof(text), "c%d", i);
        put("ins-page", user, 0, text, NULL, T0 + i * SEC);
    }
    put("ins-page", "rater-only", 2, NULL, NULL, T0 + 10 * SEC);
    put("ins-page2", "pager1", 3, NULL, NULL, T0 + 20 * SEC);

    assert_int_equal(
        uc_db_feedback_comments(g_db, "ins-page", 2, 0, &rows, &n, &total),
        UC_DB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(total, 5);
    assert_string_equal(rows[0].comment, "c4");
    assert_string_equal(rows[1].comment, "c3");
    free(rows);

    assert_int_equal(
        uc_db_feedback_comments(g_db, "ins-page", 2, 4, &rows, &n, &total),
        UC_DB_OK);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].comment, "c0");
    free(rows);

    /* Past the end: an empty page, and still the total. */
    rows = NULL;
    assert_int_equal(
        uc_db_feedback_comments(g_db, "ins-page", 10, 50, &rows, &n, &total),
        UC_DB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(total, 5);
    free(rows);

    assert_int_equal(
        uc_db_feedback_by_user(g_db, "pager1", 10, 0, &rows, &n, &total),
        UC_DB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(total, 2);
    assert_string_equal(rows[0].insight_id, "ins-page2");
    assert_string_equal(rows[1].insight_id, "ins-page");
    free(rows);

    rows = NULL;
    assert_int_equal(
        uc_db_feedback_by_user(g_db, "nobody", 10, 0, &rows, &n, &total),
        UC_DB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(total, 0);
    free(rows);
}

/* ---- concurrency --------------------------------------------------------- */

#define RACE_THREADS 8
#define RACE_KEYS 40

typedef struct {
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
        uc_db_feedback_write_t w;
        uc_db_feedback_t row;
        snprintf(insight, sizeof(insight), "ins-race-%d", k);
        /* Every thread's first write to each key races the others'. */
        w = fb_write(UC_DB_FB_RATING, insight, "same-user",
                     T0 + a->idx * SEC + k);
        switch ((a->idx + k) % 3) {
        case 0:
            w.rating = 1 + (a->idx + k) % 5;
            break;
        case 1:
            w.fields = UC_DB_FB_COMMENT;
            w.comment = "racing";
            break;
        default:
            w.fields = UC_DB_FB_FLAG;
            w.flag_type = "spam";
            break;
        }
        if (uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL) != UC_DB_OK ||
            strcmp(row.insight_id, insight) != 0) {
            a->failures++;
        }
    }
    return NULL;
}

static void concurrent_upserts_never_fail(void **state)
{
    pthread_barrier_t start;
    pthread_t th[RACE_THREADS];
    race_arg_t args[RACE_THREADS];
    uc_db_feedback_stats_t s;

    (void)state;
    need_db();
    pthread_barrier_init(&start, NULL, RACE_THREADS);
    for (int i = 0; i < RACE_THREADS; i++) {
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
    assert_int_equal(psql_int("SELECT count(*) FROM insight_feedback"
                              " WHERE insight_id LIKE 'ins-race-%'"),
                     RACE_KEYS);
    assert_int_equal(uc_db_feedback_stats(g_db, "ins-race-0", &s), UC_DB_OK);
    assert_true(s.total_ratings <= 1 && s.total_comments == 1 &&
                s.total_flags == 1);
    /* The pool never held more connections than its size (4). */
    assert_true(psql_int("SELECT count(*) FROM pg_stat_activity"
                         " WHERE application_name = 'utxoiq-api'"
                         " AND datname = current_database()") <= 4);
}

/* ---- backfill jobs ------------------------------------------------------- */

static uc_db_job_t make_job(const char *id, const char *type, int64_t start)
{
    uc_db_job_t j;
    memset(&j, 0, sizeof(j));
    snprintf(j.id, sizeof(j.id), "%s", id);
    snprintf(j.job_type, sizeof(j.job_type), "%s", type);
    j.start_block = 100;
    j.end_block = 200;
    j.current_block = 100;
    snprintf(j.status, sizeof(j.status), "running");
    j.estimated_completion = UC_DB_NULL_TIME;
    j.started_at = start;
    j.completed_at = UC_DB_NULL_TIME;
    return j;
}

static void jobs_lifecycle(void **state)
{
    uc_db_job_t j =
        make_job("0b0e6b6c-5a1e-4c3e-9d7a-000000000001", "blocks", T0 + 5);
    uc_db_job_t got;
    uc_db_job_progress_t p;

    (void)state;
    need_db();
    j.has_created_by = 1;
    snprintf(j.created_by, sizeof(j.created_by), "admin-1");
    assert_int_equal(uc_db_job_create(g_db, &j, NULL, 0, NULL), UC_DB_OK);
    assert_int_equal(uc_db_job_create(g_db, &j, NULL, 0, NULL),
                     UC_DB_ECONSTRAINT);

    assert_int_equal(uc_db_job_get(g_db, j.id, &got), UC_DB_OK);
    assert_string_equal(got.id, j.id);
    assert_string_equal(got.job_type, "blocks");
    assert_true(got.start_block == 100 && got.end_block == 200);
    assert_string_equal(got.status, "running");
    assert_true(got.estimated_completion == UC_DB_NULL_TIME);
    assert_true(got.completed_at == UC_DB_NULL_TIME);
    assert_true(got.started_at == T0 + 5);
    assert_false(got.has_error_message);
    assert_true(got.has_created_by);
    assert_string_equal(got.created_by, "admin-1");

    memset(&p, 0, sizeof(p));
    p.current_block = 150;
    p.progress_percentage = 50.25;
    p.estimated_completion = T0 + HOUR;
    p.now = T0 + 60 * SEC;
    assert_int_equal(uc_db_job_progress(g_db, j.id, &p, &got, NULL, 0, NULL),
                     UC_DB_OK);
    assert_true(got.current_block == 150);
    assert_true(got.progress_percentage == 50.25);
    assert_string_equal(got.status, "running");
    assert_true(got.estimated_completion == T0 + HOUR);
    assert_true(got.completed_at == UC_DB_NULL_TIME);

    p.current_block = 200;
    p.progress_percentage = 100;
    p.status = "completed";
    p.estimated_completion = UC_DB_NULL_TIME; /* keeps the old one */
    p.now = T0 + 120 * SEC;
    assert_int_equal(uc_db_job_progress(g_db, j.id, &p, &got, NULL, 0, NULL),
                     UC_DB_OK);
    assert_string_equal(got.status, "completed");
    assert_true(got.completed_at == T0 + 120 * SEC);
    assert_true(got.estimated_completion == T0 + HOUR);

    /* completed_at is set once. */
    p.status = "failed";
    p.error_message = "disk full";
    p.now = T0 + 180 * SEC;
    assert_int_equal(uc_db_job_progress(g_db, j.id, &p, &got, NULL, 0, NULL),
                     UC_DB_OK);
    assert_string_equal(got.status, "failed");
    assert_true(got.completed_at == T0 + 120 * SEC);
    assert_true(got.has_error_message);
    assert_string_equal(got.error_message, "disk full");

    p.status = "exploded";
    assert_int_equal(uc_db_job_progress(g_db, j.id, &p, &got, NULL, 0, NULL),
                     UC_DB_ECONSTRAINT);
    p.status = NULL;
    assert_int_equal(uc_db_job_progress(g_db,
                                        "0b0e6b6c-5a1e-4c3e-9d7a-00000000ffff",
                                        &p, &got, NULL, 0, NULL),
                     UC_DB_NOTFOUND);
    assert_int_equal(
        uc_db_job_get(g_db, "0b0e6b6c-5a1e-4c3e-9d7a-00000000ffff", &got),
        UC_DB_NOTFOUND);
    /* Not a UUID at all: refused by the database's uuid type. */
    assert_int_equal(uc_db_job_get(g_db, "' OR 1=1 --", &got), UC_DB_EINVAL);
}

static void jobs_list_filters_and_pages(void **state)
{
    char id[40];
    uc_db_job_t *rows = NULL;
    size_t n = 0;
    int64_t total = -1;

    (void)state;
    need_db();
    for (int i = 0; i < 6; i++) {
        uc_db_job_t j;
        snprintf(id, sizeof(id), "1b0e6b6c-5a1e-4c3e-9d7a-%012d", i);
        j = make_job(id, i % 2 == 0 ? "list-even" : "list-odd",
                     T0 + DAY + i * SEC);
        if (i == 4) {
            snprintf(j.status, sizeof(j.status), "paused");
        }
        assert_int_equal(uc_db_job_create(g_db, &j, NULL, 0, NULL), UC_DB_OK);
    }
    assert_int_equal(
        uc_db_job_list(g_db, NULL, "list-even", 2, 0, &rows, &n, &total),
        UC_DB_OK);
    assert_int_equal(total, 3);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].id, "1b0e6b6c-5a1e-4c3e-9d7a-000000000004");
    assert_string_equal(rows[1].id, "1b0e6b6c-5a1e-4c3e-9d7a-000000000002");
    free(rows);

    assert_int_equal(
        uc_db_job_list(g_db, "paused", "list-even", 10, 0, &rows, &n, &total),
        UC_DB_OK);
    assert_int_equal(total, 1);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].status, "paused");
    free(rows);

    rows = NULL;
    assert_int_equal(
        uc_db_job_list(g_db, "running", "list-odd", 10, 3, &rows, &n, &total),
        UC_DB_OK);
    assert_int_equal(total, 3);
    assert_int_equal(n, 0);
    free(rows);
}

/* ---- metrics ------------------------------------------------------------- */

static uc_db_metric_new_t metric(const char *svc, const char *type, double v,
                                 int64_t ts, const char *meta)
{
    uc_db_metric_new_t m;
    m.service_name = svc;
    m.metric_type = type;
    m.metric_value = v;
    m.unit = "ms";
    m.timestamp = ts;
    m.metadata = meta;
    return m;
}

static void metrics_insert_and_list(void **state)
{
    static const char meta[] = "{\"b\": 1,   \"a\" : [2, \"x\"]}";
    uc_db_metric_new_t in[3];
    uc_db_metric_t out[3];
    uc_db_metric_t *rows = NULL;
    uc_db_metric_filter_t f;
    size_t n = 0;

    (void)state;
    need_db();
    in[0] = metric("svc-list", "latency", 1.5, T0 + 1, meta);
    in[1] = metric("svc-list", "latency", 0.1, T0 + 2, NULL);
    in[2] = metric("svc-list", "errors", 3, T0 + 3, NULL);
    assert_int_equal(uc_db_metrics_insert(g_db, in, 3, out, NULL, 0, NULL),
                     UC_DB_OK);
    assert_true(out[0].id > 0 && out[1].id > out[0].id);
    /* The metadata text comes back byte for byte (json, not jsonb). */
    assert_string_equal(out[0].metadata, meta);
    assert_null(out[1].metadata);
    assert_true(out[1].metric_value == 0.1);
    assert_true(out[2].timestamp == T0 + 3);
    uc_db_metrics_free(out, 3, 0);

    memset(&f, 0, sizeof(f));
    f.service_name = "svc-list";
    f.metric_type = "latency";
    f.start = UC_DB_NULL_TIME;
    f.end = UC_DB_NULL_TIME;
    assert_int_equal(uc_db_metrics_list(g_db, &f, 10, 0, &rows, &n), UC_DB_OK);
    assert_int_equal(n, 2);
    assert_true(rows[0].timestamp == T0 + 2); /* newest first */
    assert_string_equal(rows[1].metadata, meta);
    uc_db_metrics_free(rows, n, 1);

    /* start inclusive, end exclusive. */
    f.metric_type = NULL;
    f.start = T0 + 2;
    f.end = T0 + 3;
    assert_int_equal(uc_db_metrics_list(g_db, &f, 10, 0, &rows, &n), UC_DB_OK);
    assert_int_equal(n, 1);
    assert_true(rows[0].timestamp == T0 + 2);
    uc_db_metrics_free(rows, n, 1);

    /* All or none: one bad row (metadata that is not JSON) and the whole
     * batch is rolled back. */
    in[0] = metric("svc-batch", "x", 1, T0, NULL);
    in[1] = metric("svc-batch", "x", 2, T0, "{not json");
    assert_int_not_equal(uc_db_metrics_insert(g_db, in, 2, out, NULL, 0, NULL),
                         UC_DB_OK);
    assert_int_equal(psql_int("SELECT count(*) FROM system_metrics"
                              " WHERE service_name = 'svc-batch'"),
                     0);
    assert_int_equal(uc_db_ping(g_db), UC_DB_OK);
}

/* The bucket rule of db.h, computed here independently of SQL. */
static int64_t bucket_of(int64_t t, uc_db_interval_t iv)
{
    int64_t w = uc_db_interval_width_us(iv);
    int64_t o = uc_db_interval_origin_us(iv);
    int64_t q = (t - o) / w;
    if ((t - o) % w < 0) {
        q--;
    }
    return o + q * w;
}

static void metrics_aggregate_buckets(void **state)
{
    /* Sunday 2023-12-31 12:00, then Monday 2024-01-01 00:30 and 01:10,
     * 01:50, then Tuesday 09:00. */
    const int64_t ts[5] = {T0 - 12 * HOUR, T0 + 30 * 60 * SEC,
                           T0 + HOUR + 10 * 60 * SEC, T0 + HOUR + 50 * 60 * SEC,
                           T0 + DAY + 9 * HOUR};
    const double vs[5] = {10, 1, 2, 6, 100};
    uc_db_metric_new_t in[5];
    uc_db_metric_t out[5];
    uc_db_bucket_t *b = NULL;
    size_t n = 0;

    (void)state;
    need_db();
    for (int i = 0; i < 5; i++) {
        in[i] = metric("svc-agg", "cpu", vs[i], ts[i], NULL);
    }
    assert_int_equal(uc_db_metrics_insert(g_db, in, 5, out, NULL, 0, NULL),
                     UC_DB_OK);
    uc_db_metrics_free(out, 5, 0);

    assert_int_equal(uc_db_metrics_aggregate(g_db, "svc-agg", "cpu", UC_DB_HOUR,
                                             T0, T0 + 2 * DAY, &b, &n),
                     UC_DB_OK);
    assert_int_equal(n, 3); /* the Sunday point is outside the window */
    assert_true(b[0].bucket == T0 && b[0].count == 1);
    assert_true(b[1].bucket == T0 + HOUR && b[1].count == 2);
    assert_true(b[1].avg_value == 4.0 && b[1].min_value == 2.0 &&
                b[1].max_value == 6.0);
    assert_true(b[2].bucket == bucket_of(ts[4], UC_DB_HOUR));
    free(b);

    assert_int_equal(uc_db_metrics_aggregate(g_db, "svc-agg", "cpu", UC_DB_DAY,
                                             T0 - DAY, T0 + 2 * DAY, &b, &n),
                     UC_DB_OK);
    assert_int_equal(n, 3);
    assert_true(b[0].bucket == T0 - DAY && b[0].count == 1);
    assert_true(b[1].bucket == T0 && b[1].count == 3);
    assert_true(b[1].avg_value == 3.0);
    assert_true(b[2].bucket == T0 + DAY && b[2].max_value == 100.0);
    free(b);

    /* Weeks start on Monday 00:00 UTC: Sunday falls in the week before. */
    assert_int_equal(uc_db_metrics_aggregate(g_db, "svc-agg", "cpu", UC_DB_WEEK,
                                             T0 - 7 * DAY, T0 + 7 * DAY, &b,
                                             &n),
                     UC_DB_OK);
    assert_int_equal(n, 2);
    assert_true(b[0].bucket == T0 - 7 * DAY);
    assert_true(b[0].bucket == bucket_of(ts[0], UC_DB_WEEK));
    assert_true(b[0].count == 1 && b[0].avg_value == 10.0);
    assert_true(b[1].bucket == T0 && b[1].count == 4);
    assert_true(b[1].min_value == 1.0 && b[1].max_value == 100.0);
    assert_true(b[1].avg_value == 27.25);
    free(b);

    b = NULL;
    assert_int_equal(uc_db_metrics_aggregate(g_db, "svc-agg", "nothing",
                                             UC_DB_HOUR, T0, T0 + DAY, &b, &n),
                     UC_DB_OK);
    assert_int_equal(n, 0);
    free(b);
}

/* ---- retention ----------------------------------------------------------- */

static void retention_deletes_and_reports(void **state)
{
    const int64_t old = INT64_C(946684800000000); /* 2000-01-01 */
    const int64_t cut = old + DAY;
    uc_db_job_t j =
        make_job("2b0e6b6c-5a1e-4c3e-9d7a-000000000001", "ret", old);
    uc_db_metric_new_t in[3];
    uc_db_metric_t out[3];
    uc_db_retention_cutoffs_t c = {cut, cut, cut};
    uc_db_retention_t r;
    uc_db_job_t got;

    (void)state;
    need_db();
    assert_int_equal(uc_db_job_create(g_db, &j, NULL, 0, NULL), UC_DB_OK);
    put("ins-ret-a", "old1", 2, NULL, NULL, old);
    put("ins-ret-a", "old2", 3, NULL, NULL, old);
    put("ins-ret-b", "new1", 4, NULL, NULL, T0);
    in[0] = metric("svc-ret", "a", 1, old, NULL);
    in[1] = metric("svc-ret", "a", 1, old + 1, NULL);
    in[2] = metric("svc-ret", "b", 1, T0, NULL);
    assert_int_equal(uc_db_metrics_insert(g_db, in, 3, out, NULL, 0, NULL),
                     UC_DB_OK);
    uc_db_metrics_free(out, 3, 0);

    assert_int_equal(uc_db_retention_run(g_db, &c, &r, NULL, 0, NULL),
                     UC_DB_OK);
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
    uc_db_retention_release(&r);

    assert_int_equal(uc_db_job_get(g_db, j.id, &got), UC_DB_NOTFOUND);
    assert_int_equal(psql_int("SELECT count(*) FROM insight_feedback"
                              " WHERE insight_id LIKE 'ins-ret-%'"),
                     1);
    assert_int_equal(psql_int("SELECT count(*) FROM system_metrics"
                              " WHERE service_name = 'svc-ret'"),
                     1);

    /* Nothing left to delete: a run that reports nothing. */
    assert_int_equal(uc_db_retention_run(g_db, &c, &r, NULL, 0, NULL),
                     UC_DB_OK);
    assert_true(r.jobs_deleted == 0 && r.feedback_deleted == 0 &&
                r.metrics_deleted == 0 && r.n_series == 0);
    uc_db_retention_release(&r);
}

/* ---- api keys ------------------------------------------------------------ */

static void api_keys_store_and_find(void **state)
{
    uc_db_api_key_t k, got;

    (void)state;
    need_db();
    memset(&k, 0, sizeof(k));
    snprintf(k.prefix, sizeof(k.prefix), "pfx12345");
    memset(k.hash_hex, 'a', UC_DB_HASH_HEX_LEN);
    k.hash_hex[UC_DB_HASH_HEX_LEN] = '\0';
    snprintf(k.user_id, sizeof(k.user_id), "svc-user");
    snprintf(k.role, sizeof(k.role), "service");
    k.created_at = T0 + 7;
    assert_int_equal(uc_db_api_key_create(g_db, &k), UC_DB_OK);
    assert_int_equal(uc_db_api_key_create(g_db, &k), UC_DB_ECONSTRAINT);

    assert_int_equal(uc_db_api_key_lookup(g_db, "pfx12345", &got), UC_DB_OK);
    assert_true(got.id > 0);
    assert_string_equal(got.hash_hex, k.hash_hex);
    assert_string_equal(got.user_id, "svc-user");
    assert_string_equal(got.role, "service");
    assert_true(got.created_at == T0 + 7);
    assert_int_equal(uc_db_api_key_lookup(g_db, "nope", &got), UC_DB_NOTFOUND);

    snprintf(k.prefix, sizeof(k.prefix), "pfx-root");
    snprintf(k.role, sizeof(k.role), "root");
    assert_int_equal(uc_db_api_key_create(g_db, &k), UC_DB_ECONSTRAINT);
}

/* ---- opening and configuration ------------------------------------------- */

static void open_errors_hide_the_password(void **state)
{
    char url[512], err[512];
    uc_db_t *db = NULL;
    int rc;

    (void)state;
    need_db();
    snprintf(url, sizeof(url), "postgresql://%s:Wr0ngSecret@127.0.0.1:%d/%s",
             g_pg.user, g_pg.port, g_pg.dbname);
    rc = open_db(url, 2, 2000, &db, err, sizeof(err));
    assert_int_equal(rc, UC_DB_EUNAVAILABLE);
    assert_null(db);
    assert_non_null(strstr(err, "password authentication failed"));
    assert_null(strstr(err, "Wr0ngSecret"));
    assert_non_null(strstr(err, "***"));

    snprintf(url, sizeof(url),
             "postgresql://%s:Wr0ngSecret@127.0.0.1:notaport/%s", g_pg.user,
             g_pg.dbname);
    rc = open_db(url, 2, 2000, &db, err, sizeof(err));
    assert_int_equal(rc, UC_DB_ECONFIG);
    assert_null(strstr(err, "Wr0ngSecret"));

    /* Nothing listens there: refused at once, reported as unavailable. */
    snprintf(url, sizeof(url), "postgresql://u:Wr0ngSecret@127.0.0.1:%d/db",
             uc_test_free_port());
    rc = open_db(url, 2, 2000, &db, err, sizeof(err));
    assert_int_equal(rc, UC_DB_EUNAVAILABLE);
    assert_null(strstr(err, "Wr0ngSecret"));
    assert_false(log_contains("Wr0ngSecret"));
}

static void open_from_db_env(void **state)
{
    char url[512], port[16], err[512];
    uc_db_t *db = NULL;

    (void)state;
    need_db();
    snprintf(port, sizeof(port), "%d", g_pg.port);
    unsetenv("DATABASE_URL");
    setenv("DB_HOST", "127.0.0.1", 1);
    setenv("DB_PORT", port, 1);
    setenv("DB_USER", g_pg.user, 1);
    setenv("DB_PASSWORD", g_pg.password, 1);
    setenv("DB_NAME", g_pg.dbname, 1);
    assert_int_equal(uc_db_url_from_env(url, sizeof(url), "sqlite:x.db"),
                     UC_DB_OK);
    unsetenv("DB_HOST");
    unsetenv("DB_PORT");
    unsetenv("DB_USER");
    unsetenv("DB_PASSWORD");
    unsetenv("DB_NAME");
    assert_int_equal(open_db(url, 1, 2000, &db, err, sizeof(err)), UC_DB_OK);
    assert_string_equal(uc_db_backend_name(db), "postgresql");
    assert_int_equal(uc_db_ping(db), UC_DB_OK);
    uc_db_close(db);
}

/* ---- outages ------------------------------------------------------------- */

static void frozen_server_times_out_then_recovers(void **state)
{
    char err[512];
    uc_db_t *db = NULL;
    uc_db_feedback_stats_t s;

    (void)state;
    need_db();
    assert_int_equal(open_db(g_pg.url, 2, 300, &db, err, sizeof(err)),
                     UC_DB_OK);
    assert_int_equal(uc_db_ping(db), UC_DB_OK);
    assert_true(uc_test_pg_signal(&g_pg, SIGSTOP) > 0);
    /* The pooled connection gets no reply: the client deadline answers.
     * A new connection gets no startup reply: the connect deadline does. */
    assert_int_equal(uc_db_feedback_stats(db, "ins-stats", &s),
                     UC_DB_EUNAVAILABLE);
    assert_int_equal(uc_db_ping(db), UC_DB_EUNAVAILABLE);
    assert_true(uc_test_pg_signal(&g_pg, SIGCONT) > 0);
    /* The timed-out connections were thrown away: a late reply cannot
     * answer this call. */
    assert_int_equal(uc_db_feedback_stats(db, "ins-stats", &s), UC_DB_OK);
    assert_int_equal(s.total_ratings, 4);
    assert_true(log_contains("no reply within") || log_contains("timed out"));
    uc_db_close(db);
}

static void *stats_thread(void *p)
{
    int *failures = p;
    uc_db_feedback_stats_t s;
    for (int i = 0; i < 30; i++) {
        if (uc_db_feedback_stats(g_db, "ins-stats", &s) != UC_DB_OK) {
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
    uc_db_feedback_stats_t s;
    uc_db_feedback_write_t w;
    uc_db_feedback_t row;
    uc_db_job_t got;
    int port = g_pg.port;

    (void)state;
    need_db();
    /* Fill the pool with live connections first. */
    assert_int_equal(uc_db_feedback_stats(g_db, "ins-stats", &s), UC_DB_OK);
    w = fb_write(UC_DB_FB_RATING, "ins-outage", "carol", T0);
    w.rating = 2;
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_OK);

    assert_int_equal(uc_test_pg_down(&g_pg), 0);
    assert_int_equal(uc_db_ping(g_db), UC_DB_EUNAVAILABLE);
    assert_int_equal(uc_db_feedback_stats(g_db, "ins-stats", &s),
                     UC_DB_EUNAVAILABLE);
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_EUNAVAILABLE);
    assert_int_equal(
        uc_db_job_get(g_db, "0b0e6b6c-5a1e-4c3e-9d7a-000000000001", &got),
        UC_DB_EUNAVAILABLE);
    assert_true(log_contains("connect '"));
    assert_true(log_contains(":***@127.0.0.1"));

    /* Same handle, no reopen: the very next calls work again. */
    assert_int_equal(uc_test_pg_up(&g_pg), 0);
    assert_int_equal(g_pg.port, port);
    assert_int_equal(uc_db_feedback_stats(g_db, "ins-outage", &s), UC_DB_OK);
    assert_int_equal(s.total_ratings, 1);
    w.rating = 4;
    assert_int_equal(uc_db_feedback_upsert(g_db, &w, &row, NULL, 0, NULL),
                     UC_DB_OK);
    assert_int_equal(row.rating, 4);
    assert_int_equal(uc_db_ping(g_db), UC_DB_OK);

    /* A restart between two requests: the pool is full of connections to
     * the old server, and still not one call fails afterwards. */
    assert_true(warm_pool() >= 2);
    assert_int_equal(uc_test_pg_down(&g_pg), 0);
    assert_int_equal(uc_test_pg_up(&g_pg), 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(uc_db_feedback_stats(g_db, "ins-outage", &s),
                         UC_DB_OK);
        assert_int_equal(s.rating_distribution[3], 1);
    }
}

/* Last: no log line any test above made the backend write held the
 * password. A test, not the group teardown, since cmocka ignores a teardown
 * that fails. */
static void no_log_line_holds_the_password(void **state)
{
    (void)state;
    need_db();
    assert_true(log_contains("connect '")); /* the scan saw real lines */
    if (g_password_leaked) {
        fail_msg("a log line contained the database password");
    }
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
        cmocka_unit_test(open_errors_hide_the_password),
        cmocka_unit_test(open_from_db_env),
        cmocka_unit_test(frozen_server_times_out_then_recovers),
        cmocka_unit_test(database_down_then_back),
        cmocka_unit_test(no_log_line_holds_the_password),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
