// cebra.hpp: header-only C++17 interface to libcebra (include/cebra.h).
//
// RAII handles (move-only: a handle is never copied, and freed exactly once), errors as cebra::Error
// exceptions carrying the status and the library's message, results returned as values. Link with
// -lcebra as for the C interface. Array layouts are those of the C interface: float32, row-major
// (C order), shapes given next to each function; whole recordings (Model::transform) may also be
// column-major (Layout::ColMajor).
//
//   cebra::Model model("offset10-model", 120, 32, 8);
//   model.load("weights.safetensors");
//   cebra::Output y = model.forward(x, batch, time);   // y.values is (batch, 8, y.out_time)
//   cebra::Embedding e = model.transform(rec, time, 120, cebra::Layout::RowMajor);  // (time, 8)
//   cebra::Stream stream(model);                        // stream.push(sample): embedding or nullopt
#ifndef CEBRA_HPP
#define CEBRA_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cebra.h"

namespace cebra {

// ---- errors ----------------------------------------------------------------------------------------

/// A failed libcebra call (or an argument this header rejects before calling the library).
class Error : public std::runtime_error {
public:
    Error(CebraStatus status, const std::string &message)
        : std::runtime_error(std::string(cebra_status_name(status)) + ": " + message), status_(status),
          message_(message) {}

