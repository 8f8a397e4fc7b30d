/*
 * exb_check.h — check digits of national identifiers.
 *
 *  gb11643: GB 11643-1999 citizen identity number, 18 characters: 17 digits
 *           then a check character (0-9 or X, upper case; lower x rejected),
 *           ISO 7064 MOD 11-2 over weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2;
 *           digits 7..14 must form a valid date (YYYYMMDD, year 1800..2199).
 *  gb32100: GB 32100-2015 unified social credit code, 18 characters from
 *           0-9 A-H J-N P-R T-U W-Y (no I O Z S V), position 18 a check
 *           character by MOD 31 over weights 1 3 9 27 19 26 16 17 20 29 25 13
 *           8 24 10 30 28.
 */
#ifndef EXB_CHECK_H
#define EXB_CHECK_H

#include <stddef.h>

/* Returns 1 if valid, 0 with a short reason in errstr otherwise, naming the
 * position counted from 1 (e.g. "check character is 3, expected X",
 * "character 7 is 'A', expected a digit", "birth date 19900230 is not a real
 * date", "length is 17, expected 18"). s need not be NUL-terminated. */
int exb_check_gb11643(const char *s, size_t len, char *errstr, size_t errstr_size);
int exb_check_gb32100(const char *s, size_t len, char *errstr, size_t errstr_size);

/* The check character for the first 17 characters of s17, for test data
 * generators: returns it, or 0 if one of those characters is outside the
 * alphabet (digits for gb11643; s17 may be shorter only if NUL-terminated).
 * The gb11643 birth date is NOT checked here, so a test can build an id with
 * a correct check character and an impossible date. */
char exb_check_gb11643_digit(const char *s17);
char exb_check_gb32100_digit(const char *s17);

#endif
