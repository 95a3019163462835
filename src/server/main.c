/* SPDX-License-Identifier: MIT */
/*
 * utxoiq-api's entry point: subcommands (serve, the default; migrate; seed;
 * keys create), configuration from flags and the environment, the refusal
 * to run as root, and the construction of the application handle (database
 * opened and migrated, cache created from the environment with the utxoIQ
 * keyspaces declared).
 */
#include "app.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_DB_URL "sqlite:./var/utxoiq.db"

typedef struct {
    const char *cmd;
    const char *db_url;
    const char *listen;
    int port;
    int threads;
    int allow_root;
    const char *user;
    const char *role;
    int seed_insights;
} opts_t;

static void usage(FILE *f)
{
    fputs("usage: utxoiq-api [serve] [--port N] [--listen ADDR] "
          "[--database-url URL] [--threads N] [--allow-root]\n"
          "       utxoiq-api migrate [--database-url URL]\n"
          "       utxoiq-api seed [--insights N] [--database-url URL]\n"
          "       utxoiq-api keys create --user U --role user|service|admin\n"
          "environment: PORT LISTEN_ADDR DATABASE_URL (or DB_HOST DB_PORT "
          "DB_USER DB_PASSWORD DB_NAME) REDIS_URL REDIS_HOST ...\n",
          f);
}

