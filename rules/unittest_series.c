/*
 * unittest_series.c - the series notation of promtool's rule unit tests:
 * input_series (`up{job="a"} 1+2x3 _x2 stale`, a series description) and
 * exp_samples' labels (a metric), parsed as Prometheus 2.42's PromQL
 * parser does, with its first error word for word, since promtool prints it.
 *
 * The lexer follows Prometheus' state functions (lexStatements,
 * lexInsideBraces, lexValueSequence, lexKeywordOrIdentifier, the number and
 * string scanners): after a metric name or a closing brace a series
 * description is lexed as values (SPACE, `+`, `-`, `x`, `_`, numbers and
 * words).  The parser walks the states of Prometheus' generated LALR parser
 * for these rules:
 *
 *   series_description: metric series_values
 *   metric:        metric_identifier label_set | label_set
 *   label_set:     '{' label_set_list [','] '}' | '{' '}' | (empty)
 *   series_values: (empty) | series_values SPACE [series_item] | error
 *   series_item:   '_' ['x' uint] | series_value ['x' uint]
 *                | series_value signed_number 'x' uint
 *   series_value:  IDENTIFIER ("stale") | number | signed_number
 *
 * What an error says depends on where yacc's recovery lands: a state that
 * can shift `error` reports with its context ("in series values", "in label
 * set, expected ..."); where a default reduction applies first, the input
 * reduces to the start symbol and the fallback says only "unexpected X".
 * Only the first error is kept, as Prometheus' ParseErrors.Error() prints
 * only that one.
 *
 * Called by unittest.c; pure functions, any thread.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/unittest.h"

#define EOF_RUNE (-1)
#define RUNE_ERROR 0xFFFD

enum {
    K_EOF = 0,
    K_ERROR,
    K_IDENT,
    K_METRIC_IDENT,
    K_NUMBER,
    K_STRING,
    K_DURATION,
    K_SPACE,
    K_BLANK,
    K_TIMES,
    K_LBRACE,
    K_RBRACE,
    K_COMMA,
    K_EQL,
    K_PUNCT,   /* ( ) [ ] : shown as "(" */
    K_OP,      /* shown as <op:+> */
    K_AGGR,    /* <aggr:sum> */
    K_KEYWORD, /* <by> */
    K_WORD,    /* start, end: shown quoted */
    K_COMMENT,
};

typedef struct tok {
    int type;
    size_t pos, len;
    int metric_ok; /* may name a metric (Prometheus' metric_identifier) */
    char *str;     /* K_STRING: the unquoted value; K_ERROR: the message */
    size_t slen;
} tok;

enum { ST_STMT, ST_BRACES, ST_VALUES };

typedef struct lexer {
    const char *in;
    size_t n, pos, start, width;
    int series; /* a series description: values after the metric, no hex numbers */
    int state;
    int paren, bracket, brace, got_colon;
    arena *a;
    int oom;
} lexer;

typedef struct parser {
    lexer lx;
    tok t;
    buf *msg;
    int failed;
} parser;

/* ---- runes ------------------------------------------------------------------------------ */

static int next(lexer *l) {
    uint32_t r;
    if (l->pos >= l->n) {
        l->width = 0;
        return EOF_RUNE;
    }
    size_t w = utf8_decode(l->in + l->pos, l->n - l->pos, &r);
    if (w == 0)
        w = 1, r = RUNE_ERROR;
    l->width = w;
    l->pos += w;
    return (int)r;
}

static void backup(lexer *l) {
    l->pos -= l->width;
}

static int peek(lexer *l) {
    int r = next(l);
    backup(l);
    return r;
}

static int accept(lexer *l, const char *valid) {
    int r = next(l);
    if (r > 0 && r < 0x80 && strchr(valid, r))
        return 1;
    backup(l);
    return 0;
}

static void accept_run(lexer *l, const char *valid) {
    while (accept(l, valid))
        ;
}

/* Prometheus' isSpace, isDigit, isAlpha and isAlphaNumeric, on runes. */
enum { C_SPACE = 1, C_DIGIT = 2, C_ALPHA = 4 };
static int cclass(int r) {
    if (r == ' ' || r == '\t' || r == '\n' || r == '\r')
        return C_SPACE;
    if (r >= '0' && r <= '9')
        return C_DIGIT;
    return r == '_' || ((r | 0x20) >= 'a' && (r | 0x20) <= 'z') ? C_ALPHA : 0;
}
#define is_space(r) (cclass(r) == C_SPACE)
#define is_digit(r) (cclass(r) == C_DIGIT)
#define is_alpha(r) (cclass(r) == C_ALPHA)
#define is_alnum(r) ((cclass(r) & (C_DIGIT | C_ALPHA)) != 0)

