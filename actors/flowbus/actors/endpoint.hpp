// Where messages for one agent arrive: its hot-path mailbox (a lock-free MPSC queue of shared
// frame buffers plus a doorbell), its identity, and the counters the balancers read. Producers are
// whichever threads publish; the consumer is the agent (its actor, or the thread that owns a
// client). The doorbell is chosen by the kind of agent: a drain message to its actor, a condition
// variable for a client thread, a post to a connection's strand (transport).
//
// Lifetime: shared by the routing table, the publishers' route caches and the agent. When an agent
// goes down its endpoint is closed (producers then get agent_unavailable); frames that raced into
// the mailbox after the agent's last drain are handed to the dead letters when the last owner lets
// go, so none is lost without a record.
// @threadsafe push/close/load: any thread. pop side: the consumer only.
#pragma once

#include <flowbus/actors/topic_index.hpp> // subscriber_id
#include <flowbus/codec/frame_header.hpp>  // offset
#include <flowbus/scheduling/buffer.hpp>
#include <flowbus/scheduling/cache.hpp>
#include <flowbus/scheduling/circuit_breaker.hpp>
#include <flowbus/scheduling/mailbox.hpp>
#include <flowbus/scheduling/mpsc_queue.hpp>
#include <flowbus/scheduling/urgent_queue.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flowbus::actors {

class dead_letters;

class endpoint : public std::enable_shared_from_this<endpoint> {
public:
  /// CRITICAL frames have an express ring: a bulk burst that fills the mailbox cannot refuse them.
  using queue_type = scheduling::urgent_queue<scheduling::buffer_ref>;
  using box_type = scheduling::mailbox<queue_type>;

  /// @param doorbell_owner keeps the doorbell's context alive as long as the endpoint.
  endpoint(subscriber_id id, std::string agent_id, std::string agent_type, std::vector<std::string> capabilities,
           std::size_t capacity, box_type::doorbell_fn ring, std::shared_ptr<void> doorbell_owner,
           dead_letters* orphans);
  ~endpoint();
  endpoint(const endpoint&) = delete;
  endpoint& operator=(const endpoint&) = delete;

  subscriber_id id() const noexcept { return id_; }
  const std::string& agent_id() const noexcept { return agent_id_; }
  const std::string& agent_type() const noexcept { return agent_type_; }
  const std::vector<std::string>& capabilities() const noexcept { return capabilities_; }
  std::size_t capacity() const noexcept { return capacity_; } ///< of the mailbox, as asked

  bool open() const noexcept { return open_.load(std::memory_order_acquire); }
  /// Marks the agent down: later pushes are refused with agent_unavailable.
  void close() noexcept { open_.store(false, std::memory_order_release); }

  /// Flow control: the consumer says its queue is above its high water mark (until it falls below
  /// the low one). Senders learn it from send_result::throttled and hold back; nothing is refused
  /// for it. Set by consumers with priority lanes (WebSocket connections).
  void set_throttled(bool on) noexcept { throttled_.store(on, std::memory_order_relaxed); }
  /// Water marks kept by the endpoint itself (high 0: none, the consumer decides alone) — for
  /// consumers that handle one message at a time (actor agents) and would notice too late:
  /// producers mark it throttled once `high` frames are queued, and the consumer's catch_up()
  /// clears it at `low` or below. Set before the endpoint is routable.
  void water_marks(std::uint64_t high, std::uint64_t low) noexcept {
    high_mark_ = high;
    low_mark_ = low;
  }
  /// With water_marks(): clears throttled once the backlog is down to the low mark. Called by the
  /// consumer as it drains, and by a held sender as it looks again (a push racing the consumer's
  /// last drain may have set the mark after it); any thread.
  void catch_up() noexcept {
    if (high_mark_ && throttled() && in_flight() <= low_mark_) set_throttled(false);
  }
  bool throttled() const noexcept { return throttled_.load(std::memory_order_relaxed); }
  /// A link to another node of the cluster (cluster.hpp), not an agent: queue groups and
  /// capability routing prefer local members to it, and a frame that came from a peer is never
  /// handed to one (one hop). Set before the endpoint is routable.
  void set_remote() noexcept { remote_ = true; }
  bool remote() const noexcept { return remote_; }
  /// A stream: it confirms each frame once it is stored (remote_confirmations::settle), so an
  /// acknowledged send that reaches it waits for that, as for another node.
  void set_confirms() noexcept { confirms_.store(true, std::memory_order_release); }
  bool confirms() const noexcept { return confirms_.load(std::memory_order_acquire); }
  /// The consumer is itself held as a publisher and waits for its own agent (a used-up receive
  /// window): a publisher held by this endpoint may then be read on for its own CREDIT and ACKs —
  /// holding it until this endpoint drains could be a cycle that never ends.
  void set_stalled(bool on) noexcept { stalled_.store(on, std::memory_order_relaxed); }
  bool stalled() const noexcept { return stalled_.load(std::memory_order_relaxed); }

