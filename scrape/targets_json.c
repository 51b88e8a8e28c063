/*
 * targets_json.c - the API's views of the scrape manager, written as the
 * JSON of Prometheus' responses (the "data" member): the active and
 * dropped targets (GET /api/v1/targets), the metadata per target (GET
 * /api/v1/targets/metadata) and per metric (GET /api/v1/metadata).  The API
 * calls them through the hooks cmd/kiln/main.c gives it.
 *
 * Threading: any thread (the API's); each holds m->mu while it reads the
 * pools, targets and metadata.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scrape/internal.h"
#include "scrape/parse.h"

static const char *const type_names[] = {"unknown",        "counter", "gauge", "histogram",
                                         "gaugehistogram", "summary", "info",  "stateset"};

/* RFC 3339 with milliseconds, UTC; Go's zero time when never. */
static void json_time(buf *b, int64_t ms) {
    if (ms == 0) {
        buf_puts(b, "\"0001-01-01T00:00:00Z\"");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
               tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static void json_target(buf *b, const target *t, const char *job) {
    static const char *const health[] = {"unknown", "up", "down"};
    char iv[32], tv[32], num[40];
    buf_puts(b, "{\"discoveredLabels\":");
    labels_json(b, t->disc, t->ndisc);
    buf_puts(b, ",\"labels\":");
    labels_json(b, t->ls, t->nls);
    buf_puts(b, ",\"scrapePool\":");
    json_str(b, job);
    buf_puts(b, ",\"scrapeUrl\":");
    json_str(b, t->url);
    buf_puts(b, ",\"globalUrl\":");
    json_str(b, t->url);
    buf_puts(b, ",\"lastError\":");
    json_str(b, t->last_error);
    buf_puts(b, ",\"lastScrape\":");
    json_time(b, t->last_scrape_ms);
    fmt_double_g(t->last_duration, num);
    duration_format(t->interval_ms, iv, sizeof iv);
    duration_format(t->timeout_ms, tv, sizeof tv);
    buf_printf(
        b, ",\"lastScrapeDuration\":%s,\"health\":\"%s\",\"scrapeInterval\":\"%s\",\"scrapeTimeout\":\"%s\"}",
        num, health[t->health], iv, tv);
}

int scrape_targets_json(scrape_manager *m, const char *state, const char *pool_name, buf *out) {
    int active = !state || !*state || !strcmp(state, "any") || !strcmp(state, "active");
    int drop = !state || !*state || !strcmp(state, "any") || !strcmp(state, "dropped");
    buf_puts(out, "{\"activeTargets\":[");
    pthread_mutex_lock(&m->mu);
    int first = 1;
    for (pool *p = m->pools; p && active; p = p->next) {
        if (pool_name && *pool_name && strcmp(pool_name, p->job))
            continue;
        for (target *t = p->targets; t; t = t->next) {
            if (!first)
                buf_putc(out, ',');
            first = 0;
            json_target(out, t, p->job);
        }
    }
    buf_puts(out, "],\"droppedTargets\":[");
    first = 1;
    for (pool *p = m->pools; p && drop; p = p->next) {
        if (pool_name && *pool_name && strcmp(pool_name, p->job))
            continue;
        for (size_t i = 0; i < p->ndropped; i++) {
            if (!first)
                buf_putc(out, ',');
            first = 0;
            buf_puts(out, "{\"discoveredLabels\":");
            labels_json(out, p->dropped[i].ls, p->dropped[i].n);
            buf_putc(out, '}');
        }
    }
    pthread_mutex_unlock(&m->mu);
    buf_puts(out, "]}");
    return buf_error(out);
}

static void json_meta_fields(buf *b, const mentry *e) {
    buf_printf(
        b, "\"type\":\"%s\",\"help\":", type_names[e->type >= 0 && e->type <= EXPO_STATESET ? e->type : 0]);
    json_str(b, e->help ? e->help : "");
    buf_puts(b, ",\"unit\":");
    json_str(b, e->unit ? e->unit : "");
}

int scrape_targets_metadata_json(scrape_manager *m, const matcher *ms, size_t nms, const char *name,
                                 long limit, buf *out, kiln_err *err) {
    (void)err;
    long n = 0;
    buf_putc(out, '[');
    pthread_mutex_lock(&m->mu);
    for (pool *p = m->pools; p; p = p->next)
        for (target *t = p->targets; t; t = t->next) {
            int match = 1;
            for (size_t i = 0; i < nms && match; i++) {
                const char *v = labels_get(t->ls, t->nls, ms[i].name);
                match = matcher_matches(&ms[i], v ? v : "");
            }
            if (!match)
                continue;
            for (size_t i = 0; i < t->nmeta && (limit < 0 || n < limit); i++) {
                const mentry *e = &t->meta[i];
                if (name && *name && strcmp(name, e->name))
                    continue;
                buf_puts(out, n ? ",{\"target\":" : "{\"target\":");
                labels_json(out, t->ls, t->nls);
                buf_puts(out, ",\"metric\":");
                json_str(out, e->name);
                buf_putc(out, ',');
                json_meta_fields(out, e);
                buf_putc(out, '}');
                n++;
            }
        }
    pthread_mutex_unlock(&m->mu);
    buf_putc(out, ']');
    return buf_error(out);
}

typedef struct mref {
    const char *name;
    const mentry *e;
} mref;

static int mref_cmp(const void *a, const void *b) {
    const mref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    if (x->e->type != y->e->type)
        return x->e->type - y->e->type;
    c = strcmp(x->e->help ? x->e->help : "", y->e->help ? y->e->help : "");
    return c ? c : strcmp(x->e->unit ? x->e->unit : "", y->e->unit ? y->e->unit : "");
}

int scrape_metadata_json(scrape_manager *m, const char *name, long limit, long limit_per_metric, buf *out) {
    pthread_mutex_lock(&m->mu);
    size_t total = 0;
    for (pool *p = m->pools; p; p = p->next)
        for (target *t = p->targets; t; t = t->next)
            total += t->nmeta;
    mref *v = calloc(total ? total : 1, sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&m->mu);
        return KILN_ENOMEM;
    }
    size_t k = 0;
    for (pool *p = m->pools; p; p = p->next)
        for (target *t = p->targets; t; t = t->next)
            for (size_t i = 0; i < t->nmeta; i++)
                if (!name || !*name || !strcmp(name, t->meta[i].name))
                    v[k++] = (mref){t->meta[i].name, &t->meta[i]};
    qsort(v, k, sizeof *v, mref_cmp);
    buf_putc(out, '{');
    long metrics = 0, per = 0;
    for (size_t i = 0; i < k; i++) {
        int new_metric = i == 0 || strcmp(v[i].name, v[i - 1].name) != 0;
        if (!new_metric && mref_cmp(&v[i], &v[i - 1]) == 0)
            continue; /* the same metadata from another target */
        if (new_metric) {
            if (limit >= 0 && metrics >= limit)
                break;
            if (metrics)
                buf_puts(out, "],");
            json_str(out, v[i].name);
            buf_puts(out, ":[");
            metrics++;
            per = 0;
        }
        if (limit_per_metric >= 0 && per >= limit_per_metric)
            continue;
        buf_puts(out, per ? ",{" : "{");
        json_meta_fields(out, v[i].e);
        buf_putc(out, '}');
        per++;
    }
    if (metrics)
        buf_putc(out, ']');
    buf_putc(out, '}');
    pthread_mutex_unlock(&m->mu);
    free(v);
    return buf_error(out);
}