/* The UTF-8 bytes of rune r (at most 0x10FFFF) into u; their count. */
static size_t encode_rune(char *u, uint32_t r) {
    if (r < 0x80) {
        u[0] = (char)r;
        return 1;
    }
    size_t n = r < 0x800 ? 2 : r < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, r >>= 6)
        u[i] = (char)(0x80 | (r & 0x3F));
    u[0] = (char)((0xF00 >> n) | r); /* 110xxxxx, 1110xxxx or 11110xxx */
    return n;
}

/* Go's %q of a rune, into b. */
static void quote_rune(buf *b, int r) {
    char s[4];
    go_quote(b, s, encode_rune(s, r < 0 ? RUNE_ERROR : (uint32_t)r), '\'');
}

/* ---- the lexer ------------------------------------------------------------------------- */

static void emit(lexer *l, tok *t, int type) {
    t->type = type;
    t->pos = l->start;
    t->len = l->pos - l->start;
    l->start = l->pos;
}

/* l.errorf: an error item at the start of the current token. */
static int lex_error(lexer *l, tok *t, const char *fmt, const char *arg, int rune) {
    buf b = BUF_INIT;
    buf_printf(&b, fmt, arg ? arg : "");
    if (rune != -2)
        quote_rune(&b, rune);
    t->type = K_ERROR;
    t->pos = l->start;
    t->len = 0;
    t->str = buf_error(&b) ? NULL : arena_strndup(l->a, b.data, b.len);
    t->slen = t->str ? b.len : 0;
    if (!t->str)
        l->oom = 1;
    buf_free(&b);
    return 1;
}

static const struct {
    const char *word;
    int type, metric_ok;
} keywords[] = {
    {"and", K_OP, 1},
    {"or", K_OP, 1},
    {"unless", K_OP, 1},
    {"atan2", K_OP, 0},
    {"sum", K_AGGR, 1},
    {"avg", K_AGGR, 1},
    {"count", K_AGGR, 1},
    {"min", K_AGGR, 1},
    {"max", K_AGGR, 1},
    {"group", K_AGGR, 1},
    {"stddev", K_AGGR, 1},
    {"stdvar", K_AGGR, 1},
    {"topk", K_AGGR, 1},
    {"bottomk", K_AGGR, 1},
    {"count_values", K_AGGR, 1},
    {"quantile", K_AGGR, 1},
    {"offset", K_KEYWORD, 1},
    {"by", K_KEYWORD, 1},
    {"without", K_KEYWORD, 1},
    {"on", K_KEYWORD, 0},
    {"ignoring", K_KEYWORD, 0},
    {"group_left", K_KEYWORD, 0},
    {"group_right", K_KEYWORD, 0},
    {"bool", K_KEYWORD, 0},
    {"start", K_WORD, 1},
    {"end", K_WORD, 1},
    {"inf", K_NUMBER, 0},
    {"nan", K_NUMBER, 0},
};

static void lex_word(lexer *l, tok *t) {
    for (int r = next(l);; r = next(l)) {
        if (!(is_alnum(r) || r == ':')) {
            backup(l);
            break;
        }
    }
    size_t n = l->pos - l->start;
    const char *w = l->in + l->start;
    int type = memchr(w, ':', n) ? K_METRIC_IDENT : K_IDENT, metric_ok = 1;
    for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++) {
        if (strlen(keywords[i].word) == n && strncasecmp(keywords[i].word, w, n) == 0) {
            type = keywords[i].type;
            metric_ok = keywords[i].metric_ok;
        }
    }
    emit(l, t, type);
    t->metric_ok = metric_ok;
    l->state = l->series && peek(l) != '{' ? ST_VALUES : ST_STMT;
}

/* scanNumber: digits (hex outside series descriptions), a fraction, an
 * exponent; what follows must not be alphanumeric, save a series' `x`. */
