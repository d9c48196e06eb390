# bench-etf-codec: term_codec against Erlang's own C library ei (package erlang-dev).
# Without ei the benchmark is left out (reported with the other tests that need Erlang).
file(GLOB _girder_ei_inc /usr/lib/erlang/lib/erl_interface-*/include
     /usr/local/lib/erlang/lib/erl_interface-*/include)
file(GLOB _girder_ei_lib /usr/lib/erlang/lib/erl_interface-*/lib
     /usr/local/lib/erlang/lib/erl_interface-*/lib)
find_path(EI_INCLUDE_DIR ei.h
  HINTS /usr/lib/erlang/usr/include /usr/local/lib/erlang/usr/include ${_girder_ei_inc})
find_library(EI_LIBRARY NAMES ei
  HINTS /usr/lib/erlang/usr/lib /usr/local/lib/erlang/usr/lib ${_girder_ei_lib})

if(EI_INCLUDE_DIR AND EI_LIBRARY)
  set(EI_FOUND TRUE)
endif()
girder_needs(BENCH_EI "bench-etf-codec (against Erlang's ei)" ei)
if(BENCH_EI)
  add_executable(bench-etf-codec ${CMAKE_CURRENT_LIST_DIR}/bench-etf-codec.c)
  target_include_directories(bench-etf-codec PRIVATE ${EI_INCLUDE_DIR})
  # libei's thread-safe errno (__erl_errno) needs -pthread at compile and link, not -lpthread.
  target_compile_options(bench-etf-codec PRIVATE -pthread)
  target_link_options(bench-etf-codec PRIVATE -pthread)
  target_link_libraries(bench-etf-codec PRIVATE girder_term ${EI_LIBRARY})
endif()
