/* SPDX-License-Identifier: MIT */
/*
 * The load and the checker of fault_load.h. Each worker thread owns one
 * libcurl easy handle (keep-alive, 15 s timeout so a hang shows up as a
 * missing answer rather than a stuck test) and a preallocated array of
 * records, so recording never allocates or locks. The checker sorts the
 * acknowledged writes of each rating by the time their answer arrived and
 * counts, for every read, how many of them the read must already see.
 */
#include "fault_load.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define UC_FAULT_BODY_CAP (64 * 1024)

typedef struct {
    struct uc_fault_load *load;
    int index;  /* reader or writer number */
    int writer; /* 1 for a writer */
    uc_fault_op_t *ops;
    size_t nops;
} worker_t;

struct uc_fault_load {
    uc_fault_opts_t o;
    uint64_t t0_us;
    atomic_int stop; /* a thread failed to start, or uc_fault_stop() */
    pthread_t *threads;
    worker_t *workers;
    int nthreads;
    uc_fault_op_t *merged;
    size_t nmerged;
};

typedef struct {
    char *p;
    size_t len;
    int hit;
} reply_t;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t uc_fault_now(const uc_fault_load_t *l)
{
    return mono_us() - l->t0_us;
}

int uc_fault_rating_of(size_t i)
{
    return (int)(i * 7 % 5) + 1;
}

/* Keeps at most UC_FAULT_BODY_CAP bytes of the body; the rest is dropped. */
static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    reply_t *r = arg;
    size_t len = sz * n;
    size_t take = len;
    if (r->len + take > UC_FAULT_BODY_CAP) {
        take = UC_FAULT_BODY_CAP - r->len;
    }
    if (take > 0) {
        char *q = realloc(r->p, r->len + take + 1);
        if (q == NULL) {
            return 0;
        }
        memcpy(q + r->len, p, take);
        r->len += take;
        q[r->len] = '\0';
        r->p = q;
    }
    return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    reply_t *r = arg;
    size_t len = sz * n;
    static const char name[] = "x-cache: hit";
    if (len >= sizeof(name) - 1 &&
        strncasecmp(p, name, sizeof(name) - 1) == 0) {
        r->hit = 1;
    }
    return len;
}

/* One request; fills status, hit and (for reads) the parsed figures. */
static void request(CURL *c, const uc_fault_load_t *l, const char *key,
                    const char *body, uc_fault_op_t *op)
{
    char url[512];
    char auth[256];
    struct curl_slist *hdrs = NULL;
    reply_t r = {NULL, 0, 0};

    curl_easy_reset(c);
    if (body != NULL) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/feedback/rate",
                 l->o.port);
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        hdrs = curl_slist_append(hdrs, auth);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        hdrs = curl_slist_append(hdrs, "Expect:");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    } else {
        /* Readers may target another instance on the same database. */
        int port = l->o.read_port > 0 ? l->o.read_port : l->o.port;
        snprintf(url, sizeof(url),
                 "http://127.0.0.1:%d/api/v1/feedback/stats/%s", port,
                 l->o.insight);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);

    op->total = -1;
    for (int i = 0; i < 5; i++) {
        op->dist[i] = -1;
    }
    op->start_us = uc_fault_now(l);
    CURLcode rc = curl_easy_perform(c);
    op->end_us = uc_fault_now(l);
    curl_slist_free_all(hdrs);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &op->status);
    }
    op->hit = r.hit;
    if (op->kind == UC_FAULT_READ && op->status == 200 && r.p != NULL) {
        json_t *j = json_loadb(r.p, r.len, 0, NULL);
        json_t *t = json_object_get(j, "total_ratings");
        json_t *d = json_object_get(j, "rating_distribution");
        if (json_is_integer(t)) {
            op->total = (long long)json_integer_value(t);
        }
        for (int i = 0; i < 5; i++) {
            char name[2] = {(char)('1' + i), '\0'};
            json_t *v = json_object_get(d, name);
            if (json_is_integer(v)) {
                op->dist[i] = (long long)json_integer_value(v);
            }
        }
        json_decref(j);
    }
    free(r.p);
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    if (ms > 0) {
        nanosleep(&ts, NULL);
    }
}

/* A pause of 0..2*ms, so that the interleavings differ from run to run
 * (and repeat for a given seed). */
