// What can go wrong when an agent sends, requests, registers or subscribes: scheduling/errc.hpp,
// shared with the C++ client. Every outcome is typed; nothing the node refuses is silent (see
// dead_letters.hpp for what it keeps).
#pragma once

#include <flowbus/scheduling/errc.hpp>

namespace flowbus::actors {

using scheduling::errc;
using scheduling::from_wire_code;
using scheduling::to_string;
using scheduling::wire_code;
using scheduling::wire_routing_base;

} // namespace flowbus::actors
