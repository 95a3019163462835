/* SPDX-License-Identifier: MIT */
/*
 * Configuration parsing: redis:// URLs and the environment variables the
 * existing service read, plus the library's own. Every value is checked and a
 * bad one is an error that names the variable; nothing falls back silently
 * to a default. Passwords are copied but never written into a message.
 */
#include "utxocache/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utxocache/keyspace.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return UC_ECONFIG;
}

void uc_config_init(uc_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

/* Parses a whole decimal integer in [min, max]; 0 on success. */
static int parse_int(const char *s, long long min, long long max,
                     long long *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s)) {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/*
 * Percent-decodes src[0..n) into dst (capacity cap, NUL-terminated).
 * Returns 0, or -1 on a bad escape, a decoded control byte or overflow.
 */
static int pct_decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n) {
                return -1;
            }
            hi = hexval((unsigned char)src[i + 1]);
            lo = hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            c = hi * 16 + lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f) {
            return -1;
        }
        if (o + 1 >= cap) {
            return -1;
        }
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

static const char *mask_url(const char *url, char *buf, size_t cap)
{
    /* Masks everything between "//user:" and the last '@' before the host. */
    const char *scheme = strstr(url, "://");
    const char *auth = scheme != NULL ? scheme + 3 : url;
    const char *slash = strchr(auth, '/');
    const char *at = NULL;

    for (const char *p = auth; *p != '\0' && (slash == NULL || p < slash);
         p++) {
        if (*p == '@') {
            at = p;
        }
    }
    if (at == NULL) {
        snprintf(buf, cap, "%s", url);
        return buf;
    }
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL) {
        snprintf(buf, cap, "%s", url);
        return buf;
    }
    snprintf(buf, cap, "%.*s***%s", (int)(colon + 1 - url), url, at);
    return buf;
}

int uc_config_parse_url(uc_config_t *cfg, const char *url, char *err,
                        size_t errlen)
{
    char shown[512];
    const char *p, *hostpart, *end, *at = NULL, *slash;
    uc_config_t out = *cfg;
    long long v;

    if (url == NULL) {
        return fail(err, errlen, "redis url: missing");
    }
    mask_url(url, shown, sizeof(shown));
    if (strncmp(url, "redis://", 8) != 0) {
        return fail(err, errlen,
                    "redis url '%s': scheme must be redis:// (TLS is "
                    "provided by a local tunnel, see docs)",
                    shown);
    }
    p = url + 8;
    end = p + strlen(p);
    slash = strchr(p, '/');
    if (slash == NULL) {
        slash = end;
    }
    for (const char *q = p; q < slash; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    out.username[0] = '\0';
    out.password[0] = '\0';
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon != NULL) {
            if (pct_decode(p, (size_t)(colon - p), out.username,
                           sizeof(out.username)) != 0 ||
                pct_decode(colon + 1, (size_t)(at - colon - 1), out.password,
                           sizeof(out.password)) != 0) {
                return fail(err, errlen,
                            "redis url '%s': bad user or password encoding",
                            shown);
            }
        } else if (pct_decode(p, (size_t)(at - p), out.username,
                              sizeof(out.username)) != 0) {
            return fail(err, errlen, "redis url '%s': bad user encoding",
                        shown);
        }
        hostpart = at + 1;
    } else {
        hostpart = p;
    }

    /* host[:port]; an IPv6 literal is written in brackets. */
    const char *hend = slash, *portstart = NULL;
    if (*hostpart == '[') {
        const char *rb = memchr(hostpart, ']', (size_t)(slash - hostpart));
        if (rb == NULL) {
            return fail(err, errlen, "redis url '%s': unclosed '['", shown);
        }
        if (pct_decode(hostpart + 1, (size_t)(rb - hostpart - 1), out.host,
                       sizeof(out.host)) != 0) {
            return fail(err, errlen, "redis url '%s': bad host", shown);
        }
        if (rb + 1 < slash) {
            if (rb[1] != ':') {
                return fail(err, errlen, "redis url '%s': bad host", shown);
            }
            portstart = rb + 2;
        }
    } else {
        const char *colon = memchr(hostpart, ':', (size_t)(slash - hostpart));
        if (colon != NULL) {
            hend = colon;
            portstart = colon + 1;
        }
        if (pct_decode(hostpart, (size_t)(hend - hostpart), out.host,
                       sizeof(out.host)) != 0) {
            return fail(err, errlen, "redis url '%s': bad host", shown);
        }
    }
    if (out.host[0] == '\0') {
        return fail(err, errlen, "redis url '%s': missing host", shown);
    }
    for (const char *h = out.host; *h != '\0'; h++) {
        if (isspace((unsigned char)*h) || *h == '/' || *h == '@') {
            return fail(err, errlen, "redis url '%s': bad host", shown);
        }
    }
    out.port = 6379;
    if (portstart != NULL) {
        char num[16];
        size_t n = (size_t)(slash - portstart);
        if (n == 0 || n >= sizeof(num)) {
            return fail(err, errlen, "redis url '%s': bad port", shown);
        }
        memcpy(num, portstart, n);
        num[n] = '\0';
        if (parse_int(num, 1, 65535, &v) != 0) {
            return fail(err, errlen, "redis url '%s': port must be 1-65535",
                        shown);
        }
        out.port = (int)v;
    }
    out.db = 0;
    if (slash < end && slash[1] != '\0') {
        if (parse_int(slash + 1, 0, 1000000, &v) != 0) {
            return fail(err, errlen,
                        "redis url '%s': database must be a number >= 0",
                        shown);
        }
        out.db = (int)v;
    }
    *cfg = out;
    return UC_OK;
}

