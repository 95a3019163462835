/* SPDX-License-Identifier: MIT */
/*
 * Redis Cluster without a server (src/lib/cluster.c): CRC16 against its
 * check value and a bitwise reference, hash slots of keys whose slots
 * redis-server 7.0.15 computed (CLUSTER KEYSLOT), slot maps built from
 * CLUSTER SHARDS replies captured from redis-server 7.0.15 (tests/unit/data,
 * see its README) and from malformed variants of them, and the MOVED/ASK
 * redirect parser on what the server sends and on garbage. Replies go
 * through hiredis' own reader, as they would off the socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "utxocache/error.h"

#ifndef UC_TEST_DATA_DIR
#error "UC_TEST_DATA_DIR must name tests/unit/data"
#endif

/* A literal as (pointer, length): it may hold NUL bytes. */
#define S(s) s, sizeof(s) - 1

/* A capture or any bytes, with its length (it need not be a C string). */
typedef struct {
    char *p;
    size_t n;
} bytes_t;

static bytes_t load(const char *name)
{
    char path[1024];
    bytes_t b = {NULL, 0};
    FILE *f;
    long size = 0;

    snprintf(path, sizeof(path), "%s/%s", UC_TEST_DATA_DIR, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("open '%s' failed", path);
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        fail_msg("size of '%s' unknown", path);
    }
    b.n = (size_t)size;
    b.p = malloc(b.n);
    assert_non_null(b.p);
    assert_int_equal(fread(b.p, 1, b.n, f), b.n);
    fclose(f);
    return b;
}

/* The first reply in p[0..n) as hiredis reads it, or NULL if none. */
static redisReply *read_reply(const char *p, size_t n)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    assert_non_null(rd);
    if (redisReaderFeed(rd, p, n) != REDIS_OK ||
        redisReaderGetReply(rd, &reply) != REDIS_OK) {
        reply = NULL;
    }
    redisReaderFree(rd);
    return reply;
}

/* Builds a map from p[0..n); the return code, the map in *m on UC_OK. */
static int parse(const char *p, size_t n, uc__slotmap_t **m, char *err,
                 size_t errlen)
{
    redisReply *r = read_reply(p, n);
    int rc;

    if (r == NULL) {
        fail_msg("hiredis found no complete reply in %zu bytes", n);
    }
    rc = uc__slotmap_from_shards(r, m, err, errlen);
    freeReplyObject(r);
    return rc;
}

static uc__slotmap_t *parse_ok(const char *p, size_t n)
{
    uc__slotmap_t *m = NULL;
    char err[256] = "";
    int rc = parse(p, n, &m, err, sizeof(err));

    if (rc != UC_OK) {
        fail_msg("uc__slotmap_from_shards: %s: %s", uc_err_name(rc), err);
    }
    return m;
}

static uc__slotmap_t *parse_file(const char *name)
{
    bytes_t b = load(name);
    uc__slotmap_t *m = parse_ok(b.p, b.n);

    free(b.p);
    return m;
}

/*
 * src with the first occurrence of `from` replaced by `to` (both given
 * with lengths, so they may hold NUL bytes); fails the test when `from`
 * does not occur.
 */
static bytes_t replace(bytes_t src, const char *from, size_t flen,
                       const char *to, size_t tlen)
{
    bytes_t out = {NULL, 0};

    for (size_t i = 0; i + flen <= src.n; i++) {
        if (memcmp(src.p + i, from, flen) == 0) {
            out.n = src.n - flen + tlen;
            out.p = malloc(out.n > 0 ? out.n : 1);
            assert_non_null(out.p);
            memcpy(out.p, src.p, i);
            memcpy(out.p + i, to, tlen);
            memcpy(out.p + i + tlen, src.p + i + flen, src.n - i - flen);
            return out;
        }
    }
    fail_msg("'%.*s' not in the capture", (int)flen, from);
    return out;
}

/* ---- CRC16 and hash slots ---- */

/* CRC16-XMODEM one bit at a time, straight from its definition. */
static uint16_t crc16_bitwise(const unsigned char *p, size_t n)
{
    unsigned crc = 0;

    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (int b = 0; b < 8; b++) {
            crc = (crc & 0x8000u) != 0 ? (crc << 1) ^ 0x1021u : crc << 1;
        }
    }
    return (uint16_t)(crc & 0xffffu);
}

static void test_crc16(void **state)
{
    unsigned char buf[64];
    uint32_t x = 2463534242u;

    (void)state;
    assert_int_equal(uc__crc16("123456789", 9), 0x31C3);
    assert_int_equal(uc__crc16(NULL, 0), 0);
    assert_int_equal(uc__crc16("", 0), 0);
    /* Every table entry is exercised by 2000 random strings (xorshift32,
     * fixed seed) including bytes above 0x7f. */
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)round % sizeof(buf);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = (unsigned char)x;
        }
        assert_int_equal(uc__crc16((const char *)buf, n),
                         crc16_bitwise(buf, n));
    }
}

