/* SPDX-License-Identifier: MIT */
/*
 * The near cache's invalidation channel (track.h has the protocol and the
 * guarantee). One thread per handle runs sessions: connect the subscriber
 * and the heartbeat connection, then a loop that polls both sockets and a
 * wake pipe, feeds what arrives to hiredis' parser, sends the heartbeats
 * and watches their deadlines, until a connection fails, a heartbeat is
 * late or the handle stops; then back off and start again.
 *
 * hiredis does only three things here: connect (with the connect timeout),
 * format commands, parse replies. Its own I/O is never used: a blocking
 * read would hang on a stopped server, a read timeout would leave the
 * context broken, and its write() raises SIGPIPE. Reads happen after poll()
 * said the socket is readable; writes are send(MSG_NOSIGNAL | MSG_DONTWAIT)
 * bounded by a deadline.
 *
 * The channel's time is CLOCK_MONOTONIC, not the configurable clock: it
 * measures real network delays against poll()'s real timeouts, and a test's
 * manual clock would stall the heartbeat and hide a dead channel.
 */
#include "track.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <hiredis/hiredis.h>

#include "reply_guard.h"
#include "stats.h"

#define CHANNEL "__redis__:invalidate"
#define CHANNEL_LEN (sizeof(CHANNEL) - 1)
/* Below the prefix, like the dataset marker: no keyspace starts "uc:". */
#define HB_INFIX "uc:hb:"
#define HB_TTL_MS "10000"
#define ID_HEX 16
/* Poll slices are short so that a stop or a deadline is never far off. */
#define SLICE_MS 50
/* Bytes fed to the parser without a complete reply before the stream is
 * taken for garbage (a broadcast of a huge MSET is far below this). */
#define PENDING_MAX (16u * 1024u * 1024u)
#define RECV_CHUNK 16384
/* Outstanding heartbeats each need a key of their own (track.h). */
#define SLOTS_MAX 64
/* A healthy period at least this long earns an immediate reconnect. */
#define SETTLED_US 1000000u
#define DETAIL_MAX 160

typedef struct {
    _Atomic uint64_t connects, connect_failures;
    _Atomic uint64_t flushes_null, flushes_lost, flushes_heartbeat,
        flushes_stop;
    _Atomic uint64_t messages, keys;
    _Atomic uint64_t heartbeats_sent, heartbeats_ok, heartbeats_late;
    _Atomic uint64_t lag_max_us;
    _Atomic uint64_t lag_us[UC_HIST_BUCKETS];
} figures_t;

struct uc__track {
    const uc__env_t *env;
    uc__track_cb_t cb;
    uint64_t hb_us, deadline_us;
    unsigned nslots;
    char where[UC_HOST_MAX + 16];
    /* "<prefix>uc:hb:" (any instance's) and "<prefix>uc:hb:<id>:" (ours). */
    char hb_any[UC_PREFIX_MAX + sizeof(HB_INFIX)];
    size_t hb_any_len;
    char hb_own[UC_PREFIX_MAX + sizeof(HB_INFIX) + ID_HEX + 2];
    size_t hb_own_len;

    pthread_t thread;
    int wake[2]; /* written once by stop; never drained */
    _Atomic int stopping;
    _Atomic uint64_t ticket; /* written by the thread only */
    /* When the newest heartbeat that came back was sent (monotonic us):
     * every invalidation Redis sent before it has been applied. */
    _Atomic uint64_t proven_us;
    figures_t fig;
    uc__ratelog_t conn_log, flush_log, hb_log, up_log;

    /* The thread's own. */
    uint64_t rng;
    unsigned failures;   /* consecutive attempts that missed HEALTHY */
    uint64_t healthy_us; /* when HEALTHY was last reached */
    uint64_t hb_seq;
};

/* One connection: hiredis' context for its fd and parser. */
typedef struct {
    redisContext *c;
    size_t pending; /* bytes fed since the last complete reply */
    uc__reply_guard_t guard;
} conn_t;

typedef struct {
    uint64_t seq; /* 0: free */
    uint64_t sent_us;
} slot_t;

typedef struct {
    conn_t sub, hb;
    slot_t slots[SLOTS_MAX];
    uint64_t next_hb_us;
    char detail[DETAIL_MAX];
} sess_t;

/* How a session ended. */
typedef enum { END_STOP, END_LOST, END_LATE, END_FAILED } end_t;

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A configured wait in ms, or def when the core left it unresolved. */
static int cfg_ms(int v, int def)
{
    return v > 0 ? v : def;
}

/* splitmix64: jitter and the fallback identifier, nothing secret. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void seed(uc__track_t *t)
{
    uint64_t v = 0;

    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
        /* Only the heartbeat key's uniqueness rests on it. */
        v = now_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)t;
    }
    t->rng = v;
}

