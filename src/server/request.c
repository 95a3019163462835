/* SPDX-License-Identifier: MIT */
/*
 * utxoiq-api's JSON error responses and the decoding of JSON request bodies
 * and their fields (request.h), apart from HTTP and the database: the
 * handlers call these, and tests/fuzz/fuzz_request_json.c drives them with
 * arbitrary bytes. Every failure becomes a 4xx {"detail": "..."} naming the
 * field; nothing here aborts on input.
 */
#include "request.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ---- responses ----------------------------------------------------------- */

void uc_resp_json(uc_resp_t *res, int status, json_t *j)
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

/*
 * The message may quote input (jansson's parse errors quote the bytes near
 * the error) or be cut at the cap inside a UTF-8 sequence; JSON needs valid
 * UTF-8, so such a message would otherwise turn a 4xx into a 500. When the
 * message is not valid UTF-8, every byte outside printable ASCII becomes '?'.
 */
void uc_resp_error(uc_resp_t *res, int status, const char *fmt, ...)
{
    char msg[512];
    json_t *j;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (res->body != NULL && res->body_free != NULL) {
        res->body_free(res->body);
    }
    res->body = NULL;
    res->cache = UC_CACHE_NONE;
    res->etag = 0;
    res->cache_control = NULL;
    j = json_pack("{s:s}", "detail", msg);
    if (j == NULL) {
        for (char *p = msg; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
                *p = '?';
            }
        }
        j = json_pack("{s:s}", "detail", msg);
    }
    uc_resp_json(res, status, j);
}

/* ---- input --------------------------------------------------------------- */

/* 1 when a Content-Type header names application/json (parameters such as
 * "; charset=utf-8" allowed), 0 otherwise, absent included. */
int uc__request_is_json_type(const char *ct)
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
json_t *uc__request_body(const char *body, size_t len, const char *ct,
                         json_type want, uc_resp_t *res)
{
    json_error_t jerr;
    json_t *j;
    if (len == 0) {
        uc_resp_error(res, 400, "body: a JSON %s is required",
                      want == JSON_ARRAY ? "array" : "object");
        return NULL;
    }
    if (!uc__request_is_json_type(ct)) {
        uc_resp_error(res, 415, "Content-Type: must be application/json");
        return NULL;
    }
    /* NUL is let through so that the field check can name the field. */
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (j == NULL) {
        uc_resp_error(res, 400, "body: malformed JSON at line %d: %s",
                      jerr.line, jerr.text);
        return NULL;
    }
    if (json_typeof(j) != want) {
        json_decref(j);
        uc_resp_error(res, 422, "body: must be a JSON %s",
                      want == JSON_ARRAY ? "array" : "object");
        return NULL;
    }
    return j;
}

/* The JSON types a field may be required to have. */
typedef enum { FIELD_STRING, FIELD_INTEGER, FIELD_NUMBER } field_kind_t;

/*
 * Looks up field `name` of object o, shared by the typed getters below; lab
 * is the name used in messages. Returns 1 with *out set when the field is
 * present with the wanted type, 0 when it is absent or null and not
 * required, and -1 after writing a 422 when it is missing but required or
 * has another type.
 */
static int get_field(json_t *o, const char *name, const char *lab, int required,
                     field_kind_t kind, json_t **out, uc_resp_t *res)
{
    static const char *const what[] = {"a string", "an integer", "a number"};
    json_t *v = json_object_get(o, name);
    int ok;
    if (v == NULL || json_is_null(v)) {
        if (required) {
            uc_resp_error(res, 422, "%s: field required", lab);
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
        uc_resp_error(res, 422, "%s: must be %s", lab, what[kind]);
        return -1;
    }
    *out = v;
    return 1;
}

/* A field that is present but NUL-bearing is refused here, because the
 * database and the key builder see C strings. */
int uc__json_get_str(json_t *o, const char *name, const char *label,
                     int required, size_t minc, size_t maxc, int allow_nl,
                     const char **out, uc_resp_t *res)
{
    const char *lab = label != NULL ? label : name;
    json_t *v = NULL;
    *out = NULL;
    int rc = get_field(o, name, lab, required, FIELD_STRING, &v, res);
    if (rc <= 0) {
        return rc;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len || uc_text_check(s, len, minc, maxc, allow_nl) != 0) {
        uc_resp_error(res, 422,
                      "%s: must be %zu to %zu characters without control "
                      "characters",
                      lab, minc, maxc);
        return -1;
    }
    *out = s;
    return 0;
}

int uc__json_get_int(json_t *o, const char *name, const char *label,
                     int required, long long min, long long max, long long *out,
                     int *present, uc_resp_t *res)
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
        uc_resp_error(res, 422, "%s: must be from %lld to %lld", lab, min, max);
        return -1;
    }
    *out = x;
    if (present != NULL) {
        *present = 1;
    }
    return 0;
}

int uc__json_get_num(json_t *o, const char *name, const char *label,
                     int required, double min, double max, double *out,
                     uc_resp_t *res)
{
    const char *lab = label != NULL ? label : name;
    json_t *v = NULL;
    int rc = get_field(o, name, lab, required, FIELD_NUMBER, &v, res);
    if (rc <= 0) {
        return rc;
    }
    double x = json_number_value(v);
    if (!isfinite(x) || x < min || x > max) {
        uc_resp_error(res, 422, "%s: must be a number from %g to %g", lab, min,
                      max);
        return -1;
    }
    *out = x;
    return 0;
}

int uc__json_get_enum(json_t *o, const char *name, int required,
                      const char *const *allowed, const char **out,
                      uc_resp_t *res)
{
    if (uc__json_get_str(o, name, NULL, required, 1, 32, 0, out, res) != 0) {
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
    uc_resp_error(res, 422, "%s: unknown value '%s'", name, *out);
    return -1;
}

int uc__json_get_time(json_t *o, const char *name, int64_t *out, uc_resp_t *res)
{
    const char *s;
    *out = UC_DB_NULL_TIME;
    if (uc__json_get_str(o, name, NULL, 0, 1, 40, 0, &s, res) != 0) {
        return -1;
    }
    if (s != NULL && uc_time_parse(s, out) != 0) {
        uc_resp_error(res, 422, "%s: not an ISO-8601 timestamp", name);
        return -1;
    }
    return 0;
}