/* Each slot is what redis-server 7.0.15 answered to CLUSTER KEYSLOT. */
static const struct {
    const char *key;
    size_t len;
    unsigned slot;
} slot_cases[] = {
#define K(s, slot)                                                             \
    {                                                                          \
        s, sizeof(s) - 1, slot                                                 \
    }
    K("foo", 12182),
    K("bar", 5061),
    K("{user1000}.following", 3443),
    K("{user1000}.followers", 3443),
    K("foo{}{bar}", 8363),    /* empty first tag: the whole key */
    K("foo{{bar}}zap", 4015), /* the tag is "{bar" */
    K("{bar", 4015),
    K("foo{bar}{zap}", 5061), /* the first tag only: "bar" */
    K("", 0),
    K("a", 15495),
    K("{a}b", 15495),
    K("123456789", 12739),
    K("{}", 15257),
    K("{", 4092),
    K("{{}}", 4092), /* the tag is "{" */
    K("}", 12090),
    K("foo{", 7673),
    K("x{}", 2608),
    K("{}{x}", 3257),
    K("}{x}", 16287), /* a '}' before the '{' does not matter */
    K("a{b}", 3300),
    K("utxo:{tx1}:0", 9034),
    K("feedback:stats:42", 2778),
    K("a\0b", 8383),     /* keys are bytes: NUL included */
    K("{a\0}bc", 14363), /* ... in a tag too */
    K("\xff\xfe", 3374), /* and bytes above 0x7f are unsigned */
#undef K
};

static void test_key_slot(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(slot_cases) / sizeof(slot_cases[0]); i++) {
        unsigned got = uc__key_slot(slot_cases[i].key, slot_cases[i].len);
        if (got != slot_cases[i].slot) {
            fail_msg("slot of '%.*s': %u, server says %u",
                     (int)slot_cases[i].len, slot_cases[i].key, got,
                     slot_cases[i].slot);
        }
    }
    assert_int_equal(uc__key_slot(NULL, 0), 0);
}

/* ---- slot maps from captured replies ---- */

static void check_node(const uc__slotmap_t *m, size_t i, int port,
                       uc__node_role_t role, int primary,
                       uc__node_health_t health)
{
    const uc__cluster_node_t *n = uc__slotmap_node(m, i);

    assert_non_null(n);
    assert_int_equal(n->port, port);
    assert_int_equal(n->tls_port, 0);
    assert_int_equal(n->role, role);
    assert_int_equal(n->primary, primary);
    assert_int_equal(n->health, health);
    assert_int_equal(strlen(n->id), 40);
}

/* 3 primaries, 3 replicas, as redis-cli --cluster create leaves them. */
static void test_map_healthy(void **state)
{
    uc__slotmap_t *m = parse_file("cluster_shards_ok.resp");
    int seen[3];
    int k = 0;

    (void)state;
    assert_int_equal(uc__slotmap_nnodes(m), 6);
    check_node(m, 0, 27103, UC__NODE_PRIMARY, 0, UC__HEALTH_ONLINE);
    check_node(m, 1, 27106, UC__NODE_REPLICA, 0, UC__HEALTH_ONLINE);
    check_node(m, 2, 27102, UC__NODE_PRIMARY, 2, UC__HEALTH_ONLINE);
    check_node(m, 3, 27105, UC__NODE_REPLICA, 2, UC__HEALTH_ONLINE);
    check_node(m, 4, 27101, UC__NODE_PRIMARY, 4, UC__HEALTH_ONLINE);
    check_node(m, 5, 27104, UC__NODE_REPLICA, 4, UC__HEALTH_ONLINE);
    assert_string_equal(uc__slotmap_node(m, 0)->id,
                        "1725018fad405a32727bf98e378cff12d280ac2d");
    assert_string_equal(uc__slotmap_node(m, 0)->host, "127.0.0.1");
    assert_string_equal(uc__slotmap_node(m, 0)->ip, "127.0.0.1");
    assert_int_equal(uc__slotmap_node(m, 0)->repl_offset, 14);
    assert_int_equal(uc__slotmap_node(m, 0)->nslots, 16383 - 10923 + 1);
    assert_int_equal(uc__slotmap_node(m, 2)->nslots, 10922 - 5461 + 1);
    assert_int_equal(uc__slotmap_node(m, 4)->nslots, 5460 + 1);
    assert_int_equal(uc__slotmap_node(m, 1)->nslots, 0);
    assert_null(uc__slotmap_node(m, 6));

    assert_int_equal(uc__slotmap_primary(m, 0), 4);
    assert_int_equal(uc__slotmap_primary(m, 5460), 4);
    assert_int_equal(uc__slotmap_primary(m, 5461), 2);
    assert_int_equal(uc__slotmap_primary(m, 10922), 2);
    assert_int_equal(uc__slotmap_primary(m, 10923), 0);
    assert_int_equal(uc__slotmap_primary(m, 16383), 0);
    assert_int_equal(uc__slotmap_primary(m, 16384), -1);
    assert_int_equal(uc__slotmap_primary(m, 0xffffffffu), -1);
    assert_int_equal(uc__slotmap_primary(m, uc__key_slot("foo", 3)), 0);

    for (int i = uc__slotmap_next_primary(m, -1); i >= 0;
         i = uc__slotmap_next_primary(m, i)) {
        assert_true(k < 3);
        seen[k++] = i;
    }
    assert_int_equal(k, 3);
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[1], 2);
    assert_int_equal(seen[2], 4);

    assert_int_equal(uc__slotmap_find(m, "127.0.0.1", 27105), 3);
    assert_int_equal(uc__slotmap_find(m, "127.0.0.1", 27101), 4);
    assert_int_equal(uc__slotmap_find(m, "127.0.0.1", 6379), -1);
    assert_int_equal(uc__slotmap_find(m, "10.0.0.1", 27105), -1);
    assert_int_equal(uc__slotmap_find(m, "127.0.0.1", 0), -1);
    uc__slotmap_free(m);
    uc__slotmap_free(NULL);
}

