// The crash test of issue 23 against the node process: `flowbus node` with a stream whose fsync
// policy is `always` is killed with SIGKILL at a random moment while a publisher sends acknowledged
// messages into it, ten times over on the same directory. Every message whose ACK reached the
// publisher must be in the stream afterwards, and none twice (the publisher never re-sends here:
// its ack timeout is longer than a run, and it does not reconnect).
#include "test_support.hpp"
#include "transport/node_process.hpp"
#include "transport/transport_support.hpp"

#include <flowbus/actors/segment_log.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/transport/client.hpp>

#include <deque>
#include <future>
#include <random>
#include <thread>
#include <utility>
#include <vector>

using namespace flowbus;
using namespace flowbus::test;
using actors::errc;

TEST_SUITE("stream_crash") {
  TEST_CASE(
      "kill -9 during acknowledged publishes into an fsync-always stream: every ACKed message is kept, none twice") {
#ifdef FLOWBUS_SANITIZED
    constexpr std::uint64_t per_run = 20000;
#else
    constexpr std::uint64_t per_run = 100000;
#endif
    constexpr int runs = 10;
    temp_dir d("stream-crash");
    const unsigned seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    std::vector<bool> acked;
    std::uint64_t acked_total = 0;
    for (int run = 0; run < runs; ++run) {
      node_process node(0, {"--stream-dir", d.path.string(), "--stream", "crash=crash.>", "--stream-fsync", "always"});
      auto o = client_opts(node.port, "crash-pub");
      o.reconnect = false;
      o.ack_timeout = std::chrono::minutes(1); // never re-sent: a duplicate would be the node's
      o.ack_attempts = 1;
      transport::client pub(o);
      REQUIRE(pub.connect() == errc::ok);
      const auto kill_after = std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 600)(rng));
      std::thread killer([&] {
        std::this_thread::sleep_for(kill_after);
        kill(node.pid, SIGKILL);
      });
      std::deque<std::pair<std::uint64_t, std::future<errc>>> in_flight;
      std::uint64_t ok = 0;
      bool lost = false;
      auto settle_front = [&] {
        const errc e = in_flight.front().second.get();
        if (e == errc::ok) {
          acked[in_flight.front().first] = true;
          ++ok;
        } else {
          lost = true; // the node is gone: what was in flight is not confirmed
        }
        in_flight.pop_front();
      };
      for (std::uint64_t i = 0; i < per_run && !lost; ++i) {
        const std::uint64_t id = acked.size();
        acked.push_back(false);
        in_flight.emplace_back(id, pub.publish_acked("crash.m", std::to_string(id)));
        while (in_flight.size() >= 1024 ||
               (!in_flight.empty() &&
                in_flight.front().second.wait_for(std::chrono::seconds(0)) == std::future_status::ready))
          settle_front();
      }
      while (!in_flight.empty())
        settle_front();
      killer.join();
      node.stop(SIGKILL);
      acked_total += ok;
      MESSAGE("run " << run << ": killed after " << kill_after.count() << " ms, " << ok << " acknowledged");
    }
    REQUIRE(acked_total > 0);
    // what the stream holds (the last kill's torn tail is cut on opening)
    std::vector<std::uint32_t> stored(acked.size(), 0);
    std::uint64_t records = 0, foreign = 0;
    actors::segment_log log(d.path / "crash", actors::log_options{});
    codec::decoder dec(codec::stored_frame_decoding());
    log.read(0, SIZE_MAX, [&](const actors::log_record& r) {
      ++records;
      codec::message m;
      const std::uint64_t id =
          dec.decode(r.frame, m) ? std::strtoull(std::string(m.payload.as_string()).c_str(), nullptr, 10) : ~0ull;
      if (id < stored.size())
        ++stored[id];
      else
        ++foreign;
      return true;
    });
    std::uint64_t missing = 0, doubled = 0;
    for (std::size_t id = 0; id < acked.size(); ++id) {
      if (acked[id] && stored[id] == 0) ++missing;
      if (stored[id] > 1) ++doubled;
    }
    MESSAGE(acked_total << " acknowledged over " << runs << " kills; the stream holds " << records << " records");
    CHECK(missing == 0);
    CHECK(doubled == 0);
    CHECK(foreign == 0);
    CHECK(records >= acked_total);
  }
}
