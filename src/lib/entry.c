/* SPDX-License-Identifier: MIT */
/*
 * The envelope every keyspace value is stored in, and the lease values that
 * stand in an entry's key while it is being filled.
 *
 * Layout (little endian), UC__ENV_HEADER bytes plus 8 per tag version, then
 * the payload:
 *   0  4  magic "UCE" and the format version (2)
 *   4  8  a 64-bit hash of the entry's full key (key_hash below)
 *  12  8  produced: wall clock, ms since the epoch
 *  20  4  how long the load took, µs (saturated)
 *  24  8  logical expiry, ms since the epoch
 *  32  8  FNV-1a 64 of the payload, computed once when the value was made
 *          (callers use it as the ETag, so a hit hashes nothing)
 *  40  4  payload length
 *  44  4  n, the number of tag versions (0 to UC__TAGS_MAX), in the low
 *          16 bits; flags in the high 16 (UC__META_REFILLED: stored by a
 *          refill after a write)
 *  48  8n the versions of the entry's tags, in the keyspace's tag order, as
 *          the fill read them before it called the loader
 * A value proves what it is: the magic and the length reject anything
 * written by another program or cut short, and the key hash rejects another
 * entry's value copied to this key. A remembered "not found" has the same
 * layout with the magic "UCN" 0x02 and no payload. Format 1 (no tag
 * versions) is recognised as such and read as a miss, and the fill
 * replaces it. A lease is "UCL" 0x01 and 16 hex digits; a lease taken over
 * an expired value carries that value's whole envelope after them, so that
 * the readers who wait for the fill can still answer with it when the fill
 * is slow or fails.
 *
 * Tag versions are random 64-bit values, written in the store as 16 hex
 * digits, never counters: a version that is lost and written again can
 * never come back to one an entry recorded (no ABA).
 */
#include <endian.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"

static const char MAGIC[4] = {'U', 'C', 'E', 2};
static const char NEG_MAGIC[4] = {'U', 'C', 'N', 2};
static const char LEASE_MAGIC[4] = {'U', 'C', 'L', 1};
/* The first format's magics (without tag versions). */
static const char MAGIC_V1[4] = {'U', 'C', 'E', 1};
static const char NEG_MAGIC_V1[4] = {'U', 'C', 'N', 1};

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

/* Fixed-width little-endian fields, read and written whole: a hit reads
 * five of them. */
static void put64(char *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}

static void put32(char *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static uint64_t get64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

static uint32_t get32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

uint64_t uc__hash64(const char *p, size_t n)
{
    return fnv1a(p, n);
}

/*
 * The key's hash, 8 bytes at a time (every hit computes it): a multiply and
 * a shift per word, the length folded in. Not a defence against an
 * adversary who can write to Redis (nothing in an envelope is); it tells a
 * value apart from one of another key.
 */
static uint64_t key_hash(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n;
    uint64_t w;

    while (n >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ le64toh(w)) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    w = 0;
    memcpy(&w, p, n);
    h = (h ^ le64toh(w)) * 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 29);
}

static int wrap(const char *magic, const char *fk, size_t fklen,
                const char *val, size_t len, const uc__meta_t *meta, char **out,
                size_t *outlen)
{
    size_t hdr;
    char *buf;

    if (meta->ntags > UC__TAGS_MAX) {
        return UC_EINVAL;
    }
    hdr = UC__ENV_HEADER + 8u * meta->ntags;
    if (len > UINT32_MAX || len > UC_VALUE_MAX - hdr) {
        return UC_ETOOBIG;
    }
    buf = malloc(hdr + len + 1);
    if (buf == NULL) {
        return UC_ENOMEM;
    }
    memcpy(buf, magic, 4);
    put64(buf + 4, key_hash(fk, fklen));
    put64(buf + 12, meta->produced_ms);
    put32(buf + 20, meta->load_us);
    put64(buf + 24, meta->expires_ms);
    put64(buf + 32, fnv1a(val, len));
    put32(buf + 40, (uint32_t)len);
    put32(buf + 44, meta->ntags | (meta->flags & 0xffffu) << 16);
    for (uint32_t i = 0; i < meta->ntags; i++) {
        put64(buf + UC__ENV_HEADER + 8u * i, meta->tagv[i]);
    }
    if (len > 0) {
        memcpy(buf + hdr, val, len);
    }
    buf[hdr + len] = '\0';
    *out = buf;
    *outlen = hdr + len;
    return UC_OK;
}

int uc__envelope_wrap(const char *fk, size_t fklen, const char *val, size_t len,
                      const uc__meta_t *meta, char **out, size_t *outlen)
{
    return wrap(MAGIC, fk, fklen, val, len, meta, out, outlen);
}

int uc__negative_wrap(const char *fk, size_t fklen, const uc__meta_t *meta,
                      char **out, size_t *outlen)
{
    return wrap(NEG_MAGIC, fk, fklen, NULL, 0, meta, out, outlen);
}

