/* SPDX-License-Identifier: MIT */
/*
 * The database URL helpers of the service (src/server/db/db.c), table
 * driven: uq_db_url_describe(), the mask every log line and error about the
 * database goes through, on passwords holding '@', ':' and '/', on query
 * parameters, on URLs without a password and on SQLite paths, and cut to
 * small buffers; uq_db_url_from_env() on DATABASE_URL and the DB_* parts;
 * uq_db_open() refusing a URL whose user-info libpq would split elsewhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db.h"

typedef struct {
    const char *url;
    const char *want;
} describe_case_t;

static const describe_case_t describe_cases[] = {
    {"postgresql://app:secret@db.internal:5432/utxoiq",
     "postgresql://app:***@db.internal:5432/utxoiq"},
    /* The userinfo ends at the last '@' before the host part. */
    {"postgresql://app:p@ss@word@db.internal/utxoiq",
     "postgresql://app:***@db.internal/utxoiq"},
    {"postgresql://app:p/ss:w@rd@db.internal/utxoiq",
     "postgresql://app:***@db.internal/utxoiq"},
    {"postgres://:only@127.0.0.1/db", "postgres://:***@127.0.0.1/db"},
    {"postgresql://app:@h/db", "postgresql://app:***@h/db"},
    /* Percent-encoded passwords are masked as they are written. */
    {"postgresql://app:p%40ss@h/db", "postgresql://app:***@h/db"},
    /* The password as a query parameter, alone or among others. */
    {"postgresql://app@h/db?password=s3cret",
     "postgresql://app@h/db?password=***"},
    {"postgresql://h/db?sslmode=require&password=s3cr@t&application_name=x",
     "postgresql://h/db?sslmode=require&password=***&application_name=x"},
    {"postgresql://u:pw@h:5432/db?password=a&password=b#frag",
     "postgresql://u:***@h:5432/db?password=***&password=***#frag"},
    /* An '@' in the query is not the userinfo's. */
    {"postgresql://h:5432/db?application_name=a@b",
     "postgresql://h:5432/db?application_name=a@b"},
    {"postgresql://h:5432/db?password=s3cr@t",
     "postgresql://h:5432/db?password=***"},
    /* Nothing to mask. */
    {"postgresql://app@db.internal/utxoiq",
     "postgresql://app@db.internal/utxoiq"},
    {"postgresql://db.internal:5432/utxoiq",
     "postgresql://db.internal:5432/utxoiq"},
    {"postgresql://h/db?passwords=x&xpassword=y",
     "postgresql://h/db?passwords=x&xpassword=y"},
    {"sqlite:/var/lib/utxoiq/api.db", "sqlite:/var/lib/utxoiq/api.db"},
    {"api.db", "api.db"},
    {"", ""},
};

static void describe_masks_every_password(void **state)
{
    char out[512];

    (void)state;
    for (size_t i = 0; i < sizeof(describe_cases) / sizeof(describe_cases[0]);
         i++) {
        uq_db_url_describe(describe_cases[i].url, out, sizeof(out));
        if (strcmp(out, describe_cases[i].want) != 0) {
            fail_msg("describe '%s': got '%s', want '%s'",
                     describe_cases[i].url, out, describe_cases[i].want);
        }
    }
}

/* Every cut of a description is a prefix of the whole one: a short buffer
 * loses the end of the line, never the mask. */
static void describe_cuts_never_unmask(void **state)
{
    static const char url[] = "postgresql://app:p@ss@word@db.internal/utxoiq"
                              "?password=hunter2";
    char whole[256];
    char cut[256];

    (void)state;
    uq_db_url_describe(url, whole, sizeof(whole));
    assert_string_equal(whole, "postgresql://app:***@db.internal/utxoiq"
                               "?password=***");
    for (size_t cap = 1; cap <= strlen(whole) + 1; cap++) {
        memset(cut, 'x', sizeof(cut));
        uq_db_url_describe(url, cut, cap);
        assert_true(strlen(cut) == cap - 1);
        assert_memory_equal(cut, whole, cap - 1);
        assert_null(strstr(cut, "ss@word"));
        assert_null(strstr(cut, "hunter"));
    }
    /* cap 0 writes nothing at all. */
    cut[0] = 'x';
    uq_db_url_describe(url, cut, 0);
    assert_int_equal(cut[0], 'x');
}

