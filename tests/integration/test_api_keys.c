/* SPDX-License-Identifier: MIT */
/*
 * API key administration against the real service and database (SQLite,
 * and PostgreSQL as test_api_keys_pg): `keys list` shows every key and no
 * secret or hash; `keys revoke` makes a key 401 at once on this instance
 * and on a second one sharing the database, twice is harmless, an unknown
 * key is an error; `keys import` of the original web-api's api_keys export
 * (CSV as psql writes it, and JSON lines) lets its keys in with the role
 * mapped, is idempotent, and a bad file imports nothing.
 */
#include "api_test.h"
#include "util.h"

static uc_test_api_t api;
static char dir[512];

/* Keys of the original's shape (secrets.token_urlsafe(32)) and their
 * SHA-256, as its api_keys.key_hash holds them. */
static const char k_user[] = "Zq3vR8yHkN2pLwX7cT5mB1dF9gJ4sA6eU0oI-_QrKxw";
static const char h_user[] =
    "873dfa954e4cf0a3afc27248e7675920f58f67a7d53f229cbac2b84aef46c23d";
static const char k_admin[] = "dG7hK2mN9pQ4rS6tV8wX1yZ3aB5cE0fH_jL-oMnPqRs";
static const char h_admin[] =
    "a6d3ed9ac662f94cb8ea308c1427beb468d7369a2f94ebc80d248acd2ff29bd4";
static const char k_gone[] = "Wm1Xn2Yo3Zp4Aq5Br6Cs7Dt8Eu9Fv0Gw-Hx_IyJzKaL";
static const char h_gone[] =
    "83c40c8db1aa3bccc8630255737954d9ee22451ca74783c5b11bfbac35343916";

#define USER_ROUTE "/api/v1/feedback/user"
#define ADMIN_ROUTE "/api/v1/monitoring/database/pool"

