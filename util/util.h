/*
 * util.h - the small shared pieces every kiln subsystem uses.
 *
 * Errors: a function that can fail returns 0 or a negative KILN_E* code, and
 * when a user must see why, it fills a kiln_err the caller passes (which may be
 * NULL when the caller does not care for the text).
 *
 * Logging: logfmt like Prometheus (`ts=... level=info caller=file.c:12
 * msg="..." key=value`) or JSON, chosen once at start.  Safe from any thread.
 *
 * buf: a growable byte buffer.  arena: bump allocation freed at once.
 * Durations and times are int64 milliseconds, as in Prometheus.
 */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- errors ---------------------------------------------------------- */

enum {
    KILN_OK = 0,
    KILN_EINVAL = -1,   /* bad input: the message says what and where */
    KILN_ENOMEM = -2,   /* allocation failed */
    KILN_EIO = -3,      /* an operating-system call failed */
    KILN_ENOENT = -4,   /* no such thing */
    KILN_ERANGE = -5,   /* out of range / out of bounds */
    KILN_EEXIST = -6,   /* already exists / duplicate */
    KILN_ECORRUPT = -7, /* on-disk data failed a check */
    KILN_ELIMIT = -8,   /* a configured bound was exceeded */
    KILN_EBUSY = -9,    /* held by someone else (lock) */
    KILN_ECANCELED = -10,
    KILN_ETIMEOUT = -11,
    KILN_EORDER = -12, /* out of order */
};

/* On a function that returns a KILN_E* code (or a pointer that is NULL on
 * failure): the compiler refuses a call that drops the result. */
#define KILN_MUST_CHECK __attribute__((warn_unused_result))

#define KILN_ERR_MSG_MAX 512

typedef struct kiln_err {
    int code;
    char msg[KILN_ERR_MSG_MAX];
} kiln_err;

/* Sets err (if not NULL) to code and the formatted message; returns code so
 * callers can write `return kiln_err_set(err, KILN_EINVAL, "...")`. */
