/* SPDX-License-Identifier: MIT */
/*
 * A bounded ring of fixed-size records: the newest `cap` records pushed,
 * oldest first. Its memory is allocated once, at init, and never grows; a
 * push into a full ring overwrites the oldest record. The cache history
 * (history.c) keeps its samples in one.
 *
 * Ownership: a uq_ring_t is the caller's struct (uq_ring_init /
 * uq_ring_release); records are copied in and read back in place.
 * Thread safety: none; the owner serialises every call.
 */
#ifndef UQ_SERVER_RING_H
#define UQ_SERVER_RING_H

#include <stddef.h>

/* Upper bound of one ring's memory, whatever it is asked for. */
#define UQ_RING_BYTES_MAX (64u * 1024u * 1024u)

typedef struct {
    unsigned char *buf;
    size_t elem;  /* bytes per record */
    size_t cap;   /* records it holds at most */
    size_t head;  /* where the next push goes */
    size_t count; /* records held, <= cap */
} uq_ring_t;

/*
 * Allocates room for cap records of elem bytes. Returns 0, or -1 (r left
 * zeroed) when elem or cap is 0, elem * cap exceeds UQ_RING_BYTES_MAX, or
 * the allocation fails.
 */
int uq_ring_init(uq_ring_t *r, size_t elem, size_t cap);

/* Frees the records; r is zeroed and may be initialised again. */
void uq_ring_release(uq_ring_t *r);

/* Copies elem bytes from rec in as the newest record, dropping the oldest
 * when the ring is full. */
void uq_ring_push(uq_ring_t *r, const void *rec);

/* Records held. */
size_t uq_ring_count(const uq_ring_t *r);

/* Record i, 0 being the oldest held, or NULL when i >= count. The pointer
 * stays valid until the next push or release. */
const void *uq_ring_at(const uq_ring_t *r, size_t i);

/* The newest record, or NULL when the ring is empty. */
const void *uq_ring_last(const uq_ring_t *r);

/* Bytes of records the ring holds allocated (elem * cap). */
size_t uq_ring_bytes(const uq_ring_t *r);

#endif
