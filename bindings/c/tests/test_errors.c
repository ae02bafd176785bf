/* test_errors.c: a table of bad inputs. Each row is one call, the status it must return and a
 * substring the cebra_last_error() message must contain (naming the problem). After every row the
 * test checks that
 *   - a failing call wrote nothing (output buffer, out_time and out-handles untouched),
 *   - a succeeding call left cebra_last_error() empty,
 *   - the shared handles are still usable: a good forward of the model gives the reference output,
 *     the criterion gives the reference loss, and the callback model still runs.
 * Bad weight files are made at test time from a good fixture, in a temporary directory. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebra.h"
#include "fixture.h"
#include "testutil.h"

/* ---- shared state ---------------------------------------------------------------------------- */

#define YCAP 256
#define SENTINEL 424242.0f

typedef struct {
    int free_calls, fail_code;
} cb_state;

static struct {
    /* offset10-model with the fixture weights, its fixture input (3, 7, 16) and output (3, 3, 7). */
    CebraModel *model;
    fx_file *io;
    const float *x, *want;
    size_t want_n;
    /* offset1-model (input (3, 7, 1)), supervised10-model without and with a head (input (3, 7, 10)). */
    CebraModel *o1, *cls, *cls_head;
    fx_file *cls_io;
    const float *cls_x;
    /* A callback model. */
    CebraModel *cb;
    cb_state cb_state, dup_state, fail_state;
    /* fixed-cosine-infonce, learnable-cosine-infonce and nce criterions and a criterion fixture case. */
    CebraCriterion *crit, *learnable, *nce;
    fx_file *crit_io;
    const float *ref, *pos, *neg, *crit_loss;
    int64_t n, m, d;
    /* Outputs of the row under test (sentinel-filled before each row). */
    float y[YCAP], y2[YCAP], y3[YCAP];
    int64_t t, left, right;
    double temperature, temperature_grad;
    size_t needed;
    char buf[64];
    CebraModel *out_model;
    CebraCriterion *out_crit;
    /* A stream over `model`, a resampling model, and the out-handle and flag of stream rows. */
    CebraStream *stream, *out_stream;
    CebraModel *resample;
    uint8_t ready;
    /* Paths of the bad files. */
    char missing[512], truncated[512], corrupt_json[512], huge_header[512], empty[512], wrong_shape[512],
        missing_tensor[512], extra_tensor[512], wrong_dtype[512], f64_dtype[512], no_meta[512], bad_arch[512],
        no_dir[512], tied_missing[512], not_safetensors[512];
    CebraModel *tied;
    /* Solvers: fitted on x as (48, 7) (2 steps), unfitted, a scratch one for fits that succeed; the
     * fitted one's padded embedding of x; a saved solver; out-parameters of the solver rows. */
    CebraSolver *solver, *unfitted, *scratch, *out_solver;
    float solver_want[48 * 3], latent[48];
    int64_t classes_neg[48];
    char solver_file[512];
    double h[8];
    uint8_t flag;
    int progress_calls;
    /* NaN/Inf inputs. */
    float x_nan[3 * 7 * 16], x_inf[3 * 7 * 16], ref_nan[32 * 8], pd_nan[32], nd[32 * 32];
} g;

static int32_t cb_forward(void *user_data, const float *input, int64_t batch, int64_t num_input, int64_t time,
                          float *output, int64_t num_output, int64_t out_time) {
    cb_state *s = user_data;
    int64_t i;
    (void)input;
    (void)num_input;
    (void)time;
    if (s->fail_code) return s->fail_code;
    for (i = 0; i < batch * num_output * out_time; i++) output[i] = (float)i;
    return 0;
}

static void cb_free(void *user_data) {
    ((cb_state *)user_data)->free_calls++;
}

/* ---- bad files ------------------------------------------------------------------------------- */

/* How to rewrite one tensor of a good file. */
typedef enum { KEEP, DROP, RESHAPE, AS_I32, AS_F64 } edit_kind;

/* Writes a copy of `src` (tensors only, plus `metadata` when not NULL) to `path`, applying `edit` to
 * tensor `target` and appending an extra tensor `extra` (F32, shape [2]) when not NULL. */
static void write_edited(const fx_file *src, const char *path, const char *target, edit_kind edit, const char *extra,
                         const char *metadata) {
    size_t cap = 1 << 16, hlen = 0, dlen = 0, i, len;
    char *header = malloc(cap);
    unsigned char *data = malloc(src->size * 2 + 64), *file;
    int first = 1;
    hlen += (size_t)sprintf(header + hlen, "{");
    if (metadata) {
        hlen += (size_t)sprintf(header + hlen, "\"__metadata__\":%s", metadata);
        first = 0;
    }
    for (i = 0; i < src->count; i++) {
        const fx_tensor *t = &src->tensors[i];
        edit_kind e = strcmp(t->name, target) == 0 ? edit : KEEP;
        const char *dtype = t->dtype;
        size_t bytes = t->end - t->begin, k;
        if (e == DROP) continue;
        hlen += (size_t)sprintf(header + hlen, "%s\"%s\":{", first ? "" : ",", t->name);
        first = 0;
        if (e == AS_I32) dtype = "I32";
        if (e == AS_F64) dtype = "F64";
        if (e == RESHAPE) {
            /* Same number of elements, one more axis: the data stays valid, the shape does not. */
            hlen += (size_t)sprintf(header + hlen, "\"dtype\":\"%s\",\"shape\":[1", dtype);
        } else {
            hlen += (size_t)sprintf(header + hlen, "\"dtype\":\"%s\",\"shape\":[", dtype);
        }
        for (k = 0; k < (size_t)t->ndim; k++)
            hlen += (size_t)sprintf(header + hlen, "%s%lld", (k || e == RESHAPE) ? "," : "", (long long)t->shape[k]);
        if (e == AS_F64) {
            for (k = 0; k < t->numel; k++) {
                double v = t->data[k];
                memcpy(data + dlen + 8 * k, &v, 8);
            }
            bytes = 8 * t->numel;
        } else {
            memcpy(data + dlen, src->bytes + 8 + src->header_len + t->begin, bytes);
        }
        hlen += (size_t)sprintf(header + hlen, "],\"data_offsets\":[%lu,%lu]}", (unsigned long)dlen,
                                (unsigned long)(dlen + bytes));
        dlen += bytes;
    }
    if (extra) {
        float two[2] = {1.0f, 2.0f};
        memcpy(data + dlen, two, sizeof two);
        hlen += (size_t)sprintf(header + hlen, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%lu,%lu]}",
                                extra, (unsigned long)dlen, (unsigned long)(dlen + sizeof two));
        dlen += sizeof two;
    }
    hlen += (size_t)sprintf(header + hlen, "}");
    file = fx_build(header, data, dlen, &len);
    if (fx_write_all(path, file, len) != 0) fprintf(stderr, "cannot write %s\n", path);
    free(file);
    free(header);
    free(data);
}

static void make_bad_files(void) {
    size_t len = 0;
    unsigned char *good = fx_read_all(tu_fixture("models/offset10-model.safetensors"), &len);
    fx_file *src = fx_open(tu_fixture("models/offset10-model.safetensors"));
    fx_file *tied = fx_open(tu_fixture("models/offset1-model-mse-v2-3layers-tanh.safetensors"));
    unsigned char ff[16];
#define P(field, name) snprintf(g.field, sizeof g.field, "%s", tu_tmpfile(name))
    P(missing, "does-not-exist.safetensors");
    P(truncated, "truncated.safetensors");
    P(corrupt_json, "corrupt-json.safetensors");
    P(huge_header, "huge-header.safetensors");
    P(empty, "empty.safetensors");
    P(wrong_shape, "wrong-shape.safetensors");
    P(missing_tensor, "missing-tensor.safetensors");
    P(extra_tensor, "extra-tensor.safetensors");
    P(wrong_dtype, "wrong-dtype.safetensors");
    P(f64_dtype, "f64.safetensors");
    P(no_meta, "no-meta.safetensors");
    P(bad_arch, "bad-arch.safetensors");
    P(tied_missing, "tied-missing.safetensors");
    P(not_safetensors, "text.safetensors");
    snprintf(g.no_dir, sizeof g.no_dir, "%s/no/such/dir/out.safetensors", tu_tmpdir());
#undef P
    if (!good || !src || !tied) {
        fprintf(stderr, "cannot read the offset10-model fixtures\n");
        exit(2);
    }
    fx_write_all(g.truncated, good, len / 2);
    /* The header's JSON with its first bytes overwritten: same length, not JSON. */
    memcpy(ff, good, 8);
    {
        unsigned char *bad = malloc(len);
        memcpy(bad, good, len);
        memcpy(bad + 8, "{[}}not json", 12);
        fx_write_all(g.corrupt_json, bad, len);
        /* A header length larger than the file. */
        memcpy(bad, good, len);
        memset(bad, 0xFF, 7);
        bad[7] = 0x00;
        fx_write_all(g.huge_header, bad, len);
        free(bad);
    }
    fx_write_all(g.empty, "", 0);
    fx_write_all(g.not_safetensors, "hello, this is not a safetensors file\n", 38);
    write_edited(src, g.wrong_shape, "net.0.weight", RESHAPE, NULL, NULL);
    write_edited(src, g.missing_tensor, "net.5.bias", DROP, NULL, NULL);
    write_edited(src, g.extra_tensor, "", KEEP, "net.99.weight", NULL);
    write_edited(src, g.wrong_dtype, "net.0.bias", AS_I32, NULL, NULL);
    write_edited(src, g.f64_dtype, "net.0.bias", AS_F64, NULL, NULL);
    write_edited(src, g.no_meta, "", KEEP, NULL, "{\"format\":\"pt\"}");
    write_edited(src, g.bad_arch, "", KEEP, NULL,
                 "{\"cebra.architecture\":\"no-such-architecture\",\"cebra.num_neurons\":\"7\","
                 "\"cebra.num_units\":\"12\",\"cebra.num_output\":\"3\",\"cebra.options\":\"\"}");
    /* net.5.weight is an alias of net.3.weight in this model: every key must be present. */
    write_edited(tied, g.tied_missing, "net.5.weight", DROP, NULL, NULL);
    free(good);
    fx_close(src);
    fx_close(tied);
}

