/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the request-input checks of utxoiq-api that stand apart
 * from HTTP and the database (src/server/util.c): ISO-8601 timestamps
 * (uq_time_parse), text fields (uq_text_check), UUIDs (uq_uuid_check) and
 * bounded integers (uq_parse_int). Query-string values and JSON string
 * members reach the handlers only through these.
 *
 * The whole input is one value: as a C string for the string parsers, as
 * (bytes, length) for uq_text_check.
 *
 * Invariants checked besides memory safety:
 *   - an accepted timestamp is >= 0 and its canonical form (uq_time_format)
 *     parses back to the same instant;
 *   - uq_text_check agrees with an independent strict UTF-8 decoder (no
 *     overlong forms, surrogates, C0/C1 controls or code points past
 *     U+10FFFF) on validity and character count;
 *   - uq_uuid_check accepts exactly 8-4-4-4-12 hex digits and lower-cases;
 *   - an accepted integer is in range and survives printing and parsing.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "fuzz_util.h"

/*
 * Characters in s[0..len) by a strict decoder written apart from the one
 * under test, or -1 when s is not acceptable text.
 */
static long ref_text_chars(const unsigned char *s, size_t len, int allow_nl)
{
    long chars = 0;

    for (size_t i = 0; i < len; chars++) {
        unsigned char c = s[i];
        uint32_t cp, min;
        size_t extra;
        if (c < 0x80) {
            int ctl = c < 0x20 || c == 0x7f;
            int ws = c == '\n' || c == '\r' || c == '\t';
            if (ctl && !(allow_nl && ws)) {
                return -1;
            }
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            extra = 1;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            min = 0x10000;
        } else {
            return -1;
        }
        cp = c & (0x3fu >> extra);
        if (len - i <= extra) {
            return -1;
        }
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return -1;
            }
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            cp < 0xa0) {
            return -1;
        }
        i += extra + 1;
    }
    return chars;
}

static void fuzz_text(const uint8_t *data, size_t size)
{
    for (int nl = 0; nl <= 1; nl++) {
        long want = ref_text_chars(data, size, nl);
        int any = uq_text_check((const char *)data, size, 0, SIZE_MAX, nl);
        int short_ok = uq_text_check((const char *)data, size, 1, 8, nl);
        UC_FUZZ_CHECK((any == 0) == (want >= 0));
        UC_FUZZ_CHECK((short_ok == 0) == (want >= 1 && want <= 8));
    }
}

static void fuzz_time(const char *s)
{
    int64_t us = -1, again = -1;
    char canon[64];

    if (uq_time_parse(s, &us) != 0) {
        return;
    }
    UC_FUZZ_CHECK(us >= 0);
    uq_time_format(us, canon, sizeof(canon));
    UC_FUZZ_CHECK(uq_time_parse(canon, &again) == 0);
    UC_FUZZ_CHECK(again == us);
}

static int ref_uuid(const char *s, char *out)
{
    static const char hex[] = "0123456789abcdef";

    if (strlen(s) != UQ_DB_UUID_LEN) {
        return -1;
    }
    for (size_t i = 0; i < UQ_DB_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return -1;
            }
        } else {
            if (c >= 'A' && c <= 'F') {
                c = (char)(c - 'A' + 'a');
            }
            if (c == '\0' || strchr(hex, c) == NULL) {
                return -1;
            }
        }
        out[i] = c;
    }
    out[UQ_DB_UUID_LEN] = '\0';
    return 0;
}

static void fuzz_uuid(const char *s)
{
    char got[UQ_DB_UUID_LEN + 1], want[UQ_DB_UUID_LEN + 1];
    int rc = uq_uuid_check(s, got), ref = ref_uuid(s, want);

    UC_FUZZ_CHECK(rc == ref);
    if (rc == 0) {
        UC_FUZZ_CHECK(strcmp(got, want) == 0);
    }
}

static void fuzz_int(const char *s)
{
    static const long long bounds[][2] = {
        {1, 1000}, {0, INT64_MAX}, {INT64_MIN, INT64_MAX}, {-5, 5}};
    char text[32];

    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        long long v = 0, again = 0;
        if (uq_parse_int(s, bounds[i][0], bounds[i][1], &v) != 0) {
            continue;
        }
        UC_FUZZ_CHECK(v >= bounds[i][0] && v <= bounds[i][1]);
        snprintf(text, sizeof(text), "%lld", v);
        UC_FUZZ_CHECK(uq_parse_int(text, bounds[i][0], bounds[i][1], &again) ==
                      0);
        UC_FUZZ_CHECK(again == v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = uc_fuzz_strndup((const char *)data, size);

    if (s == NULL) {
        return 0;
    }
    fuzz_text(data, size);
    fuzz_time(s);
    fuzz_uuid(s);
    fuzz_int(s);
    free(s);
    return 0;
}
