/*
 * equal.c - config_scrape_equal: whether two scrape configs would scrape
 * the same way, so that a reload keeps the scrape loops of unchanged jobs.
 *
 * Every key of the scrape_config table of schema.c is compared, through
 * its sub-sections (http client, TLS, relabel steps, target groups), so a
 * key added to a table is compared too.  Regexes are compared by their text;
 * the legacy bearer_token keys are compared through the authorization they
 * become.
 *
 * Called by scrape/ on a reload (the loop thread).  Threading: reads the
 * configs only; safe on any thread.
 */
#include <string.h>

#include "config/schema.h"

static int str_eq(const char *a, const char *b) {
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static int strs_eq(char *const *a, char *const *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!str_eq(a[i], b[i]))
            return 0;
    return 1;
}

static const void *field(const void *obj, size_t off) {
    return (const char *)obj + off;
}

static int section_eq(const schema_section *s, const void *a, const void *b);

/* The key's arrays in a and b, which hold n items each. */
static int items_eq(const schema_key *k, const void *fa, const void *fb, size_t n) {
    switch (k->type) {
    case SCHEMA_STRINGS:
        return strs_eq(*(char **const *)fa, *(char **const *)fb, n);
    case SCHEMA_LABELS: {
        const config_label *x = *(config_label *const *)fa, *y = *(config_label *const *)fb;
        for (size_t i = 0; i < n; i++)
            if (!str_eq(x[i].name, y[i].name) || !str_eq(x[i].value, y[i].value))
                return 0;
        return 1;
    }
    case SCHEMA_PARAMS: {
        const config_param *x = *(config_param *const *)fa, *y = *(config_param *const *)fb;
        for (size_t i = 0; i < n; i++)
            if (!str_eq(x[i].name, y[i].name) || x[i].nvalues != y[i].nvalues ||
                !strs_eq(x[i].values, y[i].values, x[i].nvalues))
                return 0;
        return 1;
    }
    default: {             /* SCHEMA_LIST */
        const char *x, *y; /* `T *` for the item's struct T */
        memcpy(&x, fa, sizeof x);
        memcpy(&y, fb, sizeof y);
        for (size_t i = 0; i < n; i++)
            if (!section_eq(k->sub, x + i * k->sub->size, y + i * k->sub->size))
                return 0;
        return 1;
    }
    }
}

static int key_eq(const schema_key *k, const void *a, const void *b) {
    const void *fa = field(a, k->off), *fb = field(b, k->off);
    switch (k->type) {
    case SCHEMA_STRING:
        return str_eq(*(char *const *)fa, *(char *const *)fb);
    case SCHEMA_BOOL:
    case SCHEMA_ACTION:
        return *(const int *)fa == *(const int *)fb;
    case SCHEMA_DURATION:
        return *(const int64_t *)fa == *(const int64_t *)fb;
    case SCHEMA_UINT:
    case SCHEMA_SIZE:
        return *(const uint64_t *)fa == *(const uint64_t *)fb;
    case SCHEMA_MAP:
    case SCHEMA_INLINE:
        return section_eq(k->sub, fa, fb);
    default: { /* the arrays */
        size_t na = *(const size_t *)field(a, k->noff), nb = *(const size_t *)field(b, k->noff);
        return na == nb && items_eq(k, fa, fb, na);
    }
    }
}

static int section_eq(const schema_section *s, const void *a, const void *b) {
    if (s->has_present && *(const int *)field(a, s->present_off) != *(const int *)field(b, s->present_off))
        return 0;
    for (size_t i = 0; i < s->nkeys; i++)
        if (!(s->keys[i].flags & SCHEMA_TMP) && !key_eq(&s->keys[i], a, b))
            return 0;
    return 1;
}

int config_scrape_equal(const scrape_config *a, const scrape_config *b) {
    if (a == b)
        return 1;
    if (!a || !b)
        return 0;
    return section_eq(&schema_scrape, a, b);
}

int config_remote_write_equal(const config_remote_write *a, const config_remote_write *b) {
    if (a == b)
        return 1;
    if (!a || !b)
        return 0;
    return section_eq(&schema_remote_write, a, b);
}

int config_sd_equal(const scrape_config *a, const scrape_config *b) {
    if (a == b)
        return 1;
    if (!a || !b)
        return 0;
    for (size_t i = 0; i < schema_scrape.nkeys; i++) {
        const schema_key *k = &schema_scrape.keys[i];
        size_t n = k->name ? strlen(k->name) : 0;
        if (n > 11 && strcmp(k->name + n - 11, "_sd_configs") == 0 &&
            strcmp(k->name, "file_sd_configs") != 0 && !key_eq(k, a, b))
            return 0;
    }
    return 1;
}
