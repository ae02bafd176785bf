/* cebra_mex.c: the one MATLAB/Octave gateway over the libcebra C ABI (include/cebra.h).
 *
 * Called as cebra_mex('command', args...) by the +cebra package; users call the package, not this.
 * C99 that MATLAB's `mex` and Octave's `mkoctfile --mex` both compile.
 *
 * Handles: library objects (models, criterions, ...) live in a table here and cross into MATLAB as
 * ids (doubles) that encode the slot and a generation number, so a stale, forged or already-freed id
 * is found out and reported, never dereferenced. The mex stays locked (mexLock) while any handle or
 * callback registration is alive, so `clear functions` cannot unload code the library still points to.
 *
 * Errors: every failure is a MATLAB error with identifier cebra:<STATUS> (the status name without
 * CEBRA_STATUS_) and the library's message. mexErrMsgIdAndTxt unwinds (longjmp or C++ exception), so
 * it is called only from gateway code, never while a library call (Rust frames) is on the stack;
 * temporaries are mxMalloc'ed, which MATLAB and Octave free on that unwinding.
 *
 * Arrays: a MATLAB array is column-major, so an array of size [time, channels, batch] holds exactly
 * the bytes of the C ABI's row-major (batch, channels, time): model forward passes them through
 * untransposed (singles as they are, doubles converted to float32). Criterions take n-by-d matrices
 * with one row per sample, transposed here into the ABI's row-major (n, d). Outputs are of the class
 * of the data input (double in, double out; single in, single out).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mex.h"
#include "cebra.h"

#ifdef _WIN32
#include <windows.h>
typedef DWORD thread_id;
static thread_id current_thread(void) { return GetCurrentThreadId(); }
static int same_thread(thread_id a, thread_id b) { return a == b; }
#else
#include <pthread.h>
typedef pthread_t thread_id;
static thread_id current_thread(void) { return pthread_self(); }
static int same_thread(thread_id a, thread_id b) { return pthread_equal(a, b); }
#endif

/* ---- errors ---------------------------------------------------------------------------------- */

/* Message of the last MATLAB callback failure, added to a CALLBACK_FAILED error. */
static char callback_message[1024];

/* Raises the MATLAB error for a library status: identifier cebra:<NAME>, the library's message. */
static void fail_status(CebraStatus status) {
    char id[96];
    const char *name = cebra_status_name(status);
    const char *prefix = "CEBRA_STATUS_";
    const char *message = cebra_last_error();
    if (strncmp(name, prefix, strlen(prefix)) == 0) name += strlen(prefix);
    snprintf(id, sizeof id, "cebra:%s", name);
    if (status == CEBRA_STATUS_CALLBACK_FAILED && callback_message[0])
        mexErrMsgIdAndTxt(id, "%s: %s", message, callback_message);
    mexErrMsgIdAndTxt(id, "%s", message[0] ? message : name);
}

