// SPDX-License-Identifier: Apache-2.0
// kv_cache.hpp: a quantized key/value cache for decoder attention (W4A4KV4), appendable one
// token at a time, with causal attention that reads the packed cache directly.
//
// The rules are QuaRot's fake-quant ones (rotation_utils.QKRotationWrapper for K, the v_proj
// output quantizer of quant_utils.ActQuantWrapper for V), each one scale group per (token, KV
// head) of head_dim elements, asymmetric by default, bits 4 or 8 (16 = float32, no quantization):
//   K (after RoPE and the per-head Hadamard that multiplies Q too, so q.k is unchanged):
//     ActQuantizer with groupsize -1 on rows of head_dim: the per-row rule, zero forced into
//     the range: xmin = min(min k, 0) clip, xmax = max(max k, 0) clip.
//   V (after the per-head rotation R2 folded into v_proj / o_proj offline):
//     ActQuantizer with groupsize head_dim: the per-group rule, raw min / max times clip.
// Both are `quantizer::quarot_activation` (quant/quantizer.hpp holds the one implementation of
// each rule): kv_key_quantizer / kv_value_quantizer below. QuaRot's scripts use clip 0.95.
//
// Layout: token-major; row (t, h) of head_dim codes (4 bits: two per byte, low nibble first),
// one fp32 scale and one int32 zero point per row. Attention decodes one tile of 64 cached
// tokens of one KV head at a time into float codes (unscaled: the per-row scale and zero point
// are applied to the scores and to the softmax weights instead, q.k = s (q.C - z sum q)), then
// per query row one GEMV for the scores and one for the weighted sum of V, with an online
// softmax across tiles; the float32 cache is read in place. KV heads run in parallel on the
// executor when there is enough work; the result does not depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/quant/quantizer.hpp"

