/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the Redis INFO reply parser of the redis backend
 * (uc__redis_parse_info in src/lib/redis.c). A reply is bytes from the
 * network: whatever the server, or anything posing as it, sends.
 *
 * Input: the first byte picks the database index whose "db<N>:keys=" line
 * is read (0..15); the rest is the INFO text, handed over without a NUL
 * terminator in a heap buffer of exactly its size, so ASan sees any read
 * past the end.
 *
 * Invariants checked besides memory safety:
 *   - version is always NUL-terminated within its buffer;
 *   - every numeric field is either left as it was or set to a value that
 *     an independent scan finds on one of its lines ("name:" then 1..20
 *     decimal digits that do not overflow);
 *   - parsing the same text twice gives the same result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "redis_info.h"

#define POISON UINT64_C(0xdeadbeefcafef00d)

/* The decimal number digits[0..n) (1..20 digits, no sign, no overflow)
 * into *v; 0 when it is not one. */
static int ref_u64(const char *d, size_t n, uint64_t *v)
{
    uint64_t x = 0;

    if (n == 0 || n > 20) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9') {
            return 0;
        }
        if (x > (UINT64_MAX - (uint64_t)(d[i] - '0')) / 10) {
            return 0;
        }
        x = x * 10 + (uint64_t)(d[i] - '0');
    }
    *v = x;
    return 1;
}

/* 1 when some line of text (a trailing '\r' dropped) is name followed by a
 * decimal number equal to v; for a name ending in '=' (the keys line) the
 * number ends at the first ','. */
static int seen(const char *text, size_t len, const char *name, uint64_t v)
{
    size_t nl = strlen(name);
    const char *p = text;
    const char *end = text + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll = (size_t)((eol != NULL ? eol : end) - p);
        uint64_t x = 0;
        if (ll > 0 && p[ll - 1] == '\r') {
            ll--;
        }
        if (ll > nl && memcmp(p, name, nl) == 0) {
            const char *num = p + nl;
            size_t n = ll - nl;
            const char *comma = memchr(num, ',', n);
            if (name[nl - 1] == '=' && comma != NULL) {
                n = (size_t)(comma - num);
            }
            if (ref_u64(num, n, &x) && x == v) {
                return 1;
            }
        }
        if (eol == NULL) {
            break;
        }
        p = eol + 1;
    }
    return 0;
}

static void poison(uc_server_info_t *i)
{
    memset(i, 0, sizeof(*i));
    i->used_memory = POISON;
    i->max_memory = POISON;
    i->keys = POISON;
    i->evicted_keys = POISON;
    i->expired_keys = POISON;
    i->server_hits = POISON;
    i->server_misses = POISON;
    memset(i->version, 'v', sizeof(i->version));
    i->version[sizeof(i->version) - 1] = '\0';
}

#define CHECK_FIELD(text, len, name, v)                                        \
    UC_FUZZ_CHECK((v) == POISON || seen(text, len, name, v))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uc_server_info_t a, b;
    char dbname[16];
    char *text;
    int db;

    if (size == 0) {
        return 0;
    }
    db = data[0] % 16;
    size--;
    text = malloc(size > 0 ? size : 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, size);

    poison(&a);
    uc__redis_parse_info(text, size, db, &a);
    UC_FUZZ_CHECK(memchr(a.version, '\0', sizeof(a.version)) != NULL);
    CHECK_FIELD(text, size, "used_memory:", a.used_memory);
    CHECK_FIELD(text, size, "maxmemory:", a.max_memory);
    CHECK_FIELD(text, size, "evicted_keys:", a.evicted_keys);
    CHECK_FIELD(text, size, "expired_keys:", a.expired_keys);
    CHECK_FIELD(text, size, "keyspace_hits:", a.server_hits);
    CHECK_FIELD(text, size, "keyspace_misses:", a.server_misses);
    snprintf(dbname, sizeof(dbname), "db%d:keys=", db);
    CHECK_FIELD(text, size, dbname, a.keys);

    poison(&b);
    uc__redis_parse_info(text, size, db, &b);
    UC_FUZZ_CHECK(memcmp(&a, &b, sizeof(a)) == 0);
    free(text);
    return 0;
}
