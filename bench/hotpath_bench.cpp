// Hot-path harness (issue 3): everything in one run, side by side, so ratios hold on a noisy box.
//
//   spsc_pingpong        two threads pinned to different CPUs, one SPSC ring each way
//   caf_pingpong         two CAF event-based actors (the baseline the hot path must beat)
//   mutex_cv_pingpong    two threads, a mutex + condition variable queue each way
//   shm_pingpong         two processes (fork), the shared-memory channel
//   spsc_throughput      one producer -> one consumer, batches of 32
//   mpsc_2p_throughput   two producers -> one consumer
//   send_queue_{mutex,ring}_{1,2,4}p  the client's send queue: producers append 168-byte frames,
//                        one consumer gathers them (the queue under a mutex it had, the lock-free
//                        byte ring it has)
//   pool_acquire_release one thread, 256-byte class
//   caf_anon_send_throughput  a thread sends N messages to a CAF actor with anon_send
//   caf_mailbox_throughput    the same N through actor_mailbox (ring + doorbell when idle)
//
//   cacheline_pingpong   the floor: one atomic bounced between the two CPUs (no queue at all)
//   caf_thread_actor_pingpong  a spinning thread sends to a CAF actor (anon_send), the actor
//                        answers through an SPSC ring: CAF's mailbox + scheduler wake-up, the
//                        path an I/O thread would take into an actor without flowbus's rings
//
// Round trips are timed one by one (steady_clock) into the HDR histogram: p50/p99 etc. in ns.
// --runs rounds (default 5) each run every benchmark once; a JSON line gives the median round's
// figures (by p50 or by rate) with the spread across rounds, and ratio lines compare p50s within
// each round (median and range): this VM's cross-CPU latency changes from minute to minute.
#include <flowbus/actors/actor_mailbox.hpp>
#include <flowbus/scheduling/buffer_pool.hpp>
#include <flowbus/scheduling/fixed_rate.hpp>
#include <flowbus/scheduling/histogram.hpp>
#include <flowbus/scheduling/mpsc_byte_ring.hpp>
#include <flowbus/scheduling/mpsc_queue.hpp>
#include <flowbus/scheduling/numa.hpp>
#include <flowbus/scheduling/shm_channel.hpp>
#include <flowbus/scheduling/spsc_ring.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace flowbus::scheduling;
using clk = std::chrono::steady_clock;

namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now().time_since_epoch()).count());
}

int cpu_a = 0, cpu_b = 1; // the two CPUs the ping-pong sides are pinned to

void pin(int cpu) { (void)pin_current_thread({cpu}); }

struct run_result {
  histogram h;     // latency benches
  double rate = 0; // throughput benches: items per second
  double ns_per_op = 0;
};

// ---------------------------------------------------------------- ping-pongs

run_result spsc_pingpong(std::size_t n) {
  spsc_ring<std::uint64_t> ping(1024), pong(1024);
  std::atomic<bool> go{false};
  std::thread echo([&] {
    pin(cpu_b);
    go = true;
    std::uint64_t v;
    for (std::size_t i = 0; i < n; ++i) {
      while (!ping.try_pop(v))
        cpu_relax();
      while (!pong.try_push(v))
        cpu_relax();
    }
  });
  pin(cpu_a);
  while (!go)
    cpu_relax();
  run_result r;
  std::uint64_t v;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t t0 = now_ns();
    while (!ping.try_push(i))
      cpu_relax();
    while (!pong.try_pop(v))
      cpu_relax();
    r.h.record(now_ns() - t0);
  }
  echo.join();
  return r;
}

run_result cacheline_pingpong(std::size_t n) {
  alignas(false_sharing_range) std::atomic<std::uint64_t> a{0};
  alignas(false_sharing_range) std::atomic<std::uint64_t> b{0};
  std::thread echo([&] {
    pin(cpu_b);
    for (std::uint64_t i = 1; i <= n; ++i) {
      while (a.load(std::memory_order_acquire) != i)
        cpu_relax();
      b.store(i, std::memory_order_release);
    }
  });
  pin(cpu_a);
  run_result r;
  for (std::uint64_t i = 1; i <= n; ++i) {
    const std::uint64_t t0 = now_ns();
    a.store(i, std::memory_order_release);
    while (b.load(std::memory_order_acquire) != i)
      cpu_relax();
    r.h.record(now_ns() - t0);
  }
  echo.join();
  return r;
}

