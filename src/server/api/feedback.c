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

/* The original's FeedbackResponse: the answer of rate, comment and flag. */
static json_t *feedback_json(const void *row)
{
    const uq_db_feedback_t *f = row;
    return json_pack(
        "{s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o}", "id", f->id, "insight_id",
        f->insight_id, "user_id", f->user_id, "rating",
        f->rating > 0 ? json_integer(f->rating) : json_null(), "comment",
        api_str_or_null(f->has_comment, f->comment), "flag_type",
        api_str_or_null(1, f->flag_type), "flag_reason",
        /* Not api_str_or_null: an empty reason is "", not null. */
        f->has_flag_reason ? json_string(f->flag_reason) : json_null(),
        "created_at", api_time_json(f->created_at), "updated_at",
        api_time_json(f->updated_at));
}

/*
 * An item of an insight's comment page: the original's five fields and no
 * more. The page is public, so another user's rating and flag reason stay
 * out of it.
 */
static json_t *comment_item_json(const void *row)
{
    const uq_db_feedback_t *f = row;
    return json_pack("{s:s,s:s,s:o,s:o,s:o}", "id", f->id, "user_id",
                     f->user_id, "comment",
                     api_str_or_null(f->has_comment, f->comment), "created_at",
                     api_time_json(f->created_at), "updated_at",
                     api_time_json(f->updated_at));
}

/* An item of a user's own page: the original's seven fields. */
static json_t *user_item_json(const void *row)
{
    const uq_db_feedback_t *f = row;
    return json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o}", "id", f->id, "insight_id",
                     f->insight_id, "rating",
                     f->rating > 0 ? json_integer(f->rating) : json_null(),
                     "comment", api_str_or_null(f->has_comment, f->comment),
                     "flag_type", api_str_or_null(1, f->flag_type),
                     "created_at", api_time_json(f->created_at), "updated_at",
                     api_time_json(f->updated_at));
}

/*
 * 0 when an insight or user id is 1 to 100 characters (code points, as
 * pydantic counts max_length) without control characters, else a 422 in
 * res. The id also has to fit one cache key field (UC_FIELD_MAX bytes), which
 * only 100 characters mostly beyond two bytes of UTF-8 each do not.
 */
static int fb_check_id(const char *name, const char *v, uq_resp_t *res)
{
    if (v == NULL) {
        uq_resp_error(res, 422, "%s: query parameter required", name);
        return -1;
    }
    size_t len = strlen(v);
    if (uq_text_check(v, len, 1, UQ_DB_FB_ID_CHARS, 0) != 0) {
        uq_resp_error(res, 422,
                      "%s: must be 1 to %d characters without control "
                      "characters",
                      name, UQ_DB_FB_ID_CHARS);
        return -1;
    }
    if (len > UC_FIELD_MAX) {
        uq_resp_error(res, 422, "%s: at most %d bytes of UTF-8", name,
                      UC_FIELD_MAX);
        return -1;
    }
    return 0;
}

/*
 * x rounded to 2 decimals as Python's round(x, 2) does: on the exact decimal
 * value of the binary double, half to even. 1.125 is exactly representable,
 * so it is a tie and goes to 1.12; 2.675 is stored as 2.67499999..., below
 * the tie, and goes to 2.67 as well. Adding 0.5 to x * 100 gets both wrong.
 *
 * How it works: "%.80f" prints the exact expansion of every double of
 * magnitude 1e-8 or more (a double's fraction has at most 52 + 27 binary
 * digits there, and each binary digit needs one decimal one); anything
 * smaller rounds to 0 whatever its later digits. The digits after the
 * second decimal then say below, tie or above, the tie goes to the even
 * last digit, the carry is done on the text, and strtod turns the decimal
 * result into its nearest double, as Python's float of the rounded text.
 */
static double round2_half_even(double x)
{
    char buf[128];
    char out[128];

    /* From 2^53 on a double has no fraction. */
    if (!isfinite(x) || fabs(x) >= 9007199254740992.0) {
        return x;
    }
    int n = snprintf(buf, sizeof(buf), "%.80f", x);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        return x;
    }
    char *dot = strchr(buf, '.');
    if (dot == NULL) {
        return x;
    }
    /* Keep "[-]int.dd"; rest points at the third decimal. */
    size_t keep = (size_t)(dot - buf) + 3;
    const char *rest = buf + keep;
    int up;
    if (*rest > '5') {
        up = 1;
    } else if (*rest < '5') {
        up = 0;
    } else {
        up = rest[1 + strspn(rest + 1, "0")] != '\0';
        if (!up) {
            up = (buf[keep - 1] - '0') % 2 == 1;
        }
    }
    int neg = buf[0] == '-';
    size_t start = neg ? 1 : 0;
    /* One spare leading place for a carry out of the integer part. */
    out[0] = '0';
    memcpy(out + 1, buf + start, keep - start);
    size_t olen = 1 + keep - start;
    out[olen] = '\0';
    for (size_t i = olen; up && i-- > 0;) {
        if (out[i] == '.') {
            continue;
        }
        if (out[i] == '9') {
            out[i] = '0';
        } else {
            out[i]++;
            up = 0;
        }
    }
    double r = strtod(out, NULL);
    return neg ? -r : r;
}

