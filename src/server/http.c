/* SPDX-License-Identifier: MIT */
/*
 * The HTTP layer of utxoiq-api over libmicrohttpd: the daemon (epoll, turbo,
 * a thread pool, connection timeout and memory limit), request bodies capped
 * at 64 KiB, the table-driven router with 404/405, auth before protected
 * handlers, strong ETags with If-None-Match, the per-route request metrics
 * (recorded through prometheus.c), the access log, and the SIGTERM drain; and
 * what a hostile client meets: request-smuggling shapes refused, caps on
 * query arguments, headers and connections (total and per address), a 503
 * for clients past the total, and a listening socket opened here so that a
 * bind error names its cause.
 *
 * libmicrohttpd calls the access handler at least twice per request: once
 * when the headers are in (we only allocate the request context), then with
 * body chunks, then once more with no data. The response is queued on that
 * last call, never the first; queuing on the first call would make MHD treat
 * it as an early response and close the connection, losing keep-alive.
 */
#include "app.h"
#include "gzip.h"
#include "router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * The request deadline. MHD's connection timeout only counts idle time, so a
 * client sending one byte a second would hold a connection (and its memory)
 * forever. Every open connection is tracked with the time it began waiting
 * for a request; the main loop shuts down any that has not delivered a whole
 * request (headers and body) within the connection timeout. The entry is
 * removed in MHD's "closed" notification under the same mutex the sweep
 * holds, and MHD closes the socket only after that notification, so the
 * sweep never touches a descriptor that was closed and reused.
 */
typedef struct conn_track {
    struct conn_track *prev, *next;
    int fd;
    int overflow; /* opened past the connection limit: gets a 503 */
    atomic_uint_fast64_t wait_since_us; /* 0: a request is being handled */
} conn_track_t;

/*
 * The connection limit. libmicrohttpd's own limit (MHD_OPTION_CONNECTION_
 * LIMIT) stops accepting when reached, so a client past it waits in the
 * kernel's backlog, unanswered, until someone else leaves. Instead MHD is
 * given a quarter more slots than the configured limit (the overflow
 * reserve, 64 at least), and connections opened past the limit are marked
 * here: their first request is answered 503 with Retry-After and the
 * connection closed, and one that sends nothing is closed after
 * OVERFLOW_DEADLINE_US. Only when the reserve is full too do new clients
 * wait for MHD, each reserve slot turning over within that deadline.
 */
typedef struct {
    pthread_mutex_t mu;
    conn_track_t *head;
    uint64_t timeout_us;
    unsigned open;     /* tracked connections */
    unsigned soft_max; /* past this, connections overflow */
} conn_list_t;

#define OVERFLOW_DEADLINE_US 1000000u

/*
 * Caps on what one request may carry, checked before any handler runs.
 * Every query argument and header costs libmicrohttpd a slot in the
 * connection's 32 KiB memory pool; the routes take at most a handful.
 */
#define UQ_API_QUERY_ARGS_MAX 64
#define UQ_API_HEADERS_MAX 64

/* Longest X-Correlation-ID taken from a client; a longer one, or one with
 * other bytes than [A-Za-z0-9._:-], is replaced by one made here. */
#define UQ_CORRELATION_MAX 128

/* Past this many bytes an oversized body is no longer drained. */
#define UQ_API_DRAIN_MAX (2u * 1024u * 1024u)

typedef struct {
    int started;       /* the access handler has seen the request */
    int too_many_args; /* more than UQ_API_QUERY_ARGS_MAX in the URI */
    uint64_t start_us;
    char *body;
    size_t len;
    size_t max; /* body limit of the route */
    int too_big;
    int route; /* index, or -1: 404 / 405 */
    int known; /* the path exists under another method */
    const char *param;
    char corr[UQ_CORRELATION_MAX + 1]; /* X-Correlation-ID, given or made */
} req_ctx_t;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char *cache_mark(uq_cache_mark_t m)
{
    switch (m) {
    case UQ_CACHE_HIT:
        return "HIT";
    case UQ_CACHE_BYPASS:
        return "BYPASS";
    case UQ_CACHE_STALE:
        return "STALE";
    default:
        return "MISS";
    }
}

