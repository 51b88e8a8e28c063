/*
 * yamltree.c - builds a yamltree_node DAG from libyaml's event stream.
 *
 * The builder keeps an explicit stack of open lists and maps (no recursion),
 * so the nesting bound (CONFIG_MAX_DEPTH) is checked before anything deep is
 * built.  An alias points at the anchored node; an anchor is registered when
 * its node is complete, so an alias can never refer to one of its own
 * ancestors (no cycles).  Each node carries the size of its expanded subtree
 * (`weight`, saturating); a document whose expansion passes CONFIG_MAX_NODES
 * is rejected, which bounds the work of everyone walking the tree.
 *
 * Maps: duplicate scalar keys are an error (as Prometheus' strict decoding
 * does); `<<` merge keys copy the pairs of the merged map(s) that the map
 * does not set itself.
 *
 * Called by config.c (config_load_*).  Threading: none; everything lives in
 * the caller's arena.
 */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/config.h"
#include "config/strtab.h"
#include "config/yamltree.h"

/* merge keys are for a few shared settings; the key check is quadratic */
#define YAMLTREE_MAX_MERGED 1000

typedef struct builder {
    const char *name;
    arena *a;
    kiln_err *err;
    yamltree_node *stack[CONFIG_MAX_DEPTH + 1];
    int depth;
    strtab anchors;                             /* anchor name -> node */
    char *pending_anchor[CONFIG_MAX_DEPTH + 1]; /* anchor of each open container */
} builder;

const char *yamltree_kind_name(const yamltree_node *n) {
    if (!n)
        return "nothing";
    switch (n->kind) {
    case YAMLTREE_SEQ:
        return "a list";
    case YAMLTREE_MAP:
        return "a map";
    default:
        return "a string";
    }
}

static int b_fail(builder *b, size_t line0, size_t col0, const char *msg, const char *arg) {
    if (arg)
        return kiln_err_set(b->err, KILN_EINVAL, "%s:%zu:%zu: %s%s", b->name, line0 + 1, col0 + 1, msg, arg);
    return kiln_err_set(b->err, KILN_EINVAL, "%s:%zu:%zu: %s", b->name, line0 + 1, col0 + 1, msg);
}

static int b_oom(builder *b) {
    return kiln_err_set(b->err, KILN_ENOMEM, "%s: out of memory loading the configuration", b->name);
}

/* Appends a child slot; maps fill key then value (a pair is counted in n
 * once its value arrives). */
static int append_kid(builder *b, yamltree_node *p, yamltree_node *k, size_t *slots) {
    if (*slots == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 8;
        yamltree_node **nk = arena_alloc(b->a, ncap * sizeof *nk);
        if (!nk)
            return KILN_ENOMEM;
        if (p->cap)
            memcpy(nk, p->kids, p->cap * sizeof *nk);
        p->kids = nk;
        p->cap = ncap;
    }
    p->kids[(*slots)++] = k;
    return 0;
}

static size_t sat_add(size_t a, size_t b) {
    size_t s = a + b;
    if (s < a || s > (size_t)CONFIG_MAX_NODES + 1)
        s = (size_t)CONFIG_MAX_NODES + 1;
    return s;
}

/* Slots used in the open container p (maps may hold a key without value). */
static size_t slots_of(const yamltree_node *p, const size_t *pending_key) {
    return p->kind == YAMLTREE_MAP ? 2 * p->n + *pending_key : p->n;
}

static int is_null_scalar(const char *s, size_t len, int plain, const char *tag) {
    if (tag && strcmp(tag, "tag:yaml.org,2002:null") == 0)
        return 1;
    if (!plain || tag)
        return 0;
    return len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static int key_is_merge(const yamltree_node *k) {
    return k->kind == YAMLTREE_SCALAR && k->plain && strcmp(k->str, "<<") == 0;
}

static int map_has_key(const yamltree_node *m, size_t npairs, const yamltree_node *key) {
    for (size_t i = 0; i < npairs; i++) {
        const yamltree_node *k = m->kids[2 * i];
        if (k->kind == YAMLTREE_SCALAR && k->len == key->len && memcmp(k->str, key->str, k->len) == 0)
            return 1;
    }
    return 0;
}

static int cmp_keyptr(const void *pa, const void *pb) {
    const yamltree_node *a = *(yamltree_node *const *)pa, *b = *(yamltree_node *const *)pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, n);
    if (c)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    /* equal keys: order by position so the later one is reported */
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    return a->col < b->col ? -1 : (a->col > b->col);
}

