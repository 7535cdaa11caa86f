// SPDX-License-Identifier: Apache-2.0
// threading.hpp: the parallel_for hook. Engines plug in their own thread pool; rotquant
// provides a serial default, a std::thread pool, and an OpenMP executor when built with it.
//
// Contract. parallel_for(begin, end, grain, body) calls body(lo, hi) on disjoint ranges that
// cover [begin, end) exactly once. Every range boundary is begin + k * grain (or end), so a
// caller that computes each range's output independently gets the same bits for any thread
// count. Kernels themselves never start threads (docs/design.md section 3); the layer above them
// splits work and calls this hook.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace rotquant {

/// A range body: processes [lo, hi).
using range_body = std::function<void(index_t lo, index_t hi)>;

namespace detail {

/// Throws rotquant::error unless grain >= 1 and, for a non-empty range, end - begin is
/// representable (so every chunk bound below is computed without overflow). O(1).
inline void check_range(index_t begin, index_t end, index_t grain) {
  ROTQUANT_CHECK(grain >= 1, "parallel_for: grain must be >= 1, got " << grain);
  ROTQUANT_CHECK(end <= begin || begin >= 0 || end <= std::numeric_limits<index_t>::max() + begin,
                 "parallel_for: the range [" << begin << ", " << end
                                             << ") has more elements than index_t can count");
}

/// Number of chunks of `grain` in [begin, end) (end > begin, checked by check_range).
inline index_t range_chunks(index_t begin, index_t end, index_t grain) {
  const index_t len = end - begin;
  return len / grain + (len % grain != 0 ? 1 : 0);
}

/// End of the chunk starting at lo: min(end, lo + grain) without forming lo + grain past end.
inline index_t chunk_end(index_t lo, index_t end, index_t grain) {
  return end - lo <= grain ? end : lo + grain;
}

}  // namespace detail

/// Interface of an executor. Implementations must satisfy the contract in the file comment.
class executor {
 public:
  virtual ~executor() = default;
  /// Number of ranges that may run at the same time (>= 1).
  virtual int concurrency() const = 0;
  /// Runs body over [begin, end) split at multiples of grain (grain >= 1). Exceptions thrown
  /// by body are rethrown to the caller (the first one, if several).
  virtual void parallel_for(index_t begin, index_t end, index_t grain, const range_body& body) = 0;
};

/// Runs every range on the calling thread, in order.
class serial_executor final : public executor {
 public:
  int concurrency() const override { return 1; }
  void parallel_for(index_t begin, index_t end, index_t grain, const range_body& body) override {
    detail::check_range(begin, end, grain);
    for (index_t lo = begin; lo < end; lo = detail::chunk_end(lo, end, grain))
      body(lo, detail::chunk_end(lo, end, grain));
  }
};

/// A fixed pool of std::threads; the calling thread works too. Ranges are handed out
/// dynamically (an atomic counter), so load balance does not depend on uniform range cost.
class thread_pool_executor final : public executor {
 public:
  /// Largest thread count a pool accepts (far above any machine's core count: a larger value
  /// is a mistake, such as a wrapped negative number).
  static constexpr int max_threads = 4096;

  /// threads in 1..max_threads is the total parallelism including the caller. Throws
  /// rotquant::error for a count outside that range, or if the system cannot start the
  /// threads (the ones already started are stopped first).
  explicit thread_pool_executor(int threads) : threads_(threads) {
    ROTQUANT_CHECK(threads >= 1 && threads <= max_threads,
                   "thread_pool_executor: thread count must be >= 1 and <= "
                       << max_threads << ", got " << threads);
    try {
      workers_.reserve(static_cast<std::size_t>(threads - 1));
      for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
    } catch (const std::exception& e) {  // std::system_error or std::bad_alloc
      stop_workers();
      ROTQUANT_CHECK(false, "thread_pool_executor: cannot start "
                                << threads - 1 << " worker threads (" << e.what() << ")");
    }
  }
  ~thread_pool_executor() override { stop_workers(); }
  thread_pool_executor(const thread_pool_executor&) = delete;
  thread_pool_executor& operator=(const thread_pool_executor&) = delete;

  int concurrency() const override { return threads_; }