run_result mutex_cv_pingpong(std::size_t n) {
  struct chan {
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::uint64_t> q;
    void put(std::uint64_t v) {
      {
        std::lock_guard<std::mutex> g(m);
        q.push_back(v);
      }
      cv.notify_one();
    }
    std::uint64_t take() {
      std::unique_lock<std::mutex> g(m);
      cv.wait(g, [&] { return !q.empty(); });
      const std::uint64_t v = q.front();
      q.pop_front();
      return v;
    }
  } ping, pong;
  std::thread echo([&] {
    pin(cpu_b);
    for (std::size_t i = 0; i < n; ++i)
      pong.put(ping.take());
  });
  pin(cpu_a);
  run_result r;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t t0 = now_ns();
    ping.put(i);
    (void)pong.take();
    r.h.record(now_ns() - t0);
  }
  echo.join();
  return r;
}

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;

// `hops` is always 1 here; it exists because CAF 0.17.6 spawns argument-less actors through a
// null shared_ptr<tuple<>> dereference (UB; docs/development.md).
caf::behavior caf_ponger(caf::event_based_actor* self, int hops) {
  return {[=](ping_atom, std::uint64_t t) {
    for (int i = 0; i < hops; ++i)
      self->send(caf::actor_cast<caf::actor>(self->current_sender()), pong_atom::value, t);
  }};
}

struct pinger_state {
  std::size_t left = 0;
};
caf::behavior caf_pinger(caf::stateful_actor<pinger_state>* self, caf::actor peer, std::size_t n, histogram* h,
                         std::promise<void>* done) {
  self->state.left = n;
  self->send(peer, ping_atom::value, now_ns());
  return {[=](pong_atom, std::uint64_t t) {
    h->record(now_ns() - t);
    if (--self->state.left == 0) {
      done->set_value();
      self->quit();
      return;
    }
    self->send(peer, ping_atom::value, now_ns());
  }};
}

run_result caf_pingpong(std::size_t n, const char* policy) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom_from_string(policy));
  cfg.set("scheduler.max-threads", 2); // sized to this machine (CAF's default would be 4)
  run_result r;
  {
    caf::actor_system sys{cfg};
    std::promise<void> done;
    auto ponger = sys.spawn(caf_ponger, 1);
    sys.spawn(caf_pinger, ponger, n, &r.h, &done);
    done.get_future().wait();
    caf::anon_send_exit(ponger, caf::exit_reason::user_shutdown);
  }
  return r;
}

caf::behavior caf_ring_echo(caf::event_based_actor*, spsc_ring<std::uint64_t>* back) {
  return {[=](ping_atom, std::uint64_t t) {
    while (!back->try_push(t))
      cpu_relax();
  }};
}

run_result caf_thread_actor_pingpong(std::size_t n, const char* policy) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom_from_string(policy));
  cfg.set("scheduler.max-threads", 2);
  run_result r;
  spsc_ring<std::uint64_t> back(1024);
  {
    caf::actor_system sys{cfg};
    auto echo = sys.spawn(caf_ring_echo, &back);
    pin(cpu_a);
    std::uint64_t v;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t t0 = now_ns();
      caf::anon_send(echo, ping_atom::value, t0);
      while (!back.try_pop(v))
        cpu_relax();
      r.h.record(now_ns() - t0);
    }
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  }
  return r;
}

// ---------------------------------------------------------------- the fixed-rate floor

// How late a fixed-rate sender (scheduling::offer_at_fixed_rate, as `flowbus bench latency`
// offers load) starts each send after its intended time: its sleep's wake-up. Every latency
// measured from the intended send time includes it, so no transport can be measured below it.
run_result fixed_rate_wakeup(std::size_t n) {
  run_result r;
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL); // as the bench and the node run
  offer_at_fixed_rate(10000, n, [&](std::uint64_t, std::uint64_t intended_ns) { r.h.record(steady_ns() - intended_ns); });
  return r;
}

