#include <flowbus/actors/routing_table.hpp>

#include <algorithm>

namespace flowbus::actors {

namespace {
/// One pass over the members of one kind (local, or links to other nodes).
endpoint* pick_among(const member_set& set, balance policy, bool remote, std::size_t start) noexcept {
  const std::size_t n = set.members.size();
  endpoint* best = nullptr;
  std::uint64_t best_load = 0;
  for (std::size_t k = 0; k < n; ++k) {
    endpoint* e = set.members[(start + k) % n].get();
    if (e->remote() != remote || !e->open()) continue;
    if (policy == balance::round_robin) return e;
    const std::uint64_t load = e->in_flight();
    if (!best || load < best_load) { // strict: ties stay with the earliest in round-robin order
      best = e;
      best_load = load;
    }
  }
  return best;
}
} // namespace

endpoint* pick(const member_set& set, balance policy) noexcept {
  const std::size_t n = set.members.size();
  if (n == 0) return nullptr;
  const std::size_t start = set.cursor->fetch_add(1, std::memory_order_relaxed) % n;
  if (endpoint* e = pick_among(set, policy, false, start)) return e;
  return pick_among(set, policy, true, start);
}

endpoint* pick(const member_set& set) noexcept { return pick(set, set.policy); }

endpoint* pick_local(const member_set& set) noexcept {
  const std::size_t n = set.members.size();
  if (n == 0) return nullptr;
  return pick_among(set, set.policy, false, set.cursor->fetch_add(1, std::memory_order_relaxed) % n);
}

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

std::size_t routing_table::drop_interest(subscriber_id id) {
  std::size_t removed = index_.remove_subscriber(id);
  if (auto m = memberships_.find(id); m != memberships_.end()) {
    const std::vector<subscriber_id> gids(m->second.begin(), m->second.end()); // leave_group edits the set
    for (subscriber_id gid : gids)
      removed += leave_group(gid, id) ? 1 : 0;
  }
  return removed;
}

std::size_t routing_table::remove_agent(subscriber_id id) {
  const auto it = agents_.find(id);
  if (it == agents_.end()) return 0;
  const std::shared_ptr<endpoint> ep = it->second;
  const std::size_t removed = drop_interest(id);
  for (const std::string& c : ep->capabilities())
    drop_capability(c, id);
  if (!ep->agent_type().empty())
    if (auto s = by_type_.find(ep->agent_type()); s != by_type_.end() && remove_member(s->second, id) &&
                                                  s->second.members.empty())
      by_type_.erase(s);
  by_name_.erase(ep->agent_id());
  agents_.erase(it);
  return removed;
}

const std::shared_ptr<endpoint>* routing_table::subscribable(subscriber_id id) const noexcept {
  if (auto a = agents_.find(id); a != agents_.end()) return &a->second;
  if (auto p = peers_.find(id); p != peers_.end()) return &p->second.ep;
  return nullptr;
}

topic_errc routing_table::subscribe(std::string_view pattern, subscriber_id id) {
  if (!subscribable(id)) return topic_errc::ok; // gone meanwhile: nothing to route to
  return index_.subscribe(pattern, id);
}

topic_errc routing_table::subscribe_group(std::string_view pattern, std::string_view group, balance policy,
                                          subscriber_id id) {
  const topic_errc e = validate_pattern(pattern);
  if (e != topic_errc::ok) return e;
  const std::shared_ptr<endpoint>* ep = subscribable(id);
  if (!ep) return topic_errc::ok;
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
  add_member(g.set, *ep);
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

std::vector<std::string> routing_table::interest_of(subscriber_id id) const {
  std::vector<std::string> out = index_.patterns_of(id);
  if (auto it = memberships_.find(id); it != memberships_.end())
    for (subscriber_id gid : it->second)
      if (auto g = groups_.find(gid); g != groups_.end())
        out.push_back(g->second.pattern + ' ' + g->second.key.substr(g->second.key.find('\x1f') + 1));
  std::sort(out.begin(), out.end());
  return out;
}

void routing_table::resolve(std::string_view topic, scratch& s, route& out) const {
  out.direct.clear();
  out.groups.clear();
  index_.collect(topic, s.match, s.ids);
  for (subscriber_id id : s.ids) {
    if (id >= group_id_base) {
      if (auto g = groups_.find(id); g != groups_.end()) out.groups.push_back(g->second.set);
    } else if (const std::shared_ptr<endpoint>* ep = subscribable(id)) {
      out.direct.push_back(*ep);
    }
  }
}

endpoint* routing_table::local_agent(std::string_view agent_id) const noexcept {
  const auto it = by_name_.find(agent_id);
  return it == by_name_.end() ? nullptr : it->second;
}

endpoint* routing_table::agent(std::string_view agent_id) const noexcept {
  if (endpoint* ep = local_agent(agent_id)) return ep;
  return remote_agents_.empty() ? nullptr : remote_agent(agent_id);
}

endpoint* routing_table::remote_agent(std::string_view agent_id) const noexcept {
  const auto it = remote_agents_.find(agent_id);
  if (it == remote_agents_.end()) return nullptr;
  const auto p = peers_.find(it->second.peer);
  return p == peers_.end() ? nullptr : p->second.ep.get();
}

const member_set* routing_table::group(std::string_view key) const noexcept {
  const auto it = group_ids_.find(std::string(key));
  if (it == group_ids_.end()) return nullptr;
  const auto g = groups_.find(it->second);
  return g == groups_.end() ? nullptr : &g->second.set;
}

void routing_table::add_peer(const std::shared_ptr<endpoint>& ep, bool main) { peers_[ep->id()] = peer_entry{ep, main}; }

void routing_table::drop_capability(const std::string& capability, subscriber_id id) {
  if (auto s = by_capability_.find(capability); s != by_capability_.end() && remove_member(s->second, id) &&
                                                 s->second.members.empty())
    by_capability_.erase(s);
}

void routing_table::remove_peer(subscriber_id id) {
  if (!peers_.count(id)) return;
  drop_interest(id);
  for (auto it = remote_agents_.begin(); it != remote_agents_.end();)
    it = it->second.peer == id ? remote_agents_.erase(it) : std::next(it);
  for (auto it = peer_capabilities_.lower_bound({id, std::string()}); it != peer_capabilities_.end() && it->first.first == id;) {
    drop_capability(it->first.second, id);
    it = peer_capabilities_.erase(it);
  }
  peers_.erase(id);
}

bool routing_table::add_remote_agent(const std::string& agent_id, const std::vector<std::string>& capabilities,
                                     subscriber_id peer) {
  const auto p = peers_.find(peer);
  if (p == peers_.end()) return false;
  if (auto old = remote_agents_.find(agent_id); old != remote_agents_.end()) // re-announced: the last one wins
    remove_remote_agent(agent_id, old->second.peer);
  remote_agents_[agent_id] = remote_entry{peer, capabilities};
  for (const std::string& c : capabilities)
    if (++peer_capabilities_[{peer, c}] == 1) add_member(by_capability_[c], p->second.ep);
  return true;
}

void routing_table::remove_remote_agent(const std::string& agent_id, subscriber_id peer) {
  const auto it = remote_agents_.find(agent_id);
  if (it == remote_agents_.end() || it->second.peer != peer) return;
  for (const std::string& c : it->second.capabilities)
    if (auto n = peer_capabilities_.find({peer, c}); n != peer_capabilities_.end() && --n->second == 0) {
      peer_capabilities_.erase(n);
      drop_capability(c, peer);
    }
  remote_agents_.erase(it);
}

const member_set* routing_table::capable(std::string_view capability) const noexcept {
  const auto it = by_capability_.find(capability);
  return it == by_capability_.end() ? nullptr : &it->second;
}

} // namespace flowbus::actors
