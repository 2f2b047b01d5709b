// What a stream's log takes (issue 23): 128-byte messages, each a real FLOW frame, appended to a
// segment_log on this machine's disk with each fsync policy, committed as a node would — after
// every batch of `--batch` messages (one connection's read pass):
//   group_5ms    fsync at most every 5 ms; a batch is acknowledged once a sync covers it
//   always       fsync every commit (one per batch: "fsync per ACK, batched per flush")
//   always_each  fsync every message (a batch of 1)
//   never        no fsync (the page cache)
// One JSON line per policy and round: msgs_per_s, fsyncs, and the latency from a batch's append to
// the moment it is durable (p50/p99/max, µs). Then how long opening a log of 2 000 000 records
// takes: from its closed segments' index files (stream_open_indexed), and scanning every segment
// (stream_open_scanned, the index files removed), in µs. --runs N rounds; --dir where (default:
// /var/tmp).
#include <flowbus/actors/segment_log.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/scheduling/histogram.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

using namespace flowbus;
using clk = std::chrono::steady_clock;

namespace {

std::vector<codec::byte> sample_frame() {
  codec::encoder enc;
  codec::message m;
  m.type = codec::msg_type::publish;
  m.set_topic("orders.eu.created");
  m.set(codec::field::source, "bench-publisher");
  m.set(codec::field::message_id, std::uint64_t{123456789});
  const std::string payload(128, 'p');
  m.payload = codec::bytes_view(payload);
  std::vector<codec::byte> out(512);
  const auto n = enc.encode(m, out.data(), out.size());
  out.resize(n.size);
  return out;
}

void run(const char* name, actors::fsync_policy policy, std::size_t batch, std::uint64_t count, const std::string& dir,
         const std::vector<codec::byte>& frame) {
  const std::filesystem::path path = std::filesystem::path(dir) / ("flowbus-stream-bench-" + std::to_string(getpid()));
  std::filesystem::remove_all(path);
  actors::log_options o;
  o.sync = policy;
  o.group_interval = std::chrono::milliseconds(5);
  scheduling::histogram h;
  std::uint64_t records = 0, syncs = 0;
  const auto t0 = clk::now();
  {
    actors::segment_log log(path, o);
    const codec::bytes_view v(frame.data(), frame.size());
    std::vector<std::pair<std::uint64_t, clk::time_point>> waiting; // batches not yet durable: (last seq, appended)
    const std::uint64_t start_syncs = log.syncs();
    for (std::uint64_t i = 0; i < count;) {
      const auto appended = clk::now();
      std::uint64_t last = 0;
      for (std::size_t b = 0; b < batch && i < count; ++b, ++i)
        last = log.append(v, static_cast<std::uint64_t>(appended.time_since_epoch().count()));
      waiting.emplace_back(last, appended);
      const std::uint64_t durable = log.commit();
      const auto now = clk::now();
      std::size_t done = 0;
      for (; done < waiting.size() && waiting[done].first <= durable; ++done)
        h.record(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - waiting[done].second).count()));
      waiting.erase(waiting.begin(), waiting.begin() + static_cast<std::ptrdiff_t>(done));
    }
    log.sync(); // the last group
    const auto now = clk::now();
    for (const auto& w : waiting)
      h.record(
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - w.second).count()));
    records = log.records();
    syncs = log.syncs() - start_syncs;
  }
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  std::filesystem::remove_all(path);
  std::printf("{\"bench\":\"stream_append_%s\",\"frame_bytes\":%zu,\"batch\":%zu,\"messages\":%llu,\"msgs_per_s\":%.0f,"
              "\"fsyncs\":%llu,%s}\n",
              name, frame.size(), batch, static_cast<unsigned long long>(records), static_cast<double>(records) / secs,
              static_cast<unsigned long long>(syncs), h.json_fields("us", 1e3).c_str());
  std::fflush(stdout);
}

/// Opening a log of `count` records: from the index files, then scanning every segment.
void reopen(std::uint64_t count, const std::string& dir, const std::vector<codec::byte>& frame) {
  const std::filesystem::path path = std::filesystem::path(dir) / ("flowbus-stream-open-" + std::to_string(getpid()));
  std::filesystem::remove_all(path);
  actors::log_options o;
  o.sync = actors::fsync_policy::never;
  {
    actors::segment_log log(path, o);
    for (std::uint64_t i = 0; i < count; ++i)
      log.append(codec::bytes_view(frame.data(), frame.size()), i);
    log.commit();
  }
  auto open_us = [&](const char* name) {
    const auto t0 = clk::now();
    actors::segment_log log(path, o);
    const double us = std::chrono::duration<double, std::micro>(clk::now() - t0).count();
    std::printf("{\"bench\":\"%s\",\"records\":%llu,\"bytes\":%llu,\"segments\":%zu,\"indexed\":%llu,"
                "\"open_us\":%.0f}\n",
                name, static_cast<unsigned long long>(log.records()), static_cast<unsigned long long>(log.bytes()),
                log.segments(), static_cast<unsigned long long>(log.recovered().indexed), us);
    std::fflush(stdout);
  };
  open_us("stream_open_indexed");
  for (const auto& e : std::filesystem::directory_iterator(path))
    if (e.path().extension() == ".idx") std::filesystem::remove(e.path());
  open_us("stream_open_scanned"); // (it writes the index files again)
  std::filesystem::remove_all(path);
}

} // namespace

int main(int argc, char** argv) {
  int runs = 1;
  std::string dir = "/var/tmp";
  std::size_t batch = 32;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--runs"))
      runs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir"))
      dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--batch"))
      batch = static_cast<std::size_t>(std::atoi(argv[i + 1]));
  }
  const auto frame = sample_frame();
  for (int r = 0; r < runs; ++r) {
    run("group_5ms", actors::fsync_policy::group, batch, 3'000'000, dir, frame);
    run("always", actors::fsync_policy::always, batch, 300'000, dir, frame);
    run("always_each", actors::fsync_policy::always, 1, 20'000, dir, frame);
    run("never", actors::fsync_policy::never, batch, 3'000'000, dir, frame);
    reopen(2'000'000, dir, frame);
  }
  return 0;
}