const char *uc__flush_reason_name(uc__flush_reason_t why)
{
    switch (why) {
    case UC__FLUSH_NULL_MSG:
        return "null-message";
    case UC__FLUSH_LOST:
        return "lost";
    case UC__FLUSH_HEARTBEAT:
        return "heartbeat";
    case UC__FLUSH_STOP:
        return "stop";
    default:
        return "?";
    }
}

/* ---- ticket ----------------------------------------------------------------
 */

uint64_t uc__track_ticket(const uc__track_t *t)
{
    return atomic_load(&((uc__track_t *)t)->ticket);
}

uc__track_state_t uc__track_state(const uc__track_t *t)
{
    return UC__TRACK_TICKET_STATE(uc__track_ticket(t));
}

int uc__track_fresh(const uc__track_t *t)
{
    uint64_t proven = atomic_load(&t->proven_us);

    return proven != 0 && now_us() - proven <= t->hb_us + t->deadline_us;
}

uint64_t uc__track_epoch(const uc__track_t *t)
{
    return UC__TRACK_TICKET_EPOCH(uc__track_ticket(t));
}

/* The thread is the only writer, so load + store is enough; seq_cst so that
 * the change is ordered before whatever on_flush does next. */
static void set_ticket(uc__track_t *t, uc__track_state_t st, int bump)
{
    uint64_t tk = atomic_load(&t->ticket);
    uint64_t epoch = UC__TRACK_TICKET_EPOCH(tk) + (bump ? 1u : 0u);

    atomic_store(&t->ticket, (epoch << 2) | (uint64_t)st);
}

static void set_state(uc__track_t *t, uc__track_state_t st)
{
    set_ticket(t, st, 0);
}

#define COUNT(t, f)                                                            \
    atomic_fetch_add_explicit(&(t)->fig.f, 1, memory_order_relaxed)

/* Leaves or keeps the state with a flush: ticket first, then on_flush. */
static void flush(uc__track_t *t, uc__track_state_t st, uc__flush_reason_t why)
{
    set_ticket(t, st, 1);
    switch (why) {
    case UC__FLUSH_NULL_MSG:
        COUNT(t, flushes_null);
        break;
    case UC__FLUSH_LOST:
        COUNT(t, flushes_lost);
        break;
    case UC__FLUSH_HEARTBEAT:
        COUNT(t, flushes_heartbeat);
        break;
    case UC__FLUSH_STOP:
        COUNT(t, flushes_stop);
        break;
    }
    if (t->cb.on_flush != NULL) {
        t->cb.on_flush(t->cb.arg, why);
    }
}

/* ---- I/O -------------------------------------------------------------------
 */

static void conn_close(conn_t *k)
{
    redisFree(k->c); /* accepts NULL */
    k->c = NULL;
    k->pending = 0;
}

static int ms_until(uint64_t now, uint64_t deadline)
{
    uint64_t us = deadline > now ? deadline - now : 0;
    uint64_t ms = (us + 999u) / 1000u;

    return ms > SLICE_MS ? SLICE_MS : (int)ms;
}

/*
 * Waits until k's socket is ready for `events` or the deadline passes.
 * Returns 1 ready (hang-ups and errors count: the next call says which),
 * 0 deadline, -1 the handle is stopping.
 */
static int wait_fd(uc__track_t *t, conn_t *k, short events, uint64_t deadline)
{
    for (;;) {
        struct pollfd p[2] = {{k->c->fd, events, 0}, {t->wake[0], POLLIN, 0}};
        uint64_t now = now_us();
        int n;

        if (atomic_load(&t->stopping)) {
            return -1;
        }
        if (now >= deadline) {
            return 0;
        }
        n = poll(p, 2, ms_until(now, deadline));
        if (n < 0 && errno != EINTR) {
            return 0;
        }
        if (n > 0 && p[1].revents != 0) {
            return -1;
        }
        if (n > 0 && p[0].revents != 0) {
            return 1;
        }
    }
}

/*
 * Writes the command whole before the deadline. Returns UC_OK, UC_ETIMEDOUT
 * (the connection is then unusable: part of it may be out), UC_EIO,
 * UC_ENOMEM, or UC_EUNAVAILABLE when stopping.
 */
static int send_cmd(uc__track_t *t, conn_t *k, int argc, const char **argv,
                    const size_t *lens, uint64_t deadline, char *detail)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    size_t off = 0;
    int rc = UC_OK;

    if (len < 0) {
        return UC_ENOMEM;
    }
    while (off < (size_t)len) {
        ssize_t n = send(k->c->fd, cmd + off, (size_t)len - off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(t, k, POLLOUT, deadline);
            if (w == 1) {
                continue;
            }
            rc = w < 0 ? UC_EUNAVAILABLE : UC_ETIMEDOUT;
            break;
        }
        snprintf(detail, DETAIL_MAX, "write: %s", strerror(errno));
        rc = UC_EIO;
        break;
    }
    redisFreeCommand(cmd);
    return rc;
}

