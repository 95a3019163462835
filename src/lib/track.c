/* SPDX-License-Identifier: MIT */
/*
 * The near cache's invalidation channel (track.h has the protocol and the
 * guarantee). One thread per handle drives a link per node: each link's
 * two connections go through their handshakes as small state machines
 * fed by one poll() over every socket of every link and a wake pipe; once
 * both are up the link sends its heartbeats and watches their deadlines;
 * a link that fails is closed, backs off and connects again on its own.
 * The handle's state is the combination of its links', and every change
 * of it goes through settle().
 *
 * hiredis does only three things here: connect (non-blocking), format
 * commands, parse replies. Its own I/O is never used: a blocking read
 * would hang on a stopped server, a read timeout would leave the context
 * broken, and its write() raises SIGPIPE. Reads happen after poll() said
 * the socket is readable; writes are send(MSG_NOSIGNAL | MSG_DONTWAIT)
 * from a bounded output buffer per connection.
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

#include "cluster.h"
#include "reply_guard.h"
#include "stats.h"

#define CHANNEL "__redis__:invalidate"
#define CHANNEL_LEN (sizeof(CHANNEL) - 1)
/* Below the prefix, like the dataset marker: no keyspace starts "uc:". */
#define HB_INFIX "uc:hb:"
#define HB_TTL_MS "10000"
#define ID_HEX 16
/* "<prefix>uc:hb:{<tag>}:<id>:" */
#define HB_OWN_MAX                                                             \
    (UC_PREFIX_MAX + sizeof(HB_INFIX) + UC__TRACK_TAG_MAX + 3 + ID_HEX + 2)
/* Poll slices are short so that a stop or a deadline is never far off. */
#define SLICE_MS 50
/* Bytes fed to the parser without a complete reply before the stream is
 * taken for garbage (a broadcast of a huge MSET is far below this). */
#define PENDING_MAX (16u * 1024u * 1024u)
/* Bytes a connection may have waiting to go out: a few hundred
 * heartbeats, far more than can be outstanding before one is late. */
#define OUT_MAX (64u * 1024u)
#define RECV_CHUNK 16384
/* Outstanding heartbeats each need a key of their own (track.h). */
#define SLOTS_MAX 64
/* A healthy period at least this long earns an immediate reconnect. */
#define SETTLED_US 1000000u
#define DETAIL_MAX 160
/* Candidates uc__track_pick_tag() tries. */
#define PICK_TRIES (1u << 20)

typedef struct {
    _Atomic uint64_t connects, connect_failures;
    _Atomic uint64_t flushes_null, flushes_lost, flushes_heartbeat,
        flushes_stop, flushes_topology;
    _Atomic uint64_t messages, keys;
    _Atomic uint64_t heartbeats_sent, heartbeats_ok, heartbeats_late;
    _Atomic uint64_t lag_max_us;
    _Atomic uint64_t lag_us[UC_HIST_BUCKETS];
} figures_t;

/* Where a connection is in its handshake. */
typedef enum {
    STEP_CONNECTING = 0, /* non-blocking connect in progress */
    STEP_AUTH,           /* AUTH's reply is next */
    STEP_ID,             /* CLIENT ID's */
    STEP_TRACKING,       /* CLIENT TRACKING's */
    STEP_SUBSCRIBE,      /* the subscribe ack */
    STEP_SELECT,         /* SELECT's */
    STEP_READY,          /* handshake done */
} step_t;

/* One connection: hiredis' context for its fd and parser, and what is
 * still to go out. */
typedef struct {
    redisContext *c; /* NULL: closed */
    size_t pending;  /* bytes fed since the last complete reply */
    uc__reply_guard_t guard;
    step_t step;
    uint64_t deadline; /* of the step in progress; 0 once READY */
    char *out;
    size_t olen, ocap;
} conn_t;

typedef struct {
    uint64_t seq; /* 0: free */
    uint64_t sent_us;
} slot_t;

/* A link's figures, read by uc__track_node_stats() from any thread. */
typedef struct {
    _Atomic int state;
    _Atomic uint64_t heartbeats_ok, flushes_lost, flushes_heartbeat;
    _Atomic uint64_t lag_last_us, reconnects;
} link_fig_t;

/* One node's pair of connections. */
typedef struct {
    uc__track_node_t node; /* never changes */
    char where[UC_HOST_MAX + 16];
    /* "<prefix>uc:hb:[{<tag>}:]<id>:": this link's heartbeat keys. */
    char hb_own[HB_OWN_MAX];
    size_t hb_own_len;
    link_fig_t fig;
    uc__ratelog_t conn_log, flush_log, hb_log;

    /* The thread's own. */
    conn_t sub, hb;
    int ready;           /* both handshakes done: heartbeats run */
    int up;              /* a heartbeat came back in this session */
    uint64_t retry_at;   /* while DOWN: when to connect again */
    uint64_t since_us;   /* heartbeats sent before this prove nothing */
    uint64_t proven_us;  /* when the newest heartbeat back was sent */
    unsigned failures;   /* consecutive sessions that missed HEALTHY */
    uint64_t healthy_us; /* when this session's first heartbeat came back */
    uint64_t sessions;
    uint64_t hb_seq, next_hb_us;
    /* A heartbeat sent for uc__track_barrier(): its seq while it is out
     * (one at a time), and the newest request it or an earlier one served. */
    uint64_t demand_seq, demand_served;
    slot_t slots[SLOTS_MAX];
    char detail[DETAIL_MAX];
} link_t;

struct uc__track {
    const uc__env_t *env;
    uc__track_cb_t cb;
    uint64_t hb_us, deadline_us;
    unsigned nslots;
    uint64_t id;
    /* "<prefix>uc:hb:": any instance's and any link's heartbeat keys. */
    char hb_any[UC_PREFIX_MAX + sizeof(HB_INFIX)];
    size_t hb_any_len;

    pthread_t thread;
    int wake[2]; /* written by stop and set_nodes, drained by the thread */
    _Atomic int stopping;
    _Atomic uint64_t ticket; /* written by the thread only */
    /* The oldest of the links' proven_us (0 while one has none): every
     * invalidation any node sent before it has been applied. */
    _Atomic uint64_t proven_us;
    /* uc__track_barrier(): the newest request's time, its waiters, and
     * what they wait on (bmu guards nothing but the wait itself). */
    _Atomic uint64_t demand_us;
    _Atomic unsigned bwaiters;
    pthread_mutex_t bmu;
    pthread_cond_t bcv;
    figures_t fig;
    uc__ratelog_t up_log, topo_log;