/*
 * The integral value of a rating given as the original's clients may send
 * it, pydantic v2 in lax mode: a JSON integer, a number with no fraction
 * (4.0), or a string of decimal digits with an optional sign, surrounding
 * spaces and a fraction of zeros ("4", " 4 ", "4.0"). 0 with *out set, -1
 * when v is none of these.
 */
static int lax_int(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) > 1e15) {
            return -1;
        }
        *out = (long long)d;
        return 0;
    }
    if (!json_is_string(v)) {
        return -1;
    }
    const char *p = json_string_value(v);
    const char *end = p + json_string_length(v);
    long long x = 0;
    int neg = 0, digits = 0;
    while (p < end && *p == ' ') {
        p++;
    }
    while (end > p && end[-1] == ' ') {
        end--;
    }
    if (p < end && (*p == '+' || *p == '-')) {
        neg = *p == '-';
        p++;
    }
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits >= 15) {
            return -1;
        }
        x = x * 10 + (*p - '0');
    }
    if (p < end && *p == '.') {
        for (p++; p < end && *p == '0'; p++) {
        }
    }
    if (digits == 0 || p != end) {
        return -1;
    }
    *out = neg ? -x : x;
    return 0;
}

/*
 * Reads the required "rating" (1..5) into *out; 0, or -1 with a 422 in res.
 * A form lax_int() does not take goes through the shared reader, so its
 * messages stay the ones every other integer field gives.
 */
static int get_rating(json_t *body, long long *out, uq_resp_t *res)
{
    json_t *v = json_object_get(body, "rating");
    long long x;
    if (v == NULL || json_is_null(v) || json_is_integer(v) ||
        lax_int(v, &x) != 0) {
        return get_int(body, "rating", NULL, 1, 1, 5, out, NULL, res);
    }
    if (x < 1 || x > 5) {
        uq_resp_error(res, 422, "rating: must be from 1 to 5");
        return -1;
    }
    *out = x;
    return 0;
}

static const char *const FLAG_TYPES[] = {"inaccurate", "misleading", "spam",
                                         NULL};

/* ---- feedback ------------------------------------------------------------ */

static void feedback_write(uq_app_t *app, uq_req_t *req, uq_resp_t *res,
                           unsigned kind)
{
    json_t *body = api_parse_body(req, JSON_OBJECT, res);
    uq_db_feedback_write_t w;
    uq_db_feedback_t row;
    const char *s = NULL;
    long long rating = 0;
    uq_stale_t *stale = NULL;
    int st;

    if (body == NULL) {
        return;
    }
    memset(&w, 0, sizeof(w));
    w.fields = kind;
    w.user_id = req->user_id;
    if (get_str(body, "insight_id", NULL, 1, 1, UQ_DB_FB_ID_CHARS, 0,
                &w.insight_id, res) != 0 ||
        fb_check_id("insight_id", w.insight_id, res) != 0) {
        goto cleanup;
    }
    /* A key's user may be longer than a feedback row takes. */
    if (fb_check_id("user_id", w.user_id, res) != 0) {
        goto cleanup;
    }
    if (kind == UQ_DB_FB_RATING) {
        if (get_rating(body, &rating, res) != 0 ||
            get_str(body, "comment", NULL, 0, 0, 1000, 1, &s, res) != 0) {
            goto cleanup;
        }
        w.rating = (int)rating;
        /* The original stores "" and counts it as no comment (stats and
         * pages skip it); the schema keeps comments non-empty, so "" clears
         * the comment, which reads the same everywhere but in this answer
         * (null where the original echoed ""). */
        w.has_comment = s != NULL;
        w.comment = s != NULL && s[0] != '\0' ? s : NULL;
    } else if (kind == UQ_DB_FB_COMMENT) {
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
        /* "" is stored as "", as the original stored it. */
        w.has_flag_reason = s != NULL;
        w.flag_reason = s;
    }
    w.now = uq_now_us(app);
    stale = uq_stale_new();
    /* The insight's stats and comment pages, and the writer's own pages:
     * one tag each. */
    const char *sf[1] = {w.insight_id};
    const char *uf[3] = {w.user_id, NULL, NULL};
    if (stale != NULL &&
        (uq_stale_add_tag(app, stale, UQ_KS_FEEDBACK_STATS, 0, sf) != 0 ||
         uq_stale_add_tag(app, stale, UQ_KS_FEEDBACK_USER, 0, uf) != 0)) {
        uq_resp_error(res, 422, "insight_id: not a valid key field");
        goto cleanup;
    }
    st = STALE_WRITE(app, stale,
                     uq_db_feedback_upsert(app->db, &w, &row, stale->inv,
                                           stale->n, stale->ids));
    if (st == UQ_DB_ECONSTRAINT) {
        uq_resp_error(res, 422, "feedback: rejected by a database constraint");
        goto cleanup;
    }
    if (api_db_failed(res, st) != 0) {
        goto cleanup;
    }
    uq_stale_apply(app, stale);
    uq_resp_json(res, 200, feedback_json(&row));
    res->cache_control = CC_PRIVATE;
cleanup:
    uq_stale_free(stale);
    json_decref(body);
}