/*
 * One recv() into k's parser (the socket said it is readable). Returns
 * UC_OK, or UC_EIO on EOF or error, UC_EPROTO past PENDING_MAX.
 */
static int fill(conn_t *k, char *detail)
{
    char buf[RECV_CHUNK];
    ssize_t n;

    do {
        n = recv(k->c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return UC_OK;
    }
    if (n <= 0) {
        snprintf(detail, DETAIL_MAX, "%s",
                 n == 0 ? "server closed the connection" : strerror(errno));
        return UC_EIO;
    }
    k->pending += (size_t)n;
    if (k->pending > PENDING_MAX ||
        redisReaderFeed(k->c->reader, buf, (size_t)n) != REDIS_OK) {
        snprintf(detail, DETAIL_MAX, "reply too large");
        return UC_EPROTO;
    }
    return UC_OK;
}

/* The next complete reply: 1 (*out is the caller's), 0 none yet, or -1 on
 * a protocol error. */
static int next_reply(conn_t *k, redisReply **out, char *detail)
{
    void *v = NULL;

    if (redisReaderGetReply(k->c->reader, &v) != REDIS_OK) {
        snprintf(detail, DETAIL_MAX, "%s", k->c->reader->errstr);
        return -1;
    }
    if (v == NULL) {
        return 0;
    }
    k->pending = 0;
    *out = v;
    return 1;
}

/* Waits (bounded) for the next reply on k. UC_OK and *out, or a status. */
static int await_reply(uc__track_t *t, conn_t *k, uint64_t deadline,
                       redisReply **out, char *detail)
{
    for (;;) {
        int r = next_reply(k, out, detail);
        int w;

        if (r > 0) {
            return UC_OK;
        }
        if (r < 0) {
            return UC_EPROTO;
        }
        w = wait_fd(t, k, POLLIN, deadline);
        if (w < 0) {
            return UC_EUNAVAILABLE;
        }
        if (w == 0) {
            snprintf(detail, DETAIL_MAX, "no reply within %d ms",
                     cfg_ms(t->env->cfg.command_timeout_ms, 250));
            return UC_ETIMEDOUT;
        }
        r = fill(k, detail);
        if (r != UC_OK) {
            return r;
        }
    }
}

static int starts_with(const char *s, size_t len, const char *p, size_t plen)
{
    return s != NULL && len >= plen && memcmp(s, p, plen) == 0;
}

static int is_str(const redisReply *r, const char *s)
{
    size_t n = strlen(s);

    return r != NULL &&
           (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == n && memcmp(r->str, s, n) == 0;
}

/* The status for a reply of the wrong kind to `what`, detail set. */
static int reply_status(const redisReply *r, const char *what, char *detail)
{
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(detail, DETAIL_MAX, "%s: %.*s", what,
                 (int)(r->len < 100 ? r->len : 100), r->str);
        return starts_with(r->str, r->len, "WRONGPASS", 9) ||
                       starts_with(r->str, r->len, "NOAUTH", 6) ||
                       starts_with(r->str, r->len, "NOPERM", 6)
                   ? UC_EAUTH
                   : UC_ESERVER;
    }
    snprintf(detail, DETAIL_MAX, "unexpected reply to %s", what);
    return UC_EPROTO;
}

/* ---- handshakes ------------------------------------------------------------
 */

static uint64_t cmd_deadline(const uc__track_t *t)
{
    return now_us() +
           (uint64_t)cfg_ms(t->env->cfg.command_timeout_ms, 250) * 1000u;
}

static int open_conn(uc__track_t *t, conn_t *k, char *detail)
{
    const uc_config_t *cfg = &t->env->cfg;
    struct timeval tv;

    int ms = cfg_ms(cfg->connect_timeout_ms, 250);

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    k->c = redisConnectWithTimeout(cfg->host, cfg->port, tv);
    k->pending = 0;
    if (k->c == NULL) {
        snprintf(detail, DETAIL_MAX, "connect: out of memory");
        return UC_ENOMEM;
    }
    if (k->c->err != 0) {
        snprintf(detail, DETAIL_MAX, "connect: %s", k->c->errstr);
        return strstr(k->c->errstr, "refused") != NULL     ? UC_ECONNREFUSED
               : strstr(k->c->errstr, "timed out") != NULL ? UC_ETIMEDOUT
                                                           : UC_EIO;
    }
    /* The thread does its own I/O, but a stray blocking call would hang;
     * and a child the host starts has no business with these sockets. */
    (void)fcntl(k->c->fd, F_SETFL, fcntl(k->c->fd, F_GETFL) | O_NONBLOCK);
    (void)fcntl(k->c->fd, F_SETFD, FD_CLOEXEC);
    uc__reply_guard_install(k->c->reader, &k->guard);
    return UC_OK;
}

/* Appends AUTH's argv for cfg to argv/lens; its argc (0: no password). */
static int auth_argv(const uc_config_t *cfg, const char **argv, size_t *lens)
{
    int n = 0;

    if (cfg->password[0] == '\0') {
        return 0;
    }
    argv[n] = "AUTH";
    lens[n++] = 4;
    if (cfg->username[0] != '\0') {
        argv[n] = cfg->username;
        lens[n++] = strlen(cfg->username);
    }
    argv[n] = cfg->password;
    lens[n++] = strlen(cfg->password);
    return n;
}

/* Sends AUTH when configured; its reply is read by expect_auth(). */
static int send_auth(uc__track_t *t, conn_t *k, uint64_t dl, char *detail,
                     int *sent)
{
    const char *argv[3];
    size_t lens[3];
    int argc = auth_argv(&t->env->cfg, argv, lens);

    *sent = argc > 0;
    return argc > 0 ? send_cmd(t, k, argc, argv, lens, dl, detail) : UC_OK;
}

static int expect_ok(uc__track_t *t, conn_t *k, uint64_t dl, const char *what,
                     char *detail)
{
    redisReply *r = NULL;
    int rc = await_reply(t, k, dl, &r, detail);

    if (rc == UC_OK && !(r->type == REDIS_REPLY_STATUS && is_str(r, "OK"))) {
        rc = reply_status(r, what, detail);
        if (rc == UC_ESERVER && strcmp(what, "AUTH") == 0) {
            rc = UC_EAUTH; /* "ERR ... no password is set" and the like */
        }
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    return rc;
}

/*
 * The subscriber: AUTH + CLIENT ID, then CLIENT TRACKING + SUBSCRIBE, each
 * pair in one round trip, and the subscribe ack. UC_OK or a status.
 */
static int open_sub(uc__track_t *t, conn_t *k, char *detail)
{
    const uc_config_t *cfg = &t->env->cfg;
    const char *id_argv[2] = {"CLIENT", "ID"};
    size_t id_lens[2] = {6, 2};
    char idbuf[24];
    const char *tr_argv[7] = {"CLIENT", "TRACKING", "on",    "REDIRECT",
                              idbuf,    "BCAST",    "PREFIX"};
    size_t tr_lens[7] = {6, 8, 2, 8, 0, 5, 6};
    int tr_argc = 6;
    const char *sub_argv[2] = {"SUBSCRIBE", CHANNEL};
    size_t sub_lens[2] = {9, CHANNEL_LEN};
    const char *tr_all[8];
    size_t tr_all_lens[8];
    redisReply *r = NULL;
    int authed = 0;
    uint64_t dl;
    int rc = open_conn(t, k, detail);

    if (rc != UC_OK) {
        return rc;
    }
    dl = cmd_deadline(t);
    rc = send_auth(t, k, dl, detail, &authed);
    if (rc == UC_OK) {
        rc = send_cmd(t, k, 2, id_argv, id_lens, dl, detail);
    }
    if (rc == UC_OK && authed) {
        rc = expect_ok(t, k, dl, "AUTH", detail);
    }
    if (rc != UC_OK) {
        return rc;
    }
    rc = await_reply(t, k, dl, &r, detail);
    if (rc != UC_OK) {
        return rc;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
        rc = reply_status(r, "CLIENT ID", detail);
        freeReplyObject(r);
        return rc;
    }
    tr_lens[4] = (size_t)snprintf(idbuf, sizeof(idbuf), "%lld", r->integer);
    freeReplyObject(r);
    r = NULL;

    memcpy(tr_all, tr_argv, sizeof(tr_argv));
    memcpy(tr_all_lens, tr_lens, sizeof(tr_lens));
    if (cfg->key_prefix[0] != '\0') {
        /* No PREFIX at all for an empty prefix: broadcast of every key. */
        tr_argc = 8;
        tr_all[7] = cfg->key_prefix;
        tr_all_lens[7] = strlen(cfg->key_prefix);
    }
    dl = cmd_deadline(t);
    rc = send_cmd(t, k, tr_argc, tr_all, tr_all_lens, dl, detail);
    if (rc == UC_OK) {
        rc = send_cmd(t, k, 2, sub_argv, sub_lens, dl, detail);
    }
    if (rc == UC_OK) {
        rc = expect_ok(t, k, dl, "CLIENT TRACKING", detail);
    }
    if (rc != UC_OK) {
        return rc;
    }
    rc = await_reply(t, k, dl, &r, detail);
    if (rc != UC_OK) {
        return rc;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        !is_str(r->element[0], "subscribe") ||
        !is_str(r->element[1], CHANNEL)) {
        rc = reply_status(r, "SUBSCRIBE", detail);
    }
    freeReplyObject(r);
    return rc;
}

/* The heartbeat connection: AUTH and SELECT in one round trip. */
static int open_hb(uc__track_t *t, conn_t *k, char *detail)
{
    const uc_config_t *cfg = &t->env->cfg;
    char dbs[16];
    const char *sel[2] = {"SELECT", dbs};
    size_t sel_lens[2] = {6, 0};
    int authed = 0;
    uint64_t dl;
    int rc = open_conn(t, k, detail);

    if (rc != UC_OK) {
        return rc;
    }
    dl = cmd_deadline(t);
    rc = send_auth(t, k, dl, detail, &authed);
    if (rc == UC_OK && cfg->db != 0) {
        sel_lens[1] = (size_t)snprintf(dbs, sizeof(dbs), "%d", cfg->db);
        rc = send_cmd(t, k, 2, sel, sel_lens, dl, detail);
    }
    if (rc == UC_OK && authed) {
        rc = expect_ok(t, k, dl, "AUTH", detail);
    }
    if (rc == UC_OK && cfg->db != 0) {
        rc = expect_ok(t, k, dl, "SELECT", detail);
    }
    return rc;
}

/* ---- the session -----------------------------------------------------------
 */

static void become_healthy(uc__track_t *t)
{
    set_state(t, UC__TRACK_HEALTHY);
    t->failures = 0;
    t->healthy_us = now_us();
    uc__log_limited(t->env, &t->up_log, UC_LOG_INFO,
                    "near-cache channel '%s': healthy", t->where);
    if (t->cb.on_healthy != NULL) {
        t->cb.on_healthy(t->cb.arg);
    }
}

static void ack(uc__track_t *t, sess_t *s, unsigned slot, uint64_t now)
{
    slot_t *sl;
    uint64_t lag, max;

    if (slot >= t->nslots || s->slots[slot].seq == 0) {
        return; /* an older write's expiry, or another session's */
    }
    sl = &s->slots[slot];
    lag = now - sl->sent_us;
    if (sl->sent_us > atomic_load(&t->proven_us)) {
        atomic_store(&t->proven_us, sl->sent_us);
    }
    sl->seq = 0;
    COUNT(t, heartbeats_ok);
    atomic_fetch_add_explicit(&t->fig.lag_us[uc__hist_bucket(lag)], 1,
                              memory_order_relaxed);
    max = atomic_load_explicit(&t->fig.lag_max_us, memory_order_relaxed);
    if (lag > max) {
        atomic_store_explicit(&t->fig.lag_max_us, lag, memory_order_relaxed);
    }
    if (t->cb.on_heartbeat != NULL) {
        t->cb.on_heartbeat(t->cb.arg, lag);
    }
    if (uc__track_state(t) != UC__TRACK_HEALTHY) {
        become_healthy(t);
    }
}

/* A heartbeat key: ours acknowledges its slot; every one is kept from
 * on_keys. Nonzero when key was a heartbeat key. */
static int heartbeat_key(uc__track_t *t, sess_t *s, const char *key,
                         size_t klen, uint64_t now)
{
    unsigned slot = 0;

    if (!starts_with(key, klen, t->hb_any, t->hb_any_len)) {
        return 0;
    }
    if (starts_with(key, klen, t->hb_own, t->hb_own_len) &&
        klen > t->hb_own_len && klen - t->hb_own_len <= 2) {
        for (size_t i = t->hb_own_len; i < klen; i++) {
            if (key[i] < '0' || key[i] > '9') {
                return 1;
            }
            slot = slot * 10u + (unsigned)(key[i] - '0');
        }
        ack(t, s, slot, now);
    }
    return 1;
}

static void deliver(uc__track_t *t, const char *const *keys, const size_t *lens,
                    size_t n)
{
    atomic_fetch_add_explicit(&t->fig.keys, n, memory_order_relaxed);
    if (t->cb.on_keys != NULL) {
        t->cb.on_keys(t->cb.arg, keys, lens, n);
    }
}

/*
 * One reply on the subscriber. UC_OK, or UC_EPROTO for anything that is
 * not a message on the channel (nothing else is expected once subscribed).
 */
static int on_message(uc__track_t *t, sess_t *s, const redisReply *r)
{
    const redisReply *p;
    const char *keys[UC__TRACK_KEYS_BATCH];
    size_t lens[UC__TRACK_KEYS_BATCH];
    size_t n = 0;
    uint64_t now = now_us();

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        !is_str(r->element[0], "message") || !is_str(r->element[1], CHANNEL)) {
        snprintf(s->detail, DETAIL_MAX, "unexpected reply on the subscriber");
        return UC_EPROTO;
    }
    p = r->element[2];
    if (p->type == REDIS_REPLY_STRING) {
        return UC_OK; /* someone's PUBLISH: tracking never sends strings */
    }
    if (p->type == REDIS_REPLY_NIL) {
        COUNT(t, messages);
        flush(t, uc__track_state(t), UC__FLUSH_NULL_MSG);
        return UC_OK;
    }
    if (p->type != REDIS_REPLY_ARRAY) {
        snprintf(s->detail, DETAIL_MAX, "unexpected invalidation payload");
        return UC_EPROTO;
    }
    COUNT(t, messages);
    for (size_t i = 0; i < p->elements; i++) {
        const redisReply *k = p->element[i];

        if (k->type != REDIS_REPLY_STRING) {
            snprintf(s->detail, DETAIL_MAX, "unexpected invalidated key");
            return UC_EPROTO;
        }
        if (heartbeat_key(t, s, k->str, k->len, now)) {
            continue;
        }
        keys[n] = k->str;
        lens[n++] = k->len;
        if (n == UC__TRACK_KEYS_BATCH) {
            deliver(t, keys, lens, n);
            n = 0;
        }
    }
    if (n > 0) {
        deliver(t, keys, lens, n);
    }
    return UC_OK;
}

/* One reply on the heartbeat connection: UC_OK or UC_EPROTO. A refused
 * SET (-OOM under noeviction, -READONLY) is logged; its heartbeat then
 * comes back late, which is the verdict that counts. */
static int on_hb_reply(uc__track_t *t, sess_t *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_STATUS && is_str(r, "OK")) {
        return UC_OK;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        uc__log_limited(t->env, &t->hb_log, UC_LOG_WARN,
                        "near-cache channel '%s': heartbeat refused: %.*s",
                        t->where, (int)(r->len < 100 ? r->len : 100), r->str);
        return UC_OK;
    }
    snprintf(s->detail, DETAIL_MAX, "unexpected reply to the heartbeat");
    return UC_EPROTO;
}

