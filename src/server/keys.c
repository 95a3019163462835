/* SPDX-License-Identifier: MIT */
/*
 * Key administration from the command line: `keys list` (never a secret or
 * a hash), `keys revoke` (effective from the next request on every instance,
 * since auth.c caches nothing), and `keys import`, which takes the original
 * web-api's api_keys table as `psql \copy ... CSV HEADER` writes it, or as
 * JSON lines, and stores each row's SHA-256 so that its clients keep their
 * keys. The file is parsed and checked whole before anything is written,
 * then written in one transaction: a bad line imports nothing.
 */
#include "app.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* A key table export is a few hundred bytes a row; this is room for far
 * more keys than any deployment of the original had. */
#define IMPORT_FILE_MAX (64L * 1024 * 1024)
#define IMPORT_ROWS_MAX 1000000
#define CSV_FIELDS_MAX 64

/* ---- listing ------------------------------------------------------------- */

/* µs since epoch as 2024-01-02T03:04:05Z ("-" for none): the table's
 * columns do not need the microseconds that the JSON keeps. */
static void short_time(int64_t us, char *buf, size_t cap)
{
    char full[40];
    if (us == UQ_DB_NULL_TIME) {
        snprintf(buf, cap, "-");
        return;
    }
    uq_time_format(us, full, sizeof(full));
    snprintf(buf, cap, "%.19sZ", full);
}

static json_t *json_time(int64_t us)
{
    char buf[40];
    if (us == UQ_DB_NULL_TIME) {
        return json_null();
    }
    uq_time_format(us, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *json_opt(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

static int list_json(const uq_db_api_key_t *k, size_t n, FILE *out)
{
    json_t *arr = json_array();
    int rc = arr != NULL ? 0 : 1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *o =
            json_pack("{sI so so so so ss ss so so sb so}", "id",
                      (json_int_t)k[i].id, "prefix", json_opt(k[i].prefix),
                      "origin_id", json_opt(k[i].origin_id), "origin_prefix",
                      json_opt(k[i].origin_prefix), "name", json_opt(k[i].name),
                      "user_id", k[i].user_id, "role", k[i].role, "created_at",
                      json_time(k[i].created_at), "last_used_at",
                      json_time(k[i].last_used_at), "revoked",
                      k[i].revoked_at != UQ_DB_NULL_TIME, "revoked_at",
                      json_time(k[i].revoked_at));
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            rc = 1;
        }
    }
    if (rc == 0 &&
        (json_dumpf(arr, out, JSON_COMPACT) != 0 || fputc('\n', out) == EOF)) {
        rc = 1;
    }
    json_decref(arr);
    return rc;
}

/* The lookup prefix, or for an imported key the prefix the original showed
 * its users, marked so that it is not taken for one of ours. */
static void shown_prefix(const uq_db_api_key_t *k, char *buf, size_t cap)
{
    if (k->prefix[0] != '\0') {
        snprintf(buf, cap, "%s", k->prefix);
    } else if (k->origin_prefix[0] != '\0') {
        snprintf(buf, cap, "%s*", k->origin_prefix);
    } else {
        snprintf(buf, cap, "-");
    }
}

static void list_table(const uq_db_api_key_t *k, size_t n, FILE *out)
{
    int wp = 12, wu = 4;
    char pfx[UQ_DB_KEY_ORIGIN_PREFIX_MAX + 2];
    for (size_t i = 0; i < n; i++) {
        shown_prefix(&k[i], pfx, sizeof(pfx));
        wp = (int)strlen(pfx) > wp ? (int)strlen(pfx) : wp;
        wu = (int)strlen(k[i].user_id) > wu ? (int)strlen(k[i].user_id) : wu;
    }
    fprintf(out, "%-6s %-*s %-*s %-7s %-8s %-20s %-20s %s\n", "ID", wp,
            "PREFIX", wu, "USER", "ROLE", "SOURCE", "CREATED", "LAST USED",
            "REVOKED");
    for (size_t i = 0; i < n; i++) {
        char created[32], used[32], revoked[32];
        shown_prefix(&k[i], pfx, sizeof(pfx));
        short_time(k[i].created_at, created, sizeof(created));
        short_time(k[i].last_used_at, used, sizeof(used));
        short_time(k[i].revoked_at, revoked, sizeof(revoked));
        fprintf(out, "%-6lld %-*s %-*s %-7s %-8s %-20s %-20s %s\n",
                (long long)k[i].id, wp, pfx, wu, k[i].user_id, k[i].role,
                k[i].origin_id[0] != '\0' ? "imported" : "local", created, used,
                revoked);
    }
}

int uq_keys_list(uq_app_t *app, int json, FILE *out, FILE *err)
{
    uq_db_api_key_t *rows = NULL;
    size_t n = 0;
    int st = uq_db_api_key_list(app->db, &rows, &n);
    int rc = 0;

    if (st != UQ_DB_OK) {
        fprintf(err, "utxoiq-api: keys list: %s\n", uq_db_strerror(st));
        return 1;
    }
    if (json) {
        rc = list_json(rows, n, out);
    } else {
        list_table(rows, n, out);
    }
    free(rows);
    if (rc != 0 || fflush(out) != 0) {
        fprintf(err, "utxoiq-api: keys list: cannot write the list\n");
        return 1;
    }
    return 0;
}

/* ---- revoking ------------------------------------------------------------ */

static int all_digits(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 18) {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
    }
    return 1;
}

