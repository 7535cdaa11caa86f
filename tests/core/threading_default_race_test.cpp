// SPDX-License-Identifier: Apache-2.0
// The default executor is swapped (set_default_executor) while other threads run parallel_for
// and the kernels through it: no data race (issue 26; the tsan preset runs this test), and
// every call still covers its range exactly once on whichever executor it picked up.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/kernels/gemm.hpp"

namespace {

using rotquant::index_t;

TEST(ThreadingDefaultRace, SetDefaultExecutorWhileOtherThreadsRunParallelFor) {
  rotquant::thread_pool_executor a(2), b(3);
  std::atomic<bool> stop{false};
  std::atomic<long> calls{0}, bad{0};
  std::vector<std::thread> users;
  for (int t = 0; t < 3; ++t)
    users.emplace_back([&] {
      while (!stop.load()) {
        std::atomic<index_t> covered{0};
        rotquant::parallel_for(0, 96, 5, [&](index_t lo, index_t hi) { covered += hi - lo; });
        if (covered.load() != 96) ++bad;
        ++calls;
      }
    });
  rotquant::executor* const choices[] = {&a, &b, nullptr};
  // At least 3000 swaps, and on until the users have made 300 calls (bounded).
  for (int i = 0; i < 3000 || (calls.load() < 300 && i < 1000000); ++i) {
    rotquant::set_default_executor(choices[i % 3]);
    std::this_thread::yield();
  }
  stop = true;
  for (auto& u : users) u.join();
  rotquant::set_default_executor(nullptr);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(rotquant::default_executor().concurrency(), 1);
}

TEST(ThreadingDefaultRace, KernelsOnTheDefaultExecutorWhileItIsSwapped) {
  const rotquant::matrix_f x = rotquant::random_normal_matrix<float>(9, 64, 1);
  const rotquant::matrix_f w = rotquant::random_normal_matrix<float>(40, 64, 2);
  const rotquant::packed_weights pw = rotquant::pack_weights(w, rotquant::weight_format::qsi4cx);
  const rotquant::matrix_f want = rotquant::linear_w4a4(x, pw);  // serial default
  rotquant::thread_pool_executor a(2), b(2);
  std::atomic<bool> stop{false};
  std::atomic<long> calls{0}, bad{0};
  std::vector<std::thread> users;
  for (int t = 0; t < 2; ++t)
    users.emplace_back([&] {
      while (!stop.load()) {
        // Results do not depend on the executor, so every call gives the same bits.
        if (rotquant::linear_w4a4(x, pw) != want) ++bad;
        ++calls;
      }
    });
  rotquant::executor* const choices[] = {&a, nullptr, &b};
  for (int i = 0; i < 3000 || (calls.load() < 60 && i < 1000000); ++i) {
    rotquant::set_default_executor(choices[i % 3]);
    std::this_thread::yield();
  }
  stop = true;
  for (auto& u : users) u.join();
  rotquant::set_default_executor(nullptr);
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