namespace rotquant {

/// Shape and quantization of a KV cache (one layer).
struct kv_cache_options {
  index_t heads = 0;       ///< KV heads (GQA: fewer than the query heads)
  index_t head_dim = 0;    ///< elements per head, even
  int bits = 16;           ///< 16 (float32, KV16), 8 or 4
  bool symmetric = false;  ///< symmetric INT (QuaRot: --k_asym / --v_asym off)
  float k_clip = 1.0f;     ///< clip ratio of K's range (QuaRot's scripts: 0.95)
  float v_clip = 1.0f;     ///< clip ratio of V's range (QuaRot's scripts: 0.95)
};

namespace detail {
inline void validate_kv_options(const kv_cache_options& o, const char* who) {
  ROTQUANT_CHECK(o.heads >= 1, who << ": heads = " << o.heads << "; expected >= 1");
  ROTQUANT_CHECK(o.head_dim >= 2 && o.head_dim % 2 == 0,
                 who << ": head_dim = " << o.head_dim << "; expected an even number >= 2");
  ROTQUANT_CHECK(o.bits == 4 || o.bits == 8 || o.bits == 16,
                 who << ": bits = " << o.bits << "; accepted: 4, 8, 16 (16 = float32)");
  for (float c : {o.k_clip, o.v_clip})
    ROTQUANT_CHECK(std::isfinite(c) && c > 0.0f && c <= 1.0f,
                   who << ": clip ratio " << c << " is not in (0, 1]");
}
}  // namespace detail

/// K's quantizer: QuaRot's per-(token, head) rule with zero forced in (rows of head_dim).
inline quantizer kv_key_quantizer(const kv_cache_options& o) {
  detail::validate_kv_options(o, "kv_key_quantizer");
  ROTQUANT_CHECK(o.bits < 16, "kv_key_quantizer: bits = 16 keeps K in float (no quantizer)");
  return quantizer::quarot_activation(o.bits, o.symmetric, o.k_clip, 0);
}

/// V's quantizer: QuaRot's per-group rule (group = head_dim, raw range), over rows of head_dim.
inline quantizer kv_value_quantizer(const kv_cache_options& o) {
  detail::validate_kv_options(o, "kv_value_quantizer");
  ROTQUANT_CHECK(o.bits < 16, "kv_value_quantizer: bits = 16 keeps V in float (no quantizer)");
  return quantizer::quarot_activation(o.bits, o.symmetric, o.v_clip, o.head_dim);
}

namespace detail {
// [T, heads * head_dim] (row-major, rows `stride` apart) fake-quantized per (token, head).
inline matrix_f kv_fake_quantize(const quantizer& q, const_matrix_view<float> x, index_t head_dim,
                                 const char* who) {
  ROTQUANT_CHECK(head_dim >= 1 && x.cols() % head_dim == 0,
                 who << ": " << x.cols() << " columns are not a multiple of head_dim " << head_dim);
  matrix_f dense = x;  // contiguous, so [T, H * d] reads as [T * H, d]
  const index_t rows = dense.rows() * (dense.cols() / head_dim);
  matrix_f y = fake_quantize(q, make_view<float>(dense.data(), rows, head_dim, head_dim));
  return Eigen::Map<const matrix_f>(y.data(), dense.rows(), dense.cols());
}
}  // namespace detail

namespace detail {
inline matrix_f kv_fake_quantize_rows(const kv_cache_options& o, const_matrix_view<float> x,
                                      bool key, const char* who) {
  validate_kv_options(o, who);
  ROTQUANT_CHECK(x.cols() == o.heads * o.head_dim,
                 who << ": " << (key ? "K" : "V") << " has " << x.cols()
                     << " columns, expected heads * head_dim = " << o.heads * o.head_dim);
  if (o.bits == 16) return x;
  return kv_fake_quantize(key ? kv_key_quantizer(o) : kv_value_quantizer(o), x, o.head_dim, who);
}
}  // namespace detail

/// K [T, heads * head_dim] as the cache stores it (quantized and dequantized); bits 16: a copy.
inline matrix_f kv_fake_quantize_keys(const kv_cache_options& o, const_matrix_view<float> k) {
  return detail::kv_fake_quantize_rows(o, k, true, "kv_fake_quantize_keys");
}

/// V [T, heads * head_dim] as the cache stores it; bits 16: a copy.
inline matrix_f kv_fake_quantize_values(const kv_cache_options& o, const_matrix_view<float> v) {
  return detail::kv_fake_quantize_rows(o, v, false, "kv_fake_quantize_values");
}

inline matrix_f kv_fake_quantize_keys(const kv_cache_options& o, const matrix_f& k) {
  return kv_fake_quantize_keys(o, view(k));
}
inline matrix_f kv_fake_quantize_values(const kv_cache_options& o, const matrix_f& v) {
  return kv_fake_quantize_values(o, view(v));
}

/// One layer's key/value cache: float32 (bits 16) or packed INT codes with per-(token, head)
/// scale and zero point. Append tokens, then attend from the newest queries.
class kv_cache {
 public:
  static constexpr index_t tile = 64;  ///< cached tokens dequantized at a time

  explicit kv_cache(const kv_cache_options& o) : o_(o) {
    detail::validate_kv_options(o, "kv_cache");
    width_ = o.heads * o.head_dim;
    if (o.bits < 16) {
      kq_ = kv_key_quantizer(o);
      vq_ = kv_value_quantizer(o);
      row_bytes_ = o.bits == 4 ? o.head_dim / 2 : o.head_dim;
    }
  }

  const kv_cache_options& options() const { return o_; }
  /// Cached tokens.
  index_t size() const { return size_; }
  /// Drops every token (keeps the memory).
  void clear() {
    size_ = 0;
    kf_.clear(), vf_.clear(), kc_.clear(), vc_.clear();
    ks_.clear(), vs_.clear(), kz_.clear(), vz_.clear();
  }
  /// Reserves room for `tokens` tokens.
  void reserve(index_t tokens) {
    const auto t = static_cast<std::size_t>(std::max<index_t>(tokens, 0));
    if (o_.bits == 16) {
      kf_.reserve(t * static_cast<std::size_t>(width_));
      vf_.reserve(t * static_cast<std::size_t>(width_));
      return;
    }
    const auto rows = t * static_cast<std::size_t>(o_.heads);
    kc_.reserve(rows * static_cast<std::size_t>(row_bytes_));
    vc_.reserve(rows * static_cast<std::size_t>(row_bytes_));
    ks_.reserve(rows), vs_.reserve(rows), kz_.reserve(rows), vz_.reserve(rows);
  }