/*
 * The key `which` names: our id, our lookup prefix, an imported key's
 * original id, or its original prefix when only one key has it. Returns
 * its index in k[0..n-1], -1 when none matches, -2 when the original
 * prefix is ambiguous (*count set).
 */
static long find_key(const uq_db_api_key_t *k, size_t n, const char *which,
                     size_t *count)
{
    long found = -1;
    if (all_digits(which)) {
        long long id = strtoll(which, NULL, 10);
        for (size_t i = 0; i < n; i++) {
            if (k[i].id == id) {
                return (long)i;
            }
        }
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((k[i].prefix[0] != '\0' && strcmp(k[i].prefix, which) == 0) ||
            (k[i].origin_id[0] != '\0' &&
             strcasecmp(k[i].origin_id, which) == 0)) {
            return (long)i;
        }
    }
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i].origin_prefix[0] != '\0' &&
            strcmp(k[i].origin_prefix, which) == 0) {
            found = (long)i;
            (*count)++;
        }
    }
    return *count > 1 ? -2 : found;
}

int uq_keys_revoke(uq_app_t *app, const char *which, FILE *out, FILE *err)
{
    uq_db_api_key_t *rows = NULL;
    size_t n = 0, count = 0;
    int64_t at = 0;
    char when[32];
    int st = uq_db_api_key_list(app->db, &rows, &n);

    if (st != UQ_DB_OK) {
        fprintf(err, "utxoiq-api: keys revoke: %s\n", uq_db_strerror(st));
        return 1;
    }
    long i = find_key(rows, n, which, &count);
    if (i < 0) {
        /* The argument is echoed only when it is short: pasted in error, a
         * whole key would otherwise land in a log. */
        if (i == -2) {
            fprintf(err,
                    "utxoiq-api: keys revoke '%s': %zu keys have that "
                    "prefix; give the id (keys list)\n",
                    which, count);
        } else if (strlen(which) <= 36) {
            fprintf(err, "utxoiq-api: keys revoke '%s': no such key\n", which);
        } else {
            fprintf(err, "utxoiq-api: keys revoke: no such key (give the id "
                         "or the prefix, not the key)\n");
        }
        free(rows);
        return 1;
    }
    const uq_db_api_key_t *k = &rows[i];
    st = uq_db_api_key_revoke(app->db, k->id, uq_now_us(app), &at);
    if (st != UQ_DB_OK) {
        fprintf(err, "utxoiq-api: keys revoke %lld: %s\n", (long long)k->id,
                uq_db_strerror(st));
        free(rows);
        return 1;
    }
    short_time(at, when, sizeof(when));
    if (k->revoked_at != UQ_DB_NULL_TIME) {
        fprintf(out, "key %lld (user %s) was already revoked at %s\n",
                (long long)k->id, k->user_id, when);
    } else {
        fprintf(out, "revoked key %lld (user %s, role %s) at %s\n",
                (long long)k->id, k->user_id, k->role, when);
    }
    free(rows);
    return 0;
}

/* ---- import: the original's columns ------------------------------------- */

