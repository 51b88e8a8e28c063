/*
 * append.c - a scrape's samples into storage, on a worker thread of
 * libuv's pool (target.c queues the work once the fetch is done).
 *
 * Per target and scrape: every sample of the body goes into one appender
 * batch together with the report series (up, scrape_duration_seconds,
 * scrape_samples_scraped, scrape_samples_post_metric_relabeling,
 * scrape_series_added).  The scrape's limits (sample_limit, label_limit,
 * label name and value lengths) fail the whole batch, which is then rolled
 * back and only up 0 and the report series are stored.  Series that were in
 * the previous stored scrape and are not in this one get a stale marker,
 * and so does every series of a target that goes away (append_stale).
 *
 * The series cache maps a line's series text, as written, to its storage
 * reference, so that in the steady state a sample costs a memcmp against
 * the expected entry and an append by reference: no hashing, no label work,
 * no allocation.  Labels are built (target labels merged, metric relabeling
 * applied) only for a series new to the cache.
 *
 * The body is parsed by the format its Content-Type names (protocols.c):
 * the text formats by parse.c, the protobuf format by protoexpo.c, whose
 * native histograms (when scrape_native_histograms is on) are appended
 * with appender_append_histogram after the config's bucket limit and
 * bucket factor lowered their schema (hist_apply_limits).  A series whose
 * last sample was a histogram gets a histogram stale marker.
 *
 * Threading: a worker thread, one per target at a time; it owns the
 * target's cache, report refs, scratch arena and labels builder.  The
 * metadata list is shared with the API and written under m->mu.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "scrape/internal.h"
#include "scrape/parse.h"
#include "scrape/protoexpo.h"
#include "scrape/relabel.h"

/* ---- the series cache ------------------------------------------------- */

/* The entry at the cursor when it is this line (the common case). */
static centry *cache_next(scache *c, const char *k, size_t klen) {
    if (c->cursor >= c->n)
        return NULL;
    centry *e = &c->v[c->cursor];
    if (e->klen != klen || memcmp(e->key, k, klen) != 0)
        return NULL;
    c->cursor++;
    return e;
}

static centry *cache_lookup(scache *c, uint64_t h, const char *k, size_t klen) {
    if (!c->capi)
        return NULL;
    for (size_t i = h & (c->capi - 1);; i = (i + 1) & (c->capi - 1)) {
        uint32_t x = c->idx[i];
        if (!x)
            return NULL;
        centry *e = &c->v[x - 1];
        if (e->hash == h && e->klen == klen && memcmp(e->key, k, klen) == 0) {
            c->cursor = x; /* the following line is expected next */
            return e;
        }
    }
}

KILN_MUST_CHECK static int cache_reindex(scache *c, size_t want) {
    size_t cap = 64;
    while (cap < want * 2)
        cap *= 2;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return KILN_ENOMEM;
    for (size_t j = 0; j < c->n; j++) {
        size_t i = c->v[j].hash & (cap - 1);
        while (idx[i])
            i = (i + 1) & (cap - 1);
        idx[i] = (uint32_t)j + 1;
    }
    free(c->idx);
    c->idx = idx;
    c->capi = cap;
    return 0;
}

/* Forgets the entries last seen before min_seen that have no live sample. */
KILN_MUST_CHECK static int cache_compact(scache *c, uint32_t min_seen) {
    arena keys;
    arena_init(&keys, 0);
    size_t k = 0;
    for (size_t j = 0; j < c->n; j++) {
        centry e = c->v[j];
        if (e.seen < min_seen && !e.in_last)
            continue;
        char *nk = arena_alloc_nz(&keys, e.klen ? e.klen : 1);
        if (!nk) {
            arena_free(&keys);
            return KILN_ENOMEM;
        }
        memcpy(nk, e.key, e.klen);
        e.key = nk;
        c->v[k++] = e;
    }
    arena_free(&c->keys);
    c->keys = keys;
    c->n = k;
    c->cursor = 0;
    return cache_reindex(c, k + 1);
}

