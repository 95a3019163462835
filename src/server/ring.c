/* SPDX-License-Identifier: MIT */
/*
 * The bounded ring of ring.h: one allocation of cap records, a write index
 * that wraps, and a count that stops at cap. Record i (oldest first) lives
 * at (head - count + i) mod cap.
 */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

int uc_ring_init(uc_ring_t *r, size_t elem, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if (elem == 0 || cap == 0 || cap > UC_RING_BYTES_MAX / elem) {
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

void uc_ring_release(uc_ring_t *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

void uc_ring_push(uc_ring_t *r, const void *rec)
{
    memcpy(r->buf + r->head * r->elem, rec, r->elem);
    r->head = r->head + 1 == r->cap ? 0 : r->head + 1;
    if (r->count < r->cap) {
        r->count++;
    }
}

size_t uc_ring_count(const uc_ring_t *r)
{
    return r->count;
}

const void *uc_ring_at(const uc_ring_t *r, size_t i)
{
    if (i >= r->count) {
        return NULL;
    }
    size_t slot = (r->head + r->cap - r->count + i) % r->cap;
    return r->buf + slot * r->elem;
}

const void *uc_ring_last(const uc_ring_t *r)
{
    return r->count == 0 ? NULL : uc_ring_at(r, r->count - 1);
}

size_t uc_ring_bytes(const uc_ring_t *r)
{
    return r->elem * r->cap;
}
