/*
 * template.c - Go text/template as Prometheus' alert templates use it: the
 * lexer, the parser and the executor (the functions are in tmplfuncs.c).
 *
 * The text is parsed into a tree that lives in the template's arena:
 *   node   - text, an action {{pipeline}}, if/range/with with their lists,
 *            break, continue;
 *   pipe   - optional variable declaration ($x := / $x, $y := / $x =) and
 *            commands joined by '|';
 *   cmd    - operands; the first is what runs (a function, a field, a
 *            constant...), the rest are its arguments;
 *   arg    - one operand.
 * Variables are resolved to slots at parse time: each declaration gets its
 * own slot, and the scoping rules of Go (a variable declared in a control
 * structure ends with it) decide which slot a use names.  Slots 0-4 are $,
 * $labels, $externalLabels, $externalURL and $value, which Prometheus defines
 * before the text.
 *
 * Expansion keeps its values (tv) in a per-call arena; a runtime error
 * records Go's message and the node it happened at, unwinds, and the output
 * is replaced by Prometheus' "<error expanding template: ...>" text, the
 * position counted as if Prometheus' definitions (TMPL_DEFS_LEN bytes) preceded
 * the text on line 1.
 *
 * Called by the rule manager (parse at load, expand at evaluation) and, through
 * tmpl_check, by rule-file checks.  Threads:
 * a parsed template is read-only; an expansion's state is its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/tmplint.h"

/* ---- lexer ---------------------------------------------------------------------------------- */

enum {
    T_EOF,
    T_RDELIM,
    T_IDENT,
    T_FIELD,
    T_DOT,
    T_VAR,
    T_STR,
    T_RAW,
    T_CHAR,
    T_NUM,
    T_LP,
    T_RP,
    T_PIPE,
    T_DECL,
    T_ASSIGN,
    T_COMMA,
    T_SPACE,
    T_OTHER,
    T_ERR
};

typedef struct tok {
    int t;
    int pos; /* byte offset in the text */
    int len;
} tok;

typedef struct var_decl {
    const char *name;
    int len;
    int slot;
} var_decl;

typedef struct ps {
    const char *s;
    int n, i;
    tmpl *t;
    kiln_err *err;
    int failed;
    var_decl *vars;
    size_t nvars, capvars;
    int range_depth;
    int depth;
    int trim;  /* the last "}}" was " -}}": trim the next text's leading space */
    int kwpos; /* where the {{else}} or {{end}} that ended a list is */
} ps;

static int is_alnum(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c >= 0x80;
}

