// Helpers shared by the codec suites: hex, and a random message generator for property tests.
#pragma once

#include <flowbus/codec/encoder.hpp>

#include <cctype>
#include <random>
#include <string>
#include <vector>

namespace flowbus::codec::test {

inline std::vector<byte> from_hex(const std::string& hex) {
  std::vector<byte> out;
  int hi = -1;
  for (char c : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) continue;
    const int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10);
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<byte>(hi * 16 + v));
      hi = -1;
    }
  }
  return out;
}

inline std::string to_hex(const byte* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    if (i) s += (i % 16 == 0) ? '\n' : ' ';
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

/// A random, valid message whose strings and payload live in the generator (valid until next()).
class message_gen {
public:
  explicit message_gen(std::uint64_t seed) : rng_(seed) {}

  message next() {
    storage_.clear();
    storage_.reserve(64); // string_views into storage_ must not move
    entries_.clear();
    message m;
    static constexpr msg_type types[] = {msg_type::task_assignment,
                                         msg_type::task_result,
                                         msg_type::coordination,
                                         msg_type::heartbeat,
                                         msg_type::register_agent,
                                         msg_type::welcome,
                                         msg_type::subscribe,
                                         msg_type::unsubscribe,
                                         msg_type::publish,
                                         msg_type::request,
                                         msg_type::reply,
                                         msg_type::ack,
                                         msg_type::nack,
                                         msg_type::error,
                                         msg_type::credit,
                                         msg_type::goodbye};
    m.type = types[pick(std::size(types))];
    m.prio = static_cast<priority>(pick(priority_count));
    m.flags = static_cast<std::uint8_t>(pick(16) & ~flag::has_deadline);
    m.timestamp_ns = rng_();
    for (std::uint8_t n = 1; n <= max_field_number; ++n) {
      const field_info* fi = describe(n);
      if (fi->repeated || pick(3) != 0) continue;
      if (fi->kind != wire_kind::varint)
        m.set(static_cast<field>(n), word());
      else
        m.set(static_cast<field>(n), number());
    }
    const std::size_t reps = pick(4) == 0 ? pick(6) : 0;
    for (std::size_t i = 0; i < reps; ++i) {
      static constexpr field rf[] = {field::header, field::capability, field::subscription};
      const field id = rf[pick(3)];
      entries_.push_back({id, word(), id == field::header ? word() : std::string_view{}});
    }
    m.repeated = repeated_fields(entries_.data(), entries_.size());
    // satisfy the type's requirements
    const type_info* t = describe(m.type);
    for (std::uint8_t n = 1; n <= max_field_number; ++n) {
      const auto f = static_cast<field>(n);
      if ((t->required & bit(f)) && !m.has(f)) {
        if (describe(f)->kind != wire_kind::varint)
          m.set(f, word());
        else
          m.set(f, number());
      }
    }
    if (t->needs_destination && !m.has(field::topic) && !m.has(field::target)) m.set_topic(word());
    payload_.resize(pick(4) == 0 ? pick(2000) : pick(300));
    for (auto& b : payload_)
      b = static_cast<byte>(rng_());
    m.payload = bytes_view(payload_.data(), payload_.size());
    return m;
  }

  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }

private:
  std::string_view word() {
    // A small vocabulary so strings repeat and exercise the pool, plus some unique ones.
    static const char* vocab[] = {"agent.worker.7.status",
                                  "agent.coordinator.task.assign",
                                  "w",
                                  "",
                                  "summarize",
                                  "tenant",
                                  "agent-42",
                                  "results.>",
                                  "tasks.*.new",
                                  "x-trace-id"};
    if (pick(4) != 0) return vocab[pick(std::size(vocab))];
    std::string s(pick(300), 'a');
    for (auto& c : s)
      c = static_cast<char>('a' + pick(26));
    storage_.push_back(std::move(s));
    return storage_.back();
  }
  std::uint64_t number() {
    switch (pick(4)) {
    case 0:
      return pick(128);
    case 1:
      return rng_() >> pick(64);
    case 2:
      return ~std::uint64_t{0};
    default:
      return pick(1u << 20);
    }
  }

  std::mt19937_64 rng_;
  std::vector<std::string> storage_;
  std::vector<repeated_entry> entries_;
  std::vector<byte> payload_;
};

/// Field-by-field equality of what the encoder was given and what the decoder returned.
inline bool same_message(const message& a, const message& b) {
  if (a.type != b.type || a.prio != b.prio || a.flags != b.flags || a.timestamp_ns != b.timestamp_ns ||
      a.sequence != b.sequence || a.present_mask() != b.present_mask() || a.payload != b.payload ||
      a.repeated.size() != b.repeated.size())
    return false;
  for (std::uint8_t n = 1; n <= max_field_number; ++n) {
    const auto f = static_cast<field>(n);
    const field_info* fi = describe(f);
    if (fi->repeated || !a.has(f)) continue;
    if (fi->kind != wire_kind::varint ? a.str(f) != b.str(f) : a.num(f) != b.num(f)) return false;
  }
  auto i = a.repeated.begin();
  for (auto j = b.repeated.begin(); j != b.repeated.end(); ++i, ++j)
    if (!(*i == *j)) return false;
  return true;
}

} // namespace flowbus::codec::test
