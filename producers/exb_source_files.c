/*
 * exb_source_files.c — file exchange (文件交换): the `files` source of the
 * producer agent. A department that cannot give the agent its database
 * drops export files into a directory; each line becomes one change.
 *
 * Configuration (producer.conf):
 *
 *   source.type = files
 *   source.path = /srv/exchange/ga          the drop directory (must exist)
 *   source.table.person = 370600-GA-0001    files named person*.csv / .jsonl
 *   source.files.settle.ms = 2000           unchanged this long before taken
 *   source.files.max.bytes = 1073741824     larger files are refused
 *   source.files.max.line.bytes = 1048576   longer records are rejected
 *
 * The drop directory:
 *
 *   <dir>/<name>.csv, <dir>/<name>.jsonl    waiting or being processed
 *   <dir>/done/<name>                       every record delivered or rejected
 *   <dir>/done/<name>.rejects               its rejected records (only if any)
 *   <dir>/refused/<name>                    refused as a whole (too large, no
 *   <dir>/refused/<name>.rejects            table matches, bad header...), why
 *
 * Which files are taken: regular files (symbolic links are not followed)
 * whose name ends in .csv or .jsonl (any case) and does not start with '.'.
 * Anything else is left alone, so a writer can write "x.csv.part" (or
 * ".x.csv") and rename it when complete. A file is taken only when its size
 * and mtime have not changed for source.files.settle.ms (0: at first sight),
 * so a file still being written is not taken either; it is checked again
 * after hashing. Files are processed one at a time, in byte order of their
 * names (name exports with a sortable date: person-20261123.csv).
 *
 * Which resource: source.table.<name> matches a file whose name without its
 * extension equals <name> or starts with <name> followed by '-', '_' or '.'
 * (ASCII case ignored); the longest matching <name> wins. "person-20261123.csv"
 * and "PERSON_1.jsonl" belong to source.table.person; "persons.csv" does not.
 * A file that matches no table is refused.
 *
 * CSV (RFC 4180): UTF-8 (a BOM is skipped), fields separated by ',', records
 * by LF or CRLF, a field containing ',', '"' or a line break is quoted with
 * '"' and its quotes doubled. The first record is the header: the item names
 * (ASCII case ignored, spaces around a name trimmed); it must name every key
 * item, may leave out others (null), and may not name anything that is not
 * an item (the file is refused: a misspelt column would otherwise vanish).
 * An unquoted empty field is null, a quoted one ("") is the empty string.
 *
 * JSONL: one JSON object per line, members named as the items (same rules);
 * an unknown member rejects that line. Values may be JSON strings (read as
 * text, below), numbers, true/false or null.
 *
 * Operation: the column or member "op" (or "_op" when the resource has an
 * item named op) holds CREATE, UPDATE, DELETE or SNAPSHOT (any case); absent
 * or empty: CREATE. A DELETE publishes the key items only.
 *
 * Values as text, per item type (surrounding spaces are ignored and an empty
 * value is null for every type but C):
 *   C  the text as is                 N  a decimal number (1, -2.5, 1e3)
 *   I  a decimal integer              D  YYYY-MM-DD
 *   T  ISO-8601 (2026-01-15T08:30:00Z, "2026-01-15 08:30:00", +08:00; no
 *      zone: UTC) or integer epoch milliseconds
 *   L  true, false, 1 or 0 (any case)
 *   B  base64 (RFC 4648, padding optional), or hex after "\x" (\x0a1b)
 * JSON numbers fit N, I (integral), C (integers, as decimal text), T (epoch
 * ms) and L (0/1); true/false fit L. Anything else rejects the line, naming
 * the item.
 *
 * Rejected records (a syntax error, invalid UTF-8, a value that does not fit,
 * a record longer than source.files.max.line.bytes, and whatever the
 * publisher's validation refuses) do not stop the file. done/<name>.rejects
 * lists them, one JSON object per line, in line order:
 *   {"line":12,"reason":"370600-GA-0001: item \"birth_date\": ...","text":"first 200 bytes"}
 * "line" is the file line where the record starts (CSV records may span
 * lines); 0 in refused/<name>.rejects, for the file as a whole.
 *
 * Progress (data.dir/producer-files.db, SQLite):
 *   files(fid, name, tbl, size, mtime_ns, hash, state, acked_line, acked_off,
 *         acked_lineno, records, moved_to, reason, started, finished)
 *     state: active -> complete -> done, or refused, or lost (the file
 *     changed or vanished while being processed: logged as an error).
 *   rejects(fid, line, reason, text)   until the file is done
 *   meta(k, v)                         id: this source's random id
 * A change's position is fid << 32 | line. ack(pos) stores the last
 * acknowledged record (its line and the byte offset after it) and the
 * rejections held since the last ack in one transaction; when the file has
 * been read to its end and its last record is acknowledged the same
 * transaction marks it complete, and it is then moved (the .rejects file is
 * written from the rejects table first, then the file renamed; both
 * fsynced). A restart resumes an active file after its last acknowledged
 * record — if name, size, mtime and SHA-256 are still the same — so no
 * acknowledged line is published again, and finishes complete files.
 * Changes in flight at a crash (produced, not yet acknowledged) are
 * published again with the same event id: "<dept>-<sha256 of the file, 16
 * hex digits>-<line>", so subscribers can drop them; the same content
 * dropped twice gets the same ids too.
 *
 * A change's ts_ms is the file's mtime. Bounds: a file is read in 64 KiB
 * chunks, a record is held only up to source.files.max.line.bytes, a header
 * has at most 4096 columns.
 */
#include "exb_source.h"
#include "exb_sql.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FS_CHUNK       (64 * 1024)
#define FS_MAX_COLUMNS 4096
#define FS_EXCERPT     200
#define FS_MAX_CANDS   10000
#define FS_SCAN_MS     100

typedef struct fs_conf_s {
        int settle_ms;
        int max_bytes;
        int max_line;
} fs_conf_t;

static const exb_prop_t fs_props[] = {
        {"source.files.settle.ms", EXB_PROP_INT, offsetof(fs_conf_t, settle_ms), "0..3600000",
         "2000",
         "files: a file is taken only once its size and mtime have not changed for this long (0: "
         "at first sight; writers should then write NAME.part and rename it)."},
        {"source.files.max.bytes", EXB_PROP_INT, offsetof(fs_conf_t, max_bytes), "1..2147483647",
         "1073741824", "files: a larger file is refused as a whole (moved to refused/)."},
        {"source.files.max.line.bytes", EXB_PROP_INT, offsetof(fs_conf_t, max_line), "64..67108864",
         "1048576", "files: a longer record (line) is rejected."},
        {NULL}};

typedef struct fs_table_s {
        char *name;
        const exb_resource_t *res;
        const exb_schema_t *schema;
        const char *op_name; /* "op", "_op", or NULL if both are items */
} fs_table_t;

typedef struct fs_cand_s {
        char *name;
        int64_t size, mtime_ns;
        int64_t since; /* mono ms when (size, mtime) was first seen */
        int seen;
} fs_cand_t;

/* A record handed out and not yet acknowledged. */
typedef struct fs_ent_s {
        int64_t line;       /* first line */
        int64_t end_off;    /* byte offset after it */
        int64_t end_lineno; /* line number after it */
        int rejected;
} fs_ent_t;

typedef struct fs_rej_s {
        int64_t fid, line;
        char *reason, *text;
} fs_rej_t;

/* Unescaped fields and decoded values of the current record: sized before
 * a record is mapped, so pointers into it stay valid until the next one. */
typedef struct fs_arena_s {
        char *p;
        size_t len, cap;
} fs_arena_t;

typedef struct fs_field_s {
        const char *p;
        size_t len;
        int quoted;
} fs_field_t;

/* The file being processed. */
typedef struct fs_file_s {
        int64_t fid;
        char *name;
        int table;
        int jsonl;
        int fd;
        int64_t size, mtime_ns;
        char hash[65];
        uint8_t *buf;
        size_t blen, bpos;
        int64_t off;    /* file offset of buf[bpos] */
        int64_t lineno; /* line number at off */
        int eof;
        int complete; /* marked complete: only the moves are left */
        int64_t last_line;
        int64_t acked_line, acked_off, acked_lineno;
        int ncols;
        int *col_field; /* CSV: schema field per column, -2 = op */
        fs_ent_t *ents;
        int nents, entcap;
} fs_file_t;

struct exb_source_s {
        char *where, *dept, *path, *data_dir;
        char *done_dir, *refused_dir;
        fs_conf_t conf;
        sqlite3 *db;
        char *db_path;
        char id[40];
        int ntables;
        fs_table_t *tables;
        int valcap;
        exb_val_t *vals;
        fs_file_t *file;
        fs_cand_t *cands;
        int ncands;
        int64_t next_scan;
        exb_buf_t rec; /* the current record (raw) */
        fs_arena_t arena;
        fs_field_t *fields;
        json_t *json; /* the current JSONL record */
        char event_id[128];
        char error[600];
        fs_rej_t *rej;
        int nrej, rejcap;
};

/* ----------------------------------------------------------------- helpers */

