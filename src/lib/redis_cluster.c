/* SPDX-License-Identifier: MIT */
/*
 * The redis store as the core sees it: a router over nodes (redis_node.h),
 * one per server. Standalone Redis is one node and every call goes to it;
 * on Redis Cluster a call goes to the node serving its key's hash slot.
 *
 * Mode: the first call (or the worker's tick) asks the configured host, then
 * the REDIS_CLUSTER_NODES ones, for INFO cluster; cluster_enabled:1 is
 * cluster mode, any other answer standalone. Until one answers, calls are
 * refused with UC_EUNAVAILABLE (the core then reads its loader): sending an
 * entry command to a server whose mode is unknown could judge the wrong
 * dataset marker.
 *
 * Routing: a slot table of 16384 link indices, each entry atomic, written
 * only by a refresh (under mu) or by a MOVED patch, read without a lock.
 * Links (a node with its address and role) are only ever appended, up to
 * LINKS_MAX, and live until the store is destroyed, so a reader holding a
 * link index never sees it go.
 *
 * Answers: MOVED patches the slot and asks for a refresh, then retries on
 * the new owner; ASK retries once on the target after ASKING, the map
 * unchanged; TRYAGAIN and CLUSTERDOWN back off (1, 2, 4 ... ms, in all at
 * most 20 ms) and retry, CLUSTERDOWN asking for a refresh.
 * At most TRIES redirects per call; then UC_EUNAVAILABLE. A connection
 * error asks for a refresh too: a dead primary is usually a failover in
 * progress. Refreshes run on the worker's tick (every log_tail_ms) and
 * every cluster_refresh_ms; each reads CLUSTER SHARDS from the first node
 * that answers, current primaries first, boundedly.
 *
 * Dataset trust, per node: each primary keeps its own marker, in a slot it
 * serves (a hash tag found for its highest slot, which resharding moves
 * last). A known node seen starting to serve slots after serving none (a
 * replica promoted by a failover) is distrusted at once: asynchronous
 * replication may have lost invalidations the former primary acknowledged. A
 * distrusted node answers its data calls with UC_EUNAVAILABLE, raises the
 * router's flag, and restore() drops the cache's keys on that node alone before
 * adopting it; the other nodes go on serving.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "redis_node.h"
#include "store.h"

#define LINKS_MAX UC_REDIS_NODES_MAX
#define NO_LINK 0xffffu
#define TRIES 5
#define DETECT_EVERY_US 100000u /* at most this often while unknown */
#define REFRESH_MIN_US 50000u   /* asked-for refreshes, at most this often */
#define BACKOFF_MAX_MS 20u
#define REFRESH_NOW_US 20000u /* a delete's own refresh, at most this often */

enum { MODE_UNKNOWN = 0, MODE_STANDALONE = 1, MODE_CLUSTER = 2 };

typedef struct {
    uc__backend_t *node;
    char host[UC__HOST_MAX + 1];
    int port;
    int seed; /* configured, tried when the map is unknown */
    /* From the last map (mu for writes; atomics for the stats' reads). */
    _Atomic int role; /* uc_node_role_t */
    _Atomic unsigned nslots;
    _Atomic int failed;           /* the map's health says "fail" */
    char id[UC__NODE_ID_MAX + 1]; /* mu */
    unsigned tag_slot;            /* the slot of tag; mu */
    int was_known;                /* named by an applied map before; mu */
    char tag[24];                 /* mu */
} link_t;

typedef struct {
    uc__backend_t base;
    const uc__env_t *env;
    _Atomic int mode;
    pthread_mutex_t mu; /* detection, refresh, appending links */
    link_t links[LINKS_MAX];
    _Atomic size_t nlinks;
    _Atomic uint16_t slot[UC__CLUSTER_SLOTS];
    _Atomic int want_refresh;
    uint64_t next_detect_us;     /* mu */
    uint64_t last_refresh_us;    /* mu */
    uint64_t next_periodic_us;   /* mu */
    int detected_once;           /* a detection ran to its end; mu */
    _Atomic int detect_rc;       /* why the mode is unknown: the last error */
    uc__store_node_t *announced; /* primaries last reported; mu */
    size_t nannounced;
    _Atomic uint64_t refreshes, refresh_failures, failovers, slot_moves,
        unrouted;
} cr_t;

static cr_t *cr_of(uc__backend_t *b)
{
    return (cr_t *)b;
}

static uint64_t now_us(const cr_t *cr)
{
    return uc__now_us(cr->env);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};

    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- links ---------------------------------------------------------------
 */

