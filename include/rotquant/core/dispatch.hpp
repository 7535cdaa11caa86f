// SPDX-License-Identifier: Apache-2.0
// dispatch.hpp: instruction-set paths (ISA), the arch tag types, and runtime path selection.
//
// Readers' note (the scheme of docs/design.md section 3). Each SIMD path is an empty tag type; a
// stronger tag derives from the weaker one (amx : avx512 : avx2 : scalar, neon : scalar), so a
// kernel that has no avx512 overload resolves to its avx2 overload, and so on down to the
// scalar reference, which is always compiled. `dispatch(f)` calls f with the tag of the
// active path: the best one that is compiled in and supported by this CPU, optionally capped
// by `set_isa()` (tests, benchmarks) or the ROTQUANT_ISA environment variable
// (scalar|avx2|avx512|amx|neon). Only the W4A4 GEMM has an amx overload; every other kernel
// runs its avx512 code under the amx tag. Asking for a path the CPU lacks is an error, never a
// SIGILL.
#pragma once

#include <atomic>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "rotquant/config.hpp"
#include "rotquant/core/cpu.hpp"
#include "rotquant/core/error.hpp"

namespace rotquant {

/// Instruction-set paths, ordered from weakest to strongest within one architecture.
enum class isa : int { scalar = 0, avx2 = 1, avx512 = 2, neon = 3, amx = 4 };

inline const char* to_string(isa i) {
  switch (i) {
    case isa::scalar:
      return "scalar";
    case isa::avx2:
      return "avx2";
    case isa::avx512:
      return "avx512";
    case isa::neon:
      return "neon";
    case isa::amx:
      return "amx";
  }
  return "unknown";
}

/// Parses "scalar", "avx2", "avx512", "amx" or "neon"; throws rotquant::error otherwise.
inline isa parse_isa(const std::string& name) {
  if (name == "scalar") return isa::scalar;
  if (name == "avx2") return isa::avx2;
  if (name == "avx512") return isa::avx512;
  if (name == "neon") return isa::neon;
  if (name == "amx") return isa::amx;
  ROTQUANT_CHECK(false,
                 "unknown ISA name '" << name << "'; expected scalar, avx2, avx512, amx or neon");
  return isa::scalar;
}

namespace detail {
namespace arch {

struct scalar {
  static constexpr rotquant::isa id = rotquant::isa::scalar;
  static constexpr bool compiled = true;
  static bool supported() { return true; }
};
struct avx2 : scalar {
  static constexpr rotquant::isa id = rotquant::isa::avx2;
  static constexpr bool compiled = ROTQUANT_HAS_AVX2;
  static bool supported() { return compiled && cpu().avx2 && cpu().fma && cpu().f16c; }
};
struct avx512 : avx2 {
  static constexpr rotquant::isa id = rotquant::isa::avx512;
  static constexpr bool compiled = ROTQUANT_HAS_AVX512;
  static bool supported() {
    const auto& c = cpu();
    return compiled && avx2::supported() && c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq &&
           c.avx512vnni;
  }
};
/// AVX-512 plus AMX-INT8 tiles (the prefill GEMM); granted by the OS on first use.
struct amx : avx512 {
  static constexpr rotquant::isa id = rotquant::isa::amx;
  static constexpr bool compiled = ROTQUANT_HAS_AMX;
  static bool supported() { return compiled && avx512::supported() && amx_tile_permitted(); }
};
struct neon : scalar {
  static constexpr rotquant::isa id = rotquant::isa::neon;
  static constexpr bool compiled = ROTQUANT_HAS_NEON;
  static bool supported() { return compiled && cpu().neon; }
};

}  // namespace arch

inline bool isa_supported_impl(isa i) {
  switch (i) {
    case isa::scalar:
      return true;
    case isa::avx2:
      return arch::avx2::supported();
    case isa::avx512:
      return arch::avx512::supported();
    case isa::neon:
      return arch::neon::supported();
    case isa::amx:
      return arch::amx::supported();
  }
  return false;
}

inline isa best_isa_impl() {
  if (arch::amx::supported()) return isa::amx;
  if (arch::avx512::supported()) return isa::avx512;
  if (arch::avx2::supported()) return isa::avx2;
  if (arch::neon::supported()) return isa::neon;
  return isa::scalar;
}

// -1: not yet initialised; otherwise the int value of the active isa.
inline std::atomic<int>& isa_state() {
  static std::atomic<int> state{-1};
  return state;
}

}  // namespace detail

/// True if the path is compiled into this build and this CPU can run it.
inline bool isa_available(isa i) {
  return detail::isa_supported_impl(i);
}

/// Every available path, weakest first (always starts with isa::scalar).
inline std::vector<isa> available_isas() {
  std::vector<isa> out;
  for (isa i : {isa::scalar, isa::avx2, isa::avx512, isa::amx, isa::neon})
    if (isa_available(i)) out.push_back(i);
  return out;
}

/// The strongest available path.
inline isa best_isa() {
  return detail::best_isa_impl();
}

/// Forces the path used by dispatch() from now on (process-wide). Throws rotquant::error if
/// the path is not compiled in or this CPU cannot run it.
inline void set_isa(isa i) {
  ROTQUANT_CHECK(
      isa_available(i),
      "ISA '" << to_string(i) << "' is not available on this CPU/build; available: " << [] {
        std::string s;
        for (isa a : available_isas()) s += std::string(s.empty() ? "" : ", ") + to_string(a);
        return s;
      }());
  detail::isa_state().store(static_cast<int>(i));
}

/// The path dispatch() uses: ROTQUANT_ISA from the environment if set (checked like
/// set_isa), else the best available one. Cached after the first call.
inline isa active_isa() {
  int s = detail::isa_state().load();
  if (s >= 0) return static_cast<isa>(s);
  isa chosen = best_isa();
  if (const char* env = std::getenv("ROTQUANT_ISA")) {
    if (env[0] != '\0') {
      chosen = parse_isa(env);
      ROTQUANT_CHECK(isa_available(chosen), "ROTQUANT_ISA=" << env
                                                            << " names a path this CPU or "
                                                               "build cannot run");
    }
  }
  int expected = -1;
  detail::isa_state().compare_exchange_strong(expected, static_cast<int>(chosen));
  return static_cast<isa>(detail::isa_state().load());
}

/// RAII: forces a path for a scope (tests, benchmarks), then restores the previous one.
class scoped_isa {
 public:
  explicit scoped_isa(isa i) : previous_(active_isa()) { set_isa(i); }
  ~scoped_isa() { detail::isa_state().store(static_cast<int>(previous_)); }
  scoped_isa(const scoped_isa&) = delete;
  scoped_isa& operator=(const scoped_isa&) = delete;

 private:
  isa previous_;
};

/// Calls f(tag) with the arch tag of `which` (default: the active path) and returns its result.
/// Paths not compiled into this build are never instantiated.
template <class F>
decltype(auto) dispatch(F&& f, isa which) {
  switch (which) {
#if ROTQUANT_HAS_AMX
    case isa::amx:
      return std::forward<F>(f)(detail::arch::amx{});
#endif
#if ROTQUANT_HAS_AVX512
    case isa::avx512:
      return std::forward<F>(f)(detail::arch::avx512{});
#endif
#if ROTQUANT_HAS_AVX2
    case isa::avx2:
      return std::forward<F>(f)(detail::arch::avx2{});
#endif
#if ROTQUANT_HAS_NEON
    case isa::neon:
      return std::forward<F>(f)(detail::arch::neon{});
#endif
    default:
      return std::forward<F>(f)(detail::arch::scalar{});
  }
}
template <class F>
decltype(auto) dispatch(F&& f) {
  return dispatch(std::forward<F>(f), active_isa());
}

}  // namespace rotquant
