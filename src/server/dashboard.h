/* SPDX-License-Identifier: MIT */
/*
 * The cache dashboard: GET /dashboard serves a page built into the binary
 * (web/dashboard: its HTML, script and style, and uPlot's dist files, which
 * the build fetches with npm and embeds), GET /dashboard/{file} the rest of
 * it. The page reads /api/v1/monitoring/cache/history and
 * /api/v1/monitoring/cache/stats and requests nothing from anywhere else;
 * its Content-Security-Policy allows only the service itself.
 *
 * Ownership: the embedded files are static; responses borrow them.
 * Thread safety: the handlers may run on any HTTP thread.
 */
#ifndef UQ_SERVER_DASHBOARD_H
#define UQ_SERVER_DASHBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"

/* One embedded file (the generated dashboard_assets.c). */
typedef struct {
    const char *name;         /* as under /dashboard/, e.g. "uPlot.min.css" */
    const char *content_type; /* with charset for text */
    const unsigned char *data;
    size_t len;
} uq_asset_t;

/* The table the build generates, and its length (0 when the service was
 * built with UC_SERVER_DASHBOARD=OFF). */
const uq_asset_t *uq_dashboard_assets(size_t *n);

/* The same for the /docs page (docs_assets.c; served by openapi.c). */
const uq_asset_t *uq_docs_assets(size_t *n);

/*
 * Answers the embedded file `name` of the n at a: 200 with its type, a
 * strong ETag, "Cache-Control: no-cache" (a browser revalidates after an
 * upgrade) and the Content-Security-Policy csp; 404 for a name it lacks,
 * or with the text `off` when the binary was built without any.
 */
void uq_asset_serve(uq_resp_t *res, const uq_asset_t *a, size_t n,
                    const char *name, const char *csp, const char *off);

/* GET /dashboard: the page. */
void uq_dashboard_page(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

/* GET /dashboard/{}: one of its files, or 404. */
void uq_dashboard_file(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

#endif
