# The benchmarks' tests: make bench's summary table (scripts/run-bench.sh), with fake benchmark
# programs; every real benchmark program's --help and usage errors.
add_test(NAME bench-int-run-bench COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/bench/run-bench.sh)
set_tests_properties(bench-int-run-bench PROPERTIES TIMEOUT 60 LABELS integration)

# Every benchmark program answers --help and -h with its usage at once and refuses an unknown
# option, before it starts anything. The programs are the executable targets named bench-* that
# bench/CMakeLists.txt and its bench/<area>.cmake parts define (bench/ is configured before this
# directory), so a new benchmark is checked without being listed here.
get_property(_bench_targets DIRECTORY ${CMAKE_SOURCE_DIR}/bench PROPERTY BUILDSYSTEM_TARGETS)
set(_bench_progs "")
foreach(_t ${_bench_targets})
  get_target_property(_type ${_t} TYPE)
  if(_t MATCHES "^bench-" AND _type STREQUAL "EXECUTABLE")
    list(APPEND _bench_progs $<TARGET_FILE:${_t}>)
  endif()
endforeach()
add_test(NAME bench-int-help COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/bench/help.sh ${_bench_progs})
set_tests_properties(bench-int-help PROPERTIES TIMEOUT 120 LABELS integration)

# Without an Erlang side (ND_BENCH_NO_ERLANG=1) the libnode benchmarks print "failed" and no
# ratio for Erlang (one round each: a few seconds in all). Not in sanitizer builds: a round's
# fixed work takes minutes there (bench-call-latency over 60 s under TSan), and the check is
# of the output, which the plain build makes the same way.
if(NOT (GIRDER_ASAN OR GIRDER_TSAN))
  set(_noerl_progs "")
  foreach(_t bench-call-latency bench-idle-memory bench-mailbox-memory bench-ring bench-spawn-exit
          bench-trace-overhead)
    list(APPEND _noerl_progs $<TARGET_FILE:${_t}>)
  endforeach()
  add_test(NAME bench-int-no-erlang COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/bench/no-erlang.sh ${_noerl_progs})
  set_tests_properties(bench-int-no-erlang PROPERTIES TIMEOUT 120 LABELS integration)
endif()

# The distribution benchmarks remove their /tmp directory on an early exit (a failing erlc).
set(_tmpdir_progs "")
foreach(_t bench-dist-nodedown bench-dist-tcp bench-dist-tls bench-scale-dist bench-scale-monitors)
  list(APPEND _tmpdir_progs $<TARGET_FILE:${_t}>)
endforeach()
add_test(NAME bench-int-tmpdir COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/bench/tmpdir.sh ${_tmpdir_progs})
set_tests_properties(bench-int-tmpdir PROPERTIES TIMEOUT 120 LABELS integration)

# A malformed count in a benchmark's environment is refused before anything starts.
add_test(NAME bench-int-env COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/bench/env.sh
                                       $<TARGET_FILE_DIR:bench-scale-spawn>)
set_tests_properties(bench-int-env PROPERTIES TIMEOUT 120 LABELS integration)

# host-costs, which make bench runs before and after the benchmarks: its usage and one line of
# real figures.
add_test(NAME bench-int-host-costs COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/bench/host-costs.sh
                                              $<TARGET_FILE:host-costs>)
set_tests_properties(bench-int-host-costs PROPERTIES TIMEOUT 60 LABELS integration)
