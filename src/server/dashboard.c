/* SPDX-License-Identifier: MIT */
/*
 * The dashboard's handlers (dashboard.h): each embedded file is answered
 * from the binary itself, with its type, a strong ETag (http.c answers 304
 * to a matching If-None-Match), "Cache-Control: no-cache" so that a browser
 * revalidates after an upgrade, and a Content-Security-Policy that lets the
 * page load scripts, styles, images and data from the service alone.
 */
#include "dashboard.h"

#include <string.h>

#define DASHBOARD_CSP                                                          \
    "default-src 'self'; script-src 'self'; style-src 'self'; "                \
    "img-src 'self'; connect-src 'self'; font-src 'self'; "                    \
    "object-src 'none'; base-uri 'self'; form-action 'self'; "                 \
    "frame-ancestors 'self'"

void uq_asset_serve(uq_resp_t *res, const uq_asset_t *a, size_t n,
                    const char *name, const char *csp, const char *off)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].name, name) != 0) {
            continue;
        }
        res->status = 200;
        /* Static data: the HTTP layer sends it without copying and, with
         * no free function, never frees it. */
        res->body = (char *)a[i].data;
        res->len = a[i].len;
        res->body_free = NULL;
        res->content_type = a[i].content_type;
        res->cache_control = "no-cache";
        res->etag = 1;
        res->csp = csp;
        return;
    }
    if (n == 0) {
        uq_resp_error(res, 404, "%s", off);
    } else {
        uq_resp_error(res, 404, "no such file '%.64s'", name);
    }
}

static void serve(uq_resp_t *res, const char *name)
{
    size_t n = 0;
    const uq_asset_t *a = uq_dashboard_assets(&n);

    uq_asset_serve(res, a, n, name, DASHBOARD_CSP,
                   "the dashboard was not built into this binary "
                   "(UC_SERVER_DASHBOARD=OFF)");
}

void uq_dashboard_page(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    (void)app;
    (void)req;
    serve(res, "index.html");
}

void uq_dashboard_file(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    (void)app;
    serve(res, req->param != NULL ? req->param : "");
}
