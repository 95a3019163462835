/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the cluster parsers of src/lib/cluster.c: the slot map
 * built from a CLUSTER SHARDS reply, the MOVED/ASK redirect parser, and
 * the hash slot of a key. Replies and redirects are bytes from the network:
 * whatever a server, or anything posing as one, sends.
 *
 * Input: the first byte picks the parser (its value mod 3), the rest is
 * its input, copied to a heap buffer of exactly its size so that ASan sees
 * any read past the end.
 *   0  RESP bytes, fed to hiredis' reader; each complete reply (at most 4)
 *      goes to uc__slotmap_from_shards() (inputs announcing an array of
 *      more than ARRAY_MAX elements are skipped, see huge_array());
 *   1  the text of an error reply, to uc__redirect_parse();
 *   2  a key, to uc__key_slot().
 *
 * Invariants checked besides memory safety:
 *   - a map has 1..UC__SLOTMAP_MAX_NODES nodes with NUL-terminated, non-
 *     empty ids and a port; a slot's primary is a primary of the map, and
 *     the primaries' slot counts add up to the assigned slots; a replica
 *     follows -1 or a primary; the primary iterator visits, in order,
 *     exactly the primaries that serve slots; a node is found by its own
 *     address at its own index or an earlier one with the same address;
 *   - a refused reply gives EPROTO or ESERVER with a message and leaves
 *     *out alone, and the same reply gives the same answer twice;
 *   - a redirect has a slot below 16384, a port in 1..65535 and a host of
 *     printable bytes, and printing it back (host bare) parses to the same
 *     redirect; a refused one leaves *out alone;
 *   - a key's slot is below 16384 and equals that of a plain reference of
 *     the hash-tag rule.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "fuzz_util.h"
#include "utxocache/error.h"

#define MAX_REPLIES 4

static void check_map(const uc__slotmap_t *m)
{
    size_t n = uc__slotmap_nnodes(m);
    unsigned assigned = 0;
    unsigned counted = 0;
    int prev = -1;

    UC_FUZZ_CHECK(n >= 1 && n <= UC__SLOTMAP_MAX_NODES);
    UC_FUZZ_CHECK(uc__slotmap_node(m, n) == NULL);
    for (unsigned s = 0; s < UC__CLUSTER_SLOTS; s++) {
        int p = uc__slotmap_primary(m, s);
        UC_FUZZ_CHECK(p >= -1 && p < (int)n);
        if (p >= 0) {
            UC_FUZZ_CHECK(uc__slotmap_node(m, (size_t)p)->role ==
                          UC__NODE_PRIMARY);
            assigned++;
        }
    }
    UC_FUZZ_CHECK(uc__slotmap_primary(m, UC__CLUSTER_SLOTS) == -1);
    for (size_t i = 0; i < n; i++) {
        const uc__cluster_node_t *x = uc__slotmap_node(m, i);
        int found;
        UC_FUZZ_CHECK(memchr(x->id, '\0', sizeof(x->id)) != NULL);
        UC_FUZZ_CHECK(x->id[0] != '\0');
        UC_FUZZ_CHECK(memchr(x->host, '\0', sizeof(x->host)) != NULL);
        UC_FUZZ_CHECK(memchr(x->ip, '\0', sizeof(x->ip)) != NULL);
        UC_FUZZ_CHECK(x->port >= 0 && x->port <= 65535);
        UC_FUZZ_CHECK(x->tls_port >= 0 && x->tls_port <= 65535);
        UC_FUZZ_CHECK(x->port > 0 || x->tls_port > 0);
        if (x->role == UC__NODE_PRIMARY) {
            UC_FUZZ_CHECK(x->primary == (int)i);
            counted += x->nslots;
        } else {
            UC_FUZZ_CHECK(x->role == UC__NODE_REPLICA);
            UC_FUZZ_CHECK(x->nslots == 0);
            UC_FUZZ_CHECK(x->primary >= -1 && x->primary < (int)n);
            if (x->primary >= 0) {
                UC_FUZZ_CHECK(uc__slotmap_node(m, (size_t)x->primary)->role ==
                              UC__NODE_PRIMARY);
            }
        }
        found =
            uc__slotmap_find(m, x->host, x->port > 0 ? x->port : x->tls_port);
        UC_FUZZ_CHECK(found >= 0 && found <= (int)i);
    }
    UC_FUZZ_CHECK(counted == assigned);
    for (int p = uc__slotmap_next_primary(m, -1); p >= 0;
         p = uc__slotmap_next_primary(m, p)) {
        const uc__cluster_node_t *x = uc__slotmap_node(m, (size_t)p);
        UC_FUZZ_CHECK(p > prev);
        UC_FUZZ_CHECK(x->role == UC__NODE_PRIMARY && x->nslots > 0);
        for (int q = prev + 1; q < p; q++) {
            const uc__cluster_node_t *skipped = uc__slotmap_node(m, (size_t)q);
            UC_FUZZ_CHECK(skipped->role != UC__NODE_PRIMARY ||
                          skipped->nslots == 0);
        }
        prev = p;
    }
}

