/* SPDX-License-Identifier: MIT */
/*
 * utxoiq-api's entry point: subcommands (serve, the default; migrate; seed;
 * keys create|list|revoke|import), configuration from flags (getopt_long) and
 * the environment, the process's hardening (no core dumps, stray signals
 * ignored, the descriptor limit raised, a password given on the command line
 * scrubbed from it), the refusal to run as root, and the construction of the
 * application handle (database opened and migrated, cache created from the
 * environment with the utxoIQ keyspaces declared).
 */
#include "app.h"
#include "history.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_DB_URL "sqlite:./var/utxoiq.db"
#define DB_URL_MAX 2048

typedef struct {
    const char *cmd;
    char db_url[DB_URL_MAX]; /* a copy: argv's is scrubbed */
    int have_db_url;
    const char *db_url_file;
    int db_url_on_cmdline_secret; /* --database-url held a password */
    const char *listen;
    int port;
    int threads;
    int allow_root;
    const char *user;
    const char *role;
    int seed_insights;
    int json;
    const char *arg; /* keys revoke's key, keys import's file */
} opts_t;

static const char usage_text[] =
    "usage: utxoiq-api [serve] [--port N] [--listen ADDR] [--threads N]\n"
    "                  [--database-url-file PATH|-] [--allow-root]\n"
    "       utxoiq-api migrate [--database-url-file PATH|-]\n"
    "       utxoiq-api seed [--insights N] [--database-url-file PATH|-]\n"
    "       utxoiq-api keys create --user U --role user|service|admin\n"
    "       utxoiq-api keys list [--json]\n"
    "       utxoiq-api keys revoke ID|PREFIX\n"
    "       utxoiq-api keys import FILE [--role user|service|admin]\n"
    "       utxoiq-api --help | --version\n"
    "\n"
    "  --database-url URL    also accepted; a password in it is visible to\n"
    "                        other users until scrubbed: prefer the file or\n"
    "                        DATABASE_URL\n"
    "  --database-url-file PATH   read the URL from PATH ('-': stdin)\n"
    "  An option's value follows a space or an equals sign.\n"
    "\n"
    "environment: PORT LISTEN_ADDR DATABASE_URL (or DB_HOST DB_PORT DB_USER\n"
    "DB_PASSWORD DB_NAME) REDIS_URL REDIS_HOST ... UTXOIQ_MAX_CONNECTIONS\n"
    "UTXOIQ_MAX_CONNECTIONS_PER_IP UTXOIQ_CONNECTION_TIMEOUT_S\n"
    "UTXOIQ_ALLOW_CORE_DUMPS (see docs/operations.md)\n";

/* One line naming the problem, and where to look; returns 2. */
static int usage_error(const char *what, const char *detail)
{
    fprintf(stderr, "utxoiq-api: %s%s%s\n", what, detail != NULL ? ": " : "",
            detail != NULL ? detail : "");
    fputs("try 'utxoiq-api --help'\n", stderr);
    return 2;
}

static int env_int(const char *name, long long min, long long max,
                   long long def)
{
    const char *v = getenv(name);
    long long x;
    if (v == NULL || v[0] == '\0') {
        return (int)def;
    }
    if (uq_parse_int(v, min, max, &x) != 0) {
        fprintf(stderr,
                "utxoiq-api: %s: must be an integer from %lld to %lld\n", name,
                min, max);
        exit(2);
    }
    return (int)x;
}

/* Creates the directory holding a SQLite file when it is missing. */
static void make_db_dir(const char *url)
{
    const char *path = url;
    char dir[2048];
    if (strncmp(path, "sqlite:", 7) == 0) {
        path += 7;
    } else if (strstr(path, "://") != NULL) {
        return;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        return;
    }
    *slash = '\0';
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "utxoiq-api: cannot create '%s': %s\n", dir,
                strerror(errno));
    }
}

/*
 * Reads a database URL from path ("-": stdin) into buf: the first line,
 * trailing white space dropped. Returns 0, or -1 after printing why.
 */
static int read_url_file(const char *path, char *buf, size_t cap)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    size_t n;
    if (f == NULL) {
        fprintf(stderr, "utxoiq-api: --database-url-file '%s': %s\n", path,
                strerror(errno));
        return -1;
    }
    n = fread(buf, 1, cap - 1, f);
    int bad = ferror(f);
    int more = n == cap - 1 && fgetc(f) != EOF;
    if (f != stdin) {
        fclose(f);
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t')) {
        buf[--n] = '\0';
    }
    if (bad || n == 0 || (more && strlen(buf) == cap - 1)) {
        fprintf(stderr, "utxoiq-api: --database-url-file '%s': %s\n", path,
                bad      ? "cannot read"
                : n == 0 ? "no URL in it"
                         : "too long");
        memset(buf, 0, cap);
        return -1;
    }
    return 0;
}

