// Kernel tests: every kernel of every table (scalar and, where the CPU has it, AVX2) is run
// directly and through the threaded ops layer on random and edge-case shapes, and compared
// with a double-precision reference that dequantizes the weights by its own, bit-by-bit
// decoder.
//
// Tolerances, per output element, relative to scale = sum_j |W[i][j] * x[j]| (the size of
// the terms, so that cancellation in the sum cannot make a correct result look wrong):
//   scalar references vs the double reference: 1e-6 (they accumulate in double; what is
//     left is the final rounding to float)
//   fast kernels vs the scalar reference (and vs the double reference): 1e-5 (fp32
//     accumulation in a different order)
//
// Prints one line per check and ends with "N passed, M failed"; exits non-zero on failure.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "kernels/fp16.h"
#include "kernels/ops.h"
#include "src/threadpool.h"

using namespace sqllm;
using kernels::CsrMatrixView;
using kernels::KernelTable;
using kernels::LutMatrixView;

namespace {

constexpr double kReferenceTolerance = 1e-6;
constexpr double kFastTolerance = 1e-5;
constexpr float kUntouched = 12345.0f;  // y outside the row range a kernel was given

int g_passed = 0, g_failed = 0;

void check(bool ok, const std::string &what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    (ok ? g_passed : g_failed)++;
}

std::string fmt(const char *format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *format, ...) {
    char buf[512];
    va_list args;
    va_start(args, format);
    std::vsnprintf(buf, sizeof buf, format, args);
    va_end(args);
    return buf;
}

std::vector<const KernelTable *> all_tables() {
    std::vector<const KernelTable *> tables = {&kernels::scalar_kernels()};
    if (kernels::avx2_kernels()) tables.push_back(kernels::avx2_kernels());
    if (kernels::avx512_kernels()) tables.push_back(kernels::avx512_kernels());
    return tables;
}

// ---------------------------------------------------------------- random data

struct Rng {
    std::mt19937_64 engine;
    explicit Rng(uint64_t seed) : engine(seed) {}
    double normal() { return std::normal_distribution<double>(0.0, 1.0)(engine); }
    double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(engine); }
    uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(engine); }
    uint8_t byte() { return uint8_t(engine()); }
};

// LUT entries like k-means centroids, plus some subnormal and large values.
uint16_t random_lut_entry(Rng &rng) {
    const double u = rng.uniform();
    double v = rng.normal() * 0.02;
    if (u < 0.03) v = rng.normal() * 3e-6;  // fp16 subnormal range
    else if (u < 0.05) v = rng.normal() * 300.0;
    return kernels::fp32_to_fp16(float(v));
}

std::vector<float> random_activations(Rng &rng, int64_t count) {
    std::vector<float> x(static_cast<size_t>(count));
    for (float &v : x) v = rng.uniform() < 0.05 ? 0.0f : float(rng.normal());
    return x;
}

enum class Sparse { None, Random, Empty };
const char *sparse_name(Sparse s) { return s == Sparse::None ? "none" : s == Sparse::Random ? "random" : "nnz=0"; }

struct Csr {
    std::vector<int32_t> rowptr, colidx;
    std::vector<float> values;
};

// Rows of varied length: empty rows, short rows (the masked tail path), long rows.
Csr random_csr(Rng &rng, int64_t rows, int64_t cols, Sparse mode) {
    Csr c;
    c.rowptr.push_back(0);
    for (int64_t i = 0; i < rows; i++) {
        if (mode == Sparse::Random) {
            const double u = rng.uniform();
            const double density = u < 0.3 ? 0.0 : u < 0.9 ? 0.05 : 0.4;
            for (int64_t j = 0; j < cols; j++) {
                if (rng.uniform() < density) {
                    c.colidx.push_back(int32_t(j));
                    c.values.push_back(float(rng.normal() * 0.1));
                }
            }
        }
        c.rowptr.push_back(int32_t(c.colidx.size()));
    }
    return c;
}

struct LutCase {
    int64_t rows, cols, group_size;
    int bits;
    Sparse sparse;
    std::vector<uint8_t> codes;
    std::vector<uint16_t> lut;
    Csr csr;

    LutMatrixView view() const {
        LutMatrixView w;
        w.codes = codes.data();
        w.lut = lut.data();
        w.rows = rows;
        w.cols = cols;
        w.group_size = group_size;
        w.bits = bits;
        if (sparse != Sparse::None) {
            w.rowptr = csr.rowptr.data();
            w.colidx = csr.colidx.data();
            w.corr = csr.values.data();
        }
        return w;
    }
    std::string name() const {
        return fmt("bits=%d rows=%lld cols=%lld group=%s sparse=%s", bits, (long long)rows, (long long)cols,
                   group_size == cols ? "row" : std::to_string(group_size).c_str(), sparse_name(sparse));
    }
};

LutCase make_lut_case(Rng &rng, int64_t rows, int64_t cols, int64_t group_size, int bits, Sparse sparse) {
    LutCase c{rows, cols, group_size, bits, sparse, {}, {}, {}};
    const LutMatrixView shape = c.view();
    // Random bytes everywhere, padding codes included: the kernels must ignore padding.
    c.codes.resize(size_t(rows * shape.row_bytes()));
    for (uint8_t &b : c.codes) b = rng.byte();
    c.lut.resize(size_t(rows * shape.lut_row_entries()));
    for (uint16_t &h : c.lut) h = random_lut_entry(rng);
    c.csr = random_csr(rng, rows, cols, sparse);
    return c;
}

// ---------------------------------------------------------------- double references

// W as doubles, decoded bit by bit (independently of the kernels' byte-window decode).
std::vector<double> dequantize(const LutCase &c) {
    const LutMatrixView w = c.view();
    std::vector<double> dense(size_t(c.rows * c.cols));
    for (int64_t i = 0; i < c.rows; i++) {
        const uint8_t *row = c.codes.data() + i * w.row_bytes();
        for (int64_t j = 0; j < c.cols; j++) {
            uint32_t code = 0;
            for (int b = 0; b < c.bits; b++) {
                const int64_t t = j * c.bits + b;
                code |= uint32_t((row[t / 8] >> (t % 8)) & 1) << b;
            }
            const uint16_t h = c.lut[size_t(i * w.lut_row_entries() + (j / c.group_size) * (1 << c.bits) + code)];
            dense[size_t(i * c.cols + j)] = double(kernels::fp16_to_fp32(h));
        }
    }
    return dense;
}

struct Expected {
    std::vector<double> value, scale;  // [n][rows]
};

// y = dense x (+ sparse x) for n activations, with the scale sum |w x| of every element.
Expected reference_product(const std::vector<double> &dense, const Csr *csr, int64_t rows, int64_t cols,
                           const float *x, int64_t n) {
    Expected e;
    e.value.assign(size_t(n * rows), 0.0);
    e.scale.assign(size_t(n * rows), 0.0);
    for (int64_t t = 0; t < n; t++) {
        const float *xt = x + t * cols;
        for (int64_t i = 0; i < rows; i++) {
            double sum = 0.0, scale = 0.0;
            if (!dense.empty()) {
                for (int64_t j = 0; j < cols; j++) {
                    const double term = dense[size_t(i * cols + j)] * double(xt[j]);
                    sum += term;
                    scale += std::fabs(term);
                }
            }
            if (csr) {
                for (int32_t k = csr->rowptr[size_t(i)]; k < csr->rowptr[size_t(i + 1)]; k++) {
                    const double term = double(csr->values[size_t(k)]) * double(xt[csr->colidx[size_t(k)]]);
                    sum += term;
                    scale += std::fabs(term);
                }
            }
            e.value[size_t(t * rows + i)] = sum;
            e.scale[size_t(t * rows + i)] = scale;
        }
    }
    return e;
}

// The largest |got - want| / scale; rows outside [row_begin, row_end) must still hold
// kUntouched (reported as an infinite error otherwise).
double max_error(const std::vector<float> &got, const Expected &want, int64_t rows, int64_t n, int64_t row_begin,
                 int64_t row_end) {
    double worst = 0.0;
    for (int64_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < rows; i++) {
            const size_t at = size_t(t * rows + i);
            if (i < row_begin || i >= row_end) {
                if (got[at] != kUntouched) return INFINITY;
                continue;
            }
            const double err = std::fabs(double(got[at]) - want.value[at]) / (want.scale[at] + 1e-30);
            if (!(err <= worst)) worst = std::isnan(err) ? INFINITY : err;
        }
    }
    return worst;
}

