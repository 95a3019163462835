/* SPDX-License-Identifier: MIT */
/*
 * The OpenAPI document (openapi.h). Paths, methods, roles and operation ids
 * come from the route table itself; each route's doc entry adds its
 * summary, parameters and body schemas by name; the schemas are below.
 * They are written as JSON with single quotes (none of their text needs
 * an apostrophe), which keeps them readable as C strings.
 */
#include "openapi.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utxocache/utxocache.h>

#define DOCS_CSP                                                               \
    "default-src 'self'; script-src 'self'; style-src 'self' "                 \
    "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "              \
    "font-src 'self'; object-src 'none'; base-uri 'self'; "                    \
    "form-action 'self'; frame-ancestors 'self'"

/* Times are ISO 8601 in UTC; the original's clients parse them with
 * Python's datetime.fromisoformat. */
/* One schema a string (C caps a string literal's length); each is a
 * member of components.schemas, the last without a trailing comma. */
static const char *const SCHEMAS[] = {
    "'Time': {'type': 'string', 'description': 'ISO 8601 in UTC with no"
    " zone, as Python isoformat() writes a naive datetime; a request may"
    " also give Z or an offset'}",
    "'OptTime': {'type': ['string', 'null'],"
    " 'description': 'ISO 8601 in UTC with no zone'}",
    "'HTTPError': {'type': 'object', 'required': ['detail'],"
    " 'properties': {'detail': {'type': 'string'}}}",
    "'ValidationError': {'type': 'object',"
    " 'required': ['loc', 'msg', 'type'], 'properties': {"
    "  'loc': {'type': 'array', 'items': {'type': ['string', 'integer']}},"
    "  'msg': {'type': 'string'}, 'type': {'type': 'string'}, 'input': {}}}",
    "'HTTPValidationError': {'type': 'object', 'required': ['detail'],"
    " 'properties': {'detail': {'type': 'array',"
    "  'items': {'$ref': '#/components/schemas/ValidationError'}}}}",
    "'RateRequest': {'type': 'object', 'required': ['insight_id', 'rating'],"
    " 'properties': {"
    "  'insight_id': {'type': 'string', 'minLength': 1, 'maxLength': 100},"
    "  'user_id': {'type': 'string',"
    "   'description': 'the caller own user id, if given'},"
    "  'rating': {'type': 'integer', 'minimum': 1, 'maximum': 5},"
    "  'comment': {'type': ['string', 'null'], 'maxLength': 1000}}}",
    "'CommentRequest': {'type': 'object',"
    " 'required': ['insight_id', 'comment'], 'properties': {"
    "  'insight_id': {'type': 'string', 'minLength': 1, 'maxLength': 100},"
    "  'user_id': {'type': 'string'},"
    "  'comment': {'type': 'string', 'minLength': 1, 'maxLength': 1000}}}",
    "'FlagRequest': {'type': 'object',"
    " 'required': ['insight_id', 'flag_type'], 'properties': {"
    "  'insight_id': {'type': 'string', 'minLength': 1, 'maxLength': 100},"
    "  'user_id': {'type': 'string'},"
    "  'flag_type': {'enum': ['inaccurate', 'misleading', 'spam']},"
    "  'flag_reason': {'type': ['string', 'null'], 'maxLength': 500}}}",
    "'Feedback': {'type': 'object', 'required': ['id', 'insight_id',"
    " 'user_id', 'rating', 'comment', 'flag_type', 'flag_reason',"
    " 'created_at', 'updated_at'], 'properties': {"
    "  'id': {'type': 'string', 'format': 'uuid'},"
    "  'insight_id': {'type': 'string'}, 'user_id': {'type': 'string'},"
    "  'rating': {'type': ['integer', 'null']},"
    "  'comment': {'type': ['string', 'null']},"
    "  'flag_type': {'type': ['string', 'null']},"
    "  'flag_reason': {'type': ['string', 'null']},"
    "  'created_at': {'$ref': '#/components/schemas/Time'},"
    "  'updated_at': {'$ref': '#/components/schemas/Time'}}}",
    "'FeedbackStats': {'type': 'object', 'required': ['insight_id',"
    " 'total_ratings', 'average_rating', 'rating_distribution',"
    " 'total_comments', 'total_flags', 'flag_types'], 'properties': {"
    "  'insight_id': {'type': 'string'},"
    "  'total_ratings': {'type': 'integer'},"
    "  'average_rating': {'type': 'number'},"
    "  'rating_distribution': {'type': 'object',"
    "   'additionalProperties': {'type': 'integer'}},"
    "  'total_comments': {'type': 'integer'},"
    "  'total_flags': {'type': 'integer'},"
    "  'flag_types': {'type': 'object',"
    "   'additionalProperties': {'type': 'integer'}}}}",
    "'Comment': {'type': 'object', 'required': ['id', 'user_id', 'comment',"
    " 'created_at', 'updated_at'], 'properties': {"
    "  'id': {'type': 'string', 'format': 'uuid'},"
    "  'user_id': {'type': 'string'}, 'comment': {'type': 'string'},"
    "  'created_at': {'$ref': '#/components/schemas/Time'},"
    "  'updated_at': {'$ref': '#/components/schemas/Time'}}}",
    "'CommentsPage': {'type': 'object', 'required': ['insight_id',"
    " 'comments', 'total', 'limit', 'offset'], 'properties': {"
    "  'insight_id': {'type': 'string'},"
    "  'comments': {'type': 'array',"
    "   'items': {'$ref': '#/components/schemas/Comment'}},"
    "  'total': {'type': 'integer', 'description': 'all of the insight "
    "comments, not only this page'},"
    "  'limit': {'type': 'integer'}, 'offset': {'type': 'integer'}}}",
    "'UserFeedbackPage': {'type': 'object', 'required': ['user_id',"
    " 'feedback', 'total', 'limit', 'offset'], 'properties': {"
    "  'user_id': {'type': 'string'},"
    "  'feedback': {'type': 'array',"
    "   'items': {'$ref': '#/components/schemas/Feedback'}},"
    "  'total': {'type': 'integer'},"
    "  'limit': {'type': 'integer'}, 'offset': {'type': 'integer'}}}",
    "'BackfillStart': {'type': 'object',"
    " 'required': ['job_type', 'start_block', 'end_block'], 'properties': {"
    "  'job_type': {'type': 'string', 'minLength': 1, 'maxLength': 50},"
    "  'start_block': {'type': 'integer', 'minimum': 0},"
    "  'end_block': {'type': 'integer', 'minimum': 0},"
    "  'created_by': {'type': ['string', 'null'], 'maxLength': 100}}}",
    "'BackfillProgress': {'type': 'object', 'required': ['current_block'],"
    " 'properties': {"
    "  'current_block': {'type': 'integer', 'minimum': 0},"
    "  'progress_percentage': {'type': 'number', 'minimum': 0,"
    "   'maximum': 100},"
    "  'status': {'enum': ['running', 'completed', 'failed', 'paused']},"
    "  'estimated_completion': {'$ref': '#/components/schemas/OptTime'},"
    "  'error_message': {'type': ['string', 'null']}}}",
    "'BackfillJob': {'type': 'object', 'required': ['id', 'job_type',"
    " 'start_block', 'end_block', 'current_block', 'status',"
    " 'progress_percentage', 'started_at'], 'properties': {"
    "  'id': {'type': 'string', 'format': 'uuid'},"
    "  'job_type': {'type': 'string'},"
    "  'start_block': {'type': 'integer'}, 'end_block': {'type': 'integer'},"
    "  'current_block': {'type': 'integer'},"
    "  'status': {'enum': ['running', 'completed', 'failed', 'paused']},"
    "  'progress_percentage': {'type': 'number'},"
    "  'estimated_completion': {'$ref': '#/components/schemas/OptTime'},"
    "  'error_message': {'type': ['string', 'null']},"
    "  'started_at': {'$ref': '#/components/schemas/Time'},"
    "  'completed_at': {'$ref': '#/components/schemas/OptTime'},"
    "  'created_by': {'type': ['string', 'null']}}}",
    "'MetricCreate': {'type': 'object', 'required': ['service_name',"
    " 'metric_type', 'metric_value', 'unit'], 'properties': {"
    "  'service_name': {'type': 'string', 'minLength': 1, 'maxLength': 100},"
    "  'metric_type': {'type': 'string', 'minLength': 1, 'maxLength': 50},"
    "  'metric_value': {'type': 'number'},"
    "  'unit': {'type': 'string', 'minLength': 1, 'maxLength': 20},"
    "  'timestamp': {'$ref': '#/components/schemas/Time'},"
    "  'metric_metadata': {'type': ['object', 'null']}}}",
    "'Metric': {'type': 'object', 'required': ['id', 'service_name',"
    " 'metric_type', 'metric_value', 'unit', 'timestamp'], 'properties': {"
    "  'id': {'type': 'string', 'format': 'uuid'},"
    "  'service_name': {'type': 'string'}, 'metric_type': {'type': 'string'},"
    "  'metric_value': {'type': 'number'}, 'unit': {'type': 'string'},"
    "  'timestamp': {'$ref': '#/components/schemas/Time'},"
    "  'metric_metadata': {'type': ['object', 'null']}}}",
    "'Bucket': {'type': 'object', 'required': ['timestamp', 'avg_value',"
    " 'min_value', 'max_value', 'count'], 'properties': {"
    "  'timestamp': {'$ref': '#/components/schemas/Time'},"
    "  'avg_value': {'type': 'number'}, 'min_value': {'type': 'number'},"
    "  'max_value': {'type': 'number'}, 'count': {'type': 'integer'}}}",
    "'Aggregate': {'type': 'object', 'required': ['service_name',"
    " 'metric_type', 'interval', 'start_time', 'end_time', 'data'],"
    " 'properties': {"
    "  'service_name': {'type': 'string'}, 'metric_type': {'type': 'string'},"
    "  'interval': {'enum': ['hour', 'day', 'week']},"
    "  'start_time': {'$ref': '#/components/schemas/Time'},"
    "  'end_time': {'$ref': '#/components/schemas/Time'},"
    "  'data': {'type': 'array',"
    "   'items': {'$ref': '#/components/schemas/Bucket'}}}}",
    "'DatabaseFigures': {'type': 'object', 'required': ['status', 'metrics'],"
    " 'properties': {'status': {'type': 'string'},"
    "  'metrics': {'type': 'object'}}}",
    "'StatusMessage': {'type': 'object', 'required': ['status', 'message'],"
    " 'properties': {'status': {'type': 'string'},"
    "  'message': {'type': 'string'}}}",
    "'Health': {'type': 'object', 'required': ['status'],"
    " 'properties': {'status': {'type': 'string'}}}",
    "'HotEntries': {'type': 'object',"
    " 'required': ['keyspace', 'held', 'bytes', 'top'],"
    " 'properties': {'keyspace': {'type': 'string'},"
    "  'held': {'type': 'integer'}, 'bytes': {'type': 'integer'},"
    "  'top': {'type': 'array', 'items': {'type': 'object',"
    "   'required': ['key', 'reads', 'error'],"
    "   'properties': {'key': {'type': 'string'},"
    "    'reads': {'type': 'integer'}, 'error': {'type': 'integer'}}}}}}",
};

