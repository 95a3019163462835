/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for keyspaces: pattern compilation through
 * uc_cache_add_keyspaces(), key building through uc_keyspace_key(), field
 * escaping through uc_key_escape_field(), and one set / get / invalidate
 * round trip on the memory backend.
 *
 * Input: line 1 is the keyspace name, line 2 its pattern, the lines after
 * are field values (every line is also escaped on its own).
 *
 * Invariants checked besides memory safety:
 *   - declaring a keyspace either succeeds or fails with a message and
 *     registers nothing; the built-in keyspaces declared first stay as they
 *     were;
 *   - an escaped field is non-empty, holds only [A-Za-z0-9._%-] (so no ':'
 *     and no glob metacharacter) and decodes back to the input byte for
 *     byte; a value is refused exactly when it is empty, longer than
 *     UC_FIELD_MAX or holds a control byte; the output buffer is never
 *     overrun, and a buffer one byte short is refused with UC_ETOOBIG;
 *   - a built key splits at ':' exactly as its pattern does: literal parts
 *     verbatim, each field part decoding to its value;
 *   - what uc_keyspace_set() stores, uc_keyspace_get() and uc_cache_get() of
 *     the built key return, and an invalidation removes exactly that entry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "utxocache/utxocache.h"

/* The web-api's key shapes, which the library no longer declares itself. */
static const uc_keyspace_def_t shape_defs[] = {
    {.name = "feedback_stats",
     .pattern = "feedback:stats:{insight_id}",
     .ttl_s = 3600},
    {.name = "backfill_job", .pattern = "backfill:job:{job_id}", .ttl_s = 300},
    {.name = "recent_metrics",
     .pattern = "metrics:{service}:{metric_type}:recent",
     .ttl_s = 300},
    {.name = "aggregated_metrics",
     .pattern = "metrics:{service}:{metric_type}:agg:{interval}:{start}:{end}",
     .ttl_s = 3600},
};

static const uc_keyspace_def_t *shapes(size_t *n)
{
    *n = sizeof(shape_defs) / sizeof(shape_defs[0]);
    return shape_defs;
}

static int hexdigit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int escaped_byte_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '%';
}

/*
 * Decodes an escaped field (upper-case %XX only) into out (cap bytes).
 * Returns the decoded length, or -1 when esc is not a canonical escaping:
 * a byte outside the alphabet, a short or lower-case escape, or an escape
 * of a byte that needed none.
 */
static long unescape(const char *esc, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)esc[i];
        if (!escaped_byte_ok((char)c)) {
            return -1;
        }
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n) {
                return -1;
            }
            hi = hexdigit(esc[i + 1]);
            lo = hexdigit(esc[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            c = (unsigned char)(hi * 16 + lo);
            if (c != '%' && escaped_byte_ok((char)c)) {
                return -1;
            }
            i += 2;
        }
        if (o == cap) {
            return -1;
        }
        out[o++] = (char)c;
    }
    return (long)o;
}