double tolerance_for(const KernelTable &k) { return &k == &kernels::scalar_kernels() ? kReferenceTolerance : kFastTolerance; }

// ---------------------------------------------------------------- fp16

void test_fp16() {
    // Every half: the exact value, and the round trip through fp32.
    bool values_ok = true, round_trip_ok = true;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = kernels::fp16_to_fp32(uint16_t(h));
        const int exponent = int(h >> 10) & 31, mantissa = int(h & 1023);
        const double sign = (h & 0x8000) ? -1.0 : 1.0;
        if (exponent == 31) {
            values_ok &= mantissa == 0 ? std::isinf(f) && std::signbit(f) == bool(h & 0x8000) : std::isnan(f);
            if (mantissa != 0) round_trip_ok &= std::isnan(kernels::fp16_to_fp32(kernels::fp32_to_fp16(f)));
            else round_trip_ok &= kernels::fp32_to_fp16(f) == h;
            continue;
        }
        const double expect = exponent == 0 ? sign * mantissa * std::ldexp(1.0, -24)
                                            : sign * (1024 + mantissa) * std::ldexp(1.0, exponent - 25);
        values_ok &= double(f) == expect && std::signbit(f) == bool(h & 0x8000);
        round_trip_ok &= kernels::fp32_to_fp16(f) == h;
    }
    check(values_ok, "fp16_to_fp32: all 65536 halves give their exact value (normals, subnormals, zeros, inf, nan)");
    check(round_trip_ok, "fp32_to_fp16(fp16_to_fp32(h)) == h for every non-nan half; nan stays nan");

    // fp32 -> fp16 against round-to-nearest-even done in double, on every 1021st float bit
    // pattern plus the boundaries (overflow to inf, ties, the subnormal range).
    std::vector<std::pair<double, uint16_t>> finite;  // every finite non-negative half, ascending
    for (uint32_t h = 0; h < 0x7c00; h++) finite.push_back({double(kernels::fp16_to_fp32(uint16_t(h))), uint16_t(h)});
    auto nearest_even = [&](double f) -> uint16_t {
        const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
        const double a = std::fabs(double(f));
        if (std::isnan(f)) return 0x7e00;
        if (a >= 65520.0) return uint16_t(sign | 0x7c00);
        size_t lo = 0, hi = finite.size() - 1;  // finite[lo] <= a < finite[hi] after the search
        while (hi - lo > 1) {
            const size_t mid = (lo + hi) / 2;
            (finite[mid].first <= a ? lo : hi) = mid;
        }
        if (a >= finite[hi].first) lo = hi;
        if (lo == finite.size() - 1 || a == finite[lo].first) return uint16_t(sign | finite[lo].second);
        const double below = a - finite[lo].first, above = finite[lo + 1].first - a;
        const bool up = above < below || (above == below && (finite[lo + 1].second & 1) == 0);
        return uint16_t(sign | finite[up ? lo + 1 : lo].second);
    };
    std::vector<float> inputs = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e9f, INFINITY, -INFINITY,
                                 std::ldexp(1.0f, -24), std::ldexp(1.0f, -25), std::ldexp(1.5f, -25),
                                 std::ldexp(1.0f, -25) * 1.0000001f, std::ldexp(3.0f, -26), std::ldexp(1.0f, -14),
                                 std::ldexp(1023.5f, -24), std::ldexp(2047.5f, -24), 1.0f + std::ldexp(1.0f, -11),
                                 1.0f + std::ldexp(3.0f, -11), std::ldexp(1.0f, -130)};
    for (uint64_t bits = 0; bits < (uint64_t(1) << 32); bits += 1021) {
        const uint32_t b = uint32_t(bits);
        float f;
        std::memcpy(&f, &b, 4);
        if (!std::isnan(f)) inputs.push_back(f);
    }
    size_t mismatches = 0;
    for (float f : inputs) mismatches += kernels::fp32_to_fp16(f) != nearest_even(f);
    check(mismatches == 0, fmt("fp32_to_fp16 rounds to nearest even like a double-precision search (%zu inputs)", inputs.size()));

    // fp64 -> fp16 (8-bit LUT entries, SPEC §4): one rounding, also where a detour through
    // float would round twice (just above a tie, below float's precision), and on LUT-like
    // values lo + step * level of random finite halves.
    std::vector<double> doubles = {1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40), 1.0 + std::ldexp(1.0, -11) - std::ldexp(1.0, -40),
                                   1.0 + std::ldexp(1.0, -11), 1.0 + std::ldexp(3.0, -11), std::ldexp(1.0, -25) + std::ldexp(1.0, -60),
                                   std::ldexp(1.0, -25), -std::ldexp(3.0, -26), 65519.99999, 65520.0, 0.0, -0.0, 1e300, -1e-300};
    Rng rng(7);
    for (int i = 0; i < 200000; i++) {
        const uint16_t lo = uint16_t(rng.below(0x7c00) | (rng.below(2) << 15));
        const uint16_t step = uint16_t(rng.below(0x7c00));
        doubles.push_back(double(kernels::fp16_to_fp32(lo)) + double(kernels::fp16_to_fp32(step)) * double(rng.byte()));
    }
    mismatches = 0;
    for (double d : doubles) mismatches += kernels::fp64_to_fp16(d) != nearest_even(d);
    check(mismatches == 0, fmt("fp64_to_fp16 rounds once to nearest even (%zu inputs)", doubles.size()));

    // The bulk converters of each table agree with fp16.h bit for bit (F16C on AVX2).
    std::vector<uint16_t> halves(65536);
    for (uint32_t h = 0; h < 65536; h++) halves[h] = uint16_t(h);
    for (const KernelTable *k : all_tables()) {
        std::vector<float> widened(halves.size());
        k->fp16_to_fp32(halves.data(), widened.data(), int64_t(halves.size()));
        bool widen_ok = true;
        for (uint32_t h = 0; h < 65536; h++) {
            const float want = kernels::fp16_to_fp32(uint16_t(h));
            widen_ok &= std::isnan(want) ? bool(std::isnan(widened[h])) : std::memcmp(&want, &widened[h], 4) == 0;
        }
        std::vector<uint16_t> narrowed(inputs.size());
        k->fp32_to_fp16(inputs.data(), narrowed.data(), int64_t(inputs.size()));
        size_t bad = 0;
        for (size_t i = 0; i < inputs.size(); i++) bad += narrowed[i] != kernels::fp32_to_fp16(inputs[i]);
        check(widen_ok && bad == 0, fmt("[%s] fp16_to_fp32 / fp32_to_fp16 arrays match fp16.h bit for bit", k->name));
    }
}

// ---------------------------------------------------------------- LUT matvec

void test_lut_case(Rng &rng, const LutCase &c, const std::vector<ThreadPool *> &pools) {
    const LutMatrixView w = c.view();
    const std::vector<double> dense = dequantize(c);
    const int64_t batch_sizes[] = {1, 2, 3, 5, 8, 9};
    const std::vector<float> x = random_activations(rng, 9 * c.cols);
    const Csr *sparse = c.sparse == Sparse::None ? nullptr : &c.csr;
    const Expected dense_only = reference_product(dense, nullptr, c.rows, c.cols, x.data(), 9);
    const Expected with_sparse = reference_product(dense, sparse, c.rows, c.cols, x.data(), 9);
    std::vector<float> y(size_t(9 * c.rows));

    for (const KernelTable *k : all_tables()) {
        const double tol = tolerance_for(*k);
        double worst = 0.0;
        // The kernel alone on the whole matrix and on an inner row range, one activation
        // and batches.
        const int64_t inner_begin = c.rows > 2 ? 1 : 0, inner_end = c.rows > 2 ? c.rows - 1 : c.rows;
        for (int64_t n : batch_sizes) {
            for (int range = 0; range < 2; range++) {
                const int64_t begin = range ? inner_begin : 0, end = range ? inner_end : c.rows;
                std::fill(y.begin(), y.end(), kUntouched);
                if (n == 1) k->lut_matvec(w, x.data(), y.data(), begin, end);
                else k->lut_matmat(w, x.data(), n, y.data(), begin, end);
                worst = std::max(worst, max_error(y, dense_only, c.rows, n, begin, end));
            }
        }
        // Through ops (dense + sparse), on every pool.
        for (ThreadPool *pool : pools) {
            for (int64_t n : batch_sizes) {
                std::fill(y.begin(), y.end(), kUntouched);
                if (n == 1) ops::lut_matvec(*pool, w, x.data(), y.data(), *k);
                else ops::lut_matmat(*pool, w, x.data(), n, y.data(), *k);
                worst = std::max(worst, max_error(y, with_sparse, c.rows, n, 0, c.rows));
            }
        }
        check(worst <= tol, fmt("[%s] lut %s: kernel + ops, n in {1,2,3,5,8,9}, threads {1,2,3}: max error %.2g (tol %.0e)",
                                k->name, c.name().c_str(), worst, tol));
    }

    // The fast kernels against the scalar reference directly (same inputs, same rows).
    if (const KernelTable *fast = kernels::avx2_kernels()) {
        std::vector<float> ref(size_t(9 * c.rows)), got(size_t(9 * c.rows));
        double worst = 0.0;
        for (int64_t n : batch_sizes) {
            kernels::scalar_kernels().lut_matmat(w, x.data(), n, ref.data(), 0, c.rows);
            fast->lut_matmat(w, x.data(), n, got.data(), 0, c.rows);
            for (int64_t i = 0; i < n * c.rows; i++)
                worst = std::max(worst, std::fabs(double(got[size_t(i)]) - ref[size_t(i)]) / (dense_only.scale[size_t(i)] + 1e-30));
        }
        check(worst <= kFastTolerance,
              fmt("[avx2 vs scalar] lut %s: max error %.2g (tol %.0e)", c.name().c_str(), worst, kFastTolerance));
    }
}

