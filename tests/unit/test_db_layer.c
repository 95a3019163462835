/* SPDX-License-Identifier: MIT */
/*
 * The backend-neutral parts of the database layer (src/server/db): the
 * connection pool over connections of a driver of the test's own (plain
 * heap objects, so that connect failures, dead idle connections and a
 * full pool can be made at will), the one error table for both drivers'
 * codes, and the row mapping over a row of the test's own. The drivers
 * themselves run against real servers in test_db.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>

#include "db.h"
#include "db_int.h"

/* ---- a driver of the test's own ------------------------------------------ */

typedef struct {
    int id;
    int dead; /* alive() says no */
} fake_conn_t;

typedef struct {
    int fail_connect; /* connect() fails while set */
    int made, closed;
    int next_id;
} fake_driver_t;

static void *fake_connect(void *arg, char *err, size_t errlen)
{
    fake_driver_t *f = arg;
    fake_conn_t *c;

    if (f->fail_connect) {
        snprintf(err, errlen, "fake: refused");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    c->id = ++f->next_id;
    f->made++;
    return c;
}

static int fake_alive(void *arg, void *conn)
{
    (void)arg;
    return !((fake_conn_t *)conn)->dead;
}

static void fake_close(void *arg, void *conn)
{
    ((fake_driver_t *)arg)->closed++;
    free(conn);
}

static const uq__db_pool_ops_t fake_ops = {fake_connect, fake_alive,
                                           fake_close};

static uq__db_logger_t no_log;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The counts add up at every moment: open = idle + lent. */
static void assert_figures(uq__db_pool_t *p, int open, int idle, int lent)
{
    uq__db_pool_figures_t f;
    uq__db_pool_figures(p, &f);
    assert_int_equal(f.open, open);
    assert_int_equal(f.idle, idle);
    assert_int_equal(f.lent, lent);
    assert_int_equal(f.open, f.idle + f.lent);
}

static void pool_lends_reuses_and_bounds(void **state)
{
    fake_driver_t drv = {0};
    uq__db_pool_t p;
    void *a = NULL, *b = NULL, *c = NULL;
    uq__db_pool_figures_t f;

    (void)state;
    assert_int_equal(
        uq__db_pool_init(&p, 2, 200, &fake_ops, &drv, &no_log, "fake"),
        UQ_DB_OK);
    assert_figures(&p, 0, 0, 0);
    /* Connections are made as calls need them, up to the size. */
    assert_int_equal(uq__db_pool_acquire(&p, &a), UQ_DB_OK);
    assert_int_equal(uq__db_pool_acquire(&p, &b), UQ_DB_OK);
    assert_ptr_not_equal(a, b);
    assert_int_equal(drv.made, 2);
    assert_figures(&p, 2, 0, 2);

    /* Full: the third waits its bound, then gives up. */
    int64_t t0 = mono_ms();
    assert_int_equal(uq__db_pool_acquire(&p, &c), UQ_DB_EBUSY);
    int64_t waited = mono_ms() - t0;
    assert_true(waited >= 190);
    assert_true(waited < 5000);
    uq__db_pool_figures(&p, &f);
    assert_int_equal(f.waits, 1);
    assert_int_equal(f.timeouts, 1);

    /* A kept connection is lent again, not remade. */
    uq__db_pool_release(&p, a, UQ__DB_POOL_KEEP);
    assert_figures(&p, 2, 1, 1);
    assert_int_equal(uq__db_pool_acquire(&p, &c), UQ_DB_OK);
    assert_ptr_equal(c, a);
    assert_int_equal(drv.made, 2);

    /* A dropped one frees its slot: the next call connects afresh. */
    uq__db_pool_release(&p, c, UQ__DB_POOL_DROP);
    assert_int_equal(drv.closed, 1);
    assert_figures(&p, 1, 0, 1);
    assert_int_equal(uq__db_pool_acquire(&p, &c), UQ_DB_OK);
    assert_int_equal(drv.made, 3);
    uq__db_pool_release(&p, b, UQ__DB_POOL_KEEP);
    uq__db_pool_release(&p, c, UQ__DB_POOL_KEEP);
    assert_figures(&p, 2, 2, 0);
    uq__db_pool_destroy(&p);
    assert_int_equal(drv.closed, 3);
}

static void pool_drops_dead_and_failed(void **state)
{
    fake_driver_t drv = {0};
    uq__db_pool_t p;
    void *a = NULL, *b = NULL;
    uq__db_pool_figures_t f;

    (void)state;
    assert_int_equal(
        uq__db_pool_init(&p, 2, 100, &fake_ops, &drv, &no_log, "fake"),
        UQ_DB_OK);
    assert_int_equal(uq__db_pool_acquire(&p, &a), UQ_DB_OK);
    assert_int_equal(uq__db_pool_acquire(&p, &b), UQ_DB_OK);
    uq__db_pool_release(&p, a, UQ__DB_POOL_KEEP);
    uq__db_pool_release(&p, b, UQ__DB_POOL_KEEP);

    /* Both idle ones died meanwhile (a server restart): the borrower
     * never sees them, and gets a new one. */
    ((fake_conn_t *)a)->dead = 1;
    ((fake_conn_t *)b)->dead = 1;
    assert_int_equal(uq__db_pool_acquire(&p, &a), UQ_DB_OK);
    assert_false(((fake_conn_t *)a)->dead);
    assert_int_equal(drv.closed, 2);
    assert_int_equal(drv.made, 3);
    assert_figures(&p, 1, 0, 1);

    /* The server is gone: a new connection fails at once (no wait) and
     * its slot is given back. */
    drv.fail_connect = 1;
    int64_t t0 = mono_ms();
    assert_int_equal(uq__db_pool_acquire(&p, &b), UQ_DB_EUNAVAILABLE);
    assert_true(mono_ms() - t0 < 100);
    assert_figures(&p, 1, 0, 1);
    uq__db_pool_figures(&p, &f);
    assert_int_equal(f.connect_failures, 1);
    assert_int_equal(f.dropped, 2);

    /* A connection that found the server changed drops every idle one. */
    drv.fail_connect = 0;
    assert_int_equal(uq__db_pool_acquire(&p, &b), UQ_DB_OK);
    uq__db_pool_release(&p, b, UQ__DB_POOL_KEEP);
    assert_figures(&p, 2, 1, 1);
    uq__db_pool_release(&p, a, UQ__DB_POOL_DROP_IDLE);
    assert_figures(&p, 0, 0, 0);
    uq__db_pool_figures(&p, &f);
    assert_int_equal(f.dropped, 4);
    uq__db_pool_destroy(&p);
    assert_int_equal(drv.closed, drv.made);
}

/* A waiter is served by the first connection that comes back, well
 * before its bound. */
typedef struct {
    uq__db_pool_t *p;
    void *conn;
    int st;
    int64_t waited_ms;
} waiter_t;

static void *wait_for_one(void *arg)
{
    waiter_t *w = arg;
    int64_t t0 = mono_ms();
    w->st = uq__db_pool_acquire(w->p, &w->conn);
    w->waited_ms = mono_ms() - t0;
    return NULL;
}

static void pool_hands_back_to_a_waiter(void **state)
{
    fake_driver_t drv = {0};
    uq__db_pool_t p;
    void *a = NULL;
    waiter_t w;
    pthread_t t;
    struct timespec pause = {0, 100 * 1000 * 1000};

    (void)state;
    assert_int_equal(
        uq__db_pool_init(&p, 1, 10000, &fake_ops, &drv, &no_log, "fake"),
        UQ_DB_OK);
    assert_int_equal(uq__db_pool_acquire(&p, &a), UQ_DB_OK);
    w.p = &p;
    w.conn = NULL;
    w.st = -100;
    pthread_create(&t, NULL, wait_for_one, &w);
    nanosleep(&pause, NULL);
    uq__db_pool_release(&p, a, UQ__DB_POOL_KEEP);
    pthread_join(t, NULL);
    assert_int_equal(w.st, UQ_DB_OK);
    assert_ptr_equal(w.conn, a);
    assert_true(w.waited_ms < 9000);
    uq__db_pool_release(&p, w.conn, UQ__DB_POOL_KEEP);
    uq__db_pool_destroy(&p);
}

static void pool_adopts_up_to_its_size(void **state)
{
    fake_driver_t drv = {0};
    uq__db_pool_t p;
    char err[64];
    void *a = fake_connect(&drv, err, sizeof(err));
    void *b = fake_connect(&drv, err, sizeof(err));
    void *got = NULL;

    (void)state;
    assert_int_equal(
        uq__db_pool_init(&p, 1, 100, &fake_ops, &drv, &no_log, "fake"),
        UQ_DB_OK);
    assert_int_equal(uq__db_pool_adopt(&p, a), UQ_DB_OK);
    assert_int_equal(uq__db_pool_adopt(&p, b), UQ_DB_EINVAL);
    free(b);
    assert_figures(&p, 1, 1, 0);
    assert_int_equal(uq__db_pool_acquire(&p, &got), UQ_DB_OK);
    assert_ptr_equal(got, a);
    uq__db_pool_release(&p, got, UQ__DB_POOL_KEEP);
    uq__db_pool_destroy(&p);
}

/* ---- the error table ----------------------------------------------------- */

static void errors_map_both_drivers_alike(void **state)
{
    (void)state;
    /* The same trouble reads the same on both backends. */
    assert_int_equal(uq__db_status_of_sqlstate("23505"), UQ_DB_ECONSTRAINT);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_CONSTRAINT_UNIQUE),
                     UQ_DB_ECONSTRAINT);
    assert_int_equal(uq__db_status_of_sqlstate("23514"), UQ_DB_ECONSTRAINT);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_CONSTRAINT_CHECK),
                     UQ_DB_ECONSTRAINT);
    assert_int_equal(uq__db_status_of_sqlstate("57014"), UQ_DB_EBUSY);
    assert_int_equal(uq__db_status_of_sqlstate("40P01"), UQ_DB_EBUSY);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_BUSY), UQ_DB_EBUSY);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_BUSY_SNAPSHOT),
                     UQ_DB_EBUSY);
    assert_int_equal(uq__db_status_of_sqlstate("08006"), UQ_DB_EUNAVAILABLE);
    assert_int_equal(uq__db_status_of_sqlstate("57P01"), UQ_DB_EUNAVAILABLE);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_IOERR_WRITE),
                     UQ_DB_EUNAVAILABLE);
    assert_int_equal(uq__db_status_of_sqlstate("25006"), UQ_DB_EREADONLY);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_READONLY), UQ_DB_EREADONLY);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_FULL), UQ_DB_EREADONLY);
    /* The commit hook's refusal is a file replaced: no write can land. */
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_CONSTRAINT_COMMITHOOK),
                     UQ_DB_EREADONLY);
    assert_int_equal(uq__db_status_of_sqlstate("22P02"), UQ_DB_EINVAL);
    assert_int_equal(uq__db_status_of_sqlstate("53200"), UQ_DB_ENOMEM);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_NOMEM), UQ_DB_ENOMEM);
    /* Anything unknown or malformed is a plain error, never success. */
    assert_int_equal(uq__db_status_of_sqlstate("XX000"), UQ_DB_EIO);
    assert_int_equal(uq__db_status_of_sqlstate(NULL), UQ_DB_EIO);
    assert_int_equal(uq__db_status_of_sqlstate("23"), UQ_DB_EIO);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_CORRUPT), UQ_DB_EIO);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_DONE), UQ_DB_OK);
    assert_int_equal(uq__db_status_of_sqlite(SQLITE_ROW), UQ_DB_OK);
}

