/* SPDX-License-Identifier: MIT */
/*
 * Redis Cluster without connections: CRC16 and hash slots, the slot map
 * built from a CLUSTER SHARDS reply, and the MOVED/ASK redirect parser
 * (contracts in cluster.h).
 *
 * The slot map is one allocation for the map (the 16384-entry slot table,
 * two bytes per slot) and one for its nodes. Parsing makes two passes over
 * the reply: the first checks each shard's shape and counts its nodes, so
 * that the node array is sized once and capped before anything is
 * allocated; the second reads the nodes, then claims each shard's slots for
 * its primary. A slot is claimed at most once (a second claim is an error),
 * so however the ranges are written the claiming loop runs at most 16384
 * times in all.
 */
#include "cluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utxocache/error.h"

/* The slot table's "no shard claims this slot". */
#define NO_NODE 0xffffu

struct uc__slotmap {
    size_t nnodes;
    uc__cluster_node_t *nodes;
    uint16_t slot[UC__CLUSTER_SLOTS]; /* node index, or NO_NODE */
};

/* The CRC16-XMODEM step for each value of the top byte xor the input. */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108,
    0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210,
    0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6, 0x9339, 0x8318, 0xb37b,
    0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee,
    0xf5cf, 0xc5ac, 0xd58d, 0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6,
    0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d,
    0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5,
    0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc,
    0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a, 0x6ca6, 0x7c87, 0x4ce4,
    0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13,
    0x2e32, 0x1e51, 0x0e70, 0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a,
    0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e,
    0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1,
    0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb,
    0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d, 0x34e2, 0x24c3, 0x14a0,
    0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657,
    0x7676, 0x4615, 0x5634, 0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9,
    0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882,
    0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e,
    0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07,
    0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1, 0xef1f, 0xff3e, 0xcf5d,
    0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

uint16_t uc__crc16(const char *p, size_t n)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t top = (uint8_t)((crc >> 8) ^ (uint8_t)p[i]);
        crc = (uint16_t)((crc << 8) ^ crc16_table[top]);
    }
    return crc;
}

unsigned uc__key_slot(const char *key, size_t klen)
{
    const char *open;
    const char *close;

    if (klen == 0) {
        return uc__crc16(NULL, 0) & (UC__CLUSTER_SLOTS - 1);
    }
    open = memchr(key, '{', klen);
    if (open != NULL) {
        size_t after = klen - (size_t)(open - key) - 1;
        close = after > 0 ? memchr(open + 1, '}', after) : NULL;
        if (close != NULL && close > open + 1) {
            return uc__crc16(open + 1, (size_t)(close - open - 1)) &
                   (UC__CLUSTER_SLOTS - 1);
        }
    }
    return uc__crc16(key, klen) & (UC__CLUSTER_SLOTS - 1);
}

/* ---- the CLUSTER SHARDS parser ---- */

/* Where the parser is, for its messages. */
typedef struct {
    char *err;
    size_t errlen;
    size_t shard;
    size_t node; /* within the shard; SIZE_MAX when not in a node */
} parse_t;