// The int8 path: the requantized LUT within half a step of the fp16 one; the scalar
// reference within the error bound of the two quantizations from the exact product; every
// table's kernel (alone, on row ranges, and through ops with the sparse part) equal to the
// scalar reference up to float rounding.
void test_lut_q8_case(Rng &rng, const LutCase &c, const std::vector<ThreadPool *> &pools) {
    const LutMatrixView w = c.view();
    if (!kernels::q8_supported(w, kernels::scalar_kernels().q8_max_bits)) return;
    const int64_t tables = c.rows * w.groups(), entries = int64_t(1) << c.bits, padded = kernels::q8_padded(c.cols);
    std::vector<uint8_t> levels(size_t(tables * entries));
    std::vector<float> lo(static_cast<size_t>(tables)), step(static_cast<size_t>(tables));
    kernels::q8_requantize_lut(w, levels.data(), lo.data(), step.data());
    const kernels::LutQ8Tables t{levels.data(), lo.data(), step.data()};
    bool lut_ok = true;
    for (int64_t k = 0; k < tables * entries; k++) {
        const double exact = kernels::fp16_to_fp32(c.lut[size_t(k)]), s = step[size_t(k / entries)];
        lut_ok = lut_ok && levels[size_t(k)] <= 254 &&
                 std::fabs(lo[size_t(k / entries)] + s * levels[size_t(k)] - exact) <= s * 0.5001 + 1e-7 * std::fabs(exact);
    }
    check(lut_ok, fmt("q8 %s: LUT levels in [0, 254], each within step/2 of its fp16 entry", c.name().c_str()));

    const int64_t n_max = 9, batch_sizes[] = {1, 2, 3, 5, 9};
    const std::vector<float> x = random_activations(rng, n_max * c.cols);
    const std::vector<double> dense = dequantize(c);
    const Csr *sparse = c.sparse == Sparse::None ? nullptr : &c.csr;
    // The reference on natural-order activations, and its error bound against W x.
    ops::Q8Buffer natural;
    const kernels::Q8Activations an = natural.quantize(x.data(), n_max, c.cols, nullptr);
    std::vector<float> ref(size_t(n_max * c.rows)), ref_sparse(size_t(n_max * c.rows));
    kernels::lut_matmat_q8_scalar(w, t, an, ref.data(), 0, c.rows);
    const Expected exact = reference_product(dense, nullptr, c.rows, c.cols, x.data(), n_max);
    const Expected sparse_only = reference_product({}, sparse, c.rows, c.cols, x.data(), n_max);
    // The kernels add an offset times sum(x) and step * sum(level * x) (AVX2 centres the
    // levels, so the offset is lo + 127 step), which may cancel: their float rounding is
    // relative to the size of those terms, at most sum (|lo| + range) |x|.
    std::vector<double> terms(size_t(n_max * c.rows));
    bool bound_ok = true;
    for (int64_t n = 0; n < n_max; n++) {
        for (int64_t i = 0; i < c.rows; i++) {
            double bound = 0.0, size = 0.0;
            for (int64_t j = 0; j < c.cols; j++) {
                const int64_t table = i * w.groups() + j / c.group_size;
                const double s_b = an.scales[size_t((n * padded / 32 + j / 32) * 8)], xj = x[size_t(n * c.cols + j)];
                const double half_step = 0.5 * step[size_t(table)], wj = dense[size_t(i * c.cols + j)];
                bound += half_step * std::fabs(xj) + (std::fabs(wj) + half_step) * 0.5 * s_b;
                size += (std::fabs(lo[size_t(table)]) + 254.0 * step[size_t(table)]) * std::fabs(xj);
            }
            terms[size_t(n * c.rows + i)] = size;
            const size_t at = size_t(n * c.rows + i);
            bound_ok = bound_ok && std::fabs(ref[at] - exact.value[at]) <= bound * 1.0001 + 1e-6 * exact.scale[at];
            ref_sparse[at] = float(double(ref[at]) + sparse_only.value[at]);
        }
    }
    check(bound_ok, fmt("q8 %s: scalar int8 product within the quantization error bound of W x", c.name().c_str()));

    std::vector<float> y(size_t(n_max * c.rows));
    for (const KernelTable *k : all_tables()) {
        if (c.bits > k->q8_max_bits) continue;
        ops::Q8Buffer buffer;
        double worst = 0.0;
        auto error_against = [&](const std::vector<float> &want, int64_t n, int64_t begin, int64_t end) {
            for (int64_t m = 0; m < n; m++)
                for (int64_t i = 0; i < c.rows; i++) {
                    const size_t at = size_t(m * c.rows + i);
                    const bool inside = i >= begin && i < end;
                    const double err = inside ? std::fabs(double(y[at]) - want[at]) / (terms[at] + sparse_only.scale[at] + 1e-30)
                                              : (y[at] == kUntouched ? 0.0 : INFINITY);
                    if (!(err <= worst)) worst = std::isnan(err) ? INFINITY : err;
                }
        };
        for (int64_t n : batch_sizes) {
            const kernels::Q8Activations a = buffer.quantize(x.data(), n, c.cols, k->q8_order(c.bits));
            for (int range = 0; range < 2; range++) {
                const int64_t begin = range && c.rows > 2 ? 1 : 0, end = range && c.rows > 2 ? c.rows - 1 : c.rows;
                std::fill(y.begin(), y.end(), kUntouched);
                k->lut_matmat_q8(w, t, a, y.data(), begin, end);
                error_against(ref, n, begin, end);
            }
            for (ThreadPool *pool : pools) {
                std::fill(y.begin(), y.end(), kUntouched);
                ops::lut_matmat_q8(*pool, w, t, a, x.data(), y.data(), *k);
                error_against(ref_sparse, n, 0, c.rows);
            }
        }
        check(worst <= kFastTolerance, fmt("[%s] q8 %s: kernel + ops vs the int8 reference, n in {1,2,3,5,9}: max error %.2g",
                                           k->name, c.name().c_str(), worst));
    }
}

