/* SPDX-License-Identifier: MIT */
/*
 * The redis backend: every operation of uc__backend_ops_t over hiredis
 * (0.14, blocking contexts) borrowed from a bounded pool, behind a circuit
 * breaker. An operation is one "session": ask the breaker, borrow a
 * connection (made lazily: connect with cfg.connect_timeout_ms, then
 * SO_RCVTIMEO/SO_SNDTIMEO of cfg.command_timeout_ms, then AUTH and SELECT
 * pipelined in one round trip), send its commands pipelined, read every
 * reply, give the connection back and tell the breaker how it went.
 *
 * Failure rules:
 *   - A connection that failed in any way (I/O error, timeout, EOF, a reply
 *     of the wrong shape) is closed, never reused: after a timeout its late
 *     reply would otherwise answer the next command. An EOF or reset also
 *     drops the idle connections, which died with the same server.
 *   - A server error reply (-OOM, -WRONGTYPE, ...) is an answer: the
 *     connection stays, the breaker counts a success. -LOADING, -BUSY and
 *     -MASTERDOWN are answers too (the connection stays) but count as
 *     breaker failures: the server cannot serve for a while, and failing
 *     fast beats sending every call to it.
 *   - Connect failures, timeouts and broken connections feed the breaker; a
 *     full pool or the pool's reconnect backoff says nothing about the
 *     server and neither opens nor closes it.
 *
 * SIGPIPE: hiredis writes with write(), so a peer that went away raises
 * SIGPIPE. The library must not change the host's signal dispositions, so
 * each session blocks SIGPIPE in the calling thread only (pthread_sigmask),
 * and before restoring the mask consumes a SIGPIPE that became pending
 * during a session in which a write failed (one already pending belonged
 * to the host and is left alone; a session without a failed write raised
 * none).
 *
 * Every wait is bounded: acquire by cfg.acquire_timeout_ms, connect by
 * cfg.connect_timeout_ms, each round trip by cfg.command_timeout_ms. Host
 * names are resolved by the system resolver (getaddrinfo), which hiredis
 * calls and which is bounded by the resolver's own configuration.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "breaker.h"
#include "pool.h"
#include "redis_info.h"
#include "redis_node.h"
#include "reply_guard.h"
#include "store.h"

/* One connection-failure line per interval; the rest are counted. */
#define LOG_INTERVAL_US 1000000u
#define CURSOR_MAX 32
#define DETAIL_MAX 120
#define INFO_MAX (1024u * 1024u)

/*
 * Compare-and-set on one key: replaces KEYS[1] with ARGV[2] (TTL ARGV[3]
 * ms, 0: none) only while it holds exactly ARGV[1]. Returns 1 when stored,
 * 0 otherwise. One key, so one Cluster slot.
 */
static const char cas_lua[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "if ARGV[3] ~= '0' then\n"
    "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "else\n"
    "  redis.call('SET', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 1\n";

/* Below the prefix; no keyspace pattern may start with "uc:". */
#define MARKER_SUFFIX "uc:dataset"
#define RUN_ID_MAX 64

#define TAG_MAX 24

/* A call waiting in a node's combiner (on its caller's stack). */
typedef struct creq {
    const struct cmd *cmd;
    redisReply *rep; /* the reply, the caller's */
    int rc;          /* the batch's status */
    int broken;      /* the batch's connection failed */
    int state;       /* REQ_QUEUED, REQ_DONE, REQ_LEAD */
    pthread_cond_t *cv;
    struct creq *next;
} creq_t;

/* Calls queued behind the batches that are out, and how many are out. */
typedef struct {
    pthread_mutex_t mu;
    creq_t *head, *tail;
    int active;
} comb_t;

typedef struct {
    uc__backend_t base;
    uc__pool_t *pool;
    uc__breaker_t breaker;
    char host[UC__HOST_MAX + 1];
    int port;
    char where[UC__HOST_MAX + 16]; /* "host:port", for messages */
    char bname[UC__HOST_MAX + 24]; /* "redis host:port": the breaker's */
    uc__backend_t *parent;         /* raised with our distrust; may be NULL */
    _Atomic int cluster;           /* single-slot commands, no SELECT */
    size_t scan_batch;
    pthread_mutex_t sha_mu;
    char sha[41]; /* of cas_lua once SCRIPT LOAD answered; "" before */
    pthread_mutex_t id_mu;
    /* The marker's key; in a cluster it carries a tag of one of the
     * node's slots (id_mu). */
    char marker[UC_PREFIX_MAX + sizeof(MARKER_SUFFIX) + TAG_MAX + 4];
    size_t marker_len;
    /* Connections whose check is older than this generation check again. */
    _Atomic unsigned verify_gen;
    char raised_by[RUN_ID_MAX]; /* run_id seen when distrust was raised */
    /* Set once a dataset was found or made trusted: from then on the
     * worker re-checks it periodically. */
    _Atomic int checked;
    _Atomic uint64_t log_next_us;
    _Atomic uint64_t log_suppressed;
    _Atomic uint64_t n_commands, n_failures, n_moved, n_ask, n_tryagain,
        n_distrusts, n_batches, n_batched;
    /* Auto-pipelining: entry commands [1] and raw ones [0] (see comb_run). */
    comb_t comb[2];
    size_t pipeline_max; /* 0: off */
} rb_t;

/* What the last redirect told this thread (see redis_node.h). */
static _Thread_local uc__redir_t tl_redir;
static _Thread_local int tl_asking;
static _Thread_local int tl_force;

/*
 * A pooled connection: the hiredis context and whether its dataset identity
 * has been checked. The check rides on the connection's first pipeline
 * (see exec), so it costs no round trip of its own.
 */
typedef struct {
    redisContext *c;
    unsigned verified;       /* the generation it was checked at; 0: never */
    uc__reply_guard_t guard; /* on c's reader */
} rconn_t;

/* One operation's hold on the breaker, a connection and the signal mask. */
typedef struct {
    rconn_t *conn;
    redisContext *c;
    int data; /* reads or writes entries: refused on a distrusted dataset */
    int sigpipe_ignored; /* the application ignores SIGPIPE (config) */
    int probe;
    int broken;      /* the connection failed: close it */
    int server_gone; /* EOF/reset: the idle ones are suspect too */
    int server_busy; /* -LOADING and the like: a breaker failure */
    int batch;       /* other callers' commands: their errors are theirs */
    int combined;    /* a call through comb_run(): no connection of its own */
    int neutral;     /* ... whose batch got no connection: no verdict */
    int pipe_blocked_before;
    int pipe_pending_before;
    sigset_t oldmask;
} sess_t;

/* A command as argv/argvlen, the shape hiredis takes. */
typedef struct cmd {
    int argc;
    const char **argv;
    const size_t *lens;
} cmd_t;

static rb_t *rb_of(uc__backend_t *b)
{
    return (rb_t *)b;
}

/* Most commands one auto-pipelined batch carries (the config's bound). */
#define PIPELINE_MAX 256

/* Commands up to this many bytes of protocol are formatted on the stack. */
#define CMD_STACK 512

/* Writes v in decimal at p (room for 20 digits); returns the digit count. */
static size_t put_dec(char *p, size_t v)
{
    char tmp[24];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        p[i] = tmp[n - 1 - i];
    }
    return n;
}

/*
 * Appends one command to the context's output buffer; REDIS_OK, or
 * REDIS_ERR with c->err set (out of memory), like redisAppendCommandArgv.
 * hiredis' formatter grows an sds string several times and runs a
 * printf-style pass per argument, which on a cache hit costs more than the
 * rest of the GET; a command whose protocol text fits CMD_STACK bytes is
 * written here in the same RESP form in one pass, larger ones (values) go
 * through hiredis.
 */
static int append_cmd(redisContext *c, const cmd_t *cmd)
{
    char buf[CMD_STACK];
    size_t need = 16; /* "*<argc>\r\n" */
    size_t pos = 0;

    for (int i = 0; i < cmd->argc; i++) {
        /* "$<len>\r\n<arg>\r\n": at most 25 bytes besides the argument. */
        if (cmd->lens[i] > sizeof(buf) ||
            need + cmd->lens[i] + 26 > sizeof(buf)) {
            return redisAppendCommandArgv(c, cmd->argc, cmd->argv, cmd->lens);
        }
        need += cmd->lens[i] + 26;
    }
    buf[pos++] = '*';
    pos += put_dec(buf + pos, (size_t)cmd->argc);
    buf[pos++] = '\r';
    buf[pos++] = '\n';
    for (int i = 0; i < cmd->argc; i++) {
        buf[pos++] = '$';
        pos += put_dec(buf + pos, cmd->lens[i]);
        buf[pos++] = '\r';
        buf[pos++] = '\n';
        memcpy(buf + pos, cmd->argv[i], cmd->lens[i]);
        pos += cmd->lens[i];
        buf[pos++] = '\r';
        buf[pos++] = '\n';
    }
    return redisAppendFormattedCommand(c, buf, pos);
}

/* ---- logging --------------------------------------------------------------
 */

/*
 * Logs a failure of the connection to the server at most once per
 * LOG_INTERVAL_US, with the number of lines held back since the last one.
 * `detail` comes from hiredis or from the server's error reply, neither of
 * which ever contains the password.
 */
static void log_failure(rb_t *rb, const char *what, int rc, const char *detail)
{
    uint64_t now = uc__now_us(rb->base.env);
    uint64_t next = atomic_load(&rb->log_next_us);
    uint64_t held = 0;

    if (now < next || !atomic_compare_exchange_strong(&rb->log_next_us, &next,
                                                      now + LOG_INTERVAL_US)) {
        atomic_fetch_add(&rb->log_suppressed, 1);
        return;
    }
    held = atomic_exchange(&rb->log_suppressed, 0);
    uc__log(rb->base.env, UC_LOG_WARN,
            "%s '%s': %s%s%.*s (%llu similar held back)", what, rb->where,
            uc_strerror(rc), detail != NULL && detail[0] != '\0' ? ": " : "",
            DETAIL_MAX, detail != NULL ? detail : "", (unsigned long long)held);
}

/* ---- error mapping ---------------------------------------------------------
 */

static int starts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    return s != NULL && len >= n && memcmp(s, prefix, n) == 0;
}

/* The cluster's answer in an error reply, UC__REDIR_NONE for others. */
static uc__redir_kind_t cluster_error(const redisReply *r)
{
    if (starts_with(r->str, r->len, "MOVED ")) {
        return UC__REDIR_MOVED;
    }
    if (starts_with(r->str, r->len, "ASK ")) {
        return UC__REDIR_ASK;
    }
    if (starts_with(r->str, r->len, "TRYAGAIN")) {
        return UC__REDIR_TRYAGAIN;
    }
    if (starts_with(r->str, r->len, "CLUSTERDOWN")) {
        return UC__REDIR_CLUSTERDOWN;
    }
    return UC__REDIR_NONE;
}

/* The status for an error reply. */
static int error_reply_status(const redisReply *r)
{
    if (cluster_error(r) != UC__REDIR_NONE) {
        return UC__EREDIRECT;
    }
    if (starts_with(r->str, r->len, "WRONGPASS") ||
        starts_with(r->str, r->len, "NOAUTH") ||
        starts_with(r->str, r->len, "NOPERM")) {
        return UC_EAUTH;
    }
    return UC_ESERVER;
}

