# Installed package entry: find_package(flowbus) -> flowbus::codec, flowbus::scheduling, flowbus::actors
include(CMakeFindDependencyMacro)
list(APPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")
find_dependency(Threads)
find_dependency(CAF COMPONENTS core)
include("${CMAKE_CURRENT_LIST_DIR}/flowbusTargets.cmake")