run_result shm_pingpong(std::size_t n) {
  std::error_code ec;
  shm_channel ch = shm_channel::create(64 * 1024, "", ec);
  if (ec) {
    std::fprintf(stderr, "shm: %s\n", ec.message().c_str());
    return {};
  }
  const pid_t pid = fork();
  if (pid == 0) {
    pin(cpu_b);
    shm_endpoint e = ch.endpoint(shm_side::opener);
    std::size_t echoed = 0;
    while (echoed < n)
      echoed += e.read(
          [&](const unsigned char* p, std::size_t len) {
            while (!e.try_write(p, len))
              cpu_relax();
          },
          16);
    _exit(0);
  }
  pin(cpu_a);
  shm_endpoint e = ch.endpoint(shm_side::creator);
  run_result r;
  unsigned char msg[64] = {};
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t t0 = now_ns();
    std::memcpy(msg, &i, 8);
    while (!e.try_write(msg, sizeof msg))
      cpu_relax();
    while (e.read([](const unsigned char*, std::size_t) {}, 1) == 0)
      cpu_relax();
    r.h.record(now_ns() - t0);
  }
  int st;
  waitpid(pid, &st, 0);
  return r;
}

// ---------------------------------------------------------------- throughput

run_result spsc_throughput(std::size_t n) {
  spsc_ring<std::uint64_t> ring(4096);
  std::atomic<bool> go{false};
  std::uint64_t sum = 0;
  std::thread consumer([&] {
    pin(cpu_b);
    go = true;
    std::size_t got = 0;
    while (got < n)
      got += ring.drain([&](std::uint64_t&& v) { sum += v; }, 256);
  });
  pin(cpu_a);
  while (!go)
    cpu_relax();
  const auto t0 = clk::now();
  std::uint64_t batch[32];
  for (std::size_t i = 0; i < n;) {
    const std::size_t k = std::min<std::size_t>(32, n - i);
    for (std::size_t j = 0; j < k; ++j)
      batch[j] = i + j;
    i += ring.try_push_n(batch, k);
  }
  consumer.join();
  const double s = std::chrono::duration<double>(clk::now() - t0).count();
  run_result r;
  r.rate = static_cast<double>(n) / s;
  r.ns_per_op = s * 1e9 / static_cast<double>(n);
  if (sum != static_cast<std::uint64_t>(n) * (n - 1) / 2) std::fprintf(stderr, "spsc_throughput: lost items\n");
  return r;
}

run_result mpsc_2p_throughput(std::size_t n) {
  // Three threads on two CPUs: a producer per CPU, the consumer wherever the OS puts it. Everyone
  // yields when blocked (full / empty), or a spinner would starve the thread sharing its CPU.
  mpsc_queue<std::uint64_t> q(4096);
  std::atomic<int> ready{0};
  auto produce = [&](int cpu) {
    pin(cpu);
    ready.fetch_add(1);
    while (ready.load() < 3)
      std::this_thread::yield();
    for (std::size_t i = 0; i < n / 2;)
      if (q.try_push(i))
        ++i;
      else
        std::this_thread::yield();
  };
  std::thread p1(produce, cpu_a), p2(produce, cpu_b);
  (void)pin_current_thread({cpu_a, cpu_b});
  ready.fetch_add(1);
  while (ready.load() < 3)
    std::this_thread::yield();
  const auto t0 = clk::now();
  std::size_t got = 0;
  while (got < n / 2 * 2) {
    const std::size_t k = q.drain([](std::uint64_t&&) {}, 1024);
    if (k == 0) std::this_thread::yield();
    got += k;
  }
  p1.join();
  p2.join();
  const double s = std::chrono::duration<double>(clk::now() - t0).count();
  run_result r;
  r.rate = static_cast<double>(got) / s;
  r.ns_per_op = s * 1e9 / static_cast<double>(got);
  return r;
}

