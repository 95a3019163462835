/* SPDX-License-Identifier: MIT */
/*
 * Test support: a six-node Redis Cluster of the test's own. The nodes are
 * redis_server.c servers sharing one temporary directory (files named by
 * port); each gets an explicit cluster bus port (cluster-port) rather than
 * the default port + 10000, which for a free port above 55535 does not
 * exist and otherwise may be taken. redis-cli --cluster create joins them
 * and assigns replicas.
 *
 * "The cluster is ready" is read from the nodes themselves, not from
 * redis-cli: every node says cluster_state:ok, their CLUSTER NODES views
 * agree (roles, primaries, slots, who is failed) and no node is in doubt,
 * and every replica has finished its sync, since a manual failover
 * waits for a replica to catch up and a node that is still loading is not
 * a candidate. CLUSTER NODES is parsed here on its own, so the fixture
 * does not depend on the library's CLUSTER SHARDS parser it helps test.
 */
#include "redis_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

/* The cluster's own view is compared as text of at most this size. */
#define VIEW_MAX 4096
#define LINE_MAX_FIELDS 64

static int in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[1024];

    if (path == NULL) {
        return 0;
    }
    while (*path != '\0') {
        size_t n = strcspn(path, ":");
        if (n > 0 && n + strlen(prog) + 2 < sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
            if (access(buf, X_OK) == 0) {
                return 1;
            }
        }
        path += n;
        if (*path == ':') {
            path++;
        }
    }
    return 0;
}

/* The major version from `redis-server --version` ("... v=7.0.15 ..."). */
static int server_major(void)
{
    char line[256] = "";
    FILE *p = popen("redis-server --version 2>/dev/null", "r");
    const char *v;
    int major = -1;

    if (p == NULL) {
        return -1;
    }
    if (fgets(line, sizeof(line), p) == NULL) {
        line[0] = '\0';
    }
    while (fgetc(p) != EOF) {
    }
    pclose(p);
    v = strstr(line, "v=");
    if (v != NULL && v[2] >= '0' && v[2] <= '9') {
        major = (int)strtol(v + 2, NULL, 10);
    }
    return major;
}

int uc_test_cluster_available(char *why, size_t whylen)
{
    int major;

    if (!in_path("redis-server") || !in_path("redis-cli")) {
        snprintf(why, whylen, "redis-server or redis-cli not in PATH");
        return 0;
    }
    major = server_major();
    if (major < 7) {
        snprintf(why, whylen,
                 "redis-server %d: CLUSTER SHARDS needs 7.0 or later", major);
        return 0;
    }
    return 1;
}

/* A free port that no node of c (0..upto) has taken as a port or bus port,
 * and that is not `other`; -1 when none turns up. */
static int pick_port(const uc_test_cluster_t *c, int upto, int other)
{
    for (int tries = 0; tries < 50; tries++) {
        int p = uc_test_free_port();
        int taken = p <= 0 || p == other;
        for (int j = 0; j < upto && !taken; j++) {
            taken = p == c->node[j].port || p == c->bus_port[j];
        }
        if (!taken) {
            return p;
        }
    }
    return -1;
}

static int start_node(uc_test_cluster_t *c, int i, int port, int bus,
                      const char *conf)
{
    char extra[1024];

    /* repl-diskless-sync-delay 0: a primary would otherwise wait 5 s
     * before the first sync of each replica. */
    snprintf(extra, sizeof(extra),
             "cluster-enabled yes\ncluster-config-file nodes-%d.conf\n"
             "cluster-port %d\ncluster-node-timeout 1000\n"
             "repl-diskless-sync-delay 0\n%s",
             port, bus, conf != NULL ? conf : "");
    c->bus_port[i] = bus;
    return uc_test_redis_start_at(&c->node[i], c->dir, port, extra);
}

/*
 * Runs redis-cli with argv (argv[0] is "redis-cli"), its output to the file
 * `log`, stdin from /dev/null; SIGKILLed after timeout_ms. Returns 0 when it
 * exited 0, else -1 after printing what happened (`what` names the run).
 */
static int run_cli(const char *const *argv, const char *log,
                   unsigned timeout_ms, const char *what)
{
    uint64_t deadline;
    pid_t pid;
    int status;

    pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        if (in >= 0) {
            dup2(in, 0);
        }
        execvp("redis-cli", (char *const *)argv);
        _exit(127);
    }
    deadline = uc_test_now_ms() + timeout_ms;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (uc_test_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "redis-cli %s: no end in %u ms; see %s\n", what,
                    timeout_ms, log);
            return -1;
        }
        uc_test_sleep_ms(20);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "redis-cli %s failed; see %s\n", what, log);
        return -1;
    }
    return 0;
}