/* The index of the link for host:port, or -1. Lock-free. */
static int link_find(cr_t *cr, const char *host, int port)
{
    size_t n = atomic_load_explicit(&cr->nlinks, memory_order_acquire);

    for (size_t i = 0; i < n; i++) {
        if (cr->links[i].port == port && strcmp(cr->links[i].host, host) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* link_find, else a new link (mu held). -1 when full or out of memory. */
static int link_add(cr_t *cr, const char *host, int port, int seed)
{
    int i = link_find(cr, host, port);
    size_t n = atomic_load_explicit(&cr->nlinks, memory_order_relaxed);
    link_t *l;

    if (i >= 0) {
        return i;
    }
    if (n >= LINKS_MAX) {
        uc__log(cr->env, UC_LOG_WARN,
                "redis cluster: more than %d nodes; '%s:%d' is not used",
                LINKS_MAX, host, port);
        return -1;
    }
    l = &cr->links[n];
    memset(l, 0, sizeof(*l));
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    l->seed = seed;
    l->tag_slot = UC__CLUSTER_SLOTS;
    atomic_init(&l->role, UC_NODE_UNKNOWN);
    atomic_init(&l->nslots, 0);
    atomic_init(&l->failed, 0);
    if (uc__redis_node_create(cr->env, host, port, &cr->base,
                              atomic_load(&cr->mode) == MODE_CLUSTER || !seed,
                              &l->node) != UC_OK) {
        l->node = NULL;
        return -1;
    }
    atomic_store_explicit(&cr->nlinks, n + 1, memory_order_release);
    return (int)n;
}

static uc__backend_t *node_at(cr_t *cr, unsigned li)
{
    return cr->links[li].node;
}

/* The link serving the key's slot, NO_LINK when none does (yet). */
static unsigned link_for_key(cr_t *cr, const char *key, size_t klen)
{
    if (atomic_load_explicit(&cr->mode, memory_order_acquire) != MODE_CLUSTER) {
        return 0;
    }
    return atomic_load_explicit(&cr->slot[uc__key_slot(key, klen)],
                                memory_order_relaxed);
}

/* ---- topology --------------------------------------------------------------
 */

/* The smallest decimal tag whose slot is `slot`: the same on every
 * instance, so they all agree on each node's marker. */
static void tag_for_slot(unsigned slot, char *tag, size_t cap)
{
    for (unsigned long i = 0; i < 10000000ul; i++) {
        int n = snprintf(tag, cap, "%lu", i);

        if (uc__key_slot(tag, (size_t)n) == slot) {
            return;
        }
    }
    snprintf(tag, cap, "%s", ""); /* not reached: every slot has one */
}

/* Nonzero when the two announced sets differ. */
static int nodes_differ(const uc__store_node_t *a, size_t na,
                        const uc__store_node_t *b, size_t nb)
{
    if (na != nb) {
        return 1;
    }
    for (size_t i = 0; i < na; i++) {
        if (a[i].port != b[i].port || strcmp(a[i].host, b[i].host) != 0 ||
            strcmp(a[i].tag, b[i].tag) != 0) {
            return 1;
        }
    }
    return 0;
}

/* The primaries serving slots, for on_nodes (mu held). */
static void announce_locked(cr_t *cr, int force)
{
    size_t n = atomic_load(&cr->nlinks), k = 0;
    uc__store_node_t *set;

    if (atomic_load(&cr->mode) != MODE_CLUSTER) {
        return;
    }
    set = calloc(n > 0 ? n : 1, sizeof(*set));
    if (set == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const link_t *l = &cr->links[i];

        if (atomic_load(&l->role) == UC_NODE_PRIMARY &&
            atomic_load(&l->nslots) > 0) {
            snprintf(set[k].host, sizeof(set[k].host), "%s", l->host);
            set[k].port = l->port;
            snprintf(set[k].tag, sizeof(set[k].tag), "%s", l->tag);
            k++;
        }
    }
    if (!force && !nodes_differ(set, k, cr->announced, cr->nannounced)) {
        free(set);
        return;
    }
    free(cr->announced);
    cr->announced = set;
    cr->nannounced = k;
    if (cr->base.on_nodes != NULL && k > 0) {
        cr->base.on_nodes(cr->base.on_nodes_arg, set, k);
    }
}

/*
 * Applies a slot map (mu held): links for its nodes, roles, the slot
 * table, failovers, each primary's marker tag, and the announcement.
 */
static void apply_map(cr_t *cr, const uc__slotmap_t *m, const char *from_host)
{
    size_t nn = uc__slotmap_nnodes(m);
    int *li = calloc(nn, sizeof(*li));
    unsigned had[LINKS_MAX]; /* slots each link served before this map */
    int first = atomic_load(&cr->refreshes) == 0;
    unsigned top[LINKS_MAX];
    unsigned count[LINKS_MAX];
    size_t nl;

    if (li == NULL) {
        return;
    }
    nl = atomic_load(&cr->nlinks);
    for (size_t i = 0; i < LINKS_MAX; i++) {
        had[i] = i < nl ? atomic_load(&cr->links[i].nslots) : 0;
    }
    for (size_t i = 0; i < nn; i++) {
        const uc__cluster_node_t *nd = uc__slotmap_node(m, i);
        const char *host = nd->host[0] != '\0' ? nd->host : from_host;

        li[i] = nd->port > 0 ? link_add(cr, host, nd->port, 0) : -1;
        if (li[i] >= 0) {
            snprintf(cr->links[li[i]].id, sizeof(cr->links[li[i]].id), "%s",
                     nd->id);
            atomic_store(&cr->links[li[i]].failed,
                         nd->health == UC__HEALTH_FAILED);
        }
    }
    nl = atomic_load(&cr->nlinks);
    memset(count, 0, sizeof(count));
    for (size_t i = 0; i < LINKS_MAX; i++) {
        top[i] = UC__CLUSTER_SLOTS;
    }
    for (unsigned s = 0; s < UC__CLUSTER_SLOTS; s++) {
        int p = uc__slotmap_primary(m, s);
        unsigned to = p >= 0 && li[p] >= 0 ? (unsigned)li[p] : NO_LINK;
        unsigned old = atomic_load_explicit(&cr->slot[s], memory_order_relaxed);

        if (to != NO_LINK) {
            count[to]++;
            top[to] = s; /* ascending: the last is the highest */
        }
        if (to != old) {
            if (old != NO_LINK && to != NO_LINK) {
                atomic_fetch_add(&cr->slot_moves, 1);
            }
            atomic_store_explicit(&cr->slot[s], (uint16_t)to,
                                  memory_order_relaxed);
        }
    }
    for (size_t i = 0; i < nl; i++) {
        link_t *l = &cr->links[i];
        int role = UC_NODE_UNKNOWN;

        for (size_t j = 0; j < nn; j++) {
            if (li[j] == (int)i) {
                role = uc__slotmap_node(m, j)->role == UC__NODE_PRIMARY
                           ? UC_NODE_PRIMARY
                           : UC_NODE_REPLICA;
            }
        }
        if (!first && (count[i] != had[i] || role != atomic_load(&l->role))) {
            uc__log(cr->env, UC_LOG_INFO,
                    "redis cluster: '%s' is now a %s serving %u slots "
                    "(was %u)",
                    uc__redis_node_where(l->node),
                    role == UC_NODE_PRIMARY   ? "primary"
                    : role == UC_NODE_REPLICA ? "replica"
                                              : "node out of the map",
                    count[i], had[i]);
        }
        atomic_store(&l->role, role);
        atomic_store(&l->nslots, count[i]);
        if (role == UC_NODE_PRIMARY && count[i] > 0) {
            if (top[i] != l->tag_slot) {
                l->tag_slot = top[i];
                tag_for_slot(top[i], l->tag, sizeof(l->tag));
                uc__redis_node_set_tag(l->node, l->tag);
            }
            /* A known node that served nothing and now serves slots took
             * them over: a failover (a replica promoted, perhaps seen as
             * a primary without slots on the way). On the first map every
             * node is new, and the marker check judges them. */
            if (!first && had[i] == 0 && l->was_known) {
                atomic_fetch_add(&cr->failovers, 1);
                uc__log(cr->env, UC_LOG_WARN,
                        "redis cluster: '%s' took over %u slots; its "
                        "dataset is checked and the cache's keys on it "
                        "dropped before use",
                        uc__redis_node_where(l->node), count[i]);
                uc__redis_node_distrust(l->node);
            }
        }
        l->was_known = l->was_known || role != UC_NODE_UNKNOWN;
    }
    free(li);
    announce_locked(cr, 0);
}

/* Nonzero when the call's status says the node may be gone. */
static int node_trouble(int rc)
{
    return rc == UC_EIO || rc == UC_ETIMEDOUT || rc == UC_ECONNREFUSED ||
           rc == UC_EPROTO || rc == UC_ERESOLVE;
}

/* Asks one node for the map; UC_OK when applied. */
static int refresh_from(cr_t *cr, unsigned i)
{
    const char *argv[2] = {"CLUSTER", "SHARDS"};
    size_t lens[2] = {7, 6};
    redisReply *r = NULL;
    uc__slotmap_t *m = NULL;
    char err[160];
    int rc = uc__redis_node_command(node_at(cr, i), 2, argv, lens, &r);

    if (rc != UC_OK) {
        return rc;
    }
    rc = uc__slotmap_from_shards(r, &m, err, sizeof(err));
    freeReplyObject(r);
    if (rc != UC_OK) {
        uc__log(cr->env, UC_LOG_WARN, "redis cluster: slot map from '%s': %s",
                uc__redis_node_where(node_at(cr, i)), err);
        return rc;
    }
    apply_map(cr, m, cr->links[i].host);
    uc__slotmap_free(m);
    atomic_fetch_add(&cr->refreshes, 1);
    return UC_OK;
}

/*
 * Reads the map again (mu held): current primaries first, then the seeds,
 * then any other node; stops at the first that answers, and after a
 * bounded time (each attempt is bounded by the connect and command
 * timeouts; a node whose breaker is open answers at once).
 */
static int refresh_locked(cr_t *cr)
{
    const uc_config_t *cfg = &cr->env->cfg;
    uint64_t start = now_us(cr);
    uint64_t budget =
        2u * (uint64_t)(cfg->connect_timeout_ms + cfg->command_timeout_ms) *
        1000u;
    size_t n = atomic_load(&cr->nlinks);
    int rc = UC_EUNAVAILABLE;

    atomic_store(&cr->want_refresh, 0);
    cr->last_refresh_us = start;
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < n; i++) {
            const link_t *l = &cr->links[i];
            int primary = atomic_load(&l->role) == UC_NODE_PRIMARY;

            if ((pass == 0 && !primary) ||
                (pass == 1 && (primary || !l->seed)) ||
                (pass == 2 && (primary || l->seed))) {
                continue;
            }
            if (now_us(cr) - start > budget) {
                goto done;
            }
            rc = refresh_from(cr, (unsigned)i);
            if (rc == UC_OK) {
                return UC_OK;
            }
        }
    }

done:
    atomic_fetch_add(&cr->refresh_failures, 1);
    return rc;
}

/* ---- mode ------------------------------------------------------------------
 */

/* What one node says of itself: MODE_CLUSTER, MODE_STANDALONE, or a
 * negative status when it did not answer. */
static int ask_mode(cr_t *cr, unsigned i)
{
    const char *argv[2] = {"INFO", "cluster"};
    size_t lens[2] = {4, 7};
    redisReply *r = NULL;
    int mode = MODE_STANDALONE;
    int rc = uc__redis_node_command(node_at(cr, i), 2, argv, lens, &r);

    if (rc != UC_OK) {
        return rc;
    }
    if (r->type == REDIS_REPLY_STRING &&
        strstr(r->str, "cluster_enabled:1") != NULL) {
        mode = MODE_CLUSTER;
    } else if (r->type == REDIS_REPLY_ERROR &&
               cr->env->cfg.cluster_nodes[0] != '\0') {
        /* INFO refused (a narrow ACL): nodes were listed, so a cluster. */
        mode = MODE_CLUSTER;
    }
    freeReplyObject(r);
    return mode;
}

/* Detects the mode (mu held). */
static void detect_locked(cr_t *cr)
{
    size_t n = atomic_load(&cr->nlinks);
    uint64_t now = now_us(cr);

    if (atomic_load(&cr->mode) != MODE_UNKNOWN || now < cr->next_detect_us) {
        return;
    }
    cr->next_detect_us = now + DETECT_EVERY_US;
    for (size_t i = 0; i < n; i++) {
        int mode;

        if (!cr->links[i].seed) {
            continue;
        }
        mode = ask_mode(cr, (unsigned)i);
        if (mode < 0) {
            atomic_store(&cr->detect_rc, mode);
            continue;
        }
        cr->detected_once = 1;
        if (mode == MODE_STANDALONE && i == 0) {
            atomic_store_explicit(&cr->mode, MODE_STANDALONE,
                                  memory_order_release);
            return;
        }
        if (mode == MODE_CLUSTER) {
            if (cr->env->cfg.db != 0) {
                uc__log(cr->env, UC_LOG_WARN,
                        "redis cluster: the database number %d is ignored "
                        "(a cluster has database 0 only)",
                        cr->env->cfg.db);
            }
            /* The seeds were made for standalone use (SELECT, MGET):
             * from now on only cluster links are used for routing; the
             * seeds that are cluster nodes get links of their own. */
            for (size_t j = 0; j < n; j++) {
                uc__redis_node_set_cluster(cr->links[j].node);
            }
            atomic_store_explicit(&cr->mode, MODE_CLUSTER,
                                  memory_order_release);
            if (refresh_locked(cr) != UC_OK) {
                atomic_store(&cr->detect_rc, UC_EUNAVAILABLE);
                atomic_store(&cr->mode, MODE_UNKNOWN);
                return;
            }
            uc__log(cr->env, UC_LOG_INFO,
                    "redis cluster: %u primaries serve the slots",
                    (unsigned)cr->nannounced);
            return;
        }
    }
}

/*
 * The mode for a call. Until a first detection has run to its end, calls
 * wait for one in progress (bounded by the connect and command timeouts),
 * so the first requests of a new process find the cache; after that, a
 * call never waits for another's detection (the server was found down or
 * changed: the call answers at once and the worker keeps asking).
 */
static int mode_for_call(cr_t *cr)
{
    int mode = atomic_load_explicit(&cr->mode, memory_order_acquire);
    const uc_config_t *cfg;
    struct timespec until;
    int locked;

    if (mode != MODE_UNKNOWN) {
        return mode;
    }
    cfg = &cr->env->cfg;
    locked = pthread_mutex_trylock(&cr->mu) == 0;
    if (!locked && atomic_load(&cr->detect_rc) == 0) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec +=
            (long)(cfg->connect_timeout_ms + cfg->command_timeout_ms) *
            1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        locked = pthread_mutex_timedlock(&cr->mu, &until) == 0;
    }
    if (!locked) {
        return MODE_UNKNOWN;
    }
    detect_locked(cr);
    pthread_mutex_unlock(&cr->mu);
    return atomic_load_explicit(&cr->mode, memory_order_acquire);
}

