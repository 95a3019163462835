/* SPDX-License-Identifier: MIT */
/*
 * Service metrics: one row or a batch (service), the cached recent window
 * and list, and the hourly, daily or weekly aggregate, with the original
 * service's statuses and shapes (200 on writes, a bare list on reads,
 * inclusive time windows).
 */
#include "api.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static json_t *metric_json(const void *row)
{
    const uq_db_metric_t *m = row;
    json_t *meta = json_null();
    if (m->metadata != NULL) {
        json_t *parsed = json_loads(m->metadata, JSON_DECODE_ANY, NULL);
        if (parsed != NULL) {
            json_decref(meta);
            meta = parsed;
        }
    }
    return json_pack("{s:s,s:s,s:s,s:f,s:s,s:o,s:o}", "id", m->id,
                     "service_name", m->service_name, "metric_type",
                     m->metric_type, "metric_value", m->metric_value, "unit",
                     m->unit, "timestamp", api_time_json(m->timestamp),
                     "metric_metadata", meta);
}

static json_t *bucket_json(const void *row)
{
    const uq_db_bucket_t *b = row;
    return json_pack("{s:o,s:f,s:f,s:f,s:I}", "timestamp",
                     api_time_json(b->bucket), "avg_value", b->avg_value,
                     "min_value", b->min_value, "max_value", b->max_value,
                     "count", (json_int_t)b->count);
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

/* The original's column limits, in characters. */
#define SERVICE_NAME_CHARS 100
#define METRIC_TYPE_CHARS 50
#define UNIT_CHARS 20

/* Validates one metric object; pfx prefixes field names ("[3]."), which
 * the 422 writes as the item's index in loc. */
static int metric_from_json(json_t *o, const char *pfx, uq_db_metric_new_t *m,
                            char **meta, uq_resp_t *res)
{
    char lab[5][48];
    snprintf(lab[0], sizeof(lab[0]), "%sservice_name", pfx);
    snprintf(lab[1], sizeof(lab[1]), "%smetric_type", pfx);
    snprintf(lab[2], sizeof(lab[2]), "%smetric_value", pfx);
    snprintf(lab[3], sizeof(lab[3]), "%sunit", pfx);
    snprintf(lab[4], sizeof(lab[4]), "%smetric_metadata", pfx);
    *meta = NULL;
    if (!json_is_object(o)) {
        /* An item of the batch that is not an object: "[3]." names it. */
        char item[24];
        snprintf(item, sizeof(item), "%.*s", (int)strcspn(pfx, "."), pfx);
        uq_resp_invalid(res, "body", item[0] != '\0' ? item : NULL,
                        "model_attributes_type", o, NULL,
                        "Input should be a valid dictionary or object to "
                        "extract fields from");
        return -1;
    }
    if (get_str(o, "service_name", lab[0], 1, 1, SERVICE_NAME_CHARS, 0,
                &m->service_name, res) != 0 ||
        get_str(o, "metric_type", lab[1], 1, 1, METRIC_TYPE_CHARS, 0,
                &m->metric_type, res) != 0 ||
        get_num(o, "metric_value", lab[2], 1, -1e300, 1e300, &m->metric_value,
                res) != 0 ||
        get_str(o, "unit", lab[3], 1, 1, UNIT_CHARS, 0, &m->unit, res) != 0) {
        return -1;
    }
    json_t *md = json_object_get(o, "metric_metadata");
    if (md != NULL && !json_is_null(md)) {
        if (!json_is_object(md)) {
            uq_resp_invalid(res, "body", lab[4], "dict_type", md, NULL,
                            "Input should be a valid dictionary");
            return -1;
        }
        *meta = json_dumps(md, DUMP_FLAGS | JSON_SORT_KEYS);
        if (*meta != NULL && has_nul_escape(*meta)) {
            free(*meta);
            *meta = NULL;
            /* Not quoted back: the NUL it holds is what was refused. */
            uq_resp_invalid(res, "body", lab[4], "value_error", NULL, NULL,
                            "Value error, strings must not contain \\u0000");
            return -1;
        }
        if (*meta == NULL) {
            uq_resp_error(res, 500, "out of memory");
            return -1;
        }
    }
    m->metadata = *meta;
    return 0;
}

void api_stale_series(uq_app_t *app, uq_stale_t *s, const char *svc,
                      const char *typ)
{
    static const int family[] = {UQ_KS_RECENT_METRICS, UQ_KS_AGG_METRICS,
                                 UQ_KS_METRICS_WINDOW};
    const char *f[6] = {svc, typ, NULL, NULL, NULL, NULL};
    const char *any[UC_KEYSPACE_FIELDS_MAX] = {NULL};

    if (s->n + 1 + 3 < UQ_STALE_MAX &&
        uq_stale_add_tag(app, s, UQ_KS_RECENT_METRICS, 0, f) == 0) {
        return;
    }
    for (size_t i = 0; i < sizeof(family) / sizeof(family[0]); i++) {
        (void)uq_stale_add(app, s, family[i], any);
    }
}

void api_metrics_post(uq_app_t *app, uq_req_t *req, uq_resp_t *res, int batch)
{
    json_t *body = api_parse_body(req, batch ? JSON_ARRAY : JSON_OBJECT, res);
    size_t n;
    uq_db_metric_new_t *in = NULL;
    char **metas = NULL;
    uq_db_metric_t *out = NULL;
    uq_stale_t *stale = NULL;
    int64_t now;

    if (body == NULL) {
        return;
    }
    n = batch ? json_array_size(body) : 1;
    if (n == 0) {
        /* The original stored nothing and answered the empty list. */
        uq_resp_json(res, 200, json_array());
        res->cache_control = CC_PRIVATE;
        goto cleanup;
    }
    if (n > 1000) {
        uq_resp_invalid(res, "body", NULL, "too_long", NULL,
                        json_pack("{s:i}", "max_length", 1000),
                        "List should have at most 1000 items");
        goto cleanup;
    }
    in = calloc(n, sizeof(*in));
    metas = calloc(n, sizeof(*metas));
    out = calloc(n, sizeof(*out));
    if (in == NULL || metas == NULL || out == NULL) {
        uq_resp_error(res, 500, "out of memory");
        goto cleanup;
    }
    now = uq_now_us(app);
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
    stale = uq_stale_new();
    for (size_t i = 0; i < n && stale != NULL; i++) {
        api_stale_series(app, stale, in[i].service_name, in[i].metric_type);
    }
    int st = STALE_WRITE(app, stale,
                         uq_db_metrics_insert(app->db, in, n, out, stale->inv,
                                              stale->n, stale->ids));
    if (st == UQ_DB_ECONSTRAINT) {
        uq_resp_error(res, 422, "metrics: rejected by a database constraint");
        goto cleanup;
    }
    if (api_db_failed(res, st) != 0) {
        goto cleanup;
    }
    uq_stale_apply(app, stale);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, metric_json(&out[i]));
    }
    uq_db_metrics_free(out, n, 0);
    /* 200, as the original's routes (no status_code) answered. */
    if (batch) {
        uq_resp_json(res, 200, arr);
    } else {
        uq_resp_json(res, 200, json_incref(json_array_get(arr, 0)));
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
    uq_stale_free(stale);
    json_decref(body);
}

