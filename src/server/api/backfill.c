/* SPDX-License-Identifier: MIT */
/*
 * Backfill jobs: start (admin), progress (service), and the cached reads of
 * one job and of the job list, with the original service's statuses and
 * shapes: 200 on start, 400 for a block range or a current block it
 * refused, the list a bare JSON array.
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>

static const char *const JOB_STATUSES[] = {"running", "completed", "failed",
                                           "paused", NULL};

static json_t *job_json(const void *row)
{
    const uq_db_job_t *j = row;
    return json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:s,s:f,s:o,s:o,s:o,s:o,s:o}", "id", j->id,
        "job_type", j->job_type, "start_block", (json_int_t)j->start_block,
        "end_block", (json_int_t)j->end_block, "current_block",
        (json_int_t)j->current_block, "status", j->status,
        "progress_percentage", j->progress_percentage, "estimated_completion",
        api_time_json(j->estimated_completion), "error_message",
        api_str_or_null(j->has_error_message, j->error_message), "started_at",
        api_time_json(j->started_at), "completed_at",
        api_time_json(j->completed_at), "created_by",
        api_str_or_null(j->has_created_by, j->created_by));
}

/* ---- backfill ------------------------------------------------------------ */

/* The original's column limits, in characters. */
#define JOB_TYPE_CHARS 50
#define CREATED_BY_CHARS 100

void api_h_backfill_start(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    json_t *body = api_parse_body(req, JSON_OBJECT, res);
    const char *job_type = NULL;
    const char *created_by = NULL;
    long long start = 0, end = 0;
    uq_db_job_t j;
    uq_stale_t *stale = NULL;
    if (body == NULL) {
        return;
    }
    if (get_str(body, "job_type", NULL, 1, 1, JOB_TYPE_CHARS, 0, &job_type,
                res) != 0 ||
        get_int(body, "start_block", NULL, 1, 0, 100000000, &start, NULL,
                res) != 0 ||
        get_int(body, "end_block", NULL, 1, 0, 100000000, &end, NULL, res) !=
            0 ||
        get_str(body, "created_by", NULL, 0, 1, CREATED_BY_CHARS, 0,
                &created_by, res) != 0) {
        goto cleanup;
    }
    if (end < start) {
        /* The original's domain check, after the model's: a 400. */
        uq_resp_error(res, 400,
                      "end_block must be greater than or equal to "
                      "start_block");
        goto cleanup;
    }
    memset(&j, 0, sizeof(j));
    if (uq_uuid_new(j.id) != 0) {
        uq_resp_error(res, 500, "internal error");
        goto cleanup;
    }
    snprintf(j.job_type, sizeof(j.job_type), "%s", job_type);
    j.start_block = start;
    j.end_block = end;
    j.current_block = start;
    snprintf(j.status, sizeof(j.status), "running");
    j.estimated_completion = UQ_DB_NULL_TIME;
    j.started_at = uq_now_us(app);
    j.completed_at = UQ_DB_NULL_TIME;
    j.has_created_by = 1;
    snprintf(j.created_by, sizeof(j.created_by), "%s",
             created_by != NULL ? created_by : req->user_id);
    /* The job's key (a remembered 404 of its id) and every job list. */
    stale = uq_stale_new();
    const char *sf[1] = {j.id};
    const char *any[4] = {NULL, NULL, NULL, NULL};
    if (stale != NULL) {
        (void)uq_stale_add(app, stale, UQ_KS_BACKFILL_JOB, sf);
        (void)uq_stale_add_tag(app, stale, UQ_KS_BACKFILL_JOBS, 0, any);
    }
    int st = STALE_WRITE(
        app, stale,
        uq_db_job_create(app->db, &j, stale->inv, stale->n, stale->ids));
    if (st == UQ_DB_ECONSTRAINT) {
        uq_resp_error(res, 422, "job: rejected by a database constraint");
        goto cleanup;
    }
    if (api_db_failed(res, st) != 0) {
        goto cleanup;
    }
    uq_stale_apply(app, stale);
    /* 200, as the original's route (no status_code) answered. */
    uq_resp_json(res, 200, job_json(&j));
    res->cache_control = CC_PRIVATE;
cleanup:
    uq_stale_free(stale);
    json_decref(body);
}