static int scan_number(lexer *l) {
    const char *digits = "0123456789";
    if (!l->series && accept(l, "0") && accept(l, "xX"))
        digits = "0123456789abcdefABCDEF";
    accept_run(l, digits);
    if (accept(l, "."))
        accept_run(l, digits);
    if (accept(l, "eE") && (accept(l, "+-") || 1)) /* an exponent, its sign optional */
        accept_run(l, "0123456789");
    int r = peek(l);
    return (l->series && r == 'x') || !is_alnum(r);
}

/* acceptRemainingDuration: a unit, then more number-unit pairs. */
static int accept_duration(lexer *l) {
    if (!accept(l, "smhdwy"))
        return 0;
    accept(l, "s");
    while (accept(l, "0123456789")) {
        accept_run(l, "0123456789");
        if (!accept(l, "smhdw"))
            return 0;
        accept(l, "s");
    }
    return !is_alnum(next(l));
}

static int digit_val(int r) {
    return is_digit(r)            ? r - '0'
           : r >= 'a' && r <= 'f' ? r - 'a' + 10
           : r >= 'A' && r <= 'F' ? r - 'A' + 10
                                  : 16;
}

/* %#U of Go: U+0071 'q' (the rune itself only when printable). */
static int escape_error(lexer *l, tok *t, const char *what, int r) {
    char u[64];
    int printable = r >= 0x20 && r != 0x7F && !(r >= 0x80 && r < 0xA0);
    snprintf(u, sizeof u, "U+%04X", (unsigned)r);
    if (!printable)
        return lex_error(l, t, what, u, -2);
    buf b = BUF_INIT;
    buf_printf(&b, "%s ", u);
    quote_rune(&b, r);
    int rc = lex_error(l, t, what, buf_error(&b) ? u : b.data, -2);
    buf_free(&b);
    return rc;
}

/* lexEscape: checks one escape (the backslash read) and appends what it
 * stands for to b; 1 with an error item in t when it is bad. */
static int lex_escape(lexer *l, tok *t, int quote, buf *b) {
    int r = next(l), n = 0, base = 16;
    uint32_t max = 0x10FFFF;
    const char *simple = r > 0 && r < 0x80 ? strchr("abfnrtv", r) : NULL;
    if (simple) {
        buf_putc(b, "\a\b\f\n\r\t\v"[simple - "abfnrtv"]);
        return 0;
    }
    if (r == '\\' || r == quote) {
        buf_putc(b, (char)r);
        return 0;
    }
    if (r >= '0' && r <= '7')
        n = 3, base = 8, max = 255;
    else if (r == 'x' || r == 'u' || r == 'U')
        n = r == 'x' ? 2 : r == 'u' ? 4 : 8, max = r == 'x' ? 255 : max, r = next(l);
    else if (r == EOF_RUNE)
        return lex_error(l, t, "escape sequence not terminated", NULL, -2);
    else
        return escape_error(l, t, "unknown escape sequence %s", r);
    uint32_t x = 0;
    int bytes = max == 255;
    for (; n > 0; n--) {
        int d = r < 0 ? 16 : digit_val(r);
        if (d >= base) {
            if (r == EOF_RUNE)
                return lex_error(l, t, "escape sequence not terminated", NULL, -2);
            return escape_error(l, t, "illegal character %s in escape sequence", r);
        }
        x = x * (uint32_t)base + (uint32_t)d;
        if (n > 1)
            r = next(l);
    }
    if (x > max || (x >= 0xD800 && x < 0xE000))
        return lex_error(l, t, "escape sequence is an invalid Unicode character", NULL, -2);
    if (bytes) {
        buf_putc(b, (char)x);
    } else {
        char u[4];
        buf_append(b, u, encode_rune(u, x));
    }
    return 0;
}

/* lexString and lexRawString; the value unquoted into t->str. */
static int lex_string(lexer *l, tok *t, int quote) {
    buf b = BUF_INIT;
    for (;;) {
        size_t at = l->pos;
        int r = next(l);
        if (r == '\\' && quote != '`') {
            if (lex_escape(l, t, quote, &b)) {
                buf_free(&b);
                return 1;
            }
        } else if (r == RUNE_ERROR) {
            buf_free(&b);
            return lex_error(l, t, "invalid UTF-8 rune", NULL, -2);
        } else if (r == EOF_RUNE || (r == '\n' && quote != '`')) {
            buf_free(&b);
            return lex_error(l, t, quote == '`' ? "unterminated raw string" : "unterminated quoted string",
                             NULL, -2);
        } else if (r == quote) {
            break;
        } else {
            buf_append(&b, l->in + at, l->pos - at);
        }
    }
    emit(l, t, K_STRING);
    t->str = buf_error(&b) ? NULL : arena_strndup(l->a, b.data ? b.data : "", b.len);
    t->slen = b.len;
    if (!t->str)
        l->oom = 1;
    buf_free(&b);
    l->state = ST_STMT;
    return 1;
}

