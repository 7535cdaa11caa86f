// SPDX-License-Identifier: Apache-2.0
// Tests for kernels/quantize_activations.hpp: every ISA path bit-exact with the scalar rules and
// with the quantizers of quant/quantizer.hpp; ties, tails, zero rows, errors, thread counts.
#include "rotquant/kernels/quantize_activations.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/quant/formats.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "rotquant/transforms/hadamard.hpp"
#include "test_util.hpp"

namespace {

using rotquant::act_format;
using rotquant::index_t;
using rotquant::matrix_f;
using rotquant::packed_activations;

matrix_f random_activations(index_t m, index_t k, std::uint64_t seed) {
  rotquant::rng g(seed);
  matrix_f x(m, k);
  for (index_t r = 0; r < m; ++r)
    for (index_t c = 0; c < k; ++c) {
      x(r, c) = static_cast<float>(g.normal());
      // A few massive-activation channels, as in real LLM activations.
      if (g.uniform() < 0.01) x(r, c) *= 50.0f;
    }
  return x;
}

void expect_same(const packed_activations& a, const packed_activations& b, const char* what) {
  ASSERT_EQ(a.codes.size(), b.codes.size()) << what;
  EXPECT_EQ(0, std::memcmp(a.codes.data(), b.codes.data(), a.codes.size())) << what;
  ASSERT_EQ(a.scales.size(), b.scales.size()) << what;
  EXPECT_EQ(0, std::memcmp(a.scales.data(), b.scales.data(), a.scales.size() * sizeof(float)))
      << what;
  EXPECT_EQ(a.sums, b.sums) << what;
  EXPECT_EQ(a.zero_points, b.zero_points) << what;
  EXPECT_EQ(a.scale_bytes, b.scale_bytes) << what;
  EXPECT_EQ(a.tensor_scale, b.tensor_scale) << what;
}

constexpr act_format all_formats[] = {act_format::qsi4dx, act_format::qai4dx, act_format::qsi4dg,
                                      act_format::qsi8dx, act_format::mxfp4,  act_format::nvfp4};

TEST(QuantizeActivations, EveryPathBitExactWithScalar) {
  std::size_t cases = 0;
  for (index_t k :
       {1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 257, 4096}) {
    const matrix_f x = random_activations(5, k, 100 + static_cast<std::uint64_t>(k));
    for (act_format f : all_formats) {
      packed_activations ref;
      {
        rotquant::scoped_isa force(rotquant::isa::scalar);
        rotquant::quantize_activations(rotquant::view(x), f, ref, 0.9f, 32);
      }
      for (auto path : rotquant_test::isa_paths()) {
        rotquant::scoped_isa force(path);
        packed_activations got;
        rotquant::quantize_activations(rotquant::view(x), f, got, 0.9f, 32);
        expect_same(got, ref, rotquant::to_string(path));
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 100u);
}

// Blocks whose magnitudes span 1e-8 .. 1e4 (tiny NVFP4 block scales reach the UE4M3 subnormal
// range, MXFP4 exponents span many binades), plus all-zero blocks: every path equal to scalar.
TEST(QuantizeActivations, WideBlockMagnitudesEveryPathBitExact) {
  rotquant::rng g(12);
  for (index_t k : {256, 512 + 48 + 5}) {
    matrix_f x = random_activations(4, k, 3);
    for (index_t r = 0; r < x.rows(); ++r)
      for (index_t b = 0; b * 16 < k; ++b) {
        const float mag = static_cast<float>(std::pow(10.0, g.uniform() * 12.0 - 8.0));
        const bool zero = g.uniform() < 0.1;
        for (index_t c = b * 16; c < std::min(k, (b + 1) * 16); ++c)
          x(r, c) = zero ? 0.0f : x(r, c) * mag;
      }
    for (act_format f : all_formats) {
      packed_activations ref;
      {
        rotquant::scoped_isa force(rotquant::isa::scalar);
        rotquant::quantize_activations(rotquant::view(x), f, ref, 1.0f, 16);
      }
      for (auto path : rotquant_test::isa_paths()) {
        rotquant::scoped_isa force(path);
        packed_activations got;
        rotquant::quantize_activations(rotquant::view(x), f, got, 1.0f, 16);
        expect_same(got, ref, rotquant::to_string(path));
      }
    }
  }
}

// The FP4 encoders of the SIMD paths round by magic numbers, not by the contract's comparison
// ladder: sweep float bit patterns over [0, 8) (every binade, subnormals included, every E2M1
// threshold and its neighbours) with both signs. Each MXFP4 block holds a 4.0, so its scale
// exponent is 0 and the codes are e2m1_encode(x) itself; the codes must equal the ladder's
// exactly on every path (and NVFP4, whose x / sb reaches above 6, must equal scalar).
TEST(QuantizeActivations, Fp4EncodersMatchTheLadderOverEveryBinade) {
  std::vector<float> vals;
  const std::uint32_t top = 0x41000000u;  // 8.0f
  for (std::uint32_t b = 0; b < top; b += 40961u) {
    float f;
    std::memcpy(&f, &b, sizeof f);
    vals.push_back(f);
  }
  for (float t :
       {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, 7.0f, 0.5f, 1.0f, 2.0f, 3.0f, 4.0f})
    for (float d : {std::nextafter(t, 0.0f), t, std::nextafter(t, 8.0f)}) vals.push_back(d);
  const index_t per_block = 31, blocks = (static_cast<index_t>(vals.size()) + 30) / 31;
  matrix_f x = matrix_f::Zero(1, blocks * 32);
  for (std::size_t i = 0; i < vals.size(); ++i) {
    const index_t blk = static_cast<index_t>(i) / per_block,
                  off = static_cast<index_t>(i) % per_block;
    x(0, blk * 32 + 1 + off) = (i % 2) ? -vals[i] : vals[i];
  }
  for (index_t blk = 0; blk < blocks; ++blk) x(0, blk * 32) = 4.0f;
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    const auto p = rotquant::quantize_activations(x, act_format::mxfp4);
    for (index_t c = 0; c < x.cols(); ++c) {
      ASSERT_EQ(p.scale_bytes[static_cast<std::size_t>(c / 32)], 127);
      const int want = rotquant::e2m1_to_int_x2(rotquant::e2m1_encode(x(0, c)));
      ASSERT_EQ(p.codes[static_cast<std::size_t>(c)], want)
          << "x=" << x(0, c) << " " << to_string(path);
    }
  }
  packed_activations ref;
  {
    rotquant::scoped_isa force(rotquant::isa::scalar);
    rotquant::quantize_activations(rotquant::view(x), act_format::nvfp4, ref);
  }
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    packed_activations got;
    rotquant::quantize_activations(rotquant::view(x), act_format::nvfp4, got);
    expect_same(got, ref, rotquant::to_string(path));
  }
}

// Round half to even on exact ties, and the clamp at -8: row amax 7 -> s = 1, so x = n + 0.5
// are exact ties.
TEST(QuantizeActivations, TiesRoundHalfToEvenOnEveryPath) {
  matrix_f x(1, 40);
  for (index_t c = 0; c < 40; ++c) x(0, c) = static_cast<float>(c % 14) - 7.0f + 0.5f;
  x(0, 0) = 7.0f;
  x(0, 39) = -7.0f;
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    const auto p = rotquant::quantize_activations(x, act_format::qsi4dx);
    EXPECT_EQ(p.scales[0], 1.0f);
    for (index_t c = 1; c < 39; ++c) {
      const float v = x(0, c);
      const int want = static_cast<int>(std::nearbyint(v));  // half to even
      EXPECT_EQ(p.codes[static_cast<std::size_t>(c)], want) << "x=" << v << " " << to_string(path);
      EXPECT_EQ(want % 2, 0) << "a tie must land on an even code";
    }
  }
}