// The C++ client's send queue (issue 19, item 3): producer threads append 168-byte frames (a
// 128-byte payload's), one consumer gathers them into a write buffer, as the I/O thread does.
// `ring`: the lock-free mpsc_byte_ring the client uses (claim, write in place, commit; peek,
// copy, release); otherwise the queue it replaced: a byte vector under a mutex, swapped out by
// the consumer. Both bounded at 4 MiB; a blocked side yields.
run_result send_queue_throughput(std::size_t n, int producers, bool ring) {
  constexpr std::size_t frame = 168, bound = 4u << 20;
  mpsc_byte_ring r(bound);
  std::mutex m;
  std::vector<unsigned char> pending, taken;
  pending.reserve(bound);
  taken.reserve(bound);
  std::atomic<int> ready{0};
  const std::size_t per = n / static_cast<std::size_t>(producers);
  auto produce = [&](int cpu) {
    pin(cpu);
    unsigned char payload[frame];
    std::memset(payload, 'p', frame);
    ready.fetch_add(1);
    while (ready.load() <= producers)
      std::this_thread::yield();
    for (std::size_t i = 0; i < per;) {
      std::memcpy(payload, &i, sizeof i);
      if (ring) {
        auto c = r.try_claim(frame);
        if (!c) {
          std::this_thread::yield();
          continue;
        }
        std::memcpy(c.data, payload, frame);
        r.commit(c);
      } else {
        std::unique_lock<std::mutex> g(m);
        if (pending.size() + frame > bound) {
          g.unlock();
          std::this_thread::yield();
          continue;
        }
        pending.insert(pending.end(), payload, payload + frame);
      }
      ++i;
    }
  };
  std::vector<std::thread> ps;
  for (int p = 0; p < producers; ++p)
    ps.emplace_back(produce, p % 2 ? cpu_b : cpu_a);
  (void)pin_current_thread({cpu_a, cpu_b});
  ready.fetch_add(1);
  while (ready.load() <= producers)
    std::this_thread::yield();
  const auto t0 = clk::now();
  std::vector<unsigned char> wire(64 * 1024);
  std::size_t got = 0;
  const std::size_t want = per * static_cast<std::size_t>(producers);
  while (got < want) {
    std::size_t k = 0, at = 0;
    if (ring) {
      r.release(r.peek([&](const unsigned char* d, std::size_t len) {
        if (at + len > wire.size()) return false;
        std::memcpy(wire.data() + at, d, len);
        at += len;
        ++k;
        return true;
      }));
    } else {
      {
        std::lock_guard<std::mutex> g(m);
        taken.swap(pending);
      }
      for (std::size_t pos = 0; pos < taken.size(); pos += frame) { // (a write buffer's worth at a time)
        if (at + frame > wire.size()) at = 0;
        std::memcpy(wire.data() + at, taken.data() + pos, frame);
        at += frame;
        ++k;
      }
      taken.clear();
    }
    if (k == 0) std::this_thread::yield();
    got += k;
  }
  for (auto& t : ps)
    t.join();
  const double sec = std::chrono::duration<double>(clk::now() - t0).count();
  run_result res;
  res.rate = static_cast<double>(got) / sec;
  res.ns_per_op = sec * 1e9 / static_cast<double>(got);
  return res;
}

run_result pool_acquire_release(std::size_t n) {
  buffer_pool pool;
  pin(cpu_a);
  const auto t0 = clk::now();
  std::size_t ok = 0;
  for (std::size_t i = 0; i < n; ++i) {
    buffer_ref b = pool.try_acquire(200);
    ok += static_cast<bool>(b);
  } // released at the end of each iteration
  const double s = std::chrono::duration<double>(clk::now() - t0).count();
  run_result r;
  r.ns_per_op = s * 1e9 / static_cast<double>(n);
  r.rate = static_cast<double>(n) / s;
  if (ok != n) std::fprintf(stderr, "pool: %zu of %zu acquired\n", ok, n);
  return r;
}

