/* SPDX-License-Identifier: MIT */
/*
 * What the endpoints share. Cached reads go through
 * uc_keyspace_get_or_load() with a loader that runs the query and returns
 * the final JSON bytes, so a hit serves the stored bytes untouched. Every
 * write commits to the database first and then invalidates every entry it
 * made stale, by key or by tag (keyspaces.c), never by a key pattern, so
 * that no write runs a SCAN; an invalidation that fails is queued and
 * retried (and, until it succeeds, reads of the affected entries bypass
 * the cache), so it is never dropped.
 */
#include "../gzip.h"
#include "api.h"

#include <limits.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

/* ---- responses ----------------------------------------------------------- */

/* uq_resp_json() and uq_resp_error() are in request.c. */

void api_resp_db_error(uq_resp_t *res, int st)
{
    if (st == UQ_DB_EREADONLY) {
        /* Nothing was written: the transaction was refused or rolled back. */
        uq_resp_error(res, 503,
                      "database cannot write (read-only, full, or its file "
                      "was removed); nothing was stored, retry later");
    } else if (st == UQ_DB_EUNAVAILABLE || st == UQ_DB_EBUSY) {
        uq_resp_error(res, 503, "database unavailable");
    } else {
        uq_resp_error(res, 500, "internal error");
    }
}

int api_db_failed(uq_resp_t *res, int st)
{
    if (st == UQ_DB_OK) {
        return 0;
    }
    api_resp_db_error(res, st);
    return -1;
}

/* ---- JSON of rows -------------------------------------------------------- */

/* Naive ISO 8601 in UTC, microseconds left out when zero: what the
 * original's Python wrote for its naive datetimes, so that its clients
 * (datetime.fromisoformat before Python 3.11 refuses a "Z") parse it. */
json_t *api_time_json(int64_t us)
{
    char buf[40];
    if (us == UQ_DB_NULL_TIME) {
        return json_null();
    }
    uq_time_format_naive(us, buf, sizeof(buf));
    return json_string(buf);
}

json_t *api_str_or_null(int has, const char *s)
{
    return has && s[0] != '\0' ? json_string(s) : json_null();
}

json_t *api_rows_json(const void *rows, size_t n, size_t size, row_json_fn conv)
{
    const unsigned char *p = rows;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, conv(p + i * size));
    }
    return arr;
}

/* ---- input --------------------------------------------------------------- */

const char *api_qparam(uq_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

json_t *api_parse_body(uq_req_t *req, json_type want, uq_resp_t *res)
{
    return uq__request_body(
        req->body, req->body_len,
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_CONTENT_TYPE),
        want, res);
}

/* A required query parameter that was not given, as FastAPI reports it. */
static void q_missing(uq_resp_t *res, const char *name)
{
    uq_resp_invalid(res, "query", name, "missing", NULL, NULL,
                    "Field required");
}

int api_check_id(const char *name, const char *v, int required, uq_resp_t *res)
{
    if (v == NULL) {
        if (required) {
            q_missing(res, name);
            return -1;
        }
        return 0;
    }
    json_t *in = json_string(v);
    int rc = 0;
    /* An id is a cache key field, whose cap is in bytes. */
    if (strlen(v) > UQ_DB_ID_MAX) {
        uq_resp_invalid(res, "query", name, "string_too_long", in,
                        json_pack("{s:i}", "max_length", UQ_DB_ID_MAX),
                        "String should have at most %d bytes", UQ_DB_ID_MAX);
        rc = -1;
    } else {
        rc = uq__check_text("query", name, in, v, strlen(v), 1, UQ_DB_ID_MAX, 0,
                            res);
    }
    json_decref(in);
    return rc;
}

int api_q_text(uq_req_t *req, const char *name, size_t max_bytes,
               const char **out, uq_resp_t *res)
{
    const char *v = api_qparam(req, name);
    *out = NULL;
    if (v == NULL) {
        return 0;
    }
    json_t *in = json_string(v);
    int rc = 0;
    if (strlen(v) > max_bytes) {
        uq_resp_invalid(res, "query", name, "string_too_long", in,
                        json_pack("{s:I}", "max_length", (json_int_t)max_bytes),
                        "String should have at most %zu bytes", max_bytes);
        rc = -1;
    } else {
        rc = uq__check_text("query", name, in, v, strlen(v), 1, max_bytes, 0,
                            res);
    }
    json_decref(in);
    if (rc == 0) {
        *out = v;
    }
    return rc;
}

static int q_int(uq_req_t *req, const char *name, long long def, long long min,
                 long long max, long long *out, uq_resp_t *res)
{
    const char *v = api_qparam(req, name);
    long long x;
    if (v == NULL) {
        *out = def;
        return 0;
    }
    json_t *in = json_string(v);
    if (uq_parse_int(v, LLONG_MIN, LLONG_MAX, &x) != 0) {
        uq_resp_invalid(res, "query", name, "int_parsing", in, NULL,
                        "Input should be a valid integer, unable to parse "
                        "string as an integer");
        json_decref(in);
        return -1;
    }
    if (x < min || x > max) {
        uq__resp_range(res, "query", name, in, x < min,
                       (double)(x < min ? min : max), 1);
        json_decref(in);
        return -1;
    }
    json_decref(in);
    *out = x;
    return 0;
}

