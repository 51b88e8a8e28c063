/*
 * head_int.h - the head's structures (private to head.c and its unit
 * tests): a series, the series map's shards, the postings index and the
 * head itself.  The rules and the lock order are head.c's and head.h's.
 */
#ifndef KILN_STORAGE_HEAD_INT_H
#define KILN_STORAGE_HEAD_INT_H

#include <pthread.h>
#include <stdint.h>

#include "storage/head.h"
#include "storage/headchunks.h"
#include "storage/headhist.h"
#include "storage/xorchunk.h"

#define SHARDS 64
#define STRIPES 1024
#define HINT_LABELS 16
#define REF_PAGE_BITS 12
#define REF_PAGE_SIZE (1u << REF_PAGE_BITS)
#define REF_PAGES (1u << 20) /* 2^32 references */
#define SAMPLES_PER_CHUNK 120

/* A full chunk, on disk in chunks_head. */
typedef struct hchunk {
    int64_t mint, maxt;
    uint64_t cref;
} hchunk;

/*
 * 88 bytes before the labels (checked in head.c), a multiple of the slab's
 * 16-byte grain with one pointer more: what the head holds for every series
 * is what the memory targets are about.  Nothing is kept that can be
 * derived: the open chunk's first time is in its bytes (open_mint), the
 * last value's bits stay in open.v when the chunk is cut or freed, the
 * closed array's capacity follows from its length (closed_cap), and the
 * label hash lives in the series' map slot.
 */
struct hseries {
    /* what appending reads comes first: ref through the open chunk's fields */
    uint32_t ref;
    uint32_t nclosed;
    /* guarded by the stripe lock */
    int64_t maxt; /* last sample's time; INT64_MIN when none */
    int64_t next_at;
    xorchunk open; /* open.v: the last float's bits, also once the chunk is emptied */
    hchunk *closed;
    uint16_t nls;
    uint16_t last_len; /* bytes of the last full chunk (at most 65535): sizes the next one */
    uint8_t hflags;    /* HS_*: histogram samples (headhist.c) */
    label ls[];
};

enum {
    HS_HIST = 1,  /* has an entry in head.hist */
    HS_HOPEN = 2, /* its open histogram chunk holds samples: the last sample is a histogram */
    HS_OOO = 4,   /* has out-of-order samples (ooo.c, which also reads this file) */
};

/* A lock on its own cache line: neighbours are taken by other threads. */
typedef struct stripe {
    pthread_mutex_t mu;
    char pad[64 - sizeof(pthread_mutex_t) % 64];
} stripe;

/* A slot of a shard's table; s == NULL when empty. */
typedef struct sslot {
    uint64_t hash;
    hseries *s;
} sslot;

typedef struct shard {
    pthread_rwlock_t lock;
    sslot *t;
    size_t nb, n; /* slots (0 or a power of two), series */
} shard;

/* A postings list: sorted references. */
typedef struct plist {
    uint32_t *v;
    uint32_t n, cap;
} plist;

typedef struct pvalue {
    const char *value; /* interned; NULL = empty slot */
    plist p;
} pvalue;

typedef struct pname {
    const char *name; /* interned; NULL = empty slot */
    pvalue *slots;
    size_t nslots, n;
} pname;

struct head {
    int64_t chunk_range;
    headchunks *hc;
    uint64_t cut_failures; /* atomic */
    shard shards[SHARDS];
    stripe stripes[STRIPES];
    hseries **pages[REF_PAGES];
    uint64_t next_ref; /* under index lock */

    pthread_rwlock_t index_lock;
    pname *names;
    size_t nnames_slots, nnames;
    plist all;

    pthread_mutex_t intern_lock;
    arena strings;
    const char **istr;
    size_t nistr_slots, nistr;
    label hint[HINT_LABELS]; /* the labels interned last (a series' neighbours share most) */
    size_t nhint;

    int64_t mint, maxt; /* atomics */
    int64_t min_valid;  /* atomic: appends below it are out of bounds (after truncation) */
    uint64_t nseries, nchunks, chunks_created; /* atomics */
    headhist hist;                             /* histogram chunks, by reference */
};

/* headintern.c: the interned copy of s, or NULL when none (no string of the head is s). */
const char *head_intern_find(head *h, const char *s);
/* Interns the names and values of n labels into out, under one lock (a new
 * series has a dozen strings).  0, or KILN_ENOMEM. */
KILN_MUST_CHECK int head_intern_labels(head *h, const label *ls, size_t n, label *out);

#endif