    /// The CebraStatus number (CEBRA_STATUS_*).
    CebraStatus status() const noexcept { return status_; }
    /// Its name, such as "CEBRA_STATUS_SHAPE_MISMATCH".
    const char *statusName() const noexcept { return cebra_status_name(status_); }
    /// The library's explanation.
    const std::string &message() const noexcept { return message_; }

private:
    CebraStatus status_;
    std::string message_;
};

namespace detail {

// What a C++ callback threw, per thread (the library calls the callback on the calling thread),
// appended to the CALLBACK_FAILED message.
inline thread_local std::string callback_error;

inline void check(CebraStatus status) {
    if (status == CEBRA_STATUS_OK) return;
    std::string message = cebra_last_error();
    if (status == CEBRA_STATUS_CALLBACK_FAILED && !callback_error.empty()) {
        message += " (C++ callback: " + callback_error + ")";
        callback_error.clear();
    }
    throw Error(status, message);
}

[[noreturn]] inline void fail(CebraStatus status, const std::string &message) { throw Error(status, message); }

// A string for a `const char *` argument: a NUL inside would silently cut it short in C.
inline const char *c_str(const std::string &text, const char *what) {
    if (text.find('\0') != std::string::npos)
        fail(CEBRA_STATUS_INVALID_ARGUMENT, std::string(what) + " contains a NUL byte");
    return text.c_str();
}

inline int64_t checked_product(std::initializer_list<int64_t> factors, const char *what) {
    int64_t product = 1;
    for (int64_t f : factors) {
        if (f < 1) fail(CEBRA_STATUS_INVALID_ARGUMENT, std::string(what) + ": sizes must be at least 1");
        if (product > std::numeric_limits<int64_t>::max() / f)
            fail(CEBRA_STATUS_INVALID_ARGUMENT, std::string(what) + ": size overflows");
        product *= f;
    }
    return product;
}

// The C pointer/size pair must hold exactly `expected` floats.
inline void expect_size(size_t size, int64_t expected, const char *what) {
    if (size != static_cast<size_t>(expected))
        fail(CEBRA_STATUS_SHAPE_MISMATCH, std::string(what) + " has " + std::to_string(size) + " floats, expected " +
                                              std::to_string(expected));
}

// Calls `query(buf, buf_len, needed)` (a cebra_*_get_options) for the size, then for the text.
template <typename Query>
std::vector<std::string> name_list(Query query) {
    size_t needed = 0;
    check(query(nullptr, 0, &needed));
    std::vector<char> buf(needed);
    check(query(buf.data(), buf.size(), &needed));
    std::vector<std::string> names;
    std::string text(buf.data());
    size_t start = 0;
    while (!text.empty()) {
        size_t end = text.find('\n', start);
        names.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return names;
}

}  // namespace detail

// ---- version and runtime -----------------------------------------------------------------------------

/// The library version, e.g. "0.1.0".
inline std::string version() { return cebra_version(); }
/// The loaded library's ABI version (CEBRA_ABI_VERSION of the header it was built with).
inline uint32_t abiVersion() { return cebra_abi_version(); }
/// Throws unless the loaded library has the ABI of the header this program was compiled with.
inline void checkAbi() {
    if (cebra_abi_version() != CEBRA_ABI_VERSION)
        detail::fail(CEBRA_STATUS_UNSUPPORTED, "libcebra has ABI " + std::to_string(cebra_abi_version()) +
                                                   ", this program was built for ABI " +
                                                   std::to_string(CEBRA_ABI_VERSION));
}
/// The name of a status, such as "CEBRA_STATUS_IO".
inline std::string statusName(CebraStatus status) { return cebra_status_name(status); }
/// Seeds the generator that model initialisation and dropout draw from.
inline void manualSeed(uint64_t seed) { detail::check(cebra_manual_seed(seed)); }
/// Threads libtorch uses inside one operation (at least 1).
inline void setNumThreads(int32_t n) { detail::check(cebra_set_num_threads(n)); }
/// Whether a CUDA device can be used.
inline bool cudaIsAvailable() { return cebra_cuda_is_available() != 0; }
/// Diagnostics: an internal error of the library, caught; always throws Error(CEBRA_STATUS_PANIC).
inline void debugPanic() { detail::check(cebra_debug_panic()); }

// ---- registry -----------------------------------------------------------------------------------------

/// Registered model names matching the glob `pattern` (nullptr: all), in registration order, at most
/// `limit` (0: no limit); with `expand_parametrized` false each parametrized family is listed once.
inline std::vector<std::string> getOptions(const char *pattern = nullptr, size_t limit = 0,
                                           bool expand_parametrized = true) {
    return detail::name_list([&](char *buf, size_t len, size_t *needed) {
        return cebra_get_options(pattern, limit, expand_parametrized ? 1 : 0, buf, len, needed);
    });
}
inline std::vector<std::string> getOptions(const std::string &pattern, size_t limit = 0,
                                           bool expand_parametrized = true) {
    return getOptions(detail::c_str(pattern, "pattern"), limit, expand_parametrized);
}

/// Criterion names matching `pattern`, like getOptions.
inline std::vector<std::string> criterionOptions(const char *pattern = nullptr, size_t limit = 0) {
    return detail::name_list([&](char *buf, size_t len, size_t *needed) {
        return cebra_criterion_get_options(pattern, limit, buf, len, needed);
    });
}
inline std::vector<std::string> criterionOptions(const std::string &pattern, size_t limit = 0) {
    return criterionOptions(detail::c_str(pattern, "pattern"), limit);
}

/// The forward of a model implemented in C++: reads `input` (batch, num_input, time) and writes
/// `output` (batch, num_output, out_time). A thrown exception fails the forward with
/// CEBRA_STATUS_CALLBACK_FAILED (its what() is added to the message).
using ForwardFunction = std::function<void(const float *input, int64_t batch, int64_t num_input, int64_t time,
                                           float *output, int64_t num_output, int64_t out_time)>;

namespace detail {
inline int32_t forward_trampoline(void *user_data, const float *input, int64_t batch, int64_t num_input,
                                  int64_t time, float *output, int64_t num_output, int64_t out_time) {
    try {
        (*static_cast<ForwardFunction *>(user_data))(input, batch, num_input, time, output, num_output, out_time);
        return 0;
    } catch (const std::exception &e) {
        callback_error = e.what();
    } catch (...) {
        callback_error = "unknown exception";
    }
    return -1;
}
inline void free_trampoline(void *user_data) { delete static_cast<ForwardFunction *>(user_data); }
}  // namespace detail

/// Registers `forward` as the model `name` with receptive field (left, right): Model(name, n, u, o)
/// then calls it with num_input = n, num_output = o and out_time = time - (left + right) + 1. The
/// function is kept until the name is unregistered and every model built from it is gone. `flags`:
/// CEBRA_REGISTER_OVERRIDE, CEBRA_REGISTER_DEPRECATED.
inline void registerModel(const std::string &name, int64_t left, int64_t right, ForwardFunction forward,
                          uint32_t flags = 0) {
    if (!forward) detail::fail(CEBRA_STATUS_NULL_POINTER, "the forward function of '" + name + "' is empty");
    auto holder = std::make_unique<ForwardFunction>(std::move(forward));
    detail::check(cebra_register_callback(detail::c_str(name, "name"), left, right, detail::forward_trampoline,
                                          holder.get(), detail::free_trampoline, flags));
    holder.release();  // owned by the library from now on (freed through free_trampoline)
}

/// Removes a registered name; models built from it keep working.
inline void unregisterModel(const std::string &name) { detail::check(cebra_unregister(detail::c_str(name, "name"))); }

// ---- models -------------------------------------------------------------------------------------------

/// A forward result: `values` is (batch, num_output, out_time), row-major.
struct Output {
    std::vector<float> values;
    int64_t batch = 0, num_output = 0, out_time = 0;
};

/// How a `(time, channels)` matrix is stored: row by row (C, NumPy) or column by column (Eigen's
/// default, MATLAB, Julia). transform's output follows its input.
enum class Layout : uint32_t { RowMajor = CEBRA_LAYOUT_ROW_MAJOR, ColMajor = CEBRA_LAYOUT_COL_MAJOR };

/// A whole-recording embedding: `values` is (timesteps, num_output) in `layout`.
struct Embedding {
    std::vector<float> values;
    int64_t timesteps = 0, num_output = 0;
    Layout layout = Layout::RowMajor;

