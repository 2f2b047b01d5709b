# Installed package entry: find_package(flowbus) -> flowbus::codec, flowbus::scheduling,
# flowbus::actors, flowbus::transport
include(CMakeFindDependencyMacro)
list(APPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")
find_dependency(Threads)
find_dependency(CAF COMPONENTS core)
find_dependency(Boost 1.74)
find_dependency(spdlog)
include("${CMAKE_CURRENT_LIST_DIR}/flowbusTargets.cmake")