/* A gateway-side error: identifier cebra:<status> with a formatted message. */
static void fail(const char *status, const char *fmt, ...) {
    char id[96], message[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    snprintf(id, sizeof id, "cebra:%s", status);
    mexErrMsgIdAndTxt(id, "%s", message);
}

/* Raises the error for `status` unless it is OK. */
static void check(CebraStatus status) {
    if (status != CEBRA_STATUS_OK) fail_status(status);
}

/* ---- handle table ---------------------------------------------------------------------------- */

typedef enum { KIND_FREE = 0, KIND_MODEL, KIND_CRITERION, KIND_STREAM, KIND_SOLVER } handle_kind;

static const char *kind_name(handle_kind kind) {
    switch (kind) {
    case KIND_MODEL: return "cebra.Model";
    case KIND_CRITERION: return "cebra.Criterion";
    case KIND_STREAM: return "cebra.Stream";
    case KIND_SOLVER: return "cebra.Solver";
    default: return "freed";
    }
}

typedef struct {
    handle_kind kind;
    uint32_t generation; /* bumped when the slot is freed, so old ids of the slot go stale */
    void *ptr;
    int64_t num_output;  /* streams: embedding size */
    int fitting;         /* solvers: a fit is running (its progress function may call back in) */
} handle_slot;

/* ids are generation * SLOT_LIMIT + slot + 1: exact in a double (< 2^52), never 0. */
#define SLOT_LIMIT 1048576.0
static handle_slot *slots;
static size_t slot_count, slot_capacity;
static size_t live_handles, live_registrations;
static int locked;

/* Locked while anything here is alive: the library may call back into this mex (callbacks,
   free_user_data), and MATLAB-side ids must keep meaning the same objects. */
static void update_lock(void) {
    int need = live_handles + live_registrations > 0;
    if (need && !locked) {
        mexLock();
        locked = 1;
    } else if (!need && locked) {
        mexUnlock();
        locked = 0;
    }
}

static void free_object(handle_kind kind, void *ptr) {
    switch (kind) {
    case KIND_MODEL: cebra_model_free((CebraModel *)ptr); break;
    case KIND_CRITERION: cebra_criterion_free((CebraCriterion *)ptr); break;
    case KIND_STREAM: cebra_stream_free((CebraStream *)ptr); break;
    case KIND_SOLVER: cebra_solver_free((CebraSolver *)ptr); break;
    default: break;
    }
}

static void release_slot(handle_slot *slot) {
    /* The slot is marked free before the object goes: freeing a callback model may run
       matlab_free, which updates the lock from live_handles. */
    handle_kind kind = slot->kind;
    void *ptr = slot->ptr;
    slot->kind = KIND_FREE;
    slot->ptr = NULL;
    slot->fitting = 0;
    slot->generation++;
    live_handles--;
    free_object(kind, ptr);
}

/* Frees what is left when MATLAB/Octave unloads the mex: at exit (the lock keeps it loaded before). */
static void at_exit(void) {
    size_t i;
    for (i = 0; i < slot_count; i++)
        if (slots[i].kind != KIND_FREE) release_slot(&slots[i]);
    free(slots);
    slots = NULL;
    slot_count = slot_capacity = 0;
}

/* Stores a new library object and returns its id as a MATLAB double. When the table cannot take it the
   object is freed before the error, so nothing leaks. */
static mxArray *new_handle(handle_kind kind, void *ptr) {
    size_t i;
    handle_slot *slot = NULL;
    for (i = 0; i < slot_count; i++)
        if (slots[i].kind == KIND_FREE) {
            slot = &slots[i];
            break;
        }
    if (!slot) {
        if ((double)slot_count >= SLOT_LIMIT) {
            free_object(kind, ptr);
            fail("INVALID_ARGUMENT", "too many live cebra handles (%.0f); delete some first", SLOT_LIMIT);
        }
        if (slot_count == slot_capacity) {
            size_t capacity = slot_capacity ? slot_capacity * 2 : 64;
            handle_slot *grown = (handle_slot *)realloc(slots, capacity * sizeof *grown);
            if (!grown) {
                free_object(kind, ptr);
                fail("INVALID_ARGUMENT", "out of memory for the handle table");
            }
            slots = grown;
            slot_capacity = capacity;
        }
        slot = &slots[slot_count++];
        slot->generation = 0;
    }
    slot->kind = kind;
    slot->ptr = ptr;
    slot->num_output = 0;
    slot->fitting = 0;
    live_handles++;
    update_lock();
    return mxCreateDoubleScalar((double)slot->generation * SLOT_LIMIT + (double)(slot - slots) + 1.0);
}

/* The slot an id names, whatever its kind; NULL when the id is not a live handle. */
static handle_slot *find_slot(const mxArray *a) {
    double id, slot_index, generation;
    if (!a || !mxIsDouble(a) || mxIsComplex(a) || mxIsSparse(a) || mxGetNumberOfElements(a) != 1) return NULL;
    id = mxGetScalar(a);
    if (!(id >= 1.0 && id < 4503599627370496.0) || id != (double)(int64_t)id) return NULL;
    generation = (double)(int64_t)((id - 1.0) / SLOT_LIMIT);
    slot_index = id - 1.0 - generation * SLOT_LIMIT;
    if (slot_index < 0 || slot_index >= (double)slot_count) return NULL;
    if (slots[(size_t)slot_index].kind == KIND_FREE || (double)slots[(size_t)slot_index].generation != generation)
        return NULL;
    return &slots[(size_t)slot_index];
}

static handle_slot *get_slot(const mxArray *a, handle_kind kind) {
    handle_slot *slot = find_slot(a);
    if (!slot)
        fail("INVALID_ARGUMENT", "not a live %s handle: the id is stale, forged or already freed", kind_name(kind));
    if (slot->kind != kind)
        fail("INVALID_ARGUMENT", "expected a %s handle, got a %s handle", kind_name(kind), kind_name(slot->kind));
    return slot;
}

static CebraModel *get_model(const mxArray *a) { return (CebraModel *)get_slot(a, KIND_MODEL)->ptr; }
static CebraCriterion *get_criterion(const mxArray *a) { return (CebraCriterion *)get_slot(a, KIND_CRITERION)->ptr; }

/* ---- arguments ------------------------------------------------------------------------------- */

static void need_args(int nrhs, int count, const char *usage) {
    if (nrhs != count) fail("INVALID_ARGUMENT", "cebra_mex %s: expected %d argument(s), got %d", usage, count - 1, nrhs - 1);
}

/* A char row vector as an mxMalloc'ed C string. */
static char *get_string(const mxArray *a, const char *what) {
    char *s;
    if (!mxIsChar(a) || (mxGetM(a) > 1 && mxGetNumberOfElements(a) > 0) || mxGetNumberOfDimensions(a) > 2)
        fail("INVALID_ARGUMENT", "%s must be a character row vector (text)", what);
    {
        /* A NUL would silently cut the C string short. */
        const mxChar *chars = mxGetChars(a);
        size_t i, n = mxGetNumberOfElements(a);
        for (i = 0; chars && i < n; i++)
            if (chars[i] == 0) fail("INVALID_ARGUMENT", "%s contains a NUL character", what);
    }
    s = mxArrayToString(a);
    if (!s) fail("INVALID_ARGUMENT", "%s cannot be converted to text", what);
    return s;
}

/* NULL for [] (no pattern), else the text. */
static char *get_optional_string(const mxArray *a, const char *what) {
    if (mxIsEmpty(a) && !mxIsChar(a)) return NULL;
    return get_string(a, what);
}

/* A real, finite, integer-valued numeric (or logical) scalar within [lo, hi]. */
static double get_integer(const mxArray *a, const char *what, double lo, double hi) {
    double v;
    if (!(mxIsNumeric(a) || mxIsLogical(a)) || mxIsComplex(a) || mxIsSparse(a) || mxGetNumberOfElements(a) != 1)
        fail("INVALID_ARGUMENT", "%s must be a real numeric scalar", what);
    v = mxGetScalar(a);
    if (!(v >= lo && v <= hi) || v != (double)(int64_t)v)
        fail("INVALID_ARGUMENT", "%s must be an integer in [%.0f, %.0f], got %g", what, lo, hi, v);
    return v;
}

static int get_flag(const mxArray *a, const char *what) {
    return get_integer(a, what, 0, 1) != 0;
}

/* Data arrays are real, dense single or double: other input is refused with the reason. */
static void check_data(const mxArray *a, const char *what) {
    if (!mxIsNumeric(a))
        fail("INVALID_ARGUMENT", "%s must be a real single or double array, got a %s", what, mxGetClassName(a));
    if (mxIsSparse(a)) fail("INVALID_ARGUMENT", "%s must be a full (not sparse) array", what);
    if (mxIsComplex(a)) fail("INVALID_ARGUMENT", "%s must be real, not complex", what);
    if (!mxIsDouble(a) && !mxIsSingle(a))
        fail("INVALID_ARGUMENT", "%s must be single or double, got %s", what, mxGetClassName(a));
    if (mxIsEmpty(a)) fail("INVALID_ARGUMENT", "%s is empty", what);
}

/* The elements of a data array as float32 in MATLAB's (column-major) order: singles as they are,
   doubles converted into an mxMalloc'ed copy. */
static const float *as_float(const mxArray *a, const char *what) {
    size_t i, n;
    const double *d;
    float *f;
    check_data(a, what);
    if (mxIsSingle(a)) return (const float *)mxGetData(a);
    n = mxGetNumberOfElements(a);
    d = (const double *)mxGetData(a);
    f = (float *)mxMalloc(n * sizeof *f);
    for (i = 0; i < n; i++) f[i] = (float)d[i];
    return f;
}

/* A 2-D data matrix (rows x cols, one row per sample) as a row-major float32 copy. */
static float *rows_as_float(const mxArray *a, const char *what, size_t *rows, size_t *cols) {
    size_t i, j, m, n;
    float *f;
    check_data(a, what);
    if (mxGetNumberOfDimensions(a) != 2) fail("INVALID_ARGUMENT", "%s must be a 2-D matrix (one row per sample)", what);
    m = mxGetM(a);
    n = mxGetN(a);
    f = (float *)mxMalloc(m * n * sizeof *f);
    if (mxIsSingle(a)) {
        const float *s = (const float *)mxGetData(a);
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) f[i * n + j] = s[j * m + i];
    } else {
        const double *s = (const double *)mxGetData(a);
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) f[i * n + j] = (float)s[j * m + i];
    }
    *rows = m;
    *cols = n;
    return f;
}

/* A vector of `n` values (row or column) as float32. */
static const float *vector_as_float(const mxArray *a, const char *what, size_t *n) {
    check_data(a, what);
    if (mxGetNumberOfDimensions(a) != 2 || (mxGetM(a) != 1 && mxGetN(a) != 1))
        fail("INVALID_ARGUMENT", "%s must be a vector", what);
    *n = mxGetNumberOfElements(a);
    return as_float(a, what);
}

/* ---- outputs --------------------------------------------------------------------------------- */

/* An array of class `cls` (single or double) and size `dims` holding `data` in column-major order. */
static mxArray *make_array(mxClassID cls, mwSize ndim, const mwSize *dims, const float *data) {
    mxArray *out = mxCreateNumericArray(ndim, dims, cls, mxREAL);
    size_t i, n = mxGetNumberOfElements(out);
    if (cls == mxSINGLE_CLASS) {
        if (n) memcpy(mxGetData(out), data, n * sizeof(float));
    } else {
        double *d = (double *)mxGetData(out);
        for (i = 0; i < n; i++) d[i] = data[i];
    }
    return out;
}

/* A rows x cols matrix from row-major data. */
static mxArray *make_rows(mxClassID cls, size_t rows, size_t cols, const float *data) {
    mxArray *out = mxCreateNumericMatrix(rows, cols, cls, mxREAL);
    size_t i, j;
    if (cls == mxSINGLE_CLASS) {
        float *f = (float *)mxGetData(out);
        for (i = 0; i < rows; i++)
            for (j = 0; j < cols; j++) f[j * rows + i] = data[i * cols + j];
    } else {
        double *d = (double *)mxGetData(out);
        for (i = 0; i < rows; i++)
            for (j = 0; j < cols; j++) d[j * rows + i] = data[i * cols + j];
    }
    return out;
}

static mxArray *make_int(int64_t v) { return mxCreateDoubleScalar((double)v); }

/* '\n'-separated names as a column cell array of char rows. */
static mxArray *make_name_list(const char *text) {
    size_t count = 0, i;
    const char *p;
    mxArray *cell;
    if (*text) {
        count = 1;
        for (p = text; *p; p++) count += *p == '\n';
    }
    cell = mxCreateCellMatrix(count, 1);
    for (i = 0, p = text; i < count; i++) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *name = (char *)mxMalloc(len + 1);
        memcpy(name, p, len);
        name[len] = '\0';
        mxSetCell(cell, i, mxCreateString(name));
        mxFree(name);
        p += len + (nl ? 1 : 0);
    }
    return cell;
}

/* ---- version, runtime ------------------------------------------------------------------------ */

