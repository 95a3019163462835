/* SPDX-License-Identifier: MIT */
/*
 * The one error table of the database layer: every status a db call can
 * return, its message, how loudly a failure of that kind is logged, and which
 * codes of each driver (PostgreSQL's SQLSTATE, SQLite's result codes) mean
 * it. A driver never decides a status on its own: it hands its code to
 * uq__db_status_of_sqlstate() or uq__db_status_of_sqlite(), so that the same
 * trouble reads the same on both backends and changing a mapping is one edit
 * here.
 */
#include "db.h"
#include "db_int.h"

#include <sqlite3.h>
#include <string.h>

/* Room for the codes of one status; the table's longest row fits. */
#define CODES_MAX 8

typedef struct {
    int status;
    const char *message;
    int log_level; /* uc_log_level_t: 1 info, 2 warning, 3 error */
    /* SQLSTATEs: five characters for one code, two for a whole class. */
    const char *sqlstate[CODES_MAX];
    /* SQLite primary result codes (the low byte of an extended code). */
    int sqlite[CODES_MAX];
} error_row_t;

/*
 * Order matters only where a code could match two rows: the first match
 * wins, so exact SQLSTATEs come before the classes that contain them.
 * Zero ends a row's SQLite codes (SQLITE_OK is never a failure).
 */
static const error_row_t table[] = {
    {UQ_DB_OK, "success", 0, {NULL}, {0}},
    {UQ_DB_NOTFOUND, "not found", 0, {NULL}, {0}},
    /* The database says it cannot take writes: a read-only transaction (a
     * standby, or default_transaction_read_only), a full disk, a file that
     * is read-only, full or was replaced (SQLite's commit-hook refusal is
     * mapped by uq__db_status_of_sqlite() itself). */
    {UQ_DB_EREADONLY,
     "database cannot write",
     3,
     {"25006", "53100"},
     {SQLITE_READONLY, SQLITE_FULL, SQLITE_PERM}},
    {UQ_DB_ENOMEM, "out of memory", 3, {"53200"}, {SQLITE_NOMEM}},
    /* Connection trouble, a server shutting down, too many connections;
     * a file that cannot be opened or read. */
    {UQ_DB_EUNAVAILABLE,
     "database unavailable",
     3,
     {"57P01", "57P02", "57P03", "53300", "08"},
     {SQLITE_IOERR, SQLITE_CANTOPEN}},
    /* A statement or lock timeout, a serialization failure, a deadlock;
     * SQLite's busy lock (after busy_timeout) and table lock. Worth a retry
     * later, so a warning rather than an error. */
    {UQ_DB_EBUSY,
     "database busy",
     2,
     {"57014", "55P03", "40001", "40P01"},
     {SQLITE_BUSY, SQLITE_LOCKED}},
    /* Integrity constraints: the caller's data, not the database's health. */
    {UQ_DB_ECONSTRAINT, "constraint violated", 1, {"23"}, {SQLITE_CONSTRAINT}},
    /* A data exception (a bad uuid, bad json, a value out of range); SQLite
     * has no such class: it stores what it is given. */
    {UQ_DB_EINVAL, "invalid argument", 1, {"22"}, {SQLITE_MISMATCH}},
    {UQ_DB_ECONFIG, "invalid database configuration", 3, {NULL}, {0}},
    /* Anything else: logged in full by the driver. */
    {UQ_DB_EIO, "database error", 3, {NULL}, {0}},
};

#define NROWS (sizeof(table) / sizeof(table[0]))

static const error_row_t *row_of(int status)
{
    for (size_t i = 0; i < NROWS; i++) {
        if (table[i].status == status) {
            return &table[i];
        }
    }
    return NULL;
}

const char *uq_db_strerror(int status)
{
    const error_row_t *r = row_of(status);
    return r != NULL ? r->message : "unknown status";
}

int uq__db_log_level(int status)
{
    const error_row_t *r = row_of(status);
    return r != NULL ? r->log_level : 3;
}

int uq__db_status_of_sqlstate(const char *state)
{
    if (state == NULL || strlen(state) != 5) {
        return UQ_DB_EIO;
    }
    for (size_t i = 0; i < NROWS; i++) {
        for (int k = 0; k < CODES_MAX && table[i].sqlstate[k] != NULL; k++) {
            const char *code = table[i].sqlstate[k];
            if (strncmp(state, code, strlen(code)) == 0) {
                return table[i].status;
            }
        }
    }
    return UQ_DB_EIO;
}

int uq__db_status_of_sqlite(int rc)
{
    int prim = rc & 0xff;

    if (prim == SQLITE_OK || prim == SQLITE_ROW || prim == SQLITE_DONE) {
        return UQ_DB_OK;
    }
    /* The commit hook refuses when the file was deleted or replaced since
     * it was opened (see the SQLite driver): the write cannot land, which is
     * what EREADONLY tells readiness. */
    if (rc == SQLITE_CONSTRAINT_COMMITHOOK) {
        return UQ_DB_EREADONLY;
    }
    for (size_t i = 0; i < NROWS; i++) {
        for (int k = 0; k < CODES_MAX && table[i].sqlite[k] != 0; k++) {
            if (table[i].sqlite[k] == prim) {
                return table[i].status;
            }
        }
    }
    return UQ_DB_EIO;
}