/* ---- row helpers (calls that need more than one statement) ------------------------------------ */

static CebraStatus set_output_num_twice(void) {
    return cebra_model_set_output_num(g.cls_head, 5, 0);
}

static CebraStatus set_output_num_override(void) {
    return cebra_model_set_output_num(g.cls_head, 5, 1);
}

static CebraStatus register_duplicate(void) {
    g.dup_state.free_calls = 0;
    return cebra_register_callback("err-cb", 1, 1, cb_forward, &g.dup_state, cb_free, 0);
}

static CebraStatus register_reference_name(void) {
    return cebra_register_callback("offset10-model", 1, 1, cb_forward, &g.dup_state, cb_free, 0);
}

static CebraStatus failing_callback(int32_t code) {
    CebraModel *m = NULL;
    CebraStatus s;
    float x[2 * 3];
    float y[8];
    int64_t t;
    memset(x, 0, sizeof x);
    g.fail_state.fail_code = code;
    if (cebra_model_init("err-fail", 2, 1, 1, NULL, &m) != CEBRA_STATUS_OK) return 999;
    s = cebra_model_forward(m, x, 1, 2, 3, y, 8, &t);
    cebra_model_free(m); /* does not touch the thread's last error */
    return s;
}
static CebraStatus failing_callback_3(void) {
    return failing_callback(3);
}
static CebraStatus failing_callback_min(void) {
    return failing_callback(INT32_MIN);
}

static CebraStatus nan_forward(void) {
    return cebra_model_forward(g.model, g.x_nan, 3, 7, 16, g.y, YCAP, &g.t);
}
static CebraStatus inf_forward(void) {
    return cebra_model_forward(g.model, g.x_inf, 3, 7, 16, g.y, YCAP, &g.t);
}
static CebraStatus nan_criterion(void) {
    return cebra_criterion_forward(g.crit, g.ref_nan, g.pos, g.n, g.neg, g.m, g.d, g.y, g.y2, g.y3, 1);
}
static CebraStatus nan_backward(void) {
    return cebra_criterion_backward(g.crit, g.ref_nan, g.pos, g.n, g.neg, g.m, g.d, g.y, g.y2, YCAP, NULL, 0, NULL, 0,
                                    NULL);
}
static CebraStatus nan_infonce(void) {
    return cebra_infonce(g.pd_nan, g.nd, g.n, g.m, g.y, g.y2, g.y3);
}

/* Post-checks of rows that succeed: return 1 when the result is right. */
static int batches_1_2_match(void) {
    size_t per = g.want_n / 3;
    return tu_max_abs_diff(g.y + per, g.want + per, 2 * per) <= 1e-5 && g.t == 7;
}
static int nan_forward_ok(void) {
    size_t i, per = g.want_n / 3;
    int any = 0;
    for (i = 0; i < per; i++) any |= isnan(g.y[i]);
    return any && batches_1_2_match();
}
static int inf_forward_ok(void) {
    size_t i, per = g.want_n / 3;
    int any = 0;
    for (i = 0; i < per; i++) any |= !isfinite(g.y[i]);
    return any && batches_1_2_match();
}
static int first_is_nan(void) {
    return isnan(g.y[0]);
}
static int size_query_ok(void) {
    return g.needed > 1000; /* 147 names */
}
static int needed_set_ok(void) {
    return g.needed > 1000 && g.buf[0] == 'x';
}
static int same_output_ok(void) {
    CebraStatus s = cebra_model_forward(g.model, g.x, 3, 7, 16, g.y, YCAP, &g.t);
    return s == CEBRA_STATUS_OK && tu_max_abs_diff(g.y, g.want, g.want_n) <= 1e-5;
}
static int untouched(void);
static int needed_untouched(void) {
    return g.needed == 0 && g.buf[0] == 'x' && untouched();
}
static int output_time_is_7(void) {
    return g.t == 7; /* offset10-model: 16 steps - 10 + 1 */
}
static int dup_not_freed(void) {
    return g.dup_state.free_calls == 0 && g.cb_state.free_calls == 0;
}

/* Ten pushes of fixture rows after a reset: the tenth is the first ready one. */
static CebraStatus stream_ten_pushes(void) {
    CebraStatus s = cebra_stream_reset(g.stream);
    int k;
    for (k = 0; k < 10 && s == CEBRA_STATUS_OK; k++) {
        g.ready = 77;
        s = cebra_stream_push(g.stream, g.x + 7 * k, 7, g.y, YCAP, &g.ready);
        if (s == CEBRA_STATUS_OK && k < 9 && (g.ready != 0 || g.y[0] != SENTINEL)) return CEBRA_STATUS_PANIC;
    }
    return s;
}
static int stream_ok(void) {
    /* The first ready push gives row 0 of the unpadded transform. */
    float want[3 * 39];
    int64_t t = 0;
    if (g.ready != 1 || g.y[3] != SENTINEL) return 0;
    if (cebra_model_transform(g.model, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 0, want, 3 * 39, &t)) return 0;
    return t == 39 && tu_max_abs_diff(g.y, want, 3) <= 1e-5;
}
static int transform_ok(void) {
    float want[3 * 39];
    int64_t t = 0;
    if (g.t != 39 || g.y[3 * 39] != SENTINEL) return 0;
    if (cebra_model_transform(g.model, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 0, want, 3 * 39, &t)) return 0;
    return tu_max_abs_diff(g.y, want, 3 * 39) <= 1e-6;
}
static int transform_nan_ok(void) {
    /* x_nan has a NaN at step 0 (channel 3): padded rows 0..5 (left = 5) see it, the others do not. */
    int r, c, nan;
    if (g.t != 48) return 0;
    for (r = 0; r < 48; r++) {
        nan = 0;
        for (c = 0; c < 3; c++) nan |= isnan(g.y[r * 3 + c]);
        if (nan != (r <= 5)) return 0;
    }
    return 1;
}

/* Training rows. */
static int32_t stop_at_first(void *user_data, int64_t step, int64_t total, double loss, double align, double uniform,
                             double temperature) {
    (void)step; (void)total; (void)loss; (void)align; (void)uniform; (void)temperature;
    ((int *)user_data)[0]++;
    return 1;
}
static CebraStatus fit_stop_early(void) {
    return cebra_solver_fit(g.scratch, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.latent, 1, NULL, stop_at_first,
                            &g.progress_calls);
}
static int stopped_after_one(void) {
    size_t count = 0;
    return g.progress_calls == 1 && cebra_solver_loss_history(g.scratch, NULL, 0, &count) == CEBRA_STATUS_OK &&
           count == 1;
}
static int history_count_only(void) {
    return g.needed == 2 && g.h[0] == SENTINEL && g.h[1] == SENTINEL && untouched();
}
static int options_needed_only(void) {
    return g.needed > 100 && g.buf[0] == 'x' && untouched();
}
/* A CUDA device on a libtorch without CUDA (the build here): UNSUPPORTED with a message saying so. With
 * a CUDA libtorch the row asks for a device number that cannot exist, which fails the same way. */
static CebraStatus new_cuda_solver(void) {
    return cebra_solver_new(cebra_cuda_is_available() ? "device=cuda:4096" : "device=cuda", &g.out_solver);
}

/* ---- the table ------------------------------------------------------------------------------- */

#define ST(x) CEBRA_STATUS_##x