/* A schema reference by name, or for "[Name]" an array of it. */
static json_t *schema_ref(const char *name)
{
    char ref[128];
    size_t n = strlen(name);

    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
        snprintf(ref, sizeof(ref), "#/components/schemas/%.*s", (int)(n - 2),
                 name + 1);
        return json_pack("{s:s,s:{s:s}}", "type", "array", "items", "$ref",
                         ref);
    }
    snprintf(ref, sizeof(ref), "#/components/schemas/%s", name);
    return json_pack("{s:s}", "$ref", ref);
}

/* Whether the components define the schema a doc entry names. */
static int schema_known(json_t *schemas, const char *name)
{
    size_t n = strlen(name);
    char bare[96];

    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
        snprintf(bare, sizeof(bare), "%.*s", (int)(n - 2), name + 1);
    } else {
        snprintf(bare, sizeof(bare), "%s", name);
    }
    return json_object_get(schemas, bare) != NULL;
}

/* A number or a string as the parameter's type wants it. */
static json_t *typed(const char *type, const char *v)
{
    char *end;

    if (strcmp(type, "integer") == 0) {
        long long x = strtoll(v, &end, 10);
        return *end == '\0' ? json_integer(x) : NULL;
    }
    if (strcmp(type, "number") == 0) {
        double x = strtod(v, &end);
        return *end == '\0' ? json_real(x) : NULL;
    }
    return json_string(v);
}