__attribute__((format(printf, 2, 3))) static int fail(parse_t *p,
                                                      const char *fmt, ...)
{
    char what[160];
    char where[64] = "";
    va_list ap;

    if (p->err == NULL || p->errlen == 0) {
        return UC_EPROTO;
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (p->shard != SIZE_MAX && p->node != SIZE_MAX) {
        snprintf(where, sizeof(where), "shard %zu, node %zu: ", p->shard,
                 p->node);
    } else if (p->shard != SIZE_MAX) {
        snprintf(where, sizeof(where), "shard %zu: ", p->shard);
    }
    snprintf(p->err, p->errlen, "cluster shards reply: %s%s", where, what);
    return UC_EPROTO;
}

static int is_text(const redisReply *r)
{
    return r != NULL &&
           (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static int text_is(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return is_text(r) && r->len == n && memcmp(r->str, s, n) == 0;
}

static const redisReply *elem(const redisReply *r, size_t i)
{
    return r->element != NULL ? r->element[i] : NULL;
}

/*
 * Checks that r is a flat array of (name, value) pairs whose names are
 * strings, and picks the values of names[0..n) into val[] (NULL when
 * absent). `what` names the array in messages. UC_OK or UC_EPROTO.
 */
static int pick_fields(parse_t *p, const redisReply *r, const char *what,
                       const char *const *names, const redisReply **val,
                       size_t n)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return fail(p, "%s: not an array", what);
    }
    if (r->elements % 2 != 0) {
        return fail(p, "%s: odd number of elements (%zu)", what, r->elements);
    }
    for (size_t k = 0; k < n; k++) {
        val[k] = NULL;
    }
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *name = elem(r, i);
        if (!is_text(name)) {
            return fail(p, "%s: element %zu: field name not a string", what, i);
        }
        for (size_t k = 0; k < n; k++) {
            if (text_is(name, names[k])) {
                if (val[k] != NULL) {
                    return fail(p, "'%s': given twice", names[k]);
                }
                val[k] = elem(r, i + 1);
                if (val[k] == NULL) {
                    return fail(p, "'%s': no value", names[k]);
                }
            }
        }
    }
    return UC_OK;
}

enum { SHARD_SLOTS, SHARD_NODES, SHARD_NFIELDS };
static const char *const shard_fields[SHARD_NFIELDS] = {"slots", "nodes"};

/* The slots and nodes arrays of shard r, both present and arrays. */
static int shard_parts(parse_t *p, const redisReply *r,
                       const redisReply **slots, const redisReply **nodes)
{
    const redisReply *v[SHARD_NFIELDS];
    int rc = pick_fields(p, r, "shard", shard_fields, v, SHARD_NFIELDS);

    if (rc != UC_OK) {
        return rc;
    }
    for (size_t k = 0; k < SHARD_NFIELDS; k++) {
        if (v[k] == NULL) {
            return fail(p, "'%s': missing", shard_fields[k]);
        }
        if (v[k]->type != REDIS_REPLY_ARRAY) {
            return fail(p, "'%s': not an array", shard_fields[k]);
        }
    }
    *slots = v[SHARD_SLOTS];
    *nodes = v[SHARD_NODES];
    return UC_OK;
}

/*
 * Copies string reply v into buf[0..cap] (NUL-terminated). `host` also
 * refuses bytes outside 0x21..0x7e, which no address or name holds and
 * which would corrupt a log line or a command. `empty_ok` lets "" through.
 */
static int copy_text(parse_t *p, const char *field, const redisReply *v,
                     char *buf, size_t cap, int host, int empty_ok)
{
    if (v->type != REDIS_REPLY_STRING && v->type != REDIS_REPLY_STATUS) {
        return fail(p, "'%s': not a string", field);
    }
    if (v->len > cap) {
        return fail(p, "'%s': longer than %zu bytes", field, cap);
    }
    if (v->len == 0 && !empty_ok) {
        return fail(p, "'%s': empty", field);
    }
    for (size_t i = 0; i < v->len; i++) {
        unsigned char c = (unsigned char)v->str[i];
        if (c == '\0' || (host && (c < 0x21 || c > 0x7e))) {
            return fail(p, "'%s': byte 0x%02x at %zu", field, c, i);
        }
    }
    if (v->len > 0) {
        memcpy(buf, v->str, v->len);
    }
    buf[v->len] = '\0';
    return UC_OK;
}

static int read_port(parse_t *p, const char *field, const redisReply *v,
                     int *port)
{
    if (v->type != REDIS_REPLY_INTEGER) {
        return fail(p, "'%s': not an integer", field);
    }
    if (v->integer < 0 || v->integer > 65535) {
        return fail(p, "'%s': %lld out of range", field, v->integer);
    }
    *port = (int)v->integer;
    return UC_OK;
}

enum {
    NODE_ID,
    NODE_PORT,
    NODE_TLS_PORT,
    NODE_IP,
    NODE_ENDPOINT,
    NODE_ROLE,
    NODE_OFFSET,
    NODE_HEALTH,
    NODE_NFIELDS
};
static const char *const node_fields[NODE_NFIELDS] = {
    "id",       "port", "tls-port",           "ip",
    "endpoint", "role", "replication-offset", "health",
};

