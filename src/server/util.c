/* SPDX-License-Identifier: MIT */
/*
 * Small helpers of utxoiq-api that do not depend on HTTP or the database:
 * the wall clock, ISO-8601 timestamps in and out, text and UUID checks,
 * bounded integer parsing, the ETag hash and the one-line structured logger
 * (logfmt or JSON, a level threshold, and a per-cause rate limit).
 */
#include "app.h"
#include "db/uuid.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int64_t uq_now_us(const uq_app_t *app)
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

/* The date and time of us, and its microseconds apart, for the writers
 * below. */
static void time_parts(int64_t us, char *buf, size_t cap, int64_t *frac)
{
    int64_t secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400;
    int64_t y;
    int m;
    int d;
    *frac = us - secs * 1000000;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, cap, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)y, m, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

void uq_time_format(int64_t us, char *buf, size_t cap)
{
    int64_t frac;
    time_parts(us, buf, cap, &frac);
    size_t n = strlen(buf);
    if (n < cap) {
        snprintf(buf + n, cap - n, ".%06lldZ", (long long)frac);
    }
}

void uq_time_format_naive(int64_t us, char *buf, size_t cap)
{
    int64_t frac;
    time_parts(us, buf, cap, &frac);
    size_t n = strlen(buf);
    /* Python's isoformat() leaves the fraction out when it is zero. */
    if (frac != 0 && n < cap) {
        snprintf(buf + n, cap - n, ".%06lld", (long long)frac);
    }
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

int uq_time_parse(const char *s, int64_t *us)
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

int uq_text_check(const char *s, size_t len, size_t min_chars, size_t max_chars,
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

int uq_uuid_check(const char *s, char out[UQ_DB_UUID_LEN + 1])
{
    if (s == NULL || strlen(s) != UQ_DB_UUID_LEN) {
        return -1;
    }
    for (int i = 0; i < UQ_DB_UUID_LEN; i++) {
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
    out[UQ_DB_UUID_LEN] = '\0';
    return 0;
}

int uq_uuid_new(char out[UQ_DB_UUID_LEN + 1])
{
    /* One generator for job ids and the database rows' ids (db/uuid.h). */
    return uq_db_uuid_new(out);
}

int uq_parse_int(const char *s, long long min, long long max, long long *out)
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

uint64_t uq_hash64(const char *p, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a 64, as the library */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* ---- the logger -----------------------------------------------------------
 *
 * The logger is process-wide rather than hanging off the app: stderr is one
 * per process, and the library's and the database's log callbacks reach it
 * without the app. Its settings are read once (pthread_once); its counters
 * are atomics; the rate limit's table has its own mutex, taken only for
 * warn and error lines (the access log, at info, never waits on it).
 */

enum { LOG_LOGFMT = 0, LOG_JSON = 1 };

#define LOG_LINE_MAX 2048
#define LOG_CAUSES 64 /* rate-limit slots; the oldest is reused when full */

typedef struct {
    uint64_t key; /* 0: free */
    uint64_t window_ms;
    uint32_t in_window;
    uint64_t suppressed;
} log_cause_t;

static struct {
    pthread_once_t once;
    int format;
    int min_level;
    uint64_t interval_ms;
    uint32_t burst;
    pthread_mutex_t mu;
    log_cause_t causes[LOG_CAUSES];
    atomic_uint_fast64_t written[UQ_LOG_NLEVELS];
    atomic_uint_fast64_t suppressed;
} logger = {PTHREAD_ONCE_INIT,         0,     1,   1000, 1,
            PTHREAD_MUTEX_INITIALIZER, {{0}}, {0}, 0};

static const char *const LEVELS[UQ_LOG_NLEVELS] = {"debug", "info", "warn",
                                                   "error"};

const char *uq_log_level_name(int level)
{
    return level >= 0 && level < UQ_LOG_NLEVELS ? LEVELS[level] : "error";
}

static int level_of(const char *name)
{
    for (int i = 0; i < UQ_LOG_NLEVELS; i++) {
        if (strcmp(name, LEVELS[i]) == 0) {
            return i;
        }
    }
    return strcmp(name, "warning") == 0 ? 2 : 3;
}

/* Settings the logger cannot use are reported once, on its own output, and
 * the default is kept: a typo in a log setting should not stop a service. */
static void log_setting_bad(const char *name, const char *value,
                            const char *want)
{
    char line[512];
    char ts[40];
    uq_time_format(uq_now_us(NULL), ts, sizeof(ts));
    int n = snprintf(line, sizeof(line),
                     "ts=%s level=warn msg=\"%s: not one of %s; the default "
                     "is used\" value_length=%zu\n",
                     ts, name, want, strlen(value));
    if (n > 0) {
        (void)!write(STDERR_FILENO, line,
                     (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
}

static void log_init(void)
{
    const char *v = getenv("UTXOIQ_LOG_LEVEL");
    long long x;
    if (v != NULL && v[0] != '\0') {
        int l = -1;
        for (int i = 0; i < UQ_LOG_NLEVELS; i++) {
            if (strcasecmp(v, LEVELS[i]) == 0) {
                l = i;
            }
        }
        if (l < 0) {
            log_setting_bad("UTXOIQ_LOG_LEVEL", v, "debug|info|warn|error");
        } else {
            logger.min_level = l;
        }
    }
    v = getenv("UTXOIQ_LOG_FORMAT");
    if (v != NULL && v[0] != '\0') {
        if (strcasecmp(v, "json") == 0) {
            logger.format = LOG_JSON;
        } else if (strcasecmp(v, "logfmt") != 0) {
            log_setting_bad("UTXOIQ_LOG_FORMAT", v, "logfmt|json");
        }
    }
    v = getenv("UTXOIQ_LOG_INTERVAL_MS");
    if (v != NULL && v[0] != '\0') {
        if (uq_parse_int(v, 0, 3600000, &x) != 0) {
            log_setting_bad("UTXOIQ_LOG_INTERVAL_MS", v, "0..3600000");
        } else {
            logger.interval_ms = (uint64_t)x;
        }
    }
    v = getenv("UTXOIQ_LOG_BURST");
    if (v != NULL && v[0] != '\0') {
        if (uq_parse_int(v, 1, 1000000, &x) != 0) {
            log_setting_bad("UTXOIQ_LOG_BURST", v, "1..1000000");
        } else {
            logger.burst = (uint32_t)x;
        }
    }
}

int uq_log_min_level(void)
{
    pthread_once(&logger.once, log_init);
    return logger.min_level;
}

void uq_log_stats(uq_log_stats_t *out)
{
    for (int i = 0; i < UQ_LOG_NLEVELS; i++) {
        out->written[i] = atomic_load(&logger.written[i]);
    }
    out->suppressed = atomic_load(&logger.suppressed);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The cause of a line: its level and its message with digits left out, so
 * that "... within 5000 ms" or a library's own "(4 similar held back)" do
 * not make every line a cause of its own. Never 0. */
static uint64_t cause_key(int level, const char *msg)
{
    uint64_t h = UINT64_C(14695981039346656037) ^ (uint64_t)level;
    for (const char *p = msg; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            continue;
        }
        h ^= (unsigned char)*p;
        h *= UINT64_C(1099511628211);
    }
    return h != 0 ? h : 1;
}

/*
 * The rate limit. Returns 1 when the line is to be written, with
 * *suppressed set to the lines of its cause held back since the last one
 * written; 0 when it is held back (and counted).
 */
static int log_admit(int level, const char *msg, uint64_t *suppressed)
{
    uint64_t key = cause_key(level, msg);
    uint64_t now = mono_ms();
    log_cause_t *slot = NULL;
    log_cause_t *oldest = &logger.causes[0];
    int admit;

    *suppressed = 0;
    if (logger.interval_ms == 0) {
        return 1;
    }
    pthread_mutex_lock(&logger.mu);
    for (int i = 0; i < LOG_CAUSES; i++) {
        log_cause_t *c = &logger.causes[i];
        if (c->key == key) {
            slot = c;
            break;
        }
        if (c->key == 0 ||
            (oldest->key != 0 && c->window_ms < oldest->window_ms)) {
            oldest = c;
        }
    }
    if (slot == NULL) {
        /* A new cause, or one forgotten: its suppressed lines, if any, were
         * counted in the totals already. */
        slot = oldest;
        memset(slot, 0, sizeof(*slot));
        slot->key = key;
        slot->window_ms = now;
    }
    if (now - slot->window_ms >= logger.interval_ms) {
        slot->window_ms = now;
        slot->in_window = 0;
    }
    admit = slot->in_window < logger.burst;
    if (admit) {
        slot->in_window++;
        *suppressed = slot->suppressed;
        slot->suppressed = 0;
    } else {
        slot->suppressed++;
    }
    pthread_mutex_unlock(&logger.mu);
    if (!admit) {
        atomic_fetch_add(&logger.suppressed, 1);
    }
    return admit;
}

/* A line being built: text stops at cap - reserve, so the closing bytes
 * (quote, brace, newline) always fit. */
typedef struct {
    char p[LOG_LINE_MAX];
    size_t len;
} line_t;

#define LINE_RESERVE 8

static void put_raw(line_t *l, const char *s)
{
    for (; *s != '\0' && l->len + LINE_RESERVE < sizeof(l->p); s++) {
        l->p[l->len++] = *s;
    }
}

/* Appends v as a logfmt value: quoted when it holds anything but plain
 * characters, with quotes, backslashes and control bytes escaped. */
static void put_logfmt(line_t *l, const char *v)
{
    int quote = v[0] == '\0';
    for (const char *q = v; *q != '\0'; q++) {
        unsigned char c = (unsigned char)*q;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) {
            quote = 1;
            break;
        }
    }
    if (quote) {
        l->p[l->len++] = '"';
    }
    for (const char *q = v; *q != '\0'; q++) {
        unsigned char c = (unsigned char)*q;
        if (l->len + LINE_RESERVE + 4 >= sizeof(l->p)) {
            break;
        }
        if (c == '"' || c == '\\') {
            l->p[l->len++] = '\\';
            l->p[l->len++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            l->len += (size_t)snprintf(l->p + l->len, sizeof(l->p) - l->len,
                                       "\\x%02x", c);
        } else {
            l->p[l->len++] = (char)c;
        }
    }
    if (quote) {
        l->p[l->len++] = '"';
    }
}

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return n;
}

/* Appends v as a JSON string: quotes, backslashes and control bytes
 * escaped, valid UTF-8 kept, any other byte replaced by U+FFFD, so the line
 * is valid JSON whatever the value held. A cut never splits an escape or a
 * character. */
static void put_json(line_t *l, const char *v)
{
    const unsigned char *q = (const unsigned char *)v;
    l->p[l->len++] = '"';
    while (*q != '\0') {
        unsigned char c = *q;
        if (l->len + LINE_RESERVE + 6 >= sizeof(l->p)) {
            break;
        }
        if (c == '"' || c == '\\') {
            l->p[l->len++] = '\\';
            l->p[l->len++] = (char)c;
            q++;
        } else if (c == '\n') {
            l->p[l->len++] = '\\';
            l->p[l->len++] = 'n';
            q++;
        } else if (c < 0x20 || c == 0x7f) {
            l->len += (size_t)snprintf(l->p + l->len, sizeof(l->p) - l->len,
                                       "\\u%04x", c);
            q++;
        } else if (c < 0x80) {
            l->p[l->len++] = (char)c;
            q++;
        } else {
            size_t n = utf8_len(q);
            if (n == 0) {
                put_raw(l, "\\ufffd");
                q++;
            } else {
                memcpy(l->p + l->len, q, n);
                l->len += n;
                q += n;
            }
        }
    }
    l->p[l->len++] = '"';
}

static void put_field(line_t *l, int json, int first, const char *k,
                      const char *v)
{
    if (json) {
        put_raw(l, first ? "" : ",");
        put_json(l, k);
        put_raw(l, ":");
        put_json(l, v);
    } else {
        put_raw(l, first ? "" : " ");
        put_raw(l, k);
        put_raw(l, "=");
        put_logfmt(l, v);
    }
}

static _Thread_local const char *tl_correlation;

void uq_log_correlation(const char *id)
{
    tl_correlation = id;
}

void uq_log(const char *level, const char *msg, ...)
{
    line_t l;
    char ts[40];
    char held[LOG_LINE_MAX / 2];
    uint64_t suppressed = 0;
    int lv = level_of(level);
    int json;
    va_list ap;

    pthread_once(&logger.once, log_init);
    if (lv < logger.min_level) {
        return;
    }
    if (lv >= 2 && !log_admit(lv, msg, &suppressed)) {
        return;
    }
    if (suppressed > 0) {
        snprintf(held, sizeof(held), "%s (%llu similar suppressed)", msg,
                 (unsigned long long)suppressed);
        msg = held;
    }
    json = logger.format == LOG_JSON;
    l.len = 0;
    uq_time_format(uq_now_us(NULL), ts, sizeof(ts));
    put_raw(&l, json ? "{" : "");
    put_field(&l, json, 1, "ts", ts);
    put_field(&l, json, 0, "level", LEVELS[lv]);
    put_field(&l, json, 0, "msg", msg);
    if (tl_correlation != NULL) {
        put_field(&l, json, 0, "correlation_id", tl_correlation);
    }
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL) {
            break;
        }
        const char *v = va_arg(ap, const char *);
        put_field(&l, json, 0, k, v != NULL ? v : "");
    }
    va_end(ap);
    if (json) {
        l.p[l.len++] = '}';
    }
    l.p[l.len++] = '\n';
    atomic_fetch_add(&logger.written[lv], 1);
    /* One write(2) per line, so lines of different threads never mix. */
    size_t off = 0;
    while (off < l.len) {
        ssize_t w = write(STDERR_FILENO, l.p + off, l.len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break;
        }
        off += (size_t)w;
    }
}

void uq_log_cache(void *arg, uc_log_level_t level, const char *msg)
{
    (void)arg;
    uq_log(uq_log_level_name((int)level), msg, "component", "cache", NULL);
}

void uq_log_db(void *arg, int level, const char *msg)
{
    (void)arg;
    uq_log(uq_log_level_name(level), msg, "component", "db", NULL);
}
