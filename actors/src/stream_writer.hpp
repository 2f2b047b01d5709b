// The thread behind one durable stream (stream.hpp): it drains the stream agent's mailbox into
// the segment_log, commits by the stream's policy, and settles each frame's confirmation once the
// log says it is durable (node_impl.hpp, remote_confirmations). Internal to the actors layer.
#pragma once

#include <flowbus/actors/node.hpp>
#include <flowbus/actors/stream.hpp>
#include <flowbus/scheduling/buffer.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace flowbus::actors {

class client;
class endpoint;

class stream_writer {
public:
  /// Opens (and recovers) the log; throws std::system_error if it cannot.
  stream_writer(node::impl* core, stream_config cfg);
  ~stream_writer();
  /// Takes the stream's agent (registered, not yet subscribed) and its endpoint, marks the
  /// endpoint as confirming, and starts the thread.
  void start(std::unique_ptr<client> agent, std::shared_ptr<endpoint> ep);
  /// Stores what the mailbox still holds, syncs, confirms, leaves. Idempotent.
  void stop(); ///< (and lets go of the agent: it holds the node)
  stream_status status() const;
  const stream_config& config() const noexcept { return cfg_; }
  client& agent() noexcept { return *agent_; }

private:
  void run();
  void settle_durable(std::uint64_t durable);
  void fail_all(const std::exception& e, std::vector<scheduling::buffer_ref>& batch);

  node::impl* core_;
  stream_config cfg_;
  mutable std::mutex m_; ///< guards log_ and failures_ (status() from other threads)
  segment_log log_;
  std::uint64_t failures_ = 0;
  std::chrono::steady_clock::time_point last_retention_{};
  std::deque<std::pair<std::uint64_t, scheduling::buffer_ref>> waiting_; ///< stored, not yet durable (seq, frame)
  std::unique_ptr<client> agent_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

/// Checks a stream's config (name, subjects, not a duplicate) and opens its log (node.cpp).
std::unique_ptr<stream_writer> open_stream(node::impl& core, const stream_config& s);
/// Registers the stream's agent, marks it confirming, subscribes it and starts its thread.
void start_stream(const std::shared_ptr<node::impl>& keep, stream_writer& w);

} // namespace flowbus::actors