static int group_setup(void **state)
{
    (void)state;
    if (uc_test_mkdtemp(dir, sizeof(dir), "keys") != 0) {
        return -1;
    }
    return uc_test_api_start(&api, NULL, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    uc_test_api_destroy(&api);
    uc_test_rmtree(dir);
    return 0;
}

static char out[65536];
static char err[8192];

/* Runs a `keys` subcommand; returns its exit status. */
static int keys(const char *a1, const char *a2, const char *a3)
{
    const char *args[] = {"keys", a1, a2, a3, NULL};
    int st = uc_test_api_cli(&api, args, out, sizeof(out), err, sizeof(err));
    if (st != 0) {
        fprintf(stderr, "keys %s %s: exit %d\nstdout: %s\nstderr: %s\n", a1,
                a2 != NULL ? a2 : "", st, out, err);
    }
    return st;
}

static long status_of(uc_test_api_t *a, const char *path, const char *key)
{
    api_res_t r;
    api_req(a, &r, "GET", path, key, NULL, NULL);
    long st = r.h.status;
    api_free(&r);
    return st;
}

/* The `keys list --json` entry whose field `name` is value, or NULL; the
 * array stays owned by *all. */
static json_t *listed(json_t **all, const char *name, const char *value)
{
    json_decref(*all);
    assert_int_equal(keys("list", "--json", NULL), 0);
    *all = json_loads(out, 0, NULL);
    assert_non_null(*all);
    assert_true(json_is_array(*all));
    size_t i;
    json_t *o;
    json_array_foreach(*all, i, o)
    {
        json_t *v = json_object_get(o, name);
        if (json_is_string(v) && strcmp(json_string_value(v), value) == 0) {
            return o;
        }
    }
    return NULL;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_list_shows_keys_without_secrets(void **state)
{
    (void)state;
    char user[128], admin[128], prefix[13];
    json_t *all = NULL;

    assert_int_equal(uc_test_api_key(&api, "list-alice", "user", user, 128), 0);
    assert_int_equal(uc_test_api_key(&api, "list-ops", "admin", admin, 128), 0);

    assert_int_equal(keys("list", NULL, NULL), 0);
    fmt(prefix, sizeof(prefix), "%.12s", user);
    assert_non_null(strstr(out, "PREFIX"));
    assert_non_null(strstr(out, prefix));
    assert_non_null(strstr(out, "list-alice"));
    assert_non_null(strstr(out, "list-ops"));
    assert_null(strstr(out, user));
    assert_null(strstr(out, admin));
    /* The secret part of a key: nothing past the prefix is ever shown. */
    assert_null(strstr(out, user + 12));

    json_t *o = listed(&all, "prefix", prefix);
    assert_non_null(o);
    assert_string_equal(jstr(o, "user_id"), "list-alice");
    assert_string_equal(jstr(o, "role"), "user");
    assert_true(json_is_false(json_object_get(o, "revoked")));
    assert_true(json_is_null(json_object_get(o, "revoked_at")));
    assert_true(json_is_string(json_object_get(o, "created_at")));
    assert_null(json_object_get(o, "key_hash"));
    assert_null(json_object_get(o, "key"));
    assert_null(strstr(out, user + 12));
    assert_null(strstr(out, admin + 12));
    json_decref(all);
}

static void test_revoke_is_seen_by_every_instance(void **state)
{
    (void)state;
    char key[128], other[128], prefix[13], id[24];
    uc_test_api_t second;
    json_t *all = NULL;

    assert_int_equal(uc_test_api_key(&api, "rev-bob", "user", key, 128), 0);
    assert_int_equal(uc_test_api_key(&api, "rev-carol", "user", other, 128), 0);
    memset(&second, 0, sizeof(second));
    assert_int_equal(uc_test_api_start(&second, api.db_url, NULL), 0);
    assert_int_equal(status_of(&api, USER_ROUTE, key), 200);
    assert_int_equal(status_of(&second, USER_ROUTE, key), 200);

    fmt(prefix, sizeof(prefix), "%.12s", key);
    assert_int_equal(keys("revoke", prefix, NULL), 0);
    assert_non_null(strstr(out, "revoked key"));
    /* No bound to wait out: neither instance caches an auth result, so the
     * very next request on each is refused. */
    assert_int_equal(status_of(&api, USER_ROUTE, key), 401);
    assert_int_equal(status_of(&second, USER_ROUTE, key), 401);
    char xkey[140];
    fmt(xkey, sizeof(xkey), "X:%s", key);
    assert_int_equal(status_of(&second, USER_ROUTE, xkey), 401);
    /* Others are untouched. */
    assert_int_equal(status_of(&second, USER_ROUTE, other), 200);

    /* Twice is harmless and keeps the first time. */
    json_t *o = listed(&all, "prefix", prefix);
    assert_non_null(o);
    assert_true(json_is_true(json_object_get(o, "revoked")));
    char first[40];
    fmt(first, sizeof(first), "%s", jstr(o, "revoked_at"));
    fmt(id, sizeof(id), "%lld", jint(o, "id"));
    assert_int_equal(keys("revoke", id, NULL), 0);
    assert_non_null(strstr(out, "already revoked"));
    o = listed(&all, "prefix", prefix);
    assert_string_equal(jstr(o, "revoked_at"), first);

    /* Unknown keys are an error that says so. */
    const char *args[] = {"keys", "revoke", "uiq_00000000", NULL};
    assert_int_equal(
        uc_test_api_cli(&api, args, out, sizeof(out), err, sizeof(err)), 1);
    assert_non_null(strstr(err, "no such key"));
    const char *args2[] = {"keys", "revoke", "999999", NULL};
    assert_int_equal(
        uc_test_api_cli(&api, args2, out, sizeof(out), err, sizeof(err)), 1);
    const char *args3[] = {"keys", "revoke", NULL};
    assert_int_equal(
        uc_test_api_cli(&api, args3, out, sizeof(out), err, sizeof(err)), 2);

    assert_int_equal(uc_test_api_stop(&second), 0);
    uc_test_api_destroy(&second);
    json_decref(all);
}

/*
 * The original's api_keys table as `\copy (SELECT k.*, u.role FROM api_keys
 * k JOIN users u ON u.id = k.user_id) TO f CSV HEADER` writes it: scopes as
 * an array literal, quoted because of its commas; timestamps without a
 * zone; NULL as nothing.
 */
static void original_csv(char *buf, size_t cap)
{
    fmt(buf, cap,
        "id,user_id,key_hash,key_prefix,name,scopes,last_used_at,"
        "created_at,revoked_at,role\n"
        "7d7a9a52-55a4-4c39-9a0c-1f2f3e4d5a61,"
        "0b9f6c1e-2f6e-4d0a-9a38-6f8e2d1c4b01,%s,%.8s,"
        "\"Production, main\",\"{insights:read,alerts:write}\","
        "2024-02-01 12:00:00.5,2024-01-10 10:00:00.123456,,user\n"
        "8e8b0b63-66b5-4d4a-8b1d-2a3b4c5d6e72,"
        "1c0a7d2f-3a7f-4e1b-8b49-7a9f3e2d5c12,%s,%.8s,ops,{},,"
        "2024-01-11 09:30:00,,admin\n"
        "9f9c1c74-77c6-4e5b-9c2e-3b4c5d6e7f83,"
        "0b9f6c1e-2f6e-4d0a-9a38-6f8e2d1c4b01,%s,%.8s,\"old \"\"one\"\"\","
        "{},,2024-01-05 08:00:00,2024-03-01 00:00:00,user\n",
        h_user, k_user, h_admin, k_admin, h_gone, k_gone);
}

static void test_import_original_keys(void **state)
{
    (void)state;
    char csv[4096], path[600], xkey[80];
    json_t *all = NULL;
    api_res_t r;

    original_csv(csv, sizeof(csv));
    fmt(path, sizeof(path), "%s/api_keys.csv", dir);
    write_file(path, csv);
    assert_int_equal(status_of(&api, USER_ROUTE, k_user), 401);

    assert_int_equal(keys("import", path, NULL), 0);
    assert_non_null(strstr(out, "imported 3 key(s)"));

    /* The original's clients send X-API-Key; Bearer works as well. */
    fmt(xkey, sizeof(xkey), "X:%s", k_user);
    assert_int_equal(status_of(&api, USER_ROUTE, xkey), 200);
    assert_int_equal(status_of(&api, USER_ROUTE, k_user), 200);
    /* The role came from users.role: a user key may not call admin routes,
     * the admin key may. */
    assert_int_equal(status_of(&api, ADMIN_ROUTE, xkey), 403);
    fmt(xkey, sizeof(xkey), "X:%s", k_admin);
    assert_int_equal(status_of(&api, ADMIN_ROUTE, xkey), 200);
    /* Revoked in the original stays revoked. */
    fmt(xkey, sizeof(xkey), "X:%s", k_gone);
    assert_int_equal(status_of(&api, USER_ROUTE, xkey), 401);
    /* A near miss of a real key is no key. */
    char near[64];
    fmt(near, sizeof(near), "%s", k_user);
    near[5] ^= 1;
    assert_int_equal(status_of(&api, USER_ROUTE, near), 401);

    /* Requests act as the original's user id. */
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", k_user,
            "{\"insight_id\":\"keys-import-1\",\"rating\":4}", NULL);
    assert_status(&r, 200);
    assert_non_null(strstr(r.h.body, "0b9f6c1e-2f6e-4d0a-9a38-6f8e2d1c4b01"));
    api_free(&r);

    json_t *o =
        listed(&all, "origin_id", "7d7a9a52-55a4-4c39-9a0c-1f2f3e4d5a61");
    assert_non_null(o);
    assert_true(json_is_null(json_object_get(o, "prefix")));
    assert_string_equal(jstr(o, "origin_prefix"), "Zq3vR8yH");
    assert_string_equal(jstr(o, "name"), "Production, main");
    assert_string_equal(jstr(o, "created_at"), "2024-01-10T10:00:00.123456Z");
    assert_string_equal(jstr(o, "last_used_at"), "2024-02-01T12:00:00.500000Z");
    assert_null(strstr(out, h_user));
    size_t before = json_array_size(all);

    /* Again: nothing changes, and a key revoked here stays revoked. */
    assert_int_equal(
        keys("revoke", "9f9c1c74-77c6-4e5b-9c2e-3b4c5d6e7f83", NULL), 0);
    assert_int_equal(
        keys("revoke", "8e8b0b63-66b5-4d4a-8b1d-2a3b4c5d6e72", NULL), 0);
    assert_int_equal(keys("import", path, NULL), 0);
    o = listed(&all, "origin_id", "8e8b0b63-66b5-4d4a-8b1d-2a3b4c5d6e72");
    assert_int_equal(json_array_size(all), before);
    assert_true(json_is_true(json_object_get(o, "revoked")));
    assert_int_equal(status_of(&api, ADMIN_ROUTE, xkey), 401);
    fmt(xkey, sizeof(xkey), "X:%s", k_admin);
    assert_int_equal(status_of(&api, ADMIN_ROUTE, xkey), 401);
    assert_int_equal(status_of(&api, USER_ROUTE, k_user), 200);
    json_decref(all);
}

/* A file whose every line is checked before anything is written. */
static void expect_refused(const char *name, const char *text,
                           const char *want_line, const char *want_text)
{
    char path[600];
    fmt(path, sizeof(path), "%s/%s", dir, name);
    write_file(path, text);
    const char *args[] = {"keys", "import", path, NULL};
    int st = uc_test_api_cli(&api, args, out, sizeof(out), err, sizeof(err));
    if (st != 1 || strstr(err, want_line) == NULL ||
        strstr(err, want_text) == NULL ||
        strstr(err, "nothing imported") == NULL) {
        fprintf(stderr, "%s: exit %d, stderr: %s\n", name, st, err);
    }
    assert_int_equal(st, 1);
    assert_non_null(strstr(err, want_line));
    assert_non_null(strstr(err, want_text));
    assert_non_null(strstr(err, "nothing imported"));
}

static void test_bad_file_imports_nothing(void **state)
{
    (void)state;
    char text[4096];
    json_t *all = NULL;
    static const char good_hash[] =
        "1111111111111111111111111111111111111111111111111111111111111111";

    /* Line 2 is fine, line 3 is not: line 2 must not be imported. */
    fmt(text, sizeof(text),
        "id,user_id,key_hash,key_prefix,name,scopes,last_used_at,"
        "created_at,revoked_at\n"
        "bad-1,u-1,%s,abcdefgh,n,{},,2024-01-10 10:00:00,\n"
        "bad-2,u-1,not-a-hash,abcdefgh,n,{},,2024-01-10 10:00:00,\n",
        good_hash);
    expect_refused("bad_hash.csv", text, "line 3", "key_hash");
    fmt(text, sizeof(text),
        "id,user_id,key_hash,key_prefix,created_at,revoked_at\n"
        "bad-1,u-1,%s,abcdefgh,2024-01-10 10:00:00,\n"
        "bad-2,u-1,%s,abcdefgh,yesterday,\n",
        good_hash, good_hash);
    expect_refused("bad_time.csv", text, "line 3", "created_at");
    fmt(text, sizeof(text),
        "id,user_id,key_hash,key_prefix,created_at,revoked_at\n"
        "bad-1,u-1,%s,abcdefgh,2024-01-10 10:00:00\n",
        good_hash);
    expect_refused("short_row.csv", text, "line 2", "fields");
    fmt(text, sizeof(text),
        "id,user_id,key_prefix,created_at,revoked_at\n"
        "bad-1,u-1,abcdefgh,2024-01-10 10:00:00,\n");
    expect_refused("no_hash_column.csv", text, "line 1", "key_hash");
    fmt(text, sizeof(text),
        "id,user_id,key_hash,key_prefix,created_at\n"
        "bad-1,u-1,%s,abcdefgh,2024-01-10 10:00:00\n",
        good_hash);
    expect_refused("no_revoked_column.csv", text, "line 1", "revoked_at");
    fmt(text, sizeof(text),
        "id,user_id,key_hash,key_prefix,name,created_at,revoked_at\n"
        "bad-1,u-1,%s,abcdefgh,\"open,2024-01-10 10:00:00,\n",
        good_hash);
    expect_refused("open_quote.csv", text, "line 2", "unterminated");
    fmt(text, sizeof(text),
        "id,user_id,key_hash,key_prefix,created_at,revoked_at,role\n"
        "bad-1,u-1,%s,abcdefgh,2024-01-10 10:00:00,,owner\n",
        good_hash);
    expect_refused("bad_role.csv", text, "line 2", "role");
    fmt(text, sizeof(text),
        "{\"id\":\"bad-1\",\"user_id\":\"u-1\",\"key_hash\":\"%s\","
        "\"key_prefix\":\"abcdefgh\",\"created_at\":\"2024-01-10T10:00:00\","
        "\"revoked_at\":null}\n"
        "{\"id\":\"bad-2\",\"user_id\":\"u-1\",\"key_hash\":\"%s\"}\n",
        good_hash, good_hash);
    expect_refused("missing_field.jsonl", text, "line 2", "key_prefix");
    expect_refused("empty.csv", "", "line", "header");

    assert_null(listed(&all, "origin_id", "bad-1"));
    assert_null(listed(&all, "origin_id", "bad-2"));
    json_decref(all);
}

static void test_import_json_lines(void **state)
{
    (void)state;
    char text[2048], path[600];
    json_t *all = NULL;
    static const char key[] = "Jl9aB8cD7eF6gH5iJ4kL3mN2oP1qR0sT-uV_wXyZaBc";
    static const char hash[] =
        "ec94b8cc4a58fac5e7876ca8800ac058fd418fe2d7e89770b6d9970c0001799e";

    /* One JSON object a line (SELECT row_to_json(k) FROM api_keys k), the
     * scopes an array; no role column, so --role decides. */
    fmt(text, sizeof(text),
        "{\"id\":\"jl-1\",\"user_id\":\"svc-user\",\"key_hash\":\"%s\","
        "\"key_prefix\":\"%.8s\",\"name\":\"ingest\","
        "\"scopes\":[\"metrics:write\"],\"last_used_at\":null,"
        "\"created_at\":\"2024-01-12T08:00:00.25\",\"revoked_at\":null}\n",
        hash, key);
    fmt(path, sizeof(path), "%s/keys.jsonl", dir);
    write_file(path, text);
    assert_int_equal(keys("import", path, "--role=service"), 0);
    json_t *o = listed(&all, "origin_id", "jl-1");
    assert_non_null(o);
    assert_string_equal(jstr(o, "role"), "service");
    assert_string_equal(jstr(o, "user_id"), "svc-user");
    assert_string_equal(jstr(o, "created_at"), "2024-01-12T08:00:00.250000Z");
    /* Known, and a service: refused by role, not as an unknown key. */
    assert_int_equal(status_of(&api, USER_ROUTE, key), 403);
    json_decref(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_shows_keys_without_secrets),
        cmocka_unit_test(test_revoke_is_seen_by_every_instance),
        cmocka_unit_test(test_import_original_keys),
        cmocka_unit_test(test_bad_file_imports_nothing),
        cmocka_unit_test(test_import_json_lines),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
