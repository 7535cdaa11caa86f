// SPDX-License-Identifier: Apache-2.0
// transforms/transform.hpp: rotquant::transform, an ordered list of cheap stages over one
// dimension C (scale, signs, permutation, Hadamard, block-diagonal, dense), applied to rows.
//
// Readers' note. Row convention: apply(X) = X M with M = M_1 M_2 ... M_k in append order, and
// fold_into_weight(W) = W M^{-T} = W M_1^{-T} ... M_k^{-T}, so (X M)(W M^{-T})^T = X W^T.
// Every stage keeps its own fast form: a Hadamard stays an O(C log C) transform, a permutation a
// gather; nothing is flattened unless to_dense() is asked for.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/detail/dense_inverse.hpp"
#include "rotquant/transforms/hadamard.hpp"
#include "rotquant/transforms/orthogonality.hpp"
#include "rotquant/transforms/permutation.hpp"

namespace rotquant {

/// Kinds of transform stages (stable names for serialization: to_string).
enum class stage_kind { scale, signs, permutation, hadamard, block_diagonal, dense };

inline const char* to_string(stage_kind k) {
  switch (k) {
    case stage_kind::scale:
      return "scale";
    case stage_kind::signs:
      return "signs";
    case stage_kind::permutation:
      return "permutation";
    case stage_kind::hadamard:
      return "hadamard";
    case stage_kind::block_diagonal:
      return "block_diagonal";
    case stage_kind::dense:
      return "dense";
  }
  return "unknown";
}

/// One stage as data (what a file writer serializes; rebuild with transform::append_stage).
///   scale:          values = s (M = diag(1/s))
///   signs:          values = d in {+1, -1} (M = diag(d))
///   permutation:    perm ((X M)[:, i] = X[:, perm[i]])
///   hadamard:       block = b (each group of b columns x -> T_b x, or T_b^T x if transposed)
///   block_diagonal: block = B, blocks = one shared B x B or C/B of them (x_g -> x_g B_g)
///   dense:          blocks = { C x C M }
struct transform_stage {
  stage_kind kind = stage_kind::scale;
  vector_d values;
  std::vector<index_t> perm;
  index_t block = 0;
  bool transposed = false;
  std::vector<matrix_d> blocks;
};

namespace detail {

// Orthogonality threshold below which a user block is treated as exactly orthogonal for
// folding/inversion (B^{-T} := B, B^{-1} := B^T). Tighter than any check a caller uses.
constexpr double exact_orthogonal_tol = 1e-12;

struct stage_runtime {
  std::shared_ptr<const hadamard_plan> plan;
  std::vector<matrix_d> fold_blocks;  // B^{-T}
  std::vector<matrix_f> blocks_f, fold_blocks_f;
  bool orthogonal = true;
};

}  // namespace detail

/// An ordered list of stages over one dimension C (see the file comment for the conventions).
/// Copyable; stages share immutable Hadamard plans.
class transform {
 public:
  /// dim = C >= 1.
  explicit transform(index_t dim) : dim_(dim) {
    ROTQUANT_CHECK(dim >= 1, "transform: dimension must be >= 1, got " << dim);
  }

  index_t dim() const { return dim_; }
  std::size_t num_stages() const { return stages_.size(); }
  /// The stages as data, in append order.
  const std::vector<transform_stage>& stages() const { return stages_; }

  /// M_i = diag(1/s): apply X / s, fold W * s. s: C entries, finite, normal, > 0.
  transform& append_scale(vector_d s) {
    ROTQUANT_CHECK(s.size() == dim_,
                   "append_scale: " << s.size() << " scales for dimension " << dim_);
    for (index_t i = 0; i < s.size(); ++i)
      ROTQUANT_CHECK(std::isnormal(s[i]) && s[i] > 0,
                     "append_scale: scale[" << i << "] = " << s[i]
                                            << "; scales must be finite, normal and > 0");
    transform_stage st;
    st.kind = stage_kind::scale;
    st.values = std::move(s);
    return push(std::move(st));
  }