static int parse_node(parse_t *p, const redisReply *r, uc__cluster_node_t *n)
{
    const redisReply *v[NODE_NFIELDS];
    int rc = pick_fields(p, r, "node", node_fields, v, NODE_NFIELDS);

    if (rc != UC_OK) {
        return rc;
    }
    if (v[NODE_ID] == NULL || v[NODE_ROLE] == NULL) {
        return fail(p, "'%s': missing", v[NODE_ID] == NULL ? "id" : "role");
    }
    rc = copy_text(p, "id", v[NODE_ID], n->id, UC__NODE_ID_MAX, 1, 0);
    if (rc != UC_OK) {
        return rc;
    }
    if (text_is(v[NODE_ROLE], "master")) {
        n->role = UC__NODE_PRIMARY;
    } else if (text_is(v[NODE_ROLE], "replica")) {
        n->role = UC__NODE_REPLICA;
    } else {
        return fail(p, "'role': neither \"master\" nor \"replica\"");
    }

    if (v[NODE_PORT] == NULL && v[NODE_TLS_PORT] == NULL) {
        return fail(p, "neither 'port' nor 'tls-port'");
    }
    if (v[NODE_PORT] != NULL &&
        (rc = read_port(p, "port", v[NODE_PORT], &n->port)) != UC_OK) {
        return rc;
    }
    if (v[NODE_TLS_PORT] != NULL &&
        (rc = read_port(p, "tls-port", v[NODE_TLS_PORT], &n->tls_port)) !=
            UC_OK) {
        return rc;
    }
    if (n->port == 0 && n->tls_port == 0) {
        return fail(p, "no port other than 0");
    }

    if (v[NODE_IP] == NULL && v[NODE_ENDPOINT] == NULL) {
        return fail(p, "neither 'endpoint' nor 'ip'");
    }
    if (v[NODE_IP] != NULL && (rc = copy_text(p, "ip", v[NODE_IP], n->ip,
                                              UC__HOST_MAX, 1, 1)) != UC_OK) {
        return rc;
    }
    if (v[NODE_ENDPOINT] == NULL || text_is(v[NODE_ENDPOINT], "?")) {
        memcpy(n->host, n->ip, sizeof(n->host));
    } else if (v[NODE_ENDPOINT]->type != REDIS_REPLY_NIL) {
        rc = copy_text(p, "endpoint", v[NODE_ENDPOINT], n->host, UC__HOST_MAX,
                       1, 1);
        if (rc != UC_OK) {
            return rc;
        }
    }

    if (v[NODE_OFFSET] != NULL) {
        if (v[NODE_OFFSET]->type != REDIS_REPLY_INTEGER) {
            return fail(p, "'replication-offset': not an integer");
        }
        n->repl_offset = v[NODE_OFFSET]->integer;
    }
    n->health = UC__HEALTH_UNKNOWN;
    if (v[NODE_HEALTH] != NULL) {
        const redisReply *h = v[NODE_HEALTH];
        if (!is_text(h)) {
            return fail(p, "'health': not a string");
        }
        if (text_is(h, "online")) {
            n->health = UC__HEALTH_ONLINE;
        } else if (text_is(h, "loading")) {
            n->health = UC__HEALTH_LOADING;
        } else if (text_is(h, "fail") || text_is(h, "failed")) {
            n->health = UC__HEALTH_FAILED;
        }
    }
    return UC_OK;
}

/*
 * Reads the nodes of one shard into m->nodes from index *next on, links
 * the replicas to the shard's primary, then claims the shard's slots for
 * it. Advances *next.
 */