int kiln_err_set(kiln_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with the formatted text and ": ". */
void kiln_err_prefix(kiln_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A short constant name for a code, e.g. "invalid argument". */
const char *kiln_strerror(int code);

/* ---- intrusive doubly linked lists ------------------------------------ */

/* Puts `node` (with `prev`/`next` members) first in the list whose first
 * element is *headp. */
#define DLIST_PUSH(headp, node)                                                                              \
    do {                                                                                                     \
        (node)->prev = NULL;                                                                                 \
        (node)->next = *(headp);                                                                             \
        if (*(headp))                                                                                        \
            (*(headp))->prev = (node);                                                                       \
        *(headp) = (node);                                                                                   \
    } while (0)

/* Unlinks `node` (with `prev`/`next` members) from the list whose first
 * element is *headp. */
#define DLIST_UNLINK(headp, node)                                                                            \
    do {                                                                                                     \
        if ((node)->prev)                                                                                    \
            (node)->prev->next = (node)->next;                                                               \
        else                                                                                                 \
            *(headp) = (node)->next;                                                                         \
        if ((node)->next)                                                                                    \
            (node)->next->prev = (node)->prev;                                                               \
    } while (0)

/* ---- logging --------------------------------------------------------- */

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };
enum { LOG_FORMAT_LOGFMT = 0, LOG_FORMAT_JSON = 1 };

/* Parses "debug|info|warn|error" / "logfmt|json"; returns -1 when unknown. */
int log_level_parse(const char *s);
int log_format_parse(const char *s);

/* Sets the minimum level and the format; before it is called: info, logfmt. */
void log_setup(int level, int format);

/* Redirects output (default stderr); for tests. */
void log_set_fd(int fd);

/*
 * Writes one line.  `kv` is NULL or a printf format of space-separated
 * `key=template` words (`"segment=%d path=%s duration=%.3fs"`), the arguments
 * following.  The logger formats each template alone and quotes the value
 * itself: callers never quote or escape (a value may hold any bytes).  In
 * logfmt a value is quoted as go-kit/slog do (`err="a: \"10ss\""`); in JSON
 * each pair is its own string member.  A template wrapped in double quotes
 * (`at=\"%s at %d\"`) may hold literal spaces.
 */
void log_at(int level, const char *file, int line, const char *msg, const char *kv, ...)
    __attribute__((format(printf, 5, 6)));

#define LOG_DEBUG(msg, ...) log_at(LOG_DEBUG, __FILE__, __LINE__, msg, __VA_ARGS__)
#define LOG_INFO(msg, ...) log_at(LOG_INFO, __FILE__, __LINE__, msg, __VA_ARGS__)
#define LOG_WARN(msg, ...) log_at(LOG_WARN, __FILE__, __LINE__, msg, __VA_ARGS__)
#define LOG_ERROR(msg, ...) log_at(LOG_ERROR, __FILE__, __LINE__, msg, __VA_ARGS__)

/* ---- growable buffer ------------------------------------------------- */

/*
 * Out of memory is sticky: an append that cannot grow the buffer sets `oom`,
 * and every later append is a no-op until buf_reset/buf_free.  So a writer of
 * a response or record appends without checking each call and checks once,
 * with buf_error, when the whole thing is written: a buffer that lost an
 * append is never sent or stored.  The appends still return 0 or
 * KILN_ENOMEM for callers that want to stop early.
 */
typedef struct buf {
    char *data; /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
    int oom; /* an append failed: the contents are incomplete */
} buf;

#define BUF_INIT                                                                                             \
    { NULL, 0, 0, 0 }

/* 0 when every append since the last reset succeeded, else KILN_ENOMEM. */
KILN_MUST_CHECK static inline int buf_error(const buf *b) {
    return b->oom ? KILN_ENOMEM : 0;
}

/* Ensures room for `extra` more bytes (plus a NUL); 0 or KILN_ENOMEM. */
int buf_reserve(buf *b, size_t extra);
int buf_append(buf *b, const void *p, size_t n);
/* Appends v as a protobuf varint (7 bits a byte, low first); buf's
 * out-of-memory is sticky like every append's. */
static inline void buf_put_uvarint(buf *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    buf_append(b, t, n);
}
int buf_puts(buf *b, const char *s);
int buf_putc(buf *b, char c);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap);
void buf_reset(buf *b); /* len = 0 and oom cleared, keeps the memory */
void buf_free(buf *b);
/* Hands the data to the caller (free with free()); b becomes empty. */
char *buf_steal(buf *b);
/* Appends s as a JSON string literal (quoted; escaped as Go's encoder does,
 * <, > and & included). */
void json_str(buf *b, const char *s);
void json_strn(buf *b, const char *s, size_t n);

/* Makes room for `need` elements of `size` bytes in the realloc'd array *v
 * (capacity *cap, doubled as it grows).  0 or KILN_ENOMEM (*v unchanged). */
KILN_MUST_CHECK int array_grow(void **v, size_t *cap, size_t need, size_t size);

/* ---- big scratch arrays --------------------------------------------------- */

/* Arrays of megabytes written out of order, on huge pages (see bigbuf.c).
 * bigbuf_grow is array_grow for them: room for `need` elements of `size`
 * bytes in *v (NULL at first), *cap set to what fits; 0 or KILN_ENOMEM (*v
 * unchanged).  bigbuf_free takes the same capacity and size. */
KILN_MUST_CHECK int bigbuf_grow(void **v, size_t *cap, size_t need, size_t size);
void bigbuf_free(void *v, size_t cap, size_t size);

/* ---- slab -------------------------------------------------------------- */

/* Small long-lived objects in huge-page regions, without headers (see
 * slab.c): the caller gives the size it asked for back when it frees or
 * resizes.  Sizes above SLAB_MAX go to malloc. */