/* Whether an error reply says the server cannot serve for a while. */
static int error_reply_busy(const redisReply *r)
{
    return starts_with(r->str, r->len, "LOADING") ||
           starts_with(r->str, r->len, "BUSY") ||
           starts_with(r->str, r->len, "MASTERDOWN");
}

/* Whether hiredis' message is one of getaddrinfo's "no such name" ones. */
static int is_resolve_error(const char *msg)
{
    static const int codes[] = {
        EAI_NONAME,     EAI_AGAIN, EAI_FAIL,
#ifdef EAI_NODATA
        EAI_NODATA,
#endif
#ifdef EAI_ADDRFAMILY
        EAI_ADDRFAMILY,
#endif
    };

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcmp(msg, gai_strerror(codes[i])) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * The status for a failed hiredis context. `saved_errno` is errno right
 * after the failing call: a blocking read or write that hit SO_RCVTIMEO or
 * SO_SNDTIMEO fails with EAGAIN, which is how hiredis reports a timeout.
 */
static int context_status(const redisContext *c, int saved_errno)
{
    switch (c->err) {
    case REDIS_ERR_IO:
        if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK ||
            saved_errno == ETIMEDOUT || saved_errno == EINPROGRESS ||
            strstr(c->errstr, "timed out") != NULL ||
            strstr(c->errstr, "temporarily unavailable") != NULL) {
            return UC_ETIMEDOUT;
        }
        if (saved_errno == ECONNREFUSED ||
            strstr(c->errstr, "refused") != NULL) {
            return UC_ECONNREFUSED;
        }
        return UC_EIO;
    case REDIS_ERR_EOF:
        return UC_EIO;
    case REDIS_ERR_PROTOCOL:
        return UC_EPROTO;
    case REDIS_ERR_OOM:
        return UC_ENOMEM;
    case REDIS_ERR_OTHER:
    default:
        return is_resolve_error(c->errstr) ? UC_ERESOLVE : UC_EIO;
    }
}

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return tv;
}

/* ---- connections (pool callbacks) -----------------------------------------
 */

/*
 * Sends AUTH (with the username when one is set) and SELECT (when db is not
 * 0) in one round trip and checks both answers. Returns UC_OK or a status,
 * with a detail for the log in `detail`.
 */
static int handshake(rb_t *rb, redisContext *c, char *detail, size_t dlen)
{
    const uc_config_t *cfg = &rb->base.env->cfg;
    const char *auth[3];
    size_t auth_len[3];
    int auth_argc = 0;
    char dbs[16];
    const char *sel[2] = {"SELECT", dbs};
    size_t sel_len[2] = {6, 0};
    int nreplies = 0;
    int rc = UC_OK;

    if (cfg->password[0] != '\0') {
        auth[auth_argc] = "AUTH";
        auth_len[auth_argc++] = 4;
        if (cfg->username[0] != '\0') {
            auth[auth_argc] = cfg->username;
            auth_len[auth_argc++] = strlen(cfg->username);
        }
        auth[auth_argc] = cfg->password;
        auth_len[auth_argc++] = strlen(cfg->password);
        if (redisAppendCommandArgv(c, auth_argc, auth, auth_len) != REDIS_OK) {
            return UC_ENOMEM;
        }
        nreplies++;
    }
    if (cfg->db != 0 && !atomic_load(&rb->cluster)) {
        snprintf(dbs, sizeof(dbs), "%d", cfg->db);
        sel_len[1] = strlen(dbs);
        if (redisAppendCommandArgv(c, 2, sel, sel_len) != REDIS_OK) {
            return UC_ENOMEM;
        }
        nreplies++;
    }
    for (int i = 0; i < nreplies; i++) {
        void *v = NULL;
        redisReply *r = NULL;
        int is_auth = i == 0 && auth_argc > 0;

        if (redisGetReply(c, &v) != REDIS_OK) {
            int saved = errno;

            snprintf(detail, dlen, "%s", c->errstr);
            return context_status(c, saved);
        }
        r = v;
        if (rc == UC_OK && r->type == REDIS_REPLY_ERROR) {
            /*
             * "ERR ... without any password configured" and the like: the
             * server refused our credentials, whatever the wording.
             */
            rc = is_auth ? UC_EAUTH : error_reply_status(r);
            snprintf(detail, dlen, "%.*s", (int)(r->len < 100 ? r->len : 100),
                     r->str);
        } else if (rc == UC_OK && r->type != REDIS_REPLY_STATUS) {
            rc = UC_EPROTO;
            snprintf(detail, dlen, "unexpected reply to %s",
                     is_auth ? "AUTH" : "SELECT");
        }
        freeReplyObject(r);
    }
    return rc;
}

static int conn_open(void *arg, void **conn)
{
    rb_t *rb = arg;
    const uc_config_t *cfg = &rb->base.env->cfg;
    char detail[160] = "";
    redisContext *c = NULL;
    int rc = UC_OK;
    int saved = 0;

    errno = 0;
    c = redisConnectWithTimeout(rb->host, rb->port,
                                ms_to_tv(cfg->connect_timeout_ms));
    saved = errno;
    if (c == NULL) {
        rc = UC_ENOMEM;
        goto fail;
    }
    if (c->err != 0) {
        snprintf(detail, sizeof(detail), "%s", c->errstr);
        rc = context_status(c, saved);
        goto fail;
    }
    if (redisSetTimeout(c, ms_to_tv(cfg->command_timeout_ms)) != REDIS_OK) {
        snprintf(detail, sizeof(detail), "%s", c->errstr);
        rc = UC_EIO;
        goto fail;
    }
    rc = handshake(rb, c, detail, sizeof(detail));
    if (rc != UC_OK) {
        goto fail;
    }
    rconn_t *rc_conn = malloc(sizeof(*rc_conn));
    if (rc_conn == NULL) {
        rc = UC_ENOMEM;
        goto fail;
    }
    rc_conn->c = c;
    rc_conn->verified = 0;
    uc__reply_guard_install(c->reader, &rc_conn->guard);
    *conn = rc_conn;
    return UC_OK;

fail:
    redisFree(c);
    log_failure(rb, "connect", rc, detail);
    return rc;
}

static void conn_close(void *arg, void *conn)
{
    rconn_t *rc = conn;

    (void)arg;
    redisFree(rc->c);
    free(rc);
}

/*
 * An idle connection is usable when nothing can be read from it: with no
 * request outstanding, readable means the server closed it (or sent
 * something unasked). This catches connections a restarted server left
 * behind before a request is wasted on them.
 */
static int conn_check(void *arg, void *conn)
{
    redisContext *c = ((rconn_t *)conn)->c;
    struct pollfd pfd;

    (void)arg;
    if (c->err != 0) {
        return 0;
    }
    pfd.fd = c->fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, 0) == 0;
}

/* ---- sessions --------------------------------------------------------------
 */

static void block_sigpipe(sess_t *s)
{
    sigset_t pipe;
    sigset_t pending;

    if (s->sigpipe_ignored) {
        s->pipe_blocked_before = 1; /* nothing to restore */
        return;
    }
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &s->oldmask);
    s->pipe_blocked_before = sigismember(&s->oldmask, SIGPIPE) == 1;
    /* Unblocked, it could not have been pending: it would have fired. */
    s->pipe_pending_before = 0;
    if (s->pipe_blocked_before && sigpending(&pending) == 0) {
        s->pipe_pending_before = sigismember(&pending, SIGPIPE) == 1;
    }
}

/*
 * Restores the mask of block_sigpipe(). write_failed says whether a write
 * of the session may have failed: SIGPIPE comes only with a write that
 * fails with EPIPE, and any failed write leaves the session broken (or the
 * acquire failed), so a session that went well skips the sigpending() call.
 */
static void restore_sigpipe(sess_t *s, int write_failed)
{
    sigset_t pipe;
    sigset_t pending;
    struct timespec zero = {0, 0};

    if (s->sigpipe_ignored) {
        return; /* a write to a closed socket gave EPIPE, no signal */
    }
    if (write_failed && !s->pipe_pending_before && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE) == 1) {
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        /* Ours: a write to a closed socket during this session. */
        while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    if (!s->pipe_blocked_before) {
        pthread_sigmask(SIG_SETMASK, &s->oldmask, NULL);
    }
}

/* Whether a failed acquire says something about the server. */
static uc__breaker_outcome_t acquire_outcome(int rc)
{
    switch (rc) {
    case UC_EPOOL:        /* our own pool is busy */
    case UC_EUNAVAILABLE: /* reconnect backoff: already counted */
    case UC_ENOMEM:
        return UC__BREAKER_NEUTRAL;
    default:
        return UC__BREAKER_FAILURE;
    }
}

/*
 * Starts an operation: breaker, SIGPIPE mask, connection. Returns UC_OK
 * (then sess_end() must follow) or the status to return at once.
 */
static int sess_begin(rb_t *rb, sess_t *s)
{
    void *conn = NULL;
    int rc = UC_OK;

    memset(s, 0, sizeof(*s));
    s->sigpipe_ignored = rb->base.env->cfg.sigpipe_ignored;
    if (tl_force) {
        s->probe = 0; /* reported as an ordinary call: no say when open */
    } else if ((rc = uc__breaker_allow(&rb->breaker, &s->probe)) != UC_OK) {
        return rc;
    }
    block_sigpipe(s);
    rc = uc__pool_acquire(rb->pool, &conn);
    if (rc != UC_OK) {
        uc__breaker_report(&rb->breaker, s->probe, acquire_outcome(rc));
        restore_sigpipe(s, 1);
        return rc;
    }
    s->conn = conn;
    s->c = s->conn->c;
    return UC_OK;
}

static void sess_end(rb_t *rb, sess_t *s);

/*
 * sess_begin() for commands that read or write entries: refused with
 * UC_EUNAVAILABLE while the dataset is not trusted. The check comes after
 * the connection is acquired, because a new connection is where a changed
 * dataset is first seen.
 */
static int sess_begin_data(rb_t *rb, sess_t *s)
{
    int rc = sess_begin(rb, s);

    if (rc == UC_OK && atomic_load(&rb->base.distrust) != 0) {
        sess_end(rb, s);
        return UC_EUNAVAILABLE;
    }
    s->data = 1;
    return rc;
}

/* Ends an operation: returns or closes the connection, tells the breaker. */
static void sess_end(rb_t *rb, sess_t *s)
{
    uc__breaker_outcome_t outcome = UC__BREAKER_SUCCESS;

    if (s->combined) {
        outcome = s->neutral                    ? UC__BREAKER_NEUTRAL
                  : s->broken || s->server_busy ? UC__BREAKER_FAILURE
                                                : UC__BREAKER_SUCCESS;
        uc__breaker_report(&rb->breaker, s->probe, outcome);
        return;
    }
    if (s->broken) {
        uc__pool_release(rb->pool, s->conn, 0);
        if (s->server_gone) {
            uc__pool_discard_idle(rb->pool);
        }
        outcome = UC__BREAKER_FAILURE;
    } else {
        uc__pool_release(rb->pool, s->conn, 1);
        if (s->server_busy) {
            outcome = UC__BREAKER_FAILURE;
        }
    }
    s->c = NULL;
    s->conn = NULL;
    uc__breaker_report(&rb->breaker, s->probe, outcome);
    restore_sigpipe(s, s->broken);
}

