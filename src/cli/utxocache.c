/* SPDX-License-Identifier: MIT */
/*
 * utxocache: the operator's command line over libutxocache. It reads the
 * same environment as the library (REDIS_URL, UTXOCACHE_*), declares the
 * utxoIQ keyspaces so that UTXOCACHE_TTL_* overrides apply, runs one command
 * (get, set, del, exists, ttl, pttl, keys, invalidate, stats, ping) and
 * exits with 0 on success, 1 when the answer is "not there", or 2 on error
 * with one line on stderr. Options follow redis-cli where they fit (-u URL,
 * -h HOST, -p PORT, -n DB) and override the environment; a password is never
 * taken as an option (-a is refused), only from REDIS_PASSWORD, the URL or
 * --password-file. Everything goes through the library's public API but
 * `keys`: the library can count keys by pattern but not list them, so that
 * one command runs its own SCAN over hiredis with the same configuration.
 */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
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
    "usage: utxocache [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  get KEY [--json]             print the value (exit 1 on a miss)\n"
    "  set KEY VALUE|- [--ttl SECONDS|--px MS]\n"
    "                               store a value ('-': read it from stdin)\n"
    "  del KEY                      delete a key (exit 1 if it was absent)\n"
    "  exists KEY                   print 1 or 0 (exit 1 if absent)\n"
    "  ttl KEY [--json]             print the TTL left in seconds (-1: none)\n"
    "  pttl KEY [--json]            the same in milliseconds\n"
    "  keys PATTERN [--json]        list the keys matching a glob (SCAN)\n"
    "  invalidate PATTERN           delete keys matching a glob; print count\n"
    "  invalidate --keyspace NAME [FIELD=VALUE ...]\n"
    "                               delete a keyspace's entries; print count\n"
    "  stats [--json]               backend, server, pool, nodes, keyspaces\n"
    "  ping                         print the round-trip time\n"
    "\n"
    "options (before or after the command; a value after a space or '='):\n"
    "  -u, --url URL          Redis URL, instead of REDIS_URL\n"
    "  -h HOST, -p PORT, -n DB\n"
    "                         instead of REDIS_HOST, REDIS_PORT, REDIS_DB\n"
    "  --user NAME            ACL user, instead of REDIS_USERNAME\n"
    "  --password-file PATH   read the password from PATH ('-': stdin)\n"
    "  -v, --verbose          log the library's messages to stderr\n"
    "  --help                 print this help (so does -h alone)\n"
    "  --version              print the version\n"
    "\n"
    "No password option: a command line is visible to every local user.\n"
    "Use REDIS_PASSWORD, a password in REDIS_URL, or --password-file.\n"
    "Also configured by the environment: UTXOCACHE_BACKEND,\n"
    "UTXOCACHE_KEY_PREFIX, UTXOCACHE_TTL_<KEYSPACE>, ...\n"
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
    /* The Redis target from the command line; NULL: the environment's. */
    const char *url; /* url_buf: argv's copy is scrubbed of its password */
    char url_buf[UC_HOST_MAX + UC_USER_MAX + UC_PASSWORD_MAX + 64];
    const char *host;
    const char *port;
    const char *db;
    const char *user;
    const char *password_file;
} cli_t;

static int usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Prints "utxocache: <message>" and a pointer to --help on stderr (one
 * line each, as git does); returns EXIT_ERR. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("utxocache: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\ntry 'utxocache --help'\n", stderr);
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
 * Masks the password of a redis:// URL given on the command line, in place
 * (ps and /proc/PID/cmdline read the process's memory, so they show the
 * stars from then on). Returns 1 when there was one.
 */
static int scrub_url_password(char *url)
{
    char *auth = strstr(url, "://");
    char *end, *at = NULL, *colon;

    if (auth == NULL) {
        return 0;
    }
    auth += 3;
    end = auth + strcspn(auth, "/?#");
    for (char *q = auth; q < end; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    if (at == NULL) {
        return 0;
    }
    colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL || colon + 1 == at) {
        return 0;
    }
    memset(colon + 1, '*', (size_t)(at - colon - 1));
    return 1;
}

