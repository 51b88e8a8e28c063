/*
 * json.c - a small strict JSON reader (RFC 8259) into a tree in an arena.
 *
 * The service discoveries (scrape/sd_*.c) read their servers' answers with
 * it: HTTP SD's target groups, Consul's catalog, Kubernetes' lists and watch
 * events.  Strict: one value and only whitespace around it, no trailing
 * commas, no leading zeros, no control characters in strings, valid UTF-8,
 * \u escapes with their surrogate pairs (a lone surrogate is an error),
 * nesting at most JSON_MAX_DEPTH deep.  Strings are decoded and
 * NUL-terminated (a \u0000 inside one makes it shorter to C than its len).
 * Numbers keep their text and a double.  An object keeps its members in
 * document order; json_get answers the last member of a name, as Go's
 * decoder does.
 *
 * Threading: none of its own; a parse touches only its arena.
 */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

typedef struct jp {
    const char *s;
    size_t len, pos;
    arena *a;
    kiln_err *err;
    int depth;
} jp;

static int jp_fail(jp *p, const char *what) {
    return kiln_err_set(p->err, KILN_EINVAL, "json: %s at offset %zu", what, p->pos);
}

static void skip_ws(jp *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int hex4(jp *p, uint32_t *out) {
    if (p->len - p->pos < 4)
        return jp_fail(p, "short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return jp_fail(p, "bad \\u escape");
    }
    *out = v;
    return 0;
}

static void put_utf8(buf *b, uint32_t r) {
    char t[4];
    size_t n;
    if (r < 0x80) {
        t[0] = (char)r;
        n = 1;
    } else if (r < 0x800) {
        t[0] = (char)(0xC0 | (r >> 6));
        t[1] = (char)(0x80 | (r & 0x3F));
        n = 2;
    } else if (r < 0x10000) {
        t[0] = (char)(0xE0 | (r >> 12));
        t[1] = (char)(0x80 | ((r >> 6) & 0x3F));
        t[2] = (char)(0x80 | (r & 0x3F));
        n = 3;
    } else {
        t[0] = (char)(0xF0 | (r >> 18));
        t[1] = (char)(0x80 | ((r >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((r >> 6) & 0x3F));
        t[3] = (char)(0x80 | (r & 0x3F));
        n = 4;
    }
    buf_append(b, t, n);
}

/* A string at p->pos (its opening quote); the decoded text into the arena. */
static int parse_string(jp *p, const char **out, size_t *outlen) {
    p->pos++;
    size_t start = p->pos;
    /* the common case: no escapes, copied as it is */
    while (p->pos < p->len && p->s[p->pos] != '"' && p->s[p->pos] != '\\' &&
           (unsigned char)p->s[p->pos] >= 0x20)
        p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '"') {
        size_t n = p->pos - start;
        if (!utf8_valid(p->s + start, n))
            return jp_fail(p, "invalid UTF-8 in string");
        char *c = arena_strndup(p->a, p->s + start, n);
        if (!c)
            return KILN_ENOMEM;
        p->pos++;
        *out = c;
        *outlen = n;
        return 0;
    }
    buf b = BUF_INIT;
    buf_append(&b, p->s + start, p->pos - start);
    int rc = 0;
    for (;;) {
        if (p->pos >= p->len) {
            rc = jp_fail(p, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            rc = jp_fail(p, "control character in string");
            break;
        }
        if (c != '\\') {
            buf_putc(&b, (char)c);
            p->pos++;
            continue;
        }
        if (++p->pos >= p->len) {
            rc = jp_fail(p, "unterminated string");
            break;
        }
        char e = p->s[p->pos++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            buf_putc(&b, map[simple - "\"\\/bfnrt"]);
            continue;
        }
        if (e != 'u') {
            rc = jp_fail(p, "bad escape");
            break;
        }
        uint32_t r;
        if ((rc = hex4(p, &r)) != 0)
            break;
        if (r >= 0xDC00 && r <= 0xDFFF) {
            rc = jp_fail(p, "lone low surrogate");
            break;
        }
        if (r >= 0xD800 && r <= 0xDBFF) {
            uint32_t lo;
            if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                rc = jp_fail(p, "lone high surrogate");
                break;
            }
            p->pos += 2;
            if ((rc = hex4(p, &lo)) != 0)
                break;
            if (lo < 0xDC00 || lo > 0xDFFF) {
                rc = jp_fail(p, "bad surrogate pair");
                break;
            }
            r = 0x10000 + ((r - 0xD800) << 10) + (lo - 0xDC00);
        }
        put_utf8(&b, r);
    }
    if (rc == 0 && buf_error(&b) != 0)
        rc = KILN_ENOMEM;
    if (rc == 0 && !utf8_valid(b.data ? b.data : "", b.len))
        rc = jp_fail(p, "invalid UTF-8 in string");
    if (rc == 0) {
        char *c = arena_strndup(p->a, b.data ? b.data : "", b.len);
        if (!c)
            rc = KILN_ENOMEM;
        *out = c;
        *outlen = b.len;
    }
    buf_free(&b);
    return rc;
}

/* Skips the digits at p->pos; how many there were. */
static size_t digits(jp *p) {
    size_t d = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    return p->pos - d;
}

static int parse_number(jp *p, json_val *v) {
    size_t start = p->pos;
    const char *s = p->s;
    if (p->pos < p->len && s[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->len)
        return jp_fail(p, "bad number");
    if (s[p->pos] == '0') {
        p->pos++;
    } else if (s[p->pos] >= '1' && s[p->pos] <= '9') {
        digits(p);
    } else {
        return jp_fail(p, "bad number");
    }
    if (p->pos < p->len && s[p->pos] == '.') {
        p->pos++;
        if (!digits(p))
            return jp_fail(p, "bad number");
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        if (!digits(p))
            return jp_fail(p, "bad number");
    }
    char *t = arena_strndup(p->a, s + start, p->pos - start);
    if (!t)
        return KILN_ENOMEM;
    v->type = JSON_NUM;
    v->str = t;
    v->len = p->pos - start;
    v->num = strtod(t, NULL);
    return 0;
}

static int parse_value(jp *p, json_val *v);
static int parse_value_at(jp *p, json_val *v);

static int literal(jp *p, const char *word, json_val *v, int type, int b) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return jp_fail(p, "unexpected character");
    p->pos += n;
    v->type = type;
    v->b = b;
    return 0;
}

/* An array or object: the members are gathered in a malloc'd vector and
 * copied into the arena once their number is known. */
static int parse_container(jp *p, json_val *v, int obj) {
    if (++p->depth > JSON_MAX_DEPTH)
        return jp_fail(p, "nesting too deep");
    p->pos++;
    json_val *items = NULL;
    const char **keys = NULL;
    size_t n = 0, capi = 0, capk = 0;
    int rc = 0;
    char close = obj ? '}' : ']';
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            skip_ws(p);
            if (array_grow((void **)&items, &capi, n + 1, sizeof *items) != 0 ||
                (obj && array_grow((void **)&keys, &capk, n + 1, sizeof *keys) != 0)) {
                rc = KILN_ENOMEM;
                break;
            }
            memset(&items[n], 0, sizeof items[n]);
            if (obj) {
                size_t kl;
                if (p->pos >= p->len || p->s[p->pos] != '"') {
                    rc = jp_fail(p, "expected a member name");
                    break;
                }
                if ((rc = parse_string(p, &keys[n], &kl)) != 0)
                    break;
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':') {
                    rc = jp_fail(p, "expected ':'");
                    break;
                }
                p->pos++;
                skip_ws(p);
            }
            if ((rc = parse_value(p, &items[n])) != 0)
                break;
            n++;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (p->pos < p->len && p->s[p->pos] == close) {
                p->pos++;
                break;
            }
            rc = jp_fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
            break;
        }
    }
    if (rc == 0) {
        v->type = obj ? JSON_OBJ : JSON_ARR;
        v->n = n;
        if (n) {
            v->kids = arena_alloc_nz(p->a, n * sizeof *items);
            v->keys = obj ? arena_alloc_nz(p->a, n * sizeof *keys) : NULL;
            if (!v->kids || (obj && !v->keys))
                rc = KILN_ENOMEM;
            else {
                memcpy(v->kids, items, n * sizeof *items);
                if (obj)
                    memcpy(v->keys, keys, n * sizeof *keys);
            }
        }
    }
    free(items);
    free(keys);
    p->depth--;
    return rc;
}

