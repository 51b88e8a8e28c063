/*
 * metrics.c - the process-wide metrics registry and its text exposition.
 *
 * Families are kept in registration order in a list; each family keeps its
 * children in a small list guarded by a mutex (children are created rarely,
 * on first use of a label combination).  Values are doubles stored as bits in
 * 64-bit atomics and updated with compare-and-swap, so any thread may update
 * them without a lock.
 *
 * Output follows text format 0.0.4:
 *   # HELP name help
 *   # TYPE name counter
 *   name{a="b"} 1
 * histograms as name_bucket{le="..."}, name_sum, name_count.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const double METRIC_DEFAULT_BUCKETS[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
const size_t METRIC_DEFAULT_NBUCKETS = sizeof METRIC_DEFAULT_BUCKETS / sizeof METRIC_DEFAULT_BUCKETS[0];

struct metric_child {
    metric_child *next;
    metric *family;
    char **values;
    _Atomic uint64_t value;    /* double bits: counter/gauge value, histogram sum */
    _Atomic uint64_t count;    /* histogram observations */
    _Atomic uint64_t *buckets; /* histogram: per-bucket (non-cumulative) counts */
};

struct metric {
    metric *next;
    int type;
    char *name, *help;
    char **labelnames;
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    double (*fn)(void *);
    void *fn_data;
    pthread_mutex_t mu;
    metric_child *children, *tail;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static metric *registry_head, *registry_tail;

static void atomic_add_double(_Atomic uint64_t *p, double v) {
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, double_to_bits(double_from_bits(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static void free_strv(char **v, size_t n) {
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void metric_free(metric *m) {
    metric_child *c = m->children;
    while (c) {
        metric_child *next = c->next;
        free_strv(c->values, m->nlabels);
        free(c->buckets);
        free(c);
        c = next;
    }
    free_strv(m->labelnames, m->nlabels);
    free(m->bounds);
    free(m->name);
    free(m->help);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void registry_add(metric *m) {
    pthread_mutex_lock(&registry_mu);
    if (registry_tail)
        registry_tail->next = m;
    else
        registry_head = m;
    registry_tail = m;
    pthread_mutex_unlock(&registry_mu);
}

/* A family with its name and help and nothing else; NULL when out of memory. */
static metric *family_alloc(int type, const char *name, const char *help) {
    metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->type = type;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    if (!m->name || !m->help) {
        metric_free(m);
        return NULL;
    }
    return m;
}

metric *metric_new(int type, const char *name, const char *help, const char *labelnames,
                   const double *buckets, size_t nbuckets) {
    metric *m = family_alloc(type, name, help);
    if (!m)
        return NULL;
    if (labelnames && *labelnames) {
        size_t n = 1;
        for (const char *p = labelnames; *p; p++)
            n += *p == ',';
        m->labelnames = calloc(n, sizeof *m->labelnames);
        if (!m->labelnames)
            goto fail;
        m->nlabels = n;
        const char *p = labelnames;
        for (size_t i = 0; i < n; i++) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            m->labelnames[i] = strndup(p, len);
            if (!m->labelnames[i])
                goto fail;
            p += len + 1;
        }
    }
    if (type == METRIC_HISTOGRAM) {
        if (!buckets) {
            buckets = METRIC_DEFAULT_BUCKETS;
            nbuckets = METRIC_DEFAULT_NBUCKETS;
        }
        m->bounds = malloc((nbuckets + 1) * sizeof *m->bounds);
        if (!m->bounds)
            goto fail;
        memcpy(m->bounds, buckets, nbuckets * sizeof *m->bounds);
        m->nbounds = nbuckets;
    }
    registry_add(m);
    return m;
fail:
    metric_free(m);
    return NULL;
}

metric *metric_new_func(int type, const char *name, const char *help, double (*fn)(void *data), void *data) {
    metric *m = family_alloc(type, name, help);
    if (!m)
        return NULL;
    m->fn = fn;
    m->fn_data = data;
    registry_add(m);
    return m;
}

static int values_equal(char **a, const char *const *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i], b && b[i] ? b[i] : "") != 0)
            return 0;
    return 1;
}

metric_child *metric_with(metric *m, const char *const *values) {
    pthread_mutex_lock(&m->mu);
    metric_child *c;
    for (c = m->children; c; c = c->next)
        if (values_equal(c->values, values, m->nlabels))
            goto out;
    c = calloc(1, sizeof *c);
    if (!c)
        goto out;
    c->family = m;
    if (m->nlabels) {
        c->values = calloc(m->nlabels, sizeof *c->values);
        if (!c->values)
            goto fail;
        for (size_t i = 0; i < m->nlabels; i++) {
            c->values[i] = strdup(values && values[i] ? values[i] : "");
            if (!c->values[i])
                goto fail;
        }
    }
    if (m->type == METRIC_HISTOGRAM) {
        c->buckets = calloc(m->nbounds + 1, sizeof *c->buckets);
        if (!c->buckets)
            goto fail;
    }
    if (m->tail)
        m->tail->next = c;
    else
        m->children = c;
    m->tail = c;
out:
    pthread_mutex_unlock(&m->mu);
    return c;
fail:
    free_strv(c->values, m->nlabels);
    free(c);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

metric_child *metric_default(metric *m) {
    return metric_with(m, NULL);
}

void metric_remove(metric_child *c) {
    if (!c)
        return;
    metric *m = c->family;
    pthread_mutex_lock(&m->mu);
    metric_child **pp = &m->children, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = c->next;
        if (m->tail == c)
            m->tail = prev;
    }
    pthread_mutex_unlock(&m->mu);
    free_strv(c->values, m->nlabels);
    free(c->buckets);
    free(c);
}

void metric_add(metric_child *c, double v) {
    if (c)
        atomic_add_double(&c->value, v);
}

void metric_set(metric_child *c, double v) {
    if (c)
        atomic_store_explicit(&c->value, double_to_bits(v), memory_order_relaxed);
}

double metric_value(metric_child *c) {
    return c ? double_from_bits(atomic_load_explicit(&c->value, memory_order_relaxed)) : 0;
}

void metric_observe(metric_child *c, double v) {
    if (!c || !c->buckets)
        return;
    metric *m = c->family;
    size_t i = 0;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&c->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&c->value, v);
    atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
}

void metric_hist_read(metric_child *c, uint64_t *count, double *sum) {
    *count = c ? atomic_load(&c->count) : 0;
    *sum = c ? double_from_bits(atomic_load(&c->value)) : 0;
}

void metrics_write_escaped(buf *out, const char *s, int is_help) {
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(out, "\\\\");
        else if (*s == '\n')
            buf_puts(out, "\\n");
        else if (*s == '"' && !is_help)
            buf_puts(out, "\\\"");
        else if ((unsigned char)*s == 0xc0 && (unsigned char)s[1] == 0x80) /* kiln's NUL (strnul.c) */
            buf_append(out, "", 1), s++;
        else
            buf_putc(out, *s);
    }
}

