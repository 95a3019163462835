/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for utxoiq-api's JSON request decoding (src/server/request.c):
 * the body parser uq__request_body() and the field readers the handlers use
 * (uq__json_get_str/int/num/enum/time), the same code that runs behind every
 * POST.
 *
 * Input: the first byte picks the wanted body type (bit 0: array instead of
 * object) and the Content-Type sent (bits 1-2: application/json, the same
 * with a charset, text/plain, none); the rest is the body. The fields the
 * handlers read (with their limits) are then read from the object, or from
 * every object of the array, and so is every member the input names.
 *
 * Invariants checked besides memory safety:
 *   - a refused body gets 400, 415 or 422 (never 5xx) and a JSON object with
 *     a string "detail"; 415 exactly when a non-empty body is not sent as
 *     JSON;
 *   - an accepted body has the wanted type;
 *   - a refused field gets 422 and a message naming it; an accepted string
 *     is the member's own bytes, without NUL, within its character limits;
 *     an accepted integer or number is in range (and finite); an accepted
 *     enum value is one of the allowed ones; an accepted timestamp parses
 *     back from the member to the same instant.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "request.h"

static const char *const FLAGS[] = {"inaccurate", "misleading", "spam", NULL};

static void reset(uq_resp_t *res)
{
    if (res->body != NULL && res->body_free != NULL) {
        res->body_free(res->body);
    }
    memset(res, 0, sizeof(*res));
}

/* A refusal: the status is a client error. A 422 carries FastAPI's list,
 * {"detail": [{"loc": [...], "msg": s, "type": s}, ...]}, whose first
 * item's loc ends with label (a plain field name); a 400 or 415 a
 * {"detail": s} whose message names label (when label is short enough to
 * survive the message cap). */
static void check_refusal(uq_resp_t *res, int want_status, const char *label)
{
    json_t *j, *d;

    if (want_status != 0) {
        UC_FUZZ_CHECK(res->status == want_status);
    }
    UC_FUZZ_CHECK(res->status == 400 || res->status == 415 ||
                  res->status == 422);
    UC_FUZZ_CHECK(res->body != NULL);
    j = json_loadb(res->body, res->len, 0, NULL);
    UC_FUZZ_CHECK(j != NULL && json_is_object(j));
    d = json_object_get(j, "detail");
    if (res->status == 422) {
        json_t *item = json_array_get(d, 0);
        json_t *loc = json_object_get(item, "loc");
        UC_FUZZ_CHECK(json_is_array(d) && json_is_object(item));
        UC_FUZZ_CHECK(json_is_array(loc) && json_array_size(loc) >= 1);
        UC_FUZZ_CHECK(json_is_string(json_object_get(item, "msg")));
        UC_FUZZ_CHECK(json_is_string(json_object_get(item, "type")));
        if (label != NULL && strchr(label, '.') == NULL &&
            strchr(label, '[') == NULL) {
            const char *last = json_string_value(
                json_array_get(loc, json_array_size(loc) - 1));
            UC_FUZZ_CHECK(last != NULL && strcmp(last, label) == 0);
        }
    } else {
        const char *detail = json_string_value(d);
        UC_FUZZ_CHECK(detail != NULL);
        if (label != NULL && strlen(label) < 100) {
            UC_FUZZ_CHECK(strncmp(detail, label, strlen(label)) == 0);
        }
    }
    json_decref(j);
}

static void check_str(json_t *o, const char *name, int required, size_t minc,
                      size_t maxc, int allow_nl)
{
    uq_resp_t res;
    const char *s = NULL;
    json_t *v = json_object_get(o, name);

    memset(&res, 0, sizeof(res));
    if (uq__json_get_str(o, name, NULL, required, minc, maxc, allow_nl, &s,
                         &res) != 0) {
        check_refusal(&res, 422, name);
    } else if (s == NULL) {
        UC_FUZZ_CHECK(!required && (v == NULL || json_is_null(v)));
    } else {
        size_t len = json_string_length(v);
        UC_FUZZ_CHECK(s == json_string_value(v));
        UC_FUZZ_CHECK(strlen(s) == len);
        UC_FUZZ_CHECK(len >= minc);
        UC_FUZZ_CHECK(uq_text_check(s, len, minc, maxc, allow_nl) == 0);
    }
    reset(&res);
}

