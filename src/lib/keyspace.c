/* SPDX-License-Identifier: MIT */
/*
 * Keyspaces: patterns compiled into literal and field parts, key building
 * with field escaping, the shape check that keeps an invalidation inside
 * its own keyspace, and a key parsed back into its fields (the warmer's).
 *
 * Why escaping is safe: a field value is written with every byte outside
 * [A-Za-z0-9._-] as %XX. So a built field never holds ':' (the separator),
 * '%'-free raw bytes can't be confused with escapes (the '%' itself is
 * escaped), and no glob metacharacter (* ? [ ] \) ever reaches Redis from a
 * value. Patterns require each field to stand between separators, so a key
 * parses back into its fields in exactly one way.
 */
#include <stdio.h>
#include <string.h>

#include "cache_int.h"

/*
 * What each byte of a field value becomes: 1 copied as it is
 * ([A-Za-z0-9._-]), 2 escaped as %XX, 0 refused (control bytes). A table,
 * because every cache read escapes its key's fields.
 */
static const unsigned char byte_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 2,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 1,
    2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 2, 2, 2, 2, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static int safe_byte(unsigned char c)
{
    return byte_class[c] == 1;
}

int uc_key_escape_field(const char *val, size_t vlen, char *buf, size_t cap,
                        size_t *len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    if (val == NULL || vlen == 0 || vlen > UC_FIELD_MAX) {
        return UC_EINVAL;
    }
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)val[i];
        unsigned char k = byte_class[c];
        if (k == 1) {
            if (o + 1 >= cap) {
                return UC_ETOOBIG;
            }
            buf[o++] = (char)c;
        } else if (k == 2) {
            if (o + 3 >= cap) {
                return UC_ETOOBIG;
            }
            buf[o++] = '%';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            return UC_EINVAL;
        }
    }
    buf[o] = '\0';
    *len = o;
    return UC_OK;
}

static int fail(char *err, size_t errlen, const char *what, const char *name)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "keyspace '%s': %s", name != NULL ? name : "",
                 what);
    }
    return UC_EINVAL;
}

int uc__keyspace_compile(uc_keyspace_t *ks, const uc_keyspace_def_t *def,
                         char *err, size_t errlen)
{
    const char *p;
    size_t n;

    if (def->name == NULL || def->pattern == NULL) {
        return fail(err, errlen, "name and pattern are required", def->name);
    }
    n = strlen(def->name);
    if (n == 0 || n >= sizeof(ks->name)) {
        return fail(err, errlen, "name must be 1-31 bytes", def->name);
    }
    for (size_t i = 0; i < n; i++) {
        char c = def->name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return fail(err, errlen, "name must be [a-z0-9_]", def->name);
        }
    }
    if (def->ttl_s == 0) {
        return fail(err, errlen, "ttl must be at least 1 s", def->name);
    }
    if (def->pattern[0] == '\0') {
        /* An empty key is one the raw get/set refuse. */
        return fail(err, errlen, "pattern must not be empty", def->name);
    }
    if (def->pattern[0] == '{') {
        /* A leading field could spell "uc:" and reach the reserved space;
         * its invalidation glob would then match the dataset marker. */
        return fail(err, errlen, "pattern must start with literal text",
                    def->name);
    }
    if (strncmp(def->pattern, "uc:", 3) == 0) {
        return fail(err, errlen, "patterns starting 'uc:' are reserved",
                    def->name);
    }
    memcpy(ks->name, def->name, n + 1);
    ks->pattern = def->pattern;
    ks->ttl_s = def->ttl_s;
    ks->nfields = 0;
    ks->nparts = 0;

    p = def->pattern;
    while (*p != '\0') {
        if (ks->nparts == sizeof(ks->parts) / sizeof(ks->parts[0])) {
            return fail(err, errlen, "pattern has too many parts", def->name);
        }
        uc__part_t *part = &ks->parts[ks->nparts];
        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t flen;
            if (close == NULL) {
                return fail(err, errlen, "unclosed '{' in pattern", def->name);
            }
            flen = (size_t)(close - p - 1);
            if (flen == 0 || flen >= UC_KEYSPACE_NAME_MAX) {
                return fail(err, errlen, "field name must be 1-31 bytes",
                            def->name);
            }
            if (ks->nfields == UC_KEYSPACE_FIELDS_MAX) {
                return fail(err, errlen, "too many fields", def->name);
            }
            /* A field must stand between separators (or the ends). */
            if (p != def->pattern && p[-1] != ':') {
                return fail(err, errlen, "a field must follow ':'", def->name);
            }
            if (close[1] != '\0' && close[1] != ':') {
                return fail(err, errlen, "a field must be followed by ':'",
                            def->name);
            }
            for (size_t j = 0; j < flen; j++) {
                char c = p[1 + j];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_')) {
                    return fail(err, errlen, "field names must be [a-z0-9_]",
                                def->name);
                }
            }
            memcpy(ks->fields[ks->nfields], p + 1, flen);
            ks->fields[ks->nfields][flen] = '\0';
            part->lit = NULL;
            part->len = 0;
            part->field = ks->nfields++;
            p = close + 1;
        } else {
            const char *start = p;
            while (*p != '\0' && *p != '{') {
                unsigned char c = (unsigned char)*p;
                if (!safe_byte(c) && c != ':') {
                    return fail(err, errlen,
                                "literal text must be [A-Za-z0-9._:-]",
                                def->name);
                }
                p++;
            }
            part->lit = start;
            part->len = (size_t)(p - start);
            part->field = 0;
        }
        ks->nparts++;
    }
    return UC_OK;
}

