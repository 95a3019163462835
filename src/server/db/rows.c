/* SPDX-License-Identifier: MIT */
/*
 * Row mapping of the database layer: a result row to the db.h struct it
 * stands for, written once for both drivers. A driver hands over a row as a
 * uq__db_row_t (accessors over its own result type) and both drivers select
 * the same columns in the same order (the *_COLS lists of each driver), so
 * a row reads the same whatever the backend. A text value longer than its
 * field is a mismatch between the schema and the struct: reported as
 * UQ_DB_EIO, never cut short silently.
 */
#include "db.h"
#include "db_int.h"

#include <stdlib.h>
#include <string.h>

static int is_null(const uq__db_row_t *r, int col)
{
    return r->ops->is_null(r, col);
}

static int64_t i64(const uq__db_row_t *r, int col)
{
    return is_null(r, col) ? 0 : r->ops->i64(r, col);
}

static double f64(const uq__db_row_t *r, int col)
{
    return is_null(r, col) ? 0.0 : r->ops->f64(r, col);
}

/* A time column: SQL NULL is UQ_DB_NULL_TIME. */
static int64_t when(const uq__db_row_t *r, int col)
{
    return is_null(r, col) ? UQ_DB_NULL_TIME : r->ops->i64(r, col);
}

/* Copies a text value into a fixed field; NULL gives "". 0, or -1 when the
 * value does not fit. */
static int str(const uq__db_row_t *r, int col, char *dst, size_t cap)
{
    size_t len = 0;
    const char *t = is_null(r, col) ? NULL : r->ops->text(r, col, &len);

    if (t == NULL) {
        dst[0] = '\0';
        return 0;
    }
    return uq_db_copy_field(dst, cap, t, len);
}

int uq__db_read_feedback(const uq__db_row_t *r, void *dst)
{
    uq_db_feedback_t *f = dst;
    int bad = 0;

    memset(f, 0, sizeof(*f));
    bad |= str(r, 0, f->id, sizeof(f->id));
    bad |= str(r, 1, f->insight_id, sizeof(f->insight_id));
    bad |= str(r, 2, f->user_id, sizeof(f->user_id));
    f->rating = (int)i64(r, 3);
    f->has_comment = !is_null(r, 4);
    bad |= str(r, 4, f->comment, sizeof(f->comment));
    bad |= str(r, 5, f->flag_type, sizeof(f->flag_type));
    f->has_flag_reason = !is_null(r, 6);
    bad |= str(r, 6, f->flag_reason, sizeof(f->flag_reason));
    f->created_at = i64(r, 7);
    f->updated_at = i64(r, 8);
    return bad != 0 ? UQ_DB_EIO : UQ_DB_OK;
}

int uq__db_read_job(const uq__db_row_t *r, void *dst)
{
    uq_db_job_t *j = dst;
    int bad = 0;

    memset(j, 0, sizeof(*j));
    bad |= str(r, 0, j->id, sizeof(j->id));
    bad |= str(r, 1, j->job_type, sizeof(j->job_type));
    j->start_block = i64(r, 2);
    j->end_block = i64(r, 3);
    j->current_block = i64(r, 4);
    bad |= str(r, 5, j->status, sizeof(j->status));
    j->progress_percentage = f64(r, 6);
    j->estimated_completion = when(r, 7);
    j->has_error_message = !is_null(r, 8);
    bad |= str(r, 8, j->error_message, sizeof(j->error_message));
    j->started_at = i64(r, 9);
    j->completed_at = when(r, 10);
    j->has_created_by = !is_null(r, 11);
    bad |= str(r, 11, j->created_by, sizeof(j->created_by));
    return bad != 0 ? UQ_DB_EIO : UQ_DB_OK;
}

int uq__db_read_metric(const uq__db_row_t *r, void *dst)
{
    uq_db_metric_t *m = dst;
    int bad = 0;

    memset(m, 0, sizeof(*m));
    bad |= str(r, 0, m->id, sizeof(m->id));
    bad |= str(r, 1, m->service_name, sizeof(m->service_name));
    bad |= str(r, 2, m->metric_type, sizeof(m->metric_type));
    m->metric_value = f64(r, 3);
    bad |= str(r, 4, m->unit, sizeof(m->unit));
    m->timestamp = i64(r, 5);
    if (bad != 0) {
        return UQ_DB_EIO;
    }
    if (!is_null(r, 6)) {
        size_t len = 0;
        const char *t = r->ops->text(r, 6, &len);
        m->metadata = malloc(len + 1);
        if (m->metadata == NULL) {
            return UQ_DB_ENOMEM;
        }
        memcpy(m->metadata, t != NULL ? t : "", len);
        m->metadata[len] = '\0';
    }
    return UQ_DB_OK;
}

