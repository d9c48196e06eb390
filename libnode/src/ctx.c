/* Context switching for coroutines: per-arch assembly (x86-64, aarch64) or ucontext, with sanitizer
 * fiber hooks. */
#include "nd_int.h"

#ifdef ND__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef ND__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

#if !defined(ND__UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#error "no assembly context switch for this architecture: build with ND__UCONTEXT"
#endif

#ifndef ND__UCONTEXT
/* nd__ctx_swap(void **save_sp, void *new_sp): saves callee-saved registers on the current
** stack, stores the stack pointer, loads the other one and returns into it. */
void nd__ctx_swap(void **save_sp, void *new_sp);
void nd__ctx_tramp(void);

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl nd__ctx_swap\n"
        ".hidden nd__ctx_swap\n" /* internal: not exported from the shared library */
        ".type nd__ctx_swap,@function\n"
        "nd__ctx_swap:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size nd__ctx_swap,.-nd__ctx_swap\n"
        ".globl nd__ctx_tramp\n"
        ".hidden nd__ctx_tramp\n" /* internal: not exported from the shared library */
        ".type nd__ctx_tramp,@function\n"
        "nd__ctx_tramp:\n"
        "  movq %r12, %rdi\n"
        "  callq *%rbx\n"
        "  ud2\n"
        ".size nd__ctx_tramp,.-nd__ctx_tramp\n");
#define ND__FRAME_WORDS 7
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl nd__ctx_swap\n"
        ".hidden nd__ctx_swap\n" /* internal: not exported from the shared library */
        ".type nd__ctx_swap,%function\n"
        "nd__ctx_swap:\n"
        "  sub sp, sp, #160\n"
        "  stp x19, x20, [sp, #0]\n"
        "  stp x21, x22, [sp, #16]\n"
        "  stp x23, x24, [sp, #32]\n"
        "  stp x25, x26, [sp, #48]\n"
        "  stp x27, x28, [sp, #64]\n"
        "  stp x29, x30, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  mov x2, sp\n"
        "  str x2, [x0]\n"
        "  mov sp, x1\n"
        "  ldp x19, x20, [sp, #0]\n"
        "  ldp x21, x22, [sp, #16]\n"
        "  ldp x23, x24, [sp, #32]\n"
        "  ldp x25, x26, [sp, #48]\n"
        "  ldp x27, x28, [sp, #64]\n"
        "  ldp x29, x30, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  add sp, sp, #160\n"
        "  ret\n"
        ".size nd__ctx_swap,.-nd__ctx_swap\n"
        ".globl nd__ctx_tramp\n"
        ".hidden nd__ctx_tramp\n" /* internal: not exported from the shared library */
        ".type nd__ctx_tramp,%function\n"
        "nd__ctx_tramp:\n"
        "  mov x0, x19\n"
        "  blr x20\n"
        "  brk #0\n"
        ".size nd__ctx_tramp,.-nd__ctx_tramp\n");
#endif

/*
** Lays out an initial frame that nd__ctx_swap "returns" into: the trampoline, with fn and arg
** in callee-saved registers, so the first switch calls fn(arg) with an ABI-aligned stack.
*/
int nd__ctx_make(nd_ctx *ctx, void *lo, size_t size, void (*fn)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* frame: r15 r14 r13 r12=arg rbx=fn rbp ret=tramp; sp = 8 mod 16 so fn is entered
    ** with rsp = 8 mod 16 as the ABI wants after a call. */
    uint64_t *sp = (uint64_t *)(top - 72);
    sp[0] = sp[1] = sp[2] = 0;
    sp[3] = (uint64_t)(uintptr_t)arg;
    sp[4] = (uint64_t)(uintptr_t)fn;
    sp[5] = 0;
    sp[6] = (uint64_t)(uintptr_t)nd__ctx_tramp;
#else
    uint64_t *sp = (uint64_t *)(top - 160);
    memset(sp, 0, 160);
    sp[0] = (uint64_t)(uintptr_t)arg;            /* x19 */
    sp[1] = (uint64_t)(uintptr_t)fn;             /* x20 */
    sp[11] = (uint64_t)(uintptr_t)nd__ctx_tramp; /* x30 */
#endif
    ctx->sp = sp;
#ifdef ND__ASAN
    ctx->stack_lo = lo;
    ctx->stack_size = size;
    ctx->fake_stack = NULL;
#endif
#ifdef ND__TSAN
    ctx->fiber = __tsan_create_fiber(0);
#endif
    return 0;
}

#else /* ND__UCONTEXT */
#include <ucontext.h>

static void uc_entry(unsigned hi, unsigned lo_, unsigned fhi, unsigned flo)
{
    void *arg = (void *)(((uintptr_t)hi << 32) | lo_);
    void (*fn)(void *) = (void (*)(void *))(((uintptr_t)fhi << 32) | flo);
    fn(arg);
    abort();
}

int nd__ctx_make(nd_ctx *ctx, void *lo, size_t size, void (*fn)(void *), void *arg)
{
    ucontext_t *uc = ctx->uc;
    if (!uc && !(uc = ctx->uc = malloc(sizeof *uc))) return ND_ENOMEM;
    getcontext(uc);
    uc->uc_stack.ss_sp = lo;
    uc->uc_stack.ss_size = size;
    uc->uc_link = NULL;
    uintptr_t a = (uintptr_t)arg, f = (uintptr_t)fn;
    makecontext(uc, (void (*)(void))uc_entry, 4, (unsigned)(a >> 32), (unsigned)a,
                (unsigned)(f >> 32), (unsigned)f);
#ifdef ND__ASAN
    ctx->stack_lo = lo;
    ctx->stack_size = size;
    ctx->fake_stack = NULL;
#endif
#ifdef ND__TSAN
    ctx->fiber = __tsan_create_fiber(0);
#endif
    return 0;
}
#endif

void nd__ctx_init_thread(nd_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
#ifdef ND__ASAN
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &ctx->stack_lo, &ctx->stack_size);
        pthread_attr_destroy(&attr);
    }
#endif
#ifdef ND__UCONTEXT
    ctx->uc = calloc(1, sizeof(ucontext_t));
#endif
#ifdef ND__TSAN
    ctx->fiber = __tsan_get_current_fiber();
#endif
}

void nd__ctx_release(nd_ctx *ctx)
{
#ifdef ND__TSAN
    if (ctx->fiber) __tsan_destroy_fiber(ctx->fiber);
    ctx->fiber = NULL;
#endif
#ifdef ND__UCONTEXT
    free(ctx->uc);
    ctx->uc = NULL;
#endif
    (void)ctx;
}

void nd__ctx_landed(nd_ctx *self)
{
#ifdef ND__ASAN
    __sanitizer_finish_switch_fiber(self ? self->fake_stack : NULL, NULL, NULL);
#endif
    (void)self;
}

void nd__ctx_switch(nd_ctx *from, nd_ctx *to, bool from_dying)
{
#ifdef ND__ASAN
    __sanitizer_start_switch_fiber(from_dying ? NULL : &from->fake_stack, to->stack_lo,
                                   to->stack_size);
#endif
#ifdef ND__TSAN
    __tsan_switch_to_fiber(to->fiber, 0);
#endif
    (void)from_dying;
#ifdef ND__UCONTEXT
    swapcontext((ucontext_t *)from->uc, (ucontext_t *)to->uc);
#else
    nd__ctx_swap(&from->sp, to->sp);
#endif
    nd__ctx_landed(from);
}