int uc__keyspace_build(const uc_keyspace_t *ks, const char *const *fields,
                       size_t nfields, int glob, char *buf, size_t cap,
                       size_t *len)
{
    size_t o = 0, flen;
    int rc;

    if (nfields != ks->nfields || (nfields > 0 && fields == NULL)) {
        return UC_EINVAL;
    }
    for (size_t i = 0; i < ks->nparts; i++) {
        const uc__part_t *part = &ks->parts[i];
        if (part->lit != NULL) {
            if (o + part->len >= cap) {
                return UC_ETOOBIG;
            }
            memcpy(buf + o, part->lit, part->len);
            o += part->len;
            continue;
        }
        const char *v = fields[part->field];
        if (v == NULL) {
            if (!glob) {
                return UC_EINVAL;
            }
            if (o + 1 >= cap) {
                return UC_ETOOBIG;
            }
            buf[o++] = '*';
            continue;
        }
        rc = uc_key_escape_field(v, strlen(v), buf + o, cap - o, &flen);
        if (rc != UC_OK) {
            return rc;
        }
        o += flen;
    }
    if (o >= cap) {
        return UC_ETOOBIG;
    }
    buf[o] = '\0';
    *len = o;
    return UC_OK;
}

int uc_keyspace_key(const uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, char *buf, size_t cap, size_t *len)
{
    return uc__keyspace_build(ks, fields, nfields, 0, buf, cap, len);
}

int uc__keyspace_matches(const uc_keyspace_t *ks, const char *key, size_t klen,
                         const char *const *escaped)
{
    size_t pos = 0;

    for (size_t i = 0; i < ks->nparts; i++) {
        const uc__part_t *part = &ks->parts[i];
        if (part->lit != NULL) {
            if (klen - pos < part->len ||
                memcmp(key + pos, part->lit, part->len) != 0) {
                return 0;
            }
            pos += part->len;
            continue;
        }
        /* An escaped field: one or more bytes of [A-Za-z0-9._-%]. */
        size_t start = pos;
        while (pos < klen &&
               (safe_byte((unsigned char)key[pos]) || key[pos] == '%')) {
            pos++;
        }
        if (pos == start) {
            return 0;
        }
        const char *want = escaped != NULL ? escaped[part->field] : NULL;
        if (want != NULL && (strlen(want) != pos - start ||
                             memcmp(key + start, want, pos - start) != 0)) {
            return 0;
        }
    }
    return pos == klen;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1; /* escapes are written upper-case */
}

/* Unescapes one field's bytes key[0..n) into buf, NUL-terminated: its
 * length; -1 when they hold an escape uc_key_escape_field() would not have
 * written (so the value would build another key), -2 when buf is short. */
static long unescape(const char *key, size_t n, char *buf, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '%') {
            int h1 = i + 2 < n ? hex_digit(key[i + 1]) : -1;
            int h2 = i + 2 < n ? hex_digit(key[i + 2]) : -1;
            if (h1 < 0 || h2 < 0) {
                return -1;
            }
            c = (unsigned char)(h1 * 16 + h2);
            if (byte_class[c] != 2) {
                return -1;
            }
            i += 2;
        }
        if (o + 1 >= cap) {
            return -2;
        }
        buf[o++] = (char)c;
    }
    buf[o] = '\0';
    return (long)o;
}

int uc__keyspace_parse(const uc_keyspace_t *ks, const char *key, size_t klen,
                       char *buf, size_t cap, const char **fields)
{
    size_t pos = 0, o = 0;

    for (size_t i = 0; i < ks->nparts; i++) {
        const uc__part_t *part = &ks->parts[i];
        if (part->lit != NULL) {
            if (klen - pos < part->len ||
                memcmp(key + pos, part->lit, part->len) != 0) {
                return UC_EINVAL;
            }
            pos += part->len;
            continue;
        }
        size_t start = pos;
        while (pos < klen &&
               (safe_byte((unsigned char)key[pos]) || key[pos] == '%')) {
            pos++;
        }
        if (pos == start) {
            return UC_EINVAL;
        }
        long n =
            o < cap ? unescape(key + start, pos - start, buf + o, cap - o) : -2;
        if (n == -2) {
            return UC_ETOOBIG;
        }
        if (n <= 0 || n > UC_FIELD_MAX) {
            return UC_EINVAL;
        }
        fields[part->field] = buf + o;
        o += (size_t)n + 1;
    }
    return pos == klen ? UC_OK : UC_EINVAL;
}

const char *uc_keyspace_name(const uc_keyspace_t *ks)
{
    return ks->name;
}

uint32_t uc_keyspace_ttl(const uc_keyspace_t *ks)
{
    return ks->ttl_s;
}

size_t uc_keyspace_nfields(const uc_keyspace_t *ks)
{
    return ks->nfields;
}

const char *uc_keyspace_field(const uc_keyspace_t *ks, size_t i)
{
    return i < ks->nfields ? ks->fields[i] : NULL;
}
