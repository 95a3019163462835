/* SPDX-License-Identifier: MIT */
/*
 * Names and messages of the status codes, both generated from UC_ERRNO_MAP
 * so that a new code cannot be added without its message.
 */
#include "utxocache/error.h"
#include "utxocache/utxocache.h"

const char *uc_strerror(int status)
{
    switch (status) {
#define UC__ERR_MSG(name, value, msg)                                          \
    case (value):                                                              \
        return (msg);
        UC_ERRNO_MAP(UC__ERR_MSG)
#undef UC__ERR_MSG
    default:
        return "unknown status";
    }
}

const char *uc_err_name(int status)
{
    switch (status) {
#define UC__ERR_NAME(name, value, msg)                                         \
    case (value):                                                              \
        return "UC_" #name;
        UC_ERRNO_MAP(UC__ERR_NAME)
#undef UC__ERR_NAME
    default:
        return "UC_UNKNOWN";
    }
}

const char *uc_version(void)
{
    return UC_VERSION_STRING;
}
