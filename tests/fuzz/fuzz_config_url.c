/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the configuration parsers: uc_config_parse_url() on the
 * first line of the input, and uc_config_from_lookup() over a variable table
 * decoded from every line of the input as NAME=VALUE.
 *
 * Invariants checked besides memory safety:
 *   - a parsed URL has a non-empty host, a port in 1..65535 and a db >= 0,
 *     and a failed parse leaves the configuration untouched;
 *   - the error message is NUL-terminated inside any buffer size, and a short
 *     buffer holds a prefix of the message a long one gets;
 *   - passwords never reach a message. Checked differentially: the input is
 *     parsed a second time with every letter and digit of the password
 *     replaced (the URL's user-info password and REDIS_PASSWORD), and the
 *     status, the message and the uc_config_describe() line must not change.
 *     A message that quoted the password would differ, and this holds
 *     whatever else the URL contains, so it never raises a false alarm.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "utxocache/utxocache.h"

#define ERR_BIG 1024

/*
 * Finds the password of a URL the way its masking and parsing do: after the
 * first ':' of the authority (the text after "://", or the whole URL without
 * one) and before the last '@' that precedes the path. Returns 0 and the
 * span, or -1 when the URL has no password part.
 */
static int password_span(const char *url, size_t *off, size_t *len)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme != NULL ? scheme + 3 : url;
    const char *end = strchr(auth, '/');
    const char *at = NULL, *colon;

    if (end == NULL) {
        end = auth + strlen(auth);
    }
    for (const char *p = auth; p < end; p++) {
        if (*p == '@') {
            at = p;
        }
    }
    if (at == NULL) {
        return -1;
    }
    colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL) {
        return -1;
    }
    *off = (size_t)(colon + 1 - url);
    *len = (size_t)(at - colon - 1);
    return 0;
}

/* A copy of url with its password rotated; *changed is how many bytes. */
static char *rotated_url(const char *url, size_t *changed)
{
    size_t off, len;
    char *copy = uc_fuzz_strndup(url, strlen(url));

    *changed = 0;
    if (copy != NULL && password_span(copy, &off, &len) == 0) {
        *changed = uc_fuzz_rotate_secret(copy + off, len);
    }
    return copy;
}

/* Checks an error message against the one a large buffer received. */
static void check_short_err(const char *big, const char *small, size_t cap)
{
    if (cap == 0) {
        return;
    }
    size_t n = strnlen(small, cap);
    UC_FUZZ_CHECK(n < cap);
    UC_FUZZ_CHECK(strncmp(small, big, n) == 0);
}

