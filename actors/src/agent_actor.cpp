// An actor agent: its actor drains the endpoint when the doorbell (drain_atom) rings, decodes each
// frame and calls the user's handler; replies to its requests go to their callbacks instead.
// It heartbeats to the directory every interval, and when the directory marks it down (or the
// node stops) it closes its endpoint, dead-letters what is still queued and quits.
#include "port.hpp"

#include <flowbus/actors/actor_mailbox.hpp>
#include <flowbus/actors/agent_breaker.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/send.hpp>

#include <flowbus/scheduling/fixed_rate.hpp> // steady_ns

#include <random>
#include <unordered_map>

namespace flowbus::actors {

struct agent_context::pending {
  std::unordered_map<std::uint64_t, reply_handler> waiting;
  std::uint64_t next = 1;
};

struct agent_state {
  std::shared_ptr<agent_boot> boot;
  std::unique_ptr<agent_context> ctx;
  /// Messages whose handler failed, waiting for their next attempt (retry_atom carries the key).
  struct retry_entry {
    scheduling::buffer_ref frame;
    std::uint32_t attempts; ///< made so far
  };
  std::unordered_map<std::uint64_t, retry_entry> retries;
  std::uint64_t next_retry = 1;
  std::optional<agent_breaker> breaker;
  std::minstd_rand rng{std::random_device{}()};
  static inline const char* name = "flowbus.agent";
};

/// Reaches agent_context internals from the actor's handlers.
struct agent_actor_access {
  static detail::port& port(agent_context& c) { return *c.port_; }
  static agent_context::pending& pending(agent_context& c) { return *c.pending_; }
};

namespace {
constexpr std::size_t drain_batch = 256; // frames per drain before yielding to other actors

void finish(agent_state& st, std::uint64_t corr, reply r) {
  auto& waiting = agent_actor_access::pending(*st.ctx).waiting;
  const auto it = waiting.find(corr);
  if (it == waiting.end()) return;
  reply_handler h = std::move(it->second);
  waiting.erase(it);
  h(std::move(r));
}

/// The breaker has just opened: the timer that lets trial messages in again.
void arm_breaker(caf::stateful_actor<agent_state>* self, const agent_breaker::arm_after& after) {
  if (after) self->delayed_send(self, *after, breaker_atom::value);
}

using actor_ptr = caf::stateful_actor<agent_state>*;

void handle(actor_ptr self, scheduling::buffer_ref&& frame, std::uint32_t attempts = 1) {
  agent_state& st = self->state;
  detail::port& p = agent_actor_access::port(*st.ctx);
  delivery d;
  if (!p.decode(frame, d)) return;
  if (d.type == codec::msg_type::error) { // a request of ours cannot be answered (its node is gone)
    auto& waiting = agent_actor_access::pending(*st.ctx).waiting;
    if (waiting.find(d.correlation_id) != waiting.end()) finish(st, d.correlation_id, reply{from_wire_code(d.error_code), {}});
    return;
  }
  if (d.type == codec::msg_type::reply) {
    auto& waiting = agent_actor_access::pending(*st.ctx).waiting;
    if (waiting.find(d.correlation_id) == waiting.end()) { // its request already timed out
      p.core().dead.add(dead_reason::network_timeout, std::move(frame), p.ep().agent_id());
      return;
    }
    reply r;
    r.response.msg = d;
    r.response.frame = std::move(frame); // the views in msg point into the same buffer
    r.response.msg.frame = &r.response.frame;
    finish(st, d.correlation_id, std::move(r));
    return;
  }
  const std::uint64_t now = scheduling::steady_ns();
  agent_breaker::arm_after arm;
  if (st.breaker && !st.breaker->allow(now, arm)) { // open, or half-open with its trials taken
    p.core().dead.add(dead_reason::circuit_open, std::move(frame), p.ep().agent_id(), attempts);
    return arm_breaker(self, arm);
  }
  d.attempt = attempts;
  bool failed = false;
  try {
    st.boot->handler(*st.ctx, d);
  } catch (...) { // a handler that throws has failed this message: retry, keep serving the rest
    failed = true;
  }
  p.core().handler_time.record(scheduling::steady_ns() - now);
  if (st.breaker) arm_breaker(self, st.breaker->record(failed, now));
  if (!failed) return;
  const scheduling::retry_policy& rp = st.boot->retry;
  const std::uint32_t budget = d.max_attempts ? d.max_attempts : rp.max_attempts; // the sender's, if it set one
  // bounded: retries hold frames, at most a mailbox's worth; beyond, the message is given up
  if (attempts >= budget || st.retries.size() >= p.ep().capacity()) {
    p.core().dead.add(dead_reason::poison, std::move(frame), p.ep().agent_id(), attempts);
    return;
  }
  const std::uint64_t key = st.next_retry++;
  st.retries.emplace(key, agent_state::retry_entry{std::move(frame), attempts});
  self->delayed_send(self, scheduling::full_jitter(attempts, rp.initial, rp.max, st.rng), retry_atom::value, key);
}

void close_and_quit(caf::stateful_actor<agent_state>* self, dead_reason why) {
  agent_state& st = self->state;
  if (st.ctx) {
    detail::port& p = agent_actor_access::port(*st.ctx);
    p.ep().close();
    p.ep().drain([&](scheduling::buffer_ref&& f) { p.core().dead.add(why, std::move(f), p.ep().agent_id()); },
                  SIZE_MAX);
    for (auto& r : st.retries) // waiting for another attempt: accounted for like the queued ones
      p.core().dead.add(why, std::move(r.second.frame), p.ep().agent_id(), r.second.attempts);
    st.retries.clear();
    auto& waiting = agent_actor_access::pending(*st.ctx).waiting;
    while (!waiting.empty()) // every request gets an answer, here a refusal
      finish(st, waiting.begin()->first, reply{errc::node_stopped, {}});
  }
  self->quit();
}
} // namespace

agent_context::agent_context(std::unique_ptr<detail::port> p, caf::event_based_actor* self)
    : sender(std::move(p)), self_(self), pending_(std::make_unique<pending>()) {}
agent_context::~agent_context() = default;

caf::actor agent_context::self() const { return caf::actor_cast<caf::actor>(self_); }

void agent_context::request(const destination& to, std::string_view payload, std::chrono::milliseconds timeout,
                            reply_handler on_reply, send_options opts) {
  const std::uint64_t corr = pending_->next++;
  opts.type = codec::msg_type::request;
  opts.correlation_id = corr;
  pending_->waiting.emplace(corr, std::move(on_reply));
  const send_result r = port_->send(to, payload, opts, id());
  errc fail = errc::ok;
  if (r.delivered == 0) fail = r.code != errc::ok ? r.code : errc::no_responders;
  // The callback always runs later, in a handler of its own: never inside request().
  if (fail != errc::ok)
    self_->send(self_, timeout_atom::value, corr, static_cast<std::uint8_t>(fail));
  else
    self_->delayed_send(self_, timeout, timeout_atom::value, corr, static_cast<std::uint8_t>(errc::timeout));
}

namespace {
void control(caf::event_based_actor* self, node::impl& core, done_handler done, caf::message msg) {
  self->request(core.dir, caf::infinite, std::move(msg))
      .then([done](std::uint8_t code) { if (done) done(static_cast<errc>(code)); },
            [done](caf::error&) { if (done) done(errc::node_stopped); });
}
} // namespace

void agent_context::subscribe(std::string_view pattern, done_handler done) { subscribe_group(pattern, {}, std::move(done)); }

void agent_context::subscribe_group(std::string_view pattern, std::string_view group, done_handler done) {
  control(self_, port_->core(), std::move(done),
          caf::make_message(subscribe_atom::value, port_->ep().id(), std::string(pattern), std::string(group)));
}

void agent_context::unsubscribe(std::string_view pattern, std::string_view group, done_handler done) {
  control(self_, port_->core(), std::move(done),
          caf::make_message(unsubscribe_atom::value, port_->ep().id(), std::string(pattern), std::string(group)));
}

void agent_context::leave() { self_->send(port_->core().dir, deregister_atom::value, port_->ep().id()); }

namespace {
caf::behavior agent_actor(caf::stateful_actor<agent_state>* self, std::shared_ptr<agent_boot> boot) {
  self->state.boot = std::move(boot);
  self->set_default_handler(caf::drop); // a stray message must not take a sender down
  return {
      [=](start_atom, std::shared_ptr<endpoint>& ep) {
        agent_state& st = self->state;
        if (st.boot->breaker) // shown on the endpoint: senders fail fast while it is open
          st.breaker.emplace(*st.boot->breaker, [ep = ep.get()](scheduling::breaker_state s) { ep->set_breaker(s); });
        st.ctx = std::make_unique<agent_context>(
            std::make_unique<detail::port>(st.boot->core, nullptr, std::move(ep), st.boot->prio), self);
        if (st.boot->on_start) st.boot->on_start(*st.ctx);
        self->delayed_send(self, st.boot->heartbeat, beat_atom::value);
      },
      [=](drain_atom) {
        agent_state& st = self->state;
        if (!st.ctx) return; // start is enqueued before the endpoint becomes routable
        const auto spin = st.boot->idle_spin;
        std::chrono::steady_clock::time_point spin_until{}; // set at the first empty poll after a message
        endpoint& ep = agent_actor_access::port(*st.ctx).ep();
        std::size_t handled = 0;
        const auto r = ep.drain(
            [&](scheduling::buffer_ref&& f) {
              handle(self, std::move(f));
              spin_until = {};
              if (++handled % 32 == 0) ep.catch_up(); // water marks: senders may go on at 60 %
            },
            drain_batch,
            [&] {
              if (spin.count() == 0) return false;
              const auto now = std::chrono::steady_clock::now();
              if (spin_until == std::chrono::steady_clock::time_point{}) spin_until = now + spin;
              scheduling::cpu_relax();
              return now < spin_until;
            });
        ep.catch_up();
        if (r.more) self->send(self, drain_atom::value);
      },
      [=](beat_atom) {
        agent_state& st = self->state;
        self->send(st.boot->core->dir, heartbeat_atom::value, agent_actor_access::port(*st.ctx).ep().id());
        self->delayed_send(self, st.boot->heartbeat, beat_atom::value);
      },
      [=](timeout_atom, std::uint64_t corr, std::uint8_t code) {
        finish(self->state, corr, reply{static_cast<errc>(code), {}});
      },
      [=](retry_atom, std::uint64_t key) {
        agent_state& st = self->state;
        const auto it = st.retries.find(key);
        if (it == st.retries.end()) return;
        agent_state::retry_entry e = std::move(it->second);
        st.retries.erase(it);
        handle(self, std::move(e.frame), e.attempts + 1);
      },
      [=](breaker_atom) { // open_for has passed: let senders in again for the trial messages
        agent_state& st = self->state;
        if (st.breaker) st.breaker->on_timer(scheduling::steady_ns());
      },
      [=](down_atom, std::uint8_t) { close_and_quit(self, dead_reason::agent_unavailable); },
      [=](stop_atom) { close_and_quit(self, dead_reason::shutdown); },
  };
}
} // namespace

caf::actor spawn_agent(node::impl* core, std::shared_ptr<agent_boot> boot) {
  return core->sys->spawn(agent_actor, std::move(boot));
}

} // namespace flowbus::actors
