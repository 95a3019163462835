/* SPDX-License-Identifier: MIT */
/*
 * The near cache's invalidation channel: one thread per cache that keeps,
 * for every Redis primary in its node set, a link of two connections: a
 * subscriber on which server-assisted client-side caching runs in
 * broadcast mode over the key prefix, and a heartbeat connection whose
 * writes prove that the subscriber delivers. Standalone Redis is a set of
 * one node (the configured host and port); on Redis Cluster the set is
 * every primary that serves slots, because tracking is per node: a primary
 * sends invalidations only for its own keys, on its own connections. The
 * channel reports through callbacks and knows nothing of the near cache
 * itself.
 *
 * Ownership and threads: uc__track_start() returns a handle that only
 * uc__track_stop() frees; env and cb->arg must outlive it, *cb, *opts and
 * the nodes given to uc__track_set_nodes() are copied.
 * uc__track_ticket(), _state(), _fresh(), _epoch() and _stats() are
 * lock-free; they, uc__track_set_nodes() and uc__track_node_stats() may be
 * called from any thread (the callbacks included) at any time until
 * uc__track_stop(). The callbacks run on the channel's thread, one at a
 * time, and the channel holds no lock of its own while it runs them.
 *
 * Protocol, per link (RESP2, hiredis 0.14 used only to connect, format and
 * parse):
 *   subscriber: [AUTH [user] password] + CLIENT ID -> n;
 *               CLIENT TRACKING on REDIRECT n BCAST [PREFIX <key_prefix>]
 *               + SUBSCRIBE __redis__:invalidate -> wait for the ack.
 *     Tracking redirects to the connection itself, so its lifetime is the
 *     subscriber's and the data connections need no tracking at all. In
 *     RESP2 a subscribed connection cannot send CLIENT TRACKING, so it goes
 *     first; invalidations are only delivered once the ack is in, which is
 *     why nothing counts until a heartbeat has come back.
 *   heartbeat:  a second connection, [AUTH] + [SELECT db]; once both are
 *               up, every hb_ms
 *               SET <prefix>uc:hb:<16 hex per handle>:<slot> <seq> PX 10000
 *               on a node without a tag (standalone: exactly that key), or
 *               SET <prefix>uc:hb:{<tag>}:<16 hex per handle>:<slot> ...
 *               on a node with one, so that the key hashes to a slot the
 *               node owns (uc__track_pick_tag() finds such a tag).
 *     A heartbeat is acknowledged by the invalidation naming its key on the
 *     same link's subscriber. Outstanding heartbeats use distinct keys
 *     (slots), because broadcast mode merges writes of one key in the same
 *     event-loop cycle into one invalidation (a stalled server would
 *     otherwise leave the second one unanswered forever). Keys under
 *     <prefix>uc:hb: are never passed to on_keys, whichever handle or
 *     link wrote them.
 * All links are driven by the one thread, which polls every socket of
 * every link and never blocks on one of them: connects are non-blocking
 * and bounded by cfg.connect_timeout_ms, each handshake round trip by
 * cfg.command_timeout_ms, a poll by 50 ms. Each link reconnects on its own,
 * backing off from cfg.backoff_base_ms doubling to cfg.backoff_max_ms,
 * jittered; its first reconnect after a healthy period of at least 1 s is
 * immediate. Host names are resolved when a connect starts, on the
 * channel's thread: a slow resolver holds up every link (give addresses).
 *
 * States of a link: DOWN (no connection, waiting to retry), CONNECTING
 * (connecting, subscribed but not proven yet, or kept through a change of
 * the node set and not proven since), HEALTHY (subscribed and a heartbeat
 * sent since the link was made or last kept through a change came back).
 * The handle's state is the lowest of its links' (DOWN < CONNECTING <
 * HEALTHY): HEALTHY only while every link is. Leaving HEALTHY is always a
 * flush, for the reason that made it leave:
 *   UC__FLUSH_LOST       a link's subscriber or heartbeat connection hit
 *                        EOF, an error, a reply it cannot make sense of (a
 *                        restart, CLIENT KILL, a reset);
 *   UC__FLUSH_HEARTBEAT  a link's heartbeat was not back within
 *                        hb_deadline_ms (a hung server, a dropped network,
 *                        a heartbeat refused, e.g. -MOVED from a node that
 *                        lost the tag's slot); both of its connections are
 *                        dropped and made again;
 *   UC__FLUSH_TOPOLOGY   uc__track_set_nodes() changed the node set (a node
 *                        added or removed, a tag changed): the links of
 *                        removed nodes are closed, new ones connect, kept
 *                        ones stay connected but must prove themselves
 *                        again;
 *   UC__FLUSH_STOP       uc__track_stop().
 * A link that fails while the handle is already not HEALTHY flushes
 * nothing more (nothing was admitted since the flush that left HEALTHY);
 * a change of the set while not HEALTHY flushes nothing either.
 * UC__FLUSH_NULL_MSG is the null invalidation Redis sends on FLUSHALL,
 * FLUSHDB, SWAPDB, on any link: every key may have changed, but the
 * channel is fine and stays in its state (the message itself proves that
 * link delivers).
 *
 * THE GUARANTEE. State and epoch are one atomic 64-bit word, the ticket.
 * The epoch grows by one at every flush (each reason above), and the
 * ticket is changed BEFORE on_flush is called; the state bits change at
 * every transition of the handle's state. A near cache that follows these
 * rules keeps no value past its invalidation, provided the node set names
 * every primary that holds keys under the prefix: for every write Redis
 * executes after a fill's read, either on_keys names the key, or the
 * ticket changes and on_flush runs, and the fill is then refused at
 * install or cleared by that on_flush.
 *   1. tk = uc__track_ticket(t); serve from and admit into the near cache
 *      only when UC__TRACK_TICKET_STATE(tk) == UC__TRACK_HEALTHY;
 *   2. before the read is sent to Redis, put a placeholder for the key in
 *      the near cache, which on_keys for that key removes (this closes the
 *      race of one key's invalidation with its fill: the invalidation of a
 *      write that lands after the read may arrive before the reply);
 *   3. install under the same lock that on_keys and on_flush take, and
 *      only if uc__track_ticket(t) == tk still and the placeholder is still
 *      the reader's.
 * Why it holds for one link: Redis queues a connection's messages in
 * order, so a heartbeat that comes back vouches for every invalidation
 * queued on that subscriber before it; an invalidation lost means the
 * connection died (EOF: LOST) or no later heartbeat comes back on it
 * (deadline: HEARTBEAT). An install that takes the lock before on_flush's
 * clear is cleared by it; one that takes it after sees the new ticket
 * (changed before on_flush, so before it took the lock) and is refused.
 * Tickets taken while not HEALTHY never admit, and the near cache is empty
 * when the handle becomes HEALTHY (cleared when it left, nothing admitted
 * since); writes before a new subscription's ack concern no value in it.
 * Why every link must be HEALTHY: a key lives on one node, and its write's
 * invalidation is queued only on that node's subscriber. A heartbeat on
 * node A travels A's connections and is ordered only with A's
 * invalidations; it says nothing about node B's, which a dead or stalled
 * B connection loses while A's heartbeats keep coming back. The near cache
 * does not know which node holds a key (slots move), so it serves only
 * while every node has vouched for its own invalidations, and a loss on
 * any one link is a departure for all. A change of the set is one too:
 * keys whose slots moved to a node that was not in the set were written
 * there unobserved.
 * What it does not do: (a) between a silent loss (hung server, lost
 * network) and its detection, near-cache hits can be stale; detection is
 * bounded by hb_ms + hb_deadline_ms plus scheduling (about 350 ms with the
 * defaults), per link; an EOF is seen at once. (b) The invalidation of a
 * process's own write arrives after the write's reply: a writer must drop
 * its own near-cache entry itself. (c) A primary missing from the set is
 * not watched: whoever routes the cluster must pass a new set when its
 * slot map changes (a new primary gaining slots included). A node that
 * loses the tag's slot answers the heartbeat with -MOVED, which is late,
 * so a stale set is noticed on the nodes it names.
 */
