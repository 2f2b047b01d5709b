#include <flowbus/scheduling/numa.hpp>

#include <numa.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <utility>

namespace flowbus::scheduling {
namespace {

std::vector<int> process_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

bool libnuma_ok() noexcept {
  static const bool ok = ::numa_available() >= 0;
  return ok;
}

std::string ranges(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1)
      ++j;
    if (!s.empty()) s += ",";
    s += std::to_string(v[i]);
    if (j > i) s += "-" + std::to_string(v[j]);
    i = j + 1;
  }
  return s;
}

} // namespace

int numa_topology::node_of_cpu(int cpu) const noexcept {
  for (std::size_t n = 0; n < node_cpus.size(); ++n)
    if (std::find(node_cpus[n].begin(), node_cpus[n].end(), cpu) != node_cpus[n].end()) return static_cast<int>(n);
  return 0;
}

std::vector<int> numa_topology::all_cpus() const {
  std::vector<int> all;
  for (const auto& n : node_cpus)
    all.insert(all.end(), n.begin(), n.end());
  return all;
}

std::string numa_topology::describe() const {
  std::string s = std::to_string(node_count()) + (node_count() == 1 ? " node" : " nodes");
  s += numa_available ? " (libnuma):" : " (no NUMA, fallback):";
  for (std::size_t n = 0; n < node_cpus.size(); ++n)
    s += " " + std::to_string(n) + ":[" + ranges(node_cpus[n]) + "]";
  return s;
}

numa_topology numa_topology::detect() {
  numa_topology t;
  const std::vector<int> usable = process_cpus();
  if (!libnuma_ok()) {
    t.node_cpus.push_back(usable);
    return t;
  }
  t.numa_available = true;
  const int max_node = ::numa_max_node();
  t.node_cpus.resize(static_cast<std::size_t>(max_node + 1));
  for (int cpu : usable) {
    const int node = ::numa_node_of_cpu(cpu);
    t.node_cpus[static_cast<std::size_t>(node < 0 ? 0 : node)].push_back(cpu);
  }
  return t;
}

std::error_code pin_current_thread(const std::vector<int>& cpus) {
  if (cpus.empty()) return std::make_error_code(std::errc::invalid_argument);
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) {
    if (c < 0 || c >= CPU_SETSIZE) return std::make_error_code(std::errc::invalid_argument);
    CPU_SET(c, &set);
  }
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0) return {rc, std::generic_category()};
  return {};
}

std::vector<int> current_thread_affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

int current_cpu() noexcept { return sched_getcpu(); }

std::uint64_t resident_kib(int pid) {
  std::ifstream in(pid ? "/proc/" + std::to_string(pid) + "/status" : std::string("/proc/self/status"));
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      std::uint64_t v = 0;
      in >> v;
      return v;
    }
    in.ignore(4096, '\n');
  }
  return 0;
}

void prefer_node(int node) noexcept {
  if (libnuma_ok() && node >= 0) ::numa_set_preferred(node);
}

const char* to_string(page_kind k) noexcept {
  switch (k) {
  case page_kind::huge:
    return "huge (MAP_HUGETLB)";
  case page_kind::transparent:
    return "transparent huge pages (madvise)";
  case page_kind::normal:
    return "normal";
  }
  return "?";
}

mapped_region::mapped_region(mapped_region&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), kind_(o.kind_), node_(o.node_) {}

mapped_region& mapped_region::operator=(mapped_region&& o) noexcept {
  mapped_region old(std::move(*this)); // unmapped when it goes out of scope
  data_ = std::exchange(o.data_, nullptr);
  size_ = std::exchange(o.size_, 0);
  kind_ = o.kind_;
  node_ = o.node_;
  return *this;
}

mapped_region::~mapped_region() {
  if (data_) ::munmap(data_, size_);
}

mapped_region mapped_region::map(std::size_t bytes, bool want_huge, int node, std::error_code& ec) {
  ec.clear();
  constexpr std::size_t huge = 2 * 1024 * 1024;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  mapped_region r;
  if (bytes == 0) bytes = 1;
  if (want_huge) {
    const std::size_t len = (bytes + huge - 1) / huge * huge;
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (p != MAP_FAILED) {
      r.data_ = p;
      r.size_ = len;
      r.kind_ = page_kind::huge;
    }
  }
  if (!r.data_) {
    const std::size_t len =
        want_huge && bytes >= huge ? (bytes + huge - 1) / huge * huge : (bytes + page - 1) / page * page;
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      ec = {errno, std::generic_category()};
      return r;
    }
    r.data_ = p;
    r.size_ = len;
    r.kind_ = want_huge && ::madvise(p, len, MADV_HUGEPAGE) == 0 ? page_kind::transparent : page_kind::normal;
  }
  if (node >= 0 && libnuma_ok() && node <= ::numa_max_node()) {
    ::numa_tonode_memory(r.data_, r.size_, node); // before first touch: pages come from that node
    r.node_ = node;
  }
  return r;
}

std::error_code lock_all_memory() {
  if (::mlockall(MCL_CURRENT | MCL_FUTURE) != 0) return {errno, std::generic_category()};
  return {};
}

} // namespace flowbus::scheduling