// The batch GEMM (lut_gemm_q16.h): the requantized LUT, the scalar reference within the
// quantization error bound of W x, and every table's kernel (where it has one) and ops against
// the reference, over tiles of 16 tokens and their remainders.
void test_lut_q16_case(Rng &rng, const LutCase &c, const std::vector<ThreadPool *> &pools) {
    const LutMatrixView w = c.view();
    if (!kernels::q16_supported(w)) return;
    const int64_t tables = c.rows * w.groups(), entries = int64_t(1) << c.bits;
    const int64_t blocks = kernels::q16_blocks(c.cols);
    std::vector<int16_t> levels(size_t(tables * entries));
    std::vector<float> lo(static_cast<size_t>(tables)), step(static_cast<size_t>(tables));
    kernels::q16_requantize_lut(w, levels.data(), lo.data(), step.data());
    const kernels::LutQ16Tables t{levels.data(), lo.data(), step.data()};
    bool lut_ok = true;
    for (int64_t k = 0; k < tables * entries; k++) {
        const double exact = kernels::fp16_to_fp32(c.lut[size_t(k)]), st = step[size_t(k / entries)];
        lut_ok = lut_ok && levels[size_t(k)] >= 0 && levels[size_t(k)] < kernels::kQ16Levels &&
                 std::fabs(lo[size_t(k / entries)] + st * levels[size_t(k)] - exact) <= st * 0.5001 + 1e-7 * std::fabs(exact);
    }
    check(lut_ok, fmt("q16 %s: LUT levels in [0, 2047], each within step/2 of its fp16 entry", c.name().c_str()));

    const int64_t n_max = 33, batch_sizes[] = {1, 2, 3, 5, 9, 16, 17, 33};
    const std::vector<float> x = random_activations(rng, n_max * c.cols);
    const std::vector<double> dense = dequantize(c);
    const Csr *sparse = c.sparse == Sparse::None ? nullptr : &c.csr;
    ops::Q16Buffer full;
    const kernels::Q16Activations a_full = full.quantize(*pools.back(), x.data(), n_max, c.cols);
    bool quantized_ok = true;  // nearbyint(x * 8191 / max) in the layout of lut_gemm_q16.h, zeros past cols
    for (int64_t n = 0; n < n_max; n++)
        for (int64_t j = 0; j < a_full.padded; j++) {
            const int64_t block = j / kernels::kQ16Block;
            float max = 0.0f;
            for (int64_t k = block * kernels::kQ16Block; k < std::min(c.cols, (block + 1) * kernels::kQ16Block); k++)
                max = std::max(max, std::fabs(x[size_t(n * c.cols + k)]));
            const float want = j < c.cols && max > 0.0f ? std::nearbyint(x[size_t(n * c.cols + j)] * (8191.0f / max)) : 0.0f;
            const int16_t got = a_full.q[size_t(((j / 128) * n_max + n) * 128 + j % 128)];
            quantized_ok = quantized_ok && float(got) == want && a_full.scales[size_t(n * blocks + block)] == max / 8191.0f;
        }
    check(quantized_ok, fmt("q16 %s: activations quantized to nearbyint(x * 8191 / block max), per block scales", c.name().c_str()));
    std::vector<float> ref(size_t(n_max * c.rows));
    kernels::lut_gemm_q16_scalar(w, t, a_full, ref.data(), 0, c.rows);
    const Expected exact = reference_product(dense, nullptr, c.rows, c.cols, x.data(), n_max);
    const Expected sparse_only = reference_product({}, sparse, c.rows, c.cols, x.data(), n_max);
    // Float rounding in the kernels is relative to the size of the offset and level terms, at
    // most sum (|lo| + 2047 step) |x| (they may cancel).
    std::vector<double> terms(size_t(n_max * c.rows));
    bool bound_ok = true;
    for (int64_t n = 0; n < n_max; n++) {
        for (int64_t i = 0; i < c.rows; i++) {
            double bound = 0.0, size = 0.0;
            for (int64_t j = 0; j < c.cols; j++) {
                const int64_t table = i * w.groups() + j / c.group_size;
                const double s_b = a_full.scales[size_t(n * blocks + j / kernels::kQ16Block)], xj = x[size_t(n * c.cols + j)];
                const double half_step = 0.5 * step[size_t(table)], wj = dense[size_t(i * c.cols + j)];
                bound += half_step * std::fabs(xj) + (std::fabs(wj) + half_step) * 0.5 * s_b;
                size += (std::fabs(lo[size_t(table)]) + 2047.0 * step[size_t(table)]) * std::fabs(xj);
            }
            const size_t at = size_t(n * c.rows + i);
            terms[at] = size;
            bound_ok = bound_ok && std::fabs(ref[at] - exact.value[at]) <= bound * 1.0001 + 1e-6 * exact.scale[at];
        }
    }
    check(bound_ok, fmt("q16 %s: scalar GEMM within the quantization error bound of W x", c.name().c_str()));

    std::vector<float> y(size_t(n_max * c.rows)), want(size_t(n_max * c.rows));
    for (const KernelTable *k : all_tables()) {
        if (!k->lut_gemm_q16) continue;
        ops::Q16Buffer buffer;
        double worst = 0.0;
        auto error_against = [&](int64_t n, int64_t begin, int64_t end) {
            for (int64_t m = 0; m < n; m++)
                for (int64_t i = 0; i < c.rows; i++) {
                    const size_t at = size_t(m * c.rows + i);
                    const bool inside = i >= begin && i < end;
                    const double err = inside ? std::fabs(double(y[at]) - want[at]) / (terms[at] + sparse_only.scale[at] + 1e-30)
                                              : (y[at] == kUntouched ? 0.0 : INFINITY);
                    if (!(err <= worst)) worst = std::isnan(err) ? INFINITY : err;
                }
        };
        for (int64_t n : batch_sizes) {
            // The reference for these n tokens (the layout depends on n, the values do not).
            const kernels::Q16Activations a = buffer.quantize(*pools[size_t(n) % pools.size()], x.data(), n, c.cols);
            std::vector<float> r(size_t(n * c.rows));
            kernels::lut_gemm_q16_scalar(w, t, a, r.data(), 0, c.rows);
            bool same = true;
            for (size_t at = 0; at < r.size(); at++) same = same && r[at] == ref[at];
            if (!same) worst = INFINITY;  // the reference must not depend on the batch
            for (int range = 0; range < 2; range++) {
                const int64_t begin = range && c.rows > 2 ? 1 : 0, end = range && c.rows > 2 ? c.rows - 1 : c.rows;
                std::fill(y.begin(), y.end(), kUntouched);
                std::copy(r.begin(), r.end(), want.begin());
                k->lut_gemm_q16(w, t, a, y.data(), begin, end);
                error_against(n, begin, end);
            }
            for (size_t at = 0; at < r.size(); at++) want[at] = float(double(r[at]) + sparse_only.value[at]);
            for (ThreadPool *pool : pools) {
                std::fill(y.begin(), y.end(), kUntouched);
                ops::lut_gemm_q16(*pool, w, t, a, x.data(), y.data(), *k);
                error_against(n, 0, c.rows);
            }
        }
        check(worst <= kFastTolerance, fmt("[%s] q16 %s: kernel + ops vs the scalar GEMM, n in {1,2,3,5,9,16,17,33}: max error %.2g",
                                           k->name, c.name().c_str(), worst));
    }
}

