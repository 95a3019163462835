/* SPDX-License-Identifier: MIT */
/*
 * The backend-neutral half of the database interface: choosing a backend
 * from a URL, building that URL from the environment, the uq_db_* wrappers
 * that dispatch through a handle's method table, and the helpers that free
 * what the methods hand back.
 */
#include "db.h"
#include "db_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t uq_db_interval_width_us(uq_db_interval_t iv)
{
    switch (iv) {
    case UQ_DB_DAY:
        return INT64_C(86400) * 1000000;
    case UQ_DB_WEEK:
        return INT64_C(604800) * 1000000;
    case UQ_DB_HOUR:
    default:
        return INT64_C(3600) * 1000000;
    }
}

int64_t uq_db_interval_origin_us(uq_db_interval_t iv)
{
    return iv == UQ_DB_WEEK ? INT64_C(345600) * 1000000 : 0;
}

/* Appends s percent-encoded (all but unreserved bytes) to buf at *pos. */
static int put_encoded(char *buf, size_t cap, size_t *pos, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
                    *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (*pos + need >= cap) {
            return -1;
        }
        if (plain) {
            buf[(*pos)++] = (char)*p;
        } else {
            buf[(*pos)++] = '%';
            buf[(*pos)++] = hex[*p >> 4];
            buf[(*pos)++] = hex[*p & 15];
        }
    }
    buf[*pos] = '\0';
    return 0;
}

static int put_raw(char *buf, size_t cap, size_t *pos, const char *s)
{
    size_t len = strlen(s);
    if (*pos + len >= cap) {
        return -1;
    }
    memcpy(buf + *pos, s, len + 1);
    *pos += len;
    return 0;
}

int uq_db_url_from_env(char *buf, size_t cap, const char *fallback)
{
    const char *url = getenv("DATABASE_URL");
    const char *host = getenv("DB_HOST");
    size_t pos = 0;

    if (cap == 0) {
        return UQ_DB_ECONFIG;
    }
    buf[0] = '\0';
    if (url != NULL && url[0] != '\0') {
        return put_raw(buf, cap, &pos, url) == 0 ? UQ_DB_OK : UQ_DB_ECONFIG;
    }
    if (host == NULL || host[0] == '\0') {
        return put_raw(buf, cap, &pos, fallback) == 0 ? UQ_DB_OK
                                                      : UQ_DB_ECONFIG;
    }
    const char *port = getenv("DB_PORT");
    const char *user = getenv("DB_USER");
    const char *pass = getenv("DB_PASSWORD");
    const char *name = getenv("DB_NAME");
    int bad = put_raw(buf, cap, &pos, "postgresql://");
    if (user != NULL && user[0] != '\0') {
        bad |= put_encoded(buf, cap, &pos, user);
        if (pass != NULL && pass[0] != '\0') {
            bad |= put_raw(buf, cap, &pos, ":");
            bad |= put_encoded(buf, cap, &pos, pass);
        }
        bad |= put_raw(buf, cap, &pos, "@");
    }
    bad |= put_encoded(buf, cap, &pos, host);
    bad |= put_raw(buf, cap, &pos, ":");
    bad |= put_encoded(buf, cap, &pos,
                       port != NULL && port[0] != '\0' ? port : "5432");
    bad |= put_raw(buf, cap, &pos, "/");
    bad |= put_encoded(buf, cap, &pos,
                       name != NULL && name[0] != '\0' ? name : "utxoiq");
    if (bad != 0) {
        buf[0] = '\0';
        return UQ_DB_ECONFIG;
    }
    return UQ_DB_OK;
}

/* Appends len bytes of s at *pos, cut to what cap leaves room for; buf
 * stays NUL-terminated. A description may be cut short, never unmasked. */
static void put_cut(char *buf, size_t cap, size_t *pos, const char *s,
                    size_t len)
{
    size_t room = cap - 1 - *pos;
    if (len > room) {
        len = room;
    }
    memcpy(buf + *pos, s, len);
    *pos += len;
    buf[*pos] = '\0';
}

