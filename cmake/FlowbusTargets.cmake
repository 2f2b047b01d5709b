# Shared settings for flowbus's own targets: strict warnings on our code only
# (system headers from Debian packages are not ours to fix).
function(flowbus_strict_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Wcast-align -Woverloaded-virtual)
endfunction()

# flowbus_layer(<name> SOURCES ... DEPS ...): one library target per layer folder,
# public headers under <layer>/flowbus/<layer>/ so users write #include <flowbus/<layer>/x.hpp>.
function(flowbus_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS" ${ARGN})
  add_library(flowbus_${name} STATIC ${L_SOURCES})
  add_library(flowbus::${name} ALIAS flowbus_${name})
  target_include_directories(flowbus_${name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(flowbus_${name} PUBLIC ${L_DEPS})
  set_target_properties(flowbus_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  flowbus_strict_warnings(flowbus_${name})
endfunction()