/* What a call answers while the mode is unknown. */
static int unknown_rc(cr_t *cr)
{
    int rc = atomic_load(&cr->detect_rc);

    return rc < 0 ? rc : UC_EUNAVAILABLE;
}

/* ---- routing ---------------------------------------------------------------
 */

/* One key's operation on one node. */
typedef int (*key_fn)(uc__backend_t *node, void *arg);

/* Follows a MOVED: the slot is the target's now. */
static void follow_moved(cr_t *cr, const uc__redir_t *rd)
{
    int i;

    if (strcmp(rd->to.host, "?") == 0 || pthread_mutex_lock(&cr->mu) != 0) {
        atomic_store(&cr->want_refresh, 1);
        return;
    }
    i = link_add(cr, rd->to.host, rd->to.port, 0);
    if (i >= 0 && atomic_load(&cr->links[i].nslots) == 0) {
        /* A node that served nothing in the last map: perhaps a replica
         * promoted since. Its connections may have been checked while it
         * was a primary before; they check the marker again first. */
        uc__redis_node_recheck(cr->links[i].node);
    }
    if (i >= 0 && rd->to.slot < UC__CLUSTER_SLOTS) {
        atomic_store_explicit(&cr->slot[rd->to.slot], (uint16_t)i,
                              memory_order_relaxed);
    }
    pthread_mutex_unlock(&cr->mu);
    atomic_store(&cr->want_refresh, 1);
}

/* Waits before the next try after TRYAGAIN/CLUSTERDOWN: 1, 2, 4 ... ms,
 * at most BACKOFF_MAX_MS (or the command timeout) in all. */