/*
 * 0 when current_block lies in the job's [start_block, end_block], which
 * never change once the job exists; else a 400 with the original's words,
 * a 404 for no such job, or the database's error, and -1.
 */
static int check_block(uq_app_t *app, const char *id, long long cur,
                       uq_resp_t *res)
{
    uq_db_job_t *j = malloc(sizeof(*j));
    int rc = -1;
    if (j == NULL) {
        uq_resp_error(res, 500, "out of memory");
        return -1;
    }
    int st = uq_db_job_get(app->db, id, j);
    if (st == UQ_DB_NOTFOUND) {
        uq_resp_error(res, 404, "Backfill job %s not found", id);
    } else if (api_db_failed(res, st) != 0) {
        /* written */
    } else if (cur < j->start_block) {
        uq_resp_error(res, 400,
                      "current_block cannot be less than "
                      "start_block");
    } else if (cur > j->end_block) {
        uq_resp_error(res, 400, "current_block cannot exceed end_block");
    } else {
        rc = 0;
    }
    free(j);
    return rc;
}

void api_h_backfill_progress(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    char id[UQ_DB_UUID_LEN + 1];
    const char *qid = api_qparam(req, "job_id");
    json_t *body;
    uq_db_job_progress_t p;
    long long cur = 0;
    uq_db_job_t *j = NULL;
    uq_stale_t *stale = NULL;

    if (qid == NULL) {
        uq_resp_invalid(res, "query", "job_id", "missing", NULL, NULL,
                        "Field required");
        return;
    }
    if (uq_uuid_check(qid, id) != 0) {
        json_t *in = json_string(qid);
        uq_resp_invalid(res, "query", "job_id", "uuid_parsing", in, NULL,
                        "Input should be a valid UUID");
        json_decref(in);
        return;
    }
    body = api_parse_body(req, JSON_OBJECT, res);
    if (body == NULL) {
        return;
    }
    memset(&p, 0, sizeof(p));
    /* error_message has no length limit (the original's TEXT) beyond the
     * body's; an empty one is not stored, as the original skipped it. */
    if (get_int(body, "current_block", NULL, 1, 0, 100000000, &cur, NULL,
                res) != 0 ||
        get_num(body, "progress_percentage", NULL, 1, 0.0, 100.0,
                &p.progress_percentage, res) != 0 ||
        get_time(body, "estimated_completion", &p.estimated_completion, res) !=
            0 ||
        get_enum(body, "status", 0, JOB_STATUSES, &p.status, res) != 0 ||
        get_str(body, "error_message", NULL, 0, 0, UQ_DB_ERRMSG_MAX, 1,
                &p.error_message, res) != 0) {
        goto cleanup;
    }
    if (p.error_message != NULL && p.error_message[0] == '\0') {
        p.error_message = NULL;
    }
    if (p.error_message != NULL && strlen(p.error_message) > UQ_DB_ERRMSG_MAX) {
        uq_resp_error(res, 413, "error_message: too large");
        goto cleanup;
    }
    if (check_block(app, id, cur, res) != 0) {
        goto cleanup;
    }
    p.current_block = cur;
    p.now = uq_now_us(app);
    j = malloc(sizeof(*j));
    stale = uq_stale_new();
    const char *sf[1] = {id};
    const char *any[4] = {NULL, NULL, NULL, NULL};
    if (stale != NULL) {
        (void)uq_stale_add(app, stale, UQ_KS_BACKFILL_JOB, sf);
        (void)uq_stale_add_tag(app, stale, UQ_KS_BACKFILL_JOBS, 0, any);
    }
    if (j == NULL) {
        uq_resp_error(res, 500, "out of memory");
        goto cleanup;
    }
    int st = STALE_WRITE(app, stale,
                         uq_db_job_progress(app->db, id, &p, j, stale->inv,
                                            stale->n, stale->ids));
    if (st == UQ_DB_NOTFOUND) {
        uq_resp_error(res, 404, "Backfill job %s not found", id);
        goto cleanup;
    }
    if (st == UQ_DB_ECONSTRAINT) {
        uq_resp_error(res, 422, "progress: rejected by a database constraint");
        goto cleanup;
    }
    if (api_db_failed(res, st) != 0) {
        goto cleanup;
    }
    uq_stale_apply(app, stale);
    uq_resp_json(res, 200, job_json(j));
    res->cache_control = CC_PRIVATE;
cleanup:
    free(j);
    uq_stale_free(stale);
    json_decref(body);
}

