/*
 * ruletest.c - promtool's rule unit-test files (`kiln test rules`): the YAML
 * decoded into a ruletest_file the way Prometheus 2.42's promtool decodes it,
 * with yaml.v2's UnmarshalStrict, and its errors in yaml.v2's words, since
 * promtool prints them as they are:
 *
 *   yaml: line 3: did not find expected key              (syntax, from libyaml)
 *   yaml: unmarshal errors:                              (every type error and
 *     line 2: field foo not found in type main.unitTestFile   unknown key, in
 *     line 9: cannot unmarshal !!str `abc` into float64       document order)
 *   not a valid duration string: "5x"                    (a bad duration ends
 *                                                         the decoding at once)
 *
 * The document goes through libyaml twice: once for yaml.v2's syntax
 * messages (its parser is a port of libyaml, so the problems read the same;
 * the line is reckoned as yaml.v2 does), then through yamltree for the nodes.
 * Plain scalars are resolved as yaml.v2 resolves them (YAML 1.1: `yes` is a
 * bool, `0x1f` an int, `.inf` a float) for the messages and the float fields.
 *
 * Called by rules/unittest.c; threads: none of its own, one load per call.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/config.h"
#include "config/yamltree.h"

typedef yamltree_node ynode;

typedef struct tdec {
    arena *a;
    buf *msg;    /* yaml.v2's message */
    buf terrors; /* "\n  line N: ..." for each type error */
    int fatal;   /* a duration error: the message is in msg, stop */
    int oom;
} tdec;

/* ---- yaml.v2's view of a scalar ---------------------------------------------------- */

static int in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

/* Go's strconv.ParseInt(s, 0, 64) succeeds (base prefixes, underscores
 * already removed, an optional sign). */
static int go_int_syntax(const char *s) {
    if (*s == '+' || *s == '-')
        s++;
    const char *digits = "0123456789";
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        digits = "0123456789abcdefABCDEF", s += 2;
    else if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O'))
        digits = "01234567", s += 2;
    else if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B'))
        digits = "01", s += 2;
    else if (s[0] == '0' && s[1])
        digits = "01234567", s += 1;
    return *s && strspn(s, digits) == strlen(s);
}