typedef const char *(*lookup_fn)(void *arg, const char *name);

static int copy_str(char *dst, size_t cap, const char *val, const char *name,
                    int secret, char *err, size_t errlen)
{
    size_t n = strlen(val);
    if (n >= cap) {
        return fail(err, errlen, "%s: longer than %zu bytes", name, cap - 1);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)val[i];
        if (c < 0x20 || c == 0x7f) {
            /* The value itself is never quoted: it may be a secret. */
            (void)secret;
            return fail(err, errlen, "%s: contains a control byte", name);
        }
    }
    memcpy(dst, val, n + 1);
    return UC_OK;
}

static int env_int(lookup_fn lookup, void *arg, const char *name, long long min,
                   long long max, int *dst, char *err, size_t errlen)
{
    const char *s = lookup(arg, name);
    long long v;

    if (s == NULL) {
        return UC_OK;
    }
    if (parse_int(s, min, max, &v) != 0) {
        return fail(err, errlen,
                    "%s: '%.40s' is not a whole number in %lld-%lld", name, s,
                    min, max);
    }
    *dst = (int)v;
    return UC_OK;
}

/* The per-keyspace variables: UTXOCACHE_<stem>_<NAME>. */
typedef struct {
    const char *stem;
    uint32_t flag;
    long long min, max;
    const char *what;
} ks_var_t;

static const ks_var_t KS_VARS[] = {
    {"TTL", UC_OVERRIDE_TTL, 1, 30LL * 86400, "a TTL in seconds (1-2592000)"},
    {"STALE_S", UC_OVERRIDE_STALE, 0, 365LL * 86400,
     "a grace in seconds (0-31536000)"},
    {"NEAR_BYTES", UC_OVERRIDE_NEAR_BYTES, 0, (long long)1 << 46,
     "a byte count"},
};

