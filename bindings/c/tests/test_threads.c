/* test_threads.c: 8 threads share ONE model handle (offset10-model with the fixture weights) and each
 * runs 1000 forwards of the fixture input, which must all give the reference output. At the same
 * time, registry threads register/unregister C callback models, list the registry and build/run/free
 * models from it; the 147 reference names must always come first and unchanged in the listing, and
 * every registration's free_user_data must run exactly once.
 * CEBRA_TEST_QUICK=1 reduces the iteration counts. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebra.h"
#include "fixture.h"
#include "testutil.h"

#define FORWARD_THREADS 8
#define REGISTRY_THREADS 3
#define MAX_REGISTRATIONS (REGISTRY_THREADS * 1000)

static CebraModel *shared_model;
static const float *input, *reference;
static size_t reference_n;
static int forward_iterations = 1000, registry_iterations = 300;
static char *reference_listing;      /* the 147 names joined by '\n' */
static char *reference_unexpanded;   /* the 29 names joined by '\n' */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long passed, failed;
static int free_counts[MAX_REGISTRATIONS];
static int registered_ok[MAX_REGISTRATIONS];

static void record(long ok_count, long fail_count) {
    pthread_mutex_lock(&lock);
    passed += ok_count;
    failed += fail_count;
    pthread_mutex_unlock(&lock);
}

#define TCHECK(cond, ...)                                                                              \
    do {                                                                                               \
        if (cond) {                                                                                    \
            ok_count++;                                                                                \
        } else {                                                                                       \
            fail_count++;                                                                              \
            if (fail_count <= 5) {                                                                     \
                pthread_mutex_lock(&lock);                                                             \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
                fprintf(stderr, __VA_ARGS__);                                                          \
                fprintf(stderr, " [last error: %s]\n", cebra_last_error());                           \
                pthread_mutex_unlock(&lock);                                                           \
            }                                                                                          \
        }                                                                                              \
    } while (0)

/* ---- forward threads ------------------------------------------------------------------------- */

static void *forward_thread(void *arg) {
    long ok_count = 0, fail_count = 0, i;
    float *y = malloc(reference_n * sizeof *y);
    float *first = malloc(reference_n * sizeof *first);
    (void)arg;
    for (i = 0; i < forward_iterations; i++) {
        int64_t t = 0;
        CebraStatus s = cebra_model_forward(shared_model, input, 3, 7, 16, y, reference_n, &t);
        TCHECK(s == CEBRA_STATUS_OK && t == 7, "forward %ld: %s", i, cebra_status_name(s));
        if (i == 0) {
            memcpy(first, y, reference_n * sizeof *y);
            TCHECK(tu_max_abs_diff(y, reference, reference_n) <= 1e-5, "forward 0 equals the reference");
        } else {
            /* Every forward gives the same bytes as the first, which matches the reference. */
            TCHECK(memcmp(y, first, reference_n * sizeof *y) == 0, "forward %ld equals the first", i);
        }
        TCHECK(*cebra_last_error() == '\0', "last error empty after a successful forward");
    }
    free(y);
    free(first);
    record(ok_count, fail_count);
    return NULL;
}

/* ---- registry threads ------------------------------------------------------------------------ */

static int32_t cb_forward(void *user_data, const float *x, int64_t batch, int64_t num_input, int64_t time,
                          float *output, int64_t num_output, int64_t out_time) {
    int id = *(int *)user_data;
    int64_t i;
    (void)x;
    (void)num_input;
    (void)time;
    for (i = 0; i < batch * num_output * out_time; i++) output[i] = (float)id;
    return 0;
}

static void cb_free(void *user_data) {
    int id = *(int *)user_data;
    pthread_mutex_lock(&lock);
    free_counts[id]++;
    pthread_mutex_unlock(&lock);
    free(user_data);
}

/* The listing (retrying while other threads make it grow between the size query and the call). */
static char *listing(const char *pattern, uint8_t expand) {
    size_t needed = 0;
    char *buf = NULL;
    for (;;) {
        CebraStatus s = cebra_get_options(pattern, 0, expand, buf, buf ? needed : 0, &needed);
        if (s == CEBRA_STATUS_OK && buf) return buf;
        if (s != CEBRA_STATUS_OK && s != CEBRA_STATUS_BUFFER_TOO_SMALL) {
            free(buf);
            return NULL;
        }
        free(buf);
        buf = malloc(needed);
    }
}

static int starts_with_names(const char *text, const char *prefix) {
    size_t n = strlen(prefix);
    return strncmp(text, prefix, n) == 0 && (text[n] == '\0' || text[n] == '\n');
}