/* Marks the connection broken after a reply of a shape we did not ask for. */
static int bad_reply(rb_t *rb, sess_t *s)
{
    s->broken = 1;
    log_failure(rb, "redis", UC_EPROTO, "unexpected reply type");
    return UC_EPROTO;
}

static int check_identity(rb_t *rb, sess_t *s);

/*
 * An error reply: -LOADING and the like make the session a breaker
 * failure; a cluster's redirect or refusal is counted and left in the
 * thread's redirect slot (the first of a pipeline) for the router.
 */
static void note_error(rb_t *rb, sess_t *s, const redisReply *r)
{
    uc__redir_kind_t kind = cluster_error(r);

    if (error_reply_busy(r)) {
        s->server_busy = 1;
    }
    if (kind == UC__REDIR_NONE) {
        return;
    }
    atomic_fetch_add_explicit(kind == UC__REDIR_MOVED ? &rb->n_moved
                              : kind == UC__REDIR_ASK ? &rb->n_ask
                                                      : &rb->n_tryagain,
                              1, memory_order_relaxed);
    if (tl_redir.kind != UC__REDIR_NONE) {
        return;
    }
    if (kind == UC__REDIR_MOVED || kind == UC__REDIR_ASK) {
        if (uc__redirect_parse(r->str, r->len, &tl_redir.to) != UC_OK) {
            /* Not a redirect we can follow: a refusal for this call. */
            kind = UC__REDIR_CLUSTERDOWN;
        } else if (tl_redir.to.host[0] == '\0') {
            /* unknown-endpoint: the node that sent it, on that port */
            snprintf(tl_redir.to.host, sizeof(tl_redir.to.host), "%s",
                     rb->host);
        }
    }
    tl_redir.kind = kind;
}

/*
 * Sends n commands in one write and reads their n replies into rep[]
 * (the caller frees them with free_replies()). Returns UC_OK, or a status
 * with the connection marked broken and rep[] all NULL. A data session on a
 * connection not checked yet checks the dataset identity (INFO server, GET
 * marker) first, and answers UC_EUNAVAILABLE, sending nothing, when it
 * shows a changed dataset.
 */
static int exec(rb_t *rb, sess_t *s, size_t n, const cmd_t *cmds,
                redisReply **rep)
{
    redisContext *c = s->c;
    int rc = UC_OK;
    size_t got = 0;

    for (size_t i = 0; i < n; i++) {
        rep[i] = NULL;
    }
    /* Only entry reads and writes need the check; raw commands are an
     * operator's and leave the connection to be checked by its first entry
     * command. The check is its own round trip, once per connection, so
     * that nothing is written to a dataset before it is judged. */
    if (s->data &&
        s->conn->verified !=
            atomic_load_explicit(&rb->verify_gen, memory_order_acquire)) {
        rc = check_identity(rb, s);
        if (rc == UC_EAUTH) {
            return rc; /* a refusal, not a broken connection */
        }
        if (rc != UC_OK) {
            goto failed;
        }
        if (atomic_load(&rb->base.distrust) != 0) {
            return UC_EUNAVAILABLE;
        }
    }
    /* After ASK, each command goes after an ASKING of its own: the flag
     * lasts for one command only. */
    static const char *const ask[1] = {"ASKING"};
    static const size_t ask_len[1] = {6};
    const cmd_t asking = {1, (const char **)ask, ask_len};
    int ask_each = tl_asking;

    for (size_t i = 0; i < n; i++) {
        if ((ask_each && append_cmd(c, &asking) != REDIS_OK) ||
            append_cmd(c, &cmds[i]) != REDIS_OK) {
            /* Part of the pipeline may be buffered: the context is spoilt. */
            s->broken = 1;
            return UC_ENOMEM;
        }
    }
    atomic_fetch_add_explicit(&rb->n_commands, n, memory_order_relaxed);
    for (got = 0; got < n; got++) {
        void *v = NULL;

        if (ask_each) {
            /* ASKING answers +OK; whatever it answers, the command's own
             * reply is what counts (without the flag it is a MOVED). */
            if (redisGetReply(c, &v) != REDIS_OK) {
                rc = context_status(c, errno);
                break;
            }
            freeReplyObject(v);
            v = NULL;
        }
        if (redisGetReply(c, &v) != REDIS_OK) {
            int saved = errno;

            rc = context_status(c, saved);
            break;
        }
        rep[got] = v;
        if (rep[got]->type == REDIS_REPLY_ERROR && !s->batch) {
            note_error(rb, s, rep[got]);
        }
    }
    if (rc == UC_OK) {
        return UC_OK;
    }

failed:
    s->broken = 1;
    atomic_fetch_add_explicit(&rb->n_failures, 1, memory_order_relaxed);
    s->server_gone =
        c->err == REDIS_ERR_EOF || (rc == UC_EIO && c->err == REDIS_ERR_IO);
    log_failure(rb, "redis", rc, c->errstr);
    for (size_t i = 0; i < got; i++) {
        freeReplyObject(rep[i]);
        rep[i] = NULL;
    }
    return rc;
}

static void free_replies(redisReply **rep, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rep[i] != NULL) {
            freeReplyObject(rep[i]);
        }
    }
}

/* Runs one command in its own session; *out is the caller's on UC_OK. */
static int run1(rb_t *rb, sess_t *s, int argc, const char **argv,
                const size_t *lens, redisReply **out)
{
    cmd_t cmd = {argc, argv, lens};

    return exec(rb, s, 1, &cmd, out);
}

/* ---- auto-pipelining --------------------------------------------------------
 *
 * Concurrent GETs and SETs to one node share round trips (flat combining):
 * a caller queues its command; when no batch is out it leads one, taking
 * every command queued (up to pipeline_max), writing them in one write on
 * one pooled connection and reading their replies in order; meanwhile
 * later callers queue behind it, and when it is done it hands the lead to
 * the first of them. With many threads on few cores this replaces a write,
 * a read, a pool acquire and a signal mask per call with one of each per
 * batch, and Redis reads many commands per wakeup. A lone caller leads a
 * batch of one at once, which costs what a call on its own connection does.
 *
 * Each caller keeps what is its own: the breaker's say before it queues
 * and its outcome after (a broken batch fails each of its calls), the
 * reading of its reply, redirects included (they land in its own thread's
 * slot). Commands that need a session of their own (ASKING, forced past
 * the breaker, scripts, pipelines) do not come here. A follower's wait is
 * bounded by its leader's, whose every step (acquire, dataset check,
 * write, each reply) has its own bound.
 */

enum { REQ_QUEUED, REQ_DONE, REQ_LEAD };

/* Batches out at once per node and kind. Two (the server reads the next
 * batch while a leader hands out replies) measured no faster on the
 * cluster bench and varied more: more, smaller batches, more wakeups. */
#define COMB_LEADERS 1

static pthread_cond_t *own_cv(void)
{
    static _Thread_local pthread_cond_t cv;
    static _Thread_local int ready;

    if (!ready) {
        if (pthread_cond_init(&cv, NULL) != 0) {
            return NULL;
        }
        ready = 1;
    }
    return &cv;
}

/* The leader's part: one connection, one write, the replies in order. */
static void comb_batch(rb_t *rb, int data, creq_t **reqs, size_t n)
{
    cmd_t cmds[PIPELINE_MAX];
    redisReply *reps[PIPELINE_MAX];
    sess_t s;
    void *conn = NULL;
    int rc;

    memset(&s, 0, sizeof(s));
    s.sigpipe_ignored = rb->base.env->cfg.sigpipe_ignored;
    s.data = data;
    s.batch = 1;
    for (size_t i = 0; i < n; i++) {
        cmds[i] = *reqs[i]->cmd;
        reps[i] = NULL;
    }
    if (n > 1) {
        atomic_fetch_add_explicit(&rb->n_batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&rb->n_batched, n, memory_order_relaxed);
    }
    block_sigpipe(&s);
    rc = uc__pool_acquire(rb->pool, &conn);
    if (rc == UC_OK) {
        s.conn = conn;
        s.c = s.conn->c;
        rc = exec(rb, &s, n, cmds, reps);
        if (s.broken) {
            uc__pool_release(rb->pool, s.conn, 0);
            if (s.server_gone) {
                uc__pool_discard_idle(rb->pool);
            }
        } else {
            uc__pool_release(rb->pool, s.conn, 1);
        }
    }
    restore_sigpipe(&s, rc != UC_OK || s.broken);
    for (size_t i = 0; i < n; i++) {
        reqs[i]->rc = rc;
        reqs[i]->broken = s.broken;
        reqs[i]->rep = rc == UC_OK ? reps[i] : NULL;
    }
}

/*
 * Runs one command through the node's combiner: UC_OK with *out the
 * caller's, or a status. s carries the breaker's hold (from the caller)
 * and comes back marked broken or busy as a session of its own would.
 */
static int comb_run(rb_t *rb, sess_t *s, const cmd_t *cmd, redisReply **out)
{
    comb_t *cb = &rb->comb[s->data ? 1 : 0];
    creq_t me = {cmd, NULL, UC_OK, 0, REQ_QUEUED, own_cv(), NULL};
    creq_t *batch[PIPELINE_MAX];
    size_t n = 0;

    *out = NULL;
    if (me.cv == NULL) {
        return UC_ENOMEM;
    }
    pthread_mutex_lock(&cb->mu);
    if (cb->tail != NULL) {
        cb->tail->next = &me;
    } else {
        cb->head = &me;
    }
    cb->tail = &me;
    if (cb->active < COMB_LEADERS) {
        cb->active++;
        me.state = REQ_LEAD;
    }
    while (me.state == REQ_QUEUED) {
        pthread_cond_wait(me.cv, &cb->mu);
    }
    if (me.state == REQ_LEAD) {
        /* This call is the first queued: take it and those behind it. */
        while (cb->head != NULL && n < rb->pipeline_max) {
            batch[n++] = cb->head;
            cb->head = cb->head->next;
        }
        if (cb->head == NULL) {
            cb->tail = NULL;
        }
        pthread_mutex_unlock(&cb->mu);
        comb_batch(rb, s->data, batch, n);
        pthread_mutex_lock(&cb->mu);
        if (me.rc == UC_ETIMEDOUT) {
            /* The server did not answer within the timeout: those queued
             * meanwhile would wait as long again for the same server. They
             * get the batch's answer now, so no call waits longer than one
             * batch past its own. */
            while (cb->head != NULL) {
                creq_t *q = cb->head;

                cb->head = q->next;
                q->rc = UC_ETIMEDOUT;
                q->broken = 1;
                q->state = REQ_DONE;
                pthread_cond_signal(q->cv);
            }
            cb->tail = NULL;
        }
        /* The next leader first: the server waits for its batch, the
         * callers of this one only for their replies. */
        if (cb->head != NULL) {
            cb->head->state = REQ_LEAD;
            pthread_cond_signal(cb->head->cv);
        } else {
            cb->active--;
        }
        for (size_t i = 0; i < n; i++) {
            batch[i]->state = REQ_DONE;
            if (batch[i] != &me) {
                pthread_cond_signal(batch[i]->cv);
            }
        }
    }
    pthread_mutex_unlock(&cb->mu);
    s->broken = me.broken;
    if (me.rc != UC_OK) {
        s->neutral =
            !me.broken && acquire_outcome(me.rc) == UC__BREAKER_NEUTRAL;
        return me.rc;
    }
    if (me.rep->type == REDIS_REPLY_ERROR) {
        note_error(rb, s, me.rep);
    }
    *out = me.rep;
    return UC_OK;
}

