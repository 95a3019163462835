/* SPDX-License-Identifier: MIT */
/*
 * Shared declarations of utxoiq-api: the application handle every handler
 * receives, the request/response types the HTTP layer and the handlers
 * exchange, and the helpers (time, validation, logging, auth) they share.
 *
 * Ownership: a uq_app_t is created by main and outlives the HTTP daemon;
 * handlers borrow it. A uq_resp_t owns its body (freed with body_free).
 * Thread safety: every function here may be called from any HTTP thread;
 * mutable state lives in the app behind atomics or its own mutex.
 */
#ifndef UQ_SERVER_APP_H
#define UQ_SERVER_APP_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <utxocache/utxocache.h>

#include "db/db.h"
#include "keyspaces.h"

#define UQ_API_BODY_MAX (64u * 1024u)
/* The metrics batch takes up to 1000 metrics, which do not fit in 64 KiB. */
#define UQ_API_BATCH_BODY_MAX (1024u * 1024u)

/* ---- metrics of the HTTP layer ------------------------------------------- */

/* Request-duration buckets: 100 µs .. 10 s and +Inf (prometheus.c). */
#define UQ_LAT_BUCKETS 17
#define UQ_STATUS_SLOTS 16

typedef struct {
    atomic_uint_fast64_t by_status[UQ_STATUS_SLOTS];
    atomic_uint_fast64_t lat[UQ_LAT_BUCKETS]; /* cumulative in the output */
    atomic_uint_fast64_t lat_sum_us;
    atomic_uint_fast64_t count;
} uq_route_metrics_t;

#define UQ_ROUTES_MAX 48

typedef struct uq_app {
    uq_db_t *db;
    uc_cache_t *cache;
    uc_keyspace_t *ks[UQ_KS_COUNT];
    int64_t clock_skew_us; /* UTXOIQ_CLOCK_SKEW_S, a testing aid */
    int access_log;
    /* CORS_ORIGINS: origins a browser may call from, comma-separated ("*":
     * any); empty: no CORS headers at all. */
    char cors_origins[1024];

    int cache_local; /* the memory backend: the cache is per-process */

    uq_route_metrics_t routes[UQ_ROUTES_MAX];
    atomic_int inflight;
    atomic_int draining;
    int64_t started_at;
    struct uq_history *history; /* history.h; NULL until created */
} uq_app_t;

/* ---- requests and responses ---------------------------------------------- */

struct MHD_Connection;

typedef struct {
    const char *method;
    const char *path;
    const char *param; /* path parameter ({job_id}, {insight_id}) or NULL */
    const char *body;
    size_t body_len;
    struct MHD_Connection *conn;
    /* Filled by auth for protected routes. */
    char user_id[UQ_DB_ID_MAX + 1];
    char role[16];
} uq_req_t;

typedef enum {
    UQ_CACHE_NONE = 0, /* not a cached endpoint */
    UQ_CACHE_HIT,
    UQ_CACHE_MISS,
    UQ_CACHE_BYPASS, /* an invalidation is pending: read the database */
    UQ_CACHE_STALE,  /* the database failed or was slow: a value past its
                        TTL (never older than an acknowledged write) */
} uq_cache_mark_t;

typedef struct {
    int status;
    char *body; /* malloc()ed, or from the cache (body_free says how) */
    size_t len;
    void (*body_free)(void *);
    uq_cache_mark_t cache;
    const char *cache_tier;    /* static: "near" or "redis"; NULL: none */
    uint64_t produced_ms;      /* when the body was made (Age of STALE) */
    const char *cache_control; /* static; NULL: "no-store" */
    int etag;                  /* send an ETag and honour If-None-Match */
    int has_hash;              /* body_hash is the body's uq_hash64 */
    uint64_t body_hash;
    const char *content_type; /* static; NULL: application/json */
    const char *csp;          /* static Content-Security-Policy; NULL: none */
    int gzipped;              /* body is a gzip stream (a cached entry kept
                                 compressed); the HTTP layer inflates it for
                                 a client that does not accept gzip */
} uq_resp_t;

/* The request being served on this thread: every log line written on it
 * until the next call carries it as correlation_id (NULL: none). */
void uq_log_correlation(const char *id);

