// SPDX-License-Identifier: Apache-2.0
// quantizer.hpp: the quantizer value type (format, granularity, range rule, clipping) and the
// reference quantize / dequantize / fake_quantize, plus one-row reference functions.
//
// Every rule is fp32 arithmetic with IEEE division x / s (never a reciprocal multiply) and
// std::rint in the default rounding mode (ties to even), so the SIMD fast paths of
// kernels/quantize_activations.hpp can be required to match bit for bit. The rules (the block
// and integer per-token rules the kernels share; docs/algorithms.md 1.7, 3.5-3.6, 4.1):
//
// INT sym (absmax): s = absmax * clip / (2^(b-1) - 1), s = 1 if s == 0;
//   q = clamp(rint(x / s), -2^(b-1), 2^(b-1) - 1); x^ = q s.
// INT asym: s = (xmax - xmin) / (2^b - 1); z = rint(-xmin / s);
//   q = clamp(rint(x / s) + z, 0, 2^b - 1); x^ = (q - z) s, with [xmin, xmax] from the rule:
//   range_rule::quarot   per row / per tensor: xmin = min(min x, 0) clip, xmax = max(max x, 0) clip
//                        (zero forced in); per group: raw min / max times clip (not forced in);
//                        xmin = xmax = 0 -> [-1, 1].
//   range_rule::zero_in  always forced in;  range_rule::raw  never forced in.
//   range_rule::duquant  raw min / max times clip; s clamped to [1e-5, 1e4];
//                        z = rint(clamp(-xmin / s, -1e4, 1e4)). Symmetric branch:
//                        s = clamp(max(|xmin|, |xmax|) / (2^(b-1) - 1), 1e-5, 1e4),
//                        z = 2^(b-1) - 1, unsigned codes 0..2^b - 1.
//   range_rule::gptq     GPTQ/QuaRot WeightQuantizer: xmin = min(min w, 0), xmax = max(max w, 0);
//                        sym: s = clip * max(max(|xmin|, xmax), 1e-5) / (2^(b-1) - 1);
//                        asym: [-1, 1] if both 0, s = max(clip xmax - clip xmin, 1e-5) / (2^b - 1);
//                        under clip_search::mse the candidates skip the 1e-5 clamp (as the peer).
//   A zero-width range that is not all zero (a constant group, where the peers divide by zero)
//   is widened to include 0; a scale that still underflows to 0 uses [-1, 1].
// FP4 (E1M2 / E2M1 / E3M0): s = absmax * clip / maxval_k (s = 1 if 0); code = encode_k(x / s);
//   x^ = decode_k(code) s. maxval_k is the top of the format with the IEEE-style bias
//   2^(E-1) - 1 (E1M2: 3.5, E2M1: 6 = OCP FP4, E3M0: 16). The real-valued bias of
//   docs/algorithms.md 4.1 is then b = b_k - log2(s), i.e.
//   fp4_format::from_maxval(kind, absmax clip).
// FP8 (E4M3 / E5M2): s = absmax * clip / 448 (or 57344), s = 1 if 0; code = e4m3_encode(x / s).
// MXFP4: blocks of 32; e = floor(log2 amax) - 2 clamped to [-127, 127] (all-zero block: e = -127,
//   codes 0); codes = e2m1_encode(x * 2^-e); scale byte e + 127 (E8M0).
// MXINT8: blocks of 32; e = floor(log2 amax) clamped (all-zero: -127);
//   codes = clamp(rint(x * 2^(6 - e)), -127, 127); x^ = code 2^(e - 6) (OCP MX, 2^-6 implicit).
// NVFP4: blocks of 16; ts = amax(tensor) / (448 * 6) (1 if 0);
//   byte = ue4m3_encode((block amax / 6) / ts); sb = ue4m3_decode(byte) ts;
//   codes = e2m1_encode(x / sb) (all 0 if sb == 0).
// Block formats accept a row length that is not a multiple of the block: the last block of each
// row is shorter.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/quant/formats.hpp"
#include "rotquant/quant/pack.hpp"

namespace rotquant {

/// Element (and block) formats.
enum class element_format {
  integer,   ///< INT2..INT8, symmetric (signed codes) or asymmetric (unsigned codes + zero point)
  fp4_e1m2,  ///< 4-bit minifloat, 1 exponent bit, 2 mantissa bits (with a real scale = bias)
  fp4_e2m1,  ///< OCP FP4
  fp4_e3m0,  ///< 4-bit minifloat, 3 exponent bits (powers of two)
  fp8_e4m3,  ///< OCP E4M3 (fn)
  fp8_e5m2,  ///< OCP E5M2
  mxfp4,     ///< E2M1 in blocks of 32 with an E8M0 scale
  mxint8,    ///< INT8 in blocks of 32 with an E8M0 scale
  nvfp4,     ///< E2M1 in blocks of 16 with a UE4M3 scale and an fp32 tensor scale
};

/// Which elements share one scale.
enum class granularity {
  per_tensor,  ///< one scale for the whole matrix
  per_row,     ///< one per row (token for activations, output channel for weights)
  per_group,   ///< one per group of group_size consecutive elements of a row
};

/// How the range [xmin, xmax] of an INT group becomes a scale (see the file comment).
enum class range_rule { quarot, zero_in, raw, duquant, gptq };

/// Optional search of the clip ratio per scale group.
enum class clip_search {
  none,  ///< use `clip` as given
  mse,   ///< GPTQ grid: p = 1 - i/grid for i < maxshrink*grid, keep p if sum |x^ - x|^norm is
         ///< strictly lower
};

inline const char* to_string(element_format f) {
  switch (f) {
    case element_format::integer:
      return "int";
    case element_format::fp4_e1m2:
      return "fp4_e1m2";
    case element_format::fp4_e2m1:
      return "fp4_e2m1";
    case element_format::fp4_e3m0:
      return "fp4_e3m0";
    case element_format::fp8_e4m3:
      return "fp8_e4m3";
    case element_format::fp8_e5m2:
      return "fp8_e5m2";
    case element_format::mxfp4:
      return "mxfp4";
    case element_format::mxint8:
      return "mxint8";
    case element_format::nvfp4:
      return "nvfp4";
  }
  return "?";
}

inline const char* to_string(granularity g) {
  switch (g) {
    case granularity::per_tensor:
      return "per_tensor";
    case granularity::per_row:
      return "per_row";
    case granularity::per_group:
      return "per_group";
  }
  return "?";
}

inline const char* to_string(range_rule r) {
  switch (r) {
    case range_rule::quarot:
      return "quarot";
    case range_rule::zero_in:
      return "zero_in";
    case range_rule::raw:
      return "raw";
    case range_rule::duquant:
      return "duquant";
    case range_rule::gptq:
      return "gptq";
  }
  return "?";
}

/// The FP4 layout of an fp4_* element format.
inline fp4_kind fp4_kind_of(element_format f) {
  ROTQUANT_CHECK(f == element_format::fp4_e1m2 || f == element_format::fp4_e2m1 ||
                     f == element_format::fp4_e3m0,
                 "fp4_kind_of: " << to_string(f) << " is not an FP4 element format (accepted: "
                                 << "fp4_e1m2, fp4_e2m1, fp4_e3m0)");
  return f == element_format::fp4_e1m2   ? fp4_kind::e1m2
         : f == element_format::fp4_e2m1 ? fp4_kind::e2m1
                                         : fp4_kind::e3m0;
}

/// The element format of an FP4 layout.
inline element_format element_format_of(fp4_kind k) {
  return k == fp4_kind::e1m2   ? element_format::fp4_e1m2
         : k == fp4_kind::e2m1 ? element_format::fp4_e2m1
                               : element_format::fp4_e3m0;
}

/// The FP4 grid a scaled fp4_* format rounds onto: IEEE-style bias 2^(E-1) - 1 (E2M1 = OCP).
inline const fp4_format& canonical_fp4(fp4_kind k) {
  static const fp4_format table[3] = {fp4_format::from_bias(fp4_kind::e1m2, 0.0),
                                      fp4_format::from_bias(fp4_kind::e2m1, 1.0),
                                      fp4_format::from_bias(fp4_kind::e3m0, 3.0)};
  return table[k == fp4_kind::e1m2 ? 0 : k == fp4_kind::e2m1 ? 1 : 2];
}

/// A quantizer: a value type naming the element format, the scale granularity, the range rule
/// and the clipping. Build one with the named constructors; `validate(rows, cols)` is called
/// by every operation.
struct quantizer {
  element_format format = element_format::integer;
  int bits = 4;           ///< INT only: 2..8
  bool symmetric = true;  ///< INT only
  granularity gran = granularity::per_row;
  index_t group_size = 0;  ///< per_group: elements per group (must divide the row length)
  float clip = 1.0f;       ///< clip ratio multiplying the range (finite, > 0)
  range_rule rule = range_rule::quarot;  ///< INT only
  clip_search search = clip_search::none;
  int search_grid = 100;          ///< mse search: p = 1 - i / search_grid
  double search_maxshrink = 0.8;  ///< mse search: i < maxshrink * grid
  double search_norm = 2.4;       ///< mse search: error exponent
  bool fp8_saturate = true;       ///< FP8 elements: saturate (else overflow gives NaN / Inf)

