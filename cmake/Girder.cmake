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

# girder_library(<name> <short> SOURCES <src>... [GIRDER <girder libs>...]
#                [PUBLIC <deps>...] [PRIVATE <deps>...] [INTERNAL_DEFINITIONS <defs>...])
#
# One library, compiled once (position-independent, hidden visibility: only what the public
# headers mark GIRDER_API is exported) and archived twice:
#   <name>         static; what the tree's executables, tests, benchmarks and fuzz targets link
#                  (they may use internals); installed as Girder::<short>_static
#   <name>_shared  shared lib<name>.so; installed as Girder::<short> (alias in the tree too)
# GIRDER names other Girder libraries this one uses in its public headers or code (the static
# variant links their static variant, the shared one their shared one). PUBLIC/PRIVATE are
# outside dependencies as in target_link_libraries. Public headers are <dir>/include/girder/*.h,
# installed into include/girder/; <dir>/src is the private include directory.
# OBJECTS are object files compiled elsewhere (an OBJECT library with its own include path)
# that go into both variants.
# INTERNAL_DEFINITIONS are compile definitions of the library's own code that the tree's tests,
# which include its internal headers, must see as well; they are never exported.
function(girder_library name short)
  cmake_parse_arguments(L "" "" "SOURCES;OBJECTS;GIRDER;PUBLIC;PRIVATE;INTERNAL_DEFINITIONS" ${ARGN})
  set(dir ${CMAKE_CURRENT_SOURCE_DIR})
  set(obj ${name}_objects)
  add_library(${obj} OBJECT ${L_SOURCES})
  set_target_properties(${obj} PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
  # Calls between the library's own exported functions need not go through the PLT: nobody
  # interposes them, and the static variant (benchmarks) then compiles as tight as before.
  target_compile_options(${obj} PRIVATE -fno-semantic-interposition)
  target_include_directories(${obj} PUBLIC ${dir}/include PRIVATE ${dir}/src)
  target_compile_definitions(${obj} PRIVATE ${L_INTERNAL_DEFINITIONS})
  target_link_libraries(${obj} PUBLIC girder_base ${L_GIRDER} ${L_PUBLIC} PRIVATE ${L_PRIVATE})

  set(shared_girder "")
  foreach(g ${L_GIRDER})
    list(APPEND shared_girder ${g}_shared)
  endforeach()
  add_library(${name} STATIC $<TARGET_OBJECTS:${obj}> ${L_OBJECTS})
  add_library(${name}_shared SHARED $<TARGET_OBJECTS:${obj}> ${L_OBJECTS})
  target_link_libraries(${name} PUBLIC ${L_GIRDER} ${L_PUBLIC} PRIVATE ${L_PRIVATE})
  foreach(d ${L_INTERNAL_DEFINITIONS})
    target_compile_definitions(${name} INTERFACE $<BUILD_INTERFACE:${d}>)
  endforeach()
  target_link_libraries(${name}_shared PUBLIC ${shared_girder} ${L_PUBLIC} PRIVATE ${L_PRIVATE})
  foreach(t ${name} ${name}_shared)
    target_include_directories(${t} PUBLIC $<BUILD_INTERFACE:${dir}/include>
                                           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
    target_link_libraries(${t} PUBLIC $<BUILD_INTERFACE:girder_base>)
  endforeach()
  set_target_properties(${name} PROPERTIES EXPORT_NAME ${short}_static)
  set_target_properties(${name}_shared PROPERTIES
    OUTPUT_NAME ${name}
    EXPORT_NAME ${short}
    VERSION ${PROJECT_VERSION}
    # Before 1.0 every minor release may change the ABI.
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
    # The libraries find each other next to themselves wherever they are installed.
    INSTALL_RPATH "$ORIGIN")
  if(NOT (GIRDER_ASAN OR GIRDER_TSAN OR GIRDER_FUZZ))
    # A shared library that needs a symbol nobody provides fails here, not in a user's link.
    target_link_options(${name}_shared PRIVATE -Wl,--no-undefined)
  endif()
  add_library(Girder::${short} ALIAS ${name}_shared)
  add_library(Girder::${short}_static ALIAS ${name})
  install(TARGETS ${name} ${name}_shared EXPORT GirderTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  girder_install_headers(${dir}/include/girder)
endfunction()

# girder_install_headers(<dir>): installs the public headers <dir>/*.h into include/girder/.
# Every public header of every library goes there (girderd's module API will too).
function(girder_install_headers dir)
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/girder
          FILES_MATCHING PATTERN "*.h")
endfunction()
