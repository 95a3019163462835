/* SPDX-License-Identifier: MIT */
/*
 * The near cache's invalidation channel: one thread per cache holding a
 * subscriber connection to the Redis primary on which server-assisted
 * client-side caching runs in broadcast mode over the key prefix, and a
 * heartbeat that proves the channel delivers. It reports through callbacks
 * and knows nothing of the near cache itself.
 *
 * Ownership and threads: uc__track_start() returns a handle that only
 * uc__track_stop() frees; env and cb->arg must outlive it, *cb and *opts
 * are copied. uc__track_ticket(), _state(), _epoch() and _stats() are
 * lock-free and may be called from any thread at any time until
 * uc__track_stop(); the callbacks run on the channel's thread, one at a
 * time, and the channel holds no lock of its own while it runs them.
 *
 * Protocol (RESP2, hiredis 0.14 used only to connect, format and parse):
 *   subscriber: [AUTH [user] password] + CLIENT ID -> n;
 *               CLIENT TRACKING on REDIRECT n BCAST [PREFIX <key_prefix>]
 *               + SUBSCRIBE __redis__:invalidate -> wait for the ack.
 *     Tracking redirects to the connection itself, so its lifetime is the
 *     subscriber's and the data connections need no tracking at all. In
 *     RESP2 a subscribed connection cannot send CLIENT TRACKING, so it goes
 *     first; invalidations are only delivered once the ack is in, which is
 *     why nothing counts until a heartbeat has come back.
 *   heartbeat:  a second connection, [AUTH] + [SELECT db]; every hb_ms
 *               SET <prefix>uc:hb:<16 hex per handle>:<slot> <seq> PX 10000.
 *     A heartbeat is acknowledged by the invalidation naming its key on the
 *     subscriber. Outstanding heartbeats use distinct keys (slots), because
 *     broadcast mode merges writes of one key in the same event-loop cycle
 *     into one invalidation (a stalled server would otherwise leave the
 *     second one unanswered forever).
 * Every reply wait is bounded (connect by cfg.connect_timeout_ms, each
 * handshake reply by cfg.command_timeout_ms); reads never block: poll()
 * first, at most 50 ms at a time. Reconnects back off from
 * cfg.backoff_base_ms doubling to cfg.backoff_max_ms, jittered; the first
 * reconnect after a healthy period of at least 1 s is immediate.
 *
 * States: DOWN (no connection, waiting to retry), CONNECTING (connecting,
 * subscribed but not proven yet), HEALTHY (subscribed and a heartbeat came
 * back since). Leaving HEALTHY is always a flush:
 *   UC__FLUSH_LOST       the subscriber or the heartbeat connection hit EOF,
 *                        an error, a reply it cannot make sense of (a
 *                        restart, CLIENT KILL, a reset);
 *   UC__FLUSH_HEARTBEAT  a heartbeat was not back within hb_deadline_ms (a
 *                        hung server, a dropped network); both connections
 *                        are dropped and made again;
 *   UC__FLUSH_STOP       uc__track_stop().
 * UC__FLUSH_NULL_MSG is the null invalidation Redis sends on FLUSHALL,
 * FLUSHDB, SWAPDB: every key may have changed, but the channel is fine and
 * stays in its state (the message itself proves it delivers).
 *
 * THE GUARANTEE. State and epoch are one atomic 64-bit word, the ticket.
 * The epoch grows by one at every flush (each reason above), and the
 * ticket is changed BEFORE on_flush is called; the state bits change at
 * every transition. A near cache that follows these rules keeps no value
 * past its invalidation: for every write Redis executes after a fill's
 * read, either on_keys names the key, or the ticket changes and on_flush
 * runs, and the fill is then refused at install or cleared by that
 * on_flush.
 *   1. tk = uc__track_ticket(t); serve from and admit into the near cache
 *      only when UC__TRACK_TICKET_STATE(tk) == UC__TRACK_HEALTHY;
 *   2. before the read is sent to Redis, put a placeholder for the key in
 *      the near cache, which on_keys for that key removes (this closes the
 *      race of one key's invalidation with its fill: the invalidation of a
 *      write that lands after the read may arrive before the reply);
 *   3. install under the same lock that on_keys and on_flush take, and
 *      only if uc__track_ticket(t) == tk still and the placeholder is still
 *      the reader's.
 * Why it holds: Redis queues a connection's messages in order, so a
 * heartbeat that comes back vouches for every invalidation queued before
 * it; an invalidation lost means the connection died (EOF: LOST) or no
 * later heartbeat comes back on it (deadline: HEARTBEAT). An install that
 * takes the lock before on_flush's clear is cleared by it; one that takes
 * it after sees the new ticket (changed before on_flush, so before it took
 * the lock) and is refused. Tickets taken while not HEALTHY never admit,
 * and the near cache is empty when the channel becomes HEALTHY (cleared
 * when it left, nothing admitted since); writes before the new
 * subscription's ack concern no value in it.
 * What it does not do: (a) between a silent loss (hung server, lost
 * network) and its detection, near-cache hits can be stale; detection is
 * bounded by hb_ms + hb_deadline_ms plus scheduling (about 350 ms with the
 * defaults); an EOF is seen at once. (b) The invalidation of a process's
 * own write arrives after the write's reply: a writer must drop its own
 * near-cache entry itself.
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
} uc__flush_reason_t;

/* "null-message", "lost", "heartbeat", "stop"; "?" for anything else. */
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
     * GUARANTEE): once per departure from HEALTHY (LOST, HEARTBEAT, STOP)
     * and once per null message in any state.
     */
    void (*on_flush)(void *arg, uc__flush_reason_t why);
    /* The channel is proven: subscribed and a heartbeat came back. Called
     * after the state became HEALTHY. */
    void (*on_healthy)(void *arg);
    /* One heartbeat came back after lag_us (write sent -> invalidation
     * read); for figures, may be NULL. */
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
 * its own once Redis answers (it never gives up retrying). opts may be NULL
 * (defaults); a zero field is the default. Returns UC_OK and *out;
 * UC_ECONFIG (no redis host, bad port, negative db, hb_ms or
 * hb_deadline_ms out of 1..60000, or more than 62 heartbeats in flight:
 * hb_deadline_ms / hb_ms > 62) or UC_ENOMEM with a message in err; on
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
 * after this returns. Waits at most cfg.connect_timeout_ms plus the
 * running callback (a connect in progress, name resolution included, is
 * not interruptible); every other wait is woken at once.
 */
