/*
 * schema.h - private to config/: the keys of prometheus.yml as tables, one
 * per section, and the decoder those tables drive.
 *
 * A section (global, scrape_config, tls_config, ...) is a schema_section:
 * its keys in the order config_to_yaml writes them, each with a type, the
 * offset of its field in the section's struct, and flags.  Three walkers
 * read the same tables, so a key added to a table is decoded, written out
 * and compared with no other code:
 *
 *   decode.c   YAML nodes -> struct, errors naming file:line:col and the key
 *   emit.c     struct -> YAML (config_to_yaml)
 *   equal.c    struct == struct (config_scrape_equal)
 *
 * What a table cannot say (defaults, rules across keys, Prometheus'
 * validation) is in the section's hooks and the keys' checks, in schema.c;
 * they use the decode_* primitives below.
 *
 * Threading: the tables are constant and shared; a dec is the state of one
 * load, used by the loading thread only.
 */
#ifndef KILN_CONFIG_SCHEMA_H
#define KILN_CONFIG_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/strtab.h"
#include "config/yamltree.h"

typedef yamltree_node ynode;
typedef struct dec dec;
typedef struct schema_section schema_section;
typedef struct schema_seen schema_seen;

/* What a key's field is.  Arrays keep their count in the size_t at noff. */
enum {
    SCHEMA_STRING = 1, /* char *; null keeps the default */
    SCHEMA_BOOL,       /* int */
    SCHEMA_DURATION,   /* int64_t milliseconds */
    SCHEMA_UINT,       /* uint64_t */
    SCHEMA_SIZE,       /* uint64_t bytes, written with a unit ("512MB") */
    SCHEMA_STRINGS,    /* char **: a list of strings */
    SCHEMA_LABELS,     /* config_label *: a map of strings */
    SCHEMA_PARAMS,     /* config_param *: a map of lists of strings */
    SCHEMA_ACTION,     /* int: a CONFIG_RELABEL_* action, by name */
    SCHEMA_MAP,        /* a sub-section whose struct is at off */
    SCHEMA_LIST,       /* a list of sub-sections: their array at off */
    SCHEMA_INLINE,     /* a sub-section at off whose keys sit in this section's own map */
};

/* Key flags. */
enum {
    SCHEMA_UNUSED = 1 << 0,     /* kiln parses it but does not act on it: noted for a warning */
    SCHEMA_TMP = 1 << 1,        /* the field is in the section's scratch: neither written nor compared */
    SCHEMA_EMPTY_NULL = 1 << 2, /* string: "" is kept as NULL */
    SCHEMA_NAMES = 1 << 3,      /* labels: the keys must be valid label names */
    SCHEMA_OMIT_ZERO = 1 << 4,  /* written only when not 0 (or "") */
    SCHEMA_SECRET = 1 << 5,     /* written as <secret>, and only when not "" */
    SCHEMA_FLOW = 1 << 6,       /* strings: written in flow style, [a, b] */
    SCHEMA_ALWAYS = 1 << 7,     /* map: written even when all its fields are zero */
    SCHEMA_FIRST = 1 << 8,      /* decoded by the section's init hook, before the other keys */
};

typedef struct schema_key {
    const char *name;
    int type;    /* SCHEMA_STRING ... */
    size_t off;  /* of the field in the section's struct (SCHEMA_TMP: in its scratch) */
    size_t noff; /* arrays: of the size_t count */
    int flags;
    int64_t def;               /* the default of a BOOL, DURATION or UINT (0 unless set) */
    const char *def_str;       /* the default of a STRING (NULL unless set) */
    const schema_section *sub; /* MAP, LIST, INLINE */
    /* After the value is decoded: the rules of this key that its type does
     * not hold.  field is the key's field; n its count for arrays (else 0);
     * val the key's value node, for the position of an error. */
    int (*check)(dec *d, const ynode *val, void *field, size_t n);
} schema_key;

struct schema_section {
    const char *name; /* in messages: `unknown key "x" in scrape_config` */
    const schema_key *keys;
    size_t nkeys;
    size_t size;          /* of the section's struct (a LIST's items) */
    int null_ok;          /* null is an empty map; otherwise an error */
    int top;              /* the document: "expected a map at the top level" */
    const char *null_msg; /* instead of "expected a map for <name>, got nothing" */
    int has_present;      /* an int at present_off is set to 1 when the section is there */
    size_t present_off;
    const char *dup_what; /* LIST items: the name at dup_off must be unique ("scrape configs") */
    size_t dup_off;
    const char *empty_item; /* written for a list item with nothing else to write; default "{}" */
    size_t tmp_size;        /* scratch for SCHEMA_TMP keys, zeroed, at most SCHEMA_MAX_TMP */
    /* Before the keys, after the defaults of the table (which reach into
     * MAP and INLINE sub-sections); map is the section's node, NULL or null
     * when empty. */
    int (*init)(dec *d, void *obj, const ynode *map);
    /* After the keys: defaults that depend on them and the rules across
     * keys.  The inline section's hooks are not called: its parent's do it. */
    int (*finish)(dec *d, void *obj, const schema_seen *s);
};

#define SCHEMA_MAX_KEYS 40
#define SCHEMA_MAX_TMP 32

/* Where the keys of one section were found, for hooks that must point at a
 * key in an error. */