/*
 * After SIGKILL of the primary of 10923-16383 and the failover: its
 * replica serves the range alone, and the killed node is a slotless
 * primary of its own shard with health "fail".
 */
static void test_map_after_failover(void **state)
{
    uc__slotmap_t *m = parse_file("cluster_shards_failover.resp");
    const uc__cluster_node_t *dead;
    int k = 0;

    (void)state;
    assert_int_equal(uc__slotmap_nnodes(m), 6);
    check_node(m, 2, 27106, UC__NODE_PRIMARY, 2, UC__HEALTH_ONLINE);
    check_node(m, 3, 27103, UC__NODE_PRIMARY, 3, UC__HEALTH_FAILED);
    dead = uc__slotmap_node(m, 3);
    assert_int_equal(dead->nslots, 0);
    assert_int_equal(uc__slotmap_primary(m, 12182), 2);
    assert_int_equal(uc__slotmap_primary(m, 0), 4);
    for (int i = uc__slotmap_next_primary(m, -1); i >= 0;
         i = uc__slotmap_next_primary(m, i)) {
        assert_int_not_equal(i, 3); /* holds no keys */
        k++;
    }
    assert_int_equal(k, 3);
    uc__slotmap_free(m);
}

/* Two nodes on ::1, one holding every slot. */
static void test_map_ipv6(void **state)
{
    uc__slotmap_t *m = parse_file("cluster_shards_ipv6.resp");

    (void)state;
    assert_int_equal(uc__slotmap_nnodes(m), 2);
    assert_string_equal(uc__slotmap_node(m, 0)->host, "::1");
    assert_int_equal(uc__slotmap_node(m, 0)->nslots, UC__CLUSTER_SLOTS);
    assert_int_equal(uc__slotmap_node(m, 1)->role, UC__NODE_PRIMARY);
    assert_int_equal(uc__slotmap_node(m, 1)->nslots, 0);
    assert_int_equal(uc__slotmap_next_primary(m, -1), 0);
    assert_int_equal(uc__slotmap_next_primary(m, 0), -1);
    assert_int_equal(uc__slotmap_find(m, "::1", 27112), 1);
    uc__slotmap_free(m);
}

/*
 * cluster-preferred-endpoint-type unknown-endpoint: Redis 7.0.15 sends an
 * empty endpoint (the documentation says nil; both mean "the host you
 * asked"), hostname: the announced name, or "?" for a node without one.
 */
static void test_map_endpoints(void **state)
{
    uc__slotmap_t *m = parse_file("cluster_shards_unknown_endpoint.resp");
    bytes_t b;
    bytes_t v;

    (void)state;
    for (size_t i = 0; i < uc__slotmap_nnodes(m); i++) {
        assert_string_equal(uc__slotmap_node(m, i)->host, "");
        assert_string_equal(uc__slotmap_node(m, i)->ip, "127.0.0.1");
    }
    assert_int_equal(uc__slotmap_find(m, "", 27102), 2);
    uc__slotmap_free(m);

    m = parse_file("cluster_shards_hostname.resp");
    assert_string_equal(uc__slotmap_node(m, 4)->host, "node-a.example");
    assert_string_equal(uc__slotmap_node(m, 5)->host, "127.0.0.1");
    assert_int_equal(uc__slotmap_find(m, "node-a.example", 27101), 4);
    assert_int_equal(uc__slotmap_find(m, "127.0.0.1", 27101), 4);
    uc__slotmap_free(m);

    /* A nil endpoint, as the documentation describes it. */
    b = load("cluster_shards_ok.resp");
    v = replace(b, S("endpoint\r\n$9\r\n127.0.0.1\r\n"),
                S("endpoint\r\n$-1\r\n"));
    m = parse_ok(v.p, v.n);
    assert_string_equal(uc__slotmap_node(m, 0)->host, "");
    assert_string_equal(uc__slotmap_node(m, 1)->host, "127.0.0.1");
    uc__slotmap_free(m);
    free(v.p);
    free(b.p);
}

