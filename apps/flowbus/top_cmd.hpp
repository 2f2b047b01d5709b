// `flowbus top`: a node's monitoring figures in a terminal, redrawn every second (docs/monitoring.md).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace flowbus::app {

struct top_options {
  std::string monitor = "127.0.0.1:8222"; ///< host:port of the node's monitoring port
  std::string sort = "msgs_to";           ///< the connections' order (as /connz's sort)
  std::size_t rows = 15;                  ///< connections shown
  double interval_s = 1;
  bool once = false;                      ///< print one screen, no escape codes, and exit
};

/// GET `target` of a monitoring port, parsed; throws std::exception (unreachable, not 200, not JSON).
nlohmann::json fetch(const std::string& host, std::uint16_t port, const std::string& target);

/// 0, or 1 if the node cannot be reached (said on stderr).
int run_top(const top_options& options);

} // namespace flowbus::app
