/*
 * rulefile.c - Prometheus' rule files: loads `groups[]` of recording and
 * alerting rules into a rulefile_set, with promtool's checks and
 * file:line:col in every error (config.h, "rule files", has the model).
 *
 * A file goes through three steps:
 *   1. yamltree_parse: YAML to nodes with positions (duplicate keys fail);
 *   2. decode_section with the tables below: shape, types, durations and
 *      unknown keys, as the configuration is decoded; the first error ends
 *      the file (Go's strict unmarshalling stops there as well);
 *   3. check_groups: Prometheus' rulefmt Validate, walking the decoded
 *      groups beside their nodes (the i-th group is the i-th item of
 *      `groups`, the j-th rule the j-th item of its `rules`) for positions.
 *      Every error is reported and the walk goes on, as promtool lists
 *      them all.  The words are promtool's; the positions point at the key
 *      or value at fault where promtool has none (label names) or a
 *      different one (`for` in a recording rule: promtool points at
 *      `record`), and at the rule where a key is missing (promtool: 0:0).
 *
 * Known differences from promtool 2.42 (Debian's): group `labels` and
 * `query_offset` are accepted (Prometheus 3's format; 2.42 rejects them),
 * and a file of several YAML documents is refused (yaml.v3 reads the first).
 *
 * Called by cmd/kiln/main.c (--check-rules) and the rule manager (rules/)
 * at start and on reload.  Threading: a load touches nothing shared; a set
 * is read-only once loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/schema.h"

/* ---- the tables ------------------------------------------------------------------ */

#define FIELD(T, f) .off = offsetof(T, f)
#define ARRAY(T, f) .off = offsetof(T, f), .noff = offsetof(T, n##f)
#define SECTION(name_, keys_, ...)                                                                           \
    { .name = name_, .keys = keys_, .nkeys = sizeof keys_ / sizeof keys_[0], __VA_ARGS__ }

/* record and alert are held apart until the rule's finish hook picks one */
typedef struct rule_tmp {
    char *record, *alert;
} rule_tmp;

/* The group's limit is a Go int: its text is read by the group's finish hook. */
typedef struct group_tmp {
    char *limit;
} group_tmp;

/* One file: its groups, before they join the set. */
typedef struct rule_doc {
    rulefile_group *groups;
    size_t ngroups;
} rule_doc;

/* Go's yaml.Node keeps a null scalar's text ("~", "null"): Prometheus
 * reads record, alert and expr from the node, so `record: null` names a
 * metric "null".  A plain empty value stays "". */
static int keep_null_text(dec *d, const ynode *v, void *field, size_t n) {
    (void)n;
    char **s = field;
    if (!*s && !(*s = decode_strdup(d, v->str)))
        return decode_oom(d);
    return 0;
}

static int rule_finish(dec *d, void *obj, const schema_seen *s) {
    rulefile_rule *r = obj;
    const rule_tmp *t = s->tmp;
    /* both or neither is an error check_groups reports; the name is the
     * alert's then, as in Prometheus' messages */
    r->kind = t->alert && *t->alert ? RULEFILE_ALERT : t->record && *t->record ? RULEFILE_RECORD : 0;
    r->name = r->kind == RULEFILE_ALERT ? t->alert : t->record;
    if (!r->name && !(r->name = decode_strdup(d, "")))
        return decode_oom(d);
    if (!r->expr && !(r->expr = decode_strdup(d, "")))
        return decode_oom(d);
    r->line = s->map ? s->map->line : 1;
    r->col = s->map ? s->map->col : 1;
    return 0;
}

static const schema_key rule_keys[] = {
    {"record", SCHEMA_STRING, FIELD(rule_tmp, record), .flags = SCHEMA_TMP, .check = keep_null_text},
    {"alert", SCHEMA_STRING, FIELD(rule_tmp, alert), .flags = SCHEMA_TMP, .check = keep_null_text},
    {"expr", SCHEMA_STRING, FIELD(rulefile_rule, expr), .check = keep_null_text},
    {"for", SCHEMA_DURATION, FIELD(rulefile_rule, for_ms)},
    {"keep_firing_for", SCHEMA_DURATION, FIELD(rulefile_rule, keep_firing_for_ms)},
    {"labels", SCHEMA_LABELS, ARRAY(rulefile_rule, labels)},
    {"annotations", SCHEMA_LABELS, ARRAY(rulefile_rule, annotations)},
};

