# dist benchmarks: node-to-node throughput and round trip over TCP and TLS, Girder<->Girder vs erl<->erl.
# one program, built for TCP and for TLS (mutual TLS, certificates made per run)
add_executable(bench-dist-tcp ${CMAKE_CURRENT_LIST_DIR}/bench-dist.c ${CMAKE_CURRENT_LIST_DIR}/bench_child.c)
target_link_libraries(bench-dist-tcp PRIVATE girder_dist)
target_compile_definitions(bench-dist-tcp PRIVATE BENCH_ERL_DIR="${CMAKE_CURRENT_LIST_DIR}/erl")
add_executable(bench-dist-tls ${CMAKE_CURRENT_LIST_DIR}/bench-dist.c ${CMAKE_CURRENT_LIST_DIR}/bench_child.c)
target_link_libraries(bench-dist-tls PRIVATE girder_dist)
target_compile_definitions(bench-dist-tls PRIVATE BENCH_ERL_DIR="${CMAKE_CURRENT_LIST_DIR}/erl"
  BENCH_TLS=1 BENCH_MAKE_CERTS="${CMAKE_SOURCE_DIR}/tests/integration/tls/make-certs.sh")

add_executable(bench-dist-nodedown ${CMAKE_CURRENT_LIST_DIR}/bench-dist-nodedown.c ${CMAKE_CURRENT_LIST_DIR}/bench_child.c)
target_link_libraries(bench-dist-nodedown PRIVATE girder_dist)
target_compile_definitions(bench-dist-nodedown PRIVATE BENCH_ERL_DIR="${CMAKE_CURRENT_LIST_DIR}/erl")

# the scale matrix (1, 4, 16 senders x 1 KB, 64 KB messages), Girder<->Girder vs erl<->erl
add_executable(bench-scale-dist ${CMAKE_CURRENT_LIST_DIR}/bench-dist.c ${CMAKE_CURRENT_LIST_DIR}/bench_child.c)
target_link_libraries(bench-scale-dist PRIVATE girder_dist)
target_compile_definitions(bench-scale-dist PRIVATE BENCH_ERL_DIR="${CMAKE_CURRENT_LIST_DIR}/erl" BENCH_SCALE_DIST=1)

# 100,000 monitors across one connection, then kill -9 of the monitored node: time to every DOWN
add_executable(bench-scale-monitors ${CMAKE_CURRENT_LIST_DIR}/bench-scale-monitors.c ${CMAKE_CURRENT_LIST_DIR}/bench_child.c)
target_link_libraries(bench-scale-monitors PRIVATE girder_dist)
target_compile_definitions(bench-scale-monitors PRIVATE BENCH_ERL_DIR="${CMAKE_CURRENT_LIST_DIR}/erl")
