/* SPDX-License-Identifier: MIT */
/*
 * uc-minimal-server: the reference that bench/api-bench holds utxoiq-api's
 * cached stats endpoint against. It is the least an HTTP service backed by
 * Redis can do per request: a libmicrohttpd daemon started with the same
 * flags and options as utxoiq-api (src/server/http.c: internal epoll thread
 * pool, turbo, ITC, 32 KiB connection memory, backlog 1024) whose handler
 * does one synchronous hiredis GET of one fixed key and answers its value
 * as `application/json`. No routing, no JSON, no pool, no breaker, no
 * metrics: whatever the service spends beyond this is its own overhead.
 *
 * Each MHD thread owns one Redis connection, made on its first request and
 * freed when the thread ends (a pthread key destructor), so the handler
 * never waits on a lock. A failed GET answers 503 and drops the connection;
 * the next request reconnects. The process runs until SIGTERM or SIGINT.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include "bench_util.h"

#define KEY_MAX 512
#define HOST_MAX 256

/* Everything the handler reads; set up before the daemon starts, read-only
 * afterwards except for the per-thread connections behind `conn_key`. */
typedef struct {
    char redis_host[HOST_MAX];
    int redis_port;
    char key[KEY_MAX];
    pthread_key_t conn_key;
} ms_server_t;

static void usage(void)
{
    fprintf(stderr, "usage: uc-minimal-server --port P --redis-port R "
                    "[--redis-host 127.0.0.1] [--key K] [--threads N]\n");
}

/* Copies src into dst (capacity cap) when it fits; returns 0, or -1 with dst
 * untouched when src is too long. */
static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

static void conn_free(void *p)
{
    redisFree(p);
}

/* Returns this thread's Redis connection, connecting on first use, or NULL
 * when Redis cannot be reached (the caller answers 503). */
static redisContext *thread_conn(ms_server_t *s)
{
    redisContext *c = pthread_getspecific(s->conn_key);
    struct timeval tv = {1, 0};

    if (c != NULL) {
        return c;
    }
    c = redisConnectWithTimeout(s->redis_host, s->redis_port, tv);
    if (c == NULL) {
        return NULL;
    }
    if (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK ||
        pthread_setspecific(s->conn_key, c) != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Forgets this thread's connection after an error, so the next request
 * starts on a fresh one instead of a reply stream out of step. */
static void thread_conn_drop(ms_server_t *s)
{
    redisContext *c = pthread_getspecific(s->conn_key);
    if (c != NULL) {
        pthread_setspecific(s->conn_key, NULL);
        redisFree(c);
    }
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status,
                              const char *body, size_t len)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, (void *)body,
                                        MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* MHD access handler: answers every request with the value of the key.
 * Like utxoiq-api it queues the response on the handler's last call (the
 * second, once the (empty) body is read), never the first, so MHD keeps
 * the connection alive. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    static const char unavailable[] = "{\"detail\":\"redis unavailable\"}";
    ms_server_t *s = cls;
    redisContext *c;
    redisReply *reply;
    enum MHD_Result ret;

    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    if (*con_cls == NULL) {
        /* Any non-NULL value marks the first call as seen. */
        *con_cls = s;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    c = thread_conn(s);
    if (c == NULL) {
        return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, unavailable,
                      sizeof(unavailable) - 1);
    }
    reply = redisCommand(c, "GET %s", s->key);
    if (reply == NULL) {
        thread_conn_drop(s);
        return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, unavailable,
                      sizeof(unavailable) - 1);
    }
    if (reply->type == REDIS_REPLY_STRING) {
        ret = answer(conn, MHD_HTTP_OK, reply->str, reply->len);
    } else {
        ret = answer(conn, MHD_HTTP_NOT_FOUND, "{}", 2);
    }
    freeReplyObject(reply);
    return ret;
}

/* Parses the command line into *s, *port and *threads; returns 0, or -1
 * after printing why. */
static int parse_args(int argc, char **argv, ms_server_t *s, long *port,
                      long *threads)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x = 0;
        if (v == NULL) {
            usage();
            return -1;
        }
        i++;
        if (strcmp(a, "--port") == 0 &&
            uc_bench_parse_long(v, 1, 65535, &x) == 0) {
            *port = x;
        } else if (strcmp(a, "--redis-port") == 0 &&
                   uc_bench_parse_long(v, 1, 65535, &x) == 0) {
            s->redis_port = (int)x;
        } else if (strcmp(a, "--threads") == 0 &&
                   uc_bench_parse_long(v, 1, 256, &x) == 0) {
            *threads = x;
        } else if (strcmp(a, "--redis-host") == 0 &&
                   copy_str(s->redis_host, sizeof(s->redis_host), v) == 0) {
        } else if (strcmp(a, "--key") == 0 &&
                   copy_str(s->key, sizeof(s->key), v) == 0) {
        } else {
            fprintf(stderr, "uc-minimal-server: bad argument '%s'\n", a);
            usage();
            return -1;
        }
    }
    if (*port == 0 || s->redis_port == 0) {
        usage();
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    ms_server_t s;
    long port = 0;
    long threads = 4;
    struct sockaddr_in sa;
    struct MHD_Daemon *d = NULL;
    sigset_t set;
    int sig = 0;

    memset(&s, 0, sizeof(s));
    (void)copy_str(s.redis_host, sizeof(s.redis_host), "127.0.0.1");
    (void)copy_str(s.key, sizeof(s.key), "bench:minimal");
    if (parse_args(argc, argv, &s, &port, &threads) != 0) {
        return 2;
    }
    if (pthread_key_create(&s.conn_key, conn_free) != 0) {
        fprintf(stderr, "uc-minimal-server: pthread_key_create failed\n");
        return 1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    /* Blocked before the daemon starts so its threads inherit the mask and
     * sigwait below is the only taker; the same arrangement as the service. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_USE_ITC,
        (uint16_t)port, NULL, NULL, on_request, &s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(32 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "uc-minimal-server: cannot listen on 127.0.0.1:%ld\n",
                port);
        pthread_key_delete(s.conn_key);
        return 1;
    }
    fprintf(stderr,
            "uc-minimal-server: http://127.0.0.1:%ld/ threads=%ld "
            "redis=%s:%d key=%s\n",
            port, threads, s.redis_host, s.redis_port, s.key);

    while (sigwait(&set, &sig) != 0) {
    }
    /* Stopping the daemon joins its threads, whose key destructors free the
     * Redis connections; only then may the key go. */
    MHD_stop_daemon(d);
    pthread_key_delete(s.conn_key);
    return 0;
}