/* X(id, expected status, message substring, post-check or NULL, call...) */
#define ROWS                                                                                                     \
    /* NULL handles and buffers */                                                                               \
    X(forward_null_model, ST(NULL_POINTER), "'model'", NULL,                                                     \
      cebra_model_forward(NULL, g.x, 3, 7, 16, g.y, YCAP, &g.t))                                                 \
    X(forward_null_input, ST(NULL_POINTER), "'input'", NULL,                                                     \
      cebra_model_forward(g.model, NULL, 3, 7, 16, g.y, YCAP, &g.t))                                             \
    X(forward_null_output, ST(NULL_POINTER), "'output'", NULL,                                                   \
      cebra_model_forward(g.model, g.x, 3, 7, 16, NULL, YCAP, &g.t))                                             \
    X(forward_null_out_time, ST(NULL_POINTER), "'out_time'", NULL,                                               \
      cebra_model_forward(g.model, g.x, 3, 7, 16, g.y, YCAP, NULL))                                              \
    X(init_null_name, ST(NULL_POINTER), "'name'", NULL, cebra_model_init(NULL, 7, 12, 3, NULL, &g.out_model))    \
    X(init_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_model_init("offset10-model", 7, 12, 3, NULL, NULL))  \
    X(offset_null_model, ST(NULL_POINTER), "'model'", NULL, cebra_model_get_offset(NULL, &g.left, &g.right))     \
    X(offset_null_left, ST(NULL_POINTER), "'left'", NULL, cebra_model_get_offset(g.model, NULL, &g.right))       \
    X(offset_null_right, ST(NULL_POINTER), "'right'", NULL, cebra_model_get_offset(g.model, &g.left, NULL))      \
    X(num_input_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_model_num_input(g.model, NULL))                 \
    X(num_output_null_model, ST(NULL_POINTER), "'model'", NULL, cebra_model_num_output(NULL, &g.t))              \
    X(resample_null_model, ST(NULL_POINTER), "'model'", NULL, cebra_model_resample_factor(NULL, &g.t))           \
    X(num_parameters_null_total, ST(NULL_POINTER), "'total'", NULL,                                              \
      cebra_model_num_parameters(g.model, NULL, &g.t))                                                           \
    X(load_null_path, ST(NULL_POINTER), "'path'", NULL, cebra_model_load(g.model, NULL))                         \
    X(load_null_model, ST(NULL_POINTER), "'model'", NULL, cebra_model_load(NULL, g.missing))                     \
    X(save_null_model, ST(NULL_POINTER), "'model'", NULL, cebra_model_save(NULL, g.no_dir))                      \
    X(load_file_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_model_load_file(g.missing, NULL))               \
    X(load_file_null_path, ST(NULL_POINTER), "'path'", NULL, cebra_model_load_file(NULL, &g.out_model))          \
    X(set_training_null, ST(NULL_POINTER), "'model'", NULL, cebra_model_set_training(NULL, 1))                   \
    X(set_output_num_null, ST(NULL_POINTER), "'model'", NULL, cebra_model_set_output_num(NULL, 5, 0))            \
    X(classifier_null_features, ST(NULL_POINTER), "'features'", NULL,                                            \
      cebra_model_forward_classifier(g.cls_head, g.cls_x, 3, 7, 10, NULL, YCAP, g.y2, YCAP))                     \
    X(criterion_init_null_name, ST(NULL_POINTER), "'name'", NULL, cebra_criterion_init(NULL, NULL, &g.out_crit)) \
    X(criterion_init_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_criterion_init("nce", NULL, NULL))         \
    X(criterion_forward_null_handle, ST(NULL_POINTER), "'criterion'", NULL,                                      \
      cebra_criterion_forward(NULL, g.ref, g.pos, g.n, g.neg, g.m, g.d, g.y, g.y2, g.y3, 1))                     \
    X(criterion_forward_null_ref, ST(NULL_POINTER), "'reference'", NULL,                                               \
      cebra_criterion_forward(g.crit, NULL, g.pos, g.n, g.neg, g.m, g.d, g.y, g.y2, g.y3, 1))                    \
    X(criterion_forward_null_uniform, ST(NULL_POINTER), "'uniform'", NULL,                                       \
      cebra_criterion_forward(g.crit, g.ref, g.pos, g.n, g.neg, g.m, g.d, g.y, g.y2, NULL, 1))                   \
    X(criterion_backward_null_loss, ST(NULL_POINTER), "'loss'", NULL,                                            \
      cebra_criterion_backward(g.crit, g.ref, g.pos, g.n, g.neg, g.m, g.d, NULL, g.y, YCAP, NULL, 0, NULL, 0,   \
                               NULL))                                                                            \
    X(criterion_backward_null_neg, ST(NULL_POINTER), "'neg'", NULL,                                              \
      cebra_criterion_backward(g.crit, g.ref, g.pos, g.n, NULL, g.m, g.d, g.y, NULL, 0, NULL, 0, NULL, 0, NULL)) \
    X(temperature_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_criterion_get_temperature(g.crit, NULL))      \
    X(temperature_null_handle, ST(NULL_POINTER), "'criterion'", NULL,                                            \
      cebra_criterion_get_temperature(NULL, &g.temperature))                                                     \
    X(dot_null_neg, ST(NULL_POINTER), "'neg'", NULL,                                                             \
      cebra_dot_similarity(g.ref, g.pos, g.n, NULL, g.m, g.d, g.y, YCAP, g.y2, YCAP))                            \
    X(euclidean_null_pos_dist, ST(NULL_POINTER), "'pos_dist'", NULL,                                             \
      cebra_euclidean_similarity(g.ref, g.pos, g.n, g.neg, g.m, g.d, NULL, YCAP, g.y2, YCAP))                    \
    X(infonce_null_neg_dist, ST(NULL_POINTER), "'neg_dist'", NULL,                                               \
      cebra_infonce(g.y, NULL, 4, 4, g.y2, g.y3, g.y3 + 1))                                                      \
    X(get_options_null_buf, ST(NULL_POINTER), "'buf'", NULL, cebra_get_options(NULL, 0, 1, NULL, 10, NULL))      \
    X(get_options_null_buf_needed_untouched, ST(NULL_POINTER), "'buf'", needed_untouched,                        \
      cebra_get_options(NULL, 0, 1, NULL, 10, &g.needed))                                                        \
    X(criterion_options_null_buf_needed_untouched, ST(NULL_POINTER), "'buf'", needed_untouched,                  \
      cebra_criterion_get_options(NULL, 0, NULL, 10, &g.needed))                                                 \
    X(get_options_bad_pattern_needed_untouched, ST(INVALID_ARGUMENT), "UTF-8", needed_untouched,                 \
      cebra_get_options("\xff", 0, 1, g.buf, sizeof g.buf, &g.needed))                                          \
    X(output_time_null_model, ST(NULL_POINTER), "'model'", NULL, cebra_model_output_time(NULL, 16, &g.t))        \
    X(output_time_null_out, ST(NULL_POINTER), "'out_time'", NULL, cebra_model_output_time(g.model, 16, NULL))    \
    X(criterion_options_null_buf, ST(NULL_POINTER), "'buf'", NULL,                                               \
      cebra_criterion_get_options(NULL, 0, NULL, 10, NULL))                                                      \
    X(register_null_forward, ST(NULL_POINTER), "'forward'", NULL,                                                \
      cebra_register_callback("err-x", 1, 1, NULL, &g.dup_state, cb_free, 0))                                    \
    X(register_null_name, ST(NULL_POINTER), "'name'", NULL,                                                      \
      cebra_register_callback(NULL, 1, 1, cb_forward, &g.dup_state, cb_free, 0))                                 \
    X(unregister_null, ST(NULL_POINTER), "'name'", NULL, cebra_unregister(NULL))                                 \
    /* zero, negative and overflowing sizes */                                                                   \
    X(forward_batch_zero, ST(INVALID_ARGUMENT), "'batch'", NULL,                                                 \
      cebra_model_forward(g.model, g.x, 0, 7, 16, g.y, YCAP, &g.t))                                              \
    X(forward_batch_negative, ST(INVALID_ARGUMENT), "'batch'", NULL,                                             \
      cebra_model_forward(g.model, g.x, -1, 7, 16, g.y, YCAP, &g.t))                                             \
    X(forward_time_zero, ST(INVALID_ARGUMENT), "'time'", NULL,                                                   \
      cebra_model_forward(g.model, g.x, 3, 7, 0, g.y, YCAP, &g.t))                                               \
    X(output_time_zero, ST(INVALID_ARGUMENT), "'time'", NULL, cebra_model_output_time(g.model, 0, &g.t))         \
    X(output_time_negative, ST(INVALID_ARGUMENT), "'time'", NULL, cebra_model_output_time(g.model, -5, &g.t))    \
    X(forward_num_input_negative, ST(INVALID_ARGUMENT), "'num_input'", NULL,                                     \
      cebra_model_forward(g.model, g.x, 3, -7, 16, g.y, YCAP, &g.t))                                             \
    X(forward_batch_overflow, ST(INVALID_ARGUMENT), "too large", NULL,                                           \
      cebra_model_forward(g.model, g.x, INT64_MAX / 2, 7, 16, g.y, YCAP, &g.t))                                  \
    X(init_num_neurons_zero, ST(INVALID_ARGUMENT), "'num_neurons'", NULL,                                        \
      cebra_model_init("offset10-model", 0, 12, 3, NULL, &g.out_model))                                          \
    X(init_num_units_negative, ST(INVALID_ARGUMENT), "'num_units'", NULL,                                        \
      cebra_model_init("offset10-model", 7, -1, 3, NULL, &g.out_model))                                          \
    X(init_num_output_zero, ST(INVALID_ARGUMENT), "'num_output'", NULL,                                          \
      cebra_model_init("offset10-model", 7, 12, 0, NULL, &g.out_model))                                          \
    X(criterion_n_zero, ST(INVALID_ARGUMENT), "'n'", NULL,                                                       \
      cebra_criterion_forward(g.crit, g.ref, g.pos, 0, g.neg, g.m, g.d, g.y, g.y2, g.y3, 1))                     \
    X(criterion_m_negative, ST(INVALID_ARGUMENT), "'m'", NULL,                                                   \
      cebra_criterion_forward(g.crit, g.ref, g.pos, g.n, g.neg, -1, g.d, g.y, g.y2, g.y3, 1))                    \
    X(criterion_d_zero, ST(INVALID_ARGUMENT), "'d'", NULL,                                                       \
      cebra_criterion_backward(g.crit, g.ref, g.pos, g.n, g.neg, g.m, 0, g.y, NULL, 0, NULL, 0, NULL, 0, NULL))  \
    X(criterion_n_overflow, ST(INVALID_ARGUMENT), "too large", NULL,                                             \
      cebra_criterion_forward(g.crit, g.ref, g.pos, INT64_MAX / 4, g.neg, g.m, g.d, g.y, g.y2, g.y3, 1))         \
    X(similarity_m_zero, ST(INVALID_ARGUMENT), "'m'", NULL,                                                      \
      cebra_dot_similarity(g.ref, g.pos, g.n, g.neg, 0, g.d, g.y, YCAP, g.y2, YCAP))                             \
    X(infonce_n_zero, ST(INVALID_ARGUMENT), "'n'", NULL, cebra_infonce(g.pd_nan, g.nd, 0, 4, g.y, g.y2, g.y3))   \
    X(set_output_num_zero, ST(INVALID_ARGUMENT), "label_num", NULL, cebra_model_set_output_num(g.cls, 0, 0))     \
    X(set_num_threads_zero, ST(INVALID_ARGUMENT), "'n'", NULL, cebra_set_num_threads(0))                         \
    X(set_num_threads_negative, ST(INVALID_ARGUMENT), "'n'", NULL, cebra_set_num_threads(-4))                    \
    X(register_negative_offset, ST(INVALID_ARGUMENT), "-1", NULL,                                                \
      cebra_register_callback("err-x", -1, 1, cb_forward, &g.dup_state, cb_free, 0))                            \
    X(register_zero_right, ST(INVALID_ARGUMENT), "right bound", NULL,                                            \
      cebra_register_callback("err-x", 1, 0, cb_forward, &g.dup_state, cb_free, 0))                              \
    X(init_num_neurons_huge, ST(INVALID_ARGUMENT), "num_neurons = 4611686018427387904 is too large", NULL,       \
      cebra_model_init("offset10-model", INT64_C(1) << 62, 12, 3, NULL, &g.out_model))                          \
    X(init_num_output_huge, ST(INVALID_ARGUMENT), "num_output = 4611686018427387904 is too large", NULL,        \
      cebra_model_init("offset1-model-mse", 7, 12, INT64_C(1) << 62, NULL, &g.out_model))                       \
    X(register_offset_overflow, ST(INVALID_ARGUMENT), "overflow", NULL,                                         \
      cebra_register_callback("err-x", INT64_MAX, 1, cb_forward, &g.dup_state, cb_free, 0))                      \
    X(register_unknown_flags, ST(INVALID_ARGUMENT), "'flags'", NULL,                                             \
      cebra_register_callback("err-x", 1, 1, cb_forward, &g.dup_state, cb_free, 0x80))                           \
    X(register_empty_name, ST(INVALID_ARGUMENT), "empty", NULL,                                                  \
      cebra_register_callback("", 1, 1, cb_forward, &g.dup_state, cb_free, 0))                                   \
    /* too-small buffers (nothing written) and the size query */                                                 \
    X(forward_output_too_small, ST(BUFFER_TOO_SMALL), "63", NULL,                                                \
      cebra_model_forward(g.model, g.x, 3, 7, 16, g.y, 62, &g.t))                                                \
    X(forward_output_len_zero, ST(BUFFER_TOO_SMALL), "'output'", NULL,                                           \
      cebra_model_forward(g.model, g.x, 3, 7, 16, g.y, 0, &g.t))                                                 \
    X(get_options_too_small, ST(BUFFER_TOO_SMALL), "bytes", needed_set_ok,                                       \
      cebra_get_options(NULL, 0, 1, g.buf, sizeof g.buf, &g.needed))                                             \
    X(get_options_size_query, ST(OK), "", size_query_ok, cebra_get_options(NULL, 0, 1, NULL, 0, &g.needed))      \
    X(criterion_options_too_small, ST(BUFFER_TOO_SMALL), "'buf'", NULL,                                          \
      cebra_criterion_get_options(NULL, 0, g.buf, 1, &g.needed))                                                 \
    X(backward_grad_ref_too_small, ST(BUFFER_TOO_SMALL), "'grad_ref' holds 255", NULL,                           \
      cebra_criterion_backward(g.crit, g.ref, g.pos, g.n, g.neg, g.m, g.d, g.y, g.y, YCAP - 1, g.y2, YCAP, g.y3, \
                               YCAP, NULL))                                                                      \
    X(backward_grad_neg_too_small, ST(BUFFER_TOO_SMALL), "'grad_neg' holds 100", NULL,                           \
      cebra_criterion_backward(g.learnable, g.ref, g.pos, g.n, g.neg, g.m, g.d, g.y, g.y, YCAP, g.y2, YCAP,      \
                               g.y3, 100, &g.temperature_grad))                                                  \
    X(backward_grad_pos_len_zero, ST(BUFFER_TOO_SMALL), "'grad_pos'", NULL,                                      \
      cebra_criterion_backward(g.crit, g.ref, g.pos, g.n, g.neg, g.m, g.d, g.y, NULL, 0, g.y2, 0, NULL, 0, NULL)) \
    X(dot_pos_dist_too_small, ST(BUFFER_TOO_SMALL), "'pos_dist' holds 31", NULL,                                 \
      cebra_dot_similarity(g.ref, g.pos, g.n, g.neg, g.m, g.d, g.y, 31, g.y2, YCAP))                             \
    X(euclidean_neg_dist_too_small, ST(BUFFER_TOO_SMALL), "1024 are needed", NULL,                               \
      cebra_euclidean_similarity(g.ref, g.pos, g.n, g.neg, g.m, g.d, g.y, YCAP, g.y2, YCAP))                     \
    X(criterion_out_len_zero, ST(BUFFER_TOO_SMALL), "'out_len'", NULL,                                           \
      cebra_criterion_forward(g.crit, g.ref, g.pos, g.n, g.neg, g.m, g.d, g.y, g.y2, g.y3, 0))                   \
    X(nce_out_len_too_small, ST(BUFFER_TOO_SMALL), "'out_len'", NULL,                                            \
      cebra_criterion_forward(g.nce, g.ref, g.pos, g.n, g.neg, g.m, g.d, g.y, g.y2, g.y3, (size_t)g.n - 1))      \
    X(classifier_prediction_too_small, ST(BUFFER_TOO_SMALL), "'prediction'", NULL,                               \
      cebra_model_forward_classifier(g.cls_head, g.cls_x, 3, 7, 10, g.y, YCAP, g.y2, 14))                        \
    X(classifier_features_too_small, ST(BUFFER_TOO_SMALL), "'features'", NULL,                                   \
      cebra_model_forward_classifier(g.cls_head, g.cls_x, 3, 7, 10, g.y, 8, g.y2, YCAP))                         \
    /* unknown names */                                                                                          \
    X(init_unknown_model, ST(UNKNOWN_NAME), "offset-nope", NULL,                                                 \
      cebra_model_init("offset-nope", 7, 12, 3, NULL, &g.out_model))                                             \
    X(init_wrong_case, ST(UNKNOWN_NAME), "OFFSET10-MODEL", NULL,                                                 \
      cebra_model_init("OFFSET10-MODEL", 7, 12, 3, NULL, &g.out_model))                                          \
    X(init_empty_name, ST(UNKNOWN_NAME), "not found", NULL, cebra_model_init("", 7, 12, 3, NULL, &g.out_model))  \
    X(criterion_unknown, ST(UNKNOWN_NAME), "'cosine'", NULL, cebra_criterion_init("cosine", NULL, &g.out_crit))   \
    X(unregister_unknown, ST(UNKNOWN_NAME), "never-registered", NULL, cebra_unregister("never-registered"))      \
    X(name_not_utf8, ST(INVALID_ARGUMENT), "UTF-8", NULL, cebra_model_init("\xff\xfe", 7, 12, 3, NULL, &g.out_model)) \
    X(pattern_not_utf8, ST(INVALID_ARGUMENT), "UTF-8", NULL, cebra_get_options("\xff", 0, 1, g.buf, 64, NULL))   \
    /* malformed, duplicate and unknown option keys */                                                           \
    X(option_without_value, ST(INVALID_ARGUMENT), "normalize", NULL,                                             \
      cebra_model_init("offset10-model", 7, 12, 3, "normalize", &g.out_model))                                   \
    X(option_bad_bool, ST(INVALID_ARGUMENT), "maybe", NULL,                                                      \
      cebra_model_init("offset10-model", 7, 12, 3, "normalize=maybe", &g.out_model))                             \
    X(option_duplicate, ST(INVALID_ARGUMENT), "'a'", NULL,                                                       \
      cebra_model_init("offset10-model", 7, 12, 3, "a=1;a=2", &g.out_model))                                     \
    X(option_empty_key, ST(INVALID_ARGUMENT), "empty", NULL,                                                     \
      cebra_model_init("offset10-model", 7, 12, 3, "=3", &g.out_model))                                          \
    X(option_bad_key, ST(INVALID_ARGUMENT), "'k e y'", NULL,                                                     \
      cebra_model_init("offset10-model", 7, 12, 3, "k e y=1", &g.out_model))                                     \
    X(option_unknown_model_key, ST(INVALID_ARGUMENT), "'dropout_rate'", NULL,                                    \
      cebra_model_init("offset10-model", 7, 12, 3, "dropout_rate=0.5", &g.out_model))                            \
    X(option_min_temperature_on_fixed, ST(INVALID_ARGUMENT), "min_temperature", NULL,                            \
      cebra_criterion_init("fixed-cosine-infonce", "min_temperature=0.1", &g.out_crit))                          \
    X(option_reduce_on_infonce, ST(INVALID_ARGUMENT), "'reduce'", NULL,                                          \
      cebra_criterion_init("infonce", "reduce=sum", &g.out_crit))                                                \
    X(option_temperature_on_nce_ok, ST(OK), "", NULL, cebra_criterion_init("nce", "temperature=0.5", &g.out_crit)) \
    X(option_negative_temperature, ST(INVALID_ARGUMENT), "temperature", NULL,                                    \
      cebra_criterion_init("fixed-euclidean-infonce", "temperature=-1", &g.out_crit))                            \
    X(option_nan_temperature, ST(INVALID_ARGUMENT), "temperature", NULL,                                         \
      cebra_criterion_init("infonce", "temperature=nan", &g.out_crit))                                           \
    X(option_text_temperature, ST(INVALID_ARGUMENT), "temperature", NULL,                                        \
      cebra_criterion_init("infonce", "temperature=warm", &g.out_crit))                                          \
    X(option_duplicate_temperature, ST(INVALID_ARGUMENT), "temperature", NULL,                                   \
      cebra_criterion_init("learnable-cosine-infonce", "temperature=1;temperature=2", &g.out_crit))              \
    X(option_zero_min_temperature, ST(INVALID_ARGUMENT), "min_temperature", NULL,                                \
      cebra_criterion_init("learnable-euclidean-infonce", "min_temperature=0", &g.out_crit))                     \
    X(option_bad_reduce, ST(INVALID_ARGUMENT), "reduce", NULL,                                                   \
      cebra_criterion_init("nce", "reduce=max", &g.out_crit))                                                    \
    /* mismatched shapes */                                                                                      \
    X(forward_wrong_num_input, ST(SHAPE_MISMATCH), "num_input", NULL,                                            \
      cebra_model_forward(g.model, g.x, 3, 6, 16, g.y, YCAP, &g.t))                                              \
    X(forward_time_below_receptive_field, ST(SHAPE_MISMATCH), "receptive field", NULL,                           \
      cebra_model_forward(g.model, g.x, 3, 7, 9, g.y, YCAP, &g.t))                                               \
    X(output_time_below_receptive_field, ST(SHAPE_MISMATCH), "receptive field", NULL,                            \
      cebra_model_output_time(g.model, 9, &g.t))                                                                 \
    X(output_time_too_long_offset1, ST(SHAPE_MISMATCH), "exactly 1 time step", NULL,                             \
      cebra_model_output_time(g.o1, 2, &g.t))                                                                    \
    X(output_time_ok, ST(OK), "", output_time_is_7, cebra_model_output_time(g.model, 16, &g.t))                  \
    X(forward_time_too_long_offset1, ST(SHAPE_MISMATCH), "offset1-model", NULL,                                  \
      cebra_model_forward(g.o1, g.x, 3, 7, 2, g.y, YCAP, &g.t))                                                  \
    X(classifier_without_head, ST(SHAPE_MISMATCH), "set_output_num", NULL,                                       \
      cebra_model_forward_classifier(g.cls, g.cls_x, 3, 7, 10, g.y, YCAP, g.y2, YCAP))                           \
    X(classifier_time_too_long, ST(SHAPE_MISMATCH), "one output step", NULL,                                   \
      cebra_model_forward_classifier(g.cls_head, g.x, 3, 7, 16, g.y, YCAP, g.y2, YCAP))                          \
    X(classifier_on_plain_model, ST(UNSUPPORTED), "not a classifier", NULL,                                      \
      cebra_model_forward_classifier(g.model, g.x, 3, 7, 16, g.y, YCAP, g.y2, YCAP))                             \
    X(set_output_num_on_plain_model, ST(UNSUPPORTED), "not a classifier", NULL,                                  \
      cebra_model_set_output_num(g.model, 5, 0))                                                                 \
    X(set_output_num_twice, ST(INVALID_ARGUMENT), "already", NULL, set_output_num_twice())                       \
    X(set_output_num_override_ok, ST(OK), "", NULL, set_output_num_override())                                   \
    X(callback_model_too_short, ST(SHAPE_MISMATCH), "receptive field", NULL,                                     \
      cebra_model_forward(g.cb, g.x, 1, 7, 1, g.y, YCAP, &g.t))                                                  \
    X(callback_model_wrong_num_input, ST(SHAPE_MISMATCH), "num_input", NULL,                                     \
      cebra_model_forward(g.cb, g.x, 1, 5, 4, g.y, YCAP, &g.t))                                                  \
    X(callback_model_set_output_num, ST(UNSUPPORTED), "not a classifier", NULL,                                  \
      cebra_model_set_output_num(g.cb, 2, 0))                                                                    \
    /* non-finite data: OK, propagated */                                                                        \
    X(forward_nan_input, ST(OK), "", nan_forward_ok, nan_forward())                                              \
    X(forward_inf_input, ST(OK), "", inf_forward_ok, inf_forward())                                              \
    X(criterion_nan_input, ST(OK), "", first_is_nan, nan_criterion())                                            \
    X(backward_nan_input, ST(OK), "", first_is_nan, nan_backward())                                              \
    X(infonce_nan_input, ST(OK), "", first_is_nan, nan_infonce())                                                \
    /* weight files */                                                                                           \
    X(load_missing_file, ST(IO), "does-not-exist", NULL, cebra_model_load(g.model, g.missing))                   \
    X(load_file_missing_file, ST(IO), "cannot read", NULL, cebra_model_load_file(g.missing, &g.out_model))       \
    X(load_directory, ST(IO), "cannot read", NULL, cebra_model_load(g.model, tu_tmpdir()))                       \
    X(save_into_missing_dir, ST(IO), "cannot write", NULL, cebra_model_save(g.model, g.no_dir))                  \
    X(load_truncated, ST(FORMAT), "not a valid safetensors", NULL, cebra_model_load(g.model, g.truncated))                     \
    X(load_corrupt_header, ST(FORMAT), "invalid JSON", NULL, cebra_model_load(g.model, g.corrupt_json))          \
    X(load_huge_header_length, ST(FORMAT), "not a valid safetensors", NULL,                                      \
      cebra_model_load(g.model, g.huge_header))                                                                  \
    X(load_empty_file, ST(FORMAT), "not a valid safetensors", NULL, cebra_model_load(g.model, g.empty))          \
    X(load_text_file, ST(FORMAT), "not a valid safetensors", NULL, cebra_model_load(g.model, g.not_safetensors)) \
    X(load_wrong_shape, ST(FORMAT), "net.0.weight", NULL, cebra_model_load(g.model, g.wrong_shape))              \
    X(load_missing_tensor, ST(FORMAT), "net.5.bias", NULL, cebra_model_load(g.model, g.missing_tensor))          \
    X(load_extra_tensor, ST(FORMAT), "net.99.weight", NULL, cebra_model_load(g.model, g.extra_tensor))           \
    X(load_wrong_dtype, ST(FORMAT), "net.0.bias", NULL, cebra_model_load(g.model, g.wrong_dtype))                \
    X(load_f64_is_converted, ST(OK), "", same_output_ok, cebra_model_load(g.model, g.f64_dtype))                 \
    X(load_other_models_weights, ST(FORMAT), "net.", NULL,                                                       \
      cebra_model_load(g.model, tu_fixture("models/offset5-model.safetensors")))                                 \
    X(load_tied_alias_missing, ST(FORMAT), "net.5.weight", NULL, cebra_model_load(g.tied, g.tied_missing))       \
    X(load_weights_into_callback_model, ST(FORMAT), "unexpected tensor", NULL,                                   \
      cebra_model_load(g.cb, tu_fixture("models/offset10-model.safetensors")))                                   \
    X(load_file_without_metadata, ST(FORMAT), "metadata", NULL, cebra_model_load_file(g.no_meta, &g.out_model))  \
    X(load_file_reference_fixture, ST(FORMAT), "cebra.architecture", NULL,                                       \
      cebra_model_load_file(tu_fixture("models/offset10-model.safetensors"), &g.out_model))                      \
    X(load_file_unknown_architecture, ST(FORMAT), "no-such-architecture", NULL,                                  \
      cebra_model_load_file(g.bad_arch, &g.out_model))                                                           \
    X(load_file_truncated, ST(FORMAT), "not a valid safetensors", NULL, cebra_model_load_file(g.truncated, &g.out_model))      \
    /* registration and callbacks */                                                                             \
    X(register_duplicate_callback, ST(ALREADY_REGISTERED), "err-cb", dup_not_freed, register_duplicate())        \
    X(register_reference_name, ST(ALREADY_REGISTERED), "offset10-model", dup_not_freed,                          \
      register_reference_name())                                                                                 \
    X(callback_fails, ST(CALLBACK_FAILED), "returned 3", NULL, failing_callback_3())                             \
    X(callback_fails_int_min, ST(CALLBACK_FAILED), "-2147483648", NULL, failing_callback_min())                  \
    /* whole recordings: the (3, 7, 16) fixture input read as a (48, 7) recording */                      \
    X(transform_null_model, ST(NULL_POINTER), "'model'", NULL,                                                   \
      cebra_model_transform(NULL, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 1, g.y, YCAP, &g.t))                    \
    X(transform_null_data, ST(NULL_POINTER), "'data'", NULL,                                                     \
      cebra_model_transform(g.model, NULL, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 1, g.y, YCAP, &g.t))                \
    X(transform_null_out, ST(NULL_POINTER), "'out'", NULL,                                                       \
      cebra_model_transform(g.model, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 1, NULL, YCAP, &g.t))                \
    X(transform_null_out_timesteps, ST(NULL_POINTER), "'out_timesteps'", NULL,                                   \
      cebra_model_transform(g.model, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 1, g.y, YCAP, NULL))                 \
    X(transform_zero_timesteps, ST(INVALID_ARGUMENT), "'num_timesteps'", NULL,                                   \
      cebra_model_transform(g.model, g.x, 0, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 1, g.y, YCAP, &g.t))                  \
    X(transform_zero_neurons, ST(INVALID_ARGUMENT), "'num_neurons'", NULL,                                       \
      cebra_model_transform(g.model, g.x, 48, 0, CEBRA_LAYOUT_ROW_MAJOR, 0, 1, g.y, YCAP, &g.t))                 \
    X(transform_bad_layout, ST(INVALID_ARGUMENT), "'layout'", NULL,                                              \
      cebra_model_transform(g.model, g.x, 48, 7, 2, 0, 1, g.y, YCAP, &g.t))                                      \
    X(transform_negative_batch, ST(INVALID_ARGUMENT), "'batch_size'", NULL,                                      \
      cebra_model_transform(g.model, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, -1, 1, g.y, YCAP, &g.t))                \
    X(transform_wrong_neurons, ST(SHAPE_MISMATCH), "neurons", NULL,                                              \
      cebra_model_transform(g.model, g.x, 42, 8, CEBRA_LAYOUT_COL_MAJOR, 0, 1, g.y, YCAP, &g.t))                 \
    X(transform_too_short, ST(SHAPE_MISMATCH), "receptive field", NULL,                                          \
      cebra_model_transform(g.model, g.x, 9, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 1, g.y, YCAP, &g.t))                  \
    X(transform_small_out, ST(BUFFER_TOO_SMALL), "'out'", NULL,                                                  \
      cebra_model_transform(g.model, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 5, 1, g.y, 48 * 3 - 1, &g.t))           \
    X(transform_not_convolutional, ST(UNSUPPORTED), "not convolutional", NULL,                                   \
      cebra_model_transform(g.cls, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 1, g.y, YCAP, &g.t))                   \
    X(transform_ok, ST(OK), "", transform_ok,                                                                    \
      cebra_model_transform(g.model, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 7, 0, g.y, YCAP, &g.t))                 \
    X(transform_nan, ST(OK), "", transform_nan_ok,                                                               \
      cebra_model_transform(g.model, g.x_nan, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, 0, 1, g.y, YCAP, &g.t))             \
    /* streaming */                                                                                              \
    X(stream_new_null_model, ST(NULL_POINTER), "'model'", NULL, cebra_stream_new(NULL, &g.out_stream))           \
    X(stream_new_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_stream_new(g.model, NULL))                     \
    X(stream_new_resampling, ST(UNSUPPORTED), "resamples", NULL, cebra_stream_new(g.resample, &g.out_stream))    \
    X(stream_push_null_stream, ST(NULL_POINTER), "'stream'", NULL,                                               \
      cebra_stream_push(NULL, g.x, 7, g.y, YCAP, &g.ready))                                                      \
    X(stream_push_null_sample, ST(NULL_POINTER), "'sample'", NULL,                                               \
      cebra_stream_push(g.stream, NULL, 7, g.y, YCAP, &g.ready))                                                 \
    X(stream_push_null_embedding, ST(NULL_POINTER), "'embedding'", NULL,                                         \
      cebra_stream_push(g.stream, g.x, 7, NULL, YCAP, &g.ready))                                                 \
    X(stream_push_null_ready, ST(NULL_POINTER), "'ready'", NULL,                                                 \
      cebra_stream_push(g.stream, g.x, 7, g.y, YCAP, NULL))                                                      \
    X(stream_push_wrong_neurons, ST(SHAPE_MISMATCH), "neurons", NULL,                                            \
      cebra_stream_push(g.stream, g.x, 6, g.y, YCAP, &g.ready))                                                  \
    X(stream_push_small_embedding, ST(BUFFER_TOO_SMALL), "'embedding'", NULL,                                    \
      cebra_stream_push(g.stream, g.x, 7, g.y, 2, &g.ready))                                                     \
    X(stream_lookahead_null_stream, ST(NULL_POINTER), "'stream'", NULL, cebra_stream_lookahead(NULL, &g.t))      \
    X(stream_lookahead_null_steps, ST(NULL_POINTER), "'steps'", NULL, cebra_stream_lookahead(g.stream, NULL))    \
    X(stream_reset_null, ST(NULL_POINTER), "'stream'", NULL, cebra_stream_reset(NULL))                           \
    X(stream_ok, ST(OK), "", stream_ok, stream_ten_pushes())                                                     \
    /* training */                                                                                               \
    X(solver_new_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_solver_new(NULL, NULL))                         \
    X(solver_new_unknown_key, ST(INVALID_ARGUMENT), "learning_rte", NULL,                                        \
      cebra_solver_new("learning_rte=0.1", &g.out_solver))                                                       \
    X(solver_new_bad_batch, ST(INVALID_ARGUMENT), "batch_size", NULL,                                            \
      cebra_solver_new("batch_size=-3", &g.out_solver))                                                          \
    X(solver_new_bad_rate, ST(INVALID_ARGUMENT), "learning_rate", NULL,                                          \
      cebra_solver_new("learning_rate=0", &g.out_solver))                                                        \
    X(solver_new_bad_mode, ST(INVALID_ARGUMENT), "temperature_mode", NULL,                                       \
      cebra_solver_new("temperature_mode=hot", &g.out_solver))                                                   \
    X(solver_new_bad_conditional, ST(INVALID_ARGUMENT), "conditional", NULL,                                     \
      cebra_solver_new("conditional=sideways", &g.out_solver))                                                   \
    X(solver_new_bad_seed, ST(INVALID_ARGUMENT), "seed", NULL, cebra_solver_new("seed=-1", &g.out_solver))       \
    X(solver_new_bad_syntax, ST(INVALID_ARGUMENT), "seed", NULL, cebra_solver_new("seed", &g.out_solver))        \
    X(solver_new_unknown_model, ST(UNKNOWN_NAME), "offset11-model", NULL,                                        \
      cebra_solver_new("model_architecture=offset11-model", &g.out_solver))                                      \
    X(solver_new_bad_device, ST(INVALID_ARGUMENT), "device", NULL, cebra_solver_new("device=tpu", &g.out_solver)) \
    X(solver_new_cuda, ST(UNSUPPORTED), "CUDA", NULL, new_cuda_solver())                                         \
    X(solver_fit_null_solver, ST(NULL_POINTER), "'solver'", NULL,                                                \
      cebra_solver_fit(NULL, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, NULL, 0, NULL, NULL, NULL))                     \
    X(solver_fit_null_data, ST(NULL_POINTER), "'data'", NULL,                                                    \
      cebra_solver_fit(g.unfitted, NULL, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, NULL, 0, NULL, NULL, NULL))              \
    X(solver_fit_zero_timesteps, ST(INVALID_ARGUMENT), "'num_timesteps'", NULL,                                  \
      cebra_solver_fit(g.unfitted, g.x, 0, 7, CEBRA_LAYOUT_ROW_MAJOR, NULL, 0, NULL, NULL, NULL))                \
    X(solver_fit_negative_neurons, ST(INVALID_ARGUMENT), "'num_neurons'", NULL,                                  \
      cebra_solver_fit(g.unfitted, g.x, 48, -7, CEBRA_LAYOUT_ROW_MAJOR, NULL, 0, NULL, NULL, NULL))              \
    X(solver_fit_bad_layout, ST(INVALID_ARGUMENT), "'layout'", NULL,                                             \
      cebra_solver_fit(g.unfitted, g.x, 48, 7, 9, NULL, 0, NULL, NULL, NULL))                                    \
    X(solver_fit_null_continuous, ST(NULL_POINTER), "'continuous'", NULL,                                        \
      cebra_solver_fit(g.unfitted, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, NULL, 2, NULL, NULL, NULL))               \
    X(solver_fit_continuous_no_count, ST(INVALID_ARGUMENT), "'num_continuous'", NULL,                            \
      cebra_solver_fit(g.unfitted, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.latent, 0, NULL, NULL, NULL))           \
    X(solver_fit_negative_continuous, ST(INVALID_ARGUMENT), "'num_continuous'", NULL,                            \
      cebra_solver_fit(g.unfitted, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.latent, -1, NULL, NULL, NULL))          \
    X(solver_fit_negative_class, ST(INVALID_ARGUMENT), "non-negative", NULL,                                     \
      cebra_solver_fit(g.unfitted, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, NULL, 0, g.classes_neg, NULL, NULL))      \
    X(solver_fit_too_short, ST(SHAPE_MISMATCH), "receptive field", NULL,                                         \
      cebra_solver_fit(g.unfitted, g.x, 9, 7, CEBRA_LAYOUT_ROW_MAJOR, NULL, 0, NULL, NULL, NULL))                \
    X(solver_fit_nan_data, ST(INVALID_ARGUMENT), "finite", NULL,                                                 \
      cebra_solver_fit(g.unfitted, g.x_nan, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, NULL, 0, NULL, NULL, NULL))           \
    X(solver_fit_nan_labels, ST(INVALID_ARGUMENT), "finite", NULL,                                               \
      cebra_solver_fit(g.unfitted, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.x_nan, 1, NULL, NULL, NULL))            \
    X(solver_fit_stop_early, ST(OK), "", stopped_after_one, fit_stop_early())                                    \
    X(solver_transform_unfitted, ST(INVALID_ARGUMENT), "not fitted", NULL,                                       \
      cebra_solver_transform(g.unfitted, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.y, YCAP, &g.t))                   \
    X(solver_transform_null_solver, ST(NULL_POINTER), "'solver'", NULL,                                          \
      cebra_solver_transform(NULL, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.y, YCAP, &g.t))                         \
    X(solver_transform_null_out, ST(NULL_POINTER), "'out'", NULL,                                                \
      cebra_solver_transform(g.solver, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, NULL, YCAP, &g.t))                    \
    X(solver_transform_null_out_timesteps, ST(NULL_POINTER), "'out_timesteps'", NULL,                            \
      cebra_solver_transform(g.solver, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.y, YCAP, NULL))                     \
    X(solver_transform_small_out, ST(BUFFER_TOO_SMALL), "'out'", NULL,                                           \
      cebra_solver_transform(g.solver, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.y, 48 * 3 - 1, &g.t))               \
    X(solver_transform_wrong_neurons, ST(SHAPE_MISMATCH), "neurons", NULL,                                       \
      cebra_solver_transform(g.solver, g.x, 42, 8, CEBRA_LAYOUT_ROW_MAJOR, g.y, YCAP, &g.t))                     \
    X(solver_transform_bad_layout, ST(INVALID_ARGUMENT), "'layout'", NULL,                                       \
      cebra_solver_transform(g.solver, g.x, 48, 7, 2, g.y, YCAP, &g.t))                                          \
    X(solver_history_unfitted, ST(INVALID_ARGUMENT), "not fitted", NULL,                                         \
      cebra_solver_history(g.unfitted, CEBRA_HISTORY_LOSS, g.h, 8, &g.needed))                                   \
    X(solver_history_bad_field, ST(INVALID_ARGUMENT), "'field'", NULL,                                           \
      cebra_solver_history(g.solver, 4, g.h, 8, &g.needed))                                                      \
    X(solver_history_null_count, ST(NULL_POINTER), "'count'", NULL,                                              \
      cebra_solver_history(g.solver, CEBRA_HISTORY_ALIGN, g.h, 8, NULL))                                         \
    X(solver_history_null_out, ST(NULL_POINTER), "'out'", NULL,                                                  \
      cebra_solver_history(g.solver, CEBRA_HISTORY_UNIFORM, NULL, 8, &g.needed))                                 \
    X(solver_history_too_small, ST(BUFFER_TOO_SMALL), "'out'", history_count_only,                               \
      cebra_solver_history(g.solver, CEBRA_HISTORY_TEMPERATURE, g.h, 1, &g.needed))                              \
    X(solver_loss_history_null_solver, ST(NULL_POINTER), "'solver'", NULL,                                       \
      cebra_solver_loss_history(NULL, g.h, 8, &g.needed))                                                        \
    X(solver_is_fitted_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_solver_is_fitted(g.solver, NULL))        \
    X(solver_is_fitted_null_solver, ST(NULL_POINTER), "'solver'", NULL, cebra_solver_is_fitted(NULL, &g.flag))   \
    X(solver_options_null_buf, ST(NULL_POINTER), "'buf'", NULL,                                                  \
      cebra_solver_options(g.solver, NULL, 10, &g.needed))                                                       \
    X(solver_options_too_small, ST(BUFFER_TOO_SMALL), "bytes", options_needed_only,                              \
      cebra_solver_options(g.solver, g.buf, sizeof g.buf, &g.needed))                                            \
    X(solver_model_unfitted, ST(INVALID_ARGUMENT), "not fitted", NULL, cebra_solver_model(g.unfitted, &g.out_model)) \
    X(solver_model_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_solver_model(g.solver, NULL))                 \
    X(solver_save_unfitted, ST(INVALID_ARGUMENT), "not fitted", NULL, cebra_solver_save(g.unfitted, g.no_dir))   \
    X(solver_save_no_dir, ST(IO), "cannot write", NULL, cebra_solver_save(g.solver, g.no_dir))                    \
    X(solver_save_null_path, ST(NULL_POINTER), "'path'", NULL, cebra_solver_save(g.solver, NULL))                \
    X(solver_load_missing, ST(IO), "cannot read", NULL, cebra_solver_load(g.missing, &g.out_solver))                 \
    X(solver_load_model_file, ST(FORMAT), "not a saved solver", NULL,                                            \
      cebra_solver_load(tu_fixture("models/offset10-model.safetensors"), &g.out_solver))                        \
    X(solver_load_not_safetensors, ST(FORMAT), "not a valid safetensors", NULL, cebra_solver_load(g.not_safetensors, &g.out_solver))    \
    X(solver_load_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_solver_load(g.solver_file, NULL))             \
    X(solver_load_null_path, ST(NULL_POINTER), "'path'", NULL, cebra_solver_load(NULL, &g.out_solver))           \
    X(label_num_not_classifier, ST(UNSUPPORTED), "not a classifier", NULL, cebra_model_label_num(g.model, &g.t)) \
    X(label_num_null_out, ST(NULL_POINTER), "'out'", NULL, cebra_model_label_num(g.cls_head, NULL))              \
    X(label_num_null_model, ST(NULL_POINTER), "'model'", NULL, cebra_model_label_num(NULL, &g.t))                \
    /* internal bugs */                                                                                          \
    X(debug_panic, ST(PANIC), "internal error", NULL, cebra_debug_panic())

