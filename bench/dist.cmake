# dist benchmarks: node-to-node throughput and round trip, Girder<->Girder vs erl<->erl.
add_executable(bench-dist-tcp ${CMAKE_CURRENT_LIST_DIR}/bench-dist-tcp.c ${CMAKE_CURRENT_LIST_DIR}/bench_child.c)
target_link_libraries(bench-dist-tcp PRIVATE girder_dist)
target_compile_definitions(bench-dist-tcp PRIVATE BENCH_ERL_DIR="${CMAKE_CURRENT_LIST_DIR}/erl")

add_executable(bench-dist-nodedown ${CMAKE_CURRENT_LIST_DIR}/bench-dist-nodedown.c ${CMAKE_CURRENT_LIST_DIR}/bench_child.c)
target_link_libraries(bench-dist-nodedown PRIVATE girder_dist)
target_compile_definitions(bench-dist-nodedown PRIVATE BENCH_ERL_DIR="${CMAKE_CURRENT_LIST_DIR}/erl")