typedef void (*command_fn)(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]);

static void cmd_version(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)prhs;
    need_args(nrhs, 1, "version()");
    plhs[0] = mxCreateString(cebra_version());
}

static void cmd_abi_version(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)prhs;
    need_args(nrhs, 1, "abi_version()");
    /* Both: what the library says and what this gateway was compiled against. */
    plhs[0] = mxCreateDoubleScalar((double)cebra_abi_version());
    if (nlhs > 1) plhs[1] = mxCreateDoubleScalar((double)CEBRA_ABI_VERSION);
}

static void cmd_status_name(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs;
    need_args(nrhs, 2, "status_name(code)");
    plhs[0] = mxCreateString(cebra_status_name((CebraStatus)get_integer(prhs[1], "status", 0, 4294967295.0)));
}

static void cmd_debug_panic(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)plhs; (void)prhs;
    need_args(nrhs, 1, "debug_panic()");
    check(cebra_debug_panic());
}

static void cmd_manual_seed(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)plhs;
    need_args(nrhs, 2, "manual_seed(seed)");
    /* Seeds beyond 2^53 are not exact in a double; uint64 input keeps all 64 bits. */
    if (mxIsUint64(prhs[1]) && mxGetNumberOfElements(prhs[1]) == 1)
        check(cebra_manual_seed(*(const uint64_t *)mxGetData(prhs[1])));
    else
        check(cebra_manual_seed((uint64_t)get_integer(prhs[1], "seed", 0, 9007199254740992.0)));
}

static void cmd_set_num_threads(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)plhs;
    need_args(nrhs, 2, "set_num_threads(n)");
    check(cebra_set_num_threads((int32_t)get_integer(prhs[1], "number of threads", -2147483648.0, 2147483647.0)));
}

static void cmd_cuda_is_available(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)prhs;
    need_args(nrhs, 1, "cuda_is_available()");
    plhs[0] = mxCreateLogicalScalar(cebra_cuda_is_available() != 0);
}

/* Gateway state, for tests: live handles, live callback registrations, whether the mex is locked. */
static void cmd_stats(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)prhs;
    need_args(nrhs, 1, "stats()");
    plhs[0] = mxCreateDoubleScalar((double)live_handles);
    if (nlhs > 1) plhs[1] = mxCreateDoubleScalar((double)live_registrations);
    if (nlhs > 2) plhs[2] = mxCreateLogicalScalar(mexIsLocked() != 0);
}

/* ---- registry -------------------------------------------------------------------------------- */

static void cmd_get_options(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *pattern, *buf;
    size_t limit, needed = 0;
    uint8_t expand;
    (void)nlhs;
    need_args(nrhs, 4, "get_options(pattern, limit, expand)");
    pattern = get_optional_string(prhs[1], "pattern");
    limit = (size_t)get_integer(prhs[2], "limit", 0, 9007199254740992.0);
    expand = (uint8_t)get_flag(prhs[3], "expand");
    check(cebra_get_options(pattern, limit, expand, NULL, 0, &needed));
    buf = (char *)mxMalloc(needed);
    check(cebra_get_options(pattern, limit, expand, buf, needed, NULL));
    plhs[0] = make_name_list(buf);
}

static void cmd_criterion_get_options(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *pattern, *buf;
    size_t limit, needed = 0;
    (void)nlhs;
    need_args(nrhs, 3, "criterion_get_options(pattern, limit)");
    pattern = get_optional_string(prhs[1], "pattern");
    limit = (size_t)get_integer(prhs[2], "limit", 0, 9007199254740992.0);
    check(cebra_criterion_get_options(pattern, limit, NULL, 0, &needed));
    buf = (char *)mxMalloc(needed);
    check(cebra_criterion_get_options(pattern, limit, buf, needed, NULL));
    plhs[0] = make_name_list(buf);
}

static void cmd_unregister(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)plhs;
    need_args(nrhs, 2, "unregister(name)");
    check(cebra_unregister(get_string(prhs[1], "name")));
}

/* ---- callback models ------------------------------------------------------------------------- */

/* A registered MATLAB function handle. */
typedef struct {
    mxArray *fn;   /* persistent copy of the function handle */
    char name[256];
} callback_data;

static thread_id matlab_thread;
static int matlab_thread_known;

/* Records a callback failure message (without ever raising a MATLAB error here). */
static int32_t callback_fail(int32_t code, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(callback_message, sizeof callback_message, fmt, args);
    va_end(args);
    return code;
}

/* CebraForwardFn for a MATLAB function handle: x is time x num_input x batch (the bytes of the ABI's
   (batch, num_input, time)), the result outTime x num_output x batch. Runs on MATLAB's thread only:
   MATLAB's API cannot be called from another one. Errors of the function come back as a message via
   cebra.internal.invokeCallback (which catches them), so nothing unwinds through the library. */
static int32_t matlab_forward(void *user_data, const float *input, int64_t batch, int64_t num_input, int64_t time,
                              float *output, int64_t num_output, int64_t out_time) {
    callback_data *data = (callback_data *)user_data;
    mxArray *args[4], *outs[2] = {NULL, NULL}, *trapped;
    mwSize dims[3];
    size_t n_in = (size_t)(batch * num_input * time), n_out = (size_t)(batch * num_output * out_time), i;
    const mxArray *y;
    int32_t rc = 0;

    if (!matlab_thread_known || !same_thread(current_thread(), matlab_thread))
        return callback_fail(-2, "callback model '%s' was called from a thread other than MATLAB's", data->name);
    dims[0] = (mwSize)time;
    dims[1] = (mwSize)num_input;
    dims[2] = (mwSize)batch;
    args[0] = data->fn;
    args[1] = mxCreateNumericArray(3, dims, mxSINGLE_CLASS, mxREAL);
    memcpy(mxGetData(args[1]), input, n_in * sizeof(float));
    args[2] = mxCreateDoubleScalar((double)num_output);
    args[3] = mxCreateDoubleScalar((double)out_time);
    trapped = mexCallMATLABWithTrap(2, outs, 4, args, "cebra.internal.invokeCallback");
    mxDestroyArray(args[1]);
    mxDestroyArray(args[2]);
    mxDestroyArray(args[3]);
    if (trapped) {
        mxDestroyArray(trapped);
        return callback_fail(-3, "callback model '%s': calling cebra.internal.invokeCallback failed", data->name);
    }
    if (outs[1] && mxIsChar(outs[1]) && mxGetNumberOfElements(outs[1]) > 0) {
        char *message = mxArrayToString(outs[1]);
        rc = callback_fail(-1, "the function of '%s' raised: %s", data->name, message ? message : "?");
        mxFree(message);
    } else {
        y = outs[0];
        if (!y || !mxIsNumeric(y) || mxIsComplex(y) || mxIsSparse(y) || !(mxIsSingle(y) || mxIsDouble(y))) {
            rc = callback_fail(-4, "the function of '%s' must return a real single or double array", data->name);
        } else if (mxGetNumberOfElements(y) != n_out || mxGetNumberOfDimensions(y) > 3 ||
                   (mxGetM(y) != (size_t)out_time && n_out > 0)) {
            rc = callback_fail(-5, "the function of '%s' returned %lu elements (%lu rows); expected outTime x numOutput "
                               "x batch = %lld x %lld x %lld", data->name, (unsigned long)mxGetNumberOfElements(y),
                               (unsigned long)mxGetM(y), (long long)out_time, (long long)num_output, (long long)batch);
        } else if (mxIsSingle(y)) {
            memcpy(output, mxGetData(y), n_out * sizeof(float));
        } else {
            const double *d = (const double *)mxGetData(y);
            for (i = 0; i < n_out; i++) output[i] = (float)d[i];
        }
    }
    if (outs[0]) mxDestroyArray(outs[0]);
    if (outs[1]) mxDestroyArray(outs[1]);
    return rc;
}

/* CebraFreeFn: the library is done with the registration and all models built from it. */
static void matlab_free(void *user_data) {
    callback_data *data = (callback_data *)user_data;
    mxDestroyArray(data->fn);
    free(data);
    live_registrations--;
    update_lock();
}