// Codes are those of the IEEE quotient x / s even where x * (1 / s) rounds the other way. For
// scales without an exact reciprocal, the test searches the floats within 64 ulps of every
// quotient tie s * (n + 1/2) for those whose product rounds to another code than the division
// (and keeps the exact ties), then quantizes rows of them on every path against the scalar
// division. The AVX-512 path multiplies and must recompute exactly these lanes.
TEST(QuantizeActivations, QuotientNearTiesMatchTheDivisionOnEveryPath) {
  std::size_t differing = 0, checked = 0;
  for (act_format f : {act_format::qsi4dx, act_format::qsi8dx})
    for (float amax : {21.0f, 35.0f, 0.7f, 2.2f, 7.7f, 889.0f, 1.3f}) {
      const int qmax = f == act_format::qsi8dx ? 127 : 7;
      const float s = rotquant::detail::qact_sym_scale(amax, 1.0f, qmax);
      const float r = 1.0f / s;
      auto code = [&](float q) {
        return std::nearbyint(
            std::min(std::max(q, static_cast<float>(-qmax - 1)), static_cast<float>(qmax)));
      };
      std::vector<float> row{amax};
      for (int n = -qmax; n < qmax; ++n) {
        float v = s * (static_cast<float>(n) + 0.5f);
        for (int u = 0; u < 64; ++u) v = std::nextafter(v, -1e30f);
        for (int u = 0; u < 128; ++u, v = std::nextafter(v, 1e30f)) {
          const bool tie = v / s == static_cast<float>(n) + 0.5f;
          if (code(v / s) != code(v * r)) {
            ++differing;
            row.push_back(v);
          } else if (tie) {
            row.push_back(v);
          }
        }
      }
      matrix_f x(1, static_cast<index_t>(row.size()));
      for (std::size_t i = 0; i < row.size(); ++i) x(0, static_cast<index_t>(i)) = row[i];
      packed_activations ref;
      {
        rotquant::scoped_isa force(rotquant::isa::scalar);
        rotquant::quantize_activations(rotquant::view(x), f, ref);
      }
      ASSERT_EQ(ref.scales[0], s);
      for (auto path : rotquant_test::isa_paths()) {
        rotquant::scoped_isa force(path);
        packed_activations got;
        rotquant::quantize_activations(rotquant::view(x), f, got);
        expect_same(got, ref, (std::string(to_string(path)) + " " + to_string(f)).c_str());
        ++checked;
      }
    }
  EXPECT_GT(checked, 10u);
  EXPECT_GT(differing, 20u) << "the inputs must include quotients the product rounds otherwise";
}

