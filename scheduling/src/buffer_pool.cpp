#include <flowbus/scheduling/buffer_pool.hpp>

#include <flowbus/scheduling/cache.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_set>

namespace flowbus::scheduling {
namespace detail {

namespace {
/// Ids of the size classes alive now. A thread cache outlives pools (a thread's cache is flushed
/// when it exits, or when a slot is reused): it gives buffers back only to a class still here.
/// Leaked on purpose: thread caches are flushed during exit, after statics may be gone.
struct class_registry {
  std::mutex mutex;
  std::unordered_set<std::uint64_t> live;
  std::uint64_t next_id = 1;
};
class_registry& registry() {
  static auto* r = new class_registry;
  return *r;
}
constexpr std::uint32_t max_magazine = 32;
} // namespace

struct size_class {
  std::size_t capacity = 0, count = 0, stride = 0;
  std::uint64_t id = 0;         ///< unique for the life of the process
  std::uint32_t magazine = 0;   ///< buffers a thread may keep cached (0: no thread cache)
  mapped_region slab;
  // Treiber stack head: high 32 bits an ABA tag bumped by every change, low 32 bits index + 1.
  alignas(false_sharing_range) std::atomic<std::uint64_t> head{0};
  alignas(false_sharing_range) std::atomic<std::size_t> exhausted{0};

  buffer_header* at(std::uint32_t index) const noexcept {
    return reinterpret_cast<buffer_header*>(static_cast<unsigned char*>(slab.data()) + index * stride);
  }

  void push(buffer_header* h) noexcept {
    std::uint64_t old = head.load(std::memory_order_relaxed);
    for (;;) {
      h->next_free.store(static_cast<std::uint32_t>(old), std::memory_order_relaxed);
      const std::uint64_t next = ((old >> 32) + 1) << 32 | (h->index + 1u);
      // release: the next popper sees next_free and everything the last owner did
      if (head.compare_exchange_weak(old, next, std::memory_order_release, std::memory_order_relaxed)) return;
    }
  }

  /// Buffers on the free list: exact while no thread acquires or releases (a statistic, off the
  /// hot path: keeping a live counter would add two locked instructions to every acquire+release).
  std::size_t free_now() const noexcept {
    std::size_t n = 0;
    for (auto link = static_cast<std::uint32_t>(head.load(std::memory_order_acquire)); link != 0 && n < count; ++n)
      link = at(link - 1)->next_free.load(std::memory_order_relaxed);
    return n;
  }

  /// Links items[0..k) into a chain and pushes it with one CAS.
  void push_many(const std::uint32_t* items, std::uint32_t k) noexcept {
    for (std::uint32_t i = 0; i + 1 < k; ++i)
      at(items[i])->next_free.store(items[i + 1] + 1, std::memory_order_relaxed);
    buffer_header* last = at(items[k - 1]);
    std::uint64_t old = head.load(std::memory_order_relaxed);
    for (;;) {
      last->next_free.store(static_cast<std::uint32_t>(old), std::memory_order_relaxed);
      const std::uint64_t next = ((old >> 32) + 1) << 32 | (items[0] + 1u);
      if (head.compare_exchange_weak(old, next, std::memory_order_release, std::memory_order_relaxed)) return;
    }
  }

  /// Pops up to k buffers with one CAS. The walk may read links that concurrent pops and pushes
  /// are changing (they are atomics, and always hold a valid link): any change bumps the tag, so
  /// the CAS then fails and the walk is redone.
  std::uint32_t pop_many(std::uint32_t* out, std::uint32_t k) noexcept {
    std::uint64_t old = head.load(std::memory_order_acquire);
    for (;;) {
      auto link = static_cast<std::uint32_t>(old);
      std::uint32_t n = 0;
      while (link != 0 && n < k) {
        out[n++] = link - 1;
        link = at(link - 1)->next_free.load(std::memory_order_relaxed);
      }
      if (n == 0) return 0;
      const std::uint64_t next = ((old >> 32) + 1) << 32 | link;
      if (head.compare_exchange_weak(old, next, std::memory_order_acquire, std::memory_order_acquire)) return n;
    }
  }

  buffer_header* pop() noexcept {
    std::uint64_t old = head.load(std::memory_order_acquire);
    for (;;) {
      const auto top = static_cast<std::uint32_t>(old);
      if (top == 0) return nullptr;
      buffer_header* h = at(top - 1);
      // may read a link that a concurrent pop/push is changing: the tag makes that CAS fail
      const std::uint32_t next_link = h->next_free.load(std::memory_order_relaxed);
      const std::uint64_t next = ((old >> 32) + 1) << 32 | next_link;
      if (head.compare_exchange_weak(old, next, std::memory_order_acquire, std::memory_order_acquire)) return h;
    }
  }
};

namespace {
/// A thread's magazines: per size class, a few free buffers this thread took or released last, so
/// a producer and a consumer on two cores exchange buffers with the shared free list a half
/// magazine per CAS instead of bouncing its cache line on every message.
struct thread_cache {
  struct slot {
    size_class* cls = nullptr;
    std::uint64_t id = 0;
    std::uint32_t n = 0;
    std::uint32_t items[max_magazine];
  };
  slot slots[8];
  unsigned victim = 0;

  slot& for_class(size_class& c) noexcept {
    for (slot& s : slots)
      if (s.id == c.id) return s;
    slot& s = slots[victim++ % (sizeof slots / sizeof slots[0])];
    flush(s);
    s.cls = &c;
    s.id = c.id;
    return s;
  }

