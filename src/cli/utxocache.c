/* SPDX-License-Identifier: MIT */
/*
 * utxocache: the operator's command line over libutxocache. It reads the
 * same environment as the library (REDIS_URL, UTXOCACHE_*), declares the
 * utxoIQ keyspaces so that UTXOCACHE_TTL_* overrides apply, runs one command
 * (get, set, del, exists, ttl, invalidate, stats, ping) and exits with 0 on
 * success, 1 when the answer is "not there", or 2 on error with one line on
 * stderr. It uses only the public API, like any other client of the library.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyspaces.h"
#include "utxocache/utxocache.h"

enum {
    EXIT_HIT = 0,
    EXIT_NOTFOUND = 1,
    EXIT_ERR = 2,
};

/* Longest key quoted in a message: keys are user data, messages one line. */
#define QUOTE_MAX 80
/* Widest TTL accepted, so that seconds * 1000 cannot overflow. */
#define TTL_S_MAX (UINT64_MAX / 1000u)

static const char usage_text[] =
    "usage: utxocache [-v] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  get KEY                      print the value (exit 1 on a miss)\n"
    "  set KEY VALUE|- [--ttl SECONDS|--px MS]\n"
    "                               store a value ('-': read it from stdin)\n"
    "  del KEY                      delete a key (exit 1 if it was absent)\n"
    "  exists KEY                   print 1 or 0 (exit 1 if absent)\n"
    "  ttl KEY                      print the TTL left in ms (-1: none)\n"
    "  invalidate PATTERN           delete keys matching a glob; print count\n"
    "  invalidate --keyspace NAME [FIELD=VALUE ...]\n"
    "                               delete a keyspace's entries; print count\n"
    "  stats [--json]               backend, server, pool, keyspace figures\n"
    "  ping                         print the round-trip time\n"
    "\n"
    "options:\n"
    "  -v, --verbose   log the library's messages to stderr\n"
    "  -h, --help      print this help\n"
    "  --version       print the version\n"
    "\n"
    "Configured by the environment: REDIS_URL or REDIS_HOST/REDIS_PORT/...,\n"
    "UTXOCACHE_BACKEND, UTXOCACHE_KEY_PREFIX, UTXOCACHE_TTL_<KEYSPACE>, ...\n"
    "Exit status: 0 success, 1 not found, 2 error.\n";

/* One command line, parsed. */
typedef struct {
    const char *cmd;
    const char *args[2 + 2 * UC_KEYSPACE_FIELDS_MAX];
    size_t nargs;
    const char *keyspace; /* invalidate --keyspace */
    uint64_t ttl_ms;
    int have_ttl;
    int json;
    int verbose;
} cli_t;

static int usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Prints "utxocache: <message>" and the usage to stderr; returns EXIT_ERR. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("utxocache: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    fputs(usage_text, stderr);
    return EXIT_ERR;
}

/*
 * Writes a printable, bounded rendering of user bytes into buf (cap >= 8):
 * control and non-ASCII bytes as \xNN, cut after QUOTE_MAX bytes with "...".
 */