/* Runs redis-cli --cluster create with output to a log; bounded 30 s. */
static int create_cluster(uc_test_cluster_t *c)
{
    char addr[UC_TEST_CLUSTER_NODES][32];
    char log[600];
    const char *argv[UC_TEST_CLUSTER_NODES + 8];
    int argc = 0;

    argv[argc++] = "redis-cli";
    argv[argc++] = "--cluster";
    argv[argc++] = "create";
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", c->node[i].port);
        argv[argc++] = addr[i];
    }
    argv[argc++] = "--cluster-replicas";
    argv[argc++] = "1";
    argv[argc++] = "--cluster-yes";
    argv[argc] = NULL;
    snprintf(log, sizeof(log), "%s/cluster-create.log", c->dir);
    return run_cli(argv, log, 30000, "--cluster create");
}

int uc_test_cluster_start(uc_test_cluster_t *c)
{
    return uc_test_cluster_start_conf(c, NULL);
}

/* Prints the last lines of the file at path to stderr (what redis-cli was
 * waiting for when it was stopped). */
static void print_tail(const char *path)
{
    char buf[1024];
    FILE *f = fopen(path, "r");
    long size;

    if (f == NULL) {
        return;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0) {
        size_t n;
        (void)fseek(
            f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0,
            SEEK_SET);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fprintf(stderr, "--- end of %s ---\n%s\n---\n", path, buf);
    }
    fclose(f);
}

static int start_once(uc_test_cluster_t *c, const char *extra_conf)
{
    uint64_t t0;

    memset(c, 0, sizeof(*c));
    if (uc_test_mkdtemp(c->dir, sizeof(c->dir), "cluster") != 0) {
        perror("mkdtemp");
        c->dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        int started = -1;
        /* A port can be taken between the probe and the bind. */
        for (int attempt = 0; attempt < 5 && started != 0; attempt++) {
            int port = pick_port(c, i, -1);
            int bus = pick_port(c, i, port);
            if (port > 0 && bus > 0) {
                started = start_node(c, i, port, bus, extra_conf);
            }
        }
        if (started != 0) {
            fprintf(stderr, "cluster node %d did not start\n", i);
            uc_test_cluster_stop(c);
            return -1;
        }
    }
    t0 = uc_test_now_ms();
    if (create_cluster(c) != 0) {
        char log[600];
        snprintf(log, sizeof(log), "%s/cluster-create.log", c->dir);
        print_tail(log);
        uc_test_cluster_stop(c);
        return -1;
    }
    if (uc_test_cluster_wait_ok(c, 15000) != 0) {
        uc_test_cluster_stop(c);
        return -1;
    }
    c->create_ms = uc_test_now_ms() - t0;
    return 0;
}

int uc_test_cluster_start_conf(uc_test_cluster_t *c, const char *extra_conf)
{
    /* Once more on new ports and a new directory when the first cluster
     * never forms: redis-cli --cluster create can wait for a join that
     * does not come on a busy machine (seen once in a full run under ASan).
     * The tests' assertions are never retried, only the fixture's start. */
    if (start_once(c, extra_conf) == 0) {
        return 0;
    }
    fprintf(stderr, "cluster: the first start failed; once more on new "
                    "ports\n");
    return start_once(c, extra_conf);
}

void uc_test_cluster_stop(uc_test_cluster_t *c)
{
    /* Signal them all first, so that the waits overlap. */
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        if (c->node[i].pid > 0) {
            kill(c->node[i].pid, SIGCONT);
            kill(c->node[i].pid, SIGTERM);
        }
        c->paused[i] = 0;
    }
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        uc_test_redis_stop(&c->node[i]);
    }
    if (c->dir[0] != '\0') {
        uc_test_rmtree(c->dir);
        c->dir[0] = '\0';
    }
}

