// SPDX-License-Identifier: Apache-2.0
// cpu.hpp: runtime CPU feature probe (x86 CPUID + XGETBV, AArch64 HWCAP), cached.
//
// The probe reports what both the CPU and the operating system support: AVX and AVX-512 need
// the OS to save their registers (XCR0 bits), so a CPUID bit alone is not enough. AMX also
// needs the Linux kernel to grant this process the tile data state (amx_tile_permitted()).
#pragma once

#include <string>

#include "rotquant/config.hpp"

#if ROTQUANT_ARCH_X86 && ROTQUANT_GNU_LIKE
#include <cpuid.h>
#endif
#if ROTQUANT_ARCH_ARM64 && defined(__linux__)
#include <sys/auxv.h>
#endif
#if ROTQUANT_ARCH_X86 && defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace rotquant {

/// Features relevant to rotquant's kernels. All false on CPUs the probe does not know.
struct cpu_features {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool amx_tile = false;  ///< CPUID AMX-TILE and the OS saves tile state (XCR0 bits 17, 18)
  bool amx_int8 = false;
  bool amx_bf16 = false;
  bool neon = false;
  bool neon_dotprod = false;

  /// Space-separated list of the features present, e.g. "avx2 fma avx512f".
  std::string to_string() const {
    std::string s;
    auto add = [&s](bool on, const char* name) {
      if (!on) return;
      if (!s.empty()) s += ' ';
      s += name;
    };
    add(avx2, "avx2");
    add(fma, "fma");
    add(f16c, "f16c");
    add(avx512f, "avx512f");
    add(avx512bw, "avx512bw");
    add(avx512vl, "avx512vl");
    add(avx512dq, "avx512dq");
    add(avx512vnni, "avx512_vnni");
    add(amx_tile, "amx_tile");
    add(amx_int8, "amx_int8");
    add(amx_bf16, "amx_bf16");
    add(neon, "neon");
    add(neon_dotprod, "neon_dotprod");
    return s.empty() ? std::string("none") : s;
  }
};

namespace detail {

inline cpu_features probe_cpu() {
  cpu_features f;
#if ROTQUANT_ARCH_X86 && ROTQUANT_GNU_LIKE
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return f;
  const unsigned max_leaf = eax;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = (ecx >> 27) & 1u;
  const bool cpu_fma = (ecx >> 12) & 1u;
  const bool cpu_avx = (ecx >> 28) & 1u;
  const bool cpu_f16c = (ecx >> 29) & 1u;
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  const bool os_avx = (xcr0 & 0x6) == 0x6;          // XMM and YMM state
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;     // plus opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG and XTILEDATA
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    f.avx2 = cpu_avx && os_avx && ((ebx >> 5) & 1u);
    f.fma = cpu_fma && os_avx;
    f.f16c = cpu_f16c && os_avx;
    f.avx512f = os_avx512 && ((ebx >> 16) & 1u);
    f.avx512dq = os_avx512 && ((ebx >> 17) & 1u);
    f.avx512bw = os_avx512 && ((ebx >> 30) & 1u);
    f.avx512vl = os_avx512 && ((ebx >> 31) & 1u);
    f.avx512vnni = os_avx512 && ((ecx >> 11) & 1u);
    f.amx_bf16 = os_amx && ((edx >> 22) & 1u);
    f.amx_tile = os_amx && ((edx >> 24) & 1u);
    f.amx_int8 = os_amx && ((edx >> 25) & 1u);
  }
#elif ROTQUANT_ARCH_ARM64
  f.neon = true;  // Advanced SIMD is mandatory on AArch64
#if defined(__linux__)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  f.neon_dotprod = (hwcap & (1ul << 20)) != 0;  // HWCAP_ASIMDDP
#elif defined(__ARM_FEATURE_DOTPROD)
  f.neon_dotprod = true;
#endif
#endif
  return f;
}

/// Asks Linux for permission to use the AMX tile data state in this process
/// (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); without it the first tile instruction
/// faults. True if granted (or already granted).
inline bool request_amx_permission() {
#if ROTQUANT_ARCH_X86 && defined(__linux__) && defined(__x86_64__) && defined(SYS_arch_prctl)
  constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
  return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
  return false;
#endif
}

}  // namespace detail

/// The features of the CPU this process runs on (probed once, then cached; thread-safe).
inline const cpu_features& cpu() {
  static const cpu_features features = detail::probe_cpu();
  return features;
}

/// True if this process may run AMX tile instructions: the CPU has AMX-TILE and AMX-INT8, the
/// OS saves tile state, and Linux granted the tile data permission (requested once, here).
inline bool amx_tile_permitted() {
  static const bool ok = cpu().amx_tile && cpu().amx_int8 && detail::request_amx_permission();
  return ok;
}

}  // namespace rotquant
