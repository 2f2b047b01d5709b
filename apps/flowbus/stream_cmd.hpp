// `flowbus stream`: a node's durable streams through its stream API (the agent $streams,
// docs/streams.md), from the command line (docs/cli.md):
//   flowbus stream add NAME --subject P [...]   ls   info NAME   rm NAME
//   flowbus stream consumer-add STREAM NAME --deliver-to T [...]   consumer-rm STREAM NAME
//   flowbus stream view NAME [--from-seq N | --since T] [--count N]
//   flowbus stream replay NAME --to-topic T [--since T --until T] [--speed 1x|10x|max]
// Exit codes as the client commands': 0 done, 1 not connected, 2 usage, 3 refused (the API's
// error), 4 timeout, 5 no responders (a node without --stream-dir).
#pragma once

#include "client_cmd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowbus::app {

struct stream_add_options {
  std::string name;
  std::vector<std::string> subjects;
  std::string fsync = "group";
  std::string storage = "file";
  std::uint32_t group_ms = 5, segment_mb = 64;
  std::uint64_t max_bytes = 0, max_records = 0, max_age_s = 0;
};

struct consumer_add_options {
  std::string stream, name, deliver_to, filter, start = "first";
  std::uint64_t start_seq = 0;
  std::string since;
  std::uint32_t ack_wait_ms = 5000, max_in_flight = 256, max_deliver = 5;
};

struct stream_read_options {
  std::string name;
  std::uint64_t from_seq = 0;
  std::string since, until; ///< a time: Unix seconds, or -Ns / -Nm / -Nh before now
  std::uint64_t count = 0;  ///< view: at most this many (0: up to the newest when it started)
  bool raw = false, json = false;
  std::string to_topic;     ///< replay: where to ({topic} is the record's own topic)
  std::string speed = "1x"; ///< replay: 1x, 10x, 0.5x... or max
  std::string filter;
};

class stream_commands {
public:
  explicit stream_commands(CLI::App& app);
  std::optional<int> run() const;

private:
  connection_options conn_;
  bool json_ = false;
  std::string name_;
  stream_add_options add_;
  consumer_add_options consumer_;
  stream_read_options read_;
  CLI::App *stream_cmd_, *add_cmd_, *ls_cmd_, *info_cmd_, *rm_cmd_, *cadd_cmd_, *crm_cmd_, *view_cmd_, *replay_cmd_;
};

/// A time given on the command line as ns since the Unix epoch: Unix seconds ("1764720000.5"),
/// or before now ("-30s", "-5m", "-2h"). Nothing if it is neither.
std::optional<std::uint64_t> parse_time_ns(const std::string& text, std::uint64_t now_ns);

} // namespace flowbus::app
