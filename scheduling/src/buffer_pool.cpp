#include <flowbus/scheduling/buffer_pool.hpp>

#include <flowbus/scheduling/cache.hpp>

#include <algorithm>
#include <new>

namespace flowbus::scheduling {
namespace detail {

struct size_class {
  std::size_t capacity = 0, count = 0, stride = 0;
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

void release(buffer_header* h) noexcept { h->owner->push(h); }

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
    classes_.push_back(std::move(c));
  }
}

buffer_pool::~buffer_pool() = default;

buffer_ref buffer_pool::try_acquire(std::size_t size) noexcept {
  for (std::size_t i = 0; i < classes_.size(); ++i) {
    detail::size_class& c = *classes_[i];
    if (c.capacity < size) continue;
    if (detail::buffer_header* h = c.pop()) {
      h->refs.store(1, std::memory_order_relaxed); // sole owner: the pop's acquire already ordered us
      h->size = 0;
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

numa_buffer_pools::numa_buffer_pools(buffer_pool_options per_node) : topology_(numa_topology::detect()) {
  for (std::size_t n = 0; n < topology_.node_count(); ++n) {
    per_node.node = topology_.numa_available ? static_cast<int>(n) : -1;
    pools_.push_back(std::make_unique<buffer_pool>(per_node));
  }
}

buffer_pool& numa_buffer_pools::local() noexcept {
  const int cpu = current_cpu();
  return for_node(cpu < 0 ? 0 : static_cast<std::size_t>(topology_.node_of_cpu(cpu)));
}

} // namespace flowbus::scheduling