  // -------------------------------------------------------------- named constructors
  /// Symmetric INT (absmax, QuaRot rule) at any granularity.
  static quantizer int_sym(int bits, granularity g = granularity::per_row, index_t group = 0,
                           float clip = 1.0f) {
    quantizer q;
    q.bits = bits;
    q.gran = g;
    q.group_size = group;
    q.clip = clip;
    return q;
  }
  /// Asymmetric INT with a given range rule (default QuaRot: zero forced in per row, not per
  /// group).
  static quantizer int_asym(int bits, granularity g = granularity::per_row, index_t group = 0,
                            float clip = 1.0f, range_rule r = range_rule::quarot) {
    quantizer q = int_sym(bits, g, group, clip);
    q.symmetric = false;
    q.rule = r;
    return q;
  }
  /// QuaRot's activation quantizer (ActQuantizer): per token (group = 0) or per group.
  static quantizer quarot_activation(int bits, bool sym, float clip = 1.0f, index_t group = 0) {
    const granularity g = group > 0 ? granularity::per_group : granularity::per_row;
    return sym ? int_sym(bits, g, group, clip) : int_asym(bits, g, group, clip);
  }
  /// GPTQ/QuaRot's weight quantizer (WeightQuantizer) per output channel (or per group), with the
  /// optional MSE clip search (`--w_clip`: grid 100, maxshrink 0.8, norm 2.4).
  static quantizer gptq_weight(int bits, bool sym, bool mse_clip, index_t group = 0) {
    quantizer q = sym ? int_sym(bits) : int_asym(bits);
    q.gran = group > 0 ? granularity::per_group : granularity::per_row;
    q.group_size = group;
    q.rule = range_rule::gptq;
    q.search = mse_clip ? clip_search::mse : clip_search::none;
    return q;
  }
  /// DuQuant's UniformAffineQuantizer: asymmetric, raw min/max times clip (`--lac`), clamps.
  static quantizer duquant(int bits, float clip = 1.0f, granularity g = granularity::per_row,
                           index_t group = 0) {
    return int_asym(bits, g, group, clip, range_rule::duquant);
  }
  /// FP4 of a given layout with a scale from absmax * clip.
  static quantizer fp4(fp4_kind k, granularity g = granularity::per_row, index_t group = 0,
                       float clip = 1.0f) {
    quantizer q = int_sym(4, g, group, clip);
    q.format = element_format_of(k);
    return q;
  }
  /// FP8 (E4M3 when e4m3, else E5M2) with a scale from absmax * clip.
  static quantizer fp8(bool e4m3, granularity g = granularity::per_tensor, index_t group = 0,
                       bool saturate = true) {
    quantizer q = int_sym(8, g, group);
    q.format = e4m3 ? element_format::fp8_e4m3 : element_format::fp8_e5m2;
    q.fp8_saturate = saturate;
    return q;
  }
  /// OCP MXFP4: E2M1 in blocks of 32 along the row, E8M0 scales.
  static quantizer mxfp4() { return block(element_format::mxfp4, 32); }
  /// OCP MXINT8: INT8 in blocks of 32 along the row, E8M0 scales.
  static quantizer mxint8() { return block(element_format::mxint8, 32); }
  /// NVFP4: E2M1 in blocks of 16, UE4M3 block scales, fp32 tensor scale.
  static quantizer nvfp4() { return block(element_format::nvfp4, 16); }

  // -------------------------------------------------------------- properties
  bool is_block_format() const {
    return format == element_format::mxfp4 || format == element_format::mxint8 ||
           format == element_format::nvfp4;
  }
  bool is_fp4() const {
    return format == element_format::fp4_e1m2 || format == element_format::fp4_e2m1 ||
           format == element_format::fp4_e3m0;
  }
  bool is_fp8() const {
    return format == element_format::fp8_e4m3 || format == element_format::fp8_e5m2;
  }
  /// Bits per stored element code.
  int element_bits() const {
    if (format == element_format::integer) return bits;
    if (is_fp8() || format == element_format::mxint8) return 8;
    return 4;
  }
  /// Codes of <= 4 bits are stored two per byte (element 2i in the low nibble).
  bool packs_nibbles() const { return element_bits() <= 4; }
  /// INT codes are signed (two's complement) for symmetric non-DuQuant integer formats and MXINT8.
  bool signed_int_codes() const {
    return (format == element_format::integer && symmetric && rule != range_rule::duquant) ||
           format == element_format::mxint8;
  }
  /// Whether a zero point is stored (asymmetric INT, and DuQuant's symmetric branch).
  bool has_zero_point() const {
    return format == element_format::integer && (!symmetric || rule == range_rule::duquant);
  }
  /// Elements per scale along a row of length `cols` (per_tensor and per_row: cols).
  index_t group_length(index_t cols) const {
    return (gran == granularity::per_group) ? group_size : cols;
  }
  /// Scales per row for a row of length `cols` (per_tensor: 1, the single shared scale).
  index_t groups_per_row(index_t cols) const {
    if (gran != granularity::per_group) return 1;
    return (cols + group_size - 1) / group_size;
  }

  /// Throws rotquant::error naming the first invalid setting for a rows x cols input.
  void validate(index_t rows, index_t cols) const {
    ROTQUANT_CHECK(rows >= 0 && cols >= 0, "quantizer: negative shape " << rows << " x " << cols);
    ROTQUANT_CHECK(std::isfinite(clip) && clip > 0.0f,
                   "quantizer: clip ratio " << clip << " must be finite and > 0");
    if (format == element_format::integer) {
      ROTQUANT_CHECK(bits >= 2 && bits <= 8,
                     "quantizer: " << bits << "-bit integers are not supported (accepted: 2..8)");
    }
    if (is_block_format()) {
      const index_t want = format == element_format::nvfp4 ? 16 : 32;
      ROTQUANT_CHECK(gran == granularity::per_group && group_size == want,
                     "quantizer: " << to_string(format) << " uses blocks of " << want
                                   << " along the row (got " << to_string(gran) << ", group "
                                   << group_size << ")");
      ROTQUANT_CHECK(search == clip_search::none,
                     "quantizer: " << to_string(format)
                                   << " has a fixed scale rule; clip search is "
                                   << "only for integer, fp4_* and fp8_* formats");
      ROTQUANT_CHECK(clip == 1.0f, "quantizer: " << to_string(format)
                                                 << " has a fixed scale rule; clip must be 1 (got "
                                                 << clip << ")");
    } else if (gran == granularity::per_group) {
      ROTQUANT_CHECK(group_size > 0,
                     "quantizer: per_group needs a group size > 0 (got " << group_size << ")");
      ROTQUANT_CHECK(cols % group_size == 0, "quantizer: group size "
                                                 << group_size << " does not divide the row length "
                                                 << cols);
    }
    if (search == clip_search::mse) {
      ROTQUANT_CHECK(search_grid > 0 && std::isfinite(search_maxshrink) && search_maxshrink > 0 &&
                         search_maxshrink < 1 && std::isfinite(search_norm) && search_norm > 0,
                     "quantizer: mse clip search needs grid > 0 (got "
                         << search_grid << "), maxshrink in (0, 1) (got " << search_maxshrink
                         << ") and norm > 0 (got " << search_norm << ")");
    }
  }

