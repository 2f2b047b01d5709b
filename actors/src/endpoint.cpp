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

const char* to_string(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::agent_unavailable: return "agent_unavailable";
    case errc::no_capable_agent: return "no_capable_agent";
    case errc::no_responders: return "no_responders";
    case errc::timeout: return "timeout";
    case errc::mailbox_full: return "mailbox_full";
    case errc::invalid_topic: return "invalid_topic";
    case errc::invalid_pattern: return "invalid_pattern";
    case errc::invalid_agent: return "invalid_agent";
    case errc::duplicate_agent: return "duplicate_agent";
    case errc::too_large: return "too_large";
    case errc::no_buffer: return "no_buffer";
    case errc::circuit_open: return "circuit_open";
    case errc::node_stopped: return "node_stopped";
    case errc::not_subscribed: return "not_subscribed";
    case errc::too_many_subscriptions: return "too_many_subscriptions";
    case errc::unauthenticated: return "unauthenticated";
    case errc::not_permitted: return "not_permitted";
    case errc::rate_limited: return "rate_limited";
  }
  return "invalid";
}

} // namespace flowbus::actors
