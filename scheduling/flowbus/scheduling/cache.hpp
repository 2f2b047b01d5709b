// Cache-line layout helpers shared by the lock-free structures.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flowbus::scheduling {

/// x86-64 lines are 64 bytes, but adjacent-line prefetch pulls pairs: indices written by different
/// threads sit 128 bytes apart so neither line ping-pongs (the value rigtorp/SPSCQueue uses).
inline constexpr std::size_t cache_line = 64;
inline constexpr std::size_t false_sharing_range = 128;

/// Smallest power of two >= n (n >= 1).
inline constexpr std::size_t round_up_pow2(std::size_t n) noexcept {
  std::size_t p = 1;
  while (p < n)
    p <<= 1;
  return p;
}

/// Spin-wait hint for busy loops.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

} // namespace flowbus::scheduling
