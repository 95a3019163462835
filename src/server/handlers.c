/* SPDX-License-Identifier: MIT */
/*
 * The endpoints of utxoiq-api: input validation, the database calls, the
 * JSON shapes, and the cache rules. Cached reads go through
 * uc_keyspace_get_or_load() with a loader that runs the query and returns
 * the final JSON bytes, so a hit serves the stored bytes untouched. Every
 * write commits to the database first and then invalidates every entry it
 * made stale, by key or by tag (keyspaces.c), never by a key pattern, so
 * that no write runs a SCAN; an invalidation that fails is queued and
 * retried (and, until it succeeds, reads of the affected entries bypass
 * the cache), so it is never dropped.
 */
#include "app.h"
#include "dashboard.h"
#include "history.h"
#include "request.h"

#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* What the loaders return besides UC_OK and UC_MISS (no such row): out of
 * memory, or a database error, whose status (a negative UC_DB_*) is
 * carried in the code so that the answer can name it. */
#define LOAD_NOMEM (-1003)
#define LOAD_DB_BASE (-2000)
#define LOAD_DB(st) (LOAD_DB_BASE + (st))
#define IS_LOAD_DB(rc) ((rc) < LOAD_DB_BASE && (rc) > LOAD_DB_BASE - 100)

static const char CC_PUBLIC[] = "public, no-cache";
static const char CC_PRIVATE[] = "private, no-store";

/* ---- responses ----------------------------------------------------------- */

/* uc_resp_json() and uc_resp_error() are in request.c. */

static void resp_db_error(uc_resp_t *res, int st)
{
    if (st == UC_DB_EREADONLY) {
        /* Nothing was written: the transaction was refused or rolled back. */
        uc_resp_error(res, 503,
                      "database cannot write (read-only, full, or its file "
                      "was removed); nothing was stored, retry later");
    } else if (st == UC_DB_EUNAVAILABLE || st == UC_DB_EBUSY) {
        uc_resp_error(res, 503, "database unavailable");
    } else {
        uc_resp_error(res, 500, "internal error");
    }
}

/* 0 when a database call succeeded; otherwise writes its error response
 * (503 when the database is away, 500 else) and returns -1. */
static int db_failed(uc_resp_t *res, int st)
{
    if (st == UC_DB_OK) {
        return 0;
    }
    resp_db_error(res, st);
    return -1;
}

/* ---- JSON of rows -------------------------------------------------------- */

static json_t *time_json(int64_t us)
{
    char buf[40];
    if (us == UC_DB_NULL_TIME) {
        return json_null();
    }
    uc_time_format(us, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *str_or_null(int has, const char *s)
{
    return has && s[0] != '\0' ? json_string(s) : json_null();
}

/*
 * Converts one row to a new JSON object, or NULL when out of memory. The
 * row converters take `const void *` so that rows_json() can walk an array
 * of any row type.
 */
typedef json_t *(*row_json_fn)(const void *row);

static json_t *feedback_json(const void *row)
{
    const uc_db_feedback_t *f = row;
    return json_pack(
        "{s:I,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)f->id,
        "insight_id", f->insight_id, "user_id", f->user_id, "rating",
        f->rating > 0 ? json_integer(f->rating) : json_null(), "comment",
        str_or_null(f->has_comment, f->comment), "flag_type",
        str_or_null(1, f->flag_type), "flag_reason",
        str_or_null(f->has_flag_reason, f->flag_reason), "created_at",
        time_json(f->created_at), "updated_at", time_json(f->updated_at));
}

static json_t *job_json(const void *row)
{
    const uc_db_job_t *j = row;
    return json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:s,s:f,s:o,s:o,s:o,s:o,s:o}", "id", j->id,
        "job_type", j->job_type, "start_block", (json_int_t)j->start_block,
        "end_block", (json_int_t)j->end_block, "current_block",
        (json_int_t)j->current_block, "status", j->status,
        "progress_percentage", j->progress_percentage, "estimated_completion",
        time_json(j->estimated_completion), "error_message",
        str_or_null(j->has_error_message, j->error_message), "started_at",
        time_json(j->started_at), "completed_at", time_json(j->completed_at),
        "created_by", str_or_null(j->has_created_by, j->created_by));
}

static json_t *metric_json(const void *row)
{
    const uc_db_metric_t *m = row;
    json_t *meta = json_null();
    if (m->metadata != NULL) {
        json_t *parsed = json_loads(m->metadata, JSON_DECODE_ANY, NULL);
        if (parsed != NULL) {
            json_decref(meta);
            meta = parsed;
        }
    }
    return json_pack("{s:I,s:s,s:s,s:f,s:s,s:o,s:o}", "id", (json_int_t)m->id,
                     "service_name", m->service_name, "metric_type",
                     m->metric_type, "metric_value", m->metric_value, "unit",
                     m->unit, "timestamp", time_json(m->timestamp),
                     "metric_metadata", meta);
}

static json_t *bucket_json(const void *row)
{
    const uc_db_bucket_t *b = row;
    return json_pack("{s:o,s:f,s:f,s:f,s:I}", "timestamp", time_json(b->bucket),
                     "avg_value", b->avg_value, "min_value", b->min_value,
                     "max_value", b->max_value, "count", (json_int_t)b->count);
}

/*
 * A new JSON array of conv() applied to each of the n rows of `size` bytes
 * at `rows`; the rows stay the caller's. A row that fails to convert is left
 * out (as json_array_append_new() does with NULL), and NULL comes back only
 * when the array itself cannot be allocated.
 */
static json_t *rows_json(const void *rows, size_t n, size_t size,
                         row_json_fn conv)
{
    const unsigned char *p = rows;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, conv(p + i * size));
    }
    return arr;
}

/* ---- input --------------------------------------------------------------- */

static const char *qparam(uc_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/*
 * The body and field decoders are in request.c (request.h), apart from HTTP,
 * so that a fuzz target runs the same code; these names keep the handlers
 * short.
 */
static json_t *parse_body(uc_req_t *req, json_type want, uc_resp_t *res)
{
    return uc__request_body(
        req->body, req->body_len,
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_CONTENT_TYPE),
        want, res);
}

#define get_str uc__json_get_str
#define get_int uc__json_get_int
#define get_num uc__json_get_num
#define get_enum uc__json_get_enum
#define get_time uc__json_get_time

/* Validates an id given in the query or the path. */
static int check_id(const char *name, const char *v, int required,
                    uc_resp_t *res)
{
    if (v == NULL) {
        if (required) {
            uc_resp_error(res, 422, "%s: query parameter required", name);
            return -1;
        }
        return 0;
    }
    if (uc_text_check(v, strlen(v), 1, UC_DB_ID_MAX, 0) != 0 ||
        strlen(v) > UC_DB_ID_MAX) {
        uc_resp_error(res, 422,
                      "%s: must be 1 to %d bytes without control characters",
                      name, UC_DB_ID_MAX);
        return -1;
    }
    return 0;
}

static int q_int(uc_req_t *req, const char *name, long long def, long long min,
                 long long max, long long *out, uc_resp_t *res)
{
    const char *v = qparam(req, name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (uc_parse_int(v, min, max, out) != 0) {
        uc_resp_error(res, 422, "%s: must be an integer from %lld to %lld",
                      name, min, max);
        return -1;
    }
    return 0;
}

/* The limit and offset of a list request. */
typedef struct {
    long long limit;
    long long offset;
} page_t;

/*
 * Reads the query parameters limit (default def_limit, 1 to max_limit) and
 * offset (default 0, at most 1000000) into *pg. On a bad value writes a 422
 * naming the parameter and returns -1; *pg may then be partly written.
 */
static int q_page(uc_req_t *req, long long def_limit, long long max_limit,
                  page_t *pg, uc_resp_t *res)
{
    if (q_int(req, "limit", def_limit, 1, max_limit, &pg->limit, res) != 0 ||
        q_int(req, "offset", 0, 0, 1000000, &pg->offset, res) != 0) {
        return -1;
    }
    return 0;
}

static int q_time(uc_req_t *req, const char *name, int64_t *out, uc_resp_t *res)
{
    const char *v = qparam(req, name);
    *out = UC_DB_NULL_TIME;
    if (v == NULL) {
        return 0;
    }
    if (uc_time_parse(v, out) != 0) {
        uc_resp_error(res, 422, "%s: not an ISO-8601 timestamp", name);
        return -1;
    }
    return 0;
}

static const char *const FLAG_TYPES[] = {"inaccurate", "misleading", "spam",
                                         NULL};
static const char *const JOB_STATUSES[] = {"running", "completed", "failed",
                                           "paused", NULL};

static int q_enum(uc_req_t *req, const char *name, const char *const *allowed,
                  const char **out, uc_resp_t *res)
{
    const char *v = qparam(req, name);
    *out = NULL;
    if (v == NULL) {
        return 0;
    }
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcmp(v, allowed[i]) == 0) {
            *out = allowed[i];
            return 0;
        }
    }
    uc_resp_error(res, 422, "%s: unknown value", name);
    return -1;
}

/* ---- cache glue ---------------------------------------------------------- */

