/*
 * lex.c - the PromQL lexer.
 *
 * A pull lexer the parser drives one token at a time, with the same states
 * as Prometheus' lexer so that errors come out at the same places and with
 * the same words:
 *   statements  - operators, identifiers and keywords (case-insensitive),
 *                 numbers (decimal, hex, exponent, Inf/NaN), durations,
 *                 strings, '#' comments to the end of the line;
 *   braces      - inside {...}: label names, match operators, strings;
 *   brackets    - inside [...]: a duration or number, ':' once, ']'; with
 *                 duration expressions also operators, parentheses and
 *                 the words step, range, min_of, max_of.
 * The lexer also counts parentheses ("unclosed left parenthesis") and
 * validates string escapes; promql_unquote() decodes a validated string.
 *
 * Also here: the value of number literals (promql_parse_number), Go's
 * strconv.Quote (promql_quote), which the printer and error messages use,
 * and the descriptions of tokens in "unexpected ..." errors.
 *
 * Called by parse.c (the lexer, promql_tok_desc, promql_unquote); printer.c
 * and aggr.c call promql_quote.
 * Threading: a promql_lexer belongs to one parse; no shared state.
 */
#define PROMQL_PARSER_INTERNAL
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "query/ast.h"

#define LEX_EOF (-1)

static const struct {
    const char *word;
    promql_tok tok;
} keywords[] = {
    {"and", PT_AND},
    {"or", PT_OR},
    {"unless", PT_UNLESS},
    {"atan2", PT_ATAN2},
    {"sum", PT_SUM},
    {"avg", PT_AVG},
    {"count", PT_COUNT},
    {"min", PT_MIN},
    {"max", PT_MAX},
    {"group", PT_GROUP},
    {"stddev", PT_STDDEV},
    {"stdvar", PT_STDVAR},
    {"topk", PT_TOPK},
    {"bottomk", PT_BOTTOMK},
    {"quantile", PT_QUANTILE},
    {"count_values", PT_COUNT_VALUES},
    {"limitk", PT_LIMITK},
    {"limit_ratio", PT_LIMIT_RATIO},
    {"offset", PT_OFFSET},
    {"by", PT_BY},
    {"without", PT_WITHOUT},
    {"on", PT_ON},
    {"ignoring", PT_IGNORING},
    {"group_left", PT_GROUP_LEFT},
    {"group_right", PT_GROUP_RIGHT},
    {"bool", PT_BOOL},
    {"start", PT_START},
    {"end", PT_END},
};