static const schema_section rule_sec = SECTION("rule", rule_keys, .size = sizeof(rulefile_rule),
                                               .tmp_size = sizeof(rule_tmp), .finish = rule_finish);

static int group_finish(dec *d, void *obj, const schema_seen *s) {
    rulefile_group *g = obj;
    const group_tmp *t = s->tmp;
    const ynode *off = decode_at(s, "query_offset");
    g->has_query_offset = off != s->map && !(off->kind == YAMLTREE_SCALAR && off->is_null);
    if (!g->name && !(g->name = decode_strdup(d, "")))
        return decode_oom(d);
    g->line = s->map ? s->map->line : 1;
    g->col = s->map ? s->map->col : 1;
    if (!t->limit)
        return 0;
    /* an int as yaml.v3 reads one into Go's int: a plain, signed decimal */
    const ynode *v = decode_at(s, "limit");
    const char *p = t->limit;
    int neg = *p == '-';
    uint64_t n = 0;
    p += *p == '-' || *p == '+';
    if (!v->plain || !*p)
        goto bad;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        if (n > ((uint64_t)INT64_MAX - 9) / 10)
            return decode_fail(d, v, "integer out of range for \"limit\": \"%.100s\"", t->limit);
        n = n * 10 + (uint64_t)(*p - '0');
    }
    g->limit = neg ? -(int64_t)n : (int64_t)n;
    return 0;
bad:
    return decode_fail(d, v, "expected an integer for \"limit\", got \"%.100s\"", t->limit);
}

static const schema_key group_keys[] = {
    {"name", SCHEMA_STRING, FIELD(rulefile_group, name)},
    {"interval", SCHEMA_DURATION, FIELD(rulefile_group, interval_ms)},
    {"limit", SCHEMA_STRING, FIELD(group_tmp, limit), .flags = SCHEMA_TMP},
    {"query_offset", SCHEMA_DURATION, FIELD(rulefile_group, query_offset_ms)},
    {"labels", SCHEMA_LABELS, ARRAY(rulefile_group, labels)},
    {"rules", SCHEMA_LIST, ARRAY(rulefile_group, rules), .sub = &rule_sec},
};

static const schema_section group_sec = SECTION("rule group", group_keys, .size = sizeof(rulefile_group),
                                                .tmp_size = sizeof(group_tmp), .finish = group_finish);

static const schema_key doc_keys[] = {
    {"groups", SCHEMA_LIST, ARRAY(rule_doc, groups), .sub = &group_sec},
};

static const schema_section doc_sec =
    SECTION("the rule file", doc_keys, .size = sizeof(rule_doc), .null_ok = 1, .top = 1);

/* ---- templates ------------------------------------------------------------------- */

/* Skips a quoted item of an action starting at *p (its opening quote q):
 * returns the character after its close, or NULL when it never closes
 * (strings and character constants also end at a newline, as in Go). */
static const char *skip_quoted(const char *p, char q) {
    for (p++; *p && *p != q; p++) {
        if (q != '`' && *p == '\n')
            return NULL;
        if (q != '`' && *p == '\\' && p[1])
            p++;
    }
    return *p ? p + 1 : NULL;
}