static unsigned jitter(unsigned *rnd, unsigned ms)
{
    return ms == 0 ? 0 : (unsigned)rand_r(rnd) % (2 * ms + 1);
}

static void *run(void *arg)
{
    worker_t *w = arg;
    const uc_fault_load_t *l = w->load;
    unsigned rnd =
        l->o.seed * 2654435761u + (unsigned)w->index * 2u + (unsigned)w->writer;
    uint64_t end = (uint64_t)l->o.duration_ms * 1000u;
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return NULL;
    }
    for (size_t j = 0; j < l->o.max_ops && uc_fault_now(l) < end &&
                       !atomic_load(&w->load->stop);
         j++) {
        uc_fault_op_t *op = &w->ops[w->nops];
        memset(op, 0, sizeof(*op));
        if (w->writer) {
            size_t k = (size_t)w->index + j * (size_t)l->o.writers;
            char body[256];
            if (k >= l->o.nkeys) {
                break;
            }
            op->kind = UC_FAULT_WRITE;
            op->rating = uc_fault_rating_of(k);
            snprintf(body, sizeof(body),
                     "{\"insight_id\":\"%s\",\"rating\":%d}", l->o.insight,
                     op->rating);
            request(c, l, l->o.keys[k], body, op);
            w->nops++;
            pause_ms(jitter(&rnd, l->o.write_gap_ms));
        } else {
            op->kind = UC_FAULT_READ;
            request(c, l, NULL, NULL, op);
            w->nops++;
            pause_ms(jitter(&rnd, l->o.read_gap_ms));
        }
    }
    curl_easy_cleanup(c);
    return NULL;
}

int uc_fault_start(uc_fault_load_t **out, const uc_fault_opts_t *o)
{
    uc_fault_load_t *l = calloc(1, sizeof(*l));
    int n = o->readers + o->writers;
    if (l == NULL || n <= 0 || o->max_ops == 0) {
        free(l);
        return -1;
    }
    l->o = *o;
    l->threads = calloc((size_t)n, sizeof(*l->threads));
    l->workers = calloc((size_t)n, sizeof(*l->workers));
    if (l->threads == NULL || l->workers == NULL) {
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        worker_t *w = &l->workers[i];
        w->load = l;
        w->writer = i < o->writers;
        w->index = w->writer ? i : i - o->writers;
        w->ops = calloc(o->max_ops, sizeof(*w->ops));
        if (w->ops == NULL) {
            goto fail;
        }
    }
    l->t0_us = mono_us();
    for (int i = 0; i < n; i++) {
        if (pthread_create(&l->threads[i], NULL, run, &l->workers[i]) != 0) {
            atomic_store(&l->stop, 1);
            goto fail;
        }
        l->nthreads++;
    }
    *out = l;
    return 0;
fail:
    uc_fault_free(l);
    return -1;
}

void uc_fault_stop(uc_fault_load_t *l)
{
    atomic_store(&l->stop, 1);
}

void uc_fault_wait(uc_fault_load_t *l)
{
    size_t total = 0;
    for (int i = 0; i < l->nthreads; i++) {
        pthread_join(l->threads[i], NULL);
    }
    l->nthreads = 0;
    for (int i = 0; i < l->o.readers + l->o.writers; i++) {
        total += l->workers[i].nops;
    }
    free(l->merged);
    l->merged = calloc(total > 0 ? total : 1, sizeof(*l->merged));
    l->nmerged = 0;
    if (l->merged == NULL) {
        return;
    }
    for (int i = 0; i < l->o.readers + l->o.writers; i++) {
        memcpy(l->merged + l->nmerged, l->workers[i].ops,
               l->workers[i].nops * sizeof(uc_fault_op_t));
        l->nmerged += l->workers[i].nops;
    }
}

const uc_fault_op_t *uc_fault_ops(const uc_fault_load_t *l, size_t *n)
{
    *n = l->nmerged;
    return l->merged;
}