/*
 * Overwrites a command-line argument in place, so that ps and
 * /proc/PID/cmdline show the masked URL (or stars when the mask would not
 * fit) instead of the password. The kernel reads the arguments from the
 * process's memory each time, so the change is visible at once.
 */
static void scrub_arg(char *arg, const char *masked)
{
    size_t len = strlen(arg);
    size_t m = strlen(masked);
    if (m <= len) {
        memcpy(arg, masked, m);
        memset(arg + m, '\0', len - m);
    } else {
        memset(arg, '*', len);
    }
}

enum {
    OPT_PORT = 256,
    OPT_LISTEN,
    OPT_DB_URL,
    OPT_DB_URL_FILE,
    OPT_THREADS,
    OPT_ALLOW_ROOT,
    OPT_INSIGHTS,
    OPT_USER,
    OPT_ROLE,
    OPT_JSON,
};

static const struct option long_opts[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"database-url", required_argument, NULL, OPT_DB_URL},
    {"database-url-file", required_argument, NULL, OPT_DB_URL_FILE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"allow-root", no_argument, NULL, OPT_ALLOW_ROOT},
    {"insights", required_argument, NULL, OPT_INSIGHTS},
    {"user", required_argument, NULL, OPT_USER},
    {"role", required_argument, NULL, OPT_ROLE},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Parses a numeric option; 0, or -1 after printing the range. */
static int num_opt(const char *name, const char *v, long long min,
                   long long max, int *out)
{
    long long x;
    char range[64];
    if (uq_parse_int(v, min, max, &x) != 0) {
        snprintf(range, sizeof(range), "'%.20s' is not %lld to %lld", v, min,
                 max);
        usage_error(name, range);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/*
 * Parses argv (getopt_long: --opt VALUE, --opt=VALUE, options anywhere, "--"
 * ends them) into o. Exits 0 for --help and --version. Returns 0, or 2
 * after one line on stderr naming the problem.
 */
static int parse_args(int argc, char **argv, opts_t *o)
{
    int c;
    int idx = 0;

    o->cmd = "serve";
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hV", long_opts, &idx)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        case 'V':
            printf("utxoiq-api %s (libutxocache %s)\n", UC_VERSION_STRING,
                   uc_version());
            exit(0);
        case OPT_PORT:
            if (num_opt("--port", optarg, 1, 65535, &o->port) != 0) {
                return 2;
            }
            break;
        case OPT_THREADS:
            if (num_opt("--threads", optarg, 1, 256, &o->threads) != 0) {
                return 2;
            }
            break;
        case OPT_INSIGHTS:
            if (num_opt("--insights", optarg, 1, 1000000, &o->seed_insights) !=
                0) {
                return 2;
            }
            break;
        case OPT_LISTEN:
            o->listen = optarg;
            break;
        case OPT_DB_URL: {
            char masked[DB_URL_MAX];
            if (strlen(optarg) >= sizeof(o->db_url)) {
                return usage_error("--database-url", "too long");
            }
            snprintf(o->db_url, sizeof(o->db_url), "%s", optarg);
            o->have_db_url = 1;
            uq_db_url_describe(optarg, masked, sizeof(masked));
            if (strcmp(masked, optarg) != 0) {
                o->db_url_on_cmdline_secret = 1;
                scrub_arg(optarg, masked);
            }
            break;
        }
        case OPT_DB_URL_FILE:
            o->db_url_file = optarg;
            break;
        case OPT_ALLOW_ROOT:
            o->allow_root = 1;
            break;
        case OPT_USER:
            o->user = optarg;
            break;
        case OPT_ROLE:
            o->role = optarg;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case ':':
            return usage_error(argv[optind - 1], "missing value");
        default: {
            /* An unknown long option is the word getopt just stepped over;
             * a short one is optopt. */
            char name[64];
            if (optopt != 0) {
                snprintf(name, sizeof(name), "unknown option '-%c'", optopt);
            } else {
                snprintf(name, sizeof(name), "unknown option '%.40s'",
                         argv[optind - 1]);
            }
            return usage_error(name, NULL);
        }
        }
    }
    if (optind < argc) {
        o->cmd = argv[optind++];
        if (strcmp(o->cmd, "keys") == 0) {
            static const char *const verbs[][2] = {
                {"create", "keys-create"},
                {"list", "keys-list"},
                {"revoke", "keys-revoke"},
                {"import", "keys-import"},
            };
            const char *verb = optind < argc ? argv[optind] : "";
            o->cmd = NULL;
            for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
                if (strcmp(verb, verbs[i][0]) == 0) {
                    o->cmd = verbs[i][1];
                }
            }
            if (o->cmd == NULL) {
                return usage_error("keys",
                                   "give create, list, revoke or import");
            }
            optind++;
            if (strcmp(o->cmd, "keys-revoke") == 0 ||
                strcmp(o->cmd, "keys-import") == 0) {
                if (optind >= argc) {
                    return usage_error(strcmp(o->cmd, "keys-revoke") == 0
                                           ? "keys revoke: give a key id "
                                             "or prefix"
                                           : "keys import: give a file",
                                       NULL);
                }
                o->arg = argv[optind++];
            }
        }
    }
    if (optind < argc) {
        char what[96];
        snprintf(what, sizeof(what), "unexpected argument '%.60s'",
                 argv[optind]);
        return usage_error(what, NULL);
    }
    if (strcmp(o->cmd, "serve") != 0 && strcmp(o->cmd, "migrate") != 0 &&
        strcmp(o->cmd, "seed") != 0 && strncmp(o->cmd, "keys-", 5) != 0) {
        char what[96];
        snprintf(what, sizeof(what), "unknown command '%.60s'", o->cmd);
        return usage_error(what, NULL);
    }
    if (o->have_db_url && o->db_url_file != NULL) {
        return usage_error("--database-url and --database-url-file",
                           "give one");
    }
    return 0;
}