static void quote(const char *s, size_t len, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i;

    for (i = 0; i < len && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 5 >= cap) {
            break;
        }
        if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    if (i < len && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

/* Prints "utxocache: <cmd> '<subject>': <message>"; returns EXIT_ERR. */
static int fail(const char *cmd, const char *subject, const char *msg)
{
    char q[QUOTE_MAX * 4 + 8];

    if (subject != NULL) {
        quote(subject, strlen(subject), q, sizeof(q));
        fprintf(stderr, "utxocache: %s '%s': %s\n", cmd, q, msg);
    } else {
        fprintf(stderr, "utxocache: %s: %s\n", cmd, msg);
    }
    return EXIT_ERR;
}

/* Parses a decimal unsigned integer in [0, max]; 0 on success, -1 if not. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    for (; *s != '\0'; s++) {
        unsigned d;
        if (*s < '0' || *s > '9') {
            return -1;
        }
        d = (unsigned)(*s - '0');
        if (v > (max - d) / 10u) {
            return -1;
        }
        v = v * 10u + d;
    }
    *out = v;
    return 0;
}

/*
 * Reads all of stdin into a malloc()ed buffer of at most UC_VALUE_MAX bytes.
 * Returns UC_OK, UC_ETOOBIG, UC_ENOMEM or UC_EIO.
 */
static int read_stdin(char **out, size_t *outlen)
{
    size_t cap = 4096;
    size_t len = 0;
    char *buf = malloc(cap);

    if (buf == NULL) {
        return UC_ENOMEM;
    }
    for (;;) {
        size_t n;
        if (len == cap) {
            char *nb;
            if (cap >= UC_VALUE_MAX + (size_t)1) {
                free(buf);
                return UC_ETOOBIG;
            }
            cap = cap * 2 > UC_VALUE_MAX + (size_t)1 ? UC_VALUE_MAX + (size_t)1
                                                     : cap * 2;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                return UC_ENOMEM;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, stdin);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(stdin)) {
        free(buf);
        return UC_EIO;
    }
    if (len > UC_VALUE_MAX) {
        free(buf);
        return UC_ETOOBIG;
    }
    *out = buf;
    *outlen = len;
    return UC_OK;
}

/* Library log lines go to stderr only with -v, so errors stay one line. */
static void log_stderr(void *arg, uc_log_level_t level, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};

    (void)arg;
    fprintf(stderr, "utxocache: %s: %s\n",
            (unsigned)level < 4u ? names[level] : "log", msg);
}

/*
 * Parses argv into cli. Returns 0, or EXIT_ERR after printing the usage.
 * Options may follow the command's arguments ("set k v --ttl 5"); "--" ends
 * options so that a key may start with '-'; "-" alone is an argument.
 */
static int parse_args(int argc, char **argv, cli_t *cli)
{
    int i = 1;
    int opts_done = 0;

    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            cli->verbose = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else {
            break;
        }
    }
    if (i >= argc) {
        return usage_error("missing command");
    }
    cli->cmd = argv[i++];
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && strcmp(a, "--") == 0) {
            opts_done = 1;
        } else if (!opts_done &&
                   (strcmp(a, "--ttl") == 0 || strcmp(a, "--px") == 0)) {
            uint64_t v;
            int secs = strcmp(a, "--ttl") == 0;
            if (i + 1 >= argc ||
                parse_u64(argv[i + 1], secs ? TTL_S_MAX : UINT64_MAX, &v) !=
                    0) {
                return usage_error("%s needs a whole number", a);
            }
            if (cli->have_ttl) {
                return usage_error("give --ttl or --px once");
            }
            cli->ttl_ms = secs ? v * 1000u : v;
            cli->have_ttl = 1;
            i++;
        } else if (!opts_done && strcmp(a, "--keyspace") == 0) {
            if (i + 1 >= argc) {
                return usage_error("--keyspace needs a name");
            }
            cli->keyspace = argv[++i];
        } else if (!opts_done && strcmp(a, "--json") == 0) {
            cli->json = 1;
        } else if (!opts_done &&
                   (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)) {
            cli->verbose = 1;
        } else if (!opts_done && a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else {
            if (cli->nargs >= sizeof(cli->args) / sizeof(cli->args[0])) {
                return usage_error("too many arguments");
            }
            cli->args[cli->nargs++] = a;
        }
    }
    return 0;
}

