// Fibers: stacks, the context switch, and the sanitizer annotations around it (see fiber.h).
#include "cuda/emu/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#if defined(CUEMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(CUEMU_TSAN)
#include <sanitizer/tsan_interface.h>
// TSan's dynamic annotations (exported by the TSan runtime; no header declares them).
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CUEMU_VALGRIND 1
#endif

#if !defined(CUEMU_UCONTEXT_SWITCH)
#if !defined(__x86_64__)
#error "the emulator's fast context switch is x86-64 assembly; build with -DCUEMU_USE_UCONTEXT on other CPUs"
#endif

// void cuemu_switch_stack(void** save_sp, void* load_sp)
//
// Pushes the callee-saved registers (System V x86-64: rbx, rbp, r12-r15) and the SSE/x87 control words onto the
// current stack, stores the stack pointer in *save_sp, loads load_sp and pops the same things from the other stack.
// The final `ret` returns into the other context: to wherever it called cuemu_switch_stack, or, for a fresh fiber,
// into the entry function that fiber_reset() placed there. Caller-saved registers need no saving: the C++ caller
// already assumes a call clobbers them.
extern "C" void cuemu_switch_stack(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl cuemu_switch_stack
    .type cuemu_switch_stack, @function
    .p2align 4
cuemu_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuemu_switch_stack, .-cuemu_switch_stack
)");
#endif

namespace cuemu::detail {

namespace {

void switch_context(SavedContext& save, SavedContext& load) {
#if defined(CUEMU_UCONTEXT_SWITCH)
    swapcontext(&save.uc, &load.uc);
#else
    cuemu_switch_stack(&save.sp, load.sp);
#endif
}

}  // namespace

void host_prepare(HostContext& host) {
#if defined(CUEMU_TSAN)
    host.tsan_fiber = __tsan_get_current_fiber();
#else
    (void)host;
#endif
}

void fiber_create(Fiber& fiber, size_t stack_bytes) {
    size_t page = size_t(sysconf(_SC_PAGESIZE));
    stack_bytes = (stack_bytes + page - 1) / page * page;
    // One guard page below the stack: an overflowing GPU thread faults instead of corrupting its neighbour.
    void* mem = mmap(nullptr, stack_bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (mem == MAP_FAILED) {
        std::fprintf(stderr, "cuemu: cannot map a fiber stack of %zu bytes\n", stack_bytes);
        std::abort();
    }
    mprotect(mem, page, PROT_NONE);
    fiber.stack = static_cast<char*>(mem) + page;
    fiber.stack_bytes = stack_bytes;
#if defined(CUEMU_VALGRIND)
    fiber.valgrind_id = VALGRIND_STACK_REGISTER(fiber.stack, fiber.stack + stack_bytes);
#endif
#if defined(CUEMU_TSAN)
    fiber.tsan_fiber = __tsan_create_fiber(0);
#endif
}

void fiber_destroy(Fiber& fiber) {
    if (!fiber.stack) return;
#if defined(CUEMU_VALGRIND)
    VALGRIND_STACK_DEREGISTER(fiber.valgrind_id);
#endif
#if defined(CUEMU_TSAN)
    __tsan_destroy_fiber(fiber.tsan_fiber);
#endif
    size_t page = size_t(sysconf(_SC_PAGESIZE));
    munmap(fiber.stack - page, fiber.stack_bytes + page);
    fiber.stack = nullptr;
}

void fiber_reset(Fiber& fiber, void (*entry)()) {
    if (fiber.abandoned) {
        // The previous GPU thread on this stack never returned: forget its frames' shadow state.
#if defined(CUEMU_ASAN)
        __asan_unpoison_memory_region(fiber.stack, fiber.stack_bytes);
#endif
#if defined(CUEMU_TSAN)
        __tsan_destroy_fiber(fiber.tsan_fiber);
        fiber.tsan_fiber = __tsan_create_fiber(0);
#endif
        fiber.abandoned = false;
    }
    fiber.asan_fake_stack = nullptr;
#if defined(CUEMU_UCONTEXT_SWITCH)
    getcontext(&fiber.context.uc);
    fiber.context.uc.uc_stack.ss_sp = fiber.stack;
    fiber.context.uc.uc_stack.ss_size = fiber.stack_bytes;
    fiber.context.uc.uc_link = nullptr;
    makecontext(&fiber.context.uc, entry, 0);
#else
    // The frame cuemu_switch_stack pops, from the 16-byte-aligned top down: a zero return address for entry()
    // (ends stack walks), entry() itself (popped by `ret`, which leaves rsp = 8 mod 16 as after a call), six zero
    // callee-saved registers, and the caller's current SSE/x87 control words (so rounding modes carry over).
    uintptr_t top = (uintptr_t(fiber.stack) + fiber.stack_bytes) & ~uintptr_t(15);
    uint64_t* sp = reinterpret_cast<uint64_t*>(top);
    *--sp = 0;
    *--sp = uint64_t(uintptr_t(entry));
    for (int i = 0; i < 6; ++i) *--sp = 0;
    uint32_t mxcsr = 0;
    uint16_t fpu_control = 0;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpu_control));
    *--sp = (uint64_t(fpu_control) << 32) | mxcsr;
    fiber.context.sp = sp;
#endif
}

void fiber_resume(HostContext& host, Fiber& fiber) {
#if defined(CUEMU_ASAN)
    __sanitizer_start_switch_fiber(&host.asan_fake_stack, fiber.stack, fiber.stack_bytes);
#endif
#if defined(CUEMU_TSAN)
    __tsan_switch_to_fiber(fiber.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
    switch_context(host.context, fiber.context);
#if defined(CUEMU_ASAN)
    __sanitizer_finish_switch_fiber(host.asan_fake_stack, nullptr, nullptr);
#endif
}

void fiber_started(HostContext& host, Fiber& fiber) {
#if defined(CUEMU_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &host.stack_bottom, &host.stack_size);
#endif
    (void)host;
    (void)fiber;
}

void fiber_yield(HostContext& host, Fiber& fiber, bool exiting) {
#if defined(CUEMU_ASAN)
    __sanitizer_start_switch_fiber(exiting ? nullptr : &fiber.asan_fake_stack, host.stack_bottom, host.stack_size);
#endif
#if defined(CUEMU_TSAN)
    __tsan_switch_to_fiber(host.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
    (void)exiting;
    switch_context(fiber.context, host.context);
#if defined(CUEMU_ASAN)
    __sanitizer_finish_switch_fiber(fiber.asan_fake_stack, &host.stack_bottom, &host.stack_size);
#endif
}

void tsan_release(void* token) {
#if defined(CUEMU_TSAN)
    __tsan_release(token);
#else
    (void)token;
#endif
}

void tsan_acquire(void* token) {
#if defined(CUEMU_TSAN)
    __tsan_acquire(token);
#else
    (void)token;
#endif
}

void tsan_release_for(HostContext& host, Fiber& fiber, void* token) {
#if defined(CUEMU_TSAN)
    __tsan_switch_to_fiber(fiber.tsan_fiber, __tsan_switch_to_fiber_no_sync);
    __tsan_release(token);
    __tsan_switch_to_fiber(host.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#else
    (void)host;
    (void)fiber;
    (void)token;
#endif
}

TsanIgnoreScope::TsanIgnoreScope() {
#if defined(CUEMU_TSAN)
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
}

TsanIgnoreScope::~TsanIgnoreScope() {
#if defined(CUEMU_TSAN)
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
#endif
}

}  // namespace cuemu::detail
