// The directory: the one actor that knows every agent. Registration, subscriptions, heartbeats and
// departures arrive here as CAF messages. It adds and removes agents in the routing table itself
// and forwards subscriptions to the topic actor of their pattern (topic_actor.cpp), which owns
// that pattern's subscriber set; every change reaches the data path through left_right::modify
// (publishers never wait for it). A timer at
// the earliest possible expiry marks agents that stopped heartbeating as down.
#include "node_impl.hpp"

#include <flowbus/actors/actor_mailbox.hpp>
#include <flowbus/scheduling/lanes.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <set>
#include <unordered_map>

namespace flowbus::actors {

namespace {
/// An actor agent's doorbell. Weak: the endpoint must not keep a finished actor alive.
struct actor_doorbell {
  caf::weak_actor_ptr target;
  static void ring(void* self) noexcept {
    if (auto strong = static_cast<actor_doorbell*>(self)->target.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(strong), drain_atom::value);
  }
};

struct entry {
  std::shared_ptr<endpoint> ep;
  caf::actor actor; ///< none for a client
  balance group_balance;
};
} // namespace

struct topic_ref {
  caf::actor actor;
  std::uint64_t forwarded = 0; ///< subscribe requests sent to it (reaping waits for them all)
};

struct directory_state {
  agent_directory agents;
  std::unordered_map<subscriber_id, entry> entries;
  std::unordered_map<std::string, topic_ref> topics;                    ///< pattern -> its topic actor
  std::unordered_map<subscriber_id, std::set<std::string>> patterns_of; ///< agent -> patterns it used
  std::optional<agent_clock::time_point> tick_at;
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

/// The agent is gone (left, missed heartbeats, its actor ended): nothing routes to it any more.
void take_down(dir_actor* self, node::impl* core, subscriber_id h, bool tell_actor) {
  const auto it = self->state.entries.find(h);
  if (it == self->state.entries.end()) return;
  self->state.agents.remove(h);
  it->second.ep->close();
  core->routes.modify([h](routing_table& t) { t.remove_agent(h); });
  // its topic actors drop it from their sets (after any subscribe forwarded earlier: same channel)
  if (auto p = self->state.patterns_of.find(h); p != self->state.patterns_of.end()) {
    for (const std::string& pattern : p->second)
      if (auto t = self->state.topics.find(pattern); t != self->state.topics.end())
        self->send(t->second.actor, forget_atom::value, h);
    self->state.patterns_of.erase(p);
  }
  if (tell_actor && it->second.actor) self->send(it->second.actor, down_atom::value);
  self->state.entries.erase(it);
}

/// Forwards a subscription to its pattern's topic actor (spawned on first use); `done` runs with
/// the topic actor's answer.
template <class Done>
void forward_subscribe(dir_actor* self, node::impl* core, subscriber_id h, const std::string& pattern,
                       const std::string& group, balance policy, Done done) {
  topic_ref& t = self->state.topics[pattern];
  if (!t.actor) {
    t.actor = spawn_topic(self, core, pattern);
    self->monitor(t.actor);
  }
  ++t.forwarded;
  self->state.patterns_of[h].insert(pattern);
  self->request(t.actor, caf::infinite, subscribe_atom::value, h, group, static_cast<std::uint8_t>(policy))
      .then([=](std::uint8_t code) mutable { done(static_cast<errc>(code)); },
            [=](caf::error&) mutable { done(errc::node_stopped); });
}

errc check(const agent_spec& s) {
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
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& es = self->state.entries;
    const auto it = std::find_if(es.begin(), es.end(), [&](const auto& e) { return e.second.actor.address() == dm.source; });
    if (it != es.end()) {
      take_down(self, core, it->first, false);
      return;
    }
    auto& ts = self->state.topics; // a topic actor that ended on its own: forget it
    for (auto t = ts.begin(); t != ts.end(); ++t)
      if (t->second.actor.address() == dm.source) {
        ts.erase(t);
        return;
      }
  });
  return {
      [=](register_atom, registration& r) -> caf::result<registered> {
        if (core->stopping.load()) return registered{errc::node_stopped, nullptr};
        if (const errc e = check(r.spec); e != errc::ok) return registered{e, nullptr};
        const agent_spec& s = r.spec;
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
        self->state.entries[h] = entry{ep, r.actor, s.group_balance};
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
          forward_subscribe(self, core, h, p, std::string(), s.group_balance, done);
        for (const auto& [p, g] : s.queue_groups)
          forward_subscribe(self, core, h, p, g, s.group_balance, done);
        return rp;
      },
      [=](deregister_atom, subscriber_id h) { take_down(self, core, h, true); },
      [=](heartbeat_atom, subscriber_id h) { self->state.agents.heartbeat(h, agent_clock::now()); },
      [=](subscribe_atom, subscriber_id h, const std::string& pattern,
          const std::string& group) -> caf::result<std::uint8_t> {
        const auto it = self->state.entries.find(h);
        if (it == self->state.entries.end()) return static_cast<std::uint8_t>(errc::agent_unavailable);
        if (validate_pattern(pattern) != topic_errc::ok) return static_cast<std::uint8_t>(errc::invalid_pattern);
        auto rp = self->make_response_promise<std::uint8_t>();
        forward_subscribe(self, core, h, pattern, group, it->second.group_balance,
                          [rp](errc e) mutable { rp.deliver(static_cast<std::uint8_t>(e)); });
        return rp;
      },
      [=](unsubscribe_atom, subscriber_id h, const std::string& pattern,
          const std::string& group) -> caf::result<std::uint8_t> {
        if (!self->state.entries.count(h)) return static_cast<std::uint8_t>(errc::agent_unavailable);
        const auto t = self->state.topics.find(pattern);
        if (t == self->state.topics.end()) return static_cast<std::uint8_t>(errc::not_subscribed);
        auto rp = self->make_response_promise<std::uint8_t>();
        self->request(t->second.actor, caf::infinite, unsubscribe_atom::value, h, group)
            .then([rp](std::uint8_t code) mutable { rp.deliver(code); },
                  [rp](caf::error&) mutable { rp.deliver(static_cast<std::uint8_t>(errc::node_stopped)); });
        return rp;
      },
      [=](reap_atom, const std::string& pattern, std::uint64_t seen) {
        const auto t = self->state.topics.find(pattern);
        // reap only if every subscription forwarded to it has been handled (and left again)
        if (t == self->state.topics.end() || t->second.forwarded != seen) return;
        self->send(t->second.actor, stop_atom::value);
        self->demonitor(t->second.actor);
        self->state.topics.erase(t);
      },
      [=](topics_atom) {
        std::vector<std::string> out;
        for (const auto& t : self->state.topics)
          out.push_back(t.first);
        std::sort(out.begin(), out.end());
        return out;
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
        for (auto& t : self->state.topics)
          self->send(t.second.actor, stop_atom::value);
        self->state.topics.clear();
        self->quit();
      },
  };
}
} // namespace

caf::actor spawn_directory(node::impl* core) { return core->sys->spawn(directory_actor, core); }

} // namespace flowbus::actors
