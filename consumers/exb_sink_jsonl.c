/*
 * exb_sink_jsonl.c — the JSONL sink: delivered records as JSON Lines files,
 * one rotating stream of files per resource, for departments that take
 * data as files (文件交换). See exb_sink.h for the sink contract.
 *
 * Configuration (consumer.conf):
 *
 *   sink.type = jsonl
 *   sink.path = /srv/exchange/in         directory (created if missing;
 *                                        default <data.dir>/jsonl-<dept>)
 *   sink.rotate.bytes = 67108864         complete a file at this size
 *   sink.rotate.seconds = 3600           ... or at this age (0: size only)
 *
 * Layout of sink.path:
 *
 *   <resource code>/<code>-<YYYYMMDD>T<HHMMSS>.<mmm>Z.jsonl
 *                 complete files, named by the UTC time they were started
 *                 (so names sort in time order). A file is written as
 *                 <name>.jsonl.part and renamed to <name>.jsonl when it is
 *                 complete: downstream readers take *.jsonl only and never
 *                 see half a file. A file is completed at the first batch
 *                 boundary where it has reached sink.rotate.bytes (so it may
 *                 exceed it by one batch), when it is sink.rotate.seconds old
 *                 (checked on every receiver poll, also when no records
 *                 come), and when the consumer stops cleanly.
 *   .exbus-jsonl-state.json   the sink's offsets and open files (below)
 *   .exbus-jsonl.lock         held (flock) while a consumer uses the directory
 *
 * Each line is one record: exb_codec_to_json() of it, preceded by where it
 * came from:
 *   {"topic":"exb.deliver.RS.370600-GA-0001","partition":0,"offset":41,
 *    "op":"CREATE","event_id":"GA-...","source":"GA","ts_ms":1768465800000,
 *    "data":{"id_number":"370602...","name":"张三",...}}
 * Within a file lines are in consumption order (per partition: offset
 * order, so per key the order of the changes). Dead letters (records that
 * could not be decoded) go to the consumer's local dead-letter store
 * (data.dir/consumer-<dept>-dlq.db, exb_sink_int.h), not into the files.
 *
 * Exactly once into the files (for one consumer per directory, which the
 * lock enforces). The state file holds, per partition, the next offset to
 * write, and per resource the open .part file and how many of its bytes are
 * committed:
 *   {"version":1,"cluster_id":"...","offsets":[{"topic":"...","partition":0,
 *    "next":42}],"files":[{"resource":"370600-GA-0001","name":"...jsonl",
 *    "bytes":10240,"opened_ms":1768465800000}]}
 * A batch is appended to the .part files and fsynced, then the state is
 * replaced (temporary file, fsync, rename, fsync of the directory): that
 * rename is the commit. On a failure before it, the files are truncated
 * back to their committed size and the batch is retried. At open, after a
 * crash, every .part file is cut back to its committed size (lines past it
 * belong to offsets that were not committed and are consumed again) and a
 * .part file the state does not know is deleted; consumption starts at the
 * stored offsets (exb_sink_plugin_t.offset). So every record is in exactly
 * one complete file once, and a complete file never changes. Kafka's
 * committed offsets are only informational. Stored offsets from another
 * Kafka cluster, or beyond a partition's end (the topic was recreated), are
 * forgotten and the partition is read from the beginning.
 * Other consumers of the same group must use directories of their own; a
 * partition that moves to one of them is read there from its own stored
 * offset: across directories it is at least once, with event ids to drop
 * repeats.
 */
#include "exb_sink.h"
#include "exb_codec.h"
#include "exb_sink_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#define JL_STATE      ".exbus-jsonl-state.json"
#define JL_LOCK       ".exbus-jsonl.lock"
#define JL_STATE_MAX  (64 * 1024 * 1024)
#define JL_LINE_MAX   (512 * 1024 * 1024) /* a record rendered larger is a dead letter */
#define JL_PEND_FLUSH (8 * 1024 * 1024)   /* pending bytes of a stream written out early */

typedef struct jl_conf_s {
        char *path;
        int rotate_bytes;
        int rotate_seconds;
} jl_conf_t;