  void parallel_for(index_t begin, index_t end, index_t grain, const range_body& body) override {
    detail::check_range(begin, end, grain);
    if (end <= begin) return;
    const index_t chunks = detail::range_chunks(begin, end, grain);
    // Nested use (a range body that calls parallel_for on this pool again, e.g. a kernel inside
    // a parallel loop over sequences) runs inline: the pool is already busy with the outer job.
    if (threads_ == 1 || chunks == 1 || current_pool() == this) {
      serial_executor().parallel_for(begin, end, grain, body);
      return;
    }
    std::lock_guard<std::mutex> one_job_at_a_time(job_mutex_);
    job j;
    j.begin = begin;
    j.end = end;
    j.grain = grain;
    j.chunks = chunks;
    j.body = &body;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &j;
      ++generation_;
    }
    wake_.notify_all();
    run_chunks(j);
    {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [&] { return j.finished_workers == static_cast<int>(workers_.size()); });
      job_ = nullptr;
    }
    if (j.failure) std::rethrow_exception(j.failure);
  }

 private:
  struct job {
    index_t begin = 0, end = 0, grain = 1, chunks = 0;
    const range_body* body = nullptr;
    std::atomic<index_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    int finished_workers = 0;  // guarded by the pool mutex
  };

  // The pool whose job the calling thread is running (nullptr outside any job).
  static const thread_pool_executor*& current_pool() {
    static thread_local const thread_pool_executor* pool = nullptr;
    return pool;
  }

  void run_chunks(job& j) const {
    struct mark {
      const thread_pool_executor* saved;
      explicit mark(const thread_pool_executor* p) : saved(current_pool()) { current_pool() = p; }
      ~mark() { current_pool() = saved; }
    } in_job(this);
    for (;;) {
      const index_t c = j.next.fetch_add(1);
      if (c >= j.chunks) return;
      const index_t lo = j.begin + c * j.grain;
      try {
        (*j.body)(lo, detail::chunk_end(lo, j.end, j.grain));
      } catch (...) {
        std::lock_guard<std::mutex> lock(j.failure_mutex);
        if (!j.failure) j.failure = std::current_exception();
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void worker_loop() {
    unsigned long long seen = 0;
    for (;;) {
      job* j = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        j = job_;
      }
      run_chunks(*j);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++j->finished_workers;
      }
      done_.notify_all();
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::mutex job_mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  job* job_ = nullptr;
  unsigned long long generation_ = 0;
  bool stop_ = false;
};

#if defined(_OPENMP)
/// Uses the OpenMP runtime of the translation unit (compile with -fopenmp).
class openmp_executor final : public executor {
 public:
  explicit openmp_executor(int threads = 0)
      : threads_(threads > 0 ? threads : omp_get_max_threads()) {}
  int concurrency() const override { return threads_; }
  void parallel_for(index_t begin, index_t end, index_t grain, const range_body& body) override {
    detail::check_range(begin, end, grain);
    if (end <= begin) return;
    const index_t chunks = detail::range_chunks(begin, end, grain);
    std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_)
    for (index_t c = 0; c < chunks; ++c) {
      const index_t lo = begin + c * grain;
      try {
        body(lo, detail::chunk_end(lo, end, grain));
      } catch (...) {
#pragma omp critical(rotquant_openmp_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
  }

 private:
  int threads_;
};
#endif

namespace detail {
/// The serial executor a null default stands for (one instance, never destroyed before use).
inline serial_executor& serial_default() {
  static serial_executor serial;
  return serial;
}
/// The default executor's slot: an atomic pointer, so set_default_executor on one thread and
/// parallel_for on others never race (acquire/release: the executor is fully built before any
/// thread that sees the new pointer uses it).
inline std::atomic<executor*>& default_executor_slot() {
  static std::atomic<executor*> current{&serial_default()};
  return current;
}
}  // namespace detail

/// The executor used when a function is given none (initially a serial executor).
inline executor& default_executor() {
  return *detail::default_executor_slot().load(std::memory_order_acquire);
}

/// Installs the engine's executor as the default (nullptr restores the serial one). The
/// executor must outlive its use; rotquant does not take ownership. Safe to call while other
/// threads run parallel_for: each call uses either the old or the new default.
inline void set_default_executor(executor* ex) {
  detail::default_executor_slot().store(ex ? ex : &detail::serial_default(),
                                        std::memory_order_release);
}

/// RAII: installs `ex` as the default executor for a scope (nullptr: the serial one), then
/// restores the one installed before, like scoped_isa for the ISA path. Scopes nest; the
/// executor must outlive the guard.
class scoped_default_executor {
 public:
  explicit scoped_default_executor(executor* ex)
      : previous_(detail::default_executor_slot().load(std::memory_order_acquire)) {
    set_default_executor(ex);
  }
  ~scoped_default_executor() {
    detail::default_executor_slot().store(previous_, std::memory_order_release);
  }
  scoped_default_executor(const scoped_default_executor&) = delete;
  scoped_default_executor& operator=(const scoped_default_executor&) = delete;

 private:
  executor* previous_;
};

/// parallel_for through `ex`, or the default executor when ex is null.
inline void parallel_for(index_t begin, index_t end, index_t grain, const range_body& body,
                         executor* ex = nullptr) {
  detail::check_range(begin, end, grain);
  if (end <= begin) return;
  (ex ? *ex : default_executor()).parallel_for(begin, end, grain, body);
}

}  // namespace rotquant
