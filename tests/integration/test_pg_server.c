/* SPDX-License-Identifier: MIT */
/*
 * The PostgreSQL test server itself: it starts, the test role logs in over
 * TCP with its password (and not without it), it can be taken down and
 * brought back on the same port, frozen and thawed, and stopping it removes
 * its directory. Every other PostgreSQL test stands on this one.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "pg_server.h"

/* The server of the running test; stopped by the teardown even when an
 * assertion ended the test early. */
static uc_test_pg_t pg;

static int stop_server(void **state)
{
    (void)state;
    uc_test_pg_stop(&pg);
    return 0;
}

/* Connects with a short timeout; returns the connection status. */
static ConnStatusType try_connect(const char *url)
{
    char conninfo[512];
    PGconn *c;
    ConnStatusType st;

    snprintf(conninfo, sizeof(conninfo), "%.480s?connect_timeout=3", url);
    c = PQconnectdb(conninfo);
    st = PQstatus(c);
    PQfinish(c);
    return st;
}

static void start_login_stop(void **state)
{
    char out[128], bad[512], dir[256];
    struct stat st;
    PGconn *c;
    PGresult *r;

    (void)state;
    if (!uc_test_pg_available()) {
        skip();
    }
    assert_int_equal(uc_test_pg_start(&pg), 0);
    assert_true(pg.port > 0);
    snprintf(out, sizeof(out), "@127.0.0.1:%d/", pg.port);
    assert_non_null(strstr(pg.url, out));

    /* The test role, over TCP, with its password. */
    c = PQconnectdb(pg.url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, "SELECT current_user, current_database(), "
                  "current_setting('TimeZone')");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), pg.user);
    assert_string_equal(PQgetvalue(r, 0, 1), pg.dbname);
    assert_string_equal(PQgetvalue(r, 0, 2), "UTC");
    PQclear(r);
    PQfinish(c);

    /* A wrong password is refused: the server really checks it. */
    snprintf(bad, sizeof(bad), "postgresql://%s:wrong@127.0.0.1:%d/%s", pg.user,
             pg.port, pg.dbname);
    assert_int_equal(try_connect(bad), CONNECTION_BAD);

    /* The superuser helper reaches the same database. */
    assert_int_equal(uc_test_pg_psql(&pg, "SELECT 40 + 2", out, sizeof(out)),
                     0);
    assert_string_equal(out, "42");
    assert_int_not_equal(uc_test_pg_psql(&pg, "SELECT nope", NULL, 0), 0);

    snprintf(dir, sizeof(dir), "%s", pg.dir);
    uc_test_pg_stop(&pg);
    assert_int_not_equal(stat(dir, &st), 0);
}

static void down_and_up_keeps_port_and_data(void **state)
{
    char out[64];
    int port;

    (void)state;
    if (!uc_test_pg_available()) {
        skip();
    }
    assert_int_equal(uc_test_pg_start(&pg), 0);
    port = pg.port;
    assert_int_equal(
        uc_test_pg_psql(&pg,
                        "CREATE TABLE kept (v int); INSERT INTO kept "
                        "VALUES (7)",
                        NULL, 0),
        0);

    assert_int_equal(uc_test_pg_down(&pg), 0);
    assert_int_equal(try_connect(pg.url), CONNECTION_BAD);

    assert_int_equal(uc_test_pg_up(&pg), 0);
    assert_int_equal(pg.port, port);
    assert_int_equal(try_connect(pg.url), CONNECTION_OK);
    assert_int_equal(
        uc_test_pg_psql(&pg, "SELECT v FROM kept", out, sizeof(out)), 0);
    assert_string_equal(out, "7");
    uc_test_pg_stop(&pg);
}

static void freeze_and_thaw(void **state)
{
    char out[64];

    (void)state;
    if (!uc_test_pg_available()) {
        skip();
    }
    assert_int_equal(uc_test_pg_start(&pg), 0);
    /* The postmaster plus its auxiliary processes (checkpointer, ...). */
    assert_true(uc_test_pg_signal(&pg, SIGSTOP) > 1);
    assert_true(uc_test_pg_signal(&pg, SIGCONT) > 1);
    assert_int_equal(uc_test_pg_psql(&pg, "SELECT 1", out, sizeof(out)), 0);
    assert_string_equal(out, "1");
    /* Stopping a frozen server still works. */
    assert_true(uc_test_pg_signal(&pg, SIGSTOP) > 1);
    uc_test_pg_stop(&pg);
}

/* Fresh databases on the shared server: distinct, empty, the role's own. */
static void fresh_databases(void **state)
{
    char a[256], b[256];
    PGconn *c;
    PGresult *r;

    (void)state;
    if (!uc_test_pg_available()) {
        skip();
    }
    assert_int_equal(uc_test_pg_fresh_db(a, sizeof(a)), 0);
    assert_int_equal(uc_test_pg_fresh_db(b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    c = PQconnectdb(a);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, "CREATE TABLE mine (v int)");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    c = PQconnectdb(b);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'mine'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(start_login_stop, stop_server),
        cmocka_unit_test_teardown(down_and_up_keeps_port_and_data, stop_server),
        cmocka_unit_test_teardown(freeze_and_thaw, stop_server),
        cmocka_unit_test(fresh_databases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