static int lex_number(lexer *l, tok *t, int or_duration) {
    if (scan_number(l)) {
        emit(l, t, K_NUMBER);
        return 1;
    }
    if (or_duration && accept_duration(l)) {
        backup(l);
        emit(l, t, K_DURATION);
        return 1;
    }
    buf q = BUF_INIT;
    go_quote(&q, l->in + l->start, l->pos - l->start, '"');
    int rc = lex_error(l, t, or_duration ? "bad number or duration syntax: %s" : "bad number syntax: %s",
                       buf_error(&q) ? "" : q.data, -2);
    buf_free(&q);
    return rc;
}

static int punct(lexer *l, tok *t, int type) {
    emit(l, t, type);
    return 1;
}

/* What lexStatements and lexInsideBraces do alike: a comma, a string. */
static int lex_comma_or_string(lexer *l, tok *t, int r) {
    return r == ',' ? punct(l, t, K_COMMA) : lex_string(l, t, r);
}

/* lexValueSequence: one token of a series' values. */
static int lex_values(lexer *l, tok *t) {
    int r = next(l);
    if (r == EOF_RUNE) {
        l->state = ST_STMT;
        return 0;
    }
    if (is_space(r)) {
        emit(l, t, K_SPACE);
        while (is_space(peek(l)))
            next(l);
        l->start = l->pos;
        return 1;
    }
    if (r == '+' || r == '-')
        return punct(l, t, K_OP);
    if (r == 'x')
        return punct(l, t, K_TIMES);
    if (r == '_')
        return punct(l, t, K_BLANK);
    if (is_digit(r) || (r == '.' && is_digit(peek(l)))) {
        backup(l);
        return lex_number(l, t, 0);
    }
    if (is_alpha(r)) {
        backup(l);
        lex_word(l, t);
        return 1;
    }
    return lex_error(l, t, "unexpected character in series sequence: ", NULL, r);
}

/* lexInsideBraces. */
static int lex_braces(lexer *l, tok *t) {
    if (l->pos < l->n && l->in[l->pos] == '#') {
        l->pos = l->n;
        emit(l, t, K_COMMENT);
        return 1;
    }
    int r = next(l);
    if (r == EOF_RUNE)
        return lex_error(l, t, "unexpected end of input inside braces", NULL, -2);
    if (is_space(r)) {
        while (is_space(peek(l)))
            next(l);
        l->start = l->pos;
        return 0;
    }
    if (is_alpha(r)) {
        while (is_alnum(next(l)))
            ;
        backup(l);
        emit(l, t, K_IDENT);
        return 1;
    }
    if (r == ',' || r == '"' || r == '\'' || r == '`')
        return lex_comma_or_string(l, t, r);
    switch (r) {
    case '=':
        if (!accept(l, "~"))
            return punct(l, t, K_EQL);
        return punct(l, t, K_OP);
    case '!':
        if (accept(l, "~=") != 0)
            return punct(l, t, K_OP);
        return lex_error(l, t, "unexpected character inside braces: ", NULL, r);
    case '{':
        return lex_error(l, t, "unexpected left brace ", NULL, r);
    case '}':
        l->brace = 0;
        l->state = l->series ? ST_VALUES : ST_STMT;
        return punct(l, t, K_RBRACE);
    default:
        return lex_error(l, t, "unexpected character inside braces: ", NULL, r);
    }
}

