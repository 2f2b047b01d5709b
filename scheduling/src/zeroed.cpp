// Zero-filled allocations for rings whose fresh state is all zero bytes (mpsc_queue): large ones
// are anonymous mappings, so their pages cost resident memory only once touched.
#include <flowbus/scheduling/mpsc_queue.hpp>

#include <sys/mman.h>

#include <cstring>
#include <new>

namespace flowbus::scheduling::detail {

namespace {
constexpr std::size_t map_threshold = 16 * 1024;
}

void* zeroed_alloc(std::size_t bytes, std::size_t align) {
  if (bytes >= map_threshold && align <= 4096) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return p;
  }
  void* p = ::operator new(bytes, std::align_val_t{align});
  std::memset(p, 0, bytes);
  return p;
}

void zeroed_free(void* p, std::size_t bytes, std::size_t align) noexcept {
  if (bytes >= map_threshold && align <= 4096) {
    ::munmap(p, bytes);
    return;
  }
  ::operator delete(p, std::align_val_t{align});
}

} // namespace flowbus::scheduling::detail