/* What a later server may add, or a TLS-only node, still parses. */
static void test_map_variants(void **state)
{
    bytes_t b = load("cluster_shards_ok.resp");
    bytes_t v;
    uc__slotmap_t *m;

    (void)state;
    /* Unknown fields in a shard and in a node. */
    v = replace(b, S("*4\r\n$5\r\nslots"),
                S("*6\r\n$8\r\nshard-id\r\n$3\r\nabc\r\n$5\r\nslots"));
    m = parse_ok(v.p, v.n);
    assert_int_equal(uc__slotmap_nnodes(m), 6);
    uc__slotmap_free(m);
    free(v.p);
    v = replace(b, S("*14\r\n$2\r\nid"),
                S("*16\r\n$8\r\nhostname\r\n$1\r\nh\r\n$2\r\nid"));
    m = parse_ok(v.p, v.n);
    uc__slotmap_free(m);
    free(v.p);

    /* tls-port instead of port. */
    v = replace(b, S("$4\r\nport\r\n:27103"), S("$8\r\ntls-port\r\n:27103"));
    m = parse_ok(v.p, v.n);
    assert_int_equal(uc__slotmap_node(m, 0)->port, 0);
    assert_int_equal(uc__slotmap_node(m, 0)->tls_port, 27103);
    assert_int_equal(uc__slotmap_find(m, "127.0.0.1", 27103), 0);
    uc__slotmap_free(m);
    free(v.p);

    /* The documentation's "failed", a word of a later version, and no
     * health at all. */
    v = replace(b, S("$6\r\nonline"), S("$6\r\nfailed"));
    m = parse_ok(v.p, v.n);
    assert_int_equal(uc__slotmap_node(m, 0)->health, UC__HEALTH_FAILED);
    uc__slotmap_free(m);
    free(v.p);
    v = replace(b, S("$6\r\nonline"), S("$7\r\nzombied"));
    m = parse_ok(v.p, v.n);
    assert_int_equal(uc__slotmap_node(m, 0)->health, UC__HEALTH_UNKNOWN);
    uc__slotmap_free(m);
    free(v.p);

    /* Partial coverage: slots nobody claims stay unassigned. */
    v = replace(b, S("*2\r\n:0\r\n:5460"),
                S("*4\r\n:0\r\n:99\r\n:200\r\n:200"));
    m = parse_ok(v.p, v.n);
    assert_int_equal(uc__slotmap_primary(m, 99), 4);
    assert_int_equal(uc__slotmap_primary(m, 100), -1);
    assert_int_equal(uc__slotmap_primary(m, 200), 4);
    assert_int_equal(uc__slotmap_primary(m, 5460), -1);
    assert_int_equal(uc__slotmap_node(m, 4)->nslots, 101);
    uc__slotmap_free(m);
    free(v.p);

    /* A shard of replicas alone, with no slots. */
    v = replace(b, S("*2\r\n:0\r\n:5460"), S("*0"));
    free(b.p);
    b = replace(v,
                S("$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:14\r\n"
                  "$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n"
                  "$40\r\n917a"),
                S("$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:14\r\n"
                  "$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n"
                  "$40\r\n917a"));
    free(v.p);
    m = parse_ok(b.p, b.n);
    assert_int_equal(uc__slotmap_node(m, 4)->role, UC__NODE_REPLICA);
    assert_int_equal(uc__slotmap_node(m, 4)->primary, -1);
    assert_int_equal(uc__slotmap_primary(m, 0), -1);
    uc__slotmap_free(m);
    free(b.p);
}

