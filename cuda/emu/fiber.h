// Fibers: the execution contexts the emulator runs GPU threads in (internal to cuda/emu/).
//
// A fiber is a stack plus a saved stack pointer. Switching between the host (the scheduler) and a fiber saves the
// callee-saved registers on the current stack and loads the other stack: about 0.15 us, against 0.6 us for
// swapcontext, which also makes a signal-mask system call. The sanitizer builds use ucontext instead (or any build
// with -DCUEMU_USE_UCONTEXT), and every switch is announced to the sanitizers:
//   - ASan: __sanitizer_{start,finish}_switch_fiber, so that it knows which stack is current;
//   - TSan: each fiber has its own TSan context (__tsan_create_fiber) and switches use the no_sync flag, so that a
//     switch itself creates no happens-before edge (the scheduler publishes exact edges per barrier instead);
//   - valgrind: fiber stacks are registered with VALGRIND_STACK_REGISTER.
//
// Only the host ever switches to a fiber, and a fiber only ever switches back to the host.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#endif
// The TSan build compiles the emulator core without instrumentation (its bookkeeping is not the kernels' data)
// and defines CUEMU_TSAN so that the core still calls TSan's fiber and sync API.
#if defined(CUEMU_ASAN) || defined(CUEMU_TSAN) || defined(CUEMU_USE_UCONTEXT)
#define CUEMU_UCONTEXT_SWITCH 1
#include <ucontext.h>
#endif

namespace cuemu::detail {

struct SavedContext {
#if defined(CUEMU_UCONTEXT_SWITCH)
    ucontext_t uc;
#else
    void* sp = nullptr;
#endif
};

struct Fiber {
    SavedContext context;
    char* stack = nullptr;     // usable stack [stack, stack + stack_bytes); a guard page lies below it
    size_t stack_bytes = 0;
    void* tsan_fiber = nullptr;
    void* asan_fake_stack = nullptr;
    unsigned valgrind_id = 0;
    bool abandoned = false;    // left mid-kernel after a deadlock: its stack and TSan state need a reset
};

// The host side of the switches: the scheduler's context and stack, as seen from the fibers.
struct HostContext {
    SavedContext context;
    void* tsan_fiber = nullptr;
    void* asan_fake_stack = nullptr;
    const void* stack_bottom = nullptr;
    size_t stack_size = 0;
};

// Host side, at the start of each launch: records the calling host thread's TSan context (a launch may come
// from any host thread).
void host_prepare(HostContext& host);

void fiber_create(Fiber& fiber, size_t stack_bytes);
void fiber_destroy(Fiber& fiber);
// Prepares the fiber to start at entry() on its next resume (entry must never return).
void fiber_reset(Fiber& fiber, void (*entry)());
// Host side: runs the fiber until it switches back.
void fiber_resume(HostContext& host, Fiber& fiber);
// Fiber side: the first call of a new fiber's entry function.
void fiber_started(HostContext& host, Fiber& fiber);
// Fiber side: switches back to the host; returns when the host resumes this fiber again. With exiting = true it
// never returns (the fiber is finished; fiber_reset makes it usable again).
void fiber_yield(HostContext& host, Fiber& fiber, bool exiting);

// TSan happens-before edges (no-ops in other builds).
void tsan_release(void* token);
void tsan_acquire(void* token);
// Host side: releases `token` with the clock of a fiber that will never run again (abandoned after a deadlock),
// as if the fiber had done it. Switching TSan's context without switching stacks is all this takes.
void tsan_release_for(HostContext& host, Fiber& fiber, void* token);

// While one exists, TSan ignores the current thread's or fiber's memory accesses, including those of intercepted
// calls (malloc, memmove, ...) that the uninstrumented scheduler makes on its own data structures. Without it, a
// vector the scheduler grows inside one fiber and sorts on the host would look like a race between them.
struct TsanIgnoreScope {
    TsanIgnoreScope();
    ~TsanIgnoreScope();
    TsanIgnoreScope(const TsanIgnoreScope&) = delete;
    TsanIgnoreScope& operator=(const TsanIgnoreScope&) = delete;
};

}  // namespace cuemu::detail
