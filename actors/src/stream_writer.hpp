// The thread behind one durable stream (stream.hpp): it drains the stream agent's mailbox into
// the segment_log, commits by the stream's policy, and settles each frame's confirmation once the
// log says it is durable (node_impl.hpp, remote_confirmations). Then it serves the stream's
// consumers (stream_consumers.hpp): it sends what is written and due, and takes the REPLYs that
// acknowledge it. Internal to the actors layer.
//
// A stream serves sparse pushes inline: when a push rings the stream's doorbell (its
// mailbox was idle) and the last inline step ended at least `inline_gap` before, the pushing
// thread (a connection's I/O thread, say) takes the stream's lock and does the step itself —
// append, commit, deliveries — instead of waking the stream's thread, a wake-up that was most of
// what such a stream added to a message's latency (docs/benchmarks.md). Under a flood the thread
// does the work, so publishers go on in parallel and are held when it falls behind. An inline
// step never persists positions nor enforces retention: the thread does (the position files are
// written by a thread of their own), woken when a step leaves it something to do sooner than it
// planned. For a file stream this is possible because its log
// writes on its own thread (log_options::background_io): an inline step hands the bytes over and
// never waits for the disk — when the log says it may (a segment to roll, the disk 2 MiB behind),
// the push wakes the thread instead.
#pragma once

#include <flowbus/actors/node.hpp>
#include <flowbus/actors/routing_table.hpp>
#include <flowbus/actors/stream.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/scheduling/buffer.hpp>

#include "stream_consumers.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace flowbus::actors {

class client;
class endpoint;
struct client_waiter;
class stream_writer;

/// What a stream's doorbell reaches the writer through: the writer goes (w = nullptr, under m)
/// before the endpoint, which the routing table and publishers' caches may keep longer.
struct stream_gate {
  std::mutex m;
  stream_writer* w = nullptr;
};

class stream_writer final : public consumable {
public:
  /// Opens (and recovers) the log; throws std::system_error if it cannot.
  stream_writer(node::impl* core, stream_config cfg);
  ~stream_writer() override;
  /// Takes the stream's agent (registered, not yet subscribed), its endpoint and its doorbell,
  /// marks the endpoint as confirming, and starts the thread.
  void start(std::unique_ptr<client> agent, std::shared_ptr<endpoint> ep, std::shared_ptr<client_waiter> waiter);
  /// Stores what the mailbox still holds, syncs, confirms, leaves. Idempotent.
  void stop(); ///< (and lets go of the agent: it holds the node)
  stream_status status() const override;
  const stream_config& config() const noexcept { return cfg_; }
  client& agent() noexcept { return *agent_; }
  /// Adds (or rebinds) a consumer: throws std::invalid_argument as consumer_set::add, and for a
  /// deliver_to this stream captures (it would store its own deliveries).
  consumer_status add_consumer(consumer_config c) override;
  bool remove_consumer(std::string_view name) override;
  std::optional<consumer_status> consumer(std::string_view name) const override;
  /// The doorbell hook (client_waiter::try_inline); `context` is the gate().
  static bool ring_inline(void* context) noexcept;
  std::shared_ptr<stream_gate> gate() const { return gate_; }

private:
  void run();
  /// One round under m_: drains up to `cap` messages, appends, commits, settles, delivers; with
  /// `housekeeping`, also retention and the consumers' positions. Returns whether more wait.
  bool step(bool last_round, std::size_t cap, bool housekeeping);
  bool step_inline() noexcept;
  /// Hands the consumers' state files step() took to the positions' thread (started on first use).
  void hand_positions();
  void write_positions(); ///< the positions' thread
  /// When the thread must next look: a consumer's deadline; 10 ms while a sender waits for its
  /// record's sync (on_io rings sooner), else 100 ms.
  std::chrono::steady_clock::time_point wake_time(std::chrono::steady_clock::time_point now) const;
  void take(received& r, std::uint64_t now_ns, std::vector<scheduling::buffer_ref>& batch);
  consumer_io::outcome deliver(const consumer_config& c, const log_record& r, std::uint64_t token,
                               std::uint32_t deliveries);
  bool has_interest(const consumer_config& c);
  void poison(const consumer_config& c, const log_record& r, std::uint32_t deliveries);
  void settle_durable(std::uint64_t durable);
  void on_io(); ///< log_options::on_io
  void fail_all(const std::exception& e, std::vector<scheduling::buffer_ref>& batch);

