/*
 * test_check.c — GB 11643 citizen ids and GB 32100 unified social credit
 * codes (exchange-core/exb_check.c).
 *
 * Valid examples: the worked example of GB 11643-1999 (11010519491231002X),
 * 440524188001010014 (the standard's other example), and ids whose check
 * character was computed independently (Python, from the weights in the
 * standard). Credit codes likewise: 91350100M000100Y43 is the commonly
 * cited sample, the others computed independently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "exb_check.h"

typedef struct {
        const char *in;
        int ok;
        const char *why; /* substring of the reason when !ok */
} check_case_t;

static const check_case_t gb11643_cases[] = {
        {"11010519491231002X", 1, NULL},
        {"440524188001010014", 1, NULL},
        {"370602199001011239", 1, NULL},
        {"370602200002290001", 1, NULL}, /* 2000-02-29: leap year */
        {"37060219800307321X", 1, NULL},
        {"110101199003070011", 1, NULL},
        /* wrong check character */
        {"110105194912310021", 0, "check character is 1, expected X"},
        {"370602199001011234", 0, "check character is 4, expected 9"},
        {"440524188001010015", 0, "expected 4"},
        /* lower-case x is not the standard form */
        {"11010519491231002x", 0, "character 18 is 'x'"},
        /* length */
        {"37060219900101123", 0, "length is 17, expected 18"},
        {"3706021990010112390", 0, "length is 19, expected 18"},
        {"", 0, "length is 0"},
        {"370602900101123", 0, "length is 15"}, /* old 15-digit form */
        /* characters */
        {"3706021990A1011239", 0, "character 11 is 'A', expected a digit"},
        {"37060219900101123\xe4", 0, "character 18 is \\xe4"},
        {" 70602199001011239", 0, "character 1 is ' '"},
        /* dates (check characters correct, computed for these digits) */
        {"370602199002300016", 0, "birth date 19900230 is not a real date"},
        {"370602190002290013", 0, "birth date 19000229"}, /* 1900 is not a leap year */
        {"370602199013010014", 0, "birth date 19901301"},
        {"370602199000010015", 0, "birth date 19900001"},
        {"370602199001000011", 0, "birth date 19900100"},
        {"370602179912310012", 0, "birth date 17991231"},
        {"370602220001010010", 0, "birth date 22000101"},
};

static const check_case_t gb32100_cases[] = {
        {"91350100M000100Y43", 1, NULL},
        {"91110000802100433B", 1, NULL},
        {"91370600MA3C00001B", 1, NULL},
        {"12100000400000000W", 1, NULL},
        {"91110108551385082Q", 1, NULL},
        {"91440300MA5DC7XX04", 1, NULL},
        /* wrong check character */
        {"91350100M000100Y44", 0, "check character is 4, expected 3"},
        {"91110000802100433C", 0, "expected B"},
        /* length */
        {"91350100M000100Y4", 0, "length is 17, expected 18"},
        {"91350100M000100Y433", 0, "length is 19"},
        /* characters outside the alphabet: I O S V Z and lower case */
        {"91350100I000100Y43", 0, "character 9 is 'I'"},
        {"91350100O000100Y43", 0, "character 9 is 'O'"},
        {"91350100S000100Y43", 0, "character 9 is 'S'"},
        {"91350100V000100Y43", 0, "character 9 is 'V'"},
        {"91350100Z000100Y43", 0, "character 9 is 'Z'"},
        {"91350100m000100Y43", 0, "character 9 is 'm'"},
        {"91350100M000100Y4-", 0, "character 18 is '-'"},
};

static void run_cases(const check_case_t *cases, size_t n,
                      int (*fn)(const char *, size_t, char *, size_t))
{
        size_t i;
        for (i = 0; i < n; i++) {
                char why[128] = "";
                int ok = fn(cases[i].in, strlen(cases[i].in), why, sizeof(why));
                if (ok != cases[i].ok)
                        fail_msg("\"%s\": got %d (%s), expected %d", cases[i].in, ok, why,
                                 cases[i].ok);
                if (!ok && !strstr(why, cases[i].why))
                        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", cases[i].in, why,
                                 cases[i].why);
        }
}

static void test_gb11643(void **state)
{
        (void)state;
        run_cases(gb11643_cases, sizeof(gb11643_cases) / sizeof(gb11643_cases[0]),
                  exb_check_gb11643);
}

