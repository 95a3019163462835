/* SPDX-License-Identifier: MIT */
/*
 * Internal to utxoiq-api: decoding of JSON request bodies and their fields,
 * kept apart from HTTP and the database so that a fuzz target
 * (tests/fuzz/fuzz_request_json.c) can drive exactly the code the handlers
 * run. Every decoder either succeeds or sets res to a 4xx JSON error that
 * names the field; none aborts on any input. Strings returned through
 * out-parameters are borrowed from the json_t they were read from.
 */
#ifndef UQ_SERVER_REQUEST_H
#define UQ_SERVER_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"

/*
 * 1 when the Content-Type value ct names application/json (parameters such
 * as "; charset=utf-8" allowed); 0 otherwise, NULL included.
 */
int uq__request_is_json_type(const char *ct);

/*
 * Parses body (len bytes, need not be NUL-terminated) sent with Content-Type
 * ct as a JSON value of type want (JSON_OBJECT or JSON_ARRAY). Returns a new
 * reference the caller decrefs, or NULL with res set: 400 for an empty or
 * malformed body, 415 when ct is not JSON (checked before parsing), 422 for
 * another JSON type. Every 422 of this file is FastAPI's list of errors
 * (uq_resp_invalid), whose loc starts with "body". Duplicate keys are refused;
 * NUL inside strings is let through so that the field readers can name the
 * field.
 */
json_t *uq__request_body(const char *body, size_t len, const char *ct,
                         json_type want, uq_resp_t *res);

/*
 * Reads string field name of object o (label names it in messages; NULL:
 * name). *out is NULL when absent or null and not required; otherwise valid
 * UTF-8 with no NUL, minc..maxc characters (code points, as Python counts a
 * str), and no control bytes except \n \r \t when allow_nl. Returns 0,
 * or -1 with res set to 422.
 */
int uq__json_get_str(json_t *o, const char *name, const char *label,
                     int required, size_t minc, size_t maxc, int allow_nl,
                     const char **out, uq_resp_t *res);

/*
 * Reads an integer field (a JSON integer, never a real or a string) in
 * min..max. *present (when not NULL) says whether it was given. *out is
 * written only when present. Returns 0, or -1 with res set to 422.
 */
int uq__json_get_int(json_t *o, const char *name, const char *label,
                     int required, long long min, long long max, long long *out,
                     int *present, uq_resp_t *res);

/* Reads a finite number field in min..max; *out untouched when absent.
 * Returns 0, or -1 with res set to 422. */
int uq__json_get_num(json_t *o, const char *name, const char *label,
                     int required, double min, double max, double *out,
                     uq_resp_t *res);

/* Reads a string field that must be one of allowed (NULL-terminated); *out
 * NULL when absent and not required. Returns 0, or -1 with res set to 422. */
int uq__json_get_enum(json_t *o, const char *name, int required,
                      const char *const *allowed, const char **out,
                      uq_resp_t *res);

/* The characters (code points) of len bytes of valid UTF-8 at s. */
size_t uq__utf8_chars(const char *s, size_t len);

/*
 * Checks len bytes at s as a text value of where/lab (loc; input is the
 * value quoted in the error): UTF-8 without NUL, without control bytes
 * except \n \r \t when allow_nl, and minc..maxc characters. Returns 0, or
 * -1 with res set to 422 (string_too_short, string_too_long, value_error).
 */
int uq__check_text(const char *where, const char *lab, json_t *input,
                   const char *s, size_t len, size_t minc, size_t maxc,
                   int allow_nl, uq_resp_t *res);

/* Sets res to a 422 for a value below (below != 0) or above bound, as
 * pydantic's ge/le constraints write it (integer: bound is whole). */
void uq__resp_range(uq_resp_t *res, const char *where, const char *lab,
                    json_t *input, int below, double bound, int integer);

/* Sets res to a 422 for a value that is not one of allowed, as pydantic's
 * pattern constraint "^(a|b|c)$" writes it. */
void uq__resp_pattern(uq_resp_t *res, const char *where, const char *lab,
                      json_t *input, const char *const *allowed);

/* Reads an optional ISO-8601 timestamp field; *out is UQ_DB_NULL_TIME when
 * absent. Returns 0, or -1 with res set to 422. */
int uq__json_get_time(json_t *o, const char *name, int64_t *out,
                      uq_resp_t *res);

#endif
