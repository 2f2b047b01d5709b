#include "stream_consumers.hpp"

#include "record_file.hpp"
#include "stream_json.hpp"

#include <flowbus/codec/topic.hpp>
#include <flowbus/scheduling/retry.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

namespace flowbus::actors {

namespace {
constexpr std::uint64_t seq_mask = (std::uint64_t{1} << 48) - 1;
std::uint64_t token_of(std::uint16_t id, std::uint64_t seq) noexcept {
  return (std::uint64_t{id} << 48) | (seq & seq_mask);
}
} // namespace

struct consumer_set::consumer {
  struct entry {
    std::uint32_t deliveries = 0;
    clock::time_point due{}; ///< in flight: its ack deadline; else: when it is sent again
    bool in_flight = false;
  };
  consumer_config cfg;
  std::uint16_t id = 0;
  std::uint64_t next = 1;
  std::map<std::uint64_t, entry> pending;
  std::uint64_t delivered = 0, redelivered = 0, acked = 0, naked = 0, dead = 0;
  bool interest = false, dirty = false;
  clock::time_point last_interest{};

  consumer_status status() const {
    consumer_status s;
    s.config = cfg;
    s.next = next;
    s.ack_floor = pending.empty() ? next - 1 : pending.begin()->first - 1;
    s.pending = pending.size();
    s.delivered = delivered;
    s.redelivered = redelivered;
    s.acked = acked;
    s.naked = naked;
    s.dead = dead;
    s.interest = interest;
    return s;
  }
};

bool valid_consumer_name(const std::string& name) noexcept { return valid_stream_name(name); }

scheduling::destination deliver_destination(const consumer_config& c) noexcept {
  const std::string_view to = c.deliver_to;
  return to.rfind("agent:", 0) == 0 ? scheduling::destination::agent(to.substr(6)) : scheduling::destination::topic(to);
}

consumer_set::consumer_set(std::filesystem::path dir) : dir_(std::move(dir)) {}
consumer_set::~consumer_set() = default;

std::optional<consumer_set::state_file> consumer_set::state_of(const consumer& c) const {
  if (dir_.empty() || !c.cfg.durable) return std::nullopt;
  nlohmann::json pending = nlohmann::json::array();
  for (const auto& [seq, e] : c.pending)
    pending.push_back({seq, e.deliveries});
  const nlohmann::json j{{"config", to_json(c.cfg)}, {"next", c.next}, {"pending", std::move(pending)}};
  return state_file{c.cfg.name, dir_ / (c.cfg.name + ".json"), j.dump()};
}

void consumer_set::save(const consumer& c) const {
  const auto f = state_of(c);
  if (!f) return;
  if (const std::error_code e = detail::make_directories(dir_)) throw std::system_error(e, dir_.string());
  detail::write_file_atomically(f->path, f->text);
}

std::vector<consumer_set::state_file> consumer_set::changed(bool force, clock::time_point now) {
  std::vector<state_file> out;
  if (!force && now - last_persist_ < std::chrono::milliseconds(100)) return out;
  last_persist_ = now;
  for (auto& [name, c] : consumers_) {
    if (!c->dirty) continue;
    c->dirty = false;
    if (auto f = state_of(*c)) out.push_back(std::move(*f));
  }
  return out;
}

void consumer_set::write(const state_file& f) noexcept {
  try {
    if (const std::error_code e = detail::make_directories(f.path.parent_path())) throw std::system_error(e, "mkdir");
    detail::write_file_atomically(f.path, f.text);
  } catch (const std::exception& e) {
    spdlog::error("flowbus: consumer {}: its position is not saved: {}", f.consumer, e.what());
  }
}

void consumer_set::load(const segment_log& log) {
  if (dir_.empty()) return;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir_, ec)) return;
  for (const auto& f : std::filesystem::directory_iterator(dir_, ec)) {
    if (f.path().extension() != ".json") continue;
    try {
      std::string text;
      if (const std::error_code e = detail::read_file(f.path(), text)) throw std::system_error(e, "read");
      const nlohmann::json j = nlohmann::json::parse(text);
      consumer_config cfg = parse_consumer_config(j.at("config"));
      if (!valid_consumer_name(cfg.name) || !cfg.durable) throw std::invalid_argument("not a durable consumer");
      auto c = std::make_unique<consumer>();
      c->cfg = std::move(cfg);
      c->next = std::max<std::uint64_t>(j.at("next").get<std::uint64_t>(), 1);
      for (const auto& p : j.at("pending")) // sent before the restart, not acked: sent again now
        c->pending[p.at(0).get<std::uint64_t>()] = consumer::entry{p.at(1).get<std::uint32_t>(), {}, false};
      if (c->next < log.first()) c->next = log.first();
      const std::string name = c->cfg.name;
      consumers_.erase(name);
      consumers_.emplace(name, std::move(c));
    } catch (const std::exception& e) {
      spdlog::error("flowbus: consumer state {} not read ({}): skipped", f.path().string(), e.what());
    }
  }
  for (auto& [name, c] : consumers_)
    c->id = next_id_++;
}

