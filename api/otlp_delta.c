/*
 * otlp_delta.c - delta temporality turned cumulative for the OTLP receiver
 * (--enable-feature=otlp-deltatocumulative), as Prometheus 3 does with the
 * OpenTelemetry Collector's deltatocumulative processor: each stream keeps
 * the running total of its deltas, and every delta that arrives is stored as
 * that total, so a delta counter becomes an ordinary counter.
 *
 * A stream is what its samples become: the translated metric name and the
 * data point's label set (api/otlp.c builds the key), so two OTLP streams
 * that would write the same series are one here too.  Per stream:
 *
 *   | kept                    | for                                           |
 *   |-------------------------|-----------------------------------------------|
 *   | time of the last delta  | a delta at or before it is dropped (out of    |
 *   |                         | order or repeated), as the processor does     |
 *   | running value           | sums                                          |
 *   | count, sum, bounds,     | histograms; a delta with other bounds starts  |
 *   |   bucket counts         |   the stream again from itself                |
 *   | last seen (wall clock)  | streams not seen for OTLP_DELTA_STALE_MS are  |
 *   |                         |   forgotten (the processor's max_stale, 5m)   |
 *
 * At most OTLP_DELTA_MAX_STREAMS streams are kept; a new stream beyond that
 * is refused (its points rejected) until old ones go stale.
 *
 * Called by api/otlp.c on HTTP worker threads, any number at once: one
 * mutex guards the table (cumulative-only requests never take it).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/otlp_private.h"

#define OTLP_DELTA_STALE_MS (5 * 60 * 1000)
#define OTLP_DELTA_SWEEP_MS (60 * 1000)
#define OTLP_DELTA_MAX_STREAMS 1000000

typedef struct dstream {
    struct dstream *next;
    uint64_t hash;
    int64_t last_t; /* the last delta's time, ms */
    int64_t seen;   /* wall clock of the last delta, ms */
    double value;   /* a sum's total, a histogram's sum */
    uint64_t count; /* a histogram's count */
    size_t nb;      /* histogram bounds; nb + 1 bucket counts */
    double *bounds;
    uint64_t *buckets;
    size_t keylen;
    char key[];
} dstream;

struct otlp_delta {
    pthread_mutex_t mu;
    dstream **tab;
    size_t cap, n;
    int64_t last_sweep;
};

otlp_delta *otlp_delta_new(void) {
    otlp_delta *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->cap = 1024;
    if (!(d->tab = calloc(d->cap, sizeof *d->tab))) {
        free(d);
        return NULL;
    }
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

static void stream_free(dstream *s) {
    free(s->bounds);
    free(s->buckets);
    free(s);
}

void otlp_delta_free(otlp_delta *d) {
    if (!d)
        return;
    for (size_t i = 0; i < d->cap; i++)
        for (dstream *s = d->tab[i], *next; s; s = next) {
            next = s->next;
            stream_free(s);
        }
    free(d->tab);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static uint64_t key_hash(const char *k, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* Forgets the streams not seen for OTLP_DELTA_STALE_MS (once a sweep
 * interval); doubles the table when it is full.  Under d->mu. */
static void maintain(otlp_delta *d, int64_t now) {
    if (now - d->last_sweep >= OTLP_DELTA_SWEEP_MS) {
        d->last_sweep = now;
        for (size_t i = 0; i < d->cap; i++)
            for (dstream **pp = &d->tab[i]; *pp;) {
                dstream *s = *pp;
                if (now - s->seen > OTLP_DELTA_STALE_MS) {
                    *pp = s->next;
                    stream_free(s);
                    d->n--;
                } else {
                    pp = &s->next;
                }
            }
    }
    if (d->n < d->cap)
        return;
    size_t nc = d->cap * 2;
    dstream **nt = calloc(nc, sizeof *nt);
    if (!nt)
        return; /* chains grow longer instead */
    for (size_t i = 0; i < d->cap; i++)
        for (dstream *s = d->tab[i], *next; s; s = next) {
            next = s->next;
            s->next = nt[s->hash & (nc - 1)];
            nt[s->hash & (nc - 1)] = s;
        }
    free(d->tab);
    d->tab = nt;
    d->cap = nc;
}

/* The stream of key (created when new, *fresh set); NULL when out of memory
 * or over the stream limit.  Under d->mu. */
static dstream *stream_get(otlp_delta *d, const char *key, size_t keylen, int64_t now, int *fresh) {
    maintain(d, now);
    uint64_t h = key_hash(key, keylen);
    for (dstream *s = d->tab[h & (d->cap - 1)]; s; s = s->next)
        if (s->hash == h && s->keylen == keylen && !memcmp(s->key, key, keylen)) {
            *fresh = 0;
            return s;
        }
    if (d->n >= OTLP_DELTA_MAX_STREAMS)
        return NULL;
    dstream *s = calloc(1, sizeof *s + keylen);
    if (!s)
        return NULL;
    s->hash = h;
    s->keylen = keylen;
    memcpy(s->key, key, keylen);
    s->next = d->tab[h & (d->cap - 1)];
    d->tab[h & (d->cap - 1)] = s;
    d->n++;
    *fresh = 1;
    return s;
}

int otlp_delta_sum(otlp_delta *d, const char *key, size_t keylen, int64_t t, int64_t now, double *v) {
    pthread_mutex_lock(&d->mu);
    int fresh, rc = 0;
    dstream *s = stream_get(d, key, keylen, now, &fresh);
    if (!s) {
        rc = KILN_ELIMIT;
    } else if (!fresh && t <= s->last_t) {
        rc = KILN_EORDER;
    } else {
        s->value = fresh ? *v : s->value + *v;
        s->last_t = t;
        s->seen = now;
        *v = s->value;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int otlp_delta_histogram(otlp_delta *d, const char *key, size_t keylen, int64_t t, int64_t now, double *sum,
                         uint64_t *count, const double *bounds, size_t nb, uint64_t *buckets) {
    pthread_mutex_lock(&d->mu);
    int fresh, rc = 0;
    dstream *s = stream_get(d, key, keylen, now, &fresh);
    if (!s) {
        rc = KILN_ELIMIT;
        goto out;
    }
    if (!fresh && t <= s->last_t) {
        rc = KILN_EORDER;
        goto out;
    }
    int same = !fresh && s->nb == nb && (nb == 0 || !memcmp(s->bounds, bounds, nb * sizeof *bounds));
    if (!same) { /* new, or the bounds changed: start from this delta */
        double *nbnd = malloc((nb ? nb : 1) * sizeof *nbnd);
        uint64_t *nbkt = calloc(nb + 1, sizeof *nbkt);
        if (!nbnd || !nbkt) {
            free(nbnd);
            free(nbkt);
            s->nb = (size_t)-1; /* no bounds match: the next delta starts over */
            rc = KILN_ENOMEM;
            goto out;
        }
        if (nb)
            memcpy(nbnd, bounds, nb * sizeof *bounds);
        free(s->bounds);
        free(s->buckets);
        s->bounds = nbnd;
        s->buckets = nbkt;
        s->nb = nb;
        s->value = 0;
        s->count = 0;
    }
    s->value += *sum;
    s->count += *count;
    for (size_t i = 0; i <= nb; i++)
        buckets[i] = s->buckets[i] += buckets[i];
    s->last_t = t;
    s->seen = now;
    *sum = s->value;
    *count = s->count;
out:
    pthread_mutex_unlock(&d->mu);
    return rc;
}
