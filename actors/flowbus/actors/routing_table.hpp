// The data plane's routing state: which endpoint each agent id, topic, queue group, capability
// and agent type reaches. The directory and topic actors change it; publishing threads read it
// concurrently through scheduling::left_right — so every change here must be deterministic (two
// copies receive the same calls and must stay equal) and every const member must be safe for
// concurrent readers (no caches, no lazily filled members).
//
// Queue groups follow NATS: a subscription (pattern, group) puts the agent in the group; a
// message whose topic matches the pattern goes to *one* member of each matching group, next to
// every plain subscriber. Internally a group is a subscriber of its own in the topic index, with
// an id from the upper half of the id space.
#pragma once

#include <flowbus/actors/agent_directory.hpp> // balance
#include <flowbus/actors/endpoint.hpp>
#include <flowbus/actors/topic_index.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace flowbus::actors {

/// Agents that share work: a queue group's members or the agents having a capability.
struct member_set {
  std::vector<std::shared_ptr<endpoint>> members; ///< ascending by id
  balance policy = balance::round_robin;
  /// Shared by every route built from this set (not between the two left-right copies: each
  /// copy balances on its own, which only matters for the pick right after a change).
  std::shared_ptr<std::atomic<std::size_t>> cursor = std::make_shared<std::atomic<std::size_t>>(0);
};

/// One open member chosen by the set's policy (round-robin, or fewest in flight with ties going
/// round-robin), or nullptr if none is open. Local members first: a link to another node
/// (endpoint::remote) is chosen only when no local member is open, as NATS prefers local queue
/// subscribers. @threadsafe
endpoint* pick(const member_set& set) noexcept;
/// The same with another policy than the set's (capability routing chooses per message).
endpoint* pick(const member_set& set, balance policy) noexcept;
/// Local members only (a frame that came from another node).
endpoint* pick_local(const member_set& set) noexcept;

/// The recipients of one topic, resolved once and cached by each publisher.
struct route {
  std::vector<std::shared_ptr<endpoint>> direct; ///< plain subscribers, each once
  std::vector<member_set> groups;                ///< matching queue groups: one member each
  /// node_config::lossless_topics matches the topic: a plain subscriber above its high water mark
  /// holds the publisher (else it is isolated: what it cannot take is shed to its dead letters)
  bool lossless = false;
  bool empty() const noexcept { return direct.empty() && groups.empty(); }
};

class routing_table {
public:
  static constexpr subscriber_id group_id_base = 0x80000000u; ///< ids at or above: queue groups

  routing_table() : index_(0) {} // uncached index: readers must not write

  // ---- changes (inside left_right::modify only) ----
  void add_agent(const std::shared_ptr<endpoint>& ep);
  /// Removes the agent, its subscriptions and its group memberships. Returns its patterns count.
  std::size_t remove_agent(subscriber_id id);
  topic_errc subscribe(std::string_view pattern, subscriber_id id);
  /// Joins the queue group `group` on `pattern`; the group's policy is set by its first member.
  topic_errc subscribe_group(std::string_view pattern, std::string_view group, balance policy, subscriber_id id);
  /// Leaves a plain subscription (empty group) or a queue group membership.
  bool unsubscribe(std::string_view pattern, std::string_view group, subscriber_id id);

  // ---- the cluster (cluster.hpp): links to other nodes and the agents they serve ----
  /// A link endpoint (endpoint::remote): subscribable like an agent, not an agent (no id, not
  /// listed). Its interest is subscribed with subscribe / subscribe_group. A node's `main` link
  /// endpoint also takes its broadcasts and the frames for its agents; the others carry one
  /// queue group each.
  void add_peer(const std::shared_ptr<endpoint>& ep, bool main);
  /// Removes the link endpoint, its subscriptions, group memberships and the agents it served.
  void remove_peer(subscriber_id id);
  /// An agent served by another node, reached through that node's link endpoint `peer`: unicast
  /// and its capabilities route there (a local agent of the same id wins). False if `peer` is not
  /// a link endpoint.
  bool add_remote_agent(const std::string& agent_id, const std::vector<std::string>& capabilities, subscriber_id peer);
  /// Removes the remote agent if `peer` (the node that announced it last) serves it.
  void remove_remote_agent(const std::string& agent_id, subscriber_id peer);
  /// The link endpoint serving `agent_id`, or nullptr.
  endpoint* remote_agent(std::string_view agent_id) const noexcept;
  /// A queue group by its key (pattern '\x1f' group), or nullptr.
  const member_set* group(std::string_view key) const noexcept;