/*
 * One parameter of a doc entry ("<in> <name> <type> [flag...]") as an
 * OpenAPI parameter object; *pname gets its name when it is a path one.
 */
static json_t *parse_param(char *text, const char **pname, char *err,
                           size_t errlen)
{
    char *save = NULL;
    char *in = strtok_r(text, " ", &save);
    char *name = strtok_r(NULL, " ", &save);
    char *type = strtok_r(NULL, " ", &save);
    json_t *schema, *p;
    char *tok;
    int required = 0;

    if (in == NULL || name == NULL || type == NULL ||
        (strcmp(in, "query") != 0 && strcmp(in, "path") != 0) ||
        (strcmp(type, "string") != 0 && strcmp(type, "integer") != 0 &&
         strcmp(type, "number") != 0)) {
        snprintf(err, errlen, "parameter '%s': wants <in> <name> <type>", text);
        return NULL;
    }
    schema = json_pack("{s:s}", "type", type);
    while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
        char *eq = strchr(tok, '=');
        json_t *v = NULL;
        if (strcmp(tok, "required") == 0) {
            required = 1;
            continue;
        }
        if (eq == NULL) {
            snprintf(err, errlen, "parameter '%s': unknown flag '%s'", name,
                     tok);
            json_decref(schema);
            return NULL;
        }
        *eq = '\0';
        if (strcmp(tok, "min") == 0 || strcmp(tok, "max") == 0) {
            v = typed(type, eq + 1);
            tok = tok[1] == 'i' ? "minimum" : "maximum";
        } else if (strcmp(tok, "maxlen") == 0) {
            v = typed("integer", eq + 1);
            tok = "maxLength";
        } else if (strcmp(tok, "default") == 0) {
            v = typed(type, eq + 1);
        } else if (strcmp(tok, "format") == 0) {
            v = json_string(eq + 1);
        } else if (strcmp(tok, "enum") == 0) {
            char *s2 = NULL, *e;
            v = json_array();
            for (e = strtok_r(eq + 1, "|", &s2); e != NULL;
                 e = strtok_r(NULL, "|", &s2)) {
                json_array_append_new(v, json_string(e));
            }
        }
        if (v == NULL) {
            snprintf(err, errlen, "parameter '%s': bad flag '%s'", name, tok);
            json_decref(schema);
            return NULL;
        }
        json_object_set_new(schema, tok, v);
    }
    if (strcmp(in, "path") == 0) {
        required = 1; /* OpenAPI: path parameters always are */
        *pname = name;
    }
    p = json_pack("{s:s,s:s,s:b,s:o}", "name", name, "in", in, "required",
                  required, "schema", schema);
    return p;
}

