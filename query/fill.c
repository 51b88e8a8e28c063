/*
 * fill.c - the fill modifiers of binary operators between instant vectors
 * (promql-binop-fill-modifiers, operators.md "Filling in missing matches"):
 * `a / ignoring(code) fill(0) b`.
 *
 * Before the operator matches its sides, each side to fill gets, at every
 * step, one series for each match group the other side has and it lacks:
 * the fill value, labelled with the group's matching labels (the on()
 * labels, or all but the ignoring() ones and __name__).  The operator then
 * runs unchanged, so the result labels, group_left/group_right and the
 * errors for duplicate matches are those of ordinary matching; a filled
 * "one" side has none of the labels group_x() would copy.
 *
 * Called by engine.c (eval_vector_vector).  Threading: the query's.
 */
#include <stdlib.h>
#include <string.h>

#include "query/eval.h"

/* The matching labels of s into out (room for LABELS_MAX_COUNT); their count. */
static size_t matching_labels(const pq_series *s, const promql_vector_matching *m, label *out) {
    size_t n = 0;
    for (size_t i = 0; i < s->nls && n < LABELS_MAX_COUNT; i++)
        if (pq_matches_on(s->ls[i].name, m))
            out[n++] = s->ls[i];
    return n;
}

/* Adds to `to` the series filling, at each step, the match groups of
 * `from` that `to` has no series for. */
KILN_MUST_CHECK static int fill_side(pq_ctx *c, const promql_vector_matching *vm, const pq_matrix *from,
                                     pq_matrix *to, double value) {
    size_t nf = from->n, nt = to->n;
    uint64_t *fsig = malloc((nf + 1) * sizeof *fsig), *tsig = malloc((nt + 1) * sizeof *tsig);
    size_t *fcur = calloc(nf + 1, sizeof *fcur), *tcur = calloc(nt + 1, sizeof *tcur);
    uint64_t *have = malloc((nt + nf + 1) * sizeof *have);
    pq_out col;
    pq_out_init(&col);
    int rc = 0;
    if (!fsig || !tsig || !fcur || !tcur || !have) {
        rc = pq_fail(c, KILN_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nf; i++)
        fsig[i] = pq_match_sig(&from->v[i], vm);
    for (size_t i = 0; i < nt; i++)
        tsig[i] = pq_match_sig(&to->v[i], vm);
    label ls[LABELS_MAX_COUNT];
    for (size_t k = 0; k < c->nsteps && rc == 0; k++) {
        int64_t t = c->start + (int64_t)k * c->interval;
        /* the groups `to` has at t (few series: a linear scan is enough) */
        size_t nh = 0;
        for (size_t i = 0; i < nt; i++) {
            const pq_series *s = &to->v[i];
            while (tcur[i] < s->npts && s->pts[tcur[i]].t < t)
                tcur[i]++;
            if (tcur[i] < s->npts && s->pts[tcur[i]].t == t)
                have[nh++] = tsig[i];
        }
        for (size_t i = 0; i < nf && rc == 0; i++) {
            const pq_series *s = &from->v[i];
            while (fcur[i] < s->npts && s->pts[fcur[i]].t < t)
                fcur[i]++;
            if (fcur[i] >= s->npts || s->pts[fcur[i]].t != t)
                continue;
            size_t h = 0;
            while (h < nh && have[h] != fsig[i])
                h++;
            if (h < nh)
                continue;
            have[nh++] = fsig[i]; /* one filled series a group */
            if ((rc = pq_account(c, 1)) < 0)
                break;
            rc = pq_out_add(c, &col, ls, matching_labels(s, vm, ls), 0, t, value);
        }
    }
    pq_matrix filled;
    memset(&filled, 0, sizeof filled);
    if (rc == 0)
        rc = pq_out_finish(c, &col, &filled);
    if (rc == 0 && filled.n) {
        /* a new array: the operand's may be shared with other nodes */
        pq_series *v = arena_alloc(c->mem, (nt + filled.n) * sizeof *v);
        if (!v) {
            rc = pq_fail(c, KILN_ENOMEM, "out of memory");
            goto done;
        }
        if (nt)
            memcpy(v, to->v, nt * sizeof *v);
        memcpy(v + nt, filled.v, filled.n * sizeof *v);
        to->v = v;
        to->n = to->cap = nt + filled.n;
    }
done:
    pq_out_free(&col);
    free(fsig);
    free(tsig);
    free(fcur);
    free(tcur);
    free(have);
    return rc;
}

int pq_binop_fill(pq_ctx *c, const promql_binary *b, pq_value *l, pq_value *r) {
    /* both from the operands as evaluated: a filled side does not fill the other */
    pq_matrix l0 = l->m, r0 = r->m;
    int rc = 0;
    if (b->fill_lhs)
        rc = fill_side(c, &b->matching, &r0, &l->m, b->fill_lhs_value);
    if (rc == 0 && b->fill_rhs)
        rc = fill_side(c, &b->matching, &l0, &r->m, b->fill_rhs_value);
    return rc;
}