static int64_t mtime_ns_of(const struct stat *st)
{
        return (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

static char *path_join(const char *dir, const char *name)
{
        size_t n = strlen(dir) + strlen(name) + 2;
        char *p = exb_calloc(1, n);
        snprintf(p, n, "%s/%s", dir, name);
        return p;
}

static int ends_with_ci(const char *s, const char *suffix)
{
        size_t n = strlen(s), m = strlen(suffix);
        return n >= m && !strcasecmp(s + n - m, suffix);
}

/* Offset of the first byte that is not valid UTF-8, or -1. */
static long utf8_bad(const unsigned char *p, size_t len)
{
        size_t i = 0;
        while (i < len) {
                unsigned c = p[i];
                if (c < 0x80) {
                        i++;
                        continue;
                }
                size_t n;
                unsigned min;
                if (c >= 0xC2 && c <= 0xDF)
                        n = 1, min = 0x80;
                else if (c >= 0xE0 && c <= 0xEF)
                        n = 2, min = 0x800;
                else if (c >= 0xF0 && c <= 0xF4)
                        n = 3, min = 0x10000;
                else
                        return (long)i;
                if (len - i <= n)
                        return (long)i;
                unsigned cp = c & (0x3F >> n);
                for (size_t k = 1; k <= n; k++) {
                        if ((p[i + k] & 0xC0) != 0x80)
                                return (long)i;
                        cp = cp << 6 | (p[i + k] & 0x3F);
                }
                if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                        return (long)i;
                i += n + 1;
        }
        return -1;
}

/* A short excerpt for messages: at most max bytes, cut on a UTF-8 boundary,
 * control characters and invalid bytes as '?'. */
static void excerpt(char *out, size_t size, const char *p, size_t len, size_t max)
{
        size_t n = len > max ? max : len;
        while (n < len && n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
                n--;
        size_t o = 0;
        long bad = utf8_bad((const unsigned char *)p, n);
        for (size_t i = 0; i < n && o + 1 < size; i++) {
                unsigned char c = (unsigned char)p[i];
                out[o++] = c < 0x20 || (bad >= 0 && c >= 0x80) ? '?' : (char)c;
        }
        if (n < len && o + 4 < size)
                memcpy(out + o, "...", 3), o += 3;
        out[o < size ? o : size - 1] = '\0';
}

/* Appends s as a JSON string (invalid UTF-8 bytes become U+FFFD). */
static void json_str(exb_buf_t *b, const char *s, size_t len)
{
        exb_buf_putc(b, '"');
        size_t i = 0;
        while (i < len) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x80) {
                        size_t n = 1;
                        while (i + n < len && n < 4 && ((unsigned char)s[i + n] & 0xC0) == 0x80)
                                n++;
                        if (utf8_bad((const unsigned char *)s + i, n) < 0)
                                exb_buf_append(b, s + i, n);
                        else
                                exb_buf_append(b, "\xEF\xBF\xBD", 3), n = 1;
                        i += n;
                        continue;
                }
                if (c == '"' || c == '\\')
                        exb_buf_printf(b, "\\%c", c);
                else if (c == '\n')
                        exb_buf_printf(b, "\\n");
                else if (c == '\r')
                        exb_buf_printf(b, "\\r");
                else if (c == '\t')
                        exb_buf_printf(b, "\\t");
                else if (c < 0x20)
                        exb_buf_printf(b, "\\u%04x", c);
                else
                        exb_buf_putc(b, c);
                i++;
        }
        exb_buf_putc(b, '"');
}

static int fsync_dir(const char *dir)
{
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        int rc = fsync(fd);
        close(fd);
        return rc;
}

/* Writes text to path atomically (tmp file, fsync, rename). Returns 0 or
 * -1 with errno set. */
static int write_atomic(const char *path, const void *p, size_t len)
{
        size_t n = strlen(path) + 8;
        char *tmp = exb_calloc(1, n);
        snprintf(tmp, n, "%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int rc = -1;
        if (fd >= 0) {
                size_t done = 0;
                while (done < len) {
                        ssize_t w = write(fd, (const char *)p + done, len - done);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                break;
                        done += (size_t)w;
                }
                rc = done == len && fsync(fd) == 0 ? 0 : -1;
                int e = errno;
                close(fd);
                if (rc == 0)
                        rc = rename(tmp, path);
                else
                        unlink(tmp);
                errno = e;
        }
        free(tmp);
        return rc;
}

/* A free name in dir for name: name itself, else "<stem>.<fid><ext>". */
static char *target_name(const char *dir, const char *name, int64_t fid)
{
        char *p = path_join(dir, name);
        size_t n = strlen(p) + 16;
        char *rj = exb_calloc(1, n);
        snprintf(rj, n, "%s.rejects", p);
        struct stat st;
        int taken = lstat(p, &st) == 0 || lstat(rj, &st) == 0;
        free(p);
        free(rj);
        if (!taken)
                return exb_strdup(name);
        const char *dot = strrchr(name, '.');
        size_t stem = dot && dot != name ? (size_t)(dot - name) : strlen(name);
        size_t sz = strlen(name) + 24;
        char *out = exb_calloc(1, sz);
        snprintf(out, sz, "%.*s.%lld%s", (int)stem, name, (long long)fid, name + stem);
        return out;
}

static int fs_exec(exb_source_t *src, char *errstr, size_t errstr_size, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int rc = exb_sql_vexec(src->db, src->db_path, errstr, errstr_size, fmt, ap);
        va_end(ap);
        return rc;
}

static const char *type_desc(exb_type_t t)
{
        switch (t) {
        case EXB_T_STRING:
                return "C (text)";
        case EXB_T_NUMBER:
                return "N (number)";
        case EXB_T_INT:
                return "I (integer)";
        case EXB_T_DATE:
                return "D (date YYYY-MM-DD)";
        case EXB_T_TIMESTAMP:
                return "T (ISO-8601 or epoch ms)";
        case EXB_T_BOOL:
                return "L (true/false/1/0)";
        case EXB_T_BYTES:
                return "B (base64 or \\x hex)";
        }
        return "?";
}

/* ------------------------------------------------------------------ values */

static void arena_reserve(exb_source_t *src, size_t need)
{
        src->arena.len = 0;
        if (src->arena.cap < need) {
                free(src->arena.p);
                src->arena.p = exb_calloc(1, need);
                src->arena.cap = need;
        }
}

static char *arena_put(exb_source_t *src, const void *p, size_t len)
{
        char *dst = src->arena.p + src->arena.len;
        if (len)
                memcpy(dst, p, len);
        src->arena.len += len;
        return dst;
}

static int b64val(int c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

static int hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes base64 or "\x" hex into the arena. Returns 0 or -1 with why. */
static int map_bytes(exb_source_t *src, const char *p, size_t len, exb_val_t *out, char *why,
                     size_t why_size)
{
        char *dst = src->arena.p + src->arena.len;
        size_t n = 0;
        if (len >= 2 && p[0] == '\\' && (p[1] == 'x' || p[1] == 'X')) {
                if ((len - 2) % 2) {
                        exb_errf(why, why_size, "hex after \\x has an odd number of digits");
                        return -1;
                }
                for (size_t i = 2; i < len; i += 2) {
                        int hi = hexval((unsigned char)p[i]), lo = hexval((unsigned char)p[i + 1]);
                        if (hi < 0 || lo < 0) {
                                exb_errf(why, why_size, "not a hex digit at position %zu", i + 1);
                                return -1;
                        }
                        dst[n++] = (char)(hi << 4 | lo);
                }
        } else {
                size_t end = len;
                while (end > 0 && p[end - 1] == '=' && len - end < 2)
                        end--;
                if (end % 4 == 1 || (end != len && len % 4)) {
                        exb_errf(why, why_size, "not base64 (bad length or padding)");
                        return -1;
                }
                uint32_t acc = 0;
                int bits = 0;
                for (size_t i = 0; i < end; i++) {
                        int v = b64val((unsigned char)p[i]);
                        if (v < 0) {
                                exb_errf(why, why_size, "not base64 (character %zu)", i + 1);
                                return -1;
                        }
                        acc = acc << 6 | (uint32_t)v;
                        bits += 6;
                        if (bits >= 8) {
                                bits -= 8;
                                dst[n++] = (char)(acc >> bits & 0xFF);
                        }
                }
        }
        src->arena.len += n;
        out->u.s = (exb_str_t){dst, n};
        return 0;
}

static int parse_int(const char *p, size_t len, int64_t *v)
{
        char tmp[32];
        if (len == 0 || len >= sizeof(tmp))
                return -1;
        for (size_t i = 0; i < len; i++)
                if (!((p[i] >= '0' && p[i] <= '9') || (i == 0 && (p[i] == '-' || p[i] == '+'))))
                        return -1;
        if (len == 1 && (p[0] == '-' || p[0] == '+'))
                return -1;
        memcpy(tmp, p, len);
        tmp[len] = '\0';
        errno = 0;
        long long x = strtoll(tmp, NULL, 10);
        if (errno)
                return -1;
        *v = x;
        return 0;
}

static int parse_num(const char *p, size_t len, double *v)
{
        char tmp[64];
        if (len == 0 || len >= sizeof(tmp))
                return -1;
        /* decimal only: no hex, inf, nan */
        for (size_t i = 0; i < len; i++)
                if (!strchr("0123456789+-.eE", p[i]))
                        return -1;
        memcpy(tmp, p, len);
        tmp[len] = '\0';
        char *end;
        errno = 0;
        double d = strtod(tmp, &end);
        if (end != tmp + len || errno == ERANGE || !isfinite(d))
                return -1;
        *v = d;
        return 0;
}

/* Maps a text value to its item type. Returns 0, or -1 with why. */
static int map_text(exb_source_t *src, exb_type_t type, const char *p, size_t len, exb_val_t *out,
                    char *why, size_t why_size)
{
        char ex[64];
        out->is_null = 0;
        if (type == EXB_T_STRING) { /* borrowed: valid until the next record */
                out->u.s = (exb_str_t){p, len};
                return 0;
        }
        while (len && (*p == ' ' || *p == '\t'))
                p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
        if (!len) {
                out->is_null = 1;
                return 0;
        }
        switch (type) {
        case EXB_T_NUMBER:
                if (!parse_num(p, len, &out->u.d))
                        return 0;
                break;
        case EXB_T_INT:
                if (!parse_int(p, len, &out->u.i))
                        return 0;
                break;
        case EXB_T_DATE:
                if (!exb_date_parse(p, len, &out->u.i))
                        return 0;
                break;
        case EXB_T_TIMESTAMP:
                if (!exb_ts_parse(p, len, &out->u.i) || !parse_int(p, len, &out->u.i))
                        return 0;
                break;
        case EXB_T_BOOL:
                if ((len == 4 && !strncasecmp(p, "true", 4)) || (len == 1 && *p == '1')) {
                        out->u.i = 1;
                        return 0;
                }
                if ((len == 5 && !strncasecmp(p, "false", 5)) || (len == 1 && *p == '0')) {
                        out->u.i = 0;
                        return 0;
                }
                break;
        case EXB_T_BYTES: {
                char w[128];
                if (!map_bytes(src, p, len, out, w, sizeof(w)))
                        return 0;
                excerpt(ex, sizeof(ex), p, len, 40);
                exb_errf(why, why_size, "\"%s\": %s", ex, w);
                return -1;
        }
        default:
                break;
        }
        excerpt(ex, sizeof(ex), p, len, 40);
        exb_errf(why, why_size, "\"%s\" does not fit type %s", ex, type_desc(type));
        return -1;
}

/* Maps a JSON value. Returns 0, or -1 with why. */
static int map_json(exb_source_t *src, exb_type_t type, json_t *v, exb_val_t *out, char *why,
                    size_t why_size)
{
        out->is_null = 0;
        if (json_is_null(v)) {
                out->is_null = 1;
                return 0;
        }
        if (json_is_string(v))
                return map_text(src, type, json_string_value(v), json_string_length(v), out, why,
                                why_size);
        if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);
                switch (type) {
                case EXB_T_STRING: {
                        char num[32];
                        int n = snprintf(num, sizeof(num), "%lld", (long long)i);
                        out->u.s = (exb_str_t){arena_put(src, num, (size_t)n), (size_t)n};
                        return 0;
                }
                case EXB_T_NUMBER:
                        out->u.d = (double)i;
                        return 0;
                case EXB_T_INT:
                case EXB_T_TIMESTAMP:
                        out->u.i = i;
                        return 0;
                case EXB_T_BOOL:
                        if (i == 0 || i == 1) {
                                out->u.i = i;
                                return 0;
                        }
                        break;
                default:
                        break;
                }
                exb_errf(why, why_size, "number %lld does not fit type %s", (long long)i,
                         type_desc(type));
                return -1;
        }
        if (json_is_real(v)) {
                double d = json_real_value(v);
                if (type == EXB_T_NUMBER) {
                        out->u.d = d;
                        return 0;
                }
                if (type == EXB_T_INT && d >= -9007199254740992.0 && d <= 9007199254740992.0 &&
                    d == (double)(int64_t)d) {
                        out->u.i = (int64_t)d;
                        return 0;
                }
                exb_errf(why, why_size, "number %.17g does not fit type %s", d, type_desc(type));
                return -1;
        }
        if (json_is_boolean(v)) {
                if (type == EXB_T_BOOL) {
                        out->u.i = json_is_true(v);
                        return 0;
                }
                exb_errf(why, why_size, "%s does not fit type %s",
                         json_is_true(v) ? "true" : "false", type_desc(type));
                return -1;
        }
        exb_errf(why, why_size, "a JSON %s does not fit type %s",
                 json_is_object(v) ? "object" : "array", type_desc(type));
        return -1;
}

static int parse_op(const char *p, size_t len, exb_op_t *op)
{
        static const char *const names[] = {"CREATE", "UPDATE", "DELETE", "SNAPSHOT"};
        while (len && (*p == ' ' || *p == '\t'))
                p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
        if (!len) {
                *op = EXB_OP_CREATE;
                return 0;
        }
        for (int i = 0; i < 4; i++)
                if (strlen(names[i]) == len && !strncasecmp(p, names[i], len)) {
                        *op = (exb_op_t)i;
                        return 0;
                }
        return -1;
}

/* Schema field of an item name (ASCII case ignored), or -1. */
static int field_of(const fs_table_t *t, const char *name, size_t len)
{
        for (int f = 0; f < t->schema->nfields; f++)
                if (strlen(t->schema->fields[f].name) == len &&
                    !strncasecmp(t->schema->fields[f].name, name, len))
                        return f;
        return -1;
}

/* " (did you mean \"x\"?)" or "". */
static void suggest(const fs_table_t *t, const char *name, size_t len, char *out, size_t size)
{
        int best = 99, bf = -1;
        char lower[130];
        size_t n = len < 128 ? len : 128;
        for (size_t i = 0; i < n; i++)
                lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
        lower[n] = '\0';
        for (int f = 0; f < t->schema->nfields; f++) {
                int d = exb_edit_distance(lower, n, t->schema->fields[f].name);
                if (d < best)
                        best = d, bf = f;
        }
        if (bf >= 0 && best <= 2)
                snprintf(out, size, " (did you mean \"%s\"?)", t->schema->fields[bf].name);
        else
                out[0] = '\0';
}

static int is_key_field(const fs_table_t *t, int f)
{
        int idx = exb_resource_item_idx(t->res, t->schema->fields[f].name);
        return idx >= 0 ? t->res->items[idx].is_key : !t->schema->fields[f].nullable;
}

/* -------------------------------------------------------------------- CSV */

/* Splits one CSV record (line end excluded) into fields, unescaping quoted
 * ones into the arena. Returns the number of fields, or -1 with why. */
static int csv_split(exb_source_t *src, const char *p, size_t len, char *why, size_t why_size)
{
        int nf = 0;
        size_t i = 0;
        for (;;) {
                if (nf == FS_MAX_COLUMNS) {
                        exb_errf(why, why_size, "more than %d fields", FS_MAX_COLUMNS);
                        return -1;
                }
                fs_field_t *fl = &src->fields[nf++];
                if (i < len && p[i] == '"') {
                        char *dst = src->arena.p + src->arena.len;
                        size_t n = 0;
                        i++;
                        for (;;) {
                                if (i >= len) {
                                        exb_errf(why, why_size,
                                                 "field %d: quoted field not closed at the end of "
                                                 "the file",
                                                 nf);
                                        return -1;
                                }
                                if (p[i] == '"') {
                                        if (i + 1 < len && p[i + 1] == '"') {
                                                dst[n++] = '"';
                                                i += 2;
                                                continue;
                                        }
                                        i++;
                                        break;
                                }
                                dst[n++] = p[i++];
                        }
                        src->arena.len += n;
                        *fl = (fs_field_t){dst, n, 1};
                        if (i < len && p[i] != ',') {
                                exb_errf(why, why_size, "field %d: text after the closing quote",
                                         nf);
                                return -1;
                        }
                } else {
                        size_t start = i;
                        while (i < len && p[i] != ',') {
                                if (p[i] == '"') {
                                        exb_errf(why, why_size,
                                                 "field %d: a quote inside an unquoted field "
                                                 "(quote the field and double the quote)",
                                                 nf);
                                        return -1;
                                }
                                i++;
                        }
                        *fl = (fs_field_t){p + start, i - start, 0};
                }
                if (i >= len)
                        return nf;
                i++; /* the comma */
        }
}

/* ------------------------------------------------------------ file reading */

static void file_free(fs_file_t *f)
{
        if (!f)
                return;
        if (f->fd >= 0)
                close(f->fd);
        free(f->name);
        free(f->buf);
        free(f->col_field);
        free(f->ents);
        free(f);
}

static void file_seek(fs_file_t *f, int64_t off, int64_t lineno)
{
        f->off = off;
        f->lineno = lineno;
        f->blen = f->bpos = 0;
        f->eof = 0;
}

/* Where a CSV record scan is: at a field's start, inside an unquoted field,
 * inside quotes, just after a quote inside quotes (the end, or "" ). A
 * quote opens a quoted field only at the start of a field, so a stray
 * quote in an unquoted field (an error csv_split reports) does not swallow
 * the lines after it. */
enum { CS_START, CS_PLAIN, CS_QUOTED, CS_QUOTE };

/* Reads the next record into src->rec (line end and a CR before it
 * excluded). CSV records end at a line end outside quotes. A record longer
 * than max.line.bytes is cut there (*too_long) and ends at the next line end,
 * quoted or not (a resync). Returns 1, 0 at the end of the file, or -1 with
 * errstr. *line: its first line; *unclosed: the end of the file came inside
 * quotes. */
static int read_record(exb_source_t *src, fs_file_t *f, int64_t *line, int *too_long, int *unclosed,
                       char *errstr, size_t errstr_size)
{
        exb_buf_reset(&src->rec);
        *too_long = *unclosed = 0;
        *line = f->lineno;
        int cs = CS_START, any = 0, ended = 0;
        size_t max = (size_t)src->conf.max_line;
        while (!ended) {
                if (f->bpos == f->blen) {
                        if (f->off >= f->size)
                                break;
                        int64_t left = f->size - f->off;
                        size_t want = left < FS_CHUNK ? (size_t)left : FS_CHUNK;
                        ssize_t n = pread(f->fd, f->buf, want, f->off);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0) {
                                exb_errf(errstr, errstr_size,
                                         "%s: source.path %s: %s: %s at byte %lld", src->where,
                                         src->path, f->name,
                                         n < 0 ? strerror(errno) : "the file became shorter",
                                         (long long)f->off);
                                return -1;
                        }
                        f->blen = (size_t)n;
                        f->bpos = 0;
                }
                any = 1;
                const uint8_t *s = f->buf + f->bpos;
                size_t avail = f->blen - f->bpos, k = 0;
                size_t room = max > src->rec.len ? max - src->rec.len : 0;
                int was_long = *too_long;
                while (k < avail) {
                        uint8_t c = s[k];
                        if (c == '\n' && (cs != CS_QUOTED || *too_long)) {
                                f->lineno++;
                                ended = 1;
                                break;
                        }
                        if (!*too_long && k >= room)
                                *too_long = 1; /* keep scanning to the line end */
                        if (c == '\n')
                                f->lineno++;
                        else if (f->jsonl)
                                ;
                        else if (c == '"')
                                cs = cs == CS_START || cs == CS_QUOTE ? CS_QUOTED
                                     : cs == CS_QUOTED                ? CS_QUOTE
                                                                      : CS_PLAIN;
                        else if (c == ',' && cs != CS_QUOTED)
                                cs = CS_START;
                        else if (cs != CS_QUOTED)
                                cs = CS_PLAIN;
                        k++;
                }
                if (!was_long)
                        exb_buf_append(&src->rec, s, k < room ? k : room);
                size_t used = ended ? k + 1 : k;
                f->bpos += used;
                f->off += (int64_t)used;
        }
        if (!any)
                return 0;
        if (!ended && cs == CS_QUOTED && !*too_long)
                *unclosed = 1;
        if (src->rec.len && src->rec.p[src->rec.len - 1] == '\r')
                src->rec.len--;
        exb_buf_cstr(&src->rec);
        return 1;
}

