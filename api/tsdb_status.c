/*
 * tsdb_status.c - GET /api/v1/status/tsdb: the head block's statistics as
 * Prometheus' TSDB status page shows them (headStats, and the top series
 * counts by metric name, label value counts and memory by label name,
 * series counts by label pair, each cut at the limit parameter).
 *
 * One pass over every series of the head (labels only) counts the (name,
 * value) pairs in an open-addressing table; the tops are sorted from it.
 *
 * Called by the HTTP server through the routes registered
 * here (api_v1_register calls the v1_register_* function), on a worker
 * thread (any number at once; see v1.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/v1.h"

/* One (name, value) pair counted over the head's series. */
typedef struct pair_stat {
    const char *name, *value;
    uint64_t hash;
    uint64_t series;
} pair_stat;

typedef struct top_stat {
    const char *name; /* for pairs: "name=value" built on output */
    const char *value;
    uint64_t count;
} top_stat;

static uint64_t str_hash(const char *s, uint64_t h) {
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static int top_cmp(const void *a, const void *b) {
    const top_stat *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return strcmp(x->value ? x->value : "", y->value ? y->value : "");
}

static int name_value_cmp(const void *a, const void *b) {
    const top_stat *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Appends ,"key":[{"name":...,"value":count},...] with the first `limit`
 * of v by count; `pairs` names an entry "name=value".  0 or KILN_ENOMEM. */
static int write_top(buf *b, const char *key, top_stat *v, size_t n, size_t limit, int pairs) {
    qsort(v, n, sizeof *v, top_cmp);
    if (n > limit)
        n = limit;
    buf pair = BUF_INIT;
    buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        buf_puts(b, "{\"name\":");
        if (pairs) {
            buf_reset(&pair);
            buf_printf(&pair, "%s=%s", v[i].name, v[i].value);
            if (buf_error(&pair) != 0)
                break;
            json_strn(b, pair.data, pair.len);
        } else {
            json_str(b, v[i].name);
        }
        buf_printf(b, ",\"value\":%llu}", (unsigned long long)v[i].count);
    }
    buf_putc(b, ']');
    int rc = buf_error(&pair);
    buf_free(&pair);
    return rc;
}

/* The slots of a table for up to `labels` pairs: a power of two that keeps
 * it at most half full (open addressing stays short). */
static size_t table_slots(size_t labels) {
    size_t c = 128;
    while (c < 2 * labels + 128)
        c *= 2;
    return c;
}

/* Counts the (name, value) pairs of every series of set into a table of
 * *cap slots, *npairs of them used.  NULL when out of memory. */
static pair_stat *count_pairs(const series_set *set, size_t *cap, size_t *npairs) {
    size_t labels = 0;
    for (size_t i = 0; i < set->n; i++)
        labels += set->v[i].nls;
    size_t c = table_slots(labels);
    pair_stat *tab = calloc(c, sizeof *tab);
    if (!tab)
        return NULL;
    size_t np = 0;
    for (size_t i = 0; i < set->n; i++)
        for (size_t j = 0; j < set->v[i].nls; j++) {
            const label *l = &set->v[i].ls[j];
            uint64_t hv = str_hash(l->value, str_hash(l->name, 0xcbf29ce484222325ULL) ^ 0xff);
            size_t k = (size_t)hv & (c - 1);
            while (tab[k].name && !(tab[k].hash == hv && strcmp(tab[k].name, l->name) == 0 &&
                                    strcmp(tab[k].value, l->value) == 0))
                k = (k + 1) & (c - 1);
            if (!tab[k].name) {
                tab[k].name = l->name;
                tab[k].value = l->value;
                tab[k].hash = hv;
                np++;
            }
            tab[k].series++;
        }
    *cap = c;
    *npairs = np;
    return tab;
}

/* Writes the data object from the table; tops has room for 2 * npairs + 1.
 * 0 or KILN_ENOMEM. */
static int write_stats(buf *b, const storage_stats *ss, const pair_stat *tab, size_t cap, size_t npairs,
                       top_stat *tops, size_t limit) {
    buf_printf(
        b,
        "{\"headStats\":{\"numSeries\":%llu,\"numLabelPairs\":%zu,\"chunkCount\":%llu,\"minTime\":%lld,"
        "\"maxTime\":%lld}",
        (unsigned long long)ss->head_series, npairs, (unsigned long long)ss->head_chunks,
        (long long)ss->head_min_time, (long long)ss->head_max_time);
    /* seriesCountByMetricName */
    size_t n = 0;
    for (size_t k = 0; k < cap; k++)
        if (tab[k].name && strcmp(tab[k].name, LABEL_NAME) == 0)
            tops[n++] = (top_stat){tab[k].value, NULL, tab[k].series};
    int rc = write_top(b, "seriesCountByMetricName", tops, n, limit, 0);
    /* labelValueCountByLabelName and memoryInBytesByLabelName: group the pairs by name */
    n = 0;
    for (size_t k = 0; k < cap; k++)
        if (tab[k].name)
            tops[n++] = (top_stat){tab[k].name, tab[k].value, tab[k].series};
    qsort(tops, n, sizeof *tops, name_value_cmp);
    top_stat *byname = tops + npairs;
    size_t nn = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp(tops[j].name, tops[i].name) == 0)
            j++;
        byname[nn++] = (top_stat){tops[i].name, NULL, (uint64_t)(j - i)};
        i = j;
    }
    if (rc == 0)
        rc = write_top(b, "labelValueCountByLabelName", byname, nn, limit, 0);
    nn = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t bytes = 0;
        while (j < n && strcmp(tops[j].name, tops[i].name) == 0) {
            bytes += strlen(tops[j].value) * tops[j].count;
            j++;
        }
        byname[nn++] = (top_stat){tops[i].name, NULL, bytes};
        i = j;
    }
    if (rc == 0)
        rc = write_top(b, "memoryInBytesByLabelName", byname, nn, limit, 0);
    if (rc == 0)
        rc = write_top(b, "seriesCountByLabelValuePair", tops, n, limit, 1);
    buf_putc(b, '}');
    return rc;
}

