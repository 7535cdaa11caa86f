// SPDX-License-Identifier: Apache-2.0
#include "rotquant/core/error.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace {

int checked_sqrt_floor(int n) {
  ROTQUANT_CHECK(n >= 0, "n must be non-negative, got " << n);
  int r = 0;
  while ((r + 1) * (r + 1) <= n) ++r;
  return r;
}

TEST(Error, CheckPassesThrough) {
  EXPECT_EQ(checked_sqrt_floor(17), 4);
}

TEST(Error, CheckThrowsWithValuesAndCondition) {
  try {
    checked_sqrt_floor(-3);
    FAIL() << "no exception";
  } catch (const rotquant::error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rotquant: n must be non-negative, got -3"), std::string::npos) << what;
    EXPECT_NE(what.find("n >= 0"), std::string::npos) << what;
  }
}

TEST(Error, IsAnInvalidArgument) {
  EXPECT_THROW(checked_sqrt_floor(-1), std::invalid_argument);
}

TEST(Error, DcheckFollowsNdebug) {
#ifndef NDEBUG
  EXPECT_THROW(ROTQUANT_DCHECK(1 == 2, "debug check"), rotquant::error);
#else
  EXPECT_NO_THROW(ROTQUANT_DCHECK(1 == 2, "debug check"));
#endif
}

}  // namespace