static json_t *error_response(const char *desc, const char *schema)
{
    return json_pack("{s:s,s:{s:{s:o}}}", "description", desc, "content",
                     "application/json", "schema", schema_ref(schema));
}

/* The 200 answer of a route's doc entry. */
static json_t *ok_response(const char *answer)
{
    const char *type = NULL;

    if (answer == NULL) {
        return json_pack("{s:s,s:{s:{s:{s:s}}}}", "description", "OK",
                         "content", "application/json", "schema", "type",
                         "object");
    }
    if (strcmp(answer, "text") == 0) {
        type = "text/plain";
    } else if (strcmp(answer, "html") == 0) {
        type = "text/html";
    } else if (strcmp(answer, "file") == 0) {
        type = "application/octet-stream";
    }
    if (type != NULL) {
        return json_pack("{s:s,s:{s:{s:{s:s}}}}", "description", "OK",
                         "content", type, "schema", "type", "string");
    }
    return json_pack("{s:s,s:{s:{s:o}}}", "description", "OK", "content",
                     "application/json", "schema", schema_ref(answer));
}

static json_t *roles_json(unsigned roles)
{
    json_t *a = json_array();

    if (roles & UQ_ROLE_USER) {
        json_array_append_new(a, json_string("user"));
    }
    if (roles & UQ_ROLE_SERVICE) {
        json_array_append_new(a, json_string("service"));
    }
    if (roles & UQ_ROLE_ADMIN) {
        json_array_append_new(a, json_string("admin"));
    }
    return a;
}

