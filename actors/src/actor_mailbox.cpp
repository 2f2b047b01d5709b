#include <flowbus/actors/actor_mailbox.hpp>

#include <caf/send.hpp>

namespace flowbus::actors {

void ring_actor(void* actor_handle) noexcept {
  // anon_send: the doorbell has no sender to answer to; allocation failure would terminate anyway
  caf::anon_send(*static_cast<caf::actor*>(actor_handle), drain_atom::value);
}

} // namespace flowbus::actors

#include "node_impl.hpp"

namespace flowbus::actors {

void actor_doorbell::ring(void* self) noexcept {
  if (auto strong = static_cast<actor_doorbell*>(self)->target.lock())
    caf::anon_send(caf::actor_cast<caf::actor>(strong), drain_atom::value);
}

} // namespace flowbus::actors