#define X(id, status, substring, post, ...)                                                                      \
    static CebraStatus row_##id(void) {                                                                          \
        return __VA_ARGS__;                                                                                      \
    }
ROWS
#undef X

typedef struct {
    const char *id;
    CebraStatus (*call)(void);
    CebraStatus status;
    const char *substring;
    int (*post)(void);
} row;

#define X(id, status, substring, post, ...) {#id, row_##id, status, substring, post},
static const row table[] = {ROWS};
#undef X

/* ---- the checks after each row ---------------------------------------------------------------- */

static void reset_outputs(void) {
    size_t i;
    for (i = 0; i < YCAP; i++) g.y[i] = g.y2[i] = g.y3[i] = SENTINEL;
    g.t = g.left = g.right = -777;
    g.temperature = g.temperature_grad = -777;
    g.needed = 0;
    memset(g.buf, 'x', sizeof g.buf);
    g.out_model = NULL;
    g.out_crit = NULL;
    g.out_stream = NULL;
    g.ready = 77;
    g.out_solver = NULL;
    g.flag = 77;
    for (i = 0; i < 8; i++) g.h[i] = SENTINEL;
    g.progress_calls = 0;
}

static int untouched(void) {
    size_t i;
    for (i = 0; i < YCAP; i++)
        if (g.y[i] != SENTINEL || g.y2[i] != SENTINEL || g.y3[i] != SENTINEL) return 0;
    return g.t == -777 && g.left == -777 && g.right == -777 && g.temperature == -777 &&
           g.temperature_grad == -777 && g.out_model == NULL && g.out_crit == NULL && g.out_stream == NULL &&
           g.ready == 77 && g.out_solver == NULL && g.flag == 77 && g.h[0] == SENTINEL && g.h[7] == SENTINEL;
}

