/*
 * workpool.h - internal to api/: a pool of threads of its own for the HTTP
 * server's query routes, so that queries never occupy libuv's worker pool,
 * where remote writes, scrapes and the cheap endpoints run (see http.c).
 *
 * A job is a caller-allocated workpool_job: run() is called on a pool
 * thread, then done() on the loop thread (woken through a uv_async_t).
 * Threads are started on demand, up to the pool's maximum, and stay for
 * later jobs; jobs beyond the threads wait in a FIFO (the HTTP server keeps
 * that from happening: it submits only when a slot is free).
 *
 * Threads: workpool_new, _submit, _set_max, _close and _free on the loop
 * thread; run() on pool threads; done() on the loop thread.
 */
#ifndef KILN_API_WORKPOOL_H
#define KILN_API_WORKPOOL_H

#include <uv.h>

#include "util/util.h"

typedef struct workpool workpool;
typedef struct workpool_job workpool_job;

struct workpool_job {
    void (*run)(workpool_job *j);  /* on a pool thread */
    void (*done)(workpool_job *j); /* on the loop thread, after run */
    workpool_job *next;            /* the pool's */
};

/* A pool on loop of at most max_threads threads (none started yet).
 * 0 or KILN_ENOMEM. */
KILN_MUST_CHECK int workpool_new(uv_loop_t *loop, int max_threads, workpool **out);

/* Changes the bound on threads; threads already started stay. */
void workpool_set_max(workpool *p, int max_threads);

/* Queues j (borrowed until its done() is called); starts a thread when none
 * is idle and the bound allows.  KILN_ENOMEM when no thread runs at all and
 * none could be started: j is then not queued. */
KILN_MUST_CHECK int workpool_submit(workpool *p, workpool_job *j);

/* Threads started so far (for metrics and tests). */
int workpool_threads(workpool *p);

/* Closes the pool's loop handle (opened by the first submit): returns 1 when
 * closed(data) will be called on the loop thread once it is closed, 0 when
 * there was nothing to close (no call).  No job may be in flight. */
int workpool_close(workpool *p, void (*closed)(void *data), void *data);

/* Stops and joins the threads, frees p (after workpool_close completed, or
 * when the loop never ran).  NULL is a no-op. */
void workpool_free(workpool *p);

#endif