int uq__db_read_api_key(const uq__db_row_t *r, void *dst)
{
    uq_db_api_key_t *k = dst;
    int bad = 0;

    memset(k, 0, sizeof(*k));
    k->id = i64(r, 0);
    bad |= str(r, 1, k->prefix, sizeof(k->prefix));
    bad |= str(r, 2, k->hash_hex, sizeof(k->hash_hex));
    bad |= str(r, 3, k->user_id, sizeof(k->user_id));
    bad |= str(r, 4, k->role, sizeof(k->role));
    k->created_at = i64(r, 5);
    bad |= str(r, 6, k->name, sizeof(k->name));
    bad |= str(r, 7, k->origin_id, sizeof(k->origin_id));
    bad |= str(r, 8, k->origin_prefix, sizeof(k->origin_prefix));
    k->last_used_at = when(r, 9);
    k->revoked_at = when(r, 10);
    return bad != 0 ? UQ_DB_EIO : UQ_DB_OK;
}

int uq__db_read_feedback_stats(const uq__db_row_t *r, void *dst)
{
    uq_db_feedback_stats_t *v = dst;

    memset(v, 0, sizeof(*v));
    v->total_ratings = i64(r, 0);
    v->average_rating = f64(r, 1);
    for (int i = 0; i < 5; i++) {
        v->rating_distribution[i] = i64(r, 2 + i);
    }
    v->total_comments = i64(r, 7);
    v->total_flags = i64(r, 8);
    v->flag_inaccurate = i64(r, 9);
    v->flag_misleading = i64(r, 10);
    v->flag_spam = i64(r, 11);
    return UQ_DB_OK;
}

int uq__db_read_bucket(const uq__db_row_t *r, void *dst)
{
    uq_db_bucket_t *b = dst;

    b->bucket = i64(r, 0);
    b->avg_value = f64(r, 1);
    b->min_value = f64(r, 2);
    b->max_value = f64(r, 3);
    b->count = i64(r, 4);
    return UQ_DB_OK;
}

int uq__db_read_inval(const uq__db_row_t *r, void *dst)
{
    uq_db_inval_row_t *v = dst;
    int bad = 0;

    memset(v, 0, sizeof(*v));
    v->id = i64(r, 0);
    bad |= str(r, 1, v->keyspace, sizeof(v->keyspace));
    bad |= str(r, 2, v->target, sizeof(v->target));
    v->created_at = i64(r, 3);
    v->applied = i64(r, 4) != 0;
    return bad != 0 ? UQ_DB_EIO : UQ_DB_OK;
}

/* The readers of what a retention delete took away: a value too long for
 * its field cannot come from the layer's own schema, and failing the run
 * after its rows are gone would report nothing of it, so such a value reads
 * as "" and the run goes on. */
int uq__db_read_series(const uq__db_row_t *r, void *dst)
{
    uq_db_series_t *s = dst;

    (void)str(r, 0, s->service_name, sizeof(s->service_name));
    (void)str(r, 1, s->metric_type, sizeof(s->metric_type));
    return UQ_DB_OK;
}

int uq__db_read_job_id(const uq__db_row_t *r, void *dst)
{
    (void)str(r, 0, dst, UQ_DB_UUID_LEN + 1);
    return UQ_DB_OK;
}

int uq__db_read_insight_id(const uq__db_row_t *r, void *dst)
{
    (void)str(r, 0, dst, UQ_DB_FB_ID_BYTES + 1);
    return UQ_DB_OK;
}

int uq__db_read_i64(const uq__db_row_t *r, void *dst)
{
    *(int64_t *)dst = i64(r, 0);
    return UQ_DB_OK;
}

int uq__db_rows_push(uq__db_rows_t *a, size_t sz, uq__db_reader_fn read,
                     const uq__db_row_t *row)
{
    if (a->n == a->cap) {
        size_t ncap = a->cap == 0 ? 16 : a->cap * 2;
        void *p = realloc(a->items, ncap * sz);
        if (p == NULL) {
            return UQ_DB_ENOMEM;
        }
        a->items = p;
        a->cap = ncap;
    }
    /* Counted before it is read, so that a half-read row's heap text is
     * freed with the rest when the caller gives up. */
    return read(row, (char *)a->items + a->n++ * sz);
}
