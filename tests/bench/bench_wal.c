/*
 * bench_wal.c - WAL throughput: encode + write, replay (read, CRC,
 * reassemble, decompress) and replay + decode, for each compression.
 *
 *   build/opt/tests/bench/bench_wal [samples] [samples-per-record] [dir]
 *
 * Defaults: 10,000,000 samples in records of 10,000, under /tmp.  Samples
 * look like a scrape: 10,000 series, one timestamp per record, counter-like
 * values.  Prints records/s and MB/s of record (uncompressed) bytes.
 * fsync policy none: this measures the format code, not the disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/wal.h"
#include "storage/walrec.h"
#include "util/util.h"

int main(int argc, char **argv) {
    size_t nsamples = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    size_t per = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000;
    const char *base = argc > 3 ? argv[3] : "/tmp";
    if (per == 0 || nsamples < per) {
        fprintf(stderr, "usage: bench_wal [samples] [samples-per-record] [dir]\n");
        return 2;
    }
    size_t nrec = nsamples / per;
    walrec_sample *s = malloc(per * sizeof *s);
    walrec_sample *back = malloc(walrec_samples_max(per * 30 + 17) * sizeof *back);
    static const char *names[] = {"none", "snappy", "zstd"};
    printf("bench_wal: %zu samples in %zu records of %zu\n", nrec * per, nrec, per);
    for (int c = 0; c <= WAL_COMPRESS_ZSTD; c++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/kiln_bench_wal_XXXXXX", base);
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        wal_opts o = wal_opts_default();
        o.compression = c;
        wal *w;
        kiln_err err = {0};
        if (wal_open(dir, &o, &w, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        buf b = BUF_INIT;
        uint64_t raw = 0;
        double t0 = time_mono_sec();
        for (size_t r = 0; r < nrec; r++) {
            for (size_t i = 0; i < per; i++) {
                s[i].ref = i + 1;
                s[i].t = 1700000000000LL + (int64_t)r * 15000;
                s[i].v = (double)((r * 7 + i * 13) % 100000) + (double)r * 0.25;
            }
            buf_reset(&b);
            if (walrec_encode_samples(&b, s, per) != 0) {
                fprintf(stderr, "out of memory\n");
                return 1;
            }
            raw += b.len;
            if (wal_log(w, b.data, b.len, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
        }
        double t_write = time_mono_sec() - t0;
        wal_stats st;
        wal_get_stats(w, &st);
        if (wal_close(w, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }

        double t_read = 0, t_dec = 0;
        for (int pass = 0; pass < 2; pass++) {
            wal_reader *rd;
            if (wal_reader_open(dir, &rd, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            const uint8_t *rec;
            size_t len, n, total = 0;
            int rc;
            t0 = time_mono_sec();
            while ((rc = wal_reader_next(rd, &rec, &len, &err)) == 1) {
                if (pass == 1) {
                    if (walrec_decode_samples(rec, len, back, walrec_samples_max(len), &n, &err)) {
                        fprintf(stderr, "%s\n", err.msg);
                        return 1;
                    }
                    total += n;
                }
            }
            double t = time_mono_sec() - t0;
            if (rc < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            if (pass == 0)
                t_read = t;
            else {
                t_dec = t;
                if (total != nrec * per) {
                    fprintf(stderr, "decoded %zu samples, want %zu\n", total, nrec * per);
                    return 1;
                }
            }
            wal_reader_close(rd);
        }
        double mb = (double)raw / 1e6;
        printf("%-7s on disk %7.1f MB (%.2fx)  write %8.0f rec/s %7.1f MB/s %6.1f Msamples/s | "
               "replay %8.0f rec/s %7.1f MB/s | replay+decode %7.1f MB/s %6.1f Msamples/s\n",
               names[c], (double)st.bytes_written / 1e6, (double)raw / (double)st.bytes_written,
               (double)nrec / t_write, mb / t_write, (double)(nrec * per) / t_write / 1e6,
               (double)nrec / t_read, mb / t_read, mb / t_dec, (double)(nrec * per) / t_dec / 1e6);
        buf_free(&b);
        if (fileio_rm_rf(dir, &err))
            fprintf(stderr, "%s\n", err.msg);
    }
    /* CRC32C alone */
    size_t n = 64 << 20;
    uint8_t *data = malloc(n);
    memset(data, 0xa5, n);
    double t0 = time_mono_sec();
    volatile uint32_t crc = crc32c(0, data, n);
    double t1 = time_mono_sec();
    crc = crc32c_sw(crc, data, n);
    double t2 = time_mono_sec();
    printf("crc32c  hardware-or-best %.0f MB/s, tables %.0f MB/s\n", (double)n / 1e6 / (t1 - t0),
           (double)n / 1e6 / (t2 - t1));
    free(data);
    free(s);
    free(back);
    return 0;
}