/*
 * How the mask finds the password. The userinfo runs from after "://" to
 * the LAST '@' before the query ('?') or fragment ('#'): a password may
 * hold an unencoded '@', '/' or ':' (libpq would split at the first '@' and
 * treat the rest as the host, so a log line cut there would print the tail
 * of the password), while the host, port and database name never hold an
 * '@'. The password is everything after the first ':' of the userinfo.
 * Then every "password=" parameter of the query is masked up to its '&' or
 * '#'. Anything without "://" (a SQLite path) is copied as it is. A '?' or
 * '#' inside a password ends the userinfo early, as it would for any URL
 * reader; such a password must be percent-encoded.
 */
void uq_db_url_describe(const char *url, char *buf, size_t cap)
{
    const char *auth = strstr(url, "://");
    const char *p = url;
    const char *at = NULL;
    const char *colon = NULL;
    size_t pos = 0;

    if (cap == 0) {
        return;
    }
    buf[0] = '\0';
    if (auth == NULL) {
        put_cut(buf, cap, &pos, url, strlen(url));
        return;
    }
    auth += 3;
    const char *stop = auth + strcspn(auth, "?#");
    for (const char *q = auth; q < stop; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    if (at != NULL) {
        colon = memchr(auth, ':', (size_t)(at - auth));
    }
    if (colon != NULL) {
        put_cut(buf, cap, &pos, url, (size_t)(colon + 1 - url));
        put_cut(buf, cap, &pos, "***", 3);
        p = at;
    }
    /* Up to and including the '?' that starts the query, if any. */
    const char *query = *stop == '?' ? stop : NULL;
    if (query == NULL) {
        put_cut(buf, cap, &pos, p, strlen(p));
        return;
    }
    put_cut(buf, cap, &pos, p, (size_t)(query + 1 - p));
    p = query + 1;
    while (*p != '\0' && *p != '#') {
        size_t n = strcspn(p, "&#");
        if (n >= 9 && strncmp(p, "password=", 9) == 0) {
            put_cut(buf, cap, &pos, "password=***", 12);
        } else {
            put_cut(buf, cap, &pos, p, n);
        }
        p += n;
        if (*p == '&') {
            put_cut(buf, cap, &pos, "&", 1);
            p++;
        }
    }
    put_cut(buf, cap, &pos, p, strlen(p));
}

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/*
 * 1 when the user-info of a PostgreSQL URL, as the mask sees it (up to the
 * last '@' before the query), holds another '@' or a '/'. libpq splits at
 * the first '@', or sees no user-info at all when a '/' comes first, and
 * then quotes what it took for the host or port in its error message: the
 * rest of the password, past any mask. Such a URL cannot connect as meant
 * anyway, so it is refused before libpq sees it.
 */
static int ambiguous_userinfo(const char *url)
{
    const char *auth = strstr(url, "://");
    const char *stop, *at = NULL;

    if (auth == NULL) {
        return 0;
    }
    auth += 3;
    stop = auth + strcspn(auth, "?#");
    for (const char *q = auth; q < stop; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    if (at == NULL) {
        return 0;
    }
    for (const char *q = auth; q < at; q++) {
        if (*q == '@' || *q == '/') {
            return 1;
        }
    }
    return 0;
}

static int open_url(const uq_db_options_t *opt, uq_db_t **out, char *err,
                    size_t errlen)
{
    const char *url = opt != NULL ? opt->url : NULL;

    if (url == NULL || url[0] == '\0') {
        snprintf(err, errlen, "open database: empty DATABASE_URL");
        return UQ_DB_ECONFIG;
    }
    if (has_prefix(url, "postgresql://") || has_prefix(url, "postgres://")) {
        if (ambiguous_userinfo(url)) {
            snprintf(err, errlen,
                     "open database: DATABASE_URL has '@' or '/' in its user "
                     "or password (or '@' in the database name); "
                     "percent-encode them as %%40 and %%2F");
            return UQ_DB_ECONFIG;
        }
#ifdef UC_HAVE_PG
        return uq_db_pg_open(opt, out, err, errlen);
#else
        snprintf(err, errlen,
                 "open database: this build has no PostgreSQL backend");
        return UQ_DB_ECONFIG;
#endif
    }
    if (has_prefix(url, "sqlite:") || strstr(url, "://") == NULL) {
        return uq_db_sqlite_open(opt, out, err, errlen);
    }
    snprintf(err, errlen, "open database: unknown scheme in DATABASE_URL");
    return UQ_DB_ECONFIG;
}

int uq_db_open(const uq_db_options_t *opt, uq_db_t **out, char *err,
               size_t errlen)
{
    int st = open_url(opt, out, err, errlen);

    if (st == UQ_DB_OK) {
        /* Both backends' default when the option is 0. */
        (*out)->pool_size = opt->pool_size > 0 ? opt->pool_size : 8;
    }
    return st;
}

void uq_db_close(uq_db_t *db)
{
    if (db != NULL) {
        db->methods->close(db);
    }
}

const char *uq_db_backend_name(const uq_db_t *db)
{
    return db->methods->name;
}

int uq_db_migrate(uq_db_t *db, int *applied)
{
    return db->methods->migrate(db, applied);
}

/* ---- query figures ----------------------------------------------------------
 * Every call below borrows one pooled connection for its whole duration, so
 * the calls in flight are the pool's connections checked out, and their
 * durations are the database's answer times as this service saw them. */

static int64_t q_begin(uq_db_t *db)
{
    atomic_fetch_add_explicit(&db->q_inflight, 1, memory_order_relaxed);
    return (int64_t)uq__db_mono_us();
}

static int q_end(uq_db_t *db, int64_t t0, int st)
{
    int64_t d = (int64_t)uq__db_mono_us() - t0;

    atomic_fetch_sub_explicit(&db->q_inflight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&db->q_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&db->q_total_us, (uint64_t)(d > 0 ? d : 0),
                              memory_order_relaxed);
    if (d > UQ_DB_SLOW_QUERY_US) {
        atomic_fetch_add_explicit(&db->q_slow, 1, memory_order_relaxed);
    }
    return st;
}

void uq_db_figures(uq_db_t *db, uq_db_figures_t *out)
{
    uq__db_pool_figures_t pf;

    uq__db_pool_figures(db->pool, &pf);
    memset(out, 0, sizeof(*out));
    out->open = pf.open;
    out->idle = pf.idle;
    out->connects = pf.connects;
    out->connect_failures = pf.connect_failures;
    out->dropped = pf.dropped;
    out->waits = pf.waits;
    out->timeouts = pf.timeouts;
    out->pool_size = db->pool_size;
    /* The pool's own count where there is one: a call waiting for a
     * connection holds none yet. */
    out->checked_out =
        db->pool != NULL
            ? pf.lent
            : atomic_load_explicit(&db->q_inflight, memory_order_relaxed);
    out->queries = atomic_load_explicit(&db->q_count, memory_order_relaxed);
    out->slow = atomic_load_explicit(&db->q_slow, memory_order_relaxed);
    out->total_us = atomic_load_explicit(&db->q_total_us, memory_order_relaxed);
}

int uq_db_ping(uq_db_t *db)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0, db->methods->ping(db));
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int uq_db_write_probe(uq_db_t *db, int max_age_ms)
{
    int64_t now = (int64_t)uq__db_mono_us();
    int64_t at = atomic_load(&db->probe_at_us);
    int expect = 0;

    if (at != 0 && now - at < (int64_t)max_age_ms * 1000) {
        return atomic_load(&db->probe_status);
    }
    /* One probe at a time; the others take the last result. */
    if (!atomic_compare_exchange_strong(&db->probing, &expect, 1)) {
        return atomic_load(&db->probe_status);
    }
    int64_t q0 = q_begin(db);
    int st = q_end(db, q0, db->methods->probe_write(db, wall_us()));
    atomic_store(&db->probe_status, st);
    atomic_store(&db->probe_at_us, (int64_t)uq__db_mono_us());
    atomic_store(&db->probing, 0);
    return st;
}

int uq_db_write_probe_cached(uq_db_t *db)
{
    return atomic_load(&db->probe_status);
}

/* A write that found the database unable to write says so to readiness at
 * once, without waiting for the next probe. */
static int noted(uq_db_t *db, int st)
{
    if (st == UQ_DB_EREADONLY) {
        atomic_store(&db->probe_status, st);
        atomic_store(&db->probe_at_us, (int64_t)uq__db_mono_us());
    }
    return st;
}

/* 1 when s is 1..max bytes of printable ASCII. */
static int printable(const char *s, size_t max)
{
    size_t i = 0;

    if (s == NULL) {
        return 0;
    }
    for (; s[i] != '\0'; i++) {
        if (i >= max || s[i] < 0x20 || s[i] > 0x7e) {
            return 0;
        }
    }
    return i > 0;
}

/*
 * Checks the records a write or an append would insert, so that a bad one
 * is refused before any SQL runs (the schema's CHECKs are the second line).
 * Returns UQ_DB_OK or UQ_DB_EINVAL.
 */
static int inval_check(const uq_db_inval_t *inv, size_t n)
{
    if (n == 0) {
        return UQ_DB_OK;
    }
    if (inv == NULL || n > UQ_DB_INVAL_BATCH_MAX) {
        return UQ_DB_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!printable(inv[i].keyspace, UQ_DB_INVAL_KEYSPACE_MAX - 1) ||
            !printable(inv[i].target, UQ_DB_INVAL_TARGET_MAX - 1)) {
            return UQ_DB_EINVAL;
        }
    }
    return UQ_DB_OK;
}