/* Whether a call may go through the combiner rather than a session. */
static int comb_on(const rb_t *rb)
{
    return rb->pipeline_max > 0 && !tl_asking && !tl_force;
}

/*
 * sess_begin() of a call for comb_run(): the breaker's say and, for an
 * entry's command (data), the dataset's trust; no connection, no signal
 * mask (the batch's leader takes those). sess_end() ends it.
 */
static int sess_begin_comb(rb_t *rb, sess_t *s, int data)
{
    int rc;

    memset(s, 0, sizeof(*s));
    s->combined = 1;
    s->data = data;
    if ((rc = uc__breaker_allow(&rb->breaker, &s->probe)) != UC_OK) {
        return rc;
    }
    if (data && atomic_load(&rb->base.distrust) != 0) {
        sess_end(rb, s);
        return UC_EUNAVAILABLE;
    }
    return UC_OK;
}

/* UC_OK for +OK, the error's status for an error reply, else UC_EPROTO. */
static int expect_ok(rb_t *rb, sess_t *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_STATUS) {
        return UC_OK;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        return error_reply_status(r);
    }
    return bad_reply(rb, s);
}

static int expect_integer(rb_t *rb, sess_t *s, const redisReply *r,
                          long long *v)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *v = r->integer;
        return UC_OK;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        return error_reply_status(r);
    }
    return bad_reply(rb, s);
}

/* A malloc()ed, NUL-terminated copy of a bulk string. */
static int copy_bulk(const redisReply *r, char **val, size_t *len)
{
    char *p = NULL;

    if (r->len > UC_VALUE_MAX) {
        return UC_ETOOBIG;
    }
    p = malloc(r->len + 1);
    if (p == NULL) {
        return UC_ENOMEM;
    }
    memcpy(p, r->str, r->len);
    p[r->len] = '\0';
    *val = p;
    *len = r->len;
    return UC_OK;
}

/* Parses a whole decimal string into *out; 0 when it is not one. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        uint64_t d = 0;

        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10u) {
            return 0;
        }
        v = v * 10u + d;
    }
    *out = v;
    return 1;
}

/* ---- single-key operations ------------------------------------------------
 */

/*
 * GET, or GETRANGE key 0 max when a cap is given: then a value longer than
 * max arrives cut to max + 1 bytes and is refused without a bigger copy.
 */
static int get_common(uc__backend_t *b, const char *key, size_t klen,
                      int bounded, size_t max, char **val, size_t *len)
{
    rb_t *rb = rb_of(b);
    char endbuf[24];
    const char *argv[4] = {"GET", key, "0", endbuf};
    size_t lens[4] = {3, klen, 1, 0};
    int argc = 2;
    redisReply *r = NULL;
    sess_t s;
    int rc = UC_OK;

    if (bounded) {
        argv[0] = "GETRANGE";
        lens[0] = 8;
        /* put_dec, not snprintf: this is every cache hit. */
        lens[3] = put_dec(endbuf, max);
        argc = 4;
    }
    /* Bounded reads are the keyspace path, which trust guards; raw GETs
     * are an operator's and go through whatever the dataset. */
    if (comb_on(rb)) {
        cmd_t cmd = {argc, argv, lens};

        if ((rc = sess_begin_comb(rb, &s, bounded)) != UC_OK) {
            return rc;
        }
        rc = comb_run(rb, &s, &cmd, &r);
    } else {
        rc = bounded ? sess_begin_data(rb, &s) : sess_begin(rb, &s);
        if (rc != UC_OK) {
            return rc;
        }
        rc = run1(rb, &s, argc, argv, lens, &r);
    }
    if (rc == UC_OK) {
        if (r->type == REDIS_REPLY_NIL ||
            (bounded && r->type == REDIS_REPLY_STRING && r->len == 0)) {
            rc = UC_MISS;
        } else if (r->type == REDIS_REPLY_STRING) {
            rc = bounded && r->len > max ? UC_ETOOBIG : copy_bulk(r, val, len);
        } else if (r->type == REDIS_REPLY_ERROR) {
            /* A key of another type where an entry should be is a value
             * that is not one: the caller deletes it. */
            rc = bounded && starts_with(r->str, r->len, "WRONGTYPE")
                     ? UC_ECORRUPT
                     : error_reply_status(r);
        } else {
            rc = bad_reply(rb, &s);
        }
        freeReplyObject(r);
    }
    sess_end(rb, &s);
    return rc;
}

static int r_get(uc__backend_t *b, const char *key, size_t klen, char **val,
                 size_t *len)
{
    return get_common(b, key, klen, 0, 0, val, len);
}

static int r_get_max(uc__backend_t *b, const char *key, size_t klen, size_t max,
                     char **val, size_t *len)
{
    return get_common(b, key, klen, 1, max, val, len);
}

/*
 * GETRANGE key 0 max over n keys, pipelined in one data session (so one
 * round trip, and refused as get_max is on a distrusted dataset). Each
 * reply is judged as get_common() judges a bounded one.
 */
static int r_mget_max(uc__backend_t *b, size_t n, const char *const *keys,
                      const size_t *klens, size_t max, uc_value_t *out)
{
    rb_t *rb = rb_of(b);
    char endbuf[24];
    size_t endlen = put_dec(endbuf, max);
    cmd_t *cmds = NULL;
    const char **argv = NULL;
    size_t *lens = NULL;
    redisReply **rep = NULL;
    uc_value_t *tmp = NULL;
    sess_t s;
    int rc = UC_OK;

    if (n == 0) {
        return UC_OK;
    }
    if (n > SIZE_MAX / (4 * (sizeof(*argv) + sizeof(*lens)) + sizeof(*cmds) +
                        sizeof(*rep) + sizeof(*tmp))) {
        return UC_EINVAL;
    }
    cmds = calloc(n, sizeof(*cmds));
    argv = malloc(4 * n * sizeof(*argv));
    lens = malloc(4 * n * sizeof(*lens));
    rep = calloc(n, sizeof(*rep));
    tmp = calloc(n, sizeof(*tmp));
    if (cmds == NULL || argv == NULL || lens == NULL || rep == NULL ||
        tmp == NULL) {
        rc = UC_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        const char **a = argv + 4 * i;
        size_t *l = lens + 4 * i;

        a[0] = "GETRANGE";
        l[0] = 8;
        a[1] = keys[i];
        l[1] = klens[i];
        a[2] = "0";
        l[2] = 1;
        a[3] = endbuf;
        l[3] = endlen;
        cmds[i] = (cmd_t){4, a, l};
    }
    rc = sess_begin_data(rb, &s);
    if (rc != UC_OK) {
        goto cleanup;
    }
    rc = exec(rb, &s, n, cmds, rep);
    for (size_t i = 0; rc == UC_OK && i < n; i++) {
        const redisReply *r = rep[i];
        uc_value_t *v = &tmp[i];

        if (r->type == REDIS_REPLY_NIL ||
            (r->type == REDIS_REPLY_STRING && r->len == 0)) {
            v->status = UC_MISS;
        } else if (r->type == REDIS_REPLY_STRING) {
            v->status =
                r->len > max ? UC_ETOOBIG : copy_bulk(r, &v->data, &v->len);
            if (v->status == UC_ENOMEM) {
                rc = UC_ENOMEM;
            }
        } else if (r->type == REDIS_REPLY_ERROR) {
            if (starts_with(r->str, r->len, "WRONGTYPE")) {
                v->status = UC_ECORRUPT;
            } else {
                rc = error_reply_status(r);
            }
        } else {
            rc = bad_reply(rb, &s);
        }
    }
    free_replies(rep, n);
    sess_end(rb, &s);
    if (rc == UC_OK) {
        memcpy(out, tmp, n * sizeof(*tmp));
    } else {
        for (size_t i = 0; i < n; i++) {
            free(tmp[i].data);
        }
    }

cleanup:
    free(cmds);
    free(argv);
    free(lens);
    free(rep);
    free(tmp);
    return rc;
}

/* Fills a SET argv (5 slots) for key/val with an optional PX; returns argc. */
static int set_argv(const char **argv, size_t *lens, char *ttlbuf,
                    size_t ttlcap, const char *key, size_t klen,
                    const char *val, size_t len, uint64_t ttl_ms)
{
    argv[0] = "SET";
    lens[0] = 3;
    argv[1] = key;
    lens[1] = klen;
    argv[2] = val;
    lens[2] = len;
    if (ttl_ms == 0) {
        return 3;
    }
    snprintf(ttlbuf, ttlcap, "%llu", (unsigned long long)ttl_ms);
    argv[3] = "PX";
    lens[3] = 2;
    argv[4] = ttlbuf;
    lens[4] = strlen(ttlbuf);
    return 5;
}

enum { SET_DATA = 1 << 0, SET_NX = 1 << 1 };

/*
 * SET key val [PX ttl] [NX]. SET_DATA: an entry's write, refused on a
 * distrusted dataset; SET_NX: only if absent, UC_ESTALE when it was not.
 */
static int set_common(uc__backend_t *b, const char *key, size_t klen,
                      const char *val, size_t len, uint64_t ttl_ms,
                      unsigned flags)
{
    rb_t *rb = rb_of(b);
    const char *argv[6];
    size_t lens[6];
    char ttlbuf[24];
    int argc = 0;
    redisReply *r = NULL;
    sess_t s;
    int rc = UC_OK;

    if (len > UC_VALUE_MAX) {
        return UC_ETOOBIG;
    }
    argc = set_argv(argv, lens, ttlbuf, sizeof(ttlbuf), key, klen, val, len,
                    ttl_ms);
    if ((flags & SET_NX) != 0) {
        argv[argc] = "NX";
        lens[argc++] = 2;
    }
    if (comb_on(rb)) {
        cmd_t cmd = {argc, argv, lens};

        if ((rc = sess_begin_comb(rb, &s, (flags & SET_DATA) != 0)) != UC_OK) {
            return rc;
        }
        rc = comb_run(rb, &s, &cmd, &r);
    } else {
        rc = (flags & SET_DATA) != 0 ? sess_begin_data(rb, &s)
                                     : sess_begin(rb, &s);
        if (rc != UC_OK) {
            return rc;
        }
        rc = run1(rb, &s, argc, argv, lens, &r);
    }
    if (rc == UC_OK) {
        /* NX answers nil when the key exists. */
        rc = r->type == REDIS_REPLY_NIL ? UC_ESTALE : expect_ok(rb, &s, r);
        freeReplyObject(r);
    }
    sess_end(rb, &s);
    return rc;
}

