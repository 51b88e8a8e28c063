/*
 * fuzz_sd_http.c - arbitrary bytes through HTTP SD's decoder of an
 * endpoint's answer (scrape/sd_http.c, sd_http_decode).
 *
 * A failure must give no groups and a message; the groups of a success
 * must each carry __meta_url, a source naming the URL, and targets that
 * each have an __address__.  Nothing may leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/sd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char url[] = "http://sd.example/targets";
    sd_tg **gs = NULL;
    size_t n = 0;
    kiln_err err = {0};
    int rc = sd_http_decode((const char *)data, size, url, &gs, &n, &err);
    if (rc != 0) {
        if (gs || n || !err.msg[0])
            abort();
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const sd_tg *g = gs[i];
        const char *mu = labels_get(g->ls, g->nls, "__meta_url");
        if (!mu || strcmp(mu, url) != 0 || strncmp(g->source, url, sizeof url - 1) != 0)
            abort();
        for (size_t j = 0; j < g->nt; j++)
            if (!labels_get(g->t[j].ls, g->t[j].n, "__address__"))
                abort();
        sd_tg_unref(gs[i]);
    }
    free(gs);
    return 0;
}