/*
 * The status of a write that carries the records of what it makes stale
 * (uc_stale_t) into its own transaction: the write runs only when the
 * records could be allocated. After the commit the handler applies them
 * (uc_stale_apply) before it answers, so the healthy path stays
 * synchronous: a read that starts after the answer never sees the old
 * value.
 */
#define STALE_WRITE(app, stale, call) ((stale) == NULL ? UC_DB_ENOMEM : (call))

typedef json_t *(*build_fn)(uc_app_t *app, void *arg, int *st);

/* A loader's answer from a build: the JSON body, or the code above. */
static int load_json(json_t *j, int st, char **val, size_t *len)
{
    char *s;
    if (j == NULL) {
        if (st == UC_DB_NOTFOUND) {
            /* "No such entity": the library may remember it. */
            return UC_MISS;
        }
        return st == UC_DB_ENOMEM ? LOAD_NOMEM
                                  : LOAD_DB(st < 0 ? st : UC_DB_EIO);
    }
    s = json_dumps(j, DUMP_FLAGS);
    json_decref(j);
    if (s == NULL) {
        return LOAD_NOMEM;
    }
    *val = s;
    *len = strlen(s);
    return UC_OK;
}

/* Answers a cacheable GET from the keyspace entry `fields`, loaded (when
 * it must be) by the keyspace's own loader (uc_api_loader()), which builds
 * the answer from the fields alone: the library may run it in the
 * background, past this request. `cc` is its Cache-Control, `etag` whether
 * it carries an ETag. */
static void serve_cached_as(uc_app_t *app, int ks, const char *const *fields,
                            size_t n, const char *cc, int etag, uc_resp_t *res)
{
    uc_load_opts_t opts = UC_LOAD_OPTS_INIT;
    uc_load_result_t r;
    int rc;

    /* A hit's body is the cache's own immutable copy, handed to
     * libmicrohttpd as it is and released when the response is sent. */
    opts.flags = UC_LOAD_SHARED;
    rc = uc_keyspace_get_or_load(app->ks[ks], fields, n, &opts, &r);
    if (rc == UC_OK) {
        res->body = r.data;
        res->len = r.len;
        res->body_free = uc_shared_release;
        /* The library's value hash is the same FNV-1a as uc_hash64. */
        res->has_hash = 1;
        res->body_hash = r.hash;
        res->produced_ms = r.produced_ms;
        res->cache_tier = r.tier == UC_TIER_NEAR    ? "near"
                          : r.tier == UC_TIER_REDIS ? "redis"
                                                    : NULL;
    }
    if (rc == UC_MISS) {
        uc_resp_error(res, 404, "not found");
        return;
    }
    if (IS_LOAD_DB(rc)) {
        resp_db_error(res, rc - LOAD_DB_BASE);
        return;
    }
    if (rc != UC_OK) {
        uc_resp_error(res, rc == LOAD_NOMEM || rc == UC_ENOMEM ? 500 : 422,
                      "%s",
                      rc == UC_EINVAL ? "invalid key field" : "internal error");
        return;
    }
    res->status = 200;
    res->cache = r.source == UC_FROM_CACHE    ? UC_CACHE_HIT
                 : r.source == UC_FROM_BYPASS ? UC_CACHE_BYPASS
                 : r.source == UC_FROM_STALE  ? UC_CACHE_STALE
                                              : UC_CACHE_MISS;
    res->cache_control = cc;
    res->etag = etag;
}

/* A public read: "public, no-cache" with an ETag. */
static void serve_cached(uc_app_t *app, int ks, const char *const *fields,
                         size_t n, uc_resp_t *res)
{
    serve_cached_as(app, ks, fields, n, CC_PUBLIC, 1, res);
}

/* The decimal text of v into buf (a key field). */
static const char *dec(char *buf, size_t cap, long long v)
{
    snprintf(buf, cap, "%lld", v);
    return buf;
}

/* An optional filter as a key field: "-" when absent, else "=" and the
 * value, so that no value can stand for "absent" (tmp holds the text). */
static const char *opt_field(char *tmp, size_t cap, const char *v)
{
    if (v == NULL) {
        return "-";
    }
    snprintf(tmp, cap, "=%s", v);
    return tmp;
}

/* The filter an opt_field() wrote: NULL for "-", else the value. */
static const char *opt_value(const char *f)
{
    return f[0] == '=' ? f + 1 : NULL;
}

/* ---- feedback ------------------------------------------------------------ */

static void feedback_write(uc_app_t *app, uc_req_t *req, uc_resp_t *res,
                           unsigned kind)
{
    json_t *body = parse_body(req, JSON_OBJECT, res);
    uc_db_feedback_write_t w;
    uc_db_feedback_t row;
    const char *s = NULL;
    long long rating = 0;
    uc_stale_t *stale = NULL;
    int st;

    if (body == NULL) {
        return;
    }
    memset(&w, 0, sizeof(w));
    w.fields = kind;
    w.user_id = req->user_id;
    if (get_str(body, "insight_id", NULL, 1, 1, UC_DB_ID_MAX, 0, &w.insight_id,
                res) != 0 ||
        strlen(w.insight_id) > UC_DB_ID_MAX) {
        if (res->status == 0) {
            uc_resp_error(res, 422, "insight_id: at most %d bytes",
                          UC_DB_ID_MAX);
        }
        goto cleanup;
    }
    if (kind == UC_DB_FB_RATING) {
        if (get_int(body, "rating", NULL, 1, 1, 5, &rating, NULL, res) != 0 ||
            get_str(body, "comment", NULL, 0, 1, 1000, 1, &s, res) != 0) {
            goto cleanup;
        }
        w.rating = (int)rating;
        w.has_comment = s != NULL;
        w.comment = s;
    } else if (kind == UC_DB_FB_COMMENT) {
        if (get_str(body, "comment", NULL, 1, 1, 1000, 1, &s, res) != 0) {
            goto cleanup;
        }
        w.has_comment = 1;
        w.comment = s;
    } else {
        if (get_enum(body, "flag_type", 1, FLAG_TYPES, &w.flag_type, res) !=
                0 ||
            get_str(body, "flag_reason", NULL, 0, 0, 500, 1, &s, res) != 0) {
            goto cleanup;
        }
        w.has_flag_reason = s != NULL && s[0] != '\0';
        w.flag_reason = s;
    }
    w.now = uc_now_us(app);
    stale = uc_stale_new();
    /* The insight's stats and comment pages, and the writer's own pages:
     * one tag each. */
    const char *sf[1] = {w.insight_id};
    const char *uf[3] = {w.user_id, NULL, NULL};
    if (stale != NULL &&
        (uc_stale_add_tag(app, stale, UC_KS_FEEDBACK_STATS, 0, sf) != 0 ||
         uc_stale_add_tag(app, stale, UC_KS_FEEDBACK_USER, 0, uf) != 0)) {
        uc_resp_error(res, 422, "insight_id: not a valid key field");
        goto cleanup;
    }
    st = STALE_WRITE(app, stale,
                     uc_db_feedback_upsert(app->db, &w, &row, stale->inv,
                                           stale->n, stale->ids));
    if (st == UC_DB_ECONSTRAINT) {
        uc_resp_error(res, 422, "feedback: rejected by a database constraint");
        goto cleanup;
    }
    if (db_failed(res, st) != 0) {
        goto cleanup;
    }
    uc_stale_apply(app, stale);
    uc_resp_json(res, 200, feedback_json(&row));
    res->cache_control = CC_PRIVATE;
cleanup:
    uc_stale_free(stale);
    json_decref(body);
}

static void h_rate(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    feedback_write(app, req, res, UC_DB_FB_RATING);
}

static void h_comment(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    feedback_write(app, req, res, UC_DB_FB_COMMENT);
}

static void h_flag(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    feedback_write(app, req, res, UC_DB_FB_FLAG);
}

static json_t *build_stats(uc_app_t *app, void *arg, int *st)
{
    const char *insight_id = arg;
    uc_db_feedback_stats_t s;
    json_t *flags;
    *st = uc_db_feedback_stats(app->db, insight_id, &s);
    if (*st != UC_DB_OK) {
        return NULL;
    }
    flags = json_object();
    if (s.flag_inaccurate > 0) {
        json_object_set_new(flags, "inaccurate",
                            json_integer(s.flag_inaccurate));
    }
    if (s.flag_misleading > 0) {
        json_object_set_new(flags, "misleading",
                            json_integer(s.flag_misleading));
    }
    if (s.flag_spam > 0) {
        json_object_set_new(flags, "spam", json_integer(s.flag_spam));
    }
    return json_pack(
        "{s:s,s:I,s:f,s:{s:I,s:I,s:I,s:I,s:I},s:I,s:I,s:o}", "insight_id",
        insight_id, "total_ratings", (json_int_t)s.total_ratings,
        "average_rating", round(s.average_rating * 100.0) / 100.0,
        "rating_distribution", "1", (json_int_t)s.rating_distribution[0], "2",
        (json_int_t)s.rating_distribution[1], "3",
        (json_int_t)s.rating_distribution[2], "4",
        (json_int_t)s.rating_distribution[3], "5",
        (json_int_t)s.rating_distribution[4], "total_comments",
        (json_int_t)s.total_comments, "total_flags", (json_int_t)s.total_flags,
        "flag_types", flags);
}

