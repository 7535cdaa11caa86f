// SPDX-License-Identifier: Apache-2.0
// detail/dense_inverse.hpp: the inverse of a small dense block (the fold of a non-orthogonal
// transform stage), by Gauss-Jordan elimination with complete pivoting in double.
//
// Readers' note. This sits on the path of every header that holds a rotquant::transform, so it
// is plain loops on purpose: Eigen's FullPivLU costs every including translation unit about a
// second of template instantiation. Complete pivoting is as stable as FullPivLU for inversion;
// the rank rule is the same as FullPivLU's default (a pivot counts when |p| > eps * n * |p_max|).
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "rotquant/core/matrix.hpp"

namespace rotquant {
namespace detail {

/// Inverts the square matrix a into inv. Returns the numerical rank; inv is meaningful only when
/// the rank is a.rows(). O(n^3) time, n^2 + n doubles of workspace.
inline index_t invert_complete_pivoting(const matrix_d& a, matrix_d& inv) {
  const index_t n = a.rows();
  matrix_d m = a;
  inv = matrix_d::Identity(n, n);
  std::vector<bool> used_row(static_cast<std::size_t>(n), false),
      used_col(static_cast<std::size_t>(n), false);
  double first_pivot = 0.0;
  const double eps = std::numeric_limits<double>::epsilon() * static_cast<double>(n);
  // Pivots are chosen over the remaining rows and columns; the elimination runs on all rows
  // (Gauss-Jordan), so after n steps row r of m is a unit vector at column col_of_row[r].
  std::vector<index_t> pivot_row(static_cast<std::size_t>(n)),
      pivot_col(static_cast<std::size_t>(n));
  for (index_t step = 0; step < n; ++step) {
    double best = -1.0;
    index_t pr = -1, pc = -1;
    for (index_t r = 0; r < n; ++r) {
      if (used_row[static_cast<std::size_t>(r)]) continue;
      for (index_t c = 0; c < n; ++c) {
        if (used_col[static_cast<std::size_t>(c)]) continue;
        const double v = std::abs(m(r, c));
        if (v > best) {
          best = v;
          pr = r;
          pc = c;
        }
      }
    }
    if (step == 0) first_pivot = best;
    if (!(best > eps * first_pivot) || best == 0.0) return step;
    used_row[static_cast<std::size_t>(pr)] = true;
    used_col[static_cast<std::size_t>(pc)] = true;
    pivot_row[static_cast<std::size_t>(step)] = pr;
    pivot_col[static_cast<std::size_t>(step)] = pc;
    const double p = m(pr, pc);
    for (index_t c = 0; c < n; ++c) {
      m(pr, c) /= p;
      inv(pr, c) /= p;
    }
    for (index_t r = 0; r < n; ++r) {
      if (r == pr) continue;
      const double f = m(r, pc);
      if (f == 0.0) continue;
      for (index_t c = 0; c < n; ++c) {
        m(r, c) -= f * m(pr, c);
        inv(r, c) -= f * inv(pr, c);
      }
    }
  }
  // The row operations E (accumulated in inv) turned A into the permutation P with P(pr, pc) = 1
  // for every pivot: E A = P, so A^{-1} = P^T E, i.e. row pc of A^{-1} is row pr of inv.
  matrix_d out(n, n);
  for (index_t s = 0; s < n; ++s)
    out.row(pivot_col[static_cast<std::size_t>(s)]) =
        inv.row(pivot_row[static_cast<std::size_t>(s)]);
  inv = std::move(out);
  return n;
}

}  // namespace detail
}  // namespace rotquant