/* Checks the argument count and which options the command accepts. */
static int check_usage(const cli_t *cli)
{
    const char *c = cli->cmd;
    int one_key = strcmp(c, "get") == 0 || strcmp(c, "del") == 0 ||
                  strcmp(c, "exists") == 0 || strcmp(c, "ttl") == 0;

    if (cli->have_ttl && strcmp(c, "set") != 0) {
        return usage_error("%s takes no --ttl/--px", c);
    }
    if (cli->json && strcmp(c, "stats") != 0) {
        return usage_error("%s takes no --json", c);
    }
    if (cli->keyspace != NULL && strcmp(c, "invalidate") != 0) {
        return usage_error("%s takes no --keyspace", c);
    }
    if (one_key) {
        if (cli->nargs != 1) {
            return usage_error("%s needs exactly one KEY", c);
        }
    } else if (strcmp(c, "set") == 0) {
        if (cli->nargs != 2) {
            return usage_error("set needs KEY and VALUE (or -)");
        }
    } else if (strcmp(c, "invalidate") == 0) {
        if (cli->keyspace == NULL && cli->nargs != 1) {
            return usage_error("invalidate needs one PATTERN or --keyspace");
        }
        if (cli->keyspace != NULL && cli->nargs > UC_KEYSPACE_FIELDS_MAX) {
            return usage_error("too many FIELD=VALUE arguments");
        }
    } else if (strcmp(c, "stats") == 0 || strcmp(c, "ping") == 0) {
        if (cli->nargs != 0) {
            return usage_error("%s takes no arguments", c);
        }
    } else {
        return usage_error("unknown command '%s'", c);
    }
    return 0;
}

static int cmd_get(uc_cache_t *cache, const char *key)
{
    char *val = NULL;
    size_t len = 0;
    int rc = uc_cache_get(cache, key, strlen(key), &val, &len);

    if (rc == UC_MISS) {
        return EXIT_NOTFOUND;
    }
    if (rc != UC_OK) {
        return fail("get", key, uc_strerror(rc));
    }
    /* Raw bytes, no newline added: `utxocache get k > file` round-trips. */
    fwrite(val, 1, len, stdout);
    uc_free(val);
    return EXIT_HIT;
}

static int cmd_set(uc_cache_t *cache, const cli_t *cli)
{
    const char *key = cli->args[0];
    const char *val = cli->args[1];
    char *buf = NULL;
    size_t len = strlen(val);
    int rc;

    if (strcmp(val, "-") == 0) {
        rc = read_stdin(&buf, &len);
        if (rc != UC_OK) {
            return fail("set", key,
                        rc == UC_EIO ? "cannot read stdin" : uc_strerror(rc));
        }
        val = buf;
    }
    rc = uc_cache_set(cache, key, strlen(key), val, len,
                      cli->have_ttl ? cli->ttl_ms : 0);
    free(buf);
    if (rc != UC_OK) {
        return fail("set", key, uc_strerror(rc));
    }
    return EXIT_HIT;
}

static int cmd_del(uc_cache_t *cache, const char *key)
{
    int existed = 0;
    int rc = uc_cache_del(cache, key, strlen(key), &existed);

    if (rc != UC_OK) {
        return fail("del", key, uc_strerror(rc));
    }
    printf("%d\n", existed ? 1 : 0);
    return existed ? EXIT_HIT : EXIT_NOTFOUND;
}

static int cmd_exists(uc_cache_t *cache, const char *key)
{
    int rc = uc_cache_exists(cache, key, strlen(key));

    if (rc == UC_OK || rc == UC_MISS) {
        printf("%d\n", rc == UC_OK ? 1 : 0);
        return rc == UC_OK ? EXIT_HIT : EXIT_NOTFOUND;
    }
    return fail("exists", key, uc_strerror(rc));
}

static int cmd_ttl(uc_cache_t *cache, const char *key)
{
    int64_t ttl = 0;
    int rc = uc_cache_ttl(cache, key, strlen(key), &ttl);

    if (rc == UC_MISS) {
        return EXIT_NOTFOUND;
    }
    if (rc != UC_OK) {
        return fail("ttl", key, uc_strerror(rc));
    }
    printf("%" PRId64 "\n", ttl);
    return EXIT_HIT;
}

/*
 * invalidate --keyspace NAME [FIELD=VALUE ...]: fields not given match any
 * value, so no field at all removes the whole keyspace.
 */