  /// Bytes held per cached token (K and V: codes, scales, zero points).
  double bytes_per_token() const {
    if (o_.bits == 16) return 2.0 * static_cast<double>(width_) * sizeof(float);
    return 2.0 * static_cast<double>(o_.heads) *
           static_cast<double>(row_bytes_ + static_cast<index_t>(sizeof(float)) +
                               static_cast<index_t>(sizeof(std::int32_t)));
  }

  /// Appends T tokens: k and v are [T, heads * head_dim] (K after RoPE and any rotation).
  /// Non-finite values are rejected with their position.
  void append(const_matrix_view<float> k, const_matrix_view<float> v) {
    ROTQUANT_CHECK(k.cols() == width_ && v.cols() == width_,
                   "kv_cache::append: K has "
                       << k.cols() << " and V " << v.cols()
                       << " columns, expected heads * head_dim = " << width_);
    ROTQUANT_CHECK(k.rows() == v.rows(),
                   "kv_cache::append: K has " << k.rows() << " tokens and V " << v.rows());
    check_finite(k, "kv_cache::append: K");
    check_finite(v, "kv_cache::append: V");
    const index_t T = k.rows();
    if (T == 0) return;
    if (o_.bits == 16) {
      for (index_t t = 0; t < T; ++t) {
        kf_.insert(kf_.end(), k.row(t).data(), k.row(t).data() + width_);
        vf_.insert(vf_.end(), v.row(t).data(), v.row(t).data() + width_);
      }
    } else {
      push_rows(kq_, k, kc_, ks_, kz_);
      push_rows(vq_, v, vc_, vs_, vz_);
    }
    size_ += T;
  }
  void append(const matrix_f& k, const matrix_f& v) { append(view(k), view(v)); }

  /// The cached K (or V) dequantized, [size(), heads * head_dim] (for tests and inspection).
  matrix_f keys() const { return dequantized(true); }
  matrix_f values() const { return dequantized(false); }

  /// Causal attention of the newest queries: q is [Tq, q_heads * head_dim] for the last Tq
  /// appended tokens (Tq <= size()); query i attends to cached tokens 0 .. size() - Tq + i.
  /// q_heads must be a multiple of heads (query head h reads KV head h / (q_heads / heads)).
  /// out [Tq, q_heads * head_dim] = softmax(q K^T * scale) V; scale 0 = 1 / sqrt(head_dim).
  void attend(const_matrix_view<float> q, index_t q_heads, matrix_view<float> out,
              float scale = 0.0f, executor* ex = nullptr) const {
    ROTQUANT_CHECK(q_heads >= o_.heads && q_heads % o_.heads == 0,
                   "kv_cache::attend: " << q_heads << " query heads are not a multiple of the "
                                        << o_.heads << " KV heads");
    const index_t d = o_.head_dim;
    ROTQUANT_CHECK(q.cols() == q_heads * d, "kv_cache::attend: q has "
                                                << q.cols() << " columns, expected q_heads * "
                                                << "head_dim = " << q_heads * d);
    ROTQUANT_CHECK(q.rows() >= 1 && q.rows() <= size_,
                   "kv_cache::attend: " << q.rows() << " queries for " << size_
                                        << " cached tokens (expected 1 .. size())");
    ROTQUANT_CHECK(out.rows() == q.rows() && out.cols() == q.cols(),
                   "kv_cache::attend: out is " << out.rows() << " x " << out.cols() << ", expected "
                                               << q.rows() << " x " << q.cols());
    ROTQUANT_CHECK(std::isfinite(scale) && scale >= 0.0f,
                   "kv_cache::attend: scale " << scale << " is not finite and >= 0");
    check_finite(q, "kv_cache::attend: q");
    const float s = scale == 0.0f ? 1.0f / std::sqrt(static_cast<float>(d)) : scale;
    // KV heads per chunk: at least ~2^17 cached elements read per chunk (short contexts run
    // inline: waking a thread costs more). Each head is computed by one task either way.
    const index_t head_work = std::max<index_t>(1, size_ * d * q.rows() * (q_heads / o_.heads));
    const index_t grain = std::max<index_t>(1, (index_t{1} << 17) / head_work);
    parallel_for(
        0, o_.heads, grain,
        [&](index_t lo, index_t hi) {
          for (index_t g = lo; g < hi; ++g) attend_head(q, q_heads, out, s, g);
        },
        ex);
  }
  matrix_f attend(const matrix_f& q, index_t q_heads, float scale = 0.0f,
                  executor* ex = nullptr) const {
    matrix_f out(q.rows(), q.cols());
    attend(view(q), q_heads, view(out), scale, ex);
    return out;
  }

