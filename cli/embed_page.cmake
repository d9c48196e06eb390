# Turns cli/src/trace_page.html into a C header: the page before and after its data marker.
# cmake -DIN=page.html -DOUT=trace_page.h -P embed_page.cmake
file(READ ${IN} page)
string(FIND "${page}" "__GIRDER_TRACE_DATA__" at)
if(at LESS 0)
  message(FATAL_ERROR "${IN} has no __GIRDER_TRACE_DATA__ marker")
endif()
string(SUBSTRING "${page}" 0 ${at} head)
math(EXPR rest "${at} + 21")
string(SUBSTRING "${page}" ${rest} -1 tail)
foreach(part head tail)
  set(s "${${part}}")
  string(REPLACE "\\" "\\\\" s "${s}")
  string(REPLACE "\"" "\\\"" s "${s}")
  string(REPLACE "\n" "\\n\"\n    \"" s "${s}")
  set(${part}_c "${s}")
endforeach()
file(WRITE ${OUT}.tmp "/* Generated from cli/src/trace_page.html by cli/embed_page.cmake: do not edit. */\n"
  "static const char trace_page_head[] =\n    \"${head_c}\";\n"
  "static const char trace_page_tail[] =\n    \"${tail_c}\";\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
