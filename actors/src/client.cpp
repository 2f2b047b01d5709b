#include "port.hpp"

#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

namespace flowbus::actors {

client::client(std::unique_ptr<detail::port> p, std::shared_ptr<void> waiter, std::chrono::milliseconds heartbeat)
    : sender(std::move(p)), waiter_(std::move(waiter)), heartbeat_every_(heartbeat / 2),
      last_heartbeat_(std::chrono::steady_clock::now()) {}

client::~client() { leave(); }

bool client::up() const noexcept { return port_->ep().open() && !port_->core().stopped.load(); }

void client::heartbeat() {
  last_heartbeat_ = std::chrono::steady_clock::now();
  if (!left_ && !port_->core().stopping.load()) caf::anon_send(port_->core().dir, heartbeat_atom::value, port_->ep().id());
}

void client::maybe_heartbeat() {
  if (std::chrono::steady_clock::now() - last_heartbeat_ >= heartbeat_every_) heartbeat();
}

bool client::next(received& out, std::chrono::steady_clock::time_point until) {
  auto* w = static_cast<client_waiter*>(waiter_.get());
  endpoint& ep = port_->ep();
  for (;;) {
    bool got = false;
    ep.drain(
        [&](scheduling::buffer_ref&& f) {
          out.frame = std::move(f);
          got = true;
        },
        1);
    if (got) {
      if (!port_->decode(out.frame, out.msg)) continue; // dead-lettered as corruption
      out.msg.frame = &out.frame;
      return true;
    }
    // Nothing to wait for (try_receive): no condition variable. Waiting on it with a deadline
    // already past still costs a futex wait that times out, and the unlock after it a futex wake
    // (glibc marks the mutex contended when a wait returns): two system calls each time a stream's
    // round found its mailbox empty, 45 % of the node's I/O thread's CPU at 10 000 msgs/s through
    // a stream (docs/benchmarks.md, "Streams at 10 000 msgs/s: measured in the same run").
    if (std::chrono::steady_clock::now() >= until) return false;
    // idle now: the next push rings the waiter. A long wait still heartbeats (else the node would
    // take a thread blocked in receive() for three intervals as gone)
    std::unique_lock<std::mutex> g(w->m);
    while (!w->cv.wait_until(g, std::min(until, last_heartbeat_ + heartbeat_every_), [&] { return w->rung; })) {
      if (std::chrono::steady_clock::now() >= until) return false;
      g.unlock();
      maybe_heartbeat();
      g.lock();
    }
    w->rung = false;
  }
}

void client::await(std::chrono::steady_clock::time_point until) {
  // no heartbeat here: the owner's try_receive() sends them, maybe on another thread under the
  // owner's lock (a stream's inline rounds), and this waits outside it
  auto* w = static_cast<client_waiter*>(waiter_.get());
  std::unique_lock<std::mutex> g(w->m);
  w->cv.wait_until(g, until, [&] { return w->rung; });
  w->rung = false;
}

std::optional<received> client::receive(std::chrono::milliseconds timeout) {
  maybe_heartbeat();
  if (!held_.empty()) {
    received r = std::move(held_.front());
    held_.pop_front();
    r.msg.frame = &r.frame;
    return r;
  }
  received r;
  if (!next(r, std::chrono::steady_clock::now() + timeout)) return std::nullopt;
  return r;
}

send_result client::post_request(const destination& to, std::string_view payload, send_options opts) {
  opts.type = codec::msg_type::request;
  return port_->send(to, payload, opts, id());
}

reply client::request(const destination& to, std::string_view payload, std::chrono::milliseconds timeout,
                      send_options opts) {
  maybe_heartbeat();
  const auto until = std::chrono::steady_clock::now() + timeout;
  const std::uint64_t corr = next_correlation_++;
  opts.type = codec::msg_type::request;
  opts.correlation_id = corr;
  const send_result s = port_->send(to, payload, opts, id());
  if (s.delivered == 0) return reply{s.code != errc::ok ? s.code : errc::no_responders, {}};
  for (;;) {
    received r;
    if (!next(r, until)) return reply{errc::timeout, {}};
    if (r.msg.type == codec::msg_type::reply) {
      if (r.msg.correlation_id == corr) return reply{errc::ok, std::move(r)};
      port_->core().dead.add(dead_reason::network_timeout, std::move(r.frame), id()); // an earlier request's, late
      continue;
    }
    if (r.msg.type == codec::msg_type::error) { // the node says the request cannot be answered (its node is gone)
      if (r.msg.correlation_id == corr) return reply{from_wire_code(r.msg.error_code), {}};
      continue; // about an earlier request, which timed out already
    }
    held_.push_back(std::move(r));
  }
}

namespace {
errc control(node::impl& core, caf::message msg) {
  if (core.stopping.load()) return errc::node_stopped;
  errc out = errc::node_stopped;
  caf::scoped_actor s{*core.sys};
  s->request(core.dir, caf::infinite, std::move(msg))
      .receive([&](std::uint8_t code) { out = static_cast<errc>(code); }, [&](caf::error&) {});
  return out;
}
} // namespace

errc client::subscribe(std::string_view pattern) { return subscribe_group(pattern, {}); }

errc client::subscribe_group(std::string_view pattern, std::string_view group) {
  return control(port_->core(), caf::make_message(subscribe_atom::value, port_->ep().id(), std::string(pattern),
                                                  std::string(group)));
}

errc client::unsubscribe(std::string_view pattern, std::string_view group) {
  return control(port_->core(), caf::make_message(unsubscribe_atom::value, port_->ep().id(), std::string(pattern),
                                                  std::string(group)));
}

void client::leave() {
  if (left_) return;
  left_ = true;
  if (!port_->core().stopping.load()) caf::anon_send(port_->core().dir, deregister_atom::value, port_->ep().id());
}

} // namespace flowbus::actors