static void errors_have_messages_and_levels(void **state)
{
    static const int all[] = {
        UQ_DB_OK,          UQ_DB_NOTFOUND,     UQ_DB_ENOMEM, UQ_DB_EINVAL,
        UQ_DB_ECONSTRAINT, UQ_DB_EUNAVAILABLE, UQ_DB_EBUSY,  UQ_DB_EIO,
        UQ_DB_ECONFIG,     UQ_DB_EREADONLY,
    };
    (void)state;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        const char *m = uq_db_strerror(all[i]);
        assert_non_null(m);
        assert_string_not_equal(m, "unknown status");
        for (size_t k = 0; k < i; k++) {
            assert_string_not_equal(m, uq_db_strerror(all[k]));
        }
    }
    assert_string_equal(uq_db_strerror(12345), "unknown status");
    /* The caller's data is not the database's health: info, not error. */
    assert_int_equal(uq__db_log_level(UQ_DB_ECONSTRAINT), 1);
    assert_int_equal(uq__db_log_level(UQ_DB_EBUSY), 2);
    assert_int_equal(uq__db_log_level(UQ_DB_EUNAVAILABLE), 3);
}

/* ---- row mapping --------------------------------------------------------- */

/* A row of text values, NULL for SQL NULL. */
typedef struct {
    const char *v[16];
} text_row_t;

