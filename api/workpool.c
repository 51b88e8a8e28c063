/*
 * workpool.c - the query pool: threads of the HTTP server's own, so that a
 * query never holds one of libuv's workers (see workpool.h for the contract).
 *
 * State, under mu: the FIFO of jobs not yet taken (queue), the FIFO of jobs
 * run and not yet reported (finished), the threads started and how many of
 * them wait for work (idle).  A thread takes the head of queue, runs it
 * without the lock, appends it to finished and signals the uv_async_t; the
 * loop thread's async callback swaps finished out under the lock and calls
 * each done() without it (libuv coalesces signals: one callback may see many
 * jobs).
 *
 * Invariants: idle <= nthreads <= cap of the threads array; a job is in at
 * most one list; stop is set only by workpool_free, after which no job is
 * submitted.
 *
 * Query threads run at a lower CPU priority (nice +QUERY_NICE) than the loop
 * and libuv's workers: with every core busy evaluating queries, a remote
 * write or a scrape still gets the CPU when it needs it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "api/workpool.h"

#define QUERY_NICE 10

struct workpool {
    uv_loop_t *loop;
    uv_async_t async;
    int async_open; /* 1 once the first submit opened it; 2 while closing */
    void (*closed)(void *);
    void *closed_data;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    workpool_job *queue, *queue_tail;
    workpool_job *finished, *finished_tail;
    pthread_t *threads;
    size_t cap_threads;
    int nthreads, idle, max_threads, stop;
};

static void fifo_push(workpool_job **head, workpool_job **tail, workpool_job *j) {
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void *thread_main(void *arg) {
    workpool *p = arg;
    /* below the loop and libuv's workers (a thread's own nice value on
     * Linux); failing to lower it changes nothing else */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), QUERY_NICE) != 0)
        errno = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->queue && !p->stop) {
            p->idle++;
            pthread_cond_wait(&p->cond, &p->mu);
            p->idle--;
        }
        if (!p->queue)
            break; /* stop, and nothing left to run */
        workpool_job *j = p->queue;
        p->queue = j->next;
        if (!p->queue)
            p->queue_tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->run(j);
        pthread_mutex_lock(&p->mu);
        fifo_push(&p->finished, &p->finished_tail, j);
        uv_async_send(&p->async);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void on_async(uv_async_t *a) {
    workpool *p = a->data;
    pthread_mutex_lock(&p->mu);
    workpool_job *j = p->finished;
    p->finished = p->finished_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j) {
        workpool_job *next = j->next;
        j->done(j); /* may free j */
        j = next;
    }
}

int workpool_new(uv_loop_t *loop, int max_threads, workpool **out) {
    workpool *p = calloc(1, sizeof *p);
    if (!p)
        return KILN_ENOMEM;
    p->loop = loop;
    p->max_threads = max_threads > 0 ? max_threads : 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    *out = p;
    return 0;
}

void workpool_set_max(workpool *p, int max_threads) {
    p->max_threads = max_threads > 0 ? max_threads : 1;
}

int workpool_threads(workpool *p) {
    pthread_mutex_lock(&p->mu);
    int n = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Starts one more thread; mu held. */
static int start_thread(workpool *p) {
    if (array_grow((void **)&p->threads, &p->cap_threads, (size_t)p->nthreads + 1, sizeof *p->threads) != 0)
        return KILN_ENOMEM;
    if (pthread_create(&p->threads[p->nthreads], NULL, thread_main, p) != 0)
        return KILN_ENOMEM;
    p->nthreads++;
    return 0;
}

int workpool_submit(workpool *p, workpool_job *j) {
    if (!p->async_open) {
        if (uv_async_init(p->loop, &p->async, on_async) != 0)
            return KILN_ENOMEM;
        p->async.data = p;
        p->async_open = 1;
    }
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    if (p->idle == 0 && p->nthreads < p->max_threads)
        rc = start_thread(p);
    if (rc == 0 || p->nthreads > 0) {
        rc = 0; /* a thread that runs will take it */
        fifo_push(&p->queue, &p->queue_tail, j);
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void on_async_closed(uv_handle_t *h) {
    workpool *p = h->data;
    p->async_open = 0;
    if (p->closed)
        p->closed(p->closed_data);
}

int workpool_close(workpool *p, void (*closed)(void *data), void *data) {
    if (p->async_open != 1)
        return p->async_open == 2;
    p->async_open = 2;
    p->closed = closed;
    p->closed_data = data;
    uv_close((uv_handle_t *)&p->async, on_async_closed);
    return 1;
}

void workpool_free(workpool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