int rulefile_template_balanced(const char *name, const char *text, kiln_err *err) {
    int line = 1;
    const char *what = NULL;
    for (const char *p = text; *p;) {
        if (p[0] != '{' || p[1] != '{') {
            line += *p++ == '\n';
            continue;
        }
        p += 2;
        if (p[0] == '-' && p[1] == ' ')
            p++; /* a trim marker: a comment may follow it */
        while (p[0] == ' ' || p[0] == '\t' || p[0] == '\n' || p[0] == '\r')
            line += *p++ == '\n';
        if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            if (!end) {
                what = "unclosed comment";
                break;
            }
            for (; p < end; p++)
                line += *p == '\n';
            p = end + 2;
        }
        while (*p && !(p[0] == '}' && p[1] == '}')) {
            if (*p == '"' || *p == '`' || *p == '\'') {
                const char *q = skip_quoted(p, *p);
                if (!q) {
                    what = *p == '"'   ? "unterminated quoted string"
                           : *p == '`' ? "unterminated raw quoted string"
                                       : "unterminated character constant";
                    break;
                }
                for (; p < q; p++)
                    line += *p == '\n';
                continue;
            }
            line += *p++ == '\n';
        }
        if (what)
            break;
        if (!*p) {
            what = "unclosed action";
            break;
        }
        p += 2;
    }
    if (!what)
        return 0;
    return kiln_err_set(err, KILN_EINVAL, "template: %.200s:%d: %s", name, line, what);
}

/* ---- checks (Prometheus' rulefmt Validate) ------------------------------------------- */

/* One load: the set being built and where its errors go. */
typedef struct loader {
    const rulefile_opts *o;
    kiln_err *err;
    int nerr;
    rulefile_set *set;
    rulefile_group *groups; /* malloc'd while loading; copied into the set's arena at the end */
    size_t ngroups, capgroups;
    arena scratch; /* a file's nodes, freed after each file */
} loader;

/* Reports msg: the first error goes to err; each goes to o->report.
 * Returns 0 to go on (a report hook wants every error) or KILN_EINVAL to
 * stop. */
static int report_msg(loader *L, int code, const char *msg) {
    if (L->nerr++ == 0)
        kiln_err_set(L->err, code, "%s", msg);
    if (L->o->report) {
        L->o->report(L->o->data, msg);
        return 0;
    }
    return code;
}

/* Reports "file:line:col: " + a rule's (or group's) prefix + the message. */
static int report(loader *L, const char *file, const ynode *at, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int report(loader *L, const char *file, const ynode *at, const char *prefix, const char *fmt, ...) {
    char msg[1200], text[KILN_ERR_MSG_MAX]; /* room for all: report_msg cuts to KILN_ERR_MSG_MAX */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%.300s:%d:%d: %.330s%s", file, at->line, at->col, prefix, text);
    return report_msg(L, KILN_EINVAL, msg);
}

/* The value (or, with key set, the key) node of `name` in map m, or NULL. */
static const ynode *map_find(const ynode *m, const char *name, int key) {
    for (size_t i = 0; m && m->kind == YAMLTREE_MAP && i < m->n; i++)
        if (m->kids[2 * i]->kind == YAMLTREE_SCALAR && strcmp(m->kids[2 * i]->str, name) == 0)
            return m->kids[2 * i + !key];
    return NULL;
}

/* The node of key `name` in map m, or m itself when it is not there. */
static const ynode *key_or_map(const ynode *m, const char *name) {
    const ynode *k = map_find(m, name, 1);
    return k ? k : m;
}

/* Label names in a map of labels (its node m): legacy names, and not
 * __name__ unless annotations (which may use it). */
static int check_names(loader *L, const char *file, const ynode *m, const char *prefix,
                       const config_label *ls, size_t n, int annotations) {
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *k = ls[i].name;
        if (!label_name_valid(k, strlen(k)) || (!annotations && strcmp(k, "__name__") == 0))
            rc = report(L, file, m->kids[2 * i], prefix, "invalid %s name: %.100s",
                        annotations ? "annotation" : "label", k);
    }
    return rc;
}

/* The templates of an alerting rule's labels or annotations. */
static int check_templates(loader *L, const char *file, const ynode *m, const char *prefix, const char *tname,
                           const config_label *ls, size_t n, const char *what) {
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        kiln_err e = {0};
        int bad = L->o->check_template ? L->o->check_template(tname, ls[i].value, &e)
                                       : rulefile_template_balanced(tname, ls[i].value, &e);
        if (bad)
            rc = report(L, file, m->kids[2 * i + 1], prefix, "%s \"%.100s\": %s", what, ls[i].name, e.msg);
    }
    return rc;
}