enum {
    OPT_TTL = 256,
    OPT_PX,
    OPT_KEYSPACE,
    OPT_JSON,
    OPT_USER,
    OPT_PASSWORD_FILE,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"ttl", required_argument, NULL, OPT_TTL},
    {"px", required_argument, NULL, OPT_PX},
    {"keyspace", required_argument, NULL, OPT_KEYSPACE},
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, 'v'},
    {"url", required_argument, NULL, 'u'},
    {"user", required_argument, NULL, OPT_USER},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/*
 * Parses argv into cli with getopt_long: options may come before or after
 * the command and its arguments ("set k v --ttl 5"), as --opt VALUE or
 * --opt=VALUE; "--" ends options so that a key may start with '-'; "-"
 * alone is an argument. --help and --version (and -h with no host after
 * it) print and exit 0. Returns 0, or EXIT_ERR after one line naming the
 * problem.
 */
static int parse_args(int argc, char **argv, cli_t *cli)
{
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":vu:h:p:n:a:", long_opts, NULL)) !=
           -1) {
        switch (c) {
        case OPT_TTL:
        case OPT_PX: {
            uint64_t v;
            int secs = c == OPT_TTL;
            if (parse_u64(optarg, secs ? TTL_S_MAX : UINT64_MAX, &v) != 0) {
                return usage_error("%s needs a whole number",
                                   secs ? "--ttl" : "--px");
            }
            if (cli->have_ttl) {
                return usage_error("give --ttl or --px once");
            }
            cli->ttl_ms = secs ? v * 1000u : v;
            cli->have_ttl = 1;
            break;
        }
        case OPT_KEYSPACE:
            cli->keyspace = optarg;
            break;
        case OPT_JSON:
            cli->json = 1;
            break;
        case 'v':
            cli->verbose = 1;
            break;
        case 'u':
            if (strlen(optarg) >= sizeof(cli->url_buf)) {
                return usage_error("-u: URL too long");
            }
            snprintf(cli->url_buf, sizeof(cli->url_buf), "%s", optarg);
            cli->url = cli->url_buf;
            if (scrub_url_password(optarg)) {
                fputs("utxocache: warning: a password in -u is visible to "
                      "other local users; use REDIS_PASSWORD or "
                      "--password-file\n",
                      stderr);
            }
            break;
        case 'h':
            cli->host = optarg;
            break;
        case 'p':
        case 'n': {
            uint64_t v;
            if (parse_u64(optarg, c == 'p' ? 65535 : 1000000, &v) != 0 ||
                (c == 'p' && v == 0)) {
                return usage_error("-%c: '%.20s' is not a %s", c, optarg,
                                   c == 'p' ? "port" : "database number");
            }
            if (c == 'p') {
                cli->port = optarg;
            } else {
                cli->db = optarg;
            }
            break;
        }
        case OPT_USER:
            cli->user = optarg;
            break;
        case OPT_PASSWORD_FILE:
            cli->password_file = optarg;
            break;
        case 'a':
            memset(optarg, '*', strlen(optarg));
            return usage_error("-a: a password on the command line is "
                               "visible to every local user; use "
                               "REDIS_PASSWORD or --password-file");
        case OPT_HELP:
            fputs(usage_text, stdout);
            exit(EXIT_HIT);
        case OPT_VERSION:
            printf("utxocache %s (libutxocache %s)\n", UC_VERSION_STRING,
                   uc_version());
            exit(EXIT_HIT);
        case ':':
            if (optopt == 'h') {
                /* -h alone: the help, as before -h took a host. */
                fputs(usage_text, stdout);
                exit(EXIT_HIT);
            }
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            if (optopt != 0) {
                return usage_error("unknown option '-%c'", optopt);
            }
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        return usage_error("missing command");
    }
    cli->cmd = argv[optind++];
    for (; optind < argc; optind++) {
        if (cli->nargs >= sizeof(cli->args) / sizeof(cli->args[0])) {
            return usage_error("too many arguments");
        }
        cli->args[cli->nargs++] = argv[optind];
    }
    if (cli->url != NULL &&
        (cli->host != NULL || cli->port != NULL || cli->db != NULL)) {
        return usage_error("give -u or -h/-p/-n, not both");
    }
    return 0;
}

