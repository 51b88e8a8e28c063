/*
 * kubeconfig.c - a kubeconfig file (kubernetes_sd_configs' kubeconfig_file)
 * read as client-go's clientcmd reads a static one for Prometheus
 * (BuildConfigFromFlags("", path)): the current-context's cluster and user.
 *
 *   cluster   server (https:// added when it has no scheme),
 *             certificate-authority[-data], insecure-skip-tls-verify,
 *             tls-server-name, proxy-url
 *   user      client-certificate[-data] + client-key[-data], token,
 *             tokenFile, username + password
 *
 * As client-go: a *-data field (base64 PEM) wins over its file; relative
 * file names are the kubeconfig's directory's; a token file wins over a
 * token; unknown keys are ignored.  Refused with a message saying what:
 * no current-context, a context, cluster or user it names missing, no
 * server, a CA with insecure-skip-tls-verify, a certificate without its key
 * (or the reverse), a token with a username and password, and what kiln
 * does not do: exec and auth-provider credential plugins, impersonation.
 *
 * Called by scrape/sd_kubernetes.c when a discovery starts, and by tests;
 * no state outside the call.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/schema.h"
#include "config/yamltree.h"

typedef struct kc {
    const char *name; /* the file, in messages */
    const char *dir;  /* its directory, for relative file names */
    config_kubeconfig *out;
    kiln_err *err;
} kc;

static const ynode *get(const ynode *m, const char *key) {
    if (!m || m->kind != YAMLTREE_MAP)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (m->kids[2 * i]->kind == YAMLTREE_SCALAR && !strcmp(m->kids[2 * i]->str, key))
            return m->kids[2 * i + 1];
    return NULL;
}

/* A scalar's text, or NULL (absent, null, empty, or not a scalar). */
static const char *str(const ynode *m, const char *key) {
    const ynode *v = get(m, key);
    return v && v->kind == YAMLTREE_SCALAR && !v->is_null && v->len ? v->str : NULL;
}

static int fail(kc *k, const ynode *at, const char *fmt, const char *arg) {
    char what[512];
    snprintf(what, sizeof what, fmt, arg ? arg : "");
    if (at)
        return kiln_err_set(k->err, KILN_EINVAL, "kubeconfig %s:%d:%d: %s", k->name, at->line, at->col, what);
    return kiln_err_set(k->err, KILN_EINVAL, "kubeconfig %s: %s", k->name, what);
}

/* The entry of list (clusters, contexts, users) named name: its `field` map. */
static const ynode *named(const ynode *root, const char *list, const char *field, const char *name) {
    const ynode *l = get(root, list);
    for (size_t i = 0; l && l->kind == YAMLTREE_SEQ && i < l->n; i++) {
        const char *n = str(l->kids[i], "name");
        if (n && !strcmp(n, name)) {
            const ynode *f = get(l->kids[i], field);
            return f ? f : l->kids[i]; /* an entry without its map: all defaults */
        }
    }
    return NULL;
}

static char *dup(kc *k, const char *s) {
    return s ? arena_strndup(&k->out->mem, s, strlen(s)) : NULL;
}

/* A file name of the kubeconfig: joined onto its directory when relative. */
static char *path_of(kc *k, const char *p) {
    if (!p || p[0] == '/')
        return dup(k, p);
    size_t n = strlen(k->dir) + strlen(p) + 2;
    char *s = arena_alloc_nz(&k->out->mem, n);
    if (s)
        snprintf(s, n, "%s/%s", k->dir, p);
    return s;
}

