#include <flowbus/scheduling/numa.hpp>

#include <numa.h>
#include <numaif.h>

#include <doctest/doctest.h>

#include <fstream>
#include <ostream> // doctest prints std::error_code
#include <sched.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace flowbus::scheduling;

TEST_SUITE("numa") {

  TEST_CASE("topology: at least one node, every usable CPU in exactly one node") {
    const numa_topology t = numa_topology::detect();
    REQUIRE(t.node_count() >= 1);
    const std::vector<int> all = t.all_cpus();
    cpu_set_t allowed;
  REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
  CHECK(all.size() == static_cast<std::size_t>(CPU_COUNT(&allowed))); // what we may use, not what exists
    for (int cpu : all)
      CHECK(t.node_of_cpu(cpu) >= 0);
    MESSAGE(t.describe());
    CHECK(t.describe().find("node") != std::string::npos);
  }

  TEST_CASE("pinning a thread takes effect: affinity and the CPU it runs on") {
    const std::vector<int> cpus = numa_topology::detect().all_cpus();
    for (int cpu : cpus) {
      std::thread t([cpu] {
        REQUIRE_FALSE(pin_current_thread({cpu}));
        CHECK(current_thread_affinity() == std::vector<int>{cpu});
        for (int i = 0; i < 3; ++i)
          std::this_thread::yield(); // migrate if we were elsewhere
        CHECK(current_cpu() == cpu);
      });
      t.join();
    }
    std::thread t([&] {
      CHECK(pin_current_thread({}) == std::errc::invalid_argument);
      CHECK(pin_current_thread({-1}) == std::errc::invalid_argument);
      CHECK(current_thread_affinity() == cpus); // a refused pin changes nothing
    });
    t.join();
  }

  TEST_CASE("mapped regions: zeroed, writable, huge or with a reported fallback, node-bound") {
    std::error_code ec;
    mapped_region r = mapped_region::map(3 * 1024 * 1024, true, 0, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(r);
    CHECK(r.size() >= 3 * 1024 * 1024);
    MESSAGE("pages: ", std::string(to_string(r.pages())));
    auto* p = static_cast<unsigned char*>(r.data());
    CHECK(p[0] == 0);
    CHECK(p[r.size() - 1] == 0);
    p[12345] = 7;
    CHECK(p[12345] == 7);
    if (numa_topology::detect().numa_available) {
      CHECK(r.node() == 0);
      // where the kernel actually put a touched page (not what we asked): node 0
      int where = -1;
      REQUIRE(get_mempolicy(&where, nullptr, 0, p + 12345, MPOL_F_NODE | MPOL_F_ADDR) == 0);
      CHECK(where == 0);
      // a node the machine does not have is not "bound": the region says it has no node
      mapped_region nowhere = mapped_region::map(4096, false, numa_max_node() + 1, ec);
      REQUIRE(nowhere);
      CHECK(nowhere.node() == -1);
    }
    mapped_region moved = std::move(r);
    CHECK_FALSE(r);
    CHECK(moved.data() == p);
    mapped_region small = mapped_region::map(100, false, -1, ec);
    REQUIRE(small);
    CHECK(small.pages() == page_kind::normal);
    CHECK(small.size() == static_cast<std::size_t>(sysconf(_SC_PAGESIZE)));
  }

  TEST_CASE("mlockall either locks (VmLck grows) or names why not") {
    // in a child: MCL_FUTURE would lock every later allocation of the test process
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const std::error_code ec = lock_all_memory();
      if (ec) _exit(ec == std::errc::operation_not_permitted || ec == std::errc::not_enough_memory ? 2 : 3);
      std::ifstream status("/proc/self/status");
      std::string line;
      while (std::getline(status, line))
        if (line.rfind("VmLck:", 0) == 0) _exit(std::stol(line.substr(6)) > 0 ? 0 : 4);
      _exit(5);
    }
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    REQUIRE(WIFEXITED(st));
    MESSAGE("mlockall child exit: ", WEXITSTATUS(st), " (0 locked, 2 not permitted here)");
#ifdef FLOWBUS_SANITIZED
    // ASan/TSan intercept mlockall as a successful no-op (their shadow memory cannot be locked)
    CHECK((WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 2 || WEXITSTATUS(st) == 4));
#else
    CHECK((WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 2));
#endif
  }
}