#define SLAB_MAX 2048
/* The bytes a request of n bytes takes. */
size_t slab_size(size_t n);
void *slab_alloc(size_t n);
/* Moves an object of `old` bytes to one of n bytes (the smaller of the two copied). */
void *slab_realloc(void *p, size_t old, size_t n);
void slab_free(void *p, size_t n);
typedef struct slab_stats {
    size_t regions;  /* mapped */
    size_t pages;    /* of SLAB_PAGE bytes, taken from the regions */
    size_t empty;    /* of those, holding no object, kept resident for any size */
    size_t released; /* holding no object, given back to the system */
    size_t bytes;    /* in the objects handed out */
} slab_stats;
#define SLAB_PAGE ((size_t)16 << 10)
void slab_get_stats(slab_stats *st);
/* Gives the system back the pages with no object and those populated ahead
 * of the front: after a burst of allocation (a replay), when no more is
 * expected soon.  Allocating goes on as before after it. */
void slab_trim(void);
/* Waits until the slab's populating thread has done what it was asked (tests). */
void slab_populate_wait(void);

/* ---- arena ----------------------------------------------------------- */

typedef struct arena_block arena_block;
typedef struct arena {
    arena_block *head;
    size_t used_total; /* bytes handed out */
    size_t limit;      /* 0 = unbounded; otherwise allocations beyond fail */
} arena;

void arena_init(arena *a, size_t limit);
/* Returns 16-byte aligned zeroed memory, or NULL when out of memory/limit. */
void *arena_alloc(arena *a, size_t n);
/* Like arena_alloc without the zeroing, for memory about to be filled. */
void *arena_alloc_nz(arena *a, size_t n);
char *arena_strndup(arena *a, const char *s, size_t n);
/* Frees the arena's blocks (standard ones to the process-wide pool); after
 * a large arena (32 MB: a large query's), the pool is cut to 16 MB and the
 * heap trimmed, so resident memory falls back. */
void arena_free(arena *a);
/* Moves every block of src into dst (behind dst's current one) and leaves
 * src empty: what was allocated in src is dst's to free.  For work done in
 * arenas of their own on other threads (parfor) and merged after. */
void arena_adopt(arena *dst, arena *src);
/* The bytes of freed blocks the pool keeps for reuse (0 in sanitizer builds). */
size_t arena_pool_bytes(void);
/* Frees pooled blocks, the largest first, until the pool holds at most keep
 * bytes; then hands the heap's free memory back to the kernel (malloc_trim).
 * Any thread; costs a walk of the heap, so call it after a burst of work. */
void arena_pool_trim(size_t keep);

/* ---- parallel shards (parfor.c) ------------------------------------------- */

/* Calls fn(ctx, i) for every i in [0, n) on the calling thread and the
 * pool's idle helpers (one per core but one), and returns when all calls
 * have returned.  Shards run in any order and on any thread: fn must write
 * only its shard's own data; the caller merges shards in index order. */
typedef void (*parfor_fn)(void *ctx, size_t shard);
void parfor_run(size_t n, parfor_fn fn, void *ctx);
/* The threads a job may run on: the cores, or 1 after parfor_set_width(1). */
size_t parfor_width(void);
/* 1: every job runs on its caller alone (tests compare results with the
 * parallel ones); 0: the cores again.  Any thread, any time. */
void parfor_set_width(int w);

/* ---- JSON reading (json.c) ------------------------------------------------- */

/* A strict RFC 8259 reader into a tree in an arena (see json.c). */
#define JSON_MAX_DEPTH 128
enum { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };
typedef struct json_val {
    int type;
    int b;                 /* JSON_BOOL */
    double num;            /* JSON_NUM */
    const char *str;       /* JSON_STR: decoded, NUL-terminated; JSON_NUM: the number's text */
    size_t len;            /* of str */
    struct json_val *kids; /* JSON_ARR: the items; JSON_OBJ: the members' values */
    const char **keys;     /* JSON_OBJ: the members' names, in document order */
    size_t n;              /* items or members */
    size_t off, end;       /* where the value is in the text: [off, end) */
} json_val;
/* Parses s[0..len) into *out, allocated from a: 0, KILN_EINVAL ("json: ... at
 * offset N" in err) or KILN_ENOMEM.  Borrows s for the call. */
