/* SPDX-License-Identifier: MIT */
/*
 * The reply guard on hiredis' reader: a reply that announces more array
 * elements than the limit fails before anything is allocated (under ASan, an
 * unguarded reader asked for 8 GB would abort the test), nested arrays count
 * toward one reply's total, each reply starts its count afresh, and replies
 * within the limit come through as hiredis builds them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "reply_guard.h"

static redisReader *guarded(uc__reply_guard_t *g)
{
    redisReader *r = redisReaderCreate();
    assert_non_null(r);
    uc__reply_guard_install(r, g);
    return r;
}

/* Feeds s and reads one reply: REDIS_OK or REDIS_ERR, *out the reply. */
static int feed_get(redisReader *r, const char *s, redisReply **out)
{
    void *v = NULL;
    assert_int_equal(redisReaderFeed(r, s, strlen(s)), REDIS_OK);
    int rc = redisReaderGetReply(r, &v);
    *out = v;
    return rc;
}

static void huge_count_refused(void **state)
{
    uc__reply_guard_t g;
    redisReply *rep = NULL;
    (void)state;
    redisReader *r = guarded(&g);
    assert_int_equal(feed_get(r, "*1000000000\r\n", &rep), REDIS_ERR);
    assert_null(rep);
    assert_int_equal(r->err, REDIS_ERR_OOM);
    redisReaderFree(r);
}

static void nested_total_counts(void **state)
{
    uc__reply_guard_t g;
    redisReply *rep = NULL;
    (void)state;
    redisReader *r = guarded(&g);
    g.limit = 10;
    /* 2 + 4 + 4 = 10: allowed. */
    assert_int_equal(feed_get(r,
                              "*2\r\n*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n*4\r\n:"
                              "1\r\n:2\r\n:3\r\n:4\r\n",
                              &rep),
                     REDIS_OK);
    assert_non_null(rep);
    assert_int_equal(rep->elements, 2);
    assert_int_equal(rep->element[1]->element[3]->integer, 4);
    freeReplyObject(rep);
    /* A new reply counts from 0 again, and 2 + 4 + 5 = 11 is refused. */
    assert_int_equal(
        feed_get(r, "*2\r\n*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n*5\r\n", &rep),
        REDIS_ERR);
    assert_null(rep);
    redisReaderFree(r);
}

static void plain_replies_pass(void **state)
{
    uc__reply_guard_t g;
    redisReply *rep = NULL;
    (void)state;
    redisReader *r = guarded(&g);
    assert_int_equal(g.limit, UC__REPLY_ELEMENTS_DEFAULT);
    assert_int_equal(feed_get(r, "$5\r\nhello\r\n", &rep), REDIS_OK);
    assert_string_equal(rep->str, "hello");
    freeReplyObject(rep);
    assert_int_equal(feed_get(r, "*-1\r\n", &rep), REDIS_OK);
    assert_int_equal(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);
    assert_int_equal(feed_get(r, "*0\r\n", &rep), REDIS_OK);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    freeReplyObject(rep);
    redisReaderFree(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(huge_count_refused),
        cmocka_unit_test(nested_total_counts),
        cmocka_unit_test(plain_replies_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
