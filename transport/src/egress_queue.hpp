// What waits to be written to one agent, and the choice of what goes next (private to transport/).
//
// Control frames (ERROR, ACK, CREDIT, WELCOME…) go first; then the agent's frames by priority lane
// (weighted round-robin, EDF by deadline inside a lane), as long as the agent's receive window and
// its ack window allow, and its circuit breaker lets them through. Each call of gather() makes one
// WebSocket message's worth: one frame, or one BATCH, numbered from the connection's next sequence.
// What the lanes shed, what expires and what the breaker refuses is dead-lettered here. No socket,
// no clock: the session passes the time in and writes the bytes.
// @threadsafe no (the session's strand)
#pragma once

#include "receive_window.hpp"

#include <flowbus/actors/agent_breaker.hpp>
#include <flowbus/actors/dead_letters.hpp>
#include <flowbus/codec/bytes.hpp>
#include <flowbus/scheduling/buffer.hpp>
#include <flowbus/scheduling/lanes.hpp>
#include <flowbus/scheduling/metrics.hpp>
#include <flowbus/transport/outbound.hpp>
#include <flowbus/transport/server.hpp>

#include <array>
#include <cstdint>
#include <deque>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flowbus::transport::detail {

/// The edge's latency histograms per priority lane (server::latency()): time a data frame waited
/// in the node (from its buffer's stamp), and its age when written (from its timestamp field).
struct edge_metrics {
  bool latency = true; ///< server_options::latency_metrics
  std::array<scheduling::bucket_histogram, scheduling::lane_count> queued, age;
  // traced frames (rare: sampled) as written, newest last
  std::size_t trace_keep = 256;
  std::mutex trace_m;
  std::deque<trace_record> traces;
};

class delivery_tracker;

class egress_queue {
public:
  /// `agent`: the recipient named in dead letters (the agent's id, kept by the owner).
  egress_queue(actors::dead_letters& dead, const std::string& agent, scheduling::lane_options lanes,
               edge_metrics* metrics = nullptr);

  receive_window& window() noexcept { return window_; }

  /// A control frame, encoded: ahead of every data frame.
  void push_control(std::vector<codec::byte> frame) { control_.push_back(std::move(frame)); }

  /// Queues one of the agent's frames in its lane (by its priority byte; EDF by its deadline).
  void admit(scheduling::buffer_ref&& f);
  /// No data frame waits (control frames aside).
  bool drained() const noexcept { return !held_ && (!lanes_ || lanes_->empty()); }
  /// The lanes are above their high water mark (until below the low one): senders should hold.
  bool throttled() const noexcept { return lanes_ && lanes_->throttled(); }
  /// Data waits, and only the agent can let it go: its receive window or its ack window is used up.
  bool waits_for_agent(const delivery_tracker* acks) const;

  struct gathered {
    codec::bytes_view message;  ///< the WebSocket message's bytes (empty: nothing waits to go)
    std::size_t data = 0;       ///< the agent's frames in it
    std::size_t window_waits = 0; ///< times a data frame waited for CREDIT
    actors::agent_breaker::arm_after arm; ///< the breaker just opened: arm its timer
  };
  /// Makes the next WebSocket message in `batch` (cleared first): control frames, then, if
  /// `deliver`, data frames; numbers them from `next_sequence`; hands each data frame to `acks`
  /// (if the agent acknowledges) with its sequence. `wall_ns` expires deadlines (0: the wall
  /// clock, read only when a frame with a deadline waits), `steady_ns` drives the breaker (0: likewise).
  gathered gather(outbound_batch& batch, bool deliver, delivery_tracker* acks, std::uint64_t& next_sequence,
                  std::uint64_t wall_ns, std::uint64_t steady_ns);

  /// Frames waiting in each lane (none before the first frame).
  std::size_t lane_size(std::size_t lane) const noexcept { return lanes_ ? lanes_->size(lane) : 0; }
  std::size_t size() const noexcept { return (lanes_ ? lanes_->size() : 0) + (held_ ? 1 : 0); }
  /// Dead-letters every data frame waiting (control frames stay); returns how many.
  std::size_t drop_all(actors::dead_reason why);

private:
  std::optional<scheduling::buffer_ref> next_frame(std::size_t& window_waits);
  void observe(const scheduling::buffer_ref& f, std::uint64_t& steady, std::uint64_t& wall);
  void keep_trace(const scheduling::buffer_ref& f, std::uint64_t wall);

  actors::dead_letters& dead_;
  const std::string& agent_;
  scheduling::lane_options lane_options_;
  edge_metrics* metrics_;
  scheduling::run_recorder queued_runs_, age_runs_; ///< flushed at the end of each gather()
  std::vector<std::vector<codec::byte>> control_; ///< few, and usually none (a deque costs 1 KiB per idle connection)
  /// made with the first frame (an idle connection has none)
  std::unique_ptr<scheduling::lane_scheduler<scheduling::buffer_ref>> lanes_;
  scheduling::buffer_ref held_;              ///< next out: did not fit the last message
  std::vector<scheduling::buffer_ref> sent_; ///< scratch: the data frames of the message being made
  receive_window window_;                    ///< the agent's receive window (none: TCP's flow control alone)
};

} // namespace flowbus::transport::detail