static json_t *build_job(uq_app_t *app, void *arg, int *st)
{
    /* On the heap: a row holds an error message of up to the body cap. */
    uq_db_job_t *j = malloc(sizeof(*j));
    json_t *out = NULL;
    if (j == NULL) {
        *st = UQ_DB_ENOMEM;
        return NULL;
    }
    *st = uq_db_job_get(app->db, arg, j);
    if (*st == UQ_DB_OK) {
        out = job_json(j);
        if (out == NULL) {
            *st = UQ_DB_ENOMEM;
        }
    }
    free(j);
    return out;
}

void api_h_backfill_get(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    char id[UQ_DB_UUID_LEN + 1];
    if (uq_uuid_check(req->param, id) != 0) {
        json_t *in = json_string(req->param);
        uq_resp_invalid(res, "path", "job_id", "uuid_parsing", in, NULL,
                        "Input should be a valid UUID");
        json_decref(in);
        return;
    }
    const char *f[1] = {id};
    api_serve_cached(app, UQ_KS_BACKFILL_JOB, f, 1, res);
}

/* A page of the job list, filtered by status and job_type (NULL: any). */
static json_t *build_jobs(uq_app_t *app, const char *status,
                          const char *job_type, const page_t *pg, int *st)
{
    uq_db_job_t *rows = NULL;
    size_t n = 0;
    int64_t total = 0;

    *st = uq_db_job_list(app->db, status, job_type, (int)pg->limit,
                         (int)pg->offset, &rows, &n, &total);
    if (*st != UQ_DB_OK) {
        return NULL;
    }
    (void)total;
    /* A bare list, as the original's List[BackfillJobResponse]. */
    json_t *items = api_rows_json(rows, n, sizeof(*rows), job_json);
    free(rows);
    if (items == NULL) {
        *st = UQ_DB_ENOMEM;
    }
    return items;
}

void api_h_backfill_list(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    const char *status;
    const char *job_type;
    page_t pg;
    char st_f[24], ty_f[UQ_DB_NAME_MAX + 2], lim[24], off[24];
    /* The original's Query(10, ge=1, le=100). A job_type longer than the
     * key field cap matches no job (the column takes 50 characters). */
    if (api_q_enum(req, "status", JOB_STATUSES, &status, res) != 0 ||
        api_q_text(req, "job_type", UC_FIELD_MAX - 1, &job_type, res) != 0 ||
        api_q_page(req, 10, 100, &pg, res) != 0) {
        return;
    }
    const char *f[4] = {api_opt_field(st_f, sizeof(st_f), status),
                        api_opt_field(ty_f, sizeof(ty_f), job_type),
                        api_dec(lim, sizeof(lim), pg.limit),
                        api_dec(off, sizeof(off), pg.offset)};
    api_serve_cached(app, UQ_KS_BACKFILL_JOBS, f, 4, res);
}

int api_load_job(void *arg, const char *const *f, size_t n, char **val,
                 size_t *len)
{
    int st = UQ_DB_OK;
    json_t *j = n == 1 ? build_job(arg, (void *)f[0], &st) : NULL;
    return n == 1 ? api_load_json(j, st, val, len) : UC_EINVAL;
}

int api_load_jobs(void *arg, const char *const *f, size_t n, char **val,
                  size_t *len)
{
    page_t pg;
    int st = UQ_DB_OK;

    if (n != 4 || api_page_fields(f[2], f[3], &pg) != 0) {
        return UC_EINVAL;
    }
    return api_load_json(
        build_jobs(arg, api_opt_value(f[0]), api_opt_value(f[1]), &pg, &st), st,
        val, len);
}