#ifndef UC_LIB_TRACK_H
#define UC_LIB_TRACK_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "utxocache/cache.h" /* UC_HIST_BUCKETS */

typedef struct uc__track uc__track_t;

typedef enum {
    UC__TRACK_DOWN = 0,
    UC__TRACK_CONNECTING = 1,
    UC__TRACK_HEALTHY = 2,
} uc__track_state_t;

typedef enum {
    UC__FLUSH_NULL_MSG = 0,  /* FLUSHALL/FLUSHDB/SWAPDB: a null invalidation */
    UC__FLUSH_LOST = 1,      /* EOF, error, protocol surprise, killed */
    UC__FLUSH_HEARTBEAT = 2, /* a heartbeat late: hung server or network */
    UC__FLUSH_STOP = 3,      /* uc__track_stop() */
    UC__FLUSH_TOPOLOGY = 4,  /* uc__track_set_nodes() changed the node set */
} uc__flush_reason_t;

/* "null-message", "lost", "heartbeat", "stop", "topology"; "?" for anything
 * else. */
const char *uc__flush_reason_name(uc__flush_reason_t why);

/*
 * The callbacks, all run on the channel's thread; any may be NULL. They
 * must be short (they hold up the channel, and a callback longer than
 * hb_deadline_ms makes the next heartbeat late) and must not call
 * uc__track_stop() on their own handle.
 */