/* Completes a map: rejects duplicate keys, then applies merge keys. */
static int finish_map(builder *b, yamltree_node *m) {
    size_t nmerge = 0, nscalar = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (key_is_merge(m->kids[2 * i]))
            nmerge++;
        else if (m->kids[2 * i]->kind == YAMLTREE_SCALAR)
            nscalar++;
    }
    if (nscalar > 1) {
        yamltree_node **keys = malloc(nscalar * sizeof *keys);
        if (!keys)
            return KILN_ENOMEM;
        size_t j = 0;
        for (size_t i = 0; i < m->n; i++)
            if (m->kids[2 * i]->kind == YAMLTREE_SCALAR && !key_is_merge(m->kids[2 * i]))
                keys[j++] = m->kids[2 * i];
        qsort(keys, j, sizeof *keys, cmp_keyptr);
        for (size_t i = 1; i < j; i++) {
            if (keys[i]->len == keys[i - 1]->len &&
                memcmp(keys[i]->str, keys[i - 1]->str, keys[i]->len) == 0) {
                int rc = kiln_err_set(b->err, KILN_EINVAL, "%s:%d:%d: duplicate key \"%.100s\"", b->name,
                                      keys[i]->line, keys[i]->col, keys[i]->str);
                free(keys);
                return rc;
            }
        }
        free(keys);
    }
    if (!nmerge)
        return 0;
    /* Rebuild the pair list: own pairs first, then merged ones not set. */
    if (m->n > YAMLTREE_MAX_MERGED)
        return kiln_err_set(b->err, KILN_ELIMIT, "%s:%d:%d: a map with a merge key may hold at most %d keys",
                            b->name, m->line, m->col, YAMLTREE_MAX_MERGED);
    size_t examined = 0;
    yamltree_node **old = m->kids;
    size_t oldn = m->n;
    size_t slots = 0;
    yamltree_node tmp = *m;
    tmp.kids = NULL;
    tmp.cap = 0;
    tmp.n = 0;
    for (size_t i = 0; i < oldn; i++) {
        if (key_is_merge(old[2 * i]))
            continue;
        if (append_kid(b, &tmp, old[2 * i], &slots) || append_kid(b, &tmp, old[2 * i + 1], &slots))
            return KILN_ENOMEM;
        tmp.n++;
    }
    for (size_t i = 0; i < oldn; i++) {
        if (!key_is_merge(old[2 * i]))
            continue;
        yamltree_node *v = old[2 * i + 1];
        size_t nsrc = v->kind == YAMLTREE_SEQ ? v->n : 1;
        for (size_t s = 0; s < nsrc; s++) {
            yamltree_node *src = v->kind == YAMLTREE_SEQ ? v->kids[s] : v;
            if (src->kind != YAMLTREE_MAP)
                return kiln_err_set(b->err, KILN_EINVAL,
                                    "%s:%d:%d: a merge key (<<) needs a map or a list of maps", b->name,
                                    src->line, src->col);
            for (size_t p = 0; p < src->n; p++) {
                if (++examined > 10 * YAMLTREE_MAX_MERGED)
                    return kiln_err_set(b->err, KILN_ELIMIT, "%s:%d:%d: merge keys bring in too many keys",
                                        b->name, m->line, m->col);
                if (map_has_key(&tmp, tmp.n, src->kids[2 * p]))
                    continue;
                if (append_kid(b, &tmp, src->kids[2 * p], &slots) ||
                    append_kid(b, &tmp, src->kids[2 * p + 1], &slots))
                    return KILN_ENOMEM;
                tmp.n++;
                if (tmp.n > YAMLTREE_MAX_MERGED)
                    return kiln_err_set(b->err, KILN_ELIMIT,
                                        "%s:%d:%d: a merged map may hold at most %d keys", b->name, m->line,
                                        m->col, YAMLTREE_MAX_MERGED);
            }
        }
    }
    m->kids = tmp.kids;
    m->cap = tmp.cap;
    m->n = tmp.n;
    return 0;
}

