/* SPDX-License-Identifier: MIT */
/*
 * SipHash-1-3 (Aumasson and Bernstein): one compression round per word and
 * three finalisation rounds, the variant hash tables use because it is fast
 * and still unpredictable without the key. The in-process tables (the
 * memory backend, the near cache) key it with random bytes per handle, so a
 * client that picks keys cannot aim them at one bucket.
 *
 * Words are read in host order: the hash never leaves the process, so it
 * need not agree across machines. Inline, because it is on every lookup.
 */
#ifndef UC_LIB_SIPHASH_H
#define UC_LIB_SIPHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define UC__ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define UC__SIPROUND(v0, v1, v2, v3)                                           \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = UC__ROTL64(v1, 13);                                               \
        v1 ^= v0;                                                              \
        v0 = UC__ROTL64(v0, 32);                                               \
        v2 += v3;                                                              \
        v3 = UC__ROTL64(v3, 16);                                               \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = UC__ROTL64(v3, 21);                                               \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = UC__ROTL64(v1, 17);                                               \
        v1 ^= v2;                                                              \
        v2 = UC__ROTL64(v2, 32);                                               \
    } while (0)

/* SipHash-1-3 of (p, len) under the key (k0, k1). */
static inline uint64_t uc__siphash13(const unsigned char *p, size_t len,
                                     uint64_t k0, uint64_t k1)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    uint64_t last = (uint64_t)len << 56;
    size_t words = len / 8;

    for (size_t w = 0; w < words; w++) {
        uint64_t m;
        memcpy(&m, p + w * 8, 8);
        v3 ^= m;
        UC__SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    for (size_t i = words * 8; i < len; i++) {
        last |= (uint64_t)p[i] << (8 * (i - words * 8));
    }
    v3 ^= last;
    UC__SIPROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    UC__SIPROUND(v0, v1, v2, v3);
    UC__SIPROUND(v0, v1, v2, v3);
    UC__SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

#endif
