#include <flowbus/actors/agent_directory.hpp>

#include <algorithm>

namespace flowbus::actors {

const char* to_string(directory_errc e) noexcept {
  switch (e) {
  case directory_errc::ok:
    return "ok";
  case directory_errc::invalid_id:
    return "invalid agent id";
  case directory_errc::duplicate_id:
    return "agent id already registered";
  case directory_errc::unknown_agent:
    return "unknown agent";
  case directory_errc::invalid_interval:
    return "heartbeat interval must be positive and at most 24 h";
  }
  return "?";
}

directory_errc agent_directory::add(agent_info info, agent_clock::time_point now, subscriber_id& handle) {
  if (info.id.empty() || info.id.size() > max_topic_bytes) return directory_errc::invalid_id;
  if (info.heartbeat_interval.count() <= 0 || info.heartbeat_interval > max_heartbeat_interval)
    return directory_errc::invalid_interval;
  if (by_id_.count(info.id)) return directory_errc::duplicate_id;
  handle = next_handle_++;
  by_id_.emplace(info.id, handle);
  agents_.emplace(handle, record{std::move(info), now, 0});
  return directory_errc::ok;
}

directory_errc agent_directory::heartbeat(subscriber_id handle, agent_clock::time_point now) {
  const auto it = agents_.find(handle);
  if (it == agents_.end()) return directory_errc::unknown_agent;
  it->second.last_heartbeat = std::max(it->second.last_heartbeat, now);
  return directory_errc::ok;
}

directory_errc agent_directory::remove(subscriber_id handle) {
  const auto it = agents_.find(handle);
  if (it == agents_.end()) return directory_errc::unknown_agent;
  by_id_.erase(it->second.info.id);
  agents_.erase(it);
  return directory_errc::ok;
}

std::vector<std::pair<subscriber_id, agent_info>> agent_directory::expire(agent_clock::time_point now) {
  std::vector<std::pair<agent_clock::time_point, subscriber_id>> dead;
  for (const auto& [h, r] : agents_)
    if (now - r.last_heartbeat > r.info.heartbeat_interval * missed_allowed_) dead.emplace_back(r.last_heartbeat, h);
  std::sort(dead.begin(), dead.end());
  std::vector<std::pair<subscriber_id, agent_info>> out;
  for (const auto& d : dead) {
    auto it = agents_.find(d.second);
    out.emplace_back(d.second, std::move(it->second.info));
    by_id_.erase(out.back().second.id);
    agents_.erase(it);
  }
  return out;
}

std::optional<agent_clock::time_point> agent_directory::next_expiry() const {
  std::optional<agent_clock::time_point> next;
  for (const auto& [h, r] : agents_) {
    const auto t = r.last_heartbeat + r.info.heartbeat_interval * missed_allowed_;
    if (!next || t < *next) next = t;
  }
  return next;
}

const agent_directory::record* agent_directory::find(subscriber_id handle) const noexcept {
  const auto it = agents_.find(handle);
  return it == agents_.end() ? nullptr : &it->second;
}

std::optional<subscriber_id> agent_directory::find(std::string_view id) const {
  const auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

namespace {
template <class Pred>
std::vector<subscriber_id> select(const std::unordered_map<subscriber_id, agent_directory::record>& m, Pred p) {
  std::vector<subscriber_id> out;
  for (const auto& [h, r] : m)
    if (p(r)) out.push_back(h);
  std::sort(out.begin(), out.end());
  return out;
}
} // namespace

std::vector<subscriber_id> agent_directory::of_type(std::string_view type) const {
  return select(agents_, [&](const record& r) { return r.info.type == type; });
}

std::vector<subscriber_id> agent_directory::capable_of(std::string_view capability) const {
  return select(agents_, [&](const record& r) {
    return std::find(r.info.capabilities.begin(), r.info.capabilities.end(), capability) != r.info.capabilities.end();
  });
}

std::vector<subscriber_id> agent_directory::all() const {
  return select(agents_, [](const record&) { return true; });
}

void agent_directory::add_in_flight(subscriber_id handle, int delta) noexcept {
  const auto it = agents_.find(handle);
  if (it == agents_.end()) return;
  std::uint32_t& n = it->second.in_flight;
  n = delta < 0 && static_cast<std::uint32_t>(-delta) > n ? 0 : static_cast<std::uint32_t>(static_cast<int>(n) + delta);
}

std::optional<subscriber_id> agent_directory::pick(const std::vector<subscriber_id>& candidates, balance policy,
                                                   const std::string& key) {
  std::vector<subscriber_id> live;
  for (subscriber_id c : candidates)
    if (agents_.count(c)) live.push_back(c);
  if (live.empty()) return std::nullopt;
  std::size_t& cursor = cursors_[key];
  if (policy == balance::least_loaded) {
    std::uint32_t least = ~std::uint32_t{0};
    for (subscriber_id c : live)
      least = std::min(least, agents_.at(c).in_flight);
    live.erase(
        std::remove_if(live.begin(), live.end(), [&](subscriber_id c) { return agents_.at(c).in_flight != least; }),
        live.end());
  }
  return live[cursor++ % live.size()]; // round-robin among the remaining (all, or the least loaded)
}

} // namespace flowbus::actors