KILN_MUST_CHECK int json_parse(const char *s, size_t len, arena *a, json_val **out, kiln_err *err);
/* The (last) member `key` of obj; NULL when absent or obj is not an object. */
const json_val *json_get(const json_val *obj, const char *key);
/* The member `key` when it is a string, else NULL. */
const char *json_get_str(const json_val *obj, const char *key);

/* ---- CRC32C ------------------------------------------------------------ */

/* CRC32C (Castagnoli) of p[0..n) continuing from crc (0 to start):
 * crc32c("123456789") = 0xE3069283 (crc32c.c). */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);
/* The portable table-driven path alone (for tests and benchmarks). */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);

/* ---- files (fileio.c) ---------------------------------------------------- */

/* Creates path and its missing parents (mode 0777 before umask); 0, or
 * KILN_EINVAL / KILN_EIO with err naming the directory that failed. */
KILN_MUST_CHECK int fileio_mkdir_p(const char *path, kiln_err *err);
/* Removes path and everything below it; a missing path is not an error.
 * 0 or KILN_EIO (err names the first entry that could not be removed). */
KILN_MUST_CHECK int fileio_rm_rf(const char *path, kiln_err *err);
/* fsyncs the directory itself, so renames and creations in it are durable;
 * 0 or KILN_EIO. */
KILN_MUST_CHECK int fileio_fsync_dir(const char *path, kiln_err *err);
/* write(2) until all n bytes are written (EINTR retried); 0, or -1 with errno. */
KILN_MUST_CHECK int fileio_write_all(int fd, const void *p, size_t n);
/* Creates (or truncates) path, writes p[0..n) and fsyncs it; 0 or KILN_EIO. */
KILN_MUST_CHECK int fileio_write_file(const char *path, const void *p, size_t n, kiln_err *err);

/* ---- fault injection (fault.c) --------------------------------------------
 * The storage's file writes go through these (see fault.c): the system call,
 * unless a test armed a failure (fault_arm, or KILN_FAULTS in the
 * environment of the binary). */

typedef enum fault_op {
    FAULT_WRITE = 0,
    FAULT_FSYNC,
    FAULT_RENAME,
    FAULT_MMAP,
    FAULT_OPEN,
    FAULT_NOPS
} fault_op;

ssize_t fault_write(int fd, const void *p, size_t n);
int fault_fsync(int fd);
int fault_rename(const char *from, const char *to);
void *fault_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int fault_open(const char *path, int flags, int mode);

/* Lets `skip` more calls of op through, then fails the next `count` (-1:
 * all) with errno e (0: EIO); a write fails short first (see fault.c). */
void fault_arm(fault_op op, long skip, long count, int e);
void fault_disarm_all(void);
/* Failures given so far. */
long fault_failures(void);
/* Arms what a KILN_FAULTS value says ("write:120:1:ENOSPC,..."); KILN_EINVAL
 * with err when it does not parse. */
KILN_MUST_CHECK int fault_parse(const char *spec, kiln_err *err);

/* ---- ULIDs (ulid.c) ------------------------------------------------------- */

#define ULID_LEN 26
/* A new ULID for the current time: 48 bits of milliseconds and 80 random
 * bits, in Crockford's base32 (26 characters and a NUL). */
void ulid_new(char out[ULID_LEN + 1]);
/* True when s is 26 characters of the ULID alphabet. */
int ulid_valid(const char *s);

/* ---- time and durations --------------------------------------------- */

/* Wall clock in milliseconds since the epoch / in seconds as a double. */
int64_t time_now_ms(void);
double time_now_sec(void);
/* Monotonic clock in seconds. */
double time_mono_sec(void);