  /// M_i = diag(d), d_i in {+1, -1}.
  transform& append_signs(vector_d d) {
    ROTQUANT_CHECK(d.size() == dim_,
                   "append_signs: " << d.size() << " signs for dimension " << dim_);
    for (index_t i = 0; i < d.size(); ++i)
      ROTQUANT_CHECK(d[i] == 1.0 || d[i] == -1.0,
                     "append_signs: sign[" << i << "] = " << d[i] << "; expected +1 or -1");
    transform_stage st;
    st.kind = stage_kind::signs;
    st.values = std::move(d);
    return push(std::move(st));
  }

  /// (X M)[:, i] = X[:, perm[i]]; perm must be a bijection of 0..C-1.
  transform& append_permutation(std::vector<index_t> perm) {
    validate_permutation(perm, dim_, "append_permutation");
    transform_stage st;
    st.kind = stage_kind::permutation;
    st.perm = std::move(perm);
    return push(std::move(st));
  }

  /// Each row (block == 0) or each group of `block` columns: x -> T_b x (QuaRot's
  /// matmul_hadU), i.e. M_i = T_b^T per block; transposed = true gives x -> T_b^T x.
  /// block must divide C and be a constructible Hadamard size (hadamard_plan).
  transform& append_hadamard(index_t block = 0, bool transposed = false) {
    const index_t b = block == 0 ? dim_ : block;
    ROTQUANT_CHECK(b >= 1 && dim_ % b == 0, "append_hadamard: block " << block
                                                                      << " does not divide the "
                                                                         "dimension "
                                                                      << dim_);
    transform_stage st;
    st.kind = stage_kind::hadamard;
    st.block = b;
    st.transposed = transposed;
    return push(std::move(st));
  }

  /// One shared B x B block (B divides C): X viewed as (T*C/B) x B rows, times block.
  /// The block must be finite and invertible (orthogonal in every method we ship).
  transform& append_block_diagonal(matrix_d block) {
    std::vector<matrix_d> v;
    v.push_back(std::move(block));
    return append_blocks(std::move(v), true);
  }

  /// One B x B block per group of B consecutive columns (C/B blocks, all the same size).
  transform& append_block_diagonal(std::vector<matrix_d> blocks) {
    return append_blocks(std::move(blocks), false);
  }

  /// M_i = m (C x C), finite and invertible.
  transform& append_dense(matrix_d m) {
    ROTQUANT_CHECK(m.rows() == dim_ && m.cols() == dim_,
                   "append_dense: matrix is " << m.rows() << " x " << m.cols() << ", expected "
                                              << dim_ << " x " << dim_);
    transform_stage st;
    st.kind = stage_kind::dense;
    st.block = dim_;
    st.blocks.push_back(std::move(m));
    return push(std::move(st));
  }

  /// Appends other's stages (other.dim() must equal dim()): M <- M M_other.
  transform& append(const transform& other) {
    ROTQUANT_CHECK(other.dim_ == dim_,
                   "append: dimensions differ (" << dim_ << " vs " << other.dim_ << ")");
    for (std::size_t i = 0; i < other.stages_.size(); ++i) {
      stages_.push_back(other.stages_[i]);
      runtime_.push_back(other.runtime_[i]);
    }
    return *this;
  }

  /// Appends a stage given as data (validated like the typed append_* calls).
  transform& append_stage(const transform_stage& st) {
    switch (st.kind) {
      case stage_kind::scale:
        return append_scale(st.values);
      case stage_kind::signs:
        return append_signs(st.values);
      case stage_kind::permutation:
        return append_permutation(st.perm);
      case stage_kind::hadamard:
        return append_hadamard(st.block, st.transposed);
      case stage_kind::block_diagonal:
        return append_blocks(st.blocks,
                             st.blocks.size() == 1 && st.block != 0 && st.blocks[0].rows() != dim_);
      case stage_kind::dense:
        ROTQUANT_CHECK(st.blocks.size() == 1,
                       "append_stage: a dense stage needs one matrix, got " << st.blocks.size());
        return append_dense(st.blocks[0]);
    }
    return *this;
  }

