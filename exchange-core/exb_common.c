/*
 * exb_common.c — errors, buffers, dates, logging and allocation helpers
 * shared by every module (see exb_common.h).
 */
#include "exb_common.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *exb_err_name(exb_err_t err)
{
        static const char *names[] = {"OK", "RETRY", "INVALID", "SCHEMA", "FATAL"};
        return (unsigned)err < EXB_ARRAY_CNT(names) ? names[err] : "?";
}

int exb_type_valid(int c)
{
        return c && strchr("CNIDTLB", c) != NULL;
}

static const char *op_names[EXB_OP_CNT] = {"CREATE", "UPDATE", "DELETE", "SNAPSHOT"};

const char *exb_op_name(exb_op_t op)
{
        return (unsigned)op < EXB_OP_CNT ? op_names[op] : "?";
}

int exb_op_parse(const char *s)
{
        for (int i = 0; i < EXB_OP_CNT; i++)
                if (!strcmp(s, op_names[i]))
                        return i;
        return -1;
}

exb_str_t exb_str(const char *cstr)
{
        return (exb_str_t){cstr, cstr ? strlen(cstr) : 0};
}

int exb_str_eq(exb_str_t a, const char *cstr)
{
        size_t n = strlen(cstr);
        return a.len == n && (n == 0 || !memcmp(a.p, cstr, n));
}

/* -------------------------------------------------------------------- UTF-8 */

size_t exb_utf8_valid_prefix(const void *buf, size_t len)
{
        const uint8_t *p = buf;
        size_t i = 0;
        for (;;) {
                i += exb_ascii_prefix(p + i, len - i);
                if (i == len)
                        return len;
                /* Multi-byte sequences up to the next ASCII byte. Well-formed
                 * ones (Unicode Standard, table 3-7): the lead byte gives the
                 * length and the range of the second byte, which is what
                 * excludes overlong forms, surrogates and code points above
                 * U+10FFFF; later bytes are 80..BF. Three bytes (CJK) first. */
                do {
                        uint8_t c = p[i], lo = 0x80, hi = 0xBF;
                        size_t n;
                        /* Two of them at once where 8 bytes can be read:
                         * leads E1..EF at 0 and 3 (E0 and ED go the long
                         * way), continuation bytes at 1, 2, 4 and 5. */
                        if (len - i >= 8 &&
                            (exb_load_le64(p + i) & 0xC0C0F0C0C0F0ULL) == 0x8080E08080E0ULL) {
                                uint8_t c2 = p[i + 3];
                                if (c != 0xE0 && c != 0xED && c2 != 0xE0 && c2 != 0xED) {
                                        i += 6;
                                        continue;
                                }
                        }
                        /* The common case first: E1..EC, EE, EF and two
                         * continuation bytes (no overlong or surrogate
                         * form starts so). */
                        if (len - i >= 3 && (uint8_t)(c - 0xE1) <= 0x0E && c != 0xED &&
                            ((p[i + 1] | (p[i + 2] << 8)) & 0xC0C0) == 0x8080) {
                                i += 3;
                                continue;
                        }
                        if (c >= 0xE0 && c <= 0xEF) {
                                n = 3;
                                if (c == 0xE0)
                                        lo = 0xA0; /* below U+0800: overlong */
                                else if (c == 0xED)
                                        hi = 0x9F; /* U+D800..U+DFFF: surrogates */
                        } else if (c >= 0xC2 && c <= 0xDF) {
                                n = 2; /* C0, C1 would be overlong */
                        } else if (c >= 0xF0 && c <= 0xF4) {
                                n = 4;
                                if (c == 0xF0)
                                        lo = 0x90; /* below U+10000: overlong */
                                else if (c == 0xF4)
                                        hi = 0x8F; /* above U+10FFFF */
                        } else {
                                return i; /* a continuation byte, C0, C1 or F5..FF */
                        }
                        if (len - i < n || p[i + 1] < lo || p[i + 1] > hi ||
                            (n > 2 && (p[i + 2] & 0xC0) != 0x80) ||
                            (n > 3 && (p[i + 3] & 0xC0) != 0x80))
                                return i;
                        i += n;
                } while (i < len && p[i] >= 0x80);
        }
}

