/* SPDX-License-Identifier: MIT */
/*
 * Internal to the library: the pieces of Redis Cluster support that need no
 * connection. Key hashing (CRC16 and hash slots as the cluster specification
 * defines them), the slot map read from a CLUSTER SHARDS reply (Redis 7.0
 * and later), and the parser of the MOVED and ASK redirect errors. Routing
 * commands over connections is built on top of these elsewhere; everything
 * here is pure, so the parsers can be fed arbitrary bytes by tests and fuzz
 * targets, since a reply is whatever the server, or anything posing as it,
 * sends.
 *
 * Ownership: arguments are borrowed. A slot map returned through **out is
 * the caller's, immutable, and freed with uc__slotmap_free(); the node
 * records it hands out live as long as the map. Thread safety: a map is
 * never written after it is built, so any number of threads may read one
 * concurrently; every function here is reentrant.
 */
#ifndef UC_LIB_CLUSTER_H
#define UC_LIB_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/* Hash slots of a Redis Cluster. */
#define UC__CLUSTER_SLOTS 16384u

/* Node ids are 40 hex digits; longer ones are refused. */
#define UC__NODE_ID_MAX 40
/* Longest host name or address kept (DNS names stop at 253). */
#define UC__HOST_MAX 255
/*
 * Most nodes one map holds. Redis recommends clusters of at most about
 * 1000 nodes; the cap bounds what a hostile reply can make us allocate and
 * keeps every node index below the slot table's "unassigned" marker.
 */
#define UC__SLOTMAP_MAX_NODES 4096

/*
 * CRC16 of p[0..n) as the cluster specification defines it: the XMODEM
 * variant (polynomial 0x1021, initial value 0, no reflection, no final
 * xor); "123456789" gives 0x31C3. p may be NULL when n is 0.
 */
uint16_t uc__crc16(const char *p, size_t n);

/*
 * The hash slot (0..16383) of key[0..klen), which may hold any bytes.
 * Hash tags: when the key has a '{' and, after the first '{', a '}' with
 * at least one byte between them, only the bytes between that first '{'
 * and the first '}' after it are hashed; otherwise the whole key is.
 * So "foo{}{bar}" hashes the whole key, "foo{{bar}}zap" hashes "{bar" and
 * "foo{bar}{zap}" hashes "bar".
 */
unsigned uc__key_slot(const char *key, size_t klen);

typedef enum {
    UC__NODE_PRIMARY = 0,
    UC__NODE_REPLICA = 1,
} uc__node_role_t;

/*
 * A node's health as CLUSTER SHARDS reports it. Redis 7.0 sends "online",
 * "loading" (a replica that has not finished its first sync) and "fail"
 * (the documentation says "failed"; both are read as FAILED). Any other
 * word is UNKNOWN rather than an error, since the field is meant to grow.
 */
typedef enum {
    UC__HEALTH_UNKNOWN = 0,
    UC__HEALTH_ONLINE = 1,
    UC__HEALTH_LOADING = 2,
    UC__HEALTH_FAILED = 3,
} uc__node_health_t;

/* One node of a slot map. */
typedef struct {
    char id[UC__NODE_ID_MAX + 1]; /* NUL-terminated */
    /*
     * Where to send this node's commands: the reply's "endpoint" when it
     * is an address or name; the "ip" when the endpoint is "?" (the
     * cluster prefers host names and this node announces none) or absent.
     * Empty when the endpoint is empty or nil, which is how Redis says
     * cluster-preferred-endpoint-type is unknown-endpoint: the node is
     * reached at the host the map was fetched from, on its own port.
     */
    char host[UC__HOST_MAX + 1];
    char ip[UC__HOST_MAX + 1]; /* the reply's "ip", "" when absent */
    int port;                  /* TCP port; 0 when the node has TLS only */
    int tls_port;              /* 0 when the reply names none */
    uc__node_role_t role;
    /* A replica's primary (the primary of its shard) as a node index, -1
     * when its shard has none; a primary's own index. */
    int primary;
    uc__node_health_t health;
    long long repl_offset; /* "replication-offset", 0 when absent */
    unsigned nslots;       /* slots it serves: a primary's, 0 for replicas */
} uc__cluster_node_t;

/* Opaque: defined in cluster.c. */
typedef struct uc__slotmap uc__slotmap_t;