static const exb_prop_t jl_props[] = {
        {"sink.path", EXB_PROP_STR, offsetof(jl_conf_t, path), NULL, NULL,
         "jsonl: the directory (created if missing); one subdirectory per resource. Default "
         "<data.dir>/jsonl-<dept>."},
        {"sink.rotate.bytes", EXB_PROP_INT, offsetof(jl_conf_t, rotate_bytes), "1024..2147483647",
         "67108864",
         "jsonl: a file is completed (renamed from .jsonl.part to .jsonl) at the first batch "
         "boundary where it has this many bytes."},
        {"sink.rotate.seconds", EXB_PROP_INT, offsetof(jl_conf_t, rotate_seconds), "0..31536000",
         "3600", "jsonl: ... or once it is this old (0: by size only)."},
        {NULL}};

typedef struct jl_off_s {
        char *topic;
        int32_t partition;
        int64_t next;
} jl_off_t;

typedef struct jl_stream_s {
        char *code; /* resource code = subdirectory */
        char *dir;
        char *name; /* final name of the open file (NULL: none), on disk name + ".part" */
        int fd;
        int64_t committed; /* bytes of the .part file that are committed */
        int64_t written;   /* bytes appended by the current batch */
        int64_t opened_ms;
        int64_t last_name_ms; /* names only grow, even within one millisecond */
        exb_buf_t pend;       /* lines of the current batch not yet written */
        int touched;
} jl_stream_t;

typedef struct jl_sink_s {
        char *path, *state_path;
        int lock_fd;
        int rotate_bytes, rotate_seconds;
        char *cluster_id;
        int noffs;
        jl_off_t *offs;
        int nstreams;
        jl_stream_t *streams;
        exb_sink_dlq_t *dlq;
        exb_buf_t line, json;
} jl_sink_t;

/* ----------------------------------------------------------------- helpers */

static char *path_join(const char *dir, const char *name)
{
        size_t n = strlen(dir) + strlen(name) + 2;
        char *p = exb_calloc(1, n);
        snprintf(p, n, "%s/%s", dir, name);
        return p;
}

static char *part_path(const jl_stream_t *s)
{
        size_t n = strlen(s->dir) + strlen(s->name) + 8;
        char *p = exb_calloc(1, n);
        snprintf(p, n, "%s/%s.part", s->dir, s->name);
        return p;
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

static int mkdir_p(const char *dir)
{
        char buf[4096];
        snprintf(buf, sizeof(buf), "%s", dir);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, 0755) && errno != EEXIST)
                                return -1;
                        *p = '/';
                }
        return mkdir(buf, 0755) && errno != EEXIST ? -1 : 0;
}

/* A resource code is a directory name: [A-Za-z0-9-], 1..64, as the
 * receiver checks for delivery topics. */
static int code_valid(const char *c)
{
        size_t n = c ? strlen(c) : 0;
        if (n < 1 || n > 64)
                return 0;
        for (; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') ||
                      (*c >= 'a' && *c <= 'z') || *c == '-'))
                        return 0;
        return 1;
}

static int json_append_str(exb_buf_t *b, const char *s)
{
        int rc = exb_buf_putc(b, '"');
        for (; *s && !rc; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\')
                        rc = exb_buf_printf(b, "\\%c", c);
                else if (c < 0x20)
                        rc = exb_buf_printf(b, "\\u%04x", c);
                else
                        rc = exb_buf_putc(b, c);
        }
        return rc ? -1 : exb_buf_putc(b, '"');
}

static int write_all(int fd, const void *p, size_t len)
{
        size_t done = 0;
        while (done < len) {
                ssize_t w = write(fd, (const char *)p + done, len - done);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        if (w == 0)
                                errno = EIO;
                        return -1;
                }
                done += (size_t)w;
        }
        return 0;
}

/* ------------------------------------------------------------------ state */

static jl_off_t *off_find(jl_sink_t *sk, const char *topic, int32_t partition)
{
        for (int i = 0; i < sk->noffs; i++)
                if (sk->offs[i].partition == partition && !strcmp(sk->offs[i].topic, topic))
                        return &sk->offs[i];
        return NULL;
}