// Single tokens of the default path (lut_matvec_w8a16.h): the activation planes recompose the
// 14-bit integers, the scalar reference stays within the error bound of the byte levels and the
// 14-bit activations, and every table's kernel (where it has one) and ops match the reference.
void test_lut_w8a16_case(Rng &rng, const LutCase &c, const std::vector<ThreadPool *> &pools) {
    const LutMatrixView w = c.view();
    if (!kernels::q8_supported(w, 6)) return;
    const int64_t tables = c.rows * w.groups(), entries = int64_t(1) << c.bits;
    const int64_t blocks = kernels::q16_blocks(c.cols);
    std::vector<uint8_t> levels(size_t(tables * entries));
    std::vector<float> lo(static_cast<size_t>(tables)), step(static_cast<size_t>(tables));
    kernels::w8a16_requantize_lut(w, levels.data(), lo.data(), step.data());
    const kernels::LutQ8Tables t{levels.data(), lo.data(), step.data()};
    bool lut_ok = true;
    for (int64_t k = 0; k < tables * entries; k++) {
        const double exact = kernels::fp16_to_fp32(c.lut[size_t(k)]), s = step[size_t(k / entries)];
        lut_ok = lut_ok && std::fabs(lo[size_t(k / entries)] + s * levels[size_t(k)] - exact) <= s * 0.5001 + 1e-7 * std::fabs(exact);
    }
    check(lut_ok, fmt("w8a16 %s: LUT levels each within step/2 of its fp16 entry", c.name().c_str()));
    const int64_t n_max = 3;
    const std::vector<float> x = random_activations(rng, n_max * c.cols);
    const std::vector<double> dense = dequantize(c);
    const Csr *sparse = c.sparse == Sparse::None ? nullptr : &c.csr;
    ops::Q16Buffer buffer;
    const kernels::Q16Activations a16 = buffer.quantize(*pools.back(), x.data(), n_max, c.cols);
    const kernels::W8A16Activations a = buffer.split(a16);
    bool planes_ok = a.n == n_max && a.padded == a16.padded && a.scales == a16.scales && a.prefix == a16.prefix;
    for (int64_t n = 0; n < n_max; n++)
        for (int64_t j = 0; j < a.padded; j++) {
            const int hi = a.hi[size_t(n * a.padded + j)], low = a.lo[size_t(n * a.padded + j)];
            const int want = a16.q[size_t(((j / 128) * n_max + n) * 128 + j % 128)];
            planes_ok = planes_ok && hi >= -64 && hi <= 63 && low >= 0 && low <= 127 && 128 * hi + low == want;
        }
    check(planes_ok, fmt("w8a16 %s: planes with 128 hi + lo = the 14-bit activation, hi in [-64, 63], lo in [0, 127]", c.name().c_str()));

    std::vector<float> ref(size_t(n_max * c.rows));
    kernels::lut_matvec_w8a16_scalar(w, t, a, ref.data(), 0, c.rows);
    const Expected exact = reference_product(dense, nullptr, c.rows, c.cols, x.data(), n_max);
    const Expected sparse_only = reference_product({}, sparse, c.rows, c.cols, x.data(), n_max);
    std::vector<double> terms(size_t(n_max * c.rows));  // sum (|lo| + 255 step) |x|: the size of what the kernels add
    bool bound_ok = true;
    for (int64_t n = 0; n < n_max; n++)
        for (int64_t i = 0; i < c.rows; i++) {
            double bound = 0.0, size = 0.0;
            for (int64_t j = 0; j < c.cols; j++) {
                const int64_t table = i * w.groups() + j / c.group_size;
                const double s_b = a.scales[size_t(n * blocks + j / kernels::kQ16Block)], xj = x[size_t(n * c.cols + j)];
                const double half_step = 0.5 * step[size_t(table)], wj = dense[size_t(i * c.cols + j)];
                bound += half_step * std::fabs(xj) + (std::fabs(wj) + half_step) * 0.5 * s_b;
                size += (std::fabs(lo[size_t(table)]) + 255.0 * step[size_t(table)]) * std::fabs(xj);
            }
            const size_t at = size_t(n * c.rows + i);
            terms[at] = size;
            bound_ok = bound_ok && std::fabs(ref[at] - exact.value[at]) <= bound * 1.0001 + 1e-6 * exact.scale[at];
        }
    check(bound_ok, fmt("w8a16 %s: scalar product within the quantization error bound of W x", c.name().c_str()));

    std::vector<float> y(size_t(n_max * c.rows)), want(size_t(n_max * c.rows));
    for (const KernelTable *k : all_tables()) {
        if (!k->lut_matvec_w8a16) continue;
        double worst = 0.0;
        auto error_against = [&](int64_t begin, int64_t end) {
            for (int64_t m = 0; m < n_max; m++)
                for (int64_t i = 0; i < c.rows; i++) {
                    const size_t at = size_t(m * c.rows + i);
                    const bool inside = i >= begin && i < end;
                    const double err = inside ? std::fabs(double(y[at]) - want[at]) / (terms[at] + sparse_only.scale[at] + 1e-30)
                                              : (y[at] == kUntouched ? 0.0 : INFINITY);
                    if (!(err <= worst)) worst = std::isnan(err) ? INFINITY : err;
                }
        };
        for (int range = 0; range < 2; range++) {
            const int64_t begin = range && c.rows > 2 ? 1 : 0, end = range && c.rows > 2 ? c.rows - 1 : c.rows;
            std::fill(y.begin(), y.end(), kUntouched);
            std::copy(ref.begin(), ref.end(), want.begin());
            k->lut_matvec_w8a16(w, t, a, y.data(), begin, end);
            error_against(begin, end);
        }
        for (size_t at = 0; at < ref.size(); at++) want[at] = float(double(ref[at]) + sparse_only.value[at]);
        for (ThreadPool *pool : pools) {
            std::fill(y.begin(), y.end(), kUntouched);
            ops::lut_matvec_w8a16(*pool, w, t, a, x.data(), y.data(), *k);
            error_against(0, c.rows);
        }
        check(worst <= kFastTolerance, fmt("[%s] w8a16 %s: kernel + ops vs the scalar reference, 3 tokens: max error %.2g",
                                           k->name, c.name().c_str(), worst));
    }
}

// The largest sums the GEMM's int32 lanes can meet: every activation at +-8191 and every code on
// level 2047, over 8192 + 128 columns (17 blocks, one LUT), for 16 and 3 tokens.
void test_lut_q16_extremes() {
    for (int bits : {2, 4, 6}) {
        LutCase c;
        c.rows = 3;
        c.cols = c.group_size = 8192 + 128;
        c.bits = bits;
        c.sparse = Sparse::None;
        const LutMatrixView shape = c.view();
        c.codes.assign(size_t(c.rows * shape.row_bytes()), 0xFF);  // every code 2^bits - 1: the LUT's largest entry
        c.lut.assign(size_t(c.rows * shape.lut_row_entries()), kernels::fp32_to_fp16(-1.0f));
        for (int64_t i = 0; i < c.rows; i++) c.lut[size_t((i + 1) * shape.lut_row_entries() - 1)] = kernels::fp32_to_fp16(1.0f);
        const LutMatrixView w = c.view();
        const int64_t tables = c.rows, entries = int64_t(1) << bits;
        std::vector<int16_t> levels(size_t(tables * entries));
        std::vector<float> lo(static_cast<size_t>(tables)), step(static_cast<size_t>(tables));
        kernels::q16_requantize_lut(w, levels.data(), lo.data(), step.data());
        const kernels::LutQ16Tables t{levels.data(), lo.data(), step.data()};
        for (int64_t n : {int64_t(16), int64_t(3)}) {
            std::vector<float> x(size_t(n * c.cols));
            for (int64_t m = 0; m < n; m++)
                for (int64_t j = 0; j < c.cols; j++) x[size_t(m * c.cols + j)] = m % 2 ? -2.5f : 2.5f;
            ops::Q16Buffer buffer;
            ThreadPool one(1);
            const kernels::Q16Activations a = buffer.quantize(one, x.data(), n, c.cols);
            double worst = 0.0;
            for (const KernelTable *k : all_tables()) {
                if (!k->lut_gemm_q16) continue;
                std::vector<float> y(size_t(n * c.rows));
                k->lut_gemm_q16(w, t, a, y.data(), 0, c.rows);
                for (int64_t m = 0; m < n; m++)
                    for (int64_t i = 0; i < c.rows; i++) {
                        const double want = (m % 2 ? -2.5 : 2.5) * double(c.cols);
                        worst = std::max(worst, std::fabs(double(y[size_t(m * c.rows + i)]) - want) / std::fabs(want));
                    }
            }
            check(worst <= 1e-6, fmt("q16 extremes, %d bits, n=%lld: |a| = 8191 and level 2047 in every column, max relative error %.2g",
                                     bits, (long long)n, worst));
        }
    }
}

// The largest sums lut_matvec_w8a16's int32 lanes can meet: every activation at +-8191 (hi = 63 or
// -64) and every code on level 255, over 8192 + 128 columns (17 blocks, one LUT).
void test_lut_w8a16_extremes() {
    for (int bits : {2, 4, 6}) {
        LutCase c;
        c.rows = 3;
        c.cols = c.group_size = 8192 + 128;
        c.bits = bits;
        c.sparse = Sparse::None;
        const LutMatrixView shape = c.view();
        c.codes.assign(size_t(c.rows * shape.row_bytes()), 0xFF);  // every code 2^bits - 1: the LUT's largest entry
        c.lut.assign(size_t(c.rows * shape.lut_row_entries()), kernels::fp32_to_fp16(-1.0f));
        for (int64_t i = 0; i < c.rows; i++) c.lut[size_t((i + 1) * shape.lut_row_entries() - 1)] = kernels::fp32_to_fp16(1.0f);
        const LutMatrixView w = c.view();
        const int64_t entries = int64_t(1) << bits;
        std::vector<uint8_t> levels(size_t(c.rows * entries));
        std::vector<float> lo(static_cast<size_t>(c.rows)), step(static_cast<size_t>(c.rows));
        kernels::w8a16_requantize_lut(w, levels.data(), lo.data(), step.data());
        for (float sign : {1.0f, -1.0f}) {
            const std::vector<float> x(size_t(c.cols), 2.5f * sign);
            ops::Q16Buffer buffer;
            ThreadPool one(1);
            const kernels::W8A16Activations a = buffer.split(buffer.quantize(one, x.data(), 1, c.cols));
            double worst = 0.0;
            for (const KernelTable *k : all_tables()) {
                if (!k->lut_matvec_w8a16) continue;
                std::vector<float> y(size_t(c.rows));
                k->lut_matvec_w8a16(w, {levels.data(), lo.data(), step.data()}, a, y.data(), 0, c.rows);
                for (int64_t i = 0; i < c.rows; i++) {
                    const double want = 2.5 * sign * double(c.cols);
                    worst = std::max(worst, std::fabs(double(y[size_t(i)]) - want) / std::fabs(want));
                }
            }
            check(worst <= 1e-6, fmt("w8a16 extremes, %d bits, activations %+g: level 255 in every column, max relative error %.2g",
                                     bits, double(sign) * 2.5, worst));
        }
    }
}