/* A *-data field: base64 decoded into the arena (*len bytes, NUL-terminated). */
static int data_of(kc *k, const ynode *m, const char *key, char **out, size_t *len) {
    const char *b = str(m, key);
    if (!b)
        return 0;
    size_t n = strlen(b), j = 0;
    char *clean = malloc(n + 1);
    unsigned char *bin = clean ? arena_alloc_nz(&k->out->mem, n / 4 * 3 + 4) : NULL;
    if (!bin) {
        free(clean);
        return kiln_err_set(k->err, KILN_ENOMEM, "kubeconfig %s: out of memory", k->name);
    }
    for (size_t i = 0; i < n; i++) /* folded YAML may leave spaces and newlines in it */
        if (b[i] != ' ' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t')
            clean[j++] = b[i];
    int got = j % 4 == 0 && j ? EVP_DecodeBlock(bin, (const unsigned char *)clean, (int)j) : -1;
    if (got >= 0) /* EVP_DecodeBlock counts the padding's bytes too */
        got -= (j && clean[j - 1] == '=') + (j > 1 && clean[j - 2] == '=');
    free(clean);
    if (got < 0)
        return fail(k, get(m, key), "%s is not valid base64", key);
    bin[got] = 0;
    *out = (char *)bin;
    *len = (size_t)got;
    return 0;
}

static int cluster_of(kc *k, const ynode *c, const char *name) {
    config_kubeconfig *o = k->out;
    const char *server = str(c, "server");
    if (!server)
        return fail(k, c, "cluster \"%s\" has no server", name);
    size_t n = strlen(server) + 9;
    if (!(o->server = arena_alloc_nz(&o->mem, n)))
        return kiln_err_set(k->err, KILN_ENOMEM, "kubeconfig %s: out of memory", k->name);
    snprintf(o->server, n, "%s%s", strstr(server, "://") ? "" : "https://", server);
    const char *skip = str(c, "insecure-skip-tls-verify");
    o->insecure_skip_verify = skip && !strcmp(skip, "true");
    int rc = data_of(k, c, "certificate-authority-data", &o->ca_data, &o->ca_len);
    if (rc != 0)
        return rc;
    if (!o->ca_data)
        o->ca_file = path_of(k, str(c, "certificate-authority"));
    if (o->insecure_skip_verify && (o->ca_data || o->ca_file))
        return fail(k, c,
                    "cluster \"%s\": a certificate authority together with insecure-skip-tls-verify is not "
                    "allowed",
                    name);
    o->server_name = dup(k, str(c, "tls-server-name"));
    o->proxy_url = dup(k, str(c, "proxy-url"));
    return 0;
}

static int user_of(kc *k, const ynode *u, const char *name) {
    config_kubeconfig *o = k->out;
    static const char *const plugins[] = {"exec",      "auth-provider", "as",
                                          "as-groups", "as-uid",        "as-user-extra"};
    for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++) {
        const ynode *v = get(u, plugins[i]);
        if (v && !v->is_null)
            return fail(k, v,
                        i < 2
                            ? "user: %s credential plugins are not supported by kiln (use a token, tokenFile "
                              "or a client certificate)"
                            : "user: impersonation (%s) is not supported by kiln",
                        plugins[i]);
    }
    int rc = data_of(k, u, "client-certificate-data", &o->cert_data, &o->cert_len);
    if (rc == 0)
        rc = data_of(k, u, "client-key-data", &o->key_data, &o->key_len);
    if (rc != 0)
        return rc;
    if (!o->cert_data)
        o->cert_file = path_of(k, str(u, "client-certificate"));
    if (!o->key_data)
        o->key_file = path_of(k, str(u, "client-key"));
    int cert = o->cert_data || o->cert_file, key = o->key_data || o->key_file;
    if (cert != key)
        return fail(
            k, u,
            cert ? "user \"%s\": client-key-data or client-key must be given with the client certificate"
                 : "user \"%s\": client-certificate-data or client-certificate must be given with the "
                   "client key",
            name);
    o->token_file = path_of(k, str(u, "tokenFile"));
    o->token = o->token_file ? NULL : dup(k, str(u, "token"));
    o->username = dup(k, str(u, "username"));
    o->password = dup(k, str(u, "password"));
    if ((o->token || o->token_file) && (o->username || o->password))
        return fail(k, u, "user \"%s\": username/password or bearer token may be set, but not both", name);
    return 0;
}

int config_kubeconfig_parse(const char *name, const char *dir, const char *data, size_t len,
                            config_kubeconfig **out, kiln_err *err) {
    *out = NULL;
    config_kubeconfig *o = calloc(1, sizeof *o);
    if (!o)
        return kiln_err_set(err, KILN_ENOMEM, "kubeconfig %s: out of memory", name);
    arena_init(&o->mem, 0);
    kc k = {name, dir, o, err};
    ynode *root = NULL;
    int rc = yamltree_parse(name, data, len, &o->mem, &root, err);
    const char *cur = rc == 0 ? str(root, "current-context") : NULL;
    const ynode *ctx = cur ? named(root, "contexts", "context", cur) : NULL;
    const char *cl = str(ctx, "cluster"), *us = str(ctx, "user");
    const ynode *c = cl ? named(root, "clusters", "cluster", cl) : NULL;
    const ynode *u = us ? named(root, "users", "user", us) : NULL;
    if (rc == 0)
        rc = !root || root->kind != YAMLTREE_MAP
                 ? fail(&k, root, "not a kubeconfig (a map of clusters, contexts and users)%s", NULL)
             : !cur      ? fail(&k, NULL, "no current-context%s", NULL)
             : !ctx      ? fail(&k, NULL, "context \"%s\" (the current-context) not found", cur)
             : !cl || !c ? fail(&k, ctx, "cluster \"%s\" of the current context not found", cl ? cl : "")
             : us && !u  ? fail(&k, ctx, "user \"%s\" of the current context not found", us)
                         : cluster_of(&k, c, cl);
    if (rc == 0 && u)
        rc = user_of(&k, u, us);
    if (rc != 0) {
        config_kubeconfig_free(o);
        return rc;
    }
    *out = o;
    return 0;
}

int config_kubeconfig_load(const char *path, config_kubeconfig **out, kiln_err *err) {
    char *data = NULL, dir[4096];
    size_t len = 0;
    *out = NULL;
    config_doc_dir(path, dir, sizeof dir);
    int rc = config_read_doc(path, &data, &len, err);
    if (rc == 0)
        rc = config_kubeconfig_parse(path, dir, data, len, out, err);
    free(data);
    return rc;
}

void config_kubeconfig_free(config_kubeconfig *k) {
    if (!k)
        return;
    arena_free(&k->mem);
    free(k);
}