static int check_rule(loader *L, const char *file, const char *group, size_t idx, const rulefile_rule *r,
                      const ynode *m) {
    char prefix[320], tname[128];
    const ynode *rec = map_find(m, "record", 0), *alert = map_find(m, "alert", 0);
    int has_rec = rec && rec->kind == YAMLTREE_SCALAR && rec->len > 0;
    int has_alert = alert && alert->kind == YAMLTREE_SCALAR && alert->len > 0;
    int rc = 0;
    snprintf(prefix, sizeof prefix, "group \"%.100s\", rule %zu, \"%.100s\": ", group, idx + 1, r->name);
#define CHECK(cond, at, ...)                                                                                 \
    do {                                                                                                     \
        if ((cond) && (rc = report(L, file, at, prefix, __VA_ARGS__)) != 0)                                  \
            return rc;                                                                                       \
    } while (0)
    CHECK(has_rec && has_alert, rec, "only one of 'record' and 'alert' must be set");
    CHECK(!has_rec && !has_alert, m, "one of 'record' or 'alert' must be set");
    if (!*r->expr) {
        CHECK(1, map_find(m, "expr", 0) ? map_find(m, "expr", 0) : m, "field 'expr' must be set in rule");
    } else if (L->o->check_expr) {
        kiln_err e = {0};
        CHECK(L->o->check_expr(r->expr, &e) != 0, map_find(m, "expr", 0), "could not parse expression: %s",
              e.msg);
    }
    if (has_rec) { /* also when alert is set too, as in Prometheus */
        CHECK(r->nannotations > 0, key_or_map(m, "annotations"),
              "invalid field 'annotations' in recording rule");
        CHECK(r->for_ms != 0, key_or_map(m, "for"), "invalid field 'for' in recording rule");
        CHECK(r->keep_firing_for_ms != 0, key_or_map(m, "keep_firing_for"),
              "invalid field 'keep_firing_for' in recording rule");
        CHECK(!metric_name_valid(rec->str, rec->len), rec, "invalid recording rule name: %.100s", rec->str);
    }
#undef CHECK
    const ynode *labels = map_find(m, "labels", 0), *ann = map_find(m, "annotations", 0);
    if ((rc = check_names(L, file, labels, prefix, r->labels, r->nlabels, 0)) != 0 ||
        (rc = check_names(L, file, ann, prefix, r->annotations, r->nannotations, 1)) != 0)
        return rc;
    if (!has_alert)
        return 0; /* Prometheus expands the templates of alerts only */
    snprintf(tname, sizeof tname, "__alert_%.100s", r->name);
    if ((rc = check_templates(L, file, labels, prefix, tname, r->labels, r->nlabels, "label")) != 0)
        return rc;
    return check_templates(L, file, ann, prefix, tname, r->annotations, r->nannotations, "annotation");
}