int uc__lease_wrap(const char *lease, const char *env, size_t envlen,
                   char **out, size_t *outlen)
{
    char *buf = malloc(UC__LEASE_LEN + envlen + 1);

    if (buf == NULL) {
        return UC_ENOMEM;
    }
    memcpy(buf, lease, UC__LEASE_LEN);
    if (envlen > 0) {
        memcpy(buf + UC__LEASE_LEN, env, envlen);
    }
    buf[UC__LEASE_LEN + envlen] = '\0';
    *out = buf;
    *outlen = UC__LEASE_LEN + envlen;
    return UC_OK;
}

uc__env_verdict_t uc__envelope_open(const char *fk, size_t fklen, char *buf,
                                    size_t *len, uc__meta_t *meta)
{
    size_t n = *len, hdr;
    uint32_t plen, ntags;
    int neg;

    if (n >= UC__LEASE_LEN && memcmp(buf, LEASE_MAGIC, 4) == 0) {
        if (n == UC__LEASE_LEN) {
            return UC__ENV_LEASE;
        }
        /* The expired value the lease was taken over. */
        memmove(buf, buf + UC__LEASE_LEN, n - UC__LEASE_LEN);
        *len = n - UC__LEASE_LEN;
        buf[*len] = '\0';
        switch (uc__envelope_open(fk, fklen, buf, len, meta)) {
        case UC__ENV_OK:
            return UC__ENV_LEASE_STALE;
        case UC__ENV_OLD:
            /* Another version's fill: a lease, its value not ours to
             * read. */
            return UC__ENV_LEASE;
        default:
            return UC__ENV_CORRUPT;
        }
    }
    if (n >= 4 &&
        (memcmp(buf, MAGIC_V1, 4) == 0 || memcmp(buf, NEG_MAGIC_V1, 4) == 0)) {
        return UC__ENV_OLD;
    }
    if (n < UC__ENV_HEADER) {
        return UC__ENV_CORRUPT;
    }
    neg = memcmp(buf, NEG_MAGIC, 4) == 0;
    if (!neg && memcmp(buf, MAGIC, 4) != 0) {
        return UC__ENV_CORRUPT;
    }
    plen = get32(buf + 40);
    ntags = get32(buf + 44);
    meta->flags = ntags >> 16;
    ntags &= 0xffffu;
    if (ntags > UC__TAGS_MAX) {
        return UC__ENV_CORRUPT;
    }
    hdr = UC__ENV_HEADER + 8u * ntags;
    if (n < hdr || (size_t)plen != n - hdr ||
        get64(buf + 4) != key_hash(fk, fklen) || (neg && plen != 0)) {
        return UC__ENV_CORRUPT;
    }
    meta->produced_ms = get64(buf + 12);
    meta->load_us = get32(buf + 20);
    meta->expires_ms = get64(buf + 24);
    meta->value_hash = get64(buf + 32);
    meta->ntags = ntags;
    for (uint32_t i = 0; i < ntags; i++) {
        meta->tagv[i] = get64(buf + UC__ENV_HEADER + 8u * i);
    }
    memmove(buf, buf + hdr, plen);
    buf[plen] = '\0';
    *len = plen;
    return neg ? UC__ENV_NEGATIVE : UC__ENV_OK;
}

/* splitmix64 of seed + counter: distinct inputs give distinct outputs, so
 * values are unique within the process by the counter and across processes
 * by the seed drawn at create. */
static uint64_t unique64(uc_cache_t *c)
{
    uint64_t v =
        c->lease_seed +
        0x9e3779b97f4a7c15u * (atomic_fetch_add(&c->lease_counter, 1) + 1);

    v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9u;
    v = (v ^ (v >> 27)) * 0x94d049bb133111ebu;
    return v ^ (v >> 31);
}

void uc__lease_new(uc_cache_t *c, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t v = unique64(c);

    memcpy(out, LEASE_MAGIC, 4);
    for (int i = 0; i < 16; i++) {
        out[4 + i] = hex[(v >> (4 * i)) & 15];
    }
}

uint64_t uc__tag_version_new(uc_cache_t *c)
{
    uint64_t v;

    do {
        v = unique64(c);
    } while (v == 0);
    return v;
}

void uc__tag_version_format(uint64_t v, char out[17])
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < 16; i++) {
        out[i] = hex[(v >> (60 - 4 * i)) & 15];
    }
    out[16] = '\0';
}

uint64_t uc__tag_version_parse(const char *val, size_t len)
{
    uint64_t v = 0;

    if (len == 16) {
        size_t i;
        for (i = 0; i < 16; i++) {
            char ch = val[i];
            unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                         : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                                  : 16u;
            if (d == 16u) {
                break;
            }
            v = (v << 4) | d;
        }
        if (i == 16) {
            return v;
        }
    }
    return fnv1a(val, len);
}

uint64_t uc__tags_digest(const uint64_t *v, size_t n)
{
    uint64_t h = 0x6a09e667f3bcc909u ^ (uint64_t)n;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ v[i]) * 0xff51afd7ed558ccdu;
        h ^= h >> 33;
    }
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 29;
    return h != 0 ? h : 1;
}
