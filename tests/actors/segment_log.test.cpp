// A stream's segment log (issue 23): records kept across segments and reopenings, a torn tail cut
// off and damage skipped on recovery, the fsync policies' durable marks, retention, lookup by time,
// deletion and purge (what the dead-letter queues use),
// and a crash test: a child appends with fsync on every commit and reports each committed
// sequence number; it is killed with SIGKILL at random moments, and every number it reported is in
// the log after reopening, with its frame intact.
#include <flowbus/actors/segment_log.hpp>

#include "actors/actors_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace flowbus::actors;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct temp_dir : flowbus::test::temp_dir {
  temp_dir() : flowbus::test::temp_dir("seglog") { fs::remove_all(path); } // the log creates it
};

std::string frame_of(std::uint64_t i) { return "frame-" + std::to_string(i) + std::string(i % 50, 'x'); }
flowbus::codec::bytes_view view(const std::string& s) { return flowbus::codec::bytes_view(s); }

std::vector<log_record> all(const segment_log& log, std::vector<std::string>& frames, std::uint64_t from = 0) {
  std::vector<log_record> out;
  frames.clear();
  log.read(from, SIZE_MAX, [&](const log_record& r) {
    frames.emplace_back(reinterpret_cast<const char*>(r.frame.data()), r.frame.size());
    out.push_back(r);
    return true;
  });
  return out;
}

fs::path last_segment(const fs::path& dir) {
  std::vector<fs::path> segs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".seg") segs.push_back(e.path());
  std::sort(segs.begin(), segs.end());
  return segs.back();
}

} // namespace

