# epmd integration tests: girder-epmd with real Erlang/OTP nodes and tools, and robustness under abuse.
add_executable(epmd-probe ${CMAKE_CURRENT_LIST_DIR}/epmd/epmd-probe.c)
target_link_libraries(epmd-probe PRIVATE girder_epmd)
add_executable(epmd-stress ${CMAKE_CURRENT_LIST_DIR}/epmd/epmd-stress.c)
target_include_directories(epmd-stress PRIVATE ${CMAKE_SOURCE_DIR}/epmd/src)
target_link_libraries(epmd-stress PRIVATE girder_epmd)
add_executable(epmd-flood ${CMAKE_CURRENT_LIST_DIR}/epmd/epmd-flood.c)
target_link_libraries(epmd-flood PRIVATE girder_epmd Threads::Threads)

if(GIRDER_ASAN OR GIRDER_TSAN)
  set(EPMD_SANITIZED 1) # time bounds are looser for a sanitized daemon
else()
  set(EPMD_SANITIZED 0)
endif()

girder_needs(EPMD_INT_ERL "epmd-int-* (girder-epmd with Erlang's epmd and nodes)" erl epmd)
set(EPMD_INT_TESTS erl-nodes erlang-epmd cli-compat robustness flood)
if(NOT EPMD_INT_ERL)
  set(EPMD_INT_TESTS "")
endif()
foreach(t ${EPMD_INT_TESTS})
  add_test(NAME epmd-int-${t}
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/epmd/${t}.sh)
  set_tests_properties(epmd-int-${t} PROPERTIES
    TIMEOUT 120
    LABELS "epmd;integration"
    ENVIRONMENT "GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;EPMD_PROBE=$<TARGET_FILE:epmd-probe>;EPMD_STRESS=$<TARGET_FILE:epmd-stress>;EPMD_FLOOD=$<TARGET_FILE:epmd-flood>;ERLANG_EPMD=${ERLANG_EPMD_EXECUTABLE};ERL=${ERL_EXECUTABLE};EPMD_SANITIZED=${EPMD_SANITIZED}")
endforeach()
if(EPMD_INT_ERL)
  # The flood loads both cores for about 30 s: run alone, so that it neither starves the tests
  # with time bounds (a 2 s packet timeout in robustness, latency bounds in dist) nor is starved.
  set_tests_properties(epmd-int-flood PROPERTIES RUN_SERIAL TRUE)
endif()
