/*
 * fmtfloat.c - float formatting identical to Go's strconv.FormatFloat with
 * precision -1 (the shortest digits that read back as the same double), in
 * the 'f' form the HTTP API uses and the 'g' form the exposition format uses;
 * and Prometheus' tolerant float comparison.  Pure functions: any thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Shortest decimal digits of |v| (v finite, non-zero): value = 0.DIGITS x 10^dp. */
static int shortest_digits(double v, char *digits, int *dp) {
    /* Whether p digits read back is monotonic in p (more digits are never
     * further from v), so binary search the shortest: about 4 rounds of
     * snprintf + strtod instead of up to 17.  Most values of a computation
     * (rates, averages) need 15 to 17 digits; try 15 first. */
    char tmp[40], best[40];
    int lo = 1, hi = 17;
    snprintf(best, sizeof best, "%.16e", v);
    snprintf(tmp, sizeof tmp, "%.14e", v);
    if (strtod(tmp, NULL) == v) {
        memcpy(best, tmp, sizeof tmp);
        hi = 15;
    } else {
        lo = 16;
    }
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(tmp, sizeof tmp, "%.*e", mid - 1, v);
        if (strtod(tmp, NULL) == v) {
            memcpy(best, tmp, sizeof tmp);
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    memcpy(tmp, best, sizeof tmp);
    /* tmp = "d.ddde+XX" */
    int nd = 0;
    const char *p = tmp;
    while (*p && *p != 'e') {
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
        p++;
    }
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    *dp = atoi(p + 1) + 1;
    return nd;
}

static int special(double v, char *out) {
    if (isnan(v))
        return sprintf(out, "NaN");
    if (isinf(v))
        return sprintf(out, v > 0 ? "+Inf" : "-Inf");
    if (v == 0)
        return sprintf(out, signbit(v) ? "-0" : "0");
    return -1;
}

static int put_fixed(char *out, int neg, const char *d, int nd, int dp) {
    char *o = out;
    if (neg)
        *o++ = '-';
    if (dp <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -dp; i++)
            *o++ = '0';
        memcpy(o, d, (size_t)nd);
        o += nd;
    } else if (dp >= nd) {
        memcpy(o, d, (size_t)nd);
        o += nd;
        for (int i = nd; i < dp; i++)
            *o++ = '0';
    } else {
        memcpy(o, d, (size_t)dp);
        o += dp;
        *o++ = '.';
        memcpy(o, d + dp, (size_t)(nd - dp));
        o += nd - dp;
    }
    *o = 0;
    return (int)(o - out);
}

/* Writes NaN, the infinities and zeros to out and returns their length;
 * otherwise returns -1 with v's shortest digits in d (*nd of them, the
 * decimal point after *dp). */
static int special_or_digits(double v, char *out, char d[24], int *nd, int *dp) {
    int n = special(v, out);
    if (n < 0)
        *nd = shortest_digits(fabs(v), d, dp);
    return n;
}

int fmt_double_f(double v, char *out) {
    char d[24];
    int nd, dp;
    int n = special_or_digits(v, out, d, &nd, &dp);
    return n >= 0 ? n : put_fixed(out, v < 0, d, nd, dp);
}

/* Writes the digits d[0..nd) with exponent exp in Go's %e form ("1.5e+09"). */
static int put_exp(char *out, int neg, const char *d, int nd, int exp) {
    char *o = out;
    if (neg)
        *o++ = '-';
    *o++ = d[0];
    if (nd > 1) {
        *o++ = '.';
        memcpy(o, d + 1, (size_t)(nd - 1));
        o += nd - 1;
    }
    o += sprintf(o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    return (int)(o - out);
}

int fmt_double_g(double v, char *out) {
    char d[24];
    int nd, dp;
    int n = special_or_digits(v, out, d, &nd, &dp);
    if (n >= 0)
        return n;
    int exp = dp - 1;
    /* Go decides between the %e and %f forms with precision 6 when the
     * shortest digits are asked for, whatever their count. */
    int eprec = 6;
    if (exp < -4 || exp >= eprec)
        return put_exp(out, v < 0, d, nd, exp);
    return put_fixed(out, v < 0, d, nd, dp);
}

int fmt_double_e(double v, char *out) {
    char d[24];
    int nd, dp;
    if (isnan(v) || isinf(v))
        return special(v, out);
    if (v == 0)
        return sprintf(out, signbit(v) ? "-0e+00" : "0e+00");
    nd = shortest_digits(fabs(v), d, &dp);
    return put_exp(out, v < 0, d, nd, dp - 1);
}

int double_almost_equal(double a, double b, double eps) {
    const double min_normal = 2.2250738585072014e-308;
    if (a == b)
        return 1;
    double abs_sum = fabs(a) + fabs(b), diff = fabs(a - b);
    if (a == 0 || b == 0 || abs_sum < min_normal)
        return diff < eps * min_normal;
    return diff / fmin(abs_sum, 1.7976931348623157e308) < eps;
}