static void one_reply(const redisReply *r)
{
    char mark;
    uc__slotmap_t *const sentinel = (uc__slotmap_t *)(void *)&mark;
    uc__slotmap_t *m = sentinel;
    uc__slotmap_t *again = sentinel;
    char err[256];
    char err2[256];
    int rc;
    int rc2;

    memset(err, 'x', sizeof(err));
    rc = uc__slotmap_from_shards(r, &m, err, sizeof(err));
    if (rc == UC_OK) {
        UC_FUZZ_CHECK(m != sentinel && m != NULL);
        check_map(m);
        uc__slotmap_free(m);
        return;
    }
    UC_FUZZ_CHECK(rc == UC_EPROTO || rc == UC_ESERVER);
    UC_FUZZ_CHECK(m == sentinel);
    UC_FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
    rc2 = uc__slotmap_from_shards(r, &again, err2, sizeof(err2));
    UC_FUZZ_CHECK(rc2 == rc && again == sentinel);
    UC_FUZZ_CHECK(strcmp(err, err2) == 0);
}

/*
 * 1 when p[0..n) has "*" and a count above ARRAY_MAX anywhere. hiredis
 * 0.14's reader callocs an array's element vector as soon as it reads
 * the header, before any element arrives, and has no limit of its own
 * (1.0 added maxelements): "*1262942816" alone asks for 10 GB. That is
 * hiredis, not the parser under test, so such inputs are left out.
 */
#define ARRAY_MAX 100000u
static int huge_array(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned long long v = 0;
        size_t j = i + 1;
        if (p[i] != '*') {
            continue;
        }
        while (j < n && p[j] >= '0' && p[j] <= '9' && v <= ARRAY_MAX) {
            v = v * 10 + (unsigned long long)(p[j] - '0');
            j++;
        }
        if (v > ARRAY_MAX) {
            return 1;
        }
    }
    return 0;
}

static void fuzz_shards(const char *p, size_t n)
{
    redisReader *rd;

    if (huge_array(p, n)) {
        return;
    }
    rd = redisReaderCreate();
    if (rd == NULL) {
        return;
    }
    if (redisReaderFeed(rd, p, n) == REDIS_OK) {
        for (int k = 0; k < MAX_REPLIES; k++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL) {
                break;
            }
            one_reply(reply);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
}

static void fuzz_redirect(const char *p, size_t n)
{
    uc__redirect_t r;
    uc__redirect_t back;
    char text[UC__HOST_MAX + 32];
    int len;

    memset(&r, 0x5a, sizeof(r));
    if (uc__redirect_parse(p, n, &r) != UC_OK) {
        for (size_t i = 0; i < sizeof(r); i++) {
            UC_FUZZ_CHECK(((unsigned char *)&r)[i] == 0x5a);
        }
        return;
    }
    UC_FUZZ_CHECK(r.kind == UC__REDIRECT_MOVED || r.kind == UC__REDIRECT_ASK);
    UC_FUZZ_CHECK(r.slot < UC__CLUSTER_SLOTS);
    UC_FUZZ_CHECK(r.port >= 1 && r.port <= 65535);
    UC_FUZZ_CHECK(memchr(r.host, '\0', sizeof(r.host)) != NULL);
    for (const char *h = r.host; *h != '\0'; h++) {
        UC_FUZZ_CHECK(*h >= 0x21 && *h <= 0x7e);
    }
    len = snprintf(text, sizeof(text), "%s %u %s:%d",
                   r.kind == UC__REDIRECT_MOVED ? "MOVED" : "ASK", r.slot,
                   r.host, r.port);
    UC_FUZZ_CHECK(len > 0 && (size_t)len < sizeof(text));
    UC_FUZZ_CHECK(uc__redirect_parse(text, (size_t)len, &back) == UC_OK);
    UC_FUZZ_CHECK(back.kind == r.kind && back.slot == r.slot &&
                  back.port == r.port && strcmp(back.host, r.host) == 0);
}

/* The hash-tag rule as the specification words it, one byte at a time. */
static unsigned ref_slot(const char *k, size_t n)
{
    size_t open = n;
    size_t close = n;

    for (size_t i = 0; i < n; i++) {
        if (k[i] == '{') {
            open = i;
            break;
        }
    }
    for (size_t i = open + 1; i < n; i++) {
        if (k[i] == '}') {
            close = i;
            break;
        }
    }
    if (open < n && close < n && close > open + 1) {
        return uc__crc16(k + open + 1, close - open - 1) % 16384u;
    }
    return uc__crc16(k, n) % 16384u;
}

static void fuzz_key(const char *p, size_t n)
{
    unsigned s = uc__key_slot(p, n);

    UC_FUZZ_CHECK(s < UC__CLUSTER_SLOTS);
    UC_FUZZ_CHECK(s == ref_slot(p, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf;
    size_t n;

    if (size == 0) {
        return 0;
    }
    n = size - 1;
    buf = malloc(n > 0 ? n : 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data + 1, n);
    switch (data[0] % 3) {
    case 0:
        fuzz_shards(buf, n);
        break;
    case 1:
        fuzz_redirect(buf, n);
        break;
    default:
        fuzz_key(buf, n);
        break;
    }
    free(buf);
    return 0;
}