static int r_set(uc__backend_t *b, const char *key, size_t klen,
                 const char *val, size_t len, uint64_t ttl_ms)
{
    return set_common(b, key, klen, val, len, ttl_ms, 0);
}

static int r_put(uc__backend_t *b, const char *key, size_t klen,
                 const char *val, size_t len, uint64_t ttl_ms)
{
    return set_common(b, key, klen, val, len, ttl_ms, SET_DATA);
}

/* Runs a one-key command answered by an integer. */
static int int_command(rb_t *rb, const char *cmd, const char *key, size_t klen,
                       long long *v)
{
    const char *argv[2] = {cmd, key};
    size_t lens[2] = {strlen(cmd), klen};
    redisReply *r = NULL;
    sess_t s;
    int rc = sess_begin(rb, &s);

    if (rc != UC_OK) {
        return rc;
    }
    rc = run1(rb, &s, 2, argv, lens, &r);
    if (rc == UC_OK) {
        rc = expect_integer(rb, &s, r, v);
        freeReplyObject(r);
    }
    sess_end(rb, &s);
    return rc;
}

static int r_del(uc__backend_t *b, const char *key, size_t klen, int *existed)
{
    long long n = 0;
    /* UNLINK frees a large value off the server's main thread. */
    int rc = int_command(rb_of(b), "UNLINK", key, klen, &n);

    if (rc == UC_OK && existed != NULL) {
        *existed = n > 0;
    }
    return rc;
}

static int r_exists(uc__backend_t *b, const char *key, size_t klen)
{
    long long n = 0;
    int rc = int_command(rb_of(b), "EXISTS", key, klen, &n);

    if (rc == UC_OK && n == 0) {
        rc = UC_MISS;
    }
    return rc;
}

static int r_ttl(uc__backend_t *b, const char *key, size_t klen,
                 int64_t *ttl_ms)
{
    long long n = 0;
    int rc = int_command(rb_of(b), "PTTL", key, klen, &n);

    if (rc != UC_OK) {
        return rc;
    }
    if (n == -2) {
        return UC_MISS;
    }
    *ttl_ms = n < 0 ? -1 : (int64_t)n;
    return UC_OK;
}

static int r_ping(uc__backend_t *b)
{
    rb_t *rb = rb_of(b);
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *r = NULL;
    sess_t s;
    int rc = sess_begin(rb, &s);

    if (rc != UC_OK) {
        return rc;
    }
    rc = run1(rb, &s, 1, argv, lens, &r);
    if (rc == UC_OK) {
        rc = expect_ok(rb, &s, r);
        freeReplyObject(r);
    }
    sess_end(rb, &s);
    return rc;
}

/* ---- multi-key operations -------------------------------------------------
 */

/*
 * argv/lens for `cmd k1 .. kn` in one allocation (freed with free(*argv)).
 * Returns UC_OK, UC_EINVAL when n does not fit an int, or UC_ENOMEM.
 */
static int keys_argv(const char *cmd, size_t n, const char *const *keys,
                     const size_t *klens, const char ***argv, size_t **lens)
{
    const char **a = NULL;
    size_t *l = NULL;

    if (n >= (size_t)INT_MAX - 1) {
        return UC_EINVAL;
    }
    a = malloc((n + 1) * (sizeof(*a) + sizeof(*l)));
    if (a == NULL) {
        return UC_ENOMEM;
    }
    l = (size_t *)(void *)(a + n + 1);
    a[0] = cmd;
    l[0] = strlen(cmd);
    for (size_t i = 0; i < n; i++) {
        a[i + 1] = keys[i];
        l[i + 1] = klens[i];
    }
    *argv = a;
    *lens = l;
    return UC_OK;
}

/* Called for element i of an MGET reply: a nil or a string. */
typedef int (*mget_elem_fn)(void *arg, size_t i, const redisReply *e);

/*
 * Runs MGET over n keys in one session and hands each element to `elem`,
 * stopping at the first status it returns other than UC_OK. An element that
 * is neither nil nor a string breaks the session: MGET never answers so.
 */
static int mget_pipelined(rb_t *rb, size_t n, const char *const *keys,
                          const size_t *klens, mget_elem_fn elem, void *arg);

static int mget_each(rb_t *rb, size_t n, const char *const *keys,
                     const size_t *klens, mget_elem_fn elem, void *arg)
{
    const char **argv = NULL;
    size_t *lens = NULL;
    redisReply *r = NULL;
    sess_t s;
    int rc = UC_OK;

    if (atomic_load_explicit(&rb->cluster, memory_order_relaxed)) {
        return mget_pipelined(rb, n, keys, klens, elem, arg);
    }
    rc = keys_argv("MGET", n, keys, klens, &argv, &lens);
    if (rc != UC_OK) {
        return rc;
    }
    rc = sess_begin(rb, &s);
    if (rc != UC_OK) {
        free(argv);
        return rc;
    }
    /* Its reply holds n elements, which may be more than a reply may
     * hold by default: exactly what was asked for is allowed. */
    if (n >= UC__REPLY_ELEMENTS_DEFAULT) {
        s.conn->guard.limit = n;
    }
    rc = run1(rb, &s, (int)n + 1, argv, lens, &r);
    if (s.conn != NULL) {
        s.conn->guard.limit = UC__REPLY_ELEMENTS_DEFAULT;
    }
    free(argv);
    if (rc == UC_OK) {
        if (r->type == REDIS_REPLY_ERROR) {
            rc = error_reply_status(r);
        } else if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
            rc = bad_reply(rb, &s);
        }
    }
    for (size_t i = 0; rc == UC_OK && i < n; i++) {
        const redisReply *e = r->element[i];

        if (e->type == REDIS_REPLY_NIL || e->type == REDIS_REPLY_STRING) {
            rc = elem(arg, i, e);
        } else {
            rc = bad_reply(rb, &s);
        }
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    sess_end(rb, &s);
    return rc;
}

/*
 * mget_each() on a cluster node, where MGET needs all its keys in one slot:
 * one GET per key, all in one pipeline, so still one round trip.
 */
static int mget_pipelined(rb_t *rb, size_t n, const char *const *keys,
                          const size_t *klens, mget_elem_fn elem, void *arg)
{
    cmd_t *cmds = NULL;
    const char **argv = NULL;
    size_t *lens = NULL;
    redisReply **rep = NULL;
    sess_t s;
    int rc = UC_OK;

    if (n > SIZE_MAX / (2 * (sizeof(*argv) + sizeof(*lens)) + sizeof(*cmds) +
                        sizeof(*rep))) {
        return UC_EINVAL;
    }
    cmds = calloc(n, sizeof(*cmds));
    argv = malloc(2 * n * sizeof(*argv));
    lens = malloc(2 * n * sizeof(*lens));
    rep = calloc(n, sizeof(*rep));
    if (cmds == NULL || argv == NULL || lens == NULL || rep == NULL) {
        rc = UC_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        argv[2 * i] = "GET";
        lens[2 * i] = 3;
        argv[2 * i + 1] = keys[i];
        lens[2 * i + 1] = klens[i];
        cmds[i] = (cmd_t){2, argv + 2 * i, lens + 2 * i};
    }
    rc = sess_begin(rb, &s);
    if (rc != UC_OK) {
        goto cleanup;
    }
    rc = exec(rb, &s, n, cmds, rep);
    for (size_t i = 0; rc == UC_OK && i < n; i++) {
        const redisReply *e = rep[i];

        if (e->type == REDIS_REPLY_NIL || e->type == REDIS_REPLY_STRING) {
            rc = elem(arg, i, e);
        } else if (e->type == REDIS_REPLY_ERROR) {
            rc = error_reply_status(e);
        } else {
            rc = bad_reply(rb, &s);
        }
    }
    free_replies(rep, n);
    sess_end(rb, &s);

cleanup:
    free(cmds);
    free(argv);
    free(lens);
    free(rep);
    return rc;
}

static int mget_value(void *arg, size_t i, const redisReply *e)
{
    uc_value_t *v = (uc_value_t *)arg + i;

    if (e->type == REDIS_REPLY_NIL) {
        v->status = UC_MISS;
        return UC_OK;
    }
    /* A value too large is that key's answer; out of memory ends the call. */
    v->status = copy_bulk(e, &v->data, &v->len);
    return v->status == UC_ENOMEM ? UC_ENOMEM : UC_OK;
}

static int r_mget(uc__backend_t *b, size_t n, const char *const *keys,
                  const size_t *klens, uc_value_t *out)
{
    uc_value_t *tmp;
    int rc;

    if (n == 0) {
        return UC_OK;
    }
    /* Answers go to a scratch array so that `out` is untouched on failure. */
    tmp = calloc(n, sizeof(*tmp));
    if (tmp == NULL) {
        return UC_ENOMEM;
    }
    rc = mget_each(rb_of(b), n, keys, klens, mget_value, tmp);
    if (rc != UC_OK) {
        for (size_t i = 0; i < n; i++) {
            free(tmp[i].data);
        }
        free(tmp);
        return rc;
    }
    memcpy(out, tmp, n * sizeof(*tmp));
    free(tmp);
    return UC_OK;
}

static int r_mset(uc__backend_t *b, size_t n, const char *const *keys,
                  const size_t *klens, const char *const *vals,
                  const size_t *vlens, uint64_t ttl_ms)
{
    rb_t *rb = rb_of(b);
    const char **argv = NULL;
    size_t *lens = NULL;
    cmd_t *cmds = NULL;
    redisReply **rep = NULL;
    char ttlbuf[24];
    sess_t s;
    int rc = UC_OK;

    if (n == 0) {
        return UC_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (vlens[i] > UC_VALUE_MAX) {
            return UC_ETOOBIG;
        }
    }
    if (n > SIZE_MAX / (5 * (sizeof(*argv) + sizeof(*lens)) + sizeof(*cmds) +
                        sizeof(*rep))) {
        return UC_EINVAL;
    }
    argv = malloc(5 * n * sizeof(*argv));
    lens = malloc(5 * n * sizeof(*lens));
    cmds = malloc(n * sizeof(*cmds));
    rep = malloc(n * sizeof(*rep));
    if (argv == NULL || lens == NULL || cmds == NULL || rep == NULL) {
        rc = UC_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        cmds[i].argv = argv + 5 * i;
        cmds[i].lens = lens + 5 * i;
        cmds[i].argc =
            set_argv(argv + 5 * i, lens + 5 * i, ttlbuf, sizeof(ttlbuf),
                     keys[i], klens[i], vals[i], vlens[i], ttl_ms);
    }
    rc = sess_begin(rb, &s);
    if (rc != UC_OK) {
        goto cleanup;
    }
    /* One write and one read pass: a single round trip for all n. */
    rc = exec(rb, &s, n, cmds, rep);
    if (rc == UC_OK) {
        for (size_t i = 0; i < n && rc == UC_OK; i++) {
            rc = expect_ok(rb, &s, rep[i]);
        }
        free_replies(rep, n);
    }
    sess_end(rb, &s);

cleanup:
    free(argv);
    free(lens);
    free(cmds);
    free(rep);
    return rc;
}

