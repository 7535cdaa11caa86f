// SPDX-License-Identifier: Apache-2.0
// bm_quantize.cpp: per-token activation quantize + pack (INT4, INT8, MXFP4, NVFP4) on 2048 x 4096
// floats, alone and fused with the online Hadamard, vs a plain copy of the same bytes.
//
// Counter GB/s counts the float input bytes read (m * k * 4) per second, so every row compares
// directly with the copy peer (which reads and writes those bytes once).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/kernels/quantize_activations.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "rotquant/transforms/hadamard.hpp"

namespace {

using rotquant::act_format;
using rotquant::index_t;
using rotquant::matrix_f;

constexpr index_t M = 2048, K = 4096;

const matrix_f& input() {
  static const matrix_f x = rotquant::random_normal_matrix<float>(M, K, 42);
  return x;
}

void set_rate(benchmark::State& st) {
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(M) * K * 4 * 1e-9,
                                           benchmark::Counter::kIsIterationInvariantRate);
}

// Peer: memcpy of the float activations (what any pass over them costs at least).
void BM_copy_f32(benchmark::State& st) {
  const matrix_f& x = input();
  std::vector<float> dst(static_cast<std::size_t>(M * K));
  for (auto _ : st) {
    std::memcpy(dst.data(), x.data(), dst.size() * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_rate(st);
  st.SetLabel("plain copy peer");
}
BENCHMARK(BM_copy_f32)->UseRealTime()->Unit(benchmark::kMillisecond);

// args: activation format, threads
void BM_quantize(benchmark::State& st) {
  const auto f = static_cast<act_format>(st.range(0));
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(1)));
  rotquant::packed_activations out;
  rotquant::quantize_activations(rotquant::view(input()), f, out, 1.0f, 128, &pool);
  for (auto _ : st) {
    rotquant::quantize_activations(rotquant::view(input()), f, out, 1.0f, 128, &pool);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(std::string(rotquant::to_string(f)) + " " +
              rotquant::to_string(rotquant::active_isa()));
}
BENCHMARK(BM_quantize)
    ->ArgsProduct({{static_cast<int>(act_format::qsi4dx), static_cast<int>(act_format::qai4dx),
                    static_cast<int>(act_format::qsi8dx), static_cast<int>(act_format::mxfp4),
                    static_cast<int>(act_format::nvfp4)},
                   {1, 2}})
    ->ArgNames({"fmt", "thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The ratio to the copy peer from one run: every iteration times one copy and then one quantize
// back to back, so the shared machine's slow drift hits both alike. Counter x_copy = total
// quantize time / total copy time (the figure the targets are stated in); the reported time is
// the quantize alone. args: format, NVFP4 tensor scale static (1) or from X (0), threads.
void BM_ratio_to_copy(benchmark::State& st) {
  using clock = std::chrono::steady_clock;
  const auto f = static_cast<act_format>(st.range(0));
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(2)));
  rotquant::quantize_options opt;
  opt.group = 128;
  opt.ex = &pool;
  if (st.range(1) != 0) opt.nvfp4_tensor_scale = rotquant::nvfp4_tensor_scale(input());
  const matrix_f& x = input();
  std::vector<float> dst(static_cast<std::size_t>(M * K));
  rotquant::packed_activations out;
  rotquant::quantize_activations(rotquant::view(x), f, out, opt);
  double copy_s = 0.0, quant_s = 0.0;
  for (auto _ : st) {
    const auto t0 = clock::now();
    std::memcpy(dst.data(), x.data(), dst.size() * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
    const auto t1 = clock::now();
    rotquant::quantize_activations(rotquant::view(x), f, out, opt);
    benchmark::DoNotOptimize(out.codes.data());
    benchmark::ClobberMemory();
    const auto t2 = clock::now();
    copy_s += std::chrono::duration<double>(t1 - t0).count();
    quant_s += std::chrono::duration<double>(t2 - t1).count();
    st.SetIterationTime(std::chrono::duration<double>(t2 - t1).count());
  }
  st.counters["x_copy"] = copy_s > 0.0 ? quant_s / copy_s : 0.0;
  set_rate(st);
  st.SetLabel(
      std::string(rotquant::to_string(f)) +
      (f == act_format::nvfp4 ? (st.range(1) != 0 ? " static scale" : " dynamic scale") : "") +
      " vs copy, same iterations");
}
BENCHMARK(BM_ratio_to_copy)
    ->Args({static_cast<int>(act_format::qsi4dx), 0, 1})
    ->Args({static_cast<int>(act_format::mxfp4), 0, 1})
    ->Args({static_cast<int>(act_format::nvfp4), 0, 1})
    ->Args({static_cast<int>(act_format::nvfp4), 1, 1})
    ->ArgNames({"fmt", "static", "thr"})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Per-token FP4 E2M1 (s = absmax / 6 per row, nibble codes): the fast path of
// quantize_fp4_e2m1_rows; args: threads.
void BM_quantize_fp4_e2m1(benchmark::State& st) {
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(0)));
  rotquant::quantized_matrix out;
  rotquant::quantize_fp4_e2m1_rows(rotquant::view(input()), out, 1.0f, &pool);
  for (auto _ : st) {
    rotquant::quantize_fp4_e2m1_rows(rotquant::view(input()), out, 1.0f, &pool);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(std::string("fp4 e2m1 per token ") + rotquant::to_string(rotquant::active_isa()));
}
BENCHMARK(BM_quantize_fp4_e2m1)
    ->Arg(1)
    ->Arg(2)
    ->ArgNames({"thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// NVFP4 with a static (calibrated) tensor scale: one pass, as an engine that calibrated the
// activations' global scale offline runs it; args: threads.
void BM_quantize_nvfp4_static(benchmark::State& st) {
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(0)));
  rotquant::quantize_options opt;
  opt.nvfp4_tensor_scale = rotquant::nvfp4_tensor_scale(input());
  opt.ex = &pool;
  rotquant::packed_activations out;
  for (auto _ : st) {
    rotquant::quantize_activations(rotquant::view(input()), act_format::nvfp4, out, opt);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(std::string("nvfp4 static scale ") + rotquant::to_string(rotquant::active_isa()));
}
BENCHMARK(BM_quantize_nvfp4_static)
    ->Arg(1)
    ->Arg(2)
    ->ArgNames({"thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Each SIMD path of the same kernel on one thread; args: format, path (rotquant::isa).
void BM_quantize_path(benchmark::State& st) {
  const auto f = static_cast<act_format>(st.range(0));
  const auto path = static_cast<rotquant::isa>(st.range(1));
  if (!rotquant::isa_available(path)) {
    st.SkipWithError("path not available on this CPU");
    return;
  }
  rotquant::scoped_isa force(path);
  rotquant::packed_activations out;
  for (auto _ : st) {
    rotquant::quantize_activations(rotquant::view(input()), f, out, 1.0f, 128);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(std::string(rotquant::to_string(f)) + " " + rotquant::to_string(path));
}
BENCHMARK(BM_quantize_path)
    ->ArgsProduct({{static_cast<int>(act_format::qsi4dx), static_cast<int>(act_format::qai4dx),
                    static_cast<int>(act_format::mxfp4), static_cast<int>(act_format::nvfp4)},
                   {static_cast<int>(rotquant::isa::scalar), static_cast<int>(rotquant::isa::avx2),
                    static_cast<int>(rotquant::isa::avx512)}})
    ->ArgNames({"fmt", "isa"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Fused online Hadamard (n = 4096 whole rows, or 128-blocks) + quantize; args: fmt, n, threads.
void BM_hadamard_quantize_fused(benchmark::State& st) {
  const auto f = static_cast<act_format>(st.range(0));
  const rotquant::hadamard_plan plan(st.range(1));
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(2)));
  rotquant::packed_activations out;
  for (auto _ : st) {
    rotquant::quantize_activations_rotated(rotquant::view(input()), plan, f, out, 1.0f, 0, &pool);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(std::string("fused H") + std::to_string(st.range(1)) + " + " +
              rotquant::to_string(f));
}
BENCHMARK(BM_hadamard_quantize_fused)
    ->ArgsProduct({{static_cast<int>(act_format::qsi4dx), static_cast<int>(act_format::mxfp4)},
                   {4096, 128},
                   {1, 2}})
    ->ArgNames({"fmt", "n", "thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Fused Hadamard + NVFP4 with a static tensor scale (one pass); args: n, threads.
void BM_hadamard_quantize_nvfp4_static(benchmark::State& st) {
  const rotquant::hadamard_plan plan(st.range(0));
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(1)));
  matrix_f xt = input();
  plan.apply_rows(xt.data(), M * (K / st.range(0)), st.range(0));
  rotquant::quantize_options opt;
  opt.nvfp4_tensor_scale = rotquant::nvfp4_tensor_scale(xt);
  opt.ex = &pool;
  rotquant::packed_activations out;
  for (auto _ : st) {
    rotquant::quantize_activations_rotated(rotquant::view(input()), plan, act_format::nvfp4, out,
                                           opt);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(std::string("fused H") + std::to_string(st.range(0)) + " + nvfp4 static scale");
}
BENCHMARK(BM_hadamard_quantize_nvfp4_static)
    ->ArgsProduct({{4096, 128}, {1, 2}})
    ->ArgNames({"n", "thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Unfused reference point: Hadamard over the whole matrix, then quantize (two passes).
void BM_hadamard_then_quantize(benchmark::State& st) {
  const rotquant::hadamard_plan plan(st.range(0));
  matrix_f x = input();
  rotquant::packed_activations out;
  for (auto _ : st) {
    st.PauseTiming();
    x = input();
    st.ResumeTiming();
    plan.apply_rows(x.data(), M * (K / st.range(0)), st.range(0));
    rotquant::quantize_activations(rotquant::view(static_cast<const matrix_f&>(x)),
                                   act_format::qsi4dx, out);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel("unfused H + qsi4dx");
}
BENCHMARK(BM_hadamard_then_quantize)
    ->Arg(4096)
    ->Arg(128)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