static int handles_usable(void) {
    float y[YCAP], l = NAN, a, u;
    int64_t t = 0;
    uint8_t fitted = 9;
    if (cebra_model_forward(g.model, g.x, 3, 7, 16, y, YCAP, &t) != CEBRA_STATUS_OK) return 0;
    if (t != 7 || tu_max_abs_diff(y, g.want, g.want_n) > 1e-5) return 0;
    if (cebra_criterion_forward(g.crit, g.ref, g.pos, g.n, g.neg, g.m, g.d, &l, &a, &u, 1) != CEBRA_STATUS_OK)
        return 0;
    if (!tu_close(&l, g.crit_loss, 1, 1e-5, 1e-6)) return 0;
    if (cebra_model_forward(g.cb, g.x, 1, 7, 4, y, YCAP, &t) != CEBRA_STATUS_OK || t != 3 || y[5] != 5.0f) return 0;
    /* The solvers: the fitted one still gives its embedding, the unfitted one is still unfitted. */
    if (cebra_solver_transform(g.solver, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, y, YCAP, &t) != CEBRA_STATUS_OK ||
        t != 48 || memcmp(y, g.solver_want, sizeof g.solver_want) != 0)
        return 0;
    if (cebra_solver_is_fitted(g.unfitted, &fitted) != CEBRA_STATUS_OK || fitted != 0) return 0;
    return *cebra_last_error() == '\0';
}

