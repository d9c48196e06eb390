# Erlang/OTP and Elixir are needed only by tests and benchmarks that run real nodes: the
# libraries and executables configure and build without them. What cannot be registered for
# want of a tool is collected here and reported in one message at the end of configuration.
find_program(ERL_EXECUTABLE erl)
find_program(ERLC_EXECUTABLE erlc)
find_program(ESCRIPT_EXECUTABLE escript)
find_program(ELIXIR_EXECUTABLE elixir)
find_program(ERLANG_EPMD_EXECUTABLE epmd PATHS /usr/lib/erlang/bin /usr/local/lib/erlang/bin)

# girder_needs(<out-var> <what> <tool>...): <out-var> is TRUE when every tool (erl, erlc,
# escript, elixir, epmd, ei) was found. Otherwise it is FALSE, and <what> (the tests or
# benchmarks left out) goes into the report with the missing tools.
function(girder_needs out what)
  set(missing "")
  foreach(tool ${ARGN})
    if(tool STREQUAL "erl")
      set(found ${ERL_EXECUTABLE})
    elseif(tool STREQUAL "erlc")
      set(found ${ERLC_EXECUTABLE})
    elseif(tool STREQUAL "escript")
      set(found ${ESCRIPT_EXECUTABLE})
    elseif(tool STREQUAL "elixir")
      set(found ${ELIXIR_EXECUTABLE})
    elseif(tool STREQUAL "epmd")
      set(found ${ERLANG_EPMD_EXECUTABLE})
    elseif(tool STREQUAL "ei")
      set(found ${EI_FOUND})
    else()
      message(FATAL_ERROR "girder_needs: unknown tool ${tool}")
    endif()
    if(NOT found)
      list(APPEND missing ${tool})
    endif()
  endforeach()
  if(missing)
    set(${out} FALSE PARENT_SCOPE)
    set_property(GLOBAL APPEND PROPERTY GIRDER_SKIPPED "${what}")
    set_property(GLOBAL APPEND PROPERTY GIRDER_MISSING_TOOLS ${missing})
  else()
    set(${out} TRUE PARENT_SCOPE)
  endif()
endfunction()

# The one message: what was left out and which tools would bring it back.
function(girder_erlang_report)
  get_property(skipped GLOBAL PROPERTY GIRDER_SKIPPED)
  if(NOT skipped)
    return()
  endif()
  get_property(tools GLOBAL PROPERTY GIRDER_MISSING_TOOLS)
  list(REMOVE_DUPLICATES tools)
  list(JOIN tools ", " tools)
  list(JOIN skipped "; " skipped)
  message(STATUS "Erlang tests skipped: ${tools} not found, so these tests and benchmarks are "
                 "not registered: ${skipped}. Install Erlang/OTP and Elixir "
                 "(scripts/install-deps.sh, run by make test) to run them.")
endfunction()