/* Checks the argument count and which options the command accepts. */
static int check_usage(const cli_t *cli)
{
    const char *c = cli->cmd;
    int one_key = strcmp(c, "get") == 0 || strcmp(c, "del") == 0 ||
                  strcmp(c, "exists") == 0 || strcmp(c, "ttl") == 0 ||
                  strcmp(c, "pttl") == 0 || strcmp(c, "keys") == 0;
    int json_ok = strcmp(c, "stats") == 0 || strcmp(c, "get") == 0 ||
                  strcmp(c, "ttl") == 0 || strcmp(c, "pttl") == 0 ||
                  strcmp(c, "keys") == 0;

    if (cli->have_ttl && strcmp(c, "set") != 0) {
        return usage_error("%s takes no --ttl/--px", c);
    }
    if (cli->json && !json_ok) {
        return usage_error("%s takes no --json", c);
    }
    if (cli->keyspace != NULL && strcmp(c, "invalidate") != 0) {
        return usage_error("%s takes no --keyspace", c);
    }
    if (one_key) {
        if (cli->nargs != 1) {
            return usage_error("%s needs exactly one %s", c,
                               strcmp(c, "keys") == 0 ? "PATTERN" : "KEY");
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

/* 1 when p[0..len) is valid UTF-8 (no overlongs, no surrogates). */
static int utf8_valid(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        if (i + n >= len) {
            return 0;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            c = (c << 6) | (p[i + k] & 0x3fu);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

/*
 * Writes one JSON member for user bytes: "name": "text" when they are
 * UTF-8, else "name_base64": "..." so that no byte is lost or invented.
 */
static void json_bytes(const char *name, const char *p, size_t len)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *u = (const unsigned char *)p;

    if (utf8_valid(u, len)) {
        printf("\"%s\": \"", name);
        for (size_t i = 0; i < len; i++) {
            if (u[i] == '"' || u[i] == '\\') {
                printf("\\%c", u[i]);
            } else if (u[i] < 0x20 || u[i] == 0x7f) {
                printf("\\u%04x", u[i]);
            } else {
                putchar(u[i]);
            }
        }
        putchar('"');
        return;
    }
    printf("\"%s_base64\": \"", name);
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)u[i] << 16;
        v |= i + 1 < len ? (unsigned)u[i + 1] << 8 : 0u;
        v |= i + 2 < len ? (unsigned)u[i + 2] : 0u;
        putchar(b64[(v >> 18) & 63]);
        putchar(b64[(v >> 12) & 63]);
        putchar(i + 1 < len ? b64[(v >> 6) & 63] : '=');
        putchar(i + 2 < len ? b64[v & 63] : '=');
    }
    putchar('"');
}

static int cmd_get(uc_cache_t *cache, const char *key, int json)
{
    char *val = NULL;
    size_t len = 0;
    /* An entry of a keyspace prints its value, not its envelope. */
    int rc = uc_cache_get_entry(cache, key, strlen(key), &val, &len, NULL);

    if (rc != UC_OK && rc != UC_MISS) {
        return fail("get", key, uc_strerror(rc));
    }
    if (json) {
        /* {"key": ..., "value": ...}; a miss has "value": null. */
        putchar('{');
        json_bytes("key", key, strlen(key));
        if (rc == UC_OK) {
            fputs(", ", stdout);
            json_bytes("value", val, len);
            fputs("}\n", stdout);
        } else {
            fputs(", \"value\": null}\n", stdout);
        }
    } else if (rc == UC_OK) {
        /* Raw bytes, no newline added: `utxocache get k > file`
         * round-trips. */
        fwrite(val, 1, len, stdout);
    }
    uc_free(val);
    return rc == UC_OK ? EXIT_HIT : EXIT_NOTFOUND;
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

/*
 * ttl (seconds) and pttl (ms), as Redis' TTL and PTTL: -1 for a key without
 * expiry, seconds rounded to the nearest (Redis adds 500 ms before
 * dividing). A missing key prints nothing (null with --json) and exits 1.
 */
static int cmd_ttl(uc_cache_t *cache, const char *cmd, const char *key,
                   int json)
{
    int64_t ttl = 0;
    int ms = strcmp(cmd, "pttl") == 0;
    int rc = uc_cache_ttl(cache, key, strlen(key), &ttl);

    if (rc != UC_OK && rc != UC_MISS) {
        return fail(cmd, key, uc_strerror(rc));
    }
    if (rc == UC_OK && !ms && ttl >= 0) {
        ttl = (ttl + 500) / 1000;
    }
    if (json) {
        putchar('{');
        json_bytes("key", key, strlen(key));
        if (rc == UC_OK) {
            printf(", \"%s\": %" PRId64 "}\n", ms ? "ttl_ms" : "ttl_s", ttl);
        } else {
            printf(", \"%s\": null}\n", ms ? "ttl_ms" : "ttl_s");
        }
    } else if (rc == UC_OK) {
        printf("%" PRId64 "\n", ttl);
    }
    return rc == UC_OK ? EXIT_HIT : EXIT_NOTFOUND;
}

/* Prints a key on one line: bytes that could break the line or the
 * terminal (controls, DEL, backslash) as \xNN, so every line is one key. */
static void print_key(const char *k, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c < 0x20 || c == 0x7f || c == '\\') {
            printf("\\x%c%c", hex[c >> 4], hex[c & 15]);
        } else {
            putchar(c);
        }
    }
    putchar('\n');
}

/* hiredis' message in our style: lower case first. */
static const char *redis_err(const char *msg, char *buf, size_t cap)
{
    if (msg != buf) {
        snprintf(buf, cap, "%s", msg);
    }
    if (buf[0] >= 'A' && buf[0] <= 'Z') {
        buf[0] = (char)(buf[0] - 'A' + 'a');
    }
    return buf;
}

static struct timeval ms_tv(int ms, int def)
{
    struct timeval tv;
    if (ms <= 0) {
        ms = def;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

/* One command on c whose reply must not be an error; 0, or -1 with the
 * reason in why. */
static int redis_ok(redisContext *c, int argc, const char **argv, char *why,
                    size_t cap)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int rc = 0;
    if (r == NULL) {
        redis_err(c->errstr, why, cap);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, cap, "%s",
                 strncmp(r->str, "WRONGPASS", 9) == 0 ||
                         strncmp(r->str, "NOAUTH", 6) == 0
                     ? "authentication failed"
                     : r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* What one `keys` walk shares between the servers it visits. */
typedef struct {
    const uc_config_t *cfg;
    const char *pattern;
    char glob[UC_PREFIX_MAX + UC_KEY_MAX + 1];
    char count[16];
    size_t plen;
    int json;
    int opened; /* the JSON array's '[' is out */
    size_t n;   /* keys printed */
} keys_walk_t;

/*
 * One server's part of `keys`: connects to host:port with the
 * configuration's credentials (selecting its database when select_db),
 * SCANs it and prints what matches. subject names the server in a message
 * (NULL: none, the standalone form). Returns 0, or EXIT_ERR after one line.
 */
static int scan_server(keys_walk_t *w, const char *host, int port,
                       int select_db, const char *subject)
{
    const uc_config_t *cfg = w->cfg;
    char why[256];
    char cursor[32] = "0";
    char db[16];
    redisContext *c;

    c = redisConnectWithTimeout(host, port,
                                ms_tv(cfg->connect_timeout_ms, 250));
    if (c == NULL || c->err) {
        fail("keys", subject,
             c != NULL ? redis_err(c->errstr, why, sizeof(why))
                       : "out of memory");
        redisFree(c);
        return EXIT_ERR;
    }
    redisSetTimeout(c, ms_tv(cfg->command_timeout_ms, 250));
    if (cfg->password[0] != '\0') {
        const char *a3[] = {"AUTH", cfg->username, cfg->password};
        const char *a2[] = {"AUTH", cfg->password};
        int rc = cfg->username[0] != '\0'
                     ? redis_ok(c, 3, a3, why, sizeof(why))
                     : redis_ok(c, 2, a2, why, sizeof(why));
        if (rc != 0) {
            redisFree(c);
            return fail("keys", subject, why);
        }
    }
    if (select_db && cfg->db > 0) {
        const char *sel[] = {"SELECT", db};
        snprintf(db, sizeof(db), "%d", cfg->db);
        if (redis_ok(c, 2, sel, why, sizeof(why)) != 0) {
            redisFree(c);
            return fail("keys", subject, why);
        }
    }
    if (w->json && !w->opened) {
        fputs("[", stdout);
        w->opened = 1;
    }
    do {
        const char *argv[] = {"SCAN",  cursor,  "MATCH",
                              w->glob, "COUNT", w->count};
        redisReply *r = redisCommandArgv(c, 6, argv, NULL);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(why, sizeof(why), "%s",
                     r == NULL                      ? c->errstr
                     : r->type == REDIS_REPLY_ERROR ? r->str
                                                    : "unexpected reply");
            freeReplyObject(r);
            redisFree(c);
            return fail("keys", subject != NULL ? subject : w->pattern,
                        redis_err(why, why, sizeof(why)));
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len < w->plen) {
                continue;
            }
            if (w->json) {
                printf("%s\n  {", w->n == 0 ? "" : ",");
                json_bytes("key", k->str + w->plen, k->len - w->plen);
                putchar('}');
            } else {
                print_key(k->str + w->plen, k->len - w->plen);
            }
            w->n++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
    return 0;
}

/*
 * Splits a node's "host:port" (an IPv6 host in brackets or not) into host
 * and port; 0, or -1 when it is not of that shape.
 */
static int split_addr(const char *addr, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t hlen;
    uint64_t p;

    if (colon == NULL || parse_u64(colon + 1, 65535, &p) != 0 || p == 0) {
        return -1;
    }
    hlen = (size_t)(colon - addr);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= cap) {
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

/*
 * The primaries of a Redis Cluster, as the library routes to them: *out is
 * a malloc()ed array of *n nodes (primaries first). Returns 1 in cluster
 * mode (the mode is found by a first PING), 0 otherwise or when out of
 * memory (then the configured server alone is walked).
 */
static int cluster_nodes(uc_cache_t *cache, uc_redis_node_t **out, size_t *n)
{
    uc_redis_topology_t topo;
    uc_redis_node_t *nodes;
    size_t k;

    (void)uc_cache_ping(cache, NULL);
    nodes = calloc(UC_REDIS_NODES_MAX, sizeof(*nodes));
    if (nodes == NULL) {
        return 0;
    }
    k = uc_cache_redis_nodes(cache, &topo, nodes, UC_REDIS_NODES_MAX);
    if (topo.mode != UC_REDIS_CLUSTER) {
        free(nodes);
        return 0;
    }
    *out = nodes;
    *n = k < UC_REDIS_NODES_MAX ? k : UC_REDIS_NODES_MAX;
    return 1;
}

/*
 * keys PATTERN: every key below the prefix matching the glob, by SCAN
 * (never KEYS, which blocks the server), printed without the prefix, one a
 * line, in the server's order. The library has no listing call (it counts
 * by pattern, uc_cache_count_pattern), so this command connects on its own
 * with the configuration the library read: host, port, ACL user, password,
 * database, timeouts, prefix and SCAN batch. On a Redis Cluster it walks
 * every primary that serves slots, one after the other (a cluster has
 * database 0 only). SCAN may return a key twice when the table is resized
 * during the walk, as redis-cli --scan does.
 */
static int cmd_keys(uc_cache_t *cache, const uc_config_t *cfg,
                    const char *pattern, int json)
{
    keys_walk_t w;
    uc_redis_node_t *nodes = NULL;
    size_t nn = 0;
    int rc = 0;

    if (strcmp(uc_cache_backend_name(cache), "redis") != 0) {
        return fail("keys", NULL,
                    "needs Redis: the memory backend lives in one process "
                    "only; set REDIS_URL or -u");
    }
    if (strlen(pattern) > UC_KEY_MAX) {
        return fail("keys", pattern, "pattern too long");
    }
    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    w.pattern = pattern;
    w.json = json;
    w.plen = strlen(cfg->key_prefix);
    snprintf(w.glob, sizeof(w.glob), "%s%s", cfg->key_prefix, pattern);
    snprintf(w.count, sizeof(w.count), "%d",
             cfg->scan_batch > 0 ? cfg->scan_batch : 500);
    if (cluster_nodes(cache, &nodes, &nn)) {
        for (size_t i = 0; i < nn && rc == 0; i++) {
            char host[UC_HOST_MAX + 1];
            int port = 0;

            /* A failed primary stays in the map, without slots. */
            if (nodes[i].role != UC_NODE_PRIMARY || nodes[i].slots == 0) {
                continue;
            }
            if (split_addr(nodes[i].addr, host, sizeof(host), &port) != 0) {
                rc = fail("keys", nodes[i].addr, "not host:port");
                break;
            }
            rc = scan_server(&w, host, port, 0, nodes[i].addr);
        }
        free(nodes);
    } else {
        rc = scan_server(&w, cfg->host, cfg->port > 0 ? cfg->port : 6379, 1,
                         NULL);
    }
    if (w.opened) {
        fputs(w.n > 0 ? "\n]\n" : "]\n", stdout);
    }
    return rc == 0 ? EXIT_HIT : EXIT_ERR;
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

static const char *mode_name(const uc_cache_t *cache, uc_redis_mode_t m)
{
    if (strcmp(uc_cache_backend_name(cache), "redis") != 0) {
        return "none";
    }
    switch (m) {
    case UC_REDIS_STANDALONE:
        return "standalone";
    case UC_REDIS_CLUSTER:
        return "cluster";
    case UC_REDIS_UNKNOWN:
        break;
    }
    return "unknown";
}

static const char *role_name(uc_node_role_t r)
{
    switch (r) {
    case UC_NODE_PRIMARY:
        return "primary";
    case UC_NODE_REPLICA:
        return "replica";
    case UC_NODE_UNKNOWN:
        break;
    }
    return "unknown";
}

/*
 * The Redis servers behind the cache, one row each (primaries first): role,
 * hash slots, whether its dataset is trusted, this run's commands, broken
 * calls and redirects to it, and its breaker.
 */
static void print_nodes(const uc_redis_node_t *nodes, size_t n, int json)
{
    if (json) {
        printf(",\n  \"nodes\": [");
    } else if (n > 0) {
        printf("\n%-24s %-8s %5s %-7s %9s %8s %9s %s\n", "nodes", "role",
               "slots", "trusted", "commands", "failures", "moved/ask",
               "breaker");
    }
    for (size_t i = 0; i < n; i++) {
        const uc_redis_node_t *o = &nodes[i];
        if (json) {
            printf("%s\n    {\"addr\": ", i == 0 ? "" : ",");
            json_str(o->addr);
            printf(", \"id\": ");
            if (o->id[0] != '\0') {
                json_str(o->id);
            } else {
                fputs("null", stdout); /* standalone: no cluster id */
            }
            printf(", \"role\": \"%s\", \"failed\": %s, \"slots\": %u, "
                   "\"trusted\": %s, "
                   "\"commands\": %" PRIu64 ", \"failures\": %" PRIu64
                   ", \"moved\": %" PRIu64 ", \"ask\": %" PRIu64
                   ", \"tryagain\": %" PRIu64 ", \"distrusts\": %" PRIu64
                   ", \"breaker\": \"%s\", \"connects\": %" PRIu64
                   ", \"connect_failures\": %" PRIu64 "}",
                   role_name(o->role), o->failed ? "true" : "false", o->slots,
                   o->trusted ? "true" : "false", o->commands, o->failures,
                   o->moved, o->ask, o->tryagain, o->distrusts,
                   breaker_name(o->pool.breaker), o->pool.connects,
                   o->pool.connect_failures);
        } else {
            char redirects[48];
            snprintf(redirects, sizeof(redirects), "%" PRIu64 "/%" PRIu64,
                     o->moved, o->ask);
            printf("  %-22s %-8s %5u %-7s %9" PRIu64 " %8" PRIu64 " %9s %s\n",
                   o->addr, o->failed ? "failed" : role_name(o->role), o->slots,
                   o->trusted ? "yes" : "no", o->commands, o->failures,
                   redirects, breaker_name(o->pool.breaker));
        }
    }
    if (json) {
        fputs(n > 0 ? "\n  ]" : "]", stdout);
    }
}

/*
 * stats: what the backend and the server report. The library's own
 * hit/miss counters are per process and would always be zero in a fresh
 * CLI run, so they are not shown; the server's counters are. The node
 * table's figures are this run's, like the pool's.
 */
static int cmd_stats(uc_cache_t *cache, const uc_config_t *cfg, int json)
{
    const uc_keyspace_def_t *defs;
    uc_server_info_t info;
    uc_pool_stats_t ps;
    uc_redis_topology_t topo;
    uc_redis_node_t *nodes;
    uint64_t counts[16];
    size_t nks = 0;
    size_t nn;
    char where[UC_HOST_MAX + UC_USER_MAX + 64];
    int rc;

    memset(&info, 0, sizeof(info));
    rc = uc_cache_server_info(cache, &info);
    if (rc != UC_OK) {
        return fail("stats", NULL, uc_strerror(rc));
    }
    defs = uq_utxoiq_keyspaces(&nks);
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
    /* Pool and node figures after the calls above, so they show this
     * run's use. */
    uc_cache_pool_stats(cache, &ps);
    nodes = calloc(UC_REDIS_NODES_MAX, sizeof(*nodes));
    if (nodes == NULL) {
        return fail("stats", NULL, uc_strerror(UC_ENOMEM));
    }
    nn = uc_cache_redis_nodes(cache, &topo, nodes, UC_REDIS_NODES_MAX);
    if (nn > UC_REDIS_NODES_MAX) {
        nn = UC_REDIS_NODES_MAX;
    }
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
        {"pipelined_batches", ps.batches},
        {"pipelined_calls", ps.batched},
    };
    const stat_row_t topology[] = {
        {"refreshes", topo.refreshes},
        {"refresh_failures", topo.refresh_failures},
        {"failovers", topo.failovers},
        {"slot_moves", topo.slot_moves},
        {"unrouted", topo.unrouted},
    };
    const char *mode = mode_name(cache, topo.mode);

    if (json) {
        printf("{\n  \"backend\": ");
        json_str(uc_cache_backend_name(cache));
        printf(",\n  \"target\": ");
        json_str(where);
        printf(",\n  \"version\": ");
        json_str(info.version);
        printf(",\n  \"breaker\": ");
        json_str(breaker_name(ps.breaker));
        printf(",\n  \"mode\": \"%s\"", mode);
    } else {
        printf("%-24s %s\n", "backend", uc_cache_backend_name(cache));
        printf("%-24s %s\n", "target", where);
        printf("%-24s %s\n", "version", info.version);
        printf("%-24s %s\n", "breaker", breaker_name(ps.breaker));
        printf("%-24s %s\n", "mode", mode);
    }
    print_rows("server", server, sizeof(server) / sizeof(server[0]), json);
    print_rows("pool", pool, sizeof(pool) / sizeof(pool[0]), json);
    /* Slot maps and failovers only mean something on a cluster; the JSON
     * form always has them, so that its shape does not depend on it. */
    if (json || topo.mode == UC_REDIS_CLUSTER) {
        print_rows("topology", topology, sizeof(topology) / sizeof(topology[0]),
                   json);
    }
    print_nodes(nodes, nn, json);
    free(nodes);
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
        return cmd_get(cache, cli->args[0], cli->json);
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
    if (strcmp(c, "ttl") == 0 || strcmp(c, "pttl") == 0) {
        return cmd_ttl(cache, c, cli->args[0], cli->json);
    }
    if (strcmp(c, "keys") == 0) {
        return cmd_keys(cache, cfg, cli->args[0], cli->json);
    }
    if (strcmp(c, "invalidate") == 0) {
        return cmd_invalidate(cache, cli);
    }
    if (strcmp(c, "stats") == 0) {
        return cmd_stats(cache, cfg, cli->json);
    }
    return cmd_ping(cache);
}

/*
 * The environment as the library reads it, with the command line's target
 * on top: -u replaces REDIS_URL; -h, -p or -n hide REDIS_URL and replace
 * REDIS_HOST, REDIS_PORT, REDIS_DB (the host defaulting to 127.0.0.1, as
 * redis-cli's does); --user replaces REDIS_USERNAME.
 */
static const char *cli_lookup(void *arg, const char *name)
{
    const cli_t *cli = arg;
    int target = cli->host != NULL || cli->port != NULL || cli->db != NULL;
    const char *env;

    if (strcmp(name, "REDIS_URL") == 0) {
        return cli->url != NULL ? cli->url : target ? NULL : getenv(name);
    }
    if (strcmp(name, "REDIS_HOST") == 0 && target) {
        env = getenv(name);
        return cli->host != NULL               ? cli->host
               : env != NULL && env[0] != '\0' ? env
                                               : "127.0.0.1";
    }
    if (strcmp(name, "REDIS_PORT") == 0 && cli->port != NULL) {
        return cli->port;
    }
    if (strcmp(name, "REDIS_DB") == 0 && cli->db != NULL) {
        return cli->db;
    }
    if (strcmp(name, "REDIS_USERNAME") == 0 && cli->user != NULL) {
        return cli->user;
    }
    return getenv(name);
}

/*
 * --password-file: the first line of the file (or stdin), without its line
 * end, into cfg->password. Returns 0, or EXIT_ERR after one line.
 */
static int read_password(const char *path, uc_config_t *cfg)
{
    char buf[UC_PASSWORD_MAX + 2];
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    size_t n;

    if (f == NULL) {
        return fail("--password-file", path, strerror(errno));
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    if (f != stdin) {
        fclose(f);
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    n = strlen(buf);
    if (n == 0 || n >= UC_PASSWORD_MAX) {
        memset(buf, 0, sizeof(buf));
        return fail("--password-file", path,
                    n == 0 ? "no password in it" : "password too long");
    }
    memcpy(cfg->password, buf, n + 1);
    memset(buf, 0, sizeof(buf));
    return 0;
}

/* Builds the configuration from the environment and the command line, and
 * opens the cache. */
static int open_cache(const cli_t *cli, uc_config_t *cfg, uc_cache_t **out)
{
    const char *names[16];
    const uc_keyspace_def_t *defs;
    size_t nks = 0;
    char err[256];
    uc_cache_t *cache = NULL;
    int rc;

    defs = uq_utxoiq_keyspaces(&nks);
    if (nks > sizeof(names) / sizeof(names[0])) {
        return fail("config", NULL, "too many built-in keyspaces");
    }
    for (size_t i = 0; i < nks; i++) {
        names[i] = defs[i].name;
    }
    uc_config_init(cfg);
    err[0] = '\0';
    rc = uc_config_from_lookup(cfg, cli_lookup, (void *)cli, names, nks, err,
                               sizeof(err));
    if (rc != UC_OK) {
        return fail("config", NULL, err[0] != '\0' ? err : uc_strerror(rc));
    }
    if (cli->password_file != NULL &&
        read_password(cli->password_file, cfg) != 0) {
        return EXIT_ERR;
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
    memset(cli.url_buf, 0, sizeof(cli.url_buf));
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "utxocache: write 'stdout': %s\n", strerror(errno));
        return EXIT_ERR;
    }
    return status;
}
