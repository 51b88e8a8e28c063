/*
 * headfit.c - head_fit: trims the head's allocations to what they hold once
 * a replay has filled it.
 *
 * Replay appends a series' samples as live appending does, and so sizes
 * its open chunk for the 120 samples it will hold when full (from the rate
 * of its first samples), its postings lists and closed-chunk arrays by
 * doubling.  After the replay nothing says the slack will be needed soon:
 * a series may never get another sample.  With 100 samples a series the
 * open chunks' slack alone was about 300 bytes a series, a quarter of the
 * head.  head_fit gives it back: each open chunk is trimmed to its bytes
 * (xorchunk_fit: appending then grows it by an eighth at a time), each
 * postings list to its length.  (A series' array of closed chunks is sized
 * in powers of two, its capacity not stored: it stays.)  The
 * series are walked by reference, the order replay made them and their
 * chunks in, so the slab pages the old chunk sizes leave empty serve the
 * new sizes rather than new pages.
 *
 * Called by the replay (replay.c) at the end of storage_open, before any
 * appender or query runs.  It takes the stripe and index locks anyway; the
 * caller keeps head_truncate (which frees series) from running meanwhile.
 */
#include <stdlib.h>

#include "storage/head.h"
#include "storage/head_int.h"
#include "storage/lockrank.h"

/* Trims a postings list to its length; out of memory it stays as it is. */
static void plist_fit(plist *p) {
    if (p->cap == p->n)
        return;
    if (p->n == 0) {
        free(p->v);
        p->v = NULL;
        p->cap = 0;
        return;
    }
    uint32_t *nv = realloc(p->v, (size_t)p->n * sizeof *nv);
    if (nv) {
        p->v = nv;
        p->cap = p->n;
    }
}

static void series_fit(head *h, hseries *s) {
    pthread_mutex_t *mu = &h->stripes[s->ref % STRIPES].mu;
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    if (xorchunk_fit(&s->open) != 0) {
        /* out of memory: the chunk keeps its slack */
    }
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
}

void head_fit(head *h) {
    for (size_t pg = 0; pg < REF_PAGES; pg++) {
        hseries **page = __atomic_load_n(&h->pages[pg], __ATOMIC_ACQUIRE);
        for (size_t j = 0; page && j < REF_PAGE_SIZE; j++) {
            hseries *s = __atomic_load_n(&page[j], __ATOMIC_ACQUIRE);
            if (s)
                series_fit(h, s);
        }
    }
    lockrank_wrlock(&h->index_lock, LOCK_RANK_INDEX);
    for (size_t i = 0; i < h->nnames_slots; i++) {
        pname *pn = &h->names[i];
        for (size_t j = 0; pn->name && j < pn->nslots; j++)
            if (pn->slots[j].value)
                plist_fit(&pn->slots[j].p);
    }
    plist_fit(&h->all);
    lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 0);
    slab_trim(); /* the pages the old chunk sizes left empty */
}
