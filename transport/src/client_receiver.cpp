#include "client_receiver.hpp"

#include <flowbus/codec/topic.hpp> // pattern_matches

#include <algorithm>

namespace flowbus::transport::detail {

void subscription_table::add(const std::string& pattern, const std::string& group, message_handler h) {
  auto [at, fresh] = index_.try_emplace(key(pattern, group));
  if (fresh) at->second = subs_.insert(subs_.end(), subscription{pattern, group, share(std::move(h))});
  else at->second->handler = share(std::move(h)); // the same subscription again: its handler is the new one
  changed();
}

void subscription_table::remove(const std::string& pattern, const std::string& group) {
  if (auto at = index_.find(key(pattern, group)); at != index_.end()) {
    subs_.erase(at->second);
    index_.erase(at);
    changed();
  }
}

void subscription_table::set_fallback(message_handler h) {
  fallback_ = share(std::move(h));
  changed();
}

subscription_table::shared_handler subscription_table::handler_for(std::string_view topic) const {
  if (!topic.empty())
    for (const subscription& s : subs_)
      if (s.handler && codec::pattern_matches(s.pattern, topic)) return s.handler;
  return fallback_;
}

const handler_cache::shared_handler* handler_cache::find(std::string_view topic, std::uint64_t gen) {
  if (gen != gen_) {
    map_.clear();
    gen_ = gen;
    return nullptr;
  }
  key_.assign(topic);
  const auto it = map_.find(key_);
  return it == map_.end() ? nullptr : &it->second;
}

const handler_cache::shared_handler& handler_cache::put(std::string_view topic, std::uint64_t gen, shared_handler h) {
  if (gen != gen_ || map_.size() >= limit) {
    map_.clear();
    gen_ = gen;
  }
  return map_.insert_or_assign(std::string(topic), std::move(h)).first->second;
}

bool receipts::accept(const codec::message& m) {
  if (acks_) {
    last_seq_ = m.sequence;
    ack_due_ = true;
  }
  if (!m.has(codec::field::message_id)) return true;
  if (dedup_.check(m.str(codec::field::source), m.message_id()) != scheduling::dedup_window::verdict::duplicate)
    return true;
  return retrying_.erase(retry_key(m)) > 0; // a message our handler failed comes again on purpose
}

void receipts::failed(const codec::message& m) {
  if (m.has(codec::field::message_id) && retrying_.size() < 4096) retrying_.insert(retry_key(m));
}

std::optional<std::uint64_t> receipts::ack_owed() noexcept {
  if (!ack_due_) return std::nullopt;
  ack_due_ = false;
  return last_seq_; // cumulative: every node frame up to this one
}

std::optional<std::uint32_t> receipts::credit_owed() noexcept {
  if (!consumed_ || consumed_ < std::max<std::uint32_t>(1, window_ / 2)) return std::nullopt;
  const std::uint32_t n = consumed_;
  consumed_ = 0;
  return n;
}

std::string receipts::retry_key(const codec::message& m) {
  return std::string(m.str(codec::field::source)) + '\0' + std::to_string(m.message_id());
}

} // namespace flowbus::transport::detail
