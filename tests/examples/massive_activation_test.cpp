// SPDX-License-Identifier: Apache-2.0
// Massive activations at one layer of the real model (issue: end to end). Large LLMs carry a few
// tokens (BOS first) whose residual stream has one channel in the thousands. The shipped model
// has none, so this test plants one: block 2's input on the BOS tokens gets channel 25 set to
// 2000, then the block's RMSNorm runs as in the model and the q/k/v linear is quantized to W4A4
// (INT4 per-channel weights, INT4 per-token activations) behind three rotations. DFRot's
// layer-level finding must hold on the BOS tokens: a randomized Hadamard quantizes them better
// than a random orthogonal rotation (the normalized massive token is nearly one-hot, and a
// Hadamard spreads it flat), and DFRot's refinement of the Hadamard is better than both.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <rotquant/io/npy.hpp>
#include <rotquant/pipeline/presets.hpp>

#include "llama/llama_model.hpp"
#include "test_util.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_f;

struct errors {
  double massive = 0;      // output MSE of the quantized layer over the BOS rows
  double normal = 0;       // over the other rows
  double act_massive = 0;  // activation quantization MSE over the BOS rows (in the rotated frame)
};

errors measure(const rotquant::quantized_linear& q, const matrix_f& x, const matrix_f& w,
               const std::vector<index_t>& bos) {
  const matrix_f y_ref = x * w.transpose();
  const matrix_f y = q.forward(x, rotquant::execution::fake_quant);
  const matrix_f xr = q.online().apply(x);
  const matrix_f xq = rotquant::fake_quantize(q.activation_quantizer(), xr);
  errors e;
  index_t normal_rows = 0;
  for (index_t t = 0; t < x.rows(); ++t) {
    const double err = static_cast<double>((y.row(t) - y_ref.row(t)).squaredNorm());
    if (std::find(bos.begin(), bos.end(), t) != bos.end()) {
      e.massive += err;
      e.act_massive += static_cast<double>((xq.row(t) - xr.row(t)).squaredNorm());
    } else {
      e.normal += err;
      ++normal_rows;
    }
  }
  const double nb = static_cast<double>(bos.size());
  e.massive /= nb * static_cast<double>(w.rows());
  e.act_massive /= nb * static_cast<double>(x.cols());
  e.normal /= static_cast<double>(normal_rows) * static_cast<double>(w.rows());
  return e;
}

TEST(MassiveActivations, HadamardBeatsRandomOrthogonalAndDfrotBeatsBoth) {
  const auto weights = llama::weights::load(rotquant_test::austen_llama_dir());
  const int layer = 2;
  const auto& L = weights.layers[static_cast<std::size_t>(layer)];
  // Block 2's input: block 1's output over the two calibration sequences (BOS at rows 0, 256).
  matrix_f resid =
      rotquant::io::read_npy(rotquant_test::austen_llama_dir() + "/calib/L1_resid_out.npy")
          .to_matrix<float>();
  ASSERT_EQ(resid.rows(), 512);
  const std::vector<index_t> bos = {0, 256};
  const index_t channel = 25;
  for (index_t t : bos) resid(t, channel) = 2000.0f;
  const matrix_f x = llama::rms_norm(resid, L.input_norm, weights.cfg.rms_eps);
  // After the RMSNorm a massive token is nearly one-hot (the norm divides by its huge RMS): the
  // planted channel holds almost all of the BOS rows' energy, against a few percent elsewhere.
  for (index_t t : bos) {
    const float share = x(t, channel) * x(t, channel) / x.row(t).squaredNorm();
    ASSERT_GT(share, 0.99f) << "row " << t;
  }
  ASSERT_LT(x.col(channel).segment(1, 255).squaredNorm() / x.middleRows(1, 255).squaredNorm(),
            0.05f);

  const matrix_f w = llama::model::group_weight(L, llama::qkv);
  namespace st = rotquant::stages;
  const auto w4 = rotquant::presets::w4_per_channel();
  const auto a4 = rotquant::presets::a4_per_token();
  rotquant::dfrot_options refine;  // released defaults: alpha 100, released massive-token rule
  refine.steps = rotquant_test::scaled(100, 25);

  const int seeds = 3;
  errors had{}, orth{}, dfr{};
  for (int s = 0; s < seeds; ++s) {
    const auto seed = static_cast<std::uint64_t>(s);
    const auto h = rotquant::presets::quarot(seed, w4, a4).calibrate(x, w);
    const auto o = rotquant::make_pipeline(st::rotate<st::random_orthogonal_builder>{{seed}},
                                           st::quantize<>{{w4}, {a4}})
                       .calibrate(x, w);
    const auto d = rotquant::make_pipeline(st::rotate<st::hadamard_builder>{{true, seed, 0}},
                                           st::refine{refine}, st::quantize<>{{w4}, {a4}})
                       .calibrate(x, w);
    const errors eh = measure(h, x, w, bos), eo = measure(o, x, w, bos), ed = measure(d, x, w, bos);
    std::printf(
        "seed %d  BOS output MSE: hadamard %.5f  random orthogonal %.5f  dfrot %.5f   "
        "(BOS activation MSE %.2e / %.2e / %.2e; other tokens' output MSE %.5f / %.5f / %.5f)\n",
        s, eh.massive, eo.massive, ed.massive, eh.act_massive, eo.act_massive, ed.act_massive,
        eh.normal, eo.normal, ed.normal);
    for (auto* p : {&had, &orth, &dfr}) {
      const errors& e = p == &had ? eh : p == &orth ? eo : ed;
      p->massive += e.massive / seeds;
      p->normal += e.normal / seeds;
      p->act_massive += e.act_massive / seeds;
    }
  }
  std::printf("mean  BOS output MSE: hadamard %.5f  random orthogonal %.5f  dfrot %.5f\n",
              had.massive, orth.massive, dfr.massive);
  // The ordering on the massive tokens, at the activation quantizer and at the layer output.
  EXPECT_LT(had.act_massive, orth.act_massive);
  EXPECT_LT(dfr.act_massive, had.act_massive);
  EXPECT_LT(had.massive, orth.massive);
  EXPECT_LT(dfr.massive, had.massive);
  // The refinement must not buy that by wrecking the ordinary tokens.
  EXPECT_LT(dfr.normal, 1.1 * had.normal);
}

}  // namespace