/*
 * Builds a slot map from the reply to CLUSTER SHARDS. The reply is an array
 * of shards; in RESP2 a shard is a flat array of field names and values,
 * of which "slots" (an even-length array of integers, each pair an
 * inclusive range within 0..16383) and "nodes" (an array of nodes) are
 * read and others ignored. A node is likewise a flat array of names and
 * values: "id", "role" ("master" or "replica"), "port" and/or "tls-port",
 * "ip" and/or "endpoint" are required; "hostname", "health" and
 * "replication-offset" are read when present; unknown fields are ignored.
 *
 * Rejected as malformed (UC_EPROTO): any element of the wrong type, an
 * odd-length field list or slot list, a field given twice, a missing
 * required field, a slot out of range or a range whose start is above its
 * end, a slot claimed by two shards, a shard with slots but no primary or
 * with two primaries, a node id given twice, an empty or oversized id or
 * host, a NUL byte in a string, a port outside 0..65535, no shards at all,
 * more than UC__SLOTMAP_MAX_NODES nodes. An error reply (a server without
 * cluster support, one older than 7.0) gives UC_ESERVER with its text.
 * Slots no shard claims are left unassigned: a cluster need not cover
 * them all.
 *
 * Returns UC_OK and sets *out (the caller's, freed with uc__slotmap_free),
 * or UC_EPROTO, UC_ESERVER or UC_ENOMEM with a message in err (when errlen
 * > 0) and *out untouched. Never reads outside the reply.
 */
int uc__slotmap_from_shards(const redisReply *r, uc__slotmap_t **out, char *err,
                            size_t errlen);

/* Frees a map; NULL is accepted. */
void uc__slotmap_free(uc__slotmap_t *m);

/* Nodes in the map (at least one), primaries and replicas alike. */
size_t uc__slotmap_nnodes(const uc__slotmap_t *m);

/* Node i (0 <= i < uc__slotmap_nnodes(m)); lives as long as the map. */
const uc__cluster_node_t *uc__slotmap_node(const uc__slotmap_t *m, size_t i);

/*
 * The index of the primary serving `slot`, or -1 when no shard claims the
 * slot (or slot >= UC__CLUSTER_SLOTS). The primary may be FAILED: the map
 * says what the cluster said, and the caller decides.
 */
int uc__slotmap_primary(const uc__slotmap_t *m, unsigned slot);

/*
 * Iterates the primaries that serve at least one slot, in node order:
 * pass -1 for the first, then the previous result; returns -1 after the
 * last. These are the nodes an operation over every key (SCAN, a pattern
 * delete, per-node tracking) must visit; a primary without slots holds no
 * keys and is, after a failover, usually the failed former primary.
 */
int uc__slotmap_next_primary(const uc__slotmap_t *m, int prev);

/*
 * The index of the first node whose host or ip is `host` and whose port or
 * TLS port is `port`, or -1. Used to find the node a redirect names.
 */
int uc__slotmap_find(const uc__slotmap_t *m, const char *host, int port);

typedef enum {
    UC__REDIRECT_MOVED = 1, /* the slot lives there now: update the map */
    UC__REDIRECT_ASK = 2,   /* this one command goes there, after ASKING */
} uc__redirect_kind_t;

typedef struct {
    uc__redirect_kind_t kind;
    unsigned slot;
    /*
     * As the server sent it, without brackets around an IPv6 address.
     * Empty under cluster-preferred-endpoint-type unknown-endpoint (reach
     * the host that sent the redirect, on `port`); "?" when the cluster
     * prefers host names and the target announces none (refetch the map
     * for its address).
     */
    char host[UC__HOST_MAX + 1];
    int port; /* 1..65535 */
} uc__redirect_t;

/*
 * Parses the text of an error reply, err[0..len) as hiredis gives it (no
 * leading '-', need not be NUL-terminated), as a cluster redirect:
 * "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>", single
 * spaces, nothing after the port. The port follows the last ':', so an
 * IPv6 address may come bare, as Redis 7.0 sends it ("::1:6379"), or in
 * brackets ("[::1]:6379"). The slot is 0..16383 and the port 1..65535, in
 * decimal of at most 5 digits; the host has no byte below 0x21 or above
 * 0x7e and at most UC__HOST_MAX of them.
 *
 * Returns UC_OK and fills *out, or UC_EPROTO (anything else, including
 * other errors such as TRYAGAIN or CLUSTERDOWN) leaving *out untouched.
 */
int uc__redirect_parse(const char *err, size_t len, uc__redirect_t *out);

#endif
