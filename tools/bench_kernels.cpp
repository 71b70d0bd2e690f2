// Kernel benchmark: measures this machine's streaming-read bandwidth, then times the LUT
// matvec (dense, dense + 0.45% sparse), the CSR SpMV alone, the batched LUT matmat, the
// scalar references and the fp16 / fp32 dense matvec on Llama-7B shapes with 1 and 2
// threads, and prints each as effective bandwidth (bytes of weights read per second) next
// to the measured one. A last table compares the three ways through a 64-token prompt batch on
// 2 threads: the exact lut_matmat, the int8 lut_matmat and the integer GEMM (lut_gemm_q16).
//
// Every matrix exists in enough copies (>= 128 MiB together, four times the L3 cache of the
// machine this was written on) that consecutive calls stream their weights from DRAM as a
// real forward pass does; each call uses the next copy.
//
// All measurements are taken in rounds: each round runs a few calls of every kernel, so each
// one samples the whole run. On a shared machine other processes only ever make a call
// slower, so the best call is the figure that the bandwidth columns use (as for the
// bandwidth itself); the median is printed beside it.
//
//   bench_kernels           full run
//   bench_kernels --quick   smoke run: 4096x4096 only, smaller buffers, fewer rounds
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
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

constexpr double kSparseDensity = 0.0045;
constexpr int64_t kBatch = 8;  // activations in the lut_matmat measurement
constexpr int64_t kPrompt = 64;  // activations in the prompt-batch comparison (the runtime's n_batch)
const int kThreadCounts[] = {1, 2};

struct Options {
    bool quick = false;
    int64_t bandwidth_bytes = int64_t(1) << 30;
    int64_t working_set_bytes = int64_t(128) << 20;  // at least this much per matrix
    int rounds = 5;
};

// splitmix64: fast enough to fill hundreds of MiB.
struct Random {
    uint64_t state;
    explicit Random(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }
    double normal() {  // Box-Muller; quality is irrelevant here
        const double u = uniform() + 1e-300, v = uniform();
        return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
    }
    void fill(uint8_t *p, int64_t n) {
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const uint64_t r = next();
            std::memcpy(p + i, &r, 8);
        }
        for (; i < n; i++) p[i] = uint8_t(next());
    }
};

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int copies_for(double bytes_per_copy, const Options &opt) {
    return int(std::max<double>(2.0, std::ceil(double(opt.working_set_bytes) / bytes_per_copy)));
}

// ------------------------------------------------------------------- test matrices

struct LutCopies {
    int64_t rows, cols;
    int bits;
    int copies;
    std::vector<uint8_t> codes;
    std::vector<uint16_t> lut;
    std::vector<std::vector<int32_t>> rowptr, colidx;
    std::vector<std::vector<float>> corr;
    std::vector<uint8_t> levels;  // the int8 path's LUTs for all copies
    std::vector<float> lo, step;
    std::vector<int16_t> levels16;  // the batch GEMM's LUTs for all copies
    std::vector<float> lo16, step16;

    kernels::LutQ8Tables q8_tables(int call) const {
        const int64_t copy = call % copies, entries = int64_t(1) << bits;
        return {levels.data() + copy * rows * entries, lo.data() + copy * rows, step.data() + copy * rows};
    }
    kernels::LutQ16Tables q16_tables(int call) const {
        const int64_t copy = call % copies, entries = int64_t(1) << bits;
        return {levels16.data() + copy * rows * entries, lo16.data() + copy * rows, step16.data() + copy * rows};
    }
    double q8_bytes() const { return double(rows) * double(view(0, false).row_bytes() + (int64_t(1) << bits) + 8); }
    LutMatrixView view(int call, bool sparse) const {
        const int copy = call % copies;
        LutMatrixView w;
        w.rows = rows;
        w.cols = cols;
        w.group_size = cols;
        w.bits = bits;
        w.codes = codes.data() + int64_t(copy) * rows * w.row_bytes();
        w.lut = lut.data() + int64_t(copy) * rows * w.lut_row_entries();
        if (sparse) {
            w.rowptr = rowptr[size_t(copy)].data();
            w.colidx = colidx[size_t(copy)].data();
            w.corr = corr[size_t(copy)].data();
        }
        return w;
    }
    CsrMatrixView csr(int call) const {
        const int copy = call % copies;
        CsrMatrixView a;
        a.rowptr = rowptr[size_t(copy)].data();
        a.colidx = colidx[size_t(copy)].data();
        a.values = corr[size_t(copy)].data();
        a.rows = rows;
        a.cols = cols;
        return a;
    }
    double dense_bytes() const {
        const LutMatrixView w = view(0, false);
        return double(rows) * double(w.row_bytes() + w.lut_row_entries() * 2);
    }
    double sparse_bytes() const { return double(rows + 1) * 4 + double(colidx[0].size()) * 8; }
};