static void cmd_register_callback(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *name;
    int64_t left, right;
    uint32_t flags;
    callback_data *data;
    CebraStatus status;
    (void)nlhs; (void)plhs;
    need_args(nrhs, 6, "register_callback(name, fn, offset_left, offset_right, flags)");
    name = get_string(prhs[1], "name");
    if (!mxIsClass(prhs[2], "function_handle")) fail("INVALID_ARGUMENT", "fn must be a function handle");
    left = (int64_t)get_integer(prhs[3], "offsetLeft", 0, 1e15);
    right = (int64_t)get_integer(prhs[4], "offsetRight", 0, 1e15);
    flags = (uint32_t)get_integer(prhs[5], "flags", 0, 4294967295.0);
    if (strlen(name) >= sizeof data->name) fail("INVALID_ARGUMENT", "name is longer than %lu characters", (unsigned long)sizeof data->name - 1);
    data = (callback_data *)malloc(sizeof *data);
    if (!data) fail("INVALID_ARGUMENT", "out of memory");
    strcpy(data->name, name);
    data->fn = mxDuplicateArray(prhs[2]);
    mexMakeArrayPersistent(data->fn);
    live_registrations++;
    status = cebra_register_callback(name, left, right, matlab_forward, data, matlab_free, flags);
    if (status != CEBRA_STATUS_OK) {
        /* Not registered: the library does not call free_user_data, so the data is ours to free. */
        mxDestroyArray(data->fn);
        free(data);
        live_registrations--;
        update_lock();
        fail_status(status);
    }
    update_lock();
}

/* ---- models ---------------------------------------------------------------------------------- */

static void cmd_model_init(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraModel *model = NULL;
    char *name, *options;
    int64_t neurons, units, output;
    (void)nlhs;
    need_args(nrhs, 6, "model_init(name, num_neurons, num_units, num_output, options)");
    name = get_string(prhs[1], "name");
    neurons = (int64_t)get_integer(prhs[2], "numNeurons", -1e15, 1e15);
    units = (int64_t)get_integer(prhs[3], "numUnits", -1e15, 1e15);
    output = (int64_t)get_integer(prhs[4], "numOutput", -1e15, 1e15);
    options = get_string(prhs[5], "options");
    check(cebra_model_init(name, neurons, units, output, options, &model));
    plhs[0] = new_handle(KIND_MODEL, model);
}

static void cmd_model_load_file(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraModel *model = NULL;
    (void)nlhs;
    need_args(nrhs, 2, "model_load_file(path)");
    check(cebra_model_load_file(get_string(prhs[1], "path"), &model));
    plhs[0] = new_handle(KIND_MODEL, model);
}

/* Frees any handle; an id that is not live is an error (double free is caught here). */
static void cmd_free(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    handle_slot *slot;
    (void)nlhs; (void)plhs;
    need_args(nrhs, 2, "free(id)");
    slot = find_slot(prhs[1]);
    if (!slot) fail("INVALID_ARGUMENT", "not a live cebra handle: the id is stale, forged or already freed");
    if (slot->fitting) fail("UNSUPPORTED", "the cebra.Solver is being fitted: it cannot be freed from its progress function");
    release_slot(slot);
    update_lock();
}

/* Whether an id names a live handle (of any kind): for `isvalid`-like checks. */
static void cmd_is_live(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs;
    need_args(nrhs, 2, "is_live(id)");
    plhs[0] = mxCreateLogicalScalar(find_slot(prhs[1]) != NULL);
}

static void cmd_model_get_offset(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    int64_t left = 0, right = 0;
    need_args(nrhs, 2, "model_get_offset(id)");
    check(cebra_model_get_offset(get_model(prhs[1]), &left, &right));
    plhs[0] = make_int(left);
    if (nlhs > 1) plhs[1] = make_int(right);
}

static void cmd_model_num_input(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    int64_t v = 0;
    (void)nlhs;
    need_args(nrhs, 2, "model_num_input(id)");
    check(cebra_model_num_input(get_model(prhs[1]), &v));
    plhs[0] = make_int(v);
}

static void cmd_model_num_output(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    int64_t v = 0;
    (void)nlhs;
    need_args(nrhs, 2, "model_num_output(id)");
    check(cebra_model_num_output(get_model(prhs[1]), &v));
    plhs[0] = make_int(v);
}

static void cmd_model_resample_factor(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    int64_t v = 0;
    (void)nlhs;
    need_args(nrhs, 2, "model_resample_factor(id)");
    check(cebra_model_resample_factor(get_model(prhs[1]), &v));
    plhs[0] = make_int(v);
}

static void cmd_model_num_parameters(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    int64_t total = 0, trainable = 0;
    need_args(nrhs, 2, "model_num_parameters(id)");
    check(cebra_model_num_parameters(get_model(prhs[1]), &total, &trainable));
    plhs[0] = make_int(total);
    if (nlhs > 1) plhs[1] = make_int(trainable);
}

static void cmd_model_output_time(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    int64_t out_time = 0;
    (void)nlhs;
    need_args(nrhs, 3, "model_output_time(id, time)");
    check(cebra_model_output_time(get_model(prhs[1]), (int64_t)get_integer(prhs[2], "time", -1e15, 1e15), &out_time));
    plhs[0] = make_int(out_time);
}

/* X is time x num_input x batch; the output outTime x num_output x batch (see the file comment). */
static void cmd_model_forward(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraModel *model;
    const mwSize *dims;
    mwSize out_dims[3];
    int64_t time, channels, batch, num_output = 0, out_time = 0, written = 0;
    const float *x;
    float *y;
    size_t n_out;
    (void)nlhs;
    need_args(nrhs, 3, "model_forward(id, X)");
    model = get_model(prhs[1]);
    x = as_float(prhs[2], "X");
    if (mxGetNumberOfDimensions(prhs[2]) > 3) fail("INVALID_ARGUMENT", "X must be time x neurons x batch (at most 3-D)");
    dims = mxGetDimensions(prhs[2]);
    time = (int64_t)dims[0];
    channels = (int64_t)dims[1];
    batch = mxGetNumberOfDimensions(prhs[2]) == 3 ? (int64_t)dims[2] : 1;
    check(cebra_model_num_output(model, &num_output));
    check(cebra_model_output_time(model, time, &out_time));
    n_out = (size_t)(batch * num_output * out_time);
    y = (float *)mxMalloc((n_out ? n_out : 1) * sizeof *y);
    check(cebra_model_forward(model, x, batch, channels, time, y, n_out, &written));
    out_dims[0] = (mwSize)written;
    out_dims[1] = (mwSize)num_output;
    out_dims[2] = (mwSize)batch;
    plhs[0] = make_array(mxGetClassID(prhs[2]), 3, out_dims, y);
}

static void cmd_model_load(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    handle_slot *slot;
    (void)nlhs; (void)plhs;
    need_args(nrhs, 3, "model_load(id, path)");
    slot = get_slot(prhs[1], KIND_MODEL);
    check(cebra_model_load((CebraModel *)slot->ptr, get_string(prhs[2], "path")));
}

static void cmd_model_save(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)plhs;
    need_args(nrhs, 3, "model_save(id, path)");
    check(cebra_model_save(get_model(prhs[1]), get_string(prhs[2], "path")));
}

static void cmd_model_set_training(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)plhs;
    need_args(nrhs, 3, "model_set_training(id, training)");
    check(cebra_model_set_training(get_model(prhs[1]), (uint8_t)get_flag(prhs[2], "training")));
}

static void cmd_model_set_output_num(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    handle_slot *slot;
    int64_t label_num;
    (void)nlhs; (void)plhs;
    need_args(nrhs, 4, "model_set_output_num(id, label_num, override)");
    slot = get_slot(prhs[1], KIND_MODEL);
    label_num = (int64_t)get_integer(prhs[2], "labelNum", -1e15, 1e15);
    check(cebra_model_set_output_num((CebraModel *)slot->ptr, label_num, (uint8_t)get_flag(prhs[3], "override")));
}

