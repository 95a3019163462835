/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the database backends (sqlite.c, pg.c) and defined in
 * db.c. Not part of the db.h interface: only the backend files include this
 * header, so that what the two backends have in common is written once.
 */
#ifndef UQ_SERVER_DB_INT_H
#define UQ_SERVER_DB_INT_H

#include "db.h"

/* A backend handle's logging callback, as given in uq_db_options_t. */
typedef struct {
    uq_db_log_fn fn; /* may be NULL: nothing is logged */
    void *arg;
} uq__db_logger_t;

/*
 * Formats a message and hands it to lg's callback at `level` (levels as
 * uc_log_level_t); does nothing without a callback. A message longer than
 * the internal buffer is cut short rather than dropped. Never fails.
 */
void uq__db_logf(const uq__db_logger_t *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