static void h_stats(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    const char *id =
        req->param != NULL ? req->param : qparam(req, "insight_id");
    if (check_id("insight_id", id, 1, res) != 0) {
        return;
    }
    const char *f[1] = {id};
    serve_cached(app, UC_KS_FEEDBACK_STATS, f, 1, res);
}

/* {list_name: items, total, limit, offset}; takes items (even on failure)
 * and returns NULL when out of memory. */
static json_t *page_json(const char *list_name, json_t *items, int64_t total,
                         const page_t *pg)
{
    return json_pack("{s:o,s:I,s:I,s:I}", list_name, items, "total",
                     (json_int_t)total, "limit", (json_int_t)pg->limit,
                     "offset", (json_int_t)pg->offset);
}

/* A page of an insight's comments (user 0) or of a user's feedback
 * (user 1): {list, total, limit, offset, insight_id | user_id}. */
static json_t *build_feedback_page(uc_app_t *app, int user, const char *id,
                                   const page_t *pg, int *st)
{
    uc_db_feedback_t *rows = NULL;
    size_t n = 0;
    int64_t total = 0;

    *st = user ? uc_db_feedback_by_user(app->db, id, (int)pg->limit,
                                        (int)pg->offset, &rows, &n, &total)
               : uc_db_feedback_comments(app->db, id, (int)pg->limit,
                                         (int)pg->offset, &rows, &n, &total);
    if (*st != UC_DB_OK) {
        return NULL;
    }
    json_t *items = rows_json(rows, n, sizeof(*rows), feedback_json);
    free(rows);
    json_t *j = page_json(user ? "feedback" : "comments", items, total, pg);
    json_object_set_new(j, user ? "user_id" : "insight_id", json_string(id));
    if (j == NULL) {
        *st = UC_DB_ENOMEM;
    }
    return j;
}

static void h_comments(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    const char *id = qparam(req, "insight_id");
    page_t pg;
    char lim[24], off[24];
    if (check_id("insight_id", id, 1, res) != 0 ||
        q_page(req, 50, 100, &pg, res) != 0) {
        return;
    }
    const char *f[3] = {id, dec(lim, sizeof(lim), pg.limit),
                        dec(off, sizeof(off), pg.offset)};
    serve_cached(app, UC_KS_FEEDBACK_COMMENTS, f, 3, res);
}

static void h_user_feedback(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    page_t pg;
    char lim[24], off[24];
    if (q_page(req, 50, 100, &pg, res) != 0) {
        return;
    }
    /* The user's own data: never stored by a client or a proxy. */
    const char *f[3] = {req->user_id, dec(lim, sizeof(lim), pg.limit),
                        dec(off, sizeof(off), pg.offset)};
    serve_cached_as(app, UC_KS_FEEDBACK_USER, f, 3, CC_PRIVATE, 0, res);
}

/* ---- backfill ------------------------------------------------------------ */

static void h_backfill_start(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    json_t *body = parse_body(req, JSON_OBJECT, res);
    const char *job_type = NULL;
    const char *created_by = NULL;
    long long start = 0, end = 0;
    uc_db_job_t j;
    uc_stale_t *stale = NULL;
    if (body == NULL) {
        return;
    }
    if (get_str(body, "job_type", NULL, 1, 1, UC_DB_NAME_MAX, 0, &job_type,
                res) != 0 ||
        get_int(body, "start_block", NULL, 1, 0, 100000000, &start, NULL,
                res) != 0 ||
        get_int(body, "end_block", NULL, 1, 0, 100000000, &end, NULL, res) !=
            0 ||
        get_str(body, "created_by", NULL, 0, 1, UC_DB_ID_MAX, 0, &created_by,
                res) != 0) {
        goto cleanup;
    }
    if (strlen(job_type) > UC_DB_NAME_MAX ||
        (created_by != NULL && strlen(created_by) > UC_DB_ID_MAX)) {
        uc_resp_error(res, 422, "%s: too long",
                      strlen(job_type) > UC_DB_NAME_MAX ? "job_type"
                                                        : "created_by");
        goto cleanup;
    }
    if (end < start) {
        uc_resp_error(res, 422, "end_block: must not be below start_block");
        goto cleanup;
    }
    memset(&j, 0, sizeof(j));
    if (uc_uuid_new(j.id) != 0) {
        uc_resp_error(res, 500, "internal error");
        goto cleanup;
    }
    snprintf(j.job_type, sizeof(j.job_type), "%s", job_type);
    j.start_block = start;
    j.end_block = end;
    j.current_block = start;
    snprintf(j.status, sizeof(j.status), "running");
    j.estimated_completion = UC_DB_NULL_TIME;
    j.started_at = uc_now_us(app);
    j.completed_at = UC_DB_NULL_TIME;
    j.has_created_by = 1;
    snprintf(j.created_by, sizeof(j.created_by), "%s",
             created_by != NULL ? created_by : req->user_id);
    /* The job's key (a remembered 404 of its id) and every job list. */
    stale = uc_stale_new();
    const char *sf[1] = {j.id};
    const char *any[4] = {NULL, NULL, NULL, NULL};
    if (stale != NULL) {
        (void)uc_stale_add(app, stale, UC_KS_BACKFILL_JOB, sf);
        (void)uc_stale_add_tag(app, stale, UC_KS_BACKFILL_JOBS, 0, any);
    }
    int st = STALE_WRITE(
        app, stale,
        uc_db_job_create(app->db, &j, stale->inv, stale->n, stale->ids));
    if (st == UC_DB_ECONSTRAINT) {
        uc_resp_error(res, 422, "job: rejected by a database constraint");
        goto cleanup;
    }
    if (db_failed(res, st) != 0) {
        goto cleanup;
    }
    uc_stale_apply(app, stale);
    uc_resp_json(res, 201, job_json(&j));
    res->cache_control = CC_PRIVATE;
cleanup:
    uc_stale_free(stale);
    json_decref(body);
}

static void h_backfill_progress(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    char id[UC_DB_UUID_LEN + 1];
    const char *qid = qparam(req, "job_id");
    json_t *body;
    uc_db_job_progress_t p;
    long long cur = 0;
    uc_db_job_t j;
    uc_stale_t *stale = NULL;

    if (qid == NULL) {
        uc_resp_error(res, 422, "job_id: query parameter required");
        return;
    }
    if (uc_uuid_check(qid, id) != 0) {
        uc_resp_error(res, 422, "job_id: not a UUID");
        return;
    }
    body = parse_body(req, JSON_OBJECT, res);
    if (body == NULL) {
        return;
    }
    memset(&p, 0, sizeof(p));
    if (get_int(body, "current_block", NULL, 1, 0, 100000000, &cur, NULL,
                res) != 0 ||
        get_num(body, "progress_percentage", NULL, 1, 0.0, 100.0,
                &p.progress_percentage, res) != 0 ||
        get_time(body, "estimated_completion", &p.estimated_completion, res) !=
            0 ||
        get_enum(body, "status", 0, JOB_STATUSES, &p.status, res) != 0 ||
        get_str(body, "error_message", NULL, 0, 1, 1000, 1, &p.error_message,
                res) != 0) {
        goto cleanup;
    }
    p.current_block = cur;
    p.now = uc_now_us(app);
    stale = uc_stale_new();
    const char *sf[1] = {id};
    const char *any[4] = {NULL, NULL, NULL, NULL};
    if (stale != NULL) {
        (void)uc_stale_add(app, stale, UC_KS_BACKFILL_JOB, sf);
        (void)uc_stale_add_tag(app, stale, UC_KS_BACKFILL_JOBS, 0, any);
    }
    int st = STALE_WRITE(app, stale,
                         uc_db_job_progress(app->db, id, &p, &j, stale->inv,
                                            stale->n, stale->ids));
    if (st == UC_DB_NOTFOUND) {
        uc_resp_error(res, 404, "job '%s' not found", id);
        goto cleanup;
    }
    if (st == UC_DB_ECONSTRAINT) {
        uc_resp_error(res, 422, "progress: rejected by a database constraint");
        goto cleanup;
    }
    if (db_failed(res, st) != 0) {
        goto cleanup;
    }
    uc_stale_apply(app, stale);
    uc_resp_json(res, 200, job_json(&j));
    res->cache_control = CC_PRIVATE;
cleanup:
    uc_stale_free(stale);
    json_decref(body);
}

static json_t *build_job(uc_app_t *app, void *arg, int *st)
{
    uc_db_job_t j;
    *st = uc_db_job_get(app->db, arg, &j);
    return *st == UC_DB_OK ? job_json(&j) : NULL;
}

static void h_backfill_get(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    char id[UC_DB_UUID_LEN + 1];
    if (uc_uuid_check(req->param, id) != 0) {
        uc_resp_error(res, 422, "job_id: not a UUID");
        return;
    }
    const char *f[1] = {id};
    serve_cached(app, UC_KS_BACKFILL_JOB, f, 1, res);
}

