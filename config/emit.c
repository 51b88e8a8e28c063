/*
 * emit.c - config_to_yaml: writes a loaded config back as YAML, defaults
 * filled in, in the shape and key order Prometheus' /api/v1/status/config
 * shows: block style, list items at their parent key's indentation
 * ("- job_name: x"), source_labels in flow style, optional fields left out
 * when unset, and secrets (passwords, credentials) written as `<secret>`.
 *
 * The keys, their order and their types come from the tables of
 * schema.c; the SCHEMA_OMIT_ZERO, SCHEMA_SECRET, SCHEMA_FLOW and
 * SCHEMA_ALWAYS flags say what to leave out and how to write.  A map is
 * written when one of its fields is set (or, for basic_auth and
 * authorization, when it was given: `{}` if empty).
 *
 * Strings are written plain when YAML would read them back as the same
 * string, otherwise double-quoted with escapes, so config_load_string reads
 * the output back into an equal config.  Appends go to the caller's buf,
 * whose out-of-memory is sticky: checked once at the end.
 *
 * Called by the status API through cmd/kiln/main.c, and by the tests and
 * fuzz harness.  Threading: reads the config only; safe on any thread.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/schema.h"

typedef struct em {
    buf *b;
    int dash; /* the next line starts a list item: "- " before its first key */
} em;

static void put(em *e, const char *s) {
    buf_puts(e->b, s);
}

static void putn(em *e, const char *s, size_t n) {
    buf_append(e->b, s, n);
}

/* Starts a line at indentation ind (a pending list dash takes the last two
 * columns). */
static void line(em *e, int ind) {
    static const char spaces[] = "                                                                ";
    if (e->dash) {
        putn(e, spaces, (size_t)(ind >= 2 ? ind - 2 : 0));
        put(e, "- ");
        e->dash = 0;
    } else {
        putn(e, spaces, (size_t)ind);
    }
}

static int reserved_word(const char *s) {
    static const char *const words[] = {"true", "false", "yes",  "no", "on", "off",
                                        "y",    "n",     "null", "~",  NULL};
    for (size_t i = 0; words[i]; i++)
        if (strcasecmp(s, words[i]) == 0)
            return 1;
    return 0;
}

/* Decodes one UTF-8 code point at s (valid UTF-8 assumed); returns its length. */
static size_t utf8_next(const unsigned char *s, unsigned *cp) {
    if (s[0] < 0x80)
        return *cp = s[0], 1;
    if ((s[0] & 0xE0) == 0xC0)
        return *cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu), 2;
    if ((s[0] & 0xF0) == 0xE0)
        return *cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu), 3;
    return *cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu), 4;
}

/* What libyaml accepts as a printable character. */
static int printable(unsigned cp) {
    return (cp >= 0x20 && cp <= 0x7E) || cp == 0xA0 || (cp > 0xA0 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD && cp != 0xFEFF) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

static int needs_quotes(const char *s, int flow) {
    size_t n = strlen(s);
    if (n == 0 || reserved_word(s) || strcmp(s, "<<") == 0) /* "<<" would read back as a merge key */
        return 1;
    if (strchr("-?:,[]{}#&*!|>'\"%@` ", s[0]))
        return 1;
    if (s[n - 1] == ' ' || s[n - 1] == ':')
        return 1;
    /* anything a YAML 1.1 reader could take for a number */
    if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '+' || s[0] == '.') && n > 1))
        return 1;
    if (strstr(s, ": ") || strstr(s, " #"))
        return 1;
    if (flow && strpbrk(s, ",[]{}"))
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned cp;
        p += utf8_next(p, &cp);
        if (!printable(cp) || cp >= 0x80)
            return 1;
    }
    return 0;
}

