// SPDX-License-Identifier: Apache-2.0
// config.hpp: compile-time configuration: which SIMD paths are compiled in, and how.
//
// Readers' note. Every SIMD path is compiled with GCC/Clang function `target` attributes, so a
// consumer built for baseline x86-64 (no -mavx2) still gets the AVX2 and AVX-512 kernels, chosen
// at run time from a cached CPU probe (core/cpu.hpp). Macros a consumer may define:
//   ROTQUANT_FORCE_SCALAR      compile only the portable reference path (the test oracle).
//   ROTQUANT_NO_RUNTIME_DISPATCH  compile only the paths the compiler flags already enable.
//   ROTQUANT_COMPILED          the heavy calibration instantiations (DFRot's SVD and loop, the
//                              QR builders, GPTQ) come from the rotquant::rotquant_compiled
//                              library (src/); the headers declare them `extern template`. Set
//                              by linking that target; the header-only default is unchanged.
// Resulting feature macros (1 or 0): ROTQUANT_HAS_AVX2, ROTQUANT_HAS_AVX512, ROTQUANT_HAS_AMX,
// ROTQUANT_HAS_NEON.
#pragma once

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define ROTQUANT_ARCH_X86 1
#else
#define ROTQUANT_ARCH_X86 0
#endif

#if defined(__aarch64__) || defined(_M_ARM64)
#define ROTQUANT_ARCH_ARM64 1
#else
#define ROTQUANT_ARCH_ARM64 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ROTQUANT_GNU_LIKE 1
#else
#define ROTQUANT_GNU_LIKE 0
#endif

#if defined(ROTQUANT_FORCE_SCALAR)
#define ROTQUANT_HAS_AVX2 0
#define ROTQUANT_HAS_AVX512 0
#define ROTQUANT_HAS_AMX 0
#define ROTQUANT_HAS_NEON 0
#else
#if ROTQUANT_ARCH_X86 && ROTQUANT_GNU_LIKE && \
    (!defined(ROTQUANT_NO_RUNTIME_DISPATCH) || (defined(__AVX2__) && defined(__FMA__)))
#define ROTQUANT_HAS_AVX2 1
#else
#define ROTQUANT_HAS_AVX2 0
#endif
#if ROTQUANT_ARCH_X86 && ROTQUANT_GNU_LIKE &&                                                    \
    (!defined(ROTQUANT_NO_RUNTIME_DISPATCH) || (defined(__AVX512F__) && defined(__AVX512BW__) && \
                                                defined(__AVX512VL__) && defined(__AVX512VNNI__)))
#define ROTQUANT_HAS_AVX512 1
#else
#define ROTQUANT_HAS_AVX512 0
#endif
// AMX-INT8 (Sapphire Rapids and later): tile instructions through GCC >= 11 / Clang >= 12.
#if ROTQUANT_HAS_AVX512 && defined(__x86_64__) &&                     \
    ((defined(__clang__) && __clang_major__ >= 12) ||                 \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11)) && \
    (!defined(ROTQUANT_NO_RUNTIME_DISPATCH) || (defined(__AMX_TILE__) && defined(__AMX_INT8__)))
#define ROTQUANT_HAS_AMX 1
#else
#define ROTQUANT_HAS_AMX 0
#endif
// NEON (Advanced SIMD) is part of the AArch64 baseline; the dot-product extension is not and
// is selected at run time inside the NEON path.
#if ROTQUANT_ARCH_ARM64 && ROTQUANT_GNU_LIKE
#define ROTQUANT_HAS_NEON 1
#else
#define ROTQUANT_HAS_NEON 0
#endif
#endif

// Function attributes that let a header-only library hold code for a stronger ISA than the
// translation unit's flags. Helpers called from such a function must carry the same attribute
// (or be inlined into it), otherwise GCC refuses to inline across target boundaries.
#if ROTQUANT_HAS_AVX2
#define ROTQUANT_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi2")))
#else
#define ROTQUANT_TARGET_AVX2
#endif
#if ROTQUANT_HAS_AVX512
#define ROTQUANT_TARGET_AVX512 \
  __attribute__((target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#else
#define ROTQUANT_TARGET_AVX512
#endif
#if ROTQUANT_HAS_AMX
#define ROTQUANT_TARGET_AMX \
  __attribute__((target(    \
      "avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")))
#else
#define ROTQUANT_TARGET_AMX
#endif
#if ROTQUANT_HAS_NEON
#define ROTQUANT_TARGET_NEON_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#else
#define ROTQUANT_TARGET_NEON_DOTPROD
#endif

// 1 when the heavy instantiations are declared extern (compiled mode, see above).
#if defined(ROTQUANT_COMPILED)
#define ROTQUANT_EXTERN_TEMPLATES 1
#else
#define ROTQUANT_EXTERN_TEMPLATES 0
#endif

#if ROTQUANT_GNU_LIKE
#define ROTQUANT_ALWAYS_INLINE inline __attribute__((always_inline))
#define ROTQUANT_RESTRICT __restrict__
#else
#define ROTQUANT_ALWAYS_INLINE inline
#define ROTQUANT_RESTRICT
#endif

// Register-blocked micro-kernels: complete unrolling of their fixed-trip loops at any -O level
// (GCC's -O2 keeps the accumulator arrays of a non-unrolled loop in memory: 0.7x the speed), and
// on GCC the register-pressure-aware first scheduling pass, which x86 GCC leaves off (without
// it the 16 accumulators of the AVX-512 GEMM tile are spilled in the k loop: 0.8x).
#define ROTQUANT_UNROLL _Pragma("GCC unroll 16")
#if defined(__GNUC__) && !defined(__clang__)
#define ROTQUANT_SCHED_PRESSURE __attribute__((optimize("-fschedule-insns", "-fsched-pressure")))
#else
#define ROTQUANT_SCHED_PRESSURE
#endif

// GCC 12's AVX-512 intrinsic headers initialise `_mm512_undefined_*` from themselves, which
// -Wuninitialized reports inside every function that inlines them (GCC bug 105593). Wrap
// AVX-512 kernel code in these so consumers' -Werror builds stay clean.
#if defined(__GNUC__) && !defined(__clang__)
#define ROTQUANT_AVX512_BEGIN                                                          \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define ROTQUANT_AVX512_END _Pragma("GCC diagnostic pop")
#else
#define ROTQUANT_AVX512_BEGIN
#define ROTQUANT_AVX512_END
#endif