/* ---- request handling ---------------------------------------------------- */

static void body_free_default(uq_resp_t *res)
{
    if (res->body != NULL && res->body_free != NULL) {
        res->body_free(res->body);
    }
    res->body = NULL;
}

/* ---- correlation ids and CORS ---------------------------------------------
 */

static int correlation_ok(const char *v)
{
    size_t n = 0;
    for (; v[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)v[n];
        if (n >= UQ_CORRELATION_MAX ||
            !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' ||
              ch == '-')) {
            return 0;
        }
    }
    return n > 0;
}

/* The client's X-Correlation-ID when it is one we can log as is, else a
 * random UUID (version 4), as the original service made. */
static void correlation_of(struct MHD_Connection *conn, char *out)
{
    const char *v =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Correlation-ID");
    uint8_t b[16];
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (v != NULL && correlation_ok(v)) {
        snprintf(out, UQ_CORRELATION_MAX + 1, "%s", v);
        return;
    }
    if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
        uint64_t t = mono_us() ^ ((uint64_t)(uintptr_t)out << 16);
        for (size_t i = 0; i < sizeof(b); i++) {
            t = t * 6364136223846793005ull + 1442695040888963407ull;
            b[i] = (uint8_t)(t >> 56);
        }
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0xf];
    }
    out[o] = '\0';
}

/* Whether origin is one of CORS_ORIGINS (comma-separated, spaces around
 * an entry ignored; "*" lets any origin in). */
static int cors_allowed(const uq_app_t *app, const char *origin)
{
    const char *p = app->cors_origins;
    size_t olen = strlen(origin);

    while (*p != '\0') {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        const char *e = p;
        while (*e != '\0' && *e != ',') {
            e++;
        }
        const char *t = e;
        while (t > p && t[-1] == ' ') {
            t--;
        }
        size_t n = (size_t)(t - p);
        if ((n == 1 && *p == '*') ||
            (n > 0 && n == olen && strncmp(p, origin, n) == 0)) {
            return 1;
        }
        p = e;
    }
    return 0;
}

/* Headers a browser script may read besides the CORS-safelisted ones. */
#define CORS_EXPOSE "ETag, X-Cache, X-Cache-Tier, X-Correlation-ID, Retry-After"

/* The CORS headers of an answer to an allowed Origin (credentials
 * allowed, so the origin is echoed, never "*"). */
static void cors_headers(struct MHD_Response *r, const char *origin)
{
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
}

/* What queue() adds to a response besides the handler's result. */
/* ---- gzip ---------------------------------------------------------------- */

/* Inflated cached entries are bounded: a value in Redis is at most the
 * keyspace's cap, so this only stops a corrupt or hostile stream. */
#define GUNZIP_MAX (64u * 1024u * 1024u)

/* Static bodies (embedded files, the OpenAPI document) are compressed once
 * and kept for the process, by the address of their bytes. */
#define GZ_MEMO_MAX 16
static struct {
    const char *src;
    char *gz;
    size_t len;
} gz_memo[GZ_MEMO_MAX];
static size_t gz_memo_n;
static pthread_mutex_t gz_memo_mu = PTHREAD_MUTEX_INITIALIZER;

static int gz_static(const char *src, size_t len, const char **gz,
                     size_t *gzlen)
{
    int rc = -1;

    pthread_mutex_lock(&gz_memo_mu);
    for (size_t i = 0; i < gz_memo_n; i++) {
        if (gz_memo[i].src == src) {
            *gz = gz_memo[i].gz;
            *gzlen = gz_memo[i].len;
            rc = gz_memo[i].gz != NULL ? 0 : -1;
            pthread_mutex_unlock(&gz_memo_mu);
            return rc;
        }
    }
    if (gz_memo_n < GZ_MEMO_MAX) {
        char *out = NULL;
        size_t n = 0;
        /* A body that does not shrink is remembered as such. */
        rc = uq_gzip(src, len, &out, &n);
        gz_memo[gz_memo_n].src = src;
        gz_memo[gz_memo_n].gz = rc == 0 ? out : NULL;
        gz_memo[gz_memo_n].len = n;
        gz_memo_n++;
        *gz = out;
        *gzlen = n;
    }
    pthread_mutex_unlock(&gz_memo_mu);
    return rc;
}