static void backoff(cr_t *cr, int tries, unsigned *spent_ms)
{
    unsigned ms = 1u << (tries < 8 ? tries : 8);
    unsigned cap = (unsigned)cr->env->cfg.command_timeout_ms;

    /* A migration's TRYAGAIN clears in milliseconds; a cluster that is
     * down stays so for seconds (a failover), and a call that waited for
     * it would only be late: it answers from the loader instead. */
    if (cap > BACKOFF_MAX_MS) {
        cap = BACKOFF_MAX_MS;
    }

    if (*spent_ms >= cap) {
        return;
    }
    if (ms > cap - *spent_ms) {
        ms = cap - *spent_ms;
    }
    sleep_ms(ms);
    *spent_ms += ms;
}

/*
 * For a delete whose node did not answer: reads the slot map now (bounded,
 * unless one was read within REFRESH_NOW_US) and says whether the key's slot
 * has another owner since. A delete is an invalidation: sending it to the
 * replica that took over at once, rather than leaving it pending until the
 * worker's next refresh, keeps a write's answer after its invalidation
 * whenever the cluster has already failed over.
 */
static int refresh_now(cr_t *cr, unsigned before, const char *key, size_t klen)
{
    const uc_config_t *cfg = &cr->env->cfg;
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec +=
        (long)(cfg->connect_timeout_ms + cfg->command_timeout_ms) * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    if (pthread_mutex_timedlock(&cr->mu, &until) != 0) {
        return 0;
    }
    if (now_us(cr) - cr->last_refresh_us >= REFRESH_NOW_US) {
        /* The map is read past no breaker: a dead node is skipped at once. */
        uc__redis_force(0);
        (void)refresh_locked(cr);
        uc__redis_force(1);
    }
    pthread_mutex_unlock(&cr->mu);
    return link_for_key(cr, key, klen) != before;
}

/* Runs fn for the key, following the cluster's answers (see the top).
 * `invalidation`: a delete, retried on a new owner (refresh_now). */
static int route_key(cr_t *cr, const char *key, size_t klen, key_fn fn,
                     void *arg, int invalidation)
{
    unsigned spent = 0;
    int rc = UC_EUNAVAILABLE;
    int mode = mode_for_call(cr);

    if (mode == MODE_UNKNOWN) {
        return unknown_rc(cr);
    }
    if (mode == MODE_STANDALONE) {
        rc = fn(node_at(cr, 0), arg);
        if (rc == UC__EREDIRECT) {
            /* It became a cluster node: ask again. */
            (void)uc__redis_redirect_take(NULL);
            atomic_store(&cr->mode, MODE_UNKNOWN);
            rc = UC_EUNAVAILABLE;
        }
        return rc;
    }
    for (int tries = 0; tries <= TRIES; tries++) {
        unsigned li = link_for_key(cr, key, klen);
        uc__redir_t rd;

        if (li == NO_LINK) {
            atomic_fetch_add(&cr->unrouted, 1);
            atomic_store(&cr->want_refresh, 1);
            return UC_EUNAVAILABLE;
        }
        (void)uc__redis_redirect_take(NULL);
        rc = fn(node_at(cr, li), arg);
        if (rc != UC__EREDIRECT) {
            if (!node_trouble(rc) && rc != UC_EUNAVAILABLE) {
                return rc;
            }
            if (invalidation && tries == 0 && refresh_now(cr, li, key, klen)) {
                continue; /* the slot has a new owner: delete there */
            }
            if (node_trouble(rc)) {
                atomic_store(&cr->want_refresh, 1);
            }
            return rc;
        }
        switch (uc__redis_redirect_take(&rd)) {
        case UC__REDIR_MOVED:
            follow_moved(cr, &rd);
            break;
        case UC__REDIR_ASK: {
            int t = -1;

            if (strcmp(rd.to.host, "?") != 0 &&
                pthread_mutex_lock(&cr->mu) == 0) {
                t = link_add(cr, rd.to.host, rd.to.port, 0);
                pthread_mutex_unlock(&cr->mu);
            }
            if (t < 0) {
                atomic_store(&cr->want_refresh, 1);
                return UC_EUNAVAILABLE;
            }
            uc__redis_asking(1);
            rc = fn(node_at(cr, (unsigned)t), arg);
            uc__redis_asking(0);
            if (rc != UC__EREDIRECT) {
                return rc;
            }
            /* The migration moved on meanwhile: look again. */
            (void)uc__redis_redirect_take(NULL);
            break;
        }
        case UC__REDIR_CLUSTERDOWN:
            atomic_store(&cr->want_refresh, 1);
            backoff(cr, tries, &spent);
            break;
        case UC__REDIR_TRYAGAIN:
            backoff(cr, tries, &spent);
            break;
        default:
            return UC_EUNAVAILABLE;
        }
    }
    return UC_EUNAVAILABLE;
}

/* ---- single-key operations -------------------------------------------------
 */

typedef struct {
    const char *key;
    size_t klen;
    const char *val; /* set, put, add; cas: the new value */
    size_t len;
    const char *expect; /* cas */
    size_t elen;
    uint64_t ttl_ms;
    size_t max; /* get_max */
    char **out;
    size_t *out_len;
    int *existed;
    int64_t *ttl_out;
} kargs_t;

static int k_get(uc__backend_t *n, void *a)
{
    kargs_t *k = a;
    return n->ops->get(n, k->key, k->klen, k->out, k->out_len);
}

static int k_get_max(uc__backend_t *n, void *a)
{
    kargs_t *k = a;
    return n->ops->get_max(n, k->key, k->klen, k->max, k->out, k->out_len);
}

static int k_set(uc__backend_t *n, void *a)
{
    kargs_t *k = a;
    return n->ops->set(n, k->key, k->klen, k->val, k->len, k->ttl_ms);
}

static int k_put(uc__backend_t *n, void *a)
{
    kargs_t *k = a;
    return n->ops->put(n, k->key, k->klen, k->val, k->len, k->ttl_ms);
}

static int k_add(uc__backend_t *n, void *a)
{
    kargs_t *k = a;
    return n->ops->add(n, k->key, k->klen, k->val, k->len, k->ttl_ms);
}

static int k_cas(uc__backend_t *n, void *a)
{
    kargs_t *k = a;
    return n->ops->cas(n, k->key, k->klen, k->expect, k->elen, k->val, k->len,
                       k->ttl_ms);
}

static int k_del(uc__backend_t *n, void *a)
{
    kargs_t *k = a;
    return n->ops->del(n, k->key, k->klen, k->existed);
}

static int k_exists(uc__backend_t *n, void *a)
{
    kargs_t *k = a;
    return n->ops->exists(n, k->key, k->klen);
}

static int k_ttl(uc__backend_t *n, void *a)
{
    kargs_t *k = a;
    return n->ops->ttl(n, k->key, k->klen, k->ttl_out);
}

static int c_get(uc__backend_t *b, const char *key, size_t klen, char **val,
                 size_t *len)
{
    kargs_t k = {.key = key, .klen = klen, .out = val, .out_len = len};
    return route_key(cr_of(b), key, klen, k_get, &k, 0);
}

static int c_get_max(uc__backend_t *b, const char *key, size_t klen, size_t max,
                     char **val, size_t *len)
{
    kargs_t k = {
        .key = key, .klen = klen, .max = max, .out = val, .out_len = len};
    return route_key(cr_of(b), key, klen, k_get_max, &k, 0);
}

