# libnode benchmarks: ring, spawn+exit, idle process memory, server call latency, tracing's
# overhead, a queued message's memory (vs Erlang).
foreach(b ring spawn-exit idle-memory call-latency trace-overhead mailbox-memory scale-spawn)
  add_executable(bench-${b} ${CMAKE_CURRENT_LIST_DIR}/bench-${b}.c ${CMAKE_CURRENT_LIST_DIR}/bench_child.c)
  target_link_libraries(bench-${b} PRIVATE girder_node girder_epmd)
  target_compile_definitions(bench-${b} PRIVATE BENCH_ERL_DIR="${CMAKE_CURRENT_LIST_DIR}/erl")
endforeach()