/* Writes the next heartbeat into a free slot. UC_OK or a status. */
static int send_heartbeat(uc__track_t *t, sess_t *s, uint64_t now)
{
    uint64_t seq = ++t->hb_seq;
    unsigned slot = (unsigned)(seq % t->nslots);
    char key[sizeof(t->hb_own) + 4];
    char val[24];
    const char *argv[5] = {"SET", key, val, "PX", HB_TTL_MS};
    size_t lens[5] = {3, 0, 0, 2, sizeof(HB_TTL_MS) - 1};

    if (s->slots[slot].seq != 0) {
        return UC_ETIMEDOUT; /* cannot be: it would be past its deadline */
    }
    lens[1] = (size_t)snprintf(key, sizeof(key), "%s%u", t->hb_own, slot);
    lens[2] =
        (size_t)snprintf(val, sizeof(val), "%llu", (unsigned long long)seq);
    s->slots[slot].seq = seq;
    s->slots[slot].sent_us = now;
    COUNT(t, heartbeats_sent);
    /* A write that cannot go out before the deadline is a late heartbeat. */
    return send_cmd(t, &s->hb, 5, argv, lens, now + t->deadline_us, s->detail);
}

/* Reads what k has and hands each complete reply to fn. UC_OK or status. */
static int drain(uc__track_t *t, sess_t *s, conn_t *k,
                 int (*fn)(uc__track_t *, sess_t *, const redisReply *))
{
    redisReply *r = NULL;
    int rc = fill(k, s->detail);

    while (rc == UC_OK) {
        int got = next_reply(k, &r, s->detail);

        if (got == 0) {
            break;
        }
        if (got < 0) {
            return UC_EPROTO;
        }
        rc = fn(t, s, r);
        freeReplyObject(r);
    }
    return rc;
}