static void run_table(void) {
    size_t i, rows = sizeof table / sizeof table[0];
    CHECK(rows >= 40, "the table has at least 40 rows (%lu)", (unsigned long)rows);
    for (i = 0; i < rows; i++) {
        const row *r = &table[i];
        CebraStatus got;
        const char *msg;
        reset_outputs();
        got = r->call();
        msg = cebra_last_error();
        if (got != r->status) {
            CHECK(0, "row %s: returned %s, expected %s (message '%s')", r->id, cebra_status_name(got),
                  cebra_status_name(r->status), msg);
        } else if (r->status == CEBRA_STATUS_OK) {
            CHECK(*msg == '\0', "row %s: success leaves cebra_last_error() empty, got '%s'", r->id, msg);
        } else {
            CHECK(tu_contains(msg, r->substring), "row %s: message '%s' does not contain '%s'", r->id, msg,
                  r->substring);
        }
        if (getenv("CEBRA_TEST_VERBOSE")) printf("  %-36s %-32s %s\n", r->id, cebra_status_name(got), msg);
        if (r->post)
            CHECK(r->post(), "row %s: result check", r->id);
        else if (r->status != CEBRA_STATUS_OK)
            CHECK(untouched(), "row %s: a failing call wrote to an out-parameter", r->id);
        cebra_model_free(g.out_model);
        cebra_criterion_free(g.out_crit);
        cebra_stream_free(g.out_stream);
        cebra_solver_free(g.out_solver);
        g.out_solver = NULL;
        g.out_stream = NULL;
        g.out_model = NULL;
        g.out_crit = NULL;
        CHECK(handles_usable(), "row %s: the handles are still usable afterwards", r->id);
    }
}

