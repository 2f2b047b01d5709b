// What a client keeps about what it receives (private to transport/): its subscriptions and the
// handler each message goes to, duplicates dropped (a redelivered message the node sends again),
// and when it owes the node an ACK (with acks: cumulative, by the node's sequence) or a CREDIT
// (its receive window: granted back once half of it is handled). No socket: the connection
// decodes, asks here, calls the handler, and sends what is owed.
// @threadsafe subscription_table: under client::impl::m (senders subscribe; the I/O thread looks
// up). receipts: the I/O thread only.
#pragma once

#include <flowbus/codec/types.hpp>
#include <flowbus/codec/message.hpp>
#include <flowbus/scheduling/dedup_window.hpp>
#include <flowbus/transport/client.hpp>

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace flowbus::transport::detail {

class subscription_table {
public:
  struct subscription {
    std::string pattern, group;
    message_handler handler;
  };

  /// Adds (pattern, group), or gives an existing one the new handler.
  void add(const std::string& pattern, const std::string& group, message_handler h);
  void remove(const std::string& pattern, const std::string& group);
  /// The handler of the first subscription (in subscribe order) whose pattern matches `topic`;
  /// else the fallback (on_message). Empty if none.
  message_handler handler_for(std::string_view topic) const;
  void set_fallback(message_handler h) { fallback_ = std::move(h); }
  /// In subscribe order (a reconnect subscribes again in this order).
  const std::list<subscription>& all() const noexcept { return subs_; }
  std::size_t size() const noexcept { return subs_.size(); }

private:
  static std::string key(const std::string& pattern, const std::string& group) { return pattern + '\x1f' + group; }
  std::list<subscription> subs_;
  /// finds one by pattern and group: unsubscribing is O(1), not O(subscriptions)
  std::unordered_map<std::string, std::list<subscription>::iterator> index_;
  message_handler fallback_;
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