/* ---- SCAN-based operations ------------------------------------------------
 */

/* Collects accepted keys of one SCAN page and UNLINKs them in batches. */
typedef struct {
    rb_t *rb;
    sess_t *s;
    int unlink;
    const char **argv; /* "UNLINK" + up to scan_batch keys */
    size_t *lens;
    size_t n;
    uint64_t done; /* keys removed (unlink) or counted */
} batch_t;

/*
 * On a cluster node the keys of one page hash to many slots, and UNLINK of
 * several keys needs them in one: one UNLINK per key, in one pipeline. A
 * key whose slot moved away meanwhile answers a redirect: it is no longer
 * this node's, and the walk over its new node finds it.
 */
static int batch_flush_single(batch_t *bt)
{
    cmd_t cmds[1];
    redisReply *r = NULL;
    int rc = UC_OK;
    int first = UC_OK; /* the first error answer */
    size_t n = bt->n;

    bt->n = 0;
    for (size_t i = 0; i < n && rc == UC_OK; i++) {
        const char *argv[2] = {"UNLINK", bt->argv[i + 1]};
        size_t lens[2] = {6, bt->lens[i + 1]};

        /* Appended one by one; the replies are read after the last. */
        cmds[0] = (cmd_t){2, argv, lens};
        if (append_cmd(bt->s->c, &cmds[0]) != REDIS_OK) {
            bt->s->broken = 1;
            rc = UC_ENOMEM;
        }
    }
    atomic_fetch_add_explicit(&bt->rb->n_commands, n, memory_order_relaxed);
    /* Every reply is read, whatever came before, so the connection stays
     * in step; only a broken connection stops the loop. */
    for (size_t i = 0; i < n && rc == UC_OK; i++) {
        void *v = NULL;

        if (redisGetReply(bt->s->c, &v) != REDIS_OK) {
            rc = context_status(bt->s->c, errno);
            bt->s->broken = 1;
            bt->s->server_gone = bt->s->c->err == REDIS_ERR_EOF;
            log_failure(bt->rb, "redis", rc, bt->s->c->errstr);
            break;
        }
        r = v;
        if (r->type == REDIS_REPLY_INTEGER) {
            bt->done += r->integer > 0 ? (uint64_t)r->integer : 0;
        } else if (r->type == REDIS_REPLY_ERROR) {
            if (first == UC_OK && cluster_error(r) == UC__REDIR_NONE) {
                first = error_reply_status(r);
            }
        } else if (first == UC_OK) {
            first = UC_EPROTO;
        }
        freeReplyObject(r);
    }
    if (rc == UC_OK && first == UC_EPROTO) {
        rc = bad_reply(bt->rb, bt->s);
    }
    return rc != UC_OK ? rc : first;
}

static int batch_flush(batch_t *bt)
{
    redisReply *r = NULL;
    long long removed = 0;
    int rc = UC_OK;

    if (bt->n == 0) {
        return UC_OK;
    }
    if (atomic_load_explicit(&bt->rb->cluster, memory_order_relaxed)) {
        return batch_flush_single(bt);
    }
    rc = run1(bt->rb, bt->s, (int)bt->n + 1, bt->argv, bt->lens, &r);
    bt->n = 0;
    if (rc != UC_OK) {
        return rc;
    }
    rc = expect_integer(bt->rb, bt->s, r, &removed);
    freeReplyObject(r);
    if (rc == UC_OK && removed > 0) {
        bt->done += (uint64_t)removed;
    }
    return rc;
}

static int batch_add(batch_t *bt, const char *key, size_t klen)
{
    if (!bt->unlink) {
        bt->done++;
        return UC_OK;
    }
    bt->argv[bt->n + 1] = key;
    bt->lens[bt->n + 1] = klen;
    bt->n++;
    return bt->n >= bt->rb->scan_batch ? batch_flush(bt) : UC_OK;
}

/*
 * How it works: SCAN walks the keyspace with a cursor, COUNT scan_batch
 * keys of work per call, so the server is never blocked for long; MATCH
 * filters on the server. Each page's keys go through `filter` and, when
 * deleting, into UNLINK batches of at most scan_batch keys, sent before the
 * page is freed. A key added or removed during the walk may or may not be
 * seen, as SCAN guarantees only keys present for the whole walk.
 */
static int scan_walk(rb_t *rb, const char *glob, uc__key_filter_fn filter,
                     void *farg, int unlink, uint64_t *done)
{
    char cursor[CURSOR_MAX + 1] = "0";
    char count[24];
    const char *argv[6] = {"SCAN", cursor, "MATCH", glob, "COUNT", count};
    size_t lens[6] = {4, 1, 5, strlen(glob), 5, 0};
    batch_t bt;
    sess_t s;
    int rc = UC_OK;

    memset(&bt, 0, sizeof(bt));
    snprintf(count, sizeof(count), "%zu", rb->scan_batch);
    lens[5] = strlen(count);
    if (unlink) {
        bt.argv = malloc((rb->scan_batch + 1) * sizeof(*bt.argv));
        bt.lens = malloc((rb->scan_batch + 1) * sizeof(*bt.lens));
        if (bt.argv == NULL || bt.lens == NULL) {
            rc = UC_ENOMEM;
            goto cleanup;
        }
        bt.argv[0] = "UNLINK";
        bt.lens[0] = 6;
    }
    rc = sess_begin(rb, &s);
    if (rc != UC_OK) {
        goto cleanup;
    }
    bt.rb = rb;
    bt.s = &s;
    bt.unlink = unlink;
    do {
        redisReply *r = NULL;
        const redisReply *cur = NULL;
        const redisReply *page = NULL;

        rc = run1(rb, &s, 6, argv, lens, &r);
        if (rc != UC_OK) {
            break;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            rc = error_reply_status(r);
            freeReplyObject(r);
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len == 0 || r->element[0]->len > CURSOR_MAX ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            rc = bad_reply(rb, &s);
            freeReplyObject(r);
            break;
        }
        cur = r->element[0];
        page = r->element[1];
        for (size_t i = 0; i < page->elements && rc == UC_OK; i++) {
            const redisReply *k = page->element[i];

            if (k->type != REDIS_REPLY_STRING) {
                rc = bad_reply(rb, &s);
            } else if (filter == NULL || filter(farg, k->str, k->len)) {
                rc = batch_add(&bt, k->str, k->len);
            }
        }
        if (rc == UC_OK) {
            rc = batch_flush(&bt);
        }
        memcpy(cursor, cur->str, cur->len);
        cursor[cur->len] = '\0';
        lens[1] = cur->len;
        freeReplyObject(r);
    } while (rc == UC_OK && strcmp(cursor, "0") != 0);
    sess_end(rb, &s);
    if (rc == UC_OK) {
        *done = bt.done;
    }

cleanup:
    free(bt.argv);
    free(bt.lens);
    return rc;
}

static int r_delete_pattern(uc__backend_t *b, const char *glob,
                            uc__key_filter_fn filter, void *farg,
                            size_t *removed)
{
    uint64_t n = 0;
    int rc = scan_walk(rb_of(b), glob, filter, farg, 1, &n);

    if (rc == UC_OK && removed != NULL) {
        *removed = (size_t)n;
    }
    return rc;
}

static int r_count_pattern(uc__backend_t *b, const char *glob,
                           uc__key_filter_fn filter, void *farg,
                           uint64_t *count)
{
    uint64_t n = 0;
    int rc = scan_walk(rb_of(b), glob, filter, farg, 0, &n);

    if (rc == UC_OK && count != NULL) {
        *count = n;
    }
    return rc;
}

/* ---- generations ----------------------------------------------------------
 */

/* Whether an error reply is Redis saying it does not know the script. */
static int is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR &&
           starts_with(r->str, r->len, "NOSCRIPT");
}

/*
 * Reads the script's answer: 1 stored, 0 the key held something else. A SCRIPT
 * LOAD answer (when sent first) gives the SHA1 to use from then on.
 */
static int script_answer(rb_t *rb, sess_t *s, const redisReply *r)
{
    long long v = 0;
    int rc = expect_integer(rb, s, r, &v);

    if (rc != UC_OK) {
        return rc;
    }
    return v == 1 ? UC_OK : UC_ESTALE;
}

static void remember_sha(rb_t *rb, const redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        return;
    }
    pthread_mutex_lock(&rb->sha_mu);
    memcpy(rb->sha, r->str, 40);
    rb->sha[40] = '\0';
    pthread_mutex_unlock(&rb->sha_mu);
}

static int r_cas(uc__backend_t *b, const char *key, size_t klen,
                 const char *expect, size_t elen, const char *val, size_t len,
                 uint64_t ttl_ms)
{
    rb_t *rb = rb_of(b);
    /* EVAL[SHA] script 1 key expect val ttl */
    const char *argv[7];
    size_t lens[7];
    char ttlbuf[24], sha[41];
    const char *load[3] = {"SCRIPT", "LOAD", cas_lua};
    size_t load_len[3] = {6, 4, sizeof(cas_lua) - 1};
    cmd_t cmds[2];
    redisReply *rep[2] = {NULL, NULL};
    sess_t s;
    int rc = UC_OK;

    if (len > UC_VALUE_MAX) {
        return UC_ETOOBIG;
    }
    snprintf(ttlbuf, sizeof(ttlbuf), "%llu", (unsigned long long)ttl_ms);
    argv[2] = "1";
    lens[2] = 1;
    argv[3] = key;
    lens[3] = klen;
    argv[4] = expect;
    lens[4] = elen;
    argv[5] = val;
    lens[5] = len;
    argv[6] = ttlbuf;
    lens[6] = strlen(ttlbuf);
    pthread_mutex_lock(&rb->sha_mu);
    memcpy(sha, rb->sha, sizeof(sha));
    pthread_mutex_unlock(&rb->sha_mu);

    rc = sess_begin_data(rb, &s);
    if (rc != UC_OK) {
        return rc;
    }
    if (sha[0] != '\0') {
        argv[0] = "EVALSHA";
        lens[0] = 7;
        argv[1] = sha;
        lens[1] = 40;
        rc = run1(rb, &s, 7, argv, lens, &rep[0]);
        if (rc == UC_OK && !is_noscript(rep[0])) {
            rc = script_answer(rb, &s, rep[0]);
            goto end;
        }
        free_replies(rep, 1);
        rep[0] = NULL;
        if (rc != UC_OK) {
            goto end;
        }
    }
    /*
     * First use, or the server lost its script cache (restart, SCRIPT
     * FLUSH): load it and run it with EVAL in one round trip.
     */
    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = cas_lua;
    lens[1] = sizeof(cas_lua) - 1;
    cmds[0] = (cmd_t){3, load, load_len};
    cmds[1] = (cmd_t){7, argv, lens};
    rc = exec(rb, &s, 2, cmds, rep);
    if (rc == UC_OK) {
        remember_sha(rb, rep[0]);
        rc = script_answer(rb, &s, rep[1]);
    }

end:
    free_replies(rep, 2);
    sess_end(rb, &s);
    return rc;
}

static int r_add(uc__backend_t *b, const char *key, size_t klen,
                 const char *val, size_t len, uint64_t ttl_ms)
{
    return set_common(b, key, klen, val, len, ttl_ms, SET_DATA | SET_NX);
}

