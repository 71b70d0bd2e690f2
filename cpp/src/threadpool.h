// A small persistent thread pool for the kernels: parallel_for hands n tasks to the calling
// thread plus n_threads - 1 workers and returns when all are done.
//
// Between calls the workers spin for a short while (matvecs of one forward pass come
// microseconds apart, and waking a sleeping thread costs tens of microseconds), then sleep
// on a condition variable, so an idle pool uses no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace sqllm {

class ThreadPool {
public:
    // n_threads counts the calling thread; values below 1 mean 1 (everything runs inline).
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return n_threads_; }
    // The number of CPUs this process may use (at least 1).
    static int default_threads();

    // Calls fn(task, thread) for every task in [0, n_tasks), spread over the threads (the
    // caller is thread 0, workers 1 .. size()-1; tasks are claimed one at a time, so uneven
    // tasks balance themselves), and returns when all have finished. If a task throws, the
    // remaining unclaimed tasks are skipped and the first exception is rethrown here.
    // One caller at a time; fn must not call parallel_for on the same pool.
    template <class Fn>
    void parallel_for(int n_tasks, Fn &&fn) {
        using F = std::remove_reference_t<Fn>;
        run(n_tasks, [](void *context, int task, int thread) { (*static_cast<F *>(context))(task, thread); },
            const_cast<void *>(static_cast<const void *>(&fn)));
    }

    using TaskFn = void (*)(void *context, int task, int thread);
    void run(int n_tasks, TaskFn fn, void *context);

private:
    void worker_main(int thread);
    void run_tasks(int thread);
    void record_error();

    const int n_threads_;
    std::vector<std::thread> workers_;

    std::mutex mutex_;
    std::condition_variable wake_;      // workers wait here for a new generation
    std::condition_variable finished_;  // the caller waits here for busy_workers_ == 0
    std::atomic<uint64_t> generation_{0};
    std::atomic<bool> stop_{false};

    // The current job, published by the generation_ increment.
    TaskFn fn_ = nullptr;
    void *context_ = nullptr;
    int n_tasks_ = 0;
    std::atomic<int> next_task_{0};
    std::atomic<int> busy_workers_{0};
    std::exception_ptr error_;  // guarded by mutex_
};

}  // namespace sqllm