/*
 * Parses a Prometheus duration: one or more <number><unit> with units in
 * y, w, d, h, m, s, ms, largest first, each at most once ("1h30m", "90s").
 * "0" alone is allowed.  Writes milliseconds to *ms.
 */
KILN_MUST_CHECK int duration_parse(const char *s, int64_t *ms, kiln_err *err);
/*
 * Writes sec + nsec (since the epoch; nsec may be any value, a negative one
 * counts back) as RFC 3339 in UTC, as Go formats a UTC time:
 * frac 3 gives milliseconds always ("2006-01-02T15:04:05.000Z"), frac -1
 * RFC3339Nano (the nanoseconds without trailing zeros, none when whole:
 * "2006-01-02T15:04:05.5Z"), 0 whole seconds.  out has room for
 * TIME_RFC3339_MAX bytes; returns the length.
 */
#define TIME_RFC3339_MAX 48
int time_format_rfc3339(char *out, int64_t sec, int64_t nsec, int frac);
/* Formats like Prometheus: "1h30m", "15s", "0s", "1d", "2w", "500ms". */
void duration_format(int64_t ms, char *out, size_t n);

/* ---- feature flags (feature.c) ------------------------------------------ */

/*
 * The features --enable-feature turns on, one bit each; the names and what
 * each does are in feature.c's table, the one list of them (add a bit here
 * and a line there).  cmd/kiln/main.c parses the flag into a set and passes
 * it down in each layer's options (query_engine_opts.features, ...).
 */
enum {
    FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS = 1u << 0,
    FEATURE_PROMQL_DURATION_EXPR = 1u << 1,
    FEATURE_PROMQL_EXTENDED_RANGE_SELECTORS = 1u << 2,
    FEATURE_PROMQL_BINOP_FILL_MODIFIERS = 1u << 3,
    FEATURE_PROMQL_DELAYED_NAME_REMOVAL = 1u << 4,
    FEATURE_EXEMPLAR_STORAGE = 1u << 5,                 /* storage/exemplars.c */
    FEATURE_CREATED_TIMESTAMP_ZERO_INGESTION = 1u << 6, /* scrape/append.c, api/otlp.c */
    FEATURE_OTLP_DELTATOCUMULATIVE = 1u << 16,          /* the OTLP receiver's, api/otlp_delta.c */
    FEATURE_NATIVE_HISTOGRAMS = 1u << 7,                /* global scrape_native_histograms defaults to true */
};
/* The PromQL features, all of which Prometheus' PromQL test engine turns on. */
#define FEATURE_PROMQL_ALL                                                                                   \
    (FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS | FEATURE_PROMQL_DURATION_EXPR |                                  \
     FEATURE_PROMQL_EXTENDED_RANGE_SELECTORS | FEATURE_PROMQL_BINOP_FILL_MODIFIERS |                         \
     FEATURE_PROMQL_DELAYED_NAME_REMOVAL)

typedef struct feature_desc {
    const char *name; /* as on the command line: "promql-experimental-functions" */
    uint32_t bit;     /* 0: accepted and ignored (always on in kiln) */
    const char *log;  /* logged at info level when enabled */
} feature_desc;

/* The table of known names (static; *n gets its length). */
const feature_desc *feature_table(size_t *n);
/* The entry for name[0..len), or NULL when kiln does not know it. */
const feature_desc *feature_lookup(const char *name, size_t len);
/* The name of one bit ("?" when none has it). */
const char *feature_name(uint32_t bit);
/*
 * Adds the comma-separated names of `list` (one --enable-feature value) to
 * *set, logging each known one and warning about each unknown one as
 * Prometheus does ("Unknown option for --enable-feature" option=<name>).
 * Empty names are skipped.
 */
void feature_parse_list(const char *list, uint32_t *set);

/* ---- floats ------------------------------------------------------------ */

/* Whether a and b differ by less than eps relative to their size, as
 * Prometheus' almostEqual (near zero: eps times the smallest normal double).
 * NaN equals nothing. */
int double_almost_equal(double a, double b, double eps);