consumer_status consumer_set::add(consumer_config c, const segment_log& log, clock::time_point now) {
  if (c.deliver_to.empty()) throw std::invalid_argument("'deliver_to': a topic or agent:ID");
  if (const scheduling::destination to = deliver_destination(c); to.what == scheduling::destination::kind::agent) {
    if (to.name.empty()) throw std::invalid_argument("'deliver_to': agent: names no agent");
  } else if (codec::validate_topic(c.deliver_to) != codec::topic_errc::ok) {
    throw std::invalid_argument("'deliver_to': '" + c.deliver_to + "' is not a topic (no wildcards) or agent:ID");
  }
  if (!c.filter.empty() && codec::validate_pattern(c.filter) != codec::topic_errc::ok)
    throw std::invalid_argument("'filter': '" + c.filter + "' is not a topic pattern");
  if (c.durable && !valid_consumer_name(c.name))
    throw std::invalid_argument("'name': 1-64 letters, digits, '_' or '-'");
  if (!c.durable) {
    if (c.name.empty())
      c.name = "ephemeral-" + std::to_string(next_ephemeral_++);
    else if (!valid_consumer_name(c.name))
      throw std::invalid_argument("'name': 1-64 letters, digits, '_' or '-'");
  }
  if (auto it = consumers_.find(c.name); it != consumers_.end()) {
    consumer& old = *it->second;
    if (!old.cfg.durable || !c.durable) throw std::invalid_argument("consumer " + c.name + " exists");
    // a durable consumer bound again: new delivery settings, the same position
    const consumer_config::start_at start = old.cfg.start;
    const std::uint64_t start_seq = old.cfg.start_seq, start_time = old.cfg.start_time_ns;
    old.cfg = std::move(c);
    old.cfg.start = start;
    old.cfg.start_seq = start_seq;
    old.cfg.start_time_ns = start_time;
    old.last_interest = now;
    save(old);
    return old.status();
  }
  if (consumers_.size() >= 65535) throw std::invalid_argument("a stream has at most 65535 consumers");
  auto n = std::make_unique<consumer>();
  n->cfg = std::move(c);
  switch (n->cfg.start) {
  case consumer_config::start_at::first:
    n->next = log.first();
    break;
  case consumer_config::start_at::last:
    n->next = log.last() ? log.last() : 1;
    break;
  case consumer_config::start_at::new_only:
    n->next = log.last() + 1;
    break;
  case consumer_config::start_at::sequence:
    n->next = std::max({n->cfg.start_seq, log.first(), std::uint64_t{1}});
    break;
  case consumer_config::start_at::time:
    n->next = log.seq_at_time(n->cfg.start_time_ns);
    break;
  }
  for (bool used = true; used;) { // an id no consumer has: the high bits of its delivery tokens
    if (next_id_ == 0) next_id_ = 1;
    used = std::any_of(consumers_.begin(), consumers_.end(), [&](const auto& e) { return e.second->id == next_id_; });
    if (used) ++next_id_;
  }
  n->id = next_id_++;
  n->last_interest = now;
  save(*n);
  const std::string name = n->cfg.name;
  return consumers_.emplace(name, std::move(n)).first->second->status();
}

bool consumer_set::remove(std::string_view name) {
  const auto it = consumers_.find(name);
  if (it == consumers_.end()) return false;
  if (!dir_.empty() && it->second->cfg.durable) {
    std::error_code ec;
    std::filesystem::remove(dir_ / (it->second->cfg.name + ".json"), ec);
  }
  consumers_.erase(it);
  return true;
}

std::optional<consumer_status> consumer_set::status(std::string_view name) const {
  const auto it = consumers_.find(name);
  if (it == consumers_.end()) return std::nullopt;
  return it->second->status();
}

std::vector<consumer_status> consumer_set::all() const {
  std::vector<consumer_status> out;
  for (const auto& [name, c] : consumers_)
    out.push_back(c->status());
  return out;
}

namespace {
/// Calls f(record) with record `seq` if the log still has it (retention may have taken it).
template <class F> bool with_record(const segment_log& log, std::uint64_t seq, F&& f) {
  bool found = false;
  log.read(seq, 1, [&](const log_record& r) {
    if (r.seq == seq) found = true, f(r);
    return false;
  });
  return found;
}
} // namespace