static void scalar(em *e, const char *s, int flow) {
    if (!needs_quotes(s, flow)) {
        put(e, s);
        return;
    }
    put(e, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned cp;
        size_t l = utf8_next(p, &cp);
        char esc[16];
        if (cp == '"' || cp == '\\') {
            esc[0] = '\\', esc[1] = (char)cp, esc[2] = 0;
            put(e, esc);
        } else if (cp == '\n') {
            put(e, "\\n");
        } else if (cp == '\t') {
            put(e, "\\t");
        } else if (!printable(cp)) {
            if (cp <= 0xFF)
                snprintf(esc, sizeof esc, "\\x%02X", cp);
            else if (cp <= 0xFFFF)
                snprintf(esc, sizeof esc, "\\u%04X", cp);
            else
                snprintf(esc, sizeof esc, "\\U%08X", cp);
            put(e, esc);
        } else {
            putn(e, (const char *)p, l);
        }
        p += l;
    }
    put(e, "\"");
}

/* "key:" on a new line at indentation ind. */
static void key(em *e, int ind, const char *k) {
    line(e, ind);
    scalar(e, k, 0);
    put(e, ":");
}

/* "key: value" with value quoted as YAML needs (raw: written as it is). */
static void kv_str(em *e, int ind, const char *k, const char *v, int raw) {
    key(e, ind, k);
    put(e, " ");
    if (raw)
        put(e, v);
    else
        scalar(e, v, 0);
    put(e, "\n");
}

static void kv_size(em *e, int ind, const char *k, uint64_t v) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    uint64_t n = v;
    while (u < 6 && n && n % 1024 == 0)
        n /= 1024, u++;
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%llu%s", (unsigned long long)n, units[u]);
    kv_str(e, ind, k, tmp, 1);
}

/* A list of strings: block style, items at the key's indentation, or flow
 * style on the key's line. */
static void kv_strings(em *e, int ind, const char *k, char *const *v, size_t n, int flow) {
    key(e, ind, k);
    put(e, flow ? " [" : "\n");
    for (size_t i = 0; i < n; i++) {
        if (flow) {
            put(e, i ? ", " : "");
        } else {
            line(e, ind);
            put(e, "- ");
        }
        scalar(e, v[i], flow);
        if (!flow)
            put(e, "\n");
    }
    if (flow)
        put(e, "]\n");
}

static void kv_labels(em *e, int ind, const char *k, const config_label *l, size_t n) {
    key(e, ind, k);
    put(e, "\n");
    for (size_t i = 0; i < n; i++)
        kv_str(e, ind + 2, l[i].name, l[i].value, 0);
}

static void kv_params(em *e, int ind, const char *k, const config_param *p, size_t n) {
    key(e, ind, k);
    put(e, "\n");
    for (size_t i = 0; i < n; i++) {
        if (p[i].nvalues) {
            kv_strings(e, ind + 2, p[i].name, p[i].values, p[i].nvalues, 0);
        } else {
            key(e, ind + 2, p[i].name);
            put(e, " []\n");
        }
    }
}

static const void *field(const void *obj, size_t off) {
    return (const char *)obj + off;
}

static size_t count(const void *obj, const schema_key *k) {
    return *(const size_t *)field(obj, k->noff);
}

static int section_zero(const schema_section *s, const void *obj);

/* 1 when the key's field holds nothing to write: 0, NULL, "" or no items. */
static int key_zero(const schema_key *k, const void *obj) {
    const void *f = field(obj, k->off);
    switch (k->type) {
    case SCHEMA_STRING: {
        const char *v = *(char *const *)f;
        return !v || !*v;
    }
    case SCHEMA_BOOL:
    case SCHEMA_ACTION:
        return *(const int *)f == 0;
    case SCHEMA_DURATION:
        return *(const int64_t *)f == 0;
    case SCHEMA_UINT:
    case SCHEMA_SIZE:
        return *(const uint64_t *)f == 0;
    case SCHEMA_MAP:
        if (k->sub->has_present)
            return *(const int *)field(f, k->sub->present_off) == 0;
        return section_zero(k->sub, f);
    case SCHEMA_INLINE:
        return section_zero(k->sub, f);
    default: /* the arrays */
        return count(obj, k) == 0;
    }
}

