// NUMA topology, thread pinning and node-local, huge-page-backed memory.
//
// libnuma is used when numa_available() says the kernel supports it; otherwise (containers
// without mbind, single-node kernels built without NUMA) everything falls back to one node holding
// the CPUs this process may run on, and node binding becomes a no-op. Every function reports
// failure as a std::error_code and leaves the process usable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

namespace flowbus::scheduling {

struct numa_topology {
  bool numa_available = false;             ///< libnuma usable (false: one fallback node)
  std::vector<std::vector<int>> node_cpus; ///< CPUs per node, only those this process may use

  std::size_t node_count() const noexcept { return node_cpus.size(); }
  /// The node holding cpu, or 0 if unknown.
  int node_of_cpu(int cpu) const noexcept;
  /// All usable CPUs, node by node.
  std::vector<int> all_cpus() const;
  std::string describe() const; ///< "2 nodes: 0:[0-3] 1:[4-7]" style, for logs

  static numa_topology detect();
};

/// Restricts the calling thread to `cpus`. Empty list: error (invalid_argument).
std::error_code pin_current_thread(const std::vector<int>& cpus);
/// The CPUs the calling thread may run on.
std::vector<int> current_thread_affinity();
/// The CPU the calling thread runs on right now (-1 if unknown).
int current_cpu() noexcept;
/// Makes the calling thread allocate from `node` first (no-op without NUMA).
void prefer_node(int node) noexcept;
/// Resident memory of process `pid` (0: this one) in KiB, from /proc/PID/status VmRSS; 0 if unknown.
std::uint64_t resident_kib(int pid = 0);

enum class page_kind {
  huge,        ///< explicit huge pages (MAP_HUGETLB, from the kernel's reserved pool)
  transparent, ///< normal mapping with madvise(MADV_HUGEPAGE): THP if the kernel grants it
  normal,      ///< 4 KiB pages
};
const char* to_string(page_kind k) noexcept;

/// An anonymous, zero-filled memory mapping; unmapped on destruction. Move-only.
class mapped_region {
public:
  mapped_region() noexcept = default;
  mapped_region(mapped_region&& o) noexcept;
  mapped_region& operator=(mapped_region&& o) noexcept;
  mapped_region(const mapped_region&) = delete;
  mapped_region& operator=(const mapped_region&) = delete;
  ~mapped_region();

  /// Maps `bytes` (rounded up to the page size used). With `want_huge`, tries MAP_HUGETLB, then
  /// falls back to THP via madvise, then normal pages. With node >= 0 and NUMA available, binds the
  /// pages to that node (mbind, preferred policy). Errors only when nothing could be mapped.
  static mapped_region map(std::size_t bytes, bool want_huge, int node, std::error_code& ec);

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  page_kind pages() const noexcept { return kind_; }
  int node() const noexcept { return node_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
  page_kind kind_ = page_kind::normal;
  int node_ = -1;
};

/// mlockall(MCL_CURRENT | MCL_FUTURE): no page of this process is swapped out or faulted in
/// lazily later. Needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK; the error says which failed.
std::error_code lock_all_memory();

} // namespace flowbus::scheduling