static void off_set(jl_sink_t *sk, const char *topic, int32_t partition, int64_t next)
{
        jl_off_t *o = off_find(sk, topic, partition);
        if (!o) {
                sk->offs = exb_realloc(sk->offs, sizeof(*sk->offs) * (size_t)(sk->noffs + 1));
                o = &sk->offs[sk->noffs++];
                *o = (jl_off_t){exb_strdup(topic), partition, next};
        } else if (next > o->next) {
                o->next = next;
        }
}

static void off_drop(jl_sink_t *sk, jl_off_t *o)
{
        free(o->topic);
        *o = sk->offs[--sk->noffs];
}

/* Writes the state file: offsets and open files with their committed
 * sizes (plus `extra` bytes of the touched streams: the batch being
 * committed). Returns 0, or -1 with errstr. */
static int state_write(jl_sink_t *sk, int with_written, char *errstr, size_t errstr_size)
{
        json_t *root = json_object(), *offs = json_array(), *files = json_array();
        json_object_set_new(root, "version", json_integer(1));
        json_object_set_new(root, "cluster_id",
                            sk->cluster_id ? json_string(sk->cluster_id) : json_null());
        for (int i = 0; i < sk->noffs; i++)
                json_array_append_new(offs, json_pack("{s:s, s:i, s:I}", "topic", sk->offs[i].topic,
                                                      "partition", (int)sk->offs[i].partition,
                                                      "next", (json_int_t)sk->offs[i].next));
        for (int i = 0; i < sk->nstreams; i++) {
                const jl_stream_t *s = &sk->streams[i];
                if (!s->name)
                        continue;
                int64_t bytes = s->committed + (with_written ? s->written : 0);
                if (!bytes)
                        continue; /* created by a batch that is not committed */
                json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:I}", "resource", s->code,
                                                       "name", s->name, "bytes", (json_int_t)bytes,
                                                       "opened_ms", (json_int_t)s->opened_ms));
        }
        json_object_set_new(root, "offsets", offs);
        json_object_set_new(root, "files", files);
        char *text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        size_t tl = strlen(sk->state_path) + 8;
        char *tmp = exb_calloc(1, tl);
        snprintf(tmp, tl, "%s.tmp", sk->state_path);
        int rc = -1;
        int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        if (fd < 0 || write_all(fd, text, strlen(text)) || write_all(fd, "\n", 1) || fsync(fd)) {
                exb_errf(errstr, errstr_size, "jsonl sink %s: writing %s: %s", sk->path, tmp,
                         strerror(errno));
        } else if (rename(tmp, sk->state_path)) {
                exb_errf(errstr, errstr_size, "jsonl sink %s: renaming %s: %s", sk->path, tmp,
                         strerror(errno));
        } else {
                fsync_dir(sk->path);
                rc = 0;
        }
        if (fd >= 0)
                close(fd);
        if (rc)
                unlink(tmp);
        free(tmp);
        free(text);
        return rc;
}

/* ---------------------------------------------------------------- streams */

static jl_stream_t *stream_get(jl_sink_t *sk, const char *code)
{
        for (int i = 0; i < sk->nstreams; i++)
                if (!strcmp(sk->streams[i].code, code))
                        return &sk->streams[i];
        sk->streams = exb_realloc(sk->streams, sizeof(*sk->streams) * (size_t)(sk->nstreams + 1));
        jl_stream_t *s = &sk->streams[sk->nstreams++];
        memset(s, 0, sizeof(*s));
        s->code = exb_strdup(code);
        s->dir = path_join(sk->path, code);
        s->fd = -1;
        exb_buf_init(&s->pend, 0);
        return s;
}

