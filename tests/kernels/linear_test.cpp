// SPDX-License-Identifier: Apache-2.0
// Tests for kernels/linear.hpp: the deployable layer gives the bits of "apply the transform,
// quantize, multiply" on every ISA path and format (fused rotation included), checks its
// configuration when built, and validates forward()'s arguments.
#include "rotquant/kernels/linear.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/transforms/randomized_hadamard.hpp"
#include "test_util.hpp"

namespace {

using rotquant::act_format;
using rotquant::index_t;
using rotquant::linear_options;
using rotquant::matrix_f;
using rotquant::transform;
using rotquant::w4a4_linear;
using rotquant::weight_format;
using rotquant_test::gaussian;

/// The layer's definition spelled out: x M materialised, then linear_w4a4's steps.
matrix_f linear_reference(const transform& t, const rotquant::packed_weights& w,
                          const linear_options& o, const matrix_f& x) {
  const matrix_f xt = t.num_stages() ? t.apply(x) : x;
  rotquant::packed_activations a;
  rotquant::quantize_activations(rotquant::view(xt), o.activations, a, o.quantize);
  rotquant::gemm_epilogue ep;
  if (o.bias.size()) ep = rotquant::gemm_epilogue::with_bias(o.bias);
  return rotquant::quantized_matmul(a, w, ep);
}

bool same_bits(const matrix_f& a, const matrix_f& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<std::size_t>(a.size())) == 0;
}

struct layer_case {
  act_format act;
  weight_format wf;
  index_t act_group, weight_group;
};

const layer_case kLayerCases[] = {
    {act_format::qsi4dx, weight_format::qsi4cx, 0, 0},
    {act_format::qai4dx, weight_format::qsi4cx, 0, 0},
    {act_format::qsi4dg, weight_format::qsi4cg, 32, 32},
    {act_format::qsi4dg, weight_format::qsi4cg, 64, 32},
    {act_format::qsi8dx, weight_format::qsi4cx, 0, 0},
    {act_format::mxfp4, weight_format::mxfp4, 0, 0},
    {act_format::nvfp4, weight_format::nvfp4, 0, 0},
};

TEST(W4a4Linear, FusedRotationGivesTheBitsOfRotatingFirst) {
  // Sizes K 2^m (K = 1 and QuaRot's 12), row counts with tails around the quantizer's tiles.
  const index_t ks[] = {64, 192, 256};
  const index_t ms[] = {1, 3, 17, 70};
  for (const auto isa : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(isa);
    for (const auto& c : kLayerCases) {
      for (const index_t k : ks) {
        const index_t n = 24;
        const auto w = rotquant::pack_weights(gaussian(n, k, 7 + static_cast<std::uint64_t>(k)),
                                              c.wf, c.weight_group);
        transform t = rotquant::randomized_hadamard(k, 11);
        std::vector<index_t> perm(static_cast<std::size_t>(k));
        for (index_t i = 0; i < k; ++i) perm[static_cast<std::size_t>(i)] = (i * 5 + 3) % k;
        if (k % 5 != 0) t.append_permutation(perm);  // (i*5+3) mod k is a bijection then
        linear_options o;
        o.activations = c.act;
        o.quantize.group = c.act_group;
        if (c.act == act_format::nvfp4) o.quantize.nvfp4_tensor_scale = 0.004f;
        o.bias = rotquant::vector_f::LinSpaced(n, -1.0f, 2.0f);
        const w4a4_linear layer(t, w, o);
        ASSERT_TRUE(layer.fused_rotation());
        for (const index_t m : ms) {
          SCOPED_TRACE(std::string(rotquant::to_string(isa)) + " " + rotquant::to_string(c.act) +
                       " k=" + std::to_string(k) + " m=" + std::to_string(m));
          const matrix_f x = gaussian(m, k, 100 + static_cast<std::uint64_t>(m * k), 3.0);
          EXPECT_TRUE(same_bits(layer.forward(x), linear_reference(t, w, o, x)));
        }
      }
    }
  }
}

TEST(W4a4Linear, DenseStagesAndIdentityMatchTheReference) {
  const index_t k = 48, n = 16;
  const auto w = rotquant::pack_weights(gaussian(n, k, 3), weight_format::qsi4cx);
  rotquant::matrix_d dense = rotquant::matrix_d::Identity(k, k);
  dense(0, 1) = 0.5;
  dense(7, 3) = -0.25;
  transform t(k);
  t.append_signs(rotquant::vector_d::Constant(k, -1.0)).append_dense(dense);
  const w4a4_linear layer(t, w);
  EXPECT_FALSE(layer.fused_rotation());
  const w4a4_linear identity(transform(k), w);
  EXPECT_FALSE(identity.fused_rotation());
  const matrix_f x = gaussian(9, k, 5);
  EXPECT_TRUE(same_bits(layer.forward(x), linear_reference(t, w, {}, x)));
  EXPECT_TRUE(same_bits(identity.forward(x), rotquant::linear_w4a4(x, w)));
  // A view with a row stride wider than the row, and a scratch reused across calls.
  matrix_f wide = matrix_f::Zero(9, k + 5);
  wide.leftCols(k) = x;
  matrix_f y(9, n);
  rotquant::packed_activations scratch;
  for (int call = 0; call < 2; ++call) {
    layer.forward(rotquant::make_view(static_cast<const float*>(wide.data()), 9, k, k + 5),
                  rotquant::view(y), nullptr, &scratch);
    EXPECT_TRUE(same_bits(y, linear_reference(t, w, {}, x)));
  }
}