/* The IEEE 754 bits of a double, and back (what Prometheus' chunks, WAL and
 * staleness markers compare and store). */
static inline uint64_t double_to_bits(double d) {
    uint64_t b;
    __builtin_memcpy(&b, &d, sizeof b);
    return b;
}
static inline double double_from_bits(uint64_t b) {
    double d;
    __builtin_memcpy(&d, &b, sizeof d);
    return d;
}

#define FMT_DOUBLE_MAX 400

/* Like Go strconv.FormatFloat(v, 'f', -1, 64): shortest exact digits, no
 * exponent; "NaN", "+Inf", "-Inf".  Returns the length written. */
int fmt_double_f(double v, char *out);
/* Like Go's 'g' with shortest digits as used in the text exposition format
 * ("1.5e+09", "0.25", "NaN", "+Inf").  Returns the length written. */
int fmt_double_g(double v, char *out);
/* Like Go's strconv.FormatFloat(v, 'e', -1, 64): "1e+00", "1.5e-07",
 * "NaN", "+Inf".  Returns the length written. */
int fmt_double_e(double v, char *out);

/* ---- strings --------------------------------------------------------- */

/* The reason phrase of an HTTP status code ("Not Found"), or `unknown` for a
 * code the table does not hold. */
const char *http_status_text(int code, const char *unknown);

/* True when s[0..n) is valid UTF-8. */
int utf8_valid(const char *s, size_t n);
/* The rune at s[0..n) (n > 0): its length in bytes and the rune in *r, or 0
 * when the bytes there are not valid UTF-8. */
size_t utf8_decode(const char *s, size_t n, uint32_t *r);
/* Appends s[0..n) quoted as Go's strconv.Quote does (q '"'), or between
 * single quotes as %q quotes a rune (q '\''): the quote and backslash
 * escaped, \a..\r, \xNN for other controls and invalid bytes, \uNNNN for
 * the runes Go does not print.  Check buf_error when done. */
void go_quote(buf *b, const char *s, size_t n, char q);
/* True when s is a valid legacy Prometheus label name [a-zA-Z_][a-zA-Z0-9_]*. */
int label_name_valid(const char *s, size_t n);
/* True when s is a valid legacy metric name [a-zA-Z_:][a-zA-Z0-9_:]*. */
int metric_name_valid(const char *s, size_t n);

/* ---- NUL bytes inside strings (strnul.c) ---------------------------------
 * A label value may hold a NUL byte (OpenMetrics allows it, Prometheus keeps
 * it); kiln's strings are NUL-terminated, so inside kiln such a byte is the
 * two bytes C0 80 (never in valid UTF-8: unambiguous).  Every boundary
 * converts: nul_in where bytes come in, nul_out where they go out.  Each is
 * a memchr (for 0, for 0xC0) and no copy when there is nothing to convert. */

#define NUL_IN_KILN "\xc0\x80"
/* The length of s[0..n) with each NUL byte as C0 80 (n when none). */
size_t nul_in_len(const char *s, size_t n);
/* Writes s[0..n) to out (room for nul_in_len bytes; not terminated), each
 * NUL as C0 80; returns the length written. */
size_t nul_in(char *out, const char *s, size_t n);
/* Like arena_strndup, each NUL byte of s[0..n) as C0 80. */
char *arena_strndup_nul(arena *a, const char *s, size_t n);
/* The length of s[0..n) with each C0 80 as one NUL byte (n when none). */
size_t nul_out_len(const char *s, size_t n);
/* Writes s[0..n) to out (room for nul_out_len bytes; not terminated), each
 * C0 80 as a NUL byte; returns the length written. */
size_t nul_out(char *out, const char *s, size_t n);
/* buf_append of s[0..n) with each C0 80 as a NUL byte. */
int buf_append_nul_out(buf *b, const char *s, size_t n);
/* utf8_valid, with C0 80 (kiln's NUL) taken as valid too. */
int utf8_valid_nul(const char *s, size_t n);
/* strcmp in the order of the strings nul_out gives (C0 80 sorts as a NUL:
 * before every other byte), the order Prometheus sorts label values in. */
