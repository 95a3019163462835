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
#ifndef UC_SERVER_HISTORY_H
#define UC_SERVER_HISTORY_H

#include "app.h"

#define UC_HISTORY_INTERVAL_S_DEFAULT 5
#define UC_HISTORY_SAMPLES_DEFAULT 720
#define UC_HISTORY_SAMPLES_MAX 100000

typedef struct uc_history uc_history_t;

/*
 * Allocates the history of app (interval and size from the environment;
 * out-of-range values are logged and replaced by the defaults) and sets
 * *out. Starts no thread. Returns 0, or -1 when out of memory (logged).
 */
int uc_history_create(uc_app_t *app, uc_history_t **out);

/* Takes the first sample and starts the sampler thread. Returns 0, or -1
 * when the thread cannot be created (logged). */
int uc_history_start(uc_history_t *h);

/* Stops the sampler thread, if it runs; waits for the sample in progress,
 * which the library's own timeouts bound. Accepts NULL. */
void uc_history_stop(uc_history_t *h);

/* Frees the history (stopping it first). Accepts NULL. */
void uc_history_destroy(uc_history_t *h);

/*
 * The loader of keyspace ks (UC_KS_*): uc_api_loader(ks), timed. Each call's
 * duration and count go into app->history (the app is the loader's arg), so
 * the history knows the mean database time a load of that keyspace costs.
 */
uc_loader_fn uc_history_loader(int ks);

/* GET /api/v1/monitoring/cache/history. */
void uc_history_handler(uc_app_t *app, uc_req_t *req, uc_resp_t *res);

#endif
