// An agent's attachment to the node (internal): its endpoint (where it receives) and its sending
// side — the frame encoder, the per-sender cache of resolved topics, the decoder for what it
// receives. One port per agent, used by one thread or actor at a time.
#pragma once

#include "node_impl.hpp"

#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>

#include <string>
#include <unordered_map>

namespace flowbus::actors::detail {

class port {
public:
  port(node::impl* core, std::shared_ptr<node::impl> keep, std::shared_ptr<endpoint> ep, codec::priority prio);

  send_result send(const destination& to, std::string_view payload, const send_options& opts,
                   std::string_view reply_to = {});
  /// To every agent but this one (or every agent of agent_type).
  send_result broadcast(std::string_view payload, std::string_view agent_type, const send_options& opts);
  /// Hands an encoded frame to a resolved route's recipients.
  send_result deliver_route(std::string_view topic, const route& r, const scheduling::buffer_ref& frame);
  /// Decodes a frame handed to this agent. False (and the frame is dead-lettered as corruption)
  /// if it does not decode.
  bool decode(const scheduling::buffer_ref& frame, delivery& out);

  /// The topic's recipients (cached), or nullptr if the topic is invalid.
  const route* resolve(std::string_view topic);
  /// Pushes to one endpoint, dead-lettering a refusal. Returns the refusal's errc or ok.
  errc push(endpoint& ep, const scheduling::buffer_ref& frame);

  endpoint& ep() noexcept { return *ep_; }
  const std::shared_ptr<endpoint>& ep_ptr() const noexcept { return ep_; }
  node::impl& core() noexcept { return *core_; }
  std::uint64_t sent() const noexcept { return sent_; }

private:
  /// Runs route() (the pushes); with send_options::confirm in a cluster, around it the bookkeeping
  /// that has the other nodes among the recipients confirm the frame.
  template <class Route> send_result confirming(const send_options& opts, const scheduling::buffer_ref& frame, Route&& route);
  /// Hands the encoded frame to the destination's recipients.
  send_result route_frame(const destination& to, const route* r, const scheduling::buffer_ref& frame);
  errc encode(const destination& to, std::string_view payload, const send_options& opts, std::string_view reply_to,
              bool broadcast, std::string_view agent_type, scheduling::buffer_ref& out);
  node::impl* core_;
  std::shared_ptr<node::impl> keep_;
  std::shared_ptr<endpoint> ep_;
  codec::priority prio_;
  codec::encoder enc_;
  codec::decoder dec_;
  std::uint64_t sent_ = 0;
  std::uint32_t remote_pushes_ = 0; ///< pushes to links to other nodes (counted for send_options::confirm)
  // route cache: topic -> recipients, valid while the routing table's generation is unchanged
  std::unordered_map<std::string, std::shared_ptr<const route>> cache_;
  std::uint64_t cache_generation_ = ~std::uint64_t{0};
  std::uint32_t lookups_ = 0, hits_ = 0; ///< route lookups since they were last added to the node's counts
  std::string key_;
  std::vector<codec::repeated_entry> repeated_; ///< encode(): the capability and headers of the frame
  routing_table::scratch scratch_;
};

} // namespace flowbus::actors::detail