/* The operation of one route; *path gets its OpenAPI path (the pattern's
 * "{}" named after its path parameter). NULL with err on a bad entry. */
static json_t *operation(const uq_route_t *rt, json_t *schemas, char *path,
                         size_t pathcap, char *err, size_t errlen)
{
    const uq_route_doc_t *d = &rt->doc;
    json_t *op = json_object(), *params = json_array(), *responses;
    const char *pname = NULL;
    size_t pl = strlen(rt->pattern);
    int has_input = d->request != NULL;

    if (d->params != NULL) {
        char *copy = strdup(d->params), *save = NULL, *one;
        for (one = copy != NULL ? strtok_r(copy, ",", &save) : NULL;
             one != NULL; one = strtok_r(NULL, ",", &save)) {
            while (*one == ' ') {
                one++;
            }
            json_t *p = parse_param(one, &pname, err, errlen);
            if (p == NULL) {
                free(copy);
                json_decref(op);
                json_decref(params);
                return NULL;
            }
            json_array_append_new(params, p);
            has_input = 1;
        }
        /* pname points into copy: the path is written before it goes. */
        if (pl >= 2 && strcmp(rt->pattern + pl - 2, "{}") == 0) {
            snprintf(path, pathcap, "%.*s{%s}", (int)(pl - 2), rt->pattern,
                     pname != NULL ? pname : "?");
        } else {
            snprintf(path, pathcap, "%s", rt->pattern);
        }
        free(copy);
    } else {
        snprintf(path, pathcap, "%s", rt->pattern);
    }
    if (strstr(path, "{?}") != NULL ||
        (strstr(path, "{}") != NULL && pname == NULL)) {
        snprintf(err, errlen, "%s: a \"{}\" path with no path parameter",
                 rt->name);
        json_decref(op);
        json_decref(params);
        return NULL;
    }
    if ((d->request != NULL && !schema_known(schemas, d->request)) ||
        (d->answer != NULL && strcmp(d->answer, "text") != 0 &&
         strcmp(d->answer, "html") != 0 && strcmp(d->answer, "file") != 0 &&
         !schema_known(schemas, d->answer))) {
        snprintf(err, errlen, "%s: names a schema the components lack",
                 rt->name);
        json_decref(op);
        json_decref(params);
        return NULL;
    }
    json_object_set_new(op, "operationId", json_string(rt->name));
    if (d->tag != NULL) {
        json_object_set_new(op, "tags", json_pack("[s]", d->tag));
    }
    if (d->summary != NULL) {
        json_object_set_new(op, "summary", json_string(d->summary));
    }
    if (json_array_size(params) > 0) {
        json_object_set(op, "parameters", params);
    }
    json_decref(params);
    if (d->request != NULL) {
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b,s:{s:{s:o}}}", "required", 1,
                                      "content", "application/json", "schema",
                                      schema_ref(d->request)));
    }
    responses = json_object();
    json_object_set_new(responses, "200", ok_response(d->answer));
    if (strcmp(rt->method, "GET") == 0) {
        json_object_set_new(
            responses, "304",
            json_pack("{s:s}", "description",
                      "Not modified: the If-None-Match ETag matches"));
    }
    if (rt->roles != 0) {
        json_object_set_new(
            responses, "401",
            error_response("No key, or one this service does not know "
                           "(with WWW-Authenticate: Bearer)",
                           "HTTPError"));
        json_object_set_new(
            responses, "403",
            error_response("The key's role may not call this", "HTTPError"));
        json_object_set_new(
            op, "security",
            json_pack("[{s:[]},{s:[]}]", "bearerAuth", "apiKeyHeader"));
        json_object_set_new(op, "x-roles", roles_json(rt->roles));
    }
    if (has_input) {
        json_object_set_new(
            responses, "422",
            error_response("A parameter or the body does not fit its schema",
                           "HTTPValidationError"));
    }
    json_object_set_new(
        responses, "default",
        error_response("Any other error (400 for a domain error, 404, 503 "
                       "with Retry-After while the database is away)",
                       "HTTPError"));
    json_object_set_new(op, "responses", responses);
    return op;
}

