# girder CLI integration tests: every command against girderd, erl and Elixir nodes; errors;
# cluster up/status/down; bash completion.
foreach(t args girder_node erlang_node elixir errors cluster completion stop_girder)
  string(REPLACE "_" "-" name ${t})
  add_test(NAME cli-int-${name} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/cli/${t}.sh)
  set_tests_properties(cli-int-${name} PROPERTIES
    TIMEOUT 180
    LABELS "cli;integration"
    ENVIRONMENT "GIRDER=$<TARGET_FILE:girder>;GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE}")
endforeach()