  // ---- reads (concurrent) ----
  struct scratch {
    topic_index::match_scratch match;
    subscriber_list ids;
  };
  /// The recipients of a valid topic.
  void resolve(std::string_view topic, scratch& s, route& out) const;
  /// The agent's endpoint (a local agent's, else the link endpoint of the node serving it), or nullptr.
  endpoint* agent(std::string_view agent_id) const noexcept;
  /// A local agent's endpoint only, or nullptr.
  endpoint* local_agent(std::string_view agent_id) const noexcept;
  /// The agents having `capability`, or nullptr if none.
  const member_set* capable(std::string_view capability) const noexcept;
  /// Calls f(endpoint&) for every agent, or for every agent of `agent_type` if it is not empty.
  template <class F> void for_each_agent(std::string_view agent_type, F&& f) const {
    if (agent_type.empty()) {
      for (const auto& [id, ep] : agents_)
        f(*ep);
    } else if (auto it = by_type_.find(agent_type); it != by_type_.end()) {
      for (const auto& ep : it->second.members)
        f(*ep);
    }
  }
  /// Calls f(endpoint&) for the main link endpoint of every other node.
  template <class F> void for_each_peer(F&& f) const {
    for (const auto& [id, p] : peers_)
      if (p.main) f(*p.ep);
  }
  /// What `id` subscribed to, sorted: its plain patterns, and "pattern group" for each queue
  /// group it is a member of (NATS's way of writing a queue subscription).
  std::vector<std::string> interest_of(subscriber_id id) const;
  std::size_t agent_count() const noexcept { return agents_.size(); }
  std::size_t remote_agent_count() const noexcept { return remote_agents_.size(); }
  std::size_t subscription_count() const noexcept { return index_.subscription_count(); }
  std::size_t group_count() const noexcept { return groups_.size(); }

private:
  struct group_entry {
    std::string pattern;
    std::string key; ///< pattern '\x1f' group name
    member_set set;
  };
  struct peer_entry {
    std::shared_ptr<endpoint> ep;
    bool main;
  };
  struct remote_entry {
    subscriber_id peer;
    std::vector<std::string> capabilities;
  };
  static void add_member(member_set& set, const std::shared_ptr<endpoint>& ep);
  /// An agent's or a link endpoint's, or nullptr.
  const std::shared_ptr<endpoint>* subscribable(subscriber_id id) const noexcept;
  /// Drops the subscriptions and group memberships of `id`; their count.
  std::size_t drop_interest(subscriber_id id);
  void drop_capability(const std::string& capability, subscriber_id id);
  static bool remove_member(member_set& set, subscriber_id id);
  bool leave_group(subscriber_id gid, subscriber_id id);

  topic_index index_;
  std::unordered_map<subscriber_id, std::shared_ptr<endpoint>> agents_;
  std::unordered_map<std::string_view, endpoint*> by_name_; ///< keys view the endpoints' own ids
  std::map<std::string, member_set, std::less<>> by_capability_, by_type_;
  std::unordered_map<subscriber_id, group_entry> groups_;
  std::unordered_map<std::string, subscriber_id> group_ids_;
  std::unordered_map<subscriber_id, std::unordered_set<subscriber_id>> memberships_; ///< agent -> groups (O(1) leave)
  subscriber_id next_group_ = group_id_base;
  std::unordered_map<subscriber_id, peer_entry> peers_;
  std::map<std::string, remote_entry, std::less<>> remote_agents_;
  /// (link endpoint, capability) -> how many of that node's agents have it
  std::map<std::pair<subscriber_id, std::string>, std::uint32_t> peer_capabilities_;
};

} // namespace flowbus::actors
