#include "mapguard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace sqllm {
namespace {

// The handler reads this table without locks: a slot is live when start != 0; writers (under
// the mutex) publish end before start and clear start first.
struct Slot {
    std::atomic<uintptr_t> start{0}, end{0};
    std::atomic<int> damaged{0};
};
constexpr int kSlots = 256;
Slot g_slots[kSlots];
std::mutex g_mutex;
struct sigaction g_previous;
uintptr_t g_page_mask = ~uintptr_t(4095);

void on_sigbus(int sig, siginfo_t *info, void *context) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
    for (Slot &s : g_slots) {
        const uintptr_t a = s.start.load(std::memory_order_acquire);
        if (a == 0 || addr < a || addr >= s.end.load(std::memory_order_acquire)) continue;
        void *page = reinterpret_cast<void *>(addr & g_page_mask);
        if (mmap(page, size_t(~g_page_mask + 1), PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
            s.damaged.store(1, std::memory_order_release);
            return;  // the read is retried and finds zeros
        }
        break;
    }
    // Not a guarded mapping: what would have happened without this handler.
    if (g_previous.sa_flags & SA_SIGINFO) {
        if (g_previous.sa_sigaction) return g_previous.sa_sigaction(sig, info, context);
    } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
        return g_previous.sa_handler(sig);
    }
    signal(SIGBUS, SIG_DFL);  // the fault repeats on return and takes the default action
}

void install_handler() {
    static bool installed = false;
    if (installed) return;
    const long page = sysconf(_SC_PAGESIZE);
    if (page > 0) g_page_mask = ~uintptr_t(page - 1);
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    installed = sigaction(SIGBUS, &sa, &g_previous) == 0;
}

}  // namespace

bool guard_mapping(const void *start, size_t length) {
    std::lock_guard<std::mutex> lock(g_mutex);
    install_handler();
    for (Slot &s : g_slots) {
        if (s.start.load(std::memory_order_relaxed) != 0) continue;
        s.damaged.store(0, std::memory_order_relaxed);
        s.end.store(reinterpret_cast<uintptr_t>(start) + length, std::memory_order_release);
        s.start.store(reinterpret_cast<uintptr_t>(start), std::memory_order_release);
        return true;
    }
    return false;
}

void unguard_mapping(const void *start) {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (Slot &s : g_slots)
        if (s.start.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(start)) {
            s.start.store(0, std::memory_order_release);
            s.end.store(0, std::memory_order_release);
        }
}

bool mapping_damaged(const void *start) {
    for (const Slot &s : g_slots)
        if (s.start.load(std::memory_order_acquire) == reinterpret_cast<uintptr_t>(start))
            return s.damaged.load(std::memory_order_acquire) != 0;
    return false;
}

}  // namespace sqllm
