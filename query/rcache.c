/*
 * rcache.c - the range-query results cache: a dashboard's refresh asks the
 * same range query again with the window moved on by a few steps, and the
 * steps it computed before are answered from kept per-step results; only
 * the steps not kept (the new ones, and the recent ones where data still
 * arrives) are evaluated.
 *
 * What a step depends on.  A range query's step t is evaluated on its own:
 * its selectors read samples in (t - offset - range - lookback, t - offset].
 * With no `@` and no negative offset, that is at or before t, so a sample
 * at ts can change only the steps t >= ts: a change at ts leaves every kept
 * step before ts valid.  Queries with `@`, a negative offset, start(),
 * end(), range(), a duration using range(), or an anchored or smoothed
 * range selector are not cached (query_rcache_cacheable); nor is anything
 * while a remote_read source is set, whose data changes unseen.
 *
 * Entries.  The key is the canonical text of the expression (promql_format)
 * with the step, the phase of the steps (start mod step) and the lookback.
 * An entry holds, for the steps first, first+step, ..., last, every
 * series' labels and the value at each step (a bitmap says which steps have
 * one).  Only steps at or before now - lookback are kept, so the steps
 * where samples are still arriving are always evaluated, and results with
 * native histograms, warnings or infos are not kept.  Entries are freed
 * least recently used first to stay within max_bytes.
 *
 * Invalidation.  The storage reports every change to data at or below its
 * watch (storage_set_change_hook): a commit with a sample at or below it, a
 * deletion, a block loaded, retention.  A query raises the watch to the
 * last step it may keep before it evaluates, so every sample a kept step
 * could lack is reported.  A report at mint cuts every entry back to its
 * steps before mint (query_rcache_changed), and is remembered in a ring of
 * the last RC_RING reports by a generation number: a query that began
 * before a report keeps only its steps before the report's mint (or
 * nothing, when more reports came than the ring holds).  Either the report
 * comes before the insertion (the ring clips it) or after (the report cuts
 * the entry), both under the cache's mutex.
 *
 * A hit: the steps from start to the entry's last are copied from the
 * entry, the rest evaluated by query_range (from the step after), the two
 * merged by labels (both sorted as query_range sorts a matrix), and the
 * result kept again as the entry of this key.
 *
 * Called by api/query_api.c's query_range handler on query pool threads,
 * and by the storage's change hook on the threads that commit or delete.
 * Threading: one mutex guards the entries, the ring and the statistics; it
 * is never held while the storage or the engine is called.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/query.h"

#define RC_BUCKETS 256
#define RC_RING 64

typedef struct rc_series {
    label *ls;
    size_t nls;
    double *v;     /* a value a step */
    uint64_t *has; /* a bit a step: the step has a value */
} rc_series;

typedef struct rc_entry {
    struct rc_entry *hnext, *prev, *next; /* hash chain; LRU list (head: the most recent) */
    uint64_t hash;
    char *key;
    int64_t step, first, last; /* the steps kept: first, first+step, ... last */
    size_t ns;
    rc_series *s;
    size_t bytes; /* the entry's one allocation */
} rc_entry;

struct query_rcache {
    pthread_mutex_t mu;
    size_t max_bytes;
    rc_entry *buckets[RC_BUCKETS];
    rc_entry lru; /* sentinel of the LRU list */
    uint64_t gen; /* reports of changes so far */
    int64_t ring[RC_RING];
    query_rcache_stats st;
};

/* ---- the process-wide metrics ---------------------------------------------- */

enum {
    RC_HITS,
    RC_MISSES,
    RC_UNCACHEABLE,
    RC_REUSED,
    RC_EVALUATED,
    RC_INVALIDATIONS,
    RC_EVICTIONS,
    RC_BYTES,
    RC_ENTRIES,
    RC_NMETRICS
};