  /// Short description, e.g. "int4 asym per_group(128) quarot clip 0.9".
  std::string name() const {
    std::string s = to_string(format);
    if (format == element_format::integer) {
      s += std::to_string(bits) + (symmetric ? " sym" : " asym");
    }
    if (!is_block_format()) {
      s += std::string(" ") + to_string(gran);
      if (gran == granularity::per_group) s += "(" + std::to_string(group_size) + ")";
      if (format == element_format::integer) s += std::string(" ") + to_string(rule);
      if (clip != 1.0f) s += " clip " + std::to_string(clip);
      if (search == clip_search::mse) s += " mse-search";
    }
    return s;
  }

 private:
  static quantizer block(element_format f, index_t n) {
    quantizer q;
    q.format = f;
    q.bits = f == element_format::mxint8 ? 8 : 4;
    q.gran = granularity::per_group;
    q.group_size = n;
    return q;
  }
};

/// The result of quantize(): codes, scales (and zero points) of a rows x cols matrix.
/// codes: row-major, `row_bytes` bytes per row; nibble formats (INT2..INT4, FP4, MXFP4, NVFP4)
/// hold element c of a row in nibble c (element 2i low nibble of byte i), signed INT as
/// two's complement; 8-bit formats hold one byte per element (signed INT as int8).
/// scales / zero_points / scale_codes: [rows, groups_per_row] row-major (per_tensor: 1 entry).
/// scale_codes: E8M0 bytes (MXFP4, MXINT8) or UE4M3 bytes (NVFP4); empty otherwise.
struct quantized_matrix {
  quantizer q;
  index_t rows = 0;
  index_t cols = 0;
  index_t group = 0;           ///< elements per scale along a row
  index_t groups_per_row = 0;  ///< scales per row (per_tensor: 1 shared)
  index_t row_bytes = 0;
  std::vector<std::uint8_t> codes;
  std::vector<float> scales;
  std::vector<std::int32_t> zero_points;
  std::vector<std::uint8_t> scale_codes;
  float tensor_scale = 1.0f;  ///< NVFP4 fp32 tensor scale (1 otherwise)

