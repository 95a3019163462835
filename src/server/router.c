/* SPDX-License-Identifier: MIT */
/* The router and the ETags of its answers (router.h). */
#include "router.h"

#include <string.h>

/* ---- routing ------------------------------------------------------------- */

int uq_route_find(const uq_route_t *rt, size_t n, const char *method,
                  const char *path, const char **param, int *known)
{
    *known = 0;
    *param = NULL;
    /* HEAD is GET without the body (libmicrohttpd leaves it out). */
    if (strcmp(method, "HEAD") == 0) {
        method = "GET";
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rt[i].pattern, path) == 0) {
            if (strcmp(rt[i].method, method) == 0) {
                return (int)i;
            }
            *known = 1;
        }
    }
    if (*known) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(rt[i].pattern);
        if (pl < 2 || strcmp(rt[i].pattern + pl - 2, "{}") != 0) {
            continue;
        }
        pl -= 2;
        if (strncmp(rt[i].pattern, path, pl) != 0 || path[pl] == '\0' ||
            strchr(path + pl, '/') != NULL) {
            continue;
        }
        if (strcmp(rt[i].method, method) == 0) {
            *param = path + pl;
            return (int)i;
        }
        *known = 1;
    }
    return -1;
}

/* Whether route r serves path: exactly (exact 1) or as a "{}" pattern
 * (exact 0). */
static int serves(const uq_route_t *r, const char *path, int exact)
{
    size_t pl = strlen(r->pattern);

    if (exact) {
        return strcmp(r->pattern, path) == 0;
    }
    return pl >= 2 && strcmp(r->pattern + pl - 2, "{}") == 0 &&
           strncmp(r->pattern, path, pl - 2) == 0 && path[pl - 2] != '\0' &&
           strchr(path + pl - 2, '/') == NULL;
}

void uq_route_allow(const uq_route_t *rt, size_t n, const char *path, char *buf,
                    size_t cap)
{
    size_t pos = 0;
    int exact = 0;

    buf[0] = '\0';
    /* As uq_route_find() decides: a path served exactly is never one of
     * a pattern's, so only the exact routes' methods are allowed. */
    for (size_t i = 0; i < n && !exact; i++) {
        exact = serves(&rt[i], path, 1);
    }
    for (size_t i = 0; i < n; i++) {
        if (serves(&rt[i], path, exact) && strstr(buf, rt[i].method) == NULL) {
            int get = strcmp(rt[i].method, "GET") == 0;
            int w =
                snprintf(buf + pos, cap - pos, "%s%s%s", pos > 0 ? ", " : "",
                         rt[i].method, get ? ", HEAD" : "");
            if (w < 0 || (size_t)w >= cap - pos) {
                buf[pos] = '\0'; /* what fitted whole */
                break;
            }
            pos += (size_t)w;
        }
    }
}

/* ---- ETag ---------------------------------------------------------------- */

int uq_etag_matches(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',' || *p == '\t') {
            p++;
        }
        if (*p == '*') {
            return 1;
        }
        if (strncmp(p, "W/", 2) == 0) {
            p += 2;
        }
        if (*p != '"') {
            return 0;
        }
        const char *end = strchr(p + 1, '"');
        if (end == NULL) {
            return 0;
        }
        if ((size_t)(end + 1 - p) == elen && strncmp(p, etag, elen) == 0) {
            return 1;
        }
        p = end + 1;
    }
    return 0;
}

void uq_etag_format(uint64_t h, char etag[UQ_ETAG_MAX])
{
    static const char hex[] = "0123456789abcdef";
    etag[0] = '"';
    for (int i = 0; i < 16; i++) {
        etag[16 - i] = hex[h & 0xfu];
        h >>= 4;
    }
    etag[17] = '"';
    etag[18] = '\0';
}
