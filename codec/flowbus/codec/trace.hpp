// The `trace` routing field (protocol.md §14): a sampled message's hops, each 9 bytes — the hop's
// kind (one byte) and its wall-clock time, ns since the Unix epoch (u64 little-endian). A node
// samples 1 in N messages (and continues any message that arrives with a trace): it writes the
// sender's send time (the frame's timestamp) and its own receive time, a node the message reaches
// over a cluster link adds the time it arrived there, and the node that writes it to its recipient
// records the whole trace with its write time (/tracez).
#pragma once

#include <flowbus/codec/bytes.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flowbus::codec {

enum class hop : std::uint8_t {
  client_send = 1, ///< the sending agent's clock when it sent (the frame's timestamp)
  node_in = 2,     ///< the node that took it from the agent read it
  cluster_in = 3,  ///< another node took it from a cluster link
  node_out = 4,    ///< a node wrote it to a recipient (recorded there, not carried)
};
inline constexpr std::size_t trace_record_size = 9;
inline constexpr std::size_t max_trace_hops = 16; ///< beyond, hops are not added

inline const char* to_string(hop h) noexcept {
  switch (h) {
    case hop::client_send: return "client_send";
    case hop::node_in: return "node_in";
    case hop::cluster_in: return "cluster_in";
    case hop::node_out: return "node_out";
  }
  return "unknown";
}

/// Whether `t` is a well-formed trace: whole records, at most max_trace_hops, known kinds.
inline bool valid_trace(std::string_view t) noexcept {
  if (t.size() % trace_record_size != 0 || t.size() / trace_record_size > max_trace_hops) return false;
  for (std::size_t i = 0; i < t.size(); i += trace_record_size) {
    const auto k = static_cast<std::uint8_t>(t[i]);
    if (k < 1 || k > 4) return false;
  }
  return true;
}

/// Appends a hop to `t` (unless it holds max_trace_hops already).
inline void append_hop(std::string& t, hop h, std::uint64_t ns) {
  if (t.size() / trace_record_size >= max_trace_hops) return;
  char rec[trace_record_size];
  rec[0] = static_cast<char>(h);
  store_le(reinterpret_cast<byte*>(rec + 1), ns);
  t.append(rec, sizeof rec);
}

/// The i-th hop of a valid trace.
inline hop hop_kind(std::string_view t, std::size_t i) noexcept { return static_cast<hop>(t[i * trace_record_size]); }
inline std::uint64_t hop_time(std::string_view t, std::size_t i) noexcept {
  return load_le<std::uint64_t>(reinterpret_cast<const byte*>(t.data() + i * trace_record_size + 1));
}

} // namespace flowbus::codec
