// SPDX-License-Identifier: Apache-2.0
#include "rotquant/core/dispatch.hpp"

#include <gtest/gtest.h>

#include <string>
#include <type_traits>

#include "test_util.hpp"

namespace {

namespace arch = rotquant::detail::arch;

// A kernel family with only some overloads: the scheme must fall back by inheritance.
const char* which(arch::scalar) {
  return "scalar";
}
const char* which(arch::avx2) {
  return "avx2";
}

TEST(Dispatch, TagsFallBackToTheWeakerPath) {
  static_assert(std::is_base_of<arch::scalar, arch::avx2>::value, "avx2 : scalar");
  static_assert(std::is_base_of<arch::avx2, arch::avx512>::value, "avx512 : avx2");
  static_assert(std::is_base_of<arch::scalar, arch::neon>::value, "neon : scalar");
  static_assert(std::is_base_of<arch::avx512, arch::amx>::value, "amx : avx512");
  EXPECT_STREQ(which(arch::amx{}), "avx2");
  EXPECT_STREQ(which(arch::avx512{}), "avx2");  // no avx512 overload: uses avx2's
  EXPECT_STREQ(which(arch::neon{}), "scalar");
}

TEST(Dispatch, ScalarIsAlwaysAvailableAndFirst) {
  const auto list = rotquant::available_isas();
  ASSERT_FALSE(list.empty());
  EXPECT_EQ(list.front(), rotquant::isa::scalar);
  EXPECT_TRUE(rotquant::isa_available(rotquant::best_isa()));
}

TEST(Dispatch, ForcedScalarBuildHasOnlyScalar) {
#if defined(ROTQUANT_FORCE_SCALAR)
  EXPECT_EQ(rotquant::available_isas().size(), 1u);
  EXPECT_EQ(rotquant::best_isa(), rotquant::isa::scalar);
#else
#if ROTQUANT_ARCH_X86
  EXPECT_EQ(rotquant::isa_available(rotquant::isa::avx2), rotquant::cpu().avx2);
  // AMX needs the CPU bits, the OS tile state and Linux's per-process permission.
  EXPECT_EQ(rotquant::isa_available(rotquant::isa::amx),
            ROTQUANT_HAS_AMX && rotquant::isa_available(rotquant::isa::avx512) &&
                rotquant::cpu().amx_tile && rotquant::cpu().amx_int8 &&
                rotquant::amx_tile_permitted());
  if (rotquant::isa_available(rotquant::isa::amx)) {
    EXPECT_EQ(rotquant::best_isa(), rotquant::isa::amx);
  }
#elif ROTQUANT_ARCH_ARM64
  EXPECT_TRUE(rotquant::isa_available(rotquant::isa::neon));
#endif
#endif
}

TEST(Dispatch, DispatchCallsTheActiveTag) {
  for (auto i : rotquant::available_isas()) {
    rotquant::scoped_isa force(i);
    EXPECT_EQ(rotquant::active_isa(), i);
    const auto seen = rotquant::dispatch([](auto tag) { return decltype(tag)::id; });
    EXPECT_EQ(seen, i) << rotquant::to_string(i);
  }
}

TEST(Dispatch, ScopedIsaRestores) {
  const auto before = rotquant::active_isa();
  {
    rotquant::scoped_isa force(rotquant::isa::scalar);
    EXPECT_EQ(rotquant::active_isa(), rotquant::isa::scalar);
  }
  EXPECT_EQ(rotquant::active_isa(), before);
}

TEST(Dispatch, UnavailablePathIsAnErrorNotSigill) {
#if ROTQUANT_ARCH_X86
  EXPECT_ROTQUANT_ERROR(rotquant::set_isa(rotquant::isa::neon), "not available");
#else
  EXPECT_ROTQUANT_ERROR(rotquant::set_isa(rotquant::isa::avx2), "not available");
#endif
  if (!rotquant::isa_available(rotquant::isa::amx)) {
    EXPECT_ROTQUANT_ERROR(rotquant::set_isa(rotquant::isa::amx), "'amx' is not available");
  }
  EXPECT_ROTQUANT_ERROR(rotquant::parse_isa("sse9"), "unknown ISA name 'sse9'");
  EXPECT_EQ(rotquant::parse_isa("avx512"), rotquant::isa::avx512);
  EXPECT_EQ(rotquant::parse_isa("amx"), rotquant::isa::amx);
  EXPECT_STREQ(rotquant::to_string(rotquant::isa::amx), "amx");
  EXPECT_ROTQUANT_ERROR(rotquant::parse_isa("AMX"), "scalar, avx2, avx512, amx or neon");
  EXPECT_STREQ(rotquant::to_string(rotquant::isa::neon), "neon");
}

}  // namespace
