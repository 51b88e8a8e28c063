/*
 * nhops.c - native histogram values in the evaluator: binary operators
 * with a histogram on either side, as Prometheus 3's vectorElemBinop
 * defines them (histogram * float, histogram / float, histogram +/-
 * histogram, == and != between histograms, the trim operators </ and >/
 * with a histogram on the left and a float on the right; everything else
 * drops the sample with an "incompatible sample types" info annotation),
 * and the annotations' wording.
 *
 * Called by engine.c (binary operators) and the function files.
 * Threading: runs on the thread evaluating its query; no shared state.
 */
#include <math.h>
#include <string.h>

#include "query/eval.h"
#include "query/nhist.h"

void pq_warn_mixed_schemas(pq_ctx *c, const promql_expr *pos, const char *name) {
    pq_warn(c, pos,
            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name "
            "\"%s\"",
            name);
}

int pq_hist_binop(pq_ctx *c, const promql_expr *e, promql_binop op, double l, double r, double *out) {
    int lh = pq_is_hist(l), rh = pq_is_hist(r);
    const char *opn = promql_binop_str(op);
    histogram *res = NULL;
    if (op == PROMQL_OP_TRIM_UPPER || op == PROMQL_OP_TRIM_LOWER) {
        /* a histogram on the left, a float on the right; nothing else */
        if (!lh || rh) {
            pq_info(c, e, "incompatible sample types encountered for binary operator \"%s\": %s %s %s", opn,
                    lh ? "histogram" : "float", opn, rh ? "histogram" : "float");
            return PQ_HB_DROP;
        }
        if (!(res = nh_trim(c->mem, pq_hist(c, l), r, op == PROMQL_OP_TRIM_UPPER)))
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        *out = pq_hbox(c, res); /* the flavor stays */
        return c->code ? c->code : PQ_HB_KEEP;
    }
    if (lh && rh) {
        histogram *x = pq_hist(c, l), *y = pq_hist(c, r);
        switch (op) {
        case PROMQL_OP_ADD:
        case PROMQL_OP_SUB: {
            int rec = 0;
            int rc = nh_add(c->mem, x, y, op == PROMQL_OP_SUB, &res, &rec);
            if (rc < 0)
                return pq_fail(c, rc, "out of memory");
            if (rc == NH_EMIXED) {
                pq_warn(c, e, "incompatible bucket layout encountered for binary operator %s", opn);
                return PQ_HB_DROP;
            }
            if (rec)
                pq_info(c, e, "mismatched custom buckets were reconciled during %s",
                        op == PROMQL_OP_ADD ? "addition" : "subtraction");
            break;
        }
        case PROMQL_OP_EQL:
        case PROMQL_OP_NEQ:
            *out = l;
            return nh_equal(x, y, 0) == (op == PROMQL_OP_EQL) ? PQ_HB_KEEP : PQ_HB_FALSE;
        default:
            pq_info(
                c, e,
                "incompatible sample types encountered for binary operator \"%s\": histogram %s histogram",
                opn, opn);
            return PQ_HB_DROP;
        }
    } else if (lh) {
        if (op != PROMQL_OP_MUL && op != PROMQL_OP_DIV) {
            pq_info(c, e,
                    "incompatible sample types encountered for binary operator \"%s\": histogram %s float",
                    opn, opn);
            return PQ_HB_DROP;
        }
        res = nh_scale(c->mem, pq_hist(c, l), r, op == PROMQL_OP_DIV);
    } else {
        if (op != PROMQL_OP_MUL) {
            pq_info(c, e,
                    "incompatible sample types encountered for binary operator \"%s\": float %s histogram",
                    opn, opn);
            return PQ_HB_DROP;
        }
        res = nh_scale(c->mem, pq_hist(c, r), l, 0);
    }
    if (!res)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    res->hint = HIST_HINT_UNKNOWN;
    *out = pq_hbox(c, res);
    return c->code ? c->code : PQ_HB_KEEP;
}
