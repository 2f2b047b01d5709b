// The directory: the one actor that knows every agent. Registration, subscriptions, heartbeats and
// departures arrive here as CAF messages. It adds and removes agents in the routing table itself
// and forwards subscriptions to the topic actor of their pattern (topic_actor.cpp: a fixed set of
// shards, a pattern always to the same one), which owns that pattern's subscriber set; every
// change reaches the data path through left_right::modify
// (publishers never wait for it). A timer at
// the earliest possible expiry marks agents that stopped heartbeating as down.
#include "cluster_impl.hpp"

#include <flowbus/actors/actor_mailbox.hpp>
#include <flowbus/scheduling/lanes.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/send.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>

#include <malloc.h>

namespace flowbus::actors {

namespace {
struct entry {
  std::shared_ptr<endpoint> ep;
  caf::actor actor; ///< none for a client
  balance group_balance;
};
} // namespace

struct directory_state {
  agent_directory agents;
  std::unordered_map<subscriber_id, entry> entries;
  std::vector<caf::actor> shards; ///< the topic actors; a pattern's is shards[hash % size]
  /// agent -> the patterns it is (or may be) subscribed to, each with the count of subscribes
  /// forwarded for it: an unsubscribe's answer removes the pattern only if no subscribe for it
  /// was forwarded meanwhile (bounded by what the agent holds now, not what it ever used)
  std::unordered_map<subscriber_id, std::unordered_map<std::string, std::uint64_t>> patterns_of;
  /// whose actor a down_msg is about, in O(1) (a scan per down_msg is quadratic under churn)
  std::unordered_map<caf::actor_id, subscriber_id> agent_by_actor;
  std::optional<agent_clock::time_point> tick_at;
  bool trim_armed = false; ///< a trim_atom is on its way
  static inline const char* name = "flowbus.directory";
};

namespace {
using dir_actor = caf::stateful_actor<directory_state>;

void schedule_tick(dir_actor* self) {
  const auto next = self->state.agents.next_expiry();
  if (!next || (self->state.tick_at && *self->state.tick_at <= *next)) return;
  self->state.tick_at = *next;
  const auto wait = std::max(agent_clock::duration::zero(), *next - agent_clock::now());
  self->delayed_send(self, wait, tick_atom::value);
}

/// Memory freed by churn (unique inbox topics, agents with many subscriptions)
/// stays resident in the allocator's arenas: glibc gives back only the top of each heap. After a
/// burst of frees the directory asks it to return free pages (malloc_trim) a second after the
/// first drop and once more a second later (see trim_atom), so at most once a second while
/// subscriptions are being dropped and never while none are — a few ms off the data path, and
/// the node's resident memory returns to its baseline (tests/transport/churn.test.cpp).
void trim_soon(dir_actor* self) {
  if (self->state.trim_armed) return;
  self->state.trim_armed = true;
  self->delayed_send(self, std::chrono::seconds(1), trim_atom::value, false);
}

/// The agent is gone (left, missed heartbeats, its actor ended, its id won by another node):
/// nothing routes to it any more. `why` is what its actor is told.
void take_down(dir_actor* self, node::impl* core, subscriber_id h, bool tell_actor, errc why = errc::agent_unavailable) {
  const auto it = self->state.entries.find(h);
  if (it == self->state.entries.end()) return;
  self->state.agents.remove(h);
  it->second.ep->close();
  if (core->cluster) {
    const endpoint& ep = *it->second.ep;
    self->send(core->cluster, lagent_atom::value, agent_entry(ep.agent_id(), ep.agent_type(), ep.capabilities()), false);
  }
  core->routes.modify([h](routing_table& t) { t.remove_agent(h); });
  // the topic actors drop it from their sets (after any subscribe forwarded earlier: same
  // channel); each in O(its patterns there), one message per shard
  if (auto p = self->state.patterns_of.find(h); p != self->state.patterns_of.end()) {
    for (const auto& shard : self->state.shards)
      self->send(shard, forget_atom::value, h);
    trim_soon(self);
    self->state.patterns_of.erase(p);
  }
  if (it->second.actor) {
    self->state.agent_by_actor.erase(it->second.actor.id());
    if (tell_actor) self->send(it->second.actor, down_atom::value, static_cast<std::uint8_t>(why));
  }
  self->state.entries.erase(it);
}

const caf::actor& shard_of(dir_actor* self, const std::string& pattern) {
  const auto& s = self->state.shards;
  return s[std::hash<std::string>{}(pattern) % s.size()];
}

/// Forwards a subscription to its pattern's topic actor; `done` runs with its answer.
template <class Done>
void forward_subscribe(dir_actor* self, subscriber_id h, const std::string& pattern, const std::string& group,
                       balance policy, Done done) {
  ++self->state.patterns_of[h][pattern];
  self->request(shard_of(self, pattern), caf::infinite, subscribe_atom::value, h, pattern, group,
                static_cast<std::uint8_t>(policy))
      .then([=](std::uint8_t code) mutable { done(static_cast<errc>(code)); },
            [=](caf::error&) mutable { done(errc::node_stopped); });
}

errc check(const agent_spec& s, std::size_t max_subscriptions) {
  if (s.subscriptions.size() + s.queue_groups.size() > max_subscriptions) return errc::too_many_subscriptions;
  for (const std::string& p : s.subscriptions)
    if (validate_pattern(p) != topic_errc::ok) return errc::invalid_pattern;
  for (const auto& [p, g] : s.queue_groups)
    if (validate_pattern(p) != topic_errc::ok || g.empty()) return errc::invalid_pattern;
  return errc::ok;
}
} // namespace

namespace {
caf::behavior directory_actor(dir_actor* self, node::impl* core) {
  self->state.agents = agent_directory(core->cfg.missed_heartbeats);
  self->set_default_handler(caf::drop);
  for (std::size_t i = 0; i < std::max<std::size_t>(1, core->cfg.topic_shards); ++i)
    self->state.shards.push_back(spawn_topic_shard(self, core));
  self->set_down_handler([=](caf::down_msg& dm) {
    if (auto a = self->state.agent_by_actor.find(dm.source.id()); a != self->state.agent_by_actor.end())
      take_down(self, core, a->second, false);
  });
  return {
      [=](register_atom, registration& r) -> caf::result<registered> {
        if (core->stopping.load()) return registered{errc::node_stopped, nullptr};
        if (const errc e = check(r.spec, core->cfg.max_subscriptions); e != errc::ok) return registered{e, nullptr};
        const agent_spec& s = r.spec;
        // the id is taken on another node of the cluster (a registration racing this one on
        // another node, or one made on the other side of a partition, is settled when the nodes
        // hear of each other: duplicate_atom)
        if (core->cluster && core->routes.read([&](const routing_table& t) { return t.remote_agent(s.id) != nullptr; }))
          return registered{errc::duplicate_agent, nullptr};
        subscriber_id h = 0;
        agent_info info{s.id, s.type, s.capabilities, s.heartbeat_interval, s.metadata};
        if (const auto e = self->state.agents.add(std::move(info), agent_clock::now(), h); e != directory_errc::ok)
          return registered{to_errc(e), nullptr};
        std::shared_ptr<void> owner = r.waiter;
        endpoint::box_type::doorbell_fn ring = r.ring;
        const bool actor_agent = r.actor && !r.ring; // else a client, or a gateway with its connection actor
        if (actor_agent) {
          owner = std::make_shared<actor_doorbell>(actor_doorbell{caf::actor_cast<caf::weak_actor_ptr>(r.actor)});
          ring = &actor_doorbell::ring;
        }
        auto ep = std::make_shared<endpoint>(h, s.id, s.type, s.capabilities,
                                             s.mailbox_capacity ? s.mailbox_capacity : core->cfg.mailbox_capacity,
                                             ring, std::move(owner), &core->dead);
        // an actor agent handles one message at a time and would notice its high water mark late:
        // its endpoint keeps the marks (a connection's lanes keep their own), those of the lanes
        if (actor_agent) {
          const scheduling::lane_options marks;
          const auto at = [&](double f) { return static_cast<std::uint64_t>(f * static_cast<double>(ep->capacity())); };
          ep->water_marks(at(marks.high), at(marks.low));
        }
        if (r.actor) {
          // enqueued before the endpoint is routable, so the agent starts before its first drain
          if (actor_agent) self->send(r.actor, start_atom::value, ep);
          self->monitor(r.actor);
          std::lock_guard<std::mutex> g(core->m);
          core->actor_endpoints.push_back(ep);
        }
        core->routes.modify([&](routing_table& t) { t.add_agent(ep); });
        if (core->cluster) self->send(core->cluster, lagent_atom::value, agent_entry(s.id, s.type, s.capabilities), true);
        self->state.entries[h] = entry{ep, r.actor, s.group_balance};
        if (r.actor) self->state.agent_by_actor[r.actor.id()] = h;
        schedule_tick(self);
        const std::size_t subs = s.subscriptions.size() + s.queue_groups.size();
        if (subs == 0) return registered{errc::ok, ep};
        // the initial subscriptions go through their topic actors; registration completes (and
        // spawn/connect return) once all of them are in the routing table
        auto rp = self->make_response_promise<registered>();
        auto left = std::make_shared<std::size_t>(subs);
        auto done = [rp, left, ep](errc) mutable {
          if (--*left == 0) rp.deliver(registered{errc::ok, ep});
        };
        for (const std::string& p : s.subscriptions)
          forward_subscribe(self, h, p, std::string(), s.group_balance, done);
        for (const auto& [p, g] : s.queue_groups)
          forward_subscribe(self, h, p, g, s.group_balance, done);
        return rp;
      },
      [=](deregister_atom, subscriber_id h) { take_down(self, core, h, true); },
      [=](duplicate_atom, const std::string& id, const std::string& peer) {
        // the same id registered here and on `peer`, each before it heard of the other (at the
        // same moment, or on two sides of a partition): the node with the smaller name keeps it.
        // Both nodes see the other's announcement and decide alike, so exactly one stays.
        if (!(peer < core->cfg.cluster.name)) return;
        const std::optional<subscriber_id> h = self->state.agents.find(id);
        if (!h) return;
        spdlog::warn("flowbus cluster: agent id {} is registered on node {} too; that node keeps it (the smaller "
                     "name), the agent here is taken down",
                     id, peer);
        ++core->duplicates_taken_down;
        take_down(self, core, *h, true, errc::duplicate_agent);
      },
      [=](heartbeat_atom, subscriber_id h) { self->state.agents.heartbeat(h, agent_clock::now()); },
      [=](subscribe_atom, subscriber_id h, const std::string& pattern,
          const std::string& group) -> caf::result<std::uint8_t> {
        const auto it = self->state.entries.find(h);
        if (it == self->state.entries.end()) return static_cast<std::uint8_t>(errc::agent_unavailable);
        if (validate_pattern(pattern) != topic_errc::ok) return static_cast<std::uint8_t>(errc::invalid_pattern);
        if (auto p = self->state.patterns_of.find(h); p != self->state.patterns_of.end() &&
                                                      p->second.size() >= core->cfg.max_subscriptions &&
                                                      !p->second.count(pattern))
          return static_cast<std::uint8_t>(errc::too_many_subscriptions);
        auto rp = self->make_response_promise<std::uint8_t>();
        forward_subscribe(self, h, pattern, group, it->second.group_balance,
                          [rp](errc e) mutable { rp.deliver(static_cast<std::uint8_t>(e)); });
        return rp;
      },
      [=](unsubscribe_atom, subscriber_id h, const std::string& pattern,
          const std::string& group) -> caf::result<std::uint8_t> {
        if (!self->state.entries.count(h)) return static_cast<std::uint8_t>(errc::agent_unavailable);
        if (validate_pattern(pattern) != topic_errc::ok) return static_cast<std::uint8_t>(errc::not_subscribed);
        auto rp = self->make_response_promise<std::uint8_t>();
        std::uint64_t forwards = 0;
        if (auto p = self->state.patterns_of.find(h); p != self->state.patterns_of.end())
          if (auto f = p->second.find(pattern); f != p->second.end()) forwards = f->second;
        self->request(shard_of(self, pattern), caf::infinite, unsubscribe_atom::value, h, pattern, group)
            .then(
                [=](std::uint8_t code, bool still_member) mutable {
                  // the agent left the pattern altogether: forget it, unless it subscribed again since
                  auto p = self->state.patterns_of.find(h);
                  if (!still_member && p != self->state.patterns_of.end()) {
                    auto f = p->second.find(pattern);
                    if (f != p->second.end() && f->second == forwards) {
                      p->second.erase(f);
                      trim_soon(self);
                    }
                    if (p->second.empty()) self->state.patterns_of.erase(p);
                  }
                  rp.deliver(code);
                },
                [rp](caf::error&) mutable { rp.deliver(static_cast<std::uint8_t>(errc::node_stopped)); });
        return rp;
      },
      [=](trim_atom, bool last) {
        // what was freed in the last second (entries, strings, routing table nodes) goes back;
        // once more a second later: other actors and the I/O threads free the messages and
        // frames of the last changes after we counted them
        self->state.trim_armed = false;
        ::malloc_trim(0);
        if (!last && !self->state.trim_armed) self->delayed_send(self, std::chrono::seconds(1), trim_atom::value, true);
      },
      [=](topics_atom) -> caf::result<std::vector<std::string>> {
        // every shard's patterns, merged and sorted
        auto rp = self->make_response_promise<std::vector<std::string>>();
        auto all = std::make_shared<std::vector<std::string>>();
        auto left = std::make_shared<std::size_t>(self->state.shards.size());
        for (const auto& shard : self->state.shards)
          self->request(shard, caf::infinite, topics_atom::value)
              .then(
                  [=](std::vector<std::string>& part) mutable {
                    all->insert(all->end(), part.begin(), part.end());
                    if (--*left == 0) {
                      std::sort(all->begin(), all->end());
                      rp.deliver(std::move(*all));
                    }
                  },
                  [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
        return rp;
      },
      [=](tick_atom) {
        self->state.tick_at.reset();
        for (const auto& gone : self->state.agents.expire(agent_clock::now())) {
          // expire() removed it from the directory already; take_down finishes the job
          self->state.agents.remove(gone.first);
          take_down(self, core, gone.first, true);
        }
        schedule_tick(self);
      },
      [=](stop_atom) {
        std::vector<subscriber_id> all;
        for (const auto& e : self->state.entries)
          all.push_back(e.first);
        for (subscriber_id h : all) {
          const auto it = self->state.entries.find(h);
          if (it->second.actor) self->send(it->second.actor, stop_atom::value);
          it->second.actor = nullptr; // take_down must not also send down_atom
          take_down(self, core, h, false);
        }
        for (const auto& shard : self->state.shards)
          self->send(shard, stop_atom::value);
        self->state.shards.clear();
        self->quit();
      },
  };
}
} // namespace

caf::actor spawn_directory(node::impl* core) { return core->sys->spawn(directory_actor, core); }

} // namespace flowbus::actors
