# Observability tools: the control API's metrics.get and trace.*, girder top, girder trace and
# its timeline page (tests/integration/obs/).
pkg_check_modules(OBS_TEST_MSGPACK REQUIRED IMPORTED_TARGET msgpack)
set(OBS_TEST_DIR ${CMAKE_CURRENT_LIST_DIR}/obs)
add_executable(test-obs-control ${OBS_TEST_DIR}/control_obs_test.c
                                ${CMAKE_CURRENT_LIST_DIR}/daemon/ctlclient.c)
target_include_directories(test-obs-control PRIVATE ${CMAKE_CURRENT_LIST_DIR}/daemon)
target_link_libraries(test-obs-control PRIVATE term_codec PkgConfig::OBS_TEST_MSGPACK)
set_target_properties(test-obs-control PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_dependencies(test-obs-control girderd girder-epmd)
add_test(NAME obs-control COMMAND test-obs-control)
set_tests_properties(obs-control PROPERTIES TIMEOUT 120 LABELS "obs;integration"
  ENVIRONMENT "GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>")
