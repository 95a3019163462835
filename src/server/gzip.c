/* SPDX-License-Identifier: MIT */
/* gzip bodies with zlib (gzip.h). */
#include "gzip.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* Level 6 (zlib's default) compresses these JSON bodies about 8 to 1 at
 * well under a millisecond for the largest page. */
#define LEVEL 6
/* windowBits 15 plus 16: a gzip header and trailer, not a raw zlib one. */
#define GZIP_WBITS (15 + 16)

int uq_is_gzip(const char *buf, size_t len)
{
    return len >= 10 && (unsigned char)buf[0] == 0x1f &&
           (unsigned char)buf[1] == 0x8b;
}

int uq_gzip(const char *in, size_t len, char **out, size_t *outlen)
{
    z_stream z;
    size_t cap;
    char *buf;
    int rc;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, LEVEL, Z_DEFLATED, GZIP_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return -1;
    }
    cap = deflateBound(&z, (uLong)len);
    if ((buf = malloc(cap + 1)) == NULL) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)cap;
    rc = deflate(&z, Z_FINISH);
    if (rc != Z_STREAM_END || z.total_out >= len) {
        deflateEnd(&z);
        free(buf);
        return -1;
    }
    *outlen = z.total_out;
    buf[*outlen] = '\0';
    *out = buf;
    deflateEnd(&z);
    return 0;
}

int uq_gunzip(const char *in, size_t len, size_t max, char **out,
              size_t *outlen)
{
    z_stream z;
    size_t cap = len * 4 < max ? len * 4 : max, have = 0;
    char *buf = malloc(cap + 1);
    int rc = Z_OK;

    if (buf == NULL) {
        return -1;
    }
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, GZIP_WBITS) != Z_OK) {
        free(buf);
        return -1;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    while (rc != Z_STREAM_END) {
        if (have == cap) {
            char *nb;
            if (cap >= max) {
                break; /* larger than allowed */
            }
            cap = cap * 2 < max ? cap * 2 : max;
            if ((nb = realloc(buf, cap + 1)) == NULL) {
                break;
            }
            buf = nb;
        }
        z.next_out = (Bytef *)buf + have;
        z.avail_out = (uInt)(cap - have);
        rc = inflate(&z, Z_NO_FLUSH);
        have = cap - z.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END) {
            break;
        }
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || z.avail_in != 0) {
        free(buf);
        return -1;
    }
    buf[have] = '\0';
    *out = buf;
    *outlen = have;
    return 0;
}

int uq_accepts_gzip(const char *ae)
{
    const char *p = ae;
    int named = -1, star = -1; /* -1 not listed, else 1 when q > 0 */

    if (ae == NULL) {
        return 0;
    }
    /* A list of codings, each with an optional ;q=. gzip by name decides;
     * otherwise "*" (any coding not named) does; "gzip;q=0" refuses. */
    while (*p != '\0') {
        const char *tok, *end, *q;
        size_t n;
        int ok = 1;
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        tok = p;
        while (*p != '\0' && *p != ',' && *p != ';' && *p != ' ' &&
               *p != '\t') {
            p++;
        }
        n = (size_t)(p - tok);
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }
        for (q = p; q + 1 < end; q++) {
            if ((*q == 'q' || *q == 'Q') && q[1] == '=') {
                ok = strtod(q + 2, NULL) > 0.0;
                break;
            }
        }
        if ((n == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
            (n == 6 && strncasecmp(tok, "x-gzip", 6) == 0)) {
            named = ok;
        } else if (n == 1 && *tok == '*') {
            star = ok;
        }
        p = end;
    }
    return named >= 0 ? named : star > 0;
}
