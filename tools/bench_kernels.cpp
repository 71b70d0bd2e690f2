// Kernel benchmark: measures this machine's streaming-read bandwidth, then times the LUT
// matvec (dense, dense + 0.45% sparse), the CSR SpMV alone, the scalar reference and the
// fp16 / fp32 dense matvec on Llama-7B shapes with 1 and 2 threads, and prints each as
// effective bandwidth (bytes of weights read per second) next to the measured one.
//
// Every matrix exists in enough copies (>= 256 MiB together, far beyond the L3 cache) that
// consecutive calls stream their weights from DRAM as a real forward pass does; each timed
// call uses the next copy. Each kernel reports its best and its median call: the bandwidth
// figures use the best, like the bandwidth measurement itself, because on a shared machine
// other processes only ever make a call slower.
//
//   bench_kernels           full run
//   bench_kernels --quick   smoke run: 4096x4096 only, smaller buffers, fewer calls
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
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
const int kThreadCounts[] = {1, 2};

struct Options {
    bool quick = false;
    int64_t bandwidth_bytes = int64_t(1) << 30;
    int64_t working_set_bytes = int64_t(256) << 20;  // at least this much per matrix kind
    int min_calls = 30;
    int scalar_calls = 3;
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

struct Timing {
    double best, median;  // seconds per call
    Timing operator/(double d) const { return {best / d, median / d}; }
};

// The best and median of `calls` calls of fn(call_index), after two warm-up calls.
Timing time_calls(int calls, const std::function<void(int)> &fn) {
    fn(0);
    fn(1);
    std::vector<double> times;
    for (int c = 0; c < calls; c++) {
        const double t0 = now_seconds();
        fn(c);
        times.push_back(now_seconds() - t0);
    }
    std::sort(times.begin(), times.end());
    return {times.front(), times[times.size() / 2]};
}

// ------------------------------------------------------------------- memory bandwidth

double measure_bandwidth(const Options &opt, ThreadPool &pool, const KernelTable &k, double *sink) {
    static std::vector<float> buffer;
    const int64_t n = opt.bandwidth_bytes / int64_t(sizeof(float));
    if (int64_t(buffer.size()) != n) buffer.assign(size_t(n), 1.0f);
    const int parts = pool.size();
    std::vector<double> partial(static_cast<size_t>(parts));
    double best = 1e30;
    for (int rep = 0; rep < (opt.quick ? 3 : 5); rep++) {
        const double t0 = now_seconds();
        pool.parallel_for(parts, [&](int task, int) {
            const int64_t begin = n * task / parts, end = n * (task + 1) / parts;
            partial[size_t(task)] = k.sum_f32(buffer.data() + begin, end - begin);
        });
        best = std::min(best, now_seconds() - t0);
        for (double p : partial) *sink += p;
    }
    return double(opt.bandwidth_bytes) / best / 1e9;
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

    LutMatrixView view(int copy, bool sparse) const {
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
    CsrMatrixView csr(int copy) const {
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

LutCopies make_lut_copies(const Options &opt, Random &rng, int64_t rows, int64_t cols, int bits) {
    LutCopies m{rows, cols, bits, 0, {}, {}, {}, {}, {}};
    const LutMatrixView shape = m.view(0, false);
    const int64_t codes_bytes = rows * shape.row_bytes();
    m.copies = int(std::max<int64_t>(2, (opt.working_set_bytes + codes_bytes - 1) / codes_bytes));
    m.codes.resize(size_t(codes_bytes * m.copies));
    rng.fill(m.codes.data(), int64_t(m.codes.size()));
    m.lut.resize(size_t(rows * shape.lut_row_entries() * m.copies));
    for (uint16_t &h : m.lut) h = kernels::fp32_to_fp16(float(rng.normal() * 0.02));
    const double per_row = kSparseDensity * double(cols);
    for (int c = 0; c < m.copies; c++) {
        std::vector<int32_t> rowptr = {0}, colidx;
        std::vector<float> corr;
        std::vector<int32_t> row_cols;
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
        m.rowptr.push_back(std::move(rowptr));
        m.colidx.push_back(std::move(colidx));
        m.corr.push_back(std::move(corr));
    }
    return m;
}

// ------------------------------------------------------------------- report

struct Row {
    std::string kernel, shape, bits;
    int threads;
    Timing time;
    double bytes, bandwidth;  // bandwidth: the measured one for this thread count
};

std::vector<Row> g_rows;

void report(const std::string &kernel, const std::string &shape, const std::string &bits, int threads, Timing time,
            double bytes, double bandwidth) {
    g_rows.push_back({kernel, shape, bits, threads, time, bytes, bandwidth});
    std::fprintf(stderr, "  %-34s %-11s %-4s T=%d %10.1f us %7.2f GB/s\n", kernel.c_str(), shape.c_str(), bits.c_str(),
                 threads, time.best * 1e6, bytes / time.best / 1e9);
}

Timing find_time(const std::string &kernel, const std::string &shape, const std::string &bits, int threads) {
    for (const Row &r : g_rows)
        if (r.kernel == kernel && r.shape == shape && r.bits == bits && r.threads == threads) return r.time;
    return {NAN, NAN};
}

}  // namespace

int main(int argc, char **argv) {
    Options opt;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--quick") == 0) {
            opt.quick = true;
            opt.bandwidth_bytes = int64_t(256) << 20;
            opt.working_set_bytes = int64_t(96) << 20;
            opt.min_calls = 10;
            opt.scalar_calls = 1;
        } else {
            std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    const kernels::CpuFeatures &cpu = kernels::cpu_features();
    const KernelTable &fast = kernels::active_kernels();
    const KernelTable &scalar = kernels::scalar_kernels();
    std::printf("# sqllm kernel benchmark%s\n\n", opt.quick ? " (--quick)" : "");
    std::printf("CPU: avx2=%d fma=%d f16c=%d; kernels: %s; hardware threads: %d\n", cpu.avx2, cpu.fma, cpu.f16c, fast.name,
                ThreadPool::default_threads());

    std::vector<ThreadPool *> pools;
    for (int t : kThreadCounts) pools.push_back(new ThreadPool(t));

    double sink = 0.0;
    std::vector<double> bandwidth;
    for (ThreadPool *pool : pools) bandwidth.push_back(measure_bandwidth(opt, *pool, fast, &sink));
    std::printf("Measured streaming-read bandwidth (sum of a %lld MiB buffer, %s, best of %d): ",
                (long long)(opt.bandwidth_bytes >> 20), fast.name, opt.quick ? 3 : 5);
    for (size_t p = 0; p < pools.size(); p++)
        std::printf("%s%d thread%s %.1f GB/s", p ? ", " : "", pools[p]->size(), pools[p]->size() > 1 ? "s" : "", bandwidth[p]);
    std::printf("\n");

    struct Shape {
        int64_t rows, cols;
    };
    std::vector<Shape> shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    if (opt.quick) shapes.resize(1);
    Random rng(12345);

    for (const Shape &s : shapes) {
        const std::string shape = std::to_string(s.rows) + "x" + std::to_string(s.cols);
        std::vector<float> x(size_t(s.cols)), y(size_t(s.rows));
        for (float &v : x) v = float(rng.normal());

        for (int bits : {3, 4}) {
            const std::string b = std::to_string(bits);
            LutCopies m = make_lut_copies(opt, rng, s.rows, s.cols, bits);
            const int calls = std::max(opt.min_calls, 3 * m.copies);
            for (size_t p = 0; p < pools.size(); p++) {
                ThreadPool &pool = *pools[p];
                const double bw = bandwidth[p];
                report("lut_matvec", shape, b, pool.size(),
                       time_calls(calls, [&](int c) { ops::lut_matvec(pool, m.view(c % m.copies, false), x.data(), y.data(), fast); }),
                       m.dense_bytes(), bw);
                report("lut_matvec + 0.45% sparse", shape, b, pool.size(),
                       time_calls(calls, [&](int c) { ops::lut_matvec(pool, m.view(c % m.copies, true), x.data(), y.data(), fast); }),
                       m.dense_bytes() + m.sparse_bytes(), bw);
                report("lut_matvec scalar reference", shape, b, pool.size(),
                       time_calls(opt.scalar_calls, [&](int c) { ops::lut_matvec(pool, m.view(c % m.copies, false), x.data(), y.data(), scalar); }),
                       m.dense_bytes(), bw);
                if (bits == 3) {
                    report("csr_spmv_add (0.45%) alone", shape, "-", pool.size(),
                           time_calls(calls, [&](int c) { ops::csr_spmv_add(pool, m.csr(c % m.copies), x.data(), y.data(), fast); }),
                           m.sparse_bytes(), bw);
                    report("csr_spmv_add scalar reference", shape, "-", pool.size(),
                           time_calls(calls, [&](int c) { ops::csr_spmv_add(pool, m.csr(c % m.copies), x.data(), y.data(), scalar); }),
                           m.sparse_bytes(), bw);
                }
            }
            // A prompt batch: 8 activations share each decode of the weights.
            const int64_t batch = 8;
            std::vector<float> xb(size_t(batch * s.cols)), yb(size_t(batch * s.rows));
            for (float &v : xb) v = float(rng.normal());
            ThreadPool &pool = *pools.back();
            report("lut_matmat n=8 (per token)", shape, b, pool.size(),
                   time_calls(std::max(opt.min_calls / 2, m.copies), [&](int c) {
                       ops::lut_matmat(pool, m.view(c % m.copies, true), xb.data(), batch, yb.data(), fast);
                   }) / batch,
                   m.dense_bytes() + m.sparse_bytes(), bandwidth.back());
        }

        // The unquantized baselines on the same shape.
        const int64_t count = s.rows * s.cols;
        const int copies16 = int(std::max<int64_t>(2, opt.working_set_bytes / (count * 2) + 1));
        const int copies32 = int(std::max<int64_t>(2, opt.working_set_bytes / (count * 4) + 1));
        {
            std::vector<uint16_t> w16(size_t(count * copies16));
            for (uint16_t &h : w16) h = kernels::fp32_to_fp16(float((rng.uniform() - 0.5) * 0.1));
            for (size_t p = 0; p < pools.size(); p++)
                report("dense_matvec_f16", shape, "16", pools[p]->size(),
                       time_calls(std::max(opt.min_calls, 3 * copies16), [&](int c) {
                           ops::dense_matvec_f16(*pools[p], w16.data() + (c % copies16) * count, s.rows, s.cols, x.data(), y.data(), fast);
                       }),
                       double(count) * 2, bandwidth[p]);
            report("dense_matvec_f16 scalar reference", shape, "16", pools[0]->size(),
                   time_calls(opt.scalar_calls, [&](int c) {
                       ops::dense_matvec_f16(*pools[0], w16.data() + (c % copies16) * count, s.rows, s.cols, x.data(), y.data(), scalar);
                   }),
                   double(count) * 2, bandwidth[0]);
        }
        {
            std::vector<float> w32(size_t(count * copies32));
            for (float &v : w32) v = float((rng.uniform() - 0.5) * 0.1);
            for (size_t p = 0; p < pools.size(); p++)
                report("dense_matvec_f32", shape, "32", pools[p]->size(),
                       time_calls(std::max(opt.min_calls, 3 * copies32), [&](int c) {
                           ops::dense_matvec_f32(*pools[p], w32.data() + (c % copies32) * count, s.rows, s.cols, x.data(), y.data(), fast);
                       }),
                       double(count) * 4, bandwidth[p]);
            report("dense_matvec_f32 scalar reference", shape, "32", pools[0]->size(),
                   time_calls(opt.scalar_calls, [&](int c) {
                       ops::dense_matvec_f32(*pools[0], w32.data() + (c % copies32) * count, s.rows, s.cols, x.data(), y.data(), scalar);
                   }),
                   double(count) * 4, bandwidth[0]);
        }
    }

    std::printf("\nTime: best and median call (the matrix cycles through copies totalling >= %lld MiB, so it streams "
                "from DRAM). GB/s: bytes of weights read (codes + LUTs, + CSR rowptr/colidx/fp32 values where sparse; "
                "fp16/fp32 matrices) per second, best call. %% BW: of the measured bandwidth at the same thread count. "
                "vs fp16: speed relative to dense_matvec_f16 on the same shape and threads (best calls).\n\n",
                (long long)(opt.working_set_bytes >> 20));
    std::printf("| kernel | shape | bits | threads | best (us) | median (us) | GB/s | %% BW | vs fp16 |\n");
    std::printf("|---|---|---|---|---:|---:|---:|---:|---:|\n");
    for (const Row &r : g_rows) {
        const double gbs = r.bytes / r.time.best / 1e9;
        const double fp16 = find_time("dense_matvec_f16", r.shape, "16", r.threads).best;
        std::printf("| %s | %s | %s | %d | %.1f | %.1f | %.2f | %.0f%% | %.2fx |\n", r.kernel.c_str(), r.shape.c_str(),
                    r.bits.c_str(), r.threads, r.time.best * 1e6, r.time.median * 1e6, gbs, 100.0 * gbs / r.bandwidth,
                    fp16 / r.time.best);
    }

    std::printf("\nCost of the 0.45%% sparse part (dense + sparse vs dense only, best calls; median calls in brackets):\n\n");
    std::printf("| shape | bits | threads | dense (us) | dense + sparse (us) | overhead |\n|---|---|---|---:|---:|---:|\n");
    for (const Shape &s : shapes) {
        const std::string shape = std::to_string(s.rows) + "x" + std::to_string(s.cols);
        for (const char *b : {"3", "4"})
            for (int t : kThreadCounts) {
                const Timing dense = find_time("lut_matvec", shape, b, t);
                const Timing both = find_time("lut_matvec + 0.45% sparse", shape, b, t);
                std::printf("| %s | %s | %d | %.1f | %.1f | %+.1f%% (%+.1f%%) |\n", shape.c_str(), b, t, dense.best * 1e6,
                            both.best * 1e6, 100.0 * (both.best / dense.best - 1.0), 100.0 * (both.median / dense.median - 1.0));
            }
    }
    for (ThreadPool *pool : pools) delete pool;
    std::fprintf(stderr, "(checksum %g)\n", sink + double(g_rows.size()));
    return 0;
}
