/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the service's database URL handling (src/server/db/db.c):
 * uq_db_url_describe(), the password mask every log line and error message
 * about the database goes through, and uq_db_url_from_env(), which builds
 * the URL from DATABASE_URL or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME.
 *
 * Input: line 0 is described as a URL of its own. Lines 1-5 are the parts
 * of a PostgreSQL URL assembled here, "postgresql://U:P@H?password=Q&R"
 * (user, password, host/port/path, query password, other parameters), and
 * lines 1-5 are also DB_USER, DB_PASSWORD, DB_HOST, DB_PORT and DB_NAME.
 *
 * Invariants checked besides memory safety:
 *   - the description is NUL-terminated inside any buffer size, and a short
 *     buffer holds a prefix of what a long one gets;
 *   - a URL without "://" (a SQLite path) is described as itself;
 *   - no password reaches the description. Checked differentially: the
 *     assembled URL is described again with every letter and digit of both
 *     passwords replaced, and the two descriptions must be equal. The parts
 *     are first cut to what a URL reader could take for them (no '@' in the
 *     host part, no '?' or '#' in the password, no '&' or '#' in the query
 *     password), so the check holds whatever else they contain; a password
 *     holding '@', '/' or ':' is part of the test;
 *   - the same for a URL built by uq_db_url_from_env() with DB_PASSWORD
 *     rotated; and DATABASE_URL, when set, is taken as it is.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "fuzz_util.h"

#define DESC_BIG 4096

/* Checks a description against the one a large buffer received. */
static void check_short(const char *url, const char *big)
{
    static const size_t caps[] = {1, 2, 7, 16, 40};
    char small[40];

    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        size_t cap = caps[i];
        memset(small, 'x', sizeof(small));
        uq_db_url_describe(url, small, cap);
        size_t n = strnlen(small, cap);
        UC_FUZZ_CHECK(n < cap);
        UC_FUZZ_CHECK(strncmp(small, big, n) == 0);
    }
}

/* Removes every byte of `drop` from s (in place). */
static void strip(char *s, const char *drop)
{
    char *o = s;
    for (const char *p = s; *p != '\0'; p++) {
        if (strchr(drop, *p) == NULL) {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* A heap copy of line i (up to its first NUL), or "" when absent. */
static char *part(const uc_fuzz_lines_t *l, size_t i, const char *drop)
{
    const char *s = i < l->n ? l->line[i] : "";
    char *c = uc_fuzz_strndup(s, strlen(s));
    if (c != NULL) {
        strip(c, drop);
    }
    return c;
}

/* "postgresql://U:P@H?password=Q&R" into a heap buffer. */
static char *assemble(const char *u, const char *p, const char *h,
                      const char *q, const char *r)
{
    size_t n = strlen(u) + strlen(p) + strlen(h) + strlen(q) + strlen(r) + 64;
    char *url = malloc(n);
    if (url != NULL) {
        snprintf(url, n, "postgresql://%s:%s@%s?password=%s&%s", u, p, h, q, r);
    }
    return url;
}

static void assembled_urls(const uc_fuzz_lines_t *l)
{
    char *u = part(l, 1, "?#");
    char *p = part(l, 2, "?#");
    char *h = part(l, 3, "@?#");
    char *q = part(l, 4, "&#");
    char *r = part(l, 5, "");
    char *a = NULL, *b = NULL;
    char da[DESC_BIG], db[DESC_BIG];

    if (u == NULL || p == NULL || h == NULL || q == NULL || r == NULL) {
        goto out;
    }
    a = assemble(u, p, h, q, r);
    uc_fuzz_rotate_secret(p, strlen(p));
    uc_fuzz_rotate_secret(q, strlen(q));
    b = assemble(u, p, h, q, r);
    if (a == NULL || b == NULL) {
        goto out;
    }
    uq_db_url_describe(a, da, sizeof(da));
    uq_db_url_describe(b, db, sizeof(db));
    if (strlen(a) + 16 < sizeof(da)) {
        UC_FUZZ_CHECK(strcmp(da, db) == 0);
    }
    check_short(a, da);
out:
    free(a);
    free(b);
    free(u);
    free(p);
    free(h);
    free(q);
    free(r);
}

/* Sets name to line i, or unsets it when the line is absent or empty. */
static void env_from(const uc_fuzz_lines_t *l, size_t i, const char *name)
{
    if (i < l->n && l->line[i][0] != '\0') {
        setenv(name, l->line[i], 1);
    } else {
        unsetenv(name);
    }
}

static void from_env(const uc_fuzz_lines_t *l)
{
    char a[1024], b[1024], da[DESC_BIG], db[DESC_BIG];
    char *pw = part(l, 2, "");
    int ra, rb;

    if (pw == NULL) {
        return;
    }
    unsetenv("DATABASE_URL");
    env_from(l, 1, "DB_USER");
    env_from(l, 3, "DB_HOST");
    env_from(l, 4, "DB_PORT");
    env_from(l, 5, "DB_NAME");
    env_from(l, 2, "DB_PASSWORD");
    ra = uq_db_url_from_env(a, sizeof(a), "sqlite:fallback.db");
    uc_fuzz_rotate_secret(pw, strlen(pw));
    if (pw[0] != '\0') {
        setenv("DB_PASSWORD", pw, 1);
    }
    rb = uq_db_url_from_env(b, sizeof(b), "sqlite:fallback.db");
    UC_FUZZ_CHECK(ra == rb);
    if (ra == UQ_DB_OK) {
        uq_db_url_describe(a, da, sizeof(da));
        uq_db_url_describe(b, db, sizeof(db));
        UC_FUZZ_CHECK(strcmp(da, db) == 0);
    } else {
        UC_FUZZ_CHECK(a[0] == '\0'); /* nothing half-built left behind */
    }

    /* DATABASE_URL wins over the parts and is taken as it is. */
    if (l->n > 0 && l->line[0][0] != '\0') {
        setenv("DATABASE_URL", l->line[0], 1);
        ra = uq_db_url_from_env(a, sizeof(a), "sqlite:fallback.db");
        if (strlen(l->line[0]) < sizeof(a)) {
            UC_FUZZ_CHECK(ra == UQ_DB_OK);
            UC_FUZZ_CHECK(strcmp(a, l->line[0]) == 0);
        } else {
            UC_FUZZ_CHECK(ra != UQ_DB_OK);
        }
        unsetenv("DATABASE_URL");
    }
    free(pw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uc_fuzz_lines_t l;
    char d[DESC_BIG];

    if (size > 2048 || uc_fuzz_lines_init(&l, data, size) != 0) {
        return 0;
    }
    uq_db_url_describe(l.line[0], d, sizeof(d));
    if (strstr(l.line[0], "://") == NULL && strlen(l.line[0]) < sizeof(d)) {
        UC_FUZZ_CHECK(strcmp(d, l.line[0]) == 0);
    }
    check_short(l.line[0], d);
    assembled_urls(&l);
    from_env(&l);
    uc_fuzz_lines_release(&l);
    return 0;
}
