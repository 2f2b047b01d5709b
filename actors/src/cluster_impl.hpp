// The cluster's actors and their vocabulary (internal). cluster.cpp: the cluster actor — one per
// node, published on the cluster port: membership (dial, hello, gossip, redial), this node's
// interest and agents. cluster_link.cpp: one link actor per other node — frames both ways in
// batches, the peer's interest and agents in the routing table, failure handling.
//
// Messages between nodes use CAF's built-in types only (strings, string vectors, byte buffers,
// actor handles, atoms), so no type needs registering on either side.
#pragma once

#include "node_impl.hpp"

#include <caf/atom.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace flowbus::actors {

// node -> node (cluster actors)
using hello_atom = caf::atom_constant<caf::atom("fb_hello")>;   ///< (name, advertise, members, cluster) -> name
using link_atom = caf::atom_constant<caf::atom("fb_link")>;     ///< (name, advertise, link, cluster) -> link
using members_atom = caf::atom_constant<caf::atom("fb_membrs")>; ///< (addresses): dial the unknown
// link <-> link
using frames_atom = caf::atom_constant<caf::atom("fb_frames")>;  ///< (batch id, batch bytes), answered by
using acked_atom = caf::atom_constant<caf::atom("fb_acked")>;    ///< (batch id, frames accepted)
using rinterest_atom = caf::atom_constant<caf::atom("fb_rint")>; ///< (pattern, group pairs, add)
using ragent_atom = caf::atom_constant<caf::atom("fb_ragent")>;  ///< (agent entries, add)
// inside a node
using interest_atom = caf::atom_constant<caf::atom("fb_intr")>;  ///< topic actor -> cluster: (pattern, group, add)
using lagent_atom = caf::atom_constant<caf::atom("fb_lagent")>;  ///< directory -> cluster: (entry, add)
using link_up_atom = caf::atom_constant<caf::atom("fb_lnkup")>;  ///< link -> cluster: (peer)
using link_down_atom = caf::atom_constant<caf::atom("fb_lnkdn")>; ///< link -> cluster: (peer, reason)
using remote_atom = caf::atom_constant<caf::atom("fb_remote")>;  ///< cluster -> link: the peer's link
using snapshot_atom = caf::atom_constant<caf::atom("fb_snap")>;  ///< cluster -> link: (interest, agents)
using dial_atom = caf::atom_constant<caf::atom("fb_dial")>;      ///< cluster -> itself: (address)
using hold_atom = caf::atom_constant<caf::atom("fb_hold")>;    ///< link -> itself: answers held (lossless)
using ltick_atom = caf::atom_constant<caf::atom("fb_ltick")>;    ///< link -> itself: look at unanswered batches
using join_atom = caf::atom_constant<caf::atom("fb_join")>;    ///< node::join -> cluster: (address)
using check_atom = caf::atom_constant<caf::atom("fb_check")>;    ///< cluster -> itself: (address, attempt)

/// What a link counts; written by the link actor, read by node::peers().
struct link_stats {
  std::atomic<bool> up{false};
  std::atomic<std::uint64_t> frames_out{0}, frames_in{0}, unacked{0}, dead{0}, remote_agents{0}, interest{0},
      rtt_us{0};
  std::shared_ptr<endpoint> main; ///< under node::impl::peers_m: its backlog is part of `pending`
};

/// An agent as a node announces it to the others: "id \x1f type \x1f capability..." (one string).
std::string agent_entry(const std::string& id, const std::string& type, const std::vector<std::string>& caps);
/// Splits an entry; false if it is malformed (no id).
bool parse_agent_entry(const std::string& entry, std::string& id, std::vector<std::string>& caps);

/// A link to the node `peer`. `remote` is the peer's link actor, or none yet (this node initiated
/// the link and learns it from the answer: remote_atom).
caf::actor spawn_link(node::impl* core, caf::actor cluster, std::string peer, caf::actor remote,
                      std::shared_ptr<link_stats> stats);

/// The dead-letter recipient for frames a link could not carry: "node:<name>".
inline std::string node_recipient(const std::string& name) { return "node:" + name; }

} // namespace flowbus::actors
