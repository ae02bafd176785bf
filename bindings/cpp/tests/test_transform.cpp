// test_transform.cpp: Model::transform and cebra::Stream against the reference transform fixtures of
// tests/fixtures/transform (what check_transform_case in the C suite's test_api.c checks, through the
// C++ API), and exceptions on bad input. A third translation unit of the C++ test program.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cebra.hpp"
#include "check.hpp"

namespace test {

namespace {

struct FileCloser {
    void operator()(fx_file *f) const { fx_close(f); }
};
using File = std::unique_ptr<fx_file, FileCloser>;

// A (rows, cols) row-major matrix stored column by column.
std::vector<float> transposed(const float *src, int64_t rows, int64_t cols) {
    std::vector<float> dst(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[static_cast<size_t>(c * rows + r)] = src[r * cols + c];
    return dst;
}

// The fixture's transform (padded and not, one pass and chunks of 7 steps, row- and column-major), then a
// stream over the same model whose pushes equal the padded rows (and the C++ transform's rows).
void check_transform_case(const std::string &case_name, int64_t units, int64_t outputs) {
    File f(fx_open(fixture("transform/" + case_name + ".safetensors").c_str()));
    if (!CHECK(f != nullptr, "fixture transform/" + case_name)) return;
    const fx_tensor *in = fx_tensor_get(f.get(), "input");
    const char *name = fx_meta(f.get(), "name"), *weights = fx_meta(f.get(), "weights");
    if (!CHECK(in && in->data && in->ndim == 2 && name && weights, case_name + ": complete fixture")) return;
    const int64_t t = in->shape[0], n = in->shape[1];
    const std::vector<float> row_in(in->data, in->data + in->numel), col_in = transposed(in->data, t, n);
    try {
        std::optional<cebra::Model> model(std::in_place, name, n, units, outputs);
        model->load(fixture(weights));
        auto [left, right] = model->offset();
        std::vector<float> padded_rows;  // the C++ transform's padded output, row-major
        for (bool pad : {false, true}) {
            const fx_tensor *want = fx_tensor_get(f.get(), pad ? "padded" : "unpadded");
            if (!CHECK(want && want->data && want->ndim == 2 && want->shape[1] == outputs, case_name + ": want")) return;
            const std::vector<float> col_want = transposed(want->data, want->shape[0], want->shape[1]);
            const std::string label = case_name + (pad ? " padded" : " unpadded");
            for (int64_t batch : {int64_t(0), int64_t(7)}) {
                const std::string what = label + " batch " + std::to_string(batch);
                cebra::Embedding y = model->transform(row_in, t, n, cebra::Layout::RowMajor, batch, pad);
                CHECK(y.timesteps == want->shape[0] && y.num_output == outputs && y.layout == cebra::Layout::RowMajor,
                      what + ": rows " + std::to_string(y.timesteps));
                CHECK(close(y.values, want->data, want->numel, 0, 1e-5), what + ": row-major equals the reference");
                cebra::Embedding z = model->transform(col_in.data(), t, n, cebra::Layout::ColMajor, batch, pad);
                CHECK(z.timesteps == want->shape[0] && z.layout == cebra::Layout::ColMajor, what + ": column-major rows");
                CHECK(close(z.values, col_want.data(), col_want.size(), 0, 1e-5),
                      what + ": column-major equals the transposed reference");
                bool same = z.values.size() == y.values.size();
                for (int64_t r = 0; same && r < y.timesteps; r++)
                    for (int64_t k = 0; k < outputs; k++) same &= y.at(r, k) == z.at(r, k);
                CHECK(same, what + ": at(t, k) reads both layouts alike");
                if (pad && batch == 0) padded_rows = y.values;
            }
            // The defaults: one pass, padded.
            if (pad)
                CHECK(model->transform(row_in, t, n, cebra::Layout::RowMajor).values == padded_rows,
                      case_name + ": transform defaults to one padded pass");
        }
        if (model->resampleFactor() != 1) {
            CHECK_THROWS(cebra::Stream{*model}, CEBRA_STATUS_UNSUPPORTED);
            return;
        }
        cebra::Stream stream(*model);
        model.reset();  // the stream keeps the model alive
        const int64_t lookahead = stream.lookahead();
        CHECK(lookahead == right - 1, case_name + ": lookahead " + std::to_string(lookahead));
        CHECK(stream.numInput() == n && stream.numOutput() == outputs, case_name + ": stream sizes");
        const float *padded = fx_f32(f.get(), "padded", nullptr);
        std::vector<float> sample(static_cast<size_t>(n)), embedding;
        for (int round = 0; round < 2; round++) {
            bool all_ok = true;
            for (int64_t k = 0; k < t; k++) {
                const float *row = in->data + k * n;
                const int64_t step = k - lookahead;
                const bool expect_ready = k >= left + right - 1;
                bool ready;
                if (round == 0) {  // the vector overload returning std::optional
                    sample.assign(row, row + n);
                    std::optional<std::vector<float>> e = stream.push(sample);
                    ready = e.has_value();
                    if (ready) embedding = *e;
                } else {  // the allocation-free overload
                    embedding.assign(static_cast<size_t>(outputs), -1.0f);
                    ready = stream.push(row, n, embedding.data(), embedding.size());
                }
                all_ok &= ready == expect_ready;
                if (ready)
                    all_ok &= close(embedding, padded + step * outputs, static_cast<size_t>(outputs), 0, 1e-5) &&
                              close(embedding, padded_rows.data() + step * outputs, static_cast<size_t>(outputs), 0, 1e-5);
            }
            CHECK(all_ok, case_name + ": round " + std::to_string(round) +
                              ": ready from push left + right - 1 on, each embedding equal to the padded transform row");
            stream.reset();
        }
        // Moved: the new owner streams, the old one holds nothing.
        cebra::Stream moved = std::move(stream);
        CHECK(!stream && moved, case_name + ": stream move");
        CHECK_THROWS(stream.lookahead(), CEBRA_STATUS_NULL_POINTER);
        CHECK(!moved.push(in->data, n).has_value() || left + right == 1, case_name + ": the moved stream starts afresh");
    } catch (const std::exception &e) {
        CHECK(false, case_name + ": " + e.what());
    }
}

// A model trained in Python and converted (tools/convert_cebra_checkpoint.py): Model::loadFile rebuilds it
// and its transform equals the reference's.
void check_checkpoint() {
    File f(fx_open(fixture("checkpoint/offset10-model.transform.safetensors").c_str()));
    if (!CHECK(f != nullptr, "checkpoint fixture")) return;
    const fx_tensor *in = fx_tensor_get(f.get(), "input"), *want = fx_tensor_get(f.get(), "padded");
    try {
        cebra::Model m = cebra::Model::loadFile(fixture("checkpoint/offset10-model.safetensors"));
        cebra::Embedding y = m.transform(in->data, in->shape[0], in->shape[1], cebra::Layout::RowMajor);
        CHECK(y.timesteps == want->shape[0] && close(y.values, want->data, want->numel, 0, 1e-5),
              "converted checkpoint: transform equals the reference's");
    } catch (const std::exception &e) {
        CHECK(false, std::string("checkpoint: ") + e.what());
    }
}

void check_errors() {
    cebra::Model m("offset10-model", 7, 12, 3);
    std::vector<float> x(20 * 7, 0.25f);
    const auto row = cebra::Layout::RowMajor;
    CHECK_THROWS(m.transform(x.data(), 20, 6, row), CEBRA_STATUS_SHAPE_MISMATCH);       // 6 neurons, model has 7
    CHECK_THROWS(m.transform(x, 20, 6, row), CEBRA_STATUS_SHAPE_MISMATCH);              // 140 floats are not 20 * 6
    CHECK_THROWS(m.transform(x, 21, 7, row), CEBRA_STATUS_SHAPE_MISMATCH);              // nor 21 * 7
    CHECK_THROWS(m.transform(x.data(), 9, 7, row), CEBRA_STATUS_SHAPE_MISMATCH);        // shorter than the field
    CHECK_THROWS(m.transform(x.data(), 9, 7, row, 0, false), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(m.transform(x.data(), 20, 7, row, -1), CEBRA_STATUS_INVALID_ARGUMENT);  // negative batch size
    CHECK_THROWS(m.transform(x.data(), 0, 7, row), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(m.transform(x.data(), 20, 7, static_cast<cebra::Layout>(7)), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(m.transform(nullptr, 20, 7, row), CEBRA_STATUS_NULL_POINTER);
    CHECK_NO_THROW(m.transform(x, 20, 7, cebra::Layout::ColMajor, 3, false));
    try {
        m.transform(x.data(), 20, 6, row);
    } catch (const cebra::Error &e) {
        CHECK(e.message().find("neurons") != std::string::npos, "the message names the problem: " + e.message());
    }

    cebra::Stream s(m);
    std::vector<float> e(3);
    CHECK_THROWS(s.push(x.data(), 6), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(s.push(std::vector<float>(8, 0.0f)), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(s.push(x.data(), 7, e.data(), 2), CEBRA_STATUS_BUFFER_TOO_SMALL);
    CHECK_THROWS(s.push(x.data(), 7, nullptr, 3), CEBRA_STATUS_NULL_POINTER);
    CHECK_THROWS(s.push(nullptr, 7), CEBRA_STATUS_NULL_POINTER);
    // A failed push leaves the stream as it was: still 9 pushes before the first embedding.
    std::vector<float> sample(x.begin(), x.begin() + 7);
    int ready_at = -1;
    for (int k = 0; k < 12 && ready_at < 0; k++)
        if (s.push(sample, e)) ready_at = k;
    CHECK(ready_at == 9 && e.size() == 3, "failed pushes are not counted: ready at push " + std::to_string(ready_at));

    cebra::Model moved_from = std::move(m);
    CHECK_THROWS(m.transform(x, 20, 7, row), CEBRA_STATUS_NULL_POINTER);
    CHECK_THROWS(cebra::Stream{m}, CEBRA_STATUS_NULL_POINTER);
    cebra::Model resampling("offset4-model-2x-subsample", 7, 12, 3);
    CHECK_THROWS(cebra::Stream{resampling}, CEBRA_STATUS_UNSUPPORTED);
}

}  // namespace

void test_transform(bool quick) {
    check_transform_case("offset10-model", 12, 3);
    check_transform_case("offset36-model-more-dropout", 12, 3);
    check_transform_case("offset1-model-mse-resnet-3layers-tanh", 12, 3);
    check_transform_case("offset40-model-4x-subsample", 12, 3);
    if (!quick) check_transform_case("offset10-model-wide", 32, 8);
    check_checkpoint();
    check_errors();
}

}  // namespace test