static int parse_shard(parse_t *p, const redisReply *r, uc__slotmap_t *m,
                       size_t *next)
{
    const redisReply *slots;
    const redisReply *nodes;
    size_t first = *next;
    int primary = -1;
    unsigned nslots = 0;
    int rc = shard_parts(p, r, &slots, &nodes);

    if (rc != UC_OK) {
        return rc;
    }
    for (size_t i = 0; i < nodes->elements; i++) {
        uc__cluster_node_t *n = &m->nodes[first + i];
        p->node = i;
        rc = parse_node(p, elem(nodes, i), n);
        if (rc != UC_OK) {
            return rc;
        }
        if (n->role == UC__NODE_PRIMARY) {
            if (primary >= 0) {
                return fail(p, "a second primary in the shard");
            }
            primary = (int)(first + i);
        }
    }
    p->node = SIZE_MAX;
    for (size_t i = 0; i < nodes->elements; i++) {
        m->nodes[first + i].primary = primary;
    }
    *next = first + nodes->elements;

    if (slots->elements % 2 != 0) {
        return fail(p, "'slots': odd number of elements (%zu)",
                    slots->elements);
    }
    if (slots->elements > 0 && primary < 0) {
        return fail(p, "slots but no primary");
    }
    for (size_t i = 0; i < slots->elements; i += 2) {
        const redisReply *lo = elem(slots, i);
        const redisReply *hi = elem(slots, i + 1);
        if (lo == NULL || hi == NULL || lo->type != REDIS_REPLY_INTEGER ||
            hi->type != REDIS_REPLY_INTEGER) {
            return fail(p, "'slots': element %zu: not an integer pair", i);
        }
        if (lo->integer < 0 || hi->integer >= (long long)UC__CLUSTER_SLOTS ||
            lo->integer > hi->integer) {
            return fail(p, "'slots': range %lld-%lld not within 0-%u",
                        lo->integer, hi->integer, UC__CLUSTER_SLOTS - 1);
        }
        for (long long s = lo->integer; s <= hi->integer; s++) {
            if (m->slot[s] != NO_NODE) {
                return fail(p, "'slots': slot %lld claimed twice", s);
            }
            m->slot[s] = (uint16_t)primary;
            nslots++;
        }
    }
    if (primary >= 0) {
        m->nodes[primary].nslots = nslots;
    }
    return UC_OK;
}

/* The first pass: every shard's shape, and how many nodes there are. */
static int count_nodes(parse_t *p, const redisReply *r, size_t *total)
{
    size_t n = 0;

    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *slots;
        const redisReply *nodes;
        int rc;
        p->shard = i;
        rc = shard_parts(p, elem(r, i), &slots, &nodes);
        if (rc != UC_OK) {
            return rc;
        }
        if (nodes->elements > UC__SLOTMAP_MAX_NODES - n) {
            return fail(p, "more than %d nodes", UC__SLOTMAP_MAX_NODES);
        }
        n += nodes->elements;
    }
    p->shard = SIZE_MAX;
    if (n == 0) {
        return fail(p, "no nodes");
    }
    *total = n;
    return UC_OK;
}

static int unique_ids(parse_t *p, const uc__slotmap_t *m)
{
    for (size_t i = 1; i < m->nnodes; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(m->nodes[i].id, m->nodes[j].id) == 0) {
                return fail(p, "node id '%s' given twice", m->nodes[i].id);
            }
        }
    }
    return UC_OK;
}

int uc__slotmap_from_shards(const redisReply *r, uc__slotmap_t **out, char *err,
                            size_t errlen)
{
    parse_t p = {err, errlen, SIZE_MAX, SIZE_MAX};
    uc__slotmap_t *m = NULL;
    size_t total = 0;
    size_t next = 0;
    int rc;

    if (r == NULL) {
        return fail(&p, "no reply");
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "cluster shards: server error: %.*s",
                     (int)(r->len < 200 ? r->len : 200),
                     r->str != NULL ? r->str : "");
        }
        return UC_ESERVER;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        return fail(&p, "not an array");
    }
    if (r->elements == 0) {
        return fail(&p, "no shards");
    }
    rc = count_nodes(&p, r, &total);
    if (rc != UC_OK) {
        return rc;
    }

    m = malloc(sizeof(*m));
    if (m == NULL) {
        goto oom;
    }
    m->nnodes = total;
    m->nodes = calloc(total, sizeof(*m->nodes));
    if (m->nodes == NULL) {
        goto oom;
    }
    memset(m->slot, 0xff, sizeof(m->slot));

    for (size_t i = 0; i < r->elements; i++) {
        p.shard = i;
        rc = parse_shard(&p, elem(r, i), m, &next);
        if (rc != UC_OK) {
            goto fail;
        }
    }
    p.shard = SIZE_MAX;
    rc = unique_ids(&p, m);
    if (rc != UC_OK) {
        goto fail;
    }
    *out = m;
    return UC_OK;