/* ---- setup ----------------------------------------------------------------------------------- */

static CebraModel *fixture_model(const char *name, int head) {
    CebraModel *m = NULL;
    if (cebra_model_init(name, 7, 12, 3, NULL, &m) != CEBRA_STATUS_OK ||
        (head && cebra_model_set_output_num(m, 5, 0) != CEBRA_STATUS_OK) ||
        cebra_model_load(m, tu_fixture("models/%s.safetensors", name)) != CEBRA_STATUS_OK) {
        fprintf(stderr, "setup: cannot build %s: %s\n", name, cebra_last_error());
        exit(2);
    }
    return m;
}

static void setup(void) {
    size_t i;
    g.io = fx_open(tu_fixture("models/offset10-model.io.safetensors"));
    g.cls_io = fx_open(tu_fixture("models/supervised10-model.io.safetensors"));
    g.crit_io = fx_open(tu_fixture("criterions/fixed-cosine_n32_m32_d8_t1.safetensors"));
    if (!g.io || !g.cls_io || !g.crit_io) {
        fprintf(stderr, "setup: cannot read the fixtures; set CEBRA_FIXTURES\n");
        exit(2);
    }
    g.x = fx_f32(g.io, "input", NULL);
    g.want = fx_f32(g.io, "output", &g.want_n);
    g.cls_x = fx_f32(g.cls_io, "input", NULL);
    g.ref = fx_f32(g.crit_io, "ref", NULL);
    g.pos = fx_f32(g.crit_io, "pos", NULL);
    g.neg = fx_f32(g.crit_io, "neg", NULL);
    g.crit_loss = fx_f32(g.crit_io, "loss", NULL);
    g.n = 32;
    g.m = 32;
    g.d = 8;
    g.model = fixture_model("offset10-model", 0);
    g.o1 = fixture_model("offset1-model", 0);
    g.cls_head = fixture_model("supervised10-model", 1);
    g.tied = fixture_model("offset1-model-mse-v2-3layers-tanh", 0);
    if (cebra_model_init("supervised10-model", 7, 12, 3, NULL, &g.cls) != CEBRA_STATUS_OK ||
        cebra_criterion_init("fixed-cosine-infonce", "temperature=1", &g.crit) != CEBRA_STATUS_OK ||
        cebra_criterion_init("nce", NULL, &g.nce) != CEBRA_STATUS_OK ||
        cebra_criterion_init("learnable-cosine-infonce", NULL, &g.learnable) != CEBRA_STATUS_OK ||
        cebra_register_callback("err-cb", 1, 1, cb_forward, &g.cb_state, cb_free, 0) != CEBRA_STATUS_OK ||
        cebra_register_callback("err-fail", 0, 1, cb_forward, &g.fail_state, cb_free, 0) != CEBRA_STATUS_OK ||
        cebra_model_init("err-cb", 7, 1, 2, NULL, &g.cb) != CEBRA_STATUS_OK ||
        cebra_model_init("offset40-model-4x-subsample", 7, 12, 3, NULL, &g.resample) != CEBRA_STATUS_OK ||
        cebra_stream_new(g.model, &g.stream) != CEBRA_STATUS_OK) {
        fprintf(stderr, "setup failed: %s\n", cebra_last_error());
        exit(2);
    }
    /* NaN in batch 0 (channel 0, time 3); +Inf in batch 0 (channel 2, time 8). */
    memcpy(g.x_nan, g.x, sizeof g.x_nan);
    memcpy(g.x_inf, g.x, sizeof g.x_inf);
    g.x_nan[3] = NAN;
    g.x_inf[2 * 16 + 8] = INFINITY;
    memcpy(g.ref_nan, g.ref, sizeof g.ref_nan);
    g.ref_nan[0] = NAN;
    for (i = 0; i < 32; i++) g.pd_nan[i] = (float)i * 0.01f;
    for (i = 0; i < 32 * 32; i++) g.nd[i] = (float)(i % 7) * 0.1f;
    g.pd_nan[0] = NAN;
    make_bad_files();
    /* The solvers: x read as a (48, 7) recording, a continuous label, a negative class. */
    for (i = 0; i < 48; i++) {
        g.latent[i] = (float)sin((double)i * 0.2);
        g.classes_neg[i] = i == 30 ? -1 : (int64_t)(i % 3);
    }
    snprintf(g.solver_file, sizeof g.solver_file, "%s", tu_tmpfile("solver.safetensors"));
    {
        const char *options = "model_architecture=offset10-model;num_hidden_units=8;output_dimension=3;"
                              "batch_size=8;max_iterations=2;seed=1";
        int64_t rows = 0;
        if (cebra_solver_new(options, &g.solver) != CEBRA_STATUS_OK ||
            cebra_solver_fit(g.solver, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.latent, 1, NULL, NULL, NULL) !=
                CEBRA_STATUS_OK ||
            cebra_solver_transform(g.solver, g.x, 48, 7, CEBRA_LAYOUT_ROW_MAJOR, g.solver_want, 48 * 3, &rows) !=
                CEBRA_STATUS_OK ||
            cebra_solver_save(g.solver, g.solver_file) != CEBRA_STATUS_OK ||
            cebra_solver_new(options, &g.unfitted) != CEBRA_STATUS_OK ||
            cebra_solver_new(options, &g.scratch) != CEBRA_STATUS_OK) {
            fprintf(stderr, "setup: solvers: %s\n", cebra_last_error());
            exit(2);
        }
    }
}