static void test_gb32100(void **state)
{
        (void)state;
        run_cases(gb32100_cases, sizeof(gb32100_cases) / sizeof(gb32100_cases[0]),
                  exb_check_gb32100);
}

/* Values are (pointer, length), not C strings: only len bytes are read. */
static void test_not_nul_terminated(void **state)
{
        char buf[40];
        (void)state;
        memcpy(buf, "11010519491231002X99999", 23);
        assert_int_equal(exb_check_gb11643(buf, 18, NULL, 0), 1);
        memcpy(buf, "91350100M000100Y43ZZZZ", 22);
        assert_int_equal(exb_check_gb32100(buf, 18, NULL, 0), 1);
}

/* The first 16 characters are tested 8 at a time: every byte value at
 * every position is either a digit or named, and the weighted sum agrees
 * with exb_check_gb11643_digit() (one character at a time). */
static void test_gb11643_every_byte(void **state)
{
        (void)state;
        static const char valid[] = "37060219900101123";
        for (int pos = 0; pos < 17; pos++)
                for (int c = 0; c < 256; c++) {
                        char id[19], why[128] = "", want[64];
                        memcpy(id, valid, 17);
                        id[pos] = (char)c;
                        int digit = c >= '0' && c <= '9';
                        /* a date-changing digit may make it no real date */
                        id[17] = digit ? exb_check_gb11643_digit(id) : '0';
                        int ok = exb_check_gb11643(id, 18, why, sizeof(why));
                        if (!digit) {
                                snprintf(want, sizeof(want), "character %d is", pos + 1);
                                if (ok || !strstr(why, want))
                                        fail_msg("byte 0x%02x at %d: %s", c, pos + 1, why);
                        } else if (!ok && !strstr(why, "birth date")) {
                                fail_msg("digit %c at %d: %s", c, pos + 1, why);
                        }
                }
}

static void test_digit_generators(void **state)
{
        /* Expected check characters, 0 = not computable (outside the
         * alphabet or too short). */
        static const struct {
                const char *s17;
                char c11643, c32100;
        } cases[] = {
                {"11010519491231002", 'X', 'B'},
                {"44052418800101001", '4', 'C'},
                {"37060219900101123", '9', 'W'},
                {"12100000400000000", '8', 'W'},
                {"91350100M000100Y4", 0, '3'},
                {"3706021990A101123", 0, 'T'},
                {"3706021990I101123", 0, 0}, /* I is in neither alphabet */
                {"9135010OM000100Y4", 0, 0},
                {"1234", 0, 0}, /* too short (NUL-terminated) */
                {"", 0, 0},
        };
        size_t i;
        char id[19];
        (void)state;

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char g1 = exb_check_gb11643_digit(cases[i].s17);
                char g2 = exb_check_gb32100_digit(cases[i].s17);
                if (g1 != cases[i].c11643 || g2 != cases[i].c32100)
                        fail_msg("\"%s\": got gb11643 %d gb32100 %d, expected %d %d", cases[i].s17,
                                 g1, g2, cases[i].c11643, cases[i].c32100);
        }
        assert_int_equal(exb_check_gb11643_digit(NULL), 0);
        assert_int_equal(exb_check_gb32100_digit(NULL), 0);

        /* Generated ids pass the check (how test data generators use them). */
        for (i = 0; i < 1000; i++) {
                char why[128];
                snprintf(id, sizeof(id), "370602%04d%02d%02d%03d", 1950 + (int)(i % 70),
                         1 + (int)(i % 12), 1 + (int)(i % 28), (int)i);
                id[17] = exb_check_gb11643_digit(id);
                id[18] = '\0';
                if (!exb_check_gb11643(id, 18, why, sizeof(why)))
                        fail_msg("generated %s: %s", id, why);
                snprintf(id, sizeof(id), "91370600MA%07zu", i * 7919);
                id[17] = exb_check_gb32100_digit(id);
                id[18] = '\0';
                if (!exb_check_gb32100(id, 18, why, sizeof(why)))
                        fail_msg("generated %s: %s", id, why);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_gb11643),
                cmocka_unit_test(test_gb32100),
                cmocka_unit_test(test_not_nul_terminated),
                cmocka_unit_test(test_gb11643_every_byte),
                cmocka_unit_test(test_digit_generators),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