/*
 * Puts the body in the encoding it is sent in: gzip when send_gz (stored
 * so, compressed now, or from the memo of a static body), else as it is
 * (inflated when stored compressed). 1 when it goes gzip, 0 when not, -1
 * when a stored stream does not inflate.
 */
static int encode_body(uq_resp_t *res, int send_gz)
{
    char *out = NULL;
    size_t n = 0;

    if (res->gzipped && !send_gz) {
        if (uq_gunzip(res->body, res->len, GUNZIP_MAX, &out, &n) != 0) {
            return -1;
        }
        body_free_default(res);
        res->body = out;
        res->len = n;
        res->body_free = free;
        res->gzipped = 0;
        return 0;
    }
    if (res->gzipped || !send_gz) {
        return res->gzipped;
    }
    if (res->body_free == NULL) {
        const char *gz;
        if (gz_static(res->body, res->len, &gz, &n) != 0) {
            return 0;
        }
        res->body = (char *)gz;
        res->len = n;
    } else {
        if (uq_gzip(res->body, res->len, &out, &n) != 0) {
            return 0;
        }
        body_free_default(res);
        res->body = out;
        res->len = n;
        res->body_free = free;
    }
    res->gzipped = 1;
    return 1;
}

/* Whether a body of this type and size is worth compressing. */
static int compressible(const uq_resp_t *res)
{
    const char *t = res->content_type;

    return res->len >= UQ_GZIP_MIN &&
           (t == NULL || strncmp(t, "application/json", 16) == 0 ||
            strncmp(t, "text/", 5) == 0);
}

enum {
    Q_CLOSE = (1 << 0), /* Connection: close, the connection ends after it */
    Q_RETRY = (1 << 1), /* Retry-After: 1 */
};

static enum MHD_Result queue(uq_app_t *app, struct MHD_Connection *conn,
                             const char *method, const char *path,
                             size_t route_idx, uq_resp_t *res,
                             const req_ctx_t *c, const char *allow,
                             unsigned flags)
{
    uint64_t start_us = c->start_us;
    uq_log_correlation(c->corr);
    const char *origin =
        app->cors_origins[0] != '\0'
            ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin")
            : NULL;
    struct MHD_Response *r;
    char etag[UQ_ETAG_MAX] = "";
    int status = res->status != 0 ? res->status : 500;
    enum MHD_Result ret;
    int vary = 0, gz = 0;
    uint64_t hash = 0;

    if (res->etag && status == 200 && res->body != NULL) {
        /* The version's tag, before any change of encoding. */
        hash = res->has_hash ? res->body_hash : uq_hash64(res->body, res->len);
    }
    if (res->body != NULL && (res->gzipped || compressible(res))) {
        vary = 1;
        gz = encode_body(res, uq_accepts_gzip(MHD_lookup_connection_value(
                                  conn, MHD_HEADER_KIND, "Accept-Encoding")));
        if (gz < 0) {
            body_free_default(res);
            uq_log("error",
                   "a cached entry is not a gzip stream it claims to "
                   "be; answered 500",
                   NULL);
            uq_resp_error(res, 500, "internal error");
            status = 500;
            vary = 0;
            gz = 0;
        }
    }
    if (res->etag && status == 200 && res->body != NULL) {
        uq_etag_format(hash, etag);
        if (gz) {
            /* Each encoding is its own representation: its own strong
             * tag, as RFC 9110 wants. */
            memcpy(etag + 17, "-gz\"", 5);
        }
        const char *inm =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
        if (inm != NULL && uq_etag_matches(inm, etag)) {
            status = 304;
        }
    }
    if (status == 304 || res->body == NULL) {
        body_free_default(res);
        r = MHD_create_response_from_buffer(0, (void *)"",
                                            MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer_with_free_callback(
            res->len, res->body, res->body_free);
        if (r != NULL) {
            res->body = NULL;
        }
    }
    if (r == NULL) {
        body_free_default(res);
        return MHD_NO;
    }
    if (status != 304) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                res->content_type != NULL ? res->content_type
                                                          : "application/json");
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                            res->cache_control != NULL ? res->cache_control
                                                       : "no-store");
    if (etag[0] != '\0') {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    }
    if (gz && status != 304) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    }
    if (vary) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    }
    if (res->csp != NULL) {
        MHD_add_response_header(r, "Content-Security-Policy", res->csp);
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    }
    if (res->cache != UQ_CACHE_NONE) {
        MHD_add_response_header(r, "X-Cache", cache_mark(res->cache));
    }
    if (res->cache_tier != NULL) {
        MHD_add_response_header(r, "X-Cache-Tier", res->cache_tier);
    }
    if (res->cache == UQ_CACHE_STALE && res->produced_ms > 0) {
        /* RFC 9111 Age: seconds since the value was made. */
        uint64_t now = (uint64_t)uq_now_us(NULL) / 1000u, age = 0;
        char buf[24];
        if (now > res->produced_ms) {
            age = (now - res->produced_ms) / 1000u;
        }
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)age);
        MHD_add_response_header(r, MHD_HTTP_HEADER_AGE, buf);
    }
    if (allow != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    if (status == 401) {
        /* RFC 9110: a 401 names the scheme it wants, as the original's
         * HTTPBearer did. */
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    }
    MHD_add_response_header(r, "X-Correlation-ID", c->corr);
    if (origin != NULL && cors_allowed(app, origin)) {
        cors_headers(r, origin);
    }
    if ((flags & Q_RETRY) != 0) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    if ((flags & Q_CLOSE) != 0 || atomic_load(&app->draining)) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);

    uint64_t dur = mono_us() - start_us;
    uq_metrics_record(app, route_idx, status, dur);
    if (app->access_log) {
        char st[8], du[24];
        snprintf(st, sizeof(st), "%d", status);
        snprintf(du, sizeof(du), "%llu", (unsigned long long)dur);
        uq_log("info", "request", "method", method, "path", path, "status", st,
               "duration_us", du, "cache",
               res->cache == UQ_CACHE_NONE ? "-" : cache_mark(res->cache),
               NULL);
    }
    uq_log_correlation(NULL);
    return ret;
}