  static void flush(slot& s) noexcept {
    if (s.n > 0) {
      class_registry& r = registry();
      std::lock_guard<std::mutex> lock(r.mutex); // the class cannot go away while we give back
      if (r.live.count(s.id)) s.cls->push_many(s.items, s.n);
    }
    s = slot{};
  }

  ~thread_cache() {
    for (slot& s : slots)
      flush(s);
  }
};
thread_local thread_cache cache;
} // namespace

buffer_header* heap_copy(const void* data, std::size_t n) {
  void* mem = ::operator new(sizeof(buffer_header) + n, std::align_val_t{alignof(buffer_header)});
  auto* h = new (mem) buffer_header;
  h->refs.store(1, std::memory_order_relaxed);
  h->capacity = h->size = static_cast<std::uint32_t>(n);
  if (n) std::memcpy(h->data(), data, n);
  return h;
}

void release(buffer_header* h) noexcept {
  if (!h->owner) { // a heap copy
    h->~buffer_header();
    ::operator delete(h, std::align_val_t{alignof(buffer_header)});
    return;
  }
  size_class& c = *h->owner;
  if (c.magazine == 0) return c.push(h);
  thread_cache::slot& s = cache.for_class(c);
  if (s.n == c.magazine) { // full: the older half goes back in one CAS
    const std::uint32_t half = c.magazine / 2;
    c.push_many(s.items, half);
    std::copy(s.items + half, s.items + s.n, s.items);
    s.n -= half;
  }
  s.items[s.n++] = h->index;
}

namespace {
buffer_header* take(size_class& c) noexcept {
  if (c.magazine == 0) return c.pop();
  thread_cache::slot& s = cache.for_class(c);
  if (s.n == 0) s.n = c.pop_many(s.items, c.magazine / 2);
  return s.n == 0 ? nullptr : c.at(s.items[--s.n]);
}
} // namespace

} // namespace detail

buffer_pool::buffer_pool(const buffer_pool_options& options) : spill_(options.spill_to_larger) {
  std::error_code ignored; // an empty pool refuses every acquire: that is the report
  init(options, ignored);
}

buffer_pool::buffer_pool(const buffer_pool_options& options, std::error_code& ec) : spill_(options.spill_to_larger) {
  init(options, ec);
}

void buffer_pool::init(const buffer_pool_options& options, std::error_code& ec) {
  ec.clear();
  auto specs = options.classes;
  std::sort(specs.begin(), specs.end(), [](auto& a, auto& b) { return a.capacity < b.capacity; });
  bool first = true;
  for (const auto& spec : specs) {
    auto c = std::make_unique<detail::size_class>();
    c->capacity = spec.capacity;
    c->count = spec.count;
    c->stride = sizeof(detail::buffer_header) + (spec.capacity + cache_line - 1) / cache_line * cache_line;
    // a thread may keep up to 1/128 of a class (and at most 32): a small class stays exact
    const std::size_t magazine = std::min<std::size_t>(options.thread_cache, spec.count / 128);
    c->magazine = magazine >= 4 ? static_cast<std::uint32_t>(std::min<std::size_t>(magazine, detail::max_magazine)) : 0;
    c->slab = mapped_region::map(c->stride * spec.count, options.huge_pages, options.node, ec);
    if (ec) {
      classes_.clear();
      return;
    }
    if (first || c->slab.pages() != page_kind::huge) pages_ = c->slab.pages(); // report the weakest
    node_ = c->slab.node();
    first = false;
    for (std::size_t i = spec.count; i-- > 0;) { // push in reverse: index 0 is handed out first
      auto* h = new (c->at(static_cast<std::uint32_t>(i))) detail::buffer_header;
      h->capacity = static_cast<std::uint32_t>(spec.capacity);
      h->index = static_cast<std::uint32_t>(i);
      h->owner = c.get();
      c->push(h);
    }
    {
      detail::class_registry& r = detail::registry();
      std::lock_guard<std::mutex> lock(r.mutex);
      c->id = r.next_id++;
      r.live.insert(c->id);
    }
    classes_.push_back(std::move(c));
  }
}

buffer_pool::~buffer_pool() {
  detail::class_registry& r = detail::registry();
  std::lock_guard<std::mutex> lock(r.mutex); // no thread cache is giving buffers back now
  for (const auto& c : classes_)
    r.live.erase(c->id);
}

buffer_ref buffer_pool::try_acquire(std::size_t size) noexcept {
  for (std::size_t i = 0; i < classes_.size(); ++i) {
    detail::size_class& c = *classes_[i];
    if (c.capacity < size) continue;
    if (detail::buffer_header* h = detail::take(c)) {
      h->refs.store(1, std::memory_order_relaxed); // sole owner: the pop's acquire already ordered us
      h->size = 0;
      h->stamp_ns = 0;
      return buffer_ref(h);
    }
    c.exhausted.fetch_add(1, std::memory_order_relaxed);
    if (!spill_) return {};
  }
  return {};
}

std::vector<size_class_stats> buffer_pool::stats() const {
  std::vector<size_class_stats> out;
  for (const auto& c : classes_)
    out.push_back({c->capacity, c->count, c->free_now(), c->exhausted.load(std::memory_order_relaxed)});
  return out;
}

std::size_t buffer_pool::largest_capacity() const noexcept { return classes_.empty() ? 0 : classes_.back()->capacity; }

} // namespace flowbus::scheduling