/* Opens a new .part file for the stream. Returns 0 or -1 with errstr. */
static int stream_create(jl_sink_t *sk, jl_stream_t *s, char *errstr, size_t errstr_size)
{
        struct stat st;
        int made = stat(s->dir, &st) != 0;
        if (made && mkdir(s->dir, 0755) && errno != EEXIST) {
                exb_errf(errstr, errstr_size, "jsonl sink %s: %s: %s", sk->path, s->dir,
                         strerror(errno));
                return -1;
        }
        if (made)
                fsync_dir(sk->path);
        int64_t ms = exb_now_ms();
        if (ms <= s->last_name_ms)
                ms = s->last_name_ms + 1;
        for (int attempt = 0; attempt < 1000; attempt++, ms++) {
                time_t t = (time_t)(ms / 1000);
                struct tm tm;
                gmtime_r(&t, &tm);
                char name[160];
                snprintf(name, sizeof(name), "%s-%04d%02d%02dT%02d%02d%02d.%03dZ.jsonl", s->code,
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, (int)(ms % 1000));
                char *final = path_join(s->dir, name);
                int exists = lstat(final, &st) == 0;
                free(final);
                if (exists)
                        continue;
                free(s->name);
                s->name = exb_strdup(name);
                char *pp = part_path(s);
                s->fd = open(pp, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
                int e = errno;
                free(pp);
                if (s->fd >= 0) {
                        s->last_name_ms = ms;
                        fsync_dir(s->dir);
                        s->committed = s->written = 0;
                        s->opened_ms = exb_now_ms();
                        return 0;
                }
                free(s->name);
                s->name = NULL;
                if (e != EEXIST) {
                        exb_errf(errstr, errstr_size, "jsonl sink %s: creating a file in %s: %s",
                                 sk->path, s->dir, strerror(e));
                        return -1;
                }
        }
        exb_errf(errstr, errstr_size, "jsonl sink %s: no free file name in %s", sk->path, s->dir);
        return -1;
}

/* Writes the stream's pending lines to its .part file. */
static int stream_flush(jl_sink_t *sk, jl_stream_t *s, char *errstr, size_t errstr_size)
{
        if (!s->pend.len)
                return 0;
        if (s->fd < 0 && stream_create(sk, s, errstr, errstr_size))
                return -1;
        if (write_all(s->fd, s->pend.p, s->pend.len)) {
                exb_errf(errstr, errstr_size, "jsonl sink %s: writing %s/%s.part: %s", sk->path,
                         s->dir, s->name, strerror(errno));
                return -1;
        }
        s->written += (int64_t)s->pend.len;
        exb_buf_reset(&s->pend);
        return 0;
}

/* Completes the stream's file: .part -> .jsonl. Returns 0 or -1 with errstr. */
static int stream_complete(jl_sink_t *sk, jl_stream_t *s, char *errstr, size_t errstr_size)
{
        if (!s->name)
                return 0;
        char *pp = part_path(s);
        char *final = path_join(s->dir, s->name);
        int rc = 0;
        if (rename(pp, final)) {
                exb_errf(errstr, errstr_size, "jsonl sink %s: completing %s: %s", sk->path, pp,
                         strerror(errno));
                rc = -1;
        } else {
                fsync_dir(s->dir);
                EXB_INFO("jsonl sink: %s complete (%" PRId64 " bytes)", final, s->committed);
                if (s->fd >= 0)
                        close(s->fd);
                s->fd = -1;
                free(s->name);
                s->name = NULL;
                s->committed = s->written = 0;
        }
        free(pp);
        free(final);
        return rc;
}

/* Completes the files that are due. Returns how many. */
static int rotate_due(jl_sink_t *sk, int all)
{
        int64_t now = exb_now_ms();
        int n = 0;
        for (int i = 0; i < sk->nstreams; i++) {
                jl_stream_t *s = &sk->streams[i];
                if (!s->name || !s->committed)
                        continue;
                if (!all && s->committed < sk->rotate_bytes &&
                    !(sk->rotate_seconds > 0 && now - s->opened_ms >= sk->rotate_seconds * 1000LL))
                        continue;
                char err[512];
                if (stream_complete(sk, s, err, sizeof(err)))
                        EXB_WARN("%s (retrying)", err);
                else
                        n++;
        }
        return n;
}

/* Cuts every touched stream back to its committed size. */
static void rollback(jl_sink_t *sk)
{
        for (int i = 0; i < sk->nstreams; i++) {
                jl_stream_t *s = &sk->streams[i];
                exb_buf_reset(&s->pend);
                if (s->touched && s->fd >= 0 && s->written) {
                        if (ftruncate(s->fd, s->committed))
                                EXB_WARN("jsonl sink %s: truncating %s/%s.part: %s", sk->path,
                                         s->dir, s->name, strerror(errno));
                }
                s->written = 0;
                s->touched = 0;
        }
}

/* ------------------------------------------------------------------ write */

/* Renders r as one line into sk->line. Returns 0, or -1 (too large). */
static int render(jl_sink_t *sk, const exb_sink_rec_t *r)
{
        exb_buf_reset(&sk->line);
        exb_buf_reset(&sk->json);
        if (exb_codec_to_json(r->schema, r->rec, &sk->json) || sk->json.len < 2 ||
            sk->json.p[0] != '{')
                return -1;
        if (exb_buf_printf(&sk->line, "{\"topic\":") || json_append_str(&sk->line, r->topic) ||
            exb_buf_printf(&sk->line, ",\"partition\":%d,\"offset\":%" PRId64 ",",
                           (int)r->partition, r->offset) ||
            exb_buf_append(&sk->line, sk->json.p + 1, sk->json.len - 1) ||
            exb_buf_putc(&sk->line, '\n'))
                return -1;
        return 0;
}

static exb_err_t jl_write(void *opaque, const exb_sink_batch_t *batch, exb_sink_result_t *res,
                          char *errstr, size_t errstr_size)
{
        jl_sink_t *sk = opaque;
        rotate_due(sk, 0);
        for (int i = 0; i < batch->nrecs; i++) {
                const exb_sink_rec_t *r = &batch->recs[i];
                const jl_off_t *o = off_find(sk, r->topic, r->partition);
                if (o && r->offset < o->next) {
                        res->replays++;
                        continue;
                }
                const char *reason = r->error;
                char why[256];
                if (!reason && (!r->schema || !r->rec || !r->resource))
                        reason = "no decoded record";
                if (!reason && !code_valid(r->resource)) {
                        snprintf(why, sizeof(why),
                                 "resource code \"%.64s\" cannot name a directory", r->resource);
                        reason = why;
                }
                if (!reason && render(sk, r)) {
                        snprintf(why, sizeof(why), "%s: the record is larger than %d bytes as JSON",
                                 r->resource, JL_LINE_MAX);
                        reason = why;
                }
                if (reason) {
                        if (exb_sink_dlq_add(sk->dlq, r, reason, errstr, errstr_size))
                                goto retry;
                        res->dead_letters++;
                        continue;
                }
                jl_stream_t *s = stream_get(sk, r->resource);
                s->touched = 1;
                if (s->pend.len + sk->line.len > JL_PEND_FLUSH &&
                    stream_flush(sk, s, errstr, errstr_size))
                        goto retry;
                if (exb_buf_append(&s->pend, sk->line.p, sk->line.len)) {
                        exb_errf(errstr, errstr_size, "jsonl sink %s: out of buffer space",
                                 sk->path);
                        goto retry;
                }
                if (r->rec->op == EXB_OP_DELETE)
                        res->deletes++;
                else
                        res->upserts++;
        }
        /* Data first, durably ... */
        for (int i = 0; i < sk->nstreams; i++) {
                jl_stream_t *s = &sk->streams[i];
                if (!s->touched)
                        continue;
                if (stream_flush(sk, s, errstr, errstr_size))
                        goto retry;
                if (s->written && fsync(s->fd)) {
                        exb_errf(errstr, errstr_size, "jsonl sink %s: fsync of %s/%s.part: %s",
                                 sk->path, s->dir, s->name, strerror(errno));
                        goto retry;
                }
        }
        /* ... then the offsets: replacing the state file is the commit. */
        int noffs = sk->noffs;
        int64_t *prev = exb_calloc((size_t)noffs + 1, sizeof(int64_t));
        for (int i = 0; i < noffs; i++)
                prev[i] = sk->offs[i].next;
        for (int i = 0; i < batch->npos; i++)
                off_set(sk, batch->pos[i].topic, batch->pos[i].partition,
                        batch->pos[i].next_offset);
        if (state_write(sk, 1, errstr, errstr_size)) {
                while (sk->noffs > noffs)
                        off_drop(sk, &sk->offs[sk->noffs - 1]);
                for (int i = 0; i < noffs; i++)
                        sk->offs[i].next = prev[i];
                free(prev);
                goto retry;
        }
        free(prev);
        for (int i = 0; i < sk->nstreams; i++) {
                jl_stream_t *s = &sk->streams[i];
                s->committed += s->written;
                s->written = 0;
                s->touched = 0;
        }
        if (rotate_due(sk, 0)) {
                char err[512];
                if (state_write(sk, 0, err, sizeof(err))) /* recovered at open if lost */
                        EXB_WARN("%s", err);
        }
        return EXB_OK;
retry:
        rollback(sk);
        return EXB_ERR_RETRY;
}

static void jl_tick(void *opaque)
{
        jl_sink_t *sk = opaque;
        if (rotate_due(sk, 0)) {
                char err[512];
                if (state_write(sk, 0, err, sizeof(err)))
                        EXB_WARN("%s", err);
        }
}

static int64_t jl_offset(void *opaque, const char *topic, int32_t partition, int64_t hi)
{
        jl_sink_t *sk = opaque;
        jl_off_t *o = off_find(sk, topic, partition);
        if (!o)
                return EXB_OFFSET_BEGINNING;
        if (hi >= 0 && o->next > hi) {
                EXB_WARN("jsonl sink %s: stored offset %" PRId64 " of %s [%d] is beyond the end "
                         "of the partition (%" PRId64 "): the topic was recreated; reading it "
                         "from the beginning",
                         sk->path, o->next, topic, (int)partition, hi);
                off_drop(sk, o);
                return EXB_OFFSET_BEGINNING;
        }
        return o->next;
}

/* ------------------------------------------------------------- open/close */

static void jl_close(void *opaque)
{
        jl_sink_t *sk = opaque;
        if (!sk)
                return;
        if (sk->lock_fd >= 0 && sk->state_path) {
                rollback(sk); /* nothing is pending after write(): no-op */
                if (rotate_due(sk, 1)) {
                        char err[512];
                        if (state_write(sk, 0, err, sizeof(err)))
                                EXB_WARN("%s", err);
                }
        }
        for (int i = 0; i < sk->nstreams; i++) {
                jl_stream_t *s = &sk->streams[i];
                if (s->fd >= 0)
                        close(s->fd);
                free(s->code);
                free(s->dir);
                free(s->name);
                exb_buf_free(&s->pend);
        }
        free(sk->streams);
        for (int i = 0; i < sk->noffs; i++)
                free(sk->offs[i].topic);
        free(sk->offs);
        exb_sink_dlq_close(sk->dlq);
        if (sk->lock_fd >= 0)
                close(sk->lock_fd); /* releases the flock */
        exb_buf_free(&sk->line);
        exb_buf_free(&sk->json);
        free(sk->cluster_id);
        free(sk->path);
        free(sk->state_path);
        free(sk);
}

/* Reads the state file (if any) and repairs the files after a crash.
 * Returns 0 or -1 with errstr. */
static int state_load(jl_sink_t *sk, const exb_sink_env_t *env, char *errstr, size_t errstr_size)
{
        struct stat st;
        json_t *root = NULL;
        if (stat(sk->state_path, &st) == 0) {
                if (st.st_size > JL_STATE_MAX) {
                        exb_errf(errstr, errstr_size,
                                 "jsonl sink %s: %s has %lld bytes, more than %d: not ours?",
                                 sk->path, JL_STATE, (long long)st.st_size, JL_STATE_MAX);
                        return -1;
                }
                json_error_t jerr;
                root = json_load_file(sk->state_path, JSON_REJECT_DUPLICATES, &jerr);
                if (!root || !json_is_object(root)) {
                        exb_errf(errstr, errstr_size, "jsonl sink %s: %s: line %d: %s", sk->path,
                                 JL_STATE, jerr.line, root ? "not a JSON object" : jerr.text);
                        json_decref(root);
                        return -1;
                }
        }
        const char *old_cluster =
                root ? json_string_value(json_object_get(root, "cluster_id")) : NULL;
        int forget = env && env->cluster_id && old_cluster && strcmp(old_cluster, env->cluster_id);
        if (forget)
                EXB_WARN("jsonl sink %s: stored offsets are from Kafka cluster %s, not %s: reading "
                         "every partition from the beginning",
                         sk->path, old_cluster, env->cluster_id);
        sk->cluster_id = env && env->cluster_id ? exb_strdup(env->cluster_id)
                         : old_cluster          ? exb_strdup(old_cluster)
                                                : NULL;
        size_t i;
        json_t *v;
        json_array_foreach(root ? json_object_get(root, "offsets") : NULL, i, v)
        {
                json_t *t = json_object_get(v, "topic"), *p = json_object_get(v, "partition"),
                       *n = json_object_get(v, "next");
                if (!json_is_string(t) || !json_is_integer(p) || !json_is_integer(n)) {
                        exb_errf(errstr, errstr_size,
                                 "jsonl sink %s: %s: offsets[%zu] is malformed", sk->path, JL_STATE,
                                 i);
                        json_decref(root);
                        return -1;
                }
                if (!forget)
                        off_set(sk, json_string_value(t), (int32_t)json_integer_value(p),
                                json_integer_value(n));
        }
        json_array_foreach(root ? json_object_get(root, "files") : NULL, i, v)
        {
                const char *code = json_string_value(json_object_get(v, "resource"));
                const char *name = json_string_value(json_object_get(v, "name"));
                json_t *b = json_object_get(v, "bytes"), *o = json_object_get(v, "opened_ms");
                if (!code_valid(code) || !name || strchr(name, '/') || name[0] == '.' ||
                    !json_is_integer(b) || !json_is_integer(o)) {
                        exb_errf(errstr, errstr_size, "jsonl sink %s: %s: files[%zu] is malformed",
                                 sk->path, JL_STATE, i);
                        json_decref(root);
                        return -1;
                }
                jl_stream_t *s = stream_get(sk, code);
                s->name = exb_strdup(name);
                s->committed = json_integer_value(b);
                s->opened_ms = json_integer_value(o);
                char *pp = part_path(s), *final = path_join(s->dir, name);
                int rc = 0;
                if (lstat(pp, &st) == 0) {
                        if (st.st_size < s->committed) {
                                exb_errf(errstr, errstr_size,
                                         "jsonl sink %s: %s has %lld bytes, less than the %" PRId64
                                         " committed: the directory was changed by hand; move "
                                         "the file away to go on (its records are not read "
                                         "again)",
                                         sk->path, pp, (long long)st.st_size, s->committed);
                                rc = -1;
                        } else {
                                s->fd = open(pp, O_WRONLY | O_APPEND | O_CLOEXEC);
                                if (s->fd < 0 ||
                                    (st.st_size > s->committed &&
                                     (ftruncate(s->fd, s->committed) || fsync(s->fd)))) {
                                        exb_errf(errstr, errstr_size, "jsonl sink %s: %s: %s",
                                                 sk->path, pp, strerror(errno));
                                        rc = -1;
                                } else if (st.st_size > s->committed) {
                                        EXB_WARN("jsonl sink %s: %s: dropped %lld bytes written "
                                                 "after the last commit (those records are "
                                                 "consumed again)",
                                                 sk->path, pp,
                                                 (long long)(st.st_size - s->committed));
                                }
                        }
                } else {
                        if (lstat(final, &st) != 0) /* else: completed just before a crash */
                                EXB_WARN("jsonl sink %s: %s is missing (moved away by hand?)",
                                         sk->path, pp);
                        free(s->name);
                        s->name = NULL;
                        s->committed = 0;
                }
                free(pp);
                free(final);
                if (rc) {
                        json_decref(root);
                        return -1;
                }
        }
        json_decref(root);
        return 0;
}

/* Deletes .part files the state does not know (created by a batch that
 * was never committed). */
static void orphans_remove(jl_sink_t *sk)
{
        DIR *d = opendir(sk->path);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!code_valid(de->d_name))
                        continue;
                char *dir = path_join(sk->path, de->d_name);
                DIR *sd = opendir(dir);
                const jl_stream_t *s = NULL;
                for (int i = 0; i < sk->nstreams; i++)
                        if (!strcmp(sk->streams[i].code, de->d_name))
                                s = &sk->streams[i];
                struct dirent *fe;
                while (sd && (fe = readdir(sd))) {
                        size_t n = strlen(fe->d_name);
                        if (n < 6 || strcmp(fe->d_name + n - 5, ".part"))
                                continue;
                        if (s && s->name && strlen(s->name) == n - 5 &&
                            !strncmp(s->name, fe->d_name, n - 5))
                                continue;
                        char *p = path_join(dir, fe->d_name);
                        struct stat st;
                        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                                if (st.st_size)
                                        EXB_WARN("jsonl sink %s: removing %s: its %lld bytes were "
                                                 "never committed (those records are consumed "
                                                 "again)",
                                                 sk->path, p, (long long)st.st_size);
                                unlink(p);
                        }
                        free(p);
                }
                if (sd)
                        closedir(sd);
                free(dir);
        }
        closedir(d);
}