    /* mu guards pending and the array of links. The thread is the array's
     * only writer and reads it without the lock. */
    pthread_mutex_t mu;
    uc__track_node_t *pending; /* the newest set not yet applied */
    size_t npending;
    link_t *links[UC__TRACK_NODES_MAX];
    size_t nlinks;

    /* The thread's own. */
    uint64_t rng;
};

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
    case UC__FLUSH_TOPOLOGY:
        return "topology";
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
    uint64_t proven = atomic_load(&((uc__track_t *)t)->proven_us);

    return proven != 0 && now_us() - proven <= t->hb_us + t->deadline_us;
}

uint64_t uc__track_epoch(const uc__track_t *t)
{
    return UC__TRACK_TICKET_EPOCH(uc__track_ticket(t));
}

static void wake(uc__track_t *t);

int uc__track_barrier(uc__track_t *t, int timeout_ms)
{
    uint64_t t0 = now_us();
    uint64_t want = atomic_load(&t->demand_us);
    struct timespec ts;
    int done = 0;

    if (uc__track_state(t) != UC__TRACK_HEALTHY) {
        return 0;
    }
    while (want < t0 &&
           !atomic_compare_exchange_weak(&t->demand_us, &want, t0)) {
    }
    ts = uc__deadline(CLOCK_MONOTONIC, (uint64_t)timeout_ms);
    atomic_fetch_add(&t->bwaiters, 1);
    wake(t);
    pthread_mutex_lock(&t->bmu);
    for (;;) {
        /* Every link's newest heartbeat back was sent after t0. */
        done = atomic_load(&t->proven_us) > t0;
        if (done || atomic_load(&t->stopping) ||
            uc__track_state(t) != UC__TRACK_HEALTHY ||
            pthread_cond_timedwait(&t->bcv, &t->bmu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&t->bmu);
    atomic_fetch_sub(&t->bwaiters, 1);
    return done || atomic_load(&t->proven_us) > t0;
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
    case UC__FLUSH_TOPOLOGY:
        COUNT(t, flushes_topology);
        break;
    }
    if (t->cb.on_flush != NULL) {
        t->cb.on_flush(t->cb.arg, why);
    }
}

static uc__track_state_t link_state(const link_t *l)
{
    return (uc__track_state_t)atomic_load_explicit(&l->fig.state,
                                                   memory_order_relaxed);
}

static void set_link_state(link_t *l, uc__track_state_t st)
{
    atomic_store_explicit(&l->fig.state, (int)st, memory_order_relaxed);
}

/* The lowest of the links' states (track.h). */
static uc__track_state_t combined(const uc__track_t *t)
{
    uc__track_state_t st = UC__TRACK_HEALTHY;

    for (size_t i = 0; i < t->nlinks; i++) {
        uc__track_state_t ls = link_state(t->links[i]);

        if (ls < st) {
            st = ls;
        }
    }
    return st;
}

/* Publishes the oldest proof over the links as the handle's. */
static void update_proven(uc__track_t *t)
{
    uint64_t oldest = UINT64_MAX;

    for (size_t i = 0; i < t->nlinks; i++) {
        if (t->links[i]->proven_us < oldest) {
            oldest = t->links[i]->proven_us;
        }
    }
    atomic_store(&t->proven_us, oldest == UINT64_MAX ? 0 : oldest);
}

static void become_healthy(uc__track_t *t)
{
    set_state(t, UC__TRACK_HEALTHY);
    if (t->nlinks == 1) {
        uc__log_limited(t->env, &t->up_log, UC_LOG_INFO,
                        "near-cache channel '%s': healthy", t->links[0]->where);
    } else {
        uc__log_limited(t->env, &t->up_log, UC_LOG_INFO,
                        "near-cache channel: healthy on %zu nodes", t->nlinks);
    }
    if (t->cb.on_healthy != NULL) {
        t->cb.on_healthy(t->cb.arg);
    }
}

/*
 * Brings the ticket's state in line with the links' after one of them
 * changed; leaving HEALTHY is a flush for `why`. Returns 1 when it flushed.
 */
static int settle(uc__track_t *t, uc__flush_reason_t why)
{
    uc__track_state_t want = combined(t);
    uc__track_state_t have = uc__track_state(t);

    if (want == have) {
        return 0;
    }
    if (have == UC__TRACK_HEALTHY) {
        flush(t, want, why);
        return 1;
    }
    if (want == UC__TRACK_HEALTHY) {
        become_healthy(t);
    } else {
        set_state(t, want);
    }
    return 0;
}

/* ---- I/O -------------------------------------------------------------------
 */

static void conn_close(conn_t *k)
{
    redisFree(k->c); /* accepts NULL */
    free(k->out);
    memset(k, 0, sizeof(*k));
}

static int ms_until(uint64_t now, uint64_t deadline)
{
    uint64_t us = deadline > now ? deadline - now : 0;
    uint64_t ms = (us + 999u) / 1000u;

    return ms > SLICE_MS ? SLICE_MS : (int)ms;
}

/* Sends what k has waiting, as far as the socket takes it. UC_OK or UC_EIO
 * (detail set). */
static int conn_flush(conn_t *k, char *detail)
{
    size_t off = 0;
    int rc = UC_OK;

    while (off < k->olen) {
        ssize_t n = send(k->c->fd, k->out + off, k->olen - off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        snprintf(detail, DETAIL_MAX, "write: %s",
                 n < 0 ? strerror(errno) : "nothing written");
        rc = UC_EIO;
        break;
    }
    memmove(k->out, k->out + off, k->olen - off);
    k->olen -= off;
    return rc;
}

/*
 * Queues one command on k and sends what the socket takes at once; the
 * rest goes out as poll() says it can. UC_OK, UC_ENOMEM, or UC_EIO (a
 * write failed, or more than OUT_MAX would be waiting: the server reads
 * nothing).
 */
static int conn_send(conn_t *k, int argc, const char **argv, const size_t *lens,
                     char *detail)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);

    if (len < 0) {
        snprintf(detail, DETAIL_MAX, "out of memory");
        return UC_ENOMEM;
    }
    if (k->olen + (size_t)len > OUT_MAX) {
        redisFreeCommand(cmd);
        snprintf(detail, DETAIL_MAX, "server reads nothing (%zu bytes queued)",
                 k->olen);
        return UC_EIO;
    }
    if (k->olen + (size_t)len > k->ocap) {
        size_t cap = k->ocap > 0 ? k->ocap : 512;
        char *p;

        while (cap < k->olen + (size_t)len) {
            cap *= 2u;
        }
        p = realloc(k->out, cap);
        if (p == NULL) {
            redisFreeCommand(cmd);
            snprintf(detail, DETAIL_MAX, "out of memory");
            return UC_ENOMEM;
        }
        k->out = p;
        k->ocap = cap;
    }
    memcpy(k->out + k->olen, cmd, (size_t)len);
    k->olen += (size_t)len;
    redisFreeCommand(cmd);
    return conn_flush(k, detail);
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

/* UC_OK for +OK, else the status for `what`'s reply. */
static int expect_ok(const redisReply *r, const char *what, char *detail)
{
    int rc;

    if (r->type == REDIS_REPLY_STATUS && is_str(r, "OK")) {
        return UC_OK;
    }
    rc = reply_status(r, what, detail);
    if (rc == UC_ESERVER && strcmp(what, "AUTH") == 0) {
        rc = UC_EAUTH; /* "ERR ... no password is set" and the like */
    }
    return rc;
}

/* ---- handshakes ------------------------------------------------------------
 */

static uint64_t cmd_deadline(const uc__track_t *t, uint64_t now)
{
    return now + (uint64_t)cfg_ms(t->env->cfg.command_timeout_ms, 250) * 1000u;
}

/* Starts a non-blocking connect of k to l's node. UC_OK or a status. */
static int conn_open(uc__track_t *t, link_t *l, conn_t *k, uint64_t now)
{
    int ms = cfg_ms(t->env->cfg.connect_timeout_ms, 250);

    memset(k, 0, sizeof(*k));
    k->c = redisConnectNonBlock(l->node.host, l->node.port);
    if (k->c == NULL) {
        snprintf(l->detail, DETAIL_MAX, "connect: out of memory");
        return UC_ENOMEM;
    }
    if (k->c->err != 0) {
        snprintf(l->detail, DETAIL_MAX, "connect: %s", k->c->errstr);
        return strstr(k->c->errstr, "refused") != NULL ? UC_ECONNREFUSED
               : strstr(k->c->errstr, "not known") != NULL ||
                       strstr(k->c->errstr, "resolution") != NULL
                   ? UC_ERESOLVE
                   : UC_EIO;
    }
    /* hiredis made the socket non-blocking; a child the host starts has no
     * business with it. */
    (void)fcntl(k->c->fd, F_SETFD, FD_CLOEXEC);
    uc__reply_guard_install(k->c->reader, &k->guard);
    k->step = STEP_CONNECTING;
    k->deadline = now + (uint64_t)ms * 1000u;
    return UC_OK;
}

/* Queues AUTH when configured; 1 when it did, 0 when not, or a status. */
static int send_auth(const uc_config_t *cfg, conn_t *k, char *detail)
{
    const char *argv[3];
    size_t lens[3];
    int n = 0;
    int rc;

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
    rc = conn_send(k, n, argv, lens, detail);
    return rc == UC_OK ? 1 : rc;
}

/* Both handshakes are done: the session is up and heartbeats start. */
static void link_ready(uc__track_t *t, link_t *l, uint64_t now)
{
    l->ready = 1;
    l->since_us = now;
    l->next_hb_us = now;
    COUNT(t, connects);
    if (++l->sessions > 1) {
        atomic_fetch_add_explicit(&l->fig.reconnects, 1, memory_order_relaxed);
    }
}

/* The subscriber's connect completed: AUTH + CLIENT ID in one round trip. */
static int sub_connected(uc__track_t *t, link_t *l, uint64_t now)
{
    const char *argv[2] = {"CLIENT", "ID"};
    size_t lens[2] = {6, 2};
    int authed = send_auth(&t->env->cfg, &l->sub, l->detail);

    if (authed < 0) {
        return authed;
    }
    l->sub.step = authed ? STEP_AUTH : STEP_ID;
    l->sub.deadline = cmd_deadline(t, now);
    return conn_send(&l->sub, 2, argv, lens, l->detail);
}

/* The heartbeat connection's connect completed: AUTH + SELECT, each only
 * when configured, in one round trip. */
static int hb_connected(uc__track_t *t, link_t *l, uint64_t now)
{
    const uc_config_t *cfg = &t->env->cfg;
    char dbs[16];
    const char *argv[2] = {"SELECT", dbs};
    size_t lens[2] = {6, 0};
    int authed = send_auth(cfg, &l->hb, l->detail);

    if (authed < 0) {
        return authed;
    }
    l->hb.deadline = cmd_deadline(t, now);
    if (cfg->db != 0) {
        int rc;

        lens[1] = (size_t)snprintf(dbs, sizeof(dbs), "%d", cfg->db);
        rc = conn_send(&l->hb, 2, argv, lens, l->detail);
        if (rc != UC_OK) {
            return rc;
        }
    }
    l->hb.step = authed ? STEP_AUTH : cfg->db != 0 ? STEP_SELECT : STEP_READY;
    if (l->hb.step == STEP_READY) {
        l->hb.deadline = 0;
        if (l->sub.step == STEP_READY) {
            link_ready(t, l, now);
        }
    }
    return UC_OK;
}

/* CLIENT ID came back as id: tracking, then the subscription. */
static int sub_track(uc__track_t *t, link_t *l, long long id, uint64_t now)
{
    const uc_config_t *cfg = &t->env->cfg;
    char idbuf[24];
    const char *tr_argv[8] = {"CLIENT", "TRACKING", "on",     "REDIRECT",
                              idbuf,    "BCAST",    "PREFIX", cfg->key_prefix};
    size_t tr_lens[8] = {6, 8, 2, 8, 0, 5, 6, strlen(cfg->key_prefix)};
    /* No PREFIX at all for an empty prefix: broadcast of every key. */
    int tr_argc = cfg->key_prefix[0] != '\0' ? 8 : 6;
    const char *sub_argv[2] = {"SUBSCRIBE", CHANNEL};
    size_t sub_lens[2] = {9, CHANNEL_LEN};
    int rc;

    tr_lens[4] = (size_t)snprintf(idbuf, sizeof(idbuf), "%lld", id);
    l->sub.step = STEP_TRACKING;
    l->sub.deadline = cmd_deadline(t, now);
    rc = conn_send(&l->sub, tr_argc, tr_argv, tr_lens, l->detail);
    return rc == UC_OK ? conn_send(&l->sub, 2, sub_argv, sub_lens, l->detail)
                       : rc;
}

/* ---- the running link ------------------------------------------------------
 */

static void ack(uc__track_t *t, link_t *l, unsigned slot, uint64_t now)
{
    slot_t *sl;
    uint64_t lag, max;

    if (slot >= t->nslots || l->slots[slot].seq == 0) {
        return; /* an older write's expiry, or another session's */
    }
    sl = &l->slots[slot];
    if (sl->seq == l->demand_seq) {
        l->demand_seq = 0;
    }
    lag = now - sl->sent_us;
    if (sl->sent_us > l->proven_us) {
        l->proven_us = sl->sent_us;
        update_proven(t);
    }
    sl->seq = 0;
    COUNT(t, heartbeats_ok);
    atomic_fetch_add_explicit(&l->fig.heartbeats_ok, 1, memory_order_relaxed);
    atomic_store_explicit(&l->fig.lag_last_us, lag, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->fig.lag_us[uc__hist_bucket(lag)], 1,
                              memory_order_relaxed);
    max = atomic_load_explicit(&t->fig.lag_max_us, memory_order_relaxed);
    if (lag > max) {
        atomic_store_explicit(&t->fig.lag_max_us, lag, memory_order_relaxed);
    }
    if (t->cb.on_heartbeat != NULL) {
        t->cb.on_heartbeat(t->cb.arg, lag);
    }
    if (!l->up) {
        l->up = 1;
        l->failures = 0;
        l->healthy_us = now;
    }
    if (link_state(l) != UC__TRACK_HEALTHY && sl->sent_us >= l->since_us) {
        set_link_state(l, UC__TRACK_HEALTHY);
        (void)settle(t, UC__FLUSH_LOST); /* only ever towards HEALTHY */
    }
}

/* A heartbeat key: this link's acknowledges its slot; every one is kept
 * from on_keys. Nonzero when key was a heartbeat key. */
static int heartbeat_key(uc__track_t *t, link_t *l, const char *key,
                         size_t klen, uint64_t now)
{
    unsigned slot = 0;

    if (!starts_with(key, klen, t->hb_any, t->hb_any_len)) {
        return 0;
    }
    if (starts_with(key, klen, l->hb_own, l->hb_own_len) &&
        klen > l->hb_own_len && klen - l->hb_own_len <= 2) {
        for (size_t i = l->hb_own_len; i < klen; i++) {
            if (key[i] < '0' || key[i] > '9') {
                return 1;
            }
            slot = slot * 10u + (unsigned)(key[i] - '0');
        }
        ack(t, l, slot, now);
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
 * One message on a subscribed link. UC_OK, or UC_EPROTO for anything that
 * is not a message on the channel (nothing else is expected once
 * subscribed).
 */
static int on_message(uc__track_t *t, link_t *l, const redisReply *r)
{
    const redisReply *p;
    const char *keys[UC__TRACK_KEYS_BATCH];
    size_t lens[UC__TRACK_KEYS_BATCH];
    size_t n = 0;
    uint64_t now = now_us();

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        !is_str(r->element[0], "message") || !is_str(r->element[1], CHANNEL)) {
        snprintf(l->detail, DETAIL_MAX, "unexpected reply on the subscriber");
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
        snprintf(l->detail, DETAIL_MAX, "unexpected invalidation payload");
        return UC_EPROTO;
    }
    COUNT(t, messages);
    for (size_t i = 0; i < p->elements; i++) {
        const redisReply *k = p->element[i];

        if (k->type != REDIS_REPLY_STRING) {
            snprintf(l->detail, DETAIL_MAX, "unexpected invalidated key");
            return UC_EPROTO;
        }
        if (heartbeat_key(t, l, k->str, k->len, now)) {
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

/* One reply on the subscriber, in whatever step it is. UC_OK or a status. */
static int sub_reply(uc__track_t *t, link_t *l, const redisReply *r,
                     uint64_t now)
{
    int rc;

    switch (l->sub.step) {
    case STEP_AUTH:
        rc = expect_ok(r, "AUTH", l->detail);
        l->sub.step = STEP_ID;
        return rc;
    case STEP_ID:
        if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
            return reply_status(r, "CLIENT ID", l->detail);
        }
        return sub_track(t, l, r->integer, now);
    case STEP_TRACKING:
        rc = expect_ok(r, "CLIENT TRACKING", l->detail);
        l->sub.step = STEP_SUBSCRIBE;
        return rc;
    case STEP_SUBSCRIBE:
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            !is_str(r->element[0], "subscribe") ||
            !is_str(r->element[1], CHANNEL)) {
            return reply_status(r, "SUBSCRIBE", l->detail);
        }
        l->sub.step = STEP_READY;
        l->sub.deadline = 0;
        if (l->hb.step == STEP_READY) {
            link_ready(t, l, now);
        }
        return UC_OK;
    case STEP_READY:
        return on_message(t, l, r);
    default:
        snprintf(l->detail, DETAIL_MAX, "reply before the connect completed");
        return UC_EPROTO;
    }
}

/* One reply to the heartbeat connection's handshake. UC_OK or a status. */
static int hb_handshake_reply(uc__track_t *t, link_t *l, const redisReply *r,
                              uint64_t now)
{
    int rc;

    if (l->hb.step == STEP_AUTH) {
        rc = expect_ok(r, "AUTH", l->detail);
        l->hb.step = t->env->cfg.db != 0 ? STEP_SELECT : STEP_READY;
    } else if (l->hb.step == STEP_SELECT) {
        rc = expect_ok(r, "SELECT", l->detail);
        l->hb.step = STEP_READY;
    } else {
        snprintf(l->detail, DETAIL_MAX, "reply before the connect completed");
        return UC_EPROTO;
    }
    if (rc == UC_OK && l->hb.step == STEP_READY) {
        l->hb.deadline = 0;
        if (l->sub.step == STEP_READY) {
            link_ready(t, l, now);
        }
    }
    return rc;
}

/* One reply on the heartbeat connection: UC_OK or a status. A refused
 * SET (-OOM under noeviction, -READONLY, -MOVED) is logged; its heartbeat
 * then comes back late, which is the verdict that counts. */
static int hb_reply(uc__track_t *t, link_t *l, const redisReply *r,
                    uint64_t now)
{
    if (l->hb.step != STEP_READY) {
        return hb_handshake_reply(t, l, r, now);
    }
    if (r->type == REDIS_REPLY_STATUS && is_str(r, "OK")) {
        return UC_OK;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        uc__log_limited(t->env, &l->hb_log, UC_LOG_WARN,
                        "near-cache channel '%s': heartbeat refused: %.*s",
                        l->where, (int)(r->len < 100 ? r->len : 100), r->str);
        return UC_OK;
    }
    snprintf(l->detail, DETAIL_MAX, "unexpected reply to the heartbeat");
    return UC_EPROTO;
}

/* Writes the link's next heartbeat into a free slot. UC_OK or a status;
 * UC_ETIMEDOUT when the slot is still taken. */
static int send_heartbeat(uc__track_t *t, link_t *l, uint64_t now)
{
    uint64_t seq = ++l->hb_seq;
    unsigned slot = (unsigned)(seq % t->nslots);
    char key[HB_OWN_MAX + 4];
    char val[24];
    const char *argv[5] = {"SET", key, val, "PX", HB_TTL_MS};
    size_t lens[5] = {3, 0, 0, 2, sizeof(HB_TTL_MS) - 1};

    if (l->slots[slot].seq != 0) {
        return UC_ETIMEDOUT; /* cannot be: it would be past its deadline */
    }
    lens[1] = (size_t)snprintf(key, sizeof(key), "%s%u", l->hb_own, slot);
    lens[2] =
        (size_t)snprintf(val, sizeof(val), "%llu", (unsigned long long)seq);
    l->slots[slot].seq = seq;
    l->slots[slot].sent_us = now;
    COUNT(t, heartbeats_sent);
    return conn_send(&l->hb, 5, argv, lens, l->detail);
}

/* A heartbeat now for a barrier that no heartbeat out serves: one at a
 * time per link, and only into a free slot (the regular ones' spare), so
 * barriers never make a heartbeat late or fail a link. Its time is taken
 * after the request was read, so that it is later than the request. */
static void demand_heartbeat(uc__track_t *t, link_t *l)
{
    uint64_t want = atomic_load(&t->demand_us);
    uint64_t now;

    if (want <= l->demand_served || l->demand_seq != 0 ||
        l->slots[(l->hb_seq + 1) % t->nslots].seq != 0) {
        return;
    }
    now = now_us();
    if (now <= want) {
        now = want + 1;
    }
    if (send_heartbeat(t, l, now) == UC_OK) {
        l->demand_seq = l->hb_seq;
        l->demand_served = want;
    }
}

/* The wait before attempt number `failures` (0: none), jittered in
 * [d/2, d] so that instances restarted together spread out. */
static uint64_t backoff_us(uc__track_t *t, unsigned failures)
{
    const uc_config_t *cfg = &t->env->cfg;
    uint64_t base =
        (uint64_t)(cfg->backoff_base_ms > 0 ? cfg->backoff_base_ms : 25);
    uint64_t max =
        (uint64_t)(cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 2000);
    uint64_t d = base;

    if (failures == 0) {
        return 0;
    }
    for (unsigned i = 1; i < failures && d < max; i++) {
        d *= 2u;
    }
    if (d > max) {
        d = max;
    }
    d *= 1000u;
    return d / 2u + next_rand(&t->rng) % (d / 2u + 1u);
}

/* Closes l's session without a verdict (a removed node, a stop). */
static void link_close(link_t *l)
{
    conn_close(&l->sub);
    conn_close(&l->hb);
    l->ready = 0;
    l->up = 0;
    l->demand_seq = 0;
    memset(l->slots, 0, sizeof(l->slots));
}

/*
 * l's session failed with rc (l->detail says how): late when a heartbeat
 * missed its deadline. The handle leaves HEALTHY first, before anything
 * else (the near cache is admitting), then l closes and backs off.
 */
static void link_fail(uc__track_t *t, link_t *l, int late, int rc, uint64_t now)
{
    int was_up = l->up;
    int flushed;

    set_link_state(l, UC__TRACK_DOWN);
    flushed = settle(t, late ? UC__FLUSH_HEARTBEAT : UC__FLUSH_LOST);
    if (flushed) {
        atomic_fetch_add_explicit(late ? &l->fig.flushes_heartbeat
                                       : &l->fig.flushes_lost,
                                  1, memory_order_relaxed);
    }
    link_close(l);
    if (was_up) {
        uc__log_limited(t->env, &l->flush_log, UC_LOG_WARN,
                        "near-cache channel '%s': %s (%s)%s", l->where,
                        late ? "late" : "lost", l->detail,
                        flushed ? "; near cache flushed" : "");
        /* A link that keeps dying young does not reconnect at once. */
        l->failures = now - l->healthy_us >= SETTLED_US ? 0 : 1;
    } else {
        uc__log_limited(t->env, &l->conn_log, UC_LOG_WARN,
                        "near-cache channel '%s': %s: %s", l->where,
                        uc_strerror(rc), l->detail);
        COUNT(t, connect_failures);
        l->failures++;
    }
    l->retry_at = now + backoff_us(t, l->failures);
}

/* Both connections of l start connecting. */
static void link_connect(uc__track_t *t, link_t *l, uint64_t now)
{
    int rc = conn_open(t, l, &l->sub, now);

    if (rc == UC_OK) {
        rc = conn_open(t, l, &l->hb, now);
    }
    set_link_state(l, UC__TRACK_CONNECTING);
    (void)settle(t, UC__FLUSH_LOST);
    if (rc != UC_OK) {
        link_fail(t, l, 0, rc, now);
    }
}

static void earliest(uint64_t *at, uint64_t when)
{
    if (when != 0 && when < *at) {
        *at = when;
    }
}

/*
 * What is due on l by the clock: a connect to start, a handshake step or
 * a heartbeat past its deadline, a heartbeat to send. Lowers *wake_at to
 * the next such time.
 */
static void link_tick(uc__track_t *t, link_t *l, uint64_t now,
                      uint64_t *wake_at)
{
    conn_t *ks[2] = {&l->sub, &l->hb};

    if (l->sub.c == NULL) {
        if (now < l->retry_at) {
            earliest(wake_at, l->retry_at);
            return;
        }
        link_connect(t, l, now);
        if (l->sub.c == NULL) {
            earliest(wake_at, l->retry_at);
            return;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (ks[i]->deadline != 0 && now >= ks[i]->deadline) {
            if (ks[i]->step == STEP_CONNECTING) {
                snprintf(l->detail, DETAIL_MAX, "connect: timed out");
            } else {
                snprintf(l->detail, DETAIL_MAX, "no reply within %d ms",
                         cfg_ms(t->env->cfg.command_timeout_ms, 250));
            }
            link_fail(t, l, 0, UC_ETIMEDOUT, now);
            earliest(wake_at, l->retry_at);
            return;
        }
        earliest(wake_at, ks[i]->deadline);
    }
    if (!l->ready) {
        return;
    }
    for (unsigned i = 0; i < t->nslots; i++) {
        uint64_t due = l->slots[i].sent_us + t->deadline_us;

        if (l->slots[i].seq == 0) {
            continue;
        }
        if (now >= due) {
            COUNT(t, heartbeats_late);
            snprintf(l->detail, DETAIL_MAX, "heartbeat not back within %llu ms",
                     (unsigned long long)(t->deadline_us / 1000u));
            link_fail(t, l, 1, UC_ETIMEDOUT, now);
            earliest(wake_at, l->retry_at);
            return;
        }
        earliest(wake_at, due);
    }
    demand_heartbeat(t, l);
    if (now >= l->next_hb_us) {
        int rc = send_heartbeat(t, l, now);

        if (rc != UC_OK) {
            link_fail(t, l, rc == UC_ETIMEDOUT, rc, now);
            earliest(wake_at, l->retry_at);
            return;
        }
        l->next_hb_us += t->hb_us;
        if (l->next_hb_us <= now) {
            l->next_hb_us = now + t->hb_us; /* after a long callback */
        }
    }
    earliest(wake_at, l->next_hb_us);
}

/* The poll() events k waits for. */
static short conn_events(const conn_t *k)
{
    if (k->step == STEP_CONNECTING) {
        return POLLOUT;
    }
    return (short)(POLLIN | (k->olen > 0 ? POLLOUT : 0));
}

/* k's non-blocking connect is over (the socket said so): UC_OK when it
 * made it, else the status of its error. */
static int connect_result(link_t *l, conn_t *k)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(k->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err == 0) {
        return UC_OK;
    }
    snprintf(l->detail, DETAIL_MAX, "connect: %s", strerror(err));
    return err == ECONNREFUSED ? UC_ECONNREFUSED
           : err == ETIMEDOUT  ? UC_ETIMEDOUT
                               : UC_EIO;
}

/* Handles what poll() reported for k, one of l's connections. UC_OK or
 * the status the link fails with. */
static int conn_io(uc__track_t *t, link_t *l, conn_t *k, short revents)
{
    uint64_t now = now_us();
    redisReply *r = NULL;
    int rc;

    if (k->step == STEP_CONNECTING) {
        rc = connect_result(l, k);
        if (rc != UC_OK) {
            return rc;
        }
        return k == &l->sub ? sub_connected(t, l, now)
                            : hb_connected(t, l, now);
    }
    if ((revents & POLLOUT) != 0 && k->olen > 0) {
        rc = conn_flush(k, l->detail);
        if (rc != UC_OK) {
            return rc;
        }
    }
    if ((revents & (POLLIN | POLLERR | POLLHUP)) == 0) {
        return UC_OK;
    }
    rc = fill(k, l->detail);
    while (rc == UC_OK) {
        int got = next_reply(k, &r, l->detail);

        if (got == 0) {
            break;
        }
        if (got < 0) {
            return UC_EPROTO;
        }
        rc = k == &l->sub ? sub_reply(t, l, r, now) : hb_reply(t, l, r, now);
        freeReplyObject(r);
    }
    return rc;
}

/* ---- the node set ----------------------------------------------------------
 */

static int same_node(const uc__track_node_t *a, const uc__track_node_t *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0 &&
           strcmp(a->tag, b->tag) == 0;
}

/* A new link for node, DOWN and due to connect now; NULL without memory. */
static link_t *link_new(uc__track_t *t, const uc__track_node_t *node)
{
    link_t *l = calloc(1, sizeof(*l));
    int n;

    if (l == NULL) {
        return NULL;
    }
    l->node = *node;
    snprintf(l->where, sizeof(l->where), "%s:%d", node->host, node->port);
    if (node->tag[0] != '\0') {
        n = snprintf(l->hb_own, sizeof(l->hb_own), "%s{%s}:%016llx:", t->hb_any,
                     node->tag, (unsigned long long)t->id);
    } else {
        n = snprintf(l->hb_own, sizeof(l->hb_own), "%s%016llx:", t->hb_any,
                     (unsigned long long)t->id);
    }
    l->hb_own_len = (size_t)n;
    atomic_init(&l->fig.state, (int)UC__TRACK_DOWN);
    return l;
}

static void link_free(link_t *l)
{
    if (l != NULL) {
        link_close(l);
        free(l);
    }
}

/*
 * Makes nodes[0..n) the set, keeping the links of nodes in both sets.
 * Returns UC_OK (also when nothing changed) or UC_ENOMEM, the set in
 * force then untouched.
 */
static int apply_nodes(uc__track_t *t, const uc__track_node_t *nodes, size_t n,
                       uint64_t now)
{
    link_t *next[UC__TRACK_NODES_MAX];
    link_t *gone[UC__TRACK_NODES_MAX];
    int fresh[UC__TRACK_NODES_MAX] = {0};
    int kept[UC__TRACK_NODES_MAX] = {0};
    size_t added = 0, ngone = 0;
    size_t nold = t->nlinks;
    int flushed;

    for (size_t i = 0; i < n; i++) {
        next[i] = NULL;
        for (size_t j = 0; j < nold; j++) {
            if (!kept[j] && same_node(&t->links[j]->node, &nodes[i])) {
                next[i] = t->links[j];
                kept[j] = 1;
                break;
            }
        }
        added += next[i] == NULL;
    }
    if (added == 0 && n == nold) {
        return UC_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (next[i] != NULL) {
            continue;
        }
        next[i] = link_new(t, &nodes[i]);
        if (next[i] == NULL) {
            for (size_t j = 0; j < i; j++) {
                if (fresh[j]) {
                    free(next[j]);
                }
            }
            return UC_ENOMEM;
        }
        fresh[i] = 1;
    }
    for (size_t j = 0; j < nold; j++) {
        if (!kept[j]) {
            gone[ngone++] = t->links[j];
        }
    }
    /* Kept links prove themselves again with a heartbeat sent from now. */
    for (size_t i = 0; i < n; i++) {
        if (!fresh[i] && link_state(next[i]) == UC__TRACK_HEALTHY) {
            set_link_state(next[i], UC__TRACK_CONNECTING);
        }
        next[i]->since_us = now;
    }
    pthread_mutex_lock(&t->mu);
    memcpy(t->links, next, n * sizeof(next[0]));
    t->nlinks = n;
    pthread_mutex_unlock(&t->mu);
    update_proven(t);
    flushed = settle(t, UC__FLUSH_TOPOLOGY);
    for (size_t j = 0; j < ngone; j++) {
        link_free(gone[j]);
    }
    uc__log_limited(t->env, &t->topo_log, UC_LOG_INFO,
                    "near-cache channel: %zu nodes (%zu added, %zu removed)%s",
                    n, added, ngone, flushed ? "; near cache flushed" : "");
    return UC_OK;
}

/* Applies the newest set given, if any; one that cannot be applied for
 * want of memory stays pending (unless a newer one came) for the next
 * turn. */
static void take_pending(uc__track_t *t, uint64_t now)
{
    uc__track_node_t *nodes;
    size_t n;

    pthread_mutex_lock(&t->mu);
    nodes = t->pending;
    n = t->npending;
    t->pending = NULL;
    pthread_mutex_unlock(&t->mu);
    if (nodes == NULL) {
        return;
    }
    if (apply_nodes(t, nodes, n, now) == UC_OK) {
        free(nodes);
        return;
    }
    uc__log_limited(t->env, &t->topo_log, UC_LOG_WARN,
                    "near-cache channel: node set not applied: out of memory");
    pthread_mutex_lock(&t->mu);
    if (t->pending == NULL) {
        t->pending = nodes;
        t->npending = n;
        nodes = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    free(nodes);
}

static void drain_wake(uc__track_t *t)
{
    char buf[64];

    while (read(t->wake[0], buf, sizeof(buf)) > 0) {
    }
}

/* One turn: what the clock says is due, then one poll() over every link's
 * sockets and what it reports. */
static void turn(uc__track_t *t)
{
    struct pollfd p[2 * UC__TRACK_NODES_MAX + 1];
    link_t *pl[2 * UC__TRACK_NODES_MAX + 1];
    conn_t *pk[2 * UC__TRACK_NODES_MAX + 1];
    uint64_t now = now_us();
    uint64_t wake_at = now + (uint64_t)SLICE_MS * 1000u;
    nfds_t np = 1;

    take_pending(t, now);
    for (size_t i = 0; i < t->nlinks; i++) {
        link_tick(t, t->links[i], now, &wake_at);
    }
    p[0].fd = t->wake[0];
    p[0].events = POLLIN;
    p[0].revents = 0;
    for (size_t i = 0; i < t->nlinks; i++) {
        conn_t *ks[2] = {&t->links[i]->sub, &t->links[i]->hb};

        for (int j = 0; j < 2; j++) {
            if (ks[j]->c == NULL) {
                continue;
            }
            p[np].fd = ks[j]->c->fd;
            p[np].events = conn_events(ks[j]);
            p[np].revents = 0;
            pl[np] = t->links[i];
            pk[np++] = ks[j];
        }
    }
    if (poll(p, np, ms_until(now_us(), wake_at)) <= 0) {
        return; /* a deadline, or EINTR: the next turn looks again */
    }
    if (p[0].revents != 0) {
        drain_wake(t);
    }
    for (nfds_t i = 1; i < np; i++) {
        int rc;

        /* A link that failed earlier in this turn closed both sockets. */
        if (p[i].revents == 0 || pk[i]->c == NULL ||
            atomic_load(&t->stopping)) {
            continue;
        }
        rc = conn_io(t, pl[i], pk[i], p[i].revents);
        if (rc != UC_OK) {
            link_fail(t, pl[i], 0, rc, now_us());
        }
    }
    /* After every message read in this turn was delivered: a waiter woken
     * by a heartbeat finds the keys sent before it applied. */
    if (atomic_load(&t->bwaiters) > 0) {
        pthread_mutex_lock(&t->bmu);
        pthread_cond_broadcast(&t->bcv);
        pthread_mutex_unlock(&t->bmu);
    }
}

static void *track_main(void *arg)
{
    uc__track_t *t = arg;

    while (!atomic_load(&t->stopping)) {
        turn(t);
    }
    for (size_t i = 0; i < t->nlinks; i++) {
        set_link_state(t->links[i], UC__TRACK_DOWN);
    }
    if (uc__track_state(t) == UC__TRACK_HEALTHY) {
        flush(t, UC__TRACK_DOWN, UC__FLUSH_STOP);
    } else {
        set_state(t, UC__TRACK_DOWN);
    }
    for (size_t i = 0; i < t->nlinks; i++) {
        link_close(t->links[i]);
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

/* mu, and the barrier's mutex and condition (on CLOCK_MONOTONIC, as its
 * deadlines). 0, or -1 with nothing left initialized. */
static int sync_init(uc__track_t *t)
{
    pthread_condattr_t ca;
    int rc;

    if (pthread_condattr_init(&ca) != 0) {
        return -1;
    }
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(&t->bcv, &ca);
    }
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        return -1;
    }
    if (pthread_mutex_init(&t->bmu, NULL) != 0) {
        pthread_cond_destroy(&t->bcv);
        return -1;
    }
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        pthread_mutex_destroy(&t->bmu);
        pthread_cond_destroy(&t->bcv);
        return -1;
    }
    return 0;
}

static void sync_destroy(uc__track_t *t)
{
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->bmu);
    pthread_cond_destroy(&t->bcv);
}

static void track_free(uc__track_t *t)
{
    for (size_t i = 0; i < t->nlinks; i++) {
        link_free(t->links[i]);
    }
    free(t->pending);
    free(t);
}

int uc__track_start(const uc__env_t *env, const uc__track_opts_t *opts,
                    const uc__track_cb_t *cb, uc__track_t **out, char *err,
                    size_t errlen)
{
    const uc_config_t *cfg = &env->cfg;
    int hb_ms = opts != NULL && opts->hb_ms != 0 ? opts->hb_ms : 100;
    int dl_ms =
        opts != NULL && opts->hb_deadline_ms != 0 ? opts->hb_deadline_ms : 250;
    uc__track_node_t first;
    sigset_t all, old;
    uc__track_t *t;
    int prc;

    if (cfg->host[0] == '\0' || cfg->port < 1 || cfg->port > 65535 ||
        cfg->db < 0) {
        return config_error(err, errlen, "redis host, port or db invalid");
    }
    if (hb_ms < 1 || hb_ms > 60000 || dl_ms < 1 || dl_ms > 60000 ||
        dl_ms / hb_ms + 3 > SLOTS_MAX) {
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
    /* At most dl/hb + 1 regular heartbeats are out at once, and one for a
     * barrier; replies come in order, so those out are consecutive. */
    t->nslots = (unsigned)(dl_ms / hb_ms + 3);
    seed(t);
    t->id = next_rand(&t->rng);
    t->hb_any_len = (size_t)snprintf(t->hb_any, sizeof(t->hb_any), "%s%s",
                                     cfg->key_prefix, HB_INFIX);
    atomic_init(&t->ticket, (uint64_t)UC__TRACK_DOWN);
    atomic_init(&t->stopping, 0);
    atomic_init(&t->proven_us, 0);
    atomic_init(&t->demand_us, 0);
    atomic_init(&t->bwaiters, 0);
    memset(&first, 0, sizeof(first));
    snprintf(first.host, sizeof(first.host), "%s", cfg->host);
    first.port = cfg->port;
    t->links[0] = link_new(t, &first);
    if (t->links[0] == NULL) {
        free(t);
        goto nomem;
    }
    t->nlinks = 1;
    if (sync_init(t) != 0) {
        track_free(t);
        goto nomem;
    }
    if (pipe(t->wake) != 0) {
        sync_destroy(t);
        track_free(t);
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
        sync_destroy(t);
        track_free(t);
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

static void wake(uc__track_t *t)
{
    char b = 1;

    /* A full pipe is awake enough. */
    while (write(t->wake[1], &b, 1) < 0 && errno == EINTR) {
    }
}

void uc__track_stop(uc__track_t *t)
{
    if (t == NULL) {
        return;
    }
    atomic_store(&t->stopping, 1);
    wake(t);
    pthread_join(t->thread, NULL);
    close(t->wake[0]);
    close(t->wake[1]);
    sync_destroy(t);
    track_free(t);
}

/* 1 when s is NUL-terminated within cap bytes. */
static int terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

int uc__track_set_nodes(uc__track_t *t, const uc__track_node_t *nodes, size_t n)
{
    uc__track_node_t *copy, *old;

    if (nodes == NULL || n == 0 || n > UC__TRACK_NODES_MAX) {
        return UC_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const uc__track_node_t *a = &nodes[i];

        if (!terminated(a->host, sizeof(a->host)) || a->host[0] == '\0' ||
            a->port < 1 || a->port > 65535 ||
            !terminated(a->tag, sizeof(a->tag)) ||
            strpbrk(a->tag, "{}") != NULL) {
            return UC_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (nodes[j].port == a->port &&
                strcmp(nodes[j].host, a->host) == 0) {
                return UC_EINVAL;
            }
        }
    }
    copy = malloc(n * sizeof(*copy));
    if (copy == NULL) {
        return UC_ENOMEM;
    }
    /* Field by field: the bytes after a terminator are the caller's. */
    memset(copy, 0, n * sizeof(*copy));
    for (size_t i = 0; i < n; i++) {
        snprintf(copy[i].host, sizeof(copy[i].host), "%s", nodes[i].host);
        copy[i].port = nodes[i].port;
        snprintf(copy[i].tag, sizeof(copy[i].tag), "%s", nodes[i].tag);
    }
    pthread_mutex_lock(&t->mu);
    old = t->pending;
    t->pending = copy;
    t->npending = n;
    pthread_mutex_unlock(&t->mu);
    free(old);
    wake(t);
    return UC_OK;
}

/*
 * Where the hash tag of key[0..len) starts and ends by the rule of
 * uc__key_slot(): 1 and [*lo, *hi) when one is hashed, 0 when the whole
 * key is.
 */
static int hashed_span(const char *key, size_t len, size_t *lo, size_t *hi)
{
    const char *open = memchr(key, '{', len);
    const char *close;

    if (open == NULL) {
        return 0;
    }
    close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
    if (close == NULL || close == open + 1) {
        return 0;
    }
    *lo = (size_t)(open + 1 - key);
    *hi = (size_t)(close - key);
    return 1;
}

int uc__track_pick_tag(const char *key_prefix,
                       int (*owns)(void *arg, unsigned slot), void *arg,
                       char tag[UC__TRACK_TAG_MAX])
{
    char key[UC_PREFIX_MAX + sizeof(HB_INFIX) + UC__TRACK_TAG_MAX + 3];
    size_t plen = strlen(key_prefix) + sizeof(HB_INFIX) - 1;
    size_t lo, hi;

    if (plen >= UC_PREFIX_MAX + sizeof(HB_INFIX)) {
        return UC_EINVAL;
    }
    for (unsigned i = 0; i < PICK_TRIES; i++) {
        int len =
            snprintf(key, sizeof(key), "%s" HB_INFIX "{%u}", key_prefix, i);

        /* The first '{' and the '}' after it decide; ours is the last
         * '}', so a tag always hashes, unless the prefix opens an empty
         * one. */
        if (!hashed_span(key, (size_t)len, &lo, &hi)) {
            return UC_EINVAL;
        }
        if (owns(arg, uc__key_slot(key, (size_t)len))) {
            snprintf(tag, UC__TRACK_TAG_MAX, "%u", i);
            return UC_OK;
        }
        if (hi <= plen) {
            return UC_MISS; /* the prefix's own tag: every try is alike */
        }
    }
    return UC_MISS;
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
    out->flushes_topology = LOAD(f->flushes_topology);
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

size_t uc__track_node_stats(const uc__track_t *t, uc__track_node_stat_t *out,
                            size_t cap)
{
    uc__track_t *m = (uc__track_t *)t;
    size_t n;

    pthread_mutex_lock(&m->mu);
    n = m->nlinks;
    for (size_t i = 0; i < n && i < cap; i++) {
        const link_t *l = m->links[i];
        uc__track_node_stat_t *o = &out[i];

        memset(o, 0, sizeof(*o));
        memcpy(o->host, l->node.host, sizeof(o->host));
        o->port = l->node.port;
        memcpy(o->tag, l->node.tag, sizeof(o->tag));
        o->state = LOAD(l->fig.state);
        o->heartbeats_ok = LOAD(l->fig.heartbeats_ok);
        o->flushes_lost = LOAD(l->fig.flushes_lost);
        o->flushes_heartbeat = LOAD(l->fig.flushes_heartbeat);
        o->lag_last_us = LOAD(l->fig.lag_last_us);
        o->reconnects = LOAD(l->fig.reconnects);
    }
    pthread_mutex_unlock(&m->mu);
    return n;
}