enum {
    C_ID,
    C_USER_ID,
    C_KEY_HASH,
    C_KEY_PREFIX,
    C_NAME,
    C_CREATED_AT,
    C_LAST_USED_AT,
    C_REVOKED_AT,
    C_ROLE,
    C_COUNT
};

/*
 * The original's api_keys columns that matter here. revoked_at is required
 * so that an export that dropped it cannot bring revoked keys back; role is
 * not a column of that table (it is users.role) and comes in when the export
 * joins it. scopes and any other column are ignored.
 */
static const struct {
    const char *name;
    int required;
} import_cols[C_COUNT] = {
    [C_ID] = {"id", 1},
    [C_USER_ID] = {"user_id", 1},
    [C_KEY_HASH] = {"key_hash", 1},
    [C_KEY_PREFIX] = {"key_prefix", 1},
    [C_NAME] = {"name", 0},
    [C_CREATED_AT] = {"created_at", 1},
    [C_LAST_USED_AT] = {"last_used_at", 0},
    [C_REVOKED_AT] = {"revoked_at", 1},
    [C_ROLE] = {"role", 0},
};

static int col_index(const char *name)
{
    for (int i = 0; i < C_COUNT; i++) {
        if (strcasecmp(name, import_cols[i].name) == 0) {
            return i;
        }
    }
    return -1;
}

/*
 * A PostgreSQL timestamp as psql prints it ("2024-01-10 10:00:00.123456",
 * with "+00" for timestamptz) or ISO-8601. No zone means UTC: the original
 * wrote datetime.utcnow() into columns without one.
 */
static int parse_ts(const char *s, int64_t *us)
{
    char buf[48];
    size_t len = strlen(s);
    if (len < 19 || len + 3 >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, s, len + 1);
    if (buf[10] == ' ') {
        buf[10] = 'T';
    }
    /* "+HH" or "-HH" at the end: psql's short form of an offset. */
    if ((buf[len - 3] == '+' || buf[len - 3] == '-') && len - 3 >= 19 &&
        isdigit((unsigned char)buf[len - 2]) &&
        isdigit((unsigned char)buf[len - 1])) {
        memcpy(buf + len, ":00", 4);
    }
    return uq_time_parse(buf, us);
}

static int opt_ts(const char *s, int64_t *us)
{
    if (s == NULL || s[0] == '\0') {
        *us = UQ_DB_NULL_TIME;
        return 0;
    }
    return parse_ts(s, us);
}

/* Checks a text value of 0..max bytes (min 1 when required) into dst. */
static int text_field(const char *v, size_t max, int required, char *dst,
                      size_t cap)
{
    size_t len = v != NULL ? strlen(v) : 0;
    if ((required && len == 0) || len > max || len >= cap ||
        (len > 0 && uq_text_check(v, len, 1, max, 0) != 0)) {
        return -1;
    }
    memcpy(dst, v != NULL ? v : "", len + 1);
    return 0;
}

/*
 * Maps one row (v[c]: the column's text, "" for NULL, NULL when the file
 * has no such column) to a key. Returns 0, or -1 with msg naming the
 * column.
 */
