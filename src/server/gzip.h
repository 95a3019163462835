/* SPDX-License-Identifier: MIT */
/*
 * gzip bodies (zlib): large JSON answers go compressed to clients that
 * accept it, and the cached ones are stored compressed, so that a hit is
 * sent as stored without compressing it again; a client that does not
 * accept gzip gets it inflated.
 */
#ifndef UTXOIQ_GZIP_H
#define UTXOIQ_GZIP_H

#include <stddef.h>

/* Bodies shorter than this go as they are: below about one packet the
 * saving does not pay for the work. */
#define UQ_GZIP_MIN 1024u

/* Whether buf starts as a gzip stream does (JSON text never does). */
int uq_is_gzip(const char *buf, size_t len);

/*
 * Compresses in into a new malloc()ed *out (NUL-terminated past *outlen,
 * so that it can stand where text did). 0, or -1 when out of memory or
 * when the result would not be smaller than the input.
 */
int uq_gzip(const char *in, size_t len, char **out, size_t *outlen);

/* Inflates a gzip stream into a new malloc()ed, NUL-terminated *out of at
 * most max bytes. 0, or -1 on a broken stream, a larger result, or no
 * memory. */
int uq_gunzip(const char *in, size_t len, size_t max, char **out,
              size_t *outlen);

/* Whether an Accept-Encoding header value accepts gzip (q > 0). */
int uq_accepts_gzip(const char *accept_encoding);

#endif
