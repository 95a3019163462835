/* SPDX-License-Identifier: MIT */
/*
 * Small helpers of utxoiq-api that do not depend on HTTP or the database:
 * the wall clock, ISO-8601 timestamps in and out, text and UUID checks,
 * bounded integer parsing, the ETag hash and the one-line structured logger.
 */
#include "app.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int64_t uc_now_us(const uc_app_t *app)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    return t + (app != NULL ? app->clock_skew_us : 0);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's method). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void uc_time_format(int64_t us, char *buf, size_t cap)
{
    int64_t secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
    int64_t frac = us - secs * 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400;
    int64_t y;
    int m;
    int d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, cap, "%04lld-%02d-%02dT%02d:%02d:%02d.%06lldZ", (long long)y,
             m, d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60),
             (long long)frac);
}

/* Reads exactly n digits at *p; -1 when they are not all digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') {
            return -1;
        }
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int uc_time_parse(const char *s, int64_t *us)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h, mi, sec;
    int64_t frac = 0;
    int64_t off_s = 0;

    if (s == NULL || strlen(s) > 40) {
        return -1;
    }
    if (digits(&p, 4, &y) != 0 || *p++ != '-' || digits(&p, 2, &mo) != 0 ||
        *p++ != '-' || digits(&p, 2, &d) != 0) {
        return -1;
    }
    if (*p != 'T' && *p != 't') {
        return -1;
    }
    p++;
    if (digits(&p, 2, &h) != 0 || *p++ != ':' || digits(&p, 2, &mi) != 0 ||
        *p++ != ':' || digits(&p, 2, &sec) != 0) {
        return -1;
    }
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || h > 23 ||
        mi > 59 || sec > 59) {
        return -1;
    }
    if (d > mdays[mo - 1] + (mo == 2 && is_leap(y))) {
        return -1;
    }
    if (*p == '.') {
        int n = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 6) {
                frac = frac * 10 + (*p - '0');
            }
            n++;
            p++;
        }
        if (n == 0 || n > 9) {
            return -1;
        }
        for (int i = n; i < 6; i++) {
            frac *= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;
        p++;
        if (digits(&p, 2, &oh) != 0 || *p++ != ':' || digits(&p, 2, &om) != 0 ||
            oh > 23 || om > 59) {
            return -1;
        }
        off_s = sign * (oh * 3600 + om * 60);
    }
    if (*p != '\0') {
        return -1;
    }
    int64_t secs =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s;
    /* An offset can push a valid local time past 9999-12-31T23:59:59Z,
     * which could not be written back as a four-digit year. */
    if (secs < 0 || secs > 253402300799) {
        return -1;
    }
    *us = secs * 1000000 + frac;
    return 0;
}

int uc_text_check(const char *s, size_t len, size_t min_chars, size_t max_chars,
                  int allow_nl)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t chars = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                if (!allow_nl || (c != '\n' && c != '\r' && c != '\t')) {
                    return -1;
                }
            }
            i++;
            chars++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (i + n >= len) {
            return -1;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return -1;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp < 0xa0)) {
            return -1;
        }
        i += n + 1;
        chars++;
    }
    return chars >= min_chars && chars <= max_chars ? 0 : -1;
}

int uc_uuid_check(const char *s, char out[UC_DB_UUID_LEN + 1])
{
    if (s == NULL || strlen(s) != UC_DB_UUID_LEN) {
        return -1;
    }
    for (int i = 0; i < UC_DB_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return -1;
            }
            out[i] = c;
            continue;
        }
        if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        }
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return -1;
        }
        out[i] = c;
    }
    out[UC_DB_UUID_LEN] = '\0';
    return 0;
}

int uc_uuid_new(char out[UC_DB_UUID_LEN + 1])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        return -1;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, UC_DB_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

int uc_parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    long long v;
    if (s == NULL || s[0] == '\0' || strlen(s) > 20) {
        return -1;
    }
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '-')) {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

uint64_t uc_hash64(const char *p, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a 64, as the library */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* Appends v to buf as a logfmt value: quoted when it holds anything but
 * plain characters, with quotes, backslashes and control bytes escaped. */
static size_t put_value(char *buf, size_t pos, size_t cap, const char *v)
{
    int quote = v[0] == '\0';
    for (const char *q = v; *q != '\0'; q++) {
        unsigned char c = (unsigned char)*q;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) {
            quote = 1;
            break;
        }
    }
    if (quote && pos + 1 < cap) {
        buf[pos++] = '"';
    }
    for (const char *q = v; *q != '\0' && pos + 5 < cap; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\x%02x", c);
        } else {
            buf[pos++] = (char)c;
        }
    }
    if (quote && pos + 1 < cap) {
        buf[pos++] = '"';
    }
    return pos;
}

void uc_log(const char *level, const char *msg, ...)
{
    char line[2048];
    char ts[40];
    size_t pos;
    va_list ap;

    uc_time_format(uc_now_us(NULL), ts, sizeof(ts));
    pos =
        (size_t)snprintf(line, sizeof(line), "ts=%s level=%s msg=", ts, level);
    pos = put_value(line, pos, sizeof(line) - 2, msg);
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL || pos + 8 >= sizeof(line) - 2) {
            break;
        }
        const char *v = va_arg(ap, const char *);
        pos += (size_t)snprintf(line + pos, sizeof(line) - 2 - pos, " %s=", k);
        if (pos >= sizeof(line) - 2) {
            pos = sizeof(line) - 3;
            break;
        }
        pos = put_value(line, pos, sizeof(line) - 2, v != NULL ? v : "");
    }
    va_end(ap);
    line[pos++] = '\n';
    line[pos] = '\0';
    fputs(line, stderr);
}

static const char *level_name(int level)
{
    switch (level) {
    case 0:
        return "debug";
    case 1:
        return "info";
    case 2:
        return "warn";
    default:
        return "error";
    }
}

void uc_log_cache(void *arg, uc_log_level_t level, const char *msg)
{
    (void)arg;
    uc_log(level_name((int)level), msg, "component", "cache", NULL);
}

void uc_log_db(void *arg, int level, const char *msg)
{
    (void)arg;
    uc_log(level_name(level), msg, "component", "db", NULL);
}