// A NaN or an infinity in an activation makes that token's products NaN on the int8 and GEMM
// paths, as on the fp32 one, and leaves the other tokens alone.
void test_quantized_paths_propagate_nan(const std::vector<ThreadPool *> &pools) {
    Rng rng(7);
    const LutCase c = make_lut_case(rng, 9, 700, 700, 4, Sparse::None);
    const LutMatrixView w = c.view();
    const int64_t n = 5, tables = c.rows, entries = 16;
    std::vector<float> x = random_activations(rng, n * c.cols);
    x[size_t(1 * c.cols + 3)] = NAN;
    x[size_t(3 * c.cols + 650)] = INFINITY;
    auto bad_token = [](int64_t m) { return m == 1 || m == 3; };
    std::vector<uint8_t> levels8(size_t(tables * entries));
    std::vector<int16_t> levels16(size_t(tables * entries));
    std::vector<float> lo(static_cast<size_t>(tables)), step(static_cast<size_t>(tables));
    std::vector<float> lo16(static_cast<size_t>(tables)), step16(static_cast<size_t>(tables));
    kernels::q8_requantize_lut(w, levels8.data(), lo.data(), step.data());
    kernels::q16_requantize_lut(w, levels16.data(), lo16.data(), step16.data());
    for (const KernelTable *k : all_tables()) {
        std::vector<float> y(size_t(n * c.rows));
        auto propagated = [&]() {
            bool ok = true;
            for (int64_t m = 0; m < n; m++)
                for (int64_t i = 0; i < c.rows; i++)
                    ok = ok && (bad_token(m) ? std::isnan(y[size_t(m * c.rows + i)]) : std::isfinite(y[size_t(m * c.rows + i)]));
            return ok;
        };
        ops::Q8Buffer b8;
        const kernels::Q8Activations a8 = b8.quantize(x.data(), n, c.cols, k->q8_order(c.bits));
        ops::lut_matmat_q8(*pools.back(), w, {levels8.data(), lo.data(), step.data()}, a8, x.data(), y.data(), *k);
        check(propagated(), fmt("[%s] int8 path: NaN and inf activations give NaN for their tokens only", k->name));
        if (!k->lut_gemm_q16) continue;
        ops::Q16Buffer b16;
        const kernels::Q16Activations a16 = b16.quantize(*pools.back(), x.data(), n, c.cols);
        ops::lut_gemm_q16(*pools.back(), w, {levels16.data(), lo16.data(), step16.data()}, a16, x.data(), y.data(), *k);
        check(propagated(), fmt("[%s] GEMM: NaN and inf activations give NaN for their tokens only", k->name));
        if (!k->lut_matvec_w8a16) continue;
        kernels::w8a16_requantize_lut(w, levels8.data(), lo.data(), step.data());
        ops::lut_matvec_w8a16(*pools.back(), w, {levels8.data(), lo.data(), step.data()}, b16.split(a16), x.data(), y.data(), *k);
        kernels::q8_requantize_lut(w, levels8.data(), lo.data(), step.data());
        check(propagated(), fmt("[%s] w8a16: NaN and inf activations give NaN for their tokens only", k->name));
    }
}

void test_lut(const std::vector<ThreadPool *> &pools) {
    Rng rng(1);
    const int64_t col_counts[] = {1, 7, 31, 32, 33, 100, 172, 257, 4096 + 5};
    const int bit_widths[] = {2, 3, 4, 5, 6, 8};
    const Sparse sparse_modes[] = {Sparse::None, Sparse::Random, Sparse::Empty};
    // The int8 path takes 2 to 6 bits where a table's kernel decodes them (q8_max_bits);
    // 8-bit matrices keep the exact kernels.
    for (int bits : {2, 4, 5, 6, 8}) {
        LutMatrixView w;
        w.rows = 4;
        w.cols = w.group_size = 4096;
        w.bits = bits;
        check(kernels::q8_supported(w, 6) == (bits <= 6), fmt("q8_supported(%d bits, up to 6)", bits));
        check(kernels::q8_supported(w, 4) == (bits <= 4), fmt("q8_supported(%d bits, up to 4)", bits));
    }
    int variant = 0;
    for (int bits : bit_widths) {
        for (int64_t cols : col_counts) {
            for (int64_t group_size : {cols, int64_t(32), int64_t(64), int64_t(128)}) {
                if (group_size != cols && group_size > 2 * cols + 32) continue;  // same as one group
                const int64_t rows = cols > 1000 ? (variant % 2 ? 9 : 8) : (variant % 2 ? 13 : 6);
                const Sparse sparse = sparse_modes[variant % 3];
                variant++;
                const LutCase c = make_lut_case(rng, rows, cols, group_size, bits, sparse);
                test_lut_case(rng, c, pools);
                test_lut_q8_case(rng, c, pools);
                test_lut_q16_case(rng, c, pools);
                test_lut_w8a16_case(rng, c, pools);
            }
        }
        for (int64_t cols : {int64_t(64), int64_t(128), int64_t(200), int64_t(384), int64_t(1000)})
            test_lut_q8_case(rng, make_lut_case(rng, 7, cols, cols, bits, Sparse::Random), pools);
        test_lut_q8_case(rng, make_lut_case(rng, 5, 640, 128, bits, Sparse::Random), pools);
        test_lut_q8_case(rng, make_lut_case(rng, 130, 2048, 256, bits, Sparse::Random), pools);
        for (int64_t cols : {int64_t(640), int64_t(1000), int64_t(4864)})
            test_lut_q16_case(rng, make_lut_case(rng, 21, cols, cols, bits, Sparse::Random), pools);
        test_lut_q16_case(rng, make_lut_case(rng, 19, 1536, 384, bits, Sparse::Random), pools);
        for (int64_t cols : {int64_t(896), int64_t(4864)})
            test_lut_w8a16_case(rng, make_lut_case(rng, 21, cols, cols, bits, Sparse::Random), pools);
        test_lut_w8a16_case(rng, make_lut_case(rng, 19, 1536, 384, bits, Sparse::Random), pools);
        // Big enough for ops to cut it into several tasks per thread.
        test_lut_case(rng, make_lut_case(rng, 130, 4096 + 5, 4096 + 5, bits, Sparse::Random), pools);
        test_lut_case(rng, make_lut_case(rng, 64, 2048, 128, bits, Sparse::Random), pools);
    }
}

// ---------------------------------------------------------------- CSR SpMV