/*
 * A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method),
 * answered as the original's middleware did: 200 with what may be sent
 * for an allowed origin, 400 for another. Any method and any header are
 * allowed; the grant is cached by the browser for 600 s.
 */
static enum MHD_Result preflight(uq_app_t *app, struct MHD_Connection *conn,
                                 const char *path, const char *origin,
                                 const req_ctx_t *c)
{
    const char *want = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    int ok = cors_allowed(app, origin);
    const char *body = ok ? "OK" : "Disallowed CORS origin";
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; charset=utf-8");
    MHD_add_response_header(r, "X-Correlation-ID", c->corr);
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
    if (ok) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
        MHD_add_response_header(r, "Access-Control-Allow-Methods",
                                "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT");
        if (want != NULL && want[0] != '\0') {
            MHD_add_response_header(r, "Access-Control-Allow-Headers", want);
        }
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
    ret = MHD_queue_response(conn, ok ? 200 : 400, r);
    MHD_destroy_response(r);
    if (app->access_log) {
        uq_log("info", "request", "method", "OPTIONS", "path", path, "status",
               ok ? "200" : "400", "cors", "preflight", NULL);
    }
    uq_log_correlation(NULL);
    return ret;
}

/* The tracking entry of a connection, or NULL. */
static conn_track_t *conn_track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    conn_list_t *l = cls;
    conn_track_t *t = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        t = calloc(1, sizeof(*t));
        if (t == NULL || ci == NULL) {
            /* Untracked: MHD's idle timeout still applies. */
            free(t);
            return;
        }
        t->fd = ci->connect_fd;
        atomic_store(&t->wait_since_us, mono_us());
        pthread_mutex_lock(&l->mu);
        l->open++;
        t->overflow = l->soft_max > 0 && l->open > l->soft_max;
        t->next = l->head;
        if (l->head != NULL) {
            l->head->prev = t;
        }
        l->head = t;
        pthread_mutex_unlock(&l->mu);
        *socket_context = t;
        return;
    }
    if (t == NULL) {
        return;
    }
    pthread_mutex_lock(&l->mu);
    l->open--;
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        l->head = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    }
    pthread_mutex_unlock(&l->mu);
    free(t);
    *socket_context = NULL;
}

