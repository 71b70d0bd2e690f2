#include "threadpool.h"

#include <chrono>

#if defined(__linux__)
#include <sched.h>
#endif

namespace sqllm {
namespace {

// How long a worker (or the caller) spins before it sleeps. Long enough to bridge the
// serial work between two matvecs of a forward pass, short enough not to burn a core.
constexpr std::chrono::microseconds kSpinTime(200);

// Spins until done() or kSpinTime has passed; returns done(). After a short burst of pause
// instructions it yields instead, so that with more threads than CPUs the spinners hand
// their CPU to the threads that have work.
template <class Done>
bool spin_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
    for (int i = 0;; i++) {
        if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
        if (i < 256) __builtin_ia32_pause();
        else std::this_thread::yield();
#else
        std::this_thread::yield();
#endif
        if ((i & 15) == 15 && std::chrono::steady_clock::now() > deadline) return done();
    }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
    workers_.reserve(size_t(n_threads_ - 1));
    for (int t = 1; t < n_threads_; t++) workers_.emplace_back([this, t] { worker_main(t); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
    }
    wake_.notify_all();
    for (std::thread &w : workers_) w.join();
}

int ThreadPool::default_threads() {
#if defined(__linux__)
    // Respects taskset / cgroup CPU sets, which hardware_concurrency() does not.
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : int(n);
}

void ThreadPool::record_error() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
    next_task_.store(n_tasks_);  // nobody claims the rest
}

void ThreadPool::run_tasks(int thread) {
    for (;;) {
        const int task = next_task_.fetch_add(1, std::memory_order_relaxed);
        if (task >= n_tasks_) return;
        try {
            fn_(context_, task, thread);
        } catch (...) {
            record_error();
        }
    }
}

void ThreadPool::run(int n_tasks, TaskFn fn, void *context) {
    if (n_tasks <= 0) return;
    if (n_threads_ == 1 || n_tasks == 1) {
        for (int task = 0; task < n_tasks; task++) fn(context, task, 0);
        return;
    }
    fn_ = fn;
    context_ = context;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    busy_workers_.store(n_threads_ - 1, std::memory_order_relaxed);
    {
        // Under the mutex, so that a worker between its last check and its wait cannot miss it.
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();

    run_tasks(0);

    // Every worker takes part in every generation (if only to find no task left), so the
    // job's state is not touched again until all of them have reported back.
    auto all_done = [this] { return busy_workers_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(all_done)) {
        std::unique_lock<std::mutex> lock(mutex_);
        finished_.wait(lock, all_done);
    }
    std::exception_ptr error;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        std::swap(error, error_);
    }
    if (error) std::rethrow_exception(error);
}

void ThreadPool::worker_main(int thread) {
    uint64_t seen = 0;
    for (;;) {
        auto has_news = [&] { return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen; };
        if (!spin_until(has_news)) {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, has_news);
        }
        if (stop_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        run_tasks(thread);
        if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            // Taking the mutex orders this notify after the caller's check in wait().
            std::lock_guard<std::mutex> lock(mutex_);
            finished_.notify_one();
        }
    }
}

}  // namespace sqllm