static int field_acceptable(const char *v, size_t n)
{
    if (n == 0 || n > UC_FIELD_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* Escapes into an exactly sized heap buffer so ASan sees any overrun. */
static int escape_into(const char *v, size_t n, size_t cap, char *copy,
                       size_t *len)
{
    char *buf = malloc(cap > 0 ? cap : 1);
    int rc;

    if (buf == NULL) {
        return UC_ENOMEM;
    }
    rc = uc_key_escape_field(v, n, buf, cap, len);
    if (rc == UC_OK) {
        UC_FUZZ_CHECK(*len < cap);
        UC_FUZZ_CHECK(buf[*len] == '\0');
        memcpy(copy, buf, *len + 1);
    }
    free(buf);
    return rc;
}

static void fuzz_escape(const char *v, size_t n)
{
    char esc[3 * UC_FIELD_MAX + 1], again[3 * UC_FIELD_MAX + 1];
    char dec[UC_FIELD_MAX];
    size_t len, len2;
    int rc = escape_into(v, n, sizeof(esc), esc, &len);

    if (rc == UC_ENOMEM) {
        return;
    }
    if (!field_acceptable(v, n)) {
        UC_FUZZ_CHECK(rc == UC_EINVAL);
        return;
    }
    UC_FUZZ_CHECK(rc == UC_OK);
    UC_FUZZ_CHECK(len >= n && len <= 3 * n);
    UC_FUZZ_CHECK(strlen(esc) == len);
    UC_FUZZ_CHECK(memchr(esc, ':', len) == NULL);
    long d = unescape(esc, len, dec, sizeof(dec));
    UC_FUZZ_CHECK(d == (long)n);
    UC_FUZZ_CHECK(memcmp(dec, v, n) == 0);

    /* Exactly enough room works; one byte less is refused, not cut. */
    rc = escape_into(v, n, len + 1, again, &len2);
    if (rc != UC_ENOMEM) {
        UC_FUZZ_CHECK(rc == UC_OK && len2 == len);
        UC_FUZZ_CHECK(memcmp(again, esc, len) == 0);
    }
    rc = escape_into(v, n, len, again, &len2);
    UC_FUZZ_CHECK(rc == UC_ETOOBIG || rc == UC_ENOMEM);
}

/* Length of the ':'-separated segment starting at s. */
static size_t segment(const char *s, size_t n)
{
    const char *c = memchr(s, ':', n);

    return c != NULL ? (size_t)(c - s) : n;
}

/*
 * Checks that key splits at ':' like pattern: literal segments verbatim, a
 * "{name}" segment decoding to the next field value.
 */
static void check_key_shape(const char *pattern, const char *key, size_t klen,
                            const char *const *fields, size_t nfields)
{
    const char *p = pattern, *k = key;
    size_t pn = strlen(pattern), kn = klen, fi = 0;
    char dec[UC_FIELD_MAX];

    for (;;) {
        size_t ps = segment(p, pn), ks = segment(k, kn);
        if (ps > 0 && p[0] == '{') {
            UC_FUZZ_CHECK(fi < nfields);
            long d = unescape(k, ks, dec, sizeof(dec));
            UC_FUZZ_CHECK(d >= 1 && (size_t)d == strlen(fields[fi]));
            UC_FUZZ_CHECK(memcmp(dec, fields[fi], (size_t)d) == 0);
            fi++;
        } else {
            UC_FUZZ_CHECK(ps == ks && memcmp(p, k, ps) == 0);
        }
        UC_FUZZ_CHECK((ps == pn) == (ks == kn));
        if (ps == pn) {
            break;
        }
        p += ps + 1;
        pn -= ps + 1;
        k += ks + 1;
        kn -= ks + 1;
    }
    UC_FUZZ_CHECK(fi == nfields);
}

static void check_declared(uc_keyspace_t *ks, const char *name,
                           const char *pattern)
{
    size_t nf = uc_keyspace_nfields(ks);

    UC_FUZZ_CHECK(strcmp(uc_keyspace_name(ks), name) == 0);
    UC_FUZZ_CHECK(uc_keyspace_ttl(ks) == 60);
    UC_FUZZ_CHECK(nf <= UC_KEYSPACE_FIELDS_MAX);
    UC_FUZZ_CHECK(uc_keyspace_field(ks, nf) == NULL);
    for (size_t i = 0; i < nf; i++) {
        const char *f = uc_keyspace_field(ks, i);
        char braced[UC_KEYSPACE_NAME_MAX + 2];
        size_t fl;
        UC_FUZZ_CHECK(f != NULL);
        fl = strlen(f);
        UC_FUZZ_CHECK(fl >= 1 && fl < UC_KEYSPACE_NAME_MAX);
        UC_FUZZ_CHECK(strspn(f, "abcdefghijklmnopqrstuvwxyz0123456789_") == fl);
        braced[0] = '{';
        memcpy(braced + 1, f, fl);
        braced[fl + 1] = '}';
        braced[fl + 2] = '\0';
        UC_FUZZ_CHECK(strstr(pattern, braced) != NULL);
    }
}

/* set, read back two ways, invalidate, and make sure it is gone. */
static void round_trip(uc_cache_t *cache, uc_keyspace_t *ks,
                       const char *const *fields, size_t nf, const char *key,
                       size_t klen, int all_set)
{
    static const char val[] = "{\"fuzz\":true}";
    const char *any[UC_KEYSPACE_FIELDS_MAX] = {0};
    char *got = NULL;
    size_t glen = 0, removed = 0;
    int rc;

    if (uc_keyspace_set(ks, fields, nf, val, sizeof(val) - 1) != UC_OK) {
        return;
    }
    rc = uc_keyspace_get(ks, fields, nf, &got, &glen);
    UC_FUZZ_CHECK(rc == UC_OK);
    UC_FUZZ_CHECK(glen == sizeof(val) - 1 && memcmp(got, val, glen) == 0);
    uc_free(got);
    got = NULL;
    /* The raw key holds the value in its envelope, the value last. */
    rc = uc_cache_get(cache, key, klen, &got, &glen);
    UC_FUZZ_CHECK(rc == UC_OK);
    UC_FUZZ_CHECK(
        glen > sizeof(val) - 1 &&
        memcmp(got + glen - (sizeof(val) - 1), val, sizeof(val) - 1) == 0);
    uc_free(got);
    got = NULL;

    rc = uc_keyspace_invalidate(ks, all_set ? fields : any, nf, &removed);
    UC_FUZZ_CHECK(rc == UC_OK);
    UC_FUZZ_CHECK(removed == 1);
    rc = uc_keyspace_get(ks, fields, nf, &got, &glen);
    UC_FUZZ_CHECK(rc == UC_MISS);
}

static void fuzz_keyspace(uc_cache_t *cache, const uc_fuzz_lines_t *l)
{
    const char *name = l->line[0];
    const char *pattern = l->n > 1 ? l->line[1] : "";
    uc_keyspace_def_t def = {.name = name, .pattern = pattern, .ttl_s = 60};
    const char *fields[UC_KEYSPACE_FIELDS_MAX + 1];
    char err[256], key[UC_KEY_MAX + 1];
    size_t nf, klen, total = 0;
    int rc, fields_ok = 1;

    uc_keyspace_t *before = uc_cache_keyspace(cache, name);
    err[0] = '\0';
    rc = uc_cache_add_keyspaces(cache, &def, 1, err, sizeof(err));
    UC_FUZZ_CHECK(rc == UC_OK || rc == UC_EINVAL || rc == UC_ENOMEM);
    if (rc != UC_OK) {
        UC_FUZZ_CHECK(err[0] != '\0' &&
                      strnlen(err, sizeof(err)) < sizeof(err));
        UC_FUZZ_CHECK(uc_cache_keyspace(cache, name) == before);
        return;
    }
    UC_FUZZ_CHECK(before == NULL);
    uc_keyspace_t *ks = uc_cache_keyspace(cache, name);
    UC_FUZZ_CHECK(ks != NULL);
    check_declared(ks, name, pattern);

    nf = uc_keyspace_nfields(ks);
    for (size_t i = 0; i <= nf && i < UC_KEYSPACE_FIELDS_MAX + 1; i++) {
        fields[i] = 2 + i < l->n ? l->line[2 + i] : "x";
    }
    for (size_t i = 0; i < nf; i++) {
        size_t n = strlen(fields[i]);
        fields_ok = fields_ok && field_acceptable(fields[i], n);
        total += 3 * n;
    }
    total += strlen(pattern);

    /* A wrong field count is refused whatever the values. */
    rc = uc_keyspace_key(ks, fields, nf + 1, key, sizeof(key), &klen);
    UC_FUZZ_CHECK(rc == UC_EINVAL);

    rc = uc_keyspace_key(ks, fields, nf, key, sizeof(key), &klen);
    if (!fields_ok) {
        UC_FUZZ_CHECK(rc == UC_EINVAL);
        return;
    }
    if (total < sizeof(key)) {
        /* Escaping at most triples a value, so this always fits. */
        UC_FUZZ_CHECK(rc == UC_OK);
    }
    UC_FUZZ_CHECK(rc == UC_OK || rc == UC_ETOOBIG);
    if (rc != UC_OK) {
        return;
    }
    UC_FUZZ_CHECK(klen < sizeof(key) && strlen(key) == klen);
    UC_FUZZ_CHECK(strpbrk(key, "*?[]\\{} ") == NULL);
    check_key_shape(pattern, key, klen, fields, nf);
    round_trip(cache, ks, fields, nf, key, klen, 1);
    round_trip(cache, ks, fields, nf, key, klen, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uc_config_t cfg = UC_CONFIG_INIT;
    uc_cache_t *cache = NULL;
    uc_fuzz_lines_t l = {0};
    const uc_keyspace_def_t *builtin;
    size_t nbuiltin;
    char err[256];

    if (uc_fuzz_lines_init(&l, data, size) != 0) {
        return 0;
    }
    for (size_t i = 0; i < l.n; i++) {
        fuzz_escape(l.line[i], l.len[i]);
    }

    cfg.backend = UC_BACKEND_MEMORY;
    cfg.memory_max_bytes = 1u << 20;
    if (uc_cache_create(&cfg, &cache, err, sizeof(err)) != UC_OK) {
        goto cleanup;
    }
    /* The service's own keyspaces first, so names can collide with them. */
    builtin = shapes(&nbuiltin);
    UC_FUZZ_CHECK(uc_cache_add_keyspaces(cache, builtin, nbuiltin, err,
                                         sizeof(err)) == UC_OK);
    fuzz_keyspace(cache, &l);
    for (size_t i = 0; i < nbuiltin; i++) {
        uc_keyspace_t *ks = uc_cache_keyspace(cache, builtin[i].name);
        UC_FUZZ_CHECK(ks != NULL);
        UC_FUZZ_CHECK(uc_keyspace_ttl(ks) == builtin[i].ttl_s);
    }

cleanup:
    uc_cache_destroy(cache);
    uc_fuzz_lines_release(&l);
    return 0;
}
