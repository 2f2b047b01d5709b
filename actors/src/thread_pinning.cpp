#include <flowbus/actors/thread_pinning.hpp>

#include <flowbus/scheduling/numa.hpp>

#include <caf/actor_system_config.hpp>
#include <caf/thread_hook.hpp>

#include <atomic>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace flowbus::actors {
namespace {

class pinning_hook : public caf::thread_hook {
public:
  pinning_hook(pinning_options o, std::shared_ptr<pinning_report> report)
      : opts_(std::move(o)), report_(std::move(report)), topo_(scheduling::numa_topology::detect()) {
    if (opts_.cpus.empty())
      opts_.cpus = opts_.node >= 0 && static_cast<std::size_t>(opts_.node) < topo_.node_count()
                       ? topo_.node_cpus[static_cast<std::size_t>(opts_.node)]
                       : topo_.all_cpus();
  }

  void init(caf::actor_system&) override {}

  void thread_started() override {
    const std::size_t n = next_.fetch_add(1, std::memory_order_relaxed);
    std::vector<int> mine = opts_.cpus;
    if (opts_.one_cpu_per_thread && !mine.empty()) mine = {opts_.cpus[n % opts_.cpus.size()]};
    const std::error_code ec = scheduling::pin_current_thread(mine);
    if (!ec) scheduling::prefer_node(topo_.node_of_cpu(mine.front()));
    report_->add({n, static_cast<int>(::syscall(SYS_gettid)), scheduling::current_thread_affinity(), ec.value()});
  }

  void thread_terminates() override {}

private:
  pinning_options opts_;
  std::shared_ptr<pinning_report> report_;
  scheduling::numa_topology topo_;
  std::atomic<std::size_t> next_{0};
};

/// Sets the thread's timer slack: how late the kernel may wake a sleeping thread (default 50 µs).
/// CAF 0.17's idle work-stealing workers poll with short sleeps; with the default slack each
/// "sleep 5 µs" lasts ~55 µs, and that, not the queue, is the latency of waking an idle agent.
class timer_slack_hook : public caf::thread_hook {
public:
  explicit timer_slack_hook(unsigned long ns) : ns_(ns) {}
  void init(caf::actor_system&) override {}
  void thread_started() override { ::prctl(PR_SET_TIMERSLACK, ns_, 0, 0, 0); }
  void thread_terminates() override {}

private:
  unsigned long ns_;
};

} // namespace

void install_timer_slack(caf::actor_system_config& cfg, std::chrono::nanoseconds slack) {
  cfg.add_thread_hook<timer_slack_hook>(static_cast<unsigned long>(std::max<std::int64_t>(1, slack.count())));
}

std::shared_ptr<pinning_report> install_thread_pinning(caf::actor_system_config& cfg, pinning_options options) {
  auto report = std::make_shared<pinning_report>();
  if (options.enabled) cfg.add_thread_hook<pinning_hook>(std::move(options), report);
  return report;
}

} // namespace flowbus::actors