static int is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
static int is_alpha(int c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_digit(int c) {
    return c >= '0' && c <= '9';
}
static int is_alnum(int c) {
    return is_alpha(c) || is_digit(c);
}

/* Decodes one UTF-8 rune at s[0..n); *size gets its length (1 for a bad
 * byte, which decodes as U+FFFD like Go). */
static long decode_rune(const unsigned char *s, size_t n, size_t *size) {
    *size = 1;
    if (n == 0)
        return LEX_EOF;
    unsigned c = s[0];
    if (c < 0x80)
        return (long)c;
    int need;
    long r, min;
    if ((c & 0xe0) == 0xc0) {
        need = 1, r = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        need = 2, r = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        need = 3, r = c & 0x07, min = 0x10000;
    } else {
        return 0xfffd;
    }
    if ((size_t)need >= n)
        return 0xfffd;
    for (int i = 1; i <= need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0xfffd;
        r = (r << 6) | (s[i] & 0x3f);
    }
    if (r < min || r > 0x10ffff || (r >= 0xd800 && r < 0xe000))
        return 0xfffd;
    *size = (size_t)need + 1;
    return r;
}

/* Whether Go's unicode.IsPrint would say so (an approximation outside
 * ASCII: controls, C1, separators and a few format characters are not). */
static int rune_printable(long r) {
    if (r < 0x20 || r == 0x7f)
        return 0;
    if (r < 0x7f)
        return 1;
    if (r < 0xa0 || r == 0xad)
        return 0;
    if (r == 0x2028 || r == 0x2029 || (r >= 0x200b && r <= 0x200f) || (r >= 0x202a && r <= 0x202e) ||
        (r >= 0x2060 && r <= 0x206f) || r == 0xfeff || (r >= 0xfff9 && r <= 0xfffb))
        return 0;
    if (r >= 0xe000 && r <= 0xf8ff) /* private use */
        return 0;
    if (r >= 0xf0000)
        return 0;
    return 1;
}

/* Writes r in UTF-8 to u; returns the length (1 to 4). */
static size_t encode_rune(char u[4], long r) {
    if (r < 0x80) {
        u[0] = (char)r;
        return 1;
    }
    if (r < 0x800) {
        u[0] = (char)(0xc0 | (r >> 6)), u[1] = (char)(0x80 | (r & 0x3f));
        return 2;
    }
    if (r < 0x10000) {
        u[0] = (char)(0xe0 | (r >> 12)), u[1] = (char)(0x80 | ((r >> 6) & 0x3f));
        u[2] = (char)(0x80 | (r & 0x3f));
        return 3;
    }
    u[0] = (char)(0xf0 | (r >> 18)), u[1] = (char)(0x80 | ((r >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((r >> 6) & 0x3f)), u[3] = (char)(0x80 | (r & 0x3f));
    return 4;
}

static void put_rune_utf8(buf *b, long r) {
    char u[4];
    buf_append(b, u, encode_rune(u, r));
}

/* Go's one-letter escapes: ESC_LETTERS[i] stands for ESC_CHARS[i]. */
static const char ESC_LETTERS[] = "abfnrtv";
static const char ESC_CHARS[] = "\a\b\f\n\r\t\v";

/* Appends one rune escaped for a Go quoted literal delimited by `quote`. */
static void quote_rune_body(buf *b, long r, int quote, int bad_byte, unsigned char raw) {
    if (bad_byte) {
        buf_printf(b, "\\x%02x", raw);
        return;
    }
    if (r == quote || r == '\\') {
        buf_putc(b, '\\');
        buf_putc(b, (char)r);
        return;
    }
    if (rune_printable(r)) {
        put_rune_utf8(b, r);
        return;
    }
    const char *e = r > 0 && r < 0x20 ? strchr(ESC_CHARS, (int)r) : NULL;
    if (e) {
        buf_putc(b, '\\');
        buf_putc(b, ESC_LETTERS[e - ESC_CHARS]);
        return;
    }
    if (r < ' ' || r == 0x7f)
        buf_printf(b, "\\x%02x", (unsigned)r);
    else if (r < 0x10000)
        buf_printf(b, "\\u%04x", (unsigned)r);
    else
        buf_printf(b, "\\U%08x", (unsigned)r);
}

/* Quotes like Go's strconv.Quote: the printer's string and label values. */
void promql_quote(buf *out, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    buf_putc(out, '"');
    size_t i = 0;
    while (i < n) {
        size_t sz;
        long r = decode_rune(p + i, n - i, &sz);
        if (p[i] == 0xc0 && i + 1 < n && p[i + 1] == 0x80)
            r = 0, sz = 2; /* kiln's NUL (util/strnul.c): "\x00" */
        int bad = (r == 0xfffd && sz == 1 && p[i] >= 0x80);
        quote_rune_body(out, r, '"', bad, p[i]);
        i += sz;
    }
    buf_putc(out, '"');
}

/* %q of a rune: 'x'. */
static void quote_rune(buf *b, long r) {
    buf_putc(b, '\'');
    if (r == LEX_EOF)
        r = 0xfffd;
    quote_rune_body(b, r, '\'', 0, 0);
    buf_putc(b, '\'');
}

/* %#U of a rune: U+0027 '''. */
static void unicode_rune(buf *b, long r) {
    buf_printf(b, "U+%04lX", r);
    if (rune_printable(r)) {
        buf_puts(b, " '");
        put_rune_utf8(b, r);
        buf_putc(b, '\'');
    }
}

void promql_lex_init(promql_lexer *l, const char *in, size_t len) {
    memset(l, 0, sizeof *l);
    l->in = in;
    l->len = len;
}

/* ---- character access --------------------------------------------------- */

static long next_rune(promql_lexer *l, size_t *sz) {
    if (l->pos >= l->len) {
        *sz = 0;
        return LEX_EOF;
    }
    long r = decode_rune((const unsigned char *)l->in + l->pos, l->len - l->pos, sz);
    l->pos += *sz;
    return r;
}

static int peek(const promql_lexer *l) {
    return l->pos < l->len ? (unsigned char)l->in[l->pos] : LEX_EOF;
}

static int accept(promql_lexer *l, const char *set) {
    int c = peek(l);
    if (c != LEX_EOF && c != 0 && strchr(set, c)) {
        l->pos++;
        return 1;
    }
    return 0;
}

static void accept_run(promql_lexer *l, const char *set) {
    while (accept(l, set))
        ;
}

static void emit(promql_lexer *l, promql_token *t, promql_tok type) {
    t->type = type;
    t->pos = l->start;
    t->len = l->pos - l->start;
    l->start = l->pos;
}

static void lex_error(promql_lexer *l, promql_token *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lex_error(promql_lexer *l, promql_token *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, sizeof l->err, fmt, ap);
    va_end(ap);
    t->type = PT_ERROR;
    t->pos = l->start;
    t->len = l->pos > l->start ? l->pos - l->start : 0;
    l->done = 1;
}

/* An error whose message is built in a buf (quoted runes). */
static void lex_error_buf(promql_lexer *l, promql_token *t, buf *msg) {
    lex_error(l, t, "%s", buf_error(msg) ? "out of memory" : msg->data);
    buf_free(msg);
}

static void error_rune(promql_lexer *l, promql_token *t, const char *prefix, long r) {
    buf m = BUF_INIT;
    buf_puts(&m, prefix);
    quote_rune(&m, r);
    lex_error_buf(l, t, &m);
}

/* ---- numbers and durations ------------------------------------------------ */

/* Scans the digits of a number; true when what follows cannot continue it
 * (so it is a number and not the start of a duration). */
static int scan_number(promql_lexer *l) {
    const char *digits = "0123456789";
    size_t save = l->pos;
    if (accept(l, "0") && accept(l, "xX")) {
        digits = "0123456789abcdefABCDEF";
    } else {
        l->pos = save;
    }
    accept_run(l, digits);
    if (accept(l, "."))
        accept_run(l, digits);
    if (accept(l, "eE")) {
        accept(l, "+-");
        accept_run(l, "0123456789");
    }
    return !is_alnum(peek(l));
}

/* Scans the units of a duration after its first digits. */
static int scan_duration_rest(promql_lexer *l) {
    if (!accept(l, "smhdwy"))
        return 0;
    accept(l, "s"); /* ms; bad pairs like "hs" fail when parsed */
    while (accept(l, "0123456789")) {
        accept_run(l, "0123456789");
        if (!accept(l, "smhdw"))
            return 0;
        accept(l, "s");
    }
    size_t sz;
    long r = next_rune(l, &sz);
    int ok = !(r >= 0 && r < 128 && is_alnum((int)r));
    l->pos -= sz;
    if (!ok)
        l->pos += sz; /* keep the bad character in the quoted text */
    return ok;
}

static void lex_number_or_duration(promql_lexer *l, promql_token *t) {
    if (scan_number(l)) {
        emit(l, t, PT_NUMBER);
        return;
    }
    /* Not a number: what was scanned is the start of a duration ("5m"; a
     * "1.5m" is caught when the duration is parsed). */
    if (scan_duration_rest(l)) {
        emit(l, t, PT_DURATION);
        return;
    }
    if (l->bracket_open)
        lex_error(l, t, "bad duration syntax: \"%.*s\"", (int)(l->pos - l->start), l->in + l->start);
    else
        lex_error(l, t, "bad number or duration syntax: \"%.*s\"", (int)(l->pos - l->start),
                  l->in + l->start);
}

/* ---- strings ---------------------------------------------------------------- */

static int digit_val(long c) {
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return 16;
}

/* Validates one escape after a backslash; 0 or an error set on t. */
static int lex_escape(promql_lexer *l, promql_token *t, int quote) {
    size_t sz;
    long ch = next_rune(l, &sz);
    int n;
    unsigned base;
    unsigned long max;
    if (ch == '\\' || (ch > 0 && ch < 128 && strchr(ESC_LETTERS, (int)ch)))
        return 0;
    switch (ch) {
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
        n = 3, base = 8, max = 255;
        break;
    case 'x': /* \xHH: a byte */
    case 'u': /* \uHHHH, \UHHHHHHHH: a code point */
    case 'U':
        n = ch == 'x' ? 2 : ch == 'u' ? 4 : 8;
        base = 16;
        max = ch == 'x' ? 255 : 0x10ffff;
        ch = next_rune(l, &sz);
        break;
    case LEX_EOF:
        lex_error(l, t, "escape sequence not terminated");
        return -1;
    default:
        if (ch == quote)
            return 0;
        {
            buf m = BUF_INIT;
            buf_puts(&m, "unknown escape sequence ");
            unicode_rune(&m, ch);
            lex_error_buf(l, t, &m);
        }
        return -1;
    }
    unsigned long x = 0;
    while (n > 0) {
        unsigned d = (unsigned)digit_val(ch);
        if (d >= base) {
            if (ch == LEX_EOF) {
                lex_error(l, t, "escape sequence not terminated");
                return -1;
            }
            buf m = BUF_INIT;
            buf_puts(&m, "illegal character ");
            unicode_rune(&m, ch);
            buf_puts(&m, " in escape sequence");
            lex_error_buf(l, t, &m);
            return -1;
        }
        x = x * base + d;
        n--;
        if (n > 0)
            ch = next_rune(l, &sz);
    }
    if (x > max || (x >= 0xd800 && x < 0xe000)) {
        lex_error(l, t, "escape sequence is an invalid Unicode code point");
        return -1;
    }
    return 0;
}

static void lex_string(promql_lexer *l, promql_token *t, int quote) {
    for (;;) {
        size_t sz;
        long r = next_rune(l, &sz);
        if (r == '\\') {
            if (lex_escape(l, t, quote) < 0)
                return;
        } else if (r == 0xfffd && sz == 1) {
            lex_error(l, t, "invalid UTF-8 rune");
            return;
        } else if (r == LEX_EOF || r == '\n') {
            lex_error(l, t, "unterminated quoted string");
            return;
        } else if (r == quote) {
            break;
        }
    }
    emit(l, t, PT_STRING);
}

static void lex_raw_string(promql_lexer *l, promql_token *t) {
    for (;;) {
        size_t sz;
        long r = next_rune(l, &sz);
        if (r == 0xfffd && sz == 1) {
            lex_error(l, t, "invalid UTF-8 rune");
            return;
        }
        if (r == LEX_EOF) {
            lex_error(l, t, "unterminated raw string");
            return;
        }
        if (r == '`')
            break;
    }
    emit(l, t, PT_STRING);
}

/* A string token when r opens one: 1, the token (or an error) set. */
static int lex_quoted(promql_lexer *l, promql_token *t, long r) {
    if (r == '"' || r == '\'')
        lex_string(l, t, (int)r);
    else if (r == '`')
        lex_raw_string(l, t);
    else
        return 0;
    return 1;
}

/* ---- identifiers ---------------------------------------------------------- */

static void lex_keyword_or_identifier(promql_lexer *l, promql_token *t) {
    int colon = 0;
    while (l->pos < l->len && (is_alnum((unsigned char)l->in[l->pos]) || l->in[l->pos] == ':')) {
        colon |= l->in[l->pos] == ':';
        l->pos++;
    }
    size_t n = l->pos - l->start;
    const char *w = l->in + l->start;
    if ((n == 3 && strncasecmp(w, "inf", 3) == 0) || (n == 3 && strncasecmp(w, "nan", 3) == 0)) {
        emit(l, t, PT_NUMBER);
        return;
    }
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (strlen(keywords[i].word) == n && strncasecmp(keywords[i].word, w, n) == 0) {
            emit(l, t, keywords[i].tok);
            return;
        }
    }
    emit(l, t, colon ? PT_METRIC_IDENT : PT_IDENT);
}

/* ---- states ------------------------------------------------------------------ */

/* Starts a token at the current position; a '#' comment there is passed
 * over to the end of its line, and then the result is 1 (start again). */
static int start_token(promql_lexer *l) {
    l->start = l->pos;
    if (l->pos >= l->len || l->in[l->pos] != '#')
        return 0;
    while (l->pos < l->len && l->in[l->pos] != '\n')
        l->pos++;
    return 1;
}

static void lex_inside_braces(promql_lexer *l, promql_token *t) {
    for (;;) {
        if (start_token(l))
            continue;
        size_t sz;
        long r = next_rune(l, &sz);
        if (r == LEX_EOF) {
            lex_error(l, t, "unexpected end of input inside braces");
            return;
        }
        if (r < 128 && is_space((int)r))
            continue;
        if (r < 128 && is_alpha((int)r)) {
            while (l->pos < l->len && is_alnum((unsigned char)l->in[l->pos]))
                l->pos++;
            emit(l, t, PT_IDENT);
            return;
        }
        if (lex_quoted(l, t, r))
            return;
        switch (r) {
        case ',':
            emit(l, t, PT_COMMA);
            return;
        case '=':
            if (accept(l, "~"))
                emit(l, t, PT_EQL_REGEX);
            else
                emit(l, t, PT_EQL);
            return;
        case '!': {
            long nr = next_rune(l, &sz);
            if (nr == '~') {
                emit(l, t, PT_NEQ_REGEX);
            } else if (nr == '=') {
                emit(l, t, PT_NEQ);
            } else {
                error_rune(l, t, "unexpected character after '!' inside braces: ", nr);
            }
            return;
        }
        case '{':
            error_rune(l, t, "unexpected left brace ", r);
            return;
        case '}':
            emit(l, t, PT_RBRACE);
            l->brace_open = 0;
            return;
        default:
            error_rune(l, t, "unexpected character inside braces: ", r);
            return;
        }
    }
}

/* The characters that are a token by themselves outside braces, and their
 * tokens. */
static const char ONE_CHAR_OPS[] = ",*/%+-^@";
static const promql_tok ONE_CHAR_TOKS[] = {PT_COMMA, PT_MUL, PT_DIV, PT_MOD, PT_ADD, PT_SUB, PT_POW, PT_AT};

/* Inside brackets, whether the word at l->start is a function duration
 * expressions may call (step, range, min_of, max_of). */
static int duration_function_ahead(const promql_lexer *l) {
    static const char *const words[] = {"step", "range", "min_of", "max_of"};
    size_t n = 0;
    while (l->start + n < l->len && is_alnum((unsigned char)l->in[l->start + n]))
        n++;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == n && strncmp(l->in + l->start, words[i], n) == 0)
            return 1;
    return 0;
}

static void lex_statements(promql_lexer *l, promql_token *t) {
    for (;;) {
        if (l->brace_open) {
            lex_inside_braces(l, t);
            return;
        }
        if (start_token(l))
            continue;
        size_t sz;
        long r = next_rune(l, &sz);
        if (r == LEX_EOF) {
            if (l->paren_depth != 0) {
                lex_error(l, t, "unclosed left parenthesis");
            } else if (l->bracket_open) {
                lex_error(l, t, "unclosed left bracket");
            } else {
                emit(l, t, PT_EOF);
                l->done = 1;
            }
            return;
        }
        if (r < 128 && is_space((int)r))
            continue;
        const char *one = r > 0 && r < 128 ? strchr(ONE_CHAR_OPS, (int)r) : NULL;
        if (one) {
            emit(l, t, ONE_CHAR_TOKS[one - ONE_CHAR_OPS]);
            return;
        }
        if (lex_quoted(l, t, r))
            return;
        switch (r) {
        case '=': {
            int c = peek(l);
            if (c == '=') {
                l->pos++;
                emit(l, t, PT_EQLC);
            } else if (c == '~') {
                error_rune(l, t, "unexpected character after '=': ", c);
            } else {
                emit(l, t, PT_EQL);
            }
            return;
        }
        case '!': {
            long c = next_rune(l, &sz);
            if (c == '=')
                emit(l, t, PT_NEQ);
            else
                error_rune(l, t, "unexpected character after '!': ", c);
            return;
        }
        case '<':
            emit(l, t, accept(l, "=") ? PT_LTE : accept(l, "/") ? PT_TRIM_UPPER : PT_LSS);
            return;
        case '>':
            emit(l, t, accept(l, "=") ? PT_GTE : accept(l, "/") ? PT_TRIM_LOWER : PT_GTR);
            return;
        case '(':
            emit(l, t, PT_LPAREN);
            l->paren_depth++;
            return;
        case ')':
            l->paren_depth--;
            if (l->paren_depth < 0) {
                l->start = l->pos; /* Prometheus emits the ')' first */
                error_rune(l, t, "unexpected right parenthesis ", r);
                return;
            }
            emit(l, t, PT_RPAREN);
            return;
        case '{':
            emit(l, t, PT_LBRACE);
            l->brace_open = 1;
            return;
        case '[':
            if (l->bracket_open) {
                error_rune(l, t, "unexpected left bracket ", r);
                return;
            }
            l->got_colon = 0;
            l->bracket_open = 1;
            emit(l, t, PT_LBRACKET);
            return;
        case ']':
            if (!l->bracket_open) {
                error_rune(l, t, "unexpected right bracket ", r);
                return;
            }
            l->bracket_open = 0;
            emit(l, t, PT_RBRACKET);
            return;
        case ':':
            if (l->bracket_open) {
                if (l->got_colon) {
                    error_rune(l, t, "unexpected colon ", r);
                    return;
                }
                l->got_colon = 1;
                emit(l, t, PT_COLON);
                return;
            }
            l->pos = l->start;
            lex_keyword_or_identifier(l, t);
            return;
        default:
            break;
        }
        if (r < 128 && (is_digit((int)r) || (r == '.' && is_digit(peek(l))))) {
            l->pos = l->start;
            lex_number_or_duration(l, t);
            return;
        }
        if (r < 128 && is_alpha((int)r)) {
            if (l->bracket_open && !duration_function_ahead(l)) {
                error_rune(l, t, "unexpected character in duration: ", r);
                return;
            }
            l->pos = l->start;
            lex_keyword_or_identifier(l, t);
            return;
        }
        error_rune(l, t, "unexpected character: ", r);
        return;
    }
}

void promql_lex_next(promql_lexer *l, promql_token *t) {
    if (l->done) {
        *t = l->last;
        return;
    }
    lex_statements(l, t);
    l->last = *t;
}

/* ---- number literals ------------------------------------------------------ */

static int all_in(const char *s, size_t n, const char *set) {
    for (size_t i = 0; i < n; i++)
        if (strchr(set, s[i]) == NULL)
            return 0;
    return n > 0;
}

/* Parses a number token like Prometheus: an integer with Go's base prefixes
 * (0x.., 0.. octal) first, else a float. */
int promql_parse_number(const char *s, size_t n, double *out) {
    char tmp[128];
    if (n == 0 || n >= sizeof tmp)
        goto as_float;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (n > 2 && tmp[0] == '0' && (tmp[1] == 'x' || tmp[1] == 'X') &&
        all_in(tmp + 2, n - 2, "0123456789abcdefABCDEF")) {
        errno = 0;
        unsigned long long v = strtoull(tmp + 2, NULL, 16);
        if (errno == 0 && v <= (unsigned long long)INT64_MAX) {
            *out = (double)v;
            return 0;
        }
        return -1; /* Go's ParseFloat wants a 'p' exponent in hex */
    }
    if (n > 1 && tmp[0] == '0' && all_in(tmp + 1, n - 1, "01234567")) {
        errno = 0;
        unsigned long long v = strtoull(tmp + 1, NULL, 8);
        if (errno == 0 && v <= (unsigned long long)INT64_MAX) {
            *out = (double)v;
            return 0;
        }
    }
as_float:
    if (n >= 3 && n < sizeof tmp) {
        if (strncasecmp(s, "inf", 3) == 0 && n == 3) {
            *out = INFINITY;
            return 0;
        }
        if (strncasecmp(s, "nan", 3) == 0 && n == 3) {
            *out = NAN;
            return 0;
        }
    }
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    /* Only decimal forms reach here: digits, one '.', an exponent with digits. */
    size_t i = 0, digits = 0;
    while (i < n && tmp[i] >= '0' && tmp[i] <= '9')
        i++, digits++;
    if (i < n && tmp[i] == '.') {
        i++;
        while (i < n && tmp[i] >= '0' && tmp[i] <= '9')
            i++, digits++;
    }
    if (digits == 0)
        return -1;
    if (i < n && (tmp[i] == 'e' || tmp[i] == 'E')) {
        i++;
        if (i < n && (tmp[i] == '+' || tmp[i] == '-'))
            i++;
        size_t ed = 0;
        while (i < n && tmp[i] >= '0' && tmp[i] <= '9')
            i++, ed++;
        if (ed == 0)
            return -1;
    }
    if (i != n)
        return -1;
    errno = 0;
    double v = strtod(tmp, NULL);
    if (errno == ERANGE && isinf(v))
        return -2;
    *out = v;
    return 0;
}

/* ---- token descriptions -------------------------------------------------- */

static const char *const punct[] = {
    [PT_LPAREN] = "(",   [PT_RPAREN] = ")", [PT_LBRACE] = "{", [PT_RBRACE] = "}", [PT_LBRACKET] = "[",
    [PT_RBRACKET] = "]", [PT_COMMA] = ",",  [PT_EQL] = "=",    [PT_COLON] = ":",
};

/* %q of s[0..n), limited to the first `maxrunes` runes when > 0. */
static void go_quote_prefix(buf *b, const char *s, size_t n, int maxrunes) {
    if (maxrunes > 0) {
        size_t i = 0;
        int k = 0;
        while (i < n && k < maxrunes) {
            size_t sz;
            decode_rune((const unsigned char *)s + i, n - i, &sz);
            i += sz;
            k++;
        }
        n = i;
    }
    promql_quote(b, s, n);
}

static size_t rune_count(const char *s, size_t n) {
    size_t i = 0, k = 0;
    while (i < n) {
        size_t sz;
        decode_rune((const unsigned char *)s + i, n - i, &sz);
        i += sz;
        k++;
    }
    return k;
}

void promql_tok_desc(const promql_lexer *l, const promql_token *t, buf *out) {
    const char *v = l->in + t->pos;
    size_t n = t->len;
    switch (t->type) {
    case PT_EOF:
        buf_puts(out, "end of input");
        return;
    case PT_ERROR:
        buf_puts(out, l->err);
        return;
    case PT_IDENT:
    case PT_METRIC_IDENT:
        buf_puts(out, t->type == PT_IDENT ? "identifier " : "metric identifier ");
        promql_quote(out, v, n);
        return;
    case PT_NUMBER:
    case PT_STRING:
    case PT_DURATION:
        buf_puts(out, t->type == PT_NUMBER ? "number " : t->type == PT_STRING ? "string " : "duration ");
        if (rune_count(v, n) > 10) {
            go_quote_prefix(out, v, n, 10);
            buf_puts(out, "...");
        } else {
            promql_quote(out, v, n);
        }
        return;
    default:
        break;
    }
    if (t->type <= PT_COLON) {
        buf_putc(out, '"');
        buf_puts(out, punct[t->type] ? punct[t->type] : "?");
        buf_putc(out, '"');
    } else if (t->type <= PT_ATAN2) {
        buf_printf(out, "<op:%.*s>", (int)n, v);
    } else if (t->type <= PT_LIMIT_RATIO) {
        buf_printf(out, "<aggr:%.*s>", (int)n, v);
    } else if (t->type <= PT_BOOL) {
        buf_printf(out, "<%.*s>", (int)n, v);
    } else {
        promql_quote(out, v, n);
    }
}

/* ---- unquoting ------------------------------------------------------------ */

char *promql_unquote(arena *a, const char *tok, size_t len, size_t *outlen) {
    /* The decoded text is never longer than the token. */
    char *out = arena_alloc(a, len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    if (len < 2) {
        *outlen = 0;
        return out;
    }
    const char *s = tok + 1;
    size_t n = len - 2;
    if (tok[0] == '`') {
        memcpy(out, s, n);
        out[n] = 0;
        *outlen = n;
        return out;
    }
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            out[o++] = s[i++];
            continue;
        }
        i++;
        if (i >= n)
            break;
        char c = s[i++];
        int digits = 0;
        unsigned base = 16;
        const char *letter = strchr(ESC_LETTERS, c);
        if (c && letter) {
            out[o++] = ESC_CHARS[letter - ESC_LETTERS];
            continue;
        }
        switch (c) {
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        default:
            if (c >= '0' && c <= '7') {
                digits = 2, base = 8;
                unsigned long x = (unsigned long)(c - '0');
                for (; digits > 0 && i < n; digits--)
                    x = x * 8 + (unsigned)digit_val(s[i++]);
                out[o++] = (char)(x & 0xff);
                continue;
            }
            out[o++] = c; /* \\ \" \' */
            continue;
        }
        unsigned long x = 0;
        for (; digits > 0 && i < n; digits--)
            x = x * base + (unsigned)digit_val(s[i++]);
        if (c == 'x') {
            out[o++] = (char)(x & 0xff); /* a raw byte, like Go */
        } else {
            /* At most 4 bytes from a 6+ character escape: fits. */
            o += encode_rune(out + o, (long)x);
        }
    }
    out[o] = 0;
    *outlen = o;
    if (memchr(out, 0, o)) { /* \x00, \u0000, \000: a NUL as kiln holds it, C0 80 (util/strnul.c) */
        *outlen = nul_in_len(out, o);
        out = arena_strndup_nul(a, out, o);
    }
    return out;
}
