/* SPDX-License-Identifier: MIT */
/*
 * The migration runner of the database layer, one for both drivers. The
 * drivers keep their schema as lists of versioned migrations in their own
 * SQL; the runner applies the ones not yet recorded in schema_migrations, in
 * version order, each in a transaction of its own that also records it, so
 * a migration is applied whole or not at all. The driver's begin() takes a
 * lock that serialises migrating processes (PostgreSQL's advisory lock,
 * SQLite's write lock), so two processes starting at once apply each
 * migration exactly once: the second waits, then finds it recorded.
 */
#include "db_int.h"

#include <stddef.h>

/* Runs a NULL-terminated list of statements (NULL: none). */
static int exec_all(const uq__db_migrator_t *m, void *arg,
                    const char *const *sql)
{
    int st = UQ_DB_OK;

    for (size_t k = 0; sql != NULL && sql[k] != NULL && st == UQ_DB_OK; k++) {
        st = m->exec(arg, sql[k]);
    }
    return st;
}

int uq__db_migrate_run(const uq__db_migrator_t *m, void *arg,
                       const uq__db_migration_t *list, size_t n,
                       const uq__db_logger_t *log, int *applied)
{
    int count = 0;
    int st = UQ_DB_OK;

    for (size_t i = 0; i < n; i++) {
        const uq__db_migration_t *mig = &list[i];
        int done = 0;

        /* The ledger goes in each transaction, not once before: a database
         * that someone emptied meanwhile gets it back at the next start. */
        st = m->begin(arg);
        if (st == UQ_DB_OK) {
            st = m->exec(arg, m->ledger_sql);
        }
        if (st == UQ_DB_OK) {
            st = m->recorded(arg, mig->version, &done);
        }
        if (st == UQ_DB_OK && !done) {
            st = exec_all(m, arg, mig->sql);
            if (st == UQ_DB_OK && mig->fill != NULL) {
                st = mig->fill(arg);
            }
            if (st == UQ_DB_OK) {
                st = exec_all(m, arg, mig->after);
            }
            if (st == UQ_DB_OK) {
                st = m->record(arg, mig->version, mig->name);
            }
        }
        if (st == UQ_DB_OK) {
            st = m->commit(arg);
        }
        if (st != UQ_DB_OK) {
            m->rollback(arg);
            uq__db_logf(log, 3, "%s: migration %d (%s) failed: %s", m->backend,
                        mig->version, mig->name, uq_db_strerror(st));
            return st;
        }
        if (!done) {
            count++;
            uq__db_logf(log, 1, "%s: applied migration %d (%s)", m->backend,
                        mig->version, mig->name);
        }
    }
    if (applied != NULL) {
        *applied = count;
    }
    return UQ_DB_OK;
}
