// Every agent a node knows: identity, type, capabilities, promised heartbeat interval, metadata,
// liveness and load. The directory actor (issue 4) owns one; this class is its state and logic,
// free of CAF and of clocks (the caller passes `now`), so expiry is tested deterministically.
//
// Liveness: an agent that has not sent a heartbeat for `missed_allowed` intervals is expired by
// expire(now): removed and returned, so the owner can drop its subscriptions and answer its
// senders with "agent unavailable".
//
// Balancing (queue groups, capability routing): pick() chooses one agent among candidates, by
// round-robin (a cursor per group key) or least-loaded (fewest messages in flight, ties by
// round-robin so equal agents share the work).
// @threadsafe no — one owner.
#pragma once

#include <flowbus/actors/topic_index.hpp>           // subscriber_id
#include <flowbus/scheduling/agent_messages.hpp> // balance

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace flowbus::actors {

using agent_clock = std::chrono::steady_clock;

struct agent_info {
  std::string id;   ///< unique per node: "agent-7"
  std::string type; ///< "worker", "coordinator", ...
  std::vector<std::string> capabilities;
  std::chrono::milliseconds heartbeat_interval{1000};
  std::vector<std::pair<std::string, std::string>> metadata;
};

/// The longest heartbeat interval an agent may register with: its liveness clock (missed_allowed
/// intervals, in steady_clock's nanoseconds) must not overflow, and an agent silent for a day is
/// not alive in any sense a bus can use.
inline constexpr std::chrono::milliseconds max_heartbeat_interval{24 * 3600 * 1000};

enum class directory_errc : std::uint8_t {
  ok = 0,
  invalid_id,       ///< empty, or longer than max_topic_bytes
  duplicate_id,     ///< an agent with this id is registered
  unknown_agent,    ///< no agent with this handle
  invalid_interval, ///< heartbeat interval not positive, or above max_heartbeat_interval
};
const char* to_string(directory_errc e) noexcept;

using scheduling::balance;

class agent_directory {
public:
  struct record {
    agent_info info;
    agent_clock::time_point last_heartbeat;
    std::uint32_t in_flight = 0;
  };

  /// @param missed_allowed heartbeat intervals an agent may miss before it is expired.
  explicit agent_directory(unsigned missed_allowed = 3) : missed_allowed_(missed_allowed) {}

  /// Registers an agent; `handle` receives its subscriber id (never reused while the node lives).
  directory_errc add(agent_info info, agent_clock::time_point now, subscriber_id& handle);
  directory_errc heartbeat(subscriber_id handle, agent_clock::time_point now);
  /// Removes an agent (it said goodbye, or its connection closed).
  directory_errc remove(subscriber_id handle);
  /// Removes and returns the agents whose heartbeats stopped, oldest first.
  std::vector<std::pair<subscriber_id, agent_info>> expire(agent_clock::time_point now);
  /// The earliest time an agent can expire (for the owner's timer), if any agent is registered.
  std::optional<agent_clock::time_point> next_expiry() const;

  const record* find(subscriber_id handle) const noexcept;
  std::optional<subscriber_id> find(std::string_view id) const;
  std::vector<subscriber_id> of_type(std::string_view type) const;          ///< ascending
  std::vector<subscriber_id> capable_of(std::string_view capability) const; ///< ascending
  std::vector<subscriber_id> all() const;                                   ///< ascending
  std::size_t size() const noexcept { return agents_.size(); }

  /// Load accounting for least-loaded balancing: +1 when a message is handed to the agent,
  /// -1 when it is acknowledged or answered. Never goes below zero.
  void add_in_flight(subscriber_id handle, int delta) noexcept;

  /// One of `candidates` (registered ones only), or nothing if none is. `key` names the group
  /// whose round-robin cursor advances (a queue group, or "cap:<capability>").
  std::optional<subscriber_id> pick(const std::vector<subscriber_id>& candidates, balance policy,
                                    const std::string& key);

private:
  std::unordered_map<subscriber_id, record> agents_;
  std::unordered_map<std::string, subscriber_id> by_id_;
  std::unordered_map<std::string, std::size_t> cursors_;
  subscriber_id next_handle_ = 1;
  unsigned missed_allowed_;
};

} // namespace flowbus::actors
