// SPDX-License-Identifier: Apache-2.0
// transforms/duquant.hpp: DuQuant (arXiv 2406.01721): smoothing, greedy outlier-targeted block
// rotations, zigzag permutation, second rotation, as one rotquant::transform per linear input.
//
// Readers' note (docs/algorithms.md section 1.2-1.6, pitfalls 2-4 and 8 of section 7).
//   * Fixed base R~ (B x B): the Helmert matrix with indices 0 and B-1 swapped, so row 0 is the
//     uniform vector 1/sqrt(B). Per search, Rot = R~ diag(1, Q') with Q' the Q factor of a
//     Householder QR (Eigen, LAPACK sign convention, no sign fix) of a (B-1) x (B-1) standard
//     normal matrix drawn with rotquant::rng, or supplied by the caller.
//   * Greedy search: the activation viewed as rows of B values; for j = 0..N: peak_j = max - min
//     of the signed values (first max / first min in row-major order), e_j = the swap index,
//     rows <- rows * (E_j Rot E_j) (fp32, as the released code); k = first argmin of the N + 1
//     peaks, R = prod_{i<k} E_i Rot E_i.
//       released_code (default, Hsu1023/DuQuant): e_j = (row index of the larger-magnitude
//         extreme) mod B; one Rot and one R shared by all C/B blocks; one Q' per search.
//       paper: e_j = the outlier's column; each block of B channels has its own Q', search and R.
//   * Zigzag: per-channel max |x| after the rotation, stable sort descending, deal to blocks in
//     the order 0..K-1, K-1..0, 0..K-1, ... (the end block repeats), then sort within blocks.
//   * Full transform: (rotate, permute) x p, then rotate; SmoothQuant scaling in front when the
//     weight (or its statistics) is given.
// The search has an exact fast path (detail/duquant_search.hpp) that returns bit-identical
// peaks, swaps and rotations to the straightforward one (duquant_options::exhaustive = true).
#pragma once

#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "rotquant/config.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/detail/duquant_search.hpp"
#include "rotquant/transforms/smooth.hpp"
#include "rotquant/transforms/transform.hpp"

