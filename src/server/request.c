/* SPDX-License-Identifier: MIT */
/*
 * utxoiq-api's JSON error responses and the decoding of JSON request bodies
 * and their fields (request.h), apart from HTTP and the database: the
 * handlers call these, and tests/fuzz/fuzz_request_json.c drives them with
 * arbitrary bytes. A 400 or 415 is {"detail": "..."}; a 422 is FastAPI's
 * {"detail": [{"type", "loc", "msg", "input"}]}, the shape the original
 * service's clients read, naming the field; nothing here aborts on input.
 */
#include "request.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ---- responses ----------------------------------------------------------- */

void uq_resp_json(uq_resp_t *res, int status, json_t *j)
{
    char *s = j != NULL ? json_dumps(j, DUMP_FLAGS) : NULL;
    json_decref(j);
    if (s == NULL) {
        static const char oom[] = "{\"detail\":\"out of memory\"}";
        res->status = 500;
        res->body = strdup(oom);
        res->len = res->body != NULL ? sizeof(oom) - 1 : 0;
        res->body_free = free;
        return;
    }
    res->status = status;
    res->body = s;
    res->len = strlen(s);
    res->body_free = free;
}

/* Replaces every byte outside printable ASCII of msg by '?'. */
static void ascii_only(char *msg)
{
    for (char *p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            *p = '?';
        }
    }
}

/* Drops the body a response held, and what it said of caching. */
static void resp_reset(uq_resp_t *res)
{
    if (res->body != NULL && res->body_free != NULL) {
        res->body_free(res->body);
    }
    res->body = NULL;
    res->cache = UQ_CACHE_NONE;
    res->etag = 0;
    res->cache_control = NULL;
}

/*
 * The loc of a field: where, then the label split at its array indices and
 * dots, so "[3].metric_value" in the body is ["body", 3, "metric_value"], as
 * pydantic names an item's field. A label "body" (the body as a whole) adds
 * nothing after "body".
 */
static json_t *loc_json(const char *where, const char *label)
{
    json_t *loc = json_array();
    json_array_append_new(loc, json_string(where));
    if (label == NULL || strcmp(label, where) == 0) {
        return loc;
    }
    const char *p = label;
    while (*p != '\0') {
        if (*p == '.') {
            p++;
            continue;
        }
        if (*p == '[') {
            char *end = NULL;
            long long i = strtoll(p + 1, &end, 10);
            if (end != NULL && *end == ']') {
                json_array_append_new(loc, json_integer((json_int_t)i));
                p = end + 1;
                continue;
            }
        }
        size_t n = strcspn(p, ".[");
        if (n == 0) {
            n = 1;
        }
        json_array_append_new(loc, json_stringn(p, n));
        p += n;
    }
    return loc;
}

/* Whether a string anywhere in v holds a NUL (a \u0000 in the text). */
static int holds_nul(json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;

    if (json_is_string(v)) {
        return strlen(json_string_value(v)) != json_string_length(v);
    }
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            if (holds_nul(x)) {
                return 1;
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if (holds_nul(x)) {
                return 1;
            }
        }
    }
    return 0;
}

static void resp_invalid_v(uq_resp_t *res, const char *where, const char *label,
                           const char *type, json_t *input, json_t *ctx,
                           const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    resp_reset(res);
    if (holds_nul(input)) {
        /* A value with NUL anywhere in it is not quoted: many JSON readers
         * refuse a \u0000 and would lose the whole answer over it. */
        input = NULL;
    }
    json_t *err = json_pack("{s:s,s:o,s:s,s:O}", "type", type, "loc",
                            loc_json(where, label), "msg", msg, "input",
                            input != NULL ? input : json_null());
    if (err == NULL) {
        /* The message quoted bytes that are not UTF-8 (see below). */
        ascii_only(msg);
        err = json_pack("{s:s,s:o,s:s,s:n}", "type", type, "loc",
                        loc_json(where, label), "msg", msg, "input");
    }
    if (err != NULL && ctx != NULL) {
        json_object_set(err, "ctx", ctx);
    }
    json_decref(ctx);
    uq_resp_json(res, 422,
                 err != NULL ? json_pack("{s:[o]}", "detail", err) : NULL);
}

void uq_resp_invalid(uq_resp_t *res, const char *where, const char *label,
                     const char *type, json_t *input, json_t *ctx,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    resp_invalid_v(res, where, label, type, input, ctx, fmt, ap);
    va_end(ap);
}

/*
 * The message may quote input (jansson's parse errors quote the bytes near
 * the error) or be cut at the cap inside a UTF-8 sequence; JSON needs valid
 * UTF-8, so such a message would otherwise turn a 4xx into a 500. When the
 * message is not valid UTF-8, every byte outside printable ASCII becomes '?'.
 *
 * A 422 keeps FastAPI's shape, a list of errors, whoever writes it: a
 * message "field: text" becomes one error of the body's field, the way the
 * typed readers below name theirs.
 */