int uq_db_feedback_upsert(uq_db_t *db, const uq_db_feedback_write_t *w,
                          uq_db_feedback_t *out, const uq_db_inval_t *inv,
                          size_t ninv, int64_t *inv_ids)
{
    int st = inval_check(inv, ninv);
    if (st != UQ_DB_OK) {
        return st;
    }
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 noted(db, db->methods->feedback_upsert(db, w, out, inv, ninv,
                                                        inv_ids)));
}

int uq_db_feedback_stats(uq_db_t *db, const char *insight_id,
                         uq_db_feedback_stats_t *out)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0, db->methods->feedback_stats(db, insight_id, out));
}

int uq_db_feedback_comments(uq_db_t *db, const char *insight_id, int limit,
                            int offset, uq_db_feedback_t **rows, size_t *n,
                            int64_t *total)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 db->methods->feedback_comments(db, insight_id, limit, offset,
                                                rows, n, total));
}

int uq_db_feedback_by_user(uq_db_t *db, const char *user_id, int limit,
                           int offset, uq_db_feedback_t **rows, size_t *n,
                           int64_t *total)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 db->methods->feedback_by_user(db, user_id, limit, offset, rows,
                                               n, total));
}

int uq_db_job_create(uq_db_t *db, const uq_db_job_t *job,
                     const uq_db_inval_t *inv, size_t ninv, int64_t *inv_ids)
{
    int st = inval_check(inv, ninv);
    if (st != UQ_DB_OK) {
        return st;
    }
    int64_t q0 = q_begin(db);
    return q_end(
        db, q0,
        noted(db, db->methods->job_create(db, job, inv, ninv, inv_ids)));
}