static void fuzz_parse_url(const char *url, size_t small_cap)
{
    uc_config_t before, a, b;
    char *err_a = calloc(1, ERR_BIG), *err_b = calloc(1, ERR_BIG);
    char *err_s = malloc(small_cap > 0 ? small_cap : 1);
    char desc_a[600], desc_b[600];
    size_t changed;
    char *url_b = rotated_url(url, &changed);
    int rc_a, rc_b, rc_s;

    if (err_a == NULL || err_b == NULL || err_s == NULL || url_b == NULL) {
        goto cleanup;
    }
    /* memcpy, not '=': the untouched-on-failure check compares padding. */
    uc_config_init(&before);
    before.port = 1234;
    before.db = 7;
    memcpy(&a, &before, sizeof(a));
    rc_a = uc_config_parse_url(&a, url, err_a, ERR_BIG);
    UC_FUZZ_CHECK(rc_a == UC_OK || rc_a == UC_ECONFIG);
    if (rc_a == UC_OK) {
        UC_FUZZ_CHECK(a.host[0] != '\0');
        UC_FUZZ_CHECK(memchr(a.host, '\0', sizeof(a.host)) != NULL);
        UC_FUZZ_CHECK(memchr(a.username, '\0', sizeof(a.username)) != NULL);
        UC_FUZZ_CHECK(memchr(a.password, '\0', sizeof(a.password)) != NULL);
        UC_FUZZ_CHECK(a.port >= 1 && a.port <= 65535);
        UC_FUZZ_CHECK(a.db >= 0);
    } else {
        UC_FUZZ_CHECK(memcmp(&a, &before, sizeof(a)) == 0);
        UC_FUZZ_CHECK(strnlen(err_a, ERR_BIG) > 0);
        UC_FUZZ_CHECK(strnlen(err_a, ERR_BIG) < ERR_BIG);
    }

    /* The same parse into a buffer of any size, even 0 bytes. */
    b = before;
    rc_s = uc_config_parse_url(&b, url, err_s, small_cap);
    UC_FUZZ_CHECK(rc_s == rc_a);
    if (rc_a != UC_OK) {
        check_short_err(err_a, err_s, small_cap);
    }

    if (changed == 0) {
        goto cleanup;
    }
    b = before;
    rc_b = uc_config_parse_url(&b, url_b, err_b, ERR_BIG);
    UC_FUZZ_CHECK(rc_b == rc_a);
    if (rc_a != UC_OK) {
        UC_FUZZ_CHECK(strcmp(err_a, err_b) == 0);
        goto cleanup;
    }
    UC_FUZZ_CHECK(strcmp(a.host, b.host) == 0);
    UC_FUZZ_CHECK(strcmp(a.username, b.username) == 0);
    UC_FUZZ_CHECK(a.port == b.port && a.db == b.db);
    UC_FUZZ_CHECK(strcmp(a.password, b.password) != 0);
    uc_config_describe(&a, desc_a, sizeof(desc_a));
    uc_config_describe(&b, desc_b, sizeof(desc_b));
    UC_FUZZ_CHECK(strcmp(desc_a, desc_b) == 0);

cleanup:
    free(err_a);
    free(err_b);
    free(err_s);
    free(url_b);
}

/* The variable table of one run: NAME=VALUE lines, first one wins. */
typedef struct {
    size_t n;
    const char *name[UC_FUZZ_LINES_MAX];
    const char *value[UC_FUZZ_LINES_MAX];
} vars_t;

static const char *vars_lookup(void *arg, const char *name)
{
    const vars_t *v = arg;

    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->name[i], name) == 0) {
            return v->value[i];
        }
    }
    return NULL;
}

/*
 * Builds the table from the lines (cut at the first '='; the lines are
 * modified). With `rotate` set, REDIS_PASSWORD values and the password of
 * REDIS_URL values are rotated; returns how many bytes that changed.
 */
static size_t vars_init(vars_t *v, uc_fuzz_lines_t *l, int rotate)
{
    size_t changed = 0;

    v->n = 0;
    for (size_t i = 0; i < l->n; i++) {
        char *eq = strchr(l->line[i], '=');
        if (eq == NULL) {
            continue;
        }
        *eq = '\0';
        v->name[v->n] = l->line[i];
        v->value[v->n] = eq + 1;
        if (rotate && strcmp(l->line[i], "REDIS_PASSWORD") == 0) {
            changed += uc_fuzz_rotate_secret(eq + 1, strlen(eq + 1));
        } else if (rotate && strcmp(l->line[i], "REDIS_URL") == 0) {
            size_t off, len;
            if (password_span(eq + 1, &off, &len) == 0) {
                changed += uc_fuzz_rotate_secret(eq + 1 + off, len);
            }
        }
        v->n++;
    }
    return changed;
}

