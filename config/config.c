/*
 * config.c - the public face of config/: loads `prometheus.yml` (from a file
 * or a string) into a `config`, loads file_sd target files, reference counts
 * and frees configs, and warns about keys kiln does not act on.
 *
 * A load parses the document into a yamltree (yamltree.c), then decodes it
 * with the tables of schema.c (decode.c), which apply Prometheus' defaults
 * and validation and name file:line:column in every error.
 *
 * Memory: the tree lives in a scratch arena freed before returning; the
 * config's strings and arrays are in the config's own arena (`config.mem`),
 * so config_free is one arena_free plus the PCRE2 codes.
 *
 * Called by cmd/kiln/main.c (load, reload, the status API) and scrape/
 * (file_sd targets, the config a scrape pool keeps).  Threading: loading
 * touches nothing shared (getenv aside, for external_labels expansion); a
 * loaded config is read-only and may be shared by any threads;
 * config_retain/config_free are atomic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "config/schema.h"

static const char *const action_names[CONFIG_RELABEL_NACTIONS] = {
    [CONFIG_RELABEL_REPLACE] = "replace",     [CONFIG_RELABEL_KEEP] = "keep",
    [CONFIG_RELABEL_DROP] = "drop",           [CONFIG_RELABEL_KEEPEQUAL] = "keepequal",
    [CONFIG_RELABEL_DROPEQUAL] = "dropequal", [CONFIG_RELABEL_HASHMOD] = "hashmod",
    [CONFIG_RELABEL_LABELMAP] = "labelmap",   [CONFIG_RELABEL_LABELDROP] = "labeldrop",
    [CONFIG_RELABEL_LABELKEEP] = "labelkeep", [CONFIG_RELABEL_LOWERCASE] = "lowercase",
    [CONFIG_RELABEL_UPPERCASE] = "uppercase",
};

const char *config_relabel_action_name(int action) {
    if (action < 0 || action >= CONFIG_RELABEL_NACTIONS)
        return "unknown";
    return action_names[action];
}

config *config_retain(config *c) {
    if (c)
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void config_free(config *c) {
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (struct config_regex *e = c->regexes; e; e = e->next)
        pcre2_code_free(e->re);
    arena_free(&c->mem);
    free(c);
}

static int load(const char *name, const char *dir, const char *yaml, size_t len, config **out,
                kiln_err *err) {
    config *c = NULL;
    int rc;

    *out = NULL;
    if (!name)
        name = "<config>";
    if (len > CONFIG_MAX_BYTES) {
        rc = kiln_err_set(err, KILN_ELIMIT, "%s: the document is %zu bytes, more than the limit of %u bytes",
                          name, len, (unsigned)CONFIG_MAX_BYTES);
        goto fail;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    c->refs = 1;
    arena_init(&c->mem, 0);
    c->source = arena_strndup(&c->mem, yaml ? yaml : "", yaml ? len : 0);
    c->name = arena_strndup(&c->mem, name, strlen(name));
    if (!c->source || !c->name) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    c->source_len = yaml ? len : 0;
    c->source_hash = XXH3_64bits(c->source, c->source_len);

    rc = decode_document(name, dir, c->source, c->source_len, &c->mem, &schema_config, c, c, &c->unused_keys,
                         &c->nunused_keys, err);
    if (rc)
        goto fail;
    *out = c;
    return 0;

fail:
    config_free(c);
    return rc;
}

int config_load_string(const char *name, const char *yaml, size_t len, config **out, kiln_err *err) {
    return load(name, NULL, yaml, len, out, err);
}

int config_read_doc(const char *path, char **data, size_t *len, kiln_err *err) {
    struct stat st;
    int rc = 0;
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_err_set(err, errno == ENOENT ? KILN_ENOENT : KILN_EIO, "open %s: %s", path,
                            strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = kiln_err_set(err, KILN_EIO, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > CONFIG_MAX_BYTES) {
        rc = kiln_err_set(err, KILN_ELIMIT, "%s: the document is %lld bytes, more than the limit of %u bytes",
                          path, (long long)st.st_size, (unsigned)CONFIG_MAX_BYTES);
        goto out;
    }
    if (!(*data = malloc((size_t)st.st_size + 1))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    *len = fread(*data, 1, (size_t)st.st_size, f);
    (*data)[*len] = 0;
    if (ferror(f)) {
        rc = kiln_err_set(err, KILN_EIO, "read %s: %s", path, strerror(errno));
        free(*data);
        *data = NULL;
    }
out:
    fclose(f);
    return rc;
}

int config_load_file(const char *path, config **out, kiln_err *err) {
    char *data = NULL, *dir = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = config_read_doc(path, &data, &len, err);
    if (rc != 0)
        return rc;
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        if (!(dir = strndup(path, dl))) {
            free(data);
            return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        }
    }
    rc = load(path, dir, data, len, out, err);
    free(dir);
    free(data);
    return rc;
}

void config_doc_dir(const char *path, char *dir, size_t n) {
    const char *slash = strrchr(path, '/');
    snprintf(dir, n, "%.*s", slash ? (int)(slash == path ? 1 : slash - path) : 1, slash ? path : ".");
}

int config_load_targets(const char *path, arena *a, config_static **out, size_t *n, kiln_err *err) {
    char *data = NULL;
    size_t len = 0;
    arena scratch;
    yamltree_node *root = NULL;
    *out = NULL;
    *n = 0;
    int rc = config_read_doc(path, &data, &len, err);
    if (rc != 0)
        return rc;
    arena_init(&scratch, 0);
    if ((rc = yamltree_parse(path, data, len, &scratch, &root, err)) == 0 && root) {
        dec d;
        memset(&d, 0, sizeof d);
        d.name = path;
        d.a = a;
        d.scratch = &scratch;
        d.err = err;
        strtab_init(&d.regexes, &scratch);
        rc = decode_list(&d, "static_configs", &schema_static, root, out, n);
        strtab_free(&d.regexes);
    }
    arena_free(&scratch);
    free(data);
    return rc;
}

const char *config_default_yaml(void) {
    return "# kiln's built-in configuration, used when no configuration file exists.\n"
           "global:\n"
           "  scrape_interval: 15s\n"
           "  evaluation_interval: 15s\n"
           "\n"
           "scrape_configs:\n"
           "  # kiln scrapes its own /metrics.\n"
           "  - job_name: kiln\n"
           "    scrape_interval: 15s\n"
           "    static_configs:\n"
           "      - targets: [\"localhost:9090\"]\n";
}

void config_log_unused(const config *c) {
    for (size_t i = 0; c && i < c->nunused_keys; i++)
        LOG_WARN("configuration key is parsed but not acted on", "key=%s at=%s:%d:%d", c->unused_keys[i].path,
                 c->name, c->unused_keys[i].line, c->unused_keys[i].col);
}
