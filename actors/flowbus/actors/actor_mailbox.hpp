// The hot path into a CAF actor: a flowbus::scheduling mailbox whose doorbell is one CAF message.
//
// A producer (an I/O thread, another actor) pushes into the lock-free queue; only when the actor
// is idle does the push send it a `drain_atom` message. The actor's drain_atom handler calls
// drain_step(), which handles up to `batch` elements and, if more remain, sends itself another
// drain_atom so other actors on the same worker get their turn. Under load the actor never goes
// idle and no CAF message is sent at all; CAF's mailbox carries only the control traffic.
//
//   struct conn_state { std::unique_ptr<actor_mailbox<mpsc_queue<buffer_ref>>> box; };
//   behavior conn(stateful_actor<conn_state>* self) {
//     self->state.box = std::make_unique<actor_mailbox<mpsc_queue<buffer_ref>>>(4096);
//     self->state.box->bind(caf::actor{self});
//     return {[=](drain_atom) { drain_step(self, *self->state.box, [&](buffer_ref&& f) { ... }, 256); }};
//   }
#pragma once

#include <flowbus/scheduling/mailbox.hpp>

#include <caf/actor.hpp>
#include <caf/atom.hpp>

#include <cstddef>

namespace flowbus::actors {

using drain_atom = caf::atom_constant<caf::atom("fb_drain")>;

/// Sends drain_atom to the bound actor. Implemented out of line (keeps caf/send.hpp out of here).
void ring_actor(void* actor_handle) noexcept;

/// A mailbox whose consumer is a CAF actor. Bind the actor before the first push.
template <class Queue> class actor_mailbox : public scheduling::mailbox<Queue> {
public:
  explicit actor_mailbox(std::size_t capacity) : scheduling::mailbox<Queue>(capacity, &ring_actor, &consumer_) {}
  /// @pre no push has happened yet
  void bind(caf::actor consumer) { consumer_ = std::move(consumer); }
  const caf::actor& consumer() const noexcept { return consumer_; }

private:
  caf::actor consumer_;
};

/// One fair step of draining, for the actor's drain_atom handler: handles up to `batch` elements
/// and re-sends drain_atom to `self` when more are waiting. Returns how many were handled.
template <class Self, class Queue, class F>
std::size_t drain_step(Self* self, scheduling::mailbox<Queue>& box, F&& f, std::size_t batch) {
  const scheduling::drain_result r = box.drain(std::forward<F>(f), batch);
  if (r.more) self->send(self, drain_atom::value);
  return r.count;
}

} // namespace flowbus::actors