static void *jl_open(const void *confp, const exb_sink_env_t *env, char *errstr, size_t errstr_size)
{
        const jl_conf_t *conf = confp;
        jl_sink_t *sk = exb_calloc(1, sizeof(*sk));
        sk->lock_fd = -1;
        char path[4096];
        if (conf && conf->path && *conf->path)
                snprintf(path, sizeof(path), "%s", conf->path);
        else
                snprintf(path, sizeof(path), "%s/jsonl-%s",
                         env && env->data_dir ? env->data_dir : ".",
                         env && env->dept ? env->dept : "sink");
        sk->path = exb_strdup(path);
        sk->state_path = path_join(path, JL_STATE);
        sk->rotate_bytes = conf && conf->rotate_bytes > 0 ? conf->rotate_bytes : 64 << 20;
        sk->rotate_seconds = conf ? conf->rotate_seconds : 3600;
        exb_buf_init(&sk->line, JL_LINE_MAX);
        exb_buf_init(&sk->json, JL_LINE_MAX);
        if (mkdir_p(path)) {
                exb_errf(errstr, errstr_size, "jsonl sink %s: cannot create the directory: %s",
                         path, strerror(errno));
                goto fail;
        }
        char *lock = path_join(path, JL_LOCK);
        int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        free(lock);
        if (fd < 0) {
                exb_errf(errstr, errstr_size, "jsonl sink %s: %s: %s", path, JL_LOCK,
                         strerror(errno));
                goto fail;
        }
        if (flock(fd, LOCK_EX | LOCK_NB)) {
                exb_errf(errstr, errstr_size,
                         "jsonl sink %s: the directory is used by another consumer (%s is "
                         "locked); give each consumer its own sink.path",
                         path, JL_LOCK);
                close(fd);
                goto fail;
        }
        if (state_load(sk, env, errstr, errstr_size))
                goto fail_locked;
        sk->lock_fd = fd;
        orphans_remove(sk);
        if (!(sk->dlq = exb_sink_dlq_open(env && env->data_dir ? env->data_dir : ".",
                                          env && env->dept ? env->dept : "sink", errstr,
                                          errstr_size)))
                goto fail;
        /* Files that came due while the consumer was down. */
        jl_tick(sk);
        return sk;
fail_locked:
        close(fd);
fail:
        free(sk->state_path);
        sk->state_path = NULL; /* jl_close: no rotation on a half-open sink */
        jl_close(sk);
        return NULL;
}

const exb_sink_plugin_t exb_sink_jsonl = {
        .name = "jsonl",
        .props = jl_props,
        .conf_size = sizeof(jl_conf_t),
        .open = jl_open,
        .offset = jl_offset,
        .write = jl_write,
        .close = jl_close,
        .tick = jl_tick,
};
