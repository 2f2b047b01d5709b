// `flowbus demo`: a node with in-process and WebSocket agents exchanging tasks, printing live
// latency percentiles.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flowbus::app {

struct demo_options {
  double seconds = 10;      ///< how long the dispatcher offers tasks
  double rate = 20000;      ///< tasks per second, offered at fixed intervals
  std::size_t workers = 2;  ///< in-process worker agents (actors) in the queue group
  std::size_t ws_workers = 2; ///< WebSocket worker agents (clients over loopback) in the group
  std::uint16_t port = 0;   ///< the demo node's WebSocket port (0: any free one)
  std::size_t threads = 0;  ///< CAF scheduler threads (0: one per CPU)
  bool json = true;         ///< end with one JSON line (the benchmark format)
};

/// Runs the demo; 0 when every task was answered, nothing was dead-lettered and shutdown drained.
int run_demo(const demo_options& options);

} // namespace flowbus::app
