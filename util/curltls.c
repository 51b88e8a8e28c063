/*
 * curltls.c - the settings of Prometheus' tls_config that libcurl has no
 * plain option for, applied to an easy handle: min_version, and
 * server_name (the name sent in SNI and checked in the server's
 * certificate, while the connection goes to the URL's host).
 *
 * server_name is done the way curl's --connect-to is meant for: the URL
 * handed to libcurl names server_name as its host, so libcurl sends it as
 * SNI, verifies the certificate against it and keys its connection and
 * session caches by it (a connection made for one server_name is never
 * reused for another); CURLOPT_CONNECT_TO sends the connection to the
 * original host and port; and a Host header keeps the original host, as
 * Go's client does.  Only https URLs are touched.
 *
 * curltls_files sets the files and insecure_skip_verify (plain options).
 *
 * Called by scrape/fetch.c, rules/notifier.c and remote/queue.c when they set up a
 * handle; nothing here is kept between calls.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* Appends s to *list; 0 or KILN_ENOMEM. */
static int append(struct curl_slist **list, const char *s) {
    struct curl_slist *l = curl_slist_append(*list, s);
    if (!l)
        return KILN_ENOMEM;
    *list = l;
    return 0;
}

/* Points e at server_name instead of url's host (see the top). */
static int redirect_name(CURL *e, const char *url, const char *server_name, struct curl_slist **headers,
                         struct curl_slist **connect_to) {
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *given_port = NULL, *out = NULL;
    int rc = KILN_EINVAL;
    char line[1024];
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_PORT, &given_port, 0) != CURLUE_OK)
        given_port = NULL; /* the URL has none: the scheme's */
    if (curl_url_set(u, CURLUPART_HOST, server_name, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
        goto out;
    rc = KILN_ENOMEM;
    snprintf(line, sizeof line, "Host: %s%s%s", host, given_port ? ":" : "", given_port ? given_port : "");
    if (append(headers, line) != 0)
        goto out;
    snprintf(line, sizeof line, "%s:%s:%s:%s", server_name, port, host, port);
    if (append(connect_to, line) != 0)
        goto out;
    rc = curl_easy_setopt(e, CURLOPT_URL, out) == CURLE_OK &&
                 curl_easy_setopt(e, CURLOPT_HTTPHEADER, *headers) == CURLE_OK &&
                 curl_easy_setopt(e, CURLOPT_CONNECT_TO, *connect_to) == CURLE_OK
             ? 0
             : KILN_ENOMEM;
out:
    curl_free(out);
    curl_free(given_port);
    curl_free(port);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

int curltls_apply(void *easy, const char *url, const char *server_name, int min_version,
                  struct curl_slist **headers, struct curl_slist **connect_to) {
    CURL *e = easy;
    /* TLS 1.0 is 0x0301, and CURL_SSLVERSION_TLSv1_0 is the first of four in a row */
    if (min_version >= 0x0301 && min_version <= 0x0304 &&
        curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_0 + (min_version - 0x0301))) !=
            CURLE_OK)
        return KILN_EINVAL;
    if (!server_name || !*server_name || strncmp(url, "https://", 8) != 0)
        return 0;
    return redirect_name(e, url, server_name, headers, connect_to);
}

void curltls_files(void *easy, const char *ca_file, const char *cert_file, const char *key_file,
                   int insecure_skip_verify) {
    CURL *e = easy;
    const struct {
        CURLoption opt;
        const char *path;
    } files[] = {{CURLOPT_CAINFO, ca_file}, {CURLOPT_SSLCERT, cert_file}, {CURLOPT_SSLKEY, key_file}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i].path)
            curl_easy_setopt(e, files[i].opt, files[i].path);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, insecure_skip_verify ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, insecure_skip_verify ? 0L : 2L);
}
