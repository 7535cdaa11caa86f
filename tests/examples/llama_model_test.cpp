// SPDX-License-Identifier: Apache-2.0
// The example LLaMA forward pass reproduces the reference logits shipped with the model.
#include "llama/llama_model.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace {

TEST(LlamaModel, ConfigMatchesTheModelCard) {
  const auto c = llama::config::load(rotquant_test::austen_llama_dir() + "/config.json");
  EXPECT_EQ(c.hidden, 256);
  EXPECT_EQ(c.intermediate, 768);
  EXPECT_EQ(c.heads, 4);
  EXPECT_EQ(c.kv_heads, 4);
  EXPECT_EQ(c.layers, 6);
  EXPECT_EQ(c.vocab, 257);
  EXPECT_EQ(c.bos, 256);
}

TEST(LlamaModel, LogitsMatchReference) {
  const auto m =
      llama::model::from_weights(llama::weights::load(rotquant_test::austen_llama_dir()));
  const auto tokens =
      rotquant::io::read_npy(rotquant_test::austen_llama_dir() + "/calib/tokens.npy");
  const auto ref = rotquant::io::read_npy(rotquant_test::austen_llama_dir() + "/calib/logits.npy")
                       .to_matrix<float>();
  ASSERT_EQ(tokens.shape, (std::vector<std::int64_t>{2, 256}));
  const auto ids = tokens.to_vector<int>();
  const int len = rotquant_test::scaled(256, 48);  // causal: a prefix gives the prefix's logits
  for (int s = 0; s < 2; ++s) {
    std::vector<int> seq(ids.begin() + s * 256, ids.begin() + s * 256 + len);
    const auto logits = m.forward(seq);
    const auto want = ref.middleRows(s * 256, len);
    const float max_ref = want.cwiseAbs().maxCoeff();
    // float32 forward vs the reference float32 forward: different summation orders only.
    EXPECT_LE((logits - want).cwiseAbs().maxCoeff(), 1e-5f * max_ref * 10) << "sequence " << s;
  }
}

}  // namespace