redisContext *uc_test_cluster_connect(const uc_test_cluster_t *c, int i)
{
    struct timeval tv = {2, 0};
    redisContext *ctx;

    if (i < 0 || i >= UC_TEST_CLUSTER_NODES || c->node[i].port <= 0) {
        return NULL;
    }
    ctx = redisConnectWithTimeout("127.0.0.1", c->node[i].port, tv);
    if (ctx == NULL || ctx->err != 0) {
        fprintf(stderr, "connect to cluster node %d (port %d): %s\n", i,
                c->node[i].port, ctx != NULL ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    return ctx;
}

int uc_test_cluster_node_of_port(const uc_test_cluster_t *c, int port)
{
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        if (c->node[i].port == port) {
            return i;
        }
    }
    return -1;
}

/* A two-word command whose reply is text (CLUSTER NODES, INFO
 * replication) into buf. */
static int text_command(const uc_test_cluster_t *c, int i, const char *cmd,
                        const char *sub, char *buf, size_t len)
{
    redisContext *ctx = uc_test_cluster_connect(c, i);
    redisReply *r;
    int rc = -1;

    if (ctx == NULL) {
        return -1;
    }
    r = redisCommand(ctx, "%s %s", cmd, sub);
    if (r != NULL &&
        (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
        r->len < len) {
        memcpy(buf, r->str, r->len);
        buf[r->len] = '\0';
        rc = 0;
    }
    freeReplyObject(r);
    redisFree(ctx);
    return rc;
}

int uc_test_cluster_is_primary(const uc_test_cluster_t *c, int i)
{
    redisContext *ctx = uc_test_cluster_connect(c, i);
    redisReply *r;
    int rc = -1;

    if (ctx == NULL) {
        return -1;
    }
    r = redisCommand(ctx, "ROLE");
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        if (strcmp(r->element[0]->str, "master") == 0) {
            rc = 1;
        } else if (strcmp(r->element[0]->str, "slave") == 0) {
            rc = 0;
        }
    }
    freeReplyObject(r);
    redisFree(ctx);
    return rc;
}

/* One line of CLUSTER NODES, cut into its space-separated fields. */
typedef struct {
    char *f[LINE_MAX_FIELDS];
    int n;
} fields_t;

/*
 * The next non-empty piece of *p up to `sep` (which is overwritten with a
 * NUL), advancing *p past it; NULL at the end.
 */
static char *next_token(char **p, char sep)
{
    char *t;
    char *end;

    while (**p == sep) {
        (*p)++;
    }
    if (**p == '\0') {
        return NULL;
    }
    t = *p;
    end = strchr(t, sep);
    if (end != NULL) {
        *end = '\0';
        *p = end + 1;
    } else {
        *p = t + strlen(t);
    }
    return t;
}

static void split(char *line, fields_t *out)
{
    char *t;

    out->n = 0;
    while (out->n < LINE_MAX_FIELDS && (t = next_token(&line, ' ')) != NULL) {
        out->f[out->n++] = t;
    }
}

/* 1 when the comma-separated flags hold `flag`. */
static int has_flag(const char *flags, const char *flag)
{
    size_t n = strlen(flag);

    for (const char *p = flags; p != NULL && *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, flag, n) == 0) {
            return 1;
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
    return 0;
}

/* The port of "ip:port@bus[,hostname]". */
static int addr_port(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    const char *at = strchr(addr, '@');

    if (colon == NULL || (at != NULL && at < colon)) {
        return -1;
    }
    return (int)strtol(colon + 1, NULL, 10);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Node i's view as canonical text: one sorted line per node with its id,
 * role, primary, whether it is failed, and its slots. Sets *doubt when a
 * node is "fail?", in handshake or without an address. Also records, in
 * alive_replica[], the ports of replicas not marked failed.
 */
static int view_of(const uc_test_cluster_t *c, int i, char *view, size_t len,
                   int *doubt, int *alive_replica)
{
    char *text = malloc(65536);
    char *lines[UC_TEST_CLUSTER_NODES * 2];
    char built[UC_TEST_CLUSTER_NODES * 2][512];
    int nlines = 0;
    char *rest = text;
    char *line;
    size_t used = 0;

    *doubt = 0;
    if (text == NULL ||
        text_command(c, i, "CLUSTER", "NODES", text, 65536) != 0) {
        free(text);
        return -1;
    }
    while ((line = next_token(&rest, '\n')) != NULL) {
        fields_t fl;
        size_t pos;
        if (nlines == UC_TEST_CLUSTER_NODES * 2) {
            break;
        }
        split(line, &fl);
        if (fl.n < 8) {
            continue;
        }
        if (has_flag(fl.f[2], "fail?") || has_flag(fl.f[2], "handshake") ||
            has_flag(fl.f[2], "noaddr")) {
            *doubt = 1;
        }
        if (has_flag(fl.f[2], "slave") && !has_flag(fl.f[2], "fail")) {
            int idx = uc_test_cluster_node_of_port(c, addr_port(fl.f[1]));
            if (idx >= 0) {
                alive_replica[idx] = 1;
            }
        }
        pos = (size_t)snprintf(built[nlines], sizeof(built[nlines]),
                               "%s %s %s %s", fl.f[0],
                               has_flag(fl.f[2], "master") ? "master" : "slave",
                               fl.f[3], has_flag(fl.f[2], "fail") ? "F" : "-");
        for (int k = 8; k < fl.n && pos < sizeof(built[nlines]); k++) {
            if (fl.f[k][0] != '[') { /* not a migrating/importing mark */
                pos += (size_t)snprintf(built[nlines] + pos,
                                        sizeof(built[nlines]) - pos, " %s",
                                        fl.f[k]);
            }
        }
        lines[nlines] = built[nlines];
        nlines++;
    }
    free(text);
    qsort(lines, (size_t)nlines, sizeof(lines[0]), cmp_str);
    view[0] = '\0';
    for (int k = 0; k < nlines; k++) {
        int n = snprintf(view + used, len - used, "%s\n", lines[k]);
        if (n < 0 || (size_t)n >= len - used) {
            return -1;
        }
        used += (size_t)n;
    }
    return 0;
}

static int running(const uc_test_cluster_t *c, int i)
{
    return c->node[i].pid > 0 && !c->paused[i];
}

/* One look at the cluster; 0 when ready, else -1 with the reason. */
static int check_once(uc_test_cluster_t *c, char *why, size_t whylen)
{
    char first[VIEW_MAX] = "";
    char view[VIEW_MAX];
    char info[8192];
    int alive_replica[UC_TEST_CLUSTER_NODES] = {0};
    int have_first = 0;

    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        int doubt;
        if (!running(c, i)) {
            continue;
        }
        if (text_command(c, i, "CLUSTER", "INFO", info, sizeof(info)) != 0 ||
            strstr(info, "cluster_state:ok") == NULL) {
            snprintf(why, whylen, "node %d: cluster_state not ok", i);
            return -1;
        }
        if (view_of(c, i, view, sizeof(view), &doubt, alive_replica) != 0) {
            snprintf(why, whylen, "node %d: no CLUSTER NODES", i);
            return -1;
        }
        if (doubt) {
            snprintf(why, whylen, "node %d: a node in doubt:\n%s", i, view);
            return -1;
        }
        if (!have_first) {
            memcpy(first, view, sizeof(first));
            have_first = 1;
        } else if (strcmp(first, view) != 0) {
            snprintf(why, whylen, "node %d sees\n%sanother node\n%s", i, view,
                     first);
            return -1;
        }
    }
    if (!have_first) {
        snprintf(why, whylen, "no node running");
        return -1;
    }
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        if (!alive_replica[i] || !running(c, i)) {
            continue;
        }
        if (text_command(c, i, "INFO", "replication", info, sizeof(info)) !=
                0 ||
            strstr(info, "master_link_status:up") == NULL) {
            snprintf(why, whylen, "node %d: replica not synced", i);
            return -1;
        }
    }
    return 0;
}