// The INT and FP4 per-token formats agree with the library's general quantizer (quant/), which
// implements the same contract rules independently.
TEST(QuantizeActivations, MatchesGeneralQuantizer) {
  const index_t m = 6, k = 128;
  const matrix_f x = random_activations(m, k, 9);
  struct pairing {
    act_format f;
    rotquant::quantizer q;
  };
  const pairing pairs[] = {
      {act_format::qsi4dx, rotquant::quantizer::quarot_activation(4, true, 0.9f)},
      {act_format::qai4dx, rotquant::quantizer::quarot_activation(4, false, 0.9f)},
      {act_format::qsi4dg, rotquant::quantizer::quarot_activation(4, true, 0.9f, 32)},
      {act_format::qsi8dx, rotquant::quantizer::quarot_activation(8, true, 0.9f)},
      {act_format::mxfp4, rotquant::quantizer::mxfp4()},
      {act_format::nvfp4, rotquant::quantizer::nvfp4()},
  };
  for (const auto& pr : pairs) {
    const auto p = rotquant::quantize_activations(x, pr.f, 0.9f, 32);
    const auto ref = rotquant::quantize(pr.q, x);
    const bool fp4 = pr.f == act_format::mxfp4 || pr.f == act_format::nvfp4;
    for (index_t r = 0; r < m; ++r)
      for (index_t c = 0; c < k; ++c) {
        int want = ref.code(r, c);
        if (pr.f == act_format::qai4dx) want -= ref.zero_points[static_cast<std::size_t>(r)];
        if (fp4) want = rotquant::e2m1_to_int_x2(static_cast<std::uint8_t>(want));
        ASSERT_EQ(p.codes[static_cast<std::size_t>(r * p.stride + c)], want)
            << rotquant::to_string(pr.f) << " at " << r << "," << c;
      }
    if (fp4) {
      EXPECT_EQ(p.scale_bytes, ref.scale_codes) << rotquant::to_string(pr.f);
      EXPECT_EQ(p.tensor_scale, ref.tensor_scale);
    } else {
      ASSERT_EQ(p.scales.size(), ref.scales.size());
      for (std::size_t i = 0; i < p.scales.size(); ++i)
        EXPECT_EQ(p.scales[i], ref.scales[i]) << rotquant::to_string(pr.f) << " scale " << i;
    }
  }
}

