# make demo: its script (scripts/demo.sh) with the same assertions as `make demo`, on a port
# mapper port of its own; and the demo's parts alone, with checks that must be able to fail.
girder_needs(DEMO_INT_ERL "demo, demo-int-checks (make demo's cluster has an erl node)" erl erlc)
if(DEMO_INT_ERL)
  add_test(NAME demo COMMAND sh ${CMAKE_SOURCE_DIR}/scripts/demo.sh $<TARGET_FILE_DIR:girder>)
  add_test(NAME demo-int-checks COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/demo/checks.sh)
  set_tests_properties(demo demo-int-checks PROPERTIES
    TIMEOUT 120
    LABELS "demo;integration"
    ENVIRONMENT "GIRDER=$<TARGET_FILE:girder>;GIRDERD=$<TARGET_FILE:girderd>;GIRDER_EPMD=$<TARGET_FILE:girder-epmd>;ERL=${ERL_EXECUTABLE};ERLC=${ERLC_EXECUTABLE}")
endif()
