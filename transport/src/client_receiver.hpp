// What a client keeps about what it receives (private to transport/): its subscriptions and the
// handler each message goes to, duplicates dropped (a redelivered message the node sends again),
// and when it owes the node an ACK (with acks: cumulative, by the node's sequence) or a CREDIT
// (its receive window: granted back once half of it is handled). No socket: the connection
// decodes, asks here, calls the handler, and sends what is owed.
// @threadsafe subscription_table: under client::impl::m (senders subscribe; the I/O thread looks
// up on a miss of its handler_cache, which only it touches). receipts: the I/O thread only.
#pragma once

#include <flowbus/codec/types.hpp>
#include <flowbus/codec/message.hpp>
#include <flowbus/scheduling/dedup_window.hpp>
#include <flowbus/transport/client.hpp>

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace flowbus::transport::detail {

class subscription_table {
public:
  /// Shared with the I/O thread's handler_cache: a handler outlives its subscription there until
  /// the cache sees the table's next generation.
  using shared_handler = std::shared_ptr<const message_handler>;
  struct subscription {
    std::string pattern, group;
    shared_handler handler; ///< null: none (on_message's takes the messages)
  };

  /// Adds (pattern, group), or gives an existing one the new handler.
  void add(const std::string& pattern, const std::string& group, message_handler h);
  void remove(const std::string& pattern, const std::string& group);
  /// The handler of the first subscription (in subscribe order) whose pattern matches `topic`;
  /// else the fallback (on_message). Null if none.
  shared_handler handler_for(std::string_view topic) const;
  void set_fallback(message_handler h);
  /// In subscribe order (a reconnect subscribes again in this order).
  const std::list<subscription>& all() const noexcept { return subs_; }
  std::size_t size() const noexcept { return subs_.size(); }
  /// Changes with every add, remove and set_fallback (made under m): read without m by the I/O
  /// thread, to know whether what it remembers of handler_for() still holds.
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

private:
  static std::string key(const std::string& pattern, const std::string& group) { return pattern + '\x1f' + group; }
  static shared_handler share(message_handler h) {
    return h ? std::make_shared<const message_handler>(std::move(h)) : nullptr;
  }
  void changed() noexcept { generation_.fetch_add(1, std::memory_order_release); }
  std::list<subscription> subs_;
  /// finds one by pattern and group: unsubscribing is O(1), not O(subscriptions)
  std::unordered_map<std::string, std::list<subscription>::iterator> index_;
  shared_handler fallback_;
  std::atomic<std::uint64_t> generation_{0};
};

/// The I/O thread's memory of handler_for(topic), so that a message costs a hash lookup instead
/// of taking m and matching every pattern. Valid for one generation of the table. @threadsafe no
/// (the I/O thread only)
class handler_cache {
public:
  using shared_handler = subscription_table::shared_handler;
  /// What handler_for(topic) gave at generation `gen`, or nullptr if it is not known (the cache is
  /// emptied when `gen` is new). The pointer holds until the next call.
  const shared_handler* find(std::string_view topic, std::uint64_t gen);
  /// Remembers `h` for topic at generation `gen` (bounded: emptied when full).
  const shared_handler& put(std::string_view topic, std::uint64_t gen, shared_handler h);

private:
  static constexpr std::size_t limit = 4096;
  std::unordered_map<std::string, shared_handler> map_;
  std::string key_; ///< the topic looked up (unordered_map has no lookup by string_view in C++17)
  std::uint64_t gen_ = 0;
};

class receipts {
public:
  /// `acks`: the client acknowledges what it receives; `window`: its receive window (0: none).
  receipts(bool acks, std::uint32_t window) : acks_(acks), window_(window) {}

  /// A new connection: nothing is owed to it.
  void connected() noexcept {
    consumed_ = 0;
    ack_due_ = false;
  }
  /// Any message from the node: a data message counts against the receive window.
  void arrived(codec::msg_type t) noexcept {
    if (window_ && codec::is_data(t)) ++consumed_;
  }
  /// A data message for a handler (not a reply): false if it is a duplicate (dropped, counted by
  /// the caller). With acks, the node's sequence is owed an ACK either way.
  bool accept(const codec::message& m);
  /// The handler failed `m`: when it comes again it is not a duplicate.
  void failed(const codec::message& m);

  /// The ACK owed after a read (the last sequence handled), if any.
  std::optional<std::uint64_t> ack_owed() noexcept;
  /// The CREDIT owed after a read: once half the window is handled.
  std::optional<std::uint32_t> credit_owed() noexcept;

private:
  static std::string retry_key(const codec::message& m);
  bool acks_;
  std::uint32_t window_;
  scheduling::dedup_window dedup_;    ///< (source, message id) seen
  std::uint64_t last_seq_ = 0;        ///< the node's sequence of the last message handled
  bool ack_due_ = false;              ///< a message arrived since our last ACK
  std::uint32_t consumed_ = 0;        ///< data messages handled since our last CREDIT
  std::unordered_set<std::string> retrying_; ///< (source, id) our handler failed: not a duplicate when it comes again
};

} // namespace flowbus::transport::detail