/* A page of the job list, filtered by status and job_type (NULL: any). */
static json_t *build_jobs(uc_app_t *app, const char *status,
                          const char *job_type, const page_t *pg, int *st)
{
    uc_db_job_t *rows = NULL;
    size_t n = 0;
    int64_t total = 0;

    *st = uc_db_job_list(app->db, status, job_type, (int)pg->limit,
                         (int)pg->offset, &rows, &n, &total);
    if (*st != UC_DB_OK) {
        return NULL;
    }
    json_t *items = rows_json(rows, n, sizeof(*rows), job_json);
    free(rows);
    json_t *j = page_json("jobs", items, total, pg);
    if (j == NULL) {
        *st = UC_DB_ENOMEM;
    }
    return j;
}

static void h_backfill_list(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    const char *status;
    const char *job_type = qparam(req, "job_type");
    page_t pg;
    char st_f[24], ty_f[UC_DB_ID_MAX + 2], lim[24], off[24];
    if (q_enum(req, "status", JOB_STATUSES, &status, res) != 0 ||
        check_id("job_type", job_type, 0, res) != 0 ||
        q_page(req, 50, 100, &pg, res) != 0) {
        return;
    }
    const char *f[4] = {opt_field(st_f, sizeof(st_f), status),
                        opt_field(ty_f, sizeof(ty_f), job_type),
                        dec(lim, sizeof(lim), pg.limit),
                        dec(off, sizeof(off), pg.offset)};
    serve_cached(app, UC_KS_BACKFILL_JOBS, f, 4, res);
}

/* ---- metrics ------------------------------------------------------------- */

/*
 * 1 when serialised JSON text holds a \u0000 escape, i.e. some string of it
 * had a NUL. Such metadata would not read back (the reader stops at the NUL,
 * PostgreSQL's jsonb refuses it), so it is refused instead of being stored
 * and silently answered as null. Escapes are skipped pairwise so that an
 * escaped backslash followed by "u0000" is not mistaken for one.
 */
static int has_nul_escape(const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p != '\\') {
            continue;
        }
        if (strncmp(p + 1, "u0000", 5) == 0) {
            return 1;
        }
        if (p[1] == '\0') {
            break;
        }
        p++;
    }
    return 0;
}

/* Validates one metric object; label prefixes field names ("[3]."). */
static int metric_from_json(json_t *o, const char *pfx, uc_db_metric_new_t *m,
                            char **meta, uc_resp_t *res)
{
    char lab[4][48];
    snprintf(lab[0], sizeof(lab[0]), "%sservice_name", pfx);
    snprintf(lab[1], sizeof(lab[1]), "%smetric_type", pfx);
    snprintf(lab[2], sizeof(lab[2]), "%smetric_value", pfx);
    snprintf(lab[3], sizeof(lab[3]), "%sunit", pfx);
    *meta = NULL;
    if (!json_is_object(o)) {
        uc_resp_error(res, 422, "%sbody: must be a JSON object", pfx);
        return -1;
    }
    if (get_str(o, "service_name", lab[0], 1, 1, UC_DB_NAME_MAX, 0,
                &m->service_name, res) != 0 ||
        get_str(o, "metric_type", lab[1], 1, 1, UC_DB_NAME_MAX, 0,
                &m->metric_type, res) != 0 ||
        get_num(o, "metric_value", lab[2], 1, -1e300, 1e300, &m->metric_value,
                res) != 0 ||
        get_str(o, "unit", lab[3], 1, 1, UC_DB_UNIT_MAX, 0, &m->unit, res) !=
            0) {
        return -1;
    }
    if (strlen(m->service_name) > UC_DB_NAME_MAX ||
        strlen(m->metric_type) > UC_DB_NAME_MAX ||
        strlen(m->unit) > UC_DB_UNIT_MAX) {
        uc_resp_error(res, 422, "%sservice_name/metric_type/unit: too long",
                      pfx);
        return -1;
    }
    json_t *md = json_object_get(o, "metric_metadata");
    if (md != NULL && !json_is_null(md)) {
        if (!json_is_object(md)) {
            uc_resp_error(res, 422, "%smetric_metadata: must be an object",
                          pfx);
            return -1;
        }
        *meta = json_dumps(md, DUMP_FLAGS | JSON_SORT_KEYS);
        if (*meta != NULL && has_nul_escape(*meta)) {
            free(*meta);
            *meta = NULL;
            uc_resp_error(res, 422,
                          "%smetric_metadata: strings must not contain "
                          "\\u0000",
                          pfx);
            return -1;
        }
        if (*meta == NULL || strlen(*meta) > UC_DB_METADATA_MAX) {
            free(*meta);
            *meta = NULL;
            uc_resp_error(res, 422, "%smetric_metadata: at most %d bytes", pfx,
                          UC_DB_METADATA_MAX);
            return -1;
        }
    }
    m->metadata = *meta;
    return 0;
}

/*
 * After new metrics of a series: its recent pages, aggregates and windows
 * go, through the series' tag. Past UC_STALE_MAX records (a batch of many
 * series) every metrics entry goes instead (the family's tag), which costs
 * hits, never coherence.
 */
static void stale_series(uc_app_t *app, uc_stale_t *s, const char *svc,
                         const char *typ)
{
    static const int family[] = {UC_KS_RECENT_METRICS, UC_KS_AGG_METRICS,
                                 UC_KS_METRICS_WINDOW};
    const char *f[6] = {svc, typ, NULL, NULL, NULL, NULL};
    const char *any[UC_KEYSPACE_FIELDS_MAX] = {NULL};

    if (s->n + 1 + 3 < UC_STALE_MAX &&
        uc_stale_add_tag(app, s, UC_KS_RECENT_METRICS, 0, f) == 0) {
        return;
    }
    for (size_t i = 0; i < sizeof(family) / sizeof(family[0]); i++) {
        (void)uc_stale_add(app, s, family[i], any);
    }
}

static void metrics_post(uc_app_t *app, uc_req_t *req, uc_resp_t *res,
                         int batch)
{
    json_t *body = parse_body(req, batch ? JSON_ARRAY : JSON_OBJECT, res);
    size_t n;
    uc_db_metric_new_t *in = NULL;
    char **metas = NULL;
    uc_db_metric_t *out = NULL;
    uc_stale_t *stale = NULL;
    int64_t now;

    if (body == NULL) {
        return;
    }
    n = batch ? json_array_size(body) : 1;
    if (n == 0 || n > 1000) {
        uc_resp_error(res, 422, "body: 1 to 1000 metrics");
        goto cleanup;
    }
    in = calloc(n, sizeof(*in));
    metas = calloc(n, sizeof(*metas));
    out = calloc(n, sizeof(*out));
    if (in == NULL || metas == NULL || out == NULL) {
        uc_resp_error(res, 500, "out of memory");
        goto cleanup;
    }
    now = uc_now_us(app);
    for (size_t i = 0; i < n; i++) {
        char pfx[24] = "";
        if (batch) {
            snprintf(pfx, sizeof(pfx), "[%zu].", i);
        }
        if (metric_from_json(batch ? json_array_get(body, i) : body, pfx,
                             &in[i], &metas[i], res) != 0) {
            goto cleanup;
        }
        in[i].timestamp = now;
    }
    stale = uc_stale_new();
    for (size_t i = 0; i < n && stale != NULL; i++) {
        stale_series(app, stale, in[i].service_name, in[i].metric_type);
    }
    int st = STALE_WRITE(app, stale,
                         uc_db_metrics_insert(app->db, in, n, out, stale->inv,
                                              stale->n, stale->ids));
    if (st == UC_DB_ECONSTRAINT) {
        uc_resp_error(res, 422, "metrics: rejected by a database constraint");
        goto cleanup;
    }
    if (db_failed(res, st) != 0) {
        goto cleanup;
    }
    uc_stale_apply(app, stale);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, metric_json(&out[i]));
    }
    uc_db_metrics_free(out, n, 0);
    if (batch) {
        uc_resp_json(res, 201, arr);
    } else {
        uc_resp_json(res, 201, json_incref(json_array_get(arr, 0)));
        json_decref(arr);
    }
    res->cache_control = CC_PRIVATE;
cleanup:
    if (metas != NULL) {
        for (size_t i = 0; i < n; i++) {
            free(metas[i]);
        }
    }
    free(metas);
    free(in);
    free(out);
    uc_stale_free(stale);
    json_decref(body);
}

static void h_metric(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    metrics_post(app, req, res, 0);
}

static void h_metric_batch(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    metrics_post(app, req, res, 1);
}

/* ---- the database's own figures (the original's database routes) -------- */

/* Naive ISO 8601 in UTC with microseconds, as the original's Python wrote
 * datetime.utcnow().isoformat(). */
static void naive_iso(int64_t us, char *ts, size_t cap)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    size_t n = strftime(ts, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, cap - n, ".%06lld", (long long)(us % 1000000));
}

static double pct_of(uint64_t part, uint64_t whole)
{
    return whole > 0 ? (double)part * 100.0 / (double)whole : 0.0;
}

/* The database's figures now, and the time they were read (naive ISO). */
static void db_figures_now(uc_app_t *app, uc_db_figures_t *f, char *ts,
                           size_t cap)
{
    uc_db_figures(app->db, f);
    naive_iso(uc_now_us(app), ts, cap);
}

/* Connections of the pool not held by a call. */
static int pool_checked_in(const uc_db_figures_t *f)
{
    return f->pool_size > f->checked_out ? f->pool_size - f->checked_out : 0;
}