static const struct {
    int type;
    const char *name, *help;
} rc_metric_defs[RC_NMETRICS] = {
    [RC_HITS] = {METRIC_COUNTER, "kiln_query_cache_hits_total",
                 "Range queries answered in part from the results cache."},
    [RC_MISSES] = {METRIC_COUNTER, "kiln_query_cache_misses_total",
                   "Cacheable range queries that found no kept step to reuse."},
    [RC_UNCACHEABLE] = {METRIC_COUNTER, "kiln_query_cache_uncacheable_total",
                        "Range queries the cache did not serve (@, negative offsets, start()/end()/range(), "
                        "remote_read, stats, nocache)."},
    [RC_REUSED] = {METRIC_COUNTER, "kiln_query_cache_steps_reused_total",
                   "Steps of range queries answered from the cache."},
    [RC_EVALUATED] = {METRIC_COUNTER, "kiln_query_cache_steps_evaluated_total",
                      "Steps of cacheable range queries evaluated."},
    [RC_INVALIDATIONS] = {METRIC_COUNTER, "kiln_query_cache_invalidations_total",
                          "Cache entries cut back or dropped because data at or before their steps changed."},
    [RC_EVICTIONS] = {METRIC_COUNTER, "kiln_query_cache_evictions_total",
                      "Cache entries freed to stay within --query.cache-size."},
    [RC_BYTES] = {METRIC_GAUGE, "kiln_query_cache_bytes", "Bytes held by the results cache."},
    [RC_ENTRIES] = {METRIC_GAUGE, "kiln_query_cache_entries", "Entries in the results cache."},
};
static metric_child *rc_metrics[RC_NMETRICS];
static pthread_once_t rc_metrics_once = PTHREAD_ONCE_INIT;

static void rc_metrics_init(void) {
    for (int i = 0; i < RC_NMETRICS; i++) {
        metric *m =
            metric_new(rc_metric_defs[i].type, rc_metric_defs[i].name, rc_metric_defs[i].help, NULL, NULL, 0);
        rc_metrics[i] = m ? metric_default(m) : NULL;
    }
}

static void rc_count(int which, double v) {
    if (rc_metrics[which])
        metric_add(rc_metrics[which], v);
}

/* ---- entries ----------------------------------------------------------------- */