/* Shuts down connections past the request deadline; MHD then sees the end
 * of the stream and closes them. */
static void sweep_slow(conn_list_t *l)
{
    uint64_t now = mono_us();
    pthread_mutex_lock(&l->mu);
    for (conn_track_t *t = l->head; t != NULL; t = t->next) {
        uint64_t since = atomic_load(&t->wait_since_us);
        uint64_t limit = t->overflow ? OVERFLOW_DEADLINE_US : l->timeout_us;
        if (since != 0 && now > since && now - since > limit) {
            atomic_store(&t->wait_since_us, 0);
            shutdown(t->fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&l->mu);
}

/*
 * libmicrohttpd's URI log callback: it runs on the raw request line, before
 * MHD splits the query into arguments. MHD 0.9.75 stores every argument in
 * the connection's memory pool before the access handler runs, and past
 * about 470 of them the pool is exhausted and MHD neither answers nor closes
 * (the client waits for the timeout). So the arguments are counted here,
 * and past UQ_API_QUERY_ARGS_MAX the query is cut right after its '?': MHD
 * splits the arguments out of this same buffer after the callback, so it
 * then sees none, and the access handler answers 400. Returns the request
 * context, which MHD hands to the access handler as *con_cls (NULL when out
 * of memory: the handler allocates it then).
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    req_ctx_t *c = calloc(1, sizeof(*c));
    char *q = strchr(uri, '?');
    (void)cls;
    (void)conn;
    if (q != NULL && q[1] != '\0') {
        unsigned n = 1;
        for (const char *p = q + 1; *p != '\0'; p++) {
            n += *p == '&';
        }
        if (n > UQ_API_QUERY_ARGS_MAX) {
            q[1] = '\0';
            if (c != NULL) {
                c->too_many_args = 1;
            }
        }
    }
    return c;
}

/* The framing headers of a request, as counted by scan_header. */
typedef struct {
    unsigned n;
    unsigned content_length;
    unsigned transfer_encoding;
    unsigned bad_name; /* white space in a name ("Content-Length :") */
    const char *te;    /* the last Transfer-Encoding value */
} hdr_scan_t;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    hdr_scan_t *s = cls;
    size_t len = 0;
    int blank = 0;
    (void)kind;
    s->n++;
    /* One pass for both the white space and the length: this runs for
     * every header of every request, cache hits included, and the length
     * spares the case-insensitive compares of names that cannot match. */
    for (const char *p = key; *p != '\0'; p++, len++) {
        blank |= *p == ' ' || *p == '\t';
    }
    s->bad_name += blank;
    if (len == sizeof(MHD_HTTP_HEADER_CONTENT_LENGTH) - 1 &&
        strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        s->content_length++;
    } else if (len == sizeof(MHD_HTTP_HEADER_TRANSFER_ENCODING) - 1 &&
               strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        s->transfer_encoding++;
        s->te = value;
    }
    return MHD_YES;
}

/*
 * Refuses, on the first call of a request, what must not reach a handler.
 * Returns 0 when the request may go on, or sets res and *flags and returns
 * -1. The smuggling shapes (RFC 9112 section 6.3) are the ones where two
 * parsers on the way, a proxy and this service, could disagree on where the
 * body ends, and so on where the next request begins: a repeated
 * Content-Length, Content-Length together with Transfer-Encoding, and any
 * Transfer-Encoding but a single "chunked"; and white space before a
 * field name's colon, which one parser may strip and another keep. Each is
 * answered 400 and the connection closed, so the bytes after the headers
 * are never read as a request. Malformed chunk sizes and Content-Length
 * values, and HTTP/1.1 without Host (MHD_OPTION_STRICT_FOR_CLIENT), are
 * libmicrohttpd's to refuse (400).
 */
static int refuse_early(struct MHD_Connection *conn, const req_ctx_t *c,
                        uq_resp_t *res, unsigned *flags)
{
    conn_track_t *track = conn_track_of(conn);
    hdr_scan_t s;

    *flags = Q_CLOSE;
    if (track != NULL && track->overflow) {
        *flags |= Q_RETRY;
        uq_resp_error(res, 503, "too many connections");
        return -1;
    }
    if (c->too_many_args) {
        uq_resp_error(res, 400, "query: more than %d arguments",
                      UQ_API_QUERY_ARGS_MAX);
        return -1;
    }
    memset(&s, 0, sizeof(s));
    MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &s);
    if (s.n > UQ_API_HEADERS_MAX) {
        uq_resp_error(res, 431, "headers: more than %d", UQ_API_HEADERS_MAX);
        return -1;
    }
    if (s.bad_name > 0) {
        uq_resp_error(res, 400, "headers: white space in a field name");
        return -1;
    }
    if (s.content_length > 1) {
        uq_resp_error(res, 400, "Content-Length: given more than once");
        return -1;
    }
    if (s.transfer_encoding > 0 && s.content_length > 0) {
        uq_resp_error(res, 400,
                      "Transfer-Encoding: not allowed with Content-Length");
        return -1;
    }
    if (s.transfer_encoding > 1 ||
        (s.te != NULL && strcasecmp(s.te, "chunked") != 0)) {
        uq_resp_error(res, 400, "Transfer-Encoding: only chunked");
        return -1;
    }
    *flags = 0;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    uq_app_t *app = cls;
    req_ctx_t *c = *con_cls;
    size_t nroutes;
    const uq_route_t *rt = uq_api_routes(&nroutes);
    uq_resp_t res;
    (void)version;

    if (c == NULL || !c->started) {
        /* First call: headers only. Never queue a response here, but for a
         * request refused whole, whose connection is closed anyway. */
        unsigned flags = 0;
        if (c == NULL && (c = calloc(1, sizeof(*c))) == NULL) {
            return MHD_NO;
        }
        c->started = 1;
        c->start_us = mono_us();
        correlation_of(conn, c->corr);
        atomic_fetch_add(&app->inflight, 1);
        *con_cls = c;
        memset(&res, 0, sizeof(res));
        if (refuse_early(conn, c, &res, &flags) != 0) {
            return queue(app, conn, method, url, nroutes, &res, c, NULL, flags);
        }
        c->route =
            uq_route_find(rt, nroutes, method, url, &c->param, &c->known);
        c->max = c->route >= 0 && rt[c->route].body_max > 0
                     ? rt[c->route].body_max
                     : UQ_API_BODY_MAX;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     "Content-Length");
        long long clen = 0;
        if (cl != NULL && (uq_parse_int(cl, 0, INT64_MAX, &clen) != 0 ||
                           clen > (long long)c->max)) {
            c->too_big = 1;
        }
        const char *expect =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
        if (c->too_big && expect != NULL) {
            /* The client waits for "100 Continue" before sending the body:
             * refusing now costs the connection but sends no body at all. */
            uq_resp_error(&res, 413, "body: larger than %zu bytes", c->max);
            return queue(app, conn, method, url, nroutes, &res, c, NULL, 0);
        }
        return MHD_YES;
    }
    memset(&res, 0, sizeof(res));
    if (c->too_big && (*upload_size == 0 || c->len > UQ_API_DRAIN_MAX)) {
        /* Bodies up to UQ_API_DRAIN_MAX are read and dropped so the answer
         * arrives on a healthy keep-alive connection; past that, answer at
         * once and let MHD close it. */
        uq_resp_error(&res, 413, "body: larger than %zu bytes", c->max);
        return queue(app, conn, method, url, nroutes, &res, c, NULL, 0);
    }
    if (*upload_size > 0) {
        if (c->too_big || c->len + *upload_size > c->max) {
            free(c->body);
            c->body = NULL;
            c->too_big = 1;
            c->len += *upload_size;
            *upload_size = 0;
            return MHD_YES;
        }
        char *nb = realloc(c->body, c->len + *upload_size + 1);
        if (nb == NULL) {
            return MHD_NO;
        }
        memcpy(nb + c->len, upload, *upload_size);
        c->body = nb;
        c->len += *upload_size;
        c->body[c->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }

    conn_track_t *track = conn_track_of(conn);
    if (track != NULL) {
        /* The whole request is in: the deadline stops while it is served. */
        atomic_store(&track->wait_since_us, 0);
    }
    uq_log_correlation(c->corr);
    const char *origin =
        app->cors_origins[0] != '\0' && strcmp(method, "OPTIONS") == 0
            ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin")
            : NULL;
    if (origin != NULL &&
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                    "Access-Control-Request-Method") != NULL) {
        return preflight(app, conn, url, origin, c);
    }
    uq_req_t req;
    memset(&req, 0, sizeof(req));
    int idx = c->route;
    req.param = c->param;
    if (idx < 0) {
        if (c->known) {
            char allow[64];
            uq_route_allow(rt, nroutes, url, allow, sizeof(allow));
            uq_resp_error(&res, 405, "method %s not allowed", method);
            return queue(app, conn, method, url, nroutes, &res, c, allow, 0);
        }
        uq_resp_error(&res, 404, "not found");
        return queue(app, conn, method, url, nroutes, &res, c, NULL, 0);
    }
    req.method = method;
    req.path = url;
    req.body = c->body != NULL ? c->body : "";
    req.body_len = c->len;
    req.conn = conn;
    if (rt[idx].roles == 0 ||
        uq_auth_check(app, &req, rt[idx].roles, &res) == 0) {
        rt[idx].fn(app, &req, &res);
    }
    return queue(app, conn, method, url, (size_t)idx, &res, c, NULL, 0);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    uq_app_t *app = cls;
    req_ctx_t *c = *con_cls;
    conn_track_t *track = conn_track_of(conn);
    (void)toe;
    if (track != NULL) {
        atomic_store(&track->wait_since_us, mono_us());
    }
    if (c == NULL) {
        return;
    }
    if (c->started) {
        atomic_fetch_sub(&app->inflight, 1);
    }
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- the daemon ---------------------------------------------------------- */

