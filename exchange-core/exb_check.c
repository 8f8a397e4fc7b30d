/*
 * exb_check.c — check digits of national identifiers (see exb_check.h).
 *
 * Both checks are pure functions over (pointer, length) so they run directly
 * on decoded values that are not NUL-terminated. Reasons are short and say
 * which position is wrong, counted from 1 as a person reads the number:
 *   "character 7 is 'A', expected a digit"
 *   "birth date 19900230 is not a real date"
 *   "check character is 3, expected X"
 *
 * GB 11643 (ISO 7064 MOD 11-2): S = sum(a_i * w_i) for i = 1..17 with
 * w_i = 2^(18-i) mod 11; the check value is (12 - S mod 11) mod 11, written
 * as "10X98765432"[S mod 11] (value 10 is written X).
 *
 * GB 32100: the 31 characters 0-9 A-H J-N P-R T-U W-Y have values 0..30;
 * S = sum(v_i * w_i) for i = 1..17 with w_i = 3^(i-1) mod 31; the check value
 * is (31 - S mod 31) mod 31, written with the same alphabet. Only the
 * alphabet and the check character are verified, not the meaning of the
 * registration authority / category / region positions.
 */
#include "exb_check.h"
#include "exb_common.h"

#include <string.h>

#define EXB_ID_LEN 18

static const int gb11643_weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
static const char gb11643_chars[] = "10X98765432";

static const int gb32100_weights[17] = {1,  3,  9,  27, 19, 26, 16, 17, 20,
                                        29, 25, 13, 8,  24, 10, 30, 28};
static const char gb32100_chars[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/* Value of c in the GB 32100 alphabet, or -1. */
static int gb32100_value(char c)
{
        const char *p;
        if (c == '\0')
                return -1;
        p = strchr(gb32100_chars, c);
        return p ? (int)(p - gb32100_chars) : -1;
}

/* Writes a character for a message: printable ASCII as is, else "\xNN". */
static const char *char_repr(char c, char out[8])
{
        unsigned char u = (unsigned char)c;
        if (u >= 0x20 && u < 0x7f)
                exb_errf(out, 8, "'%c'", c);
        else
                exb_errf(out, 8, "\\x%02x", u);
        return out;
}

static int is_leap(int y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Returns 1 if the 8 digits at s are a real date YYYYMMDD, year 1800..2199. */
static int gb11643_date_ok(const char *s)
{
        static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int y = 0, m, d, i;
        for (i = 0; i < 4; i++)
                y = y * 10 + (s[i] - '0');
        m = (s[4] - '0') * 10 + (s[5] - '0');
        d = (s[6] - '0') * 10 + (s[7] - '0');
        if (y < 1800 || y > 2199 || m < 1 || m > 12 || d < 1)
                return 0;
        return d <= mdays[m - 1] + (m == 2 && is_leap(y));
}

/* S mod 11 over the first 17 characters, or -1 - i if character i is not a
 * digit. */
static int gb11643_mod(const char *s17)
{
        int sum = 0;
#pragma GCC unroll 17
        for (int i = 0; i < 17; i++) {
                unsigned d = (unsigned char)s17[i] - (unsigned)'0';
                if (d > 9)
                        return -1 - i;
                sum += (int)d * gb11643_weights[i];
        }
        return sum % 11;
}

/* gb11643_mod() of 17 characters known to be there, the first 16 tested
 * 8 at a time (w - '0' in every byte; a byte that is not a digit sets its
 * high bit in the difference or in difference + 0x76). */
static int gb11643_mod17(const char *s)
{
        const uint64_t zeros = 0x3030303030303030ULL, high = 0x8080808080808080ULL;
        uint64_t a = exb_load_le64(s) - zeros, b = exb_load_le64(s + 8) - zeros;
        unsigned last = (unsigned char)s[16] - (unsigned)'0';
        if ((((a + 0x7676767676767676ULL) | a | (b + 0x7676767676767676ULL) | b) & high) ||
            last > 9)
                return gb11643_mod(s); /* finds the character */
        int sum = (int)last * gb11643_weights[16];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
                sum += (int)(a >> (8 * i) & 0xff) * gb11643_weights[i] +
                       (int)(b >> (8 * i) & 0xff) * gb11643_weights[8 + i];
        return sum % 11;
}

char exb_check_gb11643_digit(const char *s17)
{
        int m = s17 ? gb11643_mod(s17) : -1;
        return m < 0 ? 0 : gb11643_chars[m];
}

int exb_check_gb11643(const char *s, size_t len, char *errstr, size_t errstr_size)
{
        char expect, rep[8];
        int m;

        if (len != EXB_ID_LEN) {
                exb_errf(errstr, errstr_size, "length is %zu, expected 18", len);
                return 0;
        }
        if ((m = gb11643_mod17(s)) < 0) {
                exb_errf(errstr, errstr_size, "character %d is %s, expected a digit", -m,
                         char_repr(s[-1 - m], rep));
                return 0;
        }
        if (!((s[17] >= '0' && s[17] <= '9') || s[17] == 'X')) {
                exb_errf(errstr, errstr_size,
                         "character 18 is %s, expected a digit or X (upper case)",
                         char_repr(s[17], rep));
                return 0;
        }
        if (!gb11643_date_ok(s + 6)) {
                exb_errf(errstr, errstr_size, "birth date %.8s is not a real date", s + 6);
                return 0;
        }
        expect = gb11643_chars[m];
        if (s[17] != expect) {
                exb_errf(errstr, errstr_size, "check character is %c, expected %c", s[17], expect);
                return 0;
        }
        return 1;
}

/* Check character for 17 characters known to be in the alphabet. */
static char gb32100_compute(const char *s17)
{
        int sum = 0, i;
        for (i = 0; i < 17; i++)
                sum += gb32100_value(s17[i]) * gb32100_weights[i];
        return gb32100_chars[(31 - sum % 31) % 31];
}

char exb_check_gb32100_digit(const char *s17)
{
        int i;
        if (!s17)
                return 0;
        for (i = 0; i < 17; i++)
                if (gb32100_value(s17[i]) < 0)
                        return 0;
        return gb32100_compute(s17);
}

int exb_check_gb32100(const char *s, size_t len, char *errstr, size_t errstr_size)
{
        char expect, rep[8];
        size_t i;

        if (len != EXB_ID_LEN) {
                exb_errf(errstr, errstr_size, "length is %zu, expected 18", len);
                return 0;
        }
        for (i = 0; i < EXB_ID_LEN; i++) {
                if (gb32100_value(s[i]) < 0) {
                        exb_errf(errstr, errstr_size,
                                 "character %zu is %s, not in 0-9 A-H J-N P-R T-U W-Y "
                                 "(upper case, no I O S V Z)",
                                 i + 1, char_repr(s[i], rep));
                        return 0;
                }
        }
        expect = gb32100_compute(s);
        if (s[17] != expect) {
                exb_errf(errstr, errstr_size, "check character is %c, expected %c", s[17], expect);
                return 0;
        }
        return 1;
}