/* ------------------------------------------------------------------ tables */

/* Index of the table a file name belongs to, or -1. */
static int table_for(const exb_source_t *src, const char *name)
{
        const char *dot = strrchr(name, '.');
        size_t stem = dot ? (size_t)(dot - name) : strlen(name);
        int best = -1;
        size_t best_len = 0;
        for (int i = 0; i < src->ntables; i++) {
                size_t n = strlen(src->tables[i].name);
                if (n > stem || strncasecmp(name, src->tables[i].name, n))
                        continue;
                if (n < stem && name[n] != '-' && name[n] != '_' && name[n] != '.')
                        continue;
                if (n > best_len)
                        best = i, best_len = n;
        }
        return best;
}

/* Parses the CSV header at the start of the file and binds its columns.
 * Returns 0, 1 if the file is refused (why set), -1 on an I/O error. */
static int csv_header(exb_source_t *src, fs_file_t *f, char *why, size_t why_size, char *errstr,
                      size_t errstr_size)
{
        const fs_table_t *t = &src->tables[f->table];
        int64_t line;
        int too_long, unclosed, r;
        do {
                r = read_record(src, f, &line, &too_long, &unclosed, errstr, errstr_size);
        } while (r == 1 && src->rec.len == 0);
        if (r < 0)
                return -1;
        if (r == 0) {
                exb_errf(why, why_size, "no header row (the first line names the items)");
                return 1;
        }
        long bad = utf8_bad(src->rec.p, src->rec.len);
        if (too_long || unclosed || bad >= 0) {
                exb_errf(why, why_size, "header (line %lld): %s", (long long)line,
                         too_long   ? "longer than source.files.max.line.bytes"
                         : unclosed ? "quoted field not closed"
                                    : "not valid UTF-8");
                return 1;
        }
        char w[300];
        arena_reserve(src, src->rec.len + 64);
        int nf = csv_split(src, (const char *)src->rec.p, src->rec.len, w, sizeof(w));
        if (nf < 0) {
                exb_errf(why, why_size, "header (line %lld): %s", (long long)line, w);
                return 1;
        }
        free(f->col_field);
        f->col_field = exb_calloc((size_t)nf, sizeof(int));
        f->ncols = nf;
        int *seen = exb_calloc((size_t)t->schema->nfields + 1, sizeof(int));
        int rc = 0, have_op = 0;
        for (int c = 0; c < nf && !rc; c++) {
                const char *p = src->fields[c].p;
                size_t len = src->fields[c].len;
                while (len && (*p == ' ' || *p == '\t'))
                        p++, len--;
                while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                        len--;
                char ex[80];
                excerpt(ex, sizeof(ex), p, len, 64);
                if (!len) {
                        exb_errf(why, why_size, "header: column %d has no name", c + 1);
                        rc = 1;
                } else if (t->op_name && strlen(t->op_name) == len &&
                           !strncasecmp(p, t->op_name, len)) {
                        if (have_op++) {
                                exb_errf(why, why_size, "header: column %d: \"%s\" appears twice",
                                         c + 1, ex);
                                rc = 1;
                        }
                        f->col_field[c] = -2;
                } else {
                        int fi = field_of(t, p, len);
                        if (fi < 0) {
                                char hint[96];
                                suggest(t, p, len, hint, sizeof(hint));
                                exb_errf(why, why_size,
                                         "header: column %d \"%s\" is not an item of %s%s", c + 1,
                                         ex, t->res->code, hint);
                                rc = 1;
                        } else if (seen[fi]++) {
                                exb_errf(why, why_size, "header: column %d: \"%s\" appears twice",
                                         c + 1, ex);
                                rc = 1;
                        }
                        f->col_field[c] = fi;
                }
        }
        for (int fi = 0; fi < t->schema->nfields && !rc; fi++)
                if (!seen[fi] && is_key_field(t, fi)) {
                        exb_errf(why, why_size, "header: no column for key item \"%s\"",
                                 t->schema->fields[fi].name);
                        rc = 1;
                }
        free(seen);
        return rc;
}