/* Seconds a call took on average. */
static double avg_query_s(const uc_db_figures_t *f)
{
    return f->queries > 0 ? (double)f->total_us / 1e6 / (double)f->queries
                          : 0.0;
}

/* The pool as the original reported SQLAlchemy's: size, checked in and
 * out, overflow (none here: the pool never grows past its size). */
static void h_db_pool(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    uc_db_figures_t f;
    char ts[40];

    (void)req;
    db_figures_now(app, &f, ts, sizeof(ts));
    uc_resp_json(res, 200,
                 json_pack("{s:s,s:{s:i,s:i,s:i,s:i,s:i,s:s}}", "status",
                           "success", "metrics", "size", f.pool_size,
                           "checked_in", pool_checked_in(&f), "checked_out",
                           f.checked_out, "overflow", 0, "total_connections",
                           f.pool_size, "timestamp", ts));
}

/* The calls this process made to its database since it started: count,
 * slow ones (over 200 ms, the original's threshold), times in seconds. */
static void h_db_queries(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    uc_db_figures_t f;
    char ts[40];

    (void)req;
    db_figures_now(app, &f, ts, sizeof(ts));
    uc_resp_json(res, 200,
                 json_pack("{s:s,s:{s:I,s:I,s:f,s:f,s:f,s:f,s:s}}", "status",
                           "success", "metrics", "total_queries",
                           (json_int_t)f.queries, "slow_queries",
                           (json_int_t)f.slow, "slow_query_percentage",
                           pct_of(f.slow, f.queries), "average_query_time",
                           avg_query_s(&f), "total_query_time",
                           (double)f.total_us / 1e6, "slow_query_threshold",
                           UC_DB_SLOW_QUERY_US / 1e6, "timestamp", ts));
}

/*
 * Records those figures as system_metrics rows of service "utxoiq-api",
 * under the names the original published to Cloud Monitoring, so that a
 * scheduler calling it keeps a history in the service's own database
 * (readable with GET /metrics like any other series, whose caches the
 * write invalidates).
 */
static void h_db_publish(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    uc_db_figures_t f;
    (void)req;
    uc_db_figures(app->db, &f);
    const struct {
        const char *type, *unit;
        double v;
    } m[] = {
        {"connection_pool_size", "connections", f.pool_size},
        {"connection_pool_checked_in", "connections", pool_checked_in(&f)},
        {"connection_pool_checked_out", "connections", f.checked_out},
        {"connection_pool_overflow", "connections", 0},
        {"connection_pool_total", "connections", f.pool_size},
        {"query_count", "queries", (double)f.queries},
        {"slow_query_count", "queries", (double)f.slow},
        {"slow_query_percentage", "percent", pct_of(f.slow, f.queries)},
        {"average_query_time_ms", "ms", avg_query_s(&f) * 1e3},
    };
    enum { N = sizeof(m) / sizeof(m[0]) };
    uc_db_metric_new_t in[N];
    uc_db_metric_t out[N];
    int64_t now = uc_now_us(app);
    uc_stale_t *stale = uc_stale_new();

    memset(in, 0, sizeof(in));
    memset(out, 0, sizeof(out));
    for (size_t i = 0; i < N; i++) {
        in[i].service_name = "utxoiq-api";
        in[i].metric_type = m[i].type;
        in[i].metric_value = m[i].v;
        in[i].unit = m[i].unit;
        in[i].timestamp = now;
        if (stale != NULL) {
            stale_series(app, stale, in[i].service_name, in[i].metric_type);
        }
    }
    int st = STALE_WRITE(app, stale,
                         uc_db_metrics_insert(app->db, in, N, out, stale->inv,
                                              stale->n, stale->ids));
    if (db_failed(res, st) == 0) {
        uc_stale_apply(app, stale);
        uc_db_metrics_free(out, N, 0);
        uc_resp_json(res, 200,
                     json_pack("{s:s,s:s}", "status", "success", "message",
                               "Database metrics published"));
        res->cache_control = CC_PRIVATE;
    }
    uc_stale_free(stale);
}

typedef struct {
    uc_db_metric_filter_t f;
    page_t pg;
} metric_query_t;

static json_t *build_metrics(uc_app_t *app, void *arg, int *st)
{
    metric_query_t *q = arg;
    uc_db_metric_t *rows = NULL;
    size_t n = 0;
    *st = uc_db_metrics_list(app->db, &q->f, (int)q->pg.limit,
                             (int)q->pg.offset, &rows, &n);
    if (*st != UC_DB_OK) {
        return NULL;
    }
    json_t *items = rows_json(rows, n, sizeof(*rows), metric_json);
    uc_db_metrics_free(rows, n, 1);
    return json_pack(
        "{s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:I}", "metrics", items, "service_name",
        q->f.service_name != NULL ? json_string(q->f.service_name)
                                  : json_null(),
        "metric_type",
        q->f.metric_type != NULL ? json_string(q->f.metric_type) : json_null(),
        "start_time", time_json(q->f.start), "end_time", time_json(q->f.end),
        "count", (json_int_t)n, "limit", (json_int_t)q->pg.limit, "offset",
        (json_int_t)q->pg.offset);
}

static void h_metrics_list(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    metric_query_t q;
    memset(&q, 0, sizeof(q));
    q.f.service_name = qparam(req, "service_name");
    q.f.metric_type = qparam(req, "metric_type");
    if (check_id("service_name", q.f.service_name, 0, res) != 0 ||
        check_id("metric_type", q.f.metric_type, 0, res) != 0 ||
        q_time(req, "start_time", &q.f.start, res) != 0 ||
        q_time(req, "end_time", &q.f.end, res) != 0 ||
        q_page(req, 100, 1000, &q.pg, res) != 0) {
        return;
    }
    if (q.f.start != UC_DB_NULL_TIME && q.f.end != UC_DB_NULL_TIME &&
        q.f.end <= q.f.start) {
        uc_resp_error(res, 422, "end_time: must be after start_time");
        return;
    }
    int recent = q.f.start == UC_DB_NULL_TIME && q.f.end == UC_DB_NULL_TIME;
    if (recent) {
        /* The recent hour starts at a whole minute, so one cache entry
         * answers every request of that minute exactly. */
        int64_t minute = INT64_C(60000000);
        q.f.start = (uc_now_us(app) / minute) * minute - 60 * minute;
    }
    if (!recent && q.f.service_name != NULL && q.f.metric_type != NULL) {
        /* An explicit window of one series. */
        char s1[24], s2[24], lim[24], off[24];
        const char *f[6] = {
            q.f.service_name,
            q.f.metric_type,
            q.f.start == UC_DB_NULL_TIME ? "-" : dec(s1, sizeof(s1), q.f.start),
            q.f.end == UC_DB_NULL_TIME ? "-" : dec(s2, sizeof(s2), q.f.end),
            dec(lim, sizeof(lim), q.pg.limit),
            dec(off, sizeof(off), q.pg.offset)};
        serve_cached(app, UC_KS_METRICS_WINDOW, f, 6, res);
        return;
    }
    if (!recent || q.f.service_name == NULL || q.f.metric_type == NULL) {
        /* Not one series: any series' write changes it. */
        int st = UC_DB_OK;
        json_t *j = build_metrics(app, &q, &st);
        if (j == NULL) {
            resp_db_error(res, st);
            return;
        }
        uc_resp_json(res, 200, j);
        res->cache_control = CC_PUBLIC;
        res->etag = 1;
        return;
    }
    char win[24], lim[24], off[24];
    snprintf(win, sizeof(win), "%lld", (long long)(q.f.start / 1000000));
    snprintf(lim, sizeof(lim), "%lld", q.pg.limit);
    snprintf(off, sizeof(off), "%lld", q.pg.offset);
    const char *f[5] = {q.f.service_name, q.f.metric_type, win, lim, off};
    serve_cached(app, UC_KS_RECENT_METRICS, f, 5, res);
}

typedef struct {
    const char *service;
    const char *type;
    uc_db_interval_t iv;
    const char *iv_name;
    int64_t start;
    int64_t end;
} agg_query_t;

static json_t *build_agg(uc_app_t *app, void *arg, int *st)
{
    agg_query_t *q = arg;
    uc_db_bucket_t *rows = NULL;
    size_t n = 0;
    *st = uc_db_metrics_aggregate(app->db, q->service, q->type, q->iv, q->start,
                                  q->end, &rows, &n);
    if (*st != UC_DB_OK) {
        return NULL;
    }
    json_t *data = rows_json(rows, n, sizeof(*rows), bucket_json);
    free(rows);
    return json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "service_name", q->service,
                     "metric_type", q->type, "interval", q->iv_name,
                     "start_time", time_json(q->start), "end_time",
                     time_json(q->end), "data", data);
}

