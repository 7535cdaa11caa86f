// SPDX-License-Identifier: Apache-2.0
// test_util.hpp: helpers shared by the tests (sizes under emulation, error-message checks).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace rotquant_test {

/// True when the suite runs under an emulator (ROTQUANT_TEST_SCALE=small): loops shrink.
inline bool small_scale() {
  const char* s = std::getenv("ROTQUANT_TEST_SCALE");
  return s != nullptr && std::strcmp(s, "small") == 0;
}

/// `full` natively, `small` under emulation.
inline int scaled(int full, int small) {
  return small_scale() ? small : full;
}

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
