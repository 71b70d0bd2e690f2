#include <cstdint>

#include "kernels/csr_spmv/csr_spmv.h"

namespace sqllm {
namespace kernels {

int64_t row_split_point(const int32_t *rowptr, int64_t rows, double row_cost, double nnz_cost, int n_parts,
                        int part) {
    if (part <= 0) return 0;
    if (part >= n_parts) return rows;
    // cost(r) = cost of the rows [0, r), non-decreasing in r.
    auto cost = [&](int64_t r) { return row_cost * double(r) + (rowptr ? nnz_cost * double(rowptr[r]) : 0.0); };
    const double total = cost(rows);
    if (total <= 0.0) return rows * part / n_parts;
    const double target = total * part / n_parts;
    int64_t lo = 0, hi = rows;  // the smallest r with cost(r) >= target
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (cost(mid) >= target) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

void split_rows_by_cost(const int32_t *rowptr, int64_t rows, double row_cost, double nnz_cost, int n_parts,
                        int64_t *bounds) {
    for (int p = 0; p <= n_parts; p++) bounds[p] = row_split_point(rowptr, rows, row_cost, nnz_cost, n_parts, p);
}

}  // namespace kernels
}  // namespace sqllm