 private:
  void push_rows(const quantizer& qz, const_matrix_view<float> x, std::vector<std::uint8_t>& codes,
                 std::vector<float>& scales, std::vector<std::int32_t>& zeros) const {
    const matrix_f dense = x;  // [T, H * d] read as [T * H, d]
    const index_t rows = dense.rows() * o_.heads;
    const quantized_matrix m =
        quantize(qz, make_view<float>(dense.data(), rows, o_.head_dim, o_.head_dim));
    ROTQUANT_DCHECK(m.row_bytes == row_bytes_ && m.groups_per_row == 1, "kv_cache: row layout");
    codes.insert(codes.end(), m.codes.begin(), m.codes.end());
    scales.insert(scales.end(), m.scales.begin(), m.scales.end());
    if (m.zero_points.empty())
      zeros.insert(zeros.end(), static_cast<std::size_t>(rows), 0);
    else
      zeros.insert(zeros.end(), m.zero_points.begin(), m.zero_points.end());
  }

  // Row (t, g) of K or V into dst[0 .. head_dim).
  void load_row(bool key, index_t t, index_t g, float* dst) const {
    const index_t d = o_.head_dim;
    if (o_.bits == 16) {
      const float* src = (key ? kf_ : vf_).data() + t * width_ + g * d;
      std::copy(src, src + d, dst);
      return;
    }
    const std::size_t r = static_cast<std::size_t>(t * o_.heads + g);
    const std::uint8_t* c = (key ? kc_ : vc_).data() + r * static_cast<std::size_t>(row_bytes_);
    const float sc = (key ? ks_ : vs_)[r];
    const float z = static_cast<float>((key ? kz_ : vz_)[r]);
    if (o_.bits == 4) {
      if (o_.symmetric) {
        for (index_t i = 0; i < d / 2; ++i) {
          const int lo = static_cast<int>(c[i] & 0x0F), hi = static_cast<int>(c[i] >> 4);
          dst[2 * i] = static_cast<float>(lo - ((lo & 8) << 1)) * sc;
          dst[2 * i + 1] = static_cast<float>(hi - ((hi & 8) << 1)) * sc;
        }
      } else {
        for (index_t i = 0; i < d / 2; ++i) {
          dst[2 * i] = (static_cast<float>(c[i] & 0x0F) - z) * sc;
          dst[2 * i + 1] = (static_cast<float>(c[i] >> 4) - z) * sc;
        }
      }
    } else if (o_.symmetric) {
      for (index_t i = 0; i < d; ++i)
        dst[i] = static_cast<float>(static_cast<std::int8_t>(c[i])) * sc;
    } else {
      for (index_t i = 0; i < d; ++i) dst[i] = (static_cast<float>(c[i]) - z) * sc;
    }
  }

  matrix_f dequantized(bool key) const {
    matrix_f out(size_, width_);
    for (index_t t = 0; t < size_; ++t)
      for (index_t g = 0; g < o_.heads; ++g)
        load_row(key, t, g, out.data() + t * width_ + g * o_.head_dim);
    return out;
  }

