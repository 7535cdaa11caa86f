// SPDX-License-Identifier: Apache-2.0
#include "rotquant/core/threading.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "test_util.hpp"

namespace {

// Every index covered exactly once, and every range starts at begin + k * grain.
void check_cover(rotquant::executor& ex, rotquant::index_t begin, rotquant::index_t end,
                 rotquant::index_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<std::size_t>(end > begin ? end - begin : 0));
  std::atomic<bool> misaligned{false};
  ex.parallel_for(begin, end, grain, [&](rotquant::index_t lo, rotquant::index_t hi) {
    if ((lo - begin) % grain != 0 || hi > end || hi <= lo) misaligned = true;
    for (auto i = lo; i < hi; ++i) ++hits[static_cast<std::size_t>(i - begin)];
  });
  EXPECT_FALSE(misaligned);
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
}

TEST(Threading, SerialCoversRange) {
  rotquant::serial_executor s;
  check_cover(s, 3, 103, 7);
  check_cover(s, 0, 0, 1);
  EXPECT_EQ(s.concurrency(), 1);
}

TEST(Threading, PoolCoversRangeForManySizes) {
  for (int threads : {1, 2, 3, 7}) {
    rotquant::thread_pool_executor pool(threads);
    EXPECT_EQ(pool.concurrency(), threads);
    for (int rep = 0; rep < 20; ++rep) {
      check_cover(pool, 0, 1000 + rep, 1 + rep % 9);
      check_cover(pool, 5, 6, 4);
    }
  }
}

TEST(Threading, ResultsDoNotDependOnThreadCount) {
  // Per-range partial sums written to fixed slots: identical for any executor.
  auto run = [](rotquant::executor& ex) {
    const rotquant::index_t n = 10000, grain = 64;
    std::vector<double> partial(static_cast<std::size_t>((n + grain - 1) / grain));
    ex.parallel_for(0, n, grain, [&](rotquant::index_t lo, rotquant::index_t hi) {
      double s = 0;
      for (auto i = lo; i < hi; ++i) s += 1.0 / static_cast<double>(i + 1);
      partial[static_cast<std::size_t>(lo / grain)] = s;
    });
    double total = 0;
    for (double p : partial) total += p;
    return total;
  };
  rotquant::serial_executor s;
  const double ref = run(s);
  for (int threads : {2, 3, 7}) {
    rotquant::thread_pool_executor pool(threads);
    EXPECT_EQ(run(pool), ref);
  }
}

TEST(Threading, ExceptionsPropagate) {
  rotquant::thread_pool_executor pool(3);
  EXPECT_THROW(pool.parallel_for(0, 100, 1,
                                 [](rotquant::index_t lo, rotquant::index_t) {
                                   if (lo == 57) throw std::runtime_error("boom");
                                 }),
               std::runtime_error);
  check_cover(pool, 0, 100, 3);  // still usable afterwards
}

TEST(Threading, DefaultExecutorHook) {
  EXPECT_EQ(rotquant::default_executor().concurrency(), 1);
  rotquant::thread_pool_executor pool(2);
  rotquant::set_default_executor(&pool);
  EXPECT_EQ(rotquant::default_executor().concurrency(), 2);
  std::atomic<int> count{0};
  rotquant::parallel_for(0, 50, 5, [&](rotquant::index_t lo, rotquant::index_t hi) {
    count += static_cast<int>(hi - lo);
  });
  EXPECT_EQ(count.load(), 50);
  rotquant::set_default_executor(nullptr);
  EXPECT_EQ(rotquant::default_executor().concurrency(), 1);
}

TEST(Threading, BadArguments) {
  EXPECT_ROTQUANT_ERROR(rotquant::thread_pool_executor(0), "thread count must be >= 1");
  EXPECT_ROTQUANT_ERROR(
      rotquant::parallel_for(0, 10, 0, [](rotquant::index_t, rotquant::index_t) {}),
      "grain must be >= 1");
}

}  // namespace

namespace {

// A range body that itself calls parallel_for on the same pool (a kernel inside a parallel
// loop) must not deadlock: the inner call runs inline.
TEST(Threading, NestedParallelForOnTheSamePoolRunsInline) {
  rotquant::thread_pool_executor pool(2);
  std::vector<std::atomic<int>> hits(400);
  pool.parallel_for(0, 20, 1, [&](rotquant::index_t lo, rotquant::index_t hi) {
    for (auto i = lo; i < hi; ++i)
      pool.parallel_for(0, 20, 3, [&](rotquant::index_t a, rotquant::index_t b) {
        for (auto k = a; k < b; ++k) ++hits[static_cast<std::size_t>(i * 20 + k)];
      });
  });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  rotquant::set_default_executor(&pool);
  std::atomic<int> count{0};
  rotquant::parallel_for(0, 8, 1, [&](rotquant::index_t, rotquant::index_t) {
    rotquant::parallel_for(0, 10, 2, [&](rotquant::index_t a, rotquant::index_t b) {
      count += static_cast<int>(b - a);
    });
  });
  rotquant::set_default_executor(nullptr);
  EXPECT_EQ(count.load(), 80);
}

TEST(Threading, ScopedDefaultExecutorRestoresThePreviousOne) {
  rotquant::thread_pool_executor outer(2), inner(3);
  rotquant::executor* const before = &rotquant::default_executor();
  {
    rotquant::scoped_default_executor a(&outer);
    EXPECT_EQ(&rotquant::default_executor(), &outer);
    {
      rotquant::scoped_default_executor b(&inner);
      EXPECT_EQ(&rotquant::default_executor(), &inner);
      rotquant::scoped_default_executor serial(nullptr);
      EXPECT_EQ(&rotquant::default_executor(), &rotquant::detail::serial_default());
    }
    EXPECT_EQ(&rotquant::default_executor(), &outer);
    std::atomic<int> n{0};
    rotquant::parallel_for(0, 16, 1, [&](rotquant::index_t lo, rotquant::index_t hi) {
      n += static_cast<int>(hi - lo);
    });
    EXPECT_EQ(n.load(), 16);
  }
  EXPECT_EQ(&rotquant::default_executor(), before);
}

}  // namespace
