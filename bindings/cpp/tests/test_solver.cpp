// test_solver.cpp: cebra::Solver (fit with a progress function, transform, history, options, model,
// save/load) and its exceptions. A fourth translation unit of the C++ test program.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cebra.hpp"
#include "check.hpp"

namespace test {

namespace {

constexpr int64_t T = 120, N = 6, OUT = 3;
const char *const OPTIONS =
    "model_architecture=offset10-model;num_hidden_units=8;output_dimension=3;batch_size=16;max_iterations=3;seed=5";

// Neurons tuned to a 1-D latent (its sine), the latent as continuous label, its sign as discrete label.
struct Data {
    std::vector<float> x, latent;
    std::vector<int64_t> classes;
    Data() : x(T * N), latent(T), classes(T) {
        for (int64_t t = 0; t < T; t++) {
            latent[t] = float(std::sin(double(t) * 0.07));
            classes[t] = latent[t] > 0 ? 1 : 0;
            for (int64_t n = 0; n < N; n++) x[t * N + n] = latent[t] * float(n - 2) + 0.05f * float((t * 3 + n) % 4);
        }
    }
};

std::vector<float> transposed(const std::vector<float> &v, int64_t rows, int64_t cols) {
    std::vector<float> out(v.size());
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
    return out;
}

}  // namespace

void test_solver() {
    Data d;
    cebra::Solver solver(OPTIONS);
    CHECK(!solver.isFitted(), "a new solver is not fitted");
    CHECK(solver.options().find("seed=5") != std::string::npos, "options show the seed: " + solver.options());

    // Fit with a progress function that sees every step in order.
    std::vector<cebra::Step> steps;
    CHECK_NO_THROW(solver.fit(d.x, T, N, cebra::Layout::RowMajor, d.latent, {}, [&](const cebra::Step &s) {
        steps.push_back(s);
        return true;
    }));
    CHECK(solver.isFitted(), "fitted after fit");
    CHECK(steps.size() == 3 && steps[0].step == 1 && steps[2].step == 3 && steps[2].total_steps == 3,
          "progress saw steps 1..3 of 3");
    cebra::History h = solver.history();
    CHECK(h.loss.size() == 3 && h.align.size() == 3 && h.uniform.size() == 3 && h.temperature.size() == 3,
          "history: one record per step");
    CHECK(solver.lossHistory() == h.loss, "lossHistory() equals history().loss");
    bool sums = true, seen = true;
    for (size_t i = 0; i < h.loss.size() && i < steps.size(); i++) {
        sums = sums && std::fabs(h.loss[i] - (h.align[i] + h.uniform[i])) <= 1e-4 * (1 + std::fabs(h.loss[i]));
        seen = seen && steps[i].loss == h.loss[i] && steps[i].temperature == h.temperature[i];
    }
    CHECK(sums, "loss = align + uniform at every step");
    CHECK(seen, "the progress function saw the recorded values");

    // Transform: padded; column-major input gives the transposed embedding.
    cebra::Embedding e = solver.transform(d.x, T, N, cebra::Layout::RowMajor);
    CHECK(e.timesteps == T && e.num_output == OUT && e.values.size() == size_t(T * OUT), "transform is (T, 3)");
    cebra::Embedding ec = solver.transform(transposed(d.x, T, N), T, N, cebra::Layout::ColMajor);
    bool same = ec.layout == cebra::Layout::ColMajor;
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < OUT; k++) same = same && std::fabs(e.at(t, k) - ec.at(t, k)) <= 1e-6;
    CHECK(same, "column-major transform equals the row-major one");

    // The same seed gives the same fit; the model is a copy usable for streaming.
    cebra::Solver again(OPTIONS);
    again.fit(transposed(d.x, T, N), T, N, cebra::Layout::ColMajor, d.latent);
    CHECK(again.lossHistory() == h.loss, "same seed, same losses");
    CHECK(again.transform(d.x, T, N, cebra::Layout::RowMajor).values == e.values, "same seed, same embedding");
    cebra::Model model = solver.model();
    CHECK(model.transform(d.x, T, N, cebra::Layout::RowMajor).values == e.values,
          "the model of the solver gives the solver's embedding");
    cebra::Stream stream(model);
    int64_t lookahead = stream.lookahead();
    bool streamed = true;
    for (int64_t t = 0; t < 30; t++) {
        auto y = stream.push(d.x.data() + t * N, N);
        if (y && t - lookahead >= 5)
            for (int64_t k = 0; k < OUT; k++) streamed = streamed && std::fabs((*y)[k] - e.at(t - lookahead, k)) <= 1e-5;
    }
    CHECK(streamed, "the stream over the solver's model gives the transform's rows");

