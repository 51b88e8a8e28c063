/*
 * par.c - one query's per-series work on every core: the series of an
 * input are cut into contiguous shards, each evaluated on a thread of
 * util/parfor.c's pool in a context of its own (a copy of the query's with
 * its own arena, error, annotations and sample count), and the shards'
 * results are merged in shard order, so the output - series order, float
 * values, annotations, the sample count - is what one thread going through
 * the series in order gives, bit for bit.
 *
 * What a shard may do: read the query's context and its input, allocate
 * from its context's arena, count points (pq_account, pq_points), fail
 * (pq_fail), annotate (pq_warn/pq_info), push series to a matrix of its
 * own.  What it may not: box native histograms (pq_hbox appends to the
 * query's list; callers run inputs with histograms on one thread), select
 * (pq_select), or touch another shard's data.
 *
 * The sample limit holds: each shard counts against the limit from the
 * query's count when the work started, and the merged count is checked
 * again, so a query over the limit fails as it does on one thread (with at
 * most the shards' overshoot allocated meanwhile, freed with the query).
 *
 * Called by rangefuncs.c (range functions over many series).
 * Threading: pq_par_run runs on the query's thread; shards on the pool's.
 */
#include <stdlib.h>
#include <string.h>

#include "query/eval.h"

typedef struct par_shard {
    pq_ctx c;
    kiln_err err;
    arena mem;
} par_shard;

typedef struct par_job {
    par_shard *sh;
    pq_shard_fn fn;
    void *data;
} par_job;

static void run_shard(void *ctx, size_t k) {
    par_job *j = ctx;
    pq_ctx *c = &j->sh[k].c;
    int rc = j->fn(c, k, j->data);
    if (rc < 0 && !c->code)
        pq_fail(c, rc, "%s", "query failed");
}

/* Adds the strings of src[0..n) not in *v yet (the query's annotations
 * are sets; the shard's were formatted already). */
static void merge_notes(pq_ctx *c, const char ***v, size_t *nv, size_t *cap, const char *const *src,
                        size_t n) {
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < *nv && strcmp((*v)[j], src[i]) != 0)
            j++;
        if (j < *nv)
            continue;
        if (*nv == *cap) {
            size_t nc = *cap ? *cap * 2 : 8;
            const char **nn = arena_alloc(c->mem, nc * sizeof *nn);
            if (!nn)
                return; /* as annotate: a note lost to memory is not an error */
            if (*nv)
                memcpy(nn, *v, *nv * sizeof *nn);
            *v = nn;
            *cap = nc;
        }
        (*v)[(*nv)++] = src[i]; /* the shard's arena is the query's from now on */
    }
}

size_t pq_par_shards(const pq_ctx *c, size_t n, size_t min_per_shard) {
    size_t w = parfor_width();
    if (w < 2 || c->code || n < 2 * min_per_shard)
        return 1;
    size_t k = n / min_per_shard;
    return k < 4 * w ? k : 4 * w; /* a few shards a thread: a slow one holds the rest less */
}

int pq_par_run(pq_ctx *c, size_t nshards, pq_shard_fn fn, void *data) {
    if (nshards <= 1)
        return fn(c, 0, data) < 0 ? (c->code ? c->code : KILN_ENOMEM) : c->code;
    par_shard *sh = calloc(nshards, sizeof *sh);
    if (!sh)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    size_t base = c->cur_samples;
    for (size_t k = 0; k < nshards; k++) {
        par_shard *s = &sh[k];
        s->c = *c;
        arena_init(&s->mem, 0);
        s->c.mem = &s->mem;
        s->c.err = &s->err;
        s->c.code = 0;
        s->c.poll = 0;
        lb_init(&s->c.lb);
        s->c.warn = s->c.info = NULL;
        s->c.nwarn = s->c.capwarn = s->c.ninfo = s->c.capinfo = 0;
        s->c.sets = NULL;
        s->c.nsets = s->c.capsets = 0;
        s->c.caphists = s->c.nhists; /* read only: a shard must not box */
    }
    par_job j = {sh, fn, data};
    parfor_run(nshards, run_shard, &j);
    for (size_t k = 0; k < nshards; k++) {
        par_shard *s = &sh[k];
        if (s->c.code && !c->code)
            pq_fail(c, s->c.code, "%s", s->err.msg);
        c->cur_samples += s->c.cur_samples - base;
        arena_adopt(c->mem, &s->mem);
        merge_notes(c, &c->warn, &c->nwarn, &c->capwarn, s->c.warn, s->c.nwarn);
        merge_notes(c, &c->info, &c->ninfo, &c->capinfo, s->c.info, s->c.ninfo);
        lb_free(&s->c.lb);
    }
    free(sh);
    if (!c->code && c->max_samples && c->cur_samples > c->max_samples)
        pq_fail(c, KILN_ELIMIT, "%s", PQ_TOO_MANY_SAMPLES);
    return c->code;
}
