/* SPDX-License-Identifier: MIT */
/*
 * The service's side of the durable invalidation log: what a write makes
 * stale goes into the write's own transaction (uq_stale_t, handed to the
 * uq_db_* write), and after the commit the library applies it
 * (uc_cache_apply_invalidations). A record names one entry (a key) or a tag
 * ("#<tag>", one write that invalidates every entry carrying it); no write
 * records a key pattern, whose invalidation would be a SCAN. The log itself is
 * the database's cache_invalidations table; the functions below adapt the db
 * layer to the library's uc_invlog_ops_t, which the cache's worker calls to
 * tail it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* ---- the log, for the library ------------------------------------------- */

static int to_uc(int st)
{
    switch (st) {
    case UQ_DB_OK:
        return UC_OK;
    case UQ_DB_ENOMEM:
        return UC_ENOMEM;
    case UQ_DB_EINVAL:
        return UC_EINVAL;
    default:
        return UC_EUNAVAILABLE;
    }
}

/* Reads rows into the library's records through a scratch array. */
static int read_rows(uq_app_t *app, int pending, int64_t after,
                     uc_inval_record_t *out, size_t cap, size_t *n)
{
    uq_db_inval_row_t *rows = malloc(cap * sizeof(*rows) + 1);
    size_t got = 0;
    int st;

    if (rows == NULL) {
        return UC_ENOMEM;
    }
    st = pending ? uq_db_inval_pending(app->db, rows, cap, &got)
                 : uq_db_inval_after(app->db, after, rows, cap, &got);
    if (st == UQ_DB_OK) {
        for (size_t i = 0; i < got; i++) {
            out[i].id = rows[i].id;
            snprintf(out[i].keyspace, sizeof(out[i].keyspace), "%s",
                     rows[i].keyspace);
            snprintf(out[i].target, sizeof(out[i].target), "%s",
                     rows[i].target);
            out[i].applied = rows[i].applied;
        }
        *n = got;
    }
    free(rows);
    return to_uc(st);
}

static int log_after(void *arg, int64_t after, uc_inval_record_t *out,
                     size_t cap, size_t *n)
{
    return read_rows(arg, 0, after, out, cap, n);
}

static int log_pending(void *arg, uc_inval_record_t *out, size_t cap, size_t *n)
{
    return read_rows(arg, 1, 0, out, cap, n);
}

static int log_mark(void *arg, const int64_t *ids, size_t n, uint64_t now_ms)
{
    uq_app_t *app = arg;

    return to_uc(
        uq_db_inval_mark_applied(app->db, ids, n, (int64_t)now_ms * 1000));
}

static int log_prune(void *arg, uint64_t before_ms)
{
    uq_app_t *app = arg;
    int64_t removed = 0;
    int st;

    /* Catch up in bounded steps, a few at most per call. */
    for (int i = 0; i < 8; i++) {
        st = uq_db_inval_prune(app->db, (int64_t)before_ms * 1000, &removed);
        if (st != UQ_DB_OK || removed < UQ_DB_INVAL_PRUNE_MAX) {
            break;
        }
    }
    return to_uc(st);
}

static int log_last(void *arg, int64_t *id)
{
    uq_app_t *app = arg;

    return to_uc(uq_db_inval_last_id(app->db, id));
}

int uq_app_attach_log(uq_app_t *app, char *err, size_t errlen)
{
    static const uc_invlog_ops_t ops = {log_after, log_pending, log_mark,
                                        log_prune, log_last};

    return uc_cache_attach_log(app->cache, &ops, app, err, errlen) == UC_OK
               ? 0
               : -1;
}

/* ---- what a write makes stale ------------------------------------------- */

uq_stale_t *uq_stale_new(void)
{
    /* Not zeroed: 64 KiB per write would cost more than the write's JSON. */
    uq_stale_t *s = malloc(sizeof(*s));

    if (s != NULL) {
        s->n = 0;
    }
    return s;
}

void uq_stale_free(uq_stale_t *s)
{
    free(s);
}

int uq_stale_add(uq_app_t *app, uq_stale_t *s, int ks,
                 const char *const *fields)
{
    uc_keyspace_t *k = app->ks[ks];
    size_t len;

    if (s->n == UQ_STALE_MAX) {
        return -1;
    }
    for (size_t i = 0; i < s->n; i++) {
        char t[UC_KEY_MAX + 1];
        if (s->ks[i] == ks &&
            uc_keyspace_target(k, fields, uc_keyspace_nfields(k), t, sizeof(t),
                               &len) == UC_OK &&
            strcmp(t, s->target[i]) == 0) {
            return 0;
        }
    }
    if (uc_keyspace_target(k, fields, uc_keyspace_nfields(k), s->target[s->n],
                           sizeof(s->target[s->n]), &len) != UC_OK) {
        return -1;
    }
    s->ks[s->n] = ks;
    s->inv[s->n].keyspace = uc_keyspace_name(k);
    s->inv[s->n].target = s->target[s->n];
    s->n++;
    return 0;
}

/* Appends a record of target for keyspace k, unless one is there (a tag's
 * target is the same whichever keyspace names it). */
static int add_target(uq_stale_t *s, int ks, const char *keyspace,
                      const char *target)
{
    for (size_t i = 0; i < s->n; i++) {
        if ((s->ks[i] == ks || target[0] == '#') &&
            strcmp(target, s->target[i]) == 0) {
            return 0;
        }
    }
    if (s->n == UQ_STALE_MAX) {
        return -1;
    }
    snprintf(s->target[s->n], sizeof(s->target[s->n]), "%s", target);
    s->ks[s->n] = ks;
    s->inv[s->n].keyspace = keyspace;
    s->inv[s->n].target = s->target[s->n];
    s->n++;
    return 0;
}

int uq_stale_add_tag(uq_app_t *app, uq_stale_t *s, int ks, size_t tag,
                     const char *const *fields)
{
    uc_keyspace_t *k = app->ks[ks];
    char t[UC_KEY_MAX + 1];
    size_t len;

    if (uc_keyspace_tag_target(k, tag, fields, uc_keyspace_nfields(k), t,
                               sizeof(t), &len) != UC_OK) {
        return -1;
    }
    /* The record names the keyspace, which any instance knows: on the
     * memory backend the log's tail applies records of known keyspaces. */
    return add_target(s, ks, uc_keyspace_name(k), t);
}

size_t uq_stale_apply(uq_app_t *app, uq_stale_t *s)
{
    uc_inval_record_t *recs;
    size_t applied = 0;

    if (s->n == 0) {
        return 0;
    }
    recs = calloc(s->n, sizeof(*recs));
    if (recs == NULL) {
        /* The records are in the log: the worker applies them. */
        return s->n;
    }
    for (size_t i = 0; i < s->n; i++) {
        recs[i].id = s->ids[i];
        snprintf(recs[i].keyspace, sizeof(recs[i].keyspace), "%s",
                 s->inv[i].keyspace);
        snprintf(recs[i].target, sizeof(recs[i].target), "%s", s->target[i]);
    }
    /* A failure is logged by the library (rate-limited) and stays
     * pending in the log, which every instance reads. */
    (void)uc_cache_apply_invalidations(app->cache, recs, s->n, &applied);
    free(recs);
    return s->n - applied;
}