/* ---- dataset trust ----------------------------------------------------------
 *
 * A marker key under the prefix holds the run_id of the server whose
 * dataset this cache has been invalidating. A server that restarted (empty,
 * or restored from RDB/AOF with entries whose invalidations it never saw),
 * a replica promoted in its place, or a FLUSHALL, leaves a marker that is
 * missing or names another run_id. Every new connection compares the two
 * in its first pipeline (exec), and a data command's reply is used only
 * after that, so no read reaches a new dataset unchecked; the
 * worker also checks periodically (FLUSHALL keeps the connections). While
 * distrusted, data commands answer UC_EUNAVAILABLE (the core then reads the
 * loader) until the core has dropped the keyspaces' keys and called adopt;
 * raw key commands (an operator's) are not held back. Where
 * INFO is not allowed (a narrow ACL), only a missing marker is seen.
 */

/* A dataset was found or made trusted (see uc__backend_t.trusted_once). */
static void mark_trusted(rb_t *rb)
{
    atomic_store(&rb->checked, 1);
    atomic_store(&rb->base.trusted_once, 1);
    if (rb->parent != NULL) {
        atomic_store(&rb->parent->trusted_once, 1);
    }
}

/* The router above sees the node's distrust as its own (the core looks
 * at the router only). */
static void raise_parent(rb_t *rb)
{
    if (rb->parent != NULL) {
        atomic_store(&rb->parent->distrust, 1);
        atomic_fetch_add(&rb->parent->distrust_epoch, 1);
    }
}

static void raise_distrust(rb_t *rb, const char *run_id)
{
    int other;

    pthread_mutex_lock(&rb->id_mu);
    other = strcmp(rb->raised_by, run_id) != 0;
    snprintf(rb->raised_by, sizeof(rb->raised_by), "%s", run_id);
    pthread_mutex_unlock(&rb->id_mu);
    /* A new epoch for each server seen: a drop done for one does not
     * count for the next (the core re-checks the epoch before adopting). */
    if (atomic_exchange(&rb->base.distrust, 1) == 0 || other) {
        atomic_fetch_add(&rb->base.distrust_epoch, 1);
        atomic_fetch_add_explicit(&rb->n_distrusts, 1, memory_order_relaxed);
        raise_parent(rb);
    }
}

/* Copies the run_id field of an INFO server reply; "" when absent. */
static void parse_run_id(const redisReply *r, char *out, size_t cap)
{
    const char *p;
    size_t n = 0;

    out[0] = '\0';
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        return;
    }
    p = strstr(r->str, "run_id:");
    if (p == NULL) {
        return;
    }
    p += 7;
    while (n + 1 < cap &&
           ((p[n] >= '0' && p[n] <= '9') || (p[n] >= 'a' && p[n] <= 'f'))) {
        out[n] = p[n];
        n++;
    }
    out[n] = '\0';
}

/*
 * Compares an INFO server reply with the marker's GET reply: *match is set
 * (nonzero: the marker names this server) and run_id gets the server's (""
 * when INFO was refused). Returns 0, or -1 when the server is busy
 * (-LOADING and the like): then nothing can be concluded; -2 when the ACL
 * refuses the marker (the cache then fails as any refused call). Any other
 * answer that is not this server's run_id (a marker of another type included)
 * is a mismatch.
 */
static int compare_identity(const redisReply *info, const redisReply *m,
                            char *run_id, size_t cap, int *match)
{
    parse_run_id(info, run_id, cap);
    /* A busy server, or a cluster that cannot serve the marker's slot here
     * now (CLUSTERDOWN during a failover, MOVED after its slot moved),
     * says nothing of the dataset. */
    if (m == NULL ||
        (m->type == REDIS_REPLY_ERROR &&
         (error_reply_busy(m) || cluster_error(m) != UC__REDIR_NONE))) {
        return -1;
    }
    if (m->type == REDIS_REPLY_ERROR && error_reply_status(m) == UC_EAUTH) {
        return -2; /* the marker is out of our reach: the cache fails */
    }
    if (m->type == REDIS_REPLY_STRING) {
        *match = run_id[0] == '\0' || (strlen(run_id) == m->len &&
                                       memcmp(run_id, m->str, m->len) == 0);
    } else {
        *match = 0;
    }
    return 0;
}

/*
 * Asks the server for its identity on the session's connection (see
 * compare_identity). A busy server (-LOADING and the like) makes the session
 * a breaker failure, as it does for data calls: the worker's periodic check
 * must not count as a success that resets the failures of the calls around
 * it while the server cannot serve.
 */
