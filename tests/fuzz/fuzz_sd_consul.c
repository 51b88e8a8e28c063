/*
 * fuzz_sd_consul.c - arbitrary bytes through Consul SD's response decoders
 * (scrape/sd_consul.c): byte 0 even, the catalog's services
 * (sd_consul_services); odd, a service's health entries (sd_consul_health).
 *
 * A failure gives no group and a message; a group carries the service and
 * datacenter labels, and each target an __address__ and the tags label
 * framed by the separator.  Nothing may leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/sd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    kiln_err err = {0};
    if ((data[0] & 1) == 0) {
        arena a;
        arena_init(&a, 0);
        const char **names = NULL;
        const json_val **tags = NULL;
        size_t n = 0;
        if (sd_consul_services(body, len, &a, &names, &tags, &n, &err) == 0)
            for (size_t i = 0; i < n; i++)
                if (!names[i] || (tags[i]->type != JSON_ARR && tags[i]->type != JSON_NULL))
                    abort();
        arena_free(&a);
        return 0;
    }
    sd_gb b;
    sd_gb_init(&b);
    sd_tg *g = NULL;
    int rc = sd_consul_health(body, len, "svc", "dc1", "|", &b, &g, &err);
    if (rc != 0) {
        if (g || !err.msg[0])
            abort();
    } else {
        const char *s = labels_get(g->ls, g->nls, "__meta_consul_service");
        if (!s || strcmp(s, "svc") != 0 || strcmp(g->source, "svc") != 0)
            abort();
        for (size_t i = 0; i < g->nt; i++) {
            const char *tags = labels_get(g->t[i].ls, g->t[i].n, "__meta_consul_tags");
            if (!labels_get(g->t[i].ls, g->t[i].n, "__address__") || !tags || tags[0] != '|' ||
                tags[strlen(tags) - 1] != '|')
                abort();
        }
        sd_tg_unref(g);
    }
    sd_gb_free(&b);
    return 0;
}