namespace rotquant {

/// Which DuQuant variant the rotation search follows (see the file comment).
enum class duquant_mode { released_code, paper };

/// How the permutation between two rotations is chosen.
enum class duquant_permutation {
  zigzag,  // docs/algorithms.md 1.4 (the method)
  random   // seeded uniform permutation (ablation)
};

/// The fixed base rotation R~ (B x B, double): Helmert matrix G (rows k < B-1: 1/sqrt((k+1)(k+2))
/// at columns 0..k, -sqrt((k+1)/(k+2)) at column k+1; last row 1/sqrt(B)) with indices 0 and
/// B-1 swapped on both sides, so row 0 is the uniform vector 1/sqrt(B). Orthogonal to rounding
/// (~1e-16). block >= 2. O(B^2).
inline matrix_d duquant_base_rotation(index_t block) {
  ROTQUANT_CHECK(block >= 2, "duquant_base_rotation: block size must be >= 2, got " << block);
  detail::check_alloc(block, block, sizeof(double), "duquant_base_rotation");
  matrix_d g = matrix_d::Zero(block, block);
  for (index_t k = 0; k + 1 < block; ++k) {
    const double kk = static_cast<double>(k);
    const double v = 1.0 / std::sqrt((kk + 1.0) * (kk + 2.0));
    for (index_t c = 0; c <= k; ++c) g(k, c) = v;
    g(k, k + 1) = -std::sqrt((kk + 1.0) / (kk + 2.0));
  }
  g.row(block - 1).setConstant(1.0 / std::sqrt(static_cast<double>(block)));
  g.row(0).swap(g.row(block - 1));
  g.col(0).swap(g.col(block - 1));
  return g;
}

/// Q' for one search: the Q factor of Eigen's Householder QR (LAPACK sign convention, no sign
/// fix, as torch.linalg.qr in the released code) of an n x n standard normal matrix drawn with
/// random_normal_matrix(n, n, seed, stream). n >= 1. Deterministic on every platform up to
/// the QR's rounding (~1e-15). O(n^3).
template <class S = double>
matrix<S> duquant_random_q(index_t n, std::uint64_t seed, std::uint64_t stream = 0) {
  static_assert(std::is_same<S, double>::value, "duquant_random_q: double only");
  ROTQUANT_CHECK(n >= 1, "duquant_random_q: size must be >= 1, got " << n);
  const matrix_d g = random_normal_matrix<double>(n, n, seed, stream);
  Eigen::HouseholderQR<matrix_d> qr(g);
  matrix_d q = qr.householderQ();
  return q;
}

/// Rot = R~ diag(1, Q') (B x B with B = q_prime.rows() + 1). q_prime must be square, finite and
/// orthogonal within 1e-4 (fp32 factors from other implementations are accepted). O(B^3).
/// (Any Eigen expression; computed in double.)
template <class Derived>
matrix_d duquant_rotation(const Eigen::MatrixBase<Derived>& q_prime_in) {
  const matrix_d q_prime = q_prime_in.template cast<double>();
  ROTQUANT_CHECK(q_prime.rows() >= 1 && q_prime.rows() == q_prime.cols(),
                 "duquant_rotation: Q' must be square and non-empty, got "
                     << q_prime.rows() << " x " << q_prime.cols());
  check_finite(q_prime, "duquant_rotation: Q'");
  const index_t n = q_prime.rows();
  const double err =
      (q_prime.transpose() * q_prime - matrix_d::Identity(n, n)).cwiseAbs().maxCoeff();
  ROTQUANT_CHECK(err <= 1e-4, "duquant_rotation: Q' is not orthogonal (max |Q'^T Q' - I| = "
                                  << err << ", accepted <= 1e-4)");
  matrix_d d = matrix_d::Zero(n + 1, n + 1);
  d(0, 0) = 1.0;
  d.bottomRightCorner(n, n) = q_prime;
  return duquant_base_rotation(n + 1) * d;
}

/// Options of one rotation search over an activation.
struct duquant_search_options {
  index_t block_size = 128;  ///< B >= 2, must divide C
  index_t steps = 256;       ///< N >= 0 (released code: --max_rotation_step 256)
  duquant_mode mode = duquant_mode::released_code;
  bool exhaustive = false;  ///< true: the straightforward algorithm (test oracle), same results
};

/// One rotation search: the searches that produced it (1 in released_code mode, C/B in paper
/// mode, block order) and the stage it contributes.
struct duquant_rotation_result {
  std::vector<duquant_search> searches;
  bool shared = true;  ///< one R for all blocks (released_code) or one per block (paper)

