# Control request fuzz target: girderd's framing, msgpack-rpc decoding and term params.
girder_fuzz_target(control-request ${CMAKE_SOURCE_DIR}/fuzz/fuzz-control-request.c)
target_link_libraries(fuzz-control-request PRIVATE girderd_ctlproto)