std::unique_ptr<LutCopies> make_lut_copies(const Options &opt, Random &rng, int64_t rows, int64_t cols, int bits) {
    std::unique_ptr<LutCopies> m(new LutCopies{rows, cols, bits, 0, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}});
    LutMatrixView shape;
    shape.rows = rows;
    shape.cols = cols;
    shape.group_size = cols;
    shape.bits = bits;
    const int64_t codes_bytes = rows * shape.row_bytes();
    m->copies = copies_for(double(codes_bytes), opt);
    m->codes.resize(size_t(codes_bytes * m->copies));
    rng.fill(m->codes.data(), int64_t(m->codes.size()));
    m->lut.resize(size_t(rows * shape.lut_row_entries() * m->copies));
    for (uint16_t &h : m->lut) h = kernels::fp32_to_fp16(float(rng.normal() * 0.02));
    LutMatrixView all = shape;
    all.rows = rows * m->copies;
    all.lut = m->lut.data();
    if (kernels::q8_supported(shape, kernels::scalar_kernels().q8_max_bits)) {
        m->levels.resize(size_t(all.rows << bits));
        m->lo.resize(size_t(all.rows));
        m->step.resize(size_t(all.rows));
        kernels::q8_requantize_lut(all, m->levels.data(), m->lo.data(), m->step.data());
    }
    if (kernels::q16_supported(shape)) {
        m->levels16.resize(size_t(all.rows << bits));
        m->lo16.resize(size_t(all.rows));
        m->step16.resize(size_t(all.rows));
        kernels::q16_requantize_lut(all, m->levels16.data(), m->lo16.data(), m->step16.data());
    }
    const double per_row = kSparseDensity * double(cols);
    std::vector<int32_t> row_cols;
    for (int c = 0; c < m->copies; c++) {
        std::vector<int32_t> rowptr = {0}, colidx;
        std::vector<float> corr;
        for (int64_t i = 0; i < rows; i++) {
            const int64_t count = int64_t(per_row) + (rng.uniform() < per_row - std::floor(per_row) ? 1 : 0);
            row_cols.clear();
            while (int64_t(row_cols.size()) < count) {
                const int32_t j = int32_t(rng.next() % uint64_t(cols));
                if (std::find(row_cols.begin(), row_cols.end(), j) == row_cols.end()) row_cols.push_back(j);
            }
            std::sort(row_cols.begin(), row_cols.end());
            for (int32_t j : row_cols) {
                colidx.push_back(j);
                corr.push_back(float(rng.normal() * 0.05));
            }
            rowptr.push_back(int32_t(colidx.size()));
        }
        m->rowptr.push_back(std::move(rowptr));
        m->colidx.push_back(std::move(colidx));
        m->corr.push_back(std::move(corr));
    }
    return m;
}

// ------------------------------------------------------------------- measurements

struct Measurement {
    std::string kernel, shape, bits;
    size_t pool;               // index into the pools (and the bandwidths)
    double bytes;              // weight bytes one call reads
    double calls_per_unit;     // > 1 to report per activation of a batch
    int calls_per_round;
    std::function<void(int)> call;  // call(i): the i-th call, on copy i % copies
    std::vector<double> times;
    int next_call = 0;

    double best() const { return *std::min_element(times.begin(), times.end()) / calls_per_unit; }
    double median() const {
        std::vector<double> t = times;
        std::sort(t.begin(), t.end());
        return t[t.size() / 2] / calls_per_unit;
    }
};

