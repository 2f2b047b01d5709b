#include <flowbus/actors/routing_table.hpp>

#include <algorithm>

namespace flowbus::actors {

endpoint* pick(const member_set& set, balance policy) noexcept {
  const std::size_t n = set.members.size();
  if (n == 0) return nullptr;
  const std::size_t start = set.cursor->fetch_add(1, std::memory_order_relaxed) % n;
  endpoint* best = nullptr;
  std::uint64_t best_load = 0;
  for (std::size_t k = 0; k < n; ++k) {
    endpoint* e = set.members[(start + k) % n].get();
    if (!e->open()) continue;
    if (policy == balance::round_robin) return e;
    const std::uint64_t load = e->in_flight();
    if (!best || load < best_load) { // strict: ties stay with the earliest in round-robin order
      best = e;
      best_load = load;
    }
  }
  return best;
}

endpoint* pick(const member_set& set) noexcept { return pick(set, set.policy); }

void routing_table::add_member(member_set& set, const std::shared_ptr<endpoint>& ep) {
  auto it = std::lower_bound(set.members.begin(), set.members.end(), ep->id(),
                             [](const std::shared_ptr<endpoint>& e, subscriber_id id) { return e->id() < id; });
  if (it == set.members.end() || (*it)->id() != ep->id()) set.members.insert(it, ep);
}

bool routing_table::remove_member(member_set& set, subscriber_id id) {
  auto it = std::find_if(set.members.begin(), set.members.end(), [&](const auto& e) { return e->id() == id; });
  if (it == set.members.end()) return false;
  set.members.erase(it);
  return true;
}

void routing_table::add_agent(const std::shared_ptr<endpoint>& ep) {
  agents_[ep->id()] = ep;
  by_name_[ep->agent_id()] = ep.get();
  for (const std::string& c : ep->capabilities())
    add_member(by_capability_[c], ep);
  if (!ep->agent_type().empty()) add_member(by_type_[ep->agent_type()], ep);
}

std::size_t routing_table::remove_agent(subscriber_id id) {
  const auto it = agents_.find(id);
  if (it == agents_.end()) return 0;
  const std::shared_ptr<endpoint> ep = it->second;
  std::size_t removed = index_.remove_subscriber(id);
  if (auto m = memberships_.find(id); m != memberships_.end()) {
    const std::vector<subscriber_id> gids(m->second.begin(), m->second.end()); // leave_group edits the set
    for (subscriber_id gid : gids)
      removed += leave_group(gid, id) ? 1 : 0;
  }
  auto drop_from = [&](auto& map, const std::string& key) {
    if (auto s = map.find(key); s != map.end() && remove_member(s->second, id) && s->second.members.empty())
      map.erase(s);
  };
  for (const std::string& c : ep->capabilities())
    drop_from(by_capability_, c);
  if (!ep->agent_type().empty()) drop_from(by_type_, ep->agent_type());
  by_name_.erase(ep->agent_id());
  agents_.erase(it);
  return removed;
}

topic_errc routing_table::subscribe(std::string_view pattern, subscriber_id id) {
  if (!agents_.count(id)) return topic_errc::ok; // gone meanwhile: nothing to route to
  return index_.subscribe(pattern, id);
}

topic_errc routing_table::subscribe_group(std::string_view pattern, std::string_view group, balance policy,
                                          subscriber_id id) {
  const topic_errc e = validate_pattern(pattern);
  if (e != topic_errc::ok) return e;
  const auto ep = agents_.find(id);
  if (ep == agents_.end()) return topic_errc::ok;
  std::string key(pattern);
  key += '\x1f';
  key += group;
  auto [git, fresh] = group_ids_.try_emplace(key, next_group_);
  if (fresh) {
    ++next_group_; // deterministic: both left-right copies allocate the same ids in the same order
    group_entry& g = groups_[git->second];
    g.pattern.assign(pattern);
    g.key = key;
    g.set.policy = policy;
    index_.subscribe(pattern, git->second);
  }
  group_entry& g = groups_[git->second];
  add_member(g.set, ep->second);
  memberships_[id].insert(git->second);
  return topic_errc::ok;
}

bool routing_table::leave_group(subscriber_id gid, subscriber_id id) {
  const auto g = groups_.find(gid);
  if (g == groups_.end() || !remove_member(g->second.set, id)) return false;
  if (auto m = memberships_.find(id); m != memberships_.end()) {
    m->second.erase(gid);
    if (m->second.empty()) memberships_.erase(m);
  }
  if (g->second.set.members.empty()) { // the last member left: the group is gone
    index_.unsubscribe(g->second.pattern, gid);
    group_ids_.erase(g->second.key);
    groups_.erase(g);
  }
  return true;
}

bool routing_table::unsubscribe(std::string_view pattern, std::string_view group, subscriber_id id) {
  if (group.empty()) return index_.unsubscribe(pattern, id);
  std::string key(pattern);
  key += '\x1f';
  key += group;
  const auto it = group_ids_.find(key);
  return it != group_ids_.end() && leave_group(it->second, id);
}

void routing_table::resolve(std::string_view topic, scratch& s, route& out) const {
  out.direct.clear();
  out.groups.clear();
  index_.collect(topic, s.match, s.ids);
  for (subscriber_id id : s.ids) {
    if (id >= group_id_base) {
      if (auto g = groups_.find(id); g != groups_.end()) out.groups.push_back(g->second.set);
    } else if (auto a = agents_.find(id); a != agents_.end()) {
      out.direct.push_back(a->second);
    }
  }
}

endpoint* routing_table::agent(std::string_view agent_id) const noexcept {
  const auto it = by_name_.find(agent_id);
  return it == by_name_.end() ? nullptr : it->second;
}

const member_set* routing_table::capable(std::string_view capability) const noexcept {
  const auto it = by_capability_.find(capability);
  return it == by_capability_.end() ? nullptr : &it->second;
}

} // namespace flowbus::actors