int yamltree_parse(const char *name, const char *data, size_t len, arena *a, yamltree_node **root,
                   kiln_err *err) {
    yaml_parser_t parser;
    yaml_event_t ev;
    builder b;
    size_t pending_key[CONFIG_MAX_DEPTH + 1];
    int rc = 0, have_event = 0, docs = 0;

    memset(&b, 0, sizeof b);
    b.name = name;
    b.a = a;
    b.err = err;
    strtab_init(&b.anchors, a);
    *root = NULL;
    if (len > CONFIG_MAX_BYTES)
        return kiln_err_set(err, KILN_ELIMIT, "%s: the document is %zu bytes, more than the limit of %u",
                            name, len, (unsigned)CONFIG_MAX_BYTES);
    if (!yaml_parser_initialize(&parser))
        return b_oom(&b);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    memset(pending_key, 0, sizeof pending_key);

    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            const char *problem = parser.problem ? parser.problem : "invalid YAML";
            if (parser.error == YAML_MEMORY_ERROR) {
                rc = b_oom(&b);
            } else if (parser.context) {
                rc = kiln_err_set(err, KILN_EINVAL, "%s:%zu:%zu: %s %s", name, parser.problem_mark.line + 1,
                                  parser.problem_mark.column + 1, problem, parser.context);
            } else {
                rc = b_fail(&b, parser.problem_mark.line, parser.problem_mark.column, problem, NULL);
            }
            goto fail;
        }
        have_event = 1;
        yaml_event_type_t t = ev.type;
        size_t line0 = ev.start_mark.line, col0 = ev.start_mark.column;
        yamltree_node *node = NULL;
        const char *anchor_name = NULL;

        if (t == YAML_STREAM_END_EVENT)
            break;
        if (t == YAML_DOCUMENT_START_EVENT) {
            if (++docs > 1) {
                rc = b_fail(&b, line0, col0, "only one YAML document is allowed", NULL);
                goto fail;
            }
        } else if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT ||
                   t == YAML_MAPPING_START_EVENT || t == YAML_ALIAS_EVENT) {
            if (t == YAML_ALIAS_EVENT) {
                node = strtab_get(&b.anchors, (const char *)ev.data.alias.anchor);
                if (!node) {
                    rc = b_fail(&b, line0, col0, "unknown anchor ", (const char *)ev.data.alias.anchor);
                    goto fail;
                }
            } else {
                node = arena_alloc(a, sizeof *node);
                if (!node) {
                    rc = b_oom(&b);
                    goto fail;
                }
                node->line = (int)(line0 + 1 > 0x7fffffff ? 0x7fffffff : line0 + 1);
                node->col = (int)(col0 + 1 > 0x7fffffff ? 0x7fffffff : col0 + 1);
                node->weight = 1;
                if (t == YAML_SCALAR_EVENT) {
                    node->kind = YAMLTREE_SCALAR;
                    node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                    node->len = ev.data.scalar.length;
                    node->str = arena_strndup(a, (const char *)ev.data.scalar.value, node->len);
                    if (!node->str) {
                        rc = b_oom(&b);
                        goto fail;
                    }
                    const char *tag = (const char *)ev.data.scalar.tag;
                    node->is_null = is_null_scalar(node->str, node->len, node->plain, tag);
                    if (tag && strcmp(tag, "tag:yaml.org,2002:str") == 0)
                        node->plain = 0; /* an explicit string is never a bool or null */
                    anchor_name = (const char *)ev.data.scalar.anchor;
                } else if (t == YAML_SEQUENCE_START_EVENT) {
                    node->kind = YAMLTREE_SEQ;
                    anchor_name = (const char *)ev.data.sequence_start.anchor;
                } else {
                    node->kind = YAMLTREE_MAP;
                    anchor_name = (const char *)ev.data.mapping_start.anchor;
                }
            }
            /* attach to the open container, or make it the root */
            if (b.depth == 0) {
                *root = node;
            } else {
                yamltree_node *p = b.stack[b.depth - 1];
                size_t slots = slots_of(p, &pending_key[b.depth - 1]);
                if (append_kid(&b, p, node, &slots)) {
                    rc = b_oom(&b);
                    goto fail;
                }
                if (p->kind == YAMLTREE_MAP) {
                    if (pending_key[b.depth - 1]) {
                        pending_key[b.depth - 1] = 0;
                        p->n++;
                    } else {
                        pending_key[b.depth - 1] = 1;
                    }
                } else {
                    p->n++;
                }
                if (t == YAML_SCALAR_EVENT || t == YAML_ALIAS_EVENT) {
                    p->weight = sat_add(p->weight, node->weight);
                    if (p->weight > CONFIG_MAX_NODES) {
                        rc = kiln_err_set(err, KILN_ELIMIT,
                                          "%s:%zu:%zu: the document expands to more than %d nodes (aliases?)",
                                          name, line0 + 1, col0 + 1, CONFIG_MAX_NODES);
                        goto fail;
                    }
                }
            }
            if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
                if (b.depth >= CONFIG_MAX_DEPTH) {
                    rc = kiln_err_set(err, KILN_ELIMIT, "%s:%zu:%zu: nesting deeper than %d levels", name,
                                      line0 + 1, col0 + 1, CONFIG_MAX_DEPTH);
                    goto fail;
                }
                b.pending_anchor[b.depth] = NULL;
                if (anchor_name) {
                    b.pending_anchor[b.depth] = arena_strndup(a, anchor_name, strlen(anchor_name));
                    if (!b.pending_anchor[b.depth]) {
                        rc = b_oom(&b);
                        goto fail;
                    }
                }
                pending_key[b.depth] = 0;
                b.stack[b.depth++] = node;
            } else if (anchor_name && t == YAML_SCALAR_EVENT) {
                /* newest first: a redefined anchor shadows the older one */
                char *nm = arena_strndup(a, anchor_name, strlen(anchor_name));
                if (!nm || strtab_put(&b.anchors, nm, node)) {
                    rc = b_oom(&b);
                    goto fail;
                }
            }
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            yamltree_node *done = b.stack[--b.depth];
            if (done->kind == YAMLTREE_MAP) {
                rc = finish_map(&b, done);
                if (rc == KILN_ENOMEM)
                    rc = b_oom(&b);
                if (rc)
                    goto fail;
            }
            if (b.pending_anchor[b.depth] && strtab_put(&b.anchors, b.pending_anchor[b.depth], done)) {
                rc = b_oom(&b);
                goto fail;
            }
            if (b.depth > 0) {
                yamltree_node *p = b.stack[b.depth - 1];
                p->weight = sat_add(p->weight, done->weight);
                if (p->weight > CONFIG_MAX_NODES) {
                    rc = kiln_err_set(err, KILN_ELIMIT,
                                      "%s:%d:%d: the document expands to more than %d nodes (aliases?)", name,
                                      done->line, done->col, CONFIG_MAX_NODES);
                    goto fail;
                }
            }
        }
        yaml_event_delete(&ev);
        have_event = 0;
    }
    yaml_event_delete(&ev);
    have_event = 0;
    yaml_parser_delete(&parser);
    strtab_free(&b.anchors);
    return 0;

fail:
    if (have_event)
        yaml_event_delete(&ev);
    yaml_parser_delete(&parser);
    strtab_free(&b.anchors);
    *root = NULL;
    return rc;
}
