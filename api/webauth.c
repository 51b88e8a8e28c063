/*
 * webauth.c - basic authentication of the HTTP server's requests against
 * the web configuration's users (bcrypt hashes), and the server's part of
 * the web configuration (web_new: TLS context, headers, users).
 *
 * With users configured every request needs an `Authorization: Basic`
 * header naming one of them with the right password; otherwise it gets 401
 * with `WWW-Authenticate: Basic`, as the exporter-toolkit answers.
 *
 * bcrypt is slow by design (tens of milliseconds at cost 10), so its
 * verdicts are cached, as the toolkit caches them: the key is SHA-256 of
 * user, stored hash and password (the password itself is never kept), the
 * value whether they matched; 256 entries, the oldest replaced.  The loop
 * thread only looks the cache up (web_auth_check: one SHA-256, microseconds);
 * a request whose credentials are not cached goes to a worker, which runs
 * bcrypt (web_auth_verify) before the handler, so the loop never waits on
 * bcrypt.  A user that does not exist is checked against a fixed hash, so
 * the time taken does not tell whether a user exists; the hash itself is
 * compared in constant time (CRYPTO_memcmp).  Unlike the toolkit, bcrypt
 * runs are not serialised: they already hold a worker each.
 *
 * Called by http.c.  Threading: the cache is shared by the loop thread and
 * the workers under one mutex, held for lookups and inserts only.
 */
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/web.h"

#define WEB_CACHE_SIZE 256

/* The toolkit's stand-in hash for users that do not exist (cost 10). */
static const char dummy_hash[] = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

typedef struct cache_entry {
    unsigned char key[32];
    int used, ok;
} cache_entry;

struct web_auth {
    const config_web *w;
    pthread_mutex_t mu;
    cache_entry cache[WEB_CACHE_SIZE];
    size_t next; /* the entry replaced next */
};

int web_new(const config_web *w, web **out, kiln_err *err) {
    int rc = 0;
    *out = NULL;
    web *a = calloc(1, sizeof *a);
    if (!a)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    if (w->tls.enabled && (rc = tls_server_new(&w->tls, &a->tls, err)) != 0) {
        char msg[KILN_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        rc = kiln_err_set(err, rc, "%s: %s", w->name, msg);
        goto fail;
    }
    for (size_t i = 0; i < w->nheaders; i++)
        if (*w->headers[i].value) /* "unset if blank" */
            buf_printf(&a->headers, "%s: %s\r\n", w->headers[i].name, w->headers[i].value);
    if (buf_error(&a->headers) != 0) {
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
        goto fail;
    }
    if (w->nusers) {
        if (!(a->auth = calloc(1, sizeof *a->auth))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
            goto fail;
        }
        a->auth->w = w;
        pthread_mutex_init(&a->auth->mu, NULL);
    }
    *out = a;
    return 0;
fail:
    web_free(a);
    return rc;
}

void web_free(web *a) {
    if (!a)
        return;
    if (a->auth) {
        pthread_mutex_destroy(&a->auth->mu);
        free(a->auth);
    }
    tls_server_free(a->tls);
    buf_free(&a->headers);
    free(a);
}

/* ---- credentials ------------------------------------------------------------ */

typedef struct creds {
    char text[512]; /* "user:password", decoded */
    const char *user, *pass;
    const char *hash; /* the user's, or dummy_hash */
    int known;        /* the user exists */
    unsigned char key[32];
} creds;

/* Go's Request.BasicAuth: "Basic " (any case) and base64 of user:password.
 * 0 when the request carries none (or a malformed one). */
static int creds_parse(const web_auth *a, const http_req *r, creds *c) {
    const char *h = http_req_header(r, "Authorization");
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return 0;
    const char *b64 = h + 6;
    size_t n = strlen(b64);
    if (n == 0 || n % 4 != 0 || n / 4 * 3 >= sizeof c->text)
        return 0;
    int len = EVP_DecodeBlock((unsigned char *)c->text, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return 0;
    len -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
    c->text[len] = 0;
    char *colon = memchr(c->text, ':', (size_t)len);
    if (!colon || memchr(c->text, 0, (size_t)len))
        return 0;
    *colon = 0;
    c->user = c->text;
    c->pass = colon + 1;
    c->hash = dummy_hash;
    c->known = 0;
    for (size_t i = 0; i < a->w->nusers; i++)
        if (strcmp(a->w->users[i].name, c->user) == 0) {
            c->hash = a->w->users[i].value;
            c->known = 1;
        }
    /* the cache key: user, hash and password, each with its length */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t lens[3] = {strlen(c->user), strlen(c->hash), strlen(c->pass)};
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, lens, sizeof lens) == 1 && EVP_DigestUpdate(md, c->user, lens[0]) == 1 &&
             EVP_DigestUpdate(md, c->hash, lens[1]) == 1 && EVP_DigestUpdate(md, c->pass, lens[2]) == 1 &&
             EVP_DigestFinal_ex(md, c->key, NULL) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* The cached verdict for key: WEB_AUTH_OK, WEB_AUTH_DENIED, or -1. */
static int cache_get(web_auth *a, const unsigned char *key) {
    int v = -1;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < WEB_CACHE_SIZE && v < 0; i++)
        if (a->cache[i].used && CRYPTO_memcmp(a->cache[i].key, key, 32) == 0)
            v = a->cache[i].ok ? WEB_AUTH_OK : WEB_AUTH_DENIED;
    pthread_mutex_unlock(&a->mu);
    return v;
}

static void cache_put(web_auth *a, const unsigned char *key, int ok) {
    pthread_mutex_lock(&a->mu);
    size_t i = 0;
    while (i < WEB_CACHE_SIZE && !(a->cache[i].used && memcmp(a->cache[i].key, key, 32) == 0))
        i++;
    if (i == WEB_CACHE_SIZE) {
        i = a->next;
        a->next = (a->next + 1) % WEB_CACHE_SIZE;
    }
    memcpy(a->cache[i].key, key, 32);
    a->cache[i].used = 1;
    a->cache[i].ok = ok;
    pthread_mutex_unlock(&a->mu);
}

/* The cached verdict on r's credentials (parsed into c), or WEB_AUTH_VERIFY. */
static int lookup(web *w, const http_req *r, creds *c) {
    if (!w || !w->auth)
        return WEB_AUTH_OK;
    if (!creds_parse(w->auth, r, c))
        return WEB_AUTH_DENIED;
    int v = cache_get(w->auth, c->key);
    return v < 0 ? WEB_AUTH_VERIFY : v;
}

int web_auth_check(web *w, const http_req *r) {
    creds c;
    return lookup(w, r, &c);
}

int web_auth_verify(web *w, const http_req *r) {
    creds c;
    int v = lookup(w, r, &c);
    if (v != WEB_AUTH_VERIFY)
        return v;
    /* struct crypt_data is large (32 KiB): not on a worker's stack */
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return WEB_AUTH_DENIED; /* not cached: a later try may have memory */
    const char *out = crypt_rn(c.pass, c.hash, cd, (int)sizeof *cd);
    size_t hl = strlen(c.hash);
    int ok = out && strlen(out) == hl && CRYPTO_memcmp(out, c.hash, hl) == 0 && c.known;
    free(cd);
    cache_put(w->auth, c.key, ok);
    return ok ? WEB_AUTH_OK : WEB_AUTH_DENIED;
}

void web_auth_deny(http_resp *resp) {
    http_resp_text(resp, 401, "Unauthorized\n");
    http_resp_header(resp, "WWW-Authenticate", "Basic");
}
