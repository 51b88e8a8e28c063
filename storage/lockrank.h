/*
 * lockrank.h - the storage's lock order (written out in storage.h), checked
 * at run time in debug builds.  Private to storage/.
 *
 * Every mutex and rwlock of storage.c, replay.c, querier.c, compact.c and
 * head.c has a rank.  A thread takes locks in increasing rank only, and
 * holds at most one lock of a rank at a time, except that it may read-lock
 * a rwlock of a rank it holds for reading only (glibc's rwlocks prefer
 * readers, so a recursive read lock cannot wait for a writer).
 *
 * Built with -DKILN_LOCK_DEBUG (the sanitized builds), each thread records
 * the ranks it holds, and taking a lock out of order prints both ranks and
 * aborts, in the first run that takes them so, whether or not the threads
 * of that run happened to deadlock.  Otherwise the wrappers below are the
 * bare pthread calls: nothing is recorded and nothing is checked (the
 * checker is still there, unused, for its tests).
 *
 * Threading: the record is per thread; the wrappers are called from any.
 */
#ifndef KILN_STORAGE_LOCKRANK_H
#define KILN_STORAGE_LOCKRANK_H

#include <pthread.h>

/* In the order they may be taken (see storage.h for what each guards). */
typedef enum lock_rank {
    LOCK_RANK_COMPACT = 1, /* storage.compact_mu */
    LOCK_RANK_GC,          /* storage.gc */
    LOCK_RANK_SHARD,       /* a head series-map shard's rwlock */
    LOCK_RANK_INDEX,       /* head.index_lock */
    LOCK_RANK_INTERN,      /* head.intern_lock */
    LOCK_RANK_STRIPE,      /* a head stripe mutex (a series' samples) */
    LOCK_RANK_UNLOGGED,    /* storage.unlogged_mu */
    LOCK_RANK_REPLAY,      /* the replay's hand-over mutexes (replay.c) */
    LOCK_RANK_COUNT
} lock_rank;

/* "storage.gc" and the like, for messages. */
const char *lockrank_name(lock_rank r);

/* Checks that the calling thread may take a lock of rank r now (aborts
 * when not) and records it as held; shared: a read lock.  Always built (the
 * tests call it), called by the wrappers with KILN_LOCK_DEBUG only. */
void lockrank_acquire(lock_rank r, int shared);
/* Records that the calling thread released a lock of rank r. */
void lockrank_release(lock_rank r, int shared);

#ifdef KILN_LOCK_DEBUG
#define LOCKRANK_ACQUIRE(r, shared) lockrank_acquire(r, shared)
#define LOCKRANK_RELEASE(r, shared) lockrank_release(r, shared)
#else
#define LOCKRANK_ACQUIRE(r, shared) ((void)(r), (void)(shared))
#define LOCKRANK_RELEASE(r, shared) ((void)(r), (void)(shared))
#endif

static inline void lockrank_mutex_lock(pthread_mutex_t *mu, lock_rank r) {
    LOCKRANK_ACQUIRE(r, 0);
    pthread_mutex_lock(mu);
}

static inline void lockrank_mutex_unlock(pthread_mutex_t *mu, lock_rank r) {
    pthread_mutex_unlock(mu);
    LOCKRANK_RELEASE(r, 0);
}

static inline void lockrank_rdlock(pthread_rwlock_t *l, lock_rank r) {
    LOCKRANK_ACQUIRE(r, 1);
    pthread_rwlock_rdlock(l);
}

static inline void lockrank_wrlock(pthread_rwlock_t *l, lock_rank r) {
    LOCKRANK_ACQUIRE(r, 0);
    pthread_rwlock_wrlock(l);
}

/* Unlocks a rwlock taken with lockrank_rdlock (shared 1) or lockrank_wrlock (0). */
static inline void lockrank_rwunlock(pthread_rwlock_t *l, lock_rank r, int shared) {
    pthread_rwlock_unlock(l);
    LOCKRANK_RELEASE(r, shared);
}

#endif