  node::impl* core_;
  stream_config cfg_;
  mutable std::mutex m_; ///< guards log_ and failures_ (status() from other threads)
  // before log_: its I/O thread calls on_io until the log is gone
  std::shared_ptr<client_waiter> waiter_; ///< the agent's doorbell (on_io rings it)
  std::atomic<bool> acks_waiting_{false}; ///< waiting_ is not empty (read by on_io)
  segment_log log_;
  std::uint64_t failures_ = 0;
  consumer_set consumers_; ///< guarded by m_
  consumer_io io_;
  std::chrono::steady_clock::time_point next_due_ = std::chrono::steady_clock::time_point::max();
  codec::decoder dec_; ///< the stored frames (the thread's)
  std::vector<codec::repeated_entry> headers_;
  routing_table::scratch scratch_;
  std::chrono::steady_clock::time_point last_retention_{};
  /// stored, not yet durable, and a sender waits for its confirmation: (seq, the frame)
  std::deque<std::pair<std::uint64_t, scheduling::buffer_ref>> waiting_;
  std::uint64_t appended_ = 0, settled_ = 0; ///< the last record appended; the durable mark seen
  std::unique_ptr<client> agent_;
  std::shared_ptr<endpoint> ep_; ///< the agent's: its water marks
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::shared_ptr<stream_gate> gate_ = std::make_shared<stream_gate>();
  std::vector<scheduling::buffer_ref> batch_; ///< taken, not yet appended (failed with the rest on an error)
  std::vector<consumer_set::state_file> to_save_; ///< the thread's, taken by step(), handed by run()
  // The consumers' position files are written on a thread of their own: an fsync that waits for
  // the file system's journal (207 ms, seen here) must not keep the stream's thread from its
  // rounds: once one push could not be served inline, the mailbox waits for the thread to drain
  // it (it rings once per idle spell), and nothing inline takes what comes meanwhile.
  std::mutex pm_;
  std::condition_variable pcv_;
  std::vector<consumer_set::state_file> pos_queue_; ///< the newest state of each consumer; under pm_
  bool pos_stop_ = false;                           ///< under pm_
  std::thread pos_thread_;
  /// when the thread will look next (it waits until then, or its doorbell); under m_
  std::chrono::steady_clock::time_point planned_wake_{};
  std::chrono::steady_clock::time_point last_inline_{}; ///< the end of the last inline step; under m_
  std::uint64_t inline_steps_ = 0;                     ///< under m_
};

/// Sends log record `r` (its frame decoded as `v`) to consumer `c` as a REQUEST whose REPLY carries
/// `token` (docs/streams.md, "Consumers"): `headers` holds the record's own (and any the caller
/// adds); the stream-* headers, naming `stream`, are appended. Sent, or refused if nobody took it.
consumer_io::outcome send_record(client& agent, std::string_view stream, const consumer_config& c, const delivery& v,
                                 const log_record& r, std::uint64_t token, std::uint32_t deliveries,
                                 std::vector<codec::repeated_entry>& headers);
/// Whether anyone listens at the consumer's deliver_to.
bool consumer_has_interest(node::impl& core, const consumer_config& c, routing_table::scratch& scratch);

/// The agent `$streams`: its thread answers the stream API's requests (docs/streams.md, "The
/// stream API") — streams and consumers added, removed, listed — with JSON.
class stream_admin {
public:
  explicit stream_admin(std::weak_ptr<node::impl> core) : core_(std::move(core)) {}
  ~stream_admin();
  void start(std::unique_ptr<client> agent);
  void stop(); ///< idempotent; lets go of the agent (it holds the node)

private:
  void run();
  std::string answer(std::string_view request);
  std::weak_ptr<node::impl> core_;
  std::unique_ptr<client> agent_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

/// Adds a stream to a running node (node::add_stream, the stream API), writing its stream.json.
void add_stream(const std::shared_ptr<node::impl>& core, const stream_config& c);
bool remove_stream(node::impl& core, std::string_view name);
/// The streams kept in `directory` (subdirectories with a stream.json) but not in `configured`
/// (the configuration names those). One whose stream.json does not parse is logged and skipped.
std::vector<stream_config> saved_streams(const std::string& directory, const std::vector<stream_config>& configured);
/// Checks a stream's config (name, subjects, not a duplicate) and opens its log (node.cpp).
std::unique_ptr<stream_writer> open_stream(node::impl& core, const stream_config& s);
/// Registers an agent of the node's own (a stream's, a dead-letter queue's) with doorbell `waiter`
/// and returns it as a client; `ep` (if set) gets its endpoint. Throws std::invalid_argument.
std::unique_ptr<client> internal_agent(const std::shared_ptr<node::impl>& keep, agent_spec spec,
                                       std::shared_ptr<client_waiter> waiter, std::shared_ptr<endpoint>* ep);
/// Registers the stream's agent, marks it confirming, subscribes it and starts its thread.
void start_stream(const std::shared_ptr<node::impl>& keep, stream_writer& w);

} // namespace flowbus::actors