    // Save and load.
    std::string path = test::tmpfile("solver.safetensors");
    solver.save(path);
    cebra::Solver loaded = cebra::Solver::load(path);
    CHECK(loaded.isFitted() && loaded.options() == solver.options(), "loaded: fitted, same options");
    CHECK(loaded.history().temperature == h.temperature && loaded.lossHistory() == h.loss, "loaded: same history");
    CHECK(loaded.transform(d.x, T, N, cebra::Layout::RowMajor).values == e.values, "loaded: same embedding");
    CHECK(cebra::Model::loadFile(path).transform(d.x, T, N, cebra::Layout::RowMajor).values == e.values,
          "the solver file is a model file");

    // Early stop (discrete labels): the solver keeps the steps taken.
    int calls = 0;
    solver.fit(d.x, T, N, cebra::Layout::RowMajor, {}, d.classes, [&](const cebra::Step &) { return ++calls < 2; });
    CHECK(calls == 2 && solver.lossHistory().size() == 2, "progress returning false stops after step 2");
    // An exception in the progress function stops the fit and comes out of fit.
    calls = 0;
    bool rethrown = false;
    try {
        solver.fit(d.x, T, N, cebra::Layout::RowMajor, d.latent, d.classes, [&](const cebra::Step &) -> bool {
            ++calls;
            throw std::runtime_error("enough");
        });
    } catch (const std::runtime_error &err) {
        rethrown = std::string(err.what()) == "enough";
    }
    CHECK(rethrown && calls == 1 && solver.lossHistory().size() == 1, "a throwing progress function stops the fit");

    // Moves.
    cebra::Solver moved(std::move(loaded));
    CHECK(!loaded && moved && moved.isFitted(), "a moved solver is empty, the new one owns the handle");
    moved = std::move(again);
    CHECK(!again && moved.lossHistory() == h.loss, "move assignment");

    // Errors: the status and the library's message.
    cebra::Solver unfitted(OPTIONS);
    CHECK_THROWS(cebra::Solver("learning_rte=1"), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(cebra::Solver("model_architecture=offset11-model"), CEBRA_STATUS_UNKNOWN_NAME);
    if (!cebra::cudaIsAvailable()) CHECK_THROWS(cebra::Solver("device=cuda"), CEBRA_STATUS_UNSUPPORTED);
    CHECK_THROWS(cebra::Solver(std::string("seed=1\0", 7)), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(unfitted.transform(d.x, T, N, cebra::Layout::RowMajor), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(unfitted.lossHistory(), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(unfitted.model(), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(unfitted.save(test::tmpfile("unfitted.safetensors")), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(unfitted.fit(d.x, T, N + 1, cebra::Layout::RowMajor), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(unfitted.fit(d.x, T, N, cebra::Layout::RowMajor, std::vector<float>(T + 1)),
                 CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(unfitted.fit(d.x, T, N, cebra::Layout::RowMajor, {}, std::vector<int64_t>(T - 1)),
                 CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(unfitted.fit(d.x.data(), 5, N, cebra::Layout::RowMajor), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(unfitted.fit(d.x, T, N, static_cast<cebra::Layout>(7)), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(solver.transform(d.x.data(), T, N + 1, cebra::Layout::RowMajor), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(solver.history(9), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(cebra::Solver::load(test::fixture("models/offset10-model.safetensors")), CEBRA_STATUS_FORMAT);
    CHECK_THROWS(cebra::Solver::load(test::tmpfile("no-such-solver.safetensors")), CEBRA_STATUS_IO);
    CHECK(!unfitted.isFitted(), "failed fits leave the solver unfitted");

    // The classifier head size comes from the library.
    cebra::Model cls("supervised10-model", 7, 12, 3);
    CHECK(cls.labelNum() == 0, "no head: labelNum() 0");
    std::vector<float> in(7 * 10, 0.25f);
    CHECK_THROWS(cls.forwardClassifier(in, 1, 10), CEBRA_STATUS_INVALID_ARGUMENT);
    cls.setOutputNum(4);
    CHECK(cls.labelNum() == 4, "labelNum() after setOutputNum(4)");
    CHECK(cls.forwardClassifier(in, 1, 10).prediction.size() == 4, "forwardClassifier uses the head size");
    CHECK_THROWS(model.labelNum(), CEBRA_STATUS_UNSUPPORTED);
}

}  // namespace test