  /// In place X <- X M (X: [T, C], any row stride). Rows are independent, so the result is
  /// the same for every executor and thread count. Cost per row: sum of the stage costs.
  template <class S>
  void apply_inplace(matrix_view<S> x, executor* ex = nullptr) const {
    run(x, false, ex, "apply_inplace");
  }

  /// X M for X: [T, C] (float or double).
  template <class S>
  matrix<S> apply(const matrix<S>& x) const {
    matrix<S> y = x;
    run(view(y), false, nullptr, "apply");
    return y;
  }

  /// W M^{-T} for W: [out, C] (PyTorch nn.Linear layout), so (X M)(W M^{-T})^T = X W^T.
  template <class S>
  matrix<S> fold_into_weight(const matrix<S>& w) const {
    matrix<S> y = w;
    run(view(y), true, nullptr, "fold_into_weight");
    return y;
  }

  /// In place W <- W M^{-T}.
  template <class S>
  void fold_into_weight_inplace(matrix_view<S> w, executor* ex = nullptr) const {
    run(w, true, ex, "fold_into_weight_inplace");
  }

  /// M^{-1} as a transform (stages reversed, each inverted; Hadamards stay fast).
  transform inverse() const {
    transform t(dim_);
    for (std::size_t i = stages_.size(); i-- > 0;) {
      const auto& st = stages_[i];
      const auto& rt = runtime_[i];
      switch (st.kind) {
        case stage_kind::scale:
          t.append_scale(st.values.cwiseInverse());
          break;
        case stage_kind::signs:
          t.append_signs(st.values);
          break;
        case stage_kind::permutation:
          t.append_permutation(inverse_permutation(st.perm));
          break;
        case stage_kind::hadamard:
          t.append_hadamard(st.block, !st.transposed);
          break;
        case stage_kind::block_diagonal:
        case stage_kind::dense: {
          std::vector<matrix_d> inv;
          for (std::size_t b = 0; b < st.blocks.size(); ++b)
            inv.push_back(rt.orthogonal ? matrix_d(st.blocks[b].transpose())
                                        : matrix_d(rt.fold_blocks[b].transpose()));
          // Decide before moving: argument evaluation order is unspecified.
          const bool shared = inv.size() == 1 && st.block != dim_;
          if (st.kind == stage_kind::dense)
            t.append_dense(std::move(inv[0]));
          else
            t.append_blocks(std::move(inv), shared);
          break;
        }
      }
    }
    return t;
  }

  /// M as a dense C x C matrix (double): I M. O(C^2) memory. Throws rotquant::error when
  /// C x C doubles cannot be allocated (checked before allocating). (A template only so that
  /// the double-precision stage kernels are instantiated where it is called, not in every TU.)
  template <class Deferred = void>
  matrix_d to_dense() const {
    detail::check_alloc(dim_, dim_, sizeof(double), "transform::to_dense");
    matrix_d m;
    try {
      m = matrix_d::Identity(dim_, dim_);
    } catch (const std::bad_alloc&) {
      detail::allocation_failed(dim_, dim_, sizeof(double), "transform::to_dense");
    }
    run(view(m), false, nullptr, "to_dense");
    return m;
  }

  /// True if M^T M = I within tol: every stage orthogonal within tol (scales all 1), or, if
  /// some stage is not and C <= 2048, the dense product checked directly.
  template <class Deferred = void>
  bool is_orthogonal(double tol = 1e-6) const {
    bool all = true;
    for (std::size_t i = 0; i < stages_.size() && all; ++i) {
      const auto& st = stages_[i];
      if (st.kind == stage_kind::scale)
        all = (st.values.array() - 1.0).abs().maxCoeff() <= tol;
      else if (st.kind == stage_kind::block_diagonal || st.kind == stage_kind::dense)
        for (const auto& b : st.blocks) all = all && orthogonality_error(b) <= tol;
    }
    if (all) return true;
    if (dim_ > 2048) return false;
    return orthogonality_error(to_dense()) <= tol;
  }