TEST(QuantizeActivations, SumsPaddingAndZeroRows) {
  matrix_f x = random_activations(3, 21, 4);
  x.row(1).setZero();
  for (act_format f : all_formats) {
    const auto p = rotquant::quantize_activations(x, f, 1.0f, 8);
    EXPECT_EQ(p.stride, 24);
    for (index_t r = 0; r < 3; ++r) {
      for (index_t c = 21; c < 24; ++c) EXPECT_EQ(p.codes[static_cast<std::size_t>(r * 24 + c)], 0);
      for (index_t b = 0; b < p.blocks; ++b) {
        std::int32_t s = 0;
        for (index_t c = b * p.block; c < std::min<index_t>(21, (b + 1) * p.block); ++c)
          s += p.codes[static_cast<std::size_t>(r * 24 + c)];
        EXPECT_EQ(p.sums[static_cast<std::size_t>(r * p.blocks + b)], s);
        EXPECT_TRUE(std::isfinite(p.scales[static_cast<std::size_t>(r * p.blocks + b)]));
      }
    }
    for (index_t c = 0; c < 21; ++c) EXPECT_EQ(p.codes[static_cast<std::size_t>(24 + c)], 0);
    // Dequantized values stay close to the input (relative to the row's range).
    const matrix_f d = rotquant::dequantize_activations(p);
    for (index_t r = 0; r < 3; ++r) {
      const float amax = x.row(r).cwiseAbs().maxCoeff();
      const float tol = f == act_format::qsi8dx ? amax / 127.0f : amax * 0.34f + 1e-30f;
      EXPECT_LE((d.row(r) - x.row(r)).cwiseAbs().maxCoeff(), tol) << rotquant::to_string(f);
    }
  }
}

TEST(QuantizeActivations, ThreadCountDoesNotChangeBits) {
  const matrix_f x = random_activations(37, 300, 77);
  for (act_format f : all_formats) {
    packed_activations one;
    rotquant::quantize_activations(rotquant::view(x), f, one, 1.0f, 64);
    for (int t : {2, 3}) {
      rotquant::thread_pool_executor pool(t);
      packed_activations many;
      rotquant::quantize_activations(rotquant::view(x), f, many, 1.0f, 64, &pool);
      expect_same(many, one, "threads");
    }
  }
}

// The fused rotate + quantize equals rotating a copy and quantizing it, bit for bit, for a
// whole-row Hadamard and for 128-blocks, on every path and thread count.
TEST(QuantizeActivations, FusedHadamardEqualsRotateThenQuantize) {
  const index_t k = 512;
  const matrix_f x = random_activations(19, k, 31);
  for (index_t n : {k, index_t{128}}) {
    const rotquant::hadamard_plan plan(n);
    matrix_f xt = x;
    plan.apply_rows(xt.data(), xt.rows() * (k / n), n);
    for (act_format f : all_formats) {
      packed_activations want;
      rotquant::quantize_activations(rotquant::view(static_cast<const matrix_f&>(xt)), f, want,
                                     1.0f, 32);
      for (auto path : rotquant_test::isa_paths()) {
        rotquant::scoped_isa force(path);
        rotquant::thread_pool_executor pool(2);
        packed_activations got;
        rotquant::quantize_activations_rotated(rotquant::view(x), plan, f, got, 1.0f, 32, &pool);
        expect_same(got, want, rotquant::to_string(path));
      }
    }
  }
  packed_activations out;
  EXPECT_ROTQUANT_ERROR(
      rotquant::quantize_activations_rotated(rotquant::view(x), rotquant::hadamard_plan(96),
                                             act_format::qsi4dx, out),
      "must divide");
}