static int c_set(uc__backend_t *b, const char *key, size_t klen,
                 const char *val, size_t len, uint64_t ttl_ms)
{
    kargs_t k = {
        .key = key, .klen = klen, .val = val, .len = len, .ttl_ms = ttl_ms};
    return route_key(cr_of(b), key, klen, k_set, &k, 0);
}

static int c_put(uc__backend_t *b, const char *key, size_t klen,
                 const char *val, size_t len, uint64_t ttl_ms)
{
    kargs_t k = {
        .key = key, .klen = klen, .val = val, .len = len, .ttl_ms = ttl_ms};
    return route_key(cr_of(b), key, klen, k_put, &k, 0);
}

static int c_add(uc__backend_t *b, const char *key, size_t klen,
                 const char *val, size_t len, uint64_t ttl_ms)
{
    kargs_t k = {
        .key = key, .klen = klen, .val = val, .len = len, .ttl_ms = ttl_ms};
    return route_key(cr_of(b), key, klen, k_add, &k, 0);
}

static int c_cas(uc__backend_t *b, const char *key, size_t klen,
                 const char *expect, size_t elen, const char *val, size_t len,
                 uint64_t ttl_ms)
{
    kargs_t k = {.key = key,
                 .klen = klen,
                 .val = val,
                 .len = len,
                 .expect = expect,
                 .elen = elen,
                 .ttl_ms = ttl_ms};
    return route_key(cr_of(b), key, klen, k_cas, &k, 0);
}

/* A tag's new version is an invalidation too, sent as a delete is. */
static int c_set_inval(uc__backend_t *b, const char *key, size_t klen,
                       const char *val, size_t len, uint64_t ttl_ms)
{
    kargs_t k = {
        .key = key, .klen = klen, .val = val, .len = len, .ttl_ms = ttl_ms};
    int rc;

    uc__redis_force(1);
    rc = route_key(cr_of(b), key, klen, k_set, &k, 1);
    uc__redis_force(0);
    return rc;
}

/* A delete is an invalidation: it goes past an open breaker (see
 * uc__redis_force) and, on a cluster, to a new owner of the slot. */
static int c_del(uc__backend_t *b, const char *key, size_t klen, int *existed)
{
    kargs_t k = {.key = key, .klen = klen, .existed = existed};
    int rc;

    uc__redis_force(1);
    rc = route_key(cr_of(b), key, klen, k_del, &k, 1);
    uc__redis_force(0);
    return rc;
}

static int c_exists(uc__backend_t *b, const char *key, size_t klen)
{
    kargs_t k = {.key = key, .klen = klen};
    return route_key(cr_of(b), key, klen, k_exists, &k, 0);
}

static int c_ttl(uc__backend_t *b, const char *key, size_t klen,
                 int64_t *ttl_ms)
{
    kargs_t k = {.key = key, .klen = klen, .ttl_out = ttl_ms};
    return route_key(cr_of(b), key, klen, k_ttl, &k, 0);
}

/* ---- multi-key operations --------------------------------------------------
 */

/*
 * Runs `run` once per node over the keys that node serves, in key order
 * within each node: the node's part is one pipeline, so one round trip per
 * node. idx[] receives the key indices grouped by node; run gets the
 * group's indices. A group answered with a redirect is routed again as a
 * whole, at most TRIES times.
 */
typedef int (*group_fn)(uc__backend_t *node, const size_t *idx, size_t m,
                        void *arg);

static int route_groups(cr_t *cr, size_t n, const char *const *keys,
                        const size_t *klens, const size_t *sub, group_fn run,
                        void *arg, int depth)
{
    size_t *idx = NULL;
    unsigned *li = NULL;
    size_t start[LINKS_MAX + 1];
    unsigned spent = 0;
    int rc = UC_OK;

    idx = malloc(n * sizeof(*idx));
    li = malloc(n * sizeof(*li));
    if (idx == NULL || li == NULL) {
        free(idx);
        free(li);
        return UC_ENOMEM;
    }
    memset(start, 0, sizeof(start));
    for (size_t j = 0; j < n; j++) {
        size_t i = sub != NULL ? sub[j] : j;

        li[j] = link_for_key(cr, keys[i], klens[i]);
        if (li[j] == NO_LINK) {
            atomic_fetch_add(&cr->unrouted, 1);
            atomic_store(&cr->want_refresh, 1);
            rc = UC_EUNAVAILABLE;
            goto done;
        }
        start[li[j] + 1]++;
    }
    for (size_t l = 0; l < LINKS_MAX; l++) {
        start[l + 1] += start[l];
    }
    {
        size_t fill[LINKS_MAX];

        memcpy(fill, start, sizeof(fill));
        for (size_t j = 0; j < n; j++) {
            idx[fill[li[j]]++] = sub != NULL ? sub[j] : j;
        }
    }
    for (size_t l = 0; l < LINKS_MAX && rc == UC_OK; l++) {
        size_t m = start[l + 1] - start[l];
        uc__redir_t rd;

        if (m == 0) {
            continue;
        }
        (void)uc__redis_redirect_take(NULL);
        rc = run(node_at(cr, (unsigned)l), idx + start[l], m, arg);
        if (rc != UC__EREDIRECT) {
            if (node_trouble(rc)) {
                atomic_store(&cr->want_refresh, 1);
            }
            continue;
        }
        switch (uc__redis_redirect_take(&rd)) {
        case UC__REDIR_MOVED:
            follow_moved(cr, &rd);
            break;
        case UC__REDIR_CLUSTERDOWN:
            atomic_store(&cr->want_refresh, 1);
            backoff(cr, depth, &spent);
            break;
        default: /* ASK, TRYAGAIN: a migration in progress */
            backoff(cr, depth, &spent);
            break;
        }
        rc = depth < TRIES ? route_groups(cr, m, keys, klens, idx + start[l],
                                          run, arg, depth + 1)
                           : UC_EUNAVAILABLE;
    }

done:
    free(idx);
    free(li);
    return rc;
}

typedef struct {
    const char *const *keys;
    const size_t *klens;
    const char *const *vals;
    const size_t *vlens;
    uint64_t ttl_ms;
    uc_value_t *out; /* scratch, n entries */
    size_t max;      /* mget_max */
    int bounded;     /* mget_max rather than mget */
} margs_t;

/* The group's keys as arrays of their own, for the node's call. */
static int gather(const margs_t *a, const size_t *idx, size_t m,
                  const char ***k, size_t **kl, const char ***v, size_t **vl)
{
    *k = malloc(m * sizeof(**k));
    *kl = malloc(m * sizeof(**kl));
    *v = a->vals != NULL ? malloc(m * sizeof(**v)) : NULL;
    *vl = a->vals != NULL ? malloc(m * sizeof(**vl)) : NULL;
    if (*k == NULL || *kl == NULL ||
        (a->vals != NULL && (*v == NULL || *vl == NULL))) {
        free(*k);
        free(*kl);
        free(*v);
        free(*vl);
        return UC_ENOMEM;
    }
    for (size_t j = 0; j < m; j++) {
        (*k)[j] = a->keys[idx[j]];
        (*kl)[j] = a->klens[idx[j]];
        if (a->vals != NULL) {
            (*v)[j] = a->vals[idx[j]];
            (*vl)[j] = a->vlens[idx[j]];
        }
    }
    return UC_OK;
}

