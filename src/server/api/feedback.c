/* SPDX-License-Identifier: MIT */
/*
 * Feedback: POST rate, comment and flag (one row per insight and user, merged),
 * and the cached reads of an insight's stats and comments and of a user's
 * feedback.
 */
#include "api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static json_t *feedback_json(const void *row)
{
    const uc_db_feedback_t *f = row;
    return json_pack(
        "{s:I,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)f->id,
        "insight_id", f->insight_id, "user_id", f->user_id, "rating",
        f->rating > 0 ? json_integer(f->rating) : json_null(), "comment",
        api_str_or_null(f->has_comment, f->comment), "flag_type",
        api_str_or_null(1, f->flag_type), "flag_reason",
        api_str_or_null(f->has_flag_reason, f->flag_reason), "created_at",
        api_time_json(f->created_at), "updated_at",
        api_time_json(f->updated_at));
}

static const char *const FLAG_TYPES[] = {"inaccurate", "misleading", "spam",
                                         NULL};

/* ---- feedback ------------------------------------------------------------ */

static void feedback_write(uc_app_t *app, uc_req_t *req, uc_resp_t *res,
                           unsigned kind)
{
    json_t *body = api_parse_body(req, JSON_OBJECT, res);
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
    if (api_db_failed(res, st) != 0) {
        goto cleanup;
    }
    uc_stale_apply(app, stale);
    uc_resp_json(res, 200, feedback_json(&row));
    res->cache_control = CC_PRIVATE;
cleanup:
    uc_stale_free(stale);
    json_decref(body);
}

void api_h_rate(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    feedback_write(app, req, res, UC_DB_FB_RATING);
}

void api_h_comment(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    feedback_write(app, req, res, UC_DB_FB_COMMENT);
}

void api_h_flag(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
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

void api_h_stats(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    const char *id =
        req->param != NULL ? req->param : api_qparam(req, "insight_id");
    if (api_check_id("insight_id", id, 1, res) != 0) {
        return;
    }
    const char *f[1] = {id};
    api_serve_cached(app, UC_KS_FEEDBACK_STATS, f, 1, res);
}

json_t *api_page_json(const char *list_name, json_t *items, int64_t total,
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
    json_t *items = api_rows_json(rows, n, sizeof(*rows), feedback_json);
    free(rows);
    json_t *j = api_page_json(user ? "feedback" : "comments", items, total, pg);
    json_object_set_new(j, user ? "user_id" : "insight_id", json_string(id));
    if (j == NULL) {
        *st = UC_DB_ENOMEM;
    }
    return j;
}

void api_h_comments(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    const char *id = api_qparam(req, "insight_id");
    page_t pg;
    char lim[24], off[24];
    if (api_check_id("insight_id", id, 1, res) != 0 ||
        api_q_page(req, 50, 100, &pg, res) != 0) {
        return;
    }
    const char *f[3] = {id, api_dec(lim, sizeof(lim), pg.limit),
                        api_dec(off, sizeof(off), pg.offset)};
    api_serve_cached(app, UC_KS_FEEDBACK_COMMENTS, f, 3, res);
}

void api_h_user_feedback(uc_app_t *app, uc_req_t *req, uc_resp_t *res)
{
    page_t pg;
    char lim[24], off[24];
    if (api_q_page(req, 50, 100, &pg, res) != 0) {
        return;
    }
    /* The user's own data: never stored by a client or a proxy. */
    const char *f[3] = {req->user_id, api_dec(lim, sizeof(lim), pg.limit),
                        api_dec(off, sizeof(off), pg.offset)};
    api_serve_cached_as(app, UC_KS_FEEDBACK_USER, f, 3, CC_PRIVATE, 0, res);
}

int api_load_stats(void *arg, const char *const *f, size_t n, char **val,
                   size_t *len)
{
    int st = UC_DB_OK;
    json_t *j = n == 1 ? build_stats(arg, (void *)f[0], &st) : NULL;
    return n == 1 ? api_load_json(j, st, val, len) : UC_EINVAL;
}

int api_load_comments(void *arg, const char *const *f, size_t n, char **val,
                      size_t *len)
{
    page_t pg;
    int st = UC_DB_OK;

    if (n != 3 || api_page_fields(f[1], f[2], &pg) != 0) {
        return UC_EINVAL;
    }
    return api_load_json(build_feedback_page(arg, 0, f[0], &pg, &st), st, val,
                         len);
}

int api_load_user_feedback(void *arg, const char *const *f, size_t n,
                           char **val, size_t *len)
{
    page_t pg;
    int st = UC_DB_OK;

    if (n != 3 || api_page_fields(f[1], f[2], &pg) != 0) {
        return UC_EINVAL;
    }
    return api_load_json(build_feedback_page(arg, 1, f[0], &pg, &st), st, val,
                         len);
}