/* [features, prediction] with one row per sample: batch x num_output and batch x label_num. */
static void cmd_model_forward_classifier(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    handle_slot *slot;
    const mwSize *dims;
    int64_t time, channels, batch, num_output = 0, label_num;
    const float *x;
    float *features, *prediction;
    mxClassID cls;
    need_args(nrhs, 3, "model_forward_classifier(id, X)");
    slot = get_slot(prhs[1], KIND_MODEL);
    x = as_float(prhs[2], "X");
    cls = mxGetClassID(prhs[2]);
    if (mxGetNumberOfDimensions(prhs[2]) > 3) fail("INVALID_ARGUMENT", "X must be time x neurons x batch (at most 3-D)");
    dims = mxGetDimensions(prhs[2]);
    time = (int64_t)dims[0];
    channels = (int64_t)dims[1];
    batch = mxGetNumberOfDimensions(prhs[2]) == 3 ? (int64_t)dims[2] : 1;
    check(cebra_model_num_output((CebraModel *)slot->ptr, &num_output));
    check(cebra_model_label_num((CebraModel *)slot->ptr, &label_num));
    if (label_num < 1) fail("SHAPE_MISMATCH", "the classifier head is not initialised: call setOutputNum first");
    features = (float *)mxMalloc((size_t)(batch * num_output) * sizeof *features);
    prediction = (float *)mxMalloc((size_t)(batch * label_num) * sizeof *prediction);
    check(cebra_model_forward_classifier((CebraModel *)slot->ptr, x, batch, channels, time, features,
                                         (size_t)(batch * num_output), prediction, (size_t)(batch * label_num)));
    plhs[0] = make_rows(cls, (size_t)batch, (size_t)num_output, features);
    if (nlhs > 1) plhs[1] = make_rows(cls, (size_t)batch, (size_t)label_num, prediction);
}

/* ---- criterions ------------------------------------------------------------------------------ */

static void cmd_criterion_init(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraCriterion *criterion = NULL;
    char *name, *options;
    (void)nlhs;
    need_args(nrhs, 3, "criterion_init(name, options)");
    name = get_string(prhs[1], "name");
    options = get_string(prhs[2], "options");
    check(cebra_criterion_init(name, options, &criterion));
    plhs[0] = new_handle(KIND_CRITERION, criterion);
}

static void cmd_criterion_get_temperature(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    double t = 0;
    (void)nlhs;
    need_args(nrhs, 2, "criterion_get_temperature(id)");
    check(cebra_criterion_get_temperature(get_criterion(prhs[1]), &t));
    plhs[0] = mxCreateDoubleScalar(t);
}

/* ref and pos n x d, neg m x d, as row-major copies; sizes checked against each other. */
typedef struct {
    float *ref, *pos, *neg;
    size_t n, m, d;
    mxClassID cls;
} triplet;

static void get_triplet(const mxArray *const *args, triplet *t) {
    size_t n2, d2, d3;
    t->ref = rows_as_float(args[0], "ref", &t->n, &t->d);
    t->pos = rows_as_float(args[1], "pos", &n2, &d2);
    t->neg = rows_as_float(args[2], "neg", &t->m, &d3);
    if (n2 != t->n || d2 != t->d)
        fail("SHAPE_MISMATCH", "pos is %lux%lu but ref is %lux%lu (both n x d, one row per sample)", (unsigned long)n2,
             (unsigned long)d2, (unsigned long)t->n, (unsigned long)t->d);
    if (d3 != t->d)
        fail("SHAPE_MISMATCH", "neg has %lu columns but ref has %lu (neg is m x d)", (unsigned long)d3, (unsigned long)t->d);
    t->cls = mxGetClassID(args[0]);
}

/* [loss, align, uniform]: scalars for the InfoNCE family, n x 1 per-sample values for nce. */
static void cmd_criterion_forward(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraCriterion *criterion;
    triplet t;
    float *loss, *align, *uniform;
    size_t count = 1;
    CebraStatus status;
    need_args(nrhs, 5, "criterion_forward(id, ref, pos, neg)");
    criterion = get_criterion(prhs[1]);
    get_triplet(prhs + 2, &t);
    loss = (float *)mxMalloc(t.n * sizeof *loss);
    align = (float *)mxMalloc(t.n * sizeof *align);
    uniform = (float *)mxMalloc(t.n * sizeof *uniform);
    /* The ABI does not say how many values a criterion writes: one (InfoNCE family) or n (per-sample,
       nce). A capacity of 1 is too small exactly for per-sample criterions (and writes nothing). */
    status = cebra_criterion_forward(criterion, t.ref, t.pos, (int64_t)t.n, t.neg, (int64_t)t.m, (int64_t)t.d, loss,
                                     align, uniform, 1);
    if (status == CEBRA_STATUS_BUFFER_TOO_SMALL) {
        count = t.n;
        status = cebra_criterion_forward(criterion, t.ref, t.pos, (int64_t)t.n, t.neg, (int64_t)t.m, (int64_t)t.d,
                                         loss, align, uniform, count);
    }
    check(status);
    plhs[0] = make_rows(t.cls, count, 1, loss);
    if (nlhs > 1) plhs[1] = make_rows(t.cls, count, 1, align);
    if (nlhs > 2) plhs[2] = make_rows(t.cls, count, 1, uniform);
}

/* [loss, gradRef, gradPos, gradNeg, gradLogInverseTemperature]; only the requested gradients are
   computed. The temperature gradient is [] for criterions without a learnable temperature. */
static void cmd_criterion_backward(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraCriterion *criterion;
    triplet t;
    float loss = 0, *grad_ref = NULL, *grad_pos = NULL, *grad_neg = NULL;
    size_t nd, md;
    /* Written only for learnable criterions: a NaN with a payload no computation produces marks "not
       written" (compared bit by bit). */
    static const uint64_t unset_bits = 0x7ff4c0ffee15da7aULL;
    double grad_temp;
    need_args(nrhs, 5, "criterion_backward(id, ref, pos, neg)");
    criterion = get_criterion(prhs[1]);
    get_triplet(prhs + 2, &t);
    nd = t.n * t.d;
    md = t.m * t.d;
    if (nlhs > 1) grad_ref = (float *)mxMalloc(nd * sizeof *grad_ref);
    if (nlhs > 2) grad_pos = (float *)mxMalloc(nd * sizeof *grad_pos);
    if (nlhs > 3) grad_neg = (float *)mxMalloc(md * sizeof *grad_neg);
    memcpy(&grad_temp, &unset_bits, sizeof grad_temp);
    check(cebra_criterion_backward(criterion, t.ref, t.pos, (int64_t)t.n, t.neg, (int64_t)t.m, (int64_t)t.d, &loss,
                                   grad_ref, grad_ref ? nd : 0, grad_pos, grad_pos ? nd : 0, grad_neg,
                                   grad_neg ? md : 0, nlhs > 4 ? &grad_temp : NULL));
    plhs[0] = make_rows(t.cls, 1, 1, &loss);
    if (nlhs > 1) plhs[1] = make_rows(t.cls, t.n, t.d, grad_ref);
    if (nlhs > 2) plhs[2] = make_rows(t.cls, t.n, t.d, grad_pos);
    if (nlhs > 3) plhs[3] = make_rows(t.cls, t.m, t.d, grad_neg);
    if (nlhs > 4)
        plhs[4] = memcmp(&grad_temp, &unset_bits, sizeof grad_temp) == 0 ? mxCreateDoubleMatrix(0, 0, mxREAL)
                                                                         : mxCreateDoubleScalar(grad_temp);
}

typedef CebraStatus (*similarity_fn)(const float *, const float *, int64_t, const float *, int64_t, int64_t, float *,
                                     size_t, float *, size_t);