static int map_row(const char *const *v, const char *default_role,
                   uq_db_api_key_t *k, char *msg, size_t msglen)
{
    memset(k, 0, sizeof(*k));
    if (text_field(v[C_ID], UQ_DB_ID_MAX, 1, k->origin_id,
                   sizeof(k->origin_id)) != 0) {
        snprintf(msg, msglen, "id: 1 to %d printable characters", UQ_DB_ID_MAX);
        return -1;
    }
    for (char *p = k->origin_id; *p != '\0'; p++) {
        if (*p == ' ') {
            snprintf(msg, msglen, "id: no spaces");
            return -1;
        }
    }
    if (text_field(v[C_USER_ID], UQ_DB_ID_MAX, 1, k->user_id,
                   sizeof(k->user_id)) != 0) {
        snprintf(msg, msglen, "user_id: 1 to %d printable characters",
                 UQ_DB_ID_MAX);
        return -1;
    }
    const char *h = v[C_KEY_HASH];
    if (h == NULL || strlen(h) != UQ_DB_HASH_HEX_LEN) {
        snprintf(msg, msglen, "key_hash: must be 64 hex digits (SHA-256)");
        return -1;
    }
    for (int i = 0; i < UQ_DB_HASH_HEX_LEN; i++) {
        if (!isxdigit((unsigned char)h[i])) {
            snprintf(msg, msglen, "key_hash: must be 64 hex digits (SHA-256)");
            return -1;
        }
        k->hash_hex[i] = (char)tolower((unsigned char)h[i]);
    }
    k->hash_hex[UQ_DB_HASH_HEX_LEN] = '\0';
    if (text_field(v[C_KEY_PREFIX], UQ_DB_KEY_ORIGIN_PREFIX_MAX, 0,
                   k->origin_prefix, sizeof(k->origin_prefix)) != 0) {
        snprintf(msg, msglen, "key_prefix: at most %d printable characters",
                 UQ_DB_KEY_ORIGIN_PREFIX_MAX);
        return -1;
    }
    if (text_field(v[C_NAME], UQ_DB_KEY_NAME_MAX, 0, k->name,
                   sizeof(k->name)) != 0) {
        snprintf(msg, msglen, "name: at most %d bytes of text",
                 UQ_DB_KEY_NAME_MAX);
        return -1;
    }
    if (v[C_CREATED_AT] == NULL || v[C_CREATED_AT][0] == '\0' ||
        parse_ts(v[C_CREATED_AT], &k->created_at) != 0) {
        snprintf(msg, msglen, "created_at: not a timestamp");
        return -1;
    }
    if (opt_ts(v[C_LAST_USED_AT], &k->last_used_at) != 0) {
        snprintf(msg, msglen, "last_used_at: not a timestamp");
        return -1;
    }
    if (opt_ts(v[C_REVOKED_AT], &k->revoked_at) != 0) {
        snprintf(msg, msglen, "revoked_at: not a timestamp");
        return -1;
    }
    const char *role =
        v[C_ROLE] != NULL && v[C_ROLE][0] != '\0' ? v[C_ROLE] : default_role;
    if (!uq_auth_role_valid(role)) {
        snprintf(msg, msglen, "role '%.20s': must be user, service or admin",
                 role);
        return -1;
    }
    snprintf(k->role, sizeof(k->role), "%s", role);
    return 0;
}

/* ---- import: the two file formats ---------------------------------------- */

typedef struct {
    uq_db_api_key_t *keys;
    long *lines; /* the line each key's record starts on */
    size_t n, cap;
} import_t;

static int import_add(import_t *im, const uq_db_api_key_t *k, long line)
{
    if (im->n == im->cap) {
        size_t ncap = im->cap == 0 ? 64 : im->cap * 2;
        uq_db_api_key_t *nk = realloc(im->keys, ncap * sizeof(*nk));
        if (nk == NULL) {
            return -1;
        }
        im->keys = nk;
        long *nl = realloc(im->lines, ncap * sizeof(*nl));
        if (nl == NULL) {
            return -1;
        }
        im->lines = nl;
        im->cap = ncap;
    }
    im->keys[im->n] = *k;
    im->lines[im->n] = line;
    im->n++;
    return 0;
}

/*
 * A CSV reader over a mutable, NUL-padded buffer, RFC 4180 as psql writes
 * it: fields unescaped in place (a field never grows), quoted fields may
 * hold commas, quotes ("") and line breaks, CRLF or LF ends a record.
 */
typedef struct {
    char *p, *end;
    long line; /* the line p is on */
} csv_t;

/*
 * Reads the next record into f[0..*nf-1] (pointers into the buffer), its
 * first line in *line; blank lines are skipped. Returns 1 for a record, 0
 * at the end, -1 with msg set.
 */