/*
 * The running session, both connections made. Returns how it ended; a
 * late heartbeat or a write that could not go out by its deadline is
 * END_LATE, a connection's failure END_LOST.
 */
static end_t run(uc__track_t *t, sess_t *s)
{
    s->next_hb_us = now_us();
    for (;;) {
        struct pollfd p[3] = {{s->sub.c->fd, POLLIN, 0},
                              {s->hb.c->fd, POLLIN, 0},
                              {t->wake[0], POLLIN, 0}};
        uint64_t now = now_us();
        uint64_t wake_at = s->next_hb_us;
        int rc;

        if (atomic_load(&t->stopping)) {
            return END_STOP;
        }
        for (unsigned i = 0; i < t->nslots; i++) {
            uint64_t due = s->slots[i].sent_us + t->deadline_us;

            if (s->slots[i].seq == 0) {
                continue;
            }
            if (now >= due) {
                COUNT(t, heartbeats_late);
                snprintf(s->detail, DETAIL_MAX,
                         "heartbeat not back within %llu ms",
                         (unsigned long long)(t->deadline_us / 1000u));
                return END_LATE;
            }
            if (due < wake_at) {
                wake_at = due;
            }
        }
        if (now >= s->next_hb_us) {
            rc = send_heartbeat(t, s, now);
            if (rc == UC_EUNAVAILABLE) {
                return END_STOP;
            }
            if (rc != UC_OK) {
                return rc == UC_ETIMEDOUT ? END_LATE : END_LOST;
            }
            s->next_hb_us += t->hb_us;
            if (s->next_hb_us <= now) {
                s->next_hb_us = now + t->hb_us; /* after a long callback */
            }
            continue;
        }
        if (poll(p, 3, ms_until(now, wake_at)) < 0 && errno != EINTR) {
            snprintf(s->detail, DETAIL_MAX, "poll: %s", strerror(errno));
            return END_LOST;
        }
        if (p[2].revents != 0) {
            return END_STOP;
        }
        if (p[0].revents != 0 && drain(t, s, &s->sub, on_message) != UC_OK) {
            return END_LOST;
        }
        if (p[1].revents != 0 && drain(t, s, &s->hb, on_hb_reply) != UC_OK) {
            return END_LOST;
        }
    }
}