/* A group's multi-get: mget, or mget_max when a->bounded. */
static int g_mget(uc__backend_t *node, const size_t *idx, size_t m, void *arg)
{
    margs_t *a = arg;
    const char **k, **v;
    size_t *kl, *vl;
    uc_value_t *tmp = calloc(m, sizeof(*tmp));
    int rc;

    if (tmp == NULL) {
        return UC_ENOMEM;
    }
    rc = gather(a, idx, m, &k, &kl, &v, &vl);
    if (rc == UC_OK) {
        rc = a->bounded ? node->ops->mget_max(node, m, k, kl, a->max, tmp)
                        : node->ops->mget(node, m, k, kl, tmp);
        free(k);
        free(kl);
    }
    if (rc == UC_OK) {
        for (size_t j = 0; j < m; j++) {
            a->out[idx[j]] = tmp[j];
        }
    }
    free(tmp);
    return rc;
}

static int g_mset(uc__backend_t *node, const size_t *idx, size_t m, void *arg)
{
    margs_t *a = arg;
    const char **k, **v;
    size_t *kl, *vl;
    int rc = gather(a, idx, m, &k, &kl, &v, &vl);

    if (rc != UC_OK) {
        return rc;
    }
    rc = node->ops->mset(node, m, k, kl, v, vl, a->ttl_ms);
    free(k);
    free(kl);
    free(v);
    free(vl);
    return rc;
}

/* mget, or mget_max when bounded: one pipeline per node. */
static int mget_common(uc__backend_t *b, size_t n, const char *const *keys,
                       const size_t *klens, int bounded, size_t max,
                       uc_value_t *out)
{
    cr_t *cr = cr_of(b);
    margs_t a = {keys, klens, NULL, NULL, 0, NULL, max, bounded};
    int mode = mode_for_call(cr);
    int rc;

    if (mode != MODE_CLUSTER) {
        uc__backend_t *one = node_at(cr, 0);

        if (mode != MODE_STANDALONE) {
            return unknown_rc(cr);
        }
        return bounded ? one->ops->mget_max(one, n, keys, klens, max, out)
                       : one->ops->mget(one, n, keys, klens, out);
    }
    if (n == 0) {
        return UC_OK;
    }
    /* Answers go to a scratch array so that `out` is untouched on failure. */
    a.out = calloc(n, sizeof(*a.out));
    if (a.out == NULL) {
        return UC_ENOMEM;
    }
    rc = route_groups(cr, n, keys, klens, NULL, g_mget, &a, 0);
    if (rc == UC_OK) {
        memcpy(out, a.out, n * sizeof(*out));
    } else {
        for (size_t i = 0; i < n; i++) {
            free(a.out[i].data);
        }
    }
    free(a.out);
    return rc;
}

static int c_mget_max(uc__backend_t *b, size_t n, const char *const *keys,
                      const size_t *klens, size_t max, uc_value_t *out)
{
    return mget_common(b, n, keys, klens, 1, max, out);
}

static int c_mget(uc__backend_t *b, size_t n, const char *const *keys,
                  const size_t *klens, uc_value_t *out)
{
    return mget_common(b, n, keys, klens, 0, 0, out);
}

static int c_mset(uc__backend_t *b, size_t n, const char *const *keys,
                  const size_t *klens, const char *const *vals,
                  const size_t *vlens, uint64_t ttl_ms)
{
    cr_t *cr = cr_of(b);
    margs_t a = {keys, klens, vals, vlens, ttl_ms, NULL, 0, 0};
    int mode = mode_for_call(cr);

    if (mode != MODE_CLUSTER) {
        return mode == MODE_STANDALONE
                   ? node_at(cr, 0)->ops->mset(node_at(cr, 0), n, keys, klens,
                                               vals, vlens, ttl_ms)
                   : unknown_rc(cr);
    }
    if (n == 0) {
        return UC_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (vlens[i] > UC_VALUE_MAX) {
            return UC_ETOOBIG;
        }
    }
    return route_groups(cr, n, keys, klens, NULL, g_mset, &a, 0);
}

/* ---- every primary ---------------------------------------------------------
 */

/* Marks in `on` the links that serve at least one slot; returns how many. */
static size_t serving(cr_t *cr, unsigned char on[LINKS_MAX])
{
    size_t k = 0;

    memset(on, 0, LINKS_MAX);
    for (unsigned s = 0; s < UC__CLUSTER_SLOTS; s++) {
        unsigned li = atomic_load_explicit(&cr->slot[s], memory_order_relaxed);

        if (li != NO_LINK && !on[li]) {
            on[li] = 1;
            k++;
        }
    }
    return k;
}

typedef int (*each_fn)(uc__backend_t *node, void *arg, uint64_t *acc);

/*
 * Runs fn on the one server, or on every primary of a cluster; every
 * primary is visited even after a failure, and the first failure is the
 * answer (a pattern delete then removed what it could).
 */
static int each_primary(cr_t *cr, each_fn fn, void *arg, uint64_t *acc)
{
    unsigned char on[LINKS_MAX];
    int mode = mode_for_call(cr);
    int rc = UC_OK;

    if (mode == MODE_UNKNOWN) {
        return unknown_rc(cr);
    }
    if (mode == MODE_STANDALONE) {
        return fn(node_at(cr, 0), arg, acc);
    }
    if (serving(cr, on) == 0) {
        atomic_store(&cr->want_refresh, 1);
        return UC_EUNAVAILABLE;
    }
    for (size_t l = 0; l < LINKS_MAX; l++) {
        int r;

        if (!on[l]) {
            continue;
        }
        (void)uc__redis_redirect_take(NULL);
        r = fn(node_at(cr, (unsigned)l), arg, acc);
        if (r == UC__EREDIRECT) {
            (void)uc__redis_redirect_take(NULL);
            atomic_store(&cr->want_refresh, 1);
            r = UC_EUNAVAILABLE;
        } else if (node_trouble(r)) {
            atomic_store(&cr->want_refresh, 1);
        }
        if (rc == UC_OK && r != UC_OK) {
            rc = r;
        }
    }
    return rc;
}

typedef struct {
    const char *glob;
    uc__key_filter_fn filter;
    void *farg;
    int only_distrusted; /* restore: the nodes not trusted only */
} pargs_t;

static int e_delete(uc__backend_t *node, void *arg, uint64_t *acc)
{
    pargs_t *p = arg;
    size_t removed = 0;
    int rc;

    if (p->only_distrusted && !uc__redis_node_distrusted(node)) {
        return UC_OK;
    }
    /* Instances that start together on a new dataset all distrust it; the
     * first to adopt it dropped its keys and marked it, and what it filled
     * since is fresh: dropping again would only cost those hits. */
    if (p->only_distrusted && uc__redis_node_adopted(node)) {
        return node->ops->adopt(node);
    }
    rc = node->ops->delete_pattern(node, p->glob, p->filter, p->farg, &removed);
    *acc += removed;
    if (rc == UC_OK && p->only_distrusted) {
        rc = node->ops->adopt(node);
    }
    return rc;
}

