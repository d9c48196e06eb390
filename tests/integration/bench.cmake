# make bench's summary table (scripts/run-bench.sh), with fake benchmark programs.
add_test(NAME bench-int-run-bench COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/bench/run-bench.sh)
set_tests_properties(bench-int-run-bench PROPERTIES TIMEOUT 60 LABELS integration)