void api_h_rate(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    feedback_write(app, req, res, UQ_DB_FB_RATING);
}

void api_h_comment(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    feedback_write(app, req, res, UQ_DB_FB_COMMENT);
}

void api_h_flag(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    feedback_write(app, req, res, UQ_DB_FB_FLAG);
}

static json_t *build_stats(uq_app_t *app, void *arg, int *st)
{
    const char *insight_id = arg;
    uq_db_feedback_stats_t s;
    json_t *flags;
    *st = uq_db_feedback_stats(app->db, insight_id, &s);
    if (*st != UQ_DB_OK) {
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
    return json_pack("{s:s,s:I,s:f,s:{s:I,s:I,s:I,s:I,s:I},s:I,s:I,s:o}",
                     "insight_id", insight_id, "total_ratings",
                     (json_int_t)s.total_ratings, "average_rating",
                     round2_half_even(s.average_rating), "rating_distribution",
                     "1", (json_int_t)s.rating_distribution[0], "2",
                     (json_int_t)s.rating_distribution[1], "3",
                     (json_int_t)s.rating_distribution[2], "4",
                     (json_int_t)s.rating_distribution[3], "5",
                     (json_int_t)s.rating_distribution[4], "total_comments",
                     (json_int_t)s.total_comments, "total_flags",
                     (json_int_t)s.total_flags, "flag_types", flags);
}

void api_h_stats(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    const char *id =
        req->param != NULL ? req->param : api_qparam(req, "insight_id");
    if (fb_check_id("insight_id", id, res) != 0) {
        return;
    }
    const char *f[1] = {id};
    api_serve_cached(app, UQ_KS_FEEDBACK_STATS, f, 1, res);
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
static json_t *build_feedback_page(uq_app_t *app, int user, const char *id,
                                   const page_t *pg, int *st)
{
    uq_db_feedback_t *rows = NULL;
    size_t n = 0;
    int64_t total = 0;

    *st = user ? uq_db_feedback_by_user(app->db, id, (int)pg->limit,
                                        (int)pg->offset, &rows, &n, &total)
               : uq_db_feedback_comments(app->db, id, (int)pg->limit,
                                         (int)pg->offset, &rows, &n, &total);
    if (*st != UQ_DB_OK) {
        return NULL;
    }
    json_t *items = api_rows_json(rows, n, sizeof(*rows),
                                  user ? user_item_json : comment_item_json);
    free(rows);
    json_t *j = api_page_json(user ? "feedback" : "comments", items, total, pg);
    json_object_set_new(j, user ? "user_id" : "insight_id", json_string(id));
    if (j == NULL) {
        *st = UQ_DB_ENOMEM;
    }
    return j;
}

void api_h_comments(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    const char *id = api_qparam(req, "insight_id");
    page_t pg;
    char lim[24], off[24];
    /* The original's page: 20 by default, 1 to 100. */
    if (fb_check_id("insight_id", id, res) != 0 ||
        api_q_page(req, 20, 100, &pg, res) != 0) {
        return;
    }
    const char *f[3] = {id, api_dec(lim, sizeof(lim), pg.limit),
                        api_dec(off, sizeof(off), pg.offset)};
    api_serve_cached(app, UQ_KS_FEEDBACK_COMMENTS, f, 3, res);
}

void api_h_user_feedback(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    page_t pg;
    char lim[24], off[24];
    if (api_q_page(req, 50, 100, &pg, res) != 0) {
        return;
    }
    /* The user's own data: never stored by a client or a proxy. */
    const char *f[3] = {req->user_id, api_dec(lim, sizeof(lim), pg.limit),
                        api_dec(off, sizeof(off), pg.offset)};
    api_serve_cached_as(app, UQ_KS_FEEDBACK_USER, f, 3, CC_PRIVATE, 0, res);
}

int api_load_stats(void *arg, const char *const *f, size_t n, char **val,
                   size_t *len)
{
    int st = UQ_DB_OK;
    json_t *j = n == 1 ? build_stats(arg, (void *)f[0], &st) : NULL;
    return n == 1 ? api_load_json(j, st, val, len) : UC_EINVAL;
}

int api_load_comments(void *arg, const char *const *f, size_t n, char **val,
                      size_t *len)
{
    page_t pg;
    int st = UQ_DB_OK;

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
    int st = UQ_DB_OK;

    if (n != 3 || api_page_fields(f[1], f[2], &pg) != 0) {
        return UC_EINVAL;
    }
    return api_load_json(build_feedback_page(arg, 1, f[0], &pg, &st), st, val,
                         len);
}