// NVFP4 with a static (calibrated) tensor scale: with the scale the dynamic path would compute,
// the same bits; fused with a rotation, equal to rotate-then-quantize on every path; a scale
// too small for the data saturates (block scale byte 0x7E = 448, codes +-12 = 2 * 6) with no
// NaN; bad scales are rejected.
TEST(QuantizeActivations, Nvfp4StaticTensorScale) {
  const index_t k = 256;
  const matrix_f x = random_activations(9, k, 77);
  packed_activations dyn;
  rotquant::quantize_activations(rotquant::view(x), act_format::nvfp4, dyn);
  const float ts = rotquant::nvfp4_tensor_scale(x);
  EXPECT_EQ(ts, dyn.tensor_scale);
  rotquant::quantize_options opt;
  opt.nvfp4_tensor_scale = ts;
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    packed_activations got;
    rotquant::quantize_activations(rotquant::view(x), act_format::nvfp4, got, opt);
    expect_same(got, dyn, rotquant::to_string(path));
  }

  // Fused with a rotation: a scale calibrated on other data (here half the true range).
  const rotquant::hadamard_plan plan(128);
  matrix_f xt = x;
  plan.apply_rows(xt.data(), xt.rows() * (k / 128), 128);
  opt.nvfp4_tensor_scale = 0.5f * rotquant::nvfp4_tensor_scale(xt);
  packed_activations want;
  rotquant::quantize_activations(rotquant::view(static_cast<const matrix_f&>(xt)),
                                 act_format::nvfp4, want, opt);
  EXPECT_EQ(want.tensor_scale, opt.nvfp4_tensor_scale);
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    rotquant::thread_pool_executor pool(2);
    opt.ex = &pool;
    packed_activations got;
    rotquant::quantize_activations_rotated(rotquant::view(x), plan, act_format::nvfp4, got, opt);
    expect_same(got, want, rotquant::to_string(path));
  }
  opt.ex = nullptr;

  // Saturation: a scale 1000x too small.
  opt.nvfp4_tensor_scale = ts / 1000.0f;
  packed_activations sat;
  rotquant::quantize_activations(rotquant::view(x), act_format::nvfp4, sat, opt);
  int saturated_blocks = 0;
  for (std::size_t b = 0; b < sat.scale_bytes.size(); ++b) {
    ASSERT_LE(sat.scale_bytes[b], 0x7E);
    ASSERT_TRUE(std::isfinite(sat.scales[b]));
    saturated_blocks += sat.scale_bytes[b] == 0x7E;
  }
  EXPECT_GT(saturated_blocks, 0);
  int max_code = 0;
  for (std::int8_t c : sat.codes) max_code = std::max(max_code, std::abs(static_cast<int>(c)));
  EXPECT_EQ(max_code, 12);

  for (float bad : {-1.0f, std::nanf(""), INFINITY}) {
    opt.nvfp4_tensor_scale = bad;
    packed_activations out;
    EXPECT_ROTQUANT_ERROR(
        rotquant::quantize_activations(rotquant::view(x), act_format::nvfp4, out, opt),
        "nvfp4_tensor_scale");
  }
}

// NVFP4's AVX-512 kernel divides by s / 2 with no clamp when every block of 16 has amax <=
// 6.5 s and s >= 2^-125, else by s with a clamp. With a static tensor scale of 1, group A
// (blocks holding 6.0: s = 1, amax = 6 s, the unclamped path) and group B (blocks holding
// 8 * 2^-9: a subnormal block scale s = 2^-9, amax = 8 s, the clamped path) have x / s = v
// exactly for a sweep v over [0, 6] and [0, 8) (every E2M1 threshold, its float neighbours,
// both signs): every path must give the ladder's code of v. Then tensor scales so small that s
// falls below 2^-125 (and tiny data, dynamic scale): every path must equal scalar.
TEST(QuantizeActivations, Nvfp4BothDivisionPathsMatchTheLadder) {
  std::vector<float> sweep;
  for (std::uint32_t b = 0; b < 0x41000000u; b += 409601u) {
    float f;
    std::memcpy(&f, &b, sizeof f);
    sweep.push_back(f);
  }
  for (float t : {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, 7.0f, 0.5f, 1.0f, 1.5f, 2.0f,
                  3.0f, 4.0f})
    for (float d : {std::nextafter(t, 0.0f), t, std::nextafter(t, 8.0f)}) sweep.push_back(d);
  // 15 sweep values per block of 16, 16 blocks per group, as many groups of each kind as needed.
  const index_t groups = 2 * ((static_cast<index_t>(sweep.size()) + 239) / 240);
  const index_t k = groups * 256 + 21;  // whole groups of 16 blocks, a single block, a partial one
  matrix_f x = matrix_f::Zero(1, k);
  std::vector<float> v(static_cast<std::size_t>(k), 0.0f);  // x / s, exact
  std::size_t next_a = 0, next_b = 0;
  for (index_t blk = 0; 16 * blk < k; ++blk) {
    const bool group_b = (blk / 16) % 2 == 1;
    const float s = group_b ? 0x1p-9f : 1.0f;
    v[static_cast<std::size_t>(16 * blk)] = group_b ? 8.0f : 6.0f;
    for (index_t c = 16 * blk + 1; c < std::min(k, 16 * blk + 16); ++c) {
      std::size_t& i = group_b ? next_b : next_a;
      float val = sweep[i++ % sweep.size()];
      if (!group_b) val = std::min(val, 6.0f);
      v[static_cast<std::size_t>(c)] = (c % 2) ? -val : val;
    }
    for (index_t c = 16 * blk; c < std::min(k, 16 * blk + 16); ++c)
      x(0, c) = v[static_cast<std::size_t>(c)] * s;
  }
  ASSERT_GE(next_a, sweep.size());
  ASSERT_GE(next_b, sweep.size());
  rotquant::quantize_options opt;
  opt.nvfp4_tensor_scale = 1.0f;
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    packed_activations p;
    rotquant::quantize_activations(rotquant::view(x), act_format::nvfp4, p, opt);
    for (index_t c = 0; c < k; ++c) {
      const bool group_b = (c / 256) % 2 == 1;
      ASSERT_EQ(p.scales[static_cast<std::size_t>(c / 16)], group_b ? 0x1p-10f : 0.5f);
      const int want =
          rotquant::e2m1_to_int_x2(rotquant::e2m1_encode(v[static_cast<std::size_t>(c)]));
      ASSERT_EQ(p.codes[static_cast<std::size_t>(c)], want)
          << "v=" << v[static_cast<std::size_t>(c)] << " column " << c << " " << to_string(path);
    }
  }
  // Block scales below 2^-125: a subnormal static tensor scale, and tiny data whose dynamic
  // tensor scale is subnormal.
  matrix_f tiny = random_activations(3, 4 * 256 + 16, 5);
  tiny *= 1e-37f;
  // Subnormal inputs n * 2^-149: with a tensor scale of 2^-149 the block scale s is n' * 2^-149,
  // and s / 2 is inexact for odd n' (e.g. amax 18 * 2^-149 gives s = 3 * 2^-149).
  matrix_f sub(2, 512);
  rotquant::rng g(8);
  for (index_t r = 0; r < 2; ++r)
    for (index_t c = 0; c < 512; ++c) {
      // Block maxima: 18 in the first group of 16 blocks (all eligible for the s / 2 path but
      // for the 2^-125 bound), then a spread of maxima.
      const float n = c % 16 != 0 ? std::floor(static_cast<float>(g.uniform() * 37.0) - 18.0f)
                      : c < 256   ? 18.0f
                                  : static_cast<float>(6 + 3 * (c / 16 % 11));
      sub(r, c) = n * 0x1p-149f;
    }
  for (float ts : {0x1p-140f, 0x1p-128f, 0x1p-149f, 0.0f}) {
    opt.nvfp4_tensor_scale = ts;
    for (const matrix_f* in : {&x, &tiny, &sub}) {
      packed_activations ref;
      {
        rotquant::scoped_isa force(rotquant::isa::scalar);
        rotquant::quantize_activations(rotquant::view(*in), act_format::nvfp4, ref, opt);
      }
      for (auto path : rotquant_test::isa_paths()) {
        rotquant::scoped_isa force(path);
        packed_activations got;
        rotquant::quantize_activations(rotquant::view(*in), act_format::nvfp4, got, opt);
        expect_same(got, ref, rotquant::to_string(path));
      }
    }
  }
}