static int e_count(uc__backend_t *node, void *arg, uint64_t *acc)
{
    pargs_t *p = arg;
    uint64_t n = 0;
    int rc = node->ops->count_pattern(node, p->glob, p->filter, p->farg, &n);

    *acc += n;
    return rc;
}

static int c_delete_pattern(uc__backend_t *b, const char *glob,
                            uc__key_filter_fn filter, void *farg,
                            size_t *removed)
{
    pargs_t p = {glob, filter, farg, 0};
    uint64_t n = 0;
    int rc = each_primary(cr_of(b), e_delete, &p, &n);

    if (removed != NULL) {
        *removed = (size_t)n;
    }
    return rc;
}

static int c_count_pattern(uc__backend_t *b, const char *glob,
                           uc__key_filter_fn filter, void *farg,
                           uint64_t *count)
{
    pargs_t p = {glob, filter, farg, 0};
    uint64_t n = 0;
    int rc = each_primary(cr_of(b), e_count, &p, &n);

    if (rc == UC_OK && count != NULL) {
        *count = n;
    }
    return rc;
}

/*
 * Whether a node in use distrusts its dataset: the one server, or a
 * cluster node serving slots. A distrusted node that serves none (it lost
 * its slots meanwhile) holds up nothing; should it serve again, restore
 * visits it then.
 */
static int any_distrusted(cr_t *cr)
{
    unsigned char on[LINKS_MAX];

    if (atomic_load(&cr->mode) != MODE_CLUSTER) {
        return uc__redis_node_distrusted(node_at(cr, 0));
    }
    (void)serving(cr, on);
    for (size_t i = 0; i < LINKS_MAX; i++) {
        if (on[i] && uc__redis_node_distrusted(cr->links[i].node)) {
            return 1;
        }
    }
    return 0;
}

static int c_restore(uc__backend_t *b, const char *glob,
                     uc__key_filter_fn filter, void *farg, size_t *removed)
{
    cr_t *cr = cr_of(b);
    pargs_t p = {glob, filter, farg, 1};
    uint64_t n = 0;
    int rc;

    if (atomic_load(&cr->mode) == MODE_STANDALONE) {
        rc = e_delete(node_at(cr, 0), &p, &n);
    } else {
        rc = each_primary(cr, e_delete, &p, &n);
    }
    if (removed != NULL) {
        *removed = (size_t)n;
    }
    if (rc != UC_OK) {
        return rc;
    }
    /* Cleared first, then checked: a node distrusted meanwhile raises the
     * flag again (raise, then look, on its side). */
    atomic_store(&cr->base.distrust, 0);
    if (any_distrusted(cr)) {
        atomic_store(&cr->base.distrust, 1);
        return UC_EUNAVAILABLE;
    }
    return UC_OK;
}

static int e_verify(uc__backend_t *node, void *arg, uint64_t *acc)
{
    (void)arg;
    (void)acc;
    return node->ops->verify(node);
}

static int c_verify(uc__backend_t *b)
{
    cr_t *cr = cr_of(b);

    if (atomic_load(&cr->mode) == MODE_UNKNOWN) {
        return UC_OK;
    }
    return each_primary(cr, e_verify, NULL, NULL);
}

static int e_adopt(uc__backend_t *node, void *arg, uint64_t *acc)
{
    (void)arg;
    (void)acc;
    return uc__redis_node_distrusted(node) ? node->ops->adopt(node) : UC_OK;
}

static int c_adopt(uc__backend_t *b)
{
    cr_t *cr = cr_of(b);
    int rc = each_primary(cr, e_adopt, NULL, NULL);

    if (rc == UC_OK) {
        atomic_store(&cr->base.distrust, 0);
        if (any_distrusted(cr)) {
            atomic_store(&cr->base.distrust, 1);
            rc = UC_EUNAVAILABLE;
        }
    }
    return rc;
}

static int e_ping(uc__backend_t *node, void *arg, uint64_t *acc)
{
    (void)arg;
    (void)acc;
    return node->ops->ping(node);
}

static int c_ping(uc__backend_t *b)
{
    return each_primary(cr_of(b), e_ping, NULL, NULL);
}

typedef struct {
    uc_server_info_t sum;
    int n;
} iargs_t;

static int e_info(uc__backend_t *node, void *arg, uint64_t *acc)
{
    iargs_t *ia = arg;
    uc_server_info_t one;
    int rc = node->ops->info(node, &one);

    (void)acc;
    if (rc != UC_OK) {
        return rc;
    }
    if (ia->n++ == 0) {
        memcpy(ia->sum.version, one.version, sizeof(one.version));
    }
    ia->sum.used_memory += one.used_memory;
    ia->sum.max_memory += one.max_memory;
    ia->sum.keys += one.keys;
    ia->sum.evicted_keys += one.evicted_keys;
    ia->sum.expired_keys += one.expired_keys;
    ia->sum.server_hits += one.server_hits;
    ia->sum.server_misses += one.server_misses;
    return UC_OK;
}

/* A cluster's figures are the sums over its primaries. */
static int c_info(uc__backend_t *b, uc_server_info_t *out)
{
    iargs_t ia;
    int rc;

    memset(&ia, 0, sizeof(ia));
    rc = each_primary(cr_of(b), e_info, &ia, NULL);
    if (rc == UC_OK) {
        *out = ia.sum;
    }
    return rc;
}

/* ---- figures, tick and lifecycle -------------------------------------------
 */

static void add_pool(uc_pool_stats_t *sum, const uc_pool_stats_t *one)
{
    sum->max += one->max;
    sum->in_use += one->in_use;
    sum->idle += one->idle;
    sum->connects += one->connects;
    sum->connect_failures += one->connect_failures;
    sum->discarded += one->discarded;
    sum->idle_closed += one->idle_closed;
    sum->waits += one->waits;
    sum->acquire_timeouts += one->acquire_timeouts;
    sum->breaker_opens += one->breaker_opens;
    sum->breaker_rejects += one->breaker_rejects;
    sum->batches += one->batches;
    sum->batched += one->batched;
    /* The worst state: one open breaker is a part of the cache down. */
    if (one->breaker == UC_BREAKER_OPEN ||
        (one->breaker == UC_BREAKER_HALF_OPEN &&
         sum->breaker != UC_BREAKER_OPEN)) {
        sum->breaker = one->breaker;
    }
}

/* Pools of every node in use: the one server, or each cluster link. */
static void c_pool_stats(uc__backend_t *b, uc_pool_stats_t *out)
{
    cr_t *cr = cr_of(b);
    size_t n = atomic_load(&cr->nlinks);
    int mode = atomic_load(&cr->mode);

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        uc_pool_stats_t one;

        if (mode != MODE_CLUSTER && i > 0) {
            break; /* standalone: the one server */
        }
        cr->links[i].node->ops->pool_stats(cr->links[i].node, &one);
        add_pool(out, &one);
    }
}

