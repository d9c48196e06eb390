/* Shared helpers for libnode's cmocka tests: run a body as a process with a fresh runtime. */
#ifndef ND_TEST_H
#define ND_TEST_H
#include <girder/node.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* cmocka reports a failure by longjmp'ing to the test's frame, which is wrong from inside a
** process (another stack, maybe another thread). Checks here print and abort instead: the test
** still fails, loudly, wherever the check runs. */
#define ND_CHECK(cond, text)                                                        \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, text); \
            abort();                                                                \
        }                                                                           \
    } while (0)
#undef assert_true
#define assert_true(c) ND_CHECK((c), #c)
#undef assert_false
#define assert_false(c) ND_CHECK(!(c), "!(" #c ")")
#undef assert_non_null
#define assert_non_null(p) ND_CHECK((p) != NULL, #p " != NULL")
#undef assert_int_equal
#define assert_int_equal(a, b)                                                                     \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s is %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, b_); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline int nd_test_setup(void **state)
{
    nd_config c = {0};
    c.schedulers = 2;
    (void)state;
    return nd_init(&c);
}

static inline int nd_test_teardown(void **state)
{
    (void)state;
    return nd_shutdown(5000);
}

/* Runs fn as a process and asserts it ends with reason `expect` (an atom name). */
static inline void nd_test_run(nd_entry_fn fn, void *arg, const char *expect)
{
    term_t reason = TERM_NONE;
    assert_int_equal(nd_run(fn, arg, 20000, &reason), 0);
    if (expect) {
        if (reason != term_atom(expect))
            fprintf(stderr, "exit reason: %s (type %s)\n",
                    term_is_atom(reason) ? term_atom_name(reason, NULL) : "?",
                    term_type_name(term_typeof(reason)));
        assert_true(reason == term_atom(expect));
    }
    term_free(reason);
}

#define A(s)        term_atom(s)
#define I(v)        term_int(v)
#define T2(a, b)    term_tuplev(2, a, b)
#define T3(a, b, c) term_tuplev(3, a, b, c)

/* Receives with a timeout and fails the test (exits the process) if nothing came. */
static inline term_t nd_test_recv(int64_t ms)
{
    term_t m = TERM_NONE;
    if (nd_receive(ms, &m) < 0) nd_exit(term_atom("test_recv_timeout"));
    return m;
}
#endif