int uc_test_cluster_wait_ok(uc_test_cluster_t *c, unsigned timeout_ms)
{
    uint64_t deadline = uc_test_now_ms() + timeout_ms;
    char why[2 * VIEW_MAX + 128] = "";

    do {
        if (check_once(c, why, sizeof(why)) == 0) {
            return 0;
        }
        uc_test_sleep_ms(50);
    } while (uc_test_now_ms() < deadline);
    fprintf(stderr, "cluster not ready after %u ms: %s\n", timeout_ms, why);
    return -1;
}

void uc_test_cluster_kill(uc_test_cluster_t *c, int i)
{
    uc_test_redis_kill(&c->node[i]);
    c->paused[i] = 0;
}

int uc_test_cluster_restart(uc_test_cluster_t *c, int i)
{
    c->paused[i] = 0;
    return uc_test_redis_restart(&c->node[i]);
}

int uc_test_cluster_pause(uc_test_cluster_t *c, int i)
{
    if (uc_test_redis_signal(&c->node[i], SIGSTOP) != 0) {
        return -1;
    }
    c->paused[i] = 1;
    return 0;
}

int uc_test_cluster_resume(uc_test_cluster_t *c, int i)
{
    if (uc_test_redis_signal(&c->node[i], SIGCONT) != 0) {
        return -1;
    }
    c->paused[i] = 0;
    return 0;
}

