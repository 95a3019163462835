/* SPDX-License-Identifier: MIT */
/*
 * Test support: a Redis Cluster of the test's own, 3 primaries and 3
 * replicas, each a real redis-server (redis_server.h) on free loopback
 * ports, all in one fresh temporary directory, joined by
 * `redis-cli --cluster create`. The test starts and stops it; nothing here
 * runs a thread, and every wait is bounded.
 *
 * Faults are signals to a node (kill, restart, pause, resume) and moves of
 * slots (a redis-cli reshard, or a migration a test holds half-way).
 *
 * Node indices are 0..UC_TEST_CLUSTER_NODES-1 in start order; which of them
 * are primaries is redis-cli's choice and changes with failovers, so tests
 * ask (uc_test_cluster_is_primary, uc_test_cluster_owners).
 */
#ifndef UC_TEST_REDIS_CLUSTER_H
#define UC_TEST_REDIS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "redis_server.h"

#define UC_TEST_CLUSTER_NODES 6
#define UC_TEST_CLUSTER_SLOTS 16384

typedef struct {
    uc_test_redis_t node[UC_TEST_CLUSTER_NODES];
    int bus_port[UC_TEST_CLUSTER_NODES]; /* cluster-port of each node */
    int paused[UC_TEST_CLUSTER_NODES];   /* 1 between pause and resume */
    char dir[512];                       /* shared by the nodes; "" if none */
    uint64_t create_ms; /* redis-cli --cluster create until every node
                           reported cluster_state:ok and agreed */
} uc_test_cluster_t;

/*
 * 1 when redis-server (7.0 or later, for CLUSTER SHARDS) and redis-cli are
 * installed; 0 otherwise, with the reason in why. Tests fail on 0 unless
 * UC_TEST_ALLOW_SKIP=1, in which case they skip (and `make test` still
 * reports the skip through scripts/ctest-verdict).
 */
int uc_test_cluster_available(char *why, size_t whylen);

/*
 * Starts six nodes (cluster-enabled, node timeout 1000 ms, no persistence),
 * creates the cluster with one replica per primary, and waits (bounded,
 * 15 s) until uc_test_cluster_wait_ok() holds. Returns 0, or -1 after
 * printing why to stderr and stopping whatever it started. *c is written
 * either way; uc_test_cluster_stop() may be called on it in both cases.
 */
int uc_test_cluster_start(uc_test_cluster_t *c);

/* The same with extra_conf (may be NULL) appended to every node's config,
 * e.g. "cluster-require-full-coverage no\n"; restarts keep it. */
int uc_test_cluster_start_conf(uc_test_cluster_t *c, const char *extra_conf);

/* Stops every node (SIGCONT, SIGTERM, bounded wait, SIGKILL) and removes
 * the directory. Accepts a zeroed struct and a second call. */
void uc_test_cluster_stop(uc_test_cluster_t *c);

/*
 * Waits (bounded by timeout_ms) until every running, not stopped node
 * reports cluster_state:ok, all of them see the same nodes with the same
 * roles, primaries and slots in CLUSTER NODES with no node in doubt
 * ("fail?", handshake), and every replica they see as alive has its link
 * to its primary up. A killed node is then one they all mark failed.
 * Returns 0, or -1 after printing what was still wrong.
 */
int uc_test_cluster_wait_ok(uc_test_cluster_t *c, unsigned timeout_ms);

/* SIGKILL of node i; its port and files stay for a restart. */
void uc_test_cluster_kill(uc_test_cluster_t *c, int i);

/*
 * Starts node i again (after a kill) on its ports with its config: it
 * reads its nodes-<port>.conf, so it rejoins with its identity, without
 * data. Waits for PING only; the caller waits for the cluster. 0 or -1.
 */
int uc_test_cluster_restart(uc_test_cluster_t *c, int i);

/* SIGSTOP / SIGCONT of node i (a hung node); 0 or -1. */
int uc_test_cluster_pause(uc_test_cluster_t *c, int i);
int uc_test_cluster_resume(uc_test_cluster_t *c, int i);

/* A hiredis connection to node i with 2 s timeouts, or NULL (printed). */
redisContext *uc_test_cluster_connect(const uc_test_cluster_t *c, int i);

/* The node index whose port is `port`, or -1. */
int uc_test_cluster_node_of_port(const uc_test_cluster_t *c, int port);

/* 1 when node i answers ROLE with "master", 0 for "slave", -1 on error. */
int uc_test_cluster_is_primary(const uc_test_cluster_t *c, int i);

/*
 * The slot owners as node `asked` sees them (CLUSTER NODES, parsed here
 * independently of the library): owner[s] is the node index of the
 * primary serving slot s, or -1. Returns 0 or -1.
 */
int uc_test_cluster_owners(const uc_test_cluster_t *c, int asked,
                           int owner[UC_TEST_CLUSTER_SLOTS]);

/* The primary of `slot` as the first running node sees it, or -1. */
int uc_test_cluster_slot_primary(const uc_test_cluster_t *c, unsigned slot);

/* Node i's cluster id (CLUSTER MYID) into id; 0 or -1. */
int uc_test_cluster_node_id(const uc_test_cluster_t *c, int i, char *id,
                            size_t cap);

/*
 * `redis-cli --cluster reshard` of nslots slots from primary `from` to
 * primary `to` (redis-cli takes the source's lowest slots first), entered
 * through node `from`, with its output in a log in the cluster's
 * directory; SIGKILLed after timeout_ms. Returns 0 when redis-cli exited
 * 0, else -1 after printing why.
 */
int uc_test_cluster_reshard(uc_test_cluster_t *c, int from, int to,
                            unsigned nslots, unsigned timeout_ms);

/*
 * A migration of slots[0..n) from primary `from` to primary `to` in two
 * steps, so that a test can hold it half-way: _begin marks each slot
 * importing on `to` and migrating on `from` and moves its keys (MIGRATE);
 * from then on `from` answers ASK for the keys it no longer has. _end
 * moves the keys that arrived meanwhile and assigns the slots to `to` on
 * `to`, `from` and every other primary, as redis-cli does. Each returns 0,
 * or -1 after printing why (the slots may then stay open).
 */
int uc_test_cluster_migrate_begin(uc_test_cluster_t *c, int from, int to,
                                  const unsigned *slots, size_t n);
int uc_test_cluster_migrate_end(uc_test_cluster_t *c, int from, int to,
                                const unsigned *slots, size_t n);

#endif
