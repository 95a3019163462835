/* SPDX-License-Identifier: MIT */
/*
 * Keyspaces: patterns compiled into literal and field parts, key and tag
 * building with field escaping, the shape check that keeps an invalidation
 * inside its own keyspace, and a key parsed back into its fields (the
 * warmer's). A tag is compiled like the key pattern, over the keyspace's
 * own fields.
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

/*
 * Compiles a pattern into parts: literal text [A-Za-z0-9._:-] and {field}
 * names, each field between separators (or the ends). For the key pattern
 * (tag 0) each field is a new one of ks; for a tag, each must name one of
 * ks's fields. NULL, or what is wrong.
 */
static const char *parse(uc_keyspace_t *ks, const char *pattern, int tag,
                         uc__part_t *parts, size_t *nparts)
{
    const size_t maxparts = 2 * UC_KEYSPACE_FIELDS_MAX + 1;
    const char *p = pattern;

    while (*p != '\0') {
        if (*nparts == maxparts) {
            return "pattern has too many parts";
        }
        uc__part_t *part = &parts[*nparts];
        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t flen, f;
            if (close == NULL) {
                return "unclosed '{' in pattern";
            }
            flen = (size_t)(close - p - 1);
            if (flen == 0 || flen >= UC_KEYSPACE_NAME_MAX) {
                return "field name must be 1-31 bytes";
            }
            /* A field must stand between separators (or the ends). */
            if (p != pattern && p[-1] != ':') {
                return "a field must follow ':'";
            }
            if (close[1] != '\0' && close[1] != ':') {
                return "a field must be followed by ':'";
            }
            for (size_t j = 0; j < flen; j++) {
                char c = p[1 + j];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_')) {
                    return "field names must be [a-z0-9_]";
                }
            }
            if (tag) {
                for (f = 0; f < ks->nfields; f++) {
                    if (strlen(ks->fields[f]) == flen &&
                        memcmp(ks->fields[f], p + 1, flen) == 0) {
                        break;
                    }
                }
                if (f == ks->nfields) {
                    return "unknown field";
                }
            } else {
                if (ks->nfields == UC_KEYSPACE_FIELDS_MAX) {
                    return "too many fields";
                }
                f = ks->nfields++;
                memcpy(ks->fields[f], p + 1, flen);
                ks->fields[f][flen] = '\0';
            }
            part->lit = NULL;
            part->len = 0;
            part->field = f;
            p = close + 1;
        } else {
            const char *start = p;
            while (*p != '\0' && *p != '{') {
                unsigned char c = (unsigned char)*p;
                if (!safe_byte(c) && c != ':') {
                    return "literal text must be [A-Za-z0-9._:-]";
                }
                p++;
            }
            part->lit = start;
            part->len = (size_t)(p - start);
            part->field = 0;
        }
        (*nparts)++;
    }
    return NULL;
}

int uc__keyspace_compile(uc_keyspace_t *ks, const uc_keyspace_def_t *def,
                         char *err, size_t errlen)
{
    const char *what;
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
    what = parse(ks, def->pattern, 0, ks->parts, &ks->nparts);
    if (what != NULL) {
        return fail(err, errlen, what, def->name);
    }
    ks->ntags = 0;
    for (size_t i = 0; def->tags != NULL && def->tags[i] != NULL; i++) {
        uc__tag_t *t = &ks->tags[i];
        if (i == UC__TAGS_MAX) {
            return fail(err, errlen, "too many tags", def->name);
        }
        t->pattern = def->tags[i];
        t->nparts = 0;
        what = def->tags[i][0] == '\0' ? "a tag must not be empty"
               : def->tags[i][0] == '{'
                   ? "a tag must start with literal text"
                   : parse(ks, def->tags[i], 1, t->parts, &t->nparts);
        if (what != NULL) {
            if (err != NULL && errlen > 0) {
                snprintf(err, errlen, "keyspace '%s': tag '%s': %s", def->name,
                         def->tags[i], what);
            }
            return UC_EINVAL;
        }
        ks->ntags = i + 1;
    }
    return UC_OK;
}

/* Writes parts with those field values into buf (see uc__keyspace_build). */
static int build_parts(const uc__part_t *parts, size_t nparts,
                       const char *const *fields, int glob, char *buf,
                       size_t cap, size_t *len)
{
    size_t o = 0, flen;
    int rc;

    for (size_t i = 0; i < nparts; i++) {
        const uc__part_t *part = &parts[i];
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

int uc__keyspace_build(const uc_keyspace_t *ks, const char *const *fields,
                       size_t nfields, int glob, char *buf, size_t cap,
                       size_t *len)
{
    if (nfields != ks->nfields || (nfields > 0 && fields == NULL)) {
        return UC_EINVAL;
    }
    return build_parts(ks->parts, ks->nparts, fields, glob, buf, cap, len);
}

int uc__tag_build(const uc_keyspace_t *ks, size_t i, const char *const *fields,
                  size_t nfields, char *buf, size_t cap, size_t *len)
{
    const uc__tag_t *t;

    if (i >= ks->ntags || nfields != ks->nfields ||
        (nfields > 0 && fields == NULL)) {
        return UC_EINVAL;
    }
    t = &ks->tags[i];
    /* At most UC_TAG_MAX bytes, so that "#" and the tag fit a target. */
    return build_parts(t->parts, t->nparts, fields, 0, buf,
                       cap < UC_TAG_MAX + 1 ? cap : UC_TAG_MAX + 1, len);
}

int uc_keyspace_tag(const uc_keyspace_t *ks, size_t i,
                    const char *const *fields, size_t nfields, char *buf,
                    size_t cap, size_t *len)
{
    if (ks == NULL || buf == NULL || len == NULL) {
        return UC_EINVAL;
    }
    return uc__tag_build(ks, i, fields, nfields, buf, cap, len);
}

int uc_keyspace_tag_target(const uc_keyspace_t *ks, size_t i,
                           const char *const *fields, size_t nfields, char *buf,
                           size_t cap, size_t *len)
{
    size_t n;
    int rc;

    if (ks == NULL || buf == NULL || len == NULL) {
        return UC_EINVAL;
    }
    if (cap < 2) {
        return UC_ETOOBIG;
    }
    rc = uc__tag_build(ks, i, fields, nfields, buf + 1, cap - 1, &n);
    if (rc != UC_OK) {
        return rc;
    }
    buf[0] = UC__TAG_TARGET;
    *len = n + 1;
    return UC_OK;
}

size_t uc_keyspace_ntags(const uc_keyspace_t *ks)
{
    return ks->ntags;
}

const char *uc_keyspace_tag_pattern(const uc_keyspace_t *ks, size_t i)
{
    return i < ks->ntags ? ks->tags[i].pattern : NULL;
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
