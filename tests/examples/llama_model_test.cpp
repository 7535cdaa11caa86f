// SPDX-License-Identifier: Apache-2.0
// The example LLaMA forward pass reproduces the reference logits shipped with the model.
#include "llama/llama_model.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

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

std::string persuasion(std::size_t bytes) {
  std::ifstream in(rotquant_test::austen_llama_dir() + "/persuasion_first64k.txt",
                   std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  text.resize(std::min(bytes, text.size()));
  return text;
}

// The incremental path (M = 1 steps over the KV cache) scores what the window path scores:
// float32 to 1e-4, and with the INT4 cache (packed vs fake-quantized K and V) to 0.2%.
TEST(LlamaDecode, IncrementalPerplexityEqualsTheWindowPath) {
  auto m = llama::model::from_weights(llama::weights::load(rotquant_test::austen_llama_dir()));
  const std::string text = persuasion(static_cast<std::size_t>(rotquant_test::scaled(510, 200)));
  const double win = llama::perplexity(m, text), inc = llama::perplexity_incremental(m, text);
  EXPECT_NEAR(inc / win, 1.0, 1e-4) << "window " << win << " incremental " << inc;
  m.kv.bits = 4;
  m.kv.k_clip = m.kv.v_clip = 0.95f;
  m.set_k_hadamard(true);
  const double win4 = llama::perplexity(m, text), inc4 = llama::perplexity_incremental(m, text);
  std::printf("float32 ppl: window %.5f incremental %.5f; KV4: window %.5f incremental %.5f\n", win,
              inc, win4, inc4);
  EXPECT_NEAR(inc4 / win4, 1.0, 2e-3);
  EXPECT_NE(win4, win);  // the cache is quantized (on a slice this short it may even score lower)
}

// QuaRot's online Hadamard on Q and K spreads K's outlier channels before the INT4 cache.
TEST(LlamaDecode, KeyHadamardMakesTheInt4CacheBetter) {
  auto m = llama::model::from_weights(llama::weights::load(rotquant_test::austen_llama_dir()));
  const std::string text = persuasion(static_cast<std::size_t>(rotquant_test::scaled(2040, 510)));
  const double f = llama::perplexity(m, text);
  m.kv.bits = 4;
  m.kv.k_clip = m.kv.v_clip = 0.95f;
  const double plain = llama::perplexity(m, text);
  m.set_k_hadamard(true);
  const double had = llama::perplexity(m, text);
  std::printf("ppl float32 %.5f, KV4 %.5f, KV4 with the K Hadamard %.5f\n", f, plain, had);
  // Measured on 2040 bytes: float32 6.3502, KV4 6.3996, KV4 + K Hadamard 6.3905 (this small
  // model's keys have mild outliers; LLaMA-scale keys gain more).
  EXPECT_LT(had, plain - 1e-3);
}

TEST(LlamaDecode, RejectsAPromptLongerThanTheContext) {
  const auto m =
      llama::model::from_weights(llama::weights::load(rotquant_test::austen_llama_dir()));
  auto s = m.start();
  EXPECT_THROW(m.step(std::vector<int>(257, 65), s), std::invalid_argument);
  EXPECT_THROW(m.step({300}, s), std::invalid_argument);
  EXPECT_EQ(s.size(), 0);
}

}  // namespace