void run_round(Measurement &m) {
    m.call(m.next_call++);  // warm-up: code, x and y in cache, threads awake
    for (int c = 0; c < m.calls_per_round; c++) {
        const double t0 = now_seconds();
        m.call(m.next_call++);
        m.times.push_back(now_seconds() - t0);
    }
}

const Measurement *find(const std::vector<std::unique_ptr<Measurement>> &all, const std::string &kernel,
                        const std::string &shape, const std::string &bits, size_t pool) {
    for (const auto &m : all)
        if (m->kernel == kernel && m->shape == shape && m->bits == bits && m->pool == pool) return m.get();
    return nullptr;
}

std::string fmt_cell(double gmacs, double us) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f G/s (%.1f us)", gmacs, us);
    return buf;
}

std::string fmt_ratio(double r) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fx", r);
    return buf;
}

}  // namespace

int main(int argc, char **argv) {
    Options opt;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--quick") == 0) {
            opt.quick = true;
            opt.bandwidth_bytes = int64_t(256) << 20;
            opt.working_set_bytes = int64_t(96) << 20;
            opt.rounds = 2;
        } else {
            std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    const kernels::CpuFeatures &cpu = kernels::cpu_features();
    const KernelTable *fast = &kernels::active_kernels();
    const KernelTable *scalar = &kernels::scalar_kernels();
    std::vector<const KernelTable *> int8_tables = {scalar};
    if (kernels::avx2_kernels()) int8_tables.push_back(kernels::avx2_kernels());
    if (kernels::avx512_kernels()) int8_tables.push_back(kernels::avx512_kernels());
    std::vector<std::unique_ptr<ThreadPool>> pools;
    for (int t : kThreadCounts) pools.emplace_back(new ThreadPool(t));

    struct Shape {
        int64_t rows, cols;
    };
    std::vector<Shape> shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    if (opt.quick) shapes.resize(1);
    auto shape_name = [](const Shape &s) { return std::to_string(s.rows) + "x" + std::to_string(s.cols); };

    // Data, kept alive for the whole run.
    Random rng(12345);
    std::vector<std::unique_ptr<LutCopies>> luts;
    std::vector<std::vector<float>> activations;  // per shape: x [kBatch][cols], y [kBatch][rows]
    std::vector<std::vector<float>> outputs;
    std::vector<std::vector<float>> prompt_x, prompt_y;  // per shape: x [kPrompt][cols], y [kPrompt][rows]
    std::vector<std::vector<uint16_t>> dense16;
    std::vector<std::vector<float>> dense32;
    std::vector<std::unique_ptr<Measurement>> all;
    auto add = [&](const std::string &kernel, const std::string &shape, const std::string &bits, size_t pool, double bytes,
                   int calls_per_round, std::function<void(int)> call, double calls_per_unit = 1.0) {
        all.emplace_back(new Measurement{kernel, shape, bits, pool, bytes, calls_per_unit, calls_per_round, std::move(call), {}, 0});
    };

    for (const Shape &s : shapes) {
        const std::string shape = shape_name(s);
        activations.emplace_back(size_t(kBatch * s.cols));
        for (float &v : activations.back()) v = float(rng.normal());
        outputs.emplace_back(size_t(kBatch * s.rows));
        prompt_x.emplace_back(size_t(kPrompt * s.cols));
        for (float &v : prompt_x.back()) v = float(rng.normal());
        prompt_y.emplace_back(size_t(kPrompt * s.rows));
        const float *x = activations.back().data();
        float *y = outputs.back().data();

        for (int bits : {3, 4, 5, 6}) {
            const std::string b = std::to_string(bits);
            luts.push_back(make_lut_copies(opt, rng, s.rows, s.cols, bits));
            const LutCopies *m = luts.back().get();
            const int calls = std::max(4, m->copies / 2);
            for (size_t p = 0; p < pools.size(); p++) {
                ThreadPool *pool = pools[p].get();
                add("lut_matvec", shape, b, p, m->dense_bytes(), calls,
                    [=](int c) { ops::lut_matvec(*pool, m->view(c, false), x, y, *fast); });
                add("lut_matvec + 0.45% sparse", shape, b, p, m->dense_bytes() + m->sparse_bytes(), calls,
                    [=](int c) { ops::lut_matvec(*pool, m->view(c, true), x, y, *fast); });
                add("lut_matvec scalar reference", shape, b, p, m->dense_bytes(), 1,
                    [=](int c) { ops::lut_matvec(*pool, m->view(c, false), x, y, *scalar); });
                // The int8 path with each kernel table this CPU runs, quantizing x in every call
                // (only for the widths it supports).
                if (kernels::q8_supported(m->view(0, false), kernels::scalar_kernels().q8_max_bits)) {
                    for (const KernelTable *k : int8_tables) {
                        if (!kernels::q8_supported(m->view(0, false), k->q8_max_bits)) continue;
                        const std::string name = std::string("lut_matvec int8 (") + k->name + ")";
                        add(name, shape, b, p, m->q8_bytes(), k == scalar ? 1 : calls, [=](int c) {
                            thread_local ops::Q8Buffer buffer;
                            const kernels::Q8Activations a = buffer.quantize(x, 1, s.cols, k->q8_order(bits));
                            ops::lut_matmat_q8(*pool, m->view(c, false), m->q8_tables(c), a, x, y, *k);
                        });
                    }
                }
                // One token as the default path runs it: byte levels and 14-bit activations.
                if (fast->lut_matvec_w8a16 && kernels::q8_supported(m->view(0, false), 6))
                    add(std::string("lut_matvec_w8a16 (") + fast->name + ")", shape, b, p, m->q8_bytes(), calls,
                        [=](int c) {
                            thread_local ops::Q16Buffer buffer;
                            const kernels::W8A16Activations a = buffer.split(buffer.quantize(*pool, x, 1, s.cols));
                            ops::lut_matvec_w8a16(*pool, m->view(c, false), m->q8_tables(c), a, x, y, *fast);
                        });
                if (bits == 3) {
                    add("csr_spmv_add (0.45%) alone", shape, "-", p, m->sparse_bytes(), calls,
                        [=](int c) { ops::csr_spmv_add(*pool, m->csr(c), x, y, *fast); });
                    add("csr_spmv_add scalar reference", shape, "-", p, m->sparse_bytes(), calls,
                        [=](int c) { ops::csr_spmv_add(*pool, m->csr(c), x, y, *scalar); });
                }
            }
            // A prompt batch: kBatch activations share each decode of the weights.
            ThreadPool *pool = pools.back().get();
            add("lut_matmat + sparse, n=8, per token", shape, b, pools.size() - 1, m->dense_bytes() + m->sparse_bytes(),
                std::max(2, calls / 4), [=](int c) { ops::lut_matmat(*pool, m->view(c, true), x, kBatch, y, *fast); },
                double(kBatch));
            // The runtime's three ways through a prompt batch of kPrompt tokens, dense part only,
            // each quantizing x in every call as the runtime does.
            const float *xp = prompt_x.back().data();
            float *yp = prompt_y.back().data();
            const int batch_calls = std::max(2, calls / 16);
            add("prompt n=64: lut_matmat (exact)", shape, b, pools.size() - 1, m->dense_bytes(), batch_calls,
                [=](int c) { ops::lut_matmat(*pool, m->view(c, false), xp, kPrompt, yp, *fast); }, double(kPrompt));
            if (kernels::q8_supported(m->view(0, false), fast->q8_max_bits))
                add(std::string("prompt n=64: lut_matmat int8 (") + fast->name + ")", shape, b, pools.size() - 1, m->q8_bytes(),
                    batch_calls, [=](int c) {
                        thread_local ops::Q8Buffer buffer;
                        const kernels::Q8Activations a = buffer.quantize(xp, kPrompt, s.cols, fast->q8_order(bits));
                        ops::lut_matmat_q8(*pool, m->view(c, false), m->q8_tables(c), a, xp, yp, *fast);
                    }, double(kPrompt));
            if (fast->lut_gemm_q16 && kernels::q16_supported(m->view(0, false)))
                add(std::string("prompt n=64: lut_gemm_q16 (") + fast->name + ")", shape, b, pools.size() - 1, m->dense_bytes(),
                    batch_calls, [=](int c) {
                        thread_local ops::Q16Buffer buffer;
                        const kernels::Q16Activations a = buffer.quantize(*pool, xp, kPrompt, s.cols);
                        ops::lut_gemm_q16(*pool, m->view(c, false), m->q16_tables(c), a, xp, yp, *fast);
                    }, double(kPrompt));
        }

        // The unquantized baselines on the same shape.
        const int64_t count = s.rows * s.cols;
        const int copies16 = copies_for(double(count) * 2, opt), copies32 = copies_for(double(count) * 4, opt);
        dense16.emplace_back(size_t(count * copies16));
        for (uint16_t &h : dense16.back()) h = kernels::fp32_to_fp16(float((rng.uniform() - 0.5) * 0.1));
        dense32.emplace_back(size_t(count * copies32));
        for (float &v : dense32.back()) v = float((rng.uniform() - 0.5) * 0.1);
        const uint16_t *w16 = dense16.back().data();
        const float *w32 = dense32.back().data();
        for (size_t p = 0; p < pools.size(); p++) {
            ThreadPool *pool = pools[p].get();
            add("dense_matvec_f16", shape, "16", p, double(count) * 2, std::max(4, copies16 / 2),
                [=](int c) { ops::dense_matvec_f16(*pool, w16 + (c % copies16) * count, s.rows, s.cols, x, y, *fast); });
            add("dense_matvec_f32", shape, "32", p, double(count) * 4, std::max(4, copies32 / 2),
                [=](int c) { ops::dense_matvec_f32(*pool, w32 + (c % copies32) * count, s.rows, s.cols, x, y, *fast); });
        }
        ThreadPool *one = pools.front().get();
        add("dense_matvec_f16 scalar reference", shape, "16", 0, double(count) * 2, 1,
            [=](int c) { ops::dense_matvec_f16(*one, w16 + (c % copies16) * count, s.rows, s.cols, x, y, *scalar); });
        add("dense_matvec_f32 scalar reference", shape, "32", 0, double(count) * 4, 1,
            [=](int c) { ops::dense_matvec_f32(*one, w32 + (c % copies32) * count, s.rows, s.cols, x, y, *scalar); });
    }

    // Memory bandwidth: the streaming sum of one large buffer, each thread a contiguous part.
    std::vector<float> buffer(static_cast<size_t>(opt.bandwidth_bytes / int64_t(sizeof(float))), 1.0f);
    std::vector<double> best_bandwidth(pools.size(), 0.0);
    double sink = 0.0;
    auto measure_bandwidth = [&](size_t p) {
        ThreadPool &pool = *pools[p];
        const int64_t n = int64_t(buffer.size());
        const int parts = pool.size();
        std::vector<double> partial(static_cast<size_t>(parts));
        const double t0 = now_seconds();
        pool.parallel_for(parts, [&](int task, int) {
            const int64_t begin = n * task / parts, end = n * (task + 1) / parts;
            partial[size_t(task)] = fast->sum_f32(buffer.data() + begin, end - begin);
        });
        best_bandwidth[p] = std::max(best_bandwidth[p], double(opt.bandwidth_bytes) / (now_seconds() - t0) / 1e9);
        for (double v : partial) sink += v;
    };

    const double start = now_seconds();
    for (int round = 0; round < opt.rounds; round++) {
        for (size_t p = 0; p < pools.size(); p++) measure_bandwidth(p);
        for (auto &m : all) run_round(*m);
        std::fprintf(stderr, "round %d/%d done after %.0f s\n", round + 1, opt.rounds, now_seconds() - start);
    }

    std::printf("# sqllm kernel benchmark%s\n\n", opt.quick ? " (--quick)" : "");
    std::printf("CPU: avx2=%d fma=%d f16c=%d avx512(int8)=%d; kernels: %s; hardware threads: %d\n", cpu.avx2, cpu.fma,
                cpu.f16c, cpu.avx512, fast->name,
                ThreadPool::default_threads());
    std::printf("Measured streaming-read bandwidth (sum of a %lld MiB buffer with %s, best of %d): ",
                (long long)(opt.bandwidth_bytes >> 20), fast->name, opt.rounds);
    for (size_t p = 0; p < pools.size(); p++)
        std::printf("%s%d thread%s %.1f GB/s", p ? ", " : "", pools[p]->size(), pools[p]->size() > 1 ? "s" : "",
                    best_bandwidth[p]);
    std::printf("\n\nbest / median: per call, over %d rounds; every matrix cycles through copies of >= %lld MiB in all, "
                "so it streams from DRAM. GB/s: bytes of weights read per second in the best call (codes + LUTs; + CSR "
                "rowptr, colidx and fp32 values where sparse; the fp16 / fp32 matrix). %% BW: of the measured bandwidth "
                "at the same thread count. vs fp16: speed relative to dense_matvec_f16 on the same shape and threads.\n\n",
                opt.rounds, (long long)(opt.working_set_bytes >> 20));
    std::printf("| kernel | shape | bits | threads | best (us) | median (us) | GB/s | %% BW | vs fp16 |\n");
    std::printf("|---|---|---|---|---:|---:|---:|---:|---:|\n");
    for (const auto &m : all) {
        const double gbs = m->bytes / m->best() / 1e9;
        const Measurement *fp16 = find(all, "dense_matvec_f16", m->shape, "16", m->pool);
        std::printf("| %s | %s | %s | %d | %.1f | %.1f | %.2f | %.0f%% | %.2fx |\n", m->kernel.c_str(), m->shape.c_str(),
                    m->bits.c_str(), pools[m->pool]->size(), m->best() * 1e6, m->median() * 1e6, gbs,
                    100.0 * gbs / best_bandwidth[m->pool], fp16->best() / m->best());
    }

    std::printf("\nCost of the 0.45%% sparse part: dense + sparse vs dense only (best calls; median calls in brackets).\n\n");
    std::printf("| shape | bits | threads | dense (us) | dense + sparse (us) | overhead |\n|---|---|---|---:|---:|---:|\n");
    for (const Shape &s : shapes)
        for (const char *b : {"3", "4"})
            for (size_t p = 0; p < pools.size(); p++) {
                const Measurement *dense = find(all, "lut_matvec", shape_name(s), b, p);
                const Measurement *both = find(all, "lut_matvec + 0.45% sparse", shape_name(s), b, p);
                std::printf("| %s | %s | %d | %.1f | %.1f | %+.1f%% (%+.1f%%) |\n", shape_name(s).c_str(), b,
                            pools[p]->size(), dense->best() * 1e6, both->best() * 1e6,
                            100.0 * (both->best() / dense->best() - 1.0), 100.0 * (both->median() / dense->median() - 1.0));
            }
    std::printf("\nPrompt batches of %lld tokens, %d threads: multiply-adds per second of the dense part (per "
                "token time in brackets) and the ratios of the same run.\n\n", (long long)kPrompt, pools.back()->size());
    std::printf("| shape | bits | exact lut_matmat | int8 lut_matmat | lut_gemm_q16 | q16 vs exact | q16 vs int8 |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (const Shape &s : shapes)
        for (int bits : {3, 4, 5, 6}) {
            const std::string b = std::to_string(bits), sh = shape_name(s);
            const size_t p = pools.size() - 1;
            const Measurement *exact = find(all, "prompt n=64: lut_matmat (exact)", sh, b, p);
            const Measurement *int8 = find(all, std::string("prompt n=64: lut_matmat int8 (") + fast->name + ")", sh, b, p);
            const Measurement *gemm = find(all, std::string("prompt n=64: lut_gemm_q16 (") + fast->name + ")", sh, b, p);
            const double macs = double(s.rows) * double(s.cols);
            auto cell = [&](const Measurement *m) {
                return m ? fmt_cell(macs / m->best() / 1e9, m->best() * 1e6) : std::string("-");
            };
            std::printf("| %s | %s | %s | %s | %s | %s | %s |\n", sh.c_str(), b.c_str(), cell(exact).c_str(), cell(int8).c_str(),
                        cell(gemm).c_str(), gemm && exact ? fmt_ratio(exact->best() / gemm->best()).c_str() : "-",
                        gemm && int8 ? fmt_ratio(int8->best() / gemm->best()).c_str() : "-");
        }
    std::fprintf(stderr, "(checksum %g)\n", sink);
    return 0;
}