/* Validates the groups of one file, doc, decoded from root. */
static int check_groups(loader *L, const char *file, const rule_doc *doc, const ynode *root) {
    const ynode *gs = map_find(root, "groups", 0);
    int rc;
    for (size_t i = 0; i < doc->ngroups; i++) {
        const rulefile_group *g = &doc->groups[i];
        const ynode *gm = gs->kids[i]; /* promtool points at the group for its name's errors */
        if (!*g->name && (rc = report(L, file, gm, "", "Groupname must not be empty")) != 0)
            return rc;
        /* a file has a few groups: a quadratic search costs nothing */
        for (size_t j = 0; j < i; j++)
            if (strcmp(doc->groups[j].name, g->name) == 0) {
                if ((rc = report(L, file, gm, "", "groupname: \"%.100s\" is repeated in the same file",
                                 g->name)) != 0)
                    return rc;
                break;
            }
        char prefix[160];
        snprintf(prefix, sizeof prefix, "group \"%.100s\": ", g->name);
        if ((rc = check_names(L, file, map_find(gm, "labels", 0), prefix, g->labels, g->nlabels, 0)) != 0)
            return rc;
        const ynode *rs = map_find(gm, "rules", 0);
        for (size_t j = 0; j < g->nrules; j++)
            if ((rc = check_rule(L, file, g->name, j, &g->rules[j], rs->kids[j])) != 0)
                return rc;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------------------ */

/* Loads one document into L's set; name is already a string of the set. */
static int load_doc(loader *L, const char *name, const char *data, size_t len) {
    ynode *root = NULL;
    rule_doc doc = {0};
    kiln_err e = {0};
    int rc;
    arena_init(&L->scratch, 0);
    if (len > CONFIG_MAX_BYTES) {
        rc = kiln_err_set(&e, KILN_ELIMIT, "%s: the document is %zu bytes, more than the limit of %u bytes",
                          name, len, (unsigned)CONFIG_MAX_BYTES);
        goto fail;
    }
    if ((rc = yamltree_parse(name, data, len, &L->scratch, &root, &e)) != 0)
        goto fail;
    dec d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.a = &L->set->mem;
    d.scratch = &L->scratch;
    d.err = &e;
    strtab_init(&d.regexes, &L->scratch);
    rc = decode_section(&d, &doc_sec, root, &doc);
    strtab_free(&d.regexes);
    if (rc)
        goto fail;
    int before = L->nerr;
    if ((rc = check_groups(L, name, &doc, root)) != 0 || L->nerr > before) {
        arena_free(&L->scratch);
        return KILN_EINVAL;
    }
    if (doc.ngroups &&
        array_grow((void **)&L->groups, &L->capgroups, L->ngroups + doc.ngroups, sizeof *L->groups) != 0) {
        rc = kiln_err_set(&e, KILN_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    for (size_t i = 0; i < doc.ngroups; i++) {
        doc.groups[i].file = name;
        L->set->nrules += doc.groups[i].nrules;
        L->groups[L->ngroups++] = doc.groups[i];
    }
    arena_free(&L->scratch);
    return 0;
fail:
    arena_free(&L->scratch);
    report_msg(L, rc, e.msg);
    return rc;
}

/* Reads path whole (a regular file of at most CONFIG_MAX_BYTES) into a
 * malloc'd, NUL-terminated buffer. */
static int read_file(const char *path, char **data, size_t *len, kiln_err *err) {
    struct stat st;
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    *data = NULL;
    *len = 0;
    if (fd < 0)
        return kiln_err_set(err, errno == ENOENT ? KILN_ENOENT : KILN_EIO, "open %s: %s", path,
                            strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = kiln_err_set(err, KILN_EIO, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size > CONFIG_MAX_BYTES)
        rc = kiln_err_set(err, KILN_ELIMIT, "%s: the document is %lld bytes, more than the limit of %u bytes",
                          path, (long long)st.st_size, (unsigned)CONFIG_MAX_BYTES);
    else if (!(*data = malloc((size_t)st.st_size + 1)))
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
    while (rc == 0 && *len < (size_t)st.st_size) {
        ssize_t r = read(fd, *data + *len, (size_t)st.st_size - *len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = kiln_err_set(err, KILN_EIO, "read %s: %s", path, strerror(errno));
        if (r <= 0)
            break; /* a file that shrank is read as far as it goes */
        *len += (size_t)r;
    }
    if (*data)
        (*data)[*len] = 0;
    if (rc) {
        free(*data);
        *data = NULL;
    }
    close(fd);
    return rc;
}

/* Adds path to the set's files (unless it is there) and loads it. */
static int load_path(loader *L, const char *path, const char *data, size_t len, int from_disk) {
    rulefile_set *s = L->set;
    for (size_t i = 0; i < s->nfiles; i++)
        if (strcmp(s->files[i], path) == 0)
            return 0; /* matched by two globs: its groups are in once */
    char *name = arena_strndup(&s->mem, path, strlen(path));
    char **files = arena_alloc(&s->mem, (s->nfiles + 1) * sizeof *files);
    if (!name || !files) {
        kiln_err e;
        kiln_err_set(&e, KILN_ENOMEM, "%s: out of memory", path);
        report_msg(L, KILN_ENOMEM, e.msg);
        return KILN_ENOMEM;
    }
    if (s->nfiles)
        memcpy(files, s->files, s->nfiles * sizeof *files);
    files[s->nfiles++] = name;
    s->files = files;
    if (!from_disk)
        return load_doc(L, name, data, len);
    char *text = NULL;
    kiln_err e = {0};
    int rc = read_file(path, &text, &len, &e);
    if (rc)
        report_msg(L, rc, e.msg);
    else
        rc = load_doc(L, name, text, len);
    free(text);
    return rc;
}

static int loader_init(loader *L, const rulefile_opts *o, kiln_err *err) {
    static const rulefile_opts none;
    memset(L, 0, sizeof *L);
    L->o = o ? o : &none;
    L->err = err;
    if (!(L->set = calloc(1, sizeof *L->set)))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory loading rule files");
    arena_init(&L->set->mem, 0);
    return 0;
}

/* Ends a load: the set with its groups on success (rc 0 and no error
 * reported), else nothing. */
static int loader_end(loader *L, int rc, rulefile_set **out) {
    rulefile_set *s = L->set;
    if (rc == 0 && L->nerr > 0)
        rc = L->err && L->err->code ? L->err->code : KILN_EINVAL;
    if (rc == 0 && L->ngroups) {
        if (!(s->groups = arena_alloc(&s->mem, L->ngroups * sizeof *s->groups)))
            rc = kiln_err_set(L->err, KILN_ENOMEM, "out of memory loading rule files");
        else
            memcpy(s->groups, L->groups, L->ngroups * sizeof *s->groups);
        s->ngroups = L->ngroups;
    }
    free(L->groups);
    if (rc) {
        rulefile_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

int rulefile_load_string(const char *name, const char *yaml, size_t len, const rulefile_opts *o,
                         rulefile_set **out, kiln_err *err) {
    loader L;
    *out = NULL;
    int rc = loader_init(&L, o, err);
    if (rc)
        return rc;
    return loader_end(&L, load_path(&L, name ? name : "<rules>", yaml ? yaml : "", yaml ? len : 0, 0), out);
}

int rulefile_load_file(const char *path, const rulefile_opts *o, rulefile_set **out, kiln_err *err) {
    loader L;
    *out = NULL;
    int rc = loader_init(&L, o, err);
    if (rc)
        return rc;
    return loader_end(&L, load_path(&L, path, NULL, 0, 1), out);
}

int rulefile_load_globs(const char *const *globs, size_t n, const rulefile_opts *o, rulefile_set **out,
                        kiln_err *err) {
    loader L;
    *out = NULL;
    int rc = loader_init(&L, o, err), first = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        glob_t g;
        memset(&g, 0, sizeof g);
        /* Go's filepath.Glob: `*` matches a leading dot; unreadable
         * directories are skipped */
        int gr = glob(globs[i], GLOB_PERIOD, NULL, &g);
        if (gr == GLOB_NOSPACE) {
            kiln_err e;
            kiln_err_set(&e, KILN_ENOMEM, "%s: out of memory expanding the glob", globs[i]);
            report_msg(&L, KILN_ENOMEM, e.msg);
            rc = KILN_ENOMEM;
        }
        for (size_t j = 0; gr == 0 && j < g.gl_pathc && rc == 0; j++) {
            int r = load_path(&L, g.gl_pathv[j], NULL, 0, 1);
            if (r && !first)
                first = r;
            /* with a report hook every file is checked; without, the first error ends the load */
            if (r && (!L.o->report || r == KILN_ENOMEM))
                rc = r;
        }
        globfree(&g);
    }
    if (rc && L.set == NULL)
        return rc;
    return loader_end(&L, rc ? rc : first, out);
}

void rulefile_free(rulefile_set *s) {
    if (!s)
        return;
    arena_free(&s->mem);
    free(s);
}