static int is_space(int c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Records the first error, at byte offset pos, as "line:col: message". */
static void __attribute__((format(printf, 3, 4))) perr(ps *p, int pos, const char *fmt, ...) {
    if (p->failed)
        return;
    p->failed = KILN_EINVAL;
    int line = 1, col = 1;
    for (int k = 0; k < pos && k < p->n; k++) {
        if (p->s[k] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[KILN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kiln_err_set(p->err, KILN_EINVAL, "%d:%d: %s", line, col, msg);
}

static void poom(ps *p) {
    if (!p->failed) {
        p->failed = KILN_ENOMEM;
        kiln_err_set(p->err, KILN_ENOMEM, "out of memory");
    }
}

static void *palloc(ps *p, size_t n) {
    void *v = arena_alloc(&p->t->mem, n);
    if (!v)
        poom(p);
    return v;
}

/* Whether the text at i is a right delimiter, " -}}" or "}}"; sets *len. */
static int at_rdelim(const ps *p, int i, int *len) {
    if (i + 3 < p->n && is_space((unsigned char)p->s[i]) && p->s[i + 1] == '-' && p->s[i + 2] == '}' &&
        p->s[i + 3] == '}') {
        *len = 4;
        return 1;
    }
    if (i + 1 < p->n && p->s[i] == '}' && p->s[i + 1] == '}') {
        *len = 2;
        return 1;
    }
    return 0;
}

static tok lex(ps *p) {
    tok k = {T_EOF, p->i, 0};
    const char *s = p->s;
    int i = p->i, n = p->n, dl;
    if (i >= n) {
        k.t = T_EOF;
        return k;
    }
    if (at_rdelim(p, i, &dl)) {
        k.t = T_RDELIM;
        k.len = dl;
        p->i = i + dl;
        p->trim = dl == 4;
        return k;
    }
    int c = (unsigned char)s[i], j = i + 1;
    if (is_space(c)) {
        while (j < n && is_space((unsigned char)s[j]) && !at_rdelim(p, j, &dl))
            j++;
        k.t = T_SPACE;
    } else if (c == '.' && j < n && is_alnum((unsigned char)s[j]) && !(s[j] >= '0' && s[j] <= '9')) {
        while (j < n && is_alnum((unsigned char)s[j]))
            j++;
        k.t = T_FIELD;
    } else if (c == '.' && !(j < n && s[j] >= '0' && s[j] <= '9')) {
        k.t = T_DOT;
    } else if (c == '$') {
        while (j < n && is_alnum((unsigned char)s[j]))
            j++;
        k.t = T_VAR;
    } else if (c == '"' || c == '`' || c == '\'') {
        while (j < n && s[j] != c) {
            if (c != '`' && s[j] == '\\' && j + 1 < n)
                j++;
            else if (c != '`' && s[j] == '\n')
                break;
            j++;
        }
        if (j >= n || s[j] != c) {
            perr(p, i,
                 c == '`'   ? "unterminated raw quoted string"
                 : c == '"' ? "unterminated quoted string"
                            : "unterminated character constant");
            k.t = T_ERR;
            return k;
        }
        j++;
        k.t = c == '"' ? T_STR : c == '`' ? T_RAW : T_CHAR;
    } else if ((c >= '0' && c <= '9') || c == '.' ||
               ((c == '-' || c == '+') && j < n && s[j] >= '0' && s[j] <= '9')) {
        while (j < n &&
               (is_alnum((unsigned char)s[j]) || s[j] == '.' ||
                ((s[j] == '-' || s[j] == '+') && (s[j - 1] == 'e' || s[j - 1] == 'E' || s[j - 1] == 'p'))))
            j++;
        k.t = T_NUM;
    } else if (is_alnum(c)) {
        while (j < n && is_alnum((unsigned char)s[j]))
            j++;
        k.t = T_IDENT;
    } else if (c == '(') {
        k.t = T_LP;
    } else if (c == ')') {
        k.t = T_RP;
    } else if (c == '|') {
        k.t = T_PIPE;
    } else if (c == ',') {
        k.t = T_COMMA;
    } else if (c == '=') {
        k.t = T_ASSIGN;
    } else if (c == ':' && j < n && s[j] == '=') {
        j++;
        k.t = T_DECL;
    } else if (c > 0x20 && c < 0x7f) {
        k.t = T_OTHER; /* a printable character the parser will find unexpected */
    } else {
        perr(p, i, "bad character U+%04X", c);
        k.t = T_ERR;
        return k;
    }
    k.len = j - i;
    p->i = j;
    return k;
}

static tok lex_ns(ps *p) {
    tok k = lex(p);
    while (k.t == T_SPACE)
        k = lex(p);
    return k;
}

static tok peek_ns(ps *p) {
    int save = p->i;
    tok k = lex_ns(p);
    p->i = save;
    return k;
}

/* ---- literals ------------------------------------------------------------------------------- */

void tmpl_put_utf8(char **o, unsigned r) {
    unsigned char *u = (unsigned char *)*o;
    if (r < 0x80) {
        *u++ = (unsigned char)r;
    } else if (r < 0x800) {
        *u++ = (unsigned char)(0xc0 | r >> 6);
        *u++ = (unsigned char)(0x80 | (r & 0x3f));
    } else if (r < 0x10000) {
        *u++ = (unsigned char)(0xe0 | r >> 12);
        *u++ = (unsigned char)(0x80 | ((r >> 6) & 0x3f));
        *u++ = (unsigned char)(0x80 | (r & 0x3f));
    } else {
        *u++ = (unsigned char)(0xf0 | r >> 18);
        *u++ = (unsigned char)(0x80 | ((r >> 12) & 0x3f));
        *u++ = (unsigned char)(0x80 | ((r >> 6) & 0x3f));
        *u++ = (unsigned char)(0x80 | (r & 0x3f));
    }
    *o = (char *)u;
}

/* Go's strconv.Unquote of a "..." or '...' body s[0..n); -1 on bad syntax. */
static int unquote(const char *s, int n, char *o, int *outlen) {
    char *start = o;
    for (int i = 0; i < n; i++) {
        if (s[i] != '\\') {
            *o++ = s[i];
            continue;
        }
        if (++i >= n)
            return -1;
        static const char letters[] = "abfnrtv\\\"'", chars[] = "\a\b\f\n\r\t\v\\\"'", wide[] = "xuU";
        const char *l = s[i] ? strchr(letters, s[i]) : NULL, *w = s[i] ? strchr(wide, s[i]) : NULL;
        if (l) {
            *o++ = chars[l - letters];
            continue;
        }
        /* \xHH, \uHHHH, \UHHHHHHHH, or three octal digits */
        int digits = w ? 2 << (w - wide) : 3, base = w ? 16 : 8;
        unsigned v = 0;
        if (!w) {
            if (s[i] < '0' || s[i] > '7')
                return -1;
            i--;
        }
        for (int d = 0; d < digits; d++) {
            if (++i >= n)
                return -1;
            int c = s[i], x = c >= '0' && c <= '9'   ? c - '0'
                              : c >= 'a' && c <= 'f' ? c - 'a' + 10
                              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                     : 99;
            if (x >= base)
                return -1;
            v = v * (unsigned)base + (unsigned)x;
        }
        if (digits == 2 || base == 8) {
            if (v > 255)
                return -1;
            *o++ = (char)v;
        } else {
            if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000))
                return -1;
            tmpl_put_utf8(&o, v);
        }
    }
    *outlen = (int)(o - start);
    return 0;
}

/* Decodes one UTF-8 rune at s (n bytes left); returns its length (1 for a
 * bad byte, with *r = 0xFFFD). */
int tmpl_utf8_decode(const char *s, size_t n, unsigned *r) {
    const unsigned char *u = (const unsigned char *)s;
    int len = u[0] < 0x80 ? 1 : u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : u[0] >= 0xc0 ? 2 : 0;
    if (len == 1) {
        *r = u[0];
        return 1;
    }
    if (len == 0 || (size_t)len > n || !utf8_valid(s, (size_t)len)) {
        *r = 0xfffd;
        return 1;
    }
    unsigned v = u[0] & (0x7f >> len);
    for (int k = 1; k < len; k++)
        v = v << 6 | (u[k] & 0x3f);
    *r = v;
    return len;
}

/* A number literal as Go's idealConstant makes it: int unless the text has
 * '.', 'e', 'E' or 'p' (and is not hex), then float64. */
static int number(ps *p, tok k, tv *v) {
    char tmp[64];
    if (k.len >= (int)sizeof tmp)
        goto bad;
    int tl = 0;
    for (int j = 0; j < k.len; j++) /* Go allows '_' between digits */
        if (p->s[k.pos + j] != '_' || j == 0 || j + 1 == k.len)
            tmp[tl++] = p->s[k.pos + j];
    tmp[tl] = 0;
    if (strchr(tmp, '_') || strchr(tmp, 'i'))
        goto bad;
    const char *digits = tmp + (tmp[0] == '-' || tmp[0] == '+');
    int hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
    char *end;
    if (hex || !strpbrk(tmp, ".eEpP")) {
        errno = 0;
        long long x = strtoll(tmp, &end, 0);
        if (*end || errno)
            goto bad;
        v->k = TV_INT;
        v->i = x;
        return 0;
    }
    v->k = TV_FLOAT;
    v->f = strtod(tmp, &end);
    if (*end || end == tmp)
        goto bad;
    return 0;
bad:
    perr(p, k.pos, "bad number syntax: \"%.*s\"", k.len, p->s + k.pos);
    return -1;
}

/* ---- parser --------------------------------------------------------------------------------- */

static pipe *parse_pipe(ps *p, const char *ctx, int in_parens, int ndecl);
static node *parse_list(ps *p, int *end_kw);

static int var_find(ps *p, const char *name, int len) {
    for (size_t k = p->nvars; k-- > 0;)
        if (p->vars[k].len == len && memcmp(p->vars[k].name, name, (size_t)len) == 0)
            return p->vars[k].slot;
    return -1;
}

static int var_push(ps *p, const char *name, int len) {
    if (array_grow((void **)&p->vars, &p->capvars, p->nvars + 1, sizeof *p->vars) < 0) {
        poom(p);
        return -1;
    }
    p->vars[p->nvars].name = name;
    p->vars[p->nvars].len = len;
    p->vars[p->nvars].slot = p->t->nslots++;
    return p->vars[p->nvars++].slot;
}

/* Parses ".a.b.c" field tokens that follow at once (no space). */
static int parse_fields(ps *p, arg *a) {
    int save = p->i, nth = 0;
    tok k = lex(p);
    while (k.t == T_FIELD) {
        /* Go places a chain ($x.a, .a.b, (pipe).a) at its first added field */
        if (nth++ == (a->t == A_FIELD))
            a->pos = k.pos;
        const char **f = palloc(p, sizeof *f * (size_t)(a->nfields + 1));
        if (!f)
            return -1;
        if (a->nfields)
            memcpy(f, a->fields, sizeof *f * (size_t)a->nfields);
        char *name = arena_strndup(&p->t->mem, p->s + k.pos + 1, (size_t)k.len - 1);
        if (!name) {
            poom(p);
            return -1;
        }
        f[a->nfields++] = name;
        a->fields = f;
        a->end = k.pos + k.len;
        save = p->i;
        k = lex(p);
    }
    p->i = save;
    return 0;
}

static const char *const keywords[] = {"if",       "else",  "end",      "range", "with", "define", "block",
                                       "template", "break", "continue", "nil",   "true", "false",  NULL};

static int keyword(const ps *p, tok k) {
    for (int w = 0; keywords[w]; w++)
        if ((int)strlen(keywords[w]) == k.len && memcmp(keywords[w], p->s + k.pos, (size_t)k.len) == 0)
            return w;
    return -1;
}

static int operand_start(tok k) {
    return k.t == T_IDENT || k.t == T_FIELD || k.t == T_DOT || k.t == T_VAR || k.t == T_STR || k.t == T_RAW ||
           k.t == T_CHAR || k.t == T_NUM || k.t == T_LP;
}

/* Go's "unexpected <token> in <context>", the token as its item prints. */
static void unexpected(ps *p, tok k, const char *ctx) {
    if (p->failed)
        return;
    if (k.t == T_EOF) {
        perr(p, k.pos, "unclosed action");
        return;
    }
    if (k.t == T_RDELIM && ctx[0] == 'p') {
        perr(p, k.pos, "unclosed left paren");
        return;
    }
    int kw = k.t == T_IDENT ? keyword(p, k) : -1;
    if (kw >= 0 && kw <= 9) {
        perr(p, k.pos, "unexpected <%s> in %s", keywords[kw], ctx);
        return;
    }
    const char *t = k.t == T_RDELIM ? "}}" : p->s + k.pos;
    int n = k.t == T_RDELIM ? 2 : k.len, cut = n > 10;
    char q[64], *o = q;
    for (int j = 0; j < n && j < 10; j++) {
        if (t[j] == '"' || t[j] == '\\')
            *o++ = '\\';
        *o++ = t[j];
    }
    *o = 0;
    perr(p, k.pos, "unexpected \"%s\"%s in %s", q, cut ? "..." : "", ctx);
}

static arg *parse_operand(ps *p, tok k) {
    arg *a = palloc(p, sizeof *a);
    if (!a)
        return NULL;
    a->pos = a->src = k.pos;
    a->end = k.pos + k.len;
    int kw = k.t == T_IDENT ? keyword(p, k) : -1;
    switch (k.t) {
    case T_IDENT:
        if (kw == 10) {
            a->t = A_NIL;
        } else if (kw == 11 || kw == 12) {
            a->t = A_CONST;
            a->c.k = TV_BOOL;
            a->c.i = kw == 11;
        } else {
            a->t = A_FUNC;
            a->fn = tmpl_func_lookup(p->s + k.pos, (size_t)k.len);
            if (a->fn < 0) {
                perr(p, k.pos, "function \"%.*s\" not defined", k.len, p->s + k.pos);
                return NULL;
            }
        }
        return a;
    case T_DOT:
        a->t = A_DOT;
        return a;
    case T_FIELD:
        a->t = A_FIELD;
        p->i = k.pos;
        return parse_fields(p, a) < 0 ? NULL : a;
    case T_VAR:
        a->t = A_VAR;
        a->var = var_find(p, p->s + k.pos, k.len);
        if (a->var < 0) {
            perr(p, k.pos, "undefined variable \"%.*s\"", k.len, p->s + k.pos);
            return NULL;
        }
        return parse_fields(p, a) < 0 ? NULL : a;
    case T_STR:
    case T_CHAR: {
        char *o = palloc(p, (size_t)k.len + 1);
        int len;
        if (!o)
            return NULL;
        if (unquote(p->s + k.pos + 1, k.len - 2, o, &len) < 0) {
            perr(p, k.pos, "invalid syntax");
            return NULL;
        }
        a->t = A_CONST;
        if (k.t == T_STR) {
            a->c.k = TV_STR;
            a->c.s = o;
            a->c.n = (size_t)len;
        } else {
            unsigned r;
            if (len == 0 || tmpl_utf8_decode(o, (size_t)len, &r) != len) {
                perr(p, k.pos, "malformed character constant: %.*s", k.len, p->s + k.pos);
                return NULL;
            }
            a->c.k = TV_INT;
            a->c.i = r;
        }
        return a;
    }
    case T_RAW:
        a->t = A_CONST;
        a->c.k = TV_STR;
        a->c.s = p->s + k.pos + 1;
        a->c.n = (size_t)k.len - 2;
        return a;
    case T_NUM:
        a->t = A_CONST;
        return number(p, k, &a->c) < 0 ? NULL : a;
    case T_LP:
        a->t = A_PIPE;
        if (++p->depth > TMPL_MAX_DEPTH) {
            perr(p, k.pos, "max expression depth exceeded");
            return NULL;
        }
        a->p = parse_pipe(p, "parenthesized pipeline", 1, 0);
        p->depth--;
        if (!a->p)
            return NULL;
        a->end = p->i;
        return parse_fields(p, a) < 0 ? NULL : a;
    case T_RDELIM:
    case T_EOF:
        perr(p, k.pos, k.t == T_EOF ? "unclosed action" : "unexpected \"}}\" in operand");
        return NULL;
    case T_ERR:
        return NULL;
    default:
        perr(p, k.pos, "unexpected \"%.*s\" in operand", k.len, p->s + k.pos);
        return NULL;
    }
}

/* Go rejects a constant, dot or nil as a later stage of a pipeline. */
static int executable(const arg *a) {
    return a->t != A_CONST && a->t != A_DOT && a->t != A_NIL;
}

/* Parses commands up to "}}" (or ")" in parentheses); ndecl is the number of
 * variables the context may declare (2 for range, 1 otherwise, 0 in parens). */
static pipe *parse_pipe(ps *p, const char *ctx, int in_parens, int ndecl) {
    pipe *pp = palloc(p, sizeof *pp);
    if (!pp)
        return NULL;
    tok k = peek_ns(p);
    pp->pos = k.pos;
    /* a declaration: $x := / $x = / $k, $v := */
    if (k.t == T_VAR) {
        int save = p->i;
        tok v1 = lex_ns(p), op = lex_ns(p), v2 = {0, 0, 0};
        if (op.t == T_COMMA && ndecl == 2) {
            v2 = lex_ns(p);
            op = lex_ns(p);
            if (v2.t != T_VAR || op.t != T_DECL) {
                perr(p, v2.pos, "too many declarations in %s", ctx);
                return NULL;
            }
        }
        if (op.t == T_DECL || op.t == T_ASSIGN) {
            pp->decl = op.t == T_DECL ? 1 : 2;
            pp->nvars = v2.t == T_VAR ? 2 : 1;
            tok vs[2] = {v1, v2};
            for (int j = 0; j < pp->nvars; j++) {
                pp->vname[j] = p->s + vs[j].pos;
                pp->vlen[j] = vs[j].len;
                pp->vars[j] = pp->decl == 1 ? var_push(p, p->s + vs[j].pos, vs[j].len)
                                            : var_find(p, p->s + vs[j].pos, vs[j].len);
                if (p->failed)
                    return NULL;
            }
        } else {
            p->i = save;
        }
    }
    cmd **tail = &pp->cmds;
    for (;;) { /* a command, or the end */
        k = lex_ns(p);
        if ((k.t == T_RDELIM && !in_parens) || (k.t == T_RP && in_parens)) {
            if (pp->ncmds == 0) {
                perr(p, k.pos, "missing value for %s", ctx);
                return NULL;
            }
            pp->end = k.pos;
            return pp;
        }
        if (!operand_start(k)) {
            unexpected(p, k, in_parens ? "parenthesized pipeline" : "command");
            return NULL;
        }
        cmd *c = palloc(p, sizeof *c);
        if (!c)
            return NULL;
        arg **at = &c->args;
        c->pos = k.pos;
        for (;;) {
            arg *a = parse_operand(p, k);
            if (!a)
                return NULL;
            *at = a;
            at = &a->next;
            c->nargs++;
            k = lex(p);
            if (k.t == T_SPACE) {
                int save = p->i;
                k = lex_ns(p);
                if (operand_start(k))
                    continue;
                if (k.t != T_PIPE && k.t != T_RDELIM && k.t != T_RP && k.t != T_EOF) {
                    unexpected(p, k, "operand");
                    return NULL;
                }
                p->i = save;
            } else if (k.t != T_PIPE && k.t != T_RDELIM && k.t != T_RP && k.t != T_EOF) {
                unexpected(p, k, "operand");
                return NULL;
            } else {
                p->i = k.pos;
            }
            break;
        }
        if (pp->ncmds > 0 && !executable(c->args)) {
            perr(p, c->pos, "non executable command in pipeline stage %d", pp->ncmds + 1);
            return NULL;
        }
        *tail = c;
        tail = &c->next;
        pp->ncmds++;
        int save = p->i;
        if (lex_ns(p).t != T_PIPE)
            p->i = save;
    }
}

/* Parses a control structure after its keyword: if, range or with. */
static node *parse_control(ps *p, int type, int kwpos) {
    static const char *const names[] = {[N_IF] = "if", [N_RANGE] = "range", [N_WITH] = "with"};
    node *nd = palloc(p, sizeof *nd);
    if (!nd)
        return NULL;
    size_t nvars = p->nvars;
    nd->type = type;
    nd->pos = kwpos;
    if (++p->depth > TMPL_MAX_DEPTH) {
        perr(p, kwpos, "max nesting depth exceeded");
        return NULL;
    }
    nd->pipe = parse_pipe(p, names[type], 0, type == N_RANGE ? 2 : 1);
    if (!nd->pipe)
        return NULL;
    int end_kw;
    if (type == N_RANGE)
        p->range_depth++;
    nd->list = parse_list(p, &end_kw);
    if (type == N_RANGE)
        p->range_depth--;
    if (p->failed)
        return NULL;
    if (end_kw < 0) {
        perr(p, p->n, "unexpected EOF");
        return NULL;
    }
    if (end_kw == 1) { /* else */
        tok k = peek_ns(p);
        if (k.t == T_IDENT && keyword(p, k) == 0 && type == N_IF) {
            /* {{else if ...}}: an if in the else list, sharing our {{end}} */
            (void)lex_ns(p);
            nd->elselist = parse_control(p, N_IF, k.pos);
            end_kw = 2;
        } else {
            if (lex_ns(p).t != T_RDELIM) {
                perr(p, k.pos, "unexpected \"%.*s\" in else", k.len, p->s + k.pos);
                return NULL;
            }
            nd->elselist = parse_list(p, &end_kw);
            if (p->failed)
                return NULL;
            if (end_kw != 2) {
                perr(p, end_kw < 0 ? p->n : p->kwpos,
                     end_kw < 0 ? "unexpected EOF" : "expected end; found {{else}}");
                return NULL;
            }
        }
        if (p->failed)
            return NULL;
    }
    p->nvars = nvars;
    p->depth--;
    return nd;
}

/* Text up to the next "{{", its right edge trimmed when the action opens with "{{- ". */
static node *text_node(ps *p, int from, int to) {
    if (from >= to)
        return NULL;
    node *nd = palloc(p, sizeof *nd);
    if (!nd)
        return NULL;
    nd->type = N_TEXT;
    nd->pos = from;
    nd->text = p->s + from;
    nd->len = (size_t)(to - from);
    return nd;
}

/*
 * Parses items until EOF (*end_kw = -1), {{else}} (1, the "else" consumed,
 * what follows it not) or {{end}} (2, consumed).  Returns the list.
 */
static node *parse_list(ps *p, int *end_kw) {
    node *head = NULL, **tail = &head;
    *end_kw = -1;
    while (!p->failed) {
        int start = p->i;
        if (p->trim)
            while (start < p->n && is_space((unsigned char)p->s[start]))
                start++;
        p->trim = 0;
        const char *o = p->n > start ? strstr(p->s + start, "{{") : NULL;
        int at = o ? (int)(o - p->s) : p->n, text_end = at;
        int trim_left = o && at + 3 < p->n && p->s[at + 2] == '-' && is_space((unsigned char)p->s[at + 3]);
        if (trim_left)
            while (text_end > start && is_space((unsigned char)p->s[text_end - 1]))
                text_end--;
        node *nd = text_node(p, start, text_end);
        if (nd) {
            *tail = nd;
            tail = &nd->next;
        }
        if (!o) {
            p->i = p->n;
            return head;
        }
        p->i = at + 2 + (trim_left ? 2 : 0);
        if (p->i + 1 < p->n && p->s[p->i] == '/' && p->s[p->i + 1] == '*') { /* a comment */
            const char *ce = strstr(p->s + p->i + 2, "*/");
            int dl;
            if (!ce) {
                perr(p, at, "unclosed comment");
                return NULL;
            }
            p->i = (int)(ce - p->s) + 2;
            if (!at_rdelim(p, p->i, &dl)) {
                perr(p, at, "comment ends before closing delimiter");
                return NULL;
            }
            p->trim = dl == 4;
            p->i += dl;
            continue;
        }
        tok k = peek_ns(p);
        int kw = k.t == T_IDENT ? keyword(p, k) : -1;
        nd = NULL;
        if (kw == 0 || kw == 3 || kw == 4) { /* if, range, with */
            (void)lex_ns(p);
            nd = parse_control(p, kw == 0 ? N_IF : kw == 3 ? N_RANGE : N_WITH, at);
        } else if (kw == 1 || kw == 2) { /* else, end */
            (void)lex_ns(p);
            p->kwpos = k.pos;
            *end_kw = kw;
            if (kw == 2) {
                tok r = lex_ns(p);
                if (r.t != T_RDELIM)
                    perr(p, r.pos, "unexpected \"%.*s\" in end", r.len, p->s + r.pos);
            }
            return head;
        } else if (kw == 8 || kw == 9) { /* break, continue */
            (void)lex_ns(p);
            tok r = lex_ns(p);
            if (p->range_depth == 0) {
                perr(p, k.pos, "{{%s}} outside {{range}}", keywords[kw]);
                return NULL;
            }
            if (r.t != T_RDELIM) {
                perr(p, r.pos, "unexpected \"%.*s\" in %s", r.len, p->s + r.pos, keywords[kw]);
                return NULL;
            }
            nd = palloc(p, sizeof *nd);
            if (nd) {
                nd->type = kw == 8 ? N_BREAK : N_CONTINUE;
                nd->pos = at;
            }
        } else if (kw == 5 || kw == 6 || kw == 7) {
            perr(p, k.pos, "{{%s}} is not supported in alert templates", keywords[kw]);
            return NULL;
        } else {
            nd = palloc(p, sizeof *nd);
            if (nd) {
                nd->type = N_ACTION;
                nd->pos = at;
                nd->pipe = parse_pipe(p, "command", 0, 1);
            }
        }
        if (!nd || p->failed)
            return NULL;
        *tail = nd;
        tail = &nd->next;
    }
    return NULL;
}

int tmpl_parse(const char *text, const char *name, tmpl **out, kiln_err *err) {
    *out = NULL;
    tmpl *t = calloc(1, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    arena_init(&t->mem, 0);
    size_t tl = strlen(text);
    ps p = {.n = (int)tl, .t = t, .err = err};
    if (tl > TMPL_MAX_TEXT) {
        tmpl_free(t);
        return kiln_err_set(err, KILN_EINVAL, "template longer than %d bytes", TMPL_MAX_TEXT);
    }
    t->text = arena_strndup(&t->mem, text, tl);
    t->name = arena_strndup(&t->mem, name, strlen(name));
    if (!t->text || !t->name) {
        tmpl_free(t);
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    }
    p.s = t->text;
    static const char *const pre[] = {"$", "$labels", "$externalLabels", "$externalURL", "$value"};
    for (int k = 0; k < 5; k++)
        (void)var_push(&p, pre[k], (int)strlen(pre[k]));
    int end_kw;
    t->root = parse_list(&p, &end_kw);
    if (!p.failed && end_kw == 1)
        perr(&p, p.kwpos, "unexpected {{else}}");
    else if (!p.failed && end_kw == 2)
        perr(&p, p.kwpos, "unexpected {{end}}");
    free(p.vars);
    if (p.failed) {
        tmpl_free(t);
        return p.failed;
    }
    *out = t;
    return 0;
}

int tmpl_check(const char *name, const char *text, kiln_err *err) {
    tmpl *t = NULL;
    kiln_err e = {0};
    int rc = tmpl_parse(text, name, &t, &e);
    tmpl_free(t);
    if (rc == KILN_EINVAL) {
        int line = atoi(e.msg);
        const char *msg = strchr(e.msg, ' ');
        return kiln_err_set(err, rc, "template: %s:%d: %s", name, line, msg ? msg + 1 : e.msg);
    }
    if (rc < 0)
        return kiln_err_set(err, rc, "%s", e.msg);
    return 0;
}

void tmpl_free(tmpl *t) {
    if (!t)
        return;
    arena_free(&t->mem);
    free(t);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void str_pipe(buf *b, const tmpl *t, const pipe *pp);

/* An operand as Go's String() prints it: the source text, except that a
 * parenthesized pipeline is printed again. */
static void str_arg(buf *b, const tmpl *t, const arg *a) {
    if (a->t == A_FUNC) {
        buf_puts(b, tmpl_funcs[a->fn].name);
    } else if (a->t != A_PIPE) {
        buf_append(b, t->text + a->src, (size_t)(a->end - a->src));
    } else {
        buf_putc(b, '(');
        str_pipe(b, t, a->p);
        buf_putc(b, ')');
        for (int k = 0; k < a->nfields; k++)
            buf_printf(b, ".%s", a->fields[k]);
    }
}

static void str_cmd(buf *b, const tmpl *t, const cmd *c) {
    for (const arg *a = c->args; a; a = a->next) {
        str_arg(b, t, a);
        if (a->next)
            buf_putc(b, ' ');
    }
}

static void str_pipe(buf *b, const tmpl *t, const pipe *pp) {
    for (int k = 0; k < pp->nvars; k++)
        buf_printf(b, "%.*s%s", pp->vlen[k], pp->vname[k],
                   k + 1 < pp->nvars ? ", "
                   : pp->decl == 1   ? " := "
                                     : " = ");
    for (const cmd *c = pp->cmds; c; c = c->next) {
        str_cmd(b, t, c);
        if (c->next)
            buf_puts(b, " | ");
    }
}

void tmpl_fail(tmpl_ex *e, const char *fmt, ...) {
    const tmpl *t = e->t;
    buf ctx = BUF_INIT;
    int pos = 0;
    if (e->at_kind == AT_ARG) {
        pos = ((const arg *)e->at_ptr)->pos;
        str_arg(&ctx, t, e->at_ptr);
    } else if (e->at_kind == AT_CMD) {
        pos = ((const cmd *)e->at_ptr)->pos;
        str_cmd(&ctx, t, e->at_ptr);
    } else if (e->at_kind == AT_PIPE) {
        pos = ((const pipe *)e->at_ptr)->pos;
        str_pipe(&ctx, t, e->at_ptr);
    }
    int line = 1, last_nl = -1;
    for (int k = 0; k < pos; k++)
        if (t->text[k] == '\n') {
            line++;
            last_nl = k;
        }
    int col = last_nl < 0 ? pos + TMPL_DEFS_LEN : pos - last_nl - 1;
    buf_printf(&e->msg, "error executing template %s: template: %s:%d:%d: executing \"%s\" at <", t->name,
               t->name, line, col, t->name);
    buf_append(&e->msg, ctx.data, ctx.len);
    buf_puts(&e->msg, ">: ");
    buf_free(&ctx);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&e->msg, fmt, ap);
    va_end(ap);
    e->code = KILN_EINVAL;
    longjmp(e->jb, 1);
}

void tmpl_oom(tmpl_ex *e) {
    e->code = KILN_ENOMEM;
    longjmp(e->jb, 1);
}

void *tmpl_alloc(tmpl_ex *e, size_t n) {
    void *v = arena_alloc_nz(&e->a, n ? n : 1);
    if (!v)
        tmpl_oom(e);
    return v;
}

static int label_cmp(const void *a, const void *b) {
    return strcmp(((const tmpl_label *)a)->name, ((const tmpl_label *)b)->name);
}

const tmpl_label *tmpl_sorted(tmpl_ex *e, const tmpl_label *l, size_t n) {
    size_t k = 1;
    while (k < n && strcmp(l[k - 1].name, l[k].name) < 0)
        k++;
    if (k >= n)
        return l;
    tmpl_label *c = tmpl_alloc(e, n * sizeof *c);
    memcpy(c, l, n * sizeof *c);
    qsort(c, n, sizeof *c, label_cmp);
    return c;
}

/* ---- the executor ------------------------------------------------------------------------- */

static tv labels_tv(tmpl_ex *e, const tmpl_label *l, size_t n) {
    tv v = {.k = TV_LABELS, .p = tmpl_sorted(e, l, n), .pn = n};
    return v;
}

static tv field(tmpl_ex *e, tv recv, const char *name, int has_args) {
    tv v = {0};
    const tmpl_data *d = e->d;
    if (recv.k == TV_DATA || (recv.k == TV_SAMPLE && recv.p)) {
        const tmpl_sample *s = recv.p;
        int data = recv.k == TV_DATA;
        if (strcmp(name, "Labels") == 0)
            v = data ? labels_tv(e, d->labels, d->nlabels) : labels_tv(e, s->labels, s->nlabels);
        else if (strcmp(name, "Value") == 0)
            v = (tv){.k = TV_FLOAT, .f = data ? d->value : s->value};
        else if (data && strcmp(name, "ExternalLabels") == 0)
            v = labels_tv(e, d->ext_labels, d->next_labels);
        else if (data && strcmp(name, "ExternalURL") == 0)
            v = tv_str(d->external_url ? d->external_url : "", d->external_url ? strlen(d->external_url) : 0);
        else
            tmpl_fail(e, "can't evaluate field %s in type %s", name,
                      data ? tmpl_data_type : "*template.sample");
        if (has_args)
            tmpl_fail(e, "%s has arguments but cannot be invoked as function", name);
    } else if (recv.k == TV_SAMPLE) {
        tmpl_fail(e, "nil pointer evaluating *template.sample.%s", name);
    } else if (recv.k == TV_LABELS) {
        const tmpl_label *l = recv.p;
        v = tv_str("", 0);
        for (size_t k = 0; k < recv.pn; k++)
            if (strcmp(l[k].name, name) == 0)
                v = tv_str(l[k].value, strlen(l[k].value));
    } else if (recv.k == TV_ARGS) {
        const tv *a = recv.p;
        char *end;
        if (strncmp(name, "arg", 3) == 0 && name[3] >= '0' && name[3] <= '9') {
            unsigned long k = strtoul(name + 3, &end, 10);
            if (!*end && k < recv.pn && (name[3] != '0' || !name[4]))
                v = a[k];
        }
    } else if (recv.k == TV_NIL) {
        tmpl_fail(e, "nil pointer evaluating interface {}.%s", name);
    } else {
        tmpl_fail(e, "can't evaluate field %s in type %s", name, tmpl_type_name(&recv));
    }
    if (has_args)
        tmpl_fail(e, "%s is not a method but has arguments", name);
    return v;
}

static tv chain(tmpl_ex *e, tv v, const arg *a, int has_args) {
    for (int k = 0; k < a->nfields; k++)
        v = field(e, v, a->fields[k], has_args && k == a->nfields - 1);
    return v;
}

static tv eval_pipe(tmpl_ex *e, tv dot, const pipe *pp);
static tv eval_cmd(tmpl_ex *e, tv dot, const cmd *c, const tv *final);

static void not_a_function(tmpl_ex *e, const cmd *c, const tv *final) {
    if (c->nargs > 1 || final) {
        buf s = BUF_INIT;
        if (c->args->t == A_PIPE) /* Go prints the pipeline without its parentheses */
            str_pipe(&s, e->t, c->args->p);
        else
            str_arg(&s, e->t, c->args);
        if (c->args->t != A_PIPE) {
            e->at_kind = AT_ARG;
            e->at_ptr = c->args;
        }
        buf_putc(&s, 0);
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", s.data ? s.data : "");
        buf_free(&s);
        tmpl_fail(e, "can't give argument to non-function %s", tmp);
    }
}

/* An operand evaluated as an argument of parameter kind pk. */
static tv eval_arg(tmpl_ex *e, tv dot, const arg *a, int pk) {
    static const char *const pk_type[] = {"interface {}", "string", "*template.sample",
                                          "template.queryResult"};
    e->at_kind = AT_ARG;
    e->at_ptr = a;
    tv v = {0};
    switch (a->t) {
    case A_CONST:
        if (pk == PK_STR && a->c.k != TV_STR) {
            char tmp[128];
            snprintf(tmp, sizeof tmp, "%.*s", a->end - a->src, e->t->text + a->src);
            tmpl_fail(e, "expected string; found %s", tmp);
        }
        if (pk == PK_SAMPLE || pk == PK_VEC) {
            char tmp[128];
            snprintf(tmp, sizeof tmp, "%.*s", a->end - a->src, e->t->text + a->src);
            tmpl_fail(e, "can't handle %s for arg of type %s", tmp, pk_type[pk]);
        }
        return a->c;
    case A_NIL:
        if (pk == PK_STR)
            tmpl_fail(e, "cannot assign nil to string");
        v.k = pk == PK_SAMPLE ? TV_SAMPLE : pk == PK_VEC ? TV_VEC : TV_NIL;
        return v;
    case A_DOT:
        v = dot;
        break;
    case A_FIELD:
        v = chain(e, dot, a, 0);
        break;
    case A_VAR:
        v = chain(e, e->slots[a->var], a, 0);
        break;
    case A_PIPE:
        v = chain(e, eval_pipe(e, dot, a->p), a, 0);
        break;
    case A_FUNC: {
        cmd c = {.pos = a->pos, .args = (arg *)a, .nargs = 1};
        e->steps++;
        v = eval_cmd(e, dot, &c, NULL);
        break;
    }
    }
    e->at_kind = AT_ARG;
    e->at_ptr = a;
    if (pk == PK_ANY)
        return v;
    if (v.k == TV_NIL) {
        if (pk == PK_STR)
            tmpl_fail(e, "invalid value; expected string");
        v.k = pk == PK_SAMPLE ? TV_SAMPLE : TV_VEC;
        return v;
    }
    if ((pk == PK_STR && v.k != TV_STR) || (pk == PK_SAMPLE && v.k != TV_SAMPLE) ||
        (pk == PK_VEC && v.k != TV_VEC))
        tmpl_fail(e, "wrong type for value; expected %s; got %s", pk_type[pk], tmpl_type_name(&v));
    return v;
}

static tv eval_cmd(tmpl_ex *e, tv dot, const cmd *c, const tv *final) {
    const arg *first = c->args;
    e->at_kind = AT_ARG;
    e->at_ptr = first;
    int has_args = c->nargs > 1 || final;
    switch (first->t) {
    case A_FIELD:
        return chain(e, dot, first, has_args);
    case A_VAR:
        if (first->nfields == 0)
            not_a_function(e, c, final);
        return chain(e, e->slots[first->var], first, has_args);
    case A_PIPE:
        if (first->nfields == 0) {
            e->at_kind = AT_PIPE; /* Go reports this at the enclosing pipeline */
            e->at_ptr = e->cur_pipe;
            not_a_function(e, c, final);
        }
        return chain(e, eval_pipe(e, dot, first->p), first, has_args);
    case A_NIL:
        tmpl_fail(e, "nil is not a command");
    case A_CONST:
    case A_DOT:
        not_a_function(e, c, final);
        return first->t == A_DOT ? dot : first->c;
    default:
        break;
    }
    const tmpl_func *f = &tmpl_funcs[first->fn];
    int nin = c->nargs - 1 + (final != NULL);
    if (f->max < 0 && nin < f->min)
        tmpl_fail(e, "wrong number of args for %s: want at least %d got %d", f->name, f->min, nin);
    if (f->max >= 0 && nin != f->max)
        tmpl_fail(e, "wrong number of args for %s: want %d got %d", f->name, f->max, nin);
    tv ret = {0};
    if (first->fn == F_AND || first->fn == F_OR) {
        const arg *a = first->next;
        /* a function named as an argument is called without arguments: stop at c->nargs */
        for (int k = 1; k < c->nargs; k++, a = a->next) {
            int ok;
            ret = eval_arg(e, dot, a, PK_ANY);
            if (tmpl_truth(&ret, &ok) == (first->fn == F_OR))
                return ret;
        }
        return final ? *final : ret;
    }
    tv *args = tmpl_alloc(e, sizeof *args * (size_t)(nin + 1));
    int k = 0;
    for (const arg *a = first->next; k < c->nargs - 1; a = a->next, k++)
        args[k] = eval_arg(e, dot, a, k < 3 ? f->params[k] : PK_ANY);
    if (final) {
        int pk = k < 3 ? f->params[k] : PK_ANY;
        args[k] = *final;
        e->at_kind = AT_CMD;
        e->at_ptr = c;
        if (final->k == TV_NIL && pk != PK_ANY && pk != PK_STR)
            args[k].k = pk == PK_SAMPLE ? TV_SAMPLE : TV_VEC;
        else if ((pk == PK_STR && final->k != TV_STR) || (pk == PK_SAMPLE && final->k != TV_SAMPLE) ||
                 (pk == PK_VEC && final->k != TV_VEC))
            tmpl_fail(e, "wrong type for value; expected %s; got %s",
                      pk == PK_STR      ? "string"
                      : pk == PK_SAMPLE ? "*template.sample"
                                        : "template.queryResult",
                      tmpl_type_name(final));
    }
    e->at_kind = AT_CMD;
    e->at_ptr = c;
    tmpl_call(e, first->fn, args, nin, &ret);
    return ret;
}

static tv eval_pipe(tmpl_ex *e, tv dot, const pipe *pp) {
    tv v = {0};
    int have = 0;
    for (const cmd *c = pp->cmds; c; c = c->next) {
        e->at_kind = AT_PIPE;
        e->at_ptr = e->cur_pipe = pp;
        v = eval_cmd(e, dot, c, have ? &v : NULL);
        have = 1;
    }
    for (int k = 0; k < pp->nvars; k++) {
        if (pp->vars[k] < 0)
            tmpl_fail(e, "undefined variable: %.*s", pp->vlen[k], pp->vname[k]);
        e->slots[pp->vars[k]] = v;
    }
    return v;
}

/* Runs a list; returns 1 on {{break}}, 2 on {{continue}}, else 0. */
static int run_list(tmpl_ex *e, const node *nd, tv dot, buf *out) {
    for (; nd; nd = nd->next) {
        if (++e->steps > TMPL_MAX_STEPS || out->len - e->out_start > TMPL_MAX_OUTPUT)
            tmpl_fail(e, "template too expensive to expand");
        if (nd->type == N_TEXT) {
            buf_append(out, nd->text, nd->len);
            continue;
        }
        if (nd->type == N_BREAK || nd->type == N_CONTINUE)
            return nd->type == N_BREAK ? 1 : 2;
        tv v = eval_pipe(e, dot, nd->pipe);
        if (nd->type == N_ACTION) {
            if (nd->pipe->decl == 0)
                tmpl_print(out, &v, 0);
            continue;
        }
        if (out->oom)
            tmpl_oom(e);
        if (nd->type != N_RANGE) {
            int ok;
            const node *l = tmpl_truth(&v, &ok) ? nd->list : nd->elselist;
            int r = run_list(e, l, nd->type == N_WITH && l == nd->list ? v : dot, out);
            if (r)
                return r;
            continue;
        }
        size_t n = v.k == TV_VEC || v.k == TV_LABELS || v.k == TV_ARGS ? v.pn : 0;
        if (v.k != TV_NIL && n == 0 && v.k != TV_VEC && v.k != TV_LABELS && v.k != TV_ARGS) {
            buf s = BUF_INIT;
            tmpl_print(&s, &v, 1);
            buf_putc(&s, 0);
            char tmp[256];
            snprintf(tmp, sizeof tmp, "%s", s.data ? s.data : "");
            buf_free(&s);
            tmpl_fail(e, "range can't iterate over %s", tmp);
        }
        const pipe *pp = nd->pipe;
        for (size_t k = 0; k < n; k++) {
            tv key = {.k = TV_INT, .i = (int64_t)k}, elem;
            if (v.k == TV_VEC) {
                elem = (tv){.k = TV_SAMPLE, .p = (const tmpl_sample *)v.p + k};
            } else if (v.k == TV_LABELS) {
                const tmpl_label *l = (const tmpl_label *)v.p + k;
                key = tv_str(l->name, strlen(l->name));
                elem = tv_str(l->value, strlen(l->value));
            } else {
                char name[32];
                size_t idx = tmpl_args_nth(n, k);
                int len = snprintf(name, sizeof name, "arg%zu", idx);
                char *kk = tmpl_alloc(e, (size_t)len + 1);
                memcpy(kk, name, (size_t)len + 1);
                key = tv_str(kk, (size_t)len);
                elem = ((const tv *)v.p)[idx];
            }
            if (pp->nvars == 1)
                e->slots[pp->vars[0]] = elem;
            if (pp->nvars == 2) {
                e->slots[pp->vars[0]] = key;
                e->slots[pp->vars[1]] = elem;
            }
            if (run_list(e, nd->list, elem, out) == 1)
                break;
        }
        if (n == 0 && nd->elselist) {
            int r = run_list(e, nd->elselist, dot, out);
            if (r)
                return r;
        }
    }
    return 0;
}

int tmpl_expand(const tmpl *t, const tmpl_data *d, buf *out) {
    tmpl_ex *e = calloc(1, sizeof *e);
    if (!e) {
        out->oom = 1;
        return KILN_ENOMEM;
    }
    size_t start = out->len;
    e->out_start = start;
    e->t = t;
    e->d = d;
    arena_init(&e->a, 0);
    int rc = 0;
    if (setjmp(e->jb) == 0) {
        e->slots = tmpl_alloc(e, sizeof *e->slots * (size_t)t->nslots);
        memset(e->slots, 0, sizeof *e->slots * (size_t)t->nslots);
        tv dot = {.k = TV_DATA, .p = d};
        e->slots[0] = dot;
        e->slots[1] = field(e, dot, "Labels", 0);
        e->slots[2] = field(e, dot, "ExternalLabels", 0);
        e->slots[3] = field(e, dot, "ExternalURL", 0);
        e->slots[4] = field(e, dot, "Value", 0);
        (void)run_list(e, t->root, dot, out);
        if (out->oom)
            rc = KILN_ENOMEM;
    } else if (e->code == KILN_ENOMEM || buf_error(&e->msg) < 0) {
        rc = KILN_ENOMEM;
        out->oom = 1;
    } else {
        out->len = start;
        if (out->data)
            out->data[start] = 0;
        buf_puts(out, "<error expanding template: ");
        buf_append(out, e->msg.data, e->msg.len);
        buf_putc(out, '>');
        rc = buf_error(out);
    }
    for (tmpl_qres *q = e->qres; q; q = q->next)
        if (d->query_free)
            d->query_free(d->query_data, q->v, q->n);
    buf_free(&e->msg);
    arena_free(&e->a);
    free(e);
    return rc;
}