/* ------------------------------------------------------------- state db */

static int db_open(exb_source_t *src, char *errstr, size_t errstr_size)
{
        if (src->db)
                return 0;
        if (sqlite3_open_v2(src->db_path, &src->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            NULL) != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: %s: %s", src->where, src->db_path,
                         src->db ? sqlite3_errmsg(src->db) : "cannot open");
                sqlite3_close(src->db);
                src->db = NULL;
                return -1;
        }
        sqlite3_busy_timeout(src->db, 5000);
        if (fs_exec(src, errstr, errstr_size,
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                    "CREATE TABLE IF NOT EXISTS files(fid INTEGER PRIMARY KEY AUTOINCREMENT,"
                    " name TEXT NOT NULL, tbl TEXT, size INTEGER, mtime_ns INTEGER, hash TEXT,"
                    " state TEXT NOT NULL, acked_line INTEGER NOT NULL DEFAULT 0,"
                    " acked_off INTEGER NOT NULL DEFAULT 0, acked_lineno INTEGER NOT NULL"
                    " DEFAULT 1, records INTEGER NOT NULL DEFAULT 0, moved_to TEXT, reason TEXT,"
                    " started TEXT, finished TEXT);"
                    "CREATE TABLE IF NOT EXISTS rejects(fid INTEGER NOT NULL, line INTEGER NOT"
                    " NULL, reason TEXT, text TEXT, PRIMARY KEY(fid, line));"
                    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
                    "INSERT OR IGNORE INTO meta VALUES('id', lower(hex(randomblob(8))));")) {
                sqlite3_close(src->db);
                src->db = NULL;
                return -1;
        }
        char *id = exb_sql_text(src->db, "SELECT v FROM meta WHERE k='id'");
        snprintf(src->id, sizeof(src->id), "%s", id ? id : "");
        free(id);
        return 0;
}

#define FS_NOW "strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ','now')"

/* Moves a complete file and its rejects to done/ and marks it done.
 * Returns 0, or -1 with errstr (retried later). */