int uc_test_cluster_owners(const uc_test_cluster_t *c, int asked,
                           int owner[UC_TEST_CLUSTER_SLOTS])
{
    char *text = malloc(65536);
    char *rest = text;
    char *line;

    for (int s = 0; s < UC_TEST_CLUSTER_SLOTS; s++) {
        owner[s] = -1;
    }
    if (text == NULL ||
        text_command(c, asked, "CLUSTER", "NODES", text, 65536) != 0) {
        free(text);
        return -1;
    }
    while ((line = next_token(&rest, '\n')) != NULL) {
        fields_t fl;
        int idx;
        split(line, &fl);
        if (fl.n < 9 || !has_flag(fl.f[2], "master")) {
            continue;
        }
        idx = uc_test_cluster_node_of_port(c, addr_port(fl.f[1]));
        for (int k = 8; k < fl.n; k++) {
            char *end;
            long lo;
            long hi;
            if (fl.f[k][0] == '[') {
                continue;
            }
            lo = strtol(fl.f[k], &end, 10);
            hi = *end == '-' ? strtol(end + 1, NULL, 10) : lo;
            for (long s = lo; s >= 0 && s <= hi && s < UC_TEST_CLUSTER_SLOTS;
                 s++) {
                owner[s] = idx;
            }
        }
    }
    free(text);
    return 0;
}

int uc_test_cluster_slot_primary(const uc_test_cluster_t *c, unsigned slot)
{
    int *owner = malloc(UC_TEST_CLUSTER_SLOTS * sizeof(*owner));
    int found = -1;

    if (owner == NULL || slot >= UC_TEST_CLUSTER_SLOTS) {
        free(owner);
        return -1;
    }
    for (int i = 0; i < UC_TEST_CLUSTER_NODES; i++) {
        if (running(c, i) && uc_test_cluster_owners(c, i, owner) == 0) {
            found = owner[slot];
            break;
        }
    }
    free(owner);
    return found;
}

