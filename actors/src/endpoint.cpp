#include <flowbus/actors/dead_letters.hpp>
#include <flowbus/actors/endpoint.hpp>
#include <flowbus/actors/errc.hpp>

namespace flowbus::actors {

endpoint::endpoint(subscriber_id id, std::string agent_id, std::string agent_type,
                   std::vector<std::string> capabilities, std::size_t capacity, box_type::doorbell_fn ring,
                   std::shared_ptr<void> doorbell_owner, dead_letters* orphans)
    : id_(id), agent_id_(std::move(agent_id)), agent_type_(std::move(agent_type)),
      capabilities_(std::move(capabilities)), doorbell_owner_(std::move(doorbell_owner)), orphans_(orphans),
      capacity_(capacity), box_(capacity, ring, doorbell_owner_.get()) {}

endpoint::~endpoint() {
  // Frames still here were handed to an agent that never took them (it went down, or a
  // publisher's cached route pushed after its last drain): account for each.
  if (!orphans_) return;
  box_.drain([&](scheduling::buffer_ref&& b) { orphans_->add(dead_reason::agent_unavailable, std::move(b), agent_id_); },
             SIZE_MAX);
}

} // namespace flowbus::actors