static int finish(exb_source_t *src, int64_t fid, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st;
        char *name = NULL, *moved = NULL;
        int64_t size = 0, mtime = 0, records = 0;
        if (sqlite3_prepare_v2(src->db,
                               "SELECT name, moved_to, size, mtime_ns, records FROM files WHERE "
                               "fid=?1",
                               -1, &st, NULL) != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: %s", src->db_path, sqlite3_errmsg(src->db));
                return -1;
        }
        sqlite3_bind_int64(st, 1, fid);
        if (sqlite3_step(st) == SQLITE_ROW) {
                name = exb_strdup((const char *)sqlite3_column_text(st, 0));
                const unsigned char *m = sqlite3_column_text(st, 1);
                moved = exb_strdup(m ? (const char *)m : name);
                size = sqlite3_column_int64(st, 2);
                mtime = sqlite3_column_int64(st, 3);
                records = sqlite3_column_int64(st, 4);
        }
        sqlite3_finalize(st);
        if (!name)
                return 0;

        /* The rejects file, from the table. */
        int rc = -1;
        exb_buf_t b;
        exb_buf_init(&b, 0);
        int64_t nrej = 0;
        char *from = path_join(src->path, name);
        char *to = path_join(src->done_dir, moved);
        size_t rlen = strlen(to) + 16;
        char *rpath = exb_calloc(1, rlen);
        snprintf(rpath, rlen, "%s.rejects", to);
        if (sqlite3_prepare_v2(src->db,
                               "SELECT line, reason, text FROM rejects WHERE fid=?1 ORDER BY line",
                               -1, &st, NULL) != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: %s", src->db_path, sqlite3_errmsg(src->db));
                goto done;
        }
        sqlite3_bind_int64(st, 1, fid);
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *reason = (const char *)sqlite3_column_text(st, 1);
                const char *text = (const char *)sqlite3_column_text(st, 2);
                exb_buf_printf(&b, "{\"line\":%lld,\"reason\":", sqlite3_column_int64(st, 0));
                json_str(&b, reason ? reason : "", reason ? strlen(reason) : 0);
                exb_buf_printf(&b, ",\"text\":");
                json_str(&b, text ? text : "", text ? strlen(text) : 0);
                exb_buf_printf(&b, "}\n");
                nrej++;
        }
        sqlite3_finalize(st);
        if (nrej && write_atomic(rpath, b.p, b.len)) {
                exb_errf(errstr, errstr_size, "%s: %s: %s", src->where, rpath, strerror(errno));
                goto done;
        }
        struct stat sb;
        if (lstat(from, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == size &&
            mtime_ns_of(&sb) == mtime) {
                if (rename(from, to)) {
                        exb_errf(errstr, errstr_size, "%s: moving %s to %s: %s", src->where, from,
                                 to, strerror(errno));
                        goto done;
                }
        } else if (lstat(to, &sb) != 0) {
                EXB_WARN("%s: source.path %s: %s is no longer there to be moved to done/ (its "
                         "records were delivered)",
                         src->where, src->path, name);
        }
        fsync_dir(src->done_dir);
        fsync_dir(src->path);
        if (fs_exec(src, errstr, errstr_size,
                    "BEGIN IMMEDIATE; UPDATE files SET state='done', finished=" FS_NOW
                    " WHERE fid=%lld; DELETE FROM rejects WHERE fid=%lld; COMMIT",
                    (long long)fid, (long long)fid)) {
                sqlite3_exec(src->db, "ROLLBACK", NULL, NULL, NULL);
                goto done;
        }
        EXB_INFO("%s: %s done: %lld record(s) published, %lld rejected%s%s%s", src->where, name,
                 (long long)records, (long long)nrej, nrej ? " (" : "", nrej ? rpath : "",
                 nrej ? ")" : "");
        rc = 0;
done:
        exb_buf_free(&b);
        free(from);
        free(to);
        free(rpath);
        free(name);
        free(moved);
        return rc;
}

/* Refuses a file as a whole: refused/<name>.rejects says why, the file
 * goes to refused/. Returns 0, or -1 with errstr. */
static int refuse(exb_source_t *src, const char *name, int64_t size, int64_t mtime,
                  const char *hash, const char *why, char *errstr, size_t errstr_size)
{
        if (fs_exec(src, errstr, errstr_size,
                    "INSERT INTO files(name, size, mtime_ns, hash, state, reason, started,"
                    " finished) VALUES(%Q, %lld, %lld, %Q, 'refusing', %Q, " FS_NOW ", " FS_NOW ")",
                    name, (long long)size, (long long)mtime, hash, why))
                return -1;
        int64_t fid = sqlite3_last_insert_rowid(src->db);
        char *target = target_name(src->refused_dir, name, fid);
        char *to = path_join(src->refused_dir, target);
        char *from = path_join(src->path, name);
        size_t rlen = strlen(to) + 16;
        char *rpath = exb_calloc(1, rlen);
        snprintf(rpath, rlen, "%s.rejects", to);
        exb_buf_t b;
        exb_buf_init(&b, 0);
        exb_buf_printf(&b, "{\"line\":0,\"reason\":");
        json_str(&b, why, strlen(why));
        exb_buf_printf(&b, "}\n");
        int rc = -1;
        if (write_atomic(rpath, b.p, b.len)) {
                exb_errf(errstr, errstr_size, "%s: %s: %s", src->where, rpath, strerror(errno));
        } else if (rename(from, to) && errno != ENOENT) {
                exb_errf(errstr, errstr_size, "%s: moving %s to %s: %s", src->where, from, to,
                         strerror(errno));
        } else {
                fsync_dir(src->refused_dir);
                fsync_dir(src->path);
                rc = fs_exec(src, errstr, errstr_size,
                             "UPDATE files SET state='refused', moved_to=%Q WHERE fid=%lld", target,
                             (long long)fid);
                EXB_ERROR("%s: source.path %s: %s refused: %s (moved to %s)", src->where, src->path,
                          name, why, to);
        }
        exb_buf_free(&b);
        free(target);
        free(to);
        free(from);
        free(rpath);
        return rc;
}

/* ------------------------------------------------------- picking a file */

/* SHA-256 of the first size bytes, as hex. Returns 0 or -1 with errstr. */
static int file_hash(exb_source_t *src, fs_file_t *f, char *errstr, size_t errstr_size)
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        int rc = -1;
        if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
                exb_errf(errstr, errstr_size, "%s: SHA-256 is not available", src->where);
                goto out;
        }
        for (int64_t off = 0; off < f->size;) {
                int64_t left = f->size - off;
                size_t want = left < FS_CHUNK ? (size_t)left : FS_CHUNK;
                ssize_t n = pread(f->fd, f->buf, want, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        exb_errf(errstr, errstr_size, "%s: source.path %s: %s: %s", src->where,
                                 src->path, f->name,
                                 n < 0 ? strerror(errno) : "the file became shorter");
                        goto out;
                }
                EVP_DigestUpdate(ctx, f->buf, (size_t)n);
                off += n;
        }
        EVP_DigestFinal_ex(ctx, md, &mdlen);
        for (unsigned i = 0; i < mdlen && i < 32; i++)
                snprintf(f->hash + 2 * i, 3, "%02x", md[i]);
        rc = 0;
out:
        EVP_MD_CTX_free(ctx);
        return rc;
}

/* Opens name for reading and checks it is the regular file of the given
 * size and mtime (-1: any). Returns a new file, or NULL (errno; ESTALE: it
 * changed). */
static fs_file_t *file_open(exb_source_t *src, const char *name, int64_t size, int64_t mtime)
{
        char *p = path_join(src->path, name);
        int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        free(p);
        if (fd < 0)
                return NULL;
        struct stat st;
        if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
            (size >= 0 && (st.st_size != size || mtime_ns_of(&st) != mtime))) {
                close(fd);
                errno = ESTALE;
                return NULL;
        }
        fs_file_t *f = exb_calloc(1, sizeof(*f));
        f->fd = fd;
        f->name = exb_strdup(name);
        f->size = st.st_size;
        f->mtime_ns = mtime_ns_of(&st);
        f->jsonl = ends_with_ci(name, ".jsonl");
        f->buf = exb_calloc(1, FS_CHUNK);
        f->table = table_for(src, name);
        f->lineno = 1;
        f->acked_lineno = 1;
        return f;
}

/* Is the file still what was hashed? */
static int file_unchanged(const fs_file_t *f)
{
        struct stat st;
        return fstat(f->fd, &st) == 0 && st.st_size == f->size && mtime_ns_of(&st) == f->mtime_ns;
}

/* Positions a file for reading: skips a BOM, parses a CSV header.
 * Returns 0, 1 if refused (why), -1 on an I/O error (errstr). */
static int file_prepare(exb_source_t *src, fs_file_t *f, char *why, size_t why_size, char *errstr,
                        size_t errstr_size)
{
        file_seek(f, 0, 1);
        unsigned char bom[3] = {0};
        if (f->size >= 2 && pread(f->fd, bom, 3, 0) >= 2 &&
            ((bom[0] == 0xFF && bom[1] == 0xFE) || (bom[0] == 0xFE && bom[1] == 0xFF))) {
                exb_errf(why, why_size, "the file is UTF-16; files must be UTF-8");
                return 1;
        }
        if (f->size >= 3 && bom[0] == 0xEF && bom[1] == 0xBB && bom[2] == 0xBF)
                file_seek(f, 3, 1);
        if (!f->jsonl) {
                int r = csv_header(src, f, why, why_size, errstr, errstr_size);
                if (r)
                        return r;
        }
        return 0;
}

/* Resumes the active file of the state db, if any. Returns 1 (src->file
 * set), 0 (none), -1 with errstr. */