static void check_loaded(const uc_config_t *c, vars_t *v)
{
    const char *url = vars_lookup(v, "REDIS_URL");

    UC_FUZZ_CHECK(memchr(c->host, '\0', sizeof(c->host)) != NULL);
    UC_FUZZ_CHECK(memchr(c->password, '\0', sizeof(c->password)) != NULL);
    UC_FUZZ_CHECK(memchr(c->key_prefix, '\0', sizeof(c->key_prefix)) != NULL);
    UC_FUZZ_CHECK(c->port >= 0 && c->port <= 65535);
    UC_FUZZ_CHECK(c->db >= 0);
    if (url != NULL && url[0] != '\0') {
        UC_FUZZ_CHECK(c->host[0] != '\0');
        UC_FUZZ_CHECK(c->port >= 1);
    }
    if (c->backend == UC_BACKEND_REDIS) {
        UC_FUZZ_CHECK(c->host[0] != '\0');
    }
    UC_FUZZ_CHECK(c->backend == UC_BACKEND_AUTO ||
                  c->backend == UC_BACKEND_MEMORY ||
                  c->backend == UC_BACKEND_REDIS);
    UC_FUZZ_CHECK(c->n_ttl_overrides <= UC_TTL_OVERRIDES_MAX);
    for (size_t i = 0; i < c->n_ttl_overrides; i++) {
        UC_FUZZ_CHECK((c->ttl_overrides[i].set & UC_OVERRIDE_TTL) == 0 ||
                      c->ttl_overrides[i].ttl_s >= 1);
    }
    for (const char *p = c->key_prefix; *p != '\0'; p++) {
        UC_FUZZ_CHECK(strchr("*?[]\\{} %", *p) == NULL);
    }
}

static void fuzz_lookup(const uint8_t *data, size_t size, size_t small_cap)
{
    static const char *const ks_names[] = {"feedback_stats", "backfill_job",
                                           "recent_metrics",
                                           "aggregated_metrics"};
    const size_t nks = sizeof(ks_names) / sizeof(ks_names[0]);
    uc_fuzz_lines_t la = {0}, lb = {0};
    vars_t va, vb;
    uc_config_t a, b;
    char *err_a = calloc(1, ERR_BIG), *err_b = calloc(1, ERR_BIG);
    char *err_s = malloc(small_cap > 0 ? small_cap : 1);
    char desc_a[600], desc_b[600];
    size_t changed;
    int rc_a, rc_b, rc_s;

    if (err_a == NULL || err_b == NULL || err_s == NULL ||
        uc_fuzz_lines_init(&la, data, size) != 0 ||
        uc_fuzz_lines_init(&lb, data, size) != 0) {
        goto cleanup;
    }
    vars_init(&va, &la, 0);
    changed = vars_init(&vb, &lb, 1);

    uc_config_init(&a);
    rc_a = uc_config_from_lookup(&a, vars_lookup, &va, ks_names, nks, err_a,
                                 ERR_BIG);
    UC_FUZZ_CHECK(rc_a == UC_OK || rc_a == UC_ECONFIG);
    if (rc_a == UC_OK) {
        check_loaded(&a, &va);
    } else {
        UC_FUZZ_CHECK(strnlen(err_a, ERR_BIG) > 0);
        UC_FUZZ_CHECK(strnlen(err_a, ERR_BIG) < ERR_BIG);
    }

    uc_config_init(&b);
    rc_s = uc_config_from_lookup(&b, vars_lookup, &va, ks_names, nks, err_s,
                                 small_cap);
    UC_FUZZ_CHECK(rc_s == rc_a);
    if (rc_a != UC_OK) {
        check_short_err(err_a, err_s, small_cap);
    }

    if (changed == 0) {
        goto cleanup;
    }
    uc_config_init(&b);
    rc_b = uc_config_from_lookup(&b, vars_lookup, &vb, ks_names, nks, err_b,
                                 ERR_BIG);
    UC_FUZZ_CHECK(rc_b == rc_a);
    if (rc_a != UC_OK) {
        UC_FUZZ_CHECK(strcmp(err_a, err_b) == 0);
        goto cleanup;
    }
    uc_config_describe(&a, desc_a, sizeof(desc_a));
    uc_config_describe(&b, desc_b, sizeof(desc_b));
    UC_FUZZ_CHECK(strcmp(desc_a, desc_b) == 0);

cleanup:
    uc_fuzz_lines_release(&la);
    uc_fuzz_lines_release(&lb);
    free(err_a);
    free(err_b);
    free(err_s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A short error buffer of a size the input picks, 0 included. */
    size_t small_cap = size % 41;
    uc_fuzz_lines_t l;

    if (uc_fuzz_lines_init(&l, data, size) != 0) {
        return 0;
    }
    fuzz_parse_url(l.line[0], small_cap);
    uc_fuzz_lines_release(&l);
    fuzz_lookup(data, size, small_cap);
    return 0;
}