static void h_metrics_agg(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    static const char *const IVS[] = {"hour", "day", "week", NULL};
    static const int64_t DEFAULT_SPAN[] = {24, 30 * 24, 12 * 7 * 24};
    agg_query_t q;
    const char *iv = NULL;
    int64_t start, end;

    memset(&q, 0, sizeof(q));
    q.service = qparam(req, "service_name");
    q.type = qparam(req, "metric_type");
    if (check_id("service_name", q.service, 1, res) != 0 ||
        check_id("metric_type", q.type, 1, res) != 0 ||
        q_enum(req, "interval", IVS, &iv, res) != 0 ||
        q_time(req, "start_time", &start, res) != 0 ||
        q_time(req, "end_time", &end, res) != 0) {
        return;
    }
    if (iv == NULL) {
        iv = "hour";
    }
    q.iv = strcmp(iv, "day") == 0    ? UC_DB_DAY
           : strcmp(iv, "week") == 0 ? UC_DB_WEEK
                                     : UC_DB_HOUR;
    q.iv_name = iv;
    int64_t w = uc_db_interval_width_us(q.iv);
    int64_t o = uc_db_interval_origin_us(q.iv);
    if (end == UC_DB_NULL_TIME) {
        end = uc_now_us(app);
    }
    if (start == UC_DB_NULL_TIME) {
        start = end - DEFAULT_SPAN[q.iv] * INT64_C(3600000000);
    }
    if (end <= start) {
        uc_resp_error(res, 422, "end_time: must be after start_time");
        return;
    }
    /* Round outwards to whole buckets so rolling windows share entries. */
    q.start = start < o ? o : o + ((start - o) / w) * w;
    q.end = o + ((end - o + w - 1) / w) * w;
    if ((q.end - q.start) / w > 10000) {
        uc_resp_error(res, 422, "start_time: at most 10000 %ss per query", iv);
        return;
    }
    char s1[24], s2[24];
    snprintf(s1, sizeof(s1), "%lld", (long long)(q.start / 1000000));
    snprintf(s2, sizeof(s2), "%lld", (long long)(q.end / 1000000));
    const char *f[5] = {q.service, q.type, iv, s1, s2};
    serve_cached(app, UC_KS_AGG_METRICS, f, 5, res);
}

/* ---- retention ----------------------------------------------------------- */

static void h_retention(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    const int64_t day = INT64_C(86400000000);
    int64_t now = uc_now_us(app);
    uc_db_retention_cutoffs_t c = {now - 180 * day, now - 730 * day,
                                   now - 90 * day};
    uc_db_retention_t r;
    size_t failed = 0;
    (void)req;

    /* Which rows go is known only inside the transaction, so the records
     * name every keyspace whole (a pattern each, which scans): a rare,
     * operator-run call that costs hits once and keeps the invalidation
     * durable. The only write of the service that scans. */
    uc_stale_t *stale = uc_stale_new();
    const char *any[UC_KEYSPACE_FIELDS_MAX] = {NULL};
    if (stale != NULL) {
        for (int k = 0; k < UC_KS_COUNT; k++) {
            (void)uc_stale_add(app, stale, k, any);
        }
    }
    int st = STALE_WRITE(
        app, stale,
        uc_db_retention_run(app->db, &c, &r, stale->inv, stale->n, stale->ids));
    if (db_failed(res, st) != 0) {
        uc_stale_free(stale);
        return;
    }
    failed = uc_stale_apply(app, stale);
    uc_stale_free(stale);
    uc_resp_json(res, 200,
                 json_pack("{s:I,s:I,s:I,s:{s:I,s:I,s:I},s:I}",
                           "backfill_jobs_deleted", (json_int_t)r.jobs_deleted,
                           "feedback_deleted", (json_int_t)r.feedback_deleted,
                           "metrics_deleted", (json_int_t)r.metrics_deleted,
                           "invalidated", "backfill_jobs",
                           (json_int_t)r.n_job_ids, "insights",
                           (json_int_t)r.n_insight_ids, "metric_series",
                           (json_int_t)r.n_series, "invalidation_failures",
                           (json_int_t)failed));
    res->cache_control = CC_PRIVATE;
    uc_db_retention_release(&r);
}

/* ---- operations ---------------------------------------------------------- */

/* Every counter of the library's table, by its own name. */
static json_t *stats_json(const uc_stats_t *s)
{
    json_t *o = json_object();

    json_object_set_new(o, "hit_rate", json_real(uc_stats_hit_rate(s)));
#define FIELD(name, help)                                                      \
    json_object_set_new(o, #name, json_integer((json_int_t)s->name));
    UC_STATS_COUNTERS(FIELD)
#undef FIELD
    /* The same reads by tier: a near hit never reaches Redis; every other
     * read that found a value found it in Redis. */
    uint64_t redis_hits = s->hits > s->near_hits ? s->hits - s->near_hits : 0;
    json_object_set_new(o, "tiers",
                        json_pack("{s:{s:I,s:I},s:{s:I,s:I}}", "near", "hits",
                                  (json_int_t)s->near_hits, "misses",
                                  (json_int_t)(redis_hits + s->misses), "redis",
                                  "hits", (json_int_t)redis_hits, "misses",
                                  (json_int_t)s->misses));
    return o;
}

static json_t *near_usage_json(const uc_near_usage_t *u)
{
    return json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "budget_bytes",
        (json_int_t)u->budget_bytes, "bytes", (json_int_t)u->bytes, "entries",
        (json_int_t)u->entries, "inserts", (json_int_t)u->inserts, "evictions",
        (json_int_t)u->evictions, "invalidations", (json_int_t)u->invalidations,
        "refused", (json_int_t)u->refused);
}

/* The keyspace's record of its most read entries: its memory and its ten
 * most read keys. */
static json_t *hot_json(const uc_keyspace_t *ks)
{
    uc_hot_entry_t top[10];
    size_t n = uc_keyspace_hot(ks, top, 10);
    json_t *arr = json_array();

    for (size_t i = 0; i < n && i < 10 && arr != NULL; i++) {
        json_array_append_new(arr,
                              json_pack("{s:s,s:I}", "key", top[i].key, "reads",
                                        (json_int_t)top[i].reads));
    }
    return json_pack("{s:I,s:o}", "bytes",
                     (json_int_t)uc_keyspace_hot_bytes(ks), "top", arr);
}

/* The near cache and its invalidation channel. */
static json_t *near_json(uc_app_t *app)
{
    static const char *const CHANNEL[] = {"none", "down", "connecting",
                                          "healthy"};
    uc_near_stats_t ns;
    uint64_t n = 0;

    uc_cache_near_stats(app->cache, &ns);
    for (int i = 0; i < UC_HIST_BUCKETS; i++) {
        n += ns.lag_us[i];
    }
    json_t *lag = json_pack(
        "{s:I,s:I,s:I,s:I}", "samples", (json_int_t)n, "p50_us_le",
        (json_int_t)uc_stats_percentile_us(ns.lag_us, 0.5), "p99_us_le",
        (json_int_t)uc_stats_percentile_us(ns.lag_us, 0.99), "max_us_le",
        (json_int_t)uc_stats_percentile_us(ns.lag_us, 1.0));
    json_t *o = json_pack(
        "{s:b,s:s,s:o,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I,s:I},s:I,s:I,"
        "s:o}",
        "enabled", ns.enabled, "channel",
        CHANNEL[ns.channel <= UC_CHANNEL_HEALTHY ? ns.channel : 0], "usage",
        near_usage_json(&ns.usage), "channel_connects",
        (json_int_t)ns.channel_connects, "channel_connect_failures",
        (json_int_t)ns.channel_connect_failures, "messages",
        (json_int_t)ns.messages, "keys_invalidated",
        (json_int_t)ns.keys_invalidated, "flushes", "total",
        (json_int_t)ns.flushes, "null_message", (json_int_t)ns.flushes_null,
        "channel_lost", (json_int_t)ns.flushes_lost, "heartbeat_late",
        (json_int_t)ns.flushes_heartbeat, "dataset",
        (json_int_t)ns.flushes_dataset, "topology",
        (json_int_t)ns.flushes_topology, "heartbeats_sent",
        (json_int_t)ns.heartbeats_sent, "heartbeats_late",
        (json_int_t)ns.heartbeats_late, "invalidation_lag", lag);
    return o;
}

/*
 * The Redis servers behind the cache, as the library routes to them: the
 * mode ("standalone", "cluster", "unknown" until a server answered, "none"
 * on the memory backend), the topology counters, and one object per node
 * (primaries first, at most UC_REDIS_NODES_MAX). Apart from the "redis"
 * object so that it stays there when INFO fails, which is when it is most
 * useful.
 */