static int resume(exb_source_t *src, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(src->db,
                               "SELECT fid, name, size, mtime_ns, hash, acked_line, acked_off,"
                               " acked_lineno, state FROM files WHERE state IN ('active',"
                               " 'complete') ORDER BY fid LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: %s", src->db_path, sqlite3_errmsg(src->db));
                return -1;
        }
        if (sqlite3_step(st) != SQLITE_ROW) {
                sqlite3_finalize(st);
                return 0;
        }
        int64_t fid = sqlite3_column_int64(st, 0);
        char *name = exb_strdup((const char *)sqlite3_column_text(st, 1));
        int64_t size = sqlite3_column_int64(st, 2), mtime = sqlite3_column_int64(st, 3);
        char hash[65];
        snprintf(hash, sizeof(hash), "%s", (const char *)sqlite3_column_text(st, 4));
        int64_t aline = sqlite3_column_int64(st, 5), aoff = sqlite3_column_int64(st, 6);
        int64_t alineno = sqlite3_column_int64(st, 7);
        int complete = !strcmp((const char *)sqlite3_column_text(st, 8), "complete");
        sqlite3_finalize(st);
        int rc;
        if (complete) {
                rc = finish(src, fid, errstr, errstr_size) ? -1 : 2;
                free(name);
                return rc;
        }
        char why[512] = "";
        fs_file_t *f = file_open(src, name, size, mtime);
        if (!f) {
                snprintf(why, sizeof(why), "%s", errno == ESTALE ? "it changed" : strerror(errno));
        } else if (f->table < 0) {
                snprintf(why, sizeof(why), "no source.table.* matches it any longer");
        } else if (file_hash(src, f, errstr, errstr_size)) {
                file_free(f);
                free(name);
                return -1;
        } else if (strcmp(f->hash, hash)) {
                snprintf(why, sizeof(why), "its content changed (SHA-256 %.16s, was %.16s)",
                         f->hash, hash);
        } else {
                f->fid = fid;
                rc = file_prepare(src, f, why, sizeof(why), errstr, errstr_size);
                if (rc < 0) {
                        file_free(f);
                        free(name);
                        return -1;
                }
                if (rc == 0) {
                        if (aoff > 0)
                                file_seek(f, aoff, alineno);
                        f->acked_line = f->last_line = aline;
                        f->acked_off = f->off;
                        f->acked_lineno = f->lineno;
                        src->file = f;
                        EXB_INFO("%s: %s: resuming after line %lld", src->where, name,
                                 (long long)aline);
                        free(name);
                        return 1;
                }
        }
        EXB_ERROR("%s: source.path %s: %s was being processed but %s: the records after line %lld "
                  "were not published; drop it again to publish it (its delivered records keep "
                  "their event ids)",
                  src->where, src->path, name, why, (long long)aline);
        file_free(f);
        free(name);
        if (fs_exec(src, errstr, errstr_size,
                    "UPDATE files SET state='lost', reason=%Q, finished=" FS_NOW " WHERE fid=%lld",
                    why, (long long)fid))
                return -1;
        return 2;
}

static void cand_drop(exb_source_t *src, int i)
{
        free(src->cands[i].name);
        src->cands[i] = src->cands[--src->ncands];
}

/* Looks at the directory: updates the candidates. Returns 0 or -1. */
static int scan(exb_source_t *src, char *errstr, size_t errstr_size)
{
        DIR *d = opendir(src->path);
        if (!d) {
                exb_errf(errstr, errstr_size, "%s: source.path %s: %s", src->where, src->path,
                         strerror(errno));
                return -1;
        }
        int64_t now = exb_mono_ms();
        for (int i = 0; i < src->ncands; i++)
                src->cands[i].seen = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                const char *n = de->d_name;
                if (n[0] == '.' || !(ends_with_ci(n, ".csv") || ends_with_ci(n, ".jsonl")))
                        continue;
                struct stat st;
                if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
                        continue;
                int i;
                for (i = 0; i < src->ncands; i++)
                        if (!strcmp(src->cands[i].name, n))
                                break;
                if (i == src->ncands) {
                        if (src->ncands >= FS_MAX_CANDS)
                                continue;
                        src->cands = exb_realloc(src->cands,
                                                 sizeof(*src->cands) * (size_t)(src->ncands + 1));
                        src->cands[src->ncands++] =
                                (fs_cand_t){exb_strdup(n), st.st_size, mtime_ns_of(&st), now, 1};
                        continue;
                }
                fs_cand_t *c = &src->cands[i];
                c->seen = 1;
                if (c->size != st.st_size || c->mtime_ns != mtime_ns_of(&st)) {
                        c->size = st.st_size;
                        c->mtime_ns = mtime_ns_of(&st);
                        c->since = now;
                }
        }
        closedir(d);
        for (int i = 0; i < src->ncands;)
                if (!src->cands[i].seen)
                        cand_drop(src, i);
                else
                        i++;
        return 0;
}

/* Takes the first ready file. Returns 1 (src->file set), 0 (none ready),
 * 2 (one was refused: look again), -1 with errstr. */
static int pickup(exb_source_t *src, char *errstr, size_t errstr_size)
{
        int64_t now = exb_mono_ms();
        if (now >= src->next_scan) {
                src->next_scan = now + FS_SCAN_MS;
                if (scan(src, errstr, errstr_size))
                        return -1;
                now = exb_mono_ms(); /* the scan set `since` */
        }
        int best = -1;
        for (int i = 0; i < src->ncands; i++)
                if (now - src->cands[i].since >= src->conf.settle_ms &&
                    (best < 0 || strcmp(src->cands[i].name, src->cands[best].name) < 0))
                        best = i;
        if (best < 0)
                return 0;
        fs_cand_t c = src->cands[best];
        char why[600] = "";
        fs_file_t *f = file_open(src, c.name, c.size, c.mtime_ns);
        if (!f) {
                if (errno == ESTALE || errno == ENOENT) { /* changed or gone: look again */
                        src->next_scan = 0;
                        return 0;
                }
                /* Unreadable (permissions): refused, or it would be retried forever. */
                snprintf(why, sizeof(why), "the file cannot be opened: %s", strerror(errno));
                int rc = refuse(src, c.name, c.size, c.mtime_ns, NULL, why, errstr, errstr_size);
                cand_drop(src, best);
                return rc ? -1 : 2;
        }
        int rc;
        if (f->size > src->conf.max_bytes) {
                snprintf(why, sizeof(why),
                         "the file has %lld bytes, more than source.files.max.bytes (%d)",
                         (long long)f->size, src->conf.max_bytes);
                goto refused;
        }
        if (f->table < 0) {
                snprintf(why, sizeof(why),
                         "no source.table.<name> matches the file name (a file belongs to "
                         "<name> when its name is <name>.csv/.jsonl or starts with <name> "
                         "followed by '-', '_' or '.')");
                goto refused;
        }
        if (file_hash(src, f, errstr, errstr_size)) {
                file_free(f);
                return -1;
        }
        if (!file_unchanged(f)) { /* written to while hashed: not finished */
                file_free(f);
                src->next_scan = 0;
                return 0;
        }
        rc = file_prepare(src, f, why, sizeof(why), errstr, errstr_size);
        if (rc < 0) {
                file_free(f);
                return -1;
        }
        if (rc > 0)
                goto refused;
        if (fs_exec(src, errstr, errstr_size,
                    "INSERT INTO files(name, tbl, size, mtime_ns, hash, state, started)"
                    " VALUES(%Q, %Q, %lld, %lld, %Q, 'active', " FS_NOW ")",
                    f->name, src->tables[f->table].name, (long long)f->size, (long long)f->mtime_ns,
                    f->hash)) {
                file_free(f);
                return -1;
        }
        f->fid = sqlite3_last_insert_rowid(src->db);
        f->acked_off = f->off;
        f->acked_lineno = f->lineno;
        cand_drop(src, best);
        EXB_INFO("%s: %s -> source.table.%s (%s): %lld bytes, sha256 %.16s", src->where, f->name,
                 src->tables[f->table].name, src->tables[f->table].res->code, (long long)f->size,
                 f->hash);
        src->file = f;
        return 1;
refused:
        rc = refuse(src, f->name, f->size, f->mtime_ns, f->hash[0] ? f->hash : NULL, why, errstr,
                    errstr_size);
        file_free(f);
        cand_drop(src, best);
        return rc ? -1 : 2;
}

/* ------------------------------------------------------------------ plugin */

static void rej_clear(exb_source_t *src)
{
        for (int i = 0; i < src->nrej; i++) {
                free(src->rej[i].reason);
                free(src->rej[i].text);
        }
        src->nrej = 0;
}

static int fs_ack(exb_source_t *src, int64_t pos, char *errstr, size_t errstr_size);

static void fs_close(exb_source_t *src)
{
        if (!src)
                return;
        char err[512];
        if (src->nrej && src->db && fs_ack(src, 0, err, sizeof(err)))
                EXB_WARN("%s: %d rejected record(s) not written (they are read and rejected "
                         "again at the next start): %s",
                         src->where, src->nrej, err);
        rej_clear(src);
        free(src->rej);
        file_free(src->file);
        for (int i = 0; i < src->ncands; i++)
                free(src->cands[i].name);
        free(src->cands);
        if (src->db)
                sqlite3_close(src->db);
        for (int i = 0; i < src->ntables; i++)
                free(src->tables[i].name);
        free(src->tables);
        free(src->vals);
        free(src->fields);
        json_decref(src->json);
        exb_buf_free(&src->rec);
        free(src->arena.p);
        free(src->where);
        free(src->dept);
        free(src->path);
        free(src->data_dir);
        free(src->done_dir);
        free(src->refused_dir);
        free(src->db_path);
        free(src);
}