/* [posDist, negDist]: n x 1 and n x m. */
static void similarity(similarity_fn fn, int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[], const char *usage) {
    triplet t;
    float *pos_dist, *neg_dist;
    need_args(nrhs, 4, usage);
    get_triplet(prhs + 1, &t);
    pos_dist = (float *)mxMalloc(t.n * sizeof *pos_dist);
    neg_dist = (float *)mxMalloc(t.n * t.m * sizeof *neg_dist);
    check(fn(t.ref, t.pos, (int64_t)t.n, t.neg, (int64_t)t.m, (int64_t)t.d, pos_dist, t.n, neg_dist, t.n * t.m));
    plhs[0] = make_rows(t.cls, t.n, 1, pos_dist);
    if (nlhs > 1) plhs[1] = make_rows(t.cls, t.n, t.m, neg_dist);
}

static void cmd_dot_similarity(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    similarity(cebra_dot_similarity, nlhs, plhs, nrhs, prhs, "dot_similarity(ref, pos, neg)");
}

static void cmd_euclidean_similarity(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    similarity(cebra_euclidean_similarity, nlhs, plhs, nrhs, prhs, "euclidean_similarity(ref, pos, neg)");
}

/* [loss, align, uniform] of posDist (n values) and negDist (n x m). */
static void cmd_infonce(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const float *pos_dist;
    float *neg_dist, loss = 0, align = 0, uniform = 0;
    size_t n, n2, m;
    mxClassID cls;
    need_args(nrhs, 3, "infonce(posDist, negDist)");
    pos_dist = vector_as_float(prhs[1], "posDist", &n);
    neg_dist = rows_as_float(prhs[2], "negDist", &n2, &m);
    if (n2 != n) fail("SHAPE_MISMATCH", "negDist has %lu rows but posDist has %lu values", (unsigned long)n2, (unsigned long)n);
    cls = mxGetClassID(prhs[1]);
    check(cebra_infonce(pos_dist, neg_dist, (int64_t)n, (int64_t)m, &loss, &align, &uniform));
    plhs[0] = make_rows(cls, 1, 1, &loss);
    if (nlhs > 1) plhs[1] = make_rows(cls, 1, 1, &align);
    if (nlhs > 2) plhs[2] = make_rows(cls, 1, 1, &uniform);
}

/* ---- whole recordings and streaming ---------------------------------------------------------- */

/* Y = transform(X): X time x neurons (MATLAB's column-major layout, passed as it is), Y time x output. */
static void cmd_model_transform(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraModel *model;
    const float *x;
    float *y;
    int64_t time, neurons, left = 0, right = 0, num_output = 0, out_time = 0, written = 0, batch_size;
    uint8_t pad;
    mwSize dims[2];
    (void)nlhs;
    need_args(nrhs, 5, "model_transform(id, X, pad, batch_size)");
    model = get_model(prhs[1]);
    x = as_float(prhs[2], "X");
    if (mxGetNumberOfDimensions(prhs[2]) != 2) fail("INVALID_ARGUMENT", "X must be a time x neurons matrix");
    time = (int64_t)mxGetM(prhs[2]);
    neurons = (int64_t)mxGetN(prhs[2]);
    pad = (uint8_t)get_flag(prhs[3], "Pad");
    batch_size = (int64_t)get_integer(prhs[4], "BatchSize", 0, 1e15);
    check(cebra_model_num_output(model, &num_output));
    check(cebra_model_get_offset(model, &left, &right));
    /* At most one row per (padded) input step: padding adds left steps before and right - 1 after.
       The library writes `written` rows, compactly, and reports them. */
    out_time = pad ? time + left + right - 1 : time;
    if (out_time < 1) out_time = 1;
    y = (float *)mxMalloc((size_t)(out_time * num_output) * sizeof *y);
    check(cebra_model_transform(model, x, time, neurons, CEBRA_LAYOUT_COL_MAJOR, batch_size, pad, y,
                                (size_t)(out_time * num_output), &written));
    /* Column-major output of `written` rows: its first written * num_output values. */
    dims[0] = (mwSize)written;
    dims[1] = (mwSize)num_output;
    plhs[0] = make_array(mxGetClassID(prhs[2]), 2, dims, y);
}

static void cmd_stream_new(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraModel *model;
    CebraStream *stream = NULL;
    int64_t num_output = 0;
    mxArray *id;
    (void)nlhs;
    need_args(nrhs, 2, "stream_new(model_id)");
    model = get_model(prhs[1]);
    check(cebra_model_num_output(model, &num_output));
    check(cebra_stream_new(model, &stream));
    id = new_handle(KIND_STREAM, stream);
    find_slot(id)->num_output = num_output;
    plhs[0] = id;
}

/* [Y, ready] = push(X): pushes the rows of X (samples x neurons) in order; Y holds the embeddings of
   the pushes that gave one (one row each), ready says which pushes did. */
static void cmd_stream_push(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    handle_slot *slot;
    size_t rows, cols, i, j, count = 0;
    const float *x;
    float *sample, *embeddings;
    mxLogical *ready_out = NULL;
    mxClassID cls;
    need_args(nrhs, 3, "stream_push(id, X)");
    slot = get_slot(prhs[1], KIND_STREAM);
    /* No rows (e.g. X(1:0, :) in a loop): nothing to push. */
    if ((mxIsSingle(prhs[2]) || mxIsDouble(prhs[2])) && !mxIsComplex(prhs[2]) && !mxIsSparse(prhs[2]) &&
        mxGetNumberOfDimensions(prhs[2]) == 2 && mxGetM(prhs[2]) == 0) {
        plhs[0] = mxCreateNumericMatrix(0, (size_t)slot->num_output, mxGetClassID(prhs[2]), mxREAL);
        if (nlhs > 1) plhs[1] = mxCreateLogicalMatrix(0, 1);
        return;
    }
    x = as_float(prhs[2], "X");
    cls = mxGetClassID(prhs[2]);
    if (mxGetNumberOfDimensions(prhs[2]) != 2) fail("INVALID_ARGUMENT", "X must be a samples x neurons matrix");
    rows = mxGetM(prhs[2]);
    cols = mxGetN(prhs[2]);
    sample = (float *)mxMalloc(cols * sizeof *sample);
    embeddings = (float *)mxMalloc(rows * (size_t)slot->num_output * sizeof *embeddings);
    if (nlhs > 1) {
        plhs[1] = mxCreateLogicalMatrix(rows, 1);
        ready_out = mxGetLogicals(plhs[1]);
    }
    for (i = 0; i < rows; i++) {
        uint8_t ready = 0;
        for (j = 0; j < cols; j++) sample[j] = x[j * rows + i];
        check(cebra_stream_push((CebraStream *)slot->ptr, sample, (int64_t)cols, embeddings + count * (size_t)slot->num_output,
                                (size_t)slot->num_output, &ready));
        if (ready) count++;
        if (ready_out) ready_out[i] = ready != 0;
    }
    plhs[0] = make_rows(cls, count, (size_t)slot->num_output, embeddings);
}

static void cmd_stream_lookahead(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    int64_t steps = 0;
    (void)nlhs;
    need_args(nrhs, 2, "stream_lookahead(id)");
    check(cebra_stream_lookahead((const CebraStream *)get_slot(prhs[1], KIND_STREAM)->ptr, &steps));
    plhs[0] = make_int(steps);
}

static void cmd_stream_reset(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    (void)nlhs; (void)plhs;
    need_args(nrhs, 2, "stream_reset(id)");
    check(cebra_stream_reset((CebraStream *)get_slot(prhs[1], KIND_STREAM)->ptr));
}

/* ---- training -------------------------------------------------------------------------------- */

static CebraSolver *get_solver(const mxArray *a) { return (CebraSolver *)get_slot(a, KIND_SOLVER)->ptr; }

static void cmd_model_label_num(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    int64_t label_num = 0;
    (void)nlhs;
    need_args(nrhs, 2, "model_label_num(id)");
    check(cebra_model_label_num(get_model(prhs[1]), &label_num));
    plhs[0] = make_int(label_num);
}

static void cmd_solver_new(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraSolver *solver = NULL;
    (void)nlhs;
    need_args(nrhs, 2, "solver_new(options)");
    check(cebra_solver_new(get_string(prhs[1], "options"), &solver));
    plhs[0] = new_handle(KIND_SOLVER, solver);
}