  /// One line per stage, e.g. "hadamard block=5120 (40 x 128, doubling)"; for logs and files.
  std::string describe() const {
    std::ostringstream out;
    out << "transform C=" << dim_ << ", " << stages_.size() << " stage(s)";
    for (std::size_t i = 0; i < stages_.size(); ++i) {
      const auto& st = stages_[i];
      out << "\n  " << i << ": " << to_string(st.kind);
      if (st.kind == stage_kind::hadamard) {
        const auto& p = *runtime_[i].plan;
        out << " block=" << st.block << " (" << p.base_order() << " x " << p.block_length() << ", "
            << p.construction() << ")" << (st.transposed ? " transposed" : "");
      } else if (st.kind == stage_kind::block_diagonal) {
        out << " B=" << st.block << (st.blocks.size() == 1 ? " shared" : " per-block");
      }
    }
    return out.str();
  }

 private:
  transform& append_blocks(std::vector<matrix_d> blocks, bool shared) {
    ROTQUANT_CHECK(!blocks.empty(), "append_block_diagonal: no blocks given");
    const index_t b = blocks[0].rows();
    ROTQUANT_CHECK(b >= 1 && dim_ % b == 0, "append_block_diagonal: block size "
                                                << b << " does not divide the dimension " << dim_);
    if (!shared)
      ROTQUANT_CHECK(static_cast<index_t>(blocks.size()) == dim_ / b,
                     "append_block_diagonal: " << blocks.size() << " blocks of " << b
                                               << " for dimension " << dim_ << " (need " << dim_ / b
                                               << ")");
    for (std::size_t i = 0; i < blocks.size(); ++i)
      ROTQUANT_CHECK(blocks[i].rows() == b && blocks[i].cols() == b,
                     "append_block_diagonal: block " << i << " is " << blocks[i].rows() << " x "
                                                     << blocks[i].cols() << ", expected " << b
                                                     << " x " << b);
    transform_stage st;
    st.kind = stage_kind::block_diagonal;
    st.block = b;
    st.blocks = std::move(blocks);
    return push(std::move(st));
  }

  transform& push(transform_stage st) {
    detail::stage_runtime rt;
    if (st.kind == stage_kind::hadamard) {
      rt.plan = std::make_shared<const hadamard_plan>(st.block);
    } else if (st.kind == stage_kind::block_diagonal || st.kind == stage_kind::dense) {
      const char* who = st.kind == stage_kind::dense ? "append_dense" : "append_block_diagonal";
      for (std::size_t i = 0; i < st.blocks.size(); ++i) {
        const matrix_d& b = st.blocks[i];
        check_finite(b, who);
        const bool orth = orthogonality_error(b) <= detail::exact_orthogonal_tol;
        rt.orthogonal = rt.orthogonal && orth;
        if (orth) {
          rt.fold_blocks.push_back(b);
        } else {
          matrix_d inv;
          const index_t rank = detail::invert_complete_pivoting(b, inv);
          ROTQUANT_CHECK(rank == b.rows(), who << ": matrix " << i << " (" << b.rows() << " x "
                                               << b.cols() << ") is singular (rank " << rank
                                               << ")");
          rt.fold_blocks.push_back(inv.transpose());
        }
        rt.blocks_f.push_back(b.cast<float>());
        rt.fold_blocks_f.push_back(rt.fold_blocks.back().cast<float>());
      }
    }
    stages_.push_back(std::move(st));
    runtime_.push_back(std::move(rt));
    return *this;
  }

  template <class S>
  const matrix<S>& block_of(const detail::stage_runtime& rt, const transform_stage& st,
                            std::size_t i, bool fold) const {
    if constexpr (std::is_same<S, float>::value) {
      return fold ? rt.fold_blocks_f[i] : rt.blocks_f[i];
    } else {
      return fold ? rt.fold_blocks[i] : st.blocks[i];
    }
  }