/* Makes both connections, then runs. */
static end_t session(uc__track_t *t, sess_t *s)
{
    int rc;

    memset(s, 0, sizeof(*s));
    set_state(t, UC__TRACK_CONNECTING);
    rc = open_sub(t, &s->sub, s->detail);
    if (rc == UC_OK) {
        rc = open_hb(t, &s->hb, s->detail);
    }
    if (rc == UC_EUNAVAILABLE) {
        return END_STOP;
    }
    if (rc != UC_OK) {
        uc__log_limited(t->env, &t->conn_log, UC_LOG_WARN,
                        "near-cache channel '%s': %s: %s", t->where,
                        uc_strerror(rc), s->detail);
        return END_FAILED;
    }
    COUNT(t, connects);
    return run(t, s);
}

/* The wait before attempt number `failures` (0: none), jittered in
 * [d/2, d] so that instances restarted together spread out. */
static uint64_t backoff_us(uc__track_t *t)
{
    const uc_config_t *cfg = &t->env->cfg;
    uint64_t base =
        (uint64_t)(cfg->backoff_base_ms > 0 ? cfg->backoff_base_ms : 25);
    uint64_t max =
        (uint64_t)(cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 2000);
    uint64_t d = base;

    if (t->failures == 0) {
        return 0;
    }
    for (unsigned i = 1; i < t->failures && d < max; i++) {
        d *= 2u;
    }
    if (d > max) {
        d = max;
    }
    d *= 1000u;
    return d / 2u + next_rand(&t->rng) % (d / 2u + 1u);
}