static centry *cache_add(scache *c, uint64_t h, const char *k, size_t klen) {
    if (array_grow((void **)&c->v, &c->capv, c->n + 1, sizeof *c->v) != 0)
        return NULL;
    if ((c->n + 1) * 4 > c->capi * 3 && cache_reindex(c, c->n + 1) != 0)
        return NULL;
    char *nk = arena_alloc_nz(&c->keys, klen ? klen : 1);
    if (!nk)
        return NULL;
    memcpy(nk, k, klen);
    centry *e = &c->v[c->n];
    memset(e, 0, sizeof *e);
    e->key = nk;
    e->klen = (uint32_t)klen;
    e->hash = h;
    size_t i = h & (c->capi - 1);
    while (c->idx[i])
        i = (i + 1) & (c->capi - 1);
    c->idx[i] = (uint32_t)++c->n;
    c->cursor = c->n;
    return e;
}

void append_cache_free(scache *c) {
    free(c->v);
    free(c->idx);
    arena_free(&c->keys);
    memset(c, 0, sizeof *c);
}

/* ---- appending ------------------------------------------------------------- */

/* The result rc of an append: a sample the head refuses for its timestamp
 * (out of order, a duplicate, out of bounds) is counted and the scrape goes
 * on, as in Prometheus; any other error is returned, with why set. */
KILN_MUST_CHECK static int appended(target *t, int rc, kiln_err *e, char *why, size_t whyn) {
    scrape_manager *m = t->m;
    switch (rc) {
    case 0:
        return 0;
    case KILN_EORDER:
        metric_add(m->m_ooo, 1);
        return 0;
    case KILN_EEXIST:
        metric_add(m->m_dup, 1);
        return 0;
    case KILN_ERANGE:
        metric_add(m->m_oob, 1);
        return 0;
    default:
        snprintf(why, whyn, "%s", e->msg);
        return rc;
    }
}

/* Appends a sample by ref, creating the series again from ls when the ref
 * is no longer known (the head dropped an idle series). */
KILN_MUST_CHECK static int append_ref(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t ts,
                                      double v, kiln_err *e) {
    if (*ref) {
        int rc = appender_append(a, ref, NULL, 0, ts, v, e);
        if (rc != KILN_EINVAL)
            return rc;
        *ref = 0;
    }
    return appender_append(a, ref, ls, n, ts, v, e);
}

/* Appends a float (h NULL) or a native histogram. */
KILN_MUST_CHECK static int append_value(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t ts,
                                        double v, const histogram *h, kiln_err *e) {
    return h ? appender_append_histogram(a, ref, ls, n, ts, h, e) : appender_append(a, ref, ls, n, ts, v, e);
}

/* Merges the target labels into the sample's labels in lb (Prometheus'
 * mutateSampleLabels): with honor_labels the scraped ones win, otherwise
 * the target's do and clashing scraped labels become exported_<name>. */
KILN_MUST_CHECK static int merge_target_labels(target *t, const scrape_config *sc, labels_builder *lb,
                                               arena *a) {
    size_t n;
    const label *cur;
    for (size_t i = 0; i < t->nls; i++) {
        cur = lb_labels(lb, &n);
        const char *have = labels_get(cur, n, t->ls[i].name);
        if (sc->honor_labels) {
            if (!have && lb_set(lb, t->ls[i].name, t->ls[i].value) != 0)
                return KILN_ENOMEM;
            continue;
        }
        if (have) {
            /* find a free exported_ name for the scraped value */
            size_t nl = strlen(t->ls[i].name);
            char *name = NULL;
            for (int k = 1; k < 16; k++) {
                name = arena_alloc(a, nl + (size_t)k * 9 + 1);
                if (!name)
                    return KILN_ENOMEM;
                name[0] = 0;
                for (int j = 0; j < k; j++)
                    strcat(name, "exported_");
                strcat(name, t->ls[i].name);
                cur = lb_labels(lb, &n);
                int clash = labels_get(cur, n, name) != NULL || labels_get(t->ls, t->nls, name) != NULL;
                if (!clash)
                    break;
            }
            if (lb_set(lb, name, have) != 0)
                return KILN_ENOMEM;
        }
        if (lb_set(lb, t->ls[i].name, t->ls[i].value) != 0)
            return KILN_ENOMEM;
    }
    return 0;
}

/* ---- the body's entries: one interface over the two parsers ---------------- */

/* A body's parser: parse.c's for the text formats, or protoexpo.c's. */
typedef struct source {
    expo_parser *text;
    pexpo *proto;
} source;

