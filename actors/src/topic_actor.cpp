// Topic actors own the subscriber sets of subscription patterns: which agents subscribed to a
// pattern, plainly or in which queue group, and they are the ones that write those entries into
// the routing table. A node runs a fixed number of them (node_config::topic_shards) and a pattern
// always goes to the same one (a hash of the pattern), so changes on different patterns proceed
// on different actors while one pattern's changes stay in order.
//
// Why shards and not one actor per pattern (docs/architecture.md): unique inbox topics come and
// go by the thousand. One actor per pattern cost ~2 KiB each while it lived, and a connection
// closing with 100 000 subscriptions made 100 000 actors ready at once — CAF 0.17's
// work-stealing queue steals from its tail in O(length), so that close took 51 s of node CPU.
// A shard holds a pattern as a map entry, forgets an agent in O(its patterns), and the ready
// queue never holds more than the shards.
#include "cluster_impl.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

namespace flowbus::actors {

struct topic_shard_state {
  /// pattern -> (agent, queue group or "")
  std::unordered_map<std::string, std::set<std::pair<subscriber_id, std::string>>> members;
  /// agent -> its patterns here, each with how many memberships (groups) it has in it
  std::unordered_map<subscriber_id, std::unordered_map<std::string, std::uint32_t>> of_agent;
  /// with a cluster: (pattern, group) -> members here; the cluster actor hears of 0 <-> 1
  std::map<std::pair<std::string, std::string>, std::uint32_t> interest;
  static inline const char* name = "flowbus.topic";
};

namespace {
using topic_actor_t = caf::stateful_actor<topic_shard_state>;

/// This node's interest in (pattern, group) grew or shrank by one member: the other nodes hear of
/// its first and its last (cluster.cpp), so a frame crosses a link only where someone waits.
void interest(topic_actor_t* self, node::impl* core, const std::string& pattern, const std::string& group, bool add) {
  if (!core->cluster) return;
  auto& counts = self->state.interest;
  const auto key = std::make_pair(pattern, group);
  if (add) {
    if (++counts[key] == 1) self->send(core->cluster, interest_atom::value, pattern, group, true);
  } else if (auto it = counts.find(key); it != counts.end() && --it->second == 0) {
    counts.erase(it);
    self->send(core->cluster, interest_atom::value, pattern, group, false);
  }
}

/// Whether `h` still has a membership in `pattern` here.
bool member(const topic_shard_state& st, subscriber_id h, const std::string& pattern) {
  const auto a = st.of_agent.find(h);
  return a != st.of_agent.end() && a->second.count(pattern) != 0;
}

caf::behavior topic_actor(topic_actor_t* self, node::impl* core) {
  self->set_default_handler(caf::drop);
  return {
      [=](subscribe_atom, subscriber_id h, const std::string& pattern, const std::string& group,
          std::uint8_t policy) -> std::uint8_t {
        topic_shard_state& st = self->state;
        if (st.members[pattern].emplace(h, group).second) {
          ++st.of_agent[h][pattern];
          interest(self, core, pattern, group, true);
        }
        core->routes.modify([&](routing_table& t) {
          if (group.empty())
            t.subscribe(pattern, h);
          else
            t.subscribe_group(pattern, group, static_cast<balance>(policy), h);
        });
        return static_cast<std::uint8_t>(errc::ok);
      },
      // answers the outcome and whether the agent still has a membership in the pattern (another group)
      [=](unsubscribe_atom, subscriber_id h, const std::string& pattern,
          const std::string& group) -> std::tuple<std::uint8_t, bool> {
        topic_shard_state& st = self->state;
        const auto m = st.members.find(pattern);
        if (m == st.members.end() || m->second.erase({h, group}) == 0)
          return {static_cast<std::uint8_t>(errc::not_subscribed), member(st, h, pattern)};
        if (m->second.empty()) st.members.erase(m);
        interest(self, core, pattern, group, false);
        auto& mine = st.of_agent[h];
        if (auto p = mine.find(pattern); p != mine.end() && --p->second == 0) mine.erase(p);
        if (mine.empty()) st.of_agent.erase(h);
        core->routes.modify([&](routing_table& t) { t.unsubscribe(pattern, group, h); });
        return {static_cast<std::uint8_t>(errc::ok), member(st, h, pattern)};
      },
      [=](forget_atom, subscriber_id h) { // the agent is gone; the directory removed its routes
        topic_shard_state& st = self->state;
        const auto a = st.of_agent.find(h);
        if (a == st.of_agent.end()) return;
        for (const auto& [pattern, n] : a->second) {
          const auto m = st.members.find(pattern);
          if (m == st.members.end()) continue;
          for (auto it = m->second.lower_bound({h, std::string()}); it != m->second.end() && it->first == h;) {
            interest(self, core, pattern, it->second, false);
            it = m->second.erase(it);
          }
          if (m->second.empty()) st.members.erase(m);
        }
        st.of_agent.erase(a);
      },
      [=](topics_atom) {
        std::vector<std::string> out;
        out.reserve(self->state.members.size());
        for (const auto& m : self->state.members)
          out.push_back(m.first);
        return out;
      },
      [=](stop_atom) { self->quit(); },
  };
}
} // namespace

caf::actor spawn_topic_shard(caf::local_actor* parent, node::impl* core) { return parent->spawn(topic_actor, core); }

} // namespace flowbus::actors