/* A malformed variant: the capture with one edit, and what must be said. */
typedef struct {
    const char *what;
    const char *from;
    size_t flen;
    const char *to;
    size_t tlen;
    int rc;
    const char *msg; /* a part of the error message */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"port as a string", S(":27103\r\n"), S("$5\r\n27103\r\n"), UC_EPROTO,
     "shard 0, node 0: 'port': not an integer"},
    {"port out of range", S(":27103\r\n"), S(":70000\r\n"), UC_EPROTO,
     "'port': 70000 out of range"},
    {"negative port", S(":27103\r\n"), S(":-1\r\n"), UC_EPROTO,
     "'port': -1 out of range"},
    {"both ports zero", S(":27103\r\n"), S(":0\r\n"), UC_EPROTO,
     "no port other than 0"},
    {"slot above 16383", S(":16383\r\n"), S(":16384\r\n"), UC_EPROTO,
     "shard 0: 'slots': range 10923-16384 not within 0-16383"},
    {"negative slot", S(":0\r\n:5460"), S(":-1\r\n:5460"), UC_EPROTO,
     "range -1-5460"},
    {"range start above end", S(":5461\r\n:10922"), S(":10922\r\n:5461"),
     UC_EPROTO, "range 10922-5461"},
    {"odd slot list", S("*2\r\n:10923\r\n:16383\r\n"), S("*1\r\n:10923\r\n"),
     UC_EPROTO, "'slots': odd number of elements (1)"},
    {"slot as a string", S(":10923\r\n"), S("$5\r\n10923\r\n"), UC_EPROTO,
     "'slots': element 0: not an integer pair"},
    {"slot claimed twice", S(":5461\r\n:10922"), S(":5460\r\n:10922"),
     UC_EPROTO, "shard 2: 'slots': slot 5460 claimed twice"},
    {"overlap within a shard", S("*2\r\n:0\r\n:5460"),
     S("*4\r\n:0\r\n:5460\r\n:7\r\n:8"), UC_EPROTO, "slot 7 claimed twice"},
    {"slots not an array", S("*2\r\n:10923\r\n:16383\r\n"), S(":2\r\n"),
     UC_EPROTO, "'slots': not an array"},
    {"nodes missing", S("$5\r\nnodes"), S("$5\r\nnodez"), UC_EPROTO,
     "shard 0: 'nodes': missing"},
    {"slots missing", S("$5\r\nslots"), S("$5\r\nslotz"), UC_EPROTO,
     "'slots': missing"},
    {"nodes not an array", S("nodes\r\n*2\r\n*14"), S("nodes\r\n:2\r\n*14"),
     UC_EPROTO, "'nodes': not an array"},
    {"shard not an array", S("*3\r\n*4\r\n"), S("*3\r\n:4\r\n"), UC_EPROTO,
     "shard 0: shard: not an array"},
    {"odd shard fields", S("*3\r\n*4\r\n"), S("*3\r\n*3\r\n"), UC_EPROTO,
     "shard: odd number of elements (3)"},
    {"field name not a string", S("*4\r\n$5\r\nslots\r\n"), S("*4\r\n:5\r\n"),
     UC_EPROTO, "element 0: field name not a string"},
    {"shard field twice", S("$5\r\nnodes"), S("$5\r\nslots"), UC_EPROTO,
     "'slots': given twice"},
    {"id missing", S("$2\r\nid\r\n"), S("$2\r\nix\r\n"), UC_EPROTO,
     "node 0: 'id': missing"},
    {"id empty", S("$40\r\n1725018fad405a32727bf98e378cff12d280ac2d"),
     S("$0\r\n"), UC_EPROTO, "'id': empty"},
    {"id too long", S("$40\r\n1725018fad405a32727bf98e378cff12d280ac2d"),
     S("$41\r\n1725018fad405a32727bf98e378cff12d280ac2dx"), UC_EPROTO,
     "'id': longer than 40 bytes"},
    {"id with a NUL", S("$40\r\n1725018fad405a32727bf98e378cff12d280ac2d"),
     S("$40\r\n1725018fad405a32727bf98e378cff12d280a\0"
       "2d"),
     UC_EPROTO, "'id': byte 0x00 at 37"},
    {"id given twice", S("95a47c21ac9ba2149fc8b3ab1b2cded636b0ce38"),
     S("1725018fad405a32727bf98e378cff12d280ac2d"), UC_EPROTO,
     "node id '1725018fad405a32727bf98e378cff12d280ac2d' given twice"},
    {"role missing", S("$4\r\nrole"), S("$4\r\nrolf"), UC_EPROTO,
     "'role': missing"},
    {"unknown role", S("$6\r\nmaster"), S("$6\r\nmaestr"), UC_EPROTO,
     "'role': neither \"master\" nor \"replica\""},
    {"role not a string", S("$6\r\nmaster\r\n"), S(":6\r\n"), UC_EPROTO,
     "'role': neither"},
    {"two primaries", S("$7\r\nreplica"), S("$6\r\nmaster"), UC_EPROTO,
     "shard 0, node 1: a second primary in the shard"},
    {"slots without a primary", S("$6\r\nmaster"), S("$7\r\nreplica"),
     UC_EPROTO, "shard 0: slots but no primary"},
    {"no port", S("$4\r\nport\r\n:27103\r\n"), S("$4\r\npart\r\n:27103\r\n"),
     UC_EPROTO, "neither 'port' nor 'tls-port'"},
    {"node field twice", S("$8\r\nendpoint\r\n"), S("$2\r\nip\r\n"), UC_EPROTO,
     "'ip': given twice"},
    {"no address", S("$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint"),
     S("$2\r\nix\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoinx"), UC_EPROTO,
     "neither 'endpoint' nor 'ip'"},
    {"space in a host", S("$9\r\n127.0.0.1\r\n"), S("$9\r\n127.0 0.1\r\n"),
     UC_EPROTO, "'ip': byte 0x20 at 5"},
    {"ip not a string", S("$9\r\n127.0.0.1\r\n"), S(":1\r\n"), UC_EPROTO,
     "'ip': not a string"},
    {"endpoint not a string", S("endpoint\r\n$9\r\n127.0.0.1\r\n"),
     S("endpoint\r\n*0\r\n"), UC_EPROTO, "'endpoint': not a string"},
    {"offset not an integer", S("replication-offset\r\n:14"),
     S("replication-offset\r\n$2\r\n14"), UC_EPROTO,
     "'replication-offset': not an integer"},
    {"health not a string", S("$6\r\nonline\r\n"), S(":1\r\n"), UC_EPROTO,
     "'health': not a string"},
};