/* lexStatements, for what can stand before or after a metric. */
static int lex_stmt(lexer *l, tok *t) {
    if (l->brace)
        return lex_braces(l, t);
    if (l->pos < l->n && l->in[l->pos] == '#') {
        while (l->pos < l->n && l->in[l->pos] != '\n')
            l->pos++;
        emit(l, t, K_COMMENT);
        return 1;
    }
    int r = next(l);
    if (r == EOF_RUNE) {
        if (l->paren)
            return lex_error(l, t, "unclosed left parenthesis", NULL, -2);
        if (l->bracket)
            return lex_error(l, t, "unclosed left bracket", NULL, -2);
        return punct(l, t, K_EOF);
    }
    if (is_space(r)) {
        while (is_space(peek(l)))
            next(l);
        l->start = l->pos;
        return 0;
    }
    if (is_digit(r) || (r == '.' && is_digit(peek(l)))) {
        backup(l);
        return lex_number(l, t, 1);
    }
    if (is_alpha(r) || (r == ':' && !l->bracket)) {
        backup(l);
        lex_word(l, t);
        return 1;
    }
    if (r == ',' || r == '"' || r == '\'' || r == '`')
        return lex_comma_or_string(l, t, r);
    switch (r) {
    case '*':
    case '/':
    case '%':
    case '+':
    case '-':
    case '^':
    case '@':
        return punct(l, t, K_OP);
    case '=':
        if (peek(l) == '~') {
            next(l);
            return lex_error(l, t, "unexpected character after '=': ", NULL, '~');
        }
        accept(l, "=");
        return punct(l, t, l->pos - l->start == 1 ? K_EQL : K_OP);
    case '!':
        if ((r = next(l)) == '=')
            return punct(l, t, K_OP);
        return lex_error(l, t, "unexpected character after '!': ", NULL, r);
    case '<':
    case '>':
        accept(l, "=");
        return punct(l, t, K_OP);
    case ':':
        if (l->got_colon)
            return lex_error(l, t, "unexpected colon ", NULL, r);
        l->got_colon = 1;
        return punct(l, t, K_PUNCT);
    case '(':
        l->paren++;
        return punct(l, t, K_PUNCT);
    case ')':
        if (--l->paren < 0) {
            l->start = l->pos; /* Prometheus emits the ')' first, then the error after it */
            return lex_error(l, t, "unexpected right parenthesis ", NULL, r);
        }
        return punct(l, t, K_PUNCT);
    case '{':
        l->brace = 1;
        return punct(l, t, K_LBRACE);
    case '[':
        if (l->bracket)
            return lex_error(l, t, "unexpected left bracket ", NULL, r);
        l->bracket = 1;
        l->got_colon = 0;
        return punct(l, t, K_PUNCT);
    case ']':
        if (!l->bracket)
            return lex_error(l, t, "unexpected right bracket ", NULL, r);
        l->bracket = 0;
        return punct(l, t, K_PUNCT);
    default:
        return lex_error(l, t, "unexpected character: ", NULL, r);
    }
}

/* The next token the parser sees (comments skipped). */
static void lex(lexer *l, tok *t) {
    for (;;) {
        memset(t, 0, sizeof *t);
        int got = l->state == ST_VALUES ? lex_values(l, t) : lex_stmt(l, t);
        if (got && t->type != K_COMMENT)
            return;
    }
}

/* ---- the parser ------------------------------------------------------------------------- */

/* Item.desc(): how Prometheus names a token in "unexpected ...". */
static void describe(parser *p, const tok *t, buf *b) {
    const char *text = p->lx.in + t->pos;
    static const char *const kinds[] = {[K_IDENT] = "identifier ",
                                        [K_METRIC_IDENT] = "metric identifier ",
                                        [K_NUMBER] = "number ",
                                        [K_STRING] = "string ",
                                        [K_DURATION] = "duration "};
    switch (t->type) {
    case K_EOF:
        buf_puts(b, "end of input");
        return;
    case K_OP:
        /* `@` is missing from Prometheus' ItemTypeStr, so desc() names its type number too */
        buf_printf(b, "%s<op:%.*s>", *text == '@' ? "\"<Item 57385>\" " : "", (int)t->len, text);
        return;
    case K_AGGR:
        buf_printf(b, "<aggr:%.*s>", (int)t->len, text);
        return;
    case K_KEYWORD:
        buf_printf(b, "<%.*s>", (int)t->len, text);
        return;
    case K_IDENT:
    case K_METRIC_IDENT:
        buf_puts(b, kinds[t->type]);
        go_quote(b, text, t->len, '"');
        return;
    case K_NUMBER:
    case K_STRING:
    case K_DURATION:
        buf_puts(b, kinds[t->type]);
        break;
    default:
        break;
    }
    if (t->len > 10) {
        /* %.10q...: the first ten runes, quoted */
        size_t n = 0;
        uint32_t r;
        for (int k = 0; k < 10 && n < t->len; k++) {
            size_t w = utf8_decode(text + n, t->len - n, &r);
            n += w ? w : 1;
        }
        go_quote(b, text, n, '"');
        buf_puts(b, "...");
    } else {
        go_quote(b, text, t->len, '"');
    }
}