KILN_MUST_CHECK static int src_next(source *s, expo_entry *k, kiln_err *e) {
    return s->proto ? pexpo_next(s->proto, k, e) : expo_next(s->text, k, e);
}
static const char *src_metric(const source *s, size_t *n) {
    return s->proto ? pexpo_metric(s->proto, n) : expo_metric(s->text, n);
}
static const char *src_series(const source *s, size_t *n) {
    return s->proto ? pexpo_series(s->proto, n) : expo_series(s->text, n);
}
static size_t src_labels(const source *s, const expo_label **ls) {
    return s->proto ? pexpo_labels(s->proto, ls) : expo_labels(s->text, ls);
}
static double src_value(const source *s) {
    return s->proto ? pexpo_value(s->proto) : expo_value(s->text);
}
static int src_timestamp(const source *s, int64_t *ms) {
    return s->proto ? pexpo_timestamp(s->proto, ms) : expo_timestamp(s->text, ms);
}
static const char *src_text(const source *s, size_t *n) {
    return s->proto ? pexpo_text(s->proto, n) : expo_text(s->text, n);
}
static expo_type src_type(const source *s) {
    return s->proto ? pexpo_metric_type(s->proto) : expo_metric_type(s->text);
}

/* The parser for the body of t in format fmt (SCRAPE_FMT_*); 0 or KILN_ENOMEM. */
KILN_MUST_CHECK static int src_open(source *s, target *t, const scrape_config *sc, int fmt) {
    const char *body = t->body.data ? t->body.data : "";
    memset(s, 0, sizeof *s);
    if (fmt == SCRAPE_FMT_PROTO) {
        pexpo_opts o = {.native = sc->scrape_native_histograms,
                        .classic = sc->always_scrape_classic_histograms};
        s->proto = pexpo_new(body, t->body.len, &o);
        return s->proto ? 0 : KILN_ENOMEM;
    }
    s->text = expo_parser_new(fmt == SCRAPE_FMT_OM ? EXPO_OPENMETRICS : EXPO_TEXT, body, t->body.len);
    return s->text ? 0 : KILN_ENOMEM;
}

static void src_close(source *s) {
    pexpo_free(s->proto);
    expo_parser_free(s->text);
}

/* The entry's k-th exemplar (the text formats have one at most; the
 * protobuf format one per counter or classic bucket, several for a native
 * histogram): 1 with the fields set (*has_ts < 0: a timestamp beyond int64
 * ms), 0 when there is none (or it is malformed: dropped, as Prometheus). */
static int src_exemplar(source *s, size_t k, const expo_label **ls, size_t *n, double *v, int *has_ts,
                        int64_t *ts) {
    if (!s->proto)
        return k == 0 && expo_exemplar(s->text, ls, n, v, has_ts, ts);
    pexpo_ex ex;
    kiln_err e = {0};
    if (pexpo_exemplar(s->proto, k, &ex, &e) != 1)
        return 0;
    *ls = ex.ls, *n = ex.nls, *v = ex.value, *has_ts = ex.has_ts, *ts = ex.ts_ms;
    return 1;
}

static int src_has_exemplar(source *s) {
    const expo_label *ls;
    size_t n;
    double v;
    int has_ts;
    int64_t ts;
    return s->proto ? src_exemplar(s, 0, &ls, &n, &v, &has_ts, &ts) : expo_has_exemplar(s->text);
}

/* The labels of the parser's current sample, in t->lb: the target's merged
 * in, metric relabeling applied (a NUL byte in a value held as C0 80:
 * util/strnul.c).  1 kept (*ls, *n), 0 dropped, KILN_ENOMEM. */
KILN_MUST_CHECK static int sample_labels(target *t, const scrape_config *sc, const source *p,
                                         const label **ls, size_t *n) {
    labels_builder *lb = &t->lb;
    lb_reset(lb);
    size_t mlen;
    const char *mname = src_metric(p, &mlen);
    char *nm = arena_strndup(&t->scratch, mname, mlen);
    if (!nm || lb_set(lb, LABEL_NAME, nm) != 0)
        return KILN_ENOMEM;
    const expo_label *el;
    size_t nel = src_labels(p, &el);
    for (size_t i = 0; i < nel; i++) {
        char *ln = arena_strndup(&t->scratch, el[i].name, el[i].name_len);
        char *lv = arena_strndup_nul(&t->scratch, el[i].value, el[i].value_len);
        if (!ln || !lv || lb_set(lb, ln, lv) != 0)
            return KILN_ENOMEM;
    }
    if (merge_target_labels(t, sc, lb, &t->scratch) != 0)
        return KILN_ENOMEM;
    int keep = relabel_apply(sc->metric_relabel_configs, sc->nmetric_relabel_configs, lb, &t->scratch);
    if (keep < 0)
        return KILN_ENOMEM;
    *ls = lb_labels(lb, n);
    return keep && *n > 0;
}

