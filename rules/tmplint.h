/*
 * tmplint.h - what template.c (parser, executor) and tmplfuncs.c (the
 * functions, printf, value printing) share.  Private to those two files.
 */
#ifndef KILN_RULES_TMPLINT_H
#define KILN_RULES_TMPLINT_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>

#include "rules/template.h"

#define TMPL_MAX_TEXT (1 << 20)
#define TMPL_MAX_DEPTH 100
/* strlen of Prometheus' "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
 * "{{$externalURL := .ExternalURL}}{{$value := .Value}}", prepended to every alert template */
#define TMPL_DEFS_LEN 112
#define TMPL_MAX_OUTPUT ((size_t)16 << 20) /* bytes one expansion may write */
#define TMPL_MAX_STEPS 1000000L /* a bound on the work of one expansion (Go has none; fuzzing needs one) */

/* Value kinds, with the Go type each stands for. */
enum {
    TV_NIL,    /* no value / untyped nil */
    TV_BOOL,   /* bool: i */
    TV_INT,    /* int: i */
    TV_FLOAT,  /* float64: f */
    TV_STR,    /* string: s, n */
    TV_LABELS, /* map[string]string: p = tmpl_label[pn], sorted by name */
    TV_ARGS,   /* map[string]interface{} from args: p = tv[pn] */
    TV_SAMPLE, /* *template.sample: p (NULL = nil pointer) */
    TV_VEC,    /* template.queryResult: p = tmpl_sample[pn] */
    TV_DATA,   /* the alert's struct: the dot at the start */
    TV_TIME,   /* *time.Time: i = Unix milliseconds */
};

typedef struct tv {
    int k;
    int64_t i;
    double f;
    const char *s;
    size_t n;
    const void *p;
    size_t pn;
} tv;

enum { A_CONST, A_NIL, A_DOT, A_FIELD, A_VAR, A_FUNC, A_PIPE };
enum { AT_NONE, AT_ARG, AT_CMD, AT_PIPE };
enum { N_TEXT, N_ACTION, N_IF, N_RANGE, N_WITH, N_BREAK, N_CONTINUE };

typedef struct pipe pipe;

typedef struct arg {
    int t;
    int pos;      /* Go's position: where a field chain starts, else the start */
    int src, end; /* its bytes in the text */
    tv c;         /* A_CONST */
    int var;      /* A_VAR: slot */
    int fn;       /* A_FUNC */
    pipe *p;      /* A_PIPE */
    const char **fields;
    int nfields;
    struct arg *next;
} arg;

typedef struct cmd {
    int pos;
    arg *args;
    int nargs;
    struct cmd *next;
} cmd;

struct pipe {
    int pos, end;
    int decl; /* 0, 1 ":=", 2 "=" */
    int nvars;
    int vars[2];          /* slots; -1: "$x =" of an undeclared $x, a runtime error in Go */
    const char *vname[2]; /* the variables as written */
    int vlen[2];
    cmd *cmds;
    int ncmds;
};

typedef struct node {
    int type;
    int pos;
    const char *text; /* N_TEXT */
    size_t len;
    pipe *pipe;
    struct node *list, *elselist;
    struct node *next;
} node;

struct tmpl {
    arena mem;
    char *text;
    char *name;
    node *root;
    int nslots;
};

/* Parameter kinds of functions. */
enum { PK_ANY, PK_STR, PK_SAMPLE, PK_VEC };

typedef struct tmpl_func {
    const char *name;
    int min, max; /* max -1: variadic */
    unsigned char params[3];
} tmpl_func;

extern const tmpl_func tmpl_funcs[];
enum { F_AND, F_OR }; /* the first two entries, evaluated lazily by the executor */

typedef struct tmpl_qres {
    tmpl_sample *v;
    size_t n;
    struct tmpl_qres *next;
} tmpl_qres;

/* One expansion's state. */
typedef struct tmpl_ex {
    const tmpl *t;
    const tmpl_data *d;
    arena a;
    tv *slots;
    jmp_buf jb;
    int code;             /* KILN_EINVAL (a template error) or KILN_ENOMEM, after longjmp */
    buf msg;              /* the error's text */
    int at_kind;          /* what the error is at: AT_ARG, AT_CMD or AT_PIPE */
    const void *at_ptr;   /* that arg, cmd or node */
    tmpl_qres *qres;      /* query results to give back */
    size_t out_start;     /* where this expansion's output begins */
    const pipe *cur_pipe; /* the pipeline being run, for errors Go reports at it */
    long steps;
} tmpl_ex;

/* Fails the expansion with Go's message: "template: NAME:L:C: executing ... : msg". */
void tmpl_fail(tmpl_ex *e, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void tmpl_oom(tmpl_ex *e) __attribute__((noreturn));
void *tmpl_alloc(tmpl_ex *e, size_t n);
int tmpl_func_lookup(const char *name, size_t n);
/* Calls function fn (not and/or) on converted arguments. */
void tmpl_call(tmpl_ex *e, int fn, tv *args, int nargs, tv *ret);
/* Appends v as Go's fmt %v prints it (top = not inside a container). */
void tmpl_print(buf *b, const tv *v, int top);
const char *tmpl_type_name(const tv *v);
extern const char tmpl_data_type[]; /* the Go type of the alert's data, for errors */
/* The index of the k-th of n args keys (arg0, arg1, ...) in string order. */
size_t tmpl_args_nth(size_t n, size_t k);
int tmpl_truth(const tv *v, int *ok);
int tmpl_utf8_decode(const char *s, size_t n, unsigned *r);
/* Writes rune r as UTF-8 at *o and advances *o (at most 4 bytes). */
void tmpl_put_utf8(char **o, unsigned r);
/* The labels sorted by name, in e's arena (the same when already sorted). */
const tmpl_label *tmpl_sorted(tmpl_ex *e, const tmpl_label *l, size_t n);

static inline tv tv_str(const char *s, size_t n) {
    tv v = {.k = TV_STR, .s = s, .n = n};
    return v;
}

#endif
