/*
 * parfor.c - a process-wide pool of helper threads that run the shards of
 * data-parallel jobs beside the thread that asks: a query's series decoded
 * (storage/querier.c) and its range functions evaluated (query/) a shard of
 * series at a time on every core.
 *
 * parfor_run(n, fn, ctx) calls fn(ctx, i) once for every i in [0, n) and
 * returns when all calls have returned.  The calling thread takes shards
 * itself; idle helpers take the others.  Shards are handed out by an atomic
 * counter, so which thread runs a shard, and how many threads work on a
 * job, depends on who is idle and never on the result: callers write each
 * shard's output to a place of its own and merge them in shard order.
 * When the helpers are busy with other jobs, a caller runs all its shards
 * alone: the pool adds cores to the queries running, never queries (the
 * API's --query.max-concurrency still bounds those).
 *
 * The helpers, one per core but one (the caller is the other), start on
 * the first job and live as long as the process.  A helper runs a job's
 * shards at its caller's CPU priority (the query threads' nice +10,
 * api/workpool.c's, in the daemon): lower, a shard would lag behind the
 * caller's under load and hold the whole job; higher, a query would run
 * above ingestion.  Lowering a thread's priority needs no privilege;
 * raising it back does, so without CAP_SYS_NICE a helper that once ran a
 * lower caller's shards stays there (in the daemon every caller is a
 * query thread: the same).  parfor_set_width(1) makes every job
 * run on its caller alone (tests compare the two).
 *
 * Invariants: a job is in the queue at most once, and only while shards of
 * it may be left; its caller returns only when every shard has run
 * (done == n) and no helper holds it (busy == 0), the job living on the
 * caller's stack.
 *
 * Threading: any thread may call parfor_run, any number at once; fn runs
 * on any thread and must touch only its shard's data and what is read-only.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define PARFOR_MAX_HELPERS 64

typedef struct pjob {
    parfor_fn fn;
    void *ctx;
    size_t n;
    size_t next;       /* atomic: the next shard to hand out */
    size_t done, busy; /* under mu: shards run, helpers inside */
    int nice;          /* the caller's: helpers run its shards at it */
    struct pjob *qnext;
} pjob;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER, done_cv = PTHREAD_COND_INITIALIZER;
static pjob *queue;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int helpers; /* started */
static int width;   /* atomic: 1 = jobs run on their callers alone */

/* Runs the shards of j this thread can take; how many it ran. */
static size_t run_shards(pjob *j) {
    size_t k = 0, i;
    while ((i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->n) {
        j->fn(j->ctx, i);
        k++;
    }
    return k;
}

/* Takes j out of the queue if it is there.  mu held. */
static void dequeue(pjob *j) {
    for (pjob **p = &queue; *p; p = &(*p)->qnext)
        if (*p == j) {
            *p = j->qnext;
            return;
        }
}

/* This thread's nice value (Linux: a thread's own). */
static int thread_nice(void) {
    errno = 0;
    int n = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (errno)
        n = errno = 0;
    return n;
}

static void set_thread_nice(int n) {
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), n) != 0)
        errno = 0; /* not allowed (raising it back): it runs lower, nothing else changes */
}

static void *helper_main(void *arg) {
    (void)arg;
    int nice = thread_nice(); /* the process's until a job says otherwise */
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!queue)
            pthread_cond_wait(&work_cv, &mu);
        pjob *j = queue;
        if (__atomic_load_n(&j->next, __ATOMIC_RELAXED) >= j->n) {
            dequeue(j); /* every shard handed out: nothing here for a helper */
            continue;
        }
        j->busy++;
        pthread_mutex_unlock(&mu);
        /* at the caller's priority: a shard behind the others' would hold
         * the whole job back (and a query's work stays below ingestion) */
        if (j->nice != nice)
            set_thread_nice(nice = j->nice);
        size_t k = run_shards(j);
        pthread_mutex_lock(&mu);
        j->done += k;
        j->busy--;
        if (j->done == j->n && j->busy == 0)
            pthread_cond_broadcast(&done_cv);
    }
    return NULL;
}

static void start_helpers(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cores > 1 ? (int)(cores - 1) : 0;
    if (want > PARFOR_MAX_HELPERS)
        want = PARFOR_MAX_HELPERS;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < want; i++) {
        pthread_t t;
        if (pthread_create(&t, &at, helper_main, NULL) != 0)
            break; /* fewer helpers: jobs run on fewer threads */
        helpers++;
    }
    pthread_attr_destroy(&at);
}

size_t parfor_width(void) {
    if (__atomic_load_n(&width, __ATOMIC_RELAXED) == 1)
        return 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 1 ? (size_t)(cores - 1 < PARFOR_MAX_HELPERS ? cores : PARFOR_MAX_HELPERS + 1) : 1;
}

void parfor_set_width(int w) {
    __atomic_store_n(&width, w, __ATOMIC_RELAXED);
}

void parfor_run(size_t n, parfor_fn fn, void *ctx) {
    if (n == 0)
        return;
    if (n == 1 || parfor_width() < 2) {
        for (size_t i = 0; i < n; i++)
            fn(ctx, i);
        return;
    }
    pthread_once(&once, start_helpers);
    pjob j = {fn, ctx, n, 0, 0, 0, thread_nice(), NULL};
    pthread_mutex_lock(&mu);
    if (helpers) {
        j.qnext = queue;
        queue = &j; /* newest first: a helper that frees up joins the latest query */
        pthread_cond_broadcast(&work_cv);
    }
    pthread_mutex_unlock(&mu);
    size_t k = run_shards(&j);
    pthread_mutex_lock(&mu);
    dequeue(&j);
    j.done += k;
    while (j.done < j.n || j.busy)
        pthread_cond_wait(&done_cv, &mu);
    pthread_mutex_unlock(&mu);
}