/* Records the first error, at byte offset pos of the input. */
static int fail_at(parser *p, size_t pos, const char *what) {
    if (!p->failed)
        buf_printf(p->msg, "1:%zu: parse error: %s", pos + 1, what);
    p->failed = 1;
    return KILN_EINVAL;
}

/* parser.unexpected(context, expected) for the current token; a lexer error
 * is reported as itself. */
static int unexpected(parser *p, const char *context, const char *expected) {
    if (p->t.type == K_ERROR)
        return fail_at(p, p->t.pos, p->t.str ? p->t.str : "out of memory");
    buf b = BUF_INIT;
    buf_puts(&b, "unexpected ");
    describe(p, &p->t, &b);
    if (context)
        buf_printf(&b, " in %s", context);
    if (expected)
        buf_printf(&b, ", expected %s", expected);
    int rc = buf_error(&b) ? KILN_ENOMEM : fail_at(p, p->t.pos, b.data);
    buf_free(&b);
    return rc;
}

static void advance(parser *p) {
    lex(&p->lx, &p->t);
}

static int number_error(parser *p, const tok *t, const char *why) {
    buf b = BUF_INIT;
    buf_puts(&b, "error parsing number: strconv.ParseFloat: parsing ");
    go_quote(&b, p->lx.in + t->pos, t->len, '"');
    buf_printf(&b, ": %s", why);
    int rc = buf_error(&b) ? KILN_ENOMEM : fail_at(p, t->pos, b.data);
    buf_free(&b);
    return rc;
}

/* parser.number(): Go's strconv.ParseInt(s, 0, 64), else ParseFloat(s, 64).
 * The lexer hands over digits, a fraction and an exponent, hex digits after
 * 0x, or the words inf and nan. */
static int number(parser *p, const tok *t, double *v) {
    char s[128];
    if (t->len >= sizeof s)
        return number_error(p, t, "value out of range");
    memcpy(s, p->lx.in + t->pos, t->len);
    s[t->len] = 0;
    const char *d = s;
    int base = 10;
    if (d[0] == '0' && (d[1] == 'x' || d[1] == 'X'))
        base = 16, d += 2;
    else if (d[0] == '0' && d[1])
        base = 8, d += 1;
    const char *valid = base == 16 ? "0123456789abcdefABCDEF" : base == 8 ? "01234567" : "0123456789";
    if (*d && strspn(d, valid) == strlen(d)) {
        errno = 0;
        unsigned long long u = strtoull(d, NULL, base);
        if (errno == 0 && u <= (unsigned long long)INT64_MAX) {
            *v = (double)u;
            return 0;
        }
    }
    char *end;
    if (base == 16) /* a hex float needs a p exponent, which the lexer never passes */
        return number_error(p, t, "invalid syntax");
    *v = strtod(s, &end);
    if (*end || end == s)
        return number_error(p, t, "invalid syntax");
    if (isinf(*v) && strcasecmp(s, "inf") != 0)
        return number_error(p, t, "value out of range");
    return 0;
}

