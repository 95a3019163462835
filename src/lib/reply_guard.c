/* SPDX-License-Identifier: MIT */
/*
 * The reply guard (reply_guard.h): hiredis' own reply functions, with the
 * array constructor counting first. hiredis keeps its default table
 * private, so a reader made for the purpose lends us its pointer; every
 * reader hiredis makes starts with that same table.
 */
#include <pthread.h>

#include "reply_guard.h"

static redisReplyObjectFunctions guarded;
static redisReplyObjectFunctions *plain;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *create_array(const redisReadTask *task, int elements)
{
    uc__reply_guard_t *g = task->privdata;

    if (g != NULL) {
        if (task->parent == NULL) {
            g->used = 0; /* a new reply */
        }
        if (elements < 0 || (size_t)elements > g->limit ||
            g->used > g->limit - (size_t)elements) {
            return NULL; /* the reader fails: "Out of memory" */
        }
        g->used += (size_t)elements;
    }
    return plain->createArray(task, elements);
}

static void init(void)
{
    redisReader *r = redisReaderCreate();

    if (r == NULL) {
        return; /* out of memory: readers stay unguarded */
    }
    plain = r->fn;
    redisReaderFree(r);
    guarded = *plain;
    guarded.createArray = create_array;
}

void uc__reply_guard_install(redisReader *r, uc__reply_guard_t *g)
{
    g->limit = UC__REPLY_ELEMENTS_DEFAULT;
    g->used = 0;
    if (r->fn == NULL) {
        return; /* a reader without objects allocates none */
    }
    pthread_once(&once, init);
    if (r->fn != &guarded) {
        if (plain == NULL || r->fn != plain) {
            return; /* a table of someone else's: leave it */
        }
        r->fn = &guarded;
    }
    r->privdata = g;
}
