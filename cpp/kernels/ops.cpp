#include "kernels/ops.h"

#include <algorithm>

namespace sqllm {
namespace ops {
namespace {

using kernels::CsrMatrixView;
using kernels::KernelTable;
using kernels::LutMatrixView;

// A few tasks per thread let the pool even out a thread that starts late or is preempted.
constexpr int kTasksPerThread = 4;
// Below this much memory traffic per task, waking threads costs more than it saves.
constexpr double kMinTaskBytes = 64 * 1024;
constexpr double kCsrEntryBytes = sizeof(int32_t) + sizeof(float);

// Calls body(row_begin, row_end) on ranges of rows of about equal cost (see
// kernels::split_rows_by_cost), in parallel when the work is large enough to pay for it.
template <class Body>
void for_row_ranges(ThreadPool &pool, const int32_t *rowptr, int64_t rows, double row_cost, double nnz_cost,
                    double work_scale, Body body) {
    if (rows <= 0) return;
    const double bytes = row_cost * double(rows) + (rowptr ? nnz_cost * double(rowptr[rows]) : 0.0);
    const double by_work = bytes * work_scale / kMinTaskBytes;
    const int64_t n_tasks =
        std::max<int64_t>(1, std::min<int64_t>({int64_t(pool.size()) * kTasksPerThread, int64_t(by_work), rows}));
    if (n_tasks == 1 || pool.size() == 1) {
        body(int64_t(0), rows);
        return;
    }
    const int parts = int(n_tasks);
    pool.parallel_for(parts, [&](int task, int) {
        const int64_t begin = kernels::row_split_point(rowptr, rows, row_cost, nnz_cost, parts, task);
        const int64_t end = kernels::row_split_point(rowptr, rows, row_cost, nnz_cost, parts, task + 1);
        if (begin < end) body(begin, end);
    });
}

double lut_row_bytes(const LutMatrixView &w) {
    return double(w.row_bytes()) + double(w.lut_row_entries()) * sizeof(uint16_t);
}

CsrMatrixView sparse_part(const LutMatrixView &w) {
    CsrMatrixView a;
    a.rowptr = w.rowptr;
    a.colidx = w.colidx;
    a.values = w.corr;
    a.rows = w.rows;
    a.cols = w.cols;
    return a;
}

}  // namespace

void lut_matvec(ThreadPool &pool, const LutMatrixView &w, const float *x, float *y, const KernelTable &k) {
    const CsrMatrixView sparse = sparse_part(w);
    for_row_ranges(pool, w.rowptr, w.rows, lut_row_bytes(w), kCsrEntryBytes, 1.0, [&](int64_t begin, int64_t end) {
        k.lut_matvec(w, x, y, begin, end);
        if (w.has_sparse()) k.csr_spmv_add(sparse, x, y, begin, end);
    });
}

void lut_matmat(ThreadPool &pool, const LutMatrixView &w, const float *x, int64_t n, float *y, const KernelTable &k) {
    if (n <= 0) return;
    if (n == 1) return lut_matvec(pool, w, x, y, k);
    const CsrMatrixView sparse = sparse_part(w);
    for_row_ranges(pool, w.rowptr, w.rows, lut_row_bytes(w), kCsrEntryBytes, double(n), [&](int64_t begin, int64_t end) {
        k.lut_matmat(w, x, n, y, begin, end);
        if (w.has_sparse()) k.csr_spmm_add(sparse, x, n, y, begin, end);
    });
}

kernels::Q8Activations Q8Buffer::quantize(const float *x, int64_t n, int64_t cols, const uint8_t *order) {
    const int64_t padded = kernels::q8_padded(cols), blocks = padded / kernels::kQ8Block;
    q.resize(size_t(n * padded));
    scales.resize(size_t(n * blocks * 8));
    prefix.resize(size_t(n * (blocks + 1)));
    kernels::q8_quantize(x, n, cols, order, q.data(), scales.data(), prefix.data());
    kernels::Q8Activations a;
    a.q = q.data();
    a.scales = scales.data();
    a.prefix = prefix.data();
    a.n = n;
    a.cols = cols;
    a.padded = padded;
    return a;
}

namespace {

// The integer paths over a batch: dense(begin, end) on each task's rows, then the sparse part
// of those rows with the fp32 x. level_bytes: bytes per LUT level of the path's tables.
template <typename Dense>
void integer_matmat(ThreadPool &pool, const LutMatrixView &w, double level_bytes, const float *x, int64_t n, float *y,
                    const KernelTable &k, Dense dense) {
    if (n <= 0) return;
    const CsrMatrixView sparse = sparse_part(w);
    const double row_cost = double(w.row_bytes()) + double(w.groups()) * (level_bytes * double(int64_t(1) << w.bits) + 8.0);
    for_row_ranges(pool, w.rowptr, w.rows, row_cost, kCsrEntryBytes, double(n), [&](int64_t begin, int64_t end) {
        dense(begin, end);
        if (w.has_sparse()) k.csr_spmm_add(sparse, x, n, y, begin, end);
    });
}

}  // namespace

void lut_matmat_q8(ThreadPool &pool, const LutMatrixView &w, const kernels::LutQ8Tables &t,
                   const kernels::Q8Activations &a, const float *x, float *y, const KernelTable &k) {
    integer_matmat(pool, w, 1.0, x, a.n, y, k, [&](int64_t begin, int64_t end) { k.lut_matmat_q8(w, t, a, y, begin, end); });
}

kernels::Q16Activations Q16Buffer::quantize(ThreadPool &pool, const float *x, int64_t n, int64_t cols) {
    const int64_t padded = kernels::q16_padded(cols), chunks = padded / kernels::kQ16Chunk;
    q.resize(size_t(n * padded));
    scales.resize(size_t(n * kernels::q16_blocks(cols)));
    prefix.resize(size_t(n * (chunks + 1)));
    const int tasks = int(std::min<int64_t>(n, pool.size()));
    pool.parallel_for(tasks, [&](int task, int) {
        kernels::q16_quantize(x, n, cols, n * task / tasks, n * (task + 1) / tasks, q.data(), scales.data(), prefix.data());
    });
    kernels::Q16Activations a;
    a.q = q.data();
    a.scales = scales.data();
    a.prefix = prefix.data();
    a.n = n;
    a.cols = cols;
    a.padded = padded;
    return a;
}

void lut_gemm_q16(ThreadPool &pool, const LutMatrixView &w, const kernels::LutQ16Tables &t,
                  const kernels::Q16Activations &a, const float *x, float *y, const KernelTable &k) {
    integer_matmat(pool, w, 2.0, x, a.n, y, k, [&](int64_t begin, int64_t end) { k.lut_gemm_q16(w, t, a, y, begin, end); });
}

kernels::W8A16Activations Q16Buffer::split(const kernels::Q16Activations &a) {
    planes.resize(size_t(2 * a.n * a.padded));
    return kernels::w8a16_split(a, planes.data(), planes.data() + a.n * a.padded);
}

void lut_matvec_w8a16(ThreadPool &pool, const LutMatrixView &w, const kernels::LutQ8Tables &t,
                      const kernels::W8A16Activations &a, const float *x, float *y, const KernelTable &k) {
    integer_matmat(pool, w, 1.0, x, a.n, y, k, [&](int64_t begin, int64_t end) { k.lut_matvec_w8a16(w, t, a, y, begin, end); });
}

void csr_spmv_add(ThreadPool &pool, const CsrMatrixView &a, const float *x, float *y, const KernelTable &k) {
    for_row_ranges(pool, a.rowptr, a.rows, sizeof(int32_t), kCsrEntryBytes, 1.0,
                   [&](int64_t begin, int64_t end) { k.csr_spmv_add(a, x, y, begin, end); });
}

void csr_spmm_add(ThreadPool &pool, const CsrMatrixView &a, const float *x, int64_t n, float *y, const KernelTable &k) {
    if (n <= 0) return;
    for_row_ranges(pool, a.rowptr, a.rows, sizeof(int32_t), kCsrEntryBytes, double(n),
                   [&](int64_t begin, int64_t end) { k.csr_spmm_add(a, x, n, y, begin, end); });
}

void dense_matvec_f32(ThreadPool &pool, const float *w, int64_t rows, int64_t cols, const float *x, float *y,
                      const KernelTable &k) {
    for_row_ranges(pool, nullptr, rows, double(cols) * sizeof(float), 0.0, 1.0,
                   [&](int64_t begin, int64_t end) { k.dense_matvec_f32(w, rows, cols, x, y, begin, end); });
}

void dense_matmat_f32(ThreadPool &pool, const float *w, int64_t rows, int64_t cols, const float *x, int64_t n,
                      float *y, const KernelTable &k) {
    if (n <= 0) return;
    for_row_ranges(pool, nullptr, rows, double(cols) * sizeof(float), 0.0, double(n),
                   [&](int64_t begin, int64_t end) { k.dense_matmat_f32(w, rows, cols, x, n, y, begin, end); });
}

void dense_matvec_f16(ThreadPool &pool, const uint16_t *w, int64_t rows, int64_t cols, const float *x, float *y,
                      const KernelTable &k) {
    for_row_ranges(pool, nullptr, rows, double(cols) * sizeof(uint16_t), 0.0, 1.0,
                   [&](int64_t begin, int64_t end) { k.dense_matvec_f16(w, rows, cols, x, y, begin, end); });
}

void dense_matmat_f16(ThreadPool &pool, const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t n,
                      float *y, const KernelTable &k) {
    if (n <= 0) return;
    for_row_ranges(pool, nullptr, rows, double(cols) * sizeof(uint16_t), 0.0, double(n),
                   [&](int64_t begin, int64_t end) { k.dense_matmat_f16(w, rows, cols, x, n, y, begin, end); });
}

}  // namespace ops
}  // namespace sqllm