static void test_map_malformed(void **state)
{
    bytes_t b = load("cluster_shards_ok.resp");
    uc__slotmap_t *const sentinel = (uc__slotmap_t *)&b;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const bad_case_t *c = &bad_cases[i];
        bytes_t v = replace(b, c->from, c->flen, c->to, c->tlen);
        uc__slotmap_t *m = sentinel;
        char err[256] = "";
        int rc = parse(v.p, v.n, &m, err, sizeof(err));
        if (rc != c->rc || strstr(err, c->msg) == NULL) {
            fail_msg("%s: %s '%s', want %s '%s'", c->what, uc_err_name(rc), err,
                     uc_err_name(c->rc), c->msg);
        }
        assert_ptr_equal(m, sentinel);
        free(v.p);
    }
    free(b.p);
}

/* Replies that are not a shard list at all. */
static void test_map_not_shards(void **state)
{
    static const struct {
        const char *resp;
        int rc;
        const char *msg;
    } cases[] = {
        {"-ERR This instance has cluster support disabled\r\n", UC_ESERVER,
         "cluster shards: server error: ERR This instance has cluster "
         "support disabled"},
        {"-ERR unknown subcommand 'shards'. Try CLUSTER HELP.\r\n", UC_ESERVER,
         "unknown subcommand"},
        {"+OK\r\n", UC_EPROTO, "cluster shards reply: not an array"},
        {"$-1\r\n", UC_EPROTO, "not an array"},
        {"*-1\r\n", UC_EPROTO, "not an array"},
        {":3\r\n", UC_EPROTO, "not an array"},
        {"*0\r\n", UC_EPROTO, "no shards"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*0\r\n", UC_EPROTO,
         "no nodes"},
        {"*1\r\n*0\r\n", UC_EPROTO, "shard 0: 'slots': missing"},
        {"*1\r\n$-1\r\n", UC_EPROTO, "shard 0: shard: not an array"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*0\r\n",
         UC_EPROTO, "shard 0, node 0: 'id': missing"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n:1\r\n",
         UC_EPROTO, "shard 0, node 0: node: not an array"},
        {"*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*1\r\n"
         "$2\r\nid\r\n",
         UC_EPROTO, "shard 0, node 0: node: odd number of elements (1)"},
    };
    uc__slotmap_t *m = NULL;
    char err[256];
    redisReply *r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc;
        err[0] = '\0';
        rc = parse(cases[i].resp, strlen(cases[i].resp), &m, err, sizeof(err));
        if (rc != cases[i].rc || strstr(err, cases[i].msg) == NULL) {
            fail_msg("%s: %s '%s', want %s '%s'", cases[i].resp,
                     uc_err_name(rc), err, uc_err_name(cases[i].rc),
                     cases[i].msg);
        }
        assert_null(m);
    }
    assert_int_equal(uc__slotmap_from_shards(NULL, &m, err, sizeof(err)),
                     UC_EPROTO);
    assert_string_equal(err, "cluster shards reply: no reply");
    /* No message buffer, or one byte of it, is not a crash. */
    r = read_reply("*0\r\n", 4);
    assert_int_equal(uc__slotmap_from_shards(r, &m, NULL, 0), UC_EPROTO);
    err[0] = 'x';
    assert_int_equal(uc__slotmap_from_shards(r, &m, err, 1), UC_EPROTO);
    assert_int_equal(err[0], '\0');
    freeReplyObject(r);
    assert_null(m);
}

/* One shard of `nodes` nodes, all replicas but the first, each with an id
 * of its own in the first 8 digits (which keeps the duplicate check
 * quick). */
static bytes_t many_nodes(size_t nodes)
{
    size_t cap = 128 + nodes * 160;
    bytes_t b = {malloc(cap), 0};
    int n;

    assert_non_null(b.p);
    n = snprintf(b.p, cap,
                 "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n"
                 "$5\r\nnodes\r\n*%zu\r\n",
                 nodes);
    b.n = (size_t)n;
    for (size_t i = 0; i < nodes; i++) {
        n = snprintf(
            b.p + b.n, cap - b.n,
            "*8\r\n$2\r\nid\r\n$40\r\n%08zx%s\r\n$4\r\nport\r\n:%zu\r\n"
            "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n%s\r\n",
            i, "0123456789abcdef0123456789abcdef", 1000 + i % 60000,
            i == 0 ? "$6\r\nmaster" : "$7\r\nreplica");
        assert_true(n > 0 && (size_t)n < cap - b.n);
        b.n += (size_t)n;
    }
    return b;
}

