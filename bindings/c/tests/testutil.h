/* testutil.h: the small check framework shared by the C tests. Not thread-safe: test_threads counts
 * per thread and adds up after joining. */
#ifndef CEBRA_TEST_UTIL_H
#define CEBRA_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "cebra.h"

extern long tu_passed, tu_failed;

/* Records one check; on failure prints the location and the formatted message (and the thread's
 * last libcebra error when it is not empty). Returns `ok`. */
int tu_check(int ok, const char *file, int line, const char *fmt, ...);
#define CHECK(cond, ...) tu_check((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)
/* A call that must succeed. */
#define CHECK_OK(call) tu_check_status((call), CEBRA_STATUS_OK, #call, __FILE__, __LINE__)
/* A call that must return `status`. */
#define CHECK_STATUS(call, status) tu_check_status((call), (status), #call, __FILE__, __LINE__)
int tu_check_status(CebraStatus got, CebraStatus want, const char *what, const char *file, int line);

/* Prints "RESULT <name>: <passed> passed, <failed> failed" and returns the exit code (0 when none
 * failed). The Makefile adds up the RESULT lines of all tests. */
int tu_report(const char *name);

/* Nonzero when CEBRA_TEST_QUICK is set to a non-empty value other than "0" (fewer iterations, for
 * Valgrind). */
int tu_quick(void);

/* Path of a fixture: $CEBRA_FIXTURES/<rel> (default ../../../tests/fixtures). Returns a pointer into
 * one of a few rotating static buffers. */
const char *tu_fixture(const char *fmt, ...);

/* A fresh temporary directory (removed with its files by tu_tmp_cleanup) and paths inside it. */
const char *tu_tmpdir(void);
const char *tu_tmpfile(const char *name);
void tu_tmp_cleanup(void);

/* Largest |a[i] - b[i]| (NaN when either side has a NaN where the other does not). */
double tu_max_abs_diff(const float *a, const float *b, size_t n);
/* True when every |a - b| <= max(abs_tol, rel_tol * |b|) (NaN equal to NaN). */
int tu_close(const float *a, const float *b, size_t n, double rel_tol, double abs_tol);
/* Largest |b[i]|. */
double tu_max_abs(const float *b, size_t n);

/* Whether `haystack` contains `needle`. */
int tu_contains(const char *haystack, const char *needle);

#endif