  /// The agent's circuit breaker as its consumer last set it: while open, pushes fail fast
  /// (push_status::circuit_open, dead-lettered as circuit_open).
  void set_breaker(scheduling::breaker_state s) noexcept { breaker_.store(s, std::memory_order_relaxed); }
  scheduling::breaker_state breaker() const noexcept { return breaker_.load(std::memory_order_relaxed); }

  /// Hands `frame` (a shared reference) to the agent. ok, or agent_unavailable / mailbox_full
  /// (the caller dead-letters it).
  enum class push_status : std::uint8_t { ok, closed, full, circuit_open };
  push_status push(const scheduling::buffer_ref& frame) noexcept {
    if (!open()) return push_status::closed;
    if (breaker_.load(std::memory_order_relaxed) == scheduling::breaker_state::open) return push_status::circuit_open;
    const bool urgent = frame.size() > codec::offset::priority && frame.data()[codec::offset::priority] == 0; // CRITICAL
    if (box_.try_push(frame, urgent) == scheduling::push_result::full) return push_status::full;
    if (high_mark_ && !throttled() && in_flight() >= high_mark_) throttled_.store(true, std::memory_order_relaxed);
    return push_status::ok;
  }

  /// Consumer side: handles up to `max` frames with f(buffer_ref&&), counting them as handled
  /// only after f returns (so in_flight() includes the message being handled).
  template <class F> scheduling::drain_result drain(F&& f, std::size_t max) {
    return drain(std::forward<F>(f), max, [] { return false; });
  }
  /// The same with a spin budget before going idle (scheduling::mailbox::drain).
  template <class F, class Keep> scheduling::drain_result drain(F&& f, std::size_t max, Keep&& keep_polling) {
    return box_.drain(
        [&](scheduling::buffer_ref&& b) {
          f(std::move(b));
          // consumer-only store on the consumer's own line: no read-modify-write per message
          handled_.store(handled_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        },
        max, std::forward<Keep>(keep_polling));
  }

  /// Messages handed to the agent and not yet handled: the least-loaded balancer's measure.
  std::uint64_t in_flight() const noexcept {
    const std::uint64_t h = handled_.load(std::memory_order_acquire);
    const std::uint64_t a = box_.announced();
    return a > h ? a - h : 0;
  }
  std::uint64_t handled() const noexcept { return handled_.load(std::memory_order_acquire); }
  bool idle() const noexcept { return box_.idle(); }

private:
  const subscriber_id id_;
  const std::string agent_id_, agent_type_;
  const std::vector<std::string> capabilities_;
  std::shared_ptr<void> doorbell_owner_;
  dead_letters* orphans_;
  std::size_t capacity_;
  std::uint64_t high_mark_ = 0, low_mark_ = 0; ///< water_marks(); set before the endpoint is routable
  bool remote_ = false;                        ///< set_remote(); likewise
  std::atomic<bool> confirms_{false};          ///< set_confirms()
  std::atomic<bool> open_{true};
  std::atomic<bool> stalled_{false};
  std::atomic<bool> throttled_{false}; ///< read by senders with open_, written on transitions only
  std::atomic<scheduling::breaker_state> breaker_{scheduling::breaker_state::closed}; ///< likewise
  box_type box_;
  alignas(scheduling::false_sharing_range) std::atomic<std::uint64_t> handled_{0};
};

} // namespace flowbus::actors