static void test_map_node_cap(void **state)
{
    bytes_t b = many_nodes(UC__SLOTMAP_MAX_NODES);
    uc__slotmap_t *m = parse_ok(b.p, b.n);
    char err[256] = "";

    (void)state;
    assert_int_equal(uc__slotmap_nnodes(m), UC__SLOTMAP_MAX_NODES);
    assert_int_equal(uc__slotmap_node(m, UC__SLOTMAP_MAX_NODES - 1)->primary,
                     0);
    uc__slotmap_free(m);
    free(b.p);

    b = many_nodes(UC__SLOTMAP_MAX_NODES + 1);
    m = NULL;
    assert_int_equal(parse(b.p, b.n, &m, err, sizeof(err)), UC_EPROTO);
    assert_non_null(strstr(err, "more than 4096 nodes"));
    assert_null(m);
    free(b.p);
}

/*
 * Every byte of the capture replaced in turn by a few values that change
 * types, lengths and digits: whatever hiredis makes of it, the parser
 * gives a map or an error with a message, never a crash (ASan watches).
 */
static void test_map_byte_edits(void **state)
{
    static const char subst[] = {'*', ':', '$', '-', '0', '9', 'x', '\0'};
    bytes_t b = load("cluster_shards_failover.resp");
    size_t ok = 0;
    size_t bad = 0;

    (void)state;
    for (size_t i = 0; i < b.n; i++) {
        char was = b.p[i];
        for (size_t k = 0; k < sizeof(subst); k++) {
            redisReply *r;
            uc__slotmap_t *m = NULL;
            char err[256] = "";
            int rc;
            b.p[i] = subst[k];
            r = read_reply(b.p, b.n);
            if (r == NULL) {
                continue;
            }
            rc = uc__slotmap_from_shards(r, &m, err, sizeof(err));
            if (rc == UC_OK) {
                assert_non_null(m);
                for (unsigned s = 0; s < UC__CLUSTER_SLOTS; s += 61) {
                    int p = uc__slotmap_primary(m, s);
                    assert_true(p < (int)uc__slotmap_nnodes(m));
                    if (p >= 0) {
                        assert_int_equal(uc__slotmap_node(m, (size_t)p)->role,
                                         UC__NODE_PRIMARY);
                    }
                }
                uc__slotmap_free(m);
                ok++;
            } else {
                assert_true(rc == UC_EPROTO || rc == UC_ESERVER);
                assert_true(err[0] != '\0');
                assert_null(m);
                bad++;
            }
            freeReplyObject(r);
        }
        b.p[i] = was;
    }
    print_message("byte edits: %zu parsed, %zu refused\n", ok, bad);
    assert_true(ok > 0 && bad > 0);
    free(b.p);
}

/* ---- redirects ---- */

typedef struct {
    const char *err;
    uc__redirect_kind_t kind;
    unsigned slot;
    const char *host;
    int port;
} redirect_case_t;

static const redirect_case_t good_redirects[] = {
    /* As redis-server 7.0.15 sent them. */
    {"MOVED 12182 127.0.0.1:27103", UC__REDIRECT_MOVED, 12182, "127.0.0.1",
     27103},
    {"MOVED 12182 ::1:27111", UC__REDIRECT_MOVED, 12182, "::1", 27111},
    {"ASK 12182 ::1:27112", UC__REDIRECT_ASK, 12182, "::1", 27112},
    {"MOVED 12182 :27103", UC__REDIRECT_MOVED, 12182, "", 27103},
    {"MOVED 12182 ?:27103", UC__REDIRECT_MOVED, 12182, "?", 27103},
    /* Forms other servers or proxies use, and the edges. */
    {"MOVED 3999 [::1]:6380", UC__REDIRECT_MOVED, 3999, "::1", 6380},
    {"ASK 1 [2001:db8::7]:7000", UC__REDIRECT_ASK, 1, "2001:db8::7", 7000},
    {"MOVED 7 fe80::1%lo:6379", UC__REDIRECT_MOVED, 7, "fe80::1%lo", 6379},
    {"MOVED 0 redis-1.example:1", UC__REDIRECT_MOVED, 0, "redis-1.example", 1},
    {"MOVED 16383 h:65535", UC__REDIRECT_MOVED, 16383, "h", 65535},
    {"ASK 00042 h:06379", UC__REDIRECT_ASK, 42, "h", 6379},
};