int uc_test_cluster_node_id(const uc_test_cluster_t *c, int i, char *id,
                            size_t cap)
{
    redisContext *ctx = uc_test_cluster_connect(c, i);
    redisReply *r;
    int rc = -1;

    if (ctx == NULL) {
        return -1;
    }
    r = redisCommand(ctx, "CLUSTER MYID");
    if (r != NULL &&
        (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
        r->len > 0 && r->len < cap) {
        memcpy(id, r->str, r->len);
        id[r->len] = '\0';
        rc = 0;
    }
    freeReplyObject(r);
    redisFree(ctx);
    return rc;
}

int uc_test_cluster_reshard(uc_test_cluster_t *c, int from, int to,
                            unsigned nslots, unsigned timeout_ms)
{
    char from_id[64], to_id[64], addr[32], n[16], log[600];
    const char *argv[16];
    int argc = 0;

    if (uc_test_cluster_node_id(c, from, from_id, sizeof(from_id)) != 0 ||
        uc_test_cluster_node_id(c, to, to_id, sizeof(to_id)) != 0) {
        fprintf(stderr, "reshard: no node id of node %d or %d\n", from, to);
        return -1;
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", c->node[from].port);
    snprintf(n, sizeof(n), "%u", nslots);
    snprintf(log, sizeof(log), "%s/reshard-%d-%d-%llu.log", c->dir, from, to,
             (unsigned long long)uc_test_now_ms());
    argv[argc++] = "redis-cli";
    argv[argc++] = "--cluster";
    argv[argc++] = "reshard";
    argv[argc++] = addr;
    argv[argc++] = "--cluster-from";
    argv[argc++] = from_id;
    argv[argc++] = "--cluster-to";
    argv[argc++] = to_id;
    argv[argc++] = "--cluster-slots";
    argv[argc++] = n;
    argv[argc++] = "--cluster-yes";
    argv[argc] = NULL;
    return run_cli(argv, log, timeout_ms, "--cluster reshard");
}

/* A reply that must be +OK (or, for MIGRATE, +NOKEY); prints it if not. */
static int reply_ok(redisReply *r, const char *what)
{
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS &&
             (strcmp(r->str, "OK") == 0 || strcmp(r->str, "NOKEY") == 0);

    if (!ok) {
        fprintf(stderr, "%s: %s\n", what,
                r == NULL                      ? "no reply"
                : r->type == REDIS_REPLY_ERROR ? r->str
                                               : "unexpected reply");
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Moves every key of `slot` from the node of src to port `to_port`, in
 * bounded rounds of GETKEYSINSLOT + MIGRATE. 0 or -1. */
static int move_keys(redisContext *src, int to_port, unsigned slot)
{
    for (int round = 0; round < 1000; round++) {
        redisReply *keys =
            redisCommand(src, "CLUSTER GETKEYSINSLOT %u 100", slot);
        size_t n;

        if (keys == NULL || keys->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "GETKEYSINSLOT %u: %s\n", slot,
                    keys != NULL && keys->type == REDIS_REPLY_ERROR
                        ? keys->str
                        : "no array");
            freeReplyObject(keys);
            return -1;
        }
        n = keys->elements;
        for (size_t k = 0; k < n; k++) {
            const redisReply *key = keys->element[k];
            if (reply_ok(redisCommand(src, "MIGRATE 127.0.0.1 %d %b 0 5000",
                                      to_port, key->str, (size_t)key->len),
                         "MIGRATE") != 0) {
                freeReplyObject(keys);
                return -1;
            }
        }
        freeReplyObject(keys);
        if (n == 0) {
            return 0;
        }
    }
    fprintf(stderr, "slot %u: keys still arriving after 1000 rounds\n", slot);
    return -1;
}

int uc_test_cluster_migrate_begin(uc_test_cluster_t *c, int from, int to,
                                  const unsigned *slots, size_t n)
{
    char from_id[64], to_id[64];
    redisContext *src = NULL;
    redisContext *dst = NULL;
    int rc = -1;

    if (uc_test_cluster_node_id(c, from, from_id, sizeof(from_id)) != 0 ||
        uc_test_cluster_node_id(c, to, to_id, sizeof(to_id)) != 0) {
        return -1;
    }
    src = uc_test_cluster_connect(c, from);
    dst = uc_test_cluster_connect(c, to);
    if (src == NULL || dst == NULL) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        /* The importing side first, as redis-cli does: a client sent to
         * the target by an ASK must find it ready. */
        if (reply_ok(redisCommand(dst, "CLUSTER SETSLOT %u IMPORTING %s",
                                  slots[i], from_id),
                     "SETSLOT IMPORTING") != 0 ||
            reply_ok(redisCommand(src, "CLUSTER SETSLOT %u MIGRATING %s",
                                  slots[i], to_id),
                     "SETSLOT MIGRATING") != 0 ||
            move_keys(src, c->node[to].port, slots[i]) != 0) {
            goto done;
        }
    }
    rc = 0;
done:
    redisFree(src);
    redisFree(dst);
    return rc;
}

int uc_test_cluster_migrate_end(uc_test_cluster_t *c, int from, int to,
                                const unsigned *slots, size_t n)
{
    char to_id[64];
    redisContext *src = NULL;
    int rc = -1;

    if (uc_test_cluster_node_id(c, to, to_id, sizeof(to_id)) != 0) {
        return -1;
    }
    src = uc_test_cluster_connect(c, from);
    if (src == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (move_keys(src, c->node[to].port, slots[i]) != 0) {
            goto done;
        }
    }
    /* The target, then the source, then every other primary: the order
     * of redis-cli, so that no node points a client back and forth. */
    for (int pass = 0; pass < 3; pass++) {
        for (int j = 0; j < UC_TEST_CLUSTER_NODES; j++) {
            redisContext *ctx;
            int mine = (pass == 0 && j == to) || (pass == 1 && j == from) ||
                       (pass == 2 && j != to && j != from && running(c, j) &&
                        uc_test_cluster_is_primary(c, j) == 1);
            if (!mine) {
                continue;
            }
            ctx = uc_test_cluster_connect(c, j);
            if (ctx == NULL) {
                goto done;
            }
            for (size_t i = 0; i < n; i++) {
                if (reply_ok(redisCommand(ctx, "CLUSTER SETSLOT %u NODE %s",
                                          slots[i], to_id),
                             "SETSLOT NODE") != 0) {
                    redisFree(ctx);
                    goto done;
                }
            }
            redisFree(ctx);
        }
    }
    rc = 0;
done:
    redisFree(src);
    return rc;
}
