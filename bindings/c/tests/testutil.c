/* testutil.c: see testutil.h. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long tu_passed, tu_failed;

int tu_check(int ok, const char *file, int line, const char *fmt, ...) {
    if (ok) {
        tu_passed++;
        return 1;
    }
    tu_failed++;
    {
        va_list ap;
        const char *err = cebra_last_error();
        fprintf(stderr, "FAIL %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (err && *err) fprintf(stderr, " [last error: %s]", err);
        fputc('\n', stderr);
    }
    return 0;
}

int tu_check_status(CebraStatus got, CebraStatus want, const char *what, const char *file, int line) {
    if (got == want) {
        tu_passed++;
        return 1;
    }
    tu_failed++;
    fprintf(stderr, "FAIL %s:%d: %s returned %s, expected %s [last error: %s]\n", file, line, what,
            cebra_status_name(got), cebra_status_name(want), cebra_last_error());
    return 0;
}

int tu_report(const char *name) {
    tu_tmp_cleanup();
    printf("RESULT %s: %ld passed, %ld failed\n", name, tu_passed, tu_failed);
    fflush(stdout);
    return tu_failed == 0 ? 0 : 1;
}

int tu_quick(void) {
    const char *q = getenv("CEBRA_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

const char *tu_fixture(const char *fmt, ...) {
    static char buffers[4][1024];
    static int next;
    char rel[512];
    char *out = buffers[next];
    const char *root = getenv("CEBRA_FIXTURES");
    va_list ap;
    next = (next + 1) % 4;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(out, sizeof buffers[0], "%s/%s", root && *root ? root : "../../../tests/fixtures", rel);
    return out;
}

static char tmp_root[256];

const char *tu_tmpdir(void) {
    if (!tmp_root[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp_root, sizeof tmp_root, "%s/cebra-ctest-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmp_root)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return tmp_root;
}

const char *tu_tmpfile(const char *name) {
    static char buffers[4][512];
    static int next;
    char *out = buffers[next];
    next = (next + 1) % 4;
    snprintf(out, sizeof buffers[0], "%s/%s", tu_tmpdir(), name);
    return out;
}

void tu_tmp_cleanup(void) {
    DIR *d;
    struct dirent *e;
    char path[1024];
    if (!tmp_root[0]) return;
    d = opendir(tmp_root);
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", tmp_root, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tmp_root);
    tmp_root[0] = '\0';
}

double tu_max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double d;
        if (isnan(a[i]) || isnan(b[i])) {
            if (isnan(a[i]) && isnan(b[i])) continue;
            return NAN;
        }
        if (a[i] == b[i]) continue; /* also equal infinities */
        d = fabs((double)a[i] - (double)b[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

int tu_close(const float *a, const float *b, size_t n, double rel_tol, double abs_tol) {
    size_t i;
    for (i = 0; i < n; i++) {
        double tol;
        if (isnan(a[i]) || isnan(b[i])) {
            if (isnan(a[i]) && isnan(b[i])) continue;
            return 0;
        }
        if (a[i] == b[i]) continue;
        tol = rel_tol * fabs((double)b[i]);
        if (tol < abs_tol) tol = abs_tol;
        if (!(fabs((double)a[i] - (double)b[i]) <= tol)) return 0;
    }
    return 1;
}

double tu_max_abs(const float *b, size_t n) {
    double worst = 0;
    size_t i;
    for (i = 0; i < n; i++)
        if (fabs((double)b[i]) > worst) worst = fabs((double)b[i]);
    return worst;
}

int tu_contains(const char *haystack, const char *needle) {
    return haystack && needle && strstr(haystack, needle) != NULL;
}