TEST_SUITE("segment_log") {
  TEST_CASE("records go across segments and come back after reopening, in order") {
    temp_dir d;
    log_options o;
    o.segment_bytes = 4096;
    {
      segment_log log(d.path, o);
      CHECK(log.last() == 0);
      CHECK(log.first() == 1);
      for (std::uint64_t i = 1; i <= 1000; ++i)
        CHECK(log.append(view(frame_of(i)), 1000 * i) == i);
      CHECK(log.segments() > 5);
      CHECK(log.records() == 1000);
    }
    segment_log log(d.path, o);
    CHECK(log.recovered().records == 1000);
    CHECK(log.recovered().torn_bytes == 0);
    CHECK(log.first() == 1);
    CHECK(log.last() == 1000);
    std::vector<std::string> frames;
    const auto rs = all(log, frames);
    REQUIRE(rs.size() == 1000);
    for (std::uint64_t i = 0; i < 1000; ++i) {
      CHECK(rs[i].seq == i + 1);
      CHECK(rs[i].time_ns == 1000 * (i + 1));
      CHECK(frames[i] == frame_of(i + 1));
    }
    // from the middle, and a bounded count
    std::vector<std::uint64_t> seqs;
    CHECK(log.read(500, 10, [&](const log_record& r) { seqs.push_back(r.seq); return true; }) == 10);
    CHECK(seqs == std::vector<std::uint64_t>{500, 501, 502, 503, 504, 505, 506, 507, 508, 509});
    CHECK(log.append(view(frame_of(1001)), 1001000) == 1001); // numbering goes on
  }

  TEST_CASE("closed segments reopen from their index files; an index that does not check is scanned past") {
    temp_dir d;
    log_options o;
    o.segment_bytes = 4096;
    std::size_t segments = 0;
    {
      segment_log log(d.path, o);
      for (std::uint64_t i = 1; i <= 1000; ++i)
        log.append(view(frame_of(i)), 1000 * i);
      log.commit();
      segments = log.segments();
    }
    std::vector<fs::path> indexes;
    for (const auto& e : fs::directory_iterator(d.path))
      if (e.path().extension() == ".idx") indexes.push_back(e.path());
    std::sort(indexes.begin(), indexes.end());
    REQUIRE(indexes.size() == segments - 1); // every closed segment, not the active one
    auto check_all = [&](const segment_log& log) {
      std::vector<std::string> frames;
      const auto rs = all(log, frames);
      REQUIRE(rs.size() == 1000);
      for (std::uint64_t i = 0; i < 1000; ++i)
        CHECK(frames[i] == frame_of(i + 1));
      std::vector<std::uint64_t> seqs;
      log.read(700, 3, [&](const log_record& r) { seqs.push_back(r.seq); return true; });
      CHECK(seqs == std::vector<std::uint64_t>{700, 701, 702});
      CHECK(log.seq_at_time(500500) == 501);
      CHECK(log.first() == 1);
      CHECK(log.last() == 1000);
    };
    {
      segment_log log(d.path, o);
      CHECK(log.recovered().indexed == segments - 1);
      CHECK(log.recovered().records == 1000);
      check_all(log);
    }
    { // one index damaged, another naming a size its segment no longer has
      std::fstream f(indexes[0], std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(20);
      f.put('\x7f');
    }
    fs::resize_file(indexes[1], fs::file_size(indexes[1]) - 1);
    {
      segment_log log(d.path, o);
      CHECK(log.recovered().indexed == segments - 3); // those two scanned
      CHECK(log.recovered().records == 1000);
      check_all(log);
    }
    segment_log log(d.path, o); // and written again by that scan
    CHECK(log.recovered().indexed == segments - 1);
    CHECK(log.enforce_retention(0) == 0);
  }

  TEST_CASE("a torn tail is cut off on opening, and appends go on after the last whole record") {
    temp_dir d;
    log_options o;
    {
      segment_log log(d.path, o);
      for (std::uint64_t i = 1; i <= 10; ++i)
        log.append(view(frame_of(i)), i);
      log.sync();
    }
    const fs::path seg = last_segment(d.path);
    const auto whole = fs::file_size(seg);
    {
      std::ofstream f(seg, std::ios::binary | std::ios::app);
      const char torn[] = "FSEG\x40\x00\x00\x00partial"; // a record's head and a few bytes of its body
      f.write(torn, sizeof torn - 1);                      // (a crash mid-append)
    }
    segment_log log(d.path, o);
    CHECK(log.recovered().torn_bytes == 15);
    CHECK(log.recovered().records == 10);
    CHECK(fs::file_size(seg) == whole);
    CHECK(log.append(view(frame_of(11)), 11) == 11);
    std::vector<std::string> frames;
    CHECK(all(log, frames).size() == 11);
    CHECK(frames.back() == frame_of(11));
  }

  TEST_CASE("damage inside a segment is skipped and counted; the records around it stay") {
    temp_dir d;
    log_options o;
    {
      segment_log log(d.path, o);
      for (std::uint64_t i = 1; i <= 20; ++i)
        log.append(view(frame_of(i)), i);
    }
    const fs::path seg = last_segment(d.path);
    std::string data;
    {
      std::ifstream f(seg, std::ios::binary);
      data.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    const std::size_t at = data.find(frame_of(10));
    REQUIRE(at != std::string::npos);
    data[at] ^= 0x55; // record 10's body no longer matches its CRC
    {
      std::ofstream f(seg, std::ios::binary | std::ios::trunc);
      f << data;
    }
    segment_log log(d.path, o);
    CHECK(log.recovered().damaged_regions == 1);
    CHECK(log.recovered().records == 19);
    std::vector<std::string> frames;
    const auto rs = all(log, frames);
    REQUIRE(rs.size() == 19);
    CHECK(rs[8].seq == 9);
    CHECK(rs[9].seq == 11);
    CHECK(log.last() == 20);
  }

  TEST_CASE("fsync policies: what commit() reports durable") {
    temp_dir d;
    log_options o;
    o.sync = fsync_policy::always;
    {
      segment_log log(fs::path(d.path) / "always", o);
      log.append(view(frame_of(1)), 1);
      CHECK(log.durable() == 0);
      CHECK(log.commit() == 1);
      log.append(view(frame_of(2)), 2);
      log.append(view(frame_of(3)), 3);
      CHECK(log.commit() == 3);
    }
    o.sync = fsync_policy::group;
    o.group_interval = 50ms;
    {
      segment_log log(fs::path(d.path) / "group", o);
      const auto t0 = std::chrono::steady_clock::now();
      log.append(view(frame_of(1)), 1);
      CHECK(log.commit(t0) == 1); // the first write after a quiet spell is synced at once
      log.append(view(frame_of(2)), 2);
      CHECK(log.commit(t0 + 10ms) == 1); // within the interval: waits for the group
      log.append(view(frame_of(3)), 3);
      CHECK(log.commit(t0 + 20ms) == 1);
      const std::uint64_t before = log.syncs();
      CHECK(log.commit(std::chrono::steady_clock::now() + 60ms) == 3); // one fdatasync for both
      CHECK(log.syncs() == before + 1);
    }
    o.sync = fsync_policy::never;
    {
      segment_log log(fs::path(d.path) / "never", o);
      log.append(view(frame_of(1)), 1);
      const std::uint64_t before = log.syncs();
      CHECK(log.commit() == 1);
      CHECK(log.syncs() == before); // durable as the policy promises: no fdatasync
    }
  }

  TEST_CASE("background I/O: commit() starts a sync and goes on; a later commit reports what it covered") {
    temp_dir d;
    for (const fsync_policy p : {fsync_policy::always, fsync_policy::group}) {
      const std::string policy = to_string(p);
      CAPTURE(policy);
      log_options o;
      o.sync = p;
      o.group_interval = std::chrono::milliseconds(1);
      o.background_io = true;
      o.segment_bytes = 16 * 1024;
      segment_log log(d.path / to_string(p), o);
      std::uint64_t durable = 0;
      for (std::uint64_t i = 1; i <= 2000; ++i) {
        log.append(view(frame_of(i)), i);
        const std::uint64_t now = log.commit();
        CHECK(now >= durable); // never backwards
        CHECK(now <= i);       // never ahead of what is written
        durable = now;
      }
      for (int k = 0; k < 1000 && durable < 2000; ++k) { // the last sync finishes on its own
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        durable = log.commit();
      }
      CHECK(durable == 2000);
      CHECK(log.durable() == 2000);
      CHECK(log.syncs() >= 2);
      CHECK(log.segments() > 2); // rolls in between wait for the sync in flight
      log.append(view(frame_of(2001)), 2001);
      log.sync();
      CHECK(log.durable() == 2001);
    }
  }

  TEST_CASE("background I/O: what is not yet written is read from memory, a record larger than the kept tail too") {
    temp_dir d;
    log_options o;
    o.sync = fsync_policy::never;
    o.background_io = true;
    o.segment_bytes = 1 << 20;
    std::vector<std::string> frames;
    const std::string big(6u << 20, 'b'); // more than the 4 MiB of the active segment kept in memory
    {
      segment_log log(d.path, o);
      bool whole = true;
      for (std::uint64_t i = 1; i <= 400; ++i) {
        log.append(view(i == 200 ? big : frame_of(i)), i);
        if (i % 7 == 0 || i == 200) {
          log.commit();
          const auto rs = all(log, frames); // at once: whether the I/O thread wrote them yet or not
          whole = whole && rs.size() == i && rs.back().seq == i && frames.back() == (i == 200 ? big : frame_of(i));
        }
      }
      CHECK(whole);
      CHECK(log.segments() > 1);
      std::uint64_t durable = log.commit(); // never: durable once written
      for (int k = 0; k < 2000 && durable < 400; ++k) {
        std::this_thread::sleep_for(1ms);
        durable = log.commit();
      }
      CHECK(durable == 400);
    }
    segment_log log(d.path, log_options{}); // and all of it is in the files
    const auto rs = all(log, frames);
    REQUIRE(rs.size() == 400);
    bool same = true;
    for (std::uint64_t i = 1; i <= 400; ++i)
      same = same && rs[i - 1].seq == i && frames[i - 1] == (i == 200 ? big : frame_of(i));
    CHECK(same);
  }

  TEST_CASE("a long active segment: reads from anywhere cross the file, the kept tail's chunks and what is not yet written") {
    // ~14 MiB in one segment: the tail kept in memory (4 MiB and more, in 1 MiB chunks) drops its
    // oldest chunks many times over; a read may start in the file and go on in the tail, or start
    // in any chunk, and each record must come back whole and in order — written or not yet
    for (const bool background : {true, false}) {
      CAPTURE(background);
      temp_dir d;
      log_options o;
      o.sync = fsync_policy::never;
      o.background_io = background;
      o.segment_bytes = 64u << 20;
      auto frame = [](std::uint64_t i) { return std::to_string(i) + std::string(300 + (i * 7919) % 4000, char('a' + i % 26)); };
      segment_log log(d.path, o);
      bool good = true;
      std::uint64_t reads = 0;
      for (std::uint64_t i = 1; i <= 6000 && good; ++i) {
        log.append(view(frame(i)), i);
        if (i % 11 != 0) continue;
        log.commit();
        for (const std::uint64_t back : {0u, 5u, 64u, 700u, 1900u, 2600u, 4000u}) { // records of 0.3-4.3 KiB
          if (back >= i) continue;
          const std::uint64_t from = i - back;
          std::uint64_t next = from;
          log.read(from, 150, [&](const log_record& r) {
            good = good && r.seq == next && r.time_ns == next &&
                   std::string(reinterpret_cast<const char*>(r.frame.data()), r.frame.size()) == frame(next);
            ++next;
            return true;
          });
          good = good && next == std::min(i + 1, from + 150);
          ++reads;
        }
      }
      CHECK(good);
      CHECK(reads > 2500);
      CHECK(log.segments() == 1);
      std::vector<std::string> frames;
      const auto rs = all(log, frames);
      REQUIRE(rs.size() == 6000);
      bool same = true;
      for (std::uint64_t i = 1; i <= 6000; ++i)
        same = same && rs[i - 1].seq == i && frames[i - 1] == frame(i);
      CHECK(same);
    }
  }

  TEST_CASE("background I/O: a failed write rolls the log back to what the file holds; its numbers are not given again") {
    temp_dir d;
    log_options o;
    o.sync = fsync_policy::group;
    o.background_io = true;
    std::uint64_t kept = 0, last = 0;
    {
      segment_log log(d.path, o);
      for (std::uint64_t i = 1; i <= 100; ++i)
        log.append(view(frame_of(i)), i);
      log.sync();
      REQUIRE(log.durable() == 100);
      bool threw = false;
      {
        flowbus::test::file_size_limit full(fs::file_size(last_segment(d.path)) + 1000); // a few more records fit
        for (std::uint64_t i = 101; i <= 200 && !threw; ++i) { // (a new segment would have room again)
          last = log.append(view(frame_of(i)), i);
          if (i % 5 == 0) try {
              log.commit();
            } catch (const std::system_error&) {
              threw = true;
            }
        }
        for (int k = 0; k < 2000 && !threw; ++k) try { // the I/O thread's failure shows in a later commit
            std::this_thread::sleep_for(1ms);
            log.commit();
          } catch (const std::system_error&) {
            threw = true;
          }
      }
      REQUIRE(threw);
      kept = log.records();
      CAPTURE(kept);
      CAPTURE(last);
      CHECK(kept >= 100);
      CHECK(kept < last);
      CHECK((kept - 100) % 5 == 0); // whole commits, in order, up to the one that did not fit
      CHECK(log.last() == last);    // the numbers of those lost are spent
      CHECK(log.may_block());       // a new segment is due
      std::vector<std::string> frames;
      const auto rs = all(log, frames);
      REQUIRE(rs.size() == kept);
      CHECK(rs.back().seq == kept);
      CHECK(frames.back() == frame_of(kept));
      CHECK(log.append(view(frame_of(last + 1)), last + 1) == last + 1); // in a new segment
      log.sync();
      CHECK(log.segments() == 2);
      CHECK(log.durable() == last + 1);
    }
    segment_log log(d.path, o);
    std::vector<std::string> frames;
    const auto rs = all(log, frames);
    REQUIRE(rs.size() == kept + 1);
    CHECK(rs[kept - 1].seq == kept);
    CHECK(rs[kept].seq == last + 1);
    CHECK(frames[kept] == frame_of(last + 1));
    CHECK(log.recovered().torn_bytes == 0); // the failed write left nothing in the file
    CHECK(log.append(view(frame_of(last + 2)), last + 2) == last + 2);
  }

  TEST_CASE("retention drops whole oldest segments; the active one stays") {
    temp_dir d;
    log_options o;
    o.segment_bytes = 2048;
    o.max_records = 200;
    segment_log log(d.path, o);
    for (std::uint64_t i = 1; i <= 1000; ++i)
      log.append(view(frame_of(i)), i);
    const std::uint64_t dropped = log.enforce_retention(0);
    CHECK(dropped > 0);
    CHECK(log.records() == 1000 - dropped);
    CHECK(log.records() <= 200);
    CHECK(log.records() > 150); // whole segments only: not far below the limit
    CHECK(log.first() == 1 + dropped);
    std::vector<std::string> frames;
    const auto rs = all(log, frames, 1);
    REQUIRE(!rs.empty());
    CHECK(rs.front().seq == 1 + dropped);
    CHECK(rs.back().seq == 1000);

    log_options aged;
    aged.segment_bytes = 2048;
    aged.max_age = 10s;
    temp_dir d2;
    segment_log old(d2.path, aged);
    for (std::uint64_t i = 1; i <= 300; ++i)
      old.append(view(frame_of(i)), i * 1'000'000'000ull); // one a second
    const std::uint64_t gone = old.enforce_retention(300'000'000'000ull);
    CHECK(gone > 0);
    std::uint64_t oldest_time = 0;
    old.read(0, 1, [&](const log_record& r) { oldest_time = r.time_ns; return true; });
    CHECK(oldest_time >= 260'000'000'000ull); // kept: segments holding a record newer than 290 s (each spans ~25 s)
  }

  TEST_CASE("deletion: removed records are skipped and stay removed after reopening; a closed segment all deleted goes; removing the rest purges") {
    temp_dir d;
    log_options o;
    o.segment_bytes = 2048;
    std::vector<std::string> frames;
    auto seqs_of = [&](const segment_log& log) {
      std::vector<std::uint64_t> out;
      for (const auto& r : all(log, frames)) out.push_back(r.seq);
      return out;
    };
    auto range = [](std::uint64_t from, std::uint64_t to) {
      std::vector<std::uint64_t> v;
      for (std::uint64_t i = from; i <= to; ++i) v.push_back(i);
      return v;
    };
    {
      segment_log log(d.path, o);
      for (std::uint64_t i = 1; i <= 300; ++i) log.append(view(frame_of(i)), i);
      log.commit();
      REQUIRE(log.segments() > 3);
      CHECK(log.remove({2, 4, 4, 999, 0}) == 2); // a duplicate and numbers not in the log are ignored
      CHECK(log.remove({2}) == 0);
      CHECK(log.records() == 298);
      CHECK(log.deleted() == 2);
      const auto got = seqs_of(log);
      CHECK(got.size() == 298);
      CHECK(std::find(got.begin(), got.end(), 2) == got.end());
      CHECK(std::find(got.begin(), got.end(), 4) == got.end());
      CHECK(log.remove({1}) == 1);
      CHECK(log.first() == 3);
    }
    segment_log log(d.path, o);
    CHECK(log.records() == 297);
    CHECK(log.first() == 3);
    CHECK(seqs_of(log).front() == 3);
    const std::size_t before = log.segments();
    CHECK(log.remove(range(1, 100)) == 97);
    CHECK(log.segments() < before); // closed segments whose records are all deleted are gone
    CHECK(log.deleted() < 100);      // and the markers for them
    CHECK(log.first() == 101);
    CHECK(log.records() == 200);
    CHECK(seqs_of(log) == range(101, 300));
    {
      segment_log again(d.path, o);
      CHECK(again.records() == 200);
      CHECK(seqs_of(again) == range(101, 300));
    }
    CHECK(log.remove(range(101, 300)) == 200); // nothing left: purged
    CHECK(log.records() == 0);
    CHECK(log.segments() == 1);
    CHECK(log.deleted() == 0);
    CHECK_FALSE(fs::exists(d.path / "deleted"));
    CHECK(log.append(view(frame_of(301)), 301) == 301); // numbers never go back
    log.commit();
    segment_log reopened(d.path, o);
    CHECK(reopened.first() == 301);
    CHECK(reopened.last() == 301);
    CHECK(seqs_of(reopened) == range(301, 301));
  }

  TEST_CASE("purge: every record goes, numbering goes on, after reopening too; in memory likewise") {
    for (const bool memory : {false, true}) {
      CAPTURE(memory);
      temp_dir d;
      log_options o;
      o.segment_bytes = 2048;
      o.in_memory = memory;
      segment_log log(d.path, o);
      for (std::uint64_t i = 1; i <= 300; ++i) log.append(view(frame_of(i)), i);
      log.commit();
      CHECK(log.remove({7}) == 1);
      CHECK(log.purge() == 299);
      CHECK(log.records() == 0);
      CHECK(log.deleted() == 0);
      CHECK(log.segments() == 1);
      CHECK(log.first() == 301);
      CHECK(log.last() == 300);
      CHECK(log.purge() == 0);
      CHECK(log.append(view(frame_of(301)), 301) == 301);
      log.commit();
      std::vector<std::string> frames;
      const auto rs = all(log, frames);
      REQUIRE(rs.size() == 1);
      CHECK(frames[0] == frame_of(301));
      if (memory) continue;
      std::size_t seg_files = 0;
      for (const auto& e : fs::directory_iterator(d.path)) seg_files += e.path().extension() == ".seg";
      CHECK(seg_files == 1);
      segment_log reopened(d.path, o);
      CHECK(reopened.first() == 301);
      CHECK(reopened.last() == 301);
      CHECK(reopened.records() == 1);
    }
  }

  TEST_CASE("a torn deletion file: the whole markers count, the torn one is cut and the file rewritten") {
    temp_dir d;
    log_options o;
    {
      segment_log log(d.path, o);
      for (std::uint64_t i = 1; i <= 10; ++i) log.append(view(frame_of(i)), i);
      log.commit();
      CHECK(log.remove({3}) == 1);
      CHECK(log.remove({5}) == 1);
    }
    {
      std::ofstream out(d.path / "deleted", std::ios::binary | std::ios::app);
      out << std::string("FDEL\x08\0\0\0xx", 10); // a marker cut short by a crash
    }
    std::vector<std::string> frames;
    {
      segment_log log(d.path, o);
      CHECK(log.recovered().torn_bytes == 10);
      CHECK(log.records() == 8);
      CHECK(all(log, frames).size() == 8);
    }
    segment_log log(d.path, o);
    CHECK(log.recovered().torn_bytes == 0); // rewritten whole
    CHECK(log.deleted() == 2);
    for (const auto& r : all(log, frames)) CHECK((r.seq != 3 && r.seq != 5));
  }

  TEST_CASE("in memory: the same records, segments, lookups and retention, and nothing on disk") {
    temp_dir d;
    log_options o;
    o.in_memory = true;
    o.segment_bytes = 4096;
    o.sync = fsync_policy::always;
    o.max_records = 300;
    {
      segment_log log(d.path, o);
      for (std::uint64_t i = 1; i <= 500; ++i) {
        CHECK(log.append(view(frame_of(i)), i * 10) == i);
        if (i % 7 == 0) CHECK(log.commit() == i); // durable at once: there is nothing to sync
      }
      CHECK(log.commit() == 500);
      CHECK(log.syncs() == 0);
      CHECK(log.segments() > 3);
      std::vector<std::string> frames;
      const auto recs = all(log, frames, 123);
      REQUIRE(recs.size() == 378);
      CHECK(recs.front().seq == 123);
      CHECK(frames.front() == frame_of(123));
      CHECK(frames.back() == frame_of(500));
      CHECK(log.seq_at_time(2005) == 201);
      CHECK(log.enforce_retention(0) > 0); // whole oldest segments past 300 records
      CHECK(log.records() <= 300 + 100);
      CHECK(log.first() > 1);
      all(log, frames);
      CHECK(frames.back() == frame_of(500));
    }
    CHECK_FALSE(fs::exists(d.path)); // not even its directory
    segment_log again(d.path, o);
    CHECK(again.records() == 0); // nothing survives the process
    CHECK(again.last() == 0);
  }

  TEST_CASE("lookup by time: the first record appended at or after it") {
    temp_dir d;
    log_options o;
    o.segment_bytes = 1024;
    segment_log log(d.path, o);
    for (std::uint64_t i = 1; i <= 500; ++i)
      log.append(view(frame_of(i)), i * 1000);
    CHECK(log.seq_at_time(0) == 1);
    CHECK(log.seq_at_time(1000) == 1);
    CHECK(log.seq_at_time(5500) == 6);
    CHECK(log.seq_at_time(250000) == 250);
    CHECK(log.seq_at_time(250001) == 251);
    CHECK(log.seq_at_time(500000) == 500);
    CHECK(log.seq_at_time(500001) == 501); // none: the next one to come
  }

  TEST_CASE("crash test: every commit a killed writer reported is in the log after reopening") {
    std::mt19937 rng(12345);
    for (int run = 0; run < 5; ++run) {
      temp_dir d;
      int pipefd[2];
      REQUIRE(::pipe(pipefd) == 0);
      const pid_t child = ::fork();
      if (child == 0) {
        ::close(pipefd[0]);
        log_options o;
        o.sync = fsync_policy::always;
        o.segment_bytes = 64 * 1024;
        segment_log log(d.path, o);
        for (std::uint64_t i = 1;; ++i) {
          log.append(view(frame_of(i)), i);
          if (i % 4 == 0) { // a batch of 4, then the commit: only then is it reported (acknowledged)
            const std::uint64_t durable = log.commit();
            if (::write(pipefd[1], &durable, sizeof durable) != sizeof durable) ::_exit(1);
          }
        }
      }
      ::close(pipefd[1]);
      std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 250));
      ::kill(child, SIGKILL);
      int status = 0;
      ::waitpid(child, &status, 0);
      std::uint64_t acked = 0, v = 0;
      while (::read(pipefd[0], &v, sizeof v) == sizeof v)
        acked = v;
      ::close(pipefd[0]);
      CAPTURE(run);
      CAPTURE(acked);
      REQUIRE(acked > 0);
      segment_log log(d.path, log_options{});
      CHECK(log.last() >= acked);
      std::vector<std::string> frames;
      const auto rs = all(log, frames);
      REQUIRE(rs.size() >= acked);
      bool in_order = true;
      for (std::uint64_t i = 0; i < rs.size(); ++i)
        in_order = in_order && rs[i].seq == i + 1 && frames[i] == frame_of(i + 1);
      CHECK(in_order); // every record there, none duplicated, frames intact
      CHECK(log.recovered().damaged_regions == 0);
    }
  }
}