/* yaml.v2's yamlStyleFloat: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int yaml_float_syntax(const char *s) {
    if (*s == '+' || *s == '-')
        s++;
    size_t n = strspn(s, "0123456789");
    if (n == 0) {
        if (*s != '.' || !strspn(s + 1, "0123456789"))
            return 0;
        s += 1 + strspn(s + 1, "0123456789");
    } else {
        s += n;
        if (*s == '.')
            s += 1 + strspn(s + 1, "0123456789");
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!strspn(s, "0123456789"))
            return 0;
        s += strspn(s, "0123456789");
    }
    return *s == 0;
}

enum { TAG_STR, TAG_NULL, TAG_BOOL, TAG_INT, TAG_FLOAT };
static const char *const tag_names[] = {"!!str", "!!null", "!!bool", "!!int", "!!float"};

/* yaml.v2's resolve() of a plain scalar; *f gets the number of an int or float. */
static int resolve(const ynode *n, double *f) {
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const bools[] = {"y",  "Y",  "yes",  "Yes",  "YES",  "n",     "N",     "no",
                                        "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
                                        "on", "On", "ON",   "off",  "Off",  "OFF",   NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    const char *s = n->str;
    *f = 0;
    if (!n->plain)
        return TAG_STR;
    if (n->is_null || in_list(s, nulls))
        return TAG_NULL;
    if (in_list(s, bools))
        return TAG_BOOL;
    if (in_list(s, infs) || in_list(s, ninfs) || in_list(s, nans)) {
        *f = in_list(s, nans) ? NAN : in_list(s, infs) ? INFINITY : -INFINITY;
        return TAG_FLOAT;
    }
    if (*s == '.') {
        char *end;
        *f = strtod(s, &end);
        return *end == 0 && yaml_float_syntax(s) ? TAG_FLOAT : TAG_STR;
    }
    if (!(*s == '+' || *s == '-' || (*s >= '0' && *s <= '9')))
        return TAG_STR;
    char plain[64];
    size_t k = 0;
    for (const char *p = s; *p && k + 1 < sizeof plain; p++)
        if (*p != '_')
            plain[k++] = *p;
    plain[k] = 0;
    if (k + 1 < sizeof plain && go_int_syntax(plain)) {
        const char *p = plain + (*plain == '+' || *plain == '-');
        int base = 10;
        if (p[0] == '0' && p[1] && strchr("xXoObB", p[1]))
            base = strchr("xX", p[1]) ? 16 : strchr("oO", p[1]) ? 8 : 2, p += 2;
        else if (p[0] == '0' && p[1])
            base = 8;
        double v = (double)strtoull(p, NULL, base);
        *f = *plain == '-' ? -v : v;
        return TAG_INT;
    }
    if (yaml_float_syntax(plain)) {
        *f = strtod(plain, NULL);
        return TAG_FLOAT;
    }
    return TAG_STR;
}

/* ---- errors ------------------------------------------------------------------------- */

/* yaml.v2's terror: "line N: cannot unmarshal !!tag `value` into TYPE". */
static void terror(tdec *d, const ynode *n, const char *type) {
    double f;
    buf_printf(&d->terrors, "\n  line %d: cannot unmarshal ", n->line);
    if (n->kind == YAMLTREE_SEQ) {
        buf_puts(&d->terrors, "!!seq");
    } else if (n->kind == YAMLTREE_MAP) {
        buf_puts(&d->terrors, "!!map");
    } else if (n->len > 10) {
        buf_printf(&d->terrors, "%s `%.7s...`", tag_names[resolve(n, &f)], n->str);
    } else {
        buf_printf(&d->terrors, "%s `%s`", tag_names[resolve(n, &f)], n->str);
    }
    buf_printf(&d->terrors, " into %s", type);
}

static void unknown_field(tdec *d, const ynode *key, const char *type) {
    buf_printf(&d->terrors, "\n  line %d: field %s not found in type %s", key->line, key->str, type);
}

static char *dup(tdec *d, const char *s, size_t n) {
    char *r = arena_strndup(d->a, s, n);
    if (!r)
        d->oom = 1;
    return r;
}

/* ---- the field decoders --------------------------------------------------------------- */

/* A string field: any scalar as written; null leaves it "". */
static void dec_string(tdec *d, const ynode *n, char **out) {
    if (n->kind != YAMLTREE_SCALAR)
        terror(d, n, "string");
    else if (!n->is_null)
        *out = dup(d, n->str, n->len);
}

/* model.Duration's UnmarshalYAML: the text as a string, then ParseDuration. */
static void dec_duration(tdec *d, const ynode *n, int64_t *ms) {
    kiln_err e;
    if (n->kind != YAMLTREE_SCALAR) {
        terror(d, n, "string");
        return;
    }
    if (n->is_null)
        return;
    if (n->len == 0) {
        buf_puts(d->msg, "empty duration string");
        d->fatal = 1;
    } else if (duration_parse(n->str, ms, &e) != 0) {
        buf_puts(d->msg, "not a valid duration string: ");
        go_quote(d->msg, n->str, n->len, '"');
        d->fatal = 1;
    }
}

static void dec_float(tdec *d, const ynode *n, double *out) {
    double f;
    if (n->kind != YAMLTREE_SCALAR) {
        terror(d, n, "float64");
        return;
    }
    int tag = resolve(n, &f);
    if (tag == TAG_INT || tag == TAG_FLOAT)
        *out = f;
    else if (tag != TAG_NULL)
        terror(d, n, "float64");
}

/* A sequence of `size`-byte items decoded by fn; null leaves it empty. */
static void dec_seq(tdec *d, const ynode *n, const char *type, void **items, size_t *count, size_t size,
                    void (*fn)(tdec *, const ynode *, void *)) {
    if (n->kind == YAMLTREE_SCALAR && n->is_null)
        return;
    if (n->kind != YAMLTREE_SEQ) {
        terror(d, n, type);
        return;
    }
    char *v = n->n ? arena_alloc(d->a, n->n * size) : NULL;
    if (n->n && !v) {
        d->oom = 1;
        return;
    }
    for (size_t i = 0; i < n->n && !d->fatal; i++)
        fn(d, n->kids[i], v + i * size);
    *items = v;
    *count = n->n;
}

static void dec_string_item(tdec *d, const ynode *n, void *out) {
    char **s = out;
    *s = "";
    dec_string(d, n, s);
}

/* map[string]string into config_label pairs (as written; the caller sorts). */
static void dec_strmap(tdec *d, const ynode *n, config_label **out, size_t *count) {
    if (n->kind == YAMLTREE_SCALAR && n->is_null)
        return;
    if (n->kind != YAMLTREE_MAP) {
        terror(d, n, "map[string]string");
        return;
    }
    config_label *ls = n->n ? arena_alloc(d->a, n->n * sizeof *ls) : NULL;
    if (n->n && !ls) {
        d->oom = 1;
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        ls[i].name = ls[i].value = "";
        dec_string(d, n->kids[2 * i], &ls[i].name);
        dec_string(d, n->kids[2 * i + 1], &ls[i].value);
    }
    *out = ls;
    *count = n->n;
}

/* A struct: the map's keys looked up in names[]; fn decodes field i. */
static void dec_struct(tdec *d, const ynode *n, const char *type, const char *const *names, void *out,
                       void (*fn)(tdec *, int field, const ynode *, void *)) {
    if (n->kind == YAMLTREE_SCALAR && n->is_null)
        return;
    if (n->kind != YAMLTREE_MAP) {
        terror(d, n, type);
        return;
    }
    for (size_t i = 0; i < n->n && !d->fatal; i++) {
        const ynode *k = n->kids[2 * i];
        int f = -1;
        for (int j = 0; names[j] && f < 0 && k->kind == YAMLTREE_SCALAR; j++)
            if (strcmp(names[j], k->str) == 0)
                f = j;
        if (f < 0)
            unknown_field(d, k, type);
        else
            fn(d, f, n->kids[2 * i + 1], out);
    }
}

static const char *const series_fields[] = {"series", "values", NULL};
static void series_field(tdec *d, int f, const ynode *v, void *out) {
    ruletest_series *s = out;
    dec_string(d, v, f == 0 ? &s->series : &s->values);
}
static void dec_series(tdec *d, const ynode *n, void *out) {
    ruletest_series *s = out;
    s->series = s->values = "";
    dec_struct(d, n, "main.series", series_fields, out, series_field);
}

static const char *const alert_fields[] = {"exp_labels", "exp_annotations", NULL};
static void alert_field(tdec *d, int f, const ynode *v, void *out) {
    ruletest_alert *a = out;
    if (f == 0)
        dec_strmap(d, v, &a->labels, &a->nlabels);
    else
        dec_strmap(d, v, &a->annotations, &a->nannotations);
}
static void dec_alert(tdec *d, const ynode *n, void *out) {
    dec_struct(d, n, "main.alert", alert_fields, out, alert_field);
}

static const char *const alert_case_fields[] = {"eval_time", "alertname", "exp_alerts", NULL};
static void alert_case_field(tdec *d, int f, const ynode *v, void *out) {
    ruletest_alert_case *c = out;
    if (f == 0)
        dec_duration(d, v, &c->eval_time_ms);
    else if (f == 1)
        dec_string(d, v, &c->alertname);
    else
        dec_seq(d, v, "[]main.alert", (void **)&c->exp_alerts, &c->nexp_alerts, sizeof *c->exp_alerts,
                dec_alert);
}
static void dec_alert_case(tdec *d, const ynode *n, void *out) {
    ruletest_alert_case *c = out;
    c->alertname = "";
    dec_struct(d, n, "main.alertTestCase", alert_case_fields, out, alert_case_field);
}

static const char *const sample_fields[] = {"labels", "value", NULL};
static void sample_field(tdec *d, int f, const ynode *v, void *out) {
    ruletest_sample *s = out;
    if (f == 0)
        dec_string(d, v, &s->labels);
    else
        dec_float(d, v, &s->value);
}
static void dec_sample(tdec *d, const ynode *n, void *out) {
    ruletest_sample *s = out;
    s->labels = "";
    dec_struct(d, n, "main.sample", sample_fields, out, sample_field);
}

static const char *const expr_case_fields[] = {"expr", "eval_time", "exp_samples", NULL};
static void expr_case_field(tdec *d, int f, const ynode *v, void *out) {
    ruletest_expr_case *c = out;
    if (f == 0)
        dec_string(d, v, &c->expr);
    else if (f == 1)
        dec_duration(d, v, &c->eval_time_ms);
    else
        dec_seq(d, v, "[]main.sample", (void **)&c->exp_samples, &c->nexp_samples, sizeof *c->exp_samples,
                dec_sample);
}
static void dec_expr_case(tdec *d, const ynode *n, void *out) {
    ruletest_expr_case *c = out;
    c->expr = "";
    dec_struct(d, n, "main.promqlTestCase", expr_case_fields, out, expr_case_field);
}

static const char *const group_fields[] = {"interval",
                                           "input_series",
                                           "alert_rule_test",
                                           "promql_expr_test",
                                           "external_labels",
                                           "external_url",
                                           "name",
                                           NULL};
static void group_field(tdec *d, int f, const ynode *v, void *out) {
    ruletest_group *g = out;
    switch (f) {
    case 0:
        dec_duration(d, v, &g->interval_ms);
        break;
    case 1:
        dec_seq(d, v, "[]main.series", (void **)&g->input_series, &g->ninput_series, sizeof *g->input_series,
                dec_series);
        break;
    case 2:
        dec_seq(d, v, "[]main.alertTestCase", (void **)&g->alert_rule_test, &g->nalert_rule_test,
                sizeof *g->alert_rule_test, dec_alert_case);
        break;
    case 3:
        dec_seq(d, v, "[]main.promqlTestCase", (void **)&g->promql_expr_test, &g->npromql_expr_test,
                sizeof *g->promql_expr_test, dec_expr_case);
        break;
    case 4:
        dec_strmap(d, v, &g->external_labels, &g->nexternal_labels);
        break;
    case 5:
        dec_string(d, v, &g->external_url);
        break;
    default:
        dec_string(d, v, &g->name);
    }
}
static void dec_group(tdec *d, const ynode *n, void *out) {
    ruletest_group *g = out;
    g->external_url = g->name = "";
    dec_struct(d, n, "main.testGroup", group_fields, out, group_field);
}

static const char *const file_fields[] = {"rule_files", "evaluation_interval", "group_eval_order", "tests",
                                          NULL};
static void file_field(tdec *d, int f, const ynode *v, void *out) {
    ruletest_file *t = out;
    if (f == 0)
        dec_seq(d, v, "[]string", (void **)&t->rule_files, &t->nrule_files, sizeof(char *), dec_string_item);
    else if (f == 1)
        dec_duration(d, v, &t->evaluation_interval_ms);
    else if (f == 2)
        dec_seq(d, v, "[]string", (void **)&t->group_eval_order, &t->ngroup_eval_order, sizeof(char *),
                dec_string_item);
    else
        dec_seq(d, v, "[]main.testGroup", (void **)&t->tests, &t->ntests, sizeof *t->tests, dec_group);
}

/* ---- syntax ------------------------------------------------------------------------------ */

/* yaml.v2's strict decoding reports a key set twice as a type error
 * ("line 6: field values already set in type main.series", `line 9: key
 * "job" already set in map`); yamltree refuses such a document, so the
 * duplicates are found here, on libyaml's events, knowing what Go type each
 * map decodes into, and listed with the unknown fields around them (the
 * other type errors of such a document are not). */
#define DUP_DEPTH 32

typedef struct dframe {
    int map;
    const char *type;     /* the Go type of a mapping, "map" for map[string]string, NULL: unchecked */
    const char *item;     /* a sequence's items' type */
    int want_key;         /* a mapping: the next node is a key */
    const char *val_type; /* the type of the current key's value ... */
    const char *val_item; /* ... or of its items */
    buf keys;             /* the keys seen, each NUL-terminated */
} dframe;

static const struct {
    const char *parent, *key, *type, *item;
} dup_children[] = {
    {"main.unitTestFile", "tests", NULL, "main.testGroup"},
    {"main.testGroup", "input_series", NULL, "main.series"},
    {"main.testGroup", "alert_rule_test", NULL, "main.alertTestCase"},
    {"main.testGroup", "promql_expr_test", NULL, "main.promqlTestCase"},
    {"main.testGroup", "external_labels", "map", NULL},
    {"main.alertTestCase", "exp_alerts", NULL, "main.alert"},
    {"main.alert", "exp_labels", "map", NULL},
    {"main.alert", "exp_annotations", "map", NULL},
    {"main.promqlTestCase", "exp_samples", NULL, "main.sample"},
};

static void dup_key(dframe *f, const yaml_event_t *ev, buf *dups, int *ndup) {
    const char *k = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    f->val_type = f->val_item = NULL;
    for (size_t i = 0; f->type && i < sizeof dup_children / sizeof *dup_children; i++) {
        if (strcmp(dup_children[i].parent, f->type) == 0 && strcmp(dup_children[i].key, k) == 0) {
            f->val_type = dup_children[i].type;
            f->val_item = dup_children[i].item;
        }
    }
    if (!f->type || strcmp(k, "<<") == 0)
        return;
    static const struct {
        const char *type;
        const char *const *fields;
    } structs[] = {{"main.unitTestFile", file_fields}, {"main.testGroup", group_fields},
                   {"main.series", series_fields},     {"main.alertTestCase", alert_case_fields},
                   {"main.alert", alert_fields},       {"main.promqlTestCase", expr_case_fields},
                   {"main.sample", sample_fields}};
    for (size_t i = 0; i < sizeof structs / sizeof *structs; i++) {
        if (strcmp(structs[i].type, f->type) != 0)
            continue;
        size_t j = 0;
        while (structs[i].fields[j] && strcmp(structs[i].fields[j], k) != 0)
            j++;
        if (!structs[i].fields[j]) { /* reported with the duplicates, as yaml.v2 lists both */
            buf_printf(dups, "\n  line %zu: field %s not found in type %s", ev->start_mark.line + 1, k,
                       f->type);
            return;
        }
    }
    for (size_t off = 0; off < f->keys.len; off += strlen(f->keys.data + off) + 1) {
        if (strcmp(f->keys.data + off, k) != 0)
            continue;
        (*ndup)++;
        if (strcmp(f->type, "map") == 0) {
            buf_printf(dups, "\n  line %zu: key ", ev->start_mark.line + 1);
            go_quote(dups, k, n, '"');
            buf_puts(dups, " already set in map");
        } else {
            buf_printf(dups, "\n  line %zu: field %s already set in type %s", ev->start_mark.line + 1, k,
                       f->type);
        }
        return;
    }
    buf_append(&f->keys, k, n + 1);
}

/* Follows one event of the first document through the frames. */
static void dup_event(dframe *st, int *depth, int *skip, const yaml_event_t *ev, buf *dups, int *ndup) {
    dframe *top = *depth ? &st[*depth - 1] : NULL;
    int opens = ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT;
    int closes = ev->type == YAML_MAPPING_END_EVENT || ev->type == YAML_SEQUENCE_END_EVENT;
    if (*skip) { /* inside what is nested too deep to follow */
        *skip += opens - closes;
        return;
    }
    if (closes) {
        buf_free(&top->keys);
        if (--*depth && st[*depth - 1].map)
            st[*depth - 1].want_key = 1;
        return;
    }
    if (top && top->map && top->want_key) {
        top->want_key = 0;
        if (ev->type == YAML_SCALAR_EVENT)
            dup_key(top, ev, dups, ndup);
        else
            top->val_type = top->val_item = NULL;
        if (!opens)
            return;
    } else if (top && top->map && !opens) {
        top->want_key = 1;
        return;
    }
    if (opens && *depth == DUP_DEPTH)
        *skip = 1;
    if (!opens || *skip)
        return;
    dframe *f = &st[(*depth)++];
    memset(f, 0, sizeof *f);
    f->map = ev->type == YAML_MAPPING_START_EVENT;
    f->want_key = f->map;
    if (!top)
        f->type = f->map ? "main.unitTestFile" : NULL;
    else if (top->map)
        f->type = f->map ? top->val_type : NULL, f->item = f->map ? NULL : top->val_item;
    else
        f->type = f->map ? top->item : NULL;
}

/* Runs libyaml over the document; on a syntax error writes yaml.v2's
 * message ("yaml: line N: PROBLEM") to msg and returns KILN_EINVAL, and so
 * on keys set twice ("yaml: unmarshal errors:" and a line each).  *first
 * becomes the length of the first document: yaml.v2 decodes only that one. */
static int check_syntax(const char *data, size_t len, buf *msg, size_t *first) {
    int docs = 0, depth = 0, skip = 0, ndup = 0;
    dframe st[DUP_DEPTH];
    buf dups = BUF_INIT;
    *first = len;
    yaml_parser_t p;
    yaml_event_t ev;
    int rc = 0;
    if (!yaml_parser_initialize(&p))
        return KILN_ENOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.error == YAML_MEMORY_ERROR) {
                rc = KILN_ENOMEM;
                break;
            }
            /* yaml.v2's parser.fail(): the problem's 0-based line, one more
             * for a scanner error, else the context's line */
            size_t line = 0;
            if (p.problem_mark.line != 0)
                line = p.problem_mark.line + (p.error == YAML_SCANNER_ERROR);
            else if (p.context_mark.line != 0)
                line = p.context_mark.line;
            buf_puts(msg, "yaml: ");
            if (line)
                buf_printf(msg, "line %zu: ", line);
            buf_puts(msg, p.problem ? p.problem : "unknown problem parsing YAML content");
            rc = KILN_EINVAL;
            break;
        }
        int end = ev.type == YAML_STREAM_END_EVENT;
        if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs == 2)
            *first = ev.start_mark.index;
        if (docs == 1 && ev.type != YAML_DOCUMENT_START_EVENT && ev.type != YAML_DOCUMENT_END_EVENT)
            dup_event(st, &depth, &skip, &ev, &dups, &ndup);
        yaml_event_delete(&ev);
        if (end)
            break;
    }
    while (depth > 0)
        buf_free(&st[--depth].keys);
    if (rc == 0 && ndup) { /* else the decoder reports the unknown fields with the other errors */
        buf_puts(msg, "yaml: unmarshal errors:");
        buf_append(msg, dups.data, dups.len);
        rc = buf_error(&dups) ? KILN_ENOMEM : KILN_EINVAL;
    }
    buf_free(&dups);
    yaml_parser_delete(&p);
    return rc;
}

