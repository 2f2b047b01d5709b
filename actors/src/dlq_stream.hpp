// A dead-letter queue read as a stream (docs/streams.md, "Dead-letter queues as streams"): the
// node's `$dlq.<kind>` for each of the six queues of its DLQ directory. The queue's log is the one
// the DLQ actor appends to and `flowbus dlq` lists, replays and purges (dlq.hpp); this adds what a
// stream has on top of its log — consumers (stream_consumers.hpp: positions kept in
// `<kind>/consumers/`, acks, redelivery with backoff) and the stream API's ls/info — so an agent
// can take dead letters as they come instead of polling `flowbus dlq list`.
//
// Each queue is served by a thread of its own, woken by the DLQ actor when it appended, by its
// agent's mailbox (consumers' REPLYs), by a consumer's deadline, and every 250 ms while it has
// consumers (interest that came or went, another process's `flowbus dlq replay/purge`). A round
// takes the queue's flock, as every other reader and writer of the queue does, and reads the log
// the node keeps open (dlq_file::keep_open), opened again first if another process changed the
// queue. Internal to the actors layer.
#pragma once

#include <flowbus/actors/dlq.hpp>
#include <flowbus/actors/node.hpp>
#include <flowbus/actors/routing_table.hpp>

#include "stream_consumers.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace flowbus::actors {

class client;
struct client_waiter;

class dlq_stream final : public consumable {
public:
  dlq_stream(node::impl* core, dlq_kind kind);
  ~dlq_stream() override;
  /// "$dlq.<kind>": its name in the stream API, and its agent's id.
  static std::string name_of(dlq_kind kind);
  const std::string& name() const noexcept { return name_; }
  /// The doorbell its agent is registered with (before start()).
  const std::shared_ptr<client_waiter>& waiter() const noexcept { return waiter_; }
  /// Takes its agent (registered) and starts the thread.
  void start(std::unique_ptr<client> agent);
  /// Saves the consumers' positions and leaves; lets go of the agent (it holds the node). Idempotent.
  void stop();
  /// The DLQ actor appended: a round now. Any thread, also before start() and after stop().
  void wake() noexcept;

  stream_status status() const override;
  consumer_status add_consumer(consumer_config c) override;
  bool remove_consumer(std::string_view name) override;
  std::optional<consumer_status> consumer(std::string_view name) const override;

private:
  void run();
  consumer_io::outcome deliver(const consumer_config& c, const log_record& r, std::uint64_t token,
                               std::uint32_t deliveries);

  node::impl* core_;
  dlq_kind kind_;
  std::string name_;
  dlq_file file_;
  std::shared_ptr<client_waiter> waiter_;
  mutable std::mutex m_; ///< guards consumers_, file_ and what deliver() uses
  consumer_set consumers_;
  consumer_io io_;
  std::vector<codec::repeated_entry> headers_;
  routing_table::scratch scratch_;
  std::unique_ptr<client> agent_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

} // namespace flowbus::actors
