/* SPDX-License-Identifier: MIT */
/*
 * What the endpoints of utxoiq-api share: the helpers of common.c, and each
 * resource file's handlers and keyspace loaders, which routes.c puts in the
 * route table and the keyspaces' loader table.
 */
#ifndef UTXOIQ_API_H
#define UTXOIQ_API_H

#include "../app.h"
#include "../dashboard.h"
#include "../history.h"
#include "../request.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* What the loaders return besides UC_OK and UC_MISS (no such row): out of
 * memory, or a database error, whose status (a negative UC_DB_*) is
 * carried in the code so that the answer can name it. */
#define LOAD_NOMEM (-1003)
#define LOAD_DB_BASE (-2000)
#define LOAD_DB(st) (LOAD_DB_BASE + (st))
#define IS_LOAD_DB(rc) ((rc) < LOAD_DB_BASE && (rc) > LOAD_DB_BASE - 100)

/* Cache-Control of public reads and of answers that name a caller. */
#define CC_PUBLIC "public, no-cache"
#define CC_PRIVATE "private, no-store"

/*
 * Converts one row to a new JSON object, or NULL when out of memory. The
 * row converters take `const void *` so that api_rows_json() can walk an array
 * of any row type.
 */
typedef json_t *(*row_json_fn)(const void *row);

#define get_str uq__json_get_str
#define get_int uq__json_get_int
#define get_num uq__json_get_num
#define get_enum uq__json_get_enum
#define get_time uq__json_get_time

/* The limit and offset of a list request. */
typedef struct {
    long long limit;
    long long offset;
} page_t;

/*
 * The status of a write that carries the records of what it makes stale
 * (uq_stale_t) into its own transaction: the write runs only when the
 * records could be allocated. After the commit the handler applies them
 * (uq_stale_apply) before it answers, so the healthy path stays
 * synchronous: a read that starts after the answer never sees the old
 * value.
 */
#define STALE_WRITE(app, stale, call) ((stale) == NULL ? UQ_DB_ENOMEM : (call))

typedef json_t *(*build_fn)(uq_app_t *app, void *arg, int *st);

/* ---- common.c: responses, JSON of rows, input, cache glue ---- */

void api_resp_db_error(uq_resp_t *res, int st);

/* 0 when a database call succeeded; otherwise writes its error response
 * (503 when the database is away, 500 else) and returns -1. */
int api_db_failed(uq_resp_t *res, int st);

json_t *api_time_json(int64_t us);

json_t *api_str_or_null(int has, const char *s);

/*
 * A new JSON array of conv() applied to each of the n rows of `size` bytes
 * at `rows`; the rows stay the caller's. A row that fails to convert is left
 * out (as json_array_append_new() does with NULL), and NULL comes back only
 * when the array itself cannot be allocated.
 */
json_t *api_rows_json(const void *rows, size_t n, size_t size,
                      row_json_fn conv);

const char *api_qparam(uq_req_t *req, const char *name);

/*
 * The body and field decoders are in request.c (request.h), apart from HTTP,
 * so that a fuzz target runs the same code; these names keep the handlers
 * short.
 */
json_t *api_parse_body(uq_req_t *req, json_type want, uq_resp_t *res);

/* Validates an id given in the query or the path; a 422 names it in the
 * query. */
int api_check_id(const char *name, const char *v, int required, uq_resp_t *res);

/*
 * Reads the query parameters limit (default def_limit, 1 to max_limit) and
 * offset (default 0, at most 1000000) into *pg. On a bad value writes a 422
 * naming the parameter and returns -1; *pg may then be partly written.
 * Every 422 of these query readers is FastAPI's, with loc ["query", name].
 */
int api_q_page(uq_req_t *req, long long def_limit, long long max_limit,
               page_t *pg, uq_resp_t *res);

/* An optional query parameter as text: valid UTF-8 without control
 * characters, 1 to max_bytes bytes; *out NULL when absent. Returns 0, or -1
 * with res set to a 422. */
int api_q_text(uq_req_t *req, const char *name, size_t max_bytes,
               const char **out, uq_resp_t *res);

/* An optional ISO-8601 query parameter (UQ_DB_NULL_TIME when absent). */
int api_q_time(uq_req_t *req, const char *name, int64_t *out, uq_resp_t *res);

/* The same, a 422 "missing" when required and absent. */
int api_q_time_req(uq_req_t *req, const char *name, int required, int64_t *out,
                   uq_resp_t *res);

int api_q_enum(uq_req_t *req, const char *name, const char *const *allowed,
               const char **out, uq_resp_t *res);

/* A loader's answer from a build: the JSON body, or the code above. */
int api_load_json(json_t *j, int st, char **val, size_t *len);

