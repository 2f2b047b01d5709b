// Pins the threads a CAF actor system starts (scheduler workers, and — CAF 0.17 gives them no
// distinguishing names — its clock, middleman and detached-actor threads) to chosen CPUs, each
// thread also preferring the NUMA node of its CPU for allocations.
//
// Policy: with one_cpu_per_thread, the n-th started thread gets cpus[n % cpus.size()]; otherwise
// every thread may run on the whole list. An empty list means every CPU of the given node (or of
// the machine for node < 0). What each thread got is recorded for inspection.
#pragma once

#include <caf/fwd.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

namespace flowbus::actors {

struct pinning_options {
  bool enabled = true;
  std::vector<int> cpus;          ///< CPUs to use; empty: all CPUs of `node`
  int node = -1;                  ///< NUMA node whose CPUs to use when cpus is empty (-1: all)
  bool one_cpu_per_thread = true; ///< round-robin single CPUs, or share the whole list
};

/// What the hook did, per started thread.
struct pinned_thread {
  std::size_t index; ///< start order (what round-robin assigned by)
  int tid;
  std::vector<int> cpus; ///< the affinity the thread had after pinning
  int error;             ///< 0, or the errno of a refused pin (the thread runs unpinned)
};

/// Shared with the hook so the application (and tests) can see the outcome.
class pinning_report {
public:
  std::vector<pinned_thread> threads() const {
    std::lock_guard<std::mutex> g(m_);
    return threads_;
  }
  void add(pinned_thread t) {
    std::lock_guard<std::mutex> g(m_);
    threads_.push_back(std::move(t));
  }

private:
  mutable std::mutex m_;
  std::vector<pinned_thread> threads_;
};

/// Installs the pinning hook into cfg (before the actor_system is constructed). Returns the report
/// the hook fills as CAF starts its threads; with options.enabled == false nothing is installed.
std::shared_ptr<pinning_report> install_thread_pinning(caf::actor_system_config& cfg, pinning_options options);

/// Installs a hook giving every CAF thread a timer slack of `slack` (Linux prctl), so that the
/// short sleeps of idle scheduler workers end on time.
void install_timer_slack(caf::actor_system_config& cfg, std::chrono::nanoseconds slack);

} // namespace flowbus::actors
