# dist integration tests: girderd against real Erlang/OTP (and Elixir) nodes on loopback.
find_program(ERLC_EXECUTABLE erlc REQUIRED)
# sanitizer builds run several times slower: timing bounds in the scripts widen with this
if(GIRDER_ASAN OR GIRDER_TSAN)
  set(DIST_SANITIZED 1)
else()
  set(DIST_SANITIZED 0)
endif()
foreach(t basic nodedown ticks mesh elixir interleave global aliases atom_cache dynamic spawnmon
          nonblocking)
  add_test(NAME dist-int-${t} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/dist/${t}.sh)
  set_tests_properties(dist-int-${t} PROPERTIES
    TIMEOUT 120
    LABELS "dist;integration"
    ENVIRONMENT "GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE};ERLC=${ERLC_EXECUTABLE};DIST_SANITIZED=${DIST_SANITIZED}")
endforeach()

add_executable(dist-probe ${CMAKE_CURRENT_LIST_DIR}/dist/dist-probe.c)
target_include_directories(dist-probe PRIVATE ${CMAKE_SOURCE_DIR}/dist/src)
target_link_libraries(dist-probe PRIVATE dist)
add_test(NAME dist-int-hostile COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/dist/hostile.sh)
set_tests_properties(dist-int-hostile PROPERTIES
  TIMEOUT 120
  LABELS "dist;integration"
  ENVIRONMENT "GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE};ERLC=${ERLC_EXECUTABLE};DIST_PROBE=$<TARGET_FILE:dist-probe>")