static int read_identity(rb_t *rb, sess_t *s, char *run_id, size_t cap,
                         int *match)
{
    redisContext *c = s->c;
    const char *info[2] = {"INFO", "server"};
    size_t info_len[2] = {4, 6};
    char marker[sizeof(rb->marker)];
    const char *get[2] = {"GET", marker};
    size_t get_len[2] = {3, 0};
    void *v[2] = {NULL, NULL};
    int rc = UC_OK;

    pthread_mutex_lock(&rb->id_mu);
    memcpy(marker, rb->marker, sizeof(marker));
    get_len[1] = rb->marker_len;
    pthread_mutex_unlock(&rb->id_mu);

    if (redisAppendCommandArgv(c, 2, info, info_len) != REDIS_OK ||
        redisAppendCommandArgv(c, 2, get, get_len) != REDIS_OK) {
        return UC_ENOMEM;
    }
    for (int i = 0; i < 2; i++) {
        if (redisGetReply(c, &v[i]) != REDIS_OK) {
            rc = context_status(c, errno);
            break;
        }
    }
    if (rc == UC_OK) {
        int cmp = compare_identity(v[0], v[1], run_id, cap, match);
        rc = cmp == 0 ? UC_OK : cmp == -2 ? UC_EAUTH : UC_EUNAVAILABLE;
        for (int i = 0; i < 2; i++) {
            const redisReply *r = v[i];

            if (r->type == REDIS_REPLY_ERROR && error_reply_busy(r)) {
                s->server_busy = 1;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        if (v[i] != NULL) {
            freeReplyObject(v[i]);
        }
    }
    return rc;
}

/* The once-per-connection check of exec(): UC_OK (the verdict is in the
 * distrust flag) or the connection's error. */
static int check_identity(rb_t *rb, sess_t *s)
{
    char run_id[RUN_ID_MAX];
    int match = 0;
    int rc = read_identity(rb, s, run_id, sizeof(run_id), &match);

    if (rc == UC_EUNAVAILABLE) {
        return UC_OK; /* busy: checked again on the next use */
    }
    if (rc != UC_OK) {
        return rc;
    }
    s->conn->verified = atomic_load(&rb->verify_gen);
    if (!match) {
        raise_distrust(rb, run_id);
    } else {
        mark_trusted(rb);
    }
    return UC_OK;
}

static int r_verify(uc__backend_t *b)
{
    rb_t *rb = rb_of(b);
    char run_id[RUN_ID_MAX];
    int match = 0;
    sess_t s;
    int rc;

    if (atomic_load(&rb->checked) == 0) {
        /* Nothing trusted yet: the first entry command checks. */
        return UC_OK;
    }
    rc = sess_begin(rb, &s);
    if (rc != UC_OK) {
        return rc;
    }
    rc = read_identity(rb, &s, run_id, sizeof(run_id), &match);
    if (rc == UC_OK && !match) {
        raise_distrust(rb, run_id);
    } else if (rc != UC_OK && rc != UC_EUNAVAILABLE) {
        s.broken = 1;
    }
    sess_end(rb, &s);
    return rc;
}

static int r_adopt(uc__backend_t *b)
{
    rb_t *rb = rb_of(b);
    char run_id[RUN_ID_MAX], raised[RUN_ID_MAX];
    char marker[sizeof(rb->marker)];
    int match = 0;
    const char *set[3] = {"SET", marker, run_id};
    size_t set_len[3] = {3, 0, 0};
    redisReply *r = NULL;
    sess_t s;
    int rc = sess_begin(rb, &s);

    if (rc != UC_OK) {
        return rc;
    }
    rc = read_identity(rb, &s, run_id, sizeof(run_id), &match);
    if (rc != UC_OK) {
        s.broken = rc != UC_EUNAVAILABLE;
        goto end;
    }
    pthread_mutex_lock(&rb->id_mu);
    memcpy(raised, rb->raised_by, sizeof(raised));
    memcpy(marker, rb->marker, sizeof(marker));
    set_len[1] = rb->marker_len;
    pthread_mutex_unlock(&rb->id_mu);
    if (run_id[0] != '\0' && raised[0] != '\0' && strcmp(run_id, raised) != 0) {
        /* Another server took over while the prefix was being dropped:
         * what was dropped was not this dataset. Start again. */
        raise_distrust(rb, run_id);
        rc = UC_ESTALE;
        goto end;
    }
    if (run_id[0] == '\0') {
        /* No INFO: a random token still tells a flushed dataset apart. */
        snprintf(run_id, sizeof(run_id), "t%016llx",
                 (unsigned long long)(uc__now_us(rb->base.env) ^
                                      (uint64_t)(uintptr_t)rb));
    }
    set_len[2] = strlen(run_id);
    rc = run1(rb, &s, 3, set, set_len, &r);
    if (rc == UC_OK) {
        rc = expect_ok(rb, &s, r);
        freeReplyObject(r);
    }
    if (rc == UC_OK) {
        mark_trusted(rb);
        atomic_store(&rb->base.distrust, 0);
    }

end:
    sess_end(rb, &s);
    return rc;
}

/* ---- INFO ------------------------------------------------------------------
 */

/* Declared in redis_info.h, where the contract is. */
void uc__redis_parse_info(const char *text, size_t len, int db,
                          uc_server_info_t *out)
{
    char dbname[24];
    size_t dblen = 0;
    const char *p = text;
    const char *end = text + len;

    snprintf(dbname, sizeof(dbname), "db%d:keys=", db);
    dblen = strlen(dbname);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        size_t n = (size_t)(eol - p);
        const char *colon = memchr(p, ':', n);
        uint64_t v = 0;

        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        if (colon != NULL && n > dblen && memcmp(p, dbname, dblen) == 0) {
            const char *num = p + dblen;
            const char *comma = memchr(num, ',', n - dblen);
            size_t nlen = comma != NULL ? (size_t)(comma - num) : n - dblen;

            if (parse_u64(num, nlen, &v)) {
                out->keys = v;
            }
        } else if (colon != NULL) {
            size_t klen = (size_t)(colon - p);
            const char *val = colon + 1;
            size_t vlen = n - klen - 1;

#define FIELD(name, dst)                                                       \
    if (klen == sizeof(name) - 1 && memcmp(p, name, klen) == 0 &&              \
        parse_u64(val, vlen, &v)) {                                            \
        out->dst = v;                                                          \
    }
            FIELD("used_memory", used_memory)
            FIELD("maxmemory", max_memory)
            FIELD("evicted_keys", evicted_keys)
            FIELD("expired_keys", expired_keys)
            FIELD("keyspace_hits", server_hits)
            FIELD("keyspace_misses", server_misses)
#undef FIELD
            if (klen == 13 && memcmp(p, "redis_version", 13) == 0) {
                size_t cp = vlen < sizeof(out->version) - 1
                                ? vlen
                                : sizeof(out->version) - 1;

                memcpy(out->version, val, cp);
                out->version[cp] = '\0';
            }
        }
        p = eol + 1;
    }
}

static int r_info(uc__backend_t *b, uc_server_info_t *out)
{
    static const char *const sections[4] = {"server", "memory", "stats",
                                            "keyspace"};
    rb_t *rb = rb_of(b);
    const char *argv[4][2];
    size_t lens[4][2];
    cmd_t cmds[4];
    redisReply *rep[4] = {NULL, NULL, NULL, NULL};
    uc_server_info_t info;
    sess_t s;
    int rc = UC_OK;

    for (size_t i = 0; i < 4; i++) {
        argv[i][0] = "INFO";
        lens[i][0] = 4;
        argv[i][1] = sections[i];
        lens[i][1] = strlen(sections[i]);
        cmds[i] = (cmd_t){2, argv[i], lens[i]};
    }
    memset(&info, 0, sizeof(info));
    rc = sess_begin(rb, &s);
    if (rc != UC_OK) {
        return rc;
    }
    rc = exec(rb, &s, 4, cmds, rep);
    for (size_t i = 0; rc == UC_OK && i < 4; i++) {
        if (rep[i]->type == REDIS_REPLY_ERROR) {
            rc = error_reply_status(rep[i]);
        } else if (rep[i]->type != REDIS_REPLY_STRING ||
                   rep[i]->len > INFO_MAX) {
            rc = bad_reply(rb, &s);
        } else {
            uc__redis_parse_info(rep[i]->str, rep[i]->len, rb->base.env->cfg.db,
                                 &info);
        }
    }
    free_replies(rep, 4);
    sess_end(rb, &s);
    if (rc == UC_OK) {
        *out = info;
    }
    return rc;
}

/* ---- figures and lifecycle ------------------------------------------------
 */

static void r_pool_stats(uc__backend_t *b, uc_pool_stats_t *out)
{
    rb_t *rb = rb_of(b);

    memset(out, 0, sizeof(*out));
    uc__pool_stats(rb->pool, out);
    uc__breaker_figures(&rb->breaker, &out->breaker, &out->breaker_opens,
                        &out->breaker_rejects);
    out->batches = atomic_load_explicit(&rb->n_batches, memory_order_relaxed);
    out->batched = atomic_load_explicit(&rb->n_batched, memory_order_relaxed);
}

static void r_destroy(uc__backend_t *b)
{
    rb_t *rb = rb_of(b);

    if (rb == NULL) {
        return;
    }
    uc__pool_destroy(rb->pool);
    uc__breaker_release(&rb->breaker);
    pthread_mutex_destroy(&rb->comb[0].mu);
    pthread_mutex_destroy(&rb->comb[1].mu);
    pthread_mutex_destroy(&rb->sha_mu);
    pthread_mutex_destroy(&rb->id_mu);
    free(rb);
}

static const uc__backend_ops_t redis_ops = {
    .name = "redis",
    .get = r_get,
    .set = r_set,
    .del = r_del,
    .exists = r_exists,
    .ttl = r_ttl,
    .mget = r_mget,
    .mset = r_mset,
    .delete_pattern = r_delete_pattern,
    .count_pattern = r_count_pattern,
    .get_max = r_get_max,
    .mget_max = r_mget_max,
    .put = r_put,
    .add = r_add,
    .cas = r_cas,
    .verify = r_verify,
    .adopt = r_adopt,
    .ping = r_ping,
    .info = r_info,
    .pool_stats = r_pool_stats,
    .destroy = r_destroy,
};

/* ---- the node interface (redis_node.h) -------------------------------------
 */

int uc__redis_node_create(const uc__env_t *env, const char *host, int port,
                          uc__backend_t *parent, int cluster,
                          uc__backend_t **out)
{
    const uc_config_t *cfg = &env->cfg;
    uc__pool_conn_ops_t pops = {conn_open, conn_close, conn_check, NULL};
    rb_t *rb = NULL;
    int rc = UC_ENOMEM;

    if (host == NULL || host[0] == '\0' || strlen(host) > UC__HOST_MAX ||
        port < 1 || port > 65535) {
        return UC_ECONFIG;
    }
    rb = calloc(1, sizeof(*rb));
    if (rb == NULL) {
        return UC_ENOMEM;
    }
    rb->base.ops = &redis_ops;
    rb->base.env = env;
    rb->parent = parent;
    atomic_init(&rb->cluster, cluster);
    snprintf(rb->host, sizeof(rb->host), "%s", host);
    rb->port = port;
    rb->scan_batch = cfg->scan_batch > 0 ? (size_t)cfg->scan_batch : 500u;
    snprintf(rb->where, sizeof(rb->where), "%s:%d", host, port);
    atomic_init(&rb->log_next_us, 0);
    atomic_init(&rb->log_suppressed, 0);
    atomic_init(&rb->verify_gen, 1);
    rb->marker_len = (size_t)snprintf(rb->marker, sizeof(rb->marker), "%s%s",
                                      cfg->key_prefix, MARKER_SUFFIX);
    if (pthread_mutex_init(&rb->id_mu, NULL) != 0) {
        free(rb);
        return UC_ENOMEM;
    }
    if (pthread_mutex_init(&rb->sha_mu, NULL) != 0) {
        goto fail_id;
    }
    if (pthread_mutex_init(&rb->comb[0].mu, NULL) != 0) {
        goto fail_sha;
    }
    if (pthread_mutex_init(&rb->comb[1].mu, NULL) != 0) {
        pthread_mutex_destroy(&rb->comb[0].mu);
        goto fail_sha;
    }
    rb->pipeline_max = cfg->pipeline_max <= 0 ? 0
                       : cfg->pipeline_max > PIPELINE_MAX
                           ? PIPELINE_MAX
                           : (size_t)cfg->pipeline_max;
    snprintf(rb->bname, sizeof(rb->bname), "redis %s", rb->where);
    if (uc__breaker_init(&rb->breaker, env, rb->bname) != UC_OK) {
        goto fail_comb;
    }
    pops.arg = rb;
    rc = uc__pool_create(env, &pops, &rb->pool);
    if (rc != UC_OK) {
        uc__breaker_release(&rb->breaker);
        goto fail_comb;
    }
    *out = &rb->base;
    return UC_OK;

fail_comb:
    pthread_mutex_destroy(&rb->comb[0].mu);
    pthread_mutex_destroy(&rb->comb[1].mu);
fail_sha:
    pthread_mutex_destroy(&rb->sha_mu);
fail_id:
    pthread_mutex_destroy(&rb->id_mu);
    free(rb);
    return rc != UC_OK ? rc : UC_ENOMEM;
}

void uc__redis_node_set_cluster(uc__backend_t *node)
{
    atomic_store(&rb_of(node)->cluster, 1);
}

const char *uc__redis_node_where(const uc__backend_t *node)
{
    return ((const rb_t *)node)->where;
}

uc__redir_kind_t uc__redis_redirect_take(uc__redir_t *out)
{
    uc__redir_kind_t kind = tl_redir.kind;

    if (out != NULL) {
        *out = tl_redir;
    }
    tl_redir.kind = UC__REDIR_NONE;
    return kind;
}

void uc__redis_asking(int on)
{
    tl_asking = on;
}

void uc__redis_force(int on)
{
    tl_force = on;
}

int uc__redis_node_command(uc__backend_t *node, int argc, const char **argv,
                           const size_t *lens, redisReply **out)
{
    rb_t *rb = rb_of(node);
    redisReply *r = NULL;
    sess_t s;
    int rc = sess_begin(rb, &s);

    if (rc != UC_OK) {
        return rc;
    }
    rc = run1(rb, &s, argc, argv, lens, &r);
    sess_end(rb, &s);
    if (rc == UC_OK) {
        *out = r;
    }
    return rc;
}

void uc__redis_node_set_tag(uc__backend_t *node, const char *tag)
{
    rb_t *rb = rb_of(node);
    const char *prefix = rb->base.env->cfg.key_prefix;
    char marker[sizeof(rb->marker)];
    int n = snprintf(marker, sizeof(marker), "%s%s:{%.*s}", prefix,
                     MARKER_SUFFIX, TAG_MAX, tag);
    int changed = 0;

    if (n < 0 || (size_t)n >= sizeof(marker)) {
        return;
    }
    pthread_mutex_lock(&rb->id_mu);
    if (strcmp(marker, rb->marker) != 0) {
        memcpy(rb->marker, marker, (size_t)n + 1);
        rb->marker_len = (size_t)n;
        changed = 1;
    }
    pthread_mutex_unlock(&rb->id_mu);
    if (changed) {
        atomic_fetch_add_explicit(&rb->verify_gen, 1, memory_order_release);
    }
}

void uc__redis_node_distrust(uc__backend_t *node)
{
    rb_t *rb = rb_of(node);

    pthread_mutex_lock(&rb->id_mu);
    rb->raised_by[0] = '\0'; /* whatever server it is now is adopted */
    pthread_mutex_unlock(&rb->id_mu);
    atomic_store(&rb->base.distrust, 1);
    atomic_fetch_add(&rb->base.distrust_epoch, 1);
    atomic_fetch_add_explicit(&rb->n_distrusts, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rb->verify_gen, 1, memory_order_release);
    raise_parent(rb);
}

void uc__redis_node_recheck(uc__backend_t *node)
{
    atomic_fetch_add_explicit(&rb_of(node)->verify_gen, 1,
                              memory_order_release);
}

int uc__redis_node_distrusted(const uc__backend_t *node)
{
    return atomic_load(&node->distrust) != 0;
}

int uc__redis_node_adopted(uc__backend_t *node)
{
    rb_t *rb = rb_of(node);
    char run_id[RUN_ID_MAX];
    int match = 0;
    sess_t s;
    int rc = sess_begin(rb, &s);

    if (rc != UC_OK) {
        return 0;
    }
    rc = read_identity(rb, &s, run_id, sizeof(run_id), &match);
    if (rc != UC_OK && rc != UC_EUNAVAILABLE) {
        s.broken = 1;
    }
    sess_end(rb, &s);
    /* Without INFO a marker says nothing of the server's life: drop. */
    return rc == UC_OK && match && run_id[0] != '\0';
}

void uc__redis_node_counters(const uc__backend_t *node,
                             uc__node_counters_t *out)
{
    const rb_t *rb = (const rb_t *)node;

    out->commands = atomic_load_explicit(&rb->n_commands, memory_order_relaxed);
    out->failures = atomic_load_explicit(&rb->n_failures, memory_order_relaxed);
    out->moved = atomic_load_explicit(&rb->n_moved, memory_order_relaxed);
    out->ask = atomic_load_explicit(&rb->n_ask, memory_order_relaxed);
    out->tryagain = atomic_load_explicit(&rb->n_tryagain, memory_order_relaxed);
    out->distrusts =
        atomic_load_explicit(&rb->n_distrusts, memory_order_relaxed);
}
