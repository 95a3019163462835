/* SPDX-License-Identifier: MIT */
/*
 * The service's OpenAPI 3.1 document, generated from the route table the
 * router serves (api/routes.c: method, path, roles, and each route's doc
 * entry) and the schemas of its JSON bodies, so that it cannot list a route
 * the router lacks or miss one it has. GET /openapi.json answers it; GET
 * /docs renders it with Swagger UI, whose dist files the build fetches from
 * npm (web/docs) and embeds, like the dashboard's.
 *
 * Ownership: the document is built once, on first use, and kept for the
 * life of the process; responses borrow its text.
 * Thread safety: every function may be called from any thread.
 */
#ifndef UTXOIQ_OPENAPI_H
#define UTXOIQ_OPENAPI_H

#include <jansson.h>
#include <stddef.h>

#include "app.h"
#include "dashboard.h"

/*
 * Builds the document from the route table (a new reference), or NULL with
 * the reason in err: a route's doc entry that does not parse, or a schema
 * it names that the components lack. Tests call it directly.
 */
json_t *uq_openapi_build(char *err, size_t errlen);

/* GET /openapi.json. */
void uq_openapi_handler(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/* GET /docs: the page; GET /docs/{}: one of its files. */
void uq_docs_page(uq_app_t *app, uq_req_t *req, uq_resp_t *res);
void uq_docs_file(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

#endif