int str_nulcmp(const char *a, const char *b);

/* ---- outgoing TLS (curltls.c) ------------------------------------------- */

/*
 * Applies tls_config's min_version (0x0301..0x0304 as config_tls_version
 * gives; 0: libcurl's default) and server_name (NULL or "": none) to a
 * libcurl easy handle (a CURL *) set up for url.  With a server_name and an
 * https url it replaces CURLOPT_URL, CURLOPT_HTTPHEADER and
 * CURLOPT_CONNECT_TO: a Host header is appended to *headers and an entry to
 * *connect_to, two lists the caller frees (curl_slist_free_all) once the
 * handle is done with.  0, KILN_ENOMEM, or KILN_EINVAL for a url libcurl
 * cannot parse.
 */
struct curl_slist;

/* tls_config's ca_file, cert_file and key_file (NULL: not set) and
 * insecure_skip_verify (no peer or host check) on a libcurl easy handle. */
void curltls_files(void *easy, const char *ca_file, const char *cert_file, const char *key_file,
                   int insecure_skip_verify);

KILN_MUST_CHECK int curltls_apply(void *easy, const char *url, const char *server_name, int min_version,
                                  struct curl_slist **headers, struct curl_slist **connect_to);

/* ---- metrics (the process-wide registry /metrics exposes) -------------- */

/*
 * A metric family is registered once (at start, from any subsystem) and
 * lives until metrics_shutdown().  Children are the label-value
 * combinations; they are created on first use and live until removed with
 * metric_remove (a rule group that goes away) or until shutdown.  All
 * updates are lock-free atomics except creating a child.  The registry is
 * process-wide state by nature (like the process itself), so it is the one
 * global outside main.c; see docs/architecture.md.
 */
typedef struct metric metric;
typedef struct metric_child metric_child;

enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* Registers a family. labelnames: comma-separated ("handler,code") or NULL.
 * buckets (histograms only): ascending upper bounds, +Inf implied.
 * Returns NULL only when out of memory. */
metric *metric_new(int type, const char *name, const char *help, const char *labelnames,
                   const double *buckets, size_t nbuckets);
/* A gauge (or counter, by type) whose value is read by fn when scraped. */
metric *metric_new_func(int type, const char *name, const char *help, double (*fn)(void *data), void *data);
/* The child for these label values (count must match the label names);
 * NULL values are taken as "".  Returns NULL only when out of memory. */
metric_child *metric_with(metric *m, const char *const *values);
/* The only child of an unlabelled family. */
metric_child *metric_default(metric *m);
/* Removes c from its family and frees it; the caller guarantees that no
 * other thread still uses c.  NULL is fine. */
void metric_remove(metric_child *c);
void metric_add(metric_child *c, double v);     /* counters and gauges */
void metric_set(metric_child *c, double v);     /* gauges */
void metric_observe(metric_child *c, double v); /* histograms */
double metric_value(metric_child *c);           /* counters and gauges: current value */
/* Histogram: count and sum. */
void metric_hist_read(metric_child *c, uint64_t *count, double *sum);

/* Appends s escaped for the text exposition format: `\\` and `\n`, and `"`
 * too in a label value (is_help 0); HELP text keeps its quotes. */
void metrics_write_escaped(buf *out, const char *s, int is_help);

/* Writes every family in the text exposition format 0.0.4. */
KILN_MUST_CHECK int metrics_write_text(buf *out);
/* Frees every family (at exit, so leak checks stay quiet). */
void metrics_shutdown(void);

/* Registers process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds (start time = the time of this call). */
KILN_MUST_CHECK int process_metrics_register(void);
/* Current resident set size in bytes (from /proc/self/statm). */
double process_resident_bytes(void);

extern const double METRIC_DEFAULT_BUCKETS[];
extern const size_t METRIC_DEFAULT_NBUCKETS;

#endif