  // Row (t, g) of K or V as raw codes in float (asymmetric: 0 .. 2^bits - 1, symmetric: signed),
  // INT4 in the cache's nibble order deinterleaved (element 2i at i, element 2i + 1 at d/2 + i:
  // contiguous loads and stores, no shuffles); the value is (code - zero) * scale.
  void load_codes(bool key, index_t t, index_t g, float* dst) const {
    const std::size_t r = static_cast<std::size_t>(t * o_.heads + g);
    const std::uint8_t* c = (key ? kc_ : vc_).data() + r * static_cast<std::size_t>(row_bytes_);
    if (o_.bits == 4)
      decode_nibbles(c, dst, dst + o_.head_dim / 2, row_bytes_, o_.symmetric);
    else
      decode_bytes(c, dst, row_bytes_, o_.symmetric);
  }
  // The codes and the floats never overlap; __restrict says so (a uint8_t pointer may alias
  // anything, which would keep these loops scalar).
  static void decode_nibbles(const std::uint8_t* __restrict c, float* __restrict lo,
                             float* __restrict hi, index_t n, bool symmetric) {
    if (symmetric) {
      for (index_t i = 0; i < n; ++i) {
        lo[i] = static_cast<float>(((c[i] & 0x0F) ^ 8) - 8);
        hi[i] = static_cast<float>(((c[i] >> 4) ^ 8) - 8);
      }
    } else {
      for (index_t i = 0; i < n; ++i) {
        lo[i] = static_cast<float>(c[i] & 0x0F);
        hi[i] = static_cast<float>(c[i] >> 4);
      }
    }
  }
  static void decode_bytes(const std::uint8_t* __restrict c, float* __restrict dst, index_t n,
                           bool symmetric) {
    if (symmetric)
      for (index_t i = 0; i < n; ++i) dst[i] = static_cast<float>(static_cast<std::int8_t>(c[i]));
    else
      for (index_t i = 0; i < n; ++i) dst[i] = static_cast<float>(c[i]);
  }