/* The schemas as one JSON object's text, double-quoted (malloc()ed). */
static char *schemas_text(void)
{
    size_t n = sizeof(SCHEMAS) / sizeof(SCHEMAS[0]), len = 3, at = 0;
    char *c;

    for (size_t i = 0; i < n; i++) {
        len += strlen(SCHEMAS[i]) + 1;
    }
    if ((c = malloc(len)) == NULL) {
        return NULL;
    }
    c[at++] = '{';
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(SCHEMAS[i]);
        memcpy(c + at, SCHEMAS[i], k);
        at += k;
        c[at++] = i + 1 < n ? ',' : '}';
    }
    c[at] = '\0';
    for (char *p = c; *p != '\0'; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }
    return c;
}

json_t *uq_openapi_build(char *err, size_t errlen)
{
    size_t n = 0;
    const uq_route_t *rt = uq_api_routes(&n);
    char *text = schemas_text();
    json_error_t jerr;
    json_t *schemas = text != NULL ? json_loads(text, 0, &jerr) : NULL;
    json_t *paths, *doc;

    free(text);
    if (schemas == NULL) {
        snprintf(err, errlen, "the schemas do not parse: %s (column %d)",
                 jerr.text, jerr.column);
        return NULL;
    }
    paths = json_object();
    for (size_t i = 0; i < n; i++) {
        char path[256], method[8];
        json_t *op =
            operation(&rt[i], schemas, path, sizeof(path), err, errlen);
        if (op == NULL) {
            json_decref(paths);
            json_decref(schemas);
            return NULL;
        }
        size_t k = 0;
        for (; rt[i].method[k] != '\0' && k < sizeof(method) - 1; k++) {
            method[k] = (char)(rt[i].method[k] | 0x20); /* lower case */
        }
        method[k] = '\0';
        json_t *item = json_object_get(paths, path);
        if (item == NULL) {
            item = json_object();
            json_object_set_new(paths, path, item);
        }
        json_object_set_new(item, method, op);
    }
    doc = json_pack(
        "{s:s,s:{s:s,s:s,s:s},s:o,s:{s:o,s:{s:{s:s,s:s},s:{s:s,s:s,s:s}}}}",
        "openapi", "3.1.0", "info", "title", "utxoIQ web-api", "version",
        UC_VERSION_STRING, "description",
        "Insight feedback, backfill jobs and service metrics, cached. "
        "Authenticate with an API key as Authorization: Bearer <key> or "
        "X-API-Key: <key>; x-roles lists the roles a route accepts.",
        "paths", paths, "components", "schemas", schemas, "securitySchemes",
        "bearerAuth", "type", "http", "scheme", "bearer", "apiKeyHeader",
        "type", "apiKey", "in", "header", "name", "X-API-Key");
    if (doc == NULL) {
        snprintf(err, errlen, "out of memory");
    }
    return doc;
}

/* ---- serving ------------------------------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char *doc_text;
static size_t doc_len;
static char doc_err[256];

static void build_once(void)
{
    json_t *doc = uq_openapi_build(doc_err, sizeof(doc_err));

    if (doc != NULL) {
        doc_text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        doc_len = doc_text != NULL ? strlen(doc_text) : 0;
        json_decref(doc);
    }
}

void uq_openapi_handler(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    (void)app;
    (void)req;
    pthread_once(&once, build_once);
    if (doc_text == NULL) {
        uq_resp_error(res, 500, "the OpenAPI document could not be built: %s",
                      doc_err[0] != '\0' ? doc_err : "out of memory");
        return;
    }
    res->status = 200;
    res->body = doc_text; /* kept for the process: borrowed, never freed */
    res->len = doc_len;
    res->body_free = NULL;
    res->cache_control = "no-cache";
    res->etag = 1;
}

static void serve_doc_file(uq_resp_t *res, const char *name)
{
    size_t n = 0;
    const uq_asset_t *a = uq_docs_assets(&n);

    uq_asset_serve(res, a, n, name, DOCS_CSP,
                   "the docs page was not built into this binary "
                   "(UC_SERVER_DOCS=OFF); /openapi.json is");
}

void uq_docs_page(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    (void)app;
    (void)req;
    serve_doc_file(res, "index.html");
}

void uq_docs_file(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    (void)app;
    serve_doc_file(res, req->param != NULL ? req->param : "");
}