/*
 * Process-wide hardening and limits, before anything holds a secret:
 * no core dumps (a core holds the database and Redis passwords and every
 * cached value) unless UTXOIQ_ALLOW_CORE_DUMPS=1; SIGHUP, SIGUSR1 and
 * SIGUSR2 ignored (the service logs to stderr and has nothing to reload, so
 * a stray signal must not kill it); the descriptor limit raised to its hard
 * limit, since every connection costs one. Returns the descriptor limit.
 */
static rlim_t harden(int *core_dumps)
{
    const char *allow = getenv("UTXOIQ_ALLOW_CORE_DUMPS");
    struct rlimit rl;

    *core_dumps = allow != NULL && strcmp(allow, "1") == 0;
    if (!*core_dumps) {
        rl.rlim_cur = 0;
        rl.rlim_max = 0;
        setrlimit(RLIMIT_CORE, &rl);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 1024;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want =
            rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
        struct rlimit nl = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0) {
            rl.rlim_cur = want;
        }
    }
    return rl.rlim_cur;
}

static int open_cache(uq_app_t *app)
{
    size_t n;
    const uc_keyspace_def_t *defs = uq_utxoiq_keyspaces(&n);
    const char *names[16];
    size_t nn = 0;
    uc_config_t cfg;
    char err[256];
    char where[UC_HOST_MAX + 64];

    for (size_t i = 0; i < n && nn < 15; i++) {
        names[nn++] = defs[i].name;
    }
    uc_config_init(&cfg);
    if (uc_config_from_env(&cfg, names, nn, err, sizeof(err)) != UC_OK) {
        uq_log("error", "cache configuration", "error", err, NULL);
        return -1;
    }
    cfg.log_fn = uq_log_cache;
    /* A write to a socket the peer closed answers EPIPE instead of killing
     * the process; set before the first Redis call, so the library need
     * not mask the signal around each one. */
    signal(SIGPIPE, SIG_IGN);
    cfg.sigpipe_ignored = 1;
    /* The library's info lines stay out unless debug is asked for. */
    cfg.log_level = UC_LOG_WARN;
    if (uq_log_min_level() == 0) {
        cfg.log_level = UC_LOG_DEBUG;
    } else if (uq_log_min_level() > 2) {
        cfg.log_level = UC_LOG_ERROR;
    }
    if (uc_cache_create(&cfg, &app->cache, err, sizeof(err)) != UC_OK) {
        uq_log("error", "cannot create cache", "error", err, NULL);
        return -1;
    }
    /* The shared declarations, with this service's loaders. */
    uc_keyspace_def_t own[UQ_KS_COUNT];
    for (size_t i = 0; i < n && i < UQ_KS_COUNT; i++) {
        own[i] = defs[i];
        own[i].loader = uq_history_loader((int)i);
        own[i].loader_arg = app;
    }
    if (uc_cache_add_keyspaces(app->cache, own,
                               n < UQ_KS_COUNT ? n : UQ_KS_COUNT, err,
                               sizeof(err)) != UC_OK) {
        uq_log("error", "cannot declare keyspaces", "error", err, NULL);
        return -1;
    }
    for (int i = 0; i < UQ_KS_COUNT; i++) {
        app->ks[i] = uc_cache_keyspace(app->cache, defs[i].name);
    }
    /* Pending invalidations are loaded before the first request. */
    if (uq_app_attach_log(app, err, sizeof(err)) != 0) {
        uq_log("error", "cannot read the invalidation log", "error", err, NULL);
        return -1;
    }
    app->cache_local = strcmp(uc_cache_backend_name(app->cache), "memory") == 0;
    if (app->cache_local) {
        uq_log("warn",
               "cache backend is per-process memory: instances share no "
               "entries and learn of each other's writes only through the "
               "invalidation log (UTXOCACHE_LOG_TAIL_MS); set REDIS_URL to "
               "share a cache",
               NULL);
    }
    uc_config_describe(&cfg, where, sizeof(where));
    uq_log("info", "cache ready", "backend", uc_cache_backend_name(app->cache),
           "where", where, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    uq_app_t app;
    char url[DB_URL_MAX];
    char desc[DB_URL_MAX];
    char err[512];
    int core_dumps = 0;
    int rc = 1;

    memset(&o, 0, sizeof(o));
    memset(&app, 0, sizeof(app));
    rlim_t nofile = harden(&core_dumps);
    if (parse_args(argc, argv, &o) != 0) {
        return 2;
    }
    const char *ar = getenv("UTXOIQ_ALLOW_ROOT");
    if (geteuid() == 0 && !o.allow_root &&
        (ar == NULL || strcmp(ar, "1") != 0)) {
        fprintf(stderr, "utxoiq-api: refusing to run as root; run as an "
                        "unprivileged user, or set UTXOIQ_ALLOW_ROOT=1 / "
                        "--allow-root\n");
        return 1;
    }
    if (o.db_url_on_cmdline_secret) {
        uq_log("warn",
               "--database-url holds a password: other local users could "
               "read it from the process list until it was scrubbed; use "
               "--database-url-file or DATABASE_URL",
               NULL);
    }
    if (o.have_db_url) {
        snprintf(url, sizeof(url), "%s", o.db_url);
        memset(o.db_url, 0, sizeof(o.db_url));
    } else if (o.db_url_file != NULL) {
        if (read_url_file(o.db_url_file, url, sizeof(url)) != 0) {
            return 2;
        }
    } else if (uq_db_url_from_env(url, sizeof(url), DEFAULT_DB_URL) !=
               UQ_DB_OK) {
        fprintf(stderr, "utxoiq-api: DATABASE_URL too long\n");
        return 2;
    }
    make_db_dir(url);
    uq_db_url_describe(url, desc, sizeof(desc));

    app.clock_skew_us =
        (int64_t)env_int("UTXOIQ_CLOCK_SKEW_S", -100000000, 100000000, 0) *
        1000000;
    app.access_log = env_int("UTXOIQ_ACCESS_LOG", 0, 1, 1);
    /* The original service's default: its web front end in development. */
    const char *cors = getenv("CORS_ORIGINS");
    if (cors != NULL && strlen(cors) >= sizeof(app.cors_origins)) {
        fprintf(stderr, "utxoiq-api: CORS_ORIGINS longer than %zu bytes\n",
                sizeof(app.cors_origins) - 1);
        return 2;
    }
    snprintf(app.cors_origins, sizeof(app.cors_origins), "%s",
             cors != NULL ? cors : "http://localhost:3000");
    app.started_at = uq_now_us(&app);

    uq_db_options_t dbo = {0};
    dbo.url = url;
    dbo.pool_size = env_int("UTXOIQ_DB_POOL", 1, 256, 8);
    dbo.timeout_ms = env_int("UTXOIQ_DB_TIMEOUT_MS", 1, 600000, 5000);
    dbo.log = uq_log_db;
    if (uq_db_open(&dbo, &app.db, err, sizeof(err)) != UQ_DB_OK) {
        uq_log("error", "cannot open database", "database", desc, "error", err,
               NULL);
        goto cleanup;
    }
    int applied = 0;
    int st = uq_db_migrate(app.db, &applied);
    if (st != UQ_DB_OK) {
        uq_log("error", "migration failed", "database", desc, "error",
               uq_db_strerror(st), NULL);
        goto cleanup;
    }
    if (strcmp(o.cmd, "migrate") == 0) {
        printf("applied %d migration(s) to %s\n", applied, desc);
        rc = 0;
        goto cleanup;
    }
    if (strcmp(o.cmd, "keys-create") == 0) {
        char key[128];
        if (o.user == NULL || o.role == NULL) {
            fprintf(stderr,
                    "utxoiq-api: keys create needs --user and --role\n");
            rc = 2;
            goto cleanup;
        }
        if (uq_auth_create_key(&app, o.user, o.role, key, sizeof(key), err,
                               sizeof(err)) != 0) {
            fprintf(stderr, "utxoiq-api: keys create: %s\n", err);
            goto cleanup;
        }
        printf("%s\n", key);
        rc = 0;
        goto cleanup;
    }
    if (strcmp(o.cmd, "keys-list") == 0) {
        rc = uq_keys_list(&app, o.json, stdout, stderr);
        goto cleanup;
    }
    if (strcmp(o.cmd, "keys-revoke") == 0) {
        rc = uq_keys_revoke(&app, o.arg, stdout, stderr);
        goto cleanup;
    }
    if (strcmp(o.cmd, "keys-import") == 0) {
        rc = uq_keys_import(&app, o.arg, o.role, stdout, stderr);
        goto cleanup;
    }
    if (strcmp(o.cmd, "seed") == 0) {
        rc = uq_seed(&app, o.seed_insights > 0 ? o.seed_insights : 3000,
                     stdout) == 0
                 ? 0
                 : 1;
        goto cleanup;
    }

    if (uq_history_create(&app, &app.history) != 0 || open_cache(&app) != 0 ||
        uq_history_start(app.history) != 0) {
        goto cleanup;
    }
    uq_http_opts_t ho;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ho.listen_addr = o.listen != NULL ? o.listen : getenv("LISTEN_ADDR");
    if (ho.listen_addr == NULL || ho.listen_addr[0] == '\0') {
        ho.listen_addr = "127.0.0.1";
    }
    ho.port = o.port > 0 ? o.port : env_int("PORT", 1, 65535, 8080);
    ho.threads = o.threads > 0
                     ? o.threads
                     : env_int("UTXOIQ_THREADS", 1, 256,
                               cpus > 0 ? (cpus < 2 ? 4 : cpus * 2) : 4);
    ho.conn_timeout_s =
        (unsigned)env_int("UTXOIQ_CONNECTION_TIMEOUT_S", 1, 3600, 30);
    /* Each connection is a descriptor; the database and Redis pools, the
     * log and MHD's own need some besides, and http.c lets a quarter more
     * in to answer them 503. */
    long long fd_room = (long long)nofile > 320 ? (long long)nofile - 256 : 64;
    long long conn_cap = fd_room * 4 / 5;
    ho.max_connections = (unsigned)env_int("UTXOIQ_MAX_CONNECTIONS", 1, 1000000,
                                           conn_cap < 4096 ? conn_cap : 4096);
    if ((long long)ho.max_connections > conn_cap) {
        char want[24], got[24];
        snprintf(want, sizeof(want), "%u", ho.max_connections);
        snprintf(got, sizeof(got), "%lld", conn_cap);
        uq_log("warn",
               "UTXOIQ_MAX_CONNECTIONS is more than the descriptor limit "
               "allows; lowered",
               "asked", want, "max_connections", got, NULL);
        ho.max_connections = (unsigned)conn_cap;
    }
    ho.max_per_ip =
        (unsigned)env_int("UTXOIQ_MAX_CONNECTIONS_PER_IP", 0, 1000000, 256);
    {
        char nf[24];
        snprintf(nf, sizeof(nf), "%llu", (unsigned long long)nofile);
        uq_log("info", "starting", "database", desc, "migrations_applied",
               applied > 0 ? "yes" : "none", "core_dumps",
               core_dumps ? "allowed" : "off", "fd_limit", nf, NULL);
    }
    rc = uq_http_serve(&app, &ho);

cleanup:
    memset(url, 0, sizeof(url));
    uq_history_stop(app.history); /* it reads the cache */
    uc_cache_destroy(app.cache);
    uq_history_destroy(app.history); /* the cache's loaders used it */
    uq_db_close(app.db);
    return rc;
}