static void check_int(json_t *o, const char *name, long long min, long long max)
{
    uq_resp_t res;
    long long x = min - 1;
    int present = -1;

    memset(&res, 0, sizeof(res));
    if (uq__json_get_int(o, name, NULL, 0, min, max, &x, &present, &res) != 0) {
        check_refusal(&res, 422, name);
    } else if (present) {
        UC_FUZZ_CHECK(json_is_integer(json_object_get(o, name)));
        UC_FUZZ_CHECK(x >= min && x <= max);
    } else {
        UC_FUZZ_CHECK(present == 0 && x == min - 1);
    }
    reset(&res);
}

static void check_num(json_t *o, const char *name, double min, double max)
{
    uq_resp_t res;
    double x = NAN;

    memset(&res, 0, sizeof(res));
    if (uq__json_get_num(o, name, NULL, 0, min, max, &x, &res) != 0) {
        check_refusal(&res, 422, name);
    } else if (!isnan(x)) {
        UC_FUZZ_CHECK(isfinite(x) && x >= min && x <= max);
    }
    reset(&res);
}

static void check_enum(json_t *o, const char *name)
{
    uq_resp_t res;
    const char *s = NULL;

    memset(&res, 0, sizeof(res));
    if (uq__json_get_enum(o, name, 0, FLAGS, &s, &res) != 0) {
        check_refusal(&res, 422, name);
    } else if (s != NULL) {
        int found = 0;
        for (size_t i = 0; FLAGS[i] != NULL; i++) {
            found |= strcmp(s, FLAGS[i]) == 0;
        }
        UC_FUZZ_CHECK(found);
    }
    reset(&res);
}

static void check_time(json_t *o, const char *name)
{
    uq_resp_t res;
    int64_t t = 0;

    memset(&res, 0, sizeof(res));
    if (uq__json_get_time(o, name, &t, &res) != 0) {
        check_refusal(&res, 422, name);
    } else if (t != UQ_DB_NULL_TIME) {
        int64_t again = 0;
        const char *s = json_string_value(json_object_get(o, name));
        UC_FUZZ_CHECK(s != NULL && uq_time_parse(s, &again) == 0);
        UC_FUZZ_CHECK(again == t);
    }
    reset(&res);
}

/* The readers the handlers apply (feedback, backfill, metrics), then every
 * member under each reader. */
static void check_object(json_t *o)
{
    const char *key;
    json_t *v;

    check_str(o, "insight_id", 1, 1, 128, 0);
    check_str(o, "comment", 0, 0, 2000, 1);
    check_str(o, "flag_reason", 0, 0, 500, 1);
    check_str(o, "service_name", 1, 1, 100, 0);
    check_int(o, "rating", 1, 5);
    check_int(o, "start_height", 0, 10000000);
    check_num(o, "value", -1e15, 1e15);
    check_enum(o, "flag_type");
    check_time(o, "timestamp");
    json_object_foreach(o, key, v)
    {
        (void)v;
        check_str(o, key, 0, 1, 64, 0);
        check_int(o, key, -1000, 1000);
        check_num(o, key, -1.0, 1.0);
        check_enum(o, key);
        check_time(o, key);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[4] = {"application/json",
                                         "Application/JSON; charset=utf-8",
                                         "text/plain", NULL};
    uq_resp_t res;
    json_type want;
    const char *ct;
    json_t *j;

    if (size == 0) {
        return 0;
    }
    want = (data[0] & 1) != 0 ? JSON_ARRAY : JSON_OBJECT;
    ct = types[(data[0] >> 1) & 3];
    data++;
    size--;

    memset(&res, 0, sizeof(res));
    j = uq__request_body((const char *)data, size, ct, want, &res);
    if (j == NULL) {
        int not_json = size > 0 && !uq__request_is_json_type(ct);
        check_refusal(&res, not_json ? 415 : 0, NULL);
        UC_FUZZ_CHECK(not_json == (res.status == 415));
        reset(&res);
        return 0;
    }
    UC_FUZZ_CHECK(json_typeof(j) == want);
    UC_FUZZ_CHECK(res.body == NULL);
    if (want == JSON_OBJECT) {
        check_object(j);
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e)
        {
            if (i >= 16) {
                break;
            }
            if (json_is_object(e)) {
                check_object(e);
            }
        }
    }
    json_decref(j);
    return 0;
}