void test_csr(const std::vector<ThreadPool *> &pools) {
    Rng rng(2);
    struct Shape {
        int64_t rows, cols;
        Sparse mode;
    };
    const Shape shapes[] = {{1, 1, Sparse::Random}, {7, 33, Sparse::Random}, {64, 100, Sparse::Random},
                            {301, 4101, Sparse::Random}, {50, 257, Sparse::Empty}, {0, 10, Sparse::Empty}};
    const int64_t batch_sizes[] = {1, 2, 3, 5, 8, 9};
    for (const Shape &s : shapes) {
        const Csr csr = random_csr(rng, s.rows, s.cols, s.mode);
        CsrMatrixView a;
        a.rowptr = csr.rowptr.data();
        a.colidx = csr.colidx.data();
        a.values = csr.values.data();
        a.rows = s.rows;
        a.cols = s.cols;
        const std::vector<float> x = random_activations(rng, 9 * s.cols);
        // The SpMV adds, so start from a known y and add it to the reference.
        const std::vector<float> y0 = random_activations(rng, 9 * s.rows);
        Expected want = reference_product({}, &csr, s.rows, s.cols, x.data(), 9);
        for (size_t i = 0; i < want.value.size(); i++) {
            want.value[i] += y0[i];
            want.scale[i] += std::fabs(y0[i]);
        }
        for (const KernelTable *k : all_tables()) {
            double worst = 0.0;
            std::vector<float> y;
            for (int64_t n : batch_sizes) {
                const int64_t begin = s.rows > 2 ? 1 : 0, end = s.rows > 2 ? s.rows - 1 : s.rows;
                y = y0;
                for (int64_t t = 0; t < n; t++)
                    for (int64_t i = 0; i < s.rows; i++)
                        if (i < begin || i >= end) y[size_t(t * s.rows + i)] = kUntouched;
                if (n == 1) k->csr_spmv_add(a, x.data(), y.data(), begin, end);
                else k->csr_spmm_add(a, x.data(), n, y.data(), begin, end);
                worst = std::max(worst, max_error(y, want, s.rows, n, begin, end));
                for (ThreadPool *pool : pools) {
                    y = y0;
                    if (n == 1) ops::csr_spmv_add(*pool, a, x.data(), y.data(), *k);
                    else ops::csr_spmm_add(*pool, a, x.data(), n, y.data(), *k);
                    worst = std::max(worst, max_error(y, want, s.rows, n, 0, s.rows));
                }
            }
            const double tol = tolerance_for(*k);
            check(worst <= tol, fmt("[%s] csr rows=%lld cols=%lld nnz=%zu: kernel + ops, n in {1..9}: max error %.2g (tol %.0e)",
                                    k->name, (long long)s.rows, (long long)s.cols, csr.colidx.size(), worst, tol));
        }
    }

    // Row splits: contiguous, covering, and balanced to within one row's nonzeros.
    bool split_ok = true;
    for (int trial = 0; trial < 50; trial++) {
        const int64_t rows = int64_t(rng.below(500));
        const Csr csr = random_csr(rng, rows, 300, trial % 5 == 0 ? Sparse::Empty : Sparse::Random);
        int64_t max_row = 0;
        for (int64_t i = 0; i < rows; i++) max_row = std::max<int64_t>(max_row, csr.rowptr[size_t(i + 1)] - csr.rowptr[size_t(i)]);
        const int64_t nnz = csr.rowptr.back();
        for (int parts : {1, 2, 3, 7, 16}) {
            std::vector<int64_t> bounds(size_t(parts + 1));
            kernels::split_rows_by_nnz(csr.rowptr.data(), rows, parts, bounds.data());
            split_ok &= bounds[0] == 0 && bounds[size_t(parts)] == rows;
            for (int p = 0; p < parts; p++) {
                split_ok &= bounds[size_t(p)] <= bounds[size_t(p + 1)];
                const int64_t part_nnz = csr.rowptr[size_t(bounds[size_t(p + 1)])] - csr.rowptr[size_t(bounds[size_t(p)])];
                split_ok &= double(part_nnz) <= double(nnz) / parts + double(max_row) + 1e-9;
                if (nnz == 0) split_ok &= bounds[size_t(p + 1)] - bounds[size_t(p)] <= rows / parts + 1;
            }
        }
    }
    check(split_ok, "split_rows_by_nnz: ranges contiguous, cover all rows, each within one row of nnz/parts (even by rows when nnz = 0)");
}

// ---------------------------------------------------------------- dense matvec

void test_dense(const std::vector<ThreadPool *> &pools) {
    Rng rng(3);
    const int64_t col_counts[] = {1, 7, 31, 32, 33, 100, 172, 257, 4096 + 5};
    const int64_t batch_sizes[] = {1, 2, 3, 5, 8, 9};
    int variant = 0;
    for (int64_t cols : col_counts) {
        const int64_t rows = variant++ % 2 ? 37 : 20;
        std::vector<float> w32(size_t(rows * cols));
        std::vector<uint16_t> w16(size_t(rows * cols));
        std::vector<double> dense32(w32.size()), dense16(w16.size());
        for (size_t i = 0; i < w32.size(); i++) {
            w32[i] = float(rng.normal() * 0.05);
            w16[i] = kernels::fp32_to_fp16(float(rng.normal() * 0.05));
            dense32[i] = w32[i];
            dense16[i] = kernels::fp16_to_fp32(w16[i]);
        }
        const std::vector<float> x = random_activations(rng, 9 * cols);
        const Expected want32 = reference_product(dense32, nullptr, rows, cols, x.data(), 9);
        const Expected want16 = reference_product(dense16, nullptr, rows, cols, x.data(), 9);
        for (const KernelTable *k : all_tables()) {
            double worst32 = 0.0, worst16 = 0.0;
            std::vector<float> y(size_t(9 * rows));
            for (int64_t n : batch_sizes) {
                std::fill(y.begin(), y.end(), kUntouched);
                if (n == 1) k->dense_matvec_f32(w32.data(), rows, cols, x.data(), y.data(), 1, rows - 1);
                else k->dense_matmat_f32(w32.data(), rows, cols, x.data(), n, y.data(), 1, rows - 1);
                worst32 = std::max(worst32, max_error(y, want32, rows, n, 1, rows - 1));
                std::fill(y.begin(), y.end(), kUntouched);
                if (n == 1) k->dense_matvec_f16(w16.data(), rows, cols, x.data(), y.data(), 1, rows - 1);
                else k->dense_matmat_f16(w16.data(), rows, cols, x.data(), n, y.data(), 1, rows - 1);
                worst16 = std::max(worst16, max_error(y, want16, rows, n, 1, rows - 1));
                for (ThreadPool *pool : pools) {
                    if (n == 1) ops::dense_matvec_f32(*pool, w32.data(), rows, cols, x.data(), y.data(), *k);
                    else ops::dense_matmat_f32(*pool, w32.data(), rows, cols, x.data(), n, y.data(), *k);
                    worst32 = std::max(worst32, max_error(y, want32, rows, n, 0, rows));
                    if (n == 1) ops::dense_matvec_f16(*pool, w16.data(), rows, cols, x.data(), y.data(), *k);
                    else ops::dense_matmat_f16(*pool, w16.data(), rows, cols, x.data(), n, y.data(), *k);
                    worst16 = std::max(worst16, max_error(y, want16, rows, n, 0, rows));
                }
            }
            const double tol = tolerance_for(*k);
            check(worst32 <= tol && worst16 <= tol,
                  fmt("[%s] dense rows=%lld cols=%lld fp32 / fp16, kernel + ops, n in {1..9}: max error %.2g / %.2g (tol %.0e)",
                      k->name, (long long)rows, (long long)cols, worst32, worst16, tol));
        }
    }

}

// ---------------------------------------------------------------- attention

// Strided [rows][cols] matrices with a guard value between rows and after the last one, so
// that a write past a row's end, or a kernel that ignores the leading dimension, is caught.
struct Strided {
    int64_t rows, cols, ld;
    std::vector<float> v;
    Strided(Rng &rng, int64_t r, int64_t c, int64_t pad) : rows(r), cols(c), ld(c + pad), v(size_t(r * (c + pad) + 1)) {
        for (float &x : v) x = float(rng.normal());
    }
    float at(int64_t i, int64_t j) const { return v[size_t(i * ld + j)]; }
};

void test_attention() {
    Rng rng(11);
    for (const KernelTable *k : all_tables()) {
        double worst_nt = 0.0, worst_nn = 0.0;
        bool guards = true;
        for (int64_t m : {1, 2, 3, 4, 7, 13}) {
            for (int64_t n : {1, 3, 4, 5, 8, 9, 16, 17, 31, 64}) {
                for (int64_t kk : {1, 7, 8, 9, 64, 67, 128}) {
                    // Scores: C = alpha A B^T, A [m][kk], B [n][kk], C [m][n] overwritten.
                    const Strided a(rng, m, kk, 3), b(rng, n, kk, 5);
                    Strided c(rng, m, n, 2);
                    const std::vector<float> c0 = c.v;
                    const float alpha = 0.125f;
                    k->gemm_nt_f32(m, n, kk, alpha, a.v.data(), a.ld, b.v.data(), b.ld, c.v.data(), c.ld);
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < n; j++) {
                            double want = 0.0, size = 1e-30;
                            for (int64_t p = 0; p < kk; p++) {
                                want += double(a.at(i, p)) * b.at(j, p);
                                size += std::fabs(double(a.at(i, p)) * b.at(j, p));
                            }
                            worst_nt = std::max(worst_nt, std::fabs(c.at(i, j) - alpha * want) / (alpha * size));
                        }
                    for (size_t e = 0; e < c.v.size(); e++)
                        if (int64_t(e % size_t(c.ld)) >= n || e + 1 == c.v.size()) guards = guards && c.v[e] == c0[e];
                    // Outputs: C += A B, A [m][kk], B [kk][n], C [m][n].
                    const Strided w(rng, m, kk, 1), vals(rng, kk, n, 4);
                    Strided out(rng, m, n, 3);
                    const std::vector<float> out0 = out.v;
                    k->gemm_nn_add_f32(m, n, kk, w.v.data(), w.ld, vals.v.data(), vals.ld, out.v.data(), out.ld);
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < n; j++) {
                            double want = out0[size_t(i * out.ld + j)], size = std::fabs(want) + 1e-30;
                            for (int64_t p = 0; p < kk; p++) {
                                want += double(w.at(i, p)) * vals.at(p, j);
                                size += std::fabs(double(w.at(i, p)) * vals.at(p, j));
                            }
                            worst_nn = std::max(worst_nn, std::fabs(out.at(i, j) - want) / size);
                        }
                    for (size_t e = 0; e < out.v.size(); e++)
                        if (int64_t(e % size_t(out.ld)) >= n || e + 1 == out.v.size()) guards = guards && out.v[e] == out0[e];
                }
            }
        }
        const double tol = tolerance_for(*k);
        check(worst_nt <= tol && worst_nn <= tol && guards,
              fmt("[%s] gemm_nt_f32 / gemm_nn_add_f32 m 1..13, n 1..64, k 1..128, strided: max error %.2g / %.2g "
                  "(tol %.0e), nothing written outside C: %s",
                  k->name, worst_nt, worst_nn, tol, guards ? "yes" : "no"));

        // Softmax: scores up to 30 apart, and rows whose smallest terms underflow to zero.
        double worst = 0.0;
        for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000}) {
            for (double spread : {1.0, 30.0, 200.0}) {
                std::vector<float> x(size_t(n) + 1);
                for (float &v : x) v = float(spread * (rng.uniform() - 0.5) + 3.0);
                const float guard = x[size_t(n)];
                const std::vector<float> x0 = x;
                k->softmax_f32(x.data(), n);
                const double top = *std::max_element(x0.begin(), x0.end() - 1);
                double sum = 0.0;
                for (int64_t i = 0; i < n; i++) sum += std::exp(double(x0[size_t(i)]) - top);
                for (int64_t i = 0; i < n; i++) {
                    const double want = std::exp(double(x0[size_t(i)]) - top) / sum;
                    // Relative to the term; terms below 1e-30 (underflowing to zero or not) absolutely.
                    worst = std::max(worst, std::fabs(x[size_t(i)] - want) / (want + 1e-30));
                }
                if (x[size_t(n)] != guard) worst = INFINITY;
            }
        }
        const double stol = tolerance_for(*k);
        check(worst <= stol, fmt("[%s] softmax_f32 n 1..1000, spreads 1..200: max relative error %.2g (tol %.0e)",
                                 k->name, worst, stol));
    }
}

