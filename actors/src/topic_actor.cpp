// A topic actor owns the subscriber set of one subscription pattern: which agents subscribed to
// it, plainly or in which queue group. It is the one that writes its pattern's entries into the
// routing table, so subscription changes on different patterns proceed on different actors. An
// actor whose set stays empty for node_config::topic_idle_reap asks the directory to reap it; the
// directory agrees only if no subscription it forwarded is still on its way (the counts match).
#include "node_impl.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <set>

namespace flowbus::actors {

struct topic_state {
  std::string pattern;
  std::set<std::pair<subscriber_id, std::string>> members; ///< (agent, queue group or "")
  std::uint64_t seen = 0;       ///< subscribe requests handled (the directory compares)
  std::uint64_t idle_epoch = 0; ///< invalidates reap timers armed before a change
  static inline const char* name = "flowbus.topic";
};

namespace {
using topic_actor_t = caf::stateful_actor<topic_state>;

void changed(topic_actor_t* self, node::impl* core) {
  topic_state& st = self->state;
  ++st.idle_epoch;
  if (st.members.empty()) self->delayed_send(self, core->cfg.topic_idle_reap, reap_atom::value, st.idle_epoch);
}

caf::behavior topic_actor(topic_actor_t* self, node::impl* core, std::string pattern) {
  self->state.pattern = std::move(pattern);
  self->set_default_handler(caf::drop);
  return {
      [=](subscribe_atom, subscriber_id h, const std::string& group, std::uint8_t policy) -> std::uint8_t {
        topic_state& st = self->state;
        ++st.seen;
        st.members.emplace(h, group);
        core->routes.modify([&](routing_table& t) {
          if (group.empty())
            t.subscribe(st.pattern, h);
          else
            t.subscribe_group(st.pattern, group, static_cast<balance>(policy), h);
        });
        changed(self, core);
        return static_cast<std::uint8_t>(errc::ok);
      },
      [=](unsubscribe_atom, subscriber_id h, const std::string& group) -> std::uint8_t {
        topic_state& st = self->state;
        if (st.members.erase({h, group}) == 0) return static_cast<std::uint8_t>(errc::not_subscribed);
        core->routes.modify([&](routing_table& t) { t.unsubscribe(st.pattern, group, h); });
        changed(self, core);
        return static_cast<std::uint8_t>(errc::ok);
      },
      [=](forget_atom, subscriber_id h) { // the agent is gone; the directory removed its routes
        topic_state& st = self->state;
        const auto from = st.members.lower_bound({h, std::string()});
        auto to = from;
        while (to != st.members.end() && to->first == h)
          ++to;
        if (from == to) return;
        st.members.erase(from, to);
        changed(self, core);
      },
      [=](reap_atom, std::uint64_t epoch) {
        const topic_state& st = self->state;
        if (st.members.empty() && epoch == st.idle_epoch)
          self->send(core->dir, reap_atom::value, st.pattern, st.seen);
      },
      [=](count_atom) { return static_cast<std::uint64_t>(self->state.members.size()); },
      [=](stop_atom) { self->quit(); },
  };
}
} // namespace

caf::actor spawn_topic(caf::local_actor* parent, node::impl* core, const std::string& pattern) {
  return parent->spawn(topic_actor, core, pattern);
}

} // namespace flowbus::actors