static void *registry_thread(void *arg) {
    int tid = (int)(size_t)arg;
    long ok_count = 0, fail_count = 0;
    int i;
    for (i = 0; i < registry_iterations; i++) {
        int id = tid * 1000 + i;
        int *user_data = malloc(sizeof *user_data);
        char name[64];
        CebraModel *m = NULL;
        CebraStatus s;
        char *all;
        float x[2 * 3 * 5], y[2 * 2 * 3];
        int64_t t = 0;
        *user_data = id;
        memset(x, 0, sizeof x);
        snprintf(name, sizeof name, "thread%d-model%d", tid, i);

        s = cebra_register_callback(name, 1, 2, cb_forward, user_data, cb_free, 0);
        TCHECK(s == CEBRA_STATUS_OK, "register %s", name);
        if (s != CEBRA_STATUS_OK) {
            free(user_data);
            continue;
        }
        registered_ok[id] = 1;

        all = listing(NULL, 1);
        TCHECK(all && starts_with_names(all, reference_listing), "the 147 reference names come first, unchanged");
        free(all);
        all = listing(NULL, 0);
        TCHECK(all && starts_with_names(all, reference_unexpanded), "the 29 unexpanded names come first");
        free(all);
        all = listing(name, 1);
        TCHECK(all && strcmp(all, name) == 0, "pattern lists exactly the new name '%s'", all ? all : "(null)");
        free(all);

        s = cebra_model_init(name, 3, 1, 2, NULL, &m);
        TCHECK(s == CEBRA_STATUS_OK, "init %s", name);
        if (s == CEBRA_STATUS_OK) {
            s = cebra_model_forward(m, x, 2, 3, 5, y, 12, &t);
            TCHECK(s == CEBRA_STATUS_OK && t == 3 && y[0] == (float)id && y[11] == (float)id,
                   "callback model forward");
        }
        /* Alternate the order of unregister and free. */
        if (i % 2) cebra_model_free(m);
        TCHECK(cebra_unregister(name) == CEBRA_STATUS_OK, "unregister %s", name);
        if (i % 2 == 0) cebra_model_free(m);
        TCHECK(cebra_model_init(name, 3, 1, 2, NULL, &m) == CEBRA_STATUS_UNKNOWN_NAME, "gone after unregister");

        /* Reference models are built concurrently too. */
        if (i % 10 == 0) {
            CebraModel *r = NULL;
            TCHECK(cebra_model_init("offset10-model", 7, 12, 3, NULL, &r) == CEBRA_STATUS_OK, "init reference");
            cebra_model_free(r);
        }
    }
    record(ok_count, fail_count);
    return NULL;
}

int main(void) {
    pthread_t fw[FORWARD_THREADS], rg[REGISTRY_THREADS];
    fx_file *io;
    fx_json *manifest;
    unsigned char *text;
    size_t len = 0, i, k;
    const fx_json *names, *unexpanded;
    char *after;

    if (tu_quick()) {
        forward_iterations = 50;
        registry_iterations = 20;
    }
    text = fx_read_all(tu_fixture("manifest.json"), &len);
    manifest = text ? fx_json_parse((const char *)text, len, NULL) : NULL;
    free(text);
    io = fx_open(tu_fixture("models/offset10-model.io.safetensors"));
    if (!manifest || !io) {
        fprintf(stderr, "cannot read the fixtures; set CEBRA_FIXTURES\n");
        return 2;
    }
    names = fx_json_get(manifest, "names");
    unexpanded = fx_json_get(manifest, "names_unexpanded");
    for (k = 0; k < 2; k++) {
        const fx_json *list = k ? unexpanded : names;
        size_t total = 1;
        char *out;
        for (i = 0; i < list->count; i++) total += strlen(list->items[i].string) + 1;
        out = calloc(total, 1);
        for (i = 0; i < list->count; i++) {
            if (i) strcat(out, "\n");
            strcat(out, list->items[i].string);
        }
        if (k)
            reference_unexpanded = out;
        else
            reference_listing = out;
    }
    input = fx_f32(io, "input", NULL);
    reference = fx_f32(io, "output", &reference_n);

    CHECK_OK(cebra_set_num_threads(1));
    CHECK_OK(cebra_model_init("offset10-model", 7, 12, 3, NULL, &shared_model));
    CHECK_OK(cebra_model_load(shared_model, tu_fixture("models/offset10-model.safetensors")));

    for (i = 0; i < REGISTRY_THREADS; i++)
        CHECK(pthread_create(&rg[i], NULL, registry_thread, (void *)i) == 0, "spawn a registry thread");
    for (i = 0; i < FORWARD_THREADS; i++)
        CHECK(pthread_create(&fw[i], NULL, forward_thread, NULL) == 0, "spawn a forward thread");
    for (i = 0; i < FORWARD_THREADS; i++) pthread_join(fw[i], NULL);
    for (i = 0; i < REGISTRY_THREADS; i++) pthread_join(rg[i], NULL);

    tu_passed += passed;
    tu_failed += failed;
    {
        size_t registered = 0, bad = 0;
        for (i = 0; i < MAX_REGISTRATIONS; i++) {
            registered += registered_ok[i] != 0;
            if (free_counts[i] != (registered_ok[i] ? 1 : 0)) {
                bad++;
                fprintf(stderr, "registration %lu: free_user_data ran %d times\n", (unsigned long)i, free_counts[i]);
            }
        }
        CHECK(bad == 0 && registered == (size_t)REGISTRY_THREADS * (size_t)registry_iterations,
              "free_user_data ran exactly once for each of the %lu registrations", (unsigned long)registered);
    }

    after = listing(NULL, 1);
    CHECK(after && strcmp(after, reference_listing) == 0, "the listing is the 147 reference names again");
    free(after);

    cebra_model_free(shared_model);
    printf("test_threads: %d forward threads x %d forwards, %d registry threads x %d iterations\n", FORWARD_THREADS,
           forward_iterations, REGISTRY_THREADS, registry_iterations);
    free(reference_listing);
    free(reference_unexpanded);
    fx_close(io);
    fx_json_free(manifest);
    return tu_report("test_threads");
}