typedef struct {
    const char *database_url, *host, *port, *user, *password, *name;
    int want_rc;
    const char *want;
} env_case_t;

static const env_case_t env_cases[] = {
    {"postgresql://a:b@c/d", "ignored", NULL, NULL, NULL, NULL, UQ_DB_OK,
     "postgresql://a:b@c/d"},
    {NULL, NULL, NULL, NULL, NULL, NULL, UQ_DB_OK, "sqlite:fallback.db"},
    {NULL, "db.internal", NULL, NULL, NULL, NULL, UQ_DB_OK,
     "postgresql://db.internal:5432/utxoiq"},
    {NULL, "db.internal", "6543", "app", "p@ss:w/rd", "stats", UQ_DB_OK,
     "postgresql://app:p%40ss%3Aw%2Frd@db.internal:6543/stats"},
    /* A password without a user has nowhere to go. */
    {NULL, "h", NULL, NULL, "lonely", NULL, UQ_DB_OK,
     "postgresql://h:5432/utxoiq"},
};

static void set_or_unset(const char *name, const char *value)
{
    if (value != NULL) {
        setenv(name, value, 1);
    } else {
        unsetenv(name);
    }
}

static void url_from_env_builds_and_encodes(void **state)
{
    char out[512];
    char desc[512];

    (void)state;
    for (size_t i = 0; i < sizeof(env_cases) / sizeof(env_cases[0]); i++) {
        const env_case_t *c = &env_cases[i];
        set_or_unset("DATABASE_URL", c->database_url);
        set_or_unset("DB_HOST", c->host);
        set_or_unset("DB_PORT", c->port);
        set_or_unset("DB_USER", c->user);
        set_or_unset("DB_PASSWORD", c->password);
        set_or_unset("DB_NAME", c->name);
        assert_int_equal(
            uq_db_url_from_env(out, sizeof(out), "sqlite:fallback.db"),
            c->want_rc);
        if (strcmp(out, c->want) != 0) {
            fail_msg("case %zu: got '%s', want '%s'", i, out, c->want);
        }
        uq_db_url_describe(out, desc, sizeof(desc));
        if (c->password != NULL) {
            assert_null(strstr(desc, c->password));
        }
    }
    /* Too long for the buffer: an error and an empty buffer, no cut URL. */
    unsetenv("DATABASE_URL");
    setenv("DB_HOST", "a-host-name-longer-than-the-buffer", 1);
    assert_int_equal(uq_db_url_from_env(out, 16, "sqlite:x"), UQ_DB_ECONFIG);
    assert_string_equal(out, "");
    unsetenv("DB_HOST");
    unsetenv("DB_PORT");
    unsetenv("DB_USER");
    unsetenv("DB_PASSWORD");
    unsetenv("DB_NAME");
}

/* A URL libpq would split elsewhere than the mask is refused before
 * libpq can quote the password's tail as a host or port name. */
static void open_refuses_ambiguous_userinfo(void **state)
{
    static const char *const bad[] = {
        "postgresql://app:p@ss@word@db.invalid/utxoiq",
        "postgresql://app:p/ss@db.invalid/utxoiq",
        "postgres://app:pw@h/db@x",
    };
    uq_db_options_t o;
    uq_db_t *db = NULL;
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&o, 0, sizeof(o));
        o.url = bad[i];
        err[0] = '\0';
        assert_int_equal(uq_db_open(&o, &db, err, sizeof(err)), UQ_DB_ECONFIG);
        assert_null(db);
        assert_non_null(strstr(err, "percent-encode"));
        assert_null(strstr(err, "ss@word"));
        assert_null(strstr(err, "p/ss"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(describe_masks_every_password),
        cmocka_unit_test(describe_cuts_never_unmask),
        cmocka_unit_test(url_from_env_builds_and_encodes),
        cmocka_unit_test(open_refuses_ambiguous_userinfo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