struct count_state {
  std::size_t got = 0;
};
using count_box = flowbus::actors::actor_mailbox<spsc_ring<std::uint64_t>>;

caf::behavior caf_counter(caf::stateful_actor<count_state>* self, std::size_t n, count_box* box,
                          std::promise<void>* done) {
  return {[=](std::uint64_t) {
            if (++self->state.got == n) done->set_value();
          },
          [=](flowbus::actors::drain_atom) {
            self->state.got += flowbus::actors::drain_step(
                self, *box, [](std::uint64_t&&) {}, 4096);
            if (self->state.got == n) done->set_value();
          }};
}

run_result caf_into_actor_throughput(std::size_t n, bool through_mailbox) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  run_result r;
  count_box box(16384);
  {
    caf::actor_system sys{cfg};
    std::promise<void> done;
    auto counter = sys.spawn(caf_counter, n, &box, &done);
    box.bind(counter);
    pin(cpu_a);
    const auto t0 = clk::now();
    for (std::uint64_t i = 0; i < n; ++i) {
      if (through_mailbox) {
        while (box.try_push(i) == push_result::full)
          cpu_relax();
      } else {
        caf::anon_send(counter, i);
      }
    }
    done.get_future().wait();
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    r.rate = static_cast<double>(n) / s;
    r.ns_per_op = s * 1e9 / static_cast<double>(n);
    caf::anon_send_exit(counter, caf::exit_reason::user_shutdown);
  }
  return r;
}

// ---------------------------------------------------------------- driver

struct bench {
  std::string name;
  bool latency;
  std::function<run_result()> fn;
};

} // namespace