  /// Index into scales for element (r, c).
  index_t scale_index(index_t r, index_t c) const {
    if (q.gran == granularity::per_tensor) return 0;
    return r * groups_per_row + c / group;
  }
  /// The stored code of element (r, c) as an integer: signed INT / MXINT8 codes sign-extended,
  /// everything else as the raw unsigned code.
  int code(index_t r, index_t c) const {
    const std::uint8_t* row = codes.data() + r * row_bytes;
    if (q.packs_nibbles()) {
      const std::uint8_t v = get_nibble(row, c);
      return q.signed_int_codes() ? sign_extend_nibble(v) : v;
    }
    return q.signed_int_codes() ? static_cast<int>(static_cast<std::int8_t>(row[c])) : row[c];
  }
};

namespace detail {

/// Per-group parameters: scale, zero point, scale byte (block formats).
struct quant_params {
  float scale = 1.0f;
  std::int32_t zero = 0;
  std::uint8_t scale_code = 0;
  int e = 0;  ///< block exponent (MXFP4 / MXINT8)
};

/// min, max and max |x| of a region.
struct range_stats {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  float amax = 0.0f;
  void add(float v) {
    min = std::min(min, v);
    max = std::max(max, v);
    amax = std::max(amax, std::fabs(v));
  }
};

inline float fp4_canonical_max(element_format f) {
  return static_cast<float>(canonical_fp4(fp4_kind_of(f)).maxval());
}

inline int int_qmin(const quantizer& q) {
  return q.signed_int_codes() ? -(1 << (q.bits - 1)) : 0;
}
inline int int_qmax(const quantizer& q) {
  return q.signed_int_codes() ? (1 << (q.bits - 1)) - 1 : (1 << q.bits) - 1;
}

// Asymmetric scale / zero from a range; widens degenerate ranges (see the file comment).
inline void asym_from_range(float xmin, float xmax, int levels, quant_params& p) {
  if (xmin == 0.0f && xmax == 0.0f) {
    xmin = -1.0f;
    xmax = 1.0f;
  }
  float s = (xmax - xmin) / static_cast<float>(levels);
  if (!(s > 0.0f)) {
    xmin = std::min(xmin, 0.0f);
    xmax = std::max(xmax, 0.0f);
    s = (xmax - xmin) / static_cast<float>(levels);
    if (!(s > 0.0f)) {
      xmin = -1.0f;
      s = 2.0f / static_cast<float>(levels);
    }
  }
  ROTQUANT_CHECK(std::isfinite(s),
                 "quantize: the range [" << xmin << ", " << xmax << "] overflows the fp32 scale");
  p.scale = s;
  p.zero = static_cast<std::int32_t>(std::rint(-xmin / s));
}

/// Parameters of one INT / FP4 / FP8 scale group from its statistics, with clip ratio `clip`.
/// `forced_zero` selects the zero-forced range for range_rule::quarot (per row / per tensor).
/// `searching`: GPTQ candidates (no 1e-5 clamp on the asymmetric range).
inline quant_params params_from_stats_unchecked(const quantizer& q, const range_stats& st,
                                                float clip, bool forced_zero, bool searching) {
  quant_params p;
  if (q.is_fp4() || q.is_fp8()) {
    const float top = q.is_fp4()                             ? fp4_canonical_max(q.format)
                      : q.format == element_format::fp8_e4m3 ? 448.0f
                                                             : 57344.0f;
    const float s = st.amax * clip / top;
    p.scale = s == 0.0f ? 1.0f : s;
    ROTQUANT_CHECK(std::isfinite(p.scale), "quantize: scale overflow for absmax " << st.amax);
    return p;
  }
  const int qmax_sym = (1 << (q.bits - 1)) - 1;
  const int levels = (1 << q.bits) - 1;
  switch (q.rule) {
    case range_rule::gptq: {
      const float xmin = std::min(st.min, 0.0f);
      const float xmax = std::max(st.max, 0.0f);
      if (q.symmetric) {
        const float xm = std::max(std::max(std::fabs(xmin), xmax), 1e-5f);
        p.scale = clip * xm / static_cast<float>(qmax_sym);
      } else {
        float lo = xmin;
        float hi = xmax;
        if (lo == 0.0f && hi == 0.0f) {
          lo = -1.0f;
          hi = 1.0f;
        }
        lo *= clip;
        hi *= clip;
        const float range = searching ? (hi - lo) : std::max(hi - lo, 1e-5f);
        p.scale = range / static_cast<float>(levels);
        p.zero = static_cast<std::int32_t>(std::rint(-lo / p.scale));
      }
      return p;
    }
    case range_rule::duquant: {
      const float xmin = st.min * clip;
      const float xmax = st.max * clip;
      if (q.symmetric) {
        const float xm = std::max(std::fabs(xmin), std::fabs(xmax));
        p.scale = std::clamp(xm / static_cast<float>(qmax_sym), 1e-5f, 1e4f);
        p.zero = qmax_sym;
      } else {
        p.scale = std::clamp((xmax - xmin) / static_cast<float>(levels), 1e-5f, 1e4f);
        p.zero = static_cast<std::int32_t>(std::rint(std::clamp(-xmin / p.scale, -1e4f, 1e4f)));
      }
      return p;
    }
    default:
      break;
  }
  if (q.symmetric) {
    const float s = st.amax * clip / static_cast<float>(qmax_sym);
    p.scale = s == 0.0f ? 1.0f : s;
    return p;
  }
  const bool zero_in =
      q.rule == range_rule::zero_in || (q.rule == range_rule::quarot && forced_zero);
  float xmin = st.min;
  float xmax = st.max;
  if (zero_in) {
    xmin = std::min(xmin, 0.0f);
    xmax = std::max(xmax, 0.0f);
  }
  asym_from_range(xmin * clip, xmax * clip, levels, p);
  return p;
}

inline quant_params params_from_stats(const quantizer& q, const range_stats& st, float clip,
                                      bool forced_zero, bool searching) {
  const quant_params p = params_from_stats_unchecked(q, st, clip, forced_zero, searching);
  ROTQUANT_CHECK(std::isfinite(p.scale) && p.scale > 0.0f,
                 "quantize: the range [" << st.min << ", " << st.max << "] with clip " << clip
                                         << " gives the scale " << p.scale
                                         << " (overflows fp32); scale the input down");
  return p;
}

/// INT code of x (before storage): clamp(rint(x / s) + z, qmin, qmax).
inline int int_encode(float x, const quant_params& p, int qmin, int qmax) {
  float t = std::rint(x / p.scale);
  t = std::clamp(t, -1073741824.0f, 1073741824.0f);  // keeps the int conversion defined
  const long long v = static_cast<long long>(t) + p.zero;
  return static_cast<int>(std::clamp<long long>(v, qmin, qmax));
}

/// int_encode in fp32, for vectorizable loops: min(qmax, max(qmin, rint(x / s) + z)) as a float
/// (the same code: the clamp absorbs |rint(x / s)| >= 2^24 and Inf). The value is (code - z) s.
inline float int_code_f(float x, float s, float zf, float qmin, float qmax) {
  return std::min(qmax, std::max(qmin, std::rint(x / s) + zf));
}

/// Stored code of x for a non-block format (INT code as its low byte / nibble).
inline std::uint8_t encode_element(const quantizer& q, float x, const quant_params& p, int qmin,
                                   int qmax) {
  switch (q.format) {
    case element_format::integer:
      return static_cast<std::uint8_t>(int_encode(x, p, qmin, qmax) & 0xFF);
    case element_format::fp4_e2m1:
      return e2m1_encode(x / p.scale);
    case element_format::fp4_e1m2:
    case element_format::fp4_e3m0:
      return canonical_fp4(fp4_kind_of(q.format)).encode(x / p.scale);
    case element_format::fp8_e4m3:
      return e4m3_encode(x / p.scale, q.fp8_saturate);
    case element_format::fp8_e5m2:
      return e5m2_encode(x / p.scale, q.fp8_saturate);
    case element_format::mxfp4:
      return e2m1_encode(x * std::ldexp(1.0f, -p.e));
    case element_format::mxint8: {
      const float t = std::rint(std::ldexp(x, 6 - p.e));
      return static_cast<std::uint8_t>(static_cast<int>(std::clamp(t, -127.0f, 127.0f)) & 0xFF);
    }
    case element_format::nvfp4:
      return p.scale == 0.0f ? 0 : e2m1_encode(x / p.scale);
  }
  return 0;
}

/// Value of a stored code (as returned by quantized_matrix::code) under params p.
inline float decode_element(const quantizer& q, int code, const quant_params& p) {
  switch (q.format) {
    case element_format::integer:
      return static_cast<float>(code - p.zero) * p.scale;
    case element_format::fp4_e2m1:
    case element_format::mxfp4:
    case element_format::nvfp4:
      return e2m1_decode(static_cast<std::uint8_t>(code)) * p.scale;
    case element_format::fp4_e1m2:
    case element_format::fp4_e3m0:
      return canonical_fp4(fp4_kind_of(q.format)).decode(static_cast<std::uint8_t>(code)) * p.scale;
    case element_format::fp8_e4m3:
      return e4m3_decode(static_cast<std::uint8_t>(code)) * p.scale;
    case element_format::fp8_e5m2:
      return e5m2_decode(static_cast<std::uint8_t>(code)) * p.scale;
    case element_format::mxint8:
      return std::ldexp(static_cast<float>(code), p.e - 6);
  }
  return 0.0f;
}

/// Converts a stored byte code to the integer code() would return.
inline int stored_to_code(const quantizer& q, std::uint8_t stored) {
  if (q.packs_nibbles()) {
    const std::uint8_t v = static_cast<std::uint8_t>(stored & 0x0F);
    return q.signed_int_codes() ? sign_extend_nibble(v) : v;
  }
  return q.signed_int_codes() ? static_cast<int>(static_cast<std::int8_t>(stored)) : stored;
}

/// NVFP4 tensor scale from the global amax.
inline float nvfp4_ts(float amax) {
  return amax == 0.0f ? 1.0f : amax / (448.0f * 6.0f);
}

/// Block-format parameters from the block amax.
inline quant_params block_params(const quantizer& q, float bamax, float tensor_scale) {
  quant_params p;
  if (q.format == element_format::nvfp4) {
    p.scale_code = ue4m3_encode((bamax / 6.0f) / tensor_scale);
    p.scale = ue4m3_decode(p.scale_code) * tensor_scale;
    return p;
  }
  const int emax_elem = q.format == element_format::mxfp4 ? 2 : 0;
  int e = -127;
  if (bamax > 0.0f) e = std::clamp(std::ilogb(bamax) - emax_elem, -127, 127);
  p.e = e;
  p.scale_code = e8m0_from_exponent(e);
  p.scale = std::ldexp(1.0f, e);
  return p;
}

/// One scale region: rows [r0, r1) x columns [c0, c1) of X.
struct region {
  index_t r0, r1, c0, c1;
};

/// Calls fn(enc) with enc(float x) -> stored code for the format of q under params p; the
/// format switch and the per-region constants are hoisted out of the element loop. Same
/// arithmetic as encode_element.
template <class Fn>
void with_encoder(const quantizer& q, const quant_params& p, Fn&& fn) {
  const float s = p.scale;
  switch (q.format) {
    case element_format::integer: {
      const int qmin = int_qmin(q);
      const int qmax = int_qmax(q);
      fn([&p, qmin, qmax](float x) {
        return static_cast<std::uint8_t>(int_encode(x, p, qmin, qmax) & 0xFF);
      });
      return;
    }
    case element_format::fp4_e2m1:
      fn([s](float x) { return e2m1_encode(x / s); });
      return;
    case element_format::fp4_e1m2:
    case element_format::fp4_e3m0: {
      const fp4_format& f = canonical_fp4(fp4_kind_of(q.format));
      fn([&f, s](float x) { return f.encode(x / s); });
      return;
    }
    case element_format::fp8_e4m3: {
      const bool sat = q.fp8_saturate;
      fn([s, sat](float x) { return e4m3_encode(x / s, sat); });
      return;
    }
    case element_format::fp8_e5m2: {
      const bool sat = q.fp8_saturate;
      fn([s, sat](float x) { return e5m2_encode(x / s, sat); });
      return;
    }
    case element_format::mxfp4: {
      const float inv = std::ldexp(1.0f, -p.e);  // exact power of two, e in [-127, 127]
      fn([inv](float x) { return e2m1_encode(x * inv); });
      return;
    }
    case element_format::mxint8: {
      const int shift = 6 - p.e;
      fn([shift](float x) {
        const float t = std::rint(std::ldexp(x, shift));
        return static_cast<std::uint8_t>(static_cast<int>(std::clamp(t, -127.0f, 127.0f)) & 0xFF);
      });
      return;
    }
    case element_format::nvfp4:
      fn([s](float x) { return s == 0.0f ? std::uint8_t{0} : e2m1_encode(x / s); });
      return;
  }
}

/// Calls fn(dec) with dec(int code) -> value (code as quantized_matrix::code returns it); same
/// arithmetic as decode_element, with the switch hoisted out of the element loop.
template <class Fn>
void with_decoder(const quantizer& q, const quant_params& p, Fn&& fn) {
  const float s = p.scale;
  switch (q.format) {
    case element_format::integer: {
      const std::int32_t z = p.zero;
      fn([s, z](int code) { return static_cast<float>(code - z) * s; });
      return;
    }
    case element_format::fp4_e2m1:
    case element_format::mxfp4:
    case element_format::nvfp4:
      fn([s](int code) { return e2m1_decode(static_cast<std::uint8_t>(code)) * s; });
      return;
    case element_format::fp4_e1m2:
    case element_format::fp4_e3m0: {
      const fp4_format& f = canonical_fp4(fp4_kind_of(q.format));
      fn([&f, s](int code) { return f.decode(static_cast<std::uint8_t>(code)) * s; });
      return;
    }
    case element_format::fp8_e4m3:
      fn([s](int code) { return e4m3_decode(static_cast<std::uint8_t>(code)) * s; });
      return;
    case element_format::fp8_e5m2:
      fn([s](int code) { return e5m2_decode(static_cast<std::uint8_t>(code)) * s; });
      return;
    case element_format::mxint8: {
      const int e = p.e;
      fn([e](int code) { return std::ldexp(static_cast<float>(code), e - 6); });
      return;
    }
  }
}

/// Encodes a region with params p, writing stored codes through `store(r, c, code)`.
template <class Store>
void encode_region(const quantizer& q, const_matrix_view<float> X, const region& g,
                   const quant_params& p, Store&& store) {
  with_encoder(q, p, [&](auto enc) {
    for (index_t r = g.r0; r < g.r1; ++r) {
      for (index_t c = g.c0; c < g.c1; ++c) store(r, c, enc(X(r, c)));
    }
  });
}

/// Copies the bits of `from` into `to` (same size; vectors are never passed by value, so no
/// ABI depends on the target's vector width).
template <class To, class From>
inline void vbits(To& to, const From& from) {
  static_assert(sizeof(To) == sizeof(From), "vbits: sizes differ");
  std::memcpy(&to, &from, sizeof to);
}

/// out[i] = d[i]^p for 64 finite d[i] >= 0 (0 < p <= 64): rotquant's power for the mse clip
/// search objective, in fp32 only: log2 of the mantissa m in [sqrt(1/2), sqrt(2)) by
/// 2 atanh((m - 1) / (m + 1)); p log2 d = p_hi e + (p_lo e + p log2 m) with p_hi (12 bits) e
/// exact, so the integer part k is exact; 2^f by a degree-7 polynomial; relative error below
/// 1e-6. 0 where d^p is below 2^-126 (d = 0 included). Written on 16-lane vector types with
/// bitwise selects, so that every ISA gives the same bits as one lane done by hand.
inline void search_pow_tile(const float* d, float* out, double p) {
  using vf = float __attribute__((vector_size(64)));
  using vu = std::uint32_t __attribute__((vector_size(64)));
  using vi = std::int32_t __attribute__((vector_size(64)));
  const float pf = static_cast<float>(p);
  const float p_hi = static_cast<float>(std::ldexp(std::nearbyint(std::ldexp(p, 6)), -6));
  const float p_lo = static_cast<float>(p - static_cast<double>(p_hi));
  for (int t0 = 0; t0 < 64; t0 += 16) {
    vu b;
    std::memcpy(&b, d + t0, sizeof b);
    vi e0;
    vbits(e0, b >> 23);
    e0 -= 127;
    const vu mb = (b & 0x007FFFFFu) | 0x3F800000u;
    vi big;  // -1 where m > sqrt(2)
    vbits(big, mb > 0x3FB504F3u);
    vu ubig;
    vbits(ubig, big);
    const vu half_bits = (ubig & 0x3F000000u) | (~ubig & 0x3F800000u);  // 0.5 or 1
    vf m, half;
    vbits(m, mb);
    vbits(half, half_bits);
    m = m * half;  // exact
    const vf e = __builtin_convertvector(e0 - big, vf);
    const vf u = (m - 1.0f) / (m + 1.0f);
    const vf u2 = u * u;
    vf t = u2 * (1.0f / 11.0f) + 1.0f / 9.0f;
    t = t * u2 + 1.0f / 7.0f;
    t = t * u2 + 1.0f / 5.0f;
    t = t * u2 + 1.0f / 3.0f;
    t = t * u2 + 1.0f;
    const vf log2m = ((2.0f * u) * t) * 1.44269504f;
    const vf y_hi = p_hi * e;                           // exact (|e| <= 127)
    const vf k = (y_hi + 12582912.0f) - 12582912.0f;    // rint, exact
    const vf f = ((y_hi - k) + p_lo * e) + pf * log2m;  // about [-0.5 - p/2, 0.5 + p/2]
    const vf k2 = (f + 12582912.0f) - 12582912.0f;
    const vf g = (f - k2) * 0.693147181f;  // |g| <= ln(2) / 2
    const vf kk = k + k2;
    vi lo;  // -1 where the result is below 2^-126
    vbits(lo, kk < -126.0f);
    vf r = g * (1.0f / 5040.0f) + 1.0f / 720.0f;
    r = r * g + 1.0f / 120.0f;
    r = r * g + 1.0f / 24.0f;
    r = r * g + 1.0f / 6.0f;
    r = r * g + 0.5f;
    r = r * g + 1.0f;
    r = r * g + 1.0f;
    vi ki = __builtin_convertvector(kk, vi);
    ki = (ki & ~lo) | ((vi{} - 126) & lo);
    vi over;  // -1 where 2^k would overflow: saturate at 2^127
    vbits(over, ki > 127);
    ki = (ki & ~over) | ((vi{} + 127) & over);
    vf scale;
    vbits(scale, (ki + 127) << 23);
    r = r * scale;
    vu rb, ulo;
    vbits(rb, r);
    vbits(ulo, lo);
    rb &= ~ulo;
    std::memcpy(out + t0, &rb, sizeof rb);
  }
}

/// The mse clip search objective of params p on region g: sum over its elements of
/// |x^ - x|^norm, with x^ - x in fp32, the power by search_pow (norm 2: the fp32 square) and
/// the sum in fp64 over eight lanes (lane j takes element i of every tile of 64 along a row
/// with i % 8 == j; rows in order; lanes added pairwise at the end). Stops early and returns a
/// value >= bound as soon as the partial sum reaches `bound` (`strict`: exceeds it). The sum
/// only grows, so a candidate cut off this way cannot win: the choice of candidate is exact.
inline double search_error(const quantizer& q, const_matrix_view<float> X, const region& g,
                           const quant_params& p, double norm, double bound, bool strict) {
  constexpr index_t tile = 64;
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const auto total = [&lane]() {
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
           ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  };
  alignas(64) float xh[tile];
  alignas(64) float term[tile];
  const bool integer = q.format == element_format::integer;
  const float s = p.scale, zf = static_cast<float>(p.zero);
  const float lo = static_cast<float>(int_qmin(q)), hi = static_cast<float>(int_qmax(q));
  for (index_t r = g.r0; r < g.r1; ++r) {
    const float* xr = X.data() + r * X.outerStride();
    for (index_t c0 = g.c0; c0 < g.c1; c0 += tile) {
      const index_t n = std::min(tile, g.c1 - c0);
      const float* x = xr + c0;
      if (integer) {
        for (index_t i = 0; i < n; ++i) xh[i] = (int_code_f(x[i], s, zf, lo, hi) - zf) * s;
      } else {
        with_encoder(q, p, [&](auto enc) {
          with_decoder(q, p, [&](auto dec) {
            for (index_t i = 0; i < n; ++i) xh[i] = dec(stored_to_code(q, enc(x[i])));
          });
        });
      }
      if (norm == 2.0) {
        for (index_t i = 0; i < n; ++i) {
          const float d = xh[i] - x[i];
          term[i] = d * d;
        }
      } else {
        for (index_t i = 0; i < n; ++i) xh[i] = std::fabs(xh[i] - x[i]);
        for (index_t i = n; i < tile; ++i) xh[i] = 0.0f;
        search_pow_tile(xh, term, norm);
      }
      for (index_t i = n; i < tile; ++i) term[i] = 0.0f;
      for (index_t i = 0; i < tile; i += 8)
        for (int j = 0; j < 8; ++j) lane[j] += static_cast<double>(term[i + j]);
      const double sum = total();
      if (strict ? sum > bound : sum >= bound) return sum;
    }
  }
  return total();
}

/// The params of one region (with the optional mse clip search), without encoding it.
inline quant_params region_params(const quantizer& q, const_matrix_view<float> X, const region& g,
                                  float tensor_scale) {
  range_stats st;
  for (index_t r = g.r0; r < g.r1; ++r) {
    for (index_t c = g.c0; c < g.c1; ++c) st.add(X(r, c));
  }
  if (q.is_block_format()) return block_params(q, st.amax, tensor_scale);
  const bool forced_zero = q.gran != granularity::per_group;
  if (q.search == clip_search::none) return params_from_stats(q, st, q.clip, forced_zero, false);
  // GPTQ's grid: the candidate clip p = 1 - i/grid replaces the clip ratio; the peer keeps a
  // candidate only if strictly better, in order i = 0, 1, ...: the first i of least error wins.
  // Visited coarse grid first, then by distance to the best so far, so that most candidates are
  // cut off early by search_error's bound; the tie rule keeps the choice the peer's.
  const int steps = static_cast<int>(q.search_maxshrink * q.search_grid);
  quant_params best_p = params_from_stats(q, st, q.clip, forced_zero, false);
  double best = std::numeric_limits<double>::infinity();
  int best_i = steps;
  std::vector<char> done(static_cast<std::size_t>(std::max(steps, 0)), 0);
  auto visit = [&](int i) {
    done[static_cast<std::size_t>(i)] = 1;
    const float pc = static_cast<float>(1.0 - static_cast<double>(i) / q.search_grid);
    const quant_params cand = params_from_stats(q, st, pc, forced_zero, true);
    const bool earlier = i < best_i;  // an earlier candidate wins ties
    const double err = search_error(q, X, g, cand, q.search_norm, best, earlier);
    if (err < best || (earlier && err == best)) {
      best = err;
      best_i = i;
      best_p = cand;
    }
  };
  constexpr int coarse = 8;
  for (int i = 0; i < steps; i += coarse) visit(i);
  const int centre = best_i;
  for (int dist = 1; dist < steps; ++dist) {
    for (int i : {centre - dist, centre + dist}) {
      if (i >= 0 && i < steps && !done[static_cast<std::size_t>(i)]) visit(i);
    }
  }
  return best_p;
}

/// Quantizes one region: computes its params (region_params) and encodes.
template <class Store>
quant_params quantize_region(const quantizer& q, const_matrix_view<float> X, const region& g,
                             float tensor_scale, Store&& store) {
  const quant_params p = region_params(q, X, g, tensor_scale);
  encode_region(q, X, g, p, store);
  return p;
}

/// Walks every scale region of a rows x cols input in storage order, calling
/// fn(region, scale index).
template <class Fn>
void for_each_region(const quantizer& q, index_t rows, index_t cols, Fn&& fn) {
  if (q.gran == granularity::per_tensor) {
    fn(region{0, rows, 0, cols}, index_t{0});
    return;
  }
  const index_t g = q.group_length(cols);
  const index_t gpr = q.groups_per_row(cols);
  for (index_t r = 0; r < rows; ++r) {
    for (index_t k = 0; k < gpr; ++k) {
      fn(region{r, r + 1, k * g, std::min(cols, (k + 1) * g)}, r * gpr + k);
    }
  }
}

inline float global_amax(const_matrix_view<float> X) {
  float a = 0.0f;
  for (index_t r = 0; r < X.rows(); ++r) {
    for (index_t c = 0; c < X.cols(); ++c) a = std::max(a, std::fabs(X(r, c)));
  }
  return a;
}

}  // namespace detail

/// NVFP4 fp32 tensor scale of a whole matrix: max|X| / (448 * 6), or 1 if X is all zero.
/// Throws for non-finite entries (naming the first). O(rows * cols).
inline float nvfp4_tensor_scale(const_matrix_view<float> X) {
  check_finite(X, "nvfp4_tensor_scale: X");
  return detail::nvfp4_ts(detail::global_amax(X));
}
inline float nvfp4_tensor_scale(const matrix_f& X) {
  return nvfp4_tensor_scale(view(X));
}

/// Quantizes X [rows, cols] (row-major) with q: codes, scales (+ zero points, scale bytes).
/// Preconditions (checked, rotquant::error): q.validate(rows, cols) passes; every entry finite
/// (the message names the first non-finite one). Numeric contract: the rules in the file
/// comment, bit for bit. All-zero rows / groups give zero codes (value 0) with a finite scale.
/// Complexity O(rows * cols), times the search steps (80) with clip_search::mse.
inline quantized_matrix quantize(const quantizer& q, const_matrix_view<float> X) {
  q.validate(X.rows(), X.cols());
  check_finite(X, "quantize: X");
  quantized_matrix out;
  out.q = q;
  out.rows = X.rows();
  out.cols = X.cols();
  out.group = q.group_length(X.cols());
  out.groups_per_row = q.groups_per_row(X.cols());
  out.row_bytes = q.packs_nibbles() ? packed_nibble_bytes(X.cols()) : X.cols();
  out.codes.assign(static_cast<std::size_t>(out.rows * out.row_bytes), 0);
  const index_t nscales = q.gran == granularity::per_tensor ? 1 : out.rows * out.groups_per_row;
  out.scales.assign(static_cast<std::size_t>(nscales), 1.0f);
  if (q.has_zero_point()) out.zero_points.assign(static_cast<std::size_t>(nscales), 0);
  if (q.is_block_format()) out.scale_codes.assign(static_cast<std::size_t>(nscales), 0);
  if (q.format == element_format::nvfp4)
    out.tensor_scale = detail::nvfp4_ts(detail::global_amax(X));
  if (out.rows == 0 || out.cols == 0) return out;
  const bool nibbles = q.packs_nibbles();
  std::uint8_t* codes = out.codes.data();
  const index_t rb = out.row_bytes;
  auto store = [&](index_t r, index_t c, std::uint8_t v) {
    if (nibbles) {
      set_nibble(codes + r * rb, c, v);
    } else {
      codes[r * rb + c] = v;
    }
  };
  detail::for_each_region(q, out.rows, out.cols, [&](const detail::region& g, index_t k) {
    const detail::quant_params p = detail::quantize_region(q, X, g, out.tensor_scale, store);
    out.scales[static_cast<std::size_t>(k)] = p.scale;
    if (q.has_zero_point()) out.zero_points[static_cast<std::size_t>(k)] = p.zero;
    if (q.is_block_format()) out.scale_codes[static_cast<std::size_t>(k)] = p.scale_code;
  });
  return out;
}
inline quantized_matrix quantize(const quantizer& q, const matrix_f& X) {
  return quantize(q, view(X));
}

/// Dequantizes: X^[r, c] = value(code) under the element's scale (and zero point), fp32.
/// Throws if the buffers do not match the shape. O(rows * cols).
inline matrix_f dequantize(const quantized_matrix& m) {
  // The fields a user can edit by hand, against what quantize() builds for them.
  ROTQUANT_CHECK(m.rows >= 0 && m.cols >= 0,
                 "dequantize: negative shape " << m.rows << " x " << m.cols);
  m.q.validate(m.rows, m.cols);
  const index_t want_row_bytes = m.q.packs_nibbles() ? packed_nibble_bytes(m.cols) : m.cols;
  ROTQUANT_CHECK(m.row_bytes == want_row_bytes,
                 "dequantize: row_bytes is " << m.row_bytes << ", a row of " << m.cols << " "
                                             << m.q.name() << " codes takes " << want_row_bytes);
  ROTQUANT_CHECK(
      m.group == m.q.group_length(m.cols) && m.groups_per_row == m.q.groups_per_row(m.cols),
      "dequantize: group " << m.group << " / groups_per_row " << m.groups_per_row
                           << " do not match the quantizer (must be " << m.q.group_length(m.cols)
                           << " / " << m.q.groups_per_row(m.cols) << ")");
  ROTQUANT_CHECK(m.rows == 0 || m.row_bytes == 0 ||
                     m.rows <= std::numeric_limits<index_t>::max() / m.row_bytes,
                 "dequantize: " << m.rows << " x " << m.row_bytes << " code bytes overflow");
  const index_t nscales = m.q.gran == granularity::per_tensor ? 1 : m.rows * m.groups_per_row;
  ROTQUANT_CHECK(
      static_cast<index_t>(m.codes.size()) == m.rows * m.row_bytes &&
          static_cast<index_t>(m.scales.size()) == nscales &&
          (!m.q.has_zero_point() || static_cast<index_t>(m.zero_points.size()) == nscales),
      "dequantize: buffers do not match a " << m.rows << " x " << m.cols << " " << m.q.name()
                                            << " matrix");
  ROTQUANT_CHECK(
      !m.q.is_block_format() || static_cast<index_t>(m.scale_codes.size()) == nscales,
      "dequantize: " << m.scale_codes.size() << " block scale bytes for " << nscales << " blocks");
  matrix_f out(m.rows, m.cols);
  if (m.rows == 0 || m.cols == 0) return out;
  detail::for_each_region(m.q, m.rows, m.cols, [&](const detail::region& g, index_t k) {
    detail::quant_params p;
    p.scale = m.scales[static_cast<std::size_t>(k)];
    if (m.q.has_zero_point()) p.zero = m.zero_points[static_cast<std::size_t>(k)];
    if (m.q.is_block_format() && m.q.format != element_format::nvfp4) {
      p.e = static_cast<int>(m.scale_codes[static_cast<std::size_t>(k)]) - 127;
    }
    detail::with_decoder(m.q, p, [&](auto dec) {
      for (index_t r = g.r0; r < g.r1; ++r) {
        for (index_t c = g.c0; c < g.c1; ++c) out(r, c) = dec(m.code(r, c));
      }
    });
  });
  return out;
}

/// quantize then dequantize (for experiments): exactly dequantize(quantize(q, X)).
/// Same preconditions and cost as quantize.
inline matrix_f fake_quantize(const quantizer& q, const_matrix_view<float> X) {
  // Same params and element arithmetic as quantize + dequantize, without the packed buffers:
  // each element goes encode -> stored code -> decode in one pass.
  q.validate(X.rows(), X.cols());
  check_finite(X, "fake_quantize: X");
  matrix_f out(X.rows(), X.cols());
  if (X.rows() == 0 || X.cols() == 0) return out;
  const float ts =
      q.format == element_format::nvfp4 ? detail::nvfp4_ts(detail::global_amax(X)) : 1.0f;
  const bool nibbles = q.packs_nibbles();
  const bool scaled_fp4 = q.format == element_format::fp4_e1m2 ||
                          q.format == element_format::fp4_e2m1 ||
                          q.format == element_format::fp4_e3m0;
  detail::for_each_region(q, X.rows(), X.cols(), [&](const detail::region& g, index_t) {
    detail::quant_params p = detail::region_params(q, X, g, ts);
    if (nibbles) {
      // 4-bit codes: the 16 decoded values of this region in a table, then encode + look up.
      float value[16];
      detail::with_decoder(q, p, [&](auto dec) {
        for (int code = 0; code < 16; ++code)
          value[code] = dec(detail::stored_to_code(q, static_cast<std::uint8_t>(code)));
      });
      if (scaled_fp4) {
        // Branch-free form of the same thing (vectorizes): |x / s| against the format's seven
        // thresholds selects the magnitude, the sign of x is put back on non-zero results
        // (value[k | 8] == -value[k] exactly; magnitude code 0 is stored as +0).
        const fp4_format& f = canonical_fp4(fp4_kind_of(q.format));
        const float t0 = f.threshold(0), t1 = f.threshold(1), t2 = f.threshold(2),
                    t3 = f.threshold(3), t4 = f.threshold(4), t5 = f.threshold(5),
                    t6 = f.threshold(6);
        const float v1 = value[1], v2 = value[2], v3 = value[3], v4 = value[4], v5 = value[5],
                    v6 = value[6], v7 = value[7];
        const float s = p.scale;
        for (index_t r = g.r0; r < g.r1; ++r) {
          const float* xr = X.data() + r * X.outerStride() + g.c0;
          float* yr = &out(r, g.c0);
          const index_t n = g.c1 - g.c0;
          for (index_t c = 0; c < n; ++c) {
            const float xs = xr[c] / s;
            const float a = std::fabs(xs);
            float m = 0.0f;
            m = a >= t0 ? v1 : m;
            m = a >= t1 ? v2 : m;
            m = a >= t2 ? v3 : m;
            m = a >= t3 ? v4 : m;
            m = a >= t4 ? v5 : m;
            m = a >= t5 ? v6 : m;
            m = !(a < t6) ? v7 : m;
            yr[c] = a >= t0 ? std::copysign(m, xs) : 0.0f;
          }
        }
        return;
      }
      detail::with_encoder(q, p, [&](auto enc) {
        for (index_t r = g.r0; r < g.r1; ++r) {
          for (index_t c = g.c0; c < g.c1; ++c) out(r, c) = value[enc(X(r, c)) & 0x0F];
        }
      });
      return;
    }
    detail::with_encoder(q, p, [&](auto enc) {
      detail::with_decoder(q, p, [&](auto dec) {
        for (index_t r = g.r0; r < g.r1; ++r) {
          for (index_t c = g.c0; c < g.c1; ++c)
            out(r, c) = dec(detail::stored_to_code(q, enc(X(r, c))));
        }
      });
    });
  });
  return out;
}
inline matrix_f fake_quantize(const quantizer& q, const matrix_f& X) {
  return fake_quantize(q, view(X));
}

// ------------------------------------------------------------------------------------------
// One-row reference functions (the oracle for the SIMD per-token fast paths)
// ------------------------------------------------------------------------------------------

/// Scale and zero point of one asymmetric row or group.
struct scale_zero {
  float scale;
  std::int32_t zero;
};

namespace detail {
inline void check_row_args(const char* fn, const float* x, index_t n, const void* out) {
  ROTQUANT_CHECK(n >= 0, fn << ": negative length " << n);
  ROTQUANT_CHECK(n == 0 || (x != nullptr && out != nullptr),
                 fn << ": null pointer for a row of " << n);
  for (index_t i = 0; i < n; ++i) {
    ROTQUANT_CHECK(std::isfinite(x[i]), fn << ": non-finite value " << x[i] << " at index " << i
                                           << "; NaN/Inf are rejected");
  }
}
// Quantizes one row as a 1 x n matrix with q, writing codes/scales into caller buffers.
inline quant_params row_quantize(const quantizer& q, const float* x, index_t n, std::uint8_t* out,
                                 float tensor_scale, float* scales, std::int32_t* zeros,
                                 std::uint8_t* scale_bytes) {
  q.validate(1, n);
  const auto X = make_view(x, 1, n, n);
  const bool nibbles = q.packs_nibbles();
  if (nibbles) std::fill(out, out + packed_nibble_bytes(n), std::uint8_t{0});
  auto store = [&](index_t, index_t c, std::uint8_t v) {
    if (nibbles) {
      set_nibble(out, c, v);
    } else {
      out[c] = v;
    }
  };
  quant_params last;
  if (n == 0) return last;
  for_each_region(q, 1, n, [&](const region& g, index_t k) {
    last = quantize_region(q, X, g, tensor_scale, store);
    if (scales) scales[k] = last.scale;
    if (zeros) zeros[k] = last.zero;
    if (scale_bytes) scale_bytes[k] = last.scale_code;
  });
  return last;
}
}  // namespace detail

/// QuaRot INT4 symmetric per row: s = absmax * clip / 7 (s = 1 if 0), q = clamp(rint(x / s),
/// -8, 7), packed as two's-complement nibbles into ceil(n/2) bytes at `packed` (element 2i low).
/// Returns s. Throws for NaN/Inf (first index), null pointers, clip not finite > 0. O(n).
inline float quantize_row_int4_sym(const float* x, index_t n, float clip, std::uint8_t* packed) {
  detail::check_row_args("quantize_row_int4_sym", x, n, packed);
  const quantizer q = quantizer::int_sym(4, granularity::per_row, 0, clip);
  return detail::row_quantize(q, x, n, packed, 1.0f, nullptr, nullptr, nullptr).scale;
}

/// QuaRot INT4 asymmetric per row (zero forced into the range): xmin = min(min x, 0) clip,
/// xmax = max(max x, 0) clip, [-1, 1] if both 0; s = (xmax - xmin) / 15; z = rint(-xmin / s);
/// q = clamp(rint(x / s) + z, 0, 15), packed unsigned nibbles. Returns {s, z}. O(n).
inline scale_zero quantize_row_int4_asym(const float* x, index_t n, float clip,
                                         std::uint8_t* packed) {
  detail::check_row_args("quantize_row_int4_asym", x, n, packed);
  const quantizer q = quantizer::int_asym(4, granularity::per_row, 0, clip);
  const auto p = detail::row_quantize(q, x, n, packed, 1.0f, nullptr, nullptr, nullptr);
  return {n == 0 ? 1.0f : p.scale, p.zero};
}

/// INT8 symmetric per row: s = absmax * clip / 127 (1 if 0), q = clamp(rint(x / s), -128, 127)
/// into n bytes at `codes`. Returns s. O(n).
inline float quantize_row_int8_sym(const float* x, index_t n, float clip, std::int8_t* codes) {
  detail::check_row_args("quantize_row_int8_sym", x, n, codes);
  const quantizer q = quantizer::int_sym(8, granularity::per_row, 0, clip);
  return detail::row_quantize(q, x, n, reinterpret_cast<std::uint8_t*>(codes), 1.0f, nullptr,
                              nullptr, nullptr)
      .scale;
}

/// INT4 symmetric per group of `group` (must divide n): one scale per group (absmax * clip / 7)
/// into scales[n / group]; codes packed as in quantize_row_int4_sym. O(n).
inline void quantize_row_int4_sym_groups(const float* x, index_t n, index_t group, float clip,
                                         std::uint8_t* packed, float* scales) {
  detail::check_row_args("quantize_row_int4_sym_groups", x, n, packed);
  ROTQUANT_CHECK(n == 0 || scales != nullptr, "quantize_row_int4_sym_groups: null scales");
  const quantizer q = quantizer::int_sym(4, granularity::per_group, group, clip);
  detail::row_quantize(q, x, n, packed, 1.0f, scales, nullptr, nullptr);
}

/// INT4 asymmetric per group (QuaRot groupwise: raw group min / max times clip, zero NOT forced
/// in): scales and zero points into scales[n / group], zeros[n / group]. O(n).
inline void quantize_row_int4_asym_groups(const float* x, index_t n, index_t group, float clip,
                                          std::uint8_t* packed, float* scales,
                                          std::int32_t* zeros) {
  detail::check_row_args("quantize_row_int4_asym_groups", x, n, packed);
  ROTQUANT_CHECK(n == 0 || (scales != nullptr && zeros != nullptr),
                 "quantize_row_int4_asym_groups: null scales or zeros");
  const quantizer q = quantizer::int_asym(4, granularity::per_group, group, clip);
  detail::row_quantize(q, x, n, packed, 1.0f, scales, zeros, nullptr);
}

/// FP4 E2M1 per row: s = absmax * clip / 6 (1 if 0), code = e2m1_encode(x / s), packed nibbles.
/// Returns s. O(n).
inline float quantize_row_fp4_e2m1(const float* x, index_t n, float clip, std::uint8_t* packed) {
  detail::check_row_args("quantize_row_fp4_e2m1", x, n, packed);
  const quantizer q = quantizer::fp4(fp4_kind::e2m1, granularity::per_row, 0, clip);
  return detail::row_quantize(q, x, n, packed, 1.0f, nullptr, nullptr, nullptr).scale;
}

/// MXFP4 of one row: ceil(n/32) blocks (the last may be shorter), E8M0 bytes into
/// scale_bytes[ceil(n/32)], codes packed into ceil(n/2) bytes. O(n).
inline void quantize_row_mxfp4(const float* x, index_t n, std::uint8_t* packed,
                               std::uint8_t* scale_bytes) {
  detail::check_row_args("quantize_row_mxfp4", x, n, packed);
  ROTQUANT_CHECK(n == 0 || scale_bytes != nullptr, "quantize_row_mxfp4: null scale_bytes");
  detail::row_quantize(quantizer::mxfp4(), x, n, packed, 1.0f, nullptr, nullptr, scale_bytes);
}

/// NVFP4 of one row with a given fp32 tensor scale (finite, > 0; see nvfp4_tensor_scale):
/// ceil(n/16) blocks (the last may be shorter), UE4M3 bytes into scale_bytes[ceil(n/16)],
/// codes packed into ceil(n/2) bytes. O(n).
inline void quantize_row_nvfp4(const float* x, index_t n, float tensor_scale, std::uint8_t* packed,
                               std::uint8_t* scale_bytes) {
  detail::check_row_args("quantize_row_nvfp4", x, n, packed);
  ROTQUANT_CHECK(std::isfinite(tensor_scale) && tensor_scale > 0.0f,
                 "quantize_row_nvfp4: tensor scale " << tensor_scale << " must be finite and > 0");
  ROTQUANT_CHECK(n == 0 || scale_bytes != nullptr, "quantize_row_nvfp4: null scale_bytes");
  detail::row_quantize(quantizer::nvfp4(), x, n, packed, tensor_scale, nullptr, nullptr,
                       scale_bytes);
}

}  // namespace rotquant