/* 1 when no field of the section is set (NULL strings, zeros, no items). */
static int section_zero(const schema_section *s, const void *obj) {
    for (size_t i = 0; i < s->nkeys; i++) {
        const schema_key *k = &s->keys[i];
        if (k->flags & SCHEMA_TMP)
            continue;
        if (k->type == SCHEMA_STRING ? *(char *const *)field(obj, k->off) != NULL : !key_zero(k, obj))
            return 0;
    }
    return 1;
}

static void section(em *e, int ind, const schema_section *s, const void *obj);

static void kv_map(em *e, int ind, const schema_key *k, const void *obj) {
    const void *sub = field(obj, k->off);
    int zero = section_zero(k->sub, sub);
    if (k->sub->has_present) {
        if (!*(const int *)field(sub, k->sub->present_off))
            return;
        if (zero) {
            key(e, ind, k->name);
            put(e, " {}\n");
            return;
        }
    } else if (zero && !(k->flags & SCHEMA_ALWAYS)) {
        return;
    }
    key(e, ind, k->name);
    put(e, "\n");
    section(e, ind + 2, k->sub, sub);
}

static void kv_list(em *e, int ind, const schema_key *k, const void *obj) {
    const char *items;
    memcpy(&items, field(obj, k->off), sizeof items); /* a `T *` for the item's struct T */
    size_t n = count(obj, k);
    key(e, ind, k->name);
    put(e, "\n");
    for (size_t i = 0; i < n; i++) {
        e->dash = 1;
        section(e, ind + 2, k->sub, items + i * k->sub->size);
        if (e->dash) { /* nothing was written */
            line(e, ind + 2);
            put(e, k->sub->empty_item ? k->sub->empty_item : "{}");
            put(e, "\n");
        }
    }
}

static void kv(em *e, int ind, const schema_key *k, const void *obj) {
    const void *f = field(obj, k->off);
    char tmp[64];
    if ((k->flags & SCHEMA_TMP) || ((k->flags & SCHEMA_OMIT_ZERO) && key_zero(k, obj)))
        return;
    switch (k->type) {
    case SCHEMA_STRING: {
        const char *v = *(char *const *)f;
        if (v && (k->flags & SCHEMA_SECRET))
            v = *v ? "<secret>" : NULL;
        if (v)
            kv_str(e, ind, k->name, v, 0);
        return;
    }
    case SCHEMA_BOOL:
        kv_str(e, ind, k->name, *(const int *)f ? "true" : "false", 1);
        return;
    case SCHEMA_ACTION:
        kv_str(e, ind, k->name, config_relabel_action_name(*(const int *)f), 0);
        return;
    case SCHEMA_DURATION:
        duration_format(*(const int64_t *)f, tmp, sizeof tmp);
        kv_str(e, ind, k->name, tmp, 1);
        return;
    case SCHEMA_UINT:
        snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)*(const uint64_t *)f);
        kv_str(e, ind, k->name, tmp, 1);
        return;
    case SCHEMA_SIZE:
        kv_size(e, ind, k->name, *(const uint64_t *)f);
        return;
    case SCHEMA_MAP:
        kv_map(e, ind, k, obj);
        return;
    case SCHEMA_INLINE:
        section(e, ind, k->sub, f);
        return;
    default:
        break;
    }
    if (count(obj, k) == 0) /* the arrays: left out when empty */
        return;
    if (k->type == SCHEMA_STRINGS)
        kv_strings(e, ind, k->name, *(char **const *)f, count(obj, k), !!(k->flags & SCHEMA_FLOW));
    else if (k->type == SCHEMA_LABELS)
        kv_labels(e, ind, k->name, *(config_label *const *)f, count(obj, k));
    else if (k->type == SCHEMA_PARAMS)
        kv_params(e, ind, k->name, *(config_param *const *)f, count(obj, k));
    else
        kv_list(e, ind, k, obj);
}

/* The keys of section s at indentation ind. */
static void section(em *e, int ind, const schema_section *s, const void *obj) {
    for (size_t i = 0; i < s->nkeys; i++)
        kv(e, ind, &s->keys[i], obj);
}

int config_to_yaml(const config *c, buf *out) {
    em e = {out, 0};
    if (!c)
        return KILN_EINVAL;
    section(&e, 0, &schema_config, c);
    return buf_error(out);
}
