# girderd as a program: things that concern the executable rather than the protocol.
add_test(NAME integration/daemon_epmd_autostart
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/daemon/epmd_autostart.sh ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(integration/daemon_epmd_autostart PROPERTIES TIMEOUT 60 LABELS integration)