int exb_utf8_valid(const void *p, size_t len)
{
        return exb_utf8_valid_prefix(p, len) == len;
}

size_t exb_utf8_count(const void *buf, size_t len)
{
        const uint8_t *p = buf;
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
                n += (p[i] & 0xC0) != 0x80;
        return n;
}

/* ------------------------------------------------------------------ buffers */

#define EXB_BUF_DEFAULT_MAX ((size_t)1 << 30)

void exb_buf_init(exb_buf_t *b, size_t max)
{
        memset(b, 0, sizeof(*b));
        b->max = max ? max : EXB_BUF_DEFAULT_MAX;
}

void exb_buf_reset(exb_buf_t *b)
{
        b->len = 0;
}

void exb_buf_free(exb_buf_t *b)
{
        free(b->p);
        b->p = NULL;
        b->len = b->cap = 0;
}

/* Makes room for `more` bytes plus a NUL. */
int exb_buf_reserve(exb_buf_t *b, size_t more)
{
        if (more > b->max || b->len > b->max - more)
                return -1;
        size_t need = b->len + more + 1;
        if (need <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
                cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
                return -1;
        b->p = p;
        b->cap = cap;
        return 0;
}

int exb_buf_append(exb_buf_t *b, const void *data, size_t len)
{
        if (exb_buf_reserve(b, len))
                return -1;
        if (len)
                memcpy(b->p + b->len, data, len);
        b->len += len;
        return 0;
}

int exb_buf_putc(exb_buf_t *b, int c)
{
        if (exb_buf_reserve(b, 1))
                return -1;
        b->p[b->len++] = (uint8_t)c;
        return 0;
}

int exb_buf_printf(exb_buf_t *b, const char *fmt, ...)
{
        va_list ap;
        char small[256];
        va_start(ap, fmt);
        int n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -1;
        if ((size_t)n < sizeof(small))
                return exb_buf_append(b, small, (size_t)n);
        if (exb_buf_reserve(b, (size_t)n))
                return -1;
        va_start(ap, fmt);
        vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

int exb_buf_cstr(exb_buf_t *b)
{
        if (exb_buf_reserve(b, 0))
                return -1;
        b->p[b->len] = '\0';
        return 0;
}

char *exb_errf(char *errstr, size_t errstr_size, const char *fmt, ...)
{
        if (!errstr || !errstr_size)
                return errstr;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
        return errstr;
}

/* ------------------------------------------------------------------ logging */

static const char *log_role = "exbus";
static int log_level = -1;

void exb_log_role(const char *role)
{
        log_role = role;
}

void exb_log(int level, const char *fmt, ...)
{
        static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
        if (log_level < 0) {
                const char *e = getenv("EXBUS_LOG_LEVEL");
                log_level = e ? atoi(e) : 2;
        }
        if (level > log_level)
                return;
        char ts[25];
        exb_ts_format(exb_now_ms(), ts);
        char line[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s exbus[%s] %s: %s\n", ts, log_role, names[level < 0 ? 0 : level > 3 ? 3 : level],
                line);
}

/* ------------------------------------------------------------------- clocks */

int64_t exb_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t exb_mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -------------------------------------------------------------------- dates */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        const int64_t era = (y >= 0 ? y : y - 399) / 400;
        const unsigned yoe = (unsigned)(y - era * 400);
        const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
        z += 719468;
        const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        const unsigned doe = (unsigned)(z - era * 146097);
        const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        const unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, unsigned m)
{
        static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        return m == 2 ? 28 + leap : dim[m - 1];
}

/* Reads exactly n digits. */
static int read_digits(const char *s, size_t n, int *out)
{
        int v = 0;
        for (size_t i = 0; i < n; i++) {
                if (!isdigit((unsigned char)s[i]))
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return 0;
}

static int parse_ymd(const char *s, int *y, int *mo, int *d)
{
        if (read_digits(s, 4, y) || s[4] != '-' || read_digits(s + 5, 2, mo) || s[7] != '-' ||
            read_digits(s + 8, 2, d))
                return -1;
        if (*mo < 1 || *mo > 12 || *d < 1 || *d > days_in_month(*y, (unsigned)*mo))
                return -1;
        return 0;
}

int exb_date_parse(const char *s, size_t len, int64_t *days)
{
        int y, mo, d;
        if (len != 10 || parse_ymd(s, &y, &mo, &d))
                return -1;
        *days = days_from_civil(y, (unsigned)mo, (unsigned)d);
        return 0;
}

void exb_date_format(int64_t days, char out[11])
{
        int y;
        unsigned m, d;
        civil_from_days(days, &y, &m, &d);
        if (y < 0 || y > 9999) {
                snprintf(out, 11, "%s", "0000-00-00");
                return;
        }
        snprintf(out, 11, "%04d-%02u-%02u", y, m % 100, d % 100);
}

int exb_ts_parse(const char *s, size_t len, int64_t *ms)
{
        int y, mo, d, h, mi, sec, frac = 0;
        if (len < 19 || parse_ymd(s, &y, &mo, &d) || (s[10] != 'T' && s[10] != ' ') ||
            read_digits(s + 11, 2, &h) || s[13] != ':' || read_digits(s + 14, 2, &mi) ||
            s[16] != ':' || read_digits(s + 17, 2, &sec) || h > 23 || mi > 59 || sec > 60)
                return -1;
        size_t i = 19;
        if (i < len && s[i] == '.') {
                size_t start = ++i;
                int scale = 100;
                while (i < len && isdigit((unsigned char)s[i])) {
                        frac += (s[i] - '0') * scale;
                        scale /= 10;
                        i++;
                }
                if (i == start)
                        return -1;
        }
        int64_t offset_min = 0;
        if (i < len && s[i] == 'Z') {
                i++;
        } else if (i < len && (s[i] == '+' || s[i] == '-')) {
                int oh, om;
                if (len - i != 6 || read_digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
                    read_digits(s + i + 4, 2, &om) || oh > 14 || om > 59)
                        return -1;
                offset_min = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
                i += 6;
        }
        if (i != len)
                return -1;
        int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
        *ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + frac;
        return 0;
}

void exb_ts_format(int64_t ms, char out[25])
{
        if (ms < -62167219200000LL || ms > 253402300799999LL) { /* outside years 0..9999 */
                snprintf(out, 25, "%s", "0000-00-00T00:00:00.000Z");
                return;
        }
        int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
        unsigned msec = (unsigned)(ms - secs * 1000) % 1000;
        int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
        unsigned sod = (unsigned)(secs - days * 86400) % 86400;
        char date[11];
        exb_date_format(days, date);
        snprintf(out, 25, "%.10sT%02u:%02u:%02u.%03uZ", date, sod / 3600 % 24, sod / 60 % 60, sod % 60,
                 msec);
}

int exb_edit_distance(const char *a, size_t la, const char *b)
{
        size_t lb = strlen(b);
        int row[129];
        if (la > 128 || lb > 128)
                return 99;
        for (size_t j = 0; j <= lb; j++)
                row[j] = (int)j;
        for (size_t i = 1; i <= la; i++) {
                int diag = row[0];
                row[0] = (int)i;
                for (size_t j = 1; j <= lb; j++) {
                        int up = row[j];
                        int best = diag + (a[i - 1] != b[j - 1]);
                        if (row[j] + 1 < best)
                                best = row[j] + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

/* --------------------------------------------------------------- allocation */

static void *oom(void)
{
        fputs("exbus: out of memory\n", stderr);
        abort();
}

char *exb_strdup(const char *s)
{
        if (!s)
                return NULL;
        char *r = strdup(s);
        return r ? r : oom();
}

char *exb_strndup(const char *s, size_t len)
{
        char *r = malloc(len + 1);
        if (!r)
                return oom();
        memcpy(r, s, len);
        r[len] = '\0';
        return r;
}

void *exb_calloc(size_t n, size_t size)
{
        void *p = calloc(n ? n : 1, size ? size : 1);
        return p ? p : oom();
}

void *exb_realloc(void *p, size_t size)
{
        void *r = realloc(p, size ? size : 1);
        return r ? r : oom();
}

uint32_t exb_fnv1a(const char *s)
{
        uint32_t h = 2166136261u;
        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 16777619u;
        return h;
}