static void teardown(void) {
    CHECK_OK(cebra_unregister("err-cb"));
    CHECK_OK(cebra_unregister("err-fail"));
    CHECK(g.fail_state.free_calls == 1, "err-fail: free_user_data once (%d)", g.fail_state.free_calls);
    CHECK(g.cb_state.free_calls == 0, "err-cb: its model is alive");
    cebra_model_free(g.cb);
    CHECK(g.cb_state.free_calls == 1, "err-cb: freed once with its last model (%d)", g.cb_state.free_calls);
    CHECK(g.dup_state.free_calls == 0, "failed registrations never free their data");
    cebra_stream_free(g.stream);
    cebra_solver_free(g.solver);
    cebra_solver_free(g.unfitted);
    cebra_solver_free(g.scratch);
    cebra_model_free(g.resample);
    cebra_model_free(g.model);
    cebra_model_free(g.o1);
    cebra_model_free(g.cls);
    cebra_model_free(g.cls_head);
    cebra_model_free(g.tied);
    cebra_criterion_free(g.crit);
    cebra_criterion_free(g.nce);
    cebra_criterion_free(g.learnable);
    fx_close(g.io);
    fx_close(g.cls_io);
    fx_close(g.crit_io);
}

int main(void) {
    cebra_set_num_threads(1);
    setup();
    run_table();
    teardown();
    printf("test_errors: %lu table rows\n", (unsigned long)(sizeof table / sizeof table[0]));
    return tu_report("test_errors");
}