void uc_fault_free(uc_fault_load_t *l)
{
    if (l == NULL) {
        return;
    }
    uc_fault_wait(l);
    if (l->workers != NULL) {
        for (int i = 0; i < l->o.readers + l->o.writers; i++) {
            free(l->workers[i].ops);
        }
    }
    free(l->workers);
    free(l->threads);
    free(l->merged);
    free(l);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Number of values in sorted v[0..n) strictly below t. */
static size_t below(const uint64_t *v, size_t n, uint64_t t)
{
    size_t lo = 0;
    size_t hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void uc_fault_check(const uc_fault_load_t *l, uc_fault_check_t *c)
{
    size_t n;
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    uc_fault_check_ops(ops, n, c);
}

void uc_fault_check_ops(const uc_fault_op_t *ops, size_t n, uc_fault_check_t *c)
{
    uint64_t *acked[5] = {NULL};
    uint64_t *sent[5] = {NULL};
    size_t nacked[5] = {0};
    size_t nsent[5] = {0};

    memset(c, 0, sizeof(*c));
    for (int r = 0; r < 5; r++) {
        acked[r] = calloc(n + 1, sizeof(uint64_t));
        sent[r] = calloc(n + 1, sizeof(uint64_t));
        if (acked[r] == NULL || sent[r] == NULL) {
            c->impossible_reads = (size_t)-1; /* make the caller fail */
            goto cleanup;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const uc_fault_op_t *op = &ops[i];
        if (op->status >= 500) {
            c->status_5xx++;
        } else if (op->status == 0) {
            c->no_answer++;
        }
        if (op->kind != UC_FAULT_WRITE) {
            continue;
        }
        int r = op->rating - 1;
        c->writes++;
        sent[r][nsent[r]++] = op->start_us;
        if (op->status == 200) {
            c->writes_ok++;
            acked[r][nacked[r]++] = op->end_us;
        }
    }
    for (int r = 0; r < 5; r++) {
        qsort(acked[r], nacked[r], sizeof(uint64_t), cmp_u64);
        qsort(sent[r], nsent[r], sizeof(uint64_t), cmp_u64);
    }
    for (size_t i = 0; i < n; i++) {
        const uc_fault_op_t *op = &ops[i];
        int stale = 0;
        int impossible = 0;
        if (op->kind != UC_FAULT_READ) {
            continue;
        }
        c->reads++;
        if (op->status != 200) {
            continue;
        }
        c->reads_ok++;
        c->hits += op->hit != 0;
        for (int r = 0; r < 5; r++) {
            long long seen = op->dist[r];
            size_t must = below(acked[r], nacked[r], op->start_us);
            size_t must_end = below(acked[r], nacked[r], op->end_us);
            size_t may = below(sent[r], nsent[r], op->end_us);
            if (seen < 0 || (unsigned long long)seen > may) {
                impossible = 1;
                continue;
            }
            if ((size_t)seen < must) {
                double ms = (double)(op->start_us - acked[r][seen]) / 1000.0;
                stale = ms > UC_FAULT_NEAR_LAG_MS ? 2 : stale > 0 ? stale : 1;
                if (ms > c->max_staleness_ms) {
                    c->max_staleness_ms = ms;
                }
            }
            if ((size_t)seen < must_end) {
                double ms = (double)(op->end_us - acked[r][seen]) / 1000.0;
                if (ms > c->max_lag_ms) {
                    c->max_lag_ms = ms;
                }
            }
        }
        long long sum = 0;
        for (int r = 0; r < 5; r++) {
            sum += op->dist[r];
        }
        if (sum != op->total) {
            impossible = 1;
        }
        c->stale_reads += stale > 0;
        c->stale_beyond_lag += stale > 1;
        c->impossible_reads += (size_t)impossible;
    }
cleanup:
    for (int r = 0; r < 5; r++) {
        free(acked[r]);
        free(sent[r]);
    }
}

double uc_fault_read_pct_ms(const uc_fault_load_t *l, double p,
                            uint64_t from_us, uint64_t to_us, size_t *count)
{
    size_t n;
    size_t k = 0;
    double v = 0;
    const uc_fault_op_t *ops = uc_fault_ops(l, &n);
    double *lat = calloc(n + 1, sizeof(double));
    if (lat == NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == UC_FAULT_READ && ops[i].start_us >= from_us &&
            ops[i].start_us < to_us) {
            lat[k++] = (double)(ops[i].end_us - ops[i].start_us) / 1000.0;
        }
    }
    if (k > 0) {
        qsort(lat, k, sizeof(double), cmp_double);
        size_t idx = (size_t)(p / 100.0 * (double)(k - 1) + 0.5);
        v = lat[idx < k ? idx : k - 1];
    }
    free(lat);
    if (count != NULL) {
        *count = k;
    }
    return v;
}