// The fast scale helpers equal the quant/formats.hpp codecs: every float bit pattern in a wide
// range (stepping the low bits) for UE4M3, every exponent for the power-of-two helpers.
TEST(QuantizeActivations, FastScaleHelpersMatchFormats) {
  const std::uint32_t lo = 0x30000000u, hi = 0x44800000u;  // ~4.7e-10 .. 1024
  const std::uint32_t step = rotquant_test::small_scale() ? 4099u : 61u;
  for (std::uint32_t b = lo; b < hi; b += step) {
    float x;
    std::memcpy(&x, &b, sizeof x);
    ASSERT_EQ(rotquant::detail::qact_ue4m3_encode(x), rotquant::ue4m3_encode(x)) << x;
  }
  for (float x : {0.0f, -1.0f, 1e-45f, 0.015625f, 0.0146484375f, 448.0f, 464.0f, 480.0f, 1e30f})
    EXPECT_EQ(rotquant::detail::qact_ue4m3_encode(x), rotquant::ue4m3_encode(x)) << x;
  for (int c = 0; c < 127; ++c)
    EXPECT_EQ(rotquant::detail::qact_ue4m3_decode(static_cast<std::uint8_t>(c)),
              rotquant::ue4m3_decode(static_cast<std::uint8_t>(c)));
  for (int p = -149; p <= 127; ++p) EXPECT_EQ(rotquant::detail::qact_pow2(p), std::ldexp(1.0f, p));
  for (float a : {1e-44f, 1e-39f, 1.17549435e-38f, 0.3f, 1.0f, 3.9f, 4.0f, 3e38f}) {
    int ex = 0;
    (void)std::frexp(a, &ex);
    EXPECT_EQ(rotquant::detail::qact_floor_log2(a), ex - 1) << a;
  }
}