/* A zero sample at the created time ct before a sample of the series; one
 * the head refuses (already there from an earlier scrape: out of order or a
 * duplicate, or out of bounds) is ignored, as Prometheus ignores it. */
KILN_MUST_CHECK static int ct_zero(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t ct) {
    kiln_err e = {0};
    int rc = appender_append(a, ref, *ref ? NULL : ls, *ref ? 0 : n, ct, 0.0, &e);
    return rc == KILN_ENOMEM ? rc : 0;
}

/* ---- exemplars ------------------------------------------------------------ */

/* Stages the current sample's exemplars, if any, for the series `ref`
 * (appender_append_exemplar: in the WAL and the store with the commit): its
 * timestamp is the sample's (st) when the exposition gives none, as
 * Prometheus; one beyond int64 ms is dropped, an out-of-order one counted,
 * a duplicate of the newest (the same exemplar scraped again) ignored. */
KILN_MUST_CHECK static int stage_exemplars(target *t, source *p, appender *a, uint64_t ref, int64_t st) {
    const expo_label *el;
    size_t nel;
    double v;
    int has_ts;
    int64_t ets;
    for (size_t k = 0; src_exemplar(p, k, &el, &nel, &v, &has_ts, &ets); k++) {
        if (has_ts < 0)
            continue;
        label *ls = arena_alloc(&t->scratch, (nel ? nel : 1) * sizeof *ls);
        if (!ls)
            return KILN_ENOMEM;
        for (size_t i = 0; i < nel; i++) {
            char *ln = arena_strndup(&t->scratch, el[i].name, el[i].name_len);
            char *lv = arena_strndup_nul(&t->scratch, el[i].value, el[i].value_len);
            if (!ln || !lv)
                return KILN_ENOMEM;
            ls[i] = (label){ln, lv};
        }
        kiln_err e;
        exemplar ex = {ls, nel, v, has_ts ? ets : st, has_ts};
        int rc = appender_append_exemplar(a, ref, &ex, &e);
        if (rc == KILN_ENOMEM)
            return rc;
        if (rc == KILN_EORDER)
            metric_add(t->m->m_ex_ooo, 1);
    }
    return 0;
}

/* Records a # HELP / # TYPE / # UNIT line. */
static void meta_note(target *t, const source *p, expo_entry kind) {
    size_t nlen, tlen = 0;
    const char *name = src_metric(p, &nlen);
    const char *text = kind == EXPO_TYPE ? NULL : src_text(p, &tlen);
    mentry *e = NULL;
    for (size_t i = 0; i < t->nmeta; i++)
        if (strlen(t->meta[i].name) == nlen && memcmp(t->meta[i].name, name, nlen) == 0) {
            e = &t->meta[i];
            break;
        }
    if (e) {
        /* unchanged: nothing to do (the common case, no lock) */
        if (kind == EXPO_TYPE && e->type == (int)src_type(p))
            return;
        const char *old = kind == EXPO_HELP ? e->help : e->unit;
        if (kind != EXPO_TYPE && old && strlen(old) == tlen && memcmp(old, text, tlen) == 0)
            return;
    }
    pthread_mutex_lock(&t->m->mu);
    if (!e) {
        if (array_grow((void **)&t->meta, &t->capmeta, t->nmeta + 1, sizeof *t->meta) != 0)
            goto out;
        e = &t->meta[t->nmeta];
        memset(e, 0, sizeof *e);
        if (!(e->name = strndup(name, nlen)))
            goto out;
        t->nmeta++;
    }
    if (kind == EXPO_TYPE) {
        e->type = (int)src_type(p);
    } else {
        char **slot = kind == EXPO_HELP ? &e->help : &e->unit;
        char *v = strndup(text, tlen);
        if (v) {
            free(*slot);
            *slot = v;
        }
    }
out:
    pthread_mutex_unlock(&t->m->mu);
}