static void cmd_solver_load(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraSolver *solver = NULL;
    (void)nlhs;
    need_args(nrhs, 2, "solver_load(path)");
    check(cebra_solver_load(get_string(prhs[1], "path"), &solver));
    plhs[0] = new_handle(KIND_SOLVER, solver);
}

/* What the progress callback of one fit needs. */
typedef struct {
    const mxArray *fn; /* the MATLAB function handle ([] when none) */
    int failed;        /* the function raised: its message is in callback_message */
} progress_data;

/* CebraProgressFn for a MATLAB function: cebra.internal.invokeProgress(fn, record) runs it and catches
   its errors (so nothing unwinds through the library) and says whether it asked to stop. A failure
   stops the fit; cmd_solver_fit then raises cebra:CALLBACK_FAILED with the message. */
static int32_t matlab_progress(void *user_data, int64_t step, int64_t total, double loss, double align, double uniform,
                               double temperature) {
    progress_data *data = (progress_data *)user_data;
    static const char *fields[] = {"step", "totalSteps", "loss", "align", "uniform", "temperature"};
    mxArray *args[2], *outs[2] = {NULL, NULL}, *trapped;
    int32_t stop = 0;
    if (!matlab_thread_known || !same_thread(current_thread(), matlab_thread)) {
        data->failed = 1;
        callback_fail(1, "the progress function was called from a thread other than MATLAB's");
        return 1;
    }
    args[0] = (mxArray *)data->fn;
    args[1] = mxCreateStructMatrix(1, 1, 6, fields);
    mxSetField(args[1], 0, "step", mxCreateDoubleScalar((double)step));
    mxSetField(args[1], 0, "totalSteps", mxCreateDoubleScalar((double)total));
    mxSetField(args[1], 0, "loss", mxCreateDoubleScalar(loss));
    mxSetField(args[1], 0, "align", mxCreateDoubleScalar(align));
    mxSetField(args[1], 0, "uniform", mxCreateDoubleScalar(uniform));
    mxSetField(args[1], 0, "temperature", mxCreateDoubleScalar(temperature));
    trapped = mexCallMATLABWithTrap(2, outs, 2, args, "cebra.internal.invokeProgress");
    mxDestroyArray(args[1]);
    if (trapped) {
        mxDestroyArray(trapped);
        data->failed = 1;
        callback_fail(1, "calling cebra.internal.invokeProgress failed");
        return 1;
    }
    if (outs[1] && mxIsChar(outs[1]) && mxGetNumberOfElements(outs[1]) > 0) {
        char *message = mxArrayToString(outs[1]);
        data->failed = 1;
        callback_fail(1, "the progress function raised: %s", message ? message : "?");
        mxFree(message);
        stop = 1;
    } else if (outs[0] && mxIsLogicalScalarTrue(outs[0])) {
        stop = 1;
    }
    if (outs[0]) mxDestroyArray(outs[0]);
    if (outs[1]) mxDestroyArray(outs[1]);
    return stop;
}

/* solver_fit(id, X, continuous, discrete, progress): X time x neurons; continuous [] or time x d (same
   column-major layout); discrete [] or time integer labels; progress [] or a function handle. */
static void cmd_solver_fit(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    handle_slot *slot;
    size_t index;
    CebraSolver *solver;
    const float *x, *continuous = NULL;
    int64_t *discrete = NULL, time, neurons, num_continuous = 0;
    progress_data progress = {NULL, 0};
    CebraStatus status;
    (void)nlhs; (void)plhs;
    need_args(nrhs, 6, "solver_fit(id, X, continuous, discrete, progress)");
    slot = get_slot(prhs[1], KIND_SOLVER);
    if (slot->fitting) fail("UNSUPPORTED", "this cebra.Solver is being fitted: its progress function cannot fit it again");
    x = as_float(prhs[2], "X");
    if (mxGetNumberOfDimensions(prhs[2]) != 2) fail("INVALID_ARGUMENT", "X must be a time x neurons matrix");
    time = (int64_t)mxGetM(prhs[2]);
    neurons = (int64_t)mxGetN(prhs[2]);
    if (!mxIsEmpty(prhs[3])) {
        continuous = as_float(prhs[3], "continuous labels");
        if (mxGetNumberOfDimensions(prhs[3]) != 2 || (int64_t)mxGetM(prhs[3]) != time)
            fail("SHAPE_MISMATCH", "continuous labels must be a time x d matrix with one row per time step of X (%lld), got %lu rows",
                 (long long)time, (unsigned long)mxGetM(prhs[3]));
        num_continuous = (int64_t)mxGetN(prhs[3]);
    }
    if (!mxIsEmpty(prhs[4])) {
        size_t i, n;
        const mxArray *a = prhs[4];
        if (!(mxIsNumeric(a) || mxIsLogical(a)) || mxIsComplex(a) || mxIsSparse(a) || mxGetNumberOfDimensions(a) != 2 ||
            (mxGetM(a) != 1 && mxGetN(a) != 1))
            fail("INVALID_ARGUMENT", "discrete labels must be a real vector of integers");
        n = mxGetNumberOfElements(a);
        if ((int64_t)n != time)
            fail("SHAPE_MISMATCH", "discrete labels: %lu values for %lld time steps", (unsigned long)n, (long long)time);
        discrete = (int64_t *)mxMalloc(n * sizeof *discrete);
        for (i = 0; i < n; i++) {
            double v;
            if (mxIsDouble(a)) v = ((const double *)mxGetData(a))[i];
            else if (mxIsSingle(a)) v = ((const float *)mxGetData(a))[i];
            else {
                /* Integer classes and logical: their value through a one-element copy. */
                mxArray *e = mxCreateNumericMatrix(1, 1, mxGetClassID(a), mxREAL);
                memcpy(mxGetData(e), (const char *)mxGetData(a) + i * mxGetElementSize(a), mxGetElementSize(a));
                v = mxGetScalar(e);
                mxDestroyArray(e);
            }
            if (!(v >= -9.2e18 && v <= 9.2e18) || v != (double)(int64_t)v)
                fail("INVALID_ARGUMENT", "discrete labels must be integers; element %lu is %g", (unsigned long)i + 1, v);
            discrete[i] = (int64_t)v;
        }
    }
    if (!mxIsEmpty(prhs[5])) {
        if (!mxIsClass(prhs[5], "function_handle")) fail("INVALID_ARGUMENT", "Progress must be a function handle");
        progress.fn = prhs[5];
    }
    /* The progress function may call the gateway, which may grow (move) the slot table: keep the
       index, not the pointer, and mark the solver so that it is not freed or refitted meanwhile. */
    solver = (CebraSolver *)slot->ptr;
    index = (size_t)(slot - slots);
    slot->fitting = 1;
    status = cebra_solver_fit(solver, x, time, neurons, CEBRA_LAYOUT_COL_MAJOR, continuous, num_continuous, discrete,
                              progress.fn ? matlab_progress : NULL, &progress);
    slots[index].fitting = 0;
    check(status);
    if (progress.failed) fail("CALLBACK_FAILED", "%s (the fit stopped there; the solver keeps what it learned)", callback_message);
}

/* The output dimension of a solver, from its options ("output_dimension=N"). */
static int64_t solver_output_dimension(CebraSolver *solver) {
    size_t needed = 0;
    char *text;
    const char *key = "output_dimension=", *at;
    check(cebra_solver_options(solver, NULL, 0, &needed));
    text = (char *)mxMalloc(needed);
    check(cebra_solver_options(solver, text, needed, &needed));
    at = strncmp(text, key, strlen(key)) == 0 ? text : strstr(text, ";output_dimension=");
    if (!at) fail("PANIC", "the solver options have no output_dimension: %s", text);
    if (*at == ';') at++;
    return (int64_t)strtoll(at + strlen(key), NULL, 10);
}

