/* SPDX-License-Identifier: MIT */
/* Placeholder until the redis backend lands. */
#include "backend.h"
int uc__redis_create(const uc__env_t *env, uc__backend_t **out, char *err,
                     size_t errlen)
{
    (void)env; (void)out; (void)err; (void)errlen;
    return UC_ENOTSUP;
}