/* Stale markers for the series of the last stored scrape that are not in
 * this one (all of them when `all`); then forgets series long gone. */
KILN_MUST_CHECK static int write_stale(target *t, appender *a, int64_t ts, int all, int track_explicit,
                                       char *why, size_t whyn) {
    kiln_err e = {0};
    size_t gone = 0;
    for (size_t i = 0; i < t->cache.n; i++) {
        centry *c = &t->cache.v[i];
        int live = !all && c->seen == t->iter && !c->dropped;
        if (c->in_last && !live && (!c->explicit_ts || track_explicit)) {
            /* a histogram series ends with a histogram stale marker, as Prometheus' head turns one into */
            histogram sh = {.is_int = 1};
            sh.sum = stale_nan();
            int rc = c->is_hist ? appender_append_histogram(a, &c->ref, NULL, 0, ts, &sh, &e)
                                : appender_append(a, &c->ref, NULL, 0, ts, stale_nan(), &e);
            if (rc == KILN_EINVAL)
                rc = 0; /* the series is gone from the head already */
            if ((rc = appended(t, rc, &e, why, whyn)) != 0)
                return rc;
        }
        c->in_last = live;
        gone += c->seen != t->iter;
    }
    if (gone && cache_compact(&t->cache, t->iter) != 0)
        return KILN_ENOMEM;
    return 0;
}

KILN_MUST_CHECK static int write_report(target *t, appender *a, int64_t ts, const double *v, char *why,
                                        size_t whyn) {
    kiln_err e = {0};
    for (int r = 0; r < NREP; r++) {
        int rc = append_ref(a, &t->rep_ref[r], t->rep[r], t->nls + 1, ts, v[r], &e);
        if ((rc = appended(t, rc, &e, why, whyn)) != 0)
            return rc;
    }
    return 0;
}