int uq_db_job_progress(uq_db_t *db, const char *job_id,
                       const uq_db_job_progress_t *p, uq_db_job_t *out,
                       const uq_db_inval_t *inv, size_t ninv, int64_t *inv_ids)
{
    int st = inval_check(inv, ninv);
    if (st != UQ_DB_OK) {
        return st;
    }
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 noted(db, db->methods->job_progress(db, job_id, p, out, inv,
                                                     ninv, inv_ids)));
}

int uq_db_job_get(uq_db_t *db, const char *job_id, uq_db_job_t *out)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0, db->methods->job_get(db, job_id, out));
}

int uq_db_job_list(uq_db_t *db, const char *status, const char *job_type,
                   int limit, int offset, uq_db_job_t **rows, size_t *n,
                   int64_t *total)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 db->methods->job_list(db, status, job_type, limit, offset,
                                       rows, n, total));
}

int uq_db_metrics_insert(uq_db_t *db, const uq_db_metric_new_t *in, size_t n,
                         uq_db_metric_t *out, const uq_db_inval_t *inv,
                         size_t ninv, int64_t *inv_ids)
{
    int st = inval_check(inv, ninv);
    if (st != UQ_DB_OK) {
        return st;
    }
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 noted(db, db->methods->metrics_insert(db, in, n, out, inv,
                                                       ninv, inv_ids)));
}