oom:
    rc = UC_ENOMEM;
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "cluster shards reply: out of memory");
    }
fail:
    uc__slotmap_free(m);
    return rc;
}

void uc__slotmap_free(uc__slotmap_t *m)
{
    if (m == NULL) {
        return;
    }
    free(m->nodes);
    free(m);
}

size_t uc__slotmap_nnodes(const uc__slotmap_t *m)
{
    return m->nnodes;
}

const uc__cluster_node_t *uc__slotmap_node(const uc__slotmap_t *m, size_t i)
{
    return i < m->nnodes ? &m->nodes[i] : NULL;
}

int uc__slotmap_primary(const uc__slotmap_t *m, unsigned slot)
{
    if (slot >= UC__CLUSTER_SLOTS || m->slot[slot] == NO_NODE) {
        return -1;
    }
    return m->slot[slot];
}

int uc__slotmap_next_primary(const uc__slotmap_t *m, int prev)
{
    for (size_t i = prev < 0 ? 0 : (size_t)prev + 1; i < m->nnodes; i++) {
        if (m->nodes[i].role == UC__NODE_PRIMARY && m->nodes[i].nslots > 0) {
            return (int)i;
        }
    }
    return -1;
}

int uc__slotmap_find(const uc__slotmap_t *m, const char *host, int port)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        const uc__cluster_node_t *n = &m->nodes[i];
        if ((strcmp(n->host, host) == 0 || strcmp(n->ip, host) == 0) &&
            port > 0 && (n->port == port || n->tls_port == port)) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- redirects ---- */

/* Reads 1..5 decimal digits at s[*i..len) into *v and advances *i. */
static int read_small(const char *s, size_t len, size_t *i, unsigned *v)
{
    size_t start = *i;
    unsigned x = 0;

    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        if (*i - start == 5) {
            return -1;
        }
        x = x * 10 + (unsigned)(s[*i] - '0');
        (*i)++;
    }
    if (*i == start) {
        return -1;
    }
    *v = x;
    return 0;
}

int uc__redirect_parse(const char *err, size_t len, uc__redirect_t *out)
{
    uc__redirect_t r;
    const char *host;
    size_t hlen;
    size_t colon;
    size_t i;
    unsigned slot;
    unsigned port;

    if (err == NULL) {
        return UC_EPROTO;
    }
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        r.kind = UC__REDIRECT_MOVED;
        i = 6;
    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        r.kind = UC__REDIRECT_ASK;
        i = 4;
    } else {
        return UC_EPROTO;
    }
    if (read_small(err, len, &i, &slot) != 0 || slot >= UC__CLUSTER_SLOTS ||
        i >= len || err[i] != ' ') {
        return UC_EPROTO;
    }
    i++;
    for (colon = len; colon > i && err[colon - 1] != ':'; colon--) {
    }
    if (colon == i) {
        return UC_EPROTO; /* no ':' */
    }
    colon--;
    {
        size_t j = colon + 1;
        if (read_small(err, len, &j, &port) != 0 || j != len || port == 0 ||
            port > 65535) {
            return UC_EPROTO;
        }
    }
    host = err + i;
    hlen = colon - i;
    if (hlen > 0 && host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']') {
            return UC_EPROTO;
        }
        host++;
        hlen -= 2;
    }
    if (hlen > UC__HOST_MAX) {
        return UC_EPROTO;
    }
    for (size_t k = 0; k < hlen; k++) {
        unsigned char c = (unsigned char)host[k];
        if (c < 0x21 || c > 0x7e || c == '[' || c == ']') {
            return UC_EPROTO;
        }
    }
    r.slot = slot;
    r.port = (int)port;
    memcpy(r.host, host, hlen);
    r.host[hlen] = '\0';
    *out = r;
    return UC_OK;
}