int main(int argc, char** argv) {
  int runs = 5;
  std::size_t scale = 1;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--quick")
      scale = 10;
    else if (a == "--only" && i + 1 < argc)
      only = argv[++i];
    else if (a == "--cpus" && i + 2 < argc) {
      cpu_a = std::atoi(argv[++i]);
      cpu_b = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--runs N] [--quick] [--only NAME] [--cpus A B]\n", argv[0]);
      return 2;
    }
  }
  const numa_topology topo = numa_topology::detect();
  std::fprintf(stderr, "# %s; ping-pong sides pinned to CPUs %d and %d; %d runs each\n", topo.describe().c_str(), cpu_a,
               cpu_b, runs);
  const std::size_t rt = 200'000 / scale, items = 20'000'000 / scale;
  const std::vector<bench> benches = {
      {"cacheline_pingpong", true, [&] { return cacheline_pingpong(rt); }},
      {"spsc_pingpong", true, [&] { return spsc_pingpong(rt); }},
      {"caf_pingpong", true, [&] { return caf_pingpong(rt, "stealing"); }},
      {"caf_pingpong_sharing", true, [&] { return caf_pingpong(rt, "sharing"); }},
      {"caf_thread_actor_pingpong", true, [&] { return caf_thread_actor_pingpong(rt / 4, "stealing"); }},
      {"caf_thread_actor_pingpong_sharing", true, [&] { return caf_thread_actor_pingpong(rt / 4, "sharing"); }},
      {"mutex_cv_pingpong", true, [&] { return mutex_cv_pingpong(rt / 4); }},
      {"shm_pingpong", true, [&] { return shm_pingpong(rt); }},
      {"fixed_rate_wakeup_10k", true, [&] { return fixed_rate_wakeup(rt / 10); }},
      {"spsc_throughput", false, [&] { return spsc_throughput(items); }},
      {"mpsc_2p_throughput", false, [&] { return mpsc_2p_throughput(items / 4); }},
      {"send_queue_mutex_1p", false, [&] { return send_queue_throughput(items / 4, 1, false); }},
      {"send_queue_ring_1p", false, [&] { return send_queue_throughput(items / 4, 1, true); }},
      {"send_queue_mutex_2p", false, [&] { return send_queue_throughput(items / 4, 2, false); }},
      {"send_queue_ring_2p", false, [&] { return send_queue_throughput(items / 4, 2, true); }},
      {"send_queue_mutex_4p", false, [&] { return send_queue_throughput(items / 4, 4, false); }},
      {"send_queue_ring_4p", false, [&] { return send_queue_throughput(items / 4, 4, true); }},
      {"pool_acquire_release", false, [&] { return pool_acquire_release(items); }},
      {"caf_anon_send_throughput", false, [&] { return caf_into_actor_throughput(items / 10, false); }},
      {"caf_mailbox_throughput", false, [&] { return caf_into_actor_throughput(items / 2, true); }},
  };
  // Rounds: every benchmark once per round, so the ratios computed inside a round compare runs
  // made under the same conditions (this VM's cross-CPU latency changes from minute to minute).
  std::vector<std::vector<run_result>> results(benches.size());
  std::vector<bool> selected(benches.size());
  for (std::size_t i = 0; i < benches.size(); ++i)
    selected[i] = only.empty() || benches[i].name.find(only) != std::string::npos;
  for (int r = 0; r < runs; ++r)
    for (std::size_t i = 0; i < benches.size(); ++i)
      if (selected[i]) results[i].push_back(benches[i].fn());

  auto key = [&](std::size_t i, std::size_t r) {
    return benches[i].latency ? static_cast<double>(results[i][r].h.percentile(50)) : results[i][r].ns_per_op;
  };
  for (std::size_t i = 0; i < benches.size(); ++i) {
    if (!selected[i]) continue;
    const bench& b = benches[i];
    std::vector<std::size_t> order(results[i].size());
    for (std::size_t r = 0; r < order.size(); ++r)
      order[r] = r;
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return key(i, x) < key(i, y); });
    const run_result& med = results[i][order[order.size() / 2]]; // the median run by its key figure
    const double lo = key(i, order.front()), hi = key(i, order.back());
    if (b.latency)
      std::printf("{\"bench\":\"%s\",%s,\"p50_ns_min\":%.0f,\"p50_ns_max\":%.0f,\"runs\":%d}\n", b.name.c_str(),
                  med.h.json_fields("ns").c_str(), lo, hi, runs);
    else
      std::printf("{\"bench\":\"%s\",\"msgs_per_s\":%.0f,\"ns_per_op\":%.2f,\"ns_per_op_min\":%.2f,"
                  "\"ns_per_op_max\":%.2f,\"runs\":%d}\n",
                  b.name.c_str(), med.rate, med.ns_per_op, lo, hi, runs);
    std::fflush(stdout);
  }
  // p50 ratios per round, then their median and range
  auto index_of = [&](const char* n) {
    for (std::size_t i = 0; i < benches.size(); ++i)
      if (benches[i].name == n && selected[i]) return static_cast<int>(i);
    return -1;
  };
  auto ratio = [&](const char* name, const char* num, const char* den) {
    const int a = index_of(num), d = index_of(den);
    if (a < 0 || d < 0) return;
    std::vector<double> v;
    for (int r = 0; r < runs; ++r)
      v.push_back(key(static_cast<std::size_t>(a), static_cast<std::size_t>(r)) /
                  key(static_cast<std::size_t>(d), static_cast<std::size_t>(r)));
    std::sort(v.begin(), v.end());
    std::printf("{\"bench\":\"%s\",\"ratio\":%.2f,\"ratio_min\":%.2f,\"ratio_max\":%.2f,\"runs\":%d}\n", name,
                v[v.size() / 2], v.front(), v.back(), runs);
  };
  ratio("caf_over_spsc_pingpong_p50", "caf_pingpong", "spsc_pingpong");
  ratio("caf_thread_actor_over_spsc_pingpong_p50", "caf_thread_actor_pingpong", "spsc_pingpong");
  ratio("mutex_cv_over_spsc_pingpong_p50", "mutex_cv_pingpong", "spsc_pingpong");
  ratio("spsc_over_cacheline_floor_p50", "spsc_pingpong", "cacheline_pingpong");
  ratio("caf_anon_send_over_mailbox_ns_per_msg", "caf_anon_send_throughput", "caf_mailbox_throughput");
  ratio("shm_over_cacheline_floor_p50", "shm_pingpong", "cacheline_pingpong");
  return 0;
}
