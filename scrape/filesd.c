/*
 * filesd.c - file_sd_configs: the target groups of a pool read from YAML or
 * JSON files (config_load_targets), found by the configs' glob patterns.
 *
 * filesd_setup (called by scrape.c when a pool's config is applied) reads
 * the files and starts a timer that polls them every SD_POLL_MS: the files
 * are read again when the set of names, a size or an mtime changed, or when
 * the configs' shortest refresh_interval passed; new groups make the pool
 * sync its targets (scrape_sync_pool).  A file that does not load keeps the
 * pool's previous groups and is tried again at the next poll.  The groups
 * live in the pool's sd_mem arena, the file of each group in sd_files.
 *
 * Threading: the loop thread only.
 */
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "scrape/internal.h"

/* How often the files' names, sizes and mtimes are looked at. */
#define SD_POLL_MS 5000

/*
 * Reads the pool's target files again when their names, sizes or mtimes
 * changed, or the refresh interval passed.  Returns 1 when the groups were
 * replaced.  A file that does not load keeps the previous groups (and is
 * tried again at the next poll).
 */
static int sd_read(pool *p, const scrape_config *sc) {
    XXH3_state_t *xs = XXH3_createState();
    if (!xs)
        return 0;
    XXH3_64bits_reset(xs);
    glob_t *gs = calloc(sc->nfile_sd_configs + 1, sizeof *gs);
    if (!gs) {
        XXH3_freeState(xs);
        return 0;
    }
    int64_t refresh = INT64_MAX;
    for (size_t i = 0; i < sc->nfile_sd_configs; i++) {
        const config_file_sd *f = &sc->file_sd_configs[i];
        if (f->refresh_interval_ms > 0 && f->refresh_interval_ms < refresh)
            refresh = f->refresh_interval_ms;
        for (size_t j = 0; j < f->nfiles; j++)
            glob(f->files[j], j ? GLOB_APPEND : 0, NULL, &gs[i]);
        for (size_t j = 0; j < gs[i].gl_pathc; j++) {
            struct stat st;
            const char *path = gs[i].gl_pathv[j];
            XXH3_64bits_update(xs, path, strlen(path) + 1);
            if (stat(path, &st) == 0) {
                int64_t v[3] = {(int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec, (int64_t)st.st_size};
                XXH3_64bits_update(xs, v, sizeof v);
            }
        }
    }
    uint64_t sig = XXH3_64bits_digest(xs) | 1;
    XXH3_freeState(xs);
    int64_t now = time_now_ms();
    int changed = 0;
    if (sig != p->sd_sig || now - p->sd_read_ms >= refresh) {
        arena na;
        arena_init(&na, 0);
        config_static *groups = NULL;
        const char **files = NULL;
        size_t n = 0, capg = 0, capf = 0;
        int ok = 1;
        for (size_t i = 0; i < sc->nfile_sd_configs && ok; i++)
            for (size_t j = 0; j < gs[i].gl_pathc && ok; j++) {
                config_static *g = NULL;
                size_t ng = 0;
                kiln_err err = {0};
                const char *path = gs[i].gl_pathv[j];
                if (config_load_targets(path, &na, &g, &ng, &err) != 0) {
                    LOG_ERROR("Error reading file", "discovery=file scrape_pool=%s path=%s err=%s",
                              sc->job_name, path, err.msg);
                    ok = 0;
                    break;
                }
                const char *kept = arena_strndup(&na, path, strlen(path));
                if (!kept || array_grow((void **)&groups, &capg, n + ng, sizeof *groups) != 0 ||
                    array_grow((void **)&files, &capf, n + ng, sizeof *files) != 0) {
                    ok = 0;
                    break;
                }
                for (size_t k = 0; k < ng; k++) {
                    groups[n] = g[k];
                    files[n++] = kept;
                }
            }
        /* the groups move into the arena with everything they point to */
        config_static *copy = n ? arena_alloc(&na, n * sizeof *copy) : NULL;
        if (ok && (copy || !n)) {
            if (n)
                memcpy(copy, groups, n * sizeof *copy);
            free(groups);
            arena_free(&p->sd_mem);
            free(p->sd_files);
            p->sd_mem = na;
            p->sd_groups = copy;
            p->sd_files = files;
            p->nsd = n;
            p->sd_sig = sig;
            p->sd_read_ms = now;
            changed = 1;
        } else {
            arena_free(&na);
            free(groups);
            free(files);
        }
    }
    for (size_t i = 0; i < sc->nfile_sd_configs; i++)
        globfree(&gs[i]);
    free(gs);
    return changed;
}

static void on_sd_timer(uv_timer_t *h) {
    pool *p = h->data;
    if (!p->m->stopping && sd_read(p, p->sc))
        scrape_sync_pool(p->m, p, p->sc, p->cfg);
}

/* Starts or stops the pool's file polling for its (new) config. */
void filesd_setup(scrape_manager *m, pool *p, const scrape_config *sc) {
    if (sc->nfile_sd_configs == 0) {
        if (p->sd_timer_on)
            uv_timer_stop(&p->sd_timer);
        filesd_free(p);
        p->sd_sig = 0;
        return;
    }
    p->sd_sig = 0; /* the patterns may have changed: read again */
    sd_read(p, sc);
    if (!p->sd_timer_on) {
        uv_timer_init(m->loop, &p->sd_timer);
        p->sd_timer.data = p;
        p->sd_timer_on = 1;
        m->handles++;
    }
    uv_timer_start(&p->sd_timer, on_sd_timer, SD_POLL_MS, SD_POLL_MS);
}

void filesd_free(pool *p) {
    arena_free(&p->sd_mem);
    free(p->sd_files);
    p->sd_files = NULL;
    p->sd_groups = NULL;
    p->nsd = 0;
}
