/* SPDX-License-Identifier: MIT */
/*
 * The one generator of the service's UUIDs: backfill job ids (through
 * uq_uuid_new() in util.c), feedback and metric row ids (the backends) and
 * the ids the migration gives rows written before there were any. It is a
 * header so that each of those builds takes it without linking the others:
 * the database layer is compiled on its own into its tests, util.c on its
 * own into the fuzz targets.
 */
#ifndef UQ_SERVER_DB_UUID_H
#define UQ_SERVER_DB_UUID_H

#include <stddef.h>
#include <sys/random.h>
#include <sys/types.h>

#include "db.h"

/*
 * Writes a random (version 4, RFC 9562) UUID in lower case into out.
 * Returns 0, or -1 when the system gives no randomness (out is then
 * untouched).
 */
static inline int uq_db_uuid_new(char out[UQ_DB_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t o = 0;

    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        return -1;
    }
    /* The version in the high nibble of octet 6, the variant (binary 10)
     * in the top bits of octet 8. */
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
    return 0;
}

#endif /* UQ_SERVER_DB_UUID_H */