int uq_db_metrics_list(uq_db_t *db, const uq_db_metric_filter_t *f, int limit,
                       int offset, uq_db_metric_t **rows, size_t *n)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 db->methods->metrics_list(db, f, limit, offset, rows, n));
}

int uq_db_metrics_aggregate(uq_db_t *db, const char *service_name,
                            const char *metric_type, uq_db_interval_t iv,
                            int64_t start, int64_t end, uq_db_bucket_t **rows,
                            size_t *n)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 db->methods->metrics_aggregate(db, service_name, metric_type,
                                                iv, start, end, rows, n));
}

int uq_db_retention_run(uq_db_t *db, const uq_db_retention_cutoffs_t *c,
                        uq_db_retention_t *out, const uq_db_inval_t *inv,
                        size_t ninv, int64_t *inv_ids)
{
    int st = inval_check(inv, ninv);
    if (st != UQ_DB_OK) {
        return st;
    }
    int64_t q0 = q_begin(db);
    return q_end(
        db, q0,
        noted(db, db->methods->retention_run(db, c, out, inv, ninv, inv_ids)));
}

int uq_db_api_key_create(uq_db_t *db, const uq_db_api_key_t *key)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0, noted(db, db->methods->api_key_create(db, key)));
}

int uq_db_api_key_lookup(uq_db_t *db, const char *prefix, uq_db_api_key_t *out)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0, db->methods->api_key_lookup(db, prefix, out));
}

int uq_db_api_key_lookup_hash(uq_db_t *db, const char *hash_hex,
                              uq_db_api_key_t *out)
{
    if (hash_hex == NULL || strlen(hash_hex) != UQ_DB_HASH_HEX_LEN) {
        return UQ_DB_EINVAL;
    }
    int64_t q0 = q_begin(db);
    return q_end(db, q0, db->methods->api_key_lookup_hash(db, hash_hex, out));
}

int uq_db_api_key_list(uq_db_t *db, uq_db_api_key_t **rows, size_t *n)
{
    if (rows == NULL || n == NULL) {
        return UQ_DB_EINVAL;
    }
    int64_t q0 = q_begin(db);
    return q_end(db, q0, db->methods->api_key_list(db, rows, n));
}

int uq_db_api_key_revoke(uq_db_t *db, int64_t id, int64_t now_us,
                         int64_t *revoked_at)
{
    int64_t q0 = q_begin(db);
    return q_end(
        db, q0,
        noted(db, db->methods->api_key_revoke(db, id, now_us, revoked_at)));
}

int uq_db_api_key_import(uq_db_t *db, const uq_db_api_key_t *keys, size_t n,
                         size_t *failed_at)
{
    if (keys == NULL && n > 0) {
        return UQ_DB_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (keys[i].prefix[0] != '\0' || keys[i].origin_id[0] == '\0') {
            if (failed_at != NULL) {
                *failed_at = i;
            }
            return UQ_DB_EINVAL;
        }
    }
    int64_t q0 = q_begin(db);
    return q_end(
        db, q0, noted(db, db->methods->api_key_import(db, keys, n, failed_at)));
}

