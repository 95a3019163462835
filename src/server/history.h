/* SPDX-License-Identifier: MIT */
/*
 * The cache's recent history: a sampler thread copies the library's figures
 * (per keyspace and in total: hits by tier, misses, loads, the time the
 * service's loaders took, stale answers, near-cache memory and evictions,
 * invalidation lag, breaker and channel state) and the service's request
 * latency into a bounded ring every UTXOIQ_HISTORY_INTERVAL_S seconds
 * (default 5), keeping UTXOIQ_HISTORY_SAMPLES samples (default 720: one
 * hour). GET /api/v1/monitoring/cache/history serves the ring, plus a sample
 * taken at request time, as JSON (docs/dashboard.md has its shape).
 *
 * Ownership: the history belongs to the app (app->history); it is created
 * before the cache (the timed loaders read it), started once the cache is
 * open, stopped before the cache is destroyed and destroyed after it.
 * Thread safety: the handler and the timed loaders may run on any thread;
 * create, start, stop and destroy are main's.
 */
#ifndef UQ_SERVER_HISTORY_H
#define UQ_SERVER_HISTORY_H

#include "app.h"

#define UQ_HISTORY_INTERVAL_S_DEFAULT 5
#define UQ_HISTORY_SAMPLES_DEFAULT 720
#define UQ_HISTORY_SAMPLES_MAX 100000

typedef struct uq_history uq_history_t;

/*
 * Allocates the history of app (interval and size from the environment;
 * out-of-range values are logged and replaced by the defaults) and sets
 * *out. Starts no thread. Returns 0, or -1 when out of memory (logged).
 */
int uq_history_create(uq_app_t *app, uq_history_t **out);

/* Takes the first sample and starts the sampler thread. Returns 0, or -1
 * when the thread cannot be created (logged). */
int uq_history_start(uq_history_t *h);

/* Stops the sampler thread, if it runs; waits for the sample in progress,
 * which the library's own timeouts bound. Accepts NULL. */
void uq_history_stop(uq_history_t *h);

/* Frees the history (stopping it first). Accepts NULL. */
void uq_history_destroy(uq_history_t *h);

/*
 * The loader of keyspace ks (UC_KS_*): uq_api_loader(ks), timed. Each call's
 * duration and count go into app->history (the app is the loader's arg), so
 * the history knows the mean database time a load of that keyspace costs.
 */
uc_loader_fn uq_history_loader(int ks);

/* GET /api/v1/monitoring/cache/history. */
void uq_history_handler(uq_app_t *app, uq_req_t *req, uq_resp_t *res);

#endif