  /// The block rotations: one matrix (shared) or one per block of B channels.
  std::vector<matrix_d> blocks() const {
    std::vector<matrix_d> out;
    for (const auto& s : searches) out.push_back(s.rotation);
    return out;
  }
  /// Appends the block-diagonal stage to t (t.dim() must be C).
  void append_to(transform& t) const {
    if (shared)
      t.append_block_diagonal(searches.front().rotation);
    else
      t.append_block_diagonal(blocks());
  }
};

namespace detail {

inline void duquant_check_activation(const matrix_f& x, index_t block, const char* who) {
  ROTQUANT_CHECK(x.rows() >= 1 && x.cols() >= 1, who << ": the activation is " << x.rows() << " x "
                                                     << x.cols()
                                                     << "; need T >= 1 tokens and C >= 1 channels");
  ROTQUANT_CHECK(block >= 2, who << ": block size must be >= 2, got " << block);
  ROTQUANT_CHECK(x.cols() % block == 0, who << ": block size " << block
                                            << " does not divide the channel count C = " << x.cols()
                                            << " (C must be a multiple of B)");
  check_finite(x, who);
}

// Per-channel max |x| over the rows, row by row (contiguous, vectorizable).
inline vector_f duquant_channel_absmax(const matrix_f& x) {
  vector_f m = vector_f::Zero(x.cols());
  for (index_t r = 0; r < x.rows(); ++r) m = m.cwiseMax(x.row(r).transpose().cwiseAbs());
  return m;
}

// X <- X blockdiag(R) in fp32 (the rotated activation the next stage is calibrated on).
inline void duquant_apply_rotation(matrix_f& x, const duquant_rotation_result& r, index_t block) {
  const index_t k = x.cols() / block;
  if (r.shared) {
    const matrix_f rf = r.searches.front().rotation.cast<float>();
    Eigen::Map<matrix_f> m(x.data(), x.rows() * k, block);
    matrix_f tmp = m * rf;
    m = tmp;
  } else {
    for (index_t b = 0; b < k; ++b) {
      const matrix_f rf = r.searches[static_cast<std::size_t>(b)].rotation.cast<float>();
      matrix_f tmp = x.middleCols(b * block, block) * rf;
      x.middleCols(b * block, block) = tmp;
    }
  }
}

// Rotation search with explicit Rot matrices (1 shared or C/B per block); inputs validated.
inline duquant_rotation_result duquant_search_with(const matrix_f& x,
                                                   const duquant_search_options& opt,
                                                   const std::vector<matrix_d>& rots) {
  duquant_rotation_result out;
  const index_t b = opt.block_size;
  const index_t k = x.cols() / b;
  if (opt.mode == duquant_mode::released_code) {
    out.shared = true;
    out.searches.push_back(duquant_greedy(x.data(), x.rows() * k, b, b, rots.front(), opt.steps,
                                          duquant_swap_rule::row_mod_block, opt.exhaustive));
  } else {
    out.shared = false;
    for (index_t blk = 0; blk < k; ++blk)
      out.searches.push_back(duquant_greedy(x.data() + blk * b, x.rows(), x.cols(), b,
                                            rots[static_cast<std::size_t>(blk)], opt.steps,
                                            duquant_swap_rule::column, opt.exhaustive));
  }
  return out;
}

}  // namespace detail

/// Greedy rotation search on an activation x: [T, C] (fp32, finite, T >= 1, B | C, B >= 2,
/// N >= 0). rots: the Rot matrices (each B x B, e.g. duquant_rotation(q_prime)): exactly 1 in
/// released_code mode, C/B (block order) in paper mode. Returns the per-step peaks, swaps, the
/// chosen step count and R. Cost: straightforward O(T C N B); the fast path does the same
/// only for rows whose norm can reach the running extremes (identical results).
inline duquant_rotation_result duquant_rotation_search(const matrix_f& x,
                                                       const duquant_search_options& opt,
                                                       const std::vector<matrix_d>& rots) {
  detail::duquant_check_activation(x, opt.block_size, "duquant_rotation_search");
  ROTQUANT_CHECK(opt.steps >= 0,
                 "duquant_rotation_search: rotation steps N must be >= 0, got " << opt.steps);
  const index_t b = opt.block_size;
  const std::size_t need =
      opt.mode == duquant_mode::released_code ? 1 : static_cast<std::size_t>(x.cols() / b);
  ROTQUANT_CHECK(rots.size() == need, "duquant_rotation_search: got "
                                          << rots.size() << " rotation matrices, need " << need
                                          << (opt.mode == duquant_mode::paper
                                                  ? " (paper mode: one per block of B channels)"
                                                  : " (released_code mode: one shared)"));
  for (const auto& r : rots) {
    ROTQUANT_CHECK(r.rows() == b && r.cols() == b, "duquant_rotation_search: a rotation is "
                                                       << r.rows() << " x " << r.cols()
                                                       << ", expected " << b << " x " << b);
    check_finite(r, "duquant_rotation_search: rotation");
  }
  return detail::duquant_search_with(x, opt, rots);
}

/// Zigzag permutation from per-channel statistics m (length C = K * block, e.g. max_t |X_tj|):
/// channels sorted by m descending (stable: ties keep ascending index), dealt to blocks in the
/// order 0..K-1, K-1..0, 0..K-1, ... (the end block repeats), sorted by m within each block
/// (stable), blocks concatenated. perm[i] = old channel placed at new position i, matching
/// transform::append_permutation. block >= 1 must divide C; m finite. O(C log C).
inline std::vector<index_t> duquant_zigzag_from_channel_max(const vector_f& m, index_t block) {
  ROTQUANT_CHECK(block >= 1 && m.size() >= 1 && m.size() % block == 0,
                 "duquant_zigzag_permutation: block size "
                     << block << " must be >= 1 and divide C = " << m.size());
  check_finite(m, "duquant_zigzag_permutation: channel statistics");
  const index_t c = m.size();
  const index_t k = c / block;
  std::vector<index_t> sorted(static_cast<std::size_t>(c));
  for (index_t i = 0; i < c; ++i) sorted[static_cast<std::size_t>(i)] = i;
  std::stable_sort(sorted.begin(), sorted.end(), [&](index_t a, index_t b) { return m[a] > m[b]; });
  std::vector<std::vector<index_t>> blocks(static_cast<std::size_t>(k));
  for (index_t p = 0; p < c; ++p) {
    const index_t q = p % (2 * k);
    const index_t blk = q < k ? q : 2 * k - 1 - q;
    blocks[static_cast<std::size_t>(blk)].push_back(sorted[static_cast<std::size_t>(p)]);
  }
  std::vector<index_t> perm;
  perm.reserve(static_cast<std::size_t>(c));
  for (auto& bl : blocks) {
    std::stable_sort(bl.begin(), bl.end(), [&](index_t a, index_t b) { return m[a] > m[b]; });
    perm.insert(perm.end(), bl.begin(), bl.end());
  }
  return perm;
}

/// Zigzag permutation of an activation x: [T, C] (fp32, finite, T >= 1): m_j = max_t |x_tj|.
inline std::vector<index_t> duquant_zigzag_permutation(const matrix_f& x, index_t block) {
  ROTQUANT_CHECK(x.rows() >= 1 && x.cols() >= 1, "duquant_zigzag_permutation: the activation is "
                                                     << x.rows() << " x " << x.cols()
                                                     << "; need T >= 1 and C >= 1");
  return duquant_zigzag_from_channel_max(detail::duquant_channel_absmax(x), block);
}

/// Options of the full DuQuant transform of one linear input.
struct duquant_options {
  index_t block_size = 128;       ///< B (released scripts: --block_size 128)
  index_t rotation_steps = 256;   ///< N (--max_rotation_step 256)
  index_t permutation_times = 1;  ///< p >= 0: (rotate, permute) x p, then rotate
  duquant_mode mode = duquant_mode::released_code;
  duquant_permutation permutation = duquant_permutation::zigzag;
  double alpha = 0.6;              ///< SmoothQuant migration strength (run.sh: 0.6)
  double min_smooth_scale = 1e-2;  ///< released code truncates s to >= 1e-2 before folding
  std::uint64_t seed = 0;          ///< Q' draw d uses random_normal_matrix(B-1, B-1, seed, d)
  /// Caller-supplied Q' matrices ((B-1) x (B-1)), in draw order: released_code: one per search
  /// (p + 1); paper: C/B per search, block order ((p + 1) * C/B). Empty: drawn from `seed`.
  std::vector<matrix_d> q_primes;
  /// Per-channel max |x| over the whole calibration set for smoothing (DuQuant computes it on
  /// all samples, not on the averaged activation the rotations see). Empty: from x.
  vector_d act_absmax;
  bool exhaustive = false;  ///< straightforward search (test oracle); identical results
};

/// Everything the DuQuant calibration of one linear input produced.
struct duquant_result {
  transform xform{1};      ///< scale (if smoothing), then (R, P) x p, then R
  vector_d smooth_scales;  ///< s (empty without smoothing)
  std::vector<duquant_rotation_result> rotations;  ///< p + 1 searches, in order
  std::vector<std::vector<index_t>> permutations;  ///< p permutations, in order