// ---------------------------------------------------------------- KV-cache dequantization

void test_kv_dequant() {
    Rng rng(7);
    constexpr int64_t kChannels = 136;  // 17 groups of 8 codes
    for (const KernelTable *k : all_tables()) {
        double worst = 0.0;
        size_t runs = 0;
        for (int bits : {2, 3, 4}) {
            // Exactly the bytes the codes need, so that a read past them is caught by ASan.
            std::vector<uint8_t> row(static_cast<size_t>((kChannels * bits + 7) / 8));
            for (uint8_t &b : row) b = rng.byte();
            std::vector<float> levels(size_t(1) << bits), zero(kChannels), scale(kChannels);
            for (float &l : levels) l = float(rng.normal());
            for (int64_t c = 0; c < kChannels; c++) {
                zero[size_t(c)] = float(rng.normal());
                scale[size_t(c)] = float(rng.uniform() * 3.0);
            }
            for (int64_t c0 : {0, 3, 8, 64, 120, 128}) {
                for (int64_t n : {0, 1, 7, 8, 9, 16, 64, 72}) {
                    if (c0 + n > kChannels) continue;
                    for (int64_t step : {0, 1}) {
                        std::vector<float> out(static_cast<size_t>(n) + 1, kUntouched);
                        k->kv_dequant(row.data(), c0, n, bits, levels.data(), zero.data() + (step ? c0 : 0),
                                      scale.data() + (step ? c0 : 0), step, out.data());
                        runs++;
                        if (out[size_t(n)] != kUntouched) worst = INFINITY;
                        for (int64_t i = 0; i < n; i++) {
                            uint32_t code = 0;  // bit by bit from the LSB-first stream
                            for (int b = 0; b < bits; b++) {
                                const int64_t bit = (c0 + i) * bits + b;
                                code |= uint32_t((row[size_t(bit / 8)] >> (bit % 8)) & 1) << b;
                            }
                            const size_t e = size_t(step ? c0 + i : 0);
                            const double z = zero[e], term = double(scale[e]) * double(levels[code]);
                            // The float expression numpy evaluates, rounded the same way.
                            const float want = zero[e] + float(scale[e] * levels[code]);
                            if (out[size_t(i)] != want) worst = INFINITY;
                            worst = std::max(worst, std::fabs(out[size_t(i)] - (z + term)) / (std::fabs(z) + std::fabs(term) + 1e-30));
                        }
                    }
                }
            }
        }
        check(worst <= 1e-6, fmt("[%s] kv_dequant bits 2/3/4, aligned and unaligned starts, tails, per-channel and per-token ranges (%zu runs): the bits of zero + scale * level, max error %.2g (tol 1e-06)",
                                 k->name, runs, worst));
    }
}

// ---------------------------------------------------------------- thread pool and dispatch

void test_thread_pool() {
    for (int threads : {1, 2, 3, 8}) {
        ThreadPool pool(threads);
        bool ok = pool.size() == threads;
        for (int n_tasks : {0, 1, 2, 5, 100, 1000}) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
            std::atomic<bool> bad_thread{false};
            pool.parallel_for(n_tasks, [&](int task, int thread) {
                hits[size_t(task)]++;
                if (thread < 0 || thread >= threads) bad_thread = true;
            });
            for (auto &h : hits) ok &= h.load() == 1;
            ok &= !bad_thread;
        }
        // Many short jobs back to back (the spinning hand-off), then jobs after a pause
        // long enough for the workers to fall asleep (the condition-variable hand-off).
        std::atomic<int64_t> total{0};
        for (int job = 0; job < 2000; job++) pool.parallel_for(threads * 2, [&](int task, int) { total += task; });
        ok &= total.load() == 2000LL * (threads * 2) * (threads * 2 - 1) / 2;
        for (int job = 0; job < 3; job++) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            std::atomic<int> count{0};
            pool.parallel_for(16, [&](int, int) { count++; });
            ok &= count.load() == 16;
        }
        // An exception in a task reaches the caller, and the pool still works afterwards.
        bool thrown = false;
        try {
            pool.parallel_for(50, [&](int task, int) {
                if (task == 17) throw std::runtime_error("task 17");
            });
        } catch (const std::runtime_error &e) {
            thrown = std::string(e.what()) == "task 17";
        }
        std::atomic<int> after{0};
        pool.parallel_for(10, [&](int, int) { after++; });
        ok &= thrown && after.load() == 10;
        check(ok, fmt("ThreadPool(%d): every task once, valid thread ids, 2000 quick jobs, wake after sleep, exceptions", threads));
    }
    check(ThreadPool(0).size() == 1 && ThreadPool::default_threads() >= 1, "ThreadPool(0) runs inline; default_threads() >= 1");
}

void test_dispatch() {
    const kernels::CpuFeatures &f = kernels::cpu_features();
    const char *force = std::getenv("SQLLM_FORCE_SCALAR");
    const bool forced = force && *force && std::strcmp(force, "0") != 0;
    const KernelTable &active = kernels::active_kernels();
    const char *no512 = std::getenv("SQLLM_NO_AVX512");
    const bool no_avx512 = no512 && *no512 && std::strcmp(no512, "0") != 0;
    const KernelTable *expect = forced                                  ? &kernels::scalar_kernels()
                                : kernels::avx512_kernels() && !no_avx512 ? kernels::avx512_kernels()
                                : kernels::avx2_kernels()               ? kernels::avx2_kernels()
                                                                        : &kernels::scalar_kernels();
    check(&active == expect && f.force_scalar == forced && (kernels::avx512_kernels() != nullptr) == f.has_avx512_int8(),
          fmt("dispatch: cpu avx2=%d fma=%d f16c=%d avx512(int8)=%d, SQLLM_FORCE_SCALAR=%s SQLLM_NO_AVX512=%s -> active table '%s'",
              f.avx2, f.fma, f.f16c, f.avx512, force ? force : "(unset)", no512 ? no512 : "(unset)", active.name));
}

}  // namespace

int main() {
    ThreadPool one(1), two(2), three(3);
    const std::vector<ThreadPool *> pools = {&one, &two, &three};
    test_dispatch();
    test_fp16();
    test_thread_pool();
    test_lut(pools);
    test_lut_q16_extremes();
    test_lut_w8a16_extremes();
    test_quantized_paths_propagate_nan(pools);
    test_csr(pools);
    test_dense(pools);
    test_attention();
    test_kv_dequant();
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