/* Answers a cacheable GET from the keyspace entry `fields`, loaded (when
 * it must be) by the keyspace's own loader (uq_api_loader()), which builds
 * the answer from the fields alone: the library may run it in the
 * background, past this request. `cc` is its Cache-Control, `etag` whether
 * it carries an ETag. */
void api_serve_cached_as(uq_app_t *app, int ks, const char *const *fields,
                         size_t n, const char *cc, int etag, uq_resp_t *res);

/* A public read: "public, no-cache" with an ETag. */
void api_serve_cached(uq_app_t *app, int ks, const char *const *fields,
                      size_t n, uq_resp_t *res);

/* The decimal text of v into buf (a key field). */
const char *api_dec(char *buf, size_t cap, long long v);

/* An optional filter as a key field: "-" when absent, else "=" and the
 * value, so that no value can stand for "absent" (tmp holds the text). */
const char *api_opt_field(char *tmp, size_t cap, const char *v);

/* The filter an opt_field() wrote: NULL for "-", else the value. */
const char *api_opt_value(const char *f);

/* A decimal field the handler wrote. */
int api_field_ll(const char *s, long long *out);

/* The limit and offset fields of a page entry. */
int api_page_fields(const char *lim, const char *off, page_t *pg);

/* ---- feedback.c: ratings, comments, flags and their reads ---- */

void api_h_rate(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_comment(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_flag(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_stats(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/* {list_name: items, total, limit, offset}; takes items (even on failure)
 * and returns NULL when out of memory. */
json_t *api_page_json(const char *list_name, json_t *items, int64_t total,
                      const page_t *pg);

void api_h_comments(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_user_feedback(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

int api_load_stats(void *arg, const char *const *f, size_t n, char **val,
                   size_t *len);

int api_load_comments(void *arg, const char *const *f, size_t n, char **val,
                      size_t *len);

int api_load_user_feedback(void *arg, const char *const *f, size_t n,
                           char **val, size_t *len);

/* ---- backfill.c: backfill jobs ---- */

void api_h_backfill_start(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_backfill_progress(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_backfill_get(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_backfill_list(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

int api_load_job(void *arg, const char *const *f, size_t n, char **val,
                 size_t *len);

int api_load_jobs(void *arg, const char *const *f, size_t n, char **val,
                  size_t *len);

/* ---- metrics.c: metric rows and their windows ---- */

/*
 * After new metrics of a series: its recent pages, aggregates and windows
 * go, through the series' tag. Past UQ_STALE_MAX records (a batch of many
 * series) every metrics entry goes instead (the family's tag), which costs
 * hits, never coherence.
 */
void api_stale_series(uq_app_t *app, uq_stale_t *s, const char *svc,
                      const char *typ);

void api_metrics_post(uq_app_t *app, uq_req_t *req, uq_resp_t *res, int batch);

void api_h_metric(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_metric_batch(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_metrics_list(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_metrics_agg(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

int api_load_metrics(void *arg, const char *const *f, size_t n, char **val,
                     size_t *len);

int api_load_agg(void *arg, const char *const *f, size_t n, char **val,
                 size_t *len);

int api_load_window(void *arg, const char *const *f, size_t n, char **val,
                    size_t *len);

/* ---- operations.c: retention, the cache and database figures, health,
 * Prometheus ---- */

/* The pool as the original reported SQLAlchemy's: size, checked in and
 * out, overflow (none here: the pool never grows past its size). */
void api_h_db_pool(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/* The calls this process made to its database since it started: count,
 * slow ones (over 200 ms, the original's threshold), times in seconds. */
void api_h_db_queries(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/*
 * Records those figures as system_metrics rows of service "utxoiq-api",
 * under the names the original published to Cloud Monitoring, so that a
 * scheduler calling it keeps a history in the service's own database
 * (readable with GET /metrics like any other series, whose caches the
 * write invalidates).
 */
void api_h_db_publish(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_retention(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_cache_stats(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/*
 * Warms the cache now: the library loads the most read entries of each
 * keyspace again in the background, at its bounded rate. 202 when queued,
 * 409 when a warm is queued or running already, or warming is off.
 */
void api_h_cache_warm(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/*
 * One keyspace's record of its most read entries (admin): ?keyspace= one of
 * the keyspaces' names (required), limit 100 by default, at most 10000 (the
 * record's capacity bounds it anyway). What warming and warm on write rank.
 */
void api_h_cache_hot(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_healthz(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/* The original service's health check, for probes and monitors set up
 * for it: always "healthy" while the process answers (liveness; readiness
 * is /readyz), its time naive ISO 8601 in UTC as the original wrote it. */
void api_h_health(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/*
 * Ready when the database answers a read and took the last write probe (one
 * real write at most once a second, uq_db_write_probe), and the service is
 * not draining. The cache does not decide readiness: without Redis every
 * request is still answered from the database.
 */
void api_h_readyz(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

void api_h_prometheus(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

#endif