static int cmd_invalidate_keyspace(uc_cache_t *cache, const cli_t *cli)
{
    const char *fields[UC_KEYSPACE_FIELDS_MAX] = {0};
    uc_keyspace_t *ks = uc_cache_keyspace(cache, cli->keyspace);
    size_t nf;
    size_t removed = 0;
    int rc;

    if (ks == NULL) {
        return fail("invalidate", cli->keyspace, "no such keyspace");
    }
    nf = uc_keyspace_nfields(ks);
    if (nf > UC_KEYSPACE_FIELDS_MAX) {
        return fail("invalidate", cli->keyspace, "too many fields");
    }
    for (size_t i = 0; i < cli->nargs; i++) {
        const char *a = cli->args[i];
        const char *eq = strchr(a, '=');
        size_t j;
        if (eq == NULL || eq == a) {
            return usage_error("expected FIELD=VALUE, got '%s'", a);
        }
        for (j = 0; j < nf; j++) {
            const char *name = uc_keyspace_field(ks, j);
            if (strlen(name) == (size_t)(eq - a) &&
                memcmp(name, a, (size_t)(eq - a)) == 0) {
                break;
            }
        }
        if (j == nf) {
            return fail("invalidate", a, "no such field in the keyspace");
        }
        if (fields[j] != NULL) {
            return fail("invalidate", a, "field given twice");
        }
        fields[j] = eq + 1;
    }
    rc = uc_keyspace_invalidate(ks, fields, nf, &removed);
    if (rc != UC_OK) {
        return fail("invalidate", cli->keyspace, uc_strerror(rc));
    }
    printf("%zu\n", removed);
    return EXIT_HIT;
}

static int cmd_invalidate(uc_cache_t *cache, const cli_t *cli)
{
    size_t removed = 0;
    int rc;

    if (cli->keyspace != NULL) {
        return cmd_invalidate_keyspace(cache, cli);
    }
    rc = uc_cache_delete_pattern(cache, cli->args[0], &removed);
    if (rc != UC_OK) {
        return fail("invalidate", cli->args[0], uc_strerror(rc));
    }
    printf("%zu\n", removed);
    return EXIT_HIT;
}

static int cmd_ping(uc_cache_t *cache)
{
    uint64_t rtt = 0;
    /* The pool connects lazily: the first round trip also pays for the
     * connect (and AUTH), so the second one is the one reported. */
    int rc = uc_cache_ping(cache, NULL);

    if (rc == UC_OK) {
        rc = uc_cache_ping(cache, &rtt);
    }
    if (rc != UC_OK) {
        return fail("ping", NULL, uc_strerror(rc));
    }
    printf("pong %" PRIu64 ".%03" PRIu64 " ms\n", rtt / 1000u, rtt % 1000u);
    return EXIT_HIT;
}