static void cmd_solver_transform(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraSolver *solver;
    const float *x;
    float *y;
    int64_t time, neurons, outputs, rows = 0;
    mwSize dims[2];
    (void)nlhs;
    need_args(nrhs, 3, "solver_transform(id, X)");
    solver = get_solver(prhs[1]);
    x = as_float(prhs[2], "X");
    if (mxGetNumberOfDimensions(prhs[2]) != 2) fail("INVALID_ARGUMENT", "X must be a time x neurons matrix");
    time = (int64_t)mxGetM(prhs[2]);
    neurons = (int64_t)mxGetN(prhs[2]);
    outputs = solver_output_dimension(solver);
    y = (float *)mxMalloc((size_t)(time * outputs) * sizeof *y);
    check(cebra_solver_transform(solver, x, time, neurons, CEBRA_LAYOUT_COL_MAJOR, y, (size_t)(time * outputs), &rows));
    dims[0] = (mwSize)rows;
    dims[1] = (mwSize)outputs;
    plhs[0] = make_array(mxGetClassID(prhs[2]), 2, dims, y);
}

/* One per-step record as a column of doubles. */
static mxArray *history_column(CebraSolver *solver, CebraHistoryField field) {
    size_t count = 0;
    mxArray *out;
    if (field == CEBRA_HISTORY_LOSS) check(cebra_solver_loss_history(solver, NULL, 0, &count));
    else check(cebra_solver_history(solver, field, NULL, 0, &count));
    out = mxCreateDoubleMatrix(count, 1, mxREAL);
    if (count == 0) return out;
    if (field == CEBRA_HISTORY_LOSS) check(cebra_solver_loss_history(solver, mxGetPr(out), count, &count));
    else check(cebra_solver_history(solver, field, mxGetPr(out), count, &count));
    return out;
}

/* struct with fields loss, align, uniform, temperature: one row per step. */
static void cmd_solver_history(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    static const char *fields[] = {"loss", "align", "uniform", "temperature"};
    static const CebraHistoryField ids[] = {CEBRA_HISTORY_LOSS, CEBRA_HISTORY_ALIGN, CEBRA_HISTORY_UNIFORM,
                                            CEBRA_HISTORY_TEMPERATURE};
    CebraSolver *solver;
    mxArray *columns[4];
    int i;
    (void)nlhs;
    need_args(nrhs, 2, "solver_history(id)");
    solver = get_solver(prhs[1]);
    /* Every column first (each may fail), then the struct: nothing is half-built on an error. */
    for (i = 0; i < 4; i++) columns[i] = history_column(solver, ids[i]);
    plhs[0] = mxCreateStructMatrix(1, 1, 4, fields);
    for (i = 0; i < 4; i++) mxSetField(plhs[0], 0, fields[i], columns[i]);
}

static void cmd_solver_is_fitted(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    uint8_t fitted = 0;
    (void)nlhs;
    need_args(nrhs, 2, "solver_is_fitted(id)");
    check(cebra_solver_is_fitted(get_solver(prhs[1]), &fitted));
    plhs[0] = mxCreateLogicalScalar(fitted != 0);
}

static void cmd_solver_options(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraSolver *solver;
    size_t needed = 0;
    char *text;
    (void)nlhs;
    need_args(nrhs, 2, "solver_options(id)");
    solver = get_solver(prhs[1]);
    check(cebra_solver_options(solver, NULL, 0, &needed));
    text = (char *)mxMalloc(needed);
    check(cebra_solver_options(solver, text, needed, &needed));
    plhs[0] = mxCreateString(text);
}

static void cmd_solver_model(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraModel *model = NULL;
    (void)nlhs;
    need_args(nrhs, 2, "solver_model(id)");
    check(cebra_solver_model(get_solver(prhs[1]), &model));
    plhs[0] = new_handle(KIND_MODEL, model);
}

static void cmd_solver_save(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    CebraSolver *solver;
    (void)nlhs; (void)plhs;
    need_args(nrhs, 3, "solver_save(id, path)");
    solver = get_solver(prhs[1]);
    check(cebra_solver_save(solver, get_string(prhs[2], "path")));
}

/* ---- dispatch -------------------------------------------------------------------------------- */

/* Commands by name; most are the C function's name without cebra_. `max_out` bounds nargout. */
static const struct {
    const char *name;
    command_fn fn;
    int max_out;
} commands[] = {
    {"version", cmd_version, 1},
    {"abi_version", cmd_abi_version, 2},
    {"status_name", cmd_status_name, 1},
    {"debug_panic", cmd_debug_panic, 0},
    {"manual_seed", cmd_manual_seed, 0},
    {"set_num_threads", cmd_set_num_threads, 0},
    {"cuda_is_available", cmd_cuda_is_available, 1},
    {"stats", cmd_stats, 3},
    {"get_options", cmd_get_options, 1},
    {"criterion_get_options", cmd_criterion_get_options, 1},
    {"register_callback", cmd_register_callback, 0},
    {"unregister", cmd_unregister, 0},
    {"free", cmd_free, 0},
    {"is_live", cmd_is_live, 1},
    {"model_init", cmd_model_init, 1},
    {"model_load_file", cmd_model_load_file, 1},
    {"model_get_offset", cmd_model_get_offset, 2},
    {"model_num_input", cmd_model_num_input, 1},
    {"model_num_output", cmd_model_num_output, 1},
    {"model_resample_factor", cmd_model_resample_factor, 1},
    {"model_num_parameters", cmd_model_num_parameters, 2},
    {"model_output_time", cmd_model_output_time, 1},
    {"model_forward", cmd_model_forward, 1},
    {"model_load", cmd_model_load, 0},
    {"model_save", cmd_model_save, 0},
    {"model_set_training", cmd_model_set_training, 0},
    {"model_set_output_num", cmd_model_set_output_num, 0},
    {"model_forward_classifier", cmd_model_forward_classifier, 2},
    {"criterion_init", cmd_criterion_init, 1},
    {"criterion_get_temperature", cmd_criterion_get_temperature, 1},
    {"criterion_forward", cmd_criterion_forward, 3},
    {"criterion_backward", cmd_criterion_backward, 5},
    {"dot_similarity", cmd_dot_similarity, 2},
    {"euclidean_similarity", cmd_euclidean_similarity, 2},
    {"infonce", cmd_infonce, 3},
    {"model_transform", cmd_model_transform, 1},
    {"stream_new", cmd_stream_new, 1},
    {"stream_push", cmd_stream_push, 2},
    {"stream_lookahead", cmd_stream_lookahead, 1},
    {"stream_reset", cmd_stream_reset, 0},
    {"model_label_num", cmd_model_label_num, 1},
    {"solver_new", cmd_solver_new, 1},
    {"solver_load", cmd_solver_load, 1},
    {"solver_fit", cmd_solver_fit, 0},
    {"solver_transform", cmd_solver_transform, 1},
    {"solver_history", cmd_solver_history, 1},
    {"solver_is_fitted", cmd_solver_is_fitted, 1},
    {"solver_options", cmd_solver_options, 1},
    {"solver_model", cmd_solver_model, 1},
    {"solver_save", cmd_solver_save, 0},
};

void mexFunction(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    static int initialised;
    char command[64];
    size_t i;
    if (!initialised) {
        mexAtExit(at_exit);
        initialised = 1;
    }
    /* The gateway always runs on MATLAB's thread: callbacks check that they do too. */
    matlab_thread = current_thread();
    matlab_thread_known = 1;
    callback_message[0] = '\0';
    if (nrhs < 1 || !mxIsChar(prhs[0]) || mxGetString(prhs[0], command, sizeof command) != 0)
        fail("INVALID_ARGUMENT", "cebra_mex: the first argument must be a command name; use the +cebra package");
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(command, commands[i].name) == 0) {
            if (nlhs > (commands[i].max_out > 0 ? commands[i].max_out : 1))
                fail("INVALID_ARGUMENT", "cebra_mex %s: too many outputs (%d)", command, nlhs);
            commands[i].fn(nlhs, plhs, nrhs, prhs);
            return;
        }
    }
    fail("INVALID_ARGUMENT", "cebra_mex: unknown command '%s'", command);
}