static json_t *topology_json(uc_app_t *app)
{
    static const char *const MODE[] = {"unknown", "standalone", "cluster"};
    static const char *const ROLE[] = {"unknown", "primary", "replica"};
    static const char *const BREAKER[] = {"closed", "open", "half_open"};
    static const char *const CHANNEL[] = {"none", "down", "connecting",
                                          "healthy"};
    int redis = strcmp(uc_cache_backend_name(app->cache), "redis") == 0;
    uc_redis_topology_t t;
    uc_redis_node_t *nodes = calloc(UC_REDIS_NODES_MAX, sizeof(*nodes));
    size_t n = 0;

    if (nodes == NULL) {
        return NULL;
    }
    n = uc_cache_redis_nodes(app->cache, &t, nodes, UC_REDIS_NODES_MAX);
    if (n > UC_REDIS_NODES_MAX) {
        n = UC_REDIS_NODES_MAX;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n && arr != NULL; i++) {
        const uc_redis_node_t *o = &nodes[i];
        const uc_pool_stats_t *ps = &o->pool;
        json_array_append_new(
            arr,
            json_pack(
                "{s:s,s:o,s:s,s:i,s:b,s:b,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:s,"
                "s:i,s:i,s:I,s:I}",
                "addr", o->addr, "id",
                o->id[0] != '\0' ? json_string(o->id) : json_null(), "role",
                ROLE[o->role <= UC_NODE_REPLICA ? o->role : 0], "slots",
                (int)o->slots, "trusted", o->trusted != 0, "failed",
                o->failed != 0, "channel",
                CHANNEL[o->channel <= UC_CHANNEL_HEALTHY ? o->channel : 0],
                "commands", (json_int_t)o->commands, "failures",
                (json_int_t)o->failures, "moved", (json_int_t)o->moved, "ask",
                (json_int_t)o->ask, "tryagain", (json_int_t)o->tryagain,
                "distrusts", (json_int_t)o->distrusts, "breaker",
                BREAKER[ps->breaker <= UC_BREAKER_HALF_OPEN ? ps->breaker : 0],
                "in_use", (int)ps->in_use, "idle", (int)ps->idle, "connects",
                (json_int_t)ps->connects, "connect_failures",
                (json_int_t)ps->connect_failures));
    }
    free(nodes);
    return json_pack(
        "{s:s,s:I,s:I,s:I,s:I,s:I,s:o}", "mode",
        !redis ? "none" : MODE[t.mode <= UC_REDIS_CLUSTER ? t.mode : 0],
        "refreshes", (json_int_t)t.refreshes, "refresh_failures",
        (json_int_t)t.refresh_failures, "failovers", (json_int_t)t.failovers,
        "slot_moves", (json_int_t)t.slot_moves, "unrouted",
        (json_int_t)t.unrouted, "nodes", arr);
}

static void h_cache_stats(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    int redis = strcmp(uc_cache_backend_name(app->cache), "redis") == 0;
    json_t *kss = json_object();
    uc_stats_t tot;
    uc_pool_stats_t ps;
    uc_server_info_t si;
    (void)req;

    for (int i = 0; i < UC_KS_COUNT; i++) {
        uc_stats_t s;
        uc_keyspace_stats(app->ks[i], &s);
        json_t *o = stats_json(&s);
        json_object_set_new(o, "ttl_s",
                            json_integer(uc_keyspace_ttl(app->ks[i])));
        uc_near_usage_t u;
        uc_keyspace_near_usage(app->ks[i], &u);
        json_object_set_new(o, "near", near_usage_json(&u));
        json_object_set_new(o, "hot", hot_json(app->ks[i]));
        if (redis) {
            uint64_t keys = 0;
            if (uc_keyspace_count(app->ks[i], &keys) == UC_OK) {
                json_object_set_new(o, "keys", json_integer((json_int_t)keys));
            } else {
                json_object_set_new(o, "keys", json_null());
            }
        }
        json_object_set_new(kss, uc_keyspace_name(app->ks[i]), o);
    }
    uc_cache_stats(app->cache, &tot);
    uc_cache_pool_stats(app->cache, &ps);
    static const char *const BREAKER[] = {"closed", "open", "half_open"};
    json_t *totals = stats_json(&tot);
    json_object_set_new(totals, "pending_invalidations",
                        json_integer((json_int_t)tot.pending_invalidations));
    json_t *j = json_pack(
        "{s:s,s:o,s:o,s:{s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:I},"
        "s:{s:I,s:I,s:I}}",
        "backend", uc_cache_backend_name(app->cache), "totals", totals,
        "keyspaces", kss, "pool", "max", (int)ps.max, "in_use", (int)ps.in_use,
        "idle", (int)ps.idle, "connects", (json_int_t)ps.connects,
        "connect_failures", (json_int_t)ps.connect_failures, "discarded",
        (json_int_t)ps.discarded, "waits", (json_int_t)ps.waits,
        "acquire_timeouts", (json_int_t)ps.acquire_timeouts, "breaker",
        BREAKER[ps.breaker <= UC_BREAKER_HALF_OPEN ? ps.breaker : 0],
        "breaker_opens", (json_int_t)ps.breaker_opens, "breaker_rejects",
        (json_int_t)ps.breaker_rejects, "pipelined_batches",
        (json_int_t)ps.batches, "pipelined_calls", (json_int_t)ps.batched,
        "invalidation_queue", "pending", (json_int_t)tot.pending_invalidations,
        "failed", (json_int_t)tot.invalidation_failures, "retried",
        (json_int_t)tot.invalidations_applied_late);
    json_object_set_new(j, "scope",
                        json_string(app->cache_local ? "process" : "shared"));
    json_object_set_new(j, "near", near_json(app));
    json_object_set_new(j, "topology", topology_json(app));
    if (redis) {
        if (uc_cache_server_info(app->cache, &si) == UC_OK) {
            json_object_set_new(
                j, "redis",
                json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "version", si.version,
                          "used_memory", (json_int_t)si.used_memory,
                          "max_memory", (json_int_t)si.max_memory, "keys",
                          (json_int_t)si.keys, "evicted_keys",
                          (json_int_t)si.evicted_keys, "expired_keys",
                          (json_int_t)si.expired_keys));
        } else {
            json_object_set_new(j, "redis", json_null());
        }
    }
    uc_resp_json(res, 200, j);
}

/*
 * Warms the cache now: the library loads the most read entries of each
 * keyspace again in the background, at its bounded rate. 202 when queued,
 * 409 when a warm is queued or running already, or warming is off.
 */
static void h_cache_warm(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    int rc = uc_cache_warm(app->cache);
    (void)req;

    if (rc == UC_OK) {
        uc_resp_json(res, 202, json_pack("{s:s}", "status", "queued"));
    } else if (rc == UC_EUNAVAILABLE) {
        uc_resp_error(res, 409, "a cache warm is queued or running already");
    } else if (rc == UC_ENOTSUP) {
        uc_resp_error(res, 409,
                      "cache warming is off (UTXOCACHE_WARM_TOP=0 or no "
                      "keyspace with a loader)");
    } else {
        uc_resp_error(res, 500, "cache warm: %s", uc_strerror(rc));
    }
    res->cache_control = CC_PRIVATE;
}

static void h_healthz(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    (void)req;
    uc_resp_json(
        res, 200,
        json_pack("{s:s,s:I}", "status", "ok", "uptime_s",
                  (json_int_t)((uc_now_us(app) - app->started_at) / 1000000)));
}

/* The original service's health check, for probes and monitors set up
 * for it: always "healthy" while the process answers (liveness; readiness
 * is /readyz), its time naive ISO 8601 in UTC as the original wrote it. */
static void h_health(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    char ts[40];

    (void)req;
    naive_iso(uc_now_us(app), ts, sizeof(ts));
    uc_resp_json(res, 200,
                 json_pack("{s:s,s:s,s:s}", "status", "healthy", "timestamp",
                           ts, "version", UC_VERSION_STRING));
}

/*
 * Ready when the database answers a read and took the last write probe (one
 * real write at most once a second, uc_db_write_probe), and the service is
 * not draining. The cache does not decide readiness: without Redis every
 * request is still answered from the database.
 */
static void h_readyz(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    uint64_t rtt = 0;
    (void)req;
    int dbst = uc_db_ping(app->db);
    int wst = dbst == UC_DB_OK ? uc_db_write_probe(app->db, 1000) : dbst;
    int cst = uc_cache_ping(app->cache, &rtt);
    int draining = atomic_load(&app->draining);
    int ready = dbst == UC_DB_OK && wst == UC_DB_OK && !draining;
    const char *dbname = uc_db_backend_name(app->db);
    json_t *j = json_pack(
        "{s:s,s:{s:s,s:s,s:b},s:{s:s,s:s,s:I,s:s}}", "status",
        ready ? "ready" : "not ready", "database", "backend", dbname, "status",
        wst == UC_DB_OK ? "ok" : uc_db_strerror(wst), "writable",
        wst == UC_DB_OK, "cache", "backend", uc_cache_backend_name(app->cache),
        "status", cst == UC_OK ? "ok" : uc_strerror(cst), "rtt_us",
        (json_int_t)rtt, "scope", app->cache_local ? "process" : "shared");
    if (j != NULL && !ready) {
        char detail[160];
        if (wst != UC_DB_OK) {
            snprintf(detail, sizeof(detail), "database '%s': %s", dbname,
                     uc_db_strerror(wst));
        } else {
            snprintf(detail, sizeof(detail), "draining");
        }
        json_object_set_new(j, "detail", json_string(detail));
    }
    if (app->cache_local && j != NULL) {
        json_object_set_new(
            json_object_get(j, "cache"), "warning",
            json_string("the memory backend is per-process: instances share "
                        "no entries and see each other's writes only through "
                        "the invalidation log, within its tail interval"));
    }
    uc_resp_json(res, ready ? 200 : 503, j);
}