  template <class S>
  void run(matrix_view<S> x, bool fold, executor* ex, const char* who) const {
    static_assert(std::is_same<S, float>::value || std::is_same<S, double>::value,
                  "transform: the element type must be float or double");
    ROTQUANT_CHECK(x.cols() == dim_, who << ": input has " << x.cols()
                                         << " columns, the transform dimension is " << dim_);
    ROTQUANT_CHECK(x.rows() <= 1 || x.outerStride() >= dim_,
                   who << ": row stride " << x.outerStride() << " is smaller than the dimension "
                       << dim_ << " (rows would overlap)");
    ROTQUANT_CHECK(x.data() != nullptr || x.rows() == 0,
                   who << ": null data for " << x.rows() << " rows");
    const index_t rows = x.rows();
    if (rows == 0 || stages_.empty()) return;
    // Chunks of rows large enough that per-chunk setup (Hadamard workspace) is amortised.
    const index_t grain = std::max<index_t>(8, 65536 / dim_);
    parallel_for(
        0, rows, grain,
        [&](index_t lo, index_t hi) {
          for (std::size_t i = 0; i < stages_.size(); ++i) run_stage(i, x, lo, hi, fold);
        },
        ex);
  }

  template <class S>
  void run_stage(std::size_t i, matrix_view<S>& x, index_t lo, index_t hi, bool fold) const {
    const auto& st = stages_[i];
    const auto& rt = runtime_[i];
    const index_t c = dim_, stride = x.outerStride();
    S* base = x.data() + lo * stride;
    const index_t nrows = hi - lo;
    switch (st.kind) {
      case stage_kind::scale:
        for (index_t r = 0; r < nrows; ++r) {
          S* row = base + r * stride;
          if (fold)
            for (index_t j = 0; j < c; ++j) row[j] = row[j] * static_cast<S>(st.values[j]);
          else
            for (index_t j = 0; j < c; ++j) row[j] = row[j] / static_cast<S>(st.values[j]);
        }
        break;
      case stage_kind::signs:
        for (index_t r = 0; r < nrows; ++r) {
          S* row = base + r * stride;
          for (index_t j = 0; j < c; ++j)
            if (st.values[j] < 0) row[j] = -row[j];
        }
        break;
      case stage_kind::permutation: {
        std::vector<S> tmp(static_cast<std::size_t>(c));
        for (index_t r = 0; r < nrows; ++r) {
          S* row = base + r * stride;
          for (index_t j = 0; j < c; ++j) tmp[static_cast<std::size_t>(j)] = row[st.perm[j]];
          std::copy(tmp.begin(), tmp.end(), row);
        }
        break;
      }
      case stage_kind::hadamard: {
        // Hadamard stages are orthogonal: the fold is the same map as the apply.
        const auto& p = *rt.plan;
        const index_t groups = c / st.block;
        if (stride == c) {
          if (st.transposed)
            p.apply_rows_transposed(base, nrows * groups, st.block);
          else
            p.apply_rows(base, nrows * groups, st.block);
        } else {
          for (index_t r = 0; r < nrows; ++r) {
            if (st.transposed)
              p.apply_rows_transposed(base + r * stride, groups, st.block);
            else
              p.apply_rows(base + r * stride, groups, st.block);
          }
        }
        break;
      }
      case stage_kind::block_diagonal:
      case stage_kind::dense: {
        const index_t b = st.kind == stage_kind::dense ? c : st.block;
        auto rows_view = make_view(base, nrows, c, stride);
        matrix<S> tmp(nrows, b);
        for (index_t g = 0; g < c / b; ++g) {
          const std::size_t which = st.blocks.size() == 1 ? 0 : static_cast<std::size_t>(g);
          const matrix<S>& m = block_of<S>(rt, st, which, fold);
          tmp.noalias() = rows_view.middleCols(g * b, b) * m;
          rows_view.middleCols(g * b, b) = tmp;
        }
        break;
      }
    }
  }

  index_t dim_;
  std::vector<transform_stage> stages_;
  std::vector<detail::stage_runtime> runtime_;
};

}  // namespace rotquant