/* ---- the API ------------------------------------------------------------------------------- */

int ruletest_load_string(const char *data, size_t len, ruletest_file **out, buf *msg) {
    ruletest_file *t = calloc(1, sizeof *t);
    arena scratch;
    ynode *root = NULL;
    kiln_err e = {0};
    tdec d = {.msg = msg, .terrors = BUF_INIT};
    int rc;
    *out = NULL;
    arena_init(&scratch, 0);
    if (!t)
        return KILN_ENOMEM;
    arena_init(&t->mem, 0);
    d.a = &t->mem;
    if ((rc = check_syntax(data, len, msg, &len)) != 0)
        goto fail;
    if ((rc = yamltree_parse("", data, len, &scratch, &root, &e)) != 0) {
        const char *m = e.msg[0] == ':' ? e.msg + 1 : e.msg, *anchor = strstr(m, ": unknown anchor ");
        if (anchor)
            buf_printf(msg, "yaml: unknown anchor '%s' referenced", anchor + strlen(": unknown anchor "));
        else /* what yaml.v2 reads otherwise (duplicate keys, limits): kiln's words without the name */
            buf_puts(msg, m);
        goto fail;
    }
    if (root)
        dec_struct(&d, root, "main.unitTestFile", file_fields, t, file_field);
    if (d.oom || buf_error(&d.terrors) != 0) {
        rc = KILN_ENOMEM;
        goto fail;
    }
    if (d.fatal) {
        rc = KILN_EINVAL;
        goto fail;
    }
    if (d.terrors.len) {
        buf_puts(msg, "yaml: unmarshal errors:");
        buf_append(msg, d.terrors.data, d.terrors.len);
        rc = KILN_EINVAL;
        goto fail;
    }
    buf_free(&d.terrors);
    arena_free(&scratch);
    *out = t;
    return 0;
fail:
    if (rc == KILN_ENOMEM) {
        buf_reset(msg);
        buf_puts(msg, "out of memory");
    }
    buf_free(&d.terrors);
    arena_free(&scratch);
    ruletest_free(t);
    return rc;
}

void ruletest_free(ruletest_file *t) {
    if (!t)
        return;
    arena_free(&t->mem);
    free(t);
}