  /// R1 (the first rotation; in paper mode the rotation of block `blk`).
  const matrix_d& R1(index_t blk = 0) const { return rotation(0, blk); }
  /// R2 (the second rotation; requires p >= 1).
  const matrix_d& R2(index_t blk = 0) const { return rotation(1, blk); }
  /// The rotation of search i (0..p), block blk (0 in released_code mode).
  const matrix_d& rotation(index_t i, index_t blk = 0) const {
    ROTQUANT_CHECK(
        i >= 0 && i < static_cast<index_t>(rotations.size()),
        "duquant_result: rotation " << i << " out of range (have " << rotations.size() << ")");
    const auto& s = rotations[static_cast<std::size_t>(i)].searches;
    ROTQUANT_CHECK(blk >= 0 && blk < static_cast<index_t>(s.size()),
                   "duquant_result: block " << blk << " out of range (have " << s.size() << ")");
    return s[static_cast<std::size_t>(blk)].rotation;
  }
  /// The first permutation (requires p >= 1).
  const std::vector<index_t>& perm() const {
    ROTQUANT_CHECK(!permutations.empty(), "duquant_result: no permutation (permutation_times = 0)");
    return permutations.front();
  }
  /// Per-step peaks of search i, block blk.
  const std::vector<float>& peaks(index_t i = 0, index_t blk = 0) const {
    rotation(i, blk);
    return rotations[static_cast<std::size_t>(i)].searches[static_cast<std::size_t>(blk)].peaks;
  }
};

namespace detail {

inline duquant_result duquant_impl(const matrix_f& x, const vector_d* weight_absmax,
                                   const duquant_options& opt) {
  const char* who = "duquant";
  duquant_check_activation(x, opt.block_size, who);
  ROTQUANT_CHECK(opt.rotation_steps >= 0,
                 who << ": rotation steps N must be >= 0, got " << opt.rotation_steps);
  ROTQUANT_CHECK(opt.permutation_times >= 0,
                 who << ": permutation_times must be >= 0, got " << opt.permutation_times);
  ROTQUANT_CHECK(std::isfinite(opt.min_smooth_scale) && opt.min_smooth_scale >= 0,
                 who << ": min_smooth_scale must be finite and >= 0, got " << opt.min_smooth_scale);
  const index_t c = x.cols();
  const index_t b = opt.block_size;
  const index_t k = c / b;
  const index_t searches = opt.permutation_times + 1;
  const index_t per_search = opt.mode == duquant_mode::released_code ? 1 : k;
  const index_t draws = searches * per_search;
  if (!opt.q_primes.empty()) {
    ROTQUANT_CHECK(static_cast<index_t>(opt.q_primes.size()) == draws,
                   who << ": got " << opt.q_primes.size() << " Q' matrices, need " << draws
                       << " ((permutation_times + 1) x " << per_search << ")");
    for (const auto& q : opt.q_primes)
      ROTQUANT_CHECK(q.rows() == b - 1 && q.cols() == b - 1,
                     who << ": a Q' is " << q.rows() << " x " << q.cols() << ", expected " << b - 1
                         << " x " << b - 1 << " (B - 1)");
  }

  duquant_result out;
  out.xform = transform(c);
  matrix_f cur = x;
  if (weight_absmax != nullptr) {
    ROTQUANT_CHECK(weight_absmax->size() == c, who << ": weight statistics have "
                                                   << weight_absmax->size()
                                                   << " input channels, the activation " << c);
    vector_d act = opt.act_absmax;
    if (act.size() == 0) act = duquant_channel_absmax(x).cast<double>();
    ROTQUANT_CHECK(act.size() == c,
                   who << ": act_absmax has " << act.size() << " channels, the activation " << c);
    vector_d s = smooth_scales(act, *weight_absmax, opt.alpha);
    for (index_t j = 0; j < c; ++j) s[j] = std::max(s[j], opt.min_smooth_scale);
    for (index_t t = 0; t < cur.rows(); ++t)
      for (index_t j = 0; j < c; ++j)
        cur(t, j) = static_cast<float>(static_cast<double>(x(t, j)) / s[j]);
    out.xform.append_scale(s);
    out.smooth_scales = std::move(s);
  }

  duquant_search_options so;
  so.block_size = b;
  so.steps = opt.rotation_steps;
  so.mode = opt.mode;
  so.exhaustive = opt.exhaustive;
  index_t draw = 0;
  for (index_t i = 0; i < searches; ++i) {
    std::vector<matrix_d> rots;
    for (index_t blk = 0; blk < per_search; ++blk, ++draw) {
      const matrix_d q = opt.q_primes.empty()
                             ? duquant_random_q(b - 1, opt.seed, static_cast<std::uint64_t>(draw))
                             : opt.q_primes[static_cast<std::size_t>(draw)];
      rots.push_back(duquant_rotation(q));
    }
    out.rotations.push_back(duquant_search_with(cur, so, rots));
    out.rotations.back().append_to(out.xform);
    if (i + 1 == searches) break;
    duquant_apply_rotation(cur, out.rotations.back(), b);
    std::vector<index_t> perm =
        opt.permutation == duquant_permutation::zigzag
            ? duquant_zigzag_permutation(cur, b)
            : random_permutation(c, opt.seed,
                                 static_cast<std::uint64_t>(0x5045524D00000000ull + i));
    matrix_f next(cur.rows(), c);
    for (index_t r = 0; r < cur.rows(); ++r) {
      const float* src = cur.data() + r * c;
      float* dst = next.data() + r * c;
      for (index_t j = 0; j < c; ++j) dst[j] = src[perm[static_cast<std::size_t>(j)]];
    }
    cur.swap(next);
    out.xform.append_permutation(perm);
    out.permutations.push_back(std::move(perm));
  }
  return out;
}

}  // namespace detail

/// DuQuant transform of one linear input, without smoothing.
/// x: calibration activation [T, C] (fp32, finite; DuQuant uses the element-wise mean of the
/// calibration samples' inputs, T = 2048). Requires T >= 1, B >= 2, B | C, N >= 0, p >= 0.
/// Returns xform = (R_1, P_1, ..., R_p, P_p, R_{p+1}) with block-diagonal R_i and permutations
/// P_i, plus R1/R2/perm/peaks. Numerics: the search runs in fp32 as the released code; R is
/// accumulated in double from the double Rot; the rotated activation that feeds the zigzag and
/// the next search is X blockdiag(R) in fp32 (Eigen GEMM). Cost per search: exhaustive
/// O(T C N B); fast path O(T C (log + B)) plus B^2 per row-step of the rows whose norm bound
/// reaches the running extremes (LLM-like activations: ~0.1% of them; Gaussian rows of equal
/// norm: all, then no faster than exhaustive), plus O(k B^3) for R.
inline duquant_result duquant(const matrix_f& x, const duquant_options& opt = {}) {
  return detail::duquant_impl(x, nullptr, opt);
}

/// DuQuant transform with SmoothQuant scaling first: w: the linear's weight [out, C] (DuQuant
/// takes w_max from one weight of each group: q_proj, up_proj, o_proj, down_proj).
/// s = max(smooth_scales(act_absmax, max_i |W_ij|, alpha), min_smooth_scale); the search runs on
/// x / s; xform starts with append_scale(s) (X / s online, W * s folded).
inline duquant_result duquant(const matrix_f& x, const matrix_f& w,
                              const duquant_options& opt = {}) {
  ROTQUANT_CHECK(w.cols() == x.cols(), "duquant: the weight has " << w.cols()
                                                                  << " input channels, the "
                                                                     "activation "
                                                                  << x.cols());
  const vector_d wmax = weight_absmax(w);
  return detail::duquant_impl(x, &wmax, opt);
}

/// DuQuant transform with smoothing from precomputed weight statistics (max_i |W_ij|, length C).
inline duquant_result duquant_with_weight_absmax(const matrix_f& x, const vector_d& weight_absmax,
                                                 const duquant_options& opt = {}) {
  return detail::duquant_impl(x, &weight_absmax, opt);
}

#if ROTQUANT_EXTERN_TEMPLATES
// Compiled mode (config.hpp): instantiated once in src/calibration_linalg.cpp.
extern template matrix_d duquant_random_q<double>(index_t, std::uint64_t, std::uint64_t);
extern template matrix_d duquant_rotation<matrix_d>(const Eigen::MatrixBase<matrix_d>&);
#endif

}  // namespace rotquant
