/* SPDX-License-Identifier: MIT */
/*
 * The bounded ring of the service's cache history (src/server/ring.c):
 * records come back oldest first, a full ring drops its oldest record on
 * each push (wraparound), its memory is allocated once and never grows,
 * and sizes past the cap or of zero are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ring.h"

typedef struct {
    uint64_t seq;
    char pad[40];
} rec_t;

static void push_seq(uq_ring_t *r, uint64_t seq)
{
    rec_t x;
    memset(&x, 0, sizeof(x));
    x.seq = seq;
    memset(x.pad, (int)(seq & 0x7f), sizeof(x.pad));
    uq_ring_push(r, &x);
}

static uint64_t seq_at(const uq_ring_t *r, size_t i)
{
    const rec_t *x = uq_ring_at(r, i);
    assert_non_null(x);
    for (size_t k = 0; k < sizeof(x->pad); k++) {
        assert_int_equal(x->pad[k], (char)(x->seq & 0x7f));
    }
    return x->seq;
}

static void empty_ring(void **state)
{
    uq_ring_t r;
    (void)state;
    assert_int_equal(uq_ring_init(&r, sizeof(rec_t), 4), 0);
    assert_int_equal(uq_ring_count(&r), 0);
    assert_null(uq_ring_at(&r, 0));
    assert_null(uq_ring_last(&r));
    assert_int_equal(uq_ring_bytes(&r), 4 * sizeof(rec_t));
    uq_ring_release(&r);
    uq_ring_release(&r); /* twice is harmless: released means zeroed */
}

static void order_before_full(void **state)
{
    uq_ring_t r;
    (void)state;
    assert_int_equal(uq_ring_init(&r, sizeof(rec_t), 5), 0);
    for (uint64_t s = 1; s <= 3; s++) {
        push_seq(&r, s);
    }
    assert_int_equal(uq_ring_count(&r), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(seq_at(&r, i), i + 1);
    }
    assert_null(uq_ring_at(&r, 3));
    assert_int_equal(((const rec_t *)uq_ring_last(&r))->seq, 3);
    uq_ring_release(&r);
}

/* Pushes far past the capacity, checking after each push that exactly the
 * newest cap records are held, oldest first, and the buffer never moved. */
static void wraparound(void **state)
{
    const size_t caps[] = {1, 2, 3, 7, 720};
    (void)state;
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        uq_ring_t r;
        size_t cap = caps[c];
        assert_int_equal(uq_ring_init(&r, sizeof(rec_t), cap), 0);
        const unsigned char *buf = r.buf;
        for (uint64_t s = 1; s <= 3 * cap + 5; s++) {
            push_seq(&r, s);
            size_t n = uq_ring_count(&r);
            assert_int_equal(n, s < cap ? s : cap);
            uint64_t oldest = s - n + 1;
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(seq_at(&r, i), oldest + i);
            }
            assert_null(uq_ring_at(&r, n));
            assert_int_equal(((const rec_t *)uq_ring_last(&r))->seq, s);
            assert_ptr_equal(r.buf, buf);
            assert_int_equal(uq_ring_bytes(&r), cap * sizeof(rec_t));
        }
        uq_ring_release(&r);
    }
}

static void bounds(void **state)
{
    uq_ring_t r;
    (void)state;
    assert_int_equal(uq_ring_init(&r, 0, 10), -1);
    assert_null(r.buf);
    assert_int_equal(uq_ring_init(&r, sizeof(rec_t), 0), -1);
    assert_int_equal(
        uq_ring_init(&r, sizeof(rec_t), UQ_RING_BYTES_MAX / sizeof(rec_t) + 1),
        -1);
    /* elem * cap would overflow size_t: refused, not wrapped. */
    assert_int_equal(uq_ring_init(&r, SIZE_MAX / 2, 3), -1);
    assert_int_equal(
        uq_ring_init(&r, sizeof(rec_t), UQ_RING_BYTES_MAX / sizeof(rec_t)), 0);
    assert_true(uq_ring_bytes(&r) <= UQ_RING_BYTES_MAX);
    uq_ring_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_ring),
        cmocka_unit_test(order_before_full),
        cmocka_unit_test(wraparound),
        cmocka_unit_test(bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