typedef struct {
    /*
     * Keys Redis invalidated, full keys (prefix included), not
     * NUL-terminated, valid only during the call; n >= 1, and one message
     * with many keys comes as several calls of at most
     * UC__TRACK_KEYS_BATCH. The heartbeat keys (<prefix>uc:hb:..., this
     * handle's and every other instance's) are never passed.
     */
    void (*on_keys)(void *arg, const char *const *keys, const size_t *klens,
                    size_t n);
    /*
     * Anything may be stale. Called after the ticket changed (see THE
     * GUARANTEE): once per departure from HEALTHY (LOST, HEARTBEAT,
     * TOPOLOGY, STOP) and once per null message on any link in any state.
     */
    void (*on_flush)(void *arg, uc__flush_reason_t why);
    /* The channel is proven: every link subscribed and a heartbeat came
     * back on each. Called after the state became HEALTHY. */
    void (*on_healthy)(void *arg);
    /* One heartbeat came back after lag_us (write sent -> invalidation
     * read), on any link; for figures, may be NULL. */
    void (*on_heartbeat)(void *arg, uint64_t lag_us);
    void *arg;
} uc__track_cb_t;

#define UC__TRACK_KEYS_BATCH 256

typedef struct {
    int hb_ms;          /* 100: a heartbeat is written this often */
    int hb_deadline_ms; /* 250: one not back by then is late */
} uc__track_opts_t;

#define UC__TRACK_OPTS_INIT                                                    \
    {                                                                          \
        0, 0                                                                   \
    }

/*
 * Starts the channel's thread, which connects in the background: the
 * handle is returned in state DOWN or CONNECTING and becomes HEALTHY on
 * its own once Redis answers (it never gives up retrying). Its node set is
 * cfg.host:cfg.port without a tag until uc__track_set_nodes() says
 * otherwise. opts may be NULL
 * (defaults); a zero field is the default. Returns UC_OK and *out;
 * UC_ECONFIG (no redis host, bad port, negative db, hb_ms or
 * hb_deadline_ms out of 1..60000, or more than 61 heartbeats in flight:
 * hb_deadline_ms / hb_ms > 61) or UC_ENOMEM with a message in err; on
 * failure *out is untouched and nothing was started. The thread starts
 * with every signal blocked, and writes with MSG_NOSIGNAL: a peer gone away
 * never raises SIGPIPE.
 */
int uc__track_start(const uc__env_t *env, const uc__track_opts_t *opts,
                    const uc__track_cb_t *cb, uc__track_t **out, char *err,
                    size_t errlen);

/*
 * Stops the thread and frees the handle; NULL is a no-op. When the channel
 * was HEALTHY, on_flush(UC__FLUSH_STOP) is the last callback; none runs
 * after this returns. Waits at most for the running callback or a host
 * name being resolved; every other wait is woken at once.
 */
void uc__track_stop(uc__track_t *t);

/* Nodes one handle follows at most, and the room for a tag. */
#define UC__TRACK_NODES_MAX 64
#define UC__TRACK_TAG_MAX 24

/* One node of the set: a primary, and the hash tag its heartbeat keys
 * carry. */
typedef struct {
    char host[UC_HOST_MAX]; /* NUL-terminated, not empty */
    int port;               /* 1..65535 */
    /*
     * A hash tag (without braces, NUL-terminated, no '{' or '}') whose slot
     * the node owns, so that the heartbeat key lands on it; "" for a
     * standalone server: the heartbeat key then has no tag.
     */
    char tag[UC__TRACK_TAG_MAX];
} uc__track_node_t;

/*
 * Replaces the node set with nodes[0..n). The set is copied and applied by
 * the channel's thread on its next turn, which this wakes (within a poll
 * slice even when it is busy). A set with the same nodes (host, port and
 * tag; in any order) changes nothing. Any other is a change: when the
 * handle was HEALTHY it leaves HEALTHY with on_flush(UC__FLUSH_TOPOLOGY);
 * links of removed nodes are closed, new ones connect, kept ones stay
 * connected, and the handle becomes HEALTHY again once every link has
 * had a heartbeat sent after the change come back.
 * Returns UC_OK; UC_EINVAL when nodes is NULL, n is 0 or above
 * UC__TRACK_NODES_MAX, a host is empty or not terminated, a port is out
 * of range, a tag not terminated or holding a brace, or one host and port
 * appears twice; UC_ENOMEM. On failure the set in force stays.
 */
int uc__track_set_nodes(uc__track_t *t, const uc__track_node_t *nodes,
                        size_t n);