/* Parses and stages the body; 0, or an error with why set (the batch is then dropped). */
KILN_MUST_CHECK static int stage_samples(target *t, const scrape_config *sc, appender *a, int64_t ts,
                                         int exemplars, size_t *scraped, size_t *post, size_t *added,
                                         char *why, size_t whyn) {
    kiln_err e = {0};
    t->cache.cursor = 0;
    char fwhy[320];
    int fmt = protocols_format(t->ctype, sc->fallback_scrape_protocol, fwhy, sizeof fwhy);
    if (fmt < 0) {
        snprintf(why, whyn, "%s", fwhy);
        return KILN_EINVAL;
    }
    if (fwhy[0])
        LOG_DEBUG("Invalid content type on scrape, using fallback setting", "target=%s err=\"%s\"", t->url,
                  fwhy);
    double factor =
        sc->native_histogram_min_bucket_factor ? strtod(sc->native_histogram_min_bucket_factor, NULL) : 0;
    source src, *p = &src;
    if (src_open(&src, t, sc, fmt) != 0) {
        snprintf(why, whyn, "out of memory");
        return KILN_ENOMEM;
    }
    int rc;
    expo_entry kind;
    int ctz = (t->m->features & FEATURE_CREATED_TIMESTAMP_ZERO_INGESTION) != 0;
    while ((rc = src_next(p, &kind, &e)) == 1) {
        if (kind != EXPO_SAMPLE && kind != EXPO_NHIST) {
            if (kind == EXPO_TYPE || kind == EXPO_HELP || kind == EXPO_UNIT)
                meta_note(t, p, kind);
            continue;
        }
        /* created-timestamp-zero-ingestion: _created is not a series but a
         * zero sample at that time before the point's samples (Prometheus'
         * AppendCTZeroSample); without it, _created is a series (2.42) */
        if (ctz && !p->proto && expo_is_created(p->text))
            continue;
        (*scraped)++;
        histogram *hv = kind == EXPO_NHIST ? pexpo_histogram(src.proto) : NULL;
        if (hv) {
            int lrc = hist_apply_limits(hv, sc->native_histogram_bucket_limit, factor);
            if (lrc != 0) {
                snprintf(why, whyn, "%s",
                         lrc == KILN_ELIMIT
                             ? "histogram bucket limit exceeded"
                             : "histogram has an invalid schema, which must be between -4 and 8");
                rc = lrc;
                break;
            }
        }
        size_t klen;
        const char *key = src_series(p, &klen);
        uint64_t h = 0;
        centry *c = cache_next(&t->cache, key, klen);
        if (!c) {
            h = XXH3_64bits(key, klen);
            c = cache_lookup(&t->cache, h, key, klen);
        }
        int64_t st = ts;
        int has_ts = src_timestamp(p, &st);
        int explicit_ts = sc->honor_timestamps && has_ts != 0;
        if (!explicit_ts)
            st = ts;
        double v = hv ? 0 : src_value(p);
        if (c && c->dropped) {
            c->seen = t->iter;
            continue;
        }
        if (sc->sample_limit && *post + 1 > sc->sample_limit) {
            snprintf(why, whyn, "sample limit exceeded");
            metric_add(t->m->m_sample_limit, 1);
            rc = KILN_ELIMIT;
            break;
        }
        if (explicit_ts && has_ts < 0) {
            /* a timestamp beyond int64 ms: Prometheus' int64(ts*1000) is then
             * out of bounds, the sample dropped and counted, the scrape kept */
            metric_add(t->m->m_oob, 1);
            (*post)++;
            continue;
        }
        int64_t ct = 0;
        int has_ct =
            ctz && !hv && !p->proto && expo_created(p->text, &ct) && ct < st; /* text formats' _created */
        if (c && c->ref) {
            if (has_ct && ct_zero(a, &c->ref, NULL, 0, ct) != 0)
                goto nomem;
            rc = append_value(a, &c->ref, NULL, 0, st, v, hv, &e);
            if (rc != KILN_EINVAL) {
                if ((rc = appended(t, rc, &e, why, whyn)) != 0)
                    break;
                c->seen = t->iter;
                c->explicit_ts = (uint8_t)explicit_ts;
                c->is_hist = hv != NULL;
                (*post)++;
                if (exemplars && src_has_exemplar(p) && stage_exemplars(t, p, a, c->ref, st) != 0)
                    goto nomem;
                continue;
            }
            c->ref = 0; /* unknown ref: make the labels again */
        }
        /* a series new to the cache: build its labels */
        size_t n = 0;
        const label *ls = NULL;
        int keep = sample_labels(t, sc, p, &ls, &n);
        if (keep < 0)
            goto nomem;
        if (!c && !(c = cache_add(&t->cache, h, key, klen)))
            goto nomem;
        c->seen = t->iter;
        if (!keep) {
            c->dropped = 1;
            continue;
        }
        if (!labels_get(ls, n, LABEL_NAME)) {
            snprintf(why, whyn, "missing metric name (__name__ label)");
            rc = KILN_EINVAL;
            break;
        }
        if (sc->label_limit && n > sc->label_limit) {
            snprintf(why, whyn, "label_limit exceeded (metric: %.50s, number of labels: %zu, limit: %llu)",
                     labels_get(ls, n, LABEL_NAME), n, (unsigned long long)sc->label_limit);
            rc = KILN_ELIMIT;
            break;
        }
        for (size_t i = 0; i < n && rc == 1; i++) {
            if (sc->label_name_length_limit && strlen(ls[i].name) > sc->label_name_length_limit) {
                snprintf(why, whyn,
                         "label_name_length_limit exceeded (metric: %.50s, label name: %.50s, limit: %llu)",
                         labels_get(ls, n, LABEL_NAME), ls[i].name,
                         (unsigned long long)sc->label_name_length_limit);
                rc = KILN_ELIMIT;
            } else if (sc->label_value_length_limit && strlen(ls[i].value) > sc->label_value_length_limit) {
                snprintf(
                    why, whyn,
                    "label_value_length_limit exceeded (metric: %.50s, label name: %.50s, value: \"%.50s\", "
                    "limit: %llu)",
                    labels_get(ls, n, LABEL_NAME), ls[i].name, ls[i].value,
                    (unsigned long long)sc->label_value_length_limit);
                rc = KILN_ELIMIT;
            }
        }
        if (rc != 1)
            break;
        uint64_t ref = 0;
        if (has_ct && ct_zero(a, &ref, ls, n, ct) != 0)
            goto nomem;
        rc = append_value(a, &ref, ls, n, st, v, hv, &e);
        if (rc == KILN_EINVAL) {
            snprintf(why, whyn, "%s", e.msg);
            break;
        }
        if ((rc = appended(t, rc, &e, why, whyn)) != 0)
            break;
        c->ref = ref;
        c->explicit_ts = (uint8_t)explicit_ts;
        c->is_hist = hv != NULL;
        (*post)++;
        (*added)++;
        if (exemplars && stage_exemplars(t, p, a, ref, st) != 0)
            goto nomem;
        continue;
    nomem:
        snprintf(why, whyn, "out of memory");
        rc = KILN_ENOMEM;
        break;
    }
    if (rc < 0 && !why[0])
        snprintf(why, whyn, "%s", e.msg);
    src_close(&src);
    return rc < 0 ? rc : 0;
}

