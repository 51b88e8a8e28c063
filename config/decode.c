/*
 * decode.c - the decoder of config/: walks a yamltree map with its section's
 * table of keys (schema.h) and decodes each value by its key's type.
 *
 * One loop serves every section: it takes the map's keys in document
 * order, finds each in the table (or in the table of the section's inline
 * keys, the http client's), decodes the value into the field at the key's
 * offset, runs the key's check, and ends with the section's finish hook.
 * A key in no table is an error naming it, its section and its
 * file:line:col; so is a value of the wrong type.  Recursion follows the
 * schema (a map key recurses into its sub-section), so its depth is fixed by
 * the tables, never by the input.
 *
 * Keys flagged SCHEMA_UNUSED are noted in the config (config.unused_keys)
 * by path, once each, when the document gives them a value.
 *
 * Called by config.c (a load) and by schema.c's hooks.  Threading: the
 * loading thread only; d is one load's state.
 */
#include <ctype.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/schema.h"

/* ---- messages and memory ------------------------------------------------------ */

int decode_fail(dec *d, const ynode *n, const char *fmt, ...) {
    char msg[KILN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln_err_set(d->err, KILN_EINVAL, "%s:%d:%d: %s", d->name, n ? n->line : 1, n ? n->col : 1, msg);
}

int decode_oom(dec *d) {
    return kiln_err_set(d->err, KILN_ENOMEM, "%s: out of memory loading the configuration", d->name);
}

char *decode_strdup(dec *d, const char *s) {
    return arena_strndup(d->a, s, strlen(s));
}

void *decode_array(dec *d, size_t n, size_t size) {
    if (n == 0 || n > SIZE_MAX / size)
        return NULL;
    return arena_alloc(d->a, n * size);
}

char *decode_path(dec *d, char *p) {
    if (!p || !d->dir || !*p || p[0] == '/')
        return p;
    size_t dl = strlen(d->dir), pl = strlen(p);
    char *out = arena_alloc(d->a, dl + pl + 2);
    if (!out)
        return NULL;
    memcpy(out, d->dir, dl);
    size_t o = dl;
    if (o == 0 || out[o - 1] != '/')
        out[o++] = '/';
    memcpy(out + o, p, pl + 1);
    return out;
}

int decode_document(const char *name, const char *dir, const char *text, size_t len, arena *a,
                    const schema_section *s, void *obj, config *c, config_unused_key **unused,
                    size_t *nunused, kiln_err *err) {
    arena scratch;
    ynode *root = NULL;
    arena_init(&scratch, 0);
    int rc = yamltree_parse(name, text, len, &scratch, &root, err);
    if (rc == 0) {
        dec d;
        memset(&d, 0, sizeof d);
        d.name = name;
        d.dir = dir;
        d.a = a;
        d.scratch = &scratch;
        d.err = err;
        d.c = c;
        strtab_init(&d.regexes, &scratch);
        rc = decode_section(&d, s, root, obj);
        strtab_free(&d.regexes);
        *unused = d.unused;
        *nunused = d.nunused;
    }
    arena_free(&scratch);
    return rc;
}

/* ---- shapes ------------------------------------------------------------------ */

static int is_null(const ynode *v) {
    return !v || (v->kind == YAMLTREE_SCALAR && v->is_null);
}

/* Count of map pairs or list items (0 for null). */
static size_t n_of(const ynode *v) {
    return !v || v->kind == YAMLTREE_SCALAR ? 0 : v->n;
}

/* A map where null counts as an empty map. */
static int expect_map(dec *d, const ynode *v, const char *what) {
    if (v->kind == YAMLTREE_MAP || is_null(v))
        return 0;
    return decode_fail(d, v, "expected a map for %s, got %s", what, yamltree_kind_name(v));
}

static int expect_seq(dec *d, const ynode *v, const char *what) {
    if (v->kind == YAMLTREE_SEQ || is_null(v))
        return 0;
    return decode_fail(d, v, "expected a list for %s, got %s", what, yamltree_kind_name(v));
}

int decode_key(dec *d, const ynode *k, const char **name) {
    if (k->kind != YAMLTREE_SCALAR)
        return decode_fail(d, k, "map keys must be strings, got %s", yamltree_kind_name(k));
    *name = k->str;
    return 0;
}

/* A key in no table: Prometheus keys kiln does not implement are named as
 * such, anything else is unknown. */
static int unknown_key(dec *d, const ynode *k, const char *section) {
    static const char *const unsupported[] = {"scrape_config_files",
                                              "runtime",
                                              "tsdb",
                                              "tracing",
                                              "oauth2",
                                              "sigv4",
                                              "azuread",
                                              "google_iam",
                                              "http_headers",
                                              "no_proxy",
                                              "proxy_from_environment",
                                              "proxy_connect_header",
                                              "keep_dropped_targets",
                                              "extra_scrape_metrics",
                                              "metric_name_validation_scheme",
                                              "metric_name_escaping_scheme",
                                              "convert_classic_histograms_to_nhcb",
                                              "username_file",
                                              "round_robin_dns",
                                              "ca",
                                              "cert",
                                              "key",
                                              "max_version",
                                              NULL};
    size_t kl = strlen(k->str);
    if (kl > 10 && strcmp(k->str + kl - 11, "_sd_configs") == 0)
        return decode_fail(d, k, "key \"%.100s\" in %s is not supported by kiln", k->str, section);
    for (size_t i = 0; unsupported[i]; i++)
        if (strcmp(k->str, unsupported[i]) == 0)
            return decode_fail(d, k, "key \"%.100s\" in %s is not supported by kiln", k->str, section);
    return decode_fail(d, k, "unknown key \"%.100s\" in %s", k->str, section);
}

/* ---- scalars ------------------------------------------------------------------ */

/* A scalar copied into the config; null leaves *out as it is. */
static int d_string(dec *d, const char *key, const ynode *v, char **out) {
    if (v->kind != YAMLTREE_SCALAR)
        return decode_fail(d, v, "expected a string for \"%s\", got %s", key, yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    if (memchr(v->str, 0, v->len))
        return decode_fail(d, v, "\"%s\" must not contain a NUL character", key);
    if (!utf8_valid(v->str, v->len))
        return decode_fail(d, v, "\"%s\" is not valid UTF-8", key);
    char *s = arena_strndup(d->a, v->str, v->len);
    if (!s)
        return decode_oom(d);
    *out = s;
    return 0;
}

/* Like d_string, with "" in place of null. */
static int d_string_or_empty(dec *d, const char *key, const ynode *v, char **out) {
    int rc = d_string(d, key, v, out);
    if (rc == 0 && !*out && !(*out = decode_strdup(d, "")))
        return decode_oom(d);
    return rc;
}

static int d_bool(dec *d, const char *key, const ynode *v, void *out) {
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                      "on",   "On",   "ON",   "y",   "Y",   NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO",
                                     "off",   "Off",   "OFF",   "n",  "N",  NULL};
    if (v->kind != YAMLTREE_SCALAR)
        return decode_fail(d, v, "expected true or false for \"%s\", got %s", key, yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    if (v->plain) {
        for (size_t i = 0; yes[i]; i++)
            if (strcmp(v->str, yes[i]) == 0)
                return *(int *)out = 1, 0;
        for (size_t i = 0; no[i]; i++)
            if (strcmp(v->str, no[i]) == 0)
                return *(int *)out = 0, 0;
    }
    return decode_fail(d, v, "expected true or false for \"%s\", got \"%.100s\"", key, v->str);
}

static int d_duration(dec *d, const char *key, const ynode *v, void *out) {
    if (v->kind != YAMLTREE_SCALAR)
        return decode_fail(d, v, "expected a duration for \"%s\", got %s", key, yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    kiln_err e = {0};
    char tmp[128];
    if (v->len >= sizeof tmp || memchr(v->str, 0, v->len)) {
        /* far longer than any duration: keep the message short */
        snprintf(tmp, sizeof tmp, "%.60s...", v->str);
        return decode_fail(d, v, "not a valid duration string: \"%s\"", tmp);
    }
    if (duration_parse(v->str, out, &e) != 0)
        return decode_fail(d, v, "%s", e.msg);
    return 0;
}

static int d_uint(dec *d, const char *key, const ynode *v, void *out) {
    if (v->kind != YAMLTREE_SCALAR)
        return decode_fail(d, v, "expected a non-negative integer for \"%s\", got %s", key,
                           yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    const char *p = v->str;
    if (*p == '+')
        p++;
    if (!*p || !v->plain)
        goto bad;
    uint64_t n = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        if (n > (UINT64_MAX - 9) / 10)
            return decode_fail(d, v, "integer out of range for \"%s\": \"%.100s\"", key, v->str);
        n = n * 10 + (uint64_t)(*p - '0');
    }
    *(uint64_t *)out = n;
    return 0;
bad:
    return decode_fail(d, v, "expected a non-negative integer for \"%s\", got \"%.100s\"", key, v->str);
}

/* A size with a unit, base 2 as in Prometheus ("512MB" = 512 MiB): B, KB,
 * MB, GB, TB, PB, EB (also KiB...); "0" alone is allowed. */
static int d_size(dec *d, const char *key, const ynode *v, void *out) {
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
    if (v->kind != YAMLTREE_SCALAR)
        return decode_fail(d, v, "expected a size for \"%s\", got %s", key, yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    const char *p = v->str;
    if (strcmp(p, "0") == 0)
        return *(uint64_t *)out = 0, 0;
    if (!*p)
        goto bad;
    uint64_t total = 0;
    int last_unit = 7;
    while (*p) {
        uint64_t n = 0;
        if (!isdigit((unsigned char)*p))
            goto bad;
        while (isdigit((unsigned char)*p)) {
            if (n > (UINT64_MAX - 9) / 10)
                goto range;
            n = n * 10 + (uint64_t)(*p++ - '0');
        }
        int u = -1;
        size_t ul = 0;
        for (int i = 6; i >= 0; i--) {
            size_t l = strlen(units[i]);
            if (i > 0 && p[0] == units[i][0] && p[1] == 'i' && p[2] == 'B') {
                u = i, ul = 3;
                break;
            }
            if (strncmp(p, units[i], l) == 0) {
                u = i, ul = l;
                break;
            }
        }
        if (u < 0 || u >= last_unit)
            goto bad;
        last_unit = u;
        uint64_t mul = (uint64_t)1 << (10 * u);
        if (n > UINT64_MAX / mul || total > UINT64_MAX - n * mul)
            goto range;
        total += n * mul;
        p += ul;
    }
    *(uint64_t *)out = total;
    return 0;
bad:
    return decode_fail(
        d, v, "not a valid size for \"%s\": \"%.100s\" (a unit is required: B, KB, MB, GB, TB, PB, EB)", key,
        v->str);
range:
    return decode_fail(d, v, "size out of range for \"%s\": \"%.100s\"", key, v->str);
}

/* A CONFIG_RELABEL_* action by its name, case-insensitively. */
static int d_action(dec *d, const char *key, const ynode *v, void *out) {
    char *a = NULL;
    int rc = d_string(d, key, v, &a);
    if (rc)
        return rc;
    if (!a || !*a)
        return decode_fail(d, v, "relabel action cannot be empty");
    for (int j = 0; j < CONFIG_RELABEL_NACTIONS; j++)
        if (strcasecmp(a, config_relabel_action_name(j)) == 0)
            return *(int *)out = j, 0;
    return decode_fail(d, v, "unknown relabel action \"%.100s\"", a);
}

/* d_string with the signature of the table below. */
static int d_string_field(dec *d, const char *key, const ynode *v, void *out) {
    return d_string(d, key, v, out);
}

/* The decoders of the scalar types, by SCHEMA_* type. */
static int (*const scalar_decoders[])(dec *, const char *, const ynode *, void *) = {
    [SCHEMA_STRING] = d_string_field, [SCHEMA_BOOL] = d_bool, [SCHEMA_DURATION] = d_duration,
    [SCHEMA_UINT] = d_uint,           [SCHEMA_SIZE] = d_size, [SCHEMA_ACTION] = d_action,
};
#define N_SCALAR_DECODERS (sizeof scalar_decoders / sizeof scalar_decoders[0])

/* ---- lists and maps of strings -------------------------------------------------- */

static int d_string_list(dec *d, const char *key, const ynode *v, char ***out, size_t *n) {
    int rc = expect_seq(d, v, key);
    if (rc)
        return rc;
    size_t cnt = n_of(v);
    char **arr = decode_array(d, cnt, sizeof *arr);
    if (cnt && !arr)
        return decode_oom(d);
    for (size_t i = 0; i < cnt; i++)
        if ((rc = d_string_or_empty(d, key, v->kids[i], &arr[i])) != 0)
            return rc;
    *out = arr;
    *n = cnt;
    return 0;
}

/* A map of names to strings (labels, headers: config_label; names: 1 when
 * the names must be legacy label names) or to lists of strings (URL
 * params: config_param).  The array's address is stored at out. */
static int d_named_map(dec *d, const char *key, const ynode *v, int names, int lists, void *out, size_t *n) {
    int rc = expect_map(d, v, key);
    if (rc)
        return rc;
    size_t cnt = n_of(v);
    void *arr = decode_array(d, cnt, lists ? sizeof(config_param) : sizeof(config_label));
    if (cnt && !arr)
        return decode_oom(d);
    for (size_t i = 0; i < cnt; i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        config_label *l = (config_label *)arr + i;
        config_param *p = (config_param *)arr + i;
        const char *name = NULL;
        if ((rc = decode_key(d, k, &name)) != 0)
            return rc;
        if (names && !label_name_valid(name, k->len))
            return decode_fail(d, k, "\"%.100s\" is not a valid label name", name);
        if (lists) {
            if ((rc = d_string_or_empty(d, key, k, &p->name)) == 0)
                rc = d_string_list(d, name, val, &p->values, &p->nvalues);
        } else if ((rc = d_string_or_empty(d, key, k, &l->name)) == 0) {
            rc = d_string_or_empty(d, key, val, &l->value);
        }
        if (rc)
            return rc;
    }
    memcpy(out, &arr, sizeof arr);
    *n = cnt;
    return 0;
}

/* ---- unused keys ------------------------------------------------------------------ */

/* Appends sep and name to the path; returns the length to restore. */
static size_t path_push(dec *d, const char *sep, const char *name) {
    size_t mark = d->pathlen;
    /* the tables bound the depth and the names: the path always fits */
    int n = snprintf(d->path + mark, sizeof d->path - mark, "%s%s", sep, name);
    if (n > 0)
        d->pathlen = mark + (size_t)n < sizeof d->path ? mark + (size_t)n : sizeof d->path - 1;
    return mark;
}

static void path_pop(dec *d, size_t mark) {
    d->pathlen = mark;
    d->path[mark] = 0;
}

/* Notes the key at the current path, unless it sets nothing (null, "", []
 * or {}), sits inside a key already noted, or was noted before. */
static int note_unused(dec *d, const ynode *key, const ynode *v) {
    if (d->quiet || !d->c || is_null(v) || (v->kind == YAMLTREE_SCALAR ? v->len : v->n) == 0)
        return 0;
    for (size_t i = 0; i < d->nunused; i++)
        if (strcmp(d->unused[i].path, d->path) == 0)
            return 0;
    if (d->nunused == d->capunused) {
        size_t cap = d->capunused ? d->capunused * 2 : 8;
        config_unused_key *u = decode_array(d, cap, sizeof *u);
        if (!u)
            return decode_oom(d);
        if (d->nunused)
            memcpy(u, d->unused, d->nunused * sizeof *u);
        d->unused = u;
        d->capunused = cap;
    }
    config_unused_key *u = &d->unused[d->nunused];
    if (!(u->path = decode_strdup(d, d->path)))
        return decode_oom(d);
    u->line = key->line;
    u->col = key->col;
    d->nunused++;
    return 0;
}

/* ---- the walk ---------------------------------------------------------------------- */

int decode_value(dec *d, const schema_key *k, const ynode *key, const ynode *v, void *obj, void *tmp) {
    char *f = (char *)(k->flags & SCHEMA_TMP ? tmp : obj) + k->off;
    size_t *count = (size_t *)(void *)((char *)obj + k->noff);
    size_t mark = path_push(d, d->pathlen ? "." : "", k->name);
    int rc = 0, quiet = 0;
    if (k->flags & SCHEMA_UNUSED) {
        if ((rc = note_unused(d, key, v)) != 0)
            goto out;
        d->quiet++, quiet = 1;
    }
    if ((size_t)k->type < N_SCALAR_DECODERS && scalar_decoders[k->type]) {
        rc = scalar_decoders[k->type](d, k->name, v, f);
        char **str = (char **)(void *)f; /* read only for strings */
        if (rc == 0 && (k->flags & SCHEMA_EMPTY_NULL) && *str && !**str)
            *str = NULL;
    } else if (k->type == SCHEMA_STRINGS) {
        rc = d_string_list(d, k->name, v, (char ***)(void *)f, count);
    } else if (k->type == SCHEMA_LABELS || k->type == SCHEMA_PARAMS) {
        rc = d_named_map(d, k->name, v, !!(k->flags & SCHEMA_NAMES), k->type == SCHEMA_PARAMS, f, count);
    } else if (k->type == SCHEMA_MAP) {
        rc = decode_section(d, k->sub, v, f);
    } else if (k->type == SCHEMA_LIST) {
        rc = decode_list(d, k->name, k->sub, v, f, count);
    }
    if (rc == 0 && k->check)
        rc = k->check(d, v, f, k->noff ? *count : 0);
out:
    d->quiet -= quiet;
    path_pop(d, mark);
    return rc;
}

/* The defaults of the table, into obj (zeroed) and its MAP and INLINE
 * sub-sections. */
static int apply_defaults(dec *d, const schema_section *s, void *obj) {
    for (size_t i = 0; i < s->nkeys; i++) {
        const schema_key *k = &s->keys[i];
        void *f = (char *)obj + k->off;
        int rc;
        if (k->flags & SCHEMA_TMP)
            continue;
        if (k->type == SCHEMA_MAP || k->type == SCHEMA_INLINE) {
            if ((rc = apply_defaults(d, k->sub, f)) != 0)
                return rc;
        } else if (k->def_str) {
            if (!(*(char **)f = decode_strdup(d, k->def_str)))
                return decode_oom(d);
        } else if (k->def == 0) {
            continue; /* the struct is zeroed */
        } else if (k->type == SCHEMA_BOOL) {
            *(int *)f = (int)k->def;
        } else if (k->type == SCHEMA_DURATION) {
            *(int64_t *)f = k->def;
        } else if (k->type == SCHEMA_UINT) {
            *(uint64_t *)f = (uint64_t)k->def;
        }
    }
    return 0;
}

static const schema_key *find_key(const schema_section *s, const char *name, size_t *idx) {
    for (size_t i = 0; i < s->nkeys; i++)
        if (s->keys[i].type != SCHEMA_INLINE && strcmp(s->keys[i].name, name) == 0)
            return *idx = i, &s->keys[i];
    return NULL;
}

int decode_section(dec *d, const schema_section *s, const ynode *v, void *obj) {
    int rc;
    if (is_null(v)) {
        if (!s->null_ok)
            return s->null_msg ? decode_fail(d, v, "%s", s->null_msg)
                               : decode_fail(d, v, "expected a map for %s, got nothing", s->name);
    } else if (v->kind != YAMLTREE_MAP) {
        if (s->top)
            return decode_fail(d, v, "expected a map at the top level, got %s", yamltree_kind_name(v));
        return decode_fail(d, v, "expected a map for %s, got %s", s->name, yamltree_kind_name(v));
    }
    if (s->has_present)
        *(int *)(void *)((char *)obj + s->present_off) = 1;

    /* the scratch of this section and of its inline one */
    alignas(max_align_t) char tmp[SCHEMA_MAX_TMP], itmp[SCHEMA_MAX_TMP];
    memset(tmp, 0, sizeof tmp);
    memset(itmp, 0, sizeof itmp);
    schema_seen seen = {.map = v, .sec = s, .tmp = tmp}, iseen = {.map = v, .tmp = itmp};
    const schema_key *ik = NULL;
    for (size_t i = 0; i < s->nkeys && !ik; i++)
        if (s->keys[i].type == SCHEMA_INLINE)
            ik = &s->keys[i];
    if (ik) {
        iseen.sec = ik->sub;
        seen.inl = &iseen;
    }

    if ((rc = apply_defaults(d, s, obj)) != 0 || (s->init && (rc = s->init(d, obj, v)) != 0))
        return rc;
    for (size_t i = 0; i < n_of(v); i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *name = NULL;
        size_t j = 0;
        if ((rc = decode_key(d, k, &name)) != 0)
            return rc;
        const schema_key *key = find_key(s, name, &j);
        if (key) {
            seen.at[j] = i + 1;
            if (!(key->flags & SCHEMA_FIRST) && (rc = decode_value(d, key, k, val, obj, tmp)) != 0)
                return rc;
        } else if (ik && (key = find_key(ik->sub, name, &j)) != NULL) {
            iseen.at[j] = i + 1;
            if ((rc = decode_value(d, key, k, val, (char *)obj + ik->off, itmp)) != 0)
                return rc;
        } else {
            return unknown_key(d, k, s->name);
        }
    }
    return s->finish ? s->finish(d, obj, &seen) : 0;
}

/* The first index whose name repeats an earlier item's (NULL names never
 * repeat), n when none does, or SIZE_MAX when out of memory.  Hashed:
 * thousands of jobs must not cost a quadratic check. */
static size_t first_dup(dec *d, const char *items, size_t n, size_t stride, size_t name_off) {
    strtab seen;
    size_t dup = n;
    strtab_init(&seen, d->scratch);
    for (size_t i = 0; i < n && dup == n; i++) {
        const char *name = *(const char *const *)(const void *)(items + i * stride + name_off);
        if (!name)
            continue;
        if (strtab_get(&seen, name))
            dup = i;
        else if (strtab_put(&seen, name, (void *)name) != 0)
            dup = SIZE_MAX;
    }
    strtab_free(&seen);
    return dup;
}

int decode_list(dec *d, const char *key, const schema_section *s, const ynode *v, void *items, size_t *n) {
    int rc = expect_seq(d, v, key);
    if (rc)
        return rc;
    size_t cnt = n_of(v);
    char *arr = decode_array(d, cnt, s->size);
    if (cnt && !arr)
        return decode_oom(d);
    /* published before the items are decoded, so config_free finds every
     * regex compiled so far */
    memcpy(items, &arr, sizeof arr);
    *n = cnt;
    size_t mark = path_push(d, "", "[]"); /* "scrape_configs[]": the items' keys share one path */
    for (size_t i = 0; i < cnt; i++)
        if ((rc = decode_section(d, s, v->kids[i], arr + i * s->size)) != 0)
            break;
    path_pop(d, mark);
    if (rc || !s->dup_what)
        return rc;
    size_t dup = first_dup(d, arr, cnt, s->size, s->dup_off);
    if (dup == SIZE_MAX)
        return decode_oom(d);
    if (dup < cnt)
        return decode_fail(d, v->kids[dup], "found multiple %s with job name \"%.100s\"", s->dup_what,
                           *(const char *const *)(const void *)(arr + dup * s->size + s->dup_off));
    return 0;
}

/* ---- positions for the hooks ---------------------------------------------------------- */

static size_t seen_at(const schema_seen *s, const char *name) {
    size_t j = 0;
    if (!s || !name || !find_key(s->sec, name, &j))
        return 0;
    return s->at[j];
}

const ynode *decode_at(const schema_seen *s, const char *name) {
    size_t at = seen_at(s, name);
    return at ? s->map->kids[2 * (at - 1) + 1] : s->map;
}

const ynode *decode_later_key(const schema_seen *s, const char *a, const char *b) {
    size_t x = seen_at(s, a), y = seen_at(s, b), at = x > y ? x : y;
    return at ? s->map->kids[2 * (at - 1)] : NULL;
}