TEST(W4a4Linear, ThreadCountDoesNotChangeTheBits) {
  const index_t k = 256, n = 40, m = 37;
  const auto w = rotquant::pack_weights(gaussian(n, k, 21), weight_format::qsi4cx);
  const w4a4_linear layer(rotquant::randomized_hadamard(k, 4), w);
  const matrix_f x = gaussian(m, k, 22);
  const matrix_f serial = layer.forward(x);
  rotquant::thread_pool_executor pool(3);
  EXPECT_TRUE(same_bits(layer.forward(x, &pool), serial));
}

TEST(W4a4Linear, ConfigurationIsCheckedWhenBuilt) {
  const index_t k = 384, n = 8;
  const auto w128 = rotquant::pack_weights(gaussian(n, k, 1), weight_format::qsi4cg, 128);
  const auto wmx = rotquant::pack_weights(gaussian(n, k, 2), weight_format::mxfp4);
  linear_options g96;
  g96.activations = act_format::qsi4dg;
  g96.quantize.group = 96;
  EXPECT_ROTQUANT_ERROR(w4a4_linear(transform(k), w128, g96),
                        "activation block 96 (qsi4dg) and weight block 128 are incompatible");
  EXPECT_ROTQUANT_ERROR(w4a4_linear(transform(k + 1), w128), "the transform has dimension 385");
  linear_options bias;
  bias.bias = rotquant::vector_f::Zero(n + 1);
  EXPECT_ROTQUANT_ERROR(w4a4_linear(transform(k), wmx, bias),
                        "bias has 9 entries, expected 0 or 8");
  linear_options mx_clip;
  mx_clip.activations = act_format::mxfp4;
  mx_clip.quantize.clip = 0.9f;
  EXPECT_ROTQUANT_ERROR(w4a4_linear(transform(k), wmx, mx_clip), "mxfp4 takes no clip ratio");
  linear_options ts;
  ts.quantize.nvfp4_tensor_scale = 0.5f;
  EXPECT_ROTQUANT_ERROR(w4a4_linear(transform(k), w128, ts), "it applies to nvfp4 only");
  linear_options group_dx;
  group_dx.quantize.group = 32;
  EXPECT_ROTQUANT_ERROR(w4a4_linear(transform(k), w128, group_dx),
                        "a group applies to qsi4dg only");
  linear_options bad_group;
  bad_group.activations = act_format::qsi4dg;
  bad_group.quantize.group = 12;
  EXPECT_ROTQUANT_ERROR(w4a4_linear(transform(k), w128, bad_group), "positive multiple of 8");
  linear_options bad_clip;
  bad_clip.quantize.clip = -1.0f;
  EXPECT_ROTQUANT_ERROR(w4a4_linear(transform(k), w128, bad_clip), "clip ratio must be finite");
  auto broken = w128;
  broken.scales.pop_back();
  EXPECT_ROTQUANT_ERROR(w4a4_linear(transform(k), broken), "w4a4_linear");
  // A pair that does fit: activation group 64 against weight group 128.
  linear_options g64;
  g64.activations = act_format::qsi4dg;
  g64.quantize.group = 64;
  EXPECT_NO_THROW(w4a4_linear(transform(k), w128, g64));
}

TEST(W4a4Linear, ForwardValidatesItsArguments) {
  const index_t k = 64, n = 8;
  const auto w = rotquant::pack_weights(gaussian(n, k, 1), weight_format::qsi4cx);
  const w4a4_linear layer(rotquant::randomized_hadamard(k, 9), w);
  EXPECT_ROTQUANT_ERROR(layer.forward(gaussian(2, k + 1, 2)), "x has 65 features, the layer 64");
  matrix_f x = gaussian(4, k, 3);
  matrix_f y(4, n + 1);
  EXPECT_ROTQUANT_ERROR(
      layer.forward(rotquant::view(static_cast<const matrix_f&>(x)), rotquant::view(y)),
      "output is 4 x 9, expected 4 x 8");
  x(2, 5) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(layer.forward(x), "row 2");
  EXPECT_EQ(layer.forward(matrix_f(0, k)).rows(), 0);
}

}  // namespace