/* Writes s as a JSON string (quotes included). */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static const char *breaker_name(uc_breaker_state_t s)
{
    switch (s) {
    case UC_BREAKER_CLOSED:
        return "closed";
    case UC_BREAKER_OPEN:
        return "open";
    case UC_BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "unknown";
}

/* A name and a number: one row of the text report or one JSON member. */
typedef struct {
    const char *name;
    uint64_t value;
} stat_row_t;

static void print_rows(const char *section, const stat_row_t *rows, size_t n,
                       int json)
{
    if (json) {
        printf(",\n  \"%s\": {", section);
        for (size_t i = 0; i < n; i++) {
            printf("%s\n    \"%s\": %" PRIu64, i == 0 ? "" : ",", rows[i].name,
                   rows[i].value);
        }
        printf("\n  }");
        return;
    }
    printf("\n%s\n", section);
    for (size_t i = 0; i < n; i++) {
        printf("  %-22s %11" PRIu64 "\n", rows[i].name, rows[i].value);
    }
}

/*
 * Per keyspace: the keys it has in the backend and its TTL after
 * UTXOCACHE_TTL_* overrides, so an operator can check both at once.
 */
static void print_keyspaces(uc_cache_t *cache, const uc_keyspace_def_t *defs,
                            const uint64_t *counts, size_t n, int json)
{
    if (json) {
        printf(",\n  \"keyspaces\": {");
    } else {
        printf("\n%-24s %11s %8s\n", "keyspaces", "keys", "ttl s");
    }
    for (size_t i = 0; i < n; i++) {
        uc_keyspace_t *ks = uc_cache_keyspace(cache, defs[i].name);
        uint32_t ttl = ks != NULL ? uc_keyspace_ttl(ks) : 0;
        if (json) {
            printf("%s\n    \"%s\": {\"keys\": %" PRIu64 ", \"ttl_s\": %" PRIu32
                   "}",
                   i == 0 ? "" : ",", defs[i].name, counts[i], ttl);
        } else {
            printf("  %-22s %11" PRIu64 " %8" PRIu32 "\n", defs[i].name,
                   counts[i], ttl);
        }
    }
    if (json) {
        printf("\n  }");
    }
}

/*
 * stats: what the backend and the server report. The library's own
 * hit/miss counters are per process and would always be zero in a fresh
 * CLI run, so they are not shown; the server's counters are.
 */
static int cmd_stats(uc_cache_t *cache, const uc_config_t *cfg, int json)
{
    const uc_keyspace_def_t *defs;
    uc_server_info_t info;
    uc_pool_stats_t ps;
    uint64_t counts[16];
    size_t nks = 0;
    char where[UC_HOST_MAX + UC_USER_MAX + 64];
    int rc;

    memset(&info, 0, sizeof(info));
    rc = uc_cache_server_info(cache, &info);
    if (rc != UC_OK) {
        return fail("stats", NULL, uc_strerror(rc));
    }
    defs = uc_utxoiq_keyspaces(&nks);
    if (nks > sizeof(counts) / sizeof(counts[0])) {
        nks = sizeof(counts) / sizeof(counts[0]);
    }
    for (size_t i = 0; i < nks; i++) {
        uc_keyspace_t *ks = uc_cache_keyspace(cache, defs[i].name);
        rc = ks != NULL ? uc_keyspace_count(ks, &counts[i]) : UC_EINVAL;
        if (rc != UC_OK) {
            return fail("stats", defs[i].name, uc_strerror(rc));
        }
    }
    /* Pool figures after the calls above, so they show this run's use. */
    uc_cache_pool_stats(cache, &ps);
    uc_config_describe(cfg, where, sizeof(where));
    info.version[sizeof(info.version) - 1] = '\0';

    const stat_row_t server[] = {
        {"used_memory", info.used_memory},
        {"max_memory", info.max_memory},
        {"keys", info.keys},
        {"evicted_keys", info.evicted_keys},
        {"expired_keys", info.expired_keys},
        {"keyspace_hits", info.server_hits},
        {"keyspace_misses", info.server_misses},
    };
    const stat_row_t pool[] = {
        {"max", ps.max},
        {"in_use", ps.in_use},
        {"idle", ps.idle},
        {"connects", ps.connects},
        {"connect_failures", ps.connect_failures},
        {"discarded", ps.discarded},
        {"idle_closed", ps.idle_closed},
        {"waits", ps.waits},
        {"acquire_timeouts", ps.acquire_timeouts},
        {"breaker_opens", ps.breaker_opens},
        {"breaker_rejects", ps.breaker_rejects},
    };

    if (json) {
        printf("{\n  \"backend\": ");
        json_str(uc_cache_backend_name(cache));
        printf(",\n  \"target\": ");
        json_str(where);
        printf(",\n  \"version\": ");
        json_str(info.version);
        printf(",\n  \"breaker\": ");
        json_str(breaker_name(ps.breaker));
    } else {
        printf("%-24s %s\n", "backend", uc_cache_backend_name(cache));
        printf("%-24s %s\n", "target", where);
        printf("%-24s %s\n", "version", info.version);
        printf("%-24s %s\n", "breaker", breaker_name(ps.breaker));
    }
    print_rows("server", server, sizeof(server) / sizeof(server[0]), json);
    print_rows("pool", pool, sizeof(pool) / sizeof(pool[0]), json);
    print_keyspaces(cache, defs, counts, nks, json);
    if (json) {
        printf("\n}\n");
    }
    return EXIT_HIT;
}

static int run(const cli_t *cli, uc_cache_t *cache, const uc_config_t *cfg)
{
    const char *c = cli->cmd;

    if (strcmp(c, "get") == 0) {
        return cmd_get(cache, cli->args[0]);
    }
    if (strcmp(c, "set") == 0) {
        return cmd_set(cache, cli);
    }
    if (strcmp(c, "del") == 0) {
        return cmd_del(cache, cli->args[0]);
    }
    if (strcmp(c, "exists") == 0) {
        return cmd_exists(cache, cli->args[0]);
    }
    if (strcmp(c, "ttl") == 0) {
        return cmd_ttl(cache, cli->args[0]);
    }
    if (strcmp(c, "invalidate") == 0) {
        return cmd_invalidate(cache, cli);
    }
    if (strcmp(c, "stats") == 0) {
        return cmd_stats(cache, cfg, cli->json);
    }
    return cmd_ping(cache);
}

/* Builds the configuration from the environment and opens the cache. */
static int open_cache(const cli_t *cli, uc_config_t *cfg, uc_cache_t **out)
{
    const char *names[16];
    const uc_keyspace_def_t *defs;
    size_t nks = 0;
    char err[256];
    uc_cache_t *cache = NULL;
    int rc;

    defs = uc_utxoiq_keyspaces(&nks);
    if (nks > sizeof(names) / sizeof(names[0])) {
        return fail("config", NULL, "too many built-in keyspaces");
    }
    for (size_t i = 0; i < nks; i++) {
        names[i] = defs[i].name;
    }
    uc_config_init(cfg);
    err[0] = '\0';
    rc = uc_config_from_env(cfg, names, nks, err, sizeof(err));
    if (rc != UC_OK) {
        return fail("config", NULL, err[0] != '\0' ? err : uc_strerror(rc));
    }
    if (cli->verbose) {
        cfg->log_fn = log_stderr;
        cfg->log_level = UC_LOG_DEBUG;
    }
    /* The service drops and adopts a changed dataset; an operator's
     * command only looks. */
    cfg->observer = 1;
    /* One short-lived process needs at most one connection. */
    if (cfg->max_connections == 0) {
        cfg->max_connections = 1;
    }
    err[0] = '\0';
    rc = uc_cache_create(cfg, &cache, err, sizeof(err));
    if (rc != UC_OK) {
        return fail("config", NULL, err[0] != '\0' ? err : uc_strerror(rc));
    }
    err[0] = '\0';
    rc = uc_cache_add_keyspaces(cache, defs, nks, err, sizeof(err));
    if (rc != UC_OK) {
        uc_cache_destroy(cache);
        return fail("config", NULL, err[0] != '\0' ? err : uc_strerror(rc));
    }
    *out = cache;
    return 0;
}

int main(int argc, char **argv)
{
    cli_t cli;
    uc_config_t cfg;
    uc_cache_t *cache = NULL;
    int status;

    /* A closed stdout pipe must give an error status, not a silent death. */
    signal(SIGPIPE, SIG_IGN);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return EXIT_HIT;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("utxocache %s (libutxocache %s)\n", UC_VERSION_STRING,
                   uc_version());
            return EXIT_HIT;
        }
    }
    memset(&cli, 0, sizeof(cli));
    status = parse_args(argc, argv, &cli);
    if (status == 0) {
        status = check_usage(&cli);
    }
    if (status != 0) {
        return status;
    }
    status = open_cache(&cli, &cfg, &cache);
    if (status != 0) {
        return status;
    }
    status = run(&cli, cache, &cfg);
    uc_cache_destroy(cache);
    /* Keep the password out of the process image as soon as it is unused. */
    memset(cfg.password, 0, sizeof(cfg.password));
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "utxocache: write 'stdout': %s\n", strerror(errno));
        return EXIT_ERR;
    }
    return status;
}