struct schema_seen {
    const ynode *map; /* the section's node (NULL for an empty document) */
    const schema_section *sec;
    size_t at[SCHEMA_MAX_KEYS]; /* 1 + the pair index of sec->keys[i] in map; 0 when absent */
    const schema_seen *inl;     /* the inline section's keys, or NULL */
    void *tmp;                  /* the scratch of the SCHEMA_TMP keys */
};

/* A compiled relabel regex, shared by all steps of a config with the same
 * text; the config's list of them is freed by config_free. */
struct config_regex {
    struct config_regex *next;
    pcre2_code *re;
};

/* The state of one load. */
struct dec {
    const char *name; /* file name for messages */
    const char *dir;  /* directory relative paths resolve against, or NULL */
    arena *a;         /* the config's arena: everything decoded goes here */
    arena *scratch;   /* freed when the load ends */
    kiln_err *err;
    const config_global *global; /* decoded first: scrape configs inherit from it */
    config *c;                   /* NULL for config_load_targets */
    strtab regexes;              /* regex text -> pcre2_code, while loading */
    size_t nregexes;
    char path[256]; /* of the key being decoded, for unused keys; indexes left out */
    size_t pathlen;
    int quiet;                 /* > 0 inside an unused key: what it holds is not noted again */
    config_unused_key *unused; /* in the config's arena */
    size_t nunused, capunused;
};

/* The sections the rest of config/ starts from (schema.c). */
extern const schema_section schema_config;       /* the document */
extern const schema_section schema_scrape;       /* one scrape_config */
extern const schema_section schema_static;       /* one static_config (target group) */
extern const schema_section schema_remote_write; /* one remote_write */
extern const schema_section schema_http;         /* the http client keys (inline) */
/* The service discoveries of a scrape config (schema_sd.c). */
extern const schema_section schema_http_sd, schema_dns_sd, schema_consul_sd, schema_kubernetes_sd;

/* Prometheus' HTTPClientConfig.Validate, then bearer_token -> authorization;
 * s: where the inline http keys were found (the parent's seen->inl). */
int schema_http_finish(dec *d, config_http *h, const schema_seen *s);
/* A plausible http(s) URL (socks5 too with allow_socks). */
int schema_url_valid(const char *s, int allow_socks);

/* Reads the document at path whole (a regular file of at most
 * CONFIG_MAX_BYTES) into a malloc'd, NUL-terminated *data (config.c). */
KILN_MUST_CHECK int config_read_doc(const char *path, char **data, size_t *len, kiln_err *err);
/* The directory of the document at path into dir[n]: relative file names in
 * it are that directory's, as the toolkit's SetDirectory makes them. */
void config_doc_dir(const char *path, char *dir, size_t n);

/* The check of a TLS version key (tls_config.min_version, the web
 * configuration's min_version and max_version): "TLS10".."TLS13", or
 * "unknown TLS version: X" at v; NULL passes (schema.c). */
int schema_check_tls_version(dec *d, const ynode *v, void *field, size_t n);

/* ---- decode.c ---------------------------------------------------------------- */

/* Sets d->err to "name:line:col: message" at node n (1:1 when NULL); returns KILN_EINVAL. */
int decode_fail(dec *d, const ynode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets d->err to out of memory; returns KILN_ENOMEM. */
int decode_oom(dec *d);
/* s copied into the config's arena; NULL when out of memory. */
char *decode_strdup(dec *d, const char *s);
/* n zeroed items of size bytes from the config's arena; NULL when n is 0 or out of memory. */
void *decode_array(dec *d, size_t n, size_t size);
/* p joined onto the config file's directory when relative (Prometheus'
 * SetDirectory); NULL when out of memory (p NULL: NULL). */
char *decode_path(dec *d, char *p);

/* Parses text[0..len) (the file `name`) and decodes it into obj as the
 * document section s: relative paths against dir, values allocated from a;
 * c is the config being loaded or NULL.  The unused keys noted are stored
 * in *unused and *nunused when the text parses. */
KILN_MUST_CHECK int decode_document(const char *name, const char *dir, const char *text, size_t len, arena *a,
                                    const schema_section *s, void *obj, config *c, config_unused_key **unused,
                                    size_t *nunused, kiln_err *err);
/* Decodes the map v into obj as section s: hooks, keys, unknown-key errors. */
KILN_MUST_CHECK int decode_section(dec *d, const schema_section *s, const ynode *v, void *obj);
/* Decodes the list v of sections s into a new array, whose address is
 * stored (memcpy) at items, the field of type `T *` for s's struct T; its
 * count in *n.  Both are set before the items are decoded. */
KILN_MUST_CHECK int decode_list(dec *d, const char *key, const schema_section *s, const ynode *v, void *items,
                                size_t *n);
/* Decodes one key's value into obj (tmp: the section's scratch). */
KILN_MUST_CHECK int decode_value(dec *d, const schema_key *k, const ynode *key, const ynode *val, void *obj,
                                 void *tmp);
/* *name = the key node's text, or an error when the key is not a string. */
KILN_MUST_CHECK int decode_key(dec *d, const ynode *k, const char **name);

/* Where an error about key `name` points: its value, or the section's map
 * when the key is absent. */
const ynode *decode_at(const schema_seen *s, const char *name);
/* The key node of whichever of keys a and b (b may be NULL) comes later in
 * the map, or NULL when neither is there. */
const ynode *decode_later_key(const schema_seen *s, const char *a, const char *b);

#endif
