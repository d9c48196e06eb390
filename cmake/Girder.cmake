# Shared CMake helpers for Girder's components.
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

# girder_unit_tests(<lib> <glob-dir>): one cmocka executable per tests/test-*.c,
# registered with ctest as <lib>/<name>, built into build/tests. Executable names are
# global across components, so name files test-<area>-<case>.c (test-node-mailbox.c).
function(girder_unit_tests lib dir)
  file(GLOB srcs CONFIGURE_DEPENDS ${dir}/test-*.c)
  foreach(src ${srcs})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE ${lib} PkgConfig::CMOCKA)
    set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    add_test(NAME ${lib}/${name} COMMAND ${name})
    set_tests_properties(${lib}/${name} PROPERTIES TIMEOUT 300 LABELS unit)
  endforeach()
endfunction()
