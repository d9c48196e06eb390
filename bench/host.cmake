# host-costs: what this machine charges for a system call, a page fault and a wake-up across
# processes and threads; make bench (scripts/run-bench.sh) prints it before and after the
# benchmarks. Not a benchmark (no Erlang side), so not named bench-*.
add_executable(host-costs ${CMAKE_CURRENT_LIST_DIR}/host-costs.c)
find_package(Threads REQUIRED)
target_link_libraries(host-costs PRIVATE Threads::Threads)