/* Reads UTXOCACHE_<stem>_<NAME> into the keyspace's override slot. */
static int keyspace_var(uc_config_t *cfg, lookup_fn lookup, void *arg,
                        const ks_var_t *kv, const char *name, char *err,
                        size_t errlen)
{
    char var[96];
    size_t k = 0;
    long long v;
    int n = snprintf(var, sizeof(var), "UTXOCACHE_%s_", kv->stem);
    const char *s;
    uc_ttl_override_t *o;

    for (const char *c = name; *c != '\0' && (size_t)n + k + 1 < sizeof(var);
         c++, k++) {
        var[(size_t)n + k] = (char)toupper((unsigned char)*c);
    }
    var[(size_t)n + k] = '\0';
    s = lookup(arg, var);
    if (s == NULL) {
        return UC_OK;
    }
    if (parse_int(s, kv->min, kv->max, &v) != 0) {
        return fail(err, errlen, "%s: '%.40s' is not %s", var, s, kv->what);
    }
    size_t slot = cfg->n_ttl_overrides;
    for (size_t j = 0; j < cfg->n_ttl_overrides; j++) {
        if (strcmp(cfg->ttl_overrides[j].keyspace, name) == 0) {
            slot = j;
        }
    }
    if (slot == UC_TTL_OVERRIDES_MAX) {
        return fail(err, errlen, "%s: too many keyspace overrides", var);
    }
    o = &cfg->ttl_overrides[slot];
    if (slot == cfg->n_ttl_overrides) {
        memset(o, 0, sizeof(*o));
        snprintf(o->keyspace, sizeof(o->keyspace), "%s", name);
        cfg->n_ttl_overrides++;
    }
    o->set |= kv->flag;
    if (kv->flag == UC_OVERRIDE_TTL) {
        o->ttl_s = (uint32_t)v;
    } else if (kv->flag == UC_OVERRIDE_STALE) {
        o->stale_s = (uint32_t)v;
    } else {
        o->near_bytes = (uint64_t)v;
    }
    return UC_OK;
}

/*
 * REDIS_CLUSTER_NODES: host:port items separated by commas (spaces around
 * them allowed), each host at most UC_HOST_MAX - 1 bytes of [A-Za-z0-9.:-]
 * (an IPv6 address in brackets), each port 1..65535. Kept as given, minus
 * the spaces; with no host configured the first item becomes host:port.
 */
static int parse_cluster_nodes(uc_config_t *cfg, const char *s, char *err,
                               size_t errlen)
{
    char out[UC_CLUSTER_NODES_MAX];
    size_t olen = 0;
    const char *p = s;
    int first = 1;

    while (*p != '\0') {
        const char *start, *end, *colon = NULL;
        char host[UC_HOST_MAX];
        size_t hlen;
        long port = 0;

        while (*p == ' ' || *p == ',') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        start = p;
        while (*p != '\0' && *p != ',' && *p != ' ') {
            p++;
        }
        end = p;
        for (const char *q = start; q < end; q++) {
            if (*q == ':') {
                colon = q;
            }
        }
        if (colon == NULL || colon == start || colon + 1 == end ||
            end - colon - 1 > 5) {
            return fail(err, errlen,
                        "REDIS_CLUSTER_NODES: '%.*s' is not host:port",
                        (int)(end - start > 80 ? 80 : end - start), start);
        }
        for (const char *q = colon + 1; q < end; q++) {
            if (*q < '0' || *q > '9') {
                return fail(err, errlen,
                            "REDIS_CLUSTER_NODES: '%.*s': bad port",
                            (int)(end - start > 80 ? 80 : end - start), start);
            }
            port = port * 10 + (*q - '0');
        }
        hlen = (size_t)(colon - start);
        if (start[0] == '[' && hlen >= 2 && start[hlen - 1] == ']') {
            start++;
            hlen -= 2;
        }
        if (port < 1 || port > 65535 || hlen == 0 || hlen >= sizeof(host)) {
            return fail(err, errlen,
                        "REDIS_CLUSTER_NODES: '%.*s': bad host or port",
                        (int)(end - start > 80 ? 80 : end - start), start);
        }
        for (size_t i = 0; i < hlen; i++) {
            char ch = start[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
                  ch == ':' || ch == '_')) {
                return fail(err, errlen,
                            "REDIS_CLUSTER_NODES: '%.*s': bad host",
                            (int)(end - start > 80 ? 80 : end - start), start);
            }
        }
        memcpy(host, start, hlen);
        host[hlen] = '\0';
        if (first && cfg->host[0] == '\0') {
            memcpy(cfg->host, host, hlen + 1);
            cfg->port = (int)port;
        }
        first = 0;
        int n = snprintf(out + olen, sizeof(out) - olen, "%s%s:%ld",
                         olen > 0 ? "," : "", host, port);
        if (n < 0 || (size_t)n >= sizeof(out) - olen) {
            return fail(err, errlen,
                        "REDIS_CLUSTER_NODES: longer than %d bytes",
                        UC_CLUSTER_NODES_MAX - 1);
        }
        olen += (size_t)n;
    }
    memcpy(cfg->cluster_nodes, out, olen + 1);
    return UC_OK;
}

