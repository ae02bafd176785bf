// check.hpp: the small check framework of the C++ tests (both translation units share its inline
// counters, so the one-definition rule is exercised for it too), plus fixture helpers.
#ifndef CEBRA_CPP_TEST_CHECK_HPP
#define CEBRA_CPP_TEST_CHECK_HPP

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cebra.hpp"

extern "C" {
#include "fixture.h"
}

namespace test {

inline long passed = 0, failed = 0;

inline bool record(bool ok, const char *file, int line, const std::string &what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        std::fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what.c_str());
    }
    return ok;
}

// Runs `body`, which must throw cebra::Error with `status`.
template <typename Body>
bool throws_status(Body body, CebraStatus status, const char *file, int line, const char *what) {
    try {
        body();
    } catch (const cebra::Error &e) {
        return record(e.status() == status, file, line,
                      std::string(what) + " threw " + e.statusName() + ", expected " + cebra_status_name(status) +
                          ": " + e.what());
    } catch (const std::exception &e) {
        return record(false, file, line, std::string(what) + " threw a non-cebra exception: " + e.what());
    }
    return record(false, file, line, std::string(what) + " did not throw");
}

// Runs `body`, which must not throw.
template <typename Body>
bool no_throw(Body body, const char *file, int line, const char *what) {
    try {
        body();
        return record(true, file, line, what);
    } catch (const std::exception &e) {
        return record(false, file, line, std::string(what) + " threw: " + e.what());
    }
}

inline std::string fixture(const std::string &rel) {
    const char *root = std::getenv("CEBRA_FIXTURES");
    return std::string(root && *root ? root : "../../../tests/fixtures") + "/" + rel;
}

inline std::string tmpfile(const std::string &name) {
    const char *base = std::getenv("TMPDIR");
    return std::string(base && *base ? base : "/tmp") + "/cebra-cpptest-" + std::to_string(::getpid()) + "-" + name;
}

// Every |got - want| <= max(abs_tol, rel_tol * |want|) (NaN equal to NaN).
inline bool close(const float *got, const float *want, size_t n, double rel_tol = 1e-5, double abs_tol = 1e-6) {
    for (size_t i = 0; i < n; i++) {
        if (std::isnan(got[i]) || std::isnan(want[i])) {
            if (std::isnan(got[i]) != std::isnan(want[i])) return false;
            continue;
        }
        if (std::fabs(double(got[i]) - double(want[i])) > std::max(abs_tol, rel_tol * std::fabs(double(want[i]))))
            return false;
    }
    return true;
}
inline bool close(const std::vector<float> &got, const float *want, size_t n, double rel_tol = 1e-5,
                  double abs_tol = 1e-6) {
    return got.size() == n && close(got.data(), want, n, rel_tol, abs_tol);
}

inline double max_abs(const float *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(double(v[i])));
    return m;
}

// Defined in test_callbacks.cpp, used by test_main.cpp: a model returned by value across units.
cebra::Model make_offset10_model();
void test_callbacks();
void test_handles();
// Defined in test_transform.cpp: Model::transform and Stream (quick: fewer fixture cases).
void test_transform(bool quick);
// Defined in test_solver.cpp: cebra::Solver.
void test_solver();

}  // namespace test

#define CHECK(cond, what) test::record((cond), __FILE__, __LINE__, (what))
#define CHECK_THROWS(body, status) test::throws_status([&] { body; }, (status), __FILE__, __LINE__, #body)
#define CHECK_NO_THROW(body) test::no_throw([&] { body; }, __FILE__, __LINE__, #body)

#endif
