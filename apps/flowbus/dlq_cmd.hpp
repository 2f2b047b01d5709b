// `flowbus dlq list|replay|purge`: the dead-letter queues a node keeps in its --dlq-dir. list and
// purge work on the files (safe next to a running node: every change holds the file's lock);
// replay sends the entries to a running node over WebSocket and removes those sent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flowbus::app {

struct dlq_options {
  std::string action;             ///< list | replay | purge
  std::string dir;
  std::vector<std::string> kinds; ///< empty: all six
  std::vector<std::uint64_t> ids; ///< replay: only these
  std::string connect = "127.0.0.1:8081";
  bool json = false;
};

int run_dlq(const dlq_options& options);

} // namespace flowbus::app
