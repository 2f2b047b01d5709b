// Which subscribers a topic reaches (topics and patterns: codec/topic.hpp). Exact patterns resolve
// through a hash table in O(1); wildcard patterns through a token trie (NATS's sublist shape: each
// level has literal children, a `*` child and a `>` list). A subscriber with several overlapping patterns appears once in a result. Results are
// cached per topic in a bounded cache, dropped whenever a subscription changes.
//
// Pure C++ (no CAF). In the node it lives inside routing_table (read concurrently through collect()).
// Used alone, match() adds the bounded result cache.
// @threadsafe const members (collect) with each other; match() and changes: one owner.
#pragma once

#include <flowbus/codec/topic.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace flowbus::actors {

using subscriber_id = std::uint32_t;
using subscriber_list = std::vector<subscriber_id>; ///< ascending, no duplicates

// The topic rules are the wire format's (codec/topic.hpp); the routing layer uses them as its own.
using codec::for_each_token;
using codec::max_topic_bytes;
using codec::pattern_covers;
using codec::pattern_matches;
using codec::patterns_intersect;
using codec::to_string;
using codec::topic_errc;
using codec::validate_pattern;
using codec::validate_topic;

class topic_index {
public:
  /// @param cache_capacity topics whose results are kept (0: no cache).
  explicit topic_index(std::size_t cache_capacity = 4096);
  ~topic_index();
  topic_index(const topic_index&) = delete;
  topic_index& operator=(const topic_index&) = delete;

  /// Adds (pattern, id); adding the same pair again changes nothing.
  topic_errc subscribe(std::string_view pattern, subscriber_id id);
  /// Removes (pattern, id); false if it was not there.
  bool unsubscribe(std::string_view pattern, subscriber_id id);
  /// Removes every pattern of id (the agent is gone); returns how many.
  std::size_t remove_subscriber(subscriber_id id);

  /// The subscribers whose patterns match `topic`, each once, ascending. An invalid topic matches
  /// nothing. The list stays valid as long as the caller holds it.
  std::shared_ptr<const subscriber_list> match(std::string_view topic);

  /// Reusable working memory for collect(): one per reading thread.
  struct match_scratch {
    std::string key;
    std::vector<std::string_view> tokens;
    std::vector<std::pair<const void*, std::size_t>> todo;
  };
  /// match() without the cache, for concurrent readers: `out` receives the subscribers of a
  /// *valid* topic (the caller validates), ascending, each once. Touches nothing but its arguments.
  /// @threadsafe with other const calls (not with subscribe/unsubscribe).
  void collect(std::string_view topic, match_scratch& scratch, subscriber_list& out) const;

  std::size_t subscription_count() const noexcept { return count_; }
  /// The patterns `id` subscribed to, sorted. @threadsafe with other const calls.
  std::vector<std::string> patterns_of(subscriber_id id) const;
  /// Trie nodes in use (pruned as wildcard patterns go away): memory stays bounded under churn.
  std::size_t trie_nodes() const noexcept;
  struct cache_stats {
    std::size_t entries, hits, misses;
  };
  cache_stats cache() const noexcept { return {cache_.size(), hits_, misses_}; }

private:
  struct node;
  std::shared_ptr<const subscriber_list> compute(const std::string& topic);
  void changed() noexcept { cache_.clear(); }

  std::unordered_map<std::string, subscriber_list> exact_; ///< patterns without wildcards
  std::unique_ptr<node> root_;                             ///< patterns with wildcards
  /// What each subscriber subscribed: unsubscribe is O(1) and removing a subscriber O(its count)
  /// (a vector made a close of a 100 000-subscription connection quadratic: issue 17.8)
  std::unordered_map<subscriber_id, std::unordered_set<std::string>> by_subscriber_;
  /// Removes (pattern, id) from the exact table or the trie; by_subscriber_ is the caller's.
  bool erase_entry(std::string_view pattern, subscriber_id id);
  std::unordered_map<std::string, std::shared_ptr<const subscriber_list>> cache_;
  std::size_t cache_capacity_;
  std::size_t count_ = 0, hits_ = 0, misses_ = 0;
  std::string scratch_; ///< reused key for lookups by string_view (no allocation once warm)
  // reused by compute(): a miss allocates only its result
  match_scratch scratch_match_;
  subscriber_list out_scratch_;
  std::shared_ptr<const subscriber_list> empty_;
};

} // namespace flowbus::actors
