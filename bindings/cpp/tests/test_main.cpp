// test_main.cpp: cebra.hpp against the reference fixtures of tests/fixtures/ (what the C suite's
// test_api.c checks, through the C++ API), and exceptions on bad input. test_callbacks.cpp and
// test_transform.cpp are the other translation units of the same program.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cebra.hpp"
#include "check.hpp"

namespace {

// fx_* objects owned by unique_ptr.
struct FileCloser {
    void operator()(fx_file *f) const { fx_close(f); }
};
struct JsonFree {
    void operator()(fx_json *j) const { fx_json_free(j); }
};
using File = std::unique_ptr<fx_file, FileCloser>;
using Json = std::unique_ptr<fx_json, JsonFree>;

File open_fixture(const std::string &rel) { return File(fx_open(test::fixture(rel).c_str())); }

Json manifest;

std::vector<std::string> strings(const fx_json *array, size_t limit = 0) {
    std::vector<std::string> out;
    for (size_t i = 0; array && i < array->count && (limit == 0 || i < limit); i++) out.push_back(array->items[i].string);
    return out;
}

// CEBRA_TEST_QUICK set (and not "0"): fewer models and criterion cases, as in the C suite.
bool quick_mode() {
    const char *q = std::getenv("CEBRA_TEST_QUICK");
    return q && *q && std::strcmp(q, "0") != 0;
}

bool is_classifier(const std::string &name) { return name.rfind("supervised", 0) == 0; }

int64_t meta_int(const fx_file *f, const char *key) {
    const char *v = fx_meta(f, key);
    return v ? std::strtoll(v, nullptr, 10) : -1;
}

void test_version() {
    CHECK(cebra::version() == std::to_string(CEBRA_VERSION_MAJOR) + "." + std::to_string(CEBRA_VERSION_MINOR) + "." +
                                  std::to_string(CEBRA_VERSION_PATCH),
          "version() matches the header macros: " + cebra::version());
    CHECK(cebra::abiVersion() == CEBRA_ABI_VERSION, "abiVersion() == CEBRA_ABI_VERSION");
    CHECK_NO_THROW(cebra::checkAbi());
    CHECK(cebra::statusName(CEBRA_STATUS_IO) == "CEBRA_STATUS_IO", "statusName");
    CHECK(!cebra::cudaIsAvailable(), "the CPU build has no CUDA");
    CHECK_NO_THROW(cebra::manualSeed(0));
}

void test_errors() {
    try {
        cebra::Model m("no-such-model", 7, 12, 3);
        CHECK(false, "an unknown model name throws");
    } catch (const cebra::Error &e) {
        CHECK(e.status() == CEBRA_STATUS_UNKNOWN_NAME, "unknown name: status UNKNOWN_NAME");
        CHECK(std::string(e.statusName()) == "CEBRA_STATUS_UNKNOWN_NAME", "statusName()");
        CHECK(e.message().find("no-such-model") != std::string::npos, "the message names the model: " + e.message());
        CHECK(std::string(e.what()).find("CEBRA_STATUS_UNKNOWN_NAME: ") == 0, std::string("what(): ") + e.what());
    }
    CHECK_THROWS(cebra::debugPanic(), CEBRA_STATUS_PANIC);
    CHECK_THROWS(cebra::Model("offset10-model", 0, 12, 3), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(cebra::Model("offset10-model", 7, 12, 3, "no_such_option=1"), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(cebra::Model(std::string("offset10\0model", 14), 7, 12, 3), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(cebra::Model::loadFile(test::fixture("no-such-file.safetensors")), CEBRA_STATUS_IO);
    CHECK_THROWS(cebra::Model::loadFile(test::fixture("manifest.json")), CEBRA_STATUS_FORMAT);
    CHECK_THROWS(cebra::getOptions(std::string("a\0b", 3)), CEBRA_STATUS_INVALID_ARGUMENT);

    cebra::Model m("offset10-model", 7, 12, 3);
    std::vector<float> x(7 * 10, 0.5f);
    CHECK_THROWS(m.forward(x, 1, 11), CEBRA_STATUS_SHAPE_MISMATCH);       // 70 floats are not 1*7*11
    CHECK_THROWS(m.forward(x.data(), 70, 1, 70 / 7 - 1), CEBRA_STATUS_SHAPE_MISMATCH);
    std::vector<float> short_x(7 * 9, 0.5f);
    CHECK_THROWS(m.forward(short_x, 1, 9), CEBRA_STATUS_SHAPE_MISMATCH);  // shorter than the receptive field
    CHECK_THROWS(m.forward(x, 0, 10), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(m.outputTime(3), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(m.load(test::fixture("no-such-file.safetensors")), CEBRA_STATUS_IO);
    CHECK_THROWS(m.load(test::fixture("models/offset5-model.safetensors")), CEBRA_STATUS_FORMAT);
    CHECK_THROWS(m.setOutputNum(5), CEBRA_STATUS_UNSUPPORTED);
    CHECK_THROWS(m.forwardClassifier(x, 1, 10, 5), CEBRA_STATUS_UNSUPPORTED);
    CHECK_THROWS(m.forwardClassifier(x, 1, 10), CEBRA_STATUS_UNSUPPORTED);  // not a classifier: no head size
    CHECK_THROWS(m.save("/nonexistent-dir/x.safetensors"), CEBRA_STATUS_IO);
    CHECK_THROWS(cebra::setNumThreads(0), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(cebra::unregisterModel("no-such-model"), CEBRA_STATUS_UNKNOWN_NAME);

    CHECK_THROWS(cebra::Criterion("no-such-criterion"), CEBRA_STATUS_UNKNOWN_NAME);
    CHECK_THROWS(cebra::Criterion("infonce", "temperature=-1"), CEBRA_STATUS_INVALID_ARGUMENT);
    cebra::Criterion c("infonce");
    std::vector<float> r(6, 1.0f), q(4, 1.0f);
    CHECK_THROWS(c.forward(r, std::vector<float>(4, 1.0f), q, 2), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(c.forward(r, r, std::vector<float>(3, 1.0f), 2), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(c.backward(r, r, q, 0), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(c.forward(r.data(), r.data(), 3, q.data(), 2, -1), CEBRA_STATUS_INVALID_ARGUMENT);
    CHECK_THROWS(cebra::dotSimilarity(r, r, std::vector<float>(5, 1.0f), 2), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(cebra::infonce(std::vector<float>(3, 1.0f), std::vector<float>(4, 1.0f)), CEBRA_STATUS_SHAPE_MISMATCH);
    CHECK_THROWS(cebra::infonce(nullptr, q.data(), 2, 2), CEBRA_STATUS_NULL_POINTER);
}

void test_get_options() {
    auto names = strings(fx_json_get(manifest.get(), "names"));
    CHECK(names.size() == 147, "the manifest lists 147 names");
    CHECK(cebra::getOptions() == names, "getOptions() lists the reference names in order");
    CHECK(cebra::getOptions(nullptr, 0, false) == strings(fx_json_get(manifest.get(), "names_unexpanded")),
          "getOptions(expand_parametrized=false)");
    CHECK(cebra::getOptions(nullptr, 5) == strings(fx_json_get(manifest.get(), "names"), 5), "limit 5");
    const fx_json *queries = fx_json_get(manifest.get(), "queries");
    for (size_t i = 0; queries && i < queries->count; i++) {
        const fx_json *q = &queries->items[i];
        const fx_json *pattern = fx_json_get(q, "pattern"), *limit = fx_json_get(q, "limit");
        size_t c_limit = 0;
        if (limit->kind == FX_JNUMBER) {
            if (limit->number <= 0) continue;
            c_limit = static_cast<size_t>(limit->number);
        }
        auto got = pattern->kind == FX_JSTRING
                       ? cebra::getOptions(std::string(pattern->string), c_limit, fx_json_get(q, "expand")->number != 0)
                       : cebra::getOptions(nullptr, c_limit, fx_json_get(q, "expand")->number != 0);
        CHECK(got == strings(fx_json_get(q, "result")),
              std::string("getOptions(") + (pattern->kind == FX_JSTRING ? pattern->string : "null") + ") = reference");
    }
    CHECK(cebra::getOptions("no-such-*").empty(), "no match gives an empty list");
    CHECK((cebra::criterionOptions() ==
           std::vector<std::string>{"fixed-cosine-infonce", "fixed-euclidean-infonce", "learnable-cosine-infonce",
                                    "learnable-euclidean-infonce", "nce", "infonce", "infomse"}),
          "criterion names");
    CHECK(cebra::criterionOptions(std::string("*infonce"), 1) == std::vector<std::string>{"fixed-cosine-infonce"},
          "criterion pattern + limit");
}

void check_model(const std::string &arch, const std::string &weights) {
    File io = open_fixture("models/" + weights + ".io.safetensors");
    if (!CHECK(io != nullptr, "fixture " + weights)) return;
    const fx_tensor *in = fx_tensor_get(io.get(), "input"), *out = fx_tensor_get(io.get(), "output");
    if (!CHECK(in && out && in->data && out->data && in->ndim == 3, weights + ": input/output")) return;
    try {
        cebra::Model m(arch, 7, 12, 3);
        if (is_classifier(arch)) m.setOutputNum(5);
        m.load(test::fixture("models/" + weights + ".safetensors"));
        if (fx_meta(io.get(), "offset_left"))
            CHECK(m.offset() == std::make_pair(meta_int(io.get(), "offset_left"), meta_int(io.get(), "offset_right")),
                  arch + ": offset");
        CHECK(m.numInput() == 7 && m.numOutput() == 3, arch + ": sizes");
        if (fx_meta(io.get(), "resample_factor"))
            CHECK(m.resampleFactor() == meta_int(io.get(), "resample_factor"), arch + ": resample factor");
        if (fx_meta(io.get(), "num_parameters_total")) {
            cebra::ParameterCount count = m.numParameters();
            CHECK(count.total == meta_int(io.get(), "num_parameters_total") &&
                      count.trainable == meta_int(io.get(), "num_parameters_trainable"),
                  arch + ": parameter count");
        }
        cebra::Output y = m.forward(in->data, in->numel, in->shape[0], in->shape[2]);
        int64_t expect_time = out->ndim == 3 ? out->shape[2] : 1;
        CHECK(y.batch == in->shape[0] && y.num_output == 3 && y.out_time == expect_time, arch + ": output shape");
        CHECK(test::close(y.values, out->data, out->numel, 0, 1e-5), arch + ": forward matches the reference");
        m.setTraining(true);
        m.setTraining(false);
        CHECK(test::close(m.forward(in->data, in->numel, in->shape[0], in->shape[2]).values, out->data, out->numel, 0,
                          1e-5),
              arch + ": eval forward after setTraining(false)");
        if (arch.find("dropout") != std::string::npos) {
            m.setTraining(true);
            cebra::Output z = m.forward(in->data, in->numel, in->shape[0], in->shape[2]);
            CHECK(!test::close(z.values, out->data, out->numel, 0, 1e-3), arch + ": training mode applies dropout");
            m.setTraining(false);
        }
        if (is_classifier(arch)) {
            const fx_tensor *feat = fx_tensor_get(io.get(), "features"), *pred = fx_tensor_get(io.get(), "prediction");
            cebra::ClassifierOutput c = m.forwardClassifier(in->data, in->numel, in->shape[0], in->shape[2]);
            CHECK(feat && pred && test::close(c.features, feat->data, feat->numel, 0, 1e-5) &&
                      test::close(c.prediction, pred->data, pred->numel, 0, 1e-5),
                  arch + ": classifier features and prediction");
        }
    } catch (const std::exception &e) {
        CHECK(false, arch + ": " + e.what());
    }
}

void test_models() {
    static const char *required[] = {
        "offset10-model",          "offset5-model",         "offset1-model",
        "offset40-model-4x-subsample", "offset4-model-2x-subsample", "offset1-model-mse-clip-1-1",
        "offset1-model-mse-v2-3layers-tanh", "offset1-model-mse-resnet-2layers", "supervised10-model",
        "supervised1-model",       "offset36-model-dropout", "resample-model",
    };
    // Quick mode (under Valgrind): a convolutional, a resampling and a classifier model.
    static const char *quick[] = {"offset10-model", "offset4-model-2x-subsample", "supervised10-model"};
    if (quick_mode()) {
        for (const char *name : quick) check_model(name, name);
        return;
    }
    for (const char *name : required) check_model(name, name);
    check_model("offset1-model-mse-v2-3layers", "tied-offset1-model-mse-v2-3layers");
    check_model("offset1-model-mse-resnet-3layers-tanh", "tied-offset1-model-mse-resnet-3layers-tanh");
    // The rest of the registry.
    for (const std::string &name : strings(fx_json_get(manifest.get(), "names"))) {
        bool listed = false;
        for (const char *r : required) listed |= name == r;
        if (!listed) check_model(name, name);
    }
}

void test_roundtrip() {
    for (std::string name : {"offset10-model", "supervised10-model"}) {
        try {
            cebra::Model m(name, 7, 12, 3);
            if (is_classifier(name)) m.setOutputNum(5);
            m.load(test::fixture("models/" + name + ".safetensors"));
            std::string path = test::tmpfile("roundtrip.safetensors");
            m.save(path);
            cebra::Model loaded = cebra::Model::loadFile(path);
            std::remove(path.c_str());
            File io = open_fixture("models/" + name + ".io.safetensors");
            const fx_tensor *in = fx_tensor_get(io.get(), "input");
            CHECK(m.forward(in->data, in->numel, in->shape[0], in->shape[2]).values ==
                      loaded.forward(in->data, in->numel, in->shape[0], in->shape[2]).values,
                  name + ": save -> loadFile gives identical output");
            CHECK(m.offset() == loaded.offset(), name + ": same architecture");
            if (is_classifier(name)) {
                auto a = m.forwardClassifier(in->data, in->numel, in->shape[0], in->shape[2]);
                auto b = loaded.forwardClassifier(in->data, in->numel, in->shape[0], in->shape[2]);  // head size from the file
                CHECK(a.features == b.features && a.prediction == b.prediction, name + ": classifier head survives");
            }
        } catch (const std::exception &e) {
            CHECK(false, name + ": " + e.what());
        }
    }
}

void check_criterion_case(const std::string &case_name) {
    File f = open_fixture("criterions/" + case_name + ".safetensors");
    if (!CHECK(f != nullptr, "criterion fixture " + case_name)) return;
    const char *crit = fx_meta(f.get(), "criterion"), *options = fx_meta(f.get(), "options");
    const char *temp = fx_meta(f.get(), "temperature");
    auto T = [&](const char *name) { return fx_tensor_get(f.get(), name); };
    const fx_tensor *ref = T("ref"), *pos = T("pos"), *neg = T("neg"), *loss = T("loss"), *align = T("align"),
                    *uniform = T("uniform"), *gref = T("grad_ref"), *gpos = T("grad_pos"), *gneg = T("grad_neg"),
                    *glit = T("grad_log_inverse_temperature");
    if (!CHECK(crit && options && ref && pos && neg && loss && align && uniform && gref && gpos && gneg,
               case_name + ": complete fixture"))
        return;
    bool extreme = case_name.find("extreme") != std::string::npos;
    auto near = [&](const std::vector<float> &got, const fx_tensor *want) {
        double abs_tol = extreme ? std::max(1e-6, test::max_abs(want->data, want->numel) * 1e-5) : 1e-6;
        return test::close(got, want->data, want->numel, 1e-5, abs_tol);
    };
    int64_t n = ref->shape[0], d = ref->shape[1], m = neg->shape[0];
    try {
        cebra::Criterion c(crit, options);
        if (temp) CHECK(std::fabs(c.temperature() - std::atof(temp)) <= 1e-6 * std::atof(temp), case_name + ": temperature");
        cebra::Losses l = c.forward(ref->data, pos->data, n, neg->data, m, d);
        CHECK(near(l.loss, loss) && near(l.align, align) && near(l.uniform, uniform), case_name + ": loss, align, uniform");
        // The vector overload gives the same.
        std::vector<float> r(ref->data, ref->data + ref->numel), p(pos->data, pos->data + pos->numel),
            q(neg->data, neg->data + neg->numel);
        cebra::Losses l2 = c.forward(r, p, q, d);
        CHECK(l2.loss == l.loss && l2.align == l.align && l2.uniform == l.uniform, case_name + ": vector overload");

        double want_scalar = 0;
        if (std::strcmp(crit, "nce") == 0) {
            for (size_t i = 0; i < loss->numel; i++) want_scalar -= loss->data[i];
            want_scalar /= double(loss->numel);
        } else {
            want_scalar = loss->data[0];
        }
        cebra::Gradients g = c.backward(r, p, q, d);
        float ws = float(want_scalar);
        CHECK(test::close(&g.loss, &ws, 1), case_name + ": backward loss");
        CHECK(near(g.grad_ref, gref) && near(g.grad_pos, gpos) && near(g.grad_neg, gneg), case_name + ": gradients");
        if (glit) {
            float gt = g.grad_log_inverse_temperature ? float(*g.grad_log_inverse_temperature) : NAN;
            CHECK(g.grad_log_inverse_temperature && near(std::vector<float>{gt}, glit),
                  case_name + ": grad_log_inverse_temperature");
        } else {
            CHECK(!g.grad_log_inverse_temperature, case_name + ": no temperature gradient for a fixed criterion");
        }
    } catch (const std::exception &e) {
        CHECK(false, case_name + ": " + e.what());
    }
}

void test_criterions() {
    const fx_json *cases = fx_json_get(manifest.get(), "criterion_cases");
    CHECK(cases && cases->count >= 50, "manifest lists the criterion cases");
    // Quick mode: every fourth case (each criterion still appears).
    for (size_t i = 0; cases && i < cases->count; i += quick_mode() ? 4 : 1) check_criterion_case(cases->items[i].string);
    // Aliases.
    std::vector<float> r{1, 0, 0, 1, 0.6f, 0.8f}, p{0.8f, 0.6f, 1, 0, 0, 1}, q{0, 1, 1, 0};
    cebra::Criterion a("infonce", "temperature=0.5"), b("fixed-cosine-infonce", "temperature=0.5");
    cebra::Losses la = a.forward(r, p, q, 2), lb = b.forward(r, p, q, 2);
    CHECK(la.loss == lb.loss && la.align == lb.align && la.uniform == lb.uniform, "infonce == fixed-cosine-infonce");
}

void test_similarity() {
    File f = open_fixture("criterions/similarity.safetensors");
    if (!CHECK(f != nullptr, "similarity fixture")) return;
    for (std::string c : {"example", "random1", "random2"}) {
        const char *dims = fx_meta(f.get(), c.c_str());
        Json j(dims ? fx_json_parse(dims, std::strlen(dims), nullptr) : nullptr);
        if (!CHECK(j != nullptr, "similarity " + c + ": dims")) continue;
        int64_t n = int64_t(fx_json_get(j.get(), "n")->number), m = int64_t(fx_json_get(j.get(), "m")->number),
                d = int64_t(fx_json_get(j.get(), "d")->number);
        auto T = [&](const char *s) { return fx_f32(f.get(), (c + "." + s).c_str(), nullptr); };
        cebra::Similarity dot = cebra::dotSimilarity(T("ref"), T("pos"), n, T("neg"), m, d);
        CHECK(test::close(dot.pos_dist, T("dot_pos"), size_t(n)) && test::close(dot.neg_dist, T("dot_neg"), size_t(n * m)),
              c + ": dot similarity");
        std::vector<float> ref(T("ref"), T("ref") + n * d), pos(T("pos"), T("pos") + n * d), neg(T("neg"), T("neg") + m * d);
        cebra::Similarity euc = cebra::euclideanSimilarity(ref, pos, neg, d);
        CHECK(test::close(euc.pos_dist, T("euclidean_pos"), size_t(n)) &&
                  test::close(euc.neg_dist, T("euclidean_neg"), size_t(n * m)),
              c + ": euclidean similarity");
        cebra::InfoNce l = cebra::infonce(T("dot_pos"), T("dot_neg"), n, m);
        CHECK(test::close(&l.loss, T("infonce_loss"), 1) && test::close(&l.align, T("infonce_align"), 1) &&
                  test::close(&l.uniform, T("infonce_uniform"), 1),
              c + ": infonce");
        cebra::InfoNce l2 = cebra::infonce(std::vector<float>(T("dot_pos"), T("dot_pos") + n),
                                           std::vector<float>(T("dot_neg"), T("dot_neg") + n * m));
        CHECK(l2.loss == l.loss && l2.align == l.align && l2.uniform == l.uniform, c + ": infonce vector overload");
    }
}

}  // namespace

int main() {
    size_t len = 0;
    unsigned char *text = fx_read_all(test::fixture("manifest.json").c_str(), &len);
    const char *err = nullptr;
    manifest.reset(text ? fx_json_parse(reinterpret_cast<const char *>(text), len, &err) : nullptr);
    std::free(text);
    if (!manifest) {
        std::fprintf(stderr, "cannot read %s; set CEBRA_FIXTURES\n", test::fixture("manifest.json").c_str());
        return 2;
    }
    cebra::setNumThreads(1);
    test_version();
    test_errors();
    test_get_options();
    test_models();
    test_roundtrip();
    test_criterions();
    test_similarity();
    test::test_callbacks();
    test::test_handles();
    test::test_transform(quick_mode());
    test::test_solver();
    manifest.reset();
    std::printf("RESULT test_cpp: %ld passed, %ld failed\n", test::passed, test::failed);
    return test::failed == 0 ? 0 : 1;
}
