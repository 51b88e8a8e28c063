/*
 * bigbuf.c - scratch arrays of megabytes that are written out of order,
 * such as the one the WAL replay sorts each batch of samples into.  Called
 * by the replay's worker threads; any thread, nothing shared.
 *
 * Such an array, from malloc, sits on 4 KiB pages, and writes scattered over
 * eight megabytes miss the TLB on nearly every one, so sorting a batch by
 * series costs measurably more of a replay's CPU than on huge pages.  These
 * are therefore mapped on their own, in multiples of 2 MiB, advised for huge
 * pages, and grown with mremap (which moves page tables, not bytes), 2 MiB at
 * a time or more.
 */
#include "util/util.h"

#include <stdint.h>
#include <sys/mman.h>

#define BIG_GRAIN ((size_t)2 << 20)

static size_t big_round(size_t n) {
    return (n + BIG_GRAIN - 1) & ~(BIG_GRAIN - 1);
}

int bigbuf_grow(void **v, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return 0;
    if (need > (SIZE_MAX - BIG_GRAIN) / size)
        return KILN_ENOMEM;
    size_t bytes = big_round(need * size);
    void *q = *v ? mremap(*v, big_round(*cap * size), bytes, MREMAP_MAYMOVE)
                 : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
        return KILN_ENOMEM;
    madvise(q, bytes, MADV_HUGEPAGE); /* a hint: without it, ordinary pages */
    *v = q;
    *cap = bytes / size;
    return 0;
}

void bigbuf_free(void *v, size_t cap, size_t size) {
    if (v)
        munmap(v, big_round(cap * size));
}
