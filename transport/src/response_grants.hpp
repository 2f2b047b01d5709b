// allow_responses (permissions.hpp): the requests a connection's agent received, each letting it
// send up to `max` REPLYs to the requester whatever its unicast permissions say, within an
// expiry (private to transport/). Pure: time is passed in; tested in transport.permissions.
// @threadsafe no (the session's strand)
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace flowbus::transport::detail {

class response_grants {
public:
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t capacity = 4096; ///< requests remembered; the oldest go first

  /// A REQUEST from `requester` with `correlation` went to the agent at `now`.
  void granted(std::string_view requester, std::uint64_t correlation, std::uint32_t max,
               std::chrono::milliseconds expires, clock::time_point now) {
    if (!max) return;
    std::string k = key(requester, correlation);
    const clock::time_point until = expires.count() ? now + expires : clock::time_point::max();
    auto [it, fresh] = grants_.insert_or_assign(k, grant{max, until});
    (void)it;
    if (fresh) order_.push_back(std::move(k));
    while (grants_.size() > capacity && !order_.empty()) { // (keys already used up are skipped)
      grants_.erase(order_.front());
      order_.pop_front();
    }
    if (order_.size() > 2 * capacity) compact();
  }
  /// A REPLY to `requester` with `correlation` at `now`: true, and one reply used, if a grant is left.
  bool use(std::string_view requester, std::uint64_t correlation, clock::time_point now) {
    const auto it = grants_.find(key(requester, correlation));
    if (it == grants_.end()) return false;
    if (now > it->second.until) {
      grants_.erase(it);
      return false;
    }
    if (--it->second.left == 0) grants_.erase(it);
    return true;
  }
  std::size_t size() const noexcept { return grants_.size(); }

private:
  struct grant {
    std::uint32_t left;
    clock::time_point until;
  };
  static std::string key(std::string_view requester, std::uint64_t correlation) {
    std::string k(requester);
    k.push_back('\0');
    k.append(reinterpret_cast<const char*>(&correlation), sizeof correlation);
    return k;
  }
  /// Drops the order's keys whose grants are gone.
  void compact() {
    std::deque<std::string> live;
    for (auto& k : order_)
      if (grants_.count(k)) live.push_back(std::move(k));
    order_.swap(live);
  }

  std::unordered_map<std::string, grant> grants_;
  std::deque<std::string> order_; ///< keys in the order granted (some may be gone)
};

} // namespace flowbus::transport::detail
