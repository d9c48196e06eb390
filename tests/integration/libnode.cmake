# libnode: re-run the exit-rule scenarios in real Erlang and check the recorded results still hold.
girder_needs(LIBNODE_INT_ESCRIPT "libnode/exit-rules-erlang" escript)
if(LIBNODE_INT_ESCRIPT)
  add_test(NAME libnode/exit-rules-erlang
    COMMAND sh -c "'${ESCRIPT_EXECUTABLE}' '${CMAKE_CURRENT_SOURCE_DIR}/libnode/exit_rules.escript' | diff -u '${CMAKE_CURRENT_SOURCE_DIR}/libnode/exit_rules.expected' -")
  set_tests_properties(libnode/exit-rules-erlang PROPERTIES TIMEOUT 120 LABELS integration)
endif()

# aarch64: the assembly context switch (and the ucontext fallback) under qemu-user, when the
# cross compiler and qemu are installed (gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user).
find_program(AARCH64_CC aarch64-linux-gnu-gcc)
find_program(QEMU_AARCH64 qemu-aarch64)
if(AARCH64_CC AND QEMU_AARCH64 AND EXISTS /usr/aarch64-linux-gnu/lib)
  add_test(NAME libnode/aarch64-smoke
    COMMAND ${CMAKE_SOURCE_DIR}/libnode/tests/cross/run-aarch64.sh ${CMAKE_BINARY_DIR}/aarch64)
  set_tests_properties(libnode/aarch64-smoke PROPERTIES TIMEOUT 300 LABELS integration)
endif()