typedef void (*uq_handler_fn)(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/* Roles a route accepts. */
enum {
    UQ_ROLE_PUBLIC = 0,
    UQ_ROLE_USER = (1 << 0),
    UQ_ROLE_SERVICE = (1 << 1),
    UQ_ROLE_ADMIN = (1 << 2),
};

/*
 * What the OpenAPI document (openapi.c) says of a route, beside the table's
 * method, path and roles.
 *
 * params: the route's parameters, separated by ", ", each
 *   "<in> <name> <type> [required] [min=N] [max=N] [maxlen=N]
 *    [default=V] [enum=a|b|c] [format=F]"
 *   with <in> query or path (a path parameter names the pattern's "{}")
 *   and <type> string, integer or number.
 * request: the component schema of the JSON body ("[Name]": an array of
 *   it); answer: that of the 200 answer, or "text", "html" or "file" for
 *   answers that are not JSON; NULL: an object not described further.
 */
typedef struct {
    const char *tag;
    const char *summary;
    const char *params;
    const char *request;
    const char *answer;
} uq_route_doc_t;

typedef struct {
    const char *method;
    const char *pattern; /* exact path, or ending in "{}" for one segment */
    unsigned roles;      /* 0: public */
    uq_handler_fn fn;
    const char *name; /* route label for /metrics, the operationId */
    size_t body_max;  /* 0: UQ_API_BODY_MAX */
    uq_route_doc_t doc;
} uq_route_t;

/* The route table (api/routes.c) and its length. */
const uq_route_t *uq_api_routes(size_t *n);
/* The loader of keyspace ks (UC_KS_*), called with the app as its arg: it
 * builds an entry's answer from its key fields alone, so the library may
 * run it in the background (a slow fill past the soft timeout, an early
 * refresh). */
uc_loader_fn uq_api_loader(int ks);

/* ---- response helpers (request.c) ---------------------------------------- */

/* Sets res to a JSON error {"detail": "..."} with that status; a 422 is
 * written as uq_resp_invalid() would, a message "field: text" naming the
 * body's field. */
void uq_resp_error(uq_resp_t *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Sets res to a 422 in FastAPI's shape, one error:
 * {"detail":[{"type", "loc", "msg", "input"[, "ctx"]}]}. where is the first
 * element of loc ("body", "query" or "path"); label names the field ("name",
 * or "[i].name" for a field of a body array's item; NULL: the whole of
 * where). input (borrowed; NULL: null) is the value refused, ctx (stolen;
 * NULL: none) the limit it broke, as pydantic writes them.
 */
void uq_resp_invalid(uq_resp_t *res, const char *where, const char *label,
                     const char *type, json_t *input, json_t *ctx,
                     const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* Sets res to the compact serialisation of j (stolen: j is decref'd). */
void uq_resp_json(uq_resp_t *res, int status, json_t *j);

/* ---- HTTP daemon (http.c) ------------------------------------------------ */

typedef struct {
    const char *listen_addr;
    int port;
    int threads;
    unsigned conn_timeout_s;
    unsigned max_connections; /* past this, new connections get a 503 */
    unsigned max_per_ip;      /* per client address; 0: no limit */
} uq_http_opts_t;

/*
 * Serves until SIGTERM/SIGINT/SIGQUIT, then stops accepting, lets in-flight
 * requests finish (bounded) and returns 0; returns 1 when the listening
 * socket or the daemon cannot be set up (the cause is logged).
 */
int uq_http_serve(uq_app_t *app, const uq_http_opts_t *opts);

/* ---- metrics (prometheus.c) -------------------------------------------------
 */

/* Counts one answered request of route (the route count: unmatched) with
 * its status and duration. */
void uq_metrics_record(uq_app_t *app, size_t route, int status, uint64_t us);

/* The Prometheus text exposition of every family (malloc()ed, *len set), or
 * NULL when out of memory. */
char *uq_metrics_text(uq_app_t *app, size_t *len);

/* ---- auth (auth.c) ------------------------------------------------------- */

/*
 * Checks the request's Bearer / X-API-Key credential. Returns 0 and fills
 * req->user_id / req->role, or sets res to 401/403/503 and returns -1.
 */
int uq_auth_check(uq_app_t *app, uq_req_t *req, unsigned roles, uq_resp_t *res);

/* Creates a key for user/role; writes it (NUL-terminated) to key. */
int uq_auth_create_key(uq_app_t *app, const char *user, const char *role,
                       char *key, size_t cap, char *err, size_t errlen);

/* 1 when role is user, service or admin. */
int uq_auth_role_valid(const char *role);

/* ---- key administration (keys.c) ----------------------------------------- */

/*
 * The `keys list|revoke|import` subcommands. Each writes its report to out
 * and its error, one line naming what failed, to err; returns the process
 * exit status (0, or 1 on failure).
 */
int uq_keys_list(uq_app_t *app, int json, FILE *out, FILE *err);
int uq_keys_revoke(uq_app_t *app, const char *which, FILE *out, FILE *err);
/* default_role: for rows without a role column (NULL: "user"). */
int uq_keys_import(uq_app_t *app, const char *path, const char *default_role,
                   FILE *out, FILE *err);

/* ---- helpers (util.c) ---------------------------------------------------- */

/* Wall clock in µs since the epoch (UTC), plus the app's skew. */
int64_t uq_now_us(const uq_app_t *app);

/* Formats µs since epoch as 2024-01-02T03:04:05.000006Z. */
void uq_time_format(int64_t us, char *buf, size_t cap);

/* Formats µs since epoch as naive ISO 8601 in UTC, the way Python's
 * datetime.isoformat() writes a naive datetime (the original service's
 * answers): 2024-01-02T03:04:05.000006, and 2024-01-02T03:04:05 when the
 * microseconds are zero. */
void uq_time_format_naive(int64_t us, char *buf, size_t cap);

/* Parses ISO-8601 (date 'T' time [.fraction] [Z | +HH:MM | -HH:MM]); a
 * time with no zone is UTC, as the original's naive datetimes were.
 * Returns 0 and *us, or -1. */
int uq_time_parse(const char *s, int64_t *us);

/* 0 when s (len bytes) is valid UTF-8 without control bytes (allow_nl lets
 * \n \r \t pass) and holds min..max characters; -1 otherwise. */
int uq_text_check(const char *s, size_t len, size_t min_chars, size_t max_chars,
                  int allow_nl);

/* 0 when s is a canonical UUID (any case); writes it lower-cased. */
int uq_uuid_check(const char *s, char out[UQ_DB_UUID_LEN + 1]);
/* A random (version 4) UUID. */
int uq_uuid_new(char out[UQ_DB_UUID_LEN + 1]);

/* Parses a decimal integer in [min, max]; -1 on any junk. */
int uq_parse_int(const char *s, long long min, long long max, long long *out);

/* 64-bit FNV-1a of the bytes, for strong ETags. */
uint64_t uq_hash64(const char *p, size_t len);

/*
 * Structured log line to stderr: level ("debug", "info", "warn", "error"),
 * msg, then key=value pairs (NULL terminated, values escaped). The format
 * (UTXOIQ_LOG_FORMAT=logfmt|json) and the lowest level written
 * (UTXOIQ_LOG_LEVEL, default info) are read from the environment at the
 * first call. Warn and error lines are rate-limited per cause (level and
 * msg): past UTXOIQ_LOG_BURST lines of one cause in UTXOIQ_LOG_INTERVAL_MS
 * the rest are held back, and the next line of that cause after the
 * interval says how many were ("... (N similar suppressed)").
 */
void uq_log(const char *level, const char *msg, ...);

#define UQ_LOG_NLEVELS 4 /* debug, info, warn, error */

/* Name of level 0..3; "error" past that. */
const char *uq_log_level_name(int level);

/* The lowest level written (0 debug .. 3 error), from UTXOIQ_LOG_LEVEL. */
int uq_log_min_level(void);

typedef struct {
    uint64_t written[UQ_LOG_NLEVELS]; /* lines written, by level */
    uint64_t suppressed;              /* lines the rate limit held back */
} uq_log_stats_t;

void uq_log_stats(uq_log_stats_t *out);

/* Log callbacks for the library and the database. */
void uq_log_cache(void *arg, uc_log_level_t level, const char *msg);
void uq_log_db(void *arg, int level, const char *msg);

/* ---- invalidation (invalidation.c) --------------------------------------- */

/* Records one write may carry; past this a write records whole keyspaces. */
#define UQ_STALE_MAX 64

/*
 * What one write makes stale: the records its transaction appends to the
 * database's invalidation log (inv[0..n-1], ids filled by the write), with
 * the keyspace index of each. Heap-allocated (uq_stale_new), as its targets
 * take about 64 KiB.
 */
typedef struct {
    size_t n;
    int ks[UQ_STALE_MAX];
    uq_db_inval_t inv[UQ_STALE_MAX];
    int64_t ids[UQ_STALE_MAX];
    char target[UQ_STALE_MAX][UC_KEY_MAX + 1];
} uq_stale_t;

uq_stale_t *uq_stale_new(void); /* NULL when out of memory */
void uq_stale_free(uq_stale_t *s);

/* Adds the entries of keyspace ks matching fields (NULL: any value, which
 * is a SCAN when applied: no write of the service uses it); duplicates are
 * dropped. Returns 0, or -1 when full or a field is bad. */
int uq_stale_add(uq_app_t *app, uq_stale_t *s, int ks,
                 const char *const *fields);

/* Adds tag number `tag` of keyspace ks, built from fields (those the tag
 * does not use may be NULL): every entry carrying it, in any keyspace, is
 * invalidated by one write. Duplicates are dropped. Returns 0, or -1 when
 * full or a field is bad. */
int uq_stale_add_tag(uq_app_t *app, uq_stale_t *s, int ks, size_t tag,
                     const char *const *fields);

/* After the commit: applies the records (the library deletes the keys and
 * marks them applied); returns how many are left pending. */
size_t uq_stale_apply(uq_app_t *app, uq_stale_t *s);

/* Attaches the database's invalidation log to the cache (pending records
 * are loaded before this returns). Returns 0 or -1 with a message. */
int uq_app_attach_log(uq_app_t *app, char *err, size_t errlen);

/* ---- seed (seed.c) ------------------------------------------------------- */

int uq_seed(uq_app_t *app, int insights, FILE *out);

#endif /* UQ_SERVER_APP_H */