/*
 * Finds a tag for a node that owns the slots for which owns(arg, slot) is
 * nonzero: the first of "0", "1", "2", ... for which the heartbeat key
 * <key_prefix>uc:hb:{<tag>}:... hashes to such a slot (its slot depends
 * on the prefix and the tag alone). Writes it to tag (NUL-terminated) and
 * returns UC_OK; UC_MISS when none of the first 2^20 candidates does (the
 * node owns no slot, or the prefix's own hash tag puts every key under it,
 * heartbeats included, in a slot of another node, so this node holds none
 * of them and needs no link); UC_EINVAL when the prefix begins a hash tag
 * with "{}", which makes whole keys hash and heartbeat keys scatter.
 * tag is untouched on failure. Pure; any thread.
 */
int uc__track_pick_tag(const char *key_prefix,
                       int (*owns)(void *arg, unsigned slot), void *arg,
                       char tag[UC__TRACK_TAG_MAX]);

/* The ticket: state in the low 2 bits, epoch above (see THE GUARANTEE). */
uint64_t uc__track_ticket(const uc__track_t *t);

#define UC__TRACK_TICKET_STATE(tk) ((uc__track_state_t)((tk)&3u))
#define UC__TRACK_TICKET_EPOCH(tk) ((tk) >> 2)

/* UC__TRACK_TICKET_STATE(uc__track_ticket(t)): one atomic load. */
uc__track_state_t uc__track_state(const uc__track_t *t);
/*
 * 1 while, on every link, the newest heartbeat that came back was sent at
 * most hb_ms + hb_deadline_ms ago. Readers check it besides the state, so that
 * the bound on a silent loss holds even when the channel's own thread is
 * not scheduled in time to declare the heartbeat late.
 */
int uc__track_fresh(const uc__track_t *t);

/* UC__TRACK_TICKET_EPOCH(uc__track_ticket(t)): flushes so far. */
uint64_t uc__track_epoch(const uc__track_t *t);

/*
 * Waits until every invalidation that Redis queued before the call, on
 * every link, has been passed to on_keys: sends a heartbeat on each link
 * now (one out at a time per link, shared by concurrent callers, in the
 * slot kept spare for it) and waits for them, at most timeout_ms. Returns
 * 1 when so; 0 when not HEALTHY, stopping, or past the time. A process
 * that has just written a key calls it so that the invalidation of its own
 * write is behind it before it reads the key back into the near cache.
 * Any thread but the channel's (its callbacks included), until
 * uc__track_stop().
 */
int uc__track_barrier(uc__track_t *t, int timeout_ms);

/* A copy of the channel's figures, summed over its links where they are
 * per link; relaxed counters, like uc_stats_t. */
typedef struct {
    int state; /* uc__track_state_t */
    uint64_t epoch;
    uint64_t connects;         /* sessions with both connections up */
    uint64_t connect_failures; /* attempts that failed before HEALTHY */
    uint64_t flushes_null, flushes_lost, flushes_heartbeat, flushes_stop;
    uint64_t flushes_topology;
    uint64_t messages; /* invalidation messages (null ones included) */
    uint64_t keys;     /* keys passed to on_keys */
    uint64_t heartbeats_sent, heartbeats_ok, heartbeats_late;
    uint64_t lag_max_us;
    /* Heartbeat write -> its invalidation; bucket i counts lags below
     * 2^i µs, as uc_stats_t's histograms (uc_stats_percentile_us). */
    uint64_t lag_us[UC_HIST_BUCKETS];
} uc__track_stats_t;

void uc__track_stats(const uc__track_t *t, uc__track_stats_t *out);

/* One link's figures. They start from zero when its node joins the set
 * (a node removed and added again starts afresh). */
typedef struct {
    char host[UC_HOST_MAX];
    int port;
    char tag[UC__TRACK_TAG_MAX];
    int state;                  /* uc__track_state_t of this link */
    uint64_t heartbeats_ok;     /* heartbeats that came back */
    uint64_t flushes_lost;      /* flushes this link caused: lost */
    uint64_t flushes_heartbeat; /* ... and late */
    uint64_t lag_last_us;       /* the newest heartbeat's lag; 0: none yet */
    uint64_t reconnects;        /* sessions made after its first */
} uc__track_node_stat_t;

/*
 * Copies the figures of at most cap links, in the order of the set in
 * force, to out (which may be NULL when cap is 0), and returns the number
 * of links in the set, which may exceed cap. A set given to
 * uc__track_set_nodes() shows here once the thread has applied it.
 */
size_t uc__track_node_stats(const uc__track_t *t, uc__track_node_stat_t *out,
                            size_t cap);

#endif