static int env_int(const char *name, long long min, long long max,
                   long long def)
{
    const char *v = getenv(name);
    long long x;
    if (v == NULL || v[0] == '\0') {
        return (int)def;
    }
    if (uc_parse_int(v, min, max, &x) != 0) {
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

static int parse_args(int argc, char **argv, opts_t *o)
{
    int i = 1;
    o->cmd = "serve";
    if (i < argc && argv[i][0] != '-') {
        o->cmd = argv[i++];
        if (strcmp(o->cmd, "keys") == 0) {
            if (i >= argc || strcmp(argv[i], "create") != 0) {
                fprintf(stderr, "utxoiq-api: keys: only 'keys create'\n");
                return -1;
            }
            o->cmd = "keys-create";
            i++;
        }
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (strcmp(a, "--allow-root") == 0) {
            o->allow_root = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (v == NULL) {
            fprintf(stderr, "utxoiq-api: %s: missing value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--port") == 0) {
            if (uc_parse_int(v, 1, 65535, &x) != 0) {
                fprintf(stderr, "utxoiq-api: --port: 1 to 65535\n");
                return -1;
            }
            o->port = (int)x;
        } else if (strcmp(a, "--threads") == 0) {
            if (uc_parse_int(v, 1, 256, &x) != 0) {
                fprintf(stderr, "utxoiq-api: --threads: 1 to 256\n");
                return -1;
            }
            o->threads = (int)x;
        } else if (strcmp(a, "--insights") == 0) {
            if (uc_parse_int(v, 1, 1000000, &x) != 0) {
                fprintf(stderr, "utxoiq-api: --insights: 1 to 1000000\n");
                return -1;
            }
            o->seed_insights = (int)x;
        } else if (strcmp(a, "--listen") == 0) {
            o->listen = v;
        } else if (strcmp(a, "--database-url") == 0) {
            o->db_url = v;
        } else if (strcmp(a, "--user") == 0) {
            o->user = v;
        } else if (strcmp(a, "--role") == 0) {
            o->role = v;
        } else {
            fprintf(stderr, "utxoiq-api: unknown option '%s'\n", a);
            return -1;
        }
    }
    if (strcmp(o->cmd, "serve") != 0 && strcmp(o->cmd, "migrate") != 0 &&
        strcmp(o->cmd, "seed") != 0 && strcmp(o->cmd, "keys-create") != 0) {
        fprintf(stderr, "utxoiq-api: unknown command '%s'\n", o->cmd);
        return -1;
    }
    return 0;
}

static int open_cache(uc_app_t *app)
{
    size_t n;
    const uc_keyspace_def_t *defs = uc_utxoiq_keyspaces(&n);
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
        uc_log("error", "cache configuration", "error", err, NULL);
        return -1;
    }
    cfg.log_fn = uc_log_cache;
    /* The library's info lines stay out unless debug is asked for. */
    cfg.log_level = UC_LOG_WARN;
    if (uc_log_min_level() == 0) {
        cfg.log_level = UC_LOG_DEBUG;
    } else if (uc_log_min_level() > 2) {
        cfg.log_level = UC_LOG_ERROR;
    }
    if (uc_cache_create(&cfg, &app->cache, err, sizeof(err)) != UC_OK) {
        uc_log("error", "cannot create cache", "error", err, NULL);
        return -1;
    }
    if (uc_cache_add_keyspaces(app->cache, defs, n, err, sizeof(err)) !=
        UC_OK) {
        uc_log("error", "cannot declare keyspaces", "error", err, NULL);
        return -1;
    }
    for (int i = 0; i < UC_KS_COUNT; i++) {
        app->ks[i] = uc_cache_keyspace(app->cache, defs[i].name);
    }
    /* Pending invalidations are loaded before the first request. */
    if (uc_app_attach_log(app, err, sizeof(err)) != 0) {
        uc_log("error", "cannot read the invalidation log", "error", err,
               NULL);
        return -1;
    }
    app->cache_local = strcmp(uc_cache_backend_name(app->cache), "memory") == 0;
    if (app->cache_local) {
        uc_log("warn",
               "cache backend is per-process memory: instances share no "
               "entries and learn of each other's writes only through the "
               "invalidation log (UTXOCACHE_LOG_TAIL_MS); set REDIS_URL to "
               "share a cache",
               NULL);
    }
    uc_config_describe(&cfg, where, sizeof(where));
    uc_log("info", "cache ready", "backend", uc_cache_backend_name(app->cache),
           "where", where, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    uc_app_t app;
    char url[2048];
    char desc[2048];
    char err[512];
    int rc = 1;

    memset(&o, 0, sizeof(o));
    memset(&app, 0, sizeof(app));
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
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
    if (o.db_url != NULL) {
        snprintf(url, sizeof(url), "%s", o.db_url);
    } else if (uc_db_url_from_env(url, sizeof(url), DEFAULT_DB_URL) !=
               UC_DB_OK) {
        fprintf(stderr, "utxoiq-api: DATABASE_URL too long\n");
        return 2;
    }
    make_db_dir(url);
    uc_db_url_describe(url, desc, sizeof(desc));

    app.clock_skew_us =
        (int64_t)env_int("UTXOIQ_CLOCK_SKEW_S", -100000000, 100000000, 0) *
        1000000;
    app.access_log = env_int("UTXOIQ_ACCESS_LOG", 0, 1, 1);
    app.started_at = uc_now_us(&app);

    uc_db_options_t dbo = {0};
    dbo.url = url;
    dbo.pool_size = env_int("UTXOIQ_DB_POOL", 1, 256, 8);
    dbo.timeout_ms = env_int("UTXOIQ_DB_TIMEOUT_MS", 1, 600000, 5000);
    dbo.log = uc_log_db;
    if (uc_db_open(&dbo, &app.db, err, sizeof(err)) != UC_DB_OK) {
        uc_log("error", "cannot open database", "database", desc, "error", err,
               NULL);
        goto cleanup;
    }
    int applied = 0;
    int st = uc_db_migrate(app.db, &applied);
    if (st != UC_DB_OK) {
        uc_log("error", "migration failed", "database", desc, "error",
               uc_db_strerror(st), NULL);
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
        if (uc_auth_create_key(&app, o.user, o.role, key, sizeof(key), err,
                               sizeof(err)) != 0) {
            fprintf(stderr, "utxoiq-api: keys create: %s\n", err);
            goto cleanup;
        }
        printf("%s\n", key);
        rc = 0;
        goto cleanup;
    }
    if (strcmp(o.cmd, "seed") == 0) {
        rc = uc_seed(&app, o.seed_insights > 0 ? o.seed_insights : 3000,
                     stdout) == 0
                 ? 0
                 : 1;
        goto cleanup;
    }

    if (open_cache(&app) != 0) {
        goto cleanup;
    }
    uc_http_opts_t ho;
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
    uc_log("info", "starting", "database", desc, "migrations_applied",
           applied > 0 ? "yes" : "none", NULL);
    rc = uc_http_serve(&app, &ho);

cleanup:
    uc_cache_destroy(app.cache);
    uc_db_close(app.db);
    return rc;
}