bool consumer_set::on_reply(std::uint64_t token, std::string_view payload, const segment_log& log, consumer_io& io,
                            clock::time_point now) {
  const auto id = static_cast<std::uint16_t>(token >> 48);
  const std::uint64_t seq = token & seq_mask;
  for (auto& [name, c] : consumers_) {
    if (c->id != id) continue;
    const auto it = c->pending.find(seq);
    if (it == c->pending.end()) return false;
    consumer::entry& e = it->second;
    if (payload.rfind("-NAK", 0) == 0) { // again, after the backoff
      ++c->naked;
      e.in_flight = false;
      e.due = now + scheduling::full_jitter(e.deliveries, c->cfg.backoff, c->cfg.backoff_max, rng_);
      return true;
    }
    if (payload.rfind("+WPI", 0) == 0) { // still working on it: a new ack wait
      e.due = now + c->cfg.ack_wait;
      return true;
    }
    if (payload.rfind("+TERM", 0) == 0) { // never again: the poison DLQ keeps it
      with_record(log, seq, [&](const log_record& r) { io.poison(c->cfg, r, e.deliveries); });
      ++c->dead;
    } else {
      ++c->acked; // "", "+ACK", or anything else
    }
    c->pending.erase(it);
    c->dirty = true;
    return true;
  }
  return false;
}

consumer_set::clock::time_point consumer_set::pump(const segment_log& log, std::uint64_t durable, consumer_io& io,
                                                   clock::time_point now) {
  clock::time_point next_due = clock::time_point::max();
  for (auto ci = consumers_.begin(); ci != consumers_.end();) {
    consumer& c = *ci->second;
    c.interest = io.has_interest(c.cfg);
    if (c.interest) {
      c.last_interest = now;
    } else {
      if (!c.cfg.durable && now - c.last_interest >= c.cfg.inactive) {
        ci = consumers_.erase(ci); // nobody listens any more
        continue;
      }
      ++ci;
      continue;
    }
    if (c.next < log.first()) c.next = log.first();
    bool refused = false;
    // what waits for its ack or its redelivery
    for (auto it = c.pending.begin(); it != c.pending.end() && !refused;) {
      consumer::entry& e = it->second;
      if (e.due > now) {
        next_due = std::min(next_due, e.due);
        ++it;
        continue;
      }
      if (e.in_flight) { // its ack wait has passed
        e.in_flight = false;
        if (c.cfg.max_deliver && e.deliveries >= c.cfg.max_deliver) {
          with_record(log, it->first, [&](const log_record& r) { io.poison(c.cfg, r, e.deliveries); });
          ++c.dead;
          c.dirty = true;
          it = c.pending.erase(it);
          continue;
        }
        e.due = now + scheduling::full_jitter(e.deliveries, c.cfg.backoff, c.cfg.backoff_max, rng_);
        if (e.due > now) {
          next_due = std::min(next_due, e.due);
          ++it;
          continue;
        }
      }
      consumer_io::outcome o = consumer_io::outcome::filtered; // (if retention took it)
      with_record(log, it->first,
                  [&](const log_record& r) { o = io.deliver(c.cfg, r, token_of(c.id, it->first), e.deliveries + 1); });
      if (o == consumer_io::outcome::filtered) { // gone, or no longer for this consumer
        c.dirty = true;
        it = c.pending.erase(it);
        continue;
      }
      if (o == consumer_io::outcome::refused) {
        refused = true;
        break;
      }
      ++e.deliveries;
      ++c.redelivered;
      e.in_flight = true;
      e.due = now + c.cfg.ack_wait;
      next_due = std::min(next_due, e.due);
      ++it;
    }
    // new records, up to the durable mark and the window
    while (!refused && c.pending.size() < c.cfg.max_in_flight && c.next <= durable) {
      const std::size_t room = std::min<std::size_t>(c.cfg.max_in_flight - c.pending.size(), 256);
      const std::uint64_t before = c.next;
      const std::size_t got = log.read(c.next, room, [&](const log_record& r) {
        if (r.seq > durable) return false;
        const auto o = io.deliver(c.cfg, r, token_of(c.id, r.seq), 1);
        if (o == consumer_io::outcome::refused) {
          refused = true;
          return false;
        }
        if (o == consumer_io::outcome::sent) {
          c.pending[r.seq] = consumer::entry{1, now + c.cfg.ack_wait, true};
          ++c.delivered;
          next_due = std::min(next_due, now + c.cfg.ack_wait);
        }
        c.next = r.seq + 1;
        c.dirty = true;
        return c.pending.size() < c.cfg.max_in_flight;
      });
      if (got == 0 || c.next == before) break; // nothing more up to the mark (or only a gap)
    }
    if (refused) next_due = std::min(next_due, now + std::chrono::milliseconds(50)); // try again soon
    ++ci;
  }
  return next_due;
}

void consumer_set::persist(bool force, clock::time_point now) {
  for (const state_file& f : changed(force, now))
    write(f);
}

} // namespace flowbus::actors