  // Attention of the queries of KV head g. Codes stay unscaled in the products: with K = (C -
  // z) sc per row, q.k = sc (q.C - z sum(q)); with V likewise, sum_j p_j v_j = sum_j (p_j sc_j)
  // C_j - sum_j p_j sc_j z_j, the second term a scalar per query subtracted once at the end.
  void attend_head(const_matrix_view<float> q, index_t q_heads, matrix_view<float> out, float s,
                   index_t g) const {
    const index_t d = o_.head_dim, group = q_heads / o_.heads, Tq = q.rows();
    const index_t R = Tq * group, n = size_;
    const bool packed = o_.bits < 16, nibbles = o_.bits == 4;
    // Position p of a decoded row holds element elem(p) (the deinterleaved INT4 order).
    const auto elem = [&](index_t p) {
      return !nibbles ? p : p < d / 2 ? 2 * p : 2 * (p - d / 2) + 1;
    };
    // Row r: query r / group, head g * group + r % group, scaled by s, in decoded order.
    std::vector<float> qg(static_cast<std::size_t>(R * d)),
        acc(static_cast<std::size_t>(R * d), 0.0f);
    std::vector<float> qsum(static_cast<std::size_t>(R), 0.0f),
        zsum(static_cast<std::size_t>(R), 0.0f);
    for (index_t r = 0; r < R; ++r) {
      const float* src = q.data() + (r / group) * q.outerStride() + (g * group + r % group) * d;
      float* dst = qg.data() + r * d;
      for (index_t p = 0; p < d; ++p) dst[p] = src[elem(p)] * s;
      qsum[static_cast<std::size_t>(r)] = Eigen::Map<const Eigen::VectorXf>(dst, d).sum();
    }
    std::vector<float> m(static_cast<std::size_t>(R), -std::numeric_limits<float>::infinity());
    std::vector<float> l(static_cast<std::size_t>(R), 0.0f);
    std::vector<float> kt(packed ? static_cast<std::size_t>(tile * d) : 0),
        vt(packed ? static_cast<std::size_t>(tile * d) : 0), p(static_cast<std::size_t>(tile));
    // Query r sees tokens 0 .. first_limit + r / group.
    const index_t first_limit = n - Tq;
    for (index_t j0 = 0; j0 < n; j0 += tile) {
      const index_t tl = std::min(tile, n - j0);
      // The tile's rows: decoded codes, or the float rows in place.
      const float* krows = nullptr;
      const float* vrows = nullptr;
      index_t stride = width_;
      if (packed) {
        for (index_t j = 0; j < tl; ++j) {
          load_codes(true, j0 + j, g, kt.data() + j * d);
          load_codes(false, j0 + j, g, vt.data() + j * d);
        }
        krows = kt.data();
        vrows = vt.data();
        stride = d;
      } else {
        krows = kf_.data() + j0 * width_ + g * d;
        vrows = vf_.data() + j0 * width_ + g * d;
      }
      const auto row_index = [&](index_t j) {
        return static_cast<std::size_t>((j0 + j) * o_.heads + g);
      };
      for (index_t r = 0; r < R; ++r) {
        const auto ri = static_cast<std::size_t>(r);
        const index_t valid = std::min(tl, first_limit + r / group - j0 + 1);
        if (valid <= 0) continue;
        // Scores of the tile's rows: one GEMV (Eigen's, no packing) per query row.
        const const_matrix_view<float> K = make_view(krows, valid, d, stride);
        Eigen::Map<Eigen::VectorXf> sv(p.data(), valid);
        sv.noalias() = K * Eigen::Map<const Eigen::VectorXf>(qg.data() + r * d, d);
        if (packed)
          for (index_t j = 0; j < valid; ++j) {
            const std::size_t k = row_index(j);
            sv(j) = ks_[k] * (sv(j) - static_cast<float>(kz_[k]) * qsum[ri]);
          }
        const float mx = sv.maxCoeff();
        const float m_new = std::max(m[ri], mx);
        const float corr = std::exp(m[ri] - m_new);  // 0 on the first tile (m = -inf)
        sv.array() = (sv.array() - m_new).exp();     // Eigen's vectorized exp
        l[ri] = l[ri] * corr + sv.sum();
        m[ri] = m_new;
        float* ar = acc.data() + r * d;
        for (index_t e = 0; e < d; ++e) ar[e] *= corr;
        zsum[ri] *= corr;
        if (packed)
          for (index_t j = 0; j < valid; ++j) {
            const std::size_t k = row_index(j);
            p[static_cast<std::size_t>(j)] *= vs_[k];
            zsum[ri] += p[static_cast<std::size_t>(j)] * static_cast<float>(vz_[k]);
          }
        Eigen::Map<Eigen::RowVectorXf>(ar, d).noalias() +=
            Eigen::Map<const Eigen::RowVectorXf>(p.data(), valid) *
            make_view(vrows, valid, d, stride);
      }
    }
    for (index_t r = 0; r < R; ++r) {
      const auto ri = static_cast<std::size_t>(r);
      float* dst = out.data() + (r / group) * out.outerStride() + (g * group + r % group) * d;
      const float* ar = acc.data() + r * d;
      const float inv = 1.0f / l[ri];
      for (index_t e = 0; e < d; ++e) dst[elem(e)] = (ar[e] - zsum[ri]) * inv;
    }
  }

  kv_cache_options o_;
  index_t width_ = 0, row_bytes_ = 0, size_ = 0;
  quantizer kq_, vq_;
  std::vector<float> kf_, vf_;         // bits 16
  std::vector<std::uint8_t> kc_, vc_;  // codes, row (t, h) at (t * heads + h) * row_bytes
  std::vector<float> ks_, vs_;         // scale per row
  std::vector<std::int32_t> kz_, vz_;  // zero point per row (0 when symmetric)
};

}  // namespace rotquant
