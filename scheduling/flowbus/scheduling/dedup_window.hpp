// Duplicate detection by message id, per source, in a sliding window (the anti-replay window of
// IPsec, RFC 4303 §3.4.3): for each source the highest id seen and a bitmap of the `window` ids
// below it. An id inside the window that was seen is a duplicate; an id newer than the highest
// slides the window. An id older than the window cannot be judged: it is accepted and counted as
// `stale` (at-least-once delivery may duplicate; it must never lose). Memory is fixed: at most
// `max_sources` sources, the least recently active forgotten first.
// @threadsafe no: one owner (a receiving connection).
#pragma once

#include <algorithm>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flowbus::scheduling {

class dedup_window {
public:
  enum class verdict : std::uint8_t { fresh, duplicate, stale };

  explicit dedup_window(std::size_t window = 4096, std::size_t max_sources = 4096)
      : words_((std::max<std::size_t>(window, 64) + 63) / 64), max_sources_(std::max<std::size_t>(max_sources, 1)) {}

  /// Records (source, id) and says whether it was new. Ids are expected to grow per source.
  verdict check(std::string_view source, std::uint64_t id) {
    auto it = map_.find(std::string(source));
    if (it == map_.end()) {
      if (map_.size() >= max_sources_) { // forget the least recently active source
        map_.erase(lru_.back());
        lru_.pop_back();
      }
      lru_.emplace_front(source);
      it = map_.emplace(lru_.front(), entry{id, std::vector<std::uint64_t>(words_, 0), lru_.begin()}).first;
      it->second.bits[0] |= 1;
      return verdict::fresh;
    }
    entry& e = it->second;
    lru_.splice(lru_.begin(), lru_, e.pos);
    const std::size_t span = words_ * 64;
    if (id > e.highest) { // slide: bit k means "highest - k was seen"
      shift(e, id - e.highest);
      e.highest = id;
      e.bits[0] |= 1;
      return verdict::fresh;
    }
    const std::uint64_t k = e.highest - id;
    if (k >= span) {
      ++stale_;
      return verdict::stale;
    }
    std::uint64_t& w = e.bits[k / 64];
    const std::uint64_t m = std::uint64_t{1} << (k % 64);
    if (w & m) {
      ++duplicates_;
      return verdict::duplicate;
    }
    w |= m;
    return verdict::fresh;
  }

  std::uint64_t duplicates() const noexcept { return duplicates_; }
  std::uint64_t stale() const noexcept { return stale_; }
  std::size_t sources() const noexcept { return map_.size(); }

private:
  struct entry {
    std::uint64_t highest;
    std::vector<std::uint64_t> bits;
    std::list<std::string>::iterator pos;
  };

  void shift(entry& e, std::uint64_t by) const {
    auto& b = e.bits;
    if (by >= words_ * 64) {
      std::fill(b.begin(), b.end(), 0);
      return;
    }
    const std::size_t words = static_cast<std::size_t>(by / 64), bits = static_cast<std::size_t>(by % 64);
    for (std::size_t i = words_; i-- > 0;) {
      std::uint64_t v = i >= words ? b[i - words] << bits : 0;
      if (bits && i >= words + 1) v |= b[i - words - 1] >> (64 - bits);
      b[i] = v;
    }
  }

  std::size_t words_, max_sources_;
  std::list<std::string> lru_;
  std::unordered_map<std::string, entry> map_;
  std::uint64_t duplicates_ = 0, stale_ = 0;
};

} // namespace flowbus::scheduling