void api_h_metric(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    api_metrics_post(app, req, res, 0);
}

void api_h_metric_batch(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    api_metrics_post(app, req, res, 1);
}

typedef struct {
    uq_db_metric_filter_t f;
    page_t pg;
} metric_query_t;

/* A page of metrics as the original's List[MetricResponse]: a bare array.
 * q->f.end is exclusive here; the handler turned the client's inclusive
 * end_time into end + 1 µs. */
static json_t *build_metrics(uq_app_t *app, void *arg, int *st)
{
    metric_query_t *q = arg;
    uq_db_metric_t *rows = NULL;
    size_t n = 0;
    *st = uq_db_metrics_list(app->db, &q->f, (int)q->pg.limit,
                             (int)q->pg.offset, &rows, &n);
    if (*st != UQ_DB_OK) {
        return NULL;
    }
    json_t *items = api_rows_json(rows, n, sizeof(*rows), metric_json);
    uq_db_metrics_free(rows, n, 1);
    if (items == NULL) {
        *st = UQ_DB_ENOMEM;
    }
    return items;
}

/* How far from now an end_time may be and still be read as "now" (the
 * recent page): clients compute it from their own clock a moment before
 * the request arrives. */
#define NOW_SLACK_US INT64_C(5000000)

/* The shortest window read as a recent page: a shorter one asks about
 * its edges, which the page would blur, and gets its exact entry. */
#define RECENT_MIN_SPAN_US INT64_C(60000000)

/* 1 when both names fit a cache key field; a longer name (possible with
 * 100 characters of four bytes) is answered from the database alone. */
static int series_fits_key(const char *svc, const char *typ)
{
    return strlen(svc) < UC_FIELD_MAX && strlen(typ) < UC_FIELD_MAX;
}

/*
 * GET /metrics as the original: start_time and end_time required (naive
 * times are UTC), both inclusive, newest first, limit 1000 by default up
 * to 10000, a bare array.
 *
 * Caching: a window of one series of a minute or more whose end_time is
 * within NOW_SLACK_US of now (what a client polling "the last hour" sends)
 * is the series' recent page, keyed by its start rounded down to the
 * second and with no upper bound, so that requests of the same second
 * share one entry; it may hold rows of the start's second before
 * start_time and rows written in the slack after end_time, as the
 * original's own recent cache also answered from a list it had cached.
 * Any other window of one series is an entry of its exact bounds. Both are
 * invalidated by the series' writes.
 */
