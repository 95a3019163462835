/* SPDX-License-Identifier: MIT */
/*
 * The bounded ring of ring.h: one allocation of cap records, a write index
 * that wraps, and a count that stops at cap. Record i (oldest first) lives
 * at (head - count + i) mod cap.
 */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

int uq_ring_init(uq_ring_t *r, size_t elem, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if (elem == 0 || cap == 0 || cap > UQ_RING_BYTES_MAX / elem) {
        return -1;
    }
    r->buf = calloc(cap, elem);
    if (r->buf == NULL) {
        return -1;
    }
    r->elem = elem;
    r->cap = cap;
    return 0;
}

void uq_ring_release(uq_ring_t *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

void uq_ring_push(uq_ring_t *r, const void *rec)
{
    memcpy(r->buf + r->head * r->elem, rec, r->elem);
    r->head = r->head + 1 == r->cap ? 0 : r->head + 1;
    if (r->count < r->cap) {
        r->count++;
    }
}

size_t uq_ring_count(const uq_ring_t *r)
{
    return r->count;
}

const void *uq_ring_at(const uq_ring_t *r, size_t i)
{
    if (i >= r->count) {
        return NULL;
    }
    size_t slot = (r->head + r->cap - r->count + i) % r->cap;
    return r->buf + slot * r->elem;
}

const void *uq_ring_last(const uq_ring_t *r)
{
    return r->count == 0 ? NULL : uq_ring_at(r, r->count - 1);
}

size_t uq_ring_bytes(const uq_ring_t *r)
{
    return r->elem * r->cap;
}
