// test_callbacks.cpp: the second translation unit of the C++ test program (cebra.hpp included in
// both, linked together: its inline functions and variables must not break the one-definition rule).
// Callback models from std::function, and the ownership rules of the RAII handles.
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cebra.hpp"
#include "check.hpp"

namespace test {

cebra::Model make_offset10_model() {
    cebra::manualSeed(7);
    return cebra::Model("offset10-model", 7, 12, 3);
}

namespace {

// output[b, o, t] = scale * sum of the window of input[b, o % num_input, :] + o (as cb_forward in the
// C suite's test_api.c).
void window_sum(float scale, const float *input, int64_t batch, int64_t num_input, int64_t time, float *output,
                int64_t num_output, int64_t out_time) {
    int64_t window = time - out_time + 1;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t o = 0; o < num_output; o++)
            for (int64_t t = 0; t < out_time; t++) {
                float acc = 0;
                for (int64_t k = 0; k < window; k++) acc += input[(b * num_input + o % num_input) * time + t + k];
                output[(b * num_output + o) * out_time + t] = scale * acc + float(o);
            }
}

// Counts its live copies: the library must destroy the registered std::function exactly once.
struct Tracker {
    std::shared_ptr<int> calls = std::make_shared<int>(0);
};

}  // namespace

void test_callbacks() {
    std::vector<float> x(2 * 4 * 10);
    for (size_t i = 0; i < x.size(); i++) x[i] = float(i) * 0.25f - 3.0f;
    Tracker tracker;
    std::weak_ptr<int> alive = tracker.calls;
    {
        auto calls = tracker.calls;
        cebra::registerModel("cpp-model", 2, 3, [calls](const float *in, int64_t b, int64_t ni, int64_t t, float *out,
                                                        int64_t no, int64_t ot) {
            ++*calls;
            window_sum(1.0f, in, b, ni, t, out, no, ot);
        });
    }
    tracker.calls.reset();  // the registration holds the only reference now
    CHECK(!alive.expired(), "the registered function is kept by the library");
    auto names = cebra::getOptions("cpp-*");
    CHECK(names == std::vector<std::string>{"cpp-model"}, "a registered C++ model is listed");
    {
        cebra::Model m("cpp-model", 4, 999, 2, "anything=1");
        CHECK(m.offset() == std::make_pair(int64_t(2), int64_t(3)), "callback model offset");
        CHECK(m.numInput() == 4 && m.numOutput() == 2 && m.resampleFactor() == 1, "callback model sizes");
        CHECK(m.numParameters().total == 0, "callback model has no parameters");
        cebra::Output y = m.forward(x, 2, 10);
        std::vector<float> want(2 * 2 * 6);
        window_sum(1.0f, x.data(), 2, 4, 10, want.data(), 2, 6);
        CHECK(y.out_time == 6 && y.values == want, "callback output passed through");
        CHECK(!alive.expired() && *alive.lock() == 1, "the std::function ran once");
        // Unregistered while the model lives: the function stays until the model goes.
        cebra::unregisterModel("cpp-model");
        CHECK(!alive.expired(), "the function outlives its registration while a model uses it");
        CHECK(m.forward(x, 2, 10).values == want, "the model still works after unregister");
        CHECK_THROWS(cebra::Model("cpp-model", 4, 1, 2), CEBRA_STATUS_UNKNOWN_NAME);
    }
    CHECK(alive.expired(), "the std::function is destroyed once the registration and its last model are gone");

    // A throwing function: CALLBACK_FAILED, with what() in the message; the model keeps working after.
    bool fail = true;
    cebra::registerModel("cpp-fail", 0, 1, [&fail](const float *in, int64_t b, int64_t ni, int64_t t, float *out,
                                                   int64_t no, int64_t ot) {
        if (fail) throw std::runtime_error("boom from C++");
        window_sum(2.0f, in, b, ni, t, out, no, ot);
    });
    {
        cebra::Model m("cpp-fail", 2, 1, 1);
        try {
            m.forward(x.data(), 6, 1, 3);
            CHECK(false, "a throwing callback fails the forward");
        } catch (const cebra::Error &e) {
            CHECK(e.status() == CEBRA_STATUS_CALLBACK_FAILED, "status CALLBACK_FAILED");
            CHECK(e.message().find("boom from C++") != std::string::npos && e.message().find("cpp-fail") != std::string::npos,
                  "the message has the exception and the name: " + e.message());
        }
        fail = false;
        CHECK_NO_THROW(m.forward(x.data(), 6, 1, 3));
    }
    // Duplicate name without and with override; empty function.
    auto noop = [](const float *, int64_t, int64_t, int64_t, float *, int64_t, int64_t) {};
    CHECK_THROWS(cebra::registerModel("cpp-fail", 0, 1, noop), CEBRA_STATUS_ALREADY_REGISTERED);
    CHECK_NO_THROW(cebra::registerModel("cpp-fail", 0, 1, noop, CEBRA_REGISTER_OVERRIDE));
    CHECK_THROWS(cebra::registerModel("cpp-empty", 0, 1, cebra::ForwardFunction()), CEBRA_STATUS_NULL_POINTER);
    CHECK_THROWS(cebra::registerModel("cpp-bad", -1, 1, noop), CEBRA_STATUS_INVALID_ARGUMENT);
    cebra::unregisterModel("cpp-fail");
    CHECK(cebra::getOptions().size() == 147, "the listing is back to the 147 reference names");
}

void test_handles() {
    // A model returned by value from this unit, used and moved around.
    cebra::Model a = make_offset10_model();
    CebraModel *handle = a.get();
    cebra::Model b = std::move(a);
    CHECK(!a && b && b.get() == handle, "move construction transfers the handle");
    CHECK_THROWS(a.numInput(), CEBRA_STATUS_NULL_POINTER);  // a moved-from model has no handle
    cebra::Model c("offset5-model", 7, 12, 3);
    c = std::move(b);  // frees c's own handle (checked by ASan/Valgrind: no leak)
    CHECK(c.get() == handle && !b, "move assignment transfers the handle");
    std::vector<cebra::Model> models;
    for (int i = 0; i < 3; i++) models.push_back(make_offset10_model());
    models.push_back(std::move(c));
    std::vector<float> x(7 * 10, 0.25f);
    cebra::Output first = models.front().forward(x, 1, 10), last = models.back().forward(x, 1, 10);
    CHECK(first.values == last.values, "models seeded alike and moved into a vector agree");
    CebraModel *raw = models[1].release();
    CHECK(raw != nullptr && !models[1], "release gives up the handle");
    cebra::Model adopted(raw);
    CHECK(adopted.numOutput() == 3, "a released handle is adopted again");

    cebra::Criterion k("learnable-cosine-infonce", "temperature=0.5");
    cebra::Criterion k2 = std::move(k);
    CHECK(!k && k2 && k2.name() == "learnable-cosine-infonce", "criterion move");
    CHECK(std::fabs(k2.temperature() - 0.5) < 1e-6, "the moved criterion works");
    CHECK_THROWS(k.temperature(), CEBRA_STATUS_NULL_POINTER);
}

}  // namespace test