void api_h_metrics_list(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    metric_query_t q;
    int64_t now = uq_now_us(app);
    memset(&q, 0, sizeof(q));
    if (api_q_text(req, "service_name", UQ_DB_NAME_MAX, &q.f.service_name,
                   res) != 0 ||
        api_q_text(req, "metric_type", UQ_DB_NAME_MAX, &q.f.metric_type, res) !=
            0 ||
        api_q_time_req(req, "start_time", 1, &q.f.start, res) != 0 ||
        api_q_time_req(req, "end_time", 1, &q.f.end, res) != 0 ||
        api_q_page(req, 1000, 10000, &q.pg, res) != 0) {
        return;
    }
    /* The database's bound is exclusive; times are whole µs. */
    q.f.end += 1;
    int series = q.f.service_name != NULL && q.f.metric_type != NULL &&
                 series_fits_key(q.f.service_name, q.f.metric_type);
    int64_t end_incl = q.f.end - 1;
    if (series && end_incl >= now - NOW_SLACK_US &&
        end_incl <= now + NOW_SLACK_US &&
        end_incl - q.f.start >= RECENT_MIN_SPAN_US) {
        char win[24], lim[24], off[24];
        int64_t sec = q.f.start / 1000000;
        const char *f[5] = {q.f.service_name, q.f.metric_type,
                            api_dec(win, sizeof(win), (long long)sec),
                            api_dec(lim, sizeof(lim), q.pg.limit),
                            api_dec(off, sizeof(off), q.pg.offset)};
        api_serve_cached(app, UQ_KS_RECENT_METRICS, f, 5, res);
        return;
    }
    if (series) {
        char s1[24], s2[24], lim[24], off[24];
        const char *f[6] = {q.f.service_name,
                            q.f.metric_type,
                            api_dec(s1, sizeof(s1), q.f.start),
                            api_dec(s2, sizeof(s2), q.f.end),
                            api_dec(lim, sizeof(lim), q.pg.limit),
                            api_dec(off, sizeof(off), q.pg.offset)};
        api_serve_cached(app, UQ_KS_METRICS_WINDOW, f, 6, res);
        return;
    }
    /* Not one series: any series' write changes it. */
    int st = UQ_DB_OK;
    json_t *j = build_metrics(app, &q, &st);
    if (j == NULL) {
        api_resp_db_error(res, st);
        return;
    }
    uq_resp_json(res, 200, j);
    res->cache_control = CC_PUBLIC;
    res->etag = 1;
}

typedef struct {
    const char *service;
    const char *type;
    uq_db_interval_t iv;
    const char *iv_name;
    int64_t start;
    int64_t end;
} agg_query_t;

/* q->start and q->end are the client's bounds, both inclusive. */
static json_t *build_agg(uq_app_t *app, void *arg, int *st)
{
    agg_query_t *q = arg;
    uq_db_bucket_t *rows = NULL;
    size_t n = 0;
    *st = uq_db_metrics_aggregate(app->db, q->service, q->type, q->iv, q->start,
                                  q->end + 1, &rows, &n);
    if (*st != UQ_DB_OK) {
        return NULL;
    }
    json_t *data = api_rows_json(rows, n, sizeof(*rows), bucket_json);
    free(rows);
    return json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "service_name", q->service,
                     "metric_type", q->type, "interval", q->iv_name,
                     "start_time", api_time_json(q->start), "end_time",
                     api_time_json(q->end), "data", data);
}

/*
 * Buckets of one series over [start_time, end_time] as the original: only
 * rows inside the window count, in the edge buckets too, and the bounds
 * come back as the client gave them. week is an interval of this service
 * (weeks start on Monday); the bounds may be left out (end: now; start: a
 * day, 30 days or 12 weeks before it; both rounded out to whole buckets),
 * which the original required.
 */