static void write_labels(buf *out, metric *m, metric_child *c, const char *extra_name,
                         const char *extra_val) {
    if (m->nlabels == 0 && !extra_name)
        return;
    buf_putc(out, '{');
    for (size_t i = 0; i < m->nlabels; i++) {
        if (i)
            buf_putc(out, ',');
        buf_printf(out, "%s=\"", m->labelnames[i]);
        metrics_write_escaped(out, c->values[i], 0);
        buf_putc(out, '"');
    }
    if (extra_name)
        buf_printf(out, "%s%s=\"%s\"", m->nlabels ? "," : "", extra_name, extra_val);
    buf_putc(out, '}');
}

static void write_value(buf *out, double v) {
    char num[FMT_DOUBLE_MAX];
    fmt_double_g(v, num);
    buf_putc(out, ' ');
    buf_puts(out, num);
    buf_putc(out, '\n');
}

int metrics_write_text(buf *out) {
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&registry_mu);
    for (metric *m = registry_head; m; m = m->next) {
        buf_printf(out, "# HELP %s ", m->name);
        metrics_write_escaped(out, m->help, 1);
        buf_printf(out, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
        if (m->fn) {
            buf_puts(out, m->name);
            write_value(out, m->fn(m->fn_data));
            continue;
        }
        pthread_mutex_lock(&m->mu);
        for (metric_child *c = m->children; c; c = c->next) {
            if (m->type != METRIC_HISTOGRAM) {
                buf_puts(out, m->name);
                write_labels(out, m, c, NULL, NULL);
                write_value(out, metric_value(c));
                continue;
            }
            uint64_t cum = 0;
            char le[FMT_DOUBLE_MAX];
            for (size_t i = 0; i <= m->nbounds; i++) {
                cum += atomic_load(&c->buckets[i]);
                if (i < m->nbounds)
                    fmt_double_g(m->bounds[i], le);
                else
                    strcpy(le, "+Inf");
                buf_printf(out, "%s_bucket", m->name);
                write_labels(out, m, c, "le", le);
                write_value(out, (double)cum);
            }
            uint64_t count;
            double sum;
            metric_hist_read(c, &count, &sum);
            buf_printf(out, "%s_sum", m->name);
            write_labels(out, m, c, NULL, NULL);
            write_value(out, sum);
            buf_printf(out, "%s_count", m->name);
            write_labels(out, m, c, NULL, NULL);
            write_value(out, (double)count);
        }
        pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_unlock(&registry_mu);
    return out->data ? 0 : KILN_ENOMEM;
}

void metrics_shutdown(void) {
    pthread_mutex_lock(&registry_mu);
    metric *m = registry_head;
    registry_head = registry_tail = NULL;
    pthread_mutex_unlock(&registry_mu);
    while (m) {
        metric *next = m->next;
        metric_free(m);
        m = next;
    }
}
