/*
 * lockrank.c - the per-thread record of held lock ranks behind lockrank.h's
 * check.  Called by the lock wrappers of storage/ on every acquisition and
 * release when built with -DKILN_LOCK_DEBUG (and by test_storage).
 *
 * Threading: each thread has its own record (_Thread_local); nothing shared.
 */
#include "storage/lockrank.h"

#include <stdio.h>
#include <stdlib.h>

const char *lockrank_name(lock_rank r) {
    static const char *const names[LOCK_RANK_COUNT] = {
        [LOCK_RANK_COMPACT] = "storage.compact_mu",   [LOCK_RANK_GC] = "storage.gc",
        [LOCK_RANK_SHARD] = "head shard lock",        [LOCK_RANK_INDEX] = "head.index_lock",
        [LOCK_RANK_INTERN] = "head.intern_lock",      [LOCK_RANK_STRIPE] = "head stripe mutex",
        [LOCK_RANK_UNLOGGED] = "storage.unlogged_mu", [LOCK_RANK_REPLAY] = "replay hand-over mutex",
    };
    return r > 0 && r < LOCK_RANK_COUNT ? names[r] : "?";
}

/* Locks of each rank the thread holds, and how many of them for reading. */
static _Thread_local unsigned held[LOCK_RANK_COUNT], held_shared[LOCK_RANK_COUNT];

static void violation(lock_rank taking, lock_rank holding) {
    fprintf(stderr, "kiln: lock order violation: taking %s (rank %d) while holding %s (rank %d)\n",
            lockrank_name(taking), (int)taking, lockrank_name(holding), (int)holding);
    abort();
}

void lockrank_acquire(lock_rank r, int shared) {
    for (int i = LOCK_RANK_COUNT - 1; i > (int)r; i--)
        if (held[i])
            violation(r, (lock_rank)i);
    /* the same rank again: only a read lock over read locks */
    if (held[r] && !(shared && held_shared[r] == held[r]))
        violation(r, r);
    held[r]++;
    held_shared[r] += shared != 0;
}

void lockrank_release(lock_rank r, int shared) {
    if (!held[r] || (shared && !held_shared[r])) {
        fprintf(stderr, "kiln: lock release without a hold: %s (rank %d)\n", lockrank_name(r), (int)r);
        abort();
    }
    held[r]--;
    held_shared[r] -= shared != 0;
}