void api_h_metrics_agg(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    static const char *const IVS[] = {"hour", "day", "week", NULL};
    static const int64_t DEFAULT_SPAN[] = {24, 30 * 24, 12 * 7 * 24};
    agg_query_t q;
    const char *iv = NULL;
    int64_t start, end;

    memset(&q, 0, sizeof(q));
    q.service = api_qparam(req, "service_name");
    q.type = api_qparam(req, "metric_type");
    if (api_check_id("service_name", q.service, 1, res) != 0 ||
        api_check_id("metric_type", q.type, 1, res) != 0 ||
        api_q_enum(req, "interval", IVS, &iv, res) != 0 ||
        api_q_time(req, "start_time", &start, res) != 0 ||
        api_q_time(req, "end_time", &end, res) != 0) {
        return;
    }
    if (iv == NULL) {
        iv = "hour";
    }
    q.iv = strcmp(iv, "day") == 0    ? UQ_DB_DAY
           : strcmp(iv, "week") == 0 ? UQ_DB_WEEK
                                     : UQ_DB_HOUR;
    q.iv_name = iv;
    int64_t w = uq_db_interval_width_us(q.iv);
    if (end == UQ_DB_NULL_TIME) {
        end = uq_now_us(app);
    }
    if (start == UQ_DB_NULL_TIME) {
        start = end - DEFAULT_SPAN[q.iv] * INT64_C(3600000000);
    }
    if (api_qparam(req, "start_time") == NULL &&
        api_qparam(req, "end_time") == NULL) {
        /* This service's default window (the original required both):
         * rounded outwards to whole buckets, so that rolling requests
         * share one entry. */
        int64_t o = uq_db_interval_origin_us(q.iv);
        start = start < o ? o : o + ((start - o) / w) * w;
        end = o + ((end - o + w - 1) / w) * w - 1;
    }
    if (end > start && (end - start) / w > 10000) {
        json_t *in = json_string(api_qparam(req, "start_time"));
        uq_resp_invalid(res, "query", "start_time", "value_error", in, NULL,
                        "Value error, at most 10000 %ss per query", iv);
        json_decref(in);
        return;
    }
    /* An end before the start is an empty window, as the original's
     * query found nothing in it. */
    q.start = start;
    q.end = end;
    char s1[24], s2[24];
    const char *f[5] = {q.service, q.type, iv,
                        api_dec(s1, sizeof(s1), (long long)q.start),
                        api_dec(s2, sizeof(s2), (long long)q.end)};
    api_serve_cached(app, UQ_KS_AGG_METRICS, f, 5, res);
}

int api_load_metrics(void *arg, const char *const *f, size_t n, char **val,
                     size_t *len)
{
    metric_query_t q;
    long long win, lim, off;
    int st = UQ_DB_OK;

    if (n != 5 || api_field_ll(f[2], &win) != 0 ||
        api_field_ll(f[3], &lim) != 0 || api_field_ll(f[4], &off) != 0) {
        return UC_EINVAL;
    }
    memset(&q, 0, sizeof(q));
    q.f.service_name = f[0];
    q.f.metric_type = f[1];
    q.f.start = (int64_t)win * 1000000;
    q.f.end = UQ_DB_NULL_TIME;
    q.pg.limit = lim;
    q.pg.offset = off;
    return api_load_json(build_metrics(arg, &q, &st), st, val, len);
}

int api_load_agg(void *arg, const char *const *f, size_t n, char **val,
                 size_t *len)
{
    agg_query_t q;
    long long s1, s2;
    int st = UQ_DB_OK;

    /* µs since the epoch, as the handler wrote them. */
    if (n != 5 || uq_parse_int(f[3], LLONG_MIN, LLONG_MAX, &s1) != 0 ||
        uq_parse_int(f[4], LLONG_MIN, LLONG_MAX, &s2) != 0) {
        return UC_EINVAL;
    }
    memset(&q, 0, sizeof(q));
    q.service = f[0];
    q.type = f[1];
    q.iv_name = f[2];
    if (strcmp(f[2], "day") == 0) {
        q.iv = UQ_DB_DAY;
    } else if (strcmp(f[2], "week") == 0) {
        q.iv = UQ_DB_WEEK;
    } else if (strcmp(f[2], "hour") == 0) {
        q.iv = UQ_DB_HOUR;
    } else {
        return UC_EINVAL;
    }
    q.start = (int64_t)s1;
    q.end = (int64_t)s2;
    return api_load_json(build_agg(arg, &q, &st), st, val, len);
}

int api_load_window(void *arg, const char *const *f, size_t n, char **val,
                    size_t *len)
{
    metric_query_t q;
    long long s1 = 0, s2 = 0;
    int st = UQ_DB_OK;

    memset(&q, 0, sizeof(q));
    /* µs since the epoch, as the handler wrote them (uq_time_parse). */
    if (n != 6 ||
        (strcmp(f[2], "-") != 0 &&
         uq_parse_int(f[2], LLONG_MIN, LLONG_MAX, &s1) != 0) ||
        (strcmp(f[3], "-") != 0 &&
         uq_parse_int(f[3], LLONG_MIN, LLONG_MAX, &s2) != 0) ||
        api_page_fields(f[4], f[5], &q.pg) != 0) {
        return UC_EINVAL;
    }
    q.f.service_name = f[0];
    q.f.metric_type = f[1];
    q.f.start = strcmp(f[2], "-") == 0 ? UQ_DB_NULL_TIME : (int64_t)s1;
    q.f.end = strcmp(f[3], "-") == 0 ? UQ_DB_NULL_TIME : (int64_t)s2;
    return api_load_json(build_metrics(arg, &q, &st), st, val, len);
}