int uc_config_from_lookup(uc_config_t *cfg, lookup_fn lookup, void *arg,
                          const char *const *keyspace_names, size_t n_keyspaces,
                          char *err, size_t errlen)
{
    const char *s;
    int rc;
    long long v;

    s = lookup(arg, "REDIS_URL");
    if (s != NULL && s[0] != '\0') {
        rc = uc_config_parse_url(cfg, s, err, errlen);
        if (rc != UC_OK) {
            /* Name the variable, keep the (masked) reason. */
            char reason[400];
            /* With errlen 0 the parser wrote nothing there to keep. */
            snprintf(reason, sizeof(reason), "%s",
                     err != NULL && errlen > 0 ? err : "");
            return fail(err, errlen, "REDIS_URL: %s", reason);
        }
    } else {
        if ((s = lookup(arg, "REDIS_HOST")) != NULL &&
            (rc = copy_str(cfg->host, sizeof(cfg->host), s, "REDIS_HOST", 0,
                           err, errlen)) != UC_OK) {
            return rc;
        }
        if ((rc = env_int(lookup, arg, "REDIS_PORT", 1, 65535, &cfg->port, err,
                          errlen)) != UC_OK) {
            return rc;
        }
        if ((s = lookup(arg, "REDIS_USERNAME")) != NULL &&
            (rc = copy_str(cfg->username, sizeof(cfg->username), s,
                           "REDIS_USERNAME", 0, err, errlen)) != UC_OK) {
            return rc;
        }
        if ((s = lookup(arg, "REDIS_PASSWORD")) != NULL &&
            (rc = copy_str(cfg->password, sizeof(cfg->password), s,
                           "REDIS_PASSWORD", 1, err, errlen)) != UC_OK) {
            return rc;
        }
        if ((rc = env_int(lookup, arg, "REDIS_DB", 0, 1000000, &cfg->db, err,
                          errlen)) != UC_OK) {
            return rc;
        }
    }

    if ((s = lookup(arg, "REDIS_CLUSTER_NODES")) != NULL && s[0] != '\0') {
        rc = parse_cluster_nodes(cfg, s, err, errlen);
        if (rc != UC_OK) {
            return rc;
        }
    }

    static const struct {
        const char *name;
        size_t off;
        long long min, max;
    } ints[] = {
        {"REDIS_MAX_CONNECTIONS", offsetof(uc_config_t, max_connections), 1,
         10000},
        {"REDIS_CONNECT_TIMEOUT_MS", offsetof(uc_config_t, connect_timeout_ms),
         1, 600000},
        {"REDIS_COMMAND_TIMEOUT_MS", offsetof(uc_config_t, command_timeout_ms),
         1, 600000},
        {"UTXOCACHE_ACQUIRE_TIMEOUT_MS",
         offsetof(uc_config_t, acquire_timeout_ms), 1, 600000},
        {"UTXOCACHE_IDLE_TIMEOUT_MS", offsetof(uc_config_t, idle_timeout_ms), 1,
         86400000},
        {"UTXOCACHE_BREAKER_THRESHOLD",
         offsetof(uc_config_t, breaker_threshold), 1, 1000000},
        {"UTXOCACHE_BREAKER_COOLDOWN_MS",
         offsetof(uc_config_t, breaker_cooldown_ms), 1, 3600000},
        {"UTXOCACHE_BACKOFF_BASE_MS", offsetof(uc_config_t, backoff_base_ms), 1,
         600000},
        {"UTXOCACHE_BACKOFF_MAX_MS", offsetof(uc_config_t, backoff_max_ms), 1,
         3600000},
        {"UTXOCACHE_SCAN_BATCH", offsetof(uc_config_t, scan_batch), 1, 100000},
        {"UTXOCACHE_LOG_TAIL_MS", offsetof(uc_config_t, log_tail_ms), 10,
         60000},
        {"UTXOCACHE_LEASE_MS", offsetof(uc_config_t, lease_ms), 100, 600000},
        {"UTXOCACHE_CLUSTER_REFRESH_MS",
         offsetof(uc_config_t, cluster_refresh_ms), 50, 3600000},
        {"UTXOCACHE_TRUST_CHECK_MS", offsetof(uc_config_t, trust_check_ms), 50,
         600000},
        {"UTXOCACHE_NEAR_HEARTBEAT_MS",
         offsetof(uc_config_t, near_heartbeat_ms), 10, 60000},
        {"UTXOCACHE_NEAR_DEADLINE_MS", offsetof(uc_config_t, near_deadline_ms),
         10, 60000},
        {"UTXOCACHE_SOFT_TIMEOUT_MS", offsetof(uc_config_t, soft_timeout_ms), 1,
         600000},
        {"UTXOCACHE_WARM_RATE", offsetof(uc_config_t, warm_rate), 1, 100000},
        {"UTXOCACHE_REFILL_RATE", offsetof(uc_config_t, refill_rate), 1,
         100000},
        {"UTXOCACHE_HOT_SAMPLE", offsetof(uc_config_t, hot_sample), 1, 65536},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        rc = env_int(lookup, arg, ints[i].name, ints[i].min, ints[i].max,
                     (int *)(void *)((char *)cfg + ints[i].off), err, errlen);
        if (rc != UC_OK) {
            return rc;
        }
    }

    /* 0 turns these off; in the struct, 0 is the default and negative
     * is off. */
    static const struct {
        const char *name;
        size_t off;
        long long max;
    } offable[] = {
        {"UTXOCACHE_WARM_TOP", offsetof(uc_config_t, warm_top), 65536},
        {"UTXOCACHE_REFILL_TOP", offsetof(uc_config_t, refill_top), 65536},
        {"UTXOCACHE_REFILL_WAIT_MS", offsetof(uc_config_t, refill_wait_ms),
         60000},
        {"UTXOCACHE_HOT_CAPACITY", offsetof(uc_config_t, hot_capacity), 262144},
        {"UTXOCACHE_HOT_SAMPLE_ABOVE", offsetof(uc_config_t, hot_sample_above),
         10000000},
        {"UTXOCACHE_PIPELINE_MAX", offsetof(uc_config_t, pipeline_max), 256},
    };
    for (size_t i = 0; i < sizeof(offable) / sizeof(offable[0]); i++) {
        int *dst = (int *)(void *)((char *)cfg + offable[i].off);
        if (lookup(arg, offable[i].name) == NULL) {
            continue;
        }
        rc = env_int(lookup, arg, offable[i].name, 0, offable[i].max, dst, err,
                     errlen);
        if (rc != UC_OK) {
            return rc;
        }
        if (*dst == 0) {
            *dst = -1;
        }
    }

    if ((s = lookup(arg, "UTXOCACHE_MEMORY_MAX_BYTES")) != NULL) {
        if (parse_int(s, 4096, (long long)1 << 46, &v) != 0) {
            return fail(err, errlen,
                        "UTXOCACHE_MEMORY_MAX_BYTES: '%.40s' is not a byte "
                        "count >= 4096",
                        s);
        }
        cfg->memory_max_bytes = (size_t)v;
    }
    if ((s = lookup(arg, "UTXOCACHE_NEAR_BYTES")) != NULL) {
        if (parse_int(s, 4096, (long long)1 << 46, &v) != 0) {
            return fail(err, errlen,
                        "UTXOCACHE_NEAR_BYTES: '%.40s' is not a byte count "
                        ">= 4096",
                        s);
        }
        cfg->near_max_bytes = (size_t)v;
    }
    if ((s = lookup(arg, "UTXOCACHE_NEAR")) != NULL) {
        if (strcmp(s, "off") == 0 || strcmp(s, "0") == 0) {
            cfg->near_off = 1;
        } else if (strcmp(s, "on") == 0 || strcmp(s, "1") == 0 ||
                   s[0] == '\0') {
            cfg->near_off = 0;
        } else {
            return fail(err, errlen, "UTXOCACHE_NEAR: '%.20s' is not on or off",
                        s);
        }
    }
    if ((s = lookup(arg, "UTXOCACHE_KEY_PREFIX")) != NULL) {
        size_t n = strlen(s);
        if (n >= sizeof(cfg->key_prefix)) {
            return fail(err, errlen, "UTXOCACHE_KEY_PREFIX: longer than %zu",
                        sizeof(cfg->key_prefix) - 1);
        }
        for (size_t i = 0; i < n; i++) {
            if (!isalnum((unsigned char)s[i]) && strchr("._:-", s[i]) == NULL) {
                return fail(err, errlen,
                            "UTXOCACHE_KEY_PREFIX: only A-Z a-z 0-9 . _ : - "
                            "are allowed");
            }
        }
        memcpy(cfg->key_prefix, s, n + 1);
    }
    if ((s = lookup(arg, "UTXOCACHE_BACKEND")) != NULL) {
        if (strcmp(s, "memory") == 0) {
            cfg->backend = UC_BACKEND_MEMORY;
        } else if (strcmp(s, "redis") == 0) {
            cfg->backend = UC_BACKEND_REDIS;
        } else if (strcmp(s, "auto") == 0 || s[0] == '\0') {
            cfg->backend = UC_BACKEND_AUTO;
        } else {
            return fail(err, errlen,
                        "UTXOCACHE_BACKEND: '%.20s' is not memory, redis or "
                        "auto",
                        s);
        }
    }
    if (cfg->backend == UC_BACKEND_REDIS && cfg->host[0] == '\0') {
        return fail(err, errlen,
                    "UTXOCACHE_BACKEND: redis needs REDIS_URL or REDIS_HOST");
    }

    for (size_t i = 0; i < n_keyspaces; i++) {
        for (size_t kind = 0; kind < sizeof(KS_VARS) / sizeof(KS_VARS[0]);
             kind++) {
            rc = keyspace_var(cfg, lookup, arg, &KS_VARS[kind],
                              keyspace_names[i], err, errlen);
            if (rc != UC_OK) {
                return rc;
            }
        }
    }
    return UC_OK;
}

static const char *env_lookup(void *arg, const char *name)
{
    (void)arg;
    return getenv(name);
}

int uc_config_from_env(uc_config_t *cfg, const char *const *keyspace_names,
                       size_t n_keyspaces, char *err, size_t errlen)
{
    return uc_config_from_lookup(cfg, env_lookup, NULL, keyspace_names,
                                 n_keyspaces, err, errlen);
}

void uc_config_describe(const uc_config_t *cfg, char *buf, size_t buflen)
{
    int redis = cfg->backend == UC_BACKEND_REDIS ||
                (cfg->backend == UC_BACKEND_AUTO && cfg->host[0] != '\0');
    if (!redis) {
        snprintf(buf, buflen, "memory");
        return;
    }
    int v6 = strchr(cfg->host, ':') != NULL;
    snprintf(buf, buflen, "redis://%s%s%s%s%s%s:%d/%d", cfg->username,
             cfg->password[0] != '\0' ? ":***" : "",
             (cfg->username[0] != '\0' || cfg->password[0] != '\0') ? "@" : "",
             v6 ? "[" : "", cfg->host, v6 ? "]" : "",
             cfg->port != 0 ? cfg->port : 6379, cfg->db);
}