// Guard page (docs/testing.md 3.4): the input ends exactly at a page boundary followed by a
// PROT_NONE page, at every start offset modulo 16 floats, so any over-read of the last row
// faults deterministically on every path and format.
TEST(QuantizeActivations, NoOverReadPastTheInput) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* mem = mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  char* base = static_cast<char*>(mem);
  ASSERT_EQ(mprotect(base + 3 * page, page, PROT_NONE), 0);
  float* end = reinterpret_cast<float*>(base + 3 * page);
  rotquant::rng g(5);
  for (index_t k : {1, 5, 16, 17, 33, 47, 100}) {
    const index_t m = 3;
    float* x = end - m * k;
    for (index_t i = 0; i < m * k; ++i) x[i] = static_cast<float>(g.normal());
    const auto X = rotquant::make_view(static_cast<const float*>(x), m, k, k);
    for (act_format f : all_formats)
      for (auto path : rotquant_test::isa_paths()) {
        rotquant::scoped_isa force(path);
        packed_activations out;
        rotquant::quantize_activations(X, f, out, 1.0f, 8);
        EXPECT_EQ(out.m, m);
      }
  }
  munmap(mem, 4 * page);
}

// NaN / +-Inf anywhere in a row (in the 16-block groups the AVX-512 block kernels check in
// their amax pass, in the single-block remainder, in a partial tail) is rejected on every path,
// for every format, plain and fused with a rotation; -0 and the largest finite float are not.
TEST(QuantizeActivations, NonFiniteRejectedAtEveryPositionOnEveryPath) {
  const index_t k = 16 * 32 + 3 * 32 + 7;  // 16 full MXFP4 blocks, 3 more, a 7-element tail
  const float bad_values[] = {std::nanf(""), INFINITY, -INFINITY};
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    for (act_format f : all_formats)
      for (index_t pos : {index_t{0}, index_t{300}, index_t{511}, index_t{530}, k - 1})
        for (float bad : bad_values) {
          matrix_f x = random_activations(3, k, 5);
          x(2, pos) = bad;
          packed_activations out;
          SCOPED_TRACE(std::string(to_string(path)) + " pos " + std::to_string(pos));
          EXPECT_ROTQUANT_ERROR(rotquant::quantize_activations(rotquant::view(x), f, out, 1.0f, 32),
                                "row 2");
        }
    matrix_f ok = random_activations(2, k, 6);
    ok(0, 3) = -0.0f;
    ok(1, 600) = std::numeric_limits<float>::max();
    for (act_format f : all_formats) {
      packed_activations out;
      EXPECT_NO_THROW(rotquant::quantize_activations(rotquant::view(ok), f, out, 1.0f, 32))
          << to_string(path);
    }
  }
}

// --- Per-token FP4 E2M1 fast path ----------------------------------------------------------

void expect_same_matrix(const rotquant::quantized_matrix& a, const rotquant::quantized_matrix& b,
                        const std::string& what) {
  ASSERT_EQ(a.rows, b.rows) << what;
  ASSERT_EQ(a.cols, b.cols) << what;
  ASSERT_EQ(a.row_bytes, b.row_bytes) << what;
  ASSERT_EQ(a.groups_per_row, b.groups_per_row) << what;
  ASSERT_EQ(a.codes.size(), b.codes.size()) << what;
  EXPECT_EQ(0, std::memcmp(a.codes.data(), b.codes.data(), a.codes.size())) << what;
  ASSERT_EQ(a.scales.size(), b.scales.size()) << what;
  EXPECT_EQ(0, std::memcmp(a.scales.data(), b.scales.data(), a.scales.size() * sizeof(float)))
      << what;
}

// Every path equals the general quantizer (the reference rule) over lengths around each SIMD
// step (16, 32, 64) and their tails, strided rows, clip 1 and 0.9 (saturation).
TEST(QuantizeFp4E2M1Rows, EveryPathEqualsTheGeneralQuantizer) {
  for (index_t k : {1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 66, 127, 129, 200, 1000, 4101})
    for (float clip : {1.0f, 0.9f}) {
      const index_t m = 5, stride = k + 3;
      const matrix_f wide = random_activations(m, stride, static_cast<std::uint64_t>(k));
      const auto xv = rotquant::make_view(wide.data(), m, k, stride);
      const matrix_f x = wide.leftCols(k);
      const auto want =
          rotquant::quantize(rotquant::quantizer::fp4(rotquant::fp4_kind::e2m1,
                                                      rotquant::granularity::per_row, 0, clip),
                             x);
      for (auto path : rotquant_test::isa_paths()) {
        rotquant::scoped_isa force(path);
        const auto got = rotquant::quantize_fp4_e2m1_rows(xv, clip);
        expect_same_matrix(got, want,
                           std::string(rotquant::to_string(path)) + " k=" + std::to_string(k) +
                               " clip=" + std::to_string(clip));
      }
    }
}