void uq_resp_error(uq_resp_t *res, int status, const char *fmt, ...)
{
    char msg[512];
    json_t *j;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status == 422) {
        char *sep = strstr(msg, ": ");
        const char *label = NULL;
        const char *text = msg;
        if (sep != NULL && memchr(msg, ' ', (size_t)(sep - msg)) == NULL) {
            *sep = '\0';
            label = msg;
            text = sep + 2;
        }
        uq_resp_invalid(res, "body", label, "value_error", NULL, NULL, "%s",
                        text);
        return;
    }
    resp_reset(res);
    j = json_pack("{s:s}", "detail", msg);
    if (j == NULL) {
        ascii_only(msg);
        j = json_pack("{s:s}", "detail", msg);
    }
    uq_resp_json(res, status, j);
}

/* ---- input --------------------------------------------------------------- */

/* 1 when a Content-Type header names application/json (parameters such as
 * "; charset=utf-8" allowed), 0 otherwise, absent included. */
int uq__request_is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    if (ct == NULL || strncasecmp(ct, want, sizeof(want) - 1) != 0) {
        return 0;
    }
    ct += sizeof(want) - 1;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

/*
 * A body sent as anything but application/json is refused with 415 before
 * parsing, so a form or text body is never read as JSON by accident.
 */
json_t *uq__request_body(const char *body, size_t len, const char *ct,
                         json_type want, uq_resp_t *res)
{
    json_error_t jerr;
    json_t *j;
    if (len == 0) {
        uq_resp_error(res, 400, "body: a JSON %s is required",
                      want == JSON_ARRAY ? "array" : "object");
        return NULL;
    }
    if (!uq__request_is_json_type(ct)) {
        uq_resp_error(res, 415, "Content-Type: must be application/json");
        return NULL;
    }
    /* NUL is let through so that the field check can name the field. */
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (j == NULL) {
        uq_resp_error(res, 400, "body: malformed JSON at line %d: %s",
                      jerr.line, jerr.text);
        return NULL;
    }
    if (json_typeof(j) != want) {
        if (want == JSON_ARRAY) {
            uq_resp_invalid(res, "body", NULL, "list_type", j, NULL,
                            "Input should be a valid list");
        } else {
            uq_resp_invalid(res, "body", NULL, "model_attributes_type", j, NULL,
                            "Input should be a valid dictionary or object to "
                            "extract fields from");
        }
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The JSON types a field may be required to have. */
typedef enum { FIELD_STRING, FIELD_INTEGER, FIELD_NUMBER } field_kind_t;

/*
 * Looks up field `name` of object o, shared by the typed getters below; lab
 * is the name used in loc. Returns 1 with *out set when the field is present
 * with the wanted type, 0 when it is absent or null and not required, and -1
 * after writing a 422 when it is missing but required or has another type.
 * Messages and types are pydantic's, which the original's clients saw.
 */
static int get_field(json_t *o, const char *name, const char *lab, int required,
                     field_kind_t kind, json_t **out, uq_resp_t *res)
{
    static const char *const type[] = {"string_type", "int_type", "float_type"};
    static const char *const what[] = {"a valid string", "a valid integer",
                                       "a valid number"};
    json_t *v = json_object_get(o, name);
    int ok;
    if (v == NULL || json_is_null(v)) {
        if (required) {
            /* pydantic gives the object the field is missing from. */
            uq_resp_invalid(res, "body", lab, "missing", o, NULL,
                            "Field required");
            return -1;
        }
        return 0;
    }
    switch (kind) {
    case FIELD_STRING:
        ok = json_is_string(v);
        break;
    case FIELD_INTEGER:
        ok = json_is_integer(v);
        break;
    default:
        ok = json_is_number(v);
        break;
    }
    if (!ok) {
        uq_resp_invalid(res, "body", lab, type[kind], v, NULL,
                        "Input should be %s", what[kind]);
        return -1;
    }
    *out = v;
    return 1;
}

size_t uq__utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        /* Every byte but a continuation byte starts a character. */
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    }
    return n;
}

int uq__check_text(const char *where, const char *lab, json_t *input,
                   const char *s, size_t len, size_t minc, size_t maxc,
                   int allow_nl, uq_resp_t *res)
{
    if (strlen(s) != len ||
        uq_text_check(s, len, 0, (size_t)-1, allow_nl) != 0) {
        uq_resp_invalid(res, where, lab, "value_error", input, NULL,
                        "Value error, must be UTF-8 text without control "
                        "characters");
        return -1;
    }
    size_t chars = uq__utf8_chars(s, len);
    if (chars < minc) {
        uq_resp_invalid(res, where, lab, "string_too_short", input,
                        json_pack("{s:I}", "min_length", (json_int_t)minc),
                        "String should have at least %zu character%s", minc,
                        minc == 1 ? "" : "s");
        return -1;
    }
    if (chars > maxc) {
        uq_resp_invalid(res, where, lab, "string_too_long", input,
                        json_pack("{s:I}", "max_length", (json_int_t)maxc),
                        "String should have at most %zu characters", maxc);
        return -1;
    }
    return 0;
}