static exb_source_t *fs_open(const exb_source_conf_t *conf, char *errstr, size_t errstr_size)
{
        exb_source_t *src = exb_calloc(1, sizeof(*src));
        src->where = exb_strdup(conf->where ? conf->where : "producer");
        src->dept = exb_strdup(conf->dept ? conf->dept : "");
        src->path = exb_strdup(conf->path ? conf->path : "");
        src->data_dir = exb_strdup(conf->data_dir && *conf->data_dir ? conf->data_dir : ".");
        src->done_dir = path_join(src->path, "done");
        src->refused_dir = path_join(src->path, "refused");
        src->db_path = path_join(src->data_dir, "producer-files.db");
        exb_buf_init(&src->rec, 0);
        src->fields = exb_calloc(FS_MAX_COLUMNS, sizeof(*src->fields));
        exb_conf_defaults(fs_props, &src->conf);
        for (int i = 0; conf->opts && i < conf->opts->cnt; i++) {
                char key[300];
                snprintf(key, sizeof(key), "source.%s", conf->opts->kvs[i].key);
                if (exb_conf_set(fs_props, &src->conf, key, conf->opts->kvs[i].value, src->where,
                                 errstr, errstr_size))
                        goto fail;
        }
        if (!conf->path || !*conf->path) {
                exb_errf(errstr, errstr_size, "%s: source.path is not set (the drop directory)",
                         src->where);
                goto fail;
        }
        struct stat st;
        if (stat(conf->path, &st) || !S_ISDIR(st.st_mode)) {
                exb_errf(errstr, errstr_size, "%s: source.path %s: %s (the drop directory)",
                         src->where, conf->path,
                         errno == ENOENT ? "no such directory" : "not a directory");
                goto fail;
        }
        if (access(conf->path, R_OK | W_OK | X_OK)) {
                exb_errf(errstr, errstr_size,
                         "%s: source.path %s: %s (the agent moves files out of it)", src->where,
                         conf->path, strerror(errno));
                goto fail;
        }
        return src;
fail:
        fs_close(src);
        return NULL;
}

static int fs_bind(exb_source_t *src, const exb_source_table_t *tables, int ntables, char *errstr,
                   size_t errstr_size)
{
        for (int i = 0; i < ntables; i++) {
                const char *n = tables[i].name;
                if (!*n || n[0] == '.' || strchr(n, '/')) {
                        exb_errf(errstr, errstr_size,
                                 "%s: source.table.%s = %s: not a file name prefix", src->where, n,
                                 tables[i].res->code);
                        return -1;
                }
                for (int j = 0; j < i; j++)
                        if (!strcasecmp(tables[j].name, n)) {
                                exb_errf(errstr, errstr_size,
                                         "%s: source.table.%s and source.table.%s name the same "
                                         "files",
                                         src->where, tables[j].name, n);
                                return -1;
                        }
        }
        fs_table_t *t = exb_calloc((size_t)ntables + 1, sizeof(*t));
        int maxf = 0;
        for (int i = 0; i < ntables; i++) {
                t[i].name = exb_strdup(tables[i].name);
                t[i].res = tables[i].res;
                t[i].schema = tables[i].schema;
                t[i].op_name = field_of(&t[i], "op", 2) < 0    ? "op"
                               : field_of(&t[i], "_op", 3) < 0 ? "_op"
                                                               : NULL;
                if (t[i].schema->nfields > maxf)
                        maxf = t[i].schema->nfields;
        }
        for (int i = 0; i < src->ntables; i++)
                free(src->tables[i].name);
        free(src->tables);
        src->tables = t;
        src->ntables = ntables;
        if (maxf > src->valcap) {
                src->vals = exb_realloc(src->vals, sizeof(*src->vals) * (size_t)maxf);
                src->valcap = maxf;
        }
        return 0;
}

static int fs_start(exb_source_t *src, char *errstr, size_t errstr_size)
{
        if (db_open(src, errstr, errstr_size))
                return -1;
        const char *dirs[] = {src->done_dir, src->refused_dir};
        for (int i = 0; i < 2; i++)
                if (mkdir(dirs[i], 0755) && errno != EEXIST) {
                        exb_errf(errstr, errstr_size, "%s: %s: %s", src->where, dirs[i],
                                 strerror(errno));
                        return -1;
                }
        /* Read again from the last acknowledged record (a new binding may
         * map the columns differently): resume() reopens the file. */
        file_free(src->file);
        src->file = NULL;
        return 0;
}

/* Fills chg for the record in src->rec. */
static void change_fill(exb_source_t *src, fs_file_t *f, int64_t line, int too_long, int unclosed,
                        exb_change_t *chg)
{
        const fs_table_t *t = &src->tables[f->table];
        int nf = t->schema->nfields;
        memset(chg, 0, sizeof(*chg));
        src->error[0] = '\0';
        chg->pos = f->fid << 32 | line;
        chg->table = f->table;
        chg->op = EXB_OP_CREATE;
        chg->ts_ms = f->mtime_ns / 1000000;
        chg->nvals = nf;
        chg->vals = src->vals;
        chg->raw = (const char *)src->rec.p;
        snprintf(src->event_id, sizeof(src->event_id), "%s-%.16s-%lld", src->dept, f->hash,
                 (long long)line);
        chg->event_id = src->event_id;
        for (int i = 0; i < nf; i++)
                src->vals[i] = (exb_val_t){.is_null = 1};
        json_decref(src->json);
        src->json = NULL;
        char why[400] = "";
        const char *p = (const char *)src->rec.p;
        size_t len = src->rec.len;
        long bad;
        /* Room for unescaped fields plus decoded values and number texts. */
        arena_reserve(src, 2 * len + 32 * (size_t)nf + 64);
        if (too_long) {
                snprintf(src->error, sizeof(src->error),
                         "the record is longer than source.files.max.line.bytes (%d)",
                         src->conf.max_line);
        } else if (unclosed) {
                snprintf(src->error, sizeof(src->error),
                         "a quoted field is not closed before the end of the file");
        } else if ((bad = utf8_bad((const unsigned char *)p, len)) >= 0) {
                snprintf(src->error, sizeof(src->error),
                         "not valid UTF-8 (byte %ld of the line; GBK? files must be UTF-8)",
                         bad + 1);
        } else if (memchr(p, '\0', len)) {
                snprintf(src->error, sizeof(src->error), "contains a NUL byte");
        } else if (!f->jsonl) {
                int n = csv_split(src, p, len, why, sizeof(why));
                if (n < 0) {
                        snprintf(src->error, sizeof(src->error), "%s", why);
                } else if (n != f->ncols) {
                        snprintf(src->error, sizeof(src->error), "%d field(s), the header has %d",
                                 n, f->ncols);
                } else {
                        for (int c = 0; c < n && !src->error[0]; c++) {
                                const fs_field_t *fl = &src->fields[c];
                                int fi = f->col_field[c];
                                if (fi == -2) {
                                        if (parse_op(fl->p, fl->len, &chg->op)) {
                                                char ex[64];
                                                excerpt(ex, sizeof(ex), fl->p, fl->len, 40);
                                                snprintf(src->error, sizeof(src->error),
                                                         "%s \"%s\" is not CREATE, UPDATE, DELETE "
                                                         "or SNAPSHOT",
                                                         t->op_name, ex);
                                        }
                                        continue;
                                }
                                if (!fl->quoted && fl->len == 0)
                                        continue; /* null */
                                if (map_text(src, t->schema->fields[fi].type, fl->p, fl->len,
                                             &src->vals[fi], why, sizeof(why)))
                                        snprintf(src->error, sizeof(src->error), "item \"%s\": %s",
                                                 t->schema->fields[fi].name, why);
                        }
                }
        } else {
                json_error_t jerr;
                src->json = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
                if (!src->json) {
                        snprintf(src->error, sizeof(src->error), "not JSON: %s (column %d)",
                                 jerr.text, jerr.column);
                } else if (!json_is_object(src->json)) {
                        snprintf(src->error, sizeof(src->error), "not a JSON object");
                } else {
                        const char *key;
                        json_t *v;
                        int *seen = exb_calloc((size_t)nf + 1, sizeof(int));
                        json_object_foreach(src->json, key, v)
                        {
                                if (src->error[0])
                                        break;
                                size_t kl = strlen(key);
                                char ex[80];
                                excerpt(ex, sizeof(ex), key, kl, 64);
                                if (t->op_name && kl == strlen(t->op_name) &&
                                    !strncasecmp(key, t->op_name, kl)) {
                                        if (!json_is_string(v) && !json_is_null(v))
                                                snprintf(src->error, sizeof(src->error),
                                                         "\"%s\" is not a string", t->op_name);
                                        else if (json_is_string(v) &&
                                                 parse_op(json_string_value(v),
                                                          json_string_length(v), &chg->op)) {
                                                char ov[64];
                                                excerpt(ov, sizeof(ov), json_string_value(v),
                                                        json_string_length(v), 40);
                                                snprintf(src->error, sizeof(src->error),
                                                         "%s \"%s\" is not CREATE, UPDATE, DELETE "
                                                         "or SNAPSHOT",
                                                         t->op_name, ov);
                                        }
                                        continue;
                                }
                                int fi = field_of(t, key, kl);
                                if (fi < 0) {
                                        char hint[96];
                                        suggest(t, key, kl, hint, sizeof(hint));
                                        snprintf(src->error, sizeof(src->error),
                                                 "\"%s\" is not an item of %s%s", ex, t->res->code,
                                                 hint);
                                } else if (seen[fi]++) {
                                        snprintf(src->error, sizeof(src->error),
                                                 "item \"%s\" appears twice",
                                                 t->schema->fields[fi].name);
                                } else if (map_json(src, t->schema->fields[fi].type, v,
                                                    &src->vals[fi], why, sizeof(why))) {
                                        snprintf(src->error, sizeof(src->error), "item \"%s\": %s",
                                                 t->schema->fields[fi].name, why);
                                }
                        }
                        free(seen);
                }
        }
        if (src->error[0]) {
                chg->error = src->error;
                return;
        }
        if (chg->op == EXB_OP_DELETE) /* a DELETE carries the key items only */
                for (int i = 0; i < nf; i++)
                        if (!is_key_field(t, i))
                                src->vals[i] = (exb_val_t){.is_null = 1};
}