static const char *const bad_redirects[] = {
    "",
    "MOVED",
    "MOVED ",
    "MOVED 1",
    "MOVED 1 ",
    "MOVED 1 h",
    "MOVED 1 h:",
    "MOVED 1 :",
    "MOVED 16384 h:1",
    "MOVED 123456 h:1",
    "MOVED -1 h:1",
    "MOVED +1 h:1",
    "MOVED x h:1",
    "MOVED 1 h:0",
    "MOVED 1 h:65536",
    "MOVED 1 h:123456",
    "MOVED 1 h:-1",
    "MOVED 1 h:1 ",
    "MOVED 1 h:1\r\n",
    "MOVED 1 h:1x",
    "MOVED  1 h:1",
    "MOVED 1  h:1",
    "MOVED 1 h h:1",
    "MOVED 1\th:1",
    "MOVED 1 []:1",
    "MOVED 1 [::1:1",
    "MOVED 1 ::1]:1",
    "MOVED 1 [::1]x:1",
    "MOVED 1 [[::1]]:1",
    "moved 1 h:1",
    "MOVE 1 h:1",
    "MOVEDX 1 h:1",
    "ASK",
    "ASKING 1 h:1",
    "-MOVED 1 h:1",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "CLUSTERDOWN The cluster is down",
    "CROSSSLOT Keys in request don't hash to the same slot",
    "ERR unknown command",
};

static void check_redirect_bad(const char *s, size_t n)
{
    uc__redirect_t r;
    char *copy = malloc(n > 0 ? n : 1);

    assert_non_null(copy);
    memcpy(copy, s, n);
    memset(&r, 0x5a, sizeof(r));
    if (uc__redirect_parse(copy, n, &r) != UC_EPROTO) {
        fail_msg("'%.*s' parsed as a redirect", (int)n, s);
    }
    for (size_t i = 0; i < sizeof(r); i++) {
        assert_int_equal(((unsigned char *)&r)[i], 0x5a);
    }
    free(copy);
}

static void test_redirect(void **state)
{
    char longhost[UC__HOST_MAX + 32];
    uc__redirect_t r;

    (void)state;
    for (size_t i = 0; i < sizeof(good_redirects) / sizeof(good_redirects[0]);
         i++) {
        const redirect_case_t *c = &good_redirects[i];
        size_t n = strlen(c->err);
        /* Exactly n bytes on the heap: a read past the end is caught. */
        char *copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, c->err, n);
        if (uc__redirect_parse(copy, n, &r) != UC_OK) {
            fail_msg("'%s' refused", c->err);
        }
        assert_int_equal(r.kind, c->kind);
        assert_int_equal(r.slot, c->slot);
        assert_string_equal(r.host, c->host);
        assert_int_equal(r.port, c->port);
        free(copy);
    }
    for (size_t i = 0; i < sizeof(bad_redirects) / sizeof(bad_redirects[0]);
         i++) {
        check_redirect_bad(bad_redirects[i], strlen(bad_redirects[i]));
    }
    check_redirect_bad("MOVED 1 h\0x:1", 13);
    check_redirect_bad("MOVED 1 h:1\0", 12);
    check_redirect_bad("MOVED 1 h\x7f:1", 13);
    assert_int_equal(uc__redirect_parse(NULL, 0, &r), UC_EPROTO);

    /* The longest host kept, and one byte more. */
    memcpy(longhost, "ASK 5 ", 6);
    memset(longhost + 6, 'h', UC__HOST_MAX);
    memcpy(longhost + 6 + UC__HOST_MAX, ":6379", 5);
    assert_int_equal(uc__redirect_parse(longhost, 6 + UC__HOST_MAX + 5, &r),
                     UC_OK);
    assert_int_equal(strlen(r.host), UC__HOST_MAX);
    memset(longhost + 6, 'h', UC__HOST_MAX + 1);
    memcpy(longhost + 6 + UC__HOST_MAX + 1, ":6379", 5);
    check_redirect_bad(longhost, 6 + UC__HOST_MAX + 1 + 5);

    /* A prefix of a good one is never a good one but the whole. */
    for (size_t i = 0; i < sizeof(good_redirects) / sizeof(good_redirects[0]);
         i++) {
        const char *s = good_redirects[i].err;
        size_t n = strlen(s);
        for (size_t k = 0; k < n; k++) {
            uc__redirect_t t;
            int rc = uc__redirect_parse(s, k, &t);
            /* "h:06379" cut after "h:0637" is still a redirect. */
            if (rc == UC_OK) {
                assert_true(t.port > 0 && t.slot < UC__CLUSTER_SLOTS);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16),
        cmocka_unit_test(test_key_slot),
        cmocka_unit_test(test_map_healthy),
        cmocka_unit_test(test_map_after_failover),
        cmocka_unit_test(test_map_ipv6),
        cmocka_unit_test(test_map_endpoints),
        cmocka_unit_test(test_map_variants),
        cmocka_unit_test(test_map_malformed),
        cmocka_unit_test(test_map_not_shards),
        cmocka_unit_test(test_map_node_cap),
        cmocka_unit_test(test_map_byte_edits),
        cmocka_unit_test(test_redirect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