static int csv_record(csv_t *c, char **f, size_t *nf, long *line, char *msg,
                      size_t msglen)
{
    while (c->p < c->end && (*c->p == '\n' || *c->p == '\r')) {
        if (*c->p == '\n') {
            c->line++;
        }
        c->p++;
    }
    if (c->p >= c->end) {
        return 0;
    }
    *line = c->line;
    *nf = 0;
    for (;;) {
        char *r = c->p, *w = c->p;
        if (*r == '"') {
            r++;
            for (;;) {
                if (r >= c->end) {
                    snprintf(msg, msglen, "unterminated quoted field");
                    return -1;
                }
                if (*r == '"') {
                    if (r + 1 < c->end && r[1] == '"') {
                        *w++ = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                if (*r == '\n') {
                    c->line++;
                }
                *w++ = *r++;
            }
            if (r < c->end && *r != ',' && *r != '\n' && *r != '\r') {
                snprintf(msg, msglen, "text after a closing quote");
                return -1;
            }
        } else {
            while (r < c->end && *r != ',' && *r != '\n' && *r != '\r') {
                if (*r == '"') {
                    snprintf(msg, msglen, "quote inside an unquoted field");
                    return -1;
                }
                r++;
            }
            w = r;
        }
        char d = r < c->end ? *r : '\n';
        *w = '\0'; /* the buffer has a spare byte past its end */
        if (*nf == CSV_FIELDS_MAX) {
            snprintf(msg, msglen, "more than %d fields", CSV_FIELDS_MAX);
            return -1;
        }
        f[(*nf)++] = c->p;
        c->p = r < c->end ? r + 1 : r;
        if (d == ',') {
            continue;
        }
        if (d == '\r' && c->p < c->end && *c->p == '\n') {
            c->p++;
        }
        c->line++;
        return 1;
    }
}

static int import_csv(char *buf, size_t len, const char *default_role,
                      import_t *im, long *bad_line, char *msg, size_t msglen)
{
    csv_t c = {buf, buf + len, 1};
    char *f[CSV_FIELDS_MAX];
    int map[CSV_FIELDS_MAX];
    size_t nh = 0, nf = 0;
    long line = 1;
    int have[C_COUNT] = {0};
    char why[160];

    int r = csv_record(&c, f, &nh, &line, why, sizeof(why));
    *bad_line = line;
    if (r <= 0) {
        snprintf(msg, msglen, "%s", r == 0 ? "no header row" : why);
        return -1;
    }
    for (size_t i = 0; i < nh; i++) {
        map[i] = col_index(f[i]);
        if (map[i] >= 0 && have[map[i]]++) {
            snprintf(msg, msglen, "header: column '%s' given twice",
                     import_cols[map[i]].name);
            return -1;
        }
    }
    for (int k = 0; k < C_COUNT; k++) {
        if (import_cols[k].required && !have[k]) {
            snprintf(msg, msglen,
                     "header: no column '%s' (want the original's api_keys "
                     "columns: id, user_id, key_hash, key_prefix, created_at, "
                     "revoked_at)",
                     import_cols[k].name);
            return -1;
        }
    }
    while ((r = csv_record(&c, f, &nf, &line, why, sizeof(why))) == 1) {
        const char *v[C_COUNT] = {NULL};
        uq_db_api_key_t key;
        *bad_line = line;
        if (nf != nh) {
            snprintf(msg, msglen, "%zu fields, the header has %zu", nf, nh);
            return -1;
        }
        for (size_t i = 0; i < nf; i++) {
            if (map[i] >= 0) {
                v[map[i]] = f[i];
            }
        }
        if (map_row(v, default_role, &key, why, sizeof(why)) != 0) {
            snprintf(msg, msglen, "%s", why);
            return -1;
        }
        if (im->n == IMPORT_ROWS_MAX || import_add(im, &key, line) != 0) {
            snprintf(msg, msglen, "too many rows");
            return -1;
        }
    }
    if (r < 0) {
        *bad_line = line;
        snprintf(msg, msglen, "%s", why);
        return -1;
    }
    return 0;
}

/* One JSON object per line, the columns as keys (row_to_json's shape):
 * strings or null, scopes and other keys ignored. */
static int import_jsonl(char *buf, size_t len, const char *default_role,
                        import_t *im, long *bad_line, char *msg, size_t msglen)
{
    char *p = buf, *end = buf + len;
    char why[160];

    for (long line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        char *next = nl != NULL ? nl + 1 : end;
        const char *v[C_COUNT] = {NULL};
        uq_db_api_key_t key;
        json_error_t je;
        json_t *o;
        int bad = 0;

        *bad_line = line;
        while (ll > 0 && (p[ll - 1] == '\r' || p[ll - 1] == ' ')) {
            ll--;
        }
        if (ll == 0) {
            p = next;
            continue;
        }
        o = json_loadb(p, ll, 0, &je);
        if (o == NULL || !json_is_object(o)) {
            snprintf(msg, msglen, "not a JSON object%s%s",
                     o == NULL ? ": " : "", o == NULL ? je.text : "");
            json_decref(o);
            return -1;
        }
        for (int k = 0; k < C_COUNT && !bad; k++) {
            json_t *x = json_object_get(o, import_cols[k].name);
            if (x == NULL) {
                if (import_cols[k].required) {
                    snprintf(msg, msglen, "no '%s'", import_cols[k].name);
                    bad = 1;
                }
            } else if (json_is_null(x)) {
                v[k] = "";
            } else if (json_is_string(x)) {
                v[k] = json_string_value(x);
            } else {
                snprintf(msg, msglen, "'%s': must be a string or null",
                         import_cols[k].name);
                bad = 1;
            }
        }
        if (!bad && map_row(v, default_role, &key, why, sizeof(why)) != 0) {
            snprintf(msg, msglen, "%s", why);
            bad = 1;
        }
        json_decref(o);
        if (bad) {
            return -1;
        }
        if (im->n == IMPORT_ROWS_MAX || import_add(im, &key, line) != 0) {
            snprintf(msg, msglen, "too many rows");
            return -1;
        }
        p = next;
    }
    return 0;
}

/* The whole file in a malloc()ed buffer with one spare NUL byte. */
static char *read_file(const char *path, size_t *len, char *msg, size_t msglen)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    char *buf;

    if (f == NULL) {
        snprintf(msg, msglen, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
        sb.st_size > IMPORT_FILE_MAX) {
        snprintf(msg, msglen, "not a regular file of at most %ld MiB",
                 IMPORT_FILE_MAX / (1024 * 1024));
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (buf == NULL) {
        snprintf(msg, msglen, "out of memory");
        fclose(f);
        return NULL;
    }
    *len = fread(buf, 1, (size_t)sb.st_size, f);
    if (ferror(f) || *len != (size_t)sb.st_size) {
        snprintf(msg, msglen, "read error");
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

int uq_keys_import(uq_app_t *app, const char *path, const char *default_role,
                   FILE *out, FILE *err)
{
    import_t im = {0};
    char msg[256];
    long bad_line = 0;
    size_t len = 0, failed = 0, revoked = 0;
    int rc = 1;
    char *buf = read_file(path, &len, msg, sizeof(msg));

    if (buf == NULL) {
        fprintf(err, "utxoiq-api: keys import '%s': %s\n", path, msg);
        return 1;
    }
    if (default_role == NULL) {
        default_role = "user";
    }
    if (!uq_auth_role_valid(default_role)) {
        fprintf(err,
                "utxoiq-api: keys import: --role '%s': must be user, service "
                "or admin\n",
                default_role);
        goto cleanup;
    }
    size_t skip = strspn(buf, " \t\r\n");
    int bad = buf[skip] == '{' ? import_jsonl(buf, len, default_role, &im,
                                              &bad_line, msg, sizeof(msg))
                               : import_csv(buf, len, default_role, &im,
                                            &bad_line, msg, sizeof(msg));
    if (bad != 0) {
        fprintf(err,
                "utxoiq-api: keys import '%s': line %ld: %s; nothing "
                "imported\n",
                path, bad_line, msg);
        goto cleanup;
    }
    int st = uq_db_api_key_import(app->db, im.keys, im.n, &failed);
    if (st != UQ_DB_OK) {
        if (failed < im.n && st == UQ_DB_ECONSTRAINT) {
            fprintf(err,
                    "utxoiq-api: keys import '%s': line %ld: key '%s' "
                    "conflicts with a stored key (its hash is stored under "
                    "another id, or its id with another hash); nothing "
                    "imported\n",
                    path, im.lines[failed], im.keys[failed].origin_id);
        } else if (failed < im.n) {
            fprintf(err,
                    "utxoiq-api: keys import '%s': line %ld: %s; nothing "
                    "imported\n",
                    path, im.lines[failed], uq_db_strerror(st));
        } else {
            fprintf(err, "utxoiq-api: keys import '%s': %s; nothing imported\n",
                    path, uq_db_strerror(st));
        }
        goto cleanup;
    }
    for (size_t i = 0; i < im.n; i++) {
        revoked += im.keys[i].revoked_at != UQ_DB_NULL_TIME;
    }
    fprintf(out, "imported %zu key(s) from '%s' (%zu revoked in the file)\n",
            im.n, path, revoked);
    rc = 0;

cleanup:
    free(im.keys);
    free(im.lines);
    free(buf);
    return rc;
}