static int t_is_null(const uq__db_row_t *r, int col)
{
    return ((const text_row_t *)r->res)->v[col] == NULL;
}

static const char *t_text(const uq__db_row_t *r, int col, size_t *len)
{
    const char *s = ((const text_row_t *)r->res)->v[col];
    *len = strlen(s);
    return s;
}

static int64_t t_i64(const uq__db_row_t *r, int col)
{
    return strtoll(((const text_row_t *)r->res)->v[col], NULL, 10);
}

static double t_f64(const uq__db_row_t *r, int col)
{
    return strtod(((const text_row_t *)r->res)->v[col], NULL);
}

static const uq__db_row_ops_t text_ops = {t_is_null, t_text, t_i64, t_f64};

static void rows_map_nulls_and_refuse_overflow(void **state)
{
    text_row_t t = {{"00000000-0000-4000-8000-000000000001", "backfill", "1",
                     "9", "5", "running", "50.5", NULL, NULL,
                     "1704067200000000", NULL, "ops"}};
    uq__db_row_t r = {&text_ops, &t, 0};
    uq_db_job_t j;
    char big[UQ_DB_UUID_LEN + 10];

    (void)state;
    assert_int_equal(uq__db_read_job(&r, &j), UQ_DB_OK);
    assert_string_equal(j.job_type, "backfill");
    assert_int_equal(j.end_block, 9);
    assert_true(j.progress_percentage == 50.5);
    /* NULL times are UQ_DB_NULL_TIME, NULL text is absent, not "". */
    assert_true(j.estimated_completion == UQ_DB_NULL_TIME);
    assert_true(j.completed_at == UQ_DB_NULL_TIME);
    assert_int_equal(j.has_error_message, 0);
    assert_int_equal(j.has_created_by, 1);
    assert_string_equal(j.created_by, "ops");

    /* A value longer than its field is a schema mismatch: an error. */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    t.v[0] = big;
    assert_int_equal(uq__db_read_job(&r, &j), UQ_DB_EIO);

    /* Rows collect into one array. */
    uq__db_rows_t a = {0};
    text_row_t one = {{"7"}};
    uq__db_row_t r1 = {&text_ops, &one, 0};
    for (int i = 0; i < 40; i++) {
        assert_int_equal(
            uq__db_rows_push(&a, sizeof(int64_t), uq__db_read_i64, &r1),
            UQ_DB_OK);
    }
    assert_int_equal(a.n, 40);
    assert_true(((int64_t *)a.items)[39] == 7);
    free(a.items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pool_lends_reuses_and_bounds),
        cmocka_unit_test(pool_drops_dead_and_failed),
        cmocka_unit_test(pool_hands_back_to_a_waiter),
        cmocka_unit_test(pool_adopts_up_to_its_size),
        cmocka_unit_test(errors_map_both_drivers_alike),
        cmocka_unit_test(errors_have_messages_and_levels),
        cmocka_unit_test(rows_map_nulls_and_refuse_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