static void h_tsdb(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    size_t limit = 10;
    const char *lv = v1_param(req, "limit");
    if (*lv) {
        char *end = NULL;
        long long l = strtoll(lv, &end, 10);
        if (*end || l < 1 || l > 10000) {
            v1_bad_data(resp, "limit must be a positive number");
            return;
        }
        limit = (size_t)l;
    }
    storage *st = v1_storage(a, resp);
    if (!st)
        return;
    storage_stats ss;
    storage_get_stats(st, &ss);
    querier *q = NULL;
    series_set set;
    memset(&set, 0, sizeof set);
    pair_stat *tab = NULL;
    top_stat *tops = NULL;
    size_t cap = 0, npairs = 0;
    int have_head = ss.head_min_time <= ss.head_max_time;
    if (v1_open_querier(resp, st, have_head ? ss.head_min_time : 0, have_head ? ss.head_max_time : 0, &q) !=
        0)
        goto out;
    /* every series, labels only: one pass counts all the statistics */
    matcher any;
    kiln_err err = {0};
    int rc = matcher_init(&any, MATCH_RE, LABEL_NAME, ".+", &err);
    if (rc != 0) {
        v1_internal(resp, rc, &err);
        goto out;
    }
    select_hints h = {API_V1_MIN_TIME_MS, API_V1_MAX_TIME_MS, 1, 0};
    rc = ss.head_series ? querier_select(q, &any, 1, &h, &set, &err) : 0;
    matcher_free(&any);
    if (rc != 0) {
        v1_internal(resp, rc, &err);
        goto out;
    }
    tab = count_pairs(&set, &cap, &npairs);
    tops = tab ? calloc(npairs * 2 + 1, sizeof *tops) : NULL;
    if (!tops) {
        v1_internal(resp, KILN_ENOMEM, NULL);
        goto out;
    }
    http_resp_json_begin(resp);
    rc = write_stats(&resp->body, &ss, tab, cap, npairs, tops, limit);
    if (rc != 0)
        v1_internal(resp, rc, NULL);
    else
        v1_end_success(resp, NULL);
out:
    free(tops);
    free(tab);
    series_set_free(&set);
    if (q)
        querier_close(q);
}

int v1_register_tsdb(http_server *s, api_v1 *a) {
    static const v1_route route = {"GET", "/api/v1/status/tsdb", h_tsdb, NULL, HTTP_ROUTE_LOOKUP};
    return v1_register_routes(s, a, &route, 1);
}