static int parse_value_at(jp *p, json_val *v) {
    if (p->pos >= p->len)
        return jp_fail(p, "unexpected end of input");
    char c = p->s[p->pos];
    switch (c) {
    case '{':
        return parse_container(p, v, 1);
    case '[':
        return parse_container(p, v, 0);
    case '"':
        v->type = JSON_STR;
        return parse_string(p, &v->str, &v->len);
    case 't':
        return literal(p, "true", v, JSON_BOOL, 1);
    case 'f':
        return literal(p, "false", v, JSON_BOOL, 0);
    case 'n':
        return literal(p, "null", v, JSON_NULL, 0);
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(p, v);
        return jp_fail(p, "unexpected character");
    }
}

static int parse_value(jp *p, json_val *v) {
    skip_ws(p);
    v->off = p->pos;
    int rc = parse_value_at(p, v);
    v->end = p->pos;
    return rc;
}

int json_parse(const char *s, size_t len, arena *a, json_val **out, kiln_err *err) {
    *out = NULL;
    jp p = {.s = s, .len = len, .a = a, .err = err};
    json_val *v = arena_alloc(a, sizeof *v);
    if (!v)
        return kiln_err_set(err, KILN_ENOMEM, "json: out of memory");
    int rc = parse_value(&p, v);
    if (rc == KILN_ENOMEM)
        return kiln_err_set(err, KILN_ENOMEM, "json: out of memory");
    if (rc != 0)
        return rc;
    skip_ws(&p);
    if (p.pos != len)
        return jp_fail(&p, "trailing data after the value");
    *out = v;
    return 0;
}

const json_val *json_get(const json_val *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJ)
        return NULL;
    for (size_t i = obj->n; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->kids[i];
    return NULL;
}

const char *json_get_str(const json_val *obj, const char *key) {
    const json_val *v = json_get(obj, key);
    return v && v->type == JSON_STR ? v->str : NULL;
}