static void h_prometheus(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    size_t len = 0;
    char *text = uc_metrics_text(app, &len);
    (void)req;
    if (text == NULL) {
        uc_resp_error(res, 500, "out of memory");
        return;
    }
    res->status = 200;
    res->body = text;
    res->len = len;
    res->body_free = free;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static const uc_route_t routes[] = {
    {"POST", "/api/v1/feedback/rate", UC_ROLE_USER, h_rate, "feedback_rate", 0},
    {"POST", "/api/v1/feedback/comment", UC_ROLE_USER, h_comment,
     "feedback_comment", 0},
    {"POST", "/api/v1/feedback/flag", UC_ROLE_USER, h_flag, "feedback_flag", 0},
    {"GET", "/api/v1/feedback/stats", 0, h_stats, "feedback_stats", 0},
    {"GET", "/api/v1/feedback/stats/{}", 0, h_stats, "feedback_stats_path", 0},
    {"GET", "/api/v1/feedback/comments", 0, h_comments, "feedback_comments", 0},
    {"GET", "/api/v1/feedback/user", UC_ROLE_USER, h_user_feedback,
     "feedback_user", 0},
    {"POST", "/api/v1/monitoring/backfill/start", UC_ROLE_ADMIN,
     h_backfill_start, "backfill_start", 0},
    {"POST", "/api/v1/monitoring/backfill/progress", UC_ROLE_SERVICE,
     h_backfill_progress, "backfill_progress", 0},
    {"GET", "/api/v1/monitoring/backfill/status", 0, h_backfill_list,
     "backfill_status", 0},
    {"GET", "/api/v1/monitoring/backfill/{}", 0, h_backfill_get, "backfill_job",
     0},
    {"POST", "/api/v1/monitoring/metrics", UC_ROLE_SERVICE, h_metric,
     "metrics_post", 0},
    {"POST", "/api/v1/monitoring/metrics/batch", UC_ROLE_SERVICE,
     h_metric_batch, "metrics_batch", UC_API_BATCH_BODY_MAX},
    {"GET", "/api/v1/monitoring/metrics", 0, h_metrics_list, "metrics_list", 0},
    {"GET", "/api/v1/monitoring/metrics/aggregate", 0, h_metrics_agg,
     "metrics_aggregate", 0},
    {"POST", "/api/v1/monitoring/retention/run", UC_ROLE_ADMIN, h_retention,
     "retention_run", 0},
    {"GET", "/api/v1/monitoring/cache/stats", 0, h_cache_stats, "cache_stats",
     0},
    {"GET", "/api/v1/monitoring/database/pool", UC_ROLE_ADMIN, h_db_pool,
     "database_pool", 0},
    {"GET", "/api/v1/monitoring/database/queries", UC_ROLE_ADMIN, h_db_queries,
     "database_queries", 0},
    {"POST", "/api/v1/monitoring/database/publish-metrics", UC_ROLE_SERVICE,
     h_db_publish, "database_publish", 0},
    {"POST", "/api/v1/monitoring/cache/warm", UC_ROLE_ADMIN, h_cache_warm,
     "cache_warm", 0},
    {"GET", "/api/v1/monitoring/cache/history", 0, uc_history_handler,
     "cache_history", 0},
    {"GET", "/dashboard", 0, uc_dashboard_page, "dashboard", 0},
    {"GET", "/dashboard/{}", 0, uc_dashboard_file, "dashboard_file", 0},
    {"GET", "/health", 0, h_health, "health", 0},
    {"GET", "/healthz", 0, h_healthz, "healthz", 0},
    {"GET", "/readyz", 0, h_readyz, "readyz", 0},
    {"GET", "/metrics", 0, h_prometheus, "metrics", 0},
};

const uc_route_t *uc_api_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}

/* ---- the keyspaces' loaders ---------------------------------------------- */

/* Each builds the answer of one entry from its key fields (as the handler
 * above wrote them) and nothing else; arg is the app. */

static int load_stats(void *arg, const char *const *f, size_t n, char **val,
                      size_t *len)
{
    int st = UC_DB_OK;
    json_t *j = n == 1 ? build_stats(arg, (void *)f[0], &st) : NULL;
    return n == 1 ? load_json(j, st, val, len) : UC_EINVAL;
}

static int load_job(void *arg, const char *const *f, size_t n, char **val,
                    size_t *len)
{
    int st = UC_DB_OK;
    json_t *j = n == 1 ? build_job(arg, (void *)f[0], &st) : NULL;
    return n == 1 ? load_json(j, st, val, len) : UC_EINVAL;
}

/* A decimal field the handler wrote. */
static int field_ll(const char *s, long long *out)
{
    return uc_parse_int(s, LLONG_MIN / 1000000, LLONG_MAX / 1000000, out);
}

static int load_metrics(void *arg, const char *const *f, size_t n, char **val,
                        size_t *len)
{
    metric_query_t q;
    long long win, lim, off;
    int st = UC_DB_OK;

    if (n != 5 || field_ll(f[2], &win) != 0 || field_ll(f[3], &lim) != 0 ||
        field_ll(f[4], &off) != 0) {
        return UC_EINVAL;
    }
    memset(&q, 0, sizeof(q));
    q.f.service_name = f[0];
    q.f.metric_type = f[1];
    q.f.start = (int64_t)win * 1000000;
    q.f.end = UC_DB_NULL_TIME;
    q.pg.limit = lim;
    q.pg.offset = off;
    return load_json(build_metrics(arg, &q, &st), st, val, len);
}

static int load_agg(void *arg, const char *const *f, size_t n, char **val,
                    size_t *len)
{
    agg_query_t q;
    long long s1, s2;
    int st = UC_DB_OK;

    if (n != 5 || field_ll(f[3], &s1) != 0 || field_ll(f[4], &s2) != 0) {
        return UC_EINVAL;
    }
    memset(&q, 0, sizeof(q));
    q.service = f[0];
    q.type = f[1];
    q.iv_name = f[2];
    if (strcmp(f[2], "day") == 0) {
        q.iv = UC_DB_DAY;
    } else if (strcmp(f[2], "week") == 0) {
        q.iv = UC_DB_WEEK;
    } else if (strcmp(f[2], "hour") == 0) {
        q.iv = UC_DB_HOUR;
    } else {
        return UC_EINVAL;
    }
    q.start = (int64_t)s1 * 1000000;
    q.end = (int64_t)s2 * 1000000;
    return load_json(build_agg(arg, &q, &st), st, val, len);
}

/* The limit and offset fields of a page entry. */
static int page_fields(const char *lim, const char *off, page_t *pg)
{
    return field_ll(lim, &pg->limit) != 0 || field_ll(off, &pg->offset) != 0
               ? -1
               : 0;
}

static int load_comments(void *arg, const char *const *f, size_t n, char **val,
                         size_t *len)
{
    page_t pg;
    int st = UC_DB_OK;

    if (n != 3 || page_fields(f[1], f[2], &pg) != 0) {
        return UC_EINVAL;
    }
    return load_json(build_feedback_page(arg, 0, f[0], &pg, &st), st, val, len);
}

static int load_user_feedback(void *arg, const char *const *f, size_t n,
                              char **val, size_t *len)
{
    page_t pg;
    int st = UC_DB_OK;

    if (n != 3 || page_fields(f[1], f[2], &pg) != 0) {
        return UC_EINVAL;
    }
    return load_json(build_feedback_page(arg, 1, f[0], &pg, &st), st, val, len);
}

static int load_jobs(void *arg, const char *const *f, size_t n, char **val,
                     size_t *len)
{
    page_t pg;
    int st = UC_DB_OK;

    if (n != 4 || page_fields(f[2], f[3], &pg) != 0) {
        return UC_EINVAL;
    }
    return load_json(
        build_jobs(arg, opt_value(f[0]), opt_value(f[1]), &pg, &st), st, val,
        len);
}

static int load_window(void *arg, const char *const *f, size_t n, char **val,
                       size_t *len)
{
    metric_query_t q;
    long long s1 = 0, s2 = 0;
    int st = UC_DB_OK;

    memset(&q, 0, sizeof(q));
    /* µs since the epoch, as the handler wrote them (uc_time_parse). */
    if (n != 6 ||
        (strcmp(f[2], "-") != 0 &&
         uc_parse_int(f[2], LLONG_MIN, LLONG_MAX, &s1) != 0) ||
        (strcmp(f[3], "-") != 0 &&
         uc_parse_int(f[3], LLONG_MIN, LLONG_MAX, &s2) != 0) ||
        page_fields(f[4], f[5], &q.pg) != 0) {
        return UC_EINVAL;
    }
    q.f.service_name = f[0];
    q.f.metric_type = f[1];
    q.f.start = strcmp(f[2], "-") == 0 ? UC_DB_NULL_TIME : (int64_t)s1;
    q.f.end = strcmp(f[3], "-") == 0 ? UC_DB_NULL_TIME : (int64_t)s2;
    return load_json(build_metrics(arg, &q, &st), st, val, len);
}

uc_loader_fn uc_api_loader(int ks)
{
    switch (ks) {
    case UC_KS_FEEDBACK_STATS:
        return load_stats;
    case UC_KS_BACKFILL_JOB:
        return load_job;
    case UC_KS_RECENT_METRICS:
        return load_metrics;
    case UC_KS_AGG_METRICS:
        return load_agg;
    case UC_KS_FEEDBACK_COMMENTS:
        return load_comments;
    case UC_KS_FEEDBACK_USER:
        return load_user_feedback;
    case UC_KS_BACKFILL_JOBS:
        return load_jobs;
    case UC_KS_METRICS_WINDOW:
        return load_window;
    default:
        return NULL;
    }
}
