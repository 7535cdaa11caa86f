// SPDX-License-Identifier: Apache-2.0
// demo.cpp: the README's demo. Shows what this build of rotquant can run on this machine and
// exercises the pieces that exist so far on activation-like data with a massive token.
#include <rotquant/rotquant.hpp>

#include <chrono>
#include <cstdio>

int main() {
  using clock = std::chrono::steady_clock;
  std::printf("rotquant %s\n", rotquant::version.string);
  std::printf("cpu features : %s\n", rotquant::cpu().to_string().c_str());
  std::printf("active path  : %s (available:", rotquant::to_string(rotquant::active_isa()));
  for (auto i : rotquant::available_isas()) std::printf(" %s", rotquant::to_string(i));
  std::printf(")\n\n");

  // Synthetic LLaMA-like activations: 2048 tokens x 4096 channels of N(0, 1), two outlier
  // channels on every token (x20) and a massive first token (value 2000 in one channel).
  const rotquant::index_t tokens = 2048, channels = 4096;
  rotquant::matrix_f x = rotquant::random_normal_matrix<float>(tokens, channels, 42);
  x.col(17) *= 20.0f;
  x.col(2049) *= 20.0f;
  x(0, 1000) = 2000.0f;

  std::printf(
      "per-token absmax of a %lld x %lld activation (massive token 0, outlier channels "
      "17 and 2049):\n",
      static_cast<long long>(tokens), static_cast<long long>(channels));
  rotquant::vector_f reference;
  for (auto path : rotquant::available_isas()) {
    rotquant::scoped_isa force(path);
    rotquant::vector_f m;
    const auto t0 = clock::now();
    const int reps = 20;
    for (int r = 0; r < reps; ++r)
      m = rotquant::row_absmax(rotquant::view(static_cast<const rotquant::matrix_f&>(x)));
    const double sec = std::chrono::duration<double>(clock::now() - t0).count() / reps;
    if (reference.size() == 0) reference = m;
    const double gbs = static_cast<double>(x.size()) * sizeof(float) / sec / 1e9;
    std::printf("  %-7s token0 %.1f  token1 %.2f  median-ish token %.2f  %6.2f GB/s  %s\n",
                rotquant::to_string(path), static_cast<double>(m[0]), static_cast<double>(m[1]),
                static_cast<double>(m[tokens / 2]), gbs,
                m == reference ? "bit-exact with scalar" : "MISMATCH");
  }

  rotquant::rng gen(42);
  std::printf("\nseeded normals (seed 42, identical on every platform):");
  for (int i = 0; i < 4; ++i) std::printf(" %+.6f", gen.normal());
  std::printf("\n");
  return 0;
}