int uq_db_inval_after(uq_db_t *db, int64_t after_id, uq_db_inval_row_t *out,
                      size_t cap, size_t *n)
{
    if (n == NULL || (out == NULL && cap > 0)) {
        return UQ_DB_EINVAL;
    }
    if (cap == 0) {
        *n = 0;
        return UQ_DB_OK;
    }
    int64_t q0 = q_begin(db);
    return q_end(db, q0, db->methods->inval_after(db, after_id, out, cap, n));
}

int uq_db_inval_pending(uq_db_t *db, uq_db_inval_row_t *out, size_t cap,
                        size_t *n)
{
    if (n == NULL || (out == NULL && cap > 0)) {
        return UQ_DB_EINVAL;
    }
    if (cap == 0) {
        *n = 0;
        return UQ_DB_OK;
    }
    int64_t q0 = q_begin(db);
    return q_end(db, q0, db->methods->inval_pending(db, out, cap, n));
}

int uq_db_inval_mark_applied(uq_db_t *db, const int64_t *ids, size_t n,
                             int64_t now_us)
{
    if (n == 0) {
        return UQ_DB_OK;
    }
    if (ids == NULL) {
        return UQ_DB_EINVAL;
    }
    /* Batches keep each statement's parameters bounded; the call is
     * idempotent, so a failure half way loses nothing on a retry. */
    for (size_t off = 0; off < n; off += UQ_DB_INVAL_BATCH_MAX) {
        size_t k =
            n - off < UQ_DB_INVAL_BATCH_MAX ? n - off : UQ_DB_INVAL_BATCH_MAX;
        int64_t q0 = q_begin(db);
        int st = q_end(db, q0,
                       noted(db, db->methods->inval_mark_applied(db, ids + off,
                                                                 k, now_us)));
        if (st != UQ_DB_OK) {
            return st;
        }
    }
    return UQ_DB_OK;
}

int uq_db_inval_prune(uq_db_t *db, int64_t before_us, int64_t *removed)
{
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 noted(db, db->methods->inval_prune(db, before_us, removed)));
}

int uq_db_inval_last_id(uq_db_t *db, int64_t *id)
{
    if (id == NULL) {
        return UQ_DB_EINVAL;
    }
    int64_t q0 = q_begin(db);
    return q_end(db, q0, db->methods->inval_last_id(db, id));
}

int uq_db_inval_append(uq_db_t *db, const uq_db_inval_t *inv, size_t n,
                       int64_t now_us, int64_t *ids)
{
    int st = inval_check(inv, n);
    if (st != UQ_DB_OK || n == 0) {
        return st;
    }
    int64_t q0 = q_begin(db);
    return q_end(db, q0,
                 noted(db, db->methods->inval_append(db, inv, n, now_us, ids)));
}

void uq_db_metrics_free(uq_db_metric_t *rows, size_t n, int free_array)
{
    if (rows == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(rows[i].metadata);
        rows[i].metadata = NULL;
    }
    if (free_array) {
        free(rows);
    }
}

void uq_db_retention_release(uq_db_retention_t *r)
{
    if (r == NULL) {
        return;
    }
    free(r->job_ids);
    free(r->insight_ids);
    free(r->series);
    memset(r, 0, sizeof(*r));
}

int uq_db_copy_field(char *dst, size_t cap, const char *src, size_t len)
{
    if (cap == 0) {
        return -1;
    }
    if (src == NULL || len >= cap) {
        dst[0] = '\0';
        return src == NULL ? 0 : -1;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

void uq__db_logf(const uq__db_logger_t *lg, int level, const char *fmt, ...)
{
    /* Big enough for a libpq error with its context on one line. */
    char msg[768];
    va_list ap;

    if (lg->fn == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lg->fn(lg->arg, level, msg);
}