static void fill_node(cr_t *cr, size_t i, uc_redis_node_t *o)
{
    const link_t *l = &cr->links[i];
    uc__node_counters_t ct;

    memset(o, 0, sizeof(*o));
    snprintf(o->addr, sizeof(o->addr), "%s", uc__redis_node_where(l->node));
    pthread_mutex_lock(&cr->mu);
    snprintf(o->id, sizeof(o->id), "%s", l->id);
    pthread_mutex_unlock(&cr->mu);
    if (atomic_load(&cr->mode) == MODE_CLUSTER) {
        o->role = (uc_node_role_t)atomic_load(&l->role);
        o->slots = atomic_load(&l->nslots);
    } else {
        o->role = UC_NODE_PRIMARY;
        o->slots = UC__CLUSTER_SLOTS;
    }
    o->trusted = !uc__redis_node_distrusted(l->node);
    o->failed = atomic_load(&l->failed);
    uc__redis_node_counters(l->node, &ct);
    o->commands = ct.commands;
    o->failures = ct.failures;
    o->moved = ct.moved;
    o->ask = ct.ask;
    o->tryagain = ct.tryagain;
    o->distrusts = ct.distrusts;
    l->node->ops->pool_stats(l->node, &o->pool);
}

static size_t c_nodes(uc__backend_t *b, uc_redis_topology_t *topo,
                      uc_redis_node_t *out, size_t cap)
{
    cr_t *cr = cr_of(b);
    size_t n = atomic_load(&cr->nlinks);
    int mode = atomic_load(&cr->mode);
    size_t k = 0;

    if (topo != NULL) {
        memset(topo, 0, sizeof(*topo));
        topo->mode = mode == MODE_CLUSTER      ? UC_REDIS_CLUSTER
                     : mode == MODE_STANDALONE ? UC_REDIS_STANDALONE
                                               : UC_REDIS_UNKNOWN;
        topo->refreshes = atomic_load(&cr->refreshes);
        topo->refresh_failures = atomic_load(&cr->refresh_failures);
        topo->failovers = atomic_load(&cr->failovers);
        topo->slot_moves = atomic_load(&cr->slot_moves);
        topo->unrouted = atomic_load(&cr->unrouted);
    }
    if (mode != MODE_CLUSTER) {
        if (cap > 0) {
            fill_node(cr, 0, &out[0]);
        }
        return 1;
    }
    /* Primaries first, then replicas, then nodes the map no longer names. */
    static const int order[3] = {UC_NODE_PRIMARY, UC_NODE_REPLICA,
                                 UC_NODE_UNKNOWN};
    for (size_t o = 0; o < 3; o++) {
        for (size_t i = 0; i < n; i++) {
            if (atomic_load(&cr->links[i].role) != order[o]) {
                continue;
            }
            if (k < cap) {
                fill_node(cr, i, &out[k]);
            }
            k++;
        }
    }
    return k;
}

/*
 * The worker's tick: the mode while unknown; the slot map when asked for
 * (at most every REFRESH_MIN_US) and every cluster_refresh_ms.
 */
static void c_maintain(uc__backend_t *b)
{
    cr_t *cr = cr_of(b);
    uint64_t now = now_us(cr);
    int mode = atomic_load(&cr->mode);

    if (mode == MODE_STANDALONE) {
        return;
    }
    if (pthread_mutex_trylock(&cr->mu) != 0) {
        return;
    }
    if (mode == MODE_UNKNOWN) {
        detect_locked(cr);
    } else if ((atomic_load(&cr->want_refresh) &&
                now - cr->last_refresh_us >= REFRESH_MIN_US) ||
               now >= cr->next_periodic_us) {
        cr->next_periodic_us =
            now + (uint64_t)cr->env->cfg.cluster_refresh_ms * 1000u;
        (void)refresh_locked(cr);
    }
    pthread_mutex_unlock(&cr->mu);
}

static void c_announce(uc__backend_t *b)
{
    cr_t *cr = cr_of(b);

    pthread_mutex_lock(&cr->mu);
    announce_locked(cr, 1);
    pthread_mutex_unlock(&cr->mu);
}

static void c_destroy(uc__backend_t *b)
{
    cr_t *cr = cr_of(b);
    size_t n;

    if (cr == NULL) {
        return;
    }
    n = atomic_load(&cr->nlinks);
    for (size_t i = 0; i < n; i++) {
        cr->links[i].node->ops->destroy(cr->links[i].node);
    }
    free(cr->announced);
    pthread_mutex_destroy(&cr->mu);
    free(cr);
}

static const uc__backend_ops_t cluster_ops = {
    .name = "redis",
    .get = c_get,
    .set = c_set,
    .del = c_del,
    .set_inval = c_set_inval,
    .exists = c_exists,
    .ttl = c_ttl,
    .mget = c_mget,
    .mset = c_mset,
    .delete_pattern = c_delete_pattern,
    .count_pattern = c_count_pattern,
    .get_max = c_get_max,
    .mget_max = c_mget_max,
    .put = c_put,
    .add = c_add,
    .cas = c_cas,
    .verify = c_verify,
    .adopt = c_adopt,
    .restore = c_restore,
    .maintain = c_maintain,
    .nodes = c_nodes,
    .announce = c_announce,
    .ping = c_ping,
    .info = c_info,
    .pool_stats = c_pool_stats,
    .destroy = c_destroy,
};

/* Adds the REDIS_CLUSTER_NODES seeds (validated by the config parser). */
static void add_seeds(cr_t *cr, const char *list)
{
    const char *p = list;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char item[UC_HOST_MAX + 8];
        char *colon;

        if (len > 0 && len < sizeof(item)) {
            memcpy(item, p, len);
            item[len] = '\0';
            colon = strrchr(item, ':');
            if (colon != NULL) {
                char *e = NULL;
                long port = strtol(colon + 1, &e, 10);

                *colon = '\0';
                if (e != colon + 1 && *e == '\0' && port >= 1 &&
                    port <= 65535) {
                    (void)link_add(cr, item, (int)port, 1);
                }
            }
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
}

int uc__redis_create(const uc__env_t *env, uc__backend_t **out, char *err,
                     size_t errlen)
{
    const uc_config_t *cfg = &env->cfg;
    cr_t *cr = NULL;

    if (cfg->host[0] == '\0' || cfg->port < 1 || cfg->port > 65535 ||
        cfg->db < 0 || strlen(cfg->host) > UC__HOST_MAX) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "redis backend: host, port or db invalid");
        }
        return UC_ECONFIG;
    }
    cr = calloc(1, sizeof(*cr));
    if (cr == NULL || pthread_mutex_init(&cr->mu, NULL) != 0) {
        free(cr);
        goto nomem;
    }
    cr->base.ops = &cluster_ops;
    cr->base.env = env;
    cr->env = env;
    atomic_init(&cr->mode, MODE_UNKNOWN);
    for (unsigned s = 0; s < UC__CLUSTER_SLOTS; s++) {
        atomic_init(&cr->slot[s], (uint16_t)NO_LINK);
    }
    if (link_add(cr, cfg->host, cfg->port, 1) != 0) {
        c_destroy(&cr->base);
        goto nomem;
    }
    add_seeds(cr, cfg->cluster_nodes);
    /* One bounded attempt now, so that the first calls find the mode known
     * (a server down now is asked again by calls and by the worker). */
    pthread_mutex_lock(&cr->mu);
    detect_locked(cr);
    pthread_mutex_unlock(&cr->mu);
    *out = &cr->base;
    return UC_OK;

nomem:
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "redis backend: out of memory");
    }
    return UC_ENOMEM;
}
