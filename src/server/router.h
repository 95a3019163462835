/* SPDX-License-Identifier: MIT */
/*
 * The router over a route table (app.h's uq_route_t; the service's table
 * is api/routes.c), and the ETags of its answers. Pure functions of their
 * arguments, so that the unit tests drive them with tables of their own.
 */
#ifndef UTXOIQ_ROUTER_H
#define UTXOIQ_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"

/*
 * Finds the route of (method, path) among the n of rt. Exact paths win
 * over "{}" patterns, so /backfill/status is never read as a job id; a
 * "{}" takes one non-empty segment (no '/'), given back in *param. HEAD is
 * routed as GET. Returns the route index, or -1 with *known set when the
 * path exists under another method (a 405, not a 404).
 */
int uq_route_find(const uq_route_t *rt, size_t n, const char *method,
                  const char *path, const char **param, int *known);

/* The methods path is served with, for a 405's Allow ("GET, HEAD, POST";
 * HEAD beside every GET), into buf of cap bytes. */
void uq_route_allow(const uq_route_t *rt, size_t n, const char *path, char *buf,
                    size_t cap);

/* Does If-None-Match (a list of entity tags, or "*") match etag? Weak
 * comparison, as RFC 9110 asks for If-None-Match. */
int uq_etag_matches(const char *inm, const char *etag);

/* Bytes of a formatted ETag: quotes, 16 hex digits, a "-gz" suffix room
 * and the NUL. */
#define UQ_ETAG_MAX 24

/* Writes the strong ETag of hash h, "\"%016llx\"" and its NUL (19 bytes),
 * without a printf pass: it is built for every cacheable 200. */
void uq_etag_format(uint64_t h, char etag[UQ_ETAG_MAX]);

#endif