void uc__track_stop(uc__track_t *t);

/* The ticket: state in the low 2 bits, epoch above (see THE GUARANTEE). */
uint64_t uc__track_ticket(const uc__track_t *t);

#define UC__TRACK_TICKET_STATE(tk) ((uc__track_state_t)((tk)&3u))
#define UC__TRACK_TICKET_EPOCH(tk) ((tk) >> 2)

/* UC__TRACK_TICKET_STATE(uc__track_ticket(t)): one atomic load. */
uc__track_state_t uc__track_state(const uc__track_t *t);
/*
 * 1 while the newest heartbeat that came back was sent at most
 * hb_ms + hb_deadline_ms ago. Readers check it besides the state, so that
 * the bound on a silent loss holds even when the channel's own thread is
 * not scheduled in time to declare the heartbeat late.
 */
int uc__track_fresh(const uc__track_t *t);

/* UC__TRACK_TICKET_EPOCH(uc__track_ticket(t)): flushes so far. */
uint64_t uc__track_epoch(const uc__track_t *t);

/* A copy of the channel's figures; relaxed counters, like uc_stats_t. */
typedef struct {
    int state; /* uc__track_state_t */
    uint64_t epoch;
    uint64_t connects;         /* sessions with both connections up */
    uint64_t connect_failures; /* attempts that failed before HEALTHY */
    uint64_t flushes_null, flushes_lost, flushes_heartbeat, flushes_stop;
    uint64_t messages; /* invalidation messages (null ones included) */
    uint64_t keys;     /* keys passed to on_keys */
    uint64_t heartbeats_sent, heartbeats_ok, heartbeats_late;
    uint64_t lag_max_us;
    /* Heartbeat write -> its invalidation; bucket i counts lags below
     * 2^i µs, as uc_stats_t's histograms (uc_stats_percentile_us). */
    uint64_t lag_us[UC_HIST_BUCKETS];
} uc__track_stats_t;

void uc__track_stats(const uc__track_t *t, uc__track_stats_t *out);

#endif