int api_q_page(uq_req_t *req, long long def_limit, long long max_limit,
               page_t *pg, uq_resp_t *res)
{
    if (q_int(req, "limit", def_limit, 1, max_limit, &pg->limit, res) != 0 ||
        q_int(req, "offset", 0, 0, 1000000, &pg->offset, res) != 0) {
        return -1;
    }
    return 0;
}

int api_q_time_req(uq_req_t *req, const char *name, int required, int64_t *out,
                   uq_resp_t *res)
{
    const char *v = api_qparam(req, name);
    *out = UQ_DB_NULL_TIME;
    if (v == NULL) {
        if (required) {
            q_missing(res, name);
            return -1;
        }
        return 0;
    }
    if (uq_time_parse(v, out) != 0) {
        json_t *in = json_string(v);
        *out = UQ_DB_NULL_TIME;
        uq_resp_invalid(res, "query", name, "datetime_from_date_parsing", in,
                        NULL, "Input should be a valid datetime or date");
        json_decref(in);
        return -1;
    }
    return 0;
}

int api_q_time(uq_req_t *req, const char *name, int64_t *out, uq_resp_t *res)
{
    return api_q_time_req(req, name, 0, out, res);
}

int api_q_enum(uq_req_t *req, const char *name, const char *const *allowed,
               const char **out, uq_resp_t *res)
{
    const char *v = api_qparam(req, name);
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
    json_t *in = json_string(v);
    uq__resp_pattern(res, "query", name, in, allowed);
    json_decref(in);
    return -1;
}

/* ---- cache glue ---------------------------------------------------------- */

int api_load_json(json_t *j, int st, char **val, size_t *len)
{
    char *s;
    if (j == NULL) {
        if (st == UQ_DB_NOTFOUND) {
            /* "No such entity": the library may remember it. */
            return UC_MISS;
        }
        return st == UQ_DB_ENOMEM ? LOAD_NOMEM
                                  : LOAD_DB(st < 0 ? st : UQ_DB_EIO);
    }
    s = json_dumps(j, DUMP_FLAGS);
    json_decref(j);
    if (s == NULL) {
        return LOAD_NOMEM;
    }
    *val = s;
    *len = strlen(s);
    if (*len >= UQ_GZIP_MIN) {
        /* Kept compressed: a hit goes to a client that accepts gzip as
         * stored, with no compression per request, and the entry takes
         * less of Redis and of the near cache. The HTTP layer inflates it
         * for a client that does not accept gzip. */
        char *gz;
        size_t gzlen;
        if (uq_gzip(s, *len, &gz, &gzlen) == 0) {
            free(s);
            *val = gz;
            *len = gzlen;
        }
    }
    return UC_OK;
}

void api_serve_cached_as(uq_app_t *app, int ks, const char *const *fields,
                         size_t n, const char *cc, int etag, uq_resp_t *res)
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
        /* The library's value hash is the same FNV-1a as uq_hash64. */
        res->has_hash = 1;
        res->body_hash = r.hash;
        res->produced_ms = r.produced_ms;
        res->gzipped = uq_is_gzip(r.data, r.len);
        res->cache_tier = r.tier == UC_TIER_NEAR    ? "near"
                          : r.tier == UC_TIER_REDIS ? "redis"
                                                    : NULL;
    }
    if (rc == UC_MISS) {
        uq_resp_error(res, 404, "not found");
        return;
    }
    if (IS_LOAD_DB(rc)) {
        api_resp_db_error(res, rc - LOAD_DB_BASE);
        return;
    }
    if (rc != UC_OK) {
        uq_resp_error(res, rc == LOAD_NOMEM || rc == UC_ENOMEM ? 500 : 422,
                      "%s",
                      rc == UC_EINVAL ? "invalid key field" : "internal error");
        return;
    }
    res->status = 200;
    res->cache = r.source == UC_FROM_CACHE    ? UQ_CACHE_HIT
                 : r.source == UC_FROM_BYPASS ? UQ_CACHE_BYPASS
                 : r.source == UC_FROM_STALE  ? UQ_CACHE_STALE
                                              : UQ_CACHE_MISS;
    res->cache_control = cc;
    res->etag = etag;
}

void api_serve_cached(uq_app_t *app, int ks, const char *const *fields,
                      size_t n, uq_resp_t *res)
{
    api_serve_cached_as(app, ks, fields, n, CC_PUBLIC, 1, res);
}

const char *api_dec(char *buf, size_t cap, long long v)
{
    snprintf(buf, cap, "%lld", v);
    return buf;
}

const char *api_opt_field(char *tmp, size_t cap, const char *v)
{
    if (v == NULL) {
        return "-";
    }
    snprintf(tmp, cap, "=%s", v);
    return tmp;
}

/* The filter an api_opt_field() wrote: NULL for "-", else the value. */
const char *api_opt_value(const char *f)
{
    return f[0] == '=' ? f + 1 : NULL;
}

int api_field_ll(const char *s, long long *out)
{
    return uq_parse_int(s, LLONG_MIN / 1000000, LLONG_MAX / 1000000, out);
}

int api_page_fields(const char *lim, const char *off, page_t *pg)
{
    return api_field_ll(lim, &pg->limit) != 0 ||
                   api_field_ll(off, &pg->offset) != 0
               ? -1
               : 0;
}