/* The cause of a failed system call, lower case as in our messages. */
static void cause(int e, char *buf, size_t cap)
{
    if (e == EADDRINUSE) {
        snprintf(buf, cap, "address in use");
        return;
    }
    snprintf(buf, cap, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && buf[1] >= 'a' && buf[1] <= 'z') {
        buf[0] = (char)(buf[0] - 'A' + 'a');
    }
}

/*
 * Opens the listening socket on addr:port. libmicrohttpd would do it too,
 * but then a failure is only "cannot start"; here the errno is ours. Returns
 * the descriptor (non-blocking, close-on-exec, listening), or -1 with
 * "bind 127.0.0.1:8080: address in use" (or the step and cause that failed)
 * in err. *v6 tells whether the address is IPv6.
 */
static int open_listener(const char *addr, int port, int *v6, char *err,
                         size_t errlen)
{
    struct sockaddr_in sa4;
    struct sockaddr_in6 sa6;
    struct sockaddr *sa;
    socklen_t salen;
    char where[INET6_ADDRSTRLEN + 16], why[128];
    const char *step = "socket";
    int one = 1;
    int fd;

    memset(&sa4, 0, sizeof(sa4));
    memset(&sa6, 0, sizeof(sa6));
    if (inet_pton(AF_INET, addr, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&sa4;
        salen = sizeof(sa4);
        *v6 = 0;
        snprintf(where, sizeof(where), "%s:%d", addr, port);
    } else if (inet_pton(AF_INET6, addr, &sa6.sin6_addr) == 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&sa6;
        salen = sizeof(sa6);
        *v6 = 1;
        snprintf(where, sizeof(where), "[%s]:%d", addr, port);
    } else {
        snprintf(err, errlen, "listen address '%.64s': not an IP address",
                 addr);
        return -1;
    }
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        /* A restart must not wait for the old connections' TIME_WAIT; two
         * listeners on one port are still refused (no SO_REUSEPORT). */
        step = "setsockopt";
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            (!*v6 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
                                sizeof(one)) == 0)) {
            step = "bind";
            if (bind(fd, sa, salen) == 0) {
                step = "listen";
                if (listen(fd, 1024) == 0) {
                    return fd;
                }
            }
        }
    }
    cause(errno, why, sizeof(why));
    snprintf(err, errlen, "%s %s: %s", step, where, why);
    if (fd >= 0) {
        close(fd);
    }
    return -1;
}

