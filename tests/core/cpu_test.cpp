// SPDX-License-Identifier: Apache-2.0
#include "rotquant/core/cpu.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace {

std::set<std::string> proc_cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(in, line)) {
    // x86: "flags : ...", aarch64: "Features : ..."
    if (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::string w;
      while (words >> w) flags.insert(w);
      break;
    }
  }
  return flags;
}

TEST(Cpu, AgreesWithProcCpuinfo) {
  const auto flags = proc_cpuinfo_flags();
  if (flags.empty()) GTEST_SKIP() << "/proc/cpuinfo has no flags line here";
  const auto& f = rotquant::cpu();
#if ROTQUANT_ARCH_X86
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.fma, flags.count("fma") == 1);
  EXPECT_EQ(f.f16c, flags.count("f16c") == 1);
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512bw, flags.count("avx512bw") == 1);
  EXPECT_EQ(f.avx512vl, flags.count("avx512vl") == 1);
  EXPECT_EQ(f.avx512dq, flags.count("avx512dq") == 1);
  EXPECT_EQ(f.avx512vnni, flags.count("avx512_vnni") == 1);
  EXPECT_FALSE(f.neon);
#elif ROTQUANT_ARCH_ARM64
  // Under qemu-user, /proc/cpuinfo is the host's; only check it when it is an ARM one.
  if (flags.count("asimd")) {
    EXPECT_TRUE(f.neon);
    EXPECT_EQ(f.neon_dotprod, flags.count("asimddp") == 1);
  }
#endif
  std::cout << "cpu features: " << f.to_string() << "\n";
}

TEST(Cpu, ProbeIsCachedAndStable) {
  EXPECT_EQ(&rotquant::cpu(), &rotquant::cpu());
  EXPECT_EQ(rotquant::detail::probe_cpu().to_string(), rotquant::cpu().to_string());
}

TEST(Cpu, ImplicationsHold) {
  const auto& f = rotquant::cpu();
  if (f.avx512vnni) {
    EXPECT_TRUE(f.avx512f);
  }
  if (f.neon_dotprod) {
    EXPECT_TRUE(f.neon);
  }
#if ROTQUANT_ARCH_ARM64
  EXPECT_TRUE(f.neon);
#endif
}

}  // namespace