/* Sleeps, woken by stop; nonzero when stopping. */
static int sleep_us(uc__track_t *t, uint64_t us)
{
    uint64_t until = now_us() + us;

    for (;;) {
        struct pollfd p = {t->wake[0], POLLIN, 0};
        uint64_t now = now_us();

        if (atomic_load(&t->stopping)) {
            return 1;
        }
        if (now >= until) {
            return 0;
        }
        if (poll(&p, 1, ms_until(now, until)) > 0) {
            return 1;
        }
    }
}

static void *track_main(void *arg)
{
    uc__track_t *t = arg;
    sess_t sess;
    sess_t *s = &sess;

    while (!atomic_load(&t->stopping)) {
        end_t end = session(t, s);
        int was_healthy = uc__track_state(t) == UC__TRACK_HEALTHY;

        if (end != END_STOP && was_healthy) {
            /* First, before anything else: the near cache is admitting. */
            flush(t, UC__TRACK_DOWN,
                  end == END_LATE ? UC__FLUSH_HEARTBEAT : UC__FLUSH_LOST);
        }
        conn_close(&s->sub);
        conn_close(&s->hb);
        if (end == END_STOP) {
            break;
        }
        if (was_healthy) {
            uc__log_limited(t->env, &t->flush_log, UC_LOG_WARN,
                            "near-cache channel '%s': %s (%s); near cache "
                            "flushed",
                            t->where, end == END_LATE ? "late" : "lost",
                            s->detail);
            /* A channel that keeps dying young does not reconnect at once. */
            t->failures = now_us() - t->healthy_us >= SETTLED_US ? 0 : 1;
        } else {
            COUNT(t, connect_failures);
            t->failures++;
            set_state(t, UC__TRACK_DOWN);
        }
        if (sleep_us(t, backoff_us(t))) {
            break;
        }
    }
    if (uc__track_state(t) == UC__TRACK_HEALTHY) {
        flush(t, UC__TRACK_DOWN, UC__FLUSH_STOP);
    } else {
        set_state(t, UC__TRACK_DOWN);
    }
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------------
 */

static int config_error(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "near-cache channel: %s", msg);
    }
    return UC_ECONFIG;
}

