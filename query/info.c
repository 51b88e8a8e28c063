/*
 * info.c - info(v, [data-label-selector]) (promql-experimental-functions,
 * functions.md "info()"): adds to each series of v the data labels of the
 * info series that share its identifying labels.
 *
 * As functions.md's "Limitations" say: the info series are those named
 * target_info unless the selector has a positive __name__ matcher (with
 * only negated ones, every .+_info metric, filtered by them); the
 * identifying labels are instance and job; the data labels are the others
 * but __name__.  At each step an info series counts when it has a sample
 * within the lookback delta; of several with one name, the one with the
 * latest sample wins (the "identity crisis" of a changed info series).
 * With data-label matchers in the selector, only the labels they name are
 * added, and a series no info series matches is dropped at that step when
 * one of them does not match "" (otherwise it is returned as it is).
 * Labels the series has already are kept.  A series of v that matches the
 * selector itself (an info series) is returned unchanged.
 *
 * Called by funcs.c.  Threading: the query's.
 */
#include <stdlib.h>
#include <string.h>

#include "query/eval.h"

static const char *const ID_LABELS[] = {"instance", "job"};

/* The hash of a label set's identifying label values. */
static uint64_t id_key(const label *ls, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < sizeof ID_LABELS / sizeof ID_LABELS[0]; i++) {
        const char *v = labels_get(ls, n, ID_LABELS[i]);
        for (const char *p = v ? v : ""; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

static int same_ids(const label *a, size_t na, const label *b, size_t nb) {
    for (size_t i = 0; i < sizeof ID_LABELS / sizeof ID_LABELS[0]; i++) {
        const char *x = labels_get(a, na, ID_LABELS[i]), *y = labels_get(b, nb, ID_LABELS[i]);
        if (strcmp(x ? x : "", y ? y : ""))
            return 0;
    }
    return 1;
}

static int is_id_label(const char *name) {
    for (size_t i = 0; i < sizeof ID_LABELS / sizeof ID_LABELS[0]; i++)
        if (!strcmp(name, ID_LABELS[i]))
            return 1;
    return 0;
}

/* Only the hash: bsearch finds any of a run of equal keys. */
static int cmp_key(const void *a, const void *b) {
    const pq_hashed *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h;
}

/* Whether all of ms match the label set. */
static int matches_all(const matcher *ms, size_t n, const label *ls, size_t nls) {
    for (size_t i = 0; i < n; i++) {
        const char *v = labels_get(ls, nls, ms[i].name);
        if (!matcher_matches(&ms[i], v ? v : ""))
            return 0;
    }
    return 1;
}

static int lb_has(const labels_builder *b, const char *name) {
    for (size_t i = 0; i < b->n; i++)
        if (!strcmp(b->v[i].name, name))
            return 1;
    return 0;
}

/* Adds the data labels of info series s to the builder (not those the
 * series has, nor those the data matchers do not name). */
static int add_data(pq_ctx *c, const series *s, const matcher *data, size_t ndata) {
    for (size_t l = 0; l < s->nls; l++) {
        const label *lab = &s->ls[l];
        if (!strcmp(lab->name, LABEL_NAME) || is_id_label(lab->name) || lb_has(&c->lb, lab->name))
            continue;
        int named = ndata == 0;
        for (size_t m = 0; m < ndata && !named; m++)
            named = !strcmp(data[m].name, lab->name);
        if (named && lb_set(&c->lb, lab->name, lab->value) < 0)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
    }
    return 0;
}

int pq_eval_info(pq_ctx *c, const promql_expr *e, pq_value *out) {
    const promql_call *call = &e->u.call;
    out->type = PROMQL_TYPE_VECTOR;
    pq_value in;
    memset(&in, 0, sizeof in);
    int rc = pq_eval(c, call->args[0], &in);
    if (rc < 0)
        return rc;
    const promql_vector_selector *sel = call->nargs > 1 ? &pq_unparen(call->args[1])->u.vs : NULL;
    size_t nsel = sel ? sel->nmatchers : 0;
    /* the selector's matchers, then the default name matcher if needed */
    matcher *ms = calloc(nsel + 1, sizeof *ms), *data = calloc(nsel + 1, sizeof *data);
    pq_hashed *refs = NULL;
    size_t *cur = NULL, *bcur = NULL;
    int64_t *seen = NULL;
    matcher def;
    int have_def = 0;
    pq_out col;
    pq_out_init(&col);
    if (!ms || !data)
        goto nomem;
    size_t nms = 0, ndata = 0;
    int pos_name = 0, neg_name = 0, required = 0;
    for (size_t i = 0; i < nsel; i++) {
        const matcher *m = &sel->matchers[i];
        ms[nms++] = *m;
        if (!strcmp(m->name, LABEL_NAME)) {
            if (m->type == MATCH_EQ || m->type == MATCH_RE)
                pos_name = 1;
            else
                neg_name = 1;
        } else {
            data[ndata++] = *m;
            required |= !matcher_matches_empty(m);
        }
    }
    if (!pos_name) {
        kiln_err merr;
        memset(&merr, 0, sizeof merr);
        if (matcher_init(&def, neg_name ? MATCH_RE : MATCH_EQ, LABEL_NAME,
                         neg_name ? ".+_info" : "target_info", &merr) < 0)
            goto nomem;
        have_def = 1;
        ms[nms++] = def;
    }
    promql_vector_selector vs;
    memset(&vs, 0, sizeof vs);
    vs.matchers = ms;
    vs.nmatchers = nms;
    series_set *set;
    if ((rc = pq_select(c, &vs, c->start - c->lookback + 1, c->end, &set)) < 0)
        goto done;
    size_t ni = set->n, nb = in.m.n;
    refs = malloc((ni + 1) * sizeof *refs);
    cur = calloc(ni + 1, sizeof *cur);
    bcur = calloc(nb + 1, sizeof *bcur);
    seen = malloc((ni + 1) * sizeof *seen);
    if (!refs || !cur || !bcur || !seen)
        goto nomem;
    for (size_t i = 0; i < ni; i++)
        refs[i] = (pq_hashed){id_key(set->v[i].ls, set->v[i].nls), i};
    qsort(refs, ni, sizeof *refs, pq_cmp_hashed);
    for (size_t k = 0; k < c->nsteps; k++) {
        int64_t t = c->start + (int64_t)k * c->interval;
        if ((rc = pq_poll(c)) < 0)
            goto done;
        /* each info series' sample time at t, INT64_MIN when it has none */
        for (size_t i = 0; i < ni; i++) {
            const series *s = &set->v[i];
            while (cur[i] < s->n && s->s[cur[i]].t <= t)
                cur[i]++;
            const sample *p = cur[i] ? &s->s[cur[i] - 1] : NULL;
            seen[i] = p && p->t > t - c->lookback && !value_is_stale(p->v) ? p->t : INT64_MIN;
        }
        for (size_t b = 0; b < nb; b++) {
            const pq_series *bs = &in.m.v[b];
            while (bcur[b] < bs->npts && bs->pts[bcur[b]].t < t)
                bcur[b]++;
            if (bcur[b] >= bs->npts || bs->pts[bcur[b]].t != t)
                continue;
            double v = bs->pts[bcur[b]].v;
            if (matches_all(ms, nms, bs->ls, bs->nls)) { /* an info series itself */
                if ((rc = pq_out_add(c, &col, bs->ls, bs->nls, bs->drop_name, t, v)) < 0)
                    goto done;
                continue;
            }
            if (lb_from(&c->lb, bs->ls, bs->nls) < 0)
                goto nomem;
            /* the info series with this series' identifying values: a run of refs */
            pq_hashed probe = {id_key(bs->ls, bs->nls), 0};
            const pq_hashed *hit = ni ? bsearch(&probe, refs, ni, sizeof *refs, cmp_key) : NULL;
            while (hit && hit > refs && hit[-1].h == probe.h)
                hit--;
            size_t lo = hit ? (size_t)(hit - refs) : ni;
            uint64_t key = probe.h;
            int found = 0;
            for (size_t r = lo; r < ni && refs[r].h == key; r++) {
                const series *s = &set->v[refs[r].i];
                if (seen[refs[r].i] == INT64_MIN || !same_ids(s->ls, s->nls, bs->ls, bs->nls))
                    continue;
                /* of the info series of one name, the latest wins */
                const char *nm = labels_get(s->ls, s->nls, LABEL_NAME);
                int newest = 1;
                for (size_t o = lo; o < ni && refs[o].h == key && newest; o++) {
                    const series *so = &set->v[refs[o].i];
                    const char *onm = labels_get(so->ls, so->nls, LABEL_NAME);
                    if (o != r && seen[refs[o].i] != INT64_MIN && !strcmp(nm ? nm : "", onm ? onm : "") &&
                        same_ids(so->ls, so->nls, bs->ls, bs->nls) &&
                        (seen[refs[o].i] > seen[refs[r].i] || (seen[refs[o].i] == seen[refs[r].i] && o < r)))
                        newest = 0;
                }
                if (!newest)
                    continue;
                found = 1;
                if ((rc = add_data(c, s, data, ndata)) < 0)
                    goto done;
            }
            if (!found && required)
                continue;
            size_t nls;
            const label *ls = lb_labels(&c->lb, &nls);
            if ((rc = pq_out_add(c, &col, ls, nls, bs->drop_name, t, v)) < 0)
                goto done;
        }
    }
    rc = pq_out_finish(c, &col, &out->m);
done:
    if (have_def)
        matcher_free(&def);
    free(ms);
    free(data);
    free(refs);
    free(cur);
    free(bcur);
    free(seen);
    pq_out_free(&col);
    return rc;
nomem:
    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
    goto done;
}
