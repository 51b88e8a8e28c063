/*
 * otlp_names.c - OTLP metric and attribute names as Prometheus series and
 * label names, as Prometheus 3's otlptranslator makes them
 * (translation_strategy): the metric name cut into words and joined with
 * '_', the unit appended as words (UCUM units spelled out, "a/b" as
 * a_per_b), "_total" moved to the end of counters, "_ratio" for gauges of
 * unit 1; attribute keys with every other character than a letter, digit or
 * '_' replaced by '_' and the "key"/"key_" prefixes.
 *
 * Called by api/otlp.c (and tests) on any thread: no state.
 */
#include <string.h>

#include "api.h"

static int is_alnum(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Length of the UTF-8 sequence starting at s (1 for a stray byte). */
static size_t utf8_len(const char *s, size_t left) {
    unsigned char c = (unsigned char)*s;
    size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (n > left || !utf8_valid(s, n))
        return 1;
    return n;
}

typedef struct tokens {
    const char *p[64];
    size_t n[64];
    size_t count;
    const char *sp[64]; /* the runs of other characters, in order (UTF-8 mode) */
    size_t sn[64];
    size_t nsep;
} tokens;

/* Whether c belongs to a word of a metric name: an ASCII letter, digit or
 * ':' (in UTF-8 mode bytes of non-ASCII characters count as letters; with
 * keep_underscore '_' too). */
static int word_byte(unsigned char c, int utf8, int keep_underscore) {
    return is_alnum(c) || c == ':' || (utf8 && c >= 0x80) || (keep_underscore && c == '_');
}

/* Like Go's strings.FieldsFunc: the words of s (see word_byte), and in
 * UTF-8 mode the separator runs between them, to join the name back. */
static void split_tokens(const char *s, int utf8, int keep_underscore, tokens *t) {
    t->count = t->nsep = 0;
    size_t len = strlen(s), i = 0;
    while (i < len && t->count < 64 && t->nsep < 64) {
        size_t start = i;
        while (i < len && word_byte((unsigned char)s[i], utf8, keep_underscore))
            i++;
        if (i > start) {
            t->p[t->count] = s + start;
            t->n[t->count] = i - start;
            t->count++;
        }
        start = i;
        while (i < len && !word_byte((unsigned char)s[i], utf8, keep_underscore))
            i++;
        if (i > start) {
            t->sp[t->nsep] = s + start;
            t->sn[t->nsep] = i - start;
            t->nsep++;
        }
    }
    if (!utf8)
        t->nsep = 0;
}

static int tokens_has(const tokens *t, const char *w) {
    size_t wl = strlen(w);
    for (size_t i = 0; i < t->count; i++)
        if (t->n[i] == wl && !memcmp(t->p[i], w, wl))
            return 1;
    return 0;
}

static void tokens_remove(tokens *t, const char *w) {
    size_t wl = strlen(w), k = 0;
    for (size_t i = 0; i < t->count; i++) {
        if (t->n[i] == wl && !memcmp(t->p[i], w, wl))
            continue;
        t->p[k] = t->p[i];
        t->n[k] = t->n[i];
        k++;
    }
    t->count = k;
}

static void tokens_push(tokens *t, const char *w) {
    if (t->count < 64 && *w) {
        t->p[t->count] = w;
        t->n[t->count] = strlen(w);
        t->count++;
    }
}

static const char *const unit_map[][2] = {
    {"d", "days"},
    {"h", "hours"},
    {"min", "minutes"},
    {"s", "seconds"},
    {"ms", "milliseconds"},
    {"us", "microseconds"},
    {"ns", "nanoseconds"},
    {"By", "bytes"},
    {"KiBy", "kibibytes"},
    {"MiBy", "mebibytes"},
    {"GiBy", "gibibytes"},
    {"TiBy", "tibibytes"},
    {"KBy", "kilobytes"},
    {"MBy", "megabytes"},
    {"GBy", "gigabytes"},
    {"TBy", "terabytes"},
    {"m", "meters"},
    {"V", "volts"},
    {"A", "amperes"},
    {"J", "joules"},
    {"W", "watts"},
    {"g", "grams"},
    {"Cel", "celsius"},
    {"Hz", "hertz"},
    {"1", ""},
    {"%", "percent"},
};
static const char *const per_unit_map[][2] = {{"s", "second"}, {"m", "minute"}, {"h", "hour"}, {"d", "day"},
                                              {"w", "week"},   {"mo", "month"}, {"y", "year"}};

/* Prometheus' cleanUpUnit: invalid characters to '_', runs of '_' as one,
 * no leading '_'. */
static void clean_unit(const char *u, char *out, size_t cap) {
    size_t k = 0;
    for (const char *p = u; *p && k + 1 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        char o = is_alnum(c) || c == ':' ? (char)c : '_';
        if (o == '_' && (k == 0 || out[k - 1] == '_'))
            continue;
        out[k++] = o;
    }
    out[k] = 0;
}

/* The Prometheus form of one unit part (trimmed), or "" when dropped. */
static void unit_part(const char *u, size_t n, int per, char *out, size_t cap) {
    out[0] = 0;
    while (n && (*u == ' ' || *u == '\t'))
        u++, n--;
    while (n && (u[n - 1] == ' ' || u[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= 128 || memchr(u, '{', n) || memchr(u, '}', n))
        return;
    char tmp[128];
    memcpy(tmp, u, n);
    tmp[n] = 0;
    const char *m = tmp;
    size_t nm = per ? sizeof per_unit_map / sizeof per_unit_map[0] : sizeof unit_map / sizeof unit_map[0];
    for (size_t i = 0; i < nm; i++) {
        const char *const *e = per ? per_unit_map[i] : unit_map[i];
        if (!strcmp(tmp, e[0])) {
            m = e[1];
            break;
        }
    }
    clean_unit(m, out, cap);
}

int otlp_metric_name(const char *name, const char *unit, char kind, otlp_strategy strategy, char *out,
                     size_t cap) {
    size_t k = 0;
    if (!name)
        name = "";
    if (!unit)
        unit = "";
    if (strategy == OTLP_NO_TRANSLATION) {
        k = strlen(name);
        if (k + 1 > cap)
            return -1;
        memcpy(out, name, k + 1);
        return (int)k;
    }
    tokens t;
    split_tokens(name, strategy == OTLP_NO_UTF8_ESCAPING_WITH_SUFFIXES,
                 strategy == OTLP_UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES, &t);
    if (strategy == OTLP_UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES)
        goto join;
    char main_u[128], per_u[128];
    const char *slash = strchr(unit, '/');
    unit_part(unit, slash ? (size_t)(slash - unit) : strlen(unit), 0, main_u, sizeof main_u);
    if (main_u[0] && tokens_has(&t, main_u))
        main_u[0] = 0;
    per_u[0] = 0;
    if (slash)
        unit_part(slash + 1, strlen(slash + 1), 1, per_u, sizeof per_u);
    if (per_u[0] && tokens_has(&t, per_u))
        per_u[0] = 0;
    tokens_push(&t, main_u);
    if (per_u[0]) {
        tokens_push(&t, "per");
        tokens_push(&t, per_u);
    }
    if (kind == 'c') {
        tokens_remove(&t, "total");
        tokens_push(&t, "total");
    }
    if (kind == 'g' && !strcmp(unit, "1")) {
        tokens_remove(&t, "ratio");
        tokens_push(&t, "ratio");
    }
join:
    if (t.count && t.p[0][0] >= '0' && t.p[0][0] <= '9') {
        if (cap < 2)
            return -1;
        out[k++] = '_';
    }
    for (size_t i = 0; i < t.count; i++) {
        if (k + t.n[i] + 2 > cap)
            return -1;
        /* Prometheus joins with the name's own separators, by position, in UTF-8 mode */
        const char *sep = i && i - 1 < t.nsep ? t.sp[i - 1] : "_";
        size_t sl = i && i - 1 < t.nsep ? t.sn[i - 1] : 1;
        if (i) {
            if (k + sl + t.n[i] + 1 > cap)
                return -1;
            memcpy(out + k, sep, sl);
            k += sl;
        }
        memcpy(out + k, t.p[i], t.n[i]);
        k += t.n[i];
    }
    if (k >= cap)
        return -1;
    out[k] = 0;
    return (int)k;
}

int otlp_label_name(const char *key, const otlp_opts *o, char *out, size_t cap) {
    size_t len = key ? strlen(key) : 0, k = 0;
    if (o->strategy == OTLP_NO_UTF8_ESCAPING_WITH_SUFFIXES || o->strategy == OTLP_NO_TRANSLATION ||
        len == 0) {
        if (len + 1 > cap)
            return -1;
        memcpy(out, key ? key : "", len + 1);
        return (int)len;
    }
    if (len + 5 > cap) /* room for "key_" */
        return -1;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)key[i];
        size_t step = is_alnum(c) || c == '_' ? 1 : utf8_len(key + i, len - i);
        char ch = step == 1 && (is_alnum(c) || c == '_') ? (char)c : '_'; /* one '_' per character */
        i += step;
        if (ch == '_' && o->collapse_underscores && k && out[k - 1] == '_')
            continue;
        out[k++] = ch;
    }
    out[k] = 0;
    /* the prefixes go on the escaped name */
    const char *prefix = "";
    if (out[0] >= '0' && out[0] <= '9')
        prefix = "key_";
    else if (!o->no_key_underscore && out[0] == '_' && out[1] != '_')
        prefix = "key";
    size_t pl = strlen(prefix);
    memmove(out + pl, out, k + 1);
    memcpy(out, prefix, pl);
    return (int)(k + pl);
}