int uc__track_start(const uc__env_t *env, const uc__track_opts_t *opts,
                    const uc__track_cb_t *cb, uc__track_t **out, char *err,
                    size_t errlen)
{
    const uc_config_t *cfg = &env->cfg;
    int hb_ms = opts != NULL && opts->hb_ms != 0 ? opts->hb_ms : 100;
    int dl_ms =
        opts != NULL && opts->hb_deadline_ms != 0 ? opts->hb_deadline_ms : 250;
    uint64_t id = 0;
    sigset_t all, old;
    uc__track_t *t;
    int prc;

    if (cfg->host[0] == '\0' || cfg->port < 1 || cfg->port > 65535 ||
        cfg->db < 0) {
        return config_error(err, errlen, "redis host, port or db invalid");
    }
    if (hb_ms < 1 || hb_ms > 60000 || dl_ms < 1 || dl_ms > 60000 ||
        dl_ms / hb_ms + 2 > SLOTS_MAX) {
        return config_error(err, errlen,
                            "heartbeat interval or deadline out of range");
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        goto nomem;
    }
    t->env = env;
    if (cb != NULL) {
        t->cb = *cb;
    }
    t->hb_us = (uint64_t)hb_ms * 1000u;
    t->deadline_us = (uint64_t)dl_ms * 1000u;
    t->nslots = (unsigned)(dl_ms / hb_ms + 2);
    snprintf(t->where, sizeof(t->where), "%s:%d", cfg->host, cfg->port);
    seed(t);
    id = next_rand(&t->rng);
    t->hb_any_len = (size_t)snprintf(t->hb_any, sizeof(t->hb_any), "%s%s",
                                     cfg->key_prefix, HB_INFIX);
    t->hb_own_len =
        (size_t)snprintf(t->hb_own, sizeof(t->hb_own), "%s%016llx:", t->hb_any,
                         (unsigned long long)id);
    atomic_init(&t->ticket, (uint64_t)UC__TRACK_DOWN);
    atomic_init(&t->stopping, 0);
    if (pipe(t->wake) != 0) {
        free(t);
        goto nomem;
    }
    for (int i = 0; i < 2; i++) {
        (void)fcntl(t->wake[i], F_SETFD, FD_CLOEXEC);
        (void)fcntl(t->wake[i], F_SETFL, O_NONBLOCK);
    }
    /* Every signal blocked in the thread, as the worker's: one meant for
     * the application is never run there with its default action. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    prc = pthread_create(&t->thread, NULL, track_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        close(t->wake[0]);
        close(t->wake[1]);
        free(t);
        goto nomem;
    }
    *out = t;
    return UC_OK;

nomem:
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "near-cache channel: out of memory");
    }
    return UC_ENOMEM;
}

void uc__track_stop(uc__track_t *t)
{
    char b = 1;

    if (t == NULL) {
        return;
    }
    atomic_store(&t->stopping, 1);
    while (write(t->wake[1], &b, 1) < 0 && errno == EINTR) {
    }
    pthread_join(t->thread, NULL);
    close(t->wake[0]);
    close(t->wake[1]);
    free(t);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void uc__track_stats(const uc__track_t *t, uc__track_stats_t *out)
{
    figures_t *f = &((uc__track_t *)t)->fig;
    uint64_t tk = uc__track_ticket(t);

    memset(out, 0, sizeof(*out));
    out->state = (int)UC__TRACK_TICKET_STATE(tk);
    out->epoch = UC__TRACK_TICKET_EPOCH(tk);
    out->connects = LOAD(f->connects);
    out->connect_failures = LOAD(f->connect_failures);
    out->flushes_null = LOAD(f->flushes_null);
    out->flushes_lost = LOAD(f->flushes_lost);
    out->flushes_heartbeat = LOAD(f->flushes_heartbeat);
    out->flushes_stop = LOAD(f->flushes_stop);
    out->messages = LOAD(f->messages);
    out->keys = LOAD(f->keys);
    out->heartbeats_sent = LOAD(f->heartbeats_sent);
    out->heartbeats_ok = LOAD(f->heartbeats_ok);
    out->heartbeats_late = LOAD(f->heartbeats_late);
    out->lag_max_us = LOAD(f->lag_max_us);
    for (unsigned i = 0; i < UC_HIST_BUCKETS; i++) {
        out->lag_us[i] = LOAD(f->lag_us[i]);
    }
}
