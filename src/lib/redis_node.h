/* SPDX-License-Identifier: MIT */
/*
 * Internal to the library: one Redis server as a store (redis.c), and the
 * few calls the cluster router (redis_cluster.c) needs beyond the store
 * interface. A node is a whole uc__backend_t (its own pool, breaker,
 * script SHA, dataset marker and counters); standalone Redis is one node
 * behind the router, a cluster one node per server the slot map names.
 *
 * Redirects: a node that answers MOVED, ASK, TRYAGAIN or CLUSTERDOWN
 * returns UC__EREDIRECT from any operation, and leaves what it was told in
 * the calling thread's redirect slot (uc__redis_redirect_take). That code
 * never leaves the library: the router retries or answers UC_EUNAVAILABLE.
 *
 * Ownership: nodes are created and destroyed by the router only; the
 * parent, when given, outlives them. Thread safety: every function is
 * thread-safe; the redirect slot and the ASKING flag are per thread.
 */
#ifndef UC_LIB_REDIS_NODE_H
#define UC_LIB_REDIS_NODE_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "store.h"

/* An operation met a cluster redirect or a cluster-wide refusal. */
#define UC__EREDIRECT (-1000)

typedef enum {
    UC__REDIR_NONE = 0,
    UC__REDIR_MOVED = 1,
    UC__REDIR_ASK = 2,
    UC__REDIR_TRYAGAIN = 3,    /* a multi-key command during a migration */
    UC__REDIR_CLUSTERDOWN = 4, /* the cluster cannot serve the slot */
} uc__redir_kind_t;

typedef struct {
    uc__redir_kind_t kind;
    uc__redirect_t to; /* for MOVED and ASK */
} uc__redir_t;

/* Counters of one node, read without a lock (each one atomic). */
typedef struct {
    uint64_t commands;  /* commands sent */
    uint64_t failures;  /* sessions that broke the connection */
    uint64_t moved;     /* MOVED answers */
    uint64_t ask;       /* ASK answers */
    uint64_t tryagain;  /* TRYAGAIN and CLUSTERDOWN answers */
    uint64_t distrusts; /* times its dataset was found not trusted */
} uc__node_counters_t;

/*
 * A node for host:port. `parent` (may be NULL) is the backend whose
 * distrust flag and epoch are raised with the node's own, so that the core,
 * which sees only the parent, drops the cache's keys; `cluster` nonzero
 * makes every command single-slot (multi-key reads and deletes go as
 * pipelined single-key commands) and skips SELECT.
 */
int uc__redis_node_create(const uc__env_t *env, const char *host, int port,
                          uc__backend_t *parent, int cluster,
                          uc__backend_t **out);

/* From now on the node is a cluster node (see `cluster` above). */
void uc__redis_node_set_cluster(uc__backend_t *node);

/* "host:port" of a node, for messages; lives as long as the node. */
const char *uc__redis_node_where(const uc__backend_t *node);

/*
 * Takes (and clears) the calling thread's last redirect; returns its kind
 * (UC__REDIR_NONE when there was none since the last take).
 */
uc__redir_kind_t uc__redis_redirect_take(uc__redir_t *out);

/* While on, every pipeline this thread sends starts with ASKING. */
void uc__redis_asking(int on);

/*
 * While on, this thread's calls go to the server even while its circuit
 * breaker is open (they tell the breaker nothing then). For deletes: an
 * invalidation is worth one bounded wait on a node the breaker refuses,
 * since another instance whose breaker has closed may read that node now.
 */
void uc__redis_force(int on);

/*
 * Runs one raw command on the node in its own session; on UC_OK *out is
 * the caller's (freeReplyObject). An error reply is UC_OK with the reply.
 */
int uc__redis_node_command(uc__backend_t *node, int argc, const char **argv,
                           const size_t *lens, redisReply **out);

/*
 * Places the node's dataset marker in the slot of hash tag `tag` (one the
 * node serves): the marker becomes <prefix>uc:dataset:{tag}. A change makes
 * every connection of the node check the dataset again before its next
 * entry command.
 */
void uc__redis_node_set_tag(uc__backend_t *node, const char *tag);

/*
 * The node just became the primary of its slots (a failover): its dataset
 * may lack invalidations the former primary acknowledged, so it is not
 * trusted until the cache's keys on it are dropped and it is adopted.
 */
void uc__redis_node_distrust(uc__backend_t *node);

/* Every connection of the node checks the dataset again before its next
 * entry command. */
void uc__redis_node_recheck(uc__backend_t *node);

/* Nonzero while the node's own dataset is not trusted. */
int uc__redis_node_distrusted(const uc__backend_t *node);

/*
 * Nonzero when the node's dataset marker names the server as it is now
 * (its INFO run_id): another instance adopted this dataset since this one
 * distrusted it, and adopting means it dropped the keyspaces' keys first.
 * 0 on any doubt (no INFO, no answer, another marker).
 */
int uc__redis_node_adopted(uc__backend_t *node);

void uc__redis_node_counters(const uc__backend_t *node,
                             uc__node_counters_t *out);

#endif /* UC_LIB_REDIS_NODE_H */
