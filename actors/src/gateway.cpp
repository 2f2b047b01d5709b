// A gateway agent and its connection actor: the actor registers the agent with the directory,
// carries subscription changes there and back, and relays the directory's verdicts (down, stop)
// to the gateway's owner. Frames never pass through it: they wait in the endpoint's mailbox until
// the owner takes them.
#include "port.hpp"

#include <flowbus/actors/gateway.hpp>
#include <flowbus/actors/node.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

namespace flowbus::actors {

namespace {

/// The events, shared by the endpoint (as its doorbell context) and the connection actor.
struct gateway_shared {
  gateway_events ev;
  static void ring(void* self) noexcept {
    auto* g = static_cast<gateway_shared*>(self);
    if (g->ev.wake) g->ev.wake();
  }
  void down(errc e) {
    if (ev.down) ev.down(e);
  }
  void done(std::uint64_t token, errc e) {
    if (ev.done) ev.done(token, e);
  }
};

struct conn_state {
  subscriber_id h = 0;
  static inline const char* name = "flowbus.connection";
};
using conn_actor = caf::stateful_actor<conn_state>;

caf::behavior connection_actor(conn_actor* self, node::impl* core, std::shared_ptr<node::impl> keep,
                               std::shared_ptr<gateway_shared> sh, agent_spec spec, attach_handler on_attach) {
  const codec::priority prio = spec.priority;
  self->request(core->dir, caf::infinite, register_atom::value,
                registration{std::move(spec), caf::actor_cast<caf::actor>(self), sh, &gateway_shared::ring})
      .then(
          [=](registered& r) {
            if (r.code != errc::ok) {
              on_attach(r.code);
              self->quit();
              return;
            }
            self->state.h = r.ep->id();
            auto p = std::make_unique<detail::port>(core, keep, std::move(r.ep), prio);
            on_attach(std::make_unique<gateway>(std::move(p), caf::actor_cast<caf::actor>(self)));
          },
          [=](caf::error&) {
            on_attach(errc::node_stopped);
            self->quit();
          });
  auto change = [=](auto atom, const std::string& pattern, const std::string& group, std::uint64_t token) {
    self->request(core->dir, caf::infinite, atom, self->state.h, pattern, group)
        .then([=](std::uint8_t code) { sh->done(token, static_cast<errc>(code)); },
              [=](caf::error&) { sh->done(token, errc::node_stopped); });
  };
  return {
      [=](subscribe_atom a, const std::string& pattern, const std::string& group, std::uint64_t token) {
        change(a, pattern, group, token);
      },
      [=](unsubscribe_atom a, const std::string& pattern, const std::string& group, std::uint64_t token) {
        change(a, pattern, group, token);
      },
      [=](down_atom, std::uint8_t why) {
        sh->down(static_cast<errc>(why));
        self->quit();
      },
      [=](stop_atom) {
        sh->down(errc::node_stopped);
        self->quit();
      },
  };
}

} // namespace

struct gateway::state {
  caf::actor conn;
  bool left = false;
};

gateway::gateway(std::unique_ptr<detail::port> p, caf::actor conn) : sender(std::move(p)), st_(new state{std::move(conn)}) {}

gateway::~gateway() {
  leave();
  caf::anon_send_exit(st_->conn, caf::exit_reason::user_shutdown);
}

scheduling::drain_result gateway::take(std::vector<scheduling::buffer_ref>& out, std::size_t max) {
  return port_->ep().drain([&](scheduling::buffer_ref&& f) { out.push_back(std::move(f)); }, max);
}

send_result gateway::forward(const destination& to, std::string_view payload, const send_options& opts) {
  if (!up()) return send_result{errc::agent_unavailable, 0};
  const bool request = opts.type == codec::msg_type::request;
  return port_->send(to, payload, opts, request ? std::string_view(id()) : std::string_view{});
}

send_result gateway::forward_broadcast(std::string_view payload, std::string_view agent_type, const send_options& opts) {
  if (!up()) return send_result{errc::agent_unavailable, 0};
  return port_->broadcast(payload, agent_type, opts);
}

void gateway::subscribe(std::string_view pattern, std::string_view group, std::uint64_t token) {
  caf::anon_send(st_->conn, subscribe_atom::value, std::string(pattern), std::string(group), token);
}

void gateway::unsubscribe(std::string_view pattern, std::string_view group, std::uint64_t token) {
  caf::anon_send(st_->conn, unsubscribe_atom::value, std::string(pattern), std::string(group), token);
}

void gateway::heartbeat() {
  if (!st_->left && !port_->core().stopping.load()) caf::anon_send(port_->core().dir, heartbeat_atom::value, port_->ep().id());
}

bool gateway::up() const noexcept { return !st_->left && port_->ep().open() && !port_->core().stopped.load(); }

void gateway::leave() {
  if (st_->left) return;
  st_->left = true;
  port_->ep().close();
  if (!port_->core().stopping.load()) caf::anon_send(port_->core().dir, deregister_atom::value, port_->ep().id());
}

std::uint64_t gateway::backlog() const noexcept { return port_->ep().in_flight(); }

void gateway::throttle(bool on) noexcept { port_->ep().set_throttled(on); }
void gateway::stalled(bool on) noexcept { port_->ep().set_stalled(on); }

void gateway::breaker(scheduling::breaker_state s) noexcept { port_->ep().set_breaker(s); }

caf::actor gateway::actor() const { return st_->conn; }

void node::attach(agent_spec spec, gateway_events events, attach_handler on_attach) {
  if (impl_->stopping.load()) {
    on_attach(errc::node_stopped);
    return;
  }
  auto sh = std::make_shared<gateway_shared>(gateway_shared{std::move(events)});
  impl_->sys->spawn(connection_actor, impl_.get(), impl_, std::move(sh), std::move(spec), std::move(on_attach));
}

} // namespace flowbus::actors