/* A field that is present but NUL-bearing is refused here, because the
 * database and the key builder see C strings. */
int uq__json_get_str(json_t *o, const char *name, const char *label,
                     int required, size_t minc, size_t maxc, int allow_nl,
                     const char **out, uq_resp_t *res)
{
    const char *lab = label != NULL ? label : name;
    json_t *v = NULL;
    *out = NULL;
    int rc = get_field(o, name, lab, required, FIELD_STRING, &v, res);
    if (rc <= 0) {
        return rc;
    }
    const char *s = json_string_value(v);
    if (uq__check_text("body", lab, v, s, json_string_length(v), minc, maxc,
                       allow_nl, res) != 0) {
        return -1;
    }
    *out = s;
    return 0;
}

void uq__resp_range(uq_resp_t *res, const char *where, const char *lab,
                    json_t *input, int below, double bound, int integer)
{
    char b[40];
    if (integer) {
        snprintf(b, sizeof(b), "%lld", (long long)bound);
    } else {
        /* As Python writes a float. */
        snprintf(b, sizeof(b), "%.17g", bound);
        if (strspn(b, "-0123456789") == strlen(b)) {
            size_t n = strlen(b);
            snprintf(b + n, sizeof(b) - n, ".0");
        }
    }
    json_t *ctx =
        integer ? json_pack("{s:I}", below ? "ge" : "le", (json_int_t)bound)
                : json_pack("{s:f}", below ? "ge" : "le", bound);
    uq_resp_invalid(res, where, lab,
                    below ? "greater_than_equal" : "less_than_equal", input,
                    ctx, "Input should be %s than or equal to %s",
                    below ? "greater" : "less", b);
}

int uq__json_get_int(json_t *o, const char *name, const char *label,
                     int required, long long min, long long max, long long *out,
                     int *present, uq_resp_t *res)
{
    const char *lab = label != NULL ? label : name;
    json_t *v = NULL;
    if (present != NULL) {
        *present = 0;
    }
    int rc = get_field(o, name, lab, required, FIELD_INTEGER, &v, res);
    if (rc <= 0) {
        return rc;
    }
    long long x = json_integer_value(v);
    if (x < min || x > max) {
        uq__resp_range(res, "body", lab, v, x < min,
                       (double)(x < min ? min : max), 1);
        return -1;
    }
    *out = x;
    if (present != NULL) {
        *present = 1;
    }
    return 0;
}

int uq__json_get_num(json_t *o, const char *name, const char *label,
                     int required, double min, double max, double *out,
                     uq_resp_t *res)
{
    const char *lab = label != NULL ? label : name;
    json_t *v = NULL;
    int rc = get_field(o, name, lab, required, FIELD_NUMBER, &v, res);
    if (rc <= 0) {
        return rc;
    }
    double x = json_number_value(v);
    if (!isfinite(x) || x < min || x > max) {
        uq__resp_range(res, "body", lab, v, !(x >= min), x < min ? min : max,
                       0);
        return -1;
    }
    *out = x;
    return 0;
}

void uq__resp_pattern(uq_resp_t *res, const char *where, const char *lab,
                      json_t *input, const char *const *allowed)
{
    char pat[256];
    size_t n = (size_t)snprintf(pat, sizeof(pat), "^(");
    for (size_t i = 0; allowed[i] != NULL && n < sizeof(pat); i++) {
        n += (size_t)snprintf(pat + n, sizeof(pat) - n, "%s%s",
                              i > 0 ? "|" : "", allowed[i]);
    }
    if (n < sizeof(pat)) {
        snprintf(pat + n, sizeof(pat) - n, ")$");
    }
    uq_resp_invalid(res, where, lab, "string_pattern_mismatch", input,
                    json_pack("{s:s}", "pattern", pat),
                    "String should match pattern '%s'", pat);
}

int uq__json_get_enum(json_t *o, const char *name, int required,
                      const char *const *allowed, const char **out,
                      uq_resp_t *res)
{
    if (uq__json_get_str(o, name, NULL, required, 0, (size_t)-1, 0, out, res) !=
        0) {
        return -1;
    }
    if (*out == NULL) {
        return 0;
    }
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcmp(*out, allowed[i]) == 0) {
            return 0;
        }
    }
    uq__resp_pattern(res, "body", name, json_object_get(o, name), allowed);
    *out = NULL;
    return -1;
}

int uq__json_get_time(json_t *o, const char *name, int64_t *out, uq_resp_t *res)
{
    json_t *v = NULL;
    *out = UQ_DB_NULL_TIME;
    int rc = get_field(o, name, name, 0, FIELD_STRING, &v, res);
    if (rc <= 0) {
        return rc;
    }
    if (uq_time_parse(json_string_value(v), out) != 0) {
        *out = UQ_DB_NULL_TIME;
        uq_resp_invalid(res, "body", name, "datetime_from_date_parsing", v,
                        NULL, "Input should be a valid datetime or date");
        return -1;
    }
    return 0;
}