// Known codes: with absmax 6 and clip 1 the scale is exactly 1, so the codes are e2m1 of the
// inputs themselves: every tie goes to the even code, a negative value that rounds to zero is
// code 0 (no sign), and the rest of a 67-element row (beyond a 64-element SIMD step) too.
TEST(QuantizeFp4E2M1Rows, KnownCodesAndTiesOnEveryPath) {
  const float in[] = {6.0f,
                      0.25f,
                      0.75f,
                      1.25f,
                      1.75f,
                      2.5f,
                      3.5f,
                      5.0f,
                      -0.75f,
                      -0.1f,
                      0.5f,
                      -6.0f,
                      std::nextafter(0.25f, 1.0f),
                      std::nextafter(5.0f, 0.0f),
                      -0.0f,
                      1e-30f};
  const int code[] = {7, 0, 2, 2, 4, 4, 6, 6, 0xA, 0, 1, 0xF, 1, 6, 0, 0};
  constexpr index_t n = 16;
  matrix_f x(1, 67);
  for (index_t c = 0; c < 67; ++c) x(0, c) = in[c % n];
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    const auto got = rotquant::quantize_fp4_e2m1_rows(x);
    ASSERT_EQ(got.scales[0], 1.0f);
    for (index_t c = 0; c < 67; ++c)
      EXPECT_EQ(got.code(0, c), code[c % n]) << rotquant::to_string(path) << " element " << c;
    EXPECT_EQ(got.codes[33] >> 4, 0) << "the unused high nibble of an odd-length row is 0";
  }
}

TEST(QuantizeFp4E2M1Rows, ThreadCountZeroRowsAndBadInput) {
  matrix_f x = random_activations(37, 300, 5);
  x.row(4).setZero();
  const auto one = rotquant::quantize_fp4_e2m1_rows(x);
  EXPECT_EQ(one.scales[4], 1.0f);
  for (int t : {2, 3}) {
    rotquant::thread_pool_executor pool(t);
    expect_same_matrix(rotquant::quantize_fp4_e2m1_rows(rotquant::view(x), 1.0f, &pool), one,
                       "threads");
  }
  EXPECT_ROTQUANT_ERROR(rotquant::quantize_fp4_e2m1_rows(x, 0.0f), "clip");
  matrix_f big = x;
  big(2, 7) = 3e38f;
  EXPECT_ROTQUANT_ERROR(rotquant::quantize_fp4_e2m1_rows(big, 1.5f), "scale overflow");
  EXPECT_ROTQUANT_ERROR(rotquant::quantize_fp4_e2m1_rows(big, 1.5f),
                        "quantize_fp4_e2m1_rows: row 2");
  x(1, 299) = std::nanf("");
  EXPECT_ROTQUANT_ERROR(rotquant::quantize_fp4_e2m1_rows(x), "row 1");
  x(1, 299) = -INFINITY;
  EXPECT_ROTQUANT_ERROR(rotquant::quantize_fp4_e2m1_rows(x), "NaN or Inf");
}

TEST(QuantizeActivations, RejectsBadInput) {
  matrix_f x = random_activations(2, 16, 1);
  packed_activations out;
  EXPECT_ROTQUANT_ERROR(
      rotquant::quantize_activations(rotquant::view(x), act_format::qsi4dx, out, 0.0f), "clip");
  EXPECT_ROTQUANT_ERROR(
      rotquant::quantize_activations(rotquant::view(x), act_format::qsi4dg, out, 1.0f, 12),
      "multiple of 8");
  matrix_f empty(2, 0);
  EXPECT_ROTQUANT_ERROR(
      rotquant::quantize_activations(rotquant::view(empty), act_format::qsi4dx, out),
      "at least one column");
  x(1, 5) = std::nanf("");
  EXPECT_ROTQUANT_ERROR(rotquant::quantize_activations(rotquant::view(x), act_format::qsi4dx, out),
                        "row 1");
  x(1, 5) = INFINITY;
  EXPECT_ROTQUANT_ERROR(rotquant::quantize_activations(rotquant::view(x), act_format::nvfp4, out),
                        "NaN or Inf");
}

}  // namespace
