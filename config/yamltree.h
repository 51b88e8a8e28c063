/*
 * yamltree.h - private to config/: a YAML document as a tree of nodes with
 * their line:column, built from libyaml's event stream.
 *
 * Aliases are resolved to the anchored node itself (the tree is a DAG), so
 * building costs O(input); the expanded size is tracked per node and bounded
 * (CONFIG_MAX_NODES) so a reader walking the DAG does bounded work whatever
 * the aliases do (billion laughs).  Merge keys (`<<: *base`) are applied.
 * Every node and string lives in the arena passed in.
 *
 * Called by config.c for each document it loads; threading: none (one
 * parse, one thread, one arena).
 */
#ifndef KILN_CONFIG_YAMLTREE_H
#define KILN_CONFIG_YAMLTREE_H

#include <stddef.h>

#include "util/util.h"

enum { YAMLTREE_SCALAR = 1, YAMLTREE_SEQ, YAMLTREE_MAP };

typedef struct yamltree_node yamltree_node;
struct yamltree_node {
    int kind;      /* YAMLTREE_* */
    int line, col; /* 1-based position of the node's start */
    int plain;     /* scalar written without quotes or block style */
    int is_null;   /* plain empty, ~, null, Null, NULL, or tagged !!null */
    char *str;     /* scalar text, NUL-terminated */
    size_t len;
    /* seq: kids[0..n); map: kids[2i] is the key and kids[2i+1] the value of
     * pair i, for i in [0..n) */
    yamltree_node **kids;
    size_t n, cap;
    size_t weight; /* nodes in the expanded subtree, saturating above the bound */
};

/*
 * Parses data[0..len) (one YAML document) into *root, which is NULL for an
 * empty document.  Errors are "name:line:col: message".  Nodes are allocated
 * from a; nothing else is kept.
 */
KILN_MUST_CHECK int yamltree_parse(const char *name, const char *data, size_t len, arena *a,
                                   yamltree_node **root, kiln_err *err);

/* "a string", "a list", "a map": for messages. */
const char *yamltree_kind_name(const yamltree_node *n);

#endif
