// SPDX-License-Identifier: Apache-2.0
// test_util.hpp: helpers shared by the tests (sizes under emulation, error-message checks).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"

namespace rotquant_test {

/// True when the suite runs under an emulator (ROTQUANT_TEST_SCALE=small): loops shrink.
inline bool small_scale() {
  const char* s = std::getenv("ROTQUANT_TEST_SCALE");
  return s != nullptr && std::strcmp(s, "small") == 0;
}

/// The SIMD paths the "every path" loops run: rotquant::available_isas(). The first call prints
/// the paths of this architecture that the loops do not run (not compiled in, or the CPU lacks
/// them), so a pass on such a machine says what it did not compare.
inline const std::vector<rotquant::isa>& isa_paths() {
  static const std::vector<rotquant::isa> paths = [] {
    using rotquant::isa;
    struct path {
      isa id;
      bool compiled;
    };
#if ROTQUANT_ARCH_X86
    const path arch_paths[] = {{isa::avx2, ROTQUANT_HAS_AVX2 != 0},
                               {isa::avx512, ROTQUANT_HAS_AVX512 != 0},
                               {isa::amx, ROTQUANT_HAS_AMX != 0}};
#elif ROTQUANT_ARCH_ARM64
    const path arch_paths[] = {{isa::neon, ROTQUANT_HAS_NEON != 0}};
#else
    const path arch_paths[] = {{isa::scalar, true}};
#endif
    std::string missing;
    for (const path& p : arch_paths)
      if (!rotquant::isa_available(p.id))
        missing += std::string(missing.empty() ? "" : ", ") + rotquant::to_string(p.id) +
                   (p.compiled ? " (this CPU lacks it)" : " (not compiled in)");
    if (!missing.empty())
      std::printf("[ SKIPPED  ] SIMD paths the every-path tests do not run here: %s\n",
                  missing.c_str());
    return rotquant::available_isas();
  }();
  return paths;
}

/// `full` natively, `small` under emulation.
inline int scaled(int full, int small) {
  return small_scale() ? small : full;
}

/// rows x cols of sigma * N(0, 1) from rotquant::rng(seed), row by row (float32).
inline rotquant::matrix_f gaussian(rotquant::index_t rows, rotquant::index_t cols,
                                   std::uint64_t seed, double sigma = 1.0) {
  rotquant::rng g(seed);
  rotquant::matrix_f m(rows, cols);
  for (rotquant::index_t r = 0; r < rows; ++r) {
    for (rotquant::index_t c = 0; c < cols; ++c) m(r, c) = static_cast<float>(sigma * g.normal());
  }
  return m;
}

#if defined(ROTQUANT_SOURCE_DIR)
/// The small LLaMA-architecture model shipped with the examples.
inline std::string austen_llama_dir() {
  return std::string(ROTQUANT_SOURCE_DIR) + "/examples/data/austen-llama";
}
#endif

}  // namespace rotquant_test

/// Asserts that `statement` throws rotquant::error whose message contains `substring`.
#define EXPECT_ROTQUANT_ERROR(statement, substring)                           \
  do {                                                                        \
    bool rq_thrown_ = false;                                                  \
    try {                                                                     \
      statement;                                                              \
    } catch (const ::rotquant::error& rq_e_) {                                \
      rq_thrown_ = true;                                                      \
      EXPECT_NE(std::string(rq_e_.what()).find(substring), std::string::npos) \
          << "message was: " << rq_e_.what();                                 \
    }                                                                         \
    EXPECT_TRUE(rq_thrown_) << "expected rotquant::error from " #statement;   \
  } while (false)