static int is_blank(const exb_buf_t *b)
{
        for (size_t i = 0; i < b->len; i++)
                if (b->p[i] != ' ' && b->p[i] != '\t' && b->p[i] != '\r')
                        return 0;
        return 1;
}

/* Marks the file complete (all its records acknowledged) and moves it.
 * Returns 0 or -1 with errstr. */
static int complete(exb_source_t *src, char *errstr, size_t errstr_size)
{
        fs_file_t *f = src->file;
        if (!f->complete) {
                char *target = target_name(src->done_dir, f->name, f->fid);
                int rc = fs_exec(src, errstr, errstr_size,
                                 "UPDATE files SET state='complete', moved_to=%Q WHERE fid=%lld",
                                 target, (long long)f->fid);
                free(target);
                if (rc)
                        return -1;
                f->complete = 1;
        }
        if (finish(src, f->fid, errstr, errstr_size))
                return -1;
        file_free(f);
        src->file = NULL;
        return 0;
}

static int fs_next(exb_source_t *src, exb_change_t *chg, char *errstr, size_t errstr_size)
{
        if (!src->db && db_open(src, errstr, errstr_size))
                return -1;
        for (;;) {
                if (!src->file) {
                        int r = resume(src, errstr, errstr_size);
                        if (r == 2)
                                continue;
                        if (r == 0)
                                r = pickup(src, errstr, errstr_size);
                        if (r == 2)
                                continue;
                        if (r <= 0)
                                return r;
                }
                fs_file_t *f = src->file;
                if (f->complete || (f->eof && f->acked_line >= f->last_line)) {
                        if (complete(src, errstr, errstr_size))
                                return -1;
                        continue;
                }
                if (f->eof)
                        return 0; /* waiting for the last acknowledgements */
                int64_t line;
                int too_long, unclosed;
                int r = read_record(src, f, &line, &too_long, &unclosed, errstr, errstr_size);
                if (r < 0)
                        return -1;
                if (r == 0) {
                        f->eof = 1;
                        if (!file_unchanged(f))
                                EXB_WARN("%s: %s changed while being read: its first %lld bytes "
                                         "(as hashed) are published",
                                         src->where, f->name, (long long)f->size);
                        continue;
                }
                if (is_blank(&src->rec) && !too_long)
                        continue;
                if (f->nents == f->entcap) {
                        f->entcap = f->entcap ? f->entcap * 2 : 256;
                        f->ents = exb_realloc(f->ents, sizeof(*f->ents) * (size_t)f->entcap);
                }
                f->ents[f->nents++] = (fs_ent_t){line, f->off, f->lineno, 0};
                f->last_line = line;
                change_fill(src, f, line, too_long, unclosed, chg);
                return 1;
        }
}

static void fs_rewind(exb_source_t *src, int64_t pos)
{
        fs_file_t *f = src->file;
        if (!f || f->complete)
                return;
        int64_t line = pos & 0xFFFFFFFFLL;
        int k = -1;
        if ((pos >> 32) == f->fid && line > f->acked_line) {
                k = f->nents - 1;
                while (k >= 0 && f->ents[k].line > line)
                        k--;
        }
        if (k >= 0) {
                file_seek(f, f->ents[k].end_off, f->ents[k].end_lineno);
                f->nents = k + 1;
                f->last_line = f->ents[k].line;
        } else {
                file_seek(f, f->acked_off, f->acked_lineno);
                f->nents = 0;
                f->last_line = f->acked_line;
        }
}

static int fs_ack(exb_source_t *src, int64_t pos, char *errstr, size_t errstr_size)
{
        fs_file_t *f = src->file;
        int k = -1; /* last entry acknowledged */
        if (f && !f->complete && pos > 0 && (pos >> 32) == f->fid) {
                int64_t line = pos & 0xFFFFFFFFLL;
                k = f->nents - 1;
                while (k >= 0 && f->ents[k].line > line)
                        k--;
        }
        if (k < 0 && !src->nrej)
                return 0;
        if (fs_exec(src, errstr, errstr_size, "BEGIN IMMEDIATE"))
                return -1;
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(src->db,
                                    "INSERT OR REPLACE INTO rejects(fid, line, reason, text)"
                                    " VALUES(?1, ?2, ?3, ?4)",
                                    -1, &st, NULL);
        for (int i = 0; i < src->nrej && rc == SQLITE_OK; i++) {
                sqlite3_bind_int64(st, 1, src->rej[i].fid);
                sqlite3_bind_int64(st, 2, src->rej[i].line);
                sqlite3_bind_text(st, 3, src->rej[i].reason, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, src->rej[i].text, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
                rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
                sqlite3_reset(st);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: writing rejects: %s", src->db_path,
                         sqlite3_errmsg(src->db));
                goto fail;
        }
        int done = 0;
        if (k >= 0) {
                int published = 0;
                for (int i = 0; i <= k; i++)
                        published += !f->ents[i].rejected;
                const fs_ent_t *e = &f->ents[k];
                if (fs_exec(src, errstr, errstr_size,
                            "UPDATE files SET acked_line=%lld, acked_off=%lld, acked_lineno=%lld,"
                            " records=records+%d WHERE fid=%lld",
                            (long long)e->line, (long long)e->end_off, (long long)e->end_lineno,
                            published, (long long)f->fid))
                        goto fail;
                /* The last record of a file read to its end: complete, in
                 * the same transaction. */
                if ((done = f->eof && e->line >= f->last_line)) {
                        char *target = target_name(src->done_dir, f->name, f->fid);
                        rc = fs_exec(src, errstr, errstr_size,
                                     "UPDATE files SET state='complete', moved_to=%Q WHERE "
                                     "fid=%lld",
                                     target, (long long)f->fid);
                        free(target);
                        if (rc)
                                goto fail;
                }
        }
        if (fs_exec(src, errstr, errstr_size, "COMMIT"))
                goto fail;
        rej_clear(src);
        if (k >= 0) {
                f->acked_line = f->ents[k].line;
                f->acked_off = f->ents[k].end_off;
                f->acked_lineno = f->ents[k].end_lineno;
                memmove(f->ents, f->ents + k + 1, sizeof(*f->ents) * (size_t)(f->nents - k - 1));
                f->nents -= k + 1;
                if (done) {
                        f->complete = 1;
                        char err[512];
                        if (complete(src, err, sizeof(err))) /* retried by next() */
                                EXB_WARN("%s (retrying)", err);
                }
        }
        return 0;
fail:
        sqlite3_exec(src->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
}

/* A rejection is held until the next ack() and written in its transaction;
 * after a crash before that, the record is read and rejected again. */
static int fs_reject(exb_source_t *src, const exb_change_t *chg, const char *reason, char *errstr,
                     size_t errstr_size)
{
        (void)errstr;
        (void)errstr_size;
        if (src->nrej == src->rejcap) {
                src->rejcap = src->rejcap ? src->rejcap * 2 : 64;
                src->rej = exb_realloc(src->rej, sizeof(*src->rej) * (size_t)src->rejcap);
        }
        char text[FS_EXCERPT + 8] = "";
        if (chg->raw)
                excerpt(text, sizeof(text), chg->raw, strlen(chg->raw), FS_EXCERPT);
        src->rej[src->nrej++] = (fs_rej_t){chg->pos >> 32, chg->pos & 0xFFFFFFFFLL,
                                           exb_strdup(reason), exb_strdup(text)};
        fs_file_t *f = src->file;
        if (f && (chg->pos >> 32) == f->fid)
                for (int k = f->nents - 1; k >= 0; k--)
                        if (f->ents[k].line == (chg->pos & 0xFFFFFFFFLL)) {
                                f->ents[k].rejected = 1;
                                break;
                        }
        return 0;
}

static const char *fs_id(exb_source_t *src)
{
        return src->id;
}

const exb_source_plugin_t exb_source_files = {
        .name = "files",
        .description = "a drop directory of CSV and JSONL files (文件交换)",
        .open = fs_open,
        .bind = fs_bind,
        .start = fs_start,
        .next = fs_next,
        .rewind = fs_rewind,
        .ack = fs_ack,
        .reject = fs_reject,
        .snapshot_next = NULL,
        .snapshot_count = NULL,
        .id = fs_id,
        .close = fs_close,
        .props = fs_props,
};