int uq_http_serve(uq_app_t *app, const uq_http_opts_t *o)
{
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_USE_ITC;
    sigset_t set;
    struct MHD_Daemon *d;
    conn_list_t conns;
    char err[256];
    int v6 = 0;
    int lfd;

    lfd = open_listener(o->listen_addr, o->port, &v6, err, sizeof(err));
    if (lfd < 0) {
        uq_log("error", err, NULL);
        return 1;
    }
    if (v6) {
        flags |= MHD_USE_IPv6;
    }

    /* The signals are taken by sigtimedwait below; the MHD threads inherit
     * the mask, so no handler ever runs inside a request. SIGQUIT drains as
     * SIGTERM does; SIGHUP, SIGUSR1 and SIGUSR2 are ignored (main.c). */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    memset(&conns, 0, sizeof(conns));
    pthread_mutex_init(&conns.mu, NULL);
    conns.timeout_us = (uint64_t)o->conn_timeout_s * 1000000u;

    /* MHD's own limit: the configured one plus the overflow reserve, split
     * by MHD between its threads (each needs one slot at least). */
    unsigned soft = o->max_connections;
    unsigned reserve = soft / 4 < 64 ? 64 : soft / 4;
    unsigned hard = soft + reserve;
    if (hard < (unsigned)o->threads * 2u) {
        hard = (unsigned)o->threads * 2u;
    }
    conns.soft_max = soft;

    d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, app, MHD_OPTION_LISTEN_SOCKET, lfd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads,
        MHD_OPTION_CONNECTION_TIMEOUT, o->conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_CONNECTION_LIMIT, hard,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_per_ip,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, app, MHD_OPTION_NOTIFY_CONNECTION, on_connection, &conns,
        MHD_OPTION_END);
    if (d == NULL) {
        char port[16];
        snprintf(port, sizeof(port), "%d", o->port);
        uq_log("error", "cannot start HTTP daemon", "listen_addr",
               o->listen_addr, "port", port, NULL);
        close(lfd);
        pthread_mutex_destroy(&conns.mu);
        return 1;
    }
    {
        char url[128], th[16], mc[16], mi[16];
        snprintf(url, sizeof(url), v6 ? "http://[%s]:%d/" : "http://%s:%d/",
                 o->listen_addr, o->port);
        snprintf(th, sizeof(th), "%d", o->threads);
        snprintf(mc, sizeof(mc), "%u", soft);
        snprintf(mi, sizeof(mi), "%u", o->max_per_ip);
        uq_log("info", "listening", "url", url, "threads", th,
               "max_connections", mc, "max_connections_per_ip",
               o->max_per_ip > 0 ? mi : "unlimited", "database",
               uq_db_backend_name(app->db), "cache",
               uc_cache_backend_name(app->cache), NULL);
    }

    for (;;) {
        struct timespec tick = {0, 250 * 1000000L};
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
            uq_log("info", "draining", "signal",
                   sig == SIGTERM  ? "SIGTERM"
                   : sig == SIGINT ? "SIGINT"
                                   : "SIGQUIT",
                   NULL);
            break;
        }
        sweep_slow(&conns);
    }

    atomic_store(&app->draining, 1);
    /* No MHD_quiesce_daemon(): with epoll worker threads it races a worker
     * that takes the listening socket out of its epoll set at the
     * connection limit, and libmicrohttpd 0.9.75 then aborts the process
     * ("Failed to remove listen FD from epoll set"). While draining, the
     * socket still accepts, but /readyz answers 503 and every answer closes
     * its connection, so a balancer moves on. In-flight requests finish
     * (bounded); MHD_stop_daemon closes the rest and the socket. */
    uint64_t deadline = mono_us() + 10u * 1000000u;
    while (atomic_load(&app->inflight) > 0 && mono_us() < deadline) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(d);
    pthread_mutex_destroy(&conns.mu);
    uq_log("info", "stopped", NULL);
    return 0;
}