static uint64_t rc_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void lru_unlink(rc_entry *e) {
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push(query_rcache *c, rc_entry *e) {
    e->next = c->lru.next;
    e->prev = &c->lru;
    c->lru.next->prev = e;
    c->lru.next = e;
}

static rc_entry **rc_slot(query_rcache *c, const char *key, uint64_t h) {
    rc_entry **p = &c->buckets[h % RC_BUCKETS];
    while (*p && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
        p = &(*p)->hnext;
    return p;
}

/* Takes e out of the cache and frees it; under mu. */
static void rc_drop(query_rcache *c, rc_entry *e) {
    rc_entry **p = rc_slot(c, e->key, e->hash);
    *p = e->hnext;
    lru_unlink(e);
    c->st.bytes -= e->bytes;
    c->st.entries--;
    rc_count(RC_BYTES, -(double)e->bytes);
    rc_count(RC_ENTRIES, -1);
    free(e);
}

int query_rcache_new(size_t max_bytes, query_rcache **out) {
    pthread_once(&rc_metrics_once, rc_metrics_init);
    query_rcache *c = calloc(1, sizeof *c);
    if (!c)
        return KILN_ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    c->lru.next = c->lru.prev = &c->lru;
    *out = c;
    return 0;
}

void query_rcache_free(query_rcache *c) {
    if (!c)
        return;
    while (c->lru.next != &c->lru)
        rc_drop(c, c->lru.next);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void query_rcache_stats_get(query_rcache *c, query_rcache_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}

/* The storage's change hook: data from mint on changed. */
void query_rcache_changed(void *data, int64_t mint) {
    query_rcache *c = data;
    pthread_mutex_lock(&c->mu);
    c->gen++;
    c->ring[c->gen % RC_RING] = mint;
    for (rc_entry *e = c->lru.next, *next; e != &c->lru; e = next) {
        next = e->next;
        if (e->last < mint)
            continue;
        c->st.invalidations++;
        rc_count(RC_INVALIDATIONS, 1);
        if (mint <= e->first)
            rc_drop(c, e);
        else
            e->last = e->first + (mint - 1 - e->first) / e->step * e->step;
    }
    pthread_mutex_unlock(&c->mu);
}

void query_rcache_attach(query_rcache *c, storage *s) {
    query_rcache_changed(c, INT64_MIN); /* what was kept came from another storage */
    storage_set_change_hook(s, query_rcache_changed, c);
}

/* Copies string s to *at, moving *at past its NUL; returns the copy. */
static const char *rc_put(char **at, const char *s) {
    char *p = *at;
    size_t n = strlen(s) + 1;
    memcpy(p, s, n);
    *at += n;
    return p;
}

/*
 * A new entry of key holding the steps start, start+step, ... last of r (a
 * matrix sorted by labels, float points only), in one allocation; NULL when
 * out of memory or when it would be over max.
 */
static rc_entry *rc_build(const char *key, const query_result *r, int64_t start, int64_t last, int64_t step,
                          size_t max) {
    size_t nsteps = (size_t)((last - start) / step) + 1, words = (nsteps + 63) / 64;
    size_t keylen = strlen(key) + 1, ns = 0, nlabels = 0, strbytes = keylen;
    for (size_t i = 0; i < r->nseries; i++) {
        const query_series *s = &r->series[i];
        if (s->npts == 0 || s->pts[0].t > last)
            continue;
        ns++;
        nlabels += s->nls;
        for (size_t j = 0; j < s->nls; j++)
            strbytes += strlen(s->ls[j].name) + strlen(s->ls[j].value) + 2;
    }
    size_t bytes = sizeof(rc_entry) + ns * (sizeof(rc_series) + (nsteps + words) * 8) +
                   nlabels * sizeof(label) + strbytes;
    if (bytes > max)
        return NULL;
    char *p = malloc(bytes);
    if (!p)
        return NULL;
    rc_entry *e = (rc_entry *)p;
    memset(e, 0, sizeof *e);
    e->s = (rc_series *)(p + sizeof *e);
    double *vals = (double *)(e->s + ns);
    uint64_t *bits = (uint64_t *)(vals + ns * nsteps);
    label *lab = (label *)(bits + ns * words);
    char *str = (char *)(lab + nlabels);
    memset(bits, 0, ns * words * 8);
    e->key = str;
    memcpy(str, key, keylen);
    str += keylen;
    e->hash = rc_hash(key);
    e->step = step;
    e->first = start;
    e->last = last;
    e->ns = ns;
    e->bytes = bytes;
    size_t k = 0;
    for (size_t i = 0; i < r->nseries; i++) {
        const query_series *s = &r->series[i];
        if (s->npts == 0 || s->pts[0].t > last)
            continue;
        rc_series *d = &e->s[k++];
        d->ls = lab;
        d->nls = s->nls;
        for (size_t j = 0; j < s->nls; j++) {
            lab[j].name = rc_put(&str, s->ls[j].name);
            lab[j].value = rc_put(&str, s->ls[j].value);
        }
        lab += s->nls;
        d->v = vals;
        d->has = bits;
        vals += nsteps;
        bits += words;
        for (size_t j = 0; j < s->npts && s->pts[j].t <= last; j++) {
            size_t x = (size_t)((s->pts[j].t - start) / step);
            d->v[x] = s->pts[j].v;
            d->has[x / 64] |= 1ULL << (x % 64);
        }
    }
    return e;
}

/* Puts e in the cache under its key (replacing the entry there) unless a
 * change reported since generation gen0 reaches its first step, cutting it
 * back to the steps before such changes; then frees the least recently used
 * entries beyond max_bytes.  Takes e. */
static void rc_insert(query_rcache *c, rc_entry *e, uint64_t gen0) {
    pthread_mutex_lock(&c->mu);
    int keep = c->gen - gen0 < RC_RING;
    for (uint64_t g = gen0 + 1; keep && g <= c->gen; g++) {
        int64_t mint = c->ring[g % RC_RING];
        if (mint <= e->first)
            keep = 0;
        else if (mint <= e->last)
            e->last = e->first + (mint - 1 - e->first) / e->step * e->step;
    }
    if (!keep) {
        pthread_mutex_unlock(&c->mu);
        free(e);
        return;
    }
    rc_entry **p = rc_slot(c, e->key, e->hash);
    if (*p)
        rc_drop(c, *p);
    p = rc_slot(c, e->key, e->hash);
    e->hnext = NULL;
    *p = e;
    lru_push(c, e);
    c->st.bytes += e->bytes;
    c->st.entries++;
    rc_count(RC_BYTES, (double)e->bytes);
    rc_count(RC_ENTRIES, 1);
    while (c->st.bytes > c->max_bytes && c->lru.prev != &c->lru) {
        c->st.evictions++;
        rc_count(RC_EVICTIONS, 1);
        rc_drop(c, c->lru.prev);
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- which queries ------------------------------------------------------------ */

/* A duration expression the parser resolved (one using step() or range()
 * is resolved per query: not cached). */
static int dur_ok(const promql_expr *d) {
    return !d || !promql_duration_is_dynamic(d);
}

/* Whether the steps of e depend only on samples at or before them, and not
 * on the query's start, end or range. */
static int rc_expr_ok(const promql_expr *e) {
    if (!e)
        return 1;
    switch (e->kind) {
    case PROMQL_VECTOR_SELECTOR:
        return e->u.vs.at == PROMQL_AT_NONE && dur_ok(e->u.vs.offset_expr) && e->u.vs.offset_ms >= 0 &&
               e->u.vs.mode == PROMQL_RANGE_PLAIN;
    case PROMQL_MATRIX_SELECTOR:
        return dur_ok(e->u.ms.range_expr) && rc_expr_ok(e->u.ms.vs);
    case PROMQL_SUBQUERY:
        return e->u.sq.at == PROMQL_AT_NONE && dur_ok(e->u.sq.offset_expr) && e->u.sq.offset_ms >= 0 &&
               dur_ok(e->u.sq.range_expr) && dur_ok(e->u.sq.step_expr) && rc_expr_ok(e->u.sq.expr);
    case PROMQL_CALL: {
        promql_func_id id = e->u.call.func->id;
        if (id == PROMQL_FN_START || id == PROMQL_FN_END || id == PROMQL_FN_RANGE)
            return 0;
        for (size_t i = 0; i < e->u.call.nargs; i++)
            if (!rc_expr_ok(e->u.call.args[i]))
                return 0;
        return 1;
    }
    case PROMQL_AGGREGATE:
        return rc_expr_ok(e->u.agg.expr) && rc_expr_ok(e->u.agg.param);
    case PROMQL_BINARY:
        return rc_expr_ok(e->u.bin.lhs) && rc_expr_ok(e->u.bin.rhs);
    case PROMQL_UNARY:
        return rc_expr_ok(e->u.unary.expr);
    case PROMQL_PAREN:
        return rc_expr_ok(e->u.paren);
    default:
        return 1;
    }
}

/* ---- the query -------------------------------------------------------------------- */

/* The points of entry series s at steps k0..k1. */
static size_t rc_count_pts(const rc_series *s, size_t k0, size_t k1) {
    size_t n = 0;
    for (size_t x = k0; x <= k1; x++)
        n += (s->has[x / 64] >> (x % 64)) & 1;
    return n;
}

/*
 * Merges the steps start..upto of entry e (under mu) with b (the steps
 * after them, a matrix sorted by labels) into b itself, whose arena holds
 * the result.  0 or KILN_ENOMEM.
 */
static int rc_merge(const rc_entry *e, int64_t start, int64_t upto, query_result *b) {
    size_t k0 = (size_t)((start - e->first) / e->step), k1 = (size_t)((upto - e->first) / e->step);
    query_series *v = arena_alloc(&b->mem, (e->ns + b->nseries + 1) * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    size_t i = 0, j = 0, n = 0;
    while (i < e->ns || j < b->nseries) {
        const rc_series *cs = i < e->ns ? &e->s[i] : NULL;
        const query_series *bs = j < b->nseries ? &b->series[j] : NULL;
        int cmp = !cs ? 1 : !bs ? -1 : labels_cmp(cs->ls, cs->nls, bs->ls, bs->nls);
        size_t na = cmp <= 0 ? rc_count_pts(cs, k0, k1) : 0, nb = cmp >= 0 ? bs->npts : 0;
        i += cmp <= 0;
        j += cmp >= 0;
        if (na + nb == 0)
            continue;
        query_series *d = &v[n++];
        memset(d, 0, sizeof *d);
        if (cmp <= 0) {
            if (!(d->ls = labels_copy(&b->mem, cs->ls, cs->nls)) && cs->nls)
                return KILN_ENOMEM;
            d->nls = cs->nls;
        } else {
            d->ls = bs->ls;
            d->nls = bs->nls;
        }
        if (!(d->pts = arena_alloc_nz(&b->mem, (na + nb) * sizeof *d->pts)))
            return KILN_ENOMEM;
        for (size_t x = k0; na && x <= k1; x++)
            if ((cs->has[x / 64] >> (x % 64)) & 1)
                d->pts[d->npts++] = (sample){e->first + (int64_t)x * e->step, cs->v[x]};
        if (nb) {
            memcpy(d->pts + na, bs->pts, nb * sizeof *d->pts);
            if (bs->hist) {
                if (!(d->hist = arena_alloc(&b->mem, (na + nb) * sizeof *d->hist)))
                    return KILN_ENOMEM;
                memcpy(d->hist + na, bs->hist, nb * sizeof *d->hist);
            }
        }
        d->npts = na + nb;
    }
    b->series = v;
    b->nseries = n;
    b->type = QUERY_MATRIX;
    b->t = start;
    return 0;
}

static int rc_has_hist(const query_result *r) {
    for (size_t i = 0; i < r->nseries; i++)
        if (r->series[i].hist)
            return 1;
    return 0;
}

/* The key of q for these steps (its canonical text, step, phase and
 * lookback) into k; 0 when q is not cacheable (or does not parse: the
 * engine then says why). */
static int rc_key(const query_engine *e, const char *q, int64_t start, int64_t step, int64_t lookback,
                  buf *k) {
    promql_ast *ast = NULL;
    kiln_err perr = {0};
    if (promql_parse_features(q, e->opts.features, &ast, &perr) != 0)
        return 0;
    int ok = rc_expr_ok(ast->root) && promql_format(k, ast->root) == 0;
    promql_ast_free(ast);
    int64_t phase = ((start % step) + step) % step;
    buf_printf(k, "\n%lld %lld %lld", (long long)step, (long long)phase, (long long)lookback);
    return ok && buf_error(k) == 0;
}

int query_range_cached(query_rcache *c, const query_engine *e, storage *s, const char *q, int64_t start,
                       int64_t end, int64_t step, const query_opts *o, int64_t now_ms, query_result *out,
                       kiln_err *err) {
    int64_t lookback = o && o->lookback_delta_ms > 0 ? o->lookback_delta_ms : e->opts.lookback_delta_ms;
    buf k = BUF_INIT;
    if (!c || c->max_bytes == 0 || step <= 0 || end < start || !storage_local_only(s) ||
        !rc_key(e, q, start, step, lookback, &k)) {
        buf_free(&k);
        if (c)
            query_rcache_bypass(c);
        return query_range(e, s, q, start, end, step, o, out, err);
    }
    /* the last step this query may keep: at or before now - lookback */
    int64_t frozen = (now_ms ? now_ms : time_now_ms()) - lookback;
    int64_t keep_last =
        frozen < start ? INT64_MIN : start + ((frozen < end ? frozen : end) - start) / step * step;
    if (keep_last != INT64_MIN)
        storage_watch_raise(s, keep_last); /* before the querier opens: see the file's comment */
    uint64_t h = rc_hash(k.data);
    pthread_mutex_lock(&c->mu);
    uint64_t gen0 = c->gen;
    rc_entry *ce = *rc_slot(c, k.data, h);
    int64_t upto = INT64_MIN; /* the last step answered from the cache */
    if (ce && ce->first <= start && ce->last >= start) {
        upto = ce->last < end ? ce->last : end;
        lru_unlink(ce);
        lru_push(c, ce);
    }
    pthread_mutex_unlock(&c->mu);
    int rc = 0, hit = 0;
    if (upto != INT64_MIN) {
        query_result b;
        memset(&b, 0, sizeof b);
        b.type = QUERY_MATRIX;
        if (upto <= end - step) /* a step after the kept ones (end need not be one) */
            rc = query_range(e, s, q, upto + step, end, step, o, &b, err);
        if (rc != 0) {
            buf_free(&k);
            return rc;
        }
        pthread_mutex_lock(&c->mu);
        ce = *rc_slot(c, k.data, h);
        if (ce && ce->first <= start && ce->last >= upto) {
            hit = 1;
            rc = rc_merge(ce, start, upto, &b);
            c->st.hits++;
            c->st.steps_reused += (uint64_t)((upto - start) / step) + 1;
            c->st.steps_evaluated += (uint64_t)((end - upto) / step);
        }
        pthread_mutex_unlock(&c->mu);
        if (hit && rc == 0) {
            *out = b;
            rc_count(RC_HITS, 1);
            rc_count(RC_REUSED, (double)((upto - start) / step) + 1);
            rc_count(RC_EVALUATED, (double)((end - upto) / step));
        } else {
            query_result_free(&b); /* cut back meanwhile (or out of memory): evaluate it all */
            hit = 0;
        }
    }
    if (!hit) {
        if ((rc = query_range(e, s, q, start, end, step, o, out, err)) != 0) {
            buf_free(&k);
            return rc;
        }
        pthread_mutex_lock(&c->mu);
        c->st.misses++;
        c->st.steps_evaluated += (uint64_t)((end - start) / step) + 1;
        pthread_mutex_unlock(&c->mu);
        rc_count(RC_MISSES, 1);
        rc_count(RC_EVALUATED, (double)((end - start) / step) + 1);
    }
    if (keep_last != INT64_MIN && out->type == QUERY_MATRIX && !out->nwarnings && !out->ninfos &&
        !rc_has_hist(out)) {
        /* one entry at most a quarter of the cache */
        rc_entry *ne = rc_build(k.data, out, start, keep_last, step, c->max_bytes / 4);
        if (ne)
            rc_insert(c, ne, gen0);
    }
    buf_free(&k);
    return 0;
}

void query_rcache_bypass(query_rcache *c) {
    if (c) {
        pthread_mutex_lock(&c->mu);
        c->st.uncacheable++;
        pthread_mutex_unlock(&c->mu);
    }
    rc_count(RC_UNCACHEABLE, 1);
}