    /// The value of output `k` at step `t`.
    float at(int64_t t, int64_t k) const {
        return values[static_cast<size_t>(layout == Layout::RowMajor ? t * num_output + k : k * timesteps + t)];
    }
};

/// A classifier forward: `features` (batch, num_output) and `prediction` (batch, label_num).
struct ClassifierOutput {
    std::vector<float> features, prediction;
};

struct ParameterCount {
    int64_t total = 0, trainable = 0;
};

/// A model handle (move-only). Calls on one model are serialised by the library.
class Model {
public:
    /// The registered model `name` (see getOptions) with options "key=value;key=value".
    Model(const std::string &name, int64_t num_neurons, int64_t num_units, int64_t num_output,
          const std::string &options = "") {
        detail::check(cebra_model_init(detail::c_str(name, "name"), num_neurons, num_units, num_output,
                                       detail::c_str(options, "options"), &handle_));
    }
    /// Takes ownership of a handle from the C interface.
    explicit Model(CebraModel *handle) noexcept : handle_(handle) {}
    /// The model a self-describing .safetensors file (written by save) records, with its weights.
    static Model loadFile(const std::string &path) {
        CebraModel *handle = nullptr;
        detail::check(cebra_model_load_file(detail::c_str(path, "path"), &handle));
        return Model(handle);
    }

    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;
    Model(Model &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Model &operator=(Model &&other) noexcept {
        if (this != &other) {
            cebra_model_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    ~Model() { cebra_model_free(handle_); }

    /// The C handle (still owned by this object); nullptr after a move.
    CebraModel *get() const noexcept { return handle_; }
    /// Gives up ownership: the caller frees the handle with cebra_model_free.
    CebraModel *release() noexcept { return std::exchange(handle_, nullptr); }
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// (left, right): left + right input steps make one output step.
    std::pair<int64_t, int64_t> offset() const {
        int64_t left = 0, right = 0;
        detail::check(cebra_model_get_offset(handle_, &left, &right));
        return {left, right};
    }
    int64_t numInput() const { return query(cebra_model_num_input); }
    int64_t numOutput() const { return query(cebra_model_num_output); }
    int64_t resampleFactor() const { return query(cebra_model_resample_factor); }
    ParameterCount numParameters() const {
        ParameterCount count;
        detail::check(cebra_model_num_parameters(handle_, &count.total, &count.trainable));
        return count;
    }
    /// Output steps forward gives for `time` input steps.
    int64_t outputTime(int64_t time) const {
        int64_t out_time = 0;
        detail::check(cebra_model_output_time(handle_, time, &out_time));
        return out_time;
    }

    /// Runs the model on `input` (batch, num_input, time) of `size` floats, without autograd.
    Output forward(const float *input, size_t size, int64_t batch, int64_t time) {
        Output out;
        int64_t num_input = numInput();
        detail::expect_size(size, detail::checked_product({batch, num_input, time}, "input"), "input");
        out.batch = batch;
        out.num_output = numOutput();
        int64_t steps = outputTime(time);
        out.values.resize(static_cast<size_t>(detail::checked_product({batch, out.num_output, steps}, "output")));
        detail::check(cebra_model_forward(handle_, input, batch, num_input, time, out.values.data(), out.values.size(),
                                          &out.out_time));
        return out;
    }
    Output forward(const std::vector<float> &input, int64_t batch, int64_t time) {
        return forward(input.data(), input.size(), batch, time);
    }

    /// Embeds a whole recording `data` (timesteps, neurons) stored in `layout`, as the reference
    /// CEBRA.transform: `pad` (the reference default) repeats the edge steps so that there is one output
    /// row per input step, without it one row per full receptive field; `batchSize` 0 is one pass,
    /// otherwise chunks of that many steps (same rows, memory bounded by the chunk). Resampling models
    /// give fewer rows. The result is in the same layout as `data`.
    Embedding transform(const float *data, int64_t timesteps, int64_t neurons, Layout layout, int64_t batchSize = 0,
                        bool pad = true) {
        Embedding out;
        out.num_output = numOutput();
        out.layout = layout;
        // No call reports the row count beforehand; it never exceeds `timesteps` (padding gives
        // exactly that many, no padding or resampling fewer), and the rows come first in `out`.
        out.values.resize(static_cast<size_t>(detail::checked_product({timesteps, out.num_output}, "output")));
        detail::check(cebra_model_transform(handle_, data, timesteps, neurons, static_cast<uint32_t>(layout), batchSize,
                                            pad ? 1 : 0, out.values.data(), out.values.size(), &out.timesteps));
        out.values.resize(static_cast<size_t>(out.timesteps * out.num_output));
        return out;
    }
    /// `data` must hold timesteps * neurons floats.
    Embedding transform(const std::vector<float> &data, int64_t timesteps, int64_t neurons, Layout layout,
                        int64_t batchSize = 0, bool pad = true) {
        detail::expect_size(data.size(), detail::checked_product({timesteps, neurons}, "data"), "data");
        return transform(data.data(), timesteps, neurons, layout, batchSize, pad);
    }

    /// Loads weights from a .safetensors file named by the reference state_dict keys.
    void load(const std::string &path) { detail::check(cebra_model_load(handle_, detail::c_str(path, "path"))); }
    /// Saves the weights with the architecture in the metadata (see loadFile).
    void save(const std::string &path) const { detail::check(cebra_model_save(handle_, detail::c_str(path, "path"))); }
    /// Dropout on or off (the default).
    void setTraining(bool training) { detail::check(cebra_model_set_training(handle_, training ? 1 : 0)); }
    /// Creates the classifier head (label_num classes) of a classifier model.
    void setOutputNum(int64_t label_num, bool override_existing = false) {
        detail::check(cebra_model_set_output_num(handle_, label_num, override_existing ? 1 : 0));
    }
    /// The classifier head size (0 before setOutputNum); UNSUPPORTED for a model that is not a classifier.
    int64_t labelNum() const { return query(cebra_model_label_num); }
    /// Features and class scores of a classifier model with a head, for `input` (batch, num_input, time)
    /// giving one output step. `label_num` 0: the head's size (labelNum()).
    ClassifierOutput forwardClassifier(const float *input, size_t size, int64_t batch, int64_t time,
                                       int64_t label_num = 0) {
        if (label_num == 0) label_num = labelNum();
        if (label_num < 1)
            detail::fail(CEBRA_STATUS_INVALID_ARGUMENT, "the classifier head is not initialised: call setOutputNum");
        int64_t num_input = numInput();
        detail::expect_size(size, detail::checked_product({batch, num_input, time}, "input"), "input");
        ClassifierOutput out;
        out.features.resize(static_cast<size_t>(detail::checked_product({batch, numOutput()}, "features")));
        out.prediction.resize(static_cast<size_t>(detail::checked_product({batch, label_num}, "prediction")));
        detail::check(cebra_model_forward_classifier(handle_, input, batch, num_input, time, out.features.data(),
                                                     out.features.size(), out.prediction.data(),
                                                     out.prediction.size()));
        return out;
    }
    ClassifierOutput forwardClassifier(const std::vector<float> &input, int64_t batch, int64_t time,
                                       int64_t label_num = 0) {
        return forwardClassifier(input.data(), input.size(), batch, time, label_num);
    }

private:
    int64_t query(CebraStatus (*getter)(const CebraModel *, int64_t *)) const {
        int64_t value = 0;
        detail::check(getter(handle_, &value));
        return value;
    }

    CebraModel *handle_ = nullptr;
};

// ---- streaming ----------------------------------------------------------------------------------------

/// Embeds a recording one time step at a time (move-only handle). It keeps its model alive: the Model it
/// was made from may be destroyed first. Calls on one stream are serialised by the library.
class Stream {
public:
    /// A stream over `model` (UNSUPPORTED for resampling models).
    explicit Stream(const Model &model) : num_input_(model.numInput()), num_output_(model.numOutput()) {
        detail::check(cebra_stream_new(model.get(), &handle_));
    }

    Stream(const Stream &) = delete;
    Stream &operator=(const Stream &) = delete;
    Stream(Stream &&other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), num_input_(other.num_input_), num_output_(other.num_output_) {}
    Stream &operator=(Stream &&other) noexcept {
        if (this != &other) {
            cebra_stream_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
            num_input_ = other.num_input_;
            num_output_ = other.num_output_;
        }
        return *this;
    }
    ~Stream() { cebra_stream_free(handle_); }

    /// The C handle (still owned by this object); nullptr after a move.
    CebraStream *get() const noexcept { return handle_; }
    explicit operator bool() const noexcept { return handle_ != nullptr; }
    /// Values per pushed sample (the model's neurons) and per embedding.
    int64_t numInput() const noexcept { return num_input_; }
    int64_t numOutput() const noexcept { return num_output_; }

    /// Steps between the newest pushed sample and the step whose embedding push returns (right - 1).
    int64_t lookahead() const {
        int64_t steps = 0;
        detail::check(cebra_stream_lookahead(handle_, &steps));
        return steps;
    }

    /// Feeds one step (`neurons` floats). Returns false while fewer than a receptive field of steps were
    /// pushed; then true, with the embedding of the step lookahead() before the newest written to
    /// `embedding` (`embeddingLen` >= numOutput() floats). Allocates nothing.
    bool push(const float *sample, int64_t neurons, float *embedding, size_t embeddingLen) {
        uint8_t ready = 0;
        detail::check(cebra_stream_push(handle_, sample, neurons, embedding, embeddingLen, &ready));
        return ready != 0;
    }
    /// The same with vectors: `embedding` is resized to numOutput() (allocating only the first time).
    bool push(const std::vector<float> &sample, std::vector<float> &embedding) {
        embedding.resize(static_cast<size_t>(num_output_));
        return push(sample.data(), static_cast<int64_t>(sample.size()), embedding.data(), embedding.size());
    }
    /// The embedding (numOutput() floats), or nothing while the stream is not ready.
    std::optional<std::vector<float>> push(const float *sample, int64_t neurons) {
        std::vector<float> embedding(static_cast<size_t>(num_output_));
        if (!push(sample, neurons, embedding.data(), embedding.size())) return std::nullopt;
        return embedding;
    }
    std::optional<std::vector<float>> push(const std::vector<float> &sample) {
        return push(sample.data(), static_cast<int64_t>(sample.size()));
    }

    /// Forgets every pushed sample: the next push starts a new recording.
    void reset() { detail::check(cebra_stream_reset(handle_)); }

private:
    CebraStream *handle_ = nullptr;
    int64_t num_input_ = 0, num_output_ = 0;
};

// ---- training -----------------------------------------------------------------------------------------

/// One training step's record, as the progress function sees it.
struct Step {
    int64_t step = 0, total_steps = 0;
    double loss = 0, align = 0, uniform = 0, temperature = 0;
};

/// Called after every step of Solver::fit: return true to go on, false to stop early (the solver
/// keeps what it learned). An exception thrown here stops the fit too, and fit rethrows it.
using ProgressFunction = std::function<bool(const Step &)>;

/// The per-step records of a fit (one value per step each).
struct History {
    std::vector<double> loss, align, uniform, temperature;
};

namespace detail {
struct ProgressState {
    ProgressFunction *function;
    std::exception_ptr error;
};
inline int32_t progress_trampoline(void *user_data, int64_t step, int64_t total, double loss, double align,
                                   double uniform, double temperature) {
    auto *state = static_cast<ProgressState *>(user_data);
    try {
        return (*state->function)(Step{step, total, loss, align, uniform, temperature}) ? 0 : 1;
    } catch (...) {
        state->error = std::current_exception();
        return 1;
    }
}
}  // namespace detail

/// CEBRA training (move-only handle): the reference's cebra.CEBRA(...).fit(X, y) and .transform(X).
/// Options "key=value;…" with the reference's names and defaults (model_architecture, batch_size,
/// learning_rate, temperature, temperature_mode, output_dimension, max_iterations, seed, device, …).
///
///   cebra::Solver solver("model_architecture=offset10-model;batch_size=512;max_iterations=1000");
///   solver.fit(data, T, N, cebra::Layout::RowMajor, position);      // continuous labels (T, 1)
///   cebra::Embedding e = solver.transform(data, T, N, cebra::Layout::RowMajor);
///   cebra::Model model = solver.model();                           // for streaming
class Solver {
public:
    explicit Solver(const std::string &options = "") {
        detail::check(cebra_solver_new(detail::c_str(options, "options"), &handle_));
    }
    /// Takes ownership of a handle from the C interface.
    explicit Solver(CebraSolver *handle) noexcept : handle_(handle) {}
    /// A fitted solver saved by save().
    static Solver load(const std::string &path) {
        CebraSolver *handle = nullptr;
        detail::check(cebra_solver_load(detail::c_str(path, "path"), &handle));
        return Solver(handle);
    }

    Solver(const Solver &) = delete;
    Solver &operator=(const Solver &) = delete;
    Solver(Solver &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Solver &operator=(Solver &&other) noexcept {
        if (this != &other) {
            cebra_solver_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    ~Solver() { cebra_solver_free(handle_); }

    /// The C handle (still owned by this object); nullptr after a move.
    CebraSolver *get() const noexcept { return handle_; }
    /// Gives up ownership: the caller frees the handle with cebra_solver_free.
    CebraSolver *release() noexcept { return std::exchange(handle_, nullptr); }
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// Trains from scratch on `data` (timesteps, neurons) in `layout`. `continuous` (timesteps,
    /// numContinuous) in the same layout, or nullptr with numContinuous 0; `discrete` one label per step
    /// or nullptr. `progress` (may be empty) sees every step and may stop the fit early.
    void fit(const float *data, int64_t timesteps, int64_t neurons, Layout layout, const float *continuous = nullptr,
             int64_t numContinuous = 0, const int64_t *discrete = nullptr, ProgressFunction progress = {}) {
        detail::ProgressState state{&progress, nullptr};
        detail::check(cebra_solver_fit(handle_, data, timesteps, neurons, static_cast<uint32_t>(layout), continuous,
                                       numContinuous, discrete, progress ? detail::progress_trampoline : nullptr,
                                       &state));
        if (state.error) std::rethrow_exception(state.error);
    }
    /// The same with vectors: `data` holds timesteps * neurons floats; `continuous` (empty: none) a
    /// multiple of timesteps; `discrete` (empty: none) timesteps labels.
    void fit(const std::vector<float> &data, int64_t timesteps, int64_t neurons, Layout layout,
             const std::vector<float> &continuous = {}, const std::vector<int64_t> &discrete = {},
             ProgressFunction progress = {}) {
        detail::expect_size(data.size(), detail::checked_product({timesteps, neurons}, "data"), "data");
        int64_t numContinuous = 0;
        if (!continuous.empty()) {
            if (continuous.size() % static_cast<size_t>(timesteps) != 0)
                detail::fail(CEBRA_STATUS_SHAPE_MISMATCH, "continuous has " + std::to_string(continuous.size()) +
                                                              " floats, not a multiple of timesteps = " +
                                                              std::to_string(timesteps));
            numContinuous = static_cast<int64_t>(continuous.size()) / timesteps;
        }
        if (!discrete.empty() && discrete.size() != static_cast<size_t>(timesteps))
            detail::fail(CEBRA_STATUS_SHAPE_MISMATCH, "discrete has " + std::to_string(discrete.size()) +
                                                          " labels for " + std::to_string(timesteps) + " time steps");
        fit(data.data(), timesteps, neurons, layout, continuous.empty() ? nullptr : continuous.data(), numContinuous,
            discrete.empty() ? nullptr : discrete.data(), std::move(progress));
    }

    /// The embedding of `data` (timesteps, neurons), padded as the reference's transform: (timesteps,
    /// output_dimension) in the same layout.
    Embedding transform(const float *data, int64_t timesteps, int64_t neurons, Layout layout) {
        Embedding out;
        out.num_output = outputDimension();
        out.layout = layout;
        out.values.resize(static_cast<size_t>(detail::checked_product({timesteps, out.num_output}, "output")));
        detail::check(cebra_solver_transform(handle_, data, timesteps, neurons, static_cast<uint32_t>(layout),
                                             out.values.data(), out.values.size(), &out.timesteps));
        return out;
    }
    Embedding transform(const std::vector<float> &data, int64_t timesteps, int64_t neurons, Layout layout) {
        detail::expect_size(data.size(), detail::checked_product({timesteps, neurons}, "data"), "data");
        return transform(data.data(), timesteps, neurons, layout);
    }

    /// The loss of every step of the last fit.
    std::vector<double> lossHistory() const {
        return doubles([&](double *out, size_t len, size_t *count) {
            return cebra_solver_loss_history(handle_, out, len, count);
        });
    }
    /// One per-step record (CEBRA_HISTORY_LOSS, _ALIGN, _UNIFORM, _TEMPERATURE).
    std::vector<double> history(CebraHistoryField field) const {
        return doubles([&](double *out, size_t len, size_t *count) {
            return cebra_solver_history(handle_, field, out, len, count);
        });
    }
    /// Every per-step record.
    History history() const {
        return History{history(CEBRA_HISTORY_LOSS), history(CEBRA_HISTORY_ALIGN), history(CEBRA_HISTORY_UNIFORM),
                       history(CEBRA_HISTORY_TEMPERATURE)};
    }
    /// Whether fit (or load) gave the solver a trained model.
    bool isFitted() const {
        uint8_t fitted = 0;
        detail::check(cebra_solver_is_fitted(handle_, &fitted));
        return fitted != 0;
    }
    /// Every option in use, "key=value;…", the seed included (drawn when it was not given).
    std::string options() const {
        size_t needed = 0;
        detail::check(cebra_solver_options(handle_, nullptr, 0, &needed));
        std::vector<char> buf(needed);
        detail::check(cebra_solver_options(handle_, buf.data(), buf.size(), &needed));
        return std::string(buf.data());
    }
    /// A model holding a copy of the trained weights (for Model::transform and Stream).
    Model model() const {
        CebraModel *model = nullptr;
        detail::check(cebra_solver_model(handle_, &model));
        return Model(model);
    }
    /// Saves the fitted solver (a .safetensors file that Solver::load and Model::loadFile read).
    void save(const std::string &path) const { detail::check(cebra_solver_save(handle_, detail::c_str(path, "path"))); }

private:
    template <typename Query>
    static std::vector<double> doubles(Query query) {
        size_t count = 0;
        detail::check(query(nullptr, 0, &count));
        std::vector<double> values(count);
        if (count > 0) detail::check(query(values.data(), values.size(), &count));
        values.resize(count);
        return values;
    }
    int64_t outputDimension() const {
        std::string text = options(), key = "output_dimension=";
        size_t at = text.find(key);
        if (at != 0) at = text.find(";" + key) == std::string::npos ? std::string::npos : text.find(";" + key) + 1;
        if (at == std::string::npos) detail::fail(CEBRA_STATUS_PANIC, "the solver options lack output_dimension");
        return std::stoll(text.substr(at + key.size()));
    }

    CebraSolver *handle_ = nullptr;
};

// ---- criterions ---------------------------------------------------------------------------------------

/// Criterion outputs: one value each for the InfoNCE family, n (per sample) for nce.
struct Losses {
    std::vector<float> loss, align, uniform;
};

/// The scalar training minimises and its gradients (shaped as ref, pos, neg);
/// grad_log_inverse_temperature only for learnable criterions.
struct Gradients {
    float loss = 0;
    std::vector<float> grad_ref, grad_pos, grad_neg;
    std::optional<double> grad_log_inverse_temperature;
};

/// pos_dist (n) and neg_dist (n, m).
struct Similarity {
    std::vector<float> pos_dist, neg_dist;
};

namespace detail {
// n, m of (ref, pos: n*d floats; neg: m*d floats).
inline std::pair<int64_t, int64_t> samples(size_t ref, size_t pos, size_t neg, int64_t d) {
    if (d < 1) fail(CEBRA_STATUS_INVALID_ARGUMENT, "d must be at least 1");
    size_t dim = static_cast<size_t>(d);
    if (ref % dim || neg % dim || ref == 0 || neg == 0)
        fail(CEBRA_STATUS_SHAPE_MISMATCH, "ref and neg must hold a positive multiple of d = " + std::to_string(d) +
                                              " floats");
    if (pos != ref) fail(CEBRA_STATUS_SHAPE_MISMATCH, "pos must have as many floats as ref");
    return {static_cast<int64_t>(ref / dim), static_cast<int64_t>(neg / dim)};
}
}  // namespace detail

/// A criterion handle (move-only).
class Criterion {
public:
    /// `name` (see criterionOptions) with options "key=value;key=value".
    explicit Criterion(const std::string &name, const std::string &options = "") : name_(name) {
        detail::check(cebra_criterion_init(detail::c_str(name, "name"), detail::c_str(options, "options"), &handle_));
    }
    Criterion(const Criterion &) = delete;
    Criterion &operator=(const Criterion &) = delete;
    Criterion(Criterion &&other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), name_(std::move(other.name_)) {}
    Criterion &operator=(Criterion &&other) noexcept {
        if (this != &other) {
            cebra_criterion_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
            name_ = std::move(other.name_);
        }
        return *this;
    }
    ~Criterion() { cebra_criterion_free(handle_); }

    CebraCriterion *get() const noexcept { return handle_; }
    explicit operator bool() const noexcept { return handle_ != nullptr; }
    const std::string &name() const noexcept { return name_; }

    double temperature() const {
        double t = 0;
        detail::check(cebra_criterion_get_temperature(handle_, &t));
        return t;
    }

    /// ref, pos (n, d) and neg (m, d), row-major.
    Losses forward(const float *ref, const float *pos, int64_t n, const float *neg, int64_t m, int64_t d) {
        size_t count = name_ == "nce" && n > 0 ? static_cast<size_t>(n) : 1;
        Losses out{std::vector<float>(count), std::vector<float>(count), std::vector<float>(count)};
        detail::check(cebra_criterion_forward(handle_, ref, pos, n, neg, m, d, out.loss.data(), out.align.data(),
                                              out.uniform.data(), count));
        return out;
    }
    Losses forward(const std::vector<float> &ref, const std::vector<float> &pos, const std::vector<float> &neg,
                   int64_t d) {
        auto [n, m] = detail::samples(ref.size(), pos.size(), neg.size(), d);
        return forward(ref.data(), pos.data(), n, neg.data(), m, d);
    }

    Gradients backward(const float *ref, const float *pos, int64_t n, const float *neg, int64_t m, int64_t d) {
        Gradients out;
        if (n > 0 && m > 0 && d > 0) {
            out.grad_ref.resize(static_cast<size_t>(detail::checked_product({n, d}, "grad_ref")));
            out.grad_pos.resize(out.grad_ref.size());
            out.grad_neg.resize(static_cast<size_t>(detail::checked_product({m, d}, "grad_neg")));
        }
        double grad_temperature = std::nan("");
        detail::check(cebra_criterion_backward(handle_, ref, pos, n, neg, m, d, &out.loss, out.grad_ref.data(),
                                               out.grad_ref.size(), out.grad_pos.data(), out.grad_pos.size(),
                                               out.grad_neg.data(), out.grad_neg.size(), &grad_temperature));
        if (name_.rfind("learnable-", 0) == 0) out.grad_log_inverse_temperature = grad_temperature;
        return out;
    }
    Gradients backward(const std::vector<float> &ref, const std::vector<float> &pos, const std::vector<float> &neg,
                       int64_t d) {
        auto [n, m] = detail::samples(ref.size(), pos.size(), neg.size(), d);
        return backward(ref.data(), pos.data(), n, neg.data(), m, d);
    }

private:
    CebraCriterion *handle_ = nullptr;
    std::string name_;
};

namespace detail {
using SimilarityFn = CebraStatus (*)(const float *, const float *, int64_t, const float *, int64_t, int64_t, float *,
                                     size_t, float *, size_t);
inline Similarity similarity(SimilarityFn fn, const float *ref, const float *pos, int64_t n, const float *neg,
                             int64_t m, int64_t d) {
    Similarity out;
    if (n > 0 && m > 0) {
        out.pos_dist.resize(static_cast<size_t>(n));
        out.neg_dist.resize(static_cast<size_t>(checked_product({n, m}, "neg_dist")));
    }
    check(fn(ref, pos, n, neg, m, d, out.pos_dist.data(), out.pos_dist.size(), out.neg_dist.data(),
             out.neg_dist.size()));
    return out;
}
}  // namespace detail

/// pos_dist[i] = ref_i . pos_i, neg_dist[i*m + j] = ref_i . neg_j.
inline Similarity dotSimilarity(const float *ref, const float *pos, int64_t n, const float *neg, int64_t m, int64_t d) {
    return detail::similarity(cebra_dot_similarity, ref, pos, n, neg, m, d);
}
inline Similarity dotSimilarity(const std::vector<float> &ref, const std::vector<float> &pos,
                                const std::vector<float> &neg, int64_t d) {
    auto [n, m] = detail::samples(ref.size(), pos.size(), neg.size(), d);
    return dotSimilarity(ref.data(), pos.data(), n, neg.data(), m, d);
}
/// Negative squared Euclidean distances, shaped as in dotSimilarity.
inline Similarity euclideanSimilarity(const float *ref, const float *pos, int64_t n, const float *neg, int64_t m,
                                      int64_t d) {
    return detail::similarity(cebra_euclidean_similarity, ref, pos, n, neg, m, d);
}
inline Similarity euclideanSimilarity(const std::vector<float> &ref, const std::vector<float> &pos,
                                      const std::vector<float> &neg, int64_t d) {
    auto [n, m] = detail::samples(ref.size(), pos.size(), neg.size(), d);
    return euclideanSimilarity(ref.data(), pos.data(), n, neg.data(), m, d);
}

/// The stabilised InfoNCE of pos_dist (n) and neg_dist (n, m).
struct InfoNce {
    float loss = 0, align = 0, uniform = 0;
};
inline InfoNce infonce(const float *pos_dist, const float *neg_dist, int64_t n, int64_t m) {
    InfoNce out;
    detail::check(cebra_infonce(pos_dist, neg_dist, n, m, &out.loss, &out.align, &out.uniform));
    return out;
}
inline InfoNce infonce(const std::vector<float> &pos_dist, const std::vector<float> &neg_dist) {
    int64_t n = static_cast<int64_t>(pos_dist.size());
    if (n == 0 || neg_dist.size() % pos_dist.size() || neg_dist.empty())
        detail::fail(CEBRA_STATUS_SHAPE_MISMATCH, "neg_dist must hold a positive multiple of n = " +
                                                      std::to_string(n) + " floats");
    return infonce(pos_dist.data(), neg_dist.data(), n, static_cast<int64_t>(neg_dist.size() / pos_dist.size()));
}

}  // namespace cebra

#endif  // CEBRA_HPP