/* uint: NUMBER, strconv.ParseUint(s, 10, 64). */
static int repetitions(parser *p, uint64_t *n) {
    const tok *t = &p->t;
    const char *s = p->lx.in + t->pos;
    const char *why = NULL;
    uint64_t v = 0;
    for (size_t i = 0; i < t->len && !why; i++)
        if (!is_digit(s[i]))
            why = "invalid syntax";
    if (t->len == 0) {
        why = "invalid syntax";
    } else if (!why) {
        for (size_t i = 0; i < t->len && !why; i++) {
            if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
                why = "value out of range";
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
    }
    if (!why && v >= UT_MAX_VALUES)
        return fail_at(p, t->pos, "invalid repetition in series values: more than kiln's limit of values");
    if (why) {
        buf b = BUF_INIT;
        buf_puts(&b, "invalid repetition in series values: strconv.ParseUint: parsing ");
        go_quote(&b, s, t->len, '"');
        buf_printf(&b, ": %s", why);
        int rc = buf_error(&b) ? KILN_ENOMEM : fail_at(p, t->pos, b.data);
        buf_free(&b);
        return rc;
    }
    *n = v;
    return 0;
}

typedef struct lset {
    label *ls;
    size_t n, cap;
} lset;

static int lset_push(lset *s, const char *name, const char *value) {
    if (array_grow((void **)&s->ls, &s->cap, s->n + 1, sizeof *s->ls) != 0)
        return KILN_ENOMEM;
    s->ls[s->n].name = name;
    s->ls[s->n].value = value;
    s->n++;
    return 0;
}

/* label_set after its '{': up to and including the '}'. */
static int label_set(parser *p, lset *out) {
    advance(p);
    if (p->t.type == K_RBRACE)
        return 0;
    for (;;) {
        if (p->t.type != K_IDENT)
            return unexpected(p, "label set", "identifier or \"}\"");
        char *name = arena_strndup(p->lx.a, p->lx.in + p->t.pos, p->t.len);
        advance(p);
        if (p->t.type != K_EQL)
            return unexpected(p, "label set", "\"=\"");
        advance(p);
        if (p->t.type != K_STRING)
            return unexpected(p, "label set", "string");
        if (!name || !p->t.str || lset_push(out, name, p->t.str) != 0)
            return KILN_ENOMEM;
        advance(p);
        if (p->t.type == K_RBRACE)
            return 0;
        if (p->t.type != K_COMMA)
            return unexpected(p, "label set", "\",\" or \"}\"");
        advance(p);
        if (p->t.type == K_RBRACE)
            return 0;
    }
}

static int label_cmp(const void *a, const void *b) {
    return strcmp(((const label *)a)->name, ((const label *)b)->name);
}

/* metric: [metric_identifier] [label_set]; leaves the token after it in p->t. */
static int parse_metric(parser *p, ut_series *out) {
    lset s = {0};
    const char *name = NULL;
    int rc = 0;
    advance(p);
    if (p->t.metric_ok && (p->t.type == K_IDENT || p->t.type == K_METRIC_IDENT || p->t.type == K_OP ||
                           p->t.type == K_AGGR || p->t.type == K_KEYWORD || p->t.type == K_WORD)) {
        if (!(name = arena_strndup(p->lx.a, p->lx.in + p->t.pos, p->t.len)))
            return KILN_ENOMEM;
        advance(p);
    }
    if (p->t.type == K_LBRACE) {
        if ((rc = label_set(p, &s)) != 0)
            goto out;
        advance(p);
    }
    /* labels.New sorts; a metric name comes in through a labels.Builder,
     * which drops empty values and any __name__ written in the braces */
    size_t k = 0;
    for (size_t i = 0; i < s.n; i++)
        if (!name || (*s.ls[i].value && strcmp(s.ls[i].name, LABEL_NAME) != 0))
            s.ls[k++] = s.ls[i];
    s.n = k;
    if (name && (rc = lset_push(&s, LABEL_NAME, name)) != 0)
        goto out;
    if (s.n > 1)
        qsort(s.ls, s.n, sizeof *s.ls, label_cmp); /* equal names keep no order; they fail later */
    out->ls = s.n ? arena_alloc(p->lx.a, s.n * sizeof *s.ls) : NULL;
    if (s.n && !out->ls) {
        rc = KILN_ENOMEM;
        goto out;
    }
    if (s.n)
        memcpy(out->ls, s.ls, s.n * sizeof *s.ls);
    out->nls = s.n;
out:
    free(s.ls);
    return rc;
}

typedef struct vals {
    ut_value *v;
    size_t n, cap;
} vals;

static int push_vals(parser *p, vals *vs, double v, double step, uint64_t count, int omitted) {
    if (vs->n + count > UT_MAX_VALUES)
        return fail_at(p, p->t.pos, "invalid repetition in series values: more than kiln's limit of values");
    if (array_grow((void **)&vs->v, &vs->cap, vs->n + count, sizeof *vs->v) != 0)
        return KILN_ENOMEM;
    for (uint64_t i = 0; i < count; i++) {
        vs->v[vs->n].v = omitted ? 0 : v;
        vs->v[vs->n].omitted = omitted;
        vs->n++;
        v += step; /* as Go does: a stale marker plus a number is a plain NaN */
    }
    return 0;
}

/* After an 'x': the uint, and the token after it. */
static int times_uint(parser *p, uint64_t *n) {
    int rc;
    advance(p);
    if (p->t.type != K_NUMBER)
        return unexpected(p, "series values", NULL);
    if ((rc = repetitions(p, n)) != 0)
        return rc;
    advance(p);
    return 0;
}

/* The tokens after a series_value: 'x' uint, signed_number 'x' uint, or
 * nothing. */
static int value_item(parser *p, vals *vs, double v) {
    uint64_t n;
    double step = 0;
    int rc;
    advance(p);
    if (p->t.type == K_OP && (p->lx.in[p->t.pos] == '+' || p->lx.in[p->t.pos] == '-')) {
        int neg = p->lx.in[p->t.pos] == '-';
        advance(p);
        if (p->t.type != K_NUMBER)
            return unexpected(p, "series values", NULL);
        if ((rc = number(p, &p->t, &step)) != 0)
            return rc;
        step = neg ? -step : step;
        advance(p);
        if (p->t.type != K_TIMES)
            return unexpected(p, "series values", NULL);
    } else if (p->t.type != K_TIMES) {
        return push_vals(p, vs, v, 0, 1, 0);
    }
    if ((rc = times_uint(p, &n)) != 0)
        return rc;
    return push_vals(p, vs, v, step, n + 1, 0);
}

/* series_values, starting at the token after the metric. */
static int series_values(parser *p, vals *vs) {
    int rc;
    if (p->t.type != K_SPACE && p->t.type != K_EOF)
        return unexpected(p, "series values", NULL);
    for (;;) {
        if (p->t.type == K_EOF)
            return 0;
        if (p->t.type != K_SPACE)
            return unexpected(p, NULL, NULL); /* reduced to the start symbol: the fallback's words */
        advance(p);
        const tok *t = &p->t;
        const char *text = p->lx.in + t->pos;
        double v;
        if (t->type == K_BLANK) {
            uint64_t n = 1;
            advance(p);
            if (p->t.type == K_TIMES && (rc = times_uint(p, &n)) != 0)
                return rc;
            if ((rc = push_vals(p, vs, 0, 0, n, 1)) != 0)
                return rc;
        } else if (t->type == K_IDENT) {
            if (t->len != 5 || strncmp(text, "stale", 5) != 0)
                return unexpected(p, "series values", "number or \"stale\"");
            if ((rc = value_item(p, vs, stale_nan())) != 0)
                return rc;
        } else if (t->type == K_NUMBER) {
            if ((rc = number(p, t, &v)) != 0 || (rc = value_item(p, vs, v)) != 0)
                return rc;
        } else if (t->type == K_OP && (*text == '+' || *text == '-')) {
            int neg = *text == '-';
            advance(p);
            if (p->t.type != K_NUMBER)
                return unexpected(p, "series values", NULL);
            if ((rc = number(p, &p->t, &v)) != 0 || (rc = value_item(p, vs, neg ? -v : v)) != 0)
                return rc;
        }
        /* anything else: `series_values SPACE` reduces and the loop sees it */
    }
}

static int parse(const char *in, size_t len, int is_series, arena *a, ut_series *out, buf *msg) {
    parser p;
    vals vs = {0};
    memset(&p, 0, sizeof p);
    memset(out, 0, sizeof *out);
    p.lx.in = in;
    p.lx.n = len;
    p.lx.series = is_series;
    p.lx.a = a;
    p.msg = msg;
    int rc = parse_metric(&p, out);
    if (rc == 0 && is_series)
        rc = series_values(&p, &vs);
    else if (rc == 0 && p.t.type != K_EOF)
        rc = unexpected(&p, NULL, NULL);
    if (rc == 0 && p.lx.oom)
        rc = KILN_ENOMEM;
    if (rc == 0 && vs.n) {
        if (!(out->vals = arena_alloc_nz(a, vs.n * sizeof *vs.v)))
            rc = KILN_ENOMEM;
        else
            memcpy(out->vals, vs.v, vs.n * sizeof *vs.v);
        out->nvals = vs.n;
    }
    free(vs.v);
    if (rc == KILN_ENOMEM && !p.failed)
        buf_puts(msg, "out of memory");
    return rc;
}

int ut_parse_series(const char *line, size_t len, arena *a, ut_series *out, buf *msg) {
    return parse(line, len, 1, a, out, msg);
}

int ut_parse_metric(const char *s, size_t len, arena *a, ut_series *out, buf *msg) {
    return parse(s, len, 0, a, out, msg);
}