/* scrape_failure_log_file: one JSON line per failed scrape, appended (the
 * file is opened for each line, so a reload that changes it, or a rotation,
 * needs nothing more). */
static void log_failure(const target *t, const scrape_config *sc, const char *why) {
    buf b = BUF_INIT;
    char ts[TIME_RFC3339_MAX];
    int64_t now = time_now_ms();
    time_format_rfc3339(ts, now / 1000, (now % 1000) * 1000000, 3);
    buf_printf(&b, "{\"time\":\"%s\",\"level\":\"ERROR\",\"msg\":", ts);
    json_str(&b, why);
    buf_puts(&b, ",\"component\":\"scrape manager\",\"scrape_pool\":");
    json_str(&b, sc->job_name);
    buf_puts(&b, ",\"target\":");
    json_str(&b, t->url);
    buf_puts(&b, "}\n");
    int fd = buf_error(&b)
                 ? -1
                 : open(sc->scrape_failure_log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (fileio_write_all(fd, b.data, b.len) != 0)
            LOG_WARN("writing the scrape failure log failed", "file=%s", sc->scrape_failure_log_file);
        close(fd);
    }
    buf_free(&b);
}

void append_scrape(target *t) {
    const scrape_config *sc = t->job_sc;
    storage *st = t->m->st;
    int64_t ts = t->start_ms;
    char why[512] = "";
    size_t scraped = 0, post = 0, added = 0;
    kiln_err e = {0};
    t->iter++;
    int exemplars = storage_exemplars(st) != NULL;
    appender *a = storage_appender(st);
    int ok = a != NULL && !t->job_err[0];
    if (!a)
        snprintf(why, sizeof why, "out of memory");
    else if (t->job_err[0])
        snprintf(why, sizeof why, "%s", t->job_err);
    else if (stage_samples(t, sc, a, ts, exemplars, &scraped, &post, &added, why, sizeof why) != 0) {
        ok = 0;
        appender_rollback(a);
        a = storage_appender(st);
    }
    if (!ok)
        scraped = post = added = 0;
    if (a) {
        char w2[512] = "";
        double rep[NREP] = {ok ? 1 : 0, t->job_duration, (double)scraped, (double)post, (double)added};
        if (write_stale(t, a, ts, !ok, sc->track_timestamps_staleness, w2, sizeof w2) != 0 ||
            write_report(t, a, ts, rep, w2, sizeof w2) != 0) {
            appender_rollback(a);
            if (ok)
                snprintf(why, sizeof why, "%s", w2);
            ok = 0;
        } else if (appender_commit(a, &e) != 0) {
            snprintf(why, sizeof why, "%s", e.msg);
            ok = 0;
        }
    }
    arena_free(&t->scratch);
    arena_init(&t->scratch, 0);
    t->job_ok = ok;
    snprintf(t->job_result, sizeof t->job_result, "%s", ok ? "" : why);
    if (!ok && sc->scrape_failure_log_file)
        log_failure(t, sc, why);
}

/* The target went away: stale markers for everything it had. */
void append_stale(target *t) {
    appender *a = storage_appender(t->m->st);
    if (!a)
        return;
    char why[256] = "";
    int64_t ts = time_now_ms();
    double nan[NREP];
    for (int r = 0; r < NREP; r++)
        nan[r] = stale_nan();
    kiln_err e = {0};
    t->iter++;
    if (write_stale(t, a, ts, 1, 1, why, sizeof why) != 0 ||
        write_report(t, a, ts, nan, why, sizeof why) != 0) {
        appender_rollback(a);
        return;
    }
    if (appender_commit(a, &e) != 0)
        LOG_WARN("writing stale markers failed", "target=%s err=%s", t->url, e.msg);
}
