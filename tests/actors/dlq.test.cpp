// Dead-letter queues on disk: each queue a segment log (append, load, removal, purge, a torn tail,
// the import of the format before) and
// the node's DLQ actors (dead letters persisted by kind, surviving a restart, replayed).
#include <flowbus/actors/dlq.hpp>
#include <flowbus/actors/node.hpp>
#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/encoder.hpp>

#include "actors/actors_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <csignal>
#include <iterator>
#include <sys/resource.h>
#include <unistd.h>

using namespace flowbus::actors;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
struct temp_dir : flowbus::test::temp_dir {
  temp_dir() : flowbus::test::temp_dir("dlq") {}
};

dlq_entry entry(std::string recipient, std::string frame, dead_reason r = dead_reason::agent_unavailable) {
  dlq_entry e;
  e.reason = r;
  e.attempts = 2;
  e.first_ns = 1000;
  e.last_ns = 2000;
  e.source = "src";
  e.recipient = std::move(recipient);
  e.frame = std::move(frame);
  return e;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void append_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::app);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

using flowbus::test::file_size_limit;

fs::path last_segment(const fs::path& dir) {
  std::vector<fs::path> segs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".seg") segs.push_back(e.path());
  REQUIRE(!segs.empty());
  std::sort(segs.begin(), segs.end());
  return segs.back();
}

void append_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void append_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// The record format of the queue files before they were logs (dlq.hpp): "FDLQ", length, CRC32C, body.
void put_legacy(std::string& file, const std::string& body) {
  file += "FDLQ";
  append_u32(file, static_cast<std::uint32_t>(body.size()));
  append_u32(file, flowbus::codec::crc32c(body.data(), body.size()));
  file += body;
}
std::string legacy_entry(const dlq_entry& e) {
  std::string b(1, '\1');
  b.push_back(static_cast<char>(e.reason));
  append_u32(b, e.attempts);
  append_u64(b, e.first_ns);
  append_u64(b, e.last_ns);
  b.push_back(static_cast<char>(e.source.size()));
  b.push_back('\0');
  b += e.source;
  b.push_back(static_cast<char>(e.recipient.size()));
  b.push_back('\0');
  b += e.recipient;
  append_u32(b, static_cast<std::uint32_t>(e.frame.size()));
  b += e.frame;
  return b;
}

// A unicast FLOW frame to `target` from "pub", as a DLQ entry keeps it.
std::string unicast_frame(const std::string& target, const std::string& payload) {
  flowbus::codec::encoder enc;
  flowbus::codec::message m;
  m.type = flowbus::codec::msg_type::task_assignment;
  m.set(flowbus::codec::field::source, "pub");
  m.set(flowbus::codec::field::target, target);
  m.payload = flowbus::codec::bytes_view(std::string_view(payload));
  std::string out(enc.literal_size(m), '\0');
  const auto r = enc.encode(m, reinterpret_cast<flowbus::codec::byte*>(out.data()), out.size());
  REQUIRE(r);
  out.resize(r.size);
  return out;
}

node_config with_dlq(const fs::path& dir) {
  node_config c;
  c.workers = 2;
  c.dlq_directory = dir.string();
  return c;
}
} // namespace

TEST_SUITE("dlq") {

  TEST_CASE("queue: append is read back field by field; ids are sequence numbers; removal and purge persist; ids go on") {
    temp_dir d;
    {
      dlq_file f(d.path, dlq_kind::poison);
      CHECK(f.path() == d.path / "poison");
      std::vector<dlq_entry> batch{entry("a", std::string("\0\1\2frame", 8)), entry("b", "xyz", dead_reason::poison)};
      REQUIRE_FALSE(f.append(batch));
      CHECK(batch[0].id == 1);
      CHECK(batch[1].id == 2);
      std::vector<dlq_entry> more{entry("c", "")};
      REQUIRE_FALSE(f.append(more));
      CHECK(more[0].id == 3);
      CHECK(fs::exists(last_segment(f.path())));

      dlq_file::contents c;
      REQUIRE_FALSE(f.load(c));
      REQUIRE(c.entries.size() == 3);
      CHECK(c.entries[0].recipient == "a");
      CHECK(c.entries[0].frame == std::string("\0\1\2frame", 8));
      CHECK(c.entries[0].attempts == 2);
      CHECK(c.entries[0].first_ns == 1000);
      CHECK(c.entries[0].last_ns == 2000);
      CHECK(c.entries[0].source == "src");
      CHECK(c.entries[1].reason == dead_reason::poison);
      CHECK(c.entries[2].id == 3);
      CHECK(c.torn_bytes == 0);
      REQUIRE_FALSE(f.remove({batch[1].id, 77}));
    }
    dlq_file f(d.path, dlq_kind::poison); // another process, or a restarted node
    dlq_file::contents c;
    REQUIRE_FALSE(f.load(c));
    REQUIRE(c.entries.size() == 2);
    CHECK(c.entries[1].recipient == "c");
    CHECK(c.deleted == 1);
    REQUIRE_FALSE(f.purge());
    REQUIRE_FALSE(f.load(c));
    CHECK(c.entries.empty());
    std::vector<dlq_entry> after{entry("d", "dd")};
    REQUIRE_FALSE(f.append(after));
    CHECK(after[0].id == 4); // an id is never given twice
    dlq_file missing(d.path, dlq_kind::unknown);
    REQUIRE_FALSE(missing.load(c));
    CHECK(c.entries.empty());
    CHECK_FALSE(fs::exists(missing.path())); // reading does not create a queue
  }

  // The node keeps each queue's log open (the DLQ actor appends through it, its $dlq.<kind>
  // stream reads it); `flowbus dlq` in another process opens it for each operation. Whatever the
  // other changes, the kept one sees it next time and never appends after a stale end.
  TEST_CASE("queue: a log kept open sees what another process appended, removed and purged") {
    temp_dir d;
    dlq_file kept(d.path, dlq_kind::poison);
    kept.keep_open();
    dlq_file copy = kept; // (the DLQ actor's and the stream's are copies: one open log)
    auto recipients = [](const dlq_file& f) {
      dlq_file::contents c;
      REQUIRE_FALSE(f.load(c));
      std::vector<std::string> out;
      for (const auto& e : c.entries) out.push_back(e.recipient + "#" + std::to_string(e.id));
      return out;
    };
    std::vector<dlq_entry> a{entry("a", "1"), entry("b", "2")};
    REQUIRE_FALSE(kept.append(a));
    dlq_file other(d.path, dlq_kind::poison); // another process
    std::vector<dlq_entry> c{entry("c", "3")};
    REQUIRE_FALSE(other.append(c));
    CHECK(recipients(copy) == std::vector<std::string>{"a#1", "b#2", "c#3"});
    std::vector<dlq_entry> e{entry("e", "4")};
    REQUIRE_FALSE(kept.append(e));
    CHECK(e[0].id == 4); // after the other's entry, not over it
    REQUIRE_FALSE(other.remove({2}));
    CHECK(recipients(kept) == std::vector<std::string>{"a#1", "c#3", "e#4"});
    REQUIRE_FALSE(other.purge());
    CHECK(recipients(kept).empty());
    std::vector<dlq_entry> f{entry("f", "5")};
    REQUIRE_FALSE(copy.append(f));
    CHECK(recipients(other) == std::vector<std::string>{"f#5"}); // the ids go on
    // and the other way round: what the kept one removes, the other does not list
    REQUIRE_FALSE(kept.remove({5}));
    CHECK(recipients(other).empty());
  }

  // Regression (issue 17.1): the reader stopped at the first bad record and a restarted node
  // appended after it, so everything written later was invisible. Cut the active segment at every
  // byte offset of its last two records: a new writer cuts the torn tail and appends after the
  // last whole record; every whole record before the cut and every new one is listed.
  TEST_CASE("queue: cut at every byte of the last records, a new writer truncates the torn tail and appends after it") {
    temp_dir d;
    std::vector<dlq_entry> first{entry("a", "alpha"), entry("b", "bravo"), entry("c", "charlie")};
    std::vector<dlq_entry> d_only{entry("d", "delta-delta")}, e_only{entry("e", std::string(40, 'e'))};
    std::string full;
    std::uint64_t start_d = 0, end_d = 0;
    fs::path seg;
    {
      dlq_file f(d.path, dlq_kind::poison);
      REQUIRE_FALSE(f.append(first));
      seg = last_segment(f.path());
      start_d = fs::file_size(seg);
      REQUIRE_FALSE(f.append(d_only));
      end_d = fs::file_size(seg);
      REQUIRE_FALSE(f.append(e_only));
      full = read_all(seg);
    }
    std::size_t cuts = 0;
    for (std::uint64_t cut = start_d; cut < full.size(); ++cut) {
      CAPTURE(cut);
      write_file(seg, full.substr(0, cut));
      fs::remove(seg.parent_path() / "deleted"); // the last round's removal
      dlq_file f(d.path, dlq_kind::poison); // a restarted node's writer
      std::vector<dlq_entry> more{entry("f", "foxtrot")};
      REQUIRE_FALSE(f.append(more));
      const bool d_whole = cut >= end_d;
      CHECK(more[0].id == (d_whole ? 5u : 4u));
      CHECK(f.truncated_bytes() == cut - (d_whole ? end_d : start_d));
      dlq_file::contents c;
      REQUIRE_FALSE(f.load(c));
      std::vector<std::string> got;
      for (const auto& e : c.entries) got.push_back(e.recipient);
      std::vector<std::string> want{"a", "b", "c"};
      if (d_whole) want.push_back("d");
      want.push_back("f");
      CHECK(got == want);
      CHECK(c.torn_bytes == 0);
      CHECK(c.damaged_bytes == 0);
      // a removal is not lost behind the damage
      REQUIRE_FALSE(f.remove({c.entries.front().id}));
      REQUIRE_FALSE(f.load(c));
      CHECK(c.entries.size() == want.size() - 1);
      ++cuts;
    }
    CHECK(cuts == full.size() - start_d);
  }

  TEST_CASE("queue: garbage or a zero-filled tail is cut by recover(); nothing whole is lost") {
    temp_dir d;
    dlq_file f(d.path, dlq_kind::corruption);
    std::vector<dlq_entry> batch{entry("a", "one"), entry("b", "two")};
    REQUIRE_FALSE(f.append(batch));
    const fs::path seg = last_segment(f.path());
    const auto size = fs::file_size(seg);
    for (const std::string& tail : {std::string(4096, '\0'), std::string("garbage that is not a record, FSEG inside it"),
                                    std::string("FSEG")}) {
      append_bytes(seg, tail);
      dlq_file fresh(d.path, dlq_kind::corruption);
      dlq_file::recovery r;
      REQUIRE_FALSE(fresh.recover(r));
      CHECK(r.truncated_bytes == tail.size());
      CHECK(r.bytes == size);
      CHECK(fs::file_size(seg) == size);
      dlq_file::contents c;
      REQUIRE_FALSE(fresh.load(c));
      CHECK(c.entries.size() == 2);
      CHECK(c.torn_bytes == 0);
    }
    dlq_file missing(d.path, dlq_kind::poison);
    dlq_file::recovery r;
    REQUIRE_FALSE(missing.recover(r)); // a missing queue stays missing
    CHECK_FALSE(fs::exists(missing.path()));
  }

  TEST_CASE("queue: the reader resynchronises past a damaged record in the middle and counts it") {
    temp_dir d;
    dlq_file f(d.path, dlq_kind::unknown);
    std::vector<std::uint64_t> ends; // where each record ends in the segment
    fs::path seg;
    for (const char* who : {"a", "b", "c", "d"}) {
      std::vector<dlq_entry> one{entry(who, std::string("payload of ") + who)};
      REQUIRE_FALSE(f.append(one));
      seg = last_segment(f.path());
      ends.push_back(fs::file_size(seg));
    }
    const std::string full = read_all(seg);
    const std::uint64_t b_at = ends[0], b_size = ends[1] - ends[0];
    std::string bad = full;
    SUBCASE("a flipped byte in b's body") { bad[b_at + 20] ^= 0x40; }
    SUBCASE("b's magic overwritten") { bad[b_at] = 'X'; }
    SUBCASE("b's length made huge") { bad[b_at + 7] = '\x7f'; }
    write_file(seg, bad);
    dlq_file::contents c;
    REQUIRE_FALSE(f.load(c));
    std::vector<std::string> got;
    for (const auto& e : c.entries) got.push_back(e.recipient);
    CHECK(got == std::vector<std::string>{"a", "c", "d"});
    CHECK(c.damaged_regions == 1);
    CHECK(c.damaged_bytes == b_size);
    CHECK(c.torn_bytes == 0);
    // a writer keeps the damage in the middle (readers skip it) and appends after the last record
    std::vector<dlq_entry> more{entry("e", "five")};
    REQUIRE_FALSE(f.append(more));
    CHECK(more[0].id == 5);
    REQUIRE_FALSE(f.load(c));
    CHECK(c.entries.size() == 4);
  }

  // Regression (issue 17.2's disk side): a write the disk refuses (here: the file-size limit,
  // EFBIG, as a full disk gives ENOSPC) leaves nothing of the batch behind.
  TEST_CASE("queue: an append the disk refuses is undone; the next append succeeds after the whole records") {
    temp_dir d;
    dlq_file f(d.path, dlq_kind::poison);
    std::vector<dlq_entry> batch{entry("a", "one")};
    REQUIRE_FALSE(f.append(batch));
    const fs::path seg = last_segment(f.path());
    const auto size = fs::file_size(seg);
    std::vector<dlq_entry> big;
    for (int i = 0; i < 20; ++i) big.push_back(entry("big" + std::to_string(i), std::string(100, 'x')));
    {
      file_size_limit limit(size + 300); // room for two or three of them, not twenty
      CHECK(f.append(big));
    }
    CHECK(fs::file_size(seg) == size);
    std::vector<dlq_entry> more{entry("b", "two")};
    REQUIRE_FALSE(f.append(more));
    CHECK(more[0].id == 2);
    dlq_file::contents c;
    REQUIRE_FALSE(f.load(c));
    REQUIRE(c.entries.size() == 2);
    CHECK(c.entries[1].recipient == "b");
  }

  TEST_CASE("queue: a file of the format before logs (<kind>.dlq) is imported once, its removed entries left out") {
    temp_dir d;
    std::string file; // three entries, the second removed by a tombstone (by its offset)
    std::vector<std::uint64_t> offsets;
    for (const char* who : {"x", "y", "z"}) {
      offsets.push_back(file.size());
      put_legacy(file, legacy_entry(entry(who, std::string("frame ") + who)));
    }
    std::string tomb(1, '\2');
    append_u64(tomb, offsets[1]);
    put_legacy(file, tomb);
    write_file(d.path / "circuit_open.dlq", file);
    dlq_file f(d.path, dlq_kind::circuit_open);
    dlq_file::contents c;
    REQUIRE_FALSE(f.load(c));
    std::vector<std::string> got;
    for (const auto& e : c.entries) got.push_back(e.recipient + "/" + e.frame);
    CHECK(got == std::vector<std::string>{"x/frame x", "z/frame z"});
    CHECK(c.entries[0].first_ns == 1000);
    CHECK_FALSE(fs::exists(d.path / "circuit_open.dlq"));
    CHECK(fs::exists(d.path / "circuit_open.dlq.imported"));
    REQUIRE_FALSE(f.load(c)); // not twice
    CHECK(c.entries.size() == 2);
  }

  TEST_CASE("directory: not a directory, under a file, or not writable is refused with the path; the node refuses to start") {
    temp_dir d;
    write_file(d.path / "plain", "x");
    std::array<dlq_file::recovery, dlq_kind_count> rec;
    std::vector<dlq_file> files;
    std::string what;
    CHECK(open_dlq_directory(d.path / "plain", what, files, rec) == std::make_error_code(std::errc::not_a_directory));
    CHECK(what == (d.path / "plain").string());
    CHECK(open_dlq_directory(d.path / "plain" / "sub", what, files, rec));
    CHECK(open_dlq_directory("/proc/flowbus-dlq-test", what, files, rec)); // even root cannot create it
    CHECK_THROWS_AS(node(with_dlq(d.path / "plain")), std::system_error);
    // a new directory is created, and a usable one is accepted
    CHECK_FALSE(open_dlq_directory(d.path / "new" / "dlq", what, files, rec));
    CHECK(fs::is_directory(d.path / "new" / "dlq"));
    CHECK(files.size() == dlq_kind_count); // each kind's file, recovered, for the node to write through
    CHECK(std::distance(fs::directory_iterator(d.path / "new" / "dlq"), fs::directory_iterator{}) == 0); // no probe left
  }

  TEST_CASE("node: at start a torn tail is cut and counted; replay is idempotent after it") {
    temp_dir d;
    {
      dlq_file f(d.path, dlq_kind::agent_unavailable);
      std::vector<dlq_entry> batch;
      for (int i = 0; i < 3; ++i) {
        dlq_entry e = make_dlq_entry(dead_letter{dead_reason::agent_unavailable, {}, "late", {}, 1});
        e.frame = unicast_frame("late", "task " + std::to_string(i));
        batch.push_back(std::move(e));
      }
      REQUIRE_FALSE(f.append(batch));
      append_bytes(last_segment(f.path()), std::string("FSEG\x40\0\0\0torn", 12));
    }
    node n(with_dlq(d.path));
    CHECK(n.dead().torn_cut() == 12);
    auto worker = n.connect({"late", "test"});
    REQUIRE(worker.has_value());
    auto r = n.dlq_replay(dlq_kind::agent_unavailable);
    CHECK_FALSE(r.error);
    CHECK(r.replayed == 3);
    for (int i = 0; i < 3; ++i) REQUIRE((*worker)->receive(2s));
    auto again = n.dlq_replay(dlq_kind::agent_unavailable);
    CHECK_FALSE(again.error);
    CHECK(again.replayed == 0); // the removals were not hidden behind the torn record
    CHECK_FALSE((*worker)->receive(100ms));
  }

  TEST_CASE("node: dead letters the disk refuses are counted as not persisted, not as persisted") {
    temp_dir d;
    node n(with_dlq(d.path));
    auto pub = n.connect({"pub", "test"});
    REQUIRE(pub.has_value());
    {
      file_size_limit limit(0); // a full disk: no byte fits
      for (int i = 0; i < 40; ++i) (void)(*pub)->send_to("nobody", "task " + std::to_string(i));
      REQUIRE(n.dlq_flush());
    }
    CHECK(n.dead().count(dead_reason::agent_unavailable) == 40);
    CHECK(n.dead().not_persisted() == 40);
    CHECK(n.dead().persisted(dlq_kind::agent_unavailable) == 0);
    (void)(*pub)->send_to("nobody", "after the disk has room");
    REQUIRE(n.dlq_flush());
    CHECK(n.dead().persisted(dlq_kind::agent_unavailable) == 1);
    std::vector<dlq_entry> listed;
    REQUIRE_FALSE(n.dlq_list(dlq_kind::agent_unavailable, listed));
    CHECK(listed.size() == 1);
  }

  TEST_CASE("kinds: every dead reason maps to one of the six queues, names parse back") {
    CHECK(kind_of(dead_reason::network_timeout) == dlq_kind::network_timeout);
    CHECK(kind_of(dead_reason::expired) == dlq_kind::network_timeout);
    CHECK(kind_of(dead_reason::agent_unavailable) == dlq_kind::agent_unavailable);
    CHECK(kind_of(dead_reason::overflow) == dlq_kind::agent_unavailable);
    CHECK(kind_of(dead_reason::shed) == dlq_kind::agent_unavailable);
    CHECK(kind_of(dead_reason::corruption) == dlq_kind::corruption);
    CHECK(kind_of(dead_reason::circuit_open) == dlq_kind::circuit_open);
    CHECK(kind_of(dead_reason::poison) == dlq_kind::poison);
    CHECK(kind_of(dead_reason::unknown) == dlq_kind::unknown);
    for (std::size_t i = 0; i < dlq_kind_count; ++i) {
      const auto k = static_cast<dlq_kind>(i);
      CHECK(parse_dlq_kind(to_string(k)) == k);
    }
    CHECK_FALSE(parse_dlq_kind("nope"));
  }

  TEST_CASE("node: dead letters reach their typed file, survive a restart, and replay to the recipient") {
    temp_dir d;
    {
      node n(with_dlq(d.path));
      auto pub = n.connect({"pub", "test"});
      REQUIRE(pub.has_value());
      for (int i = 0; i < 5; ++i)
        CHECK((*pub)->send_to("late-worker", "task " + std::to_string(i)).code == errc::agent_unavailable);
      REQUIRE(n.dlq_flush());
      std::vector<dlq_entry> listed;
      REQUIRE_FALSE(n.dlq_list(dlq_kind::agent_unavailable, listed));
      REQUIRE(listed.size() == 5);
      CHECK(listed[0].recipient == "late-worker");
      CHECK(listed[0].source == "pub");
      CHECK(listed[0].reason == dead_reason::agent_unavailable);
      CHECK(n.dead().persisted(dlq_kind::agent_unavailable) == 5);
      std::vector<dlq_entry> none;
      REQUIRE_FALSE(n.dlq_list(dlq_kind::poison, none));
      CHECK(none.empty());
    } // the node stops: the files stay
    node n(with_dlq(d.path));
    std::vector<dlq_entry> listed;
    REQUIRE_FALSE(n.dlq_list(dlq_kind::agent_unavailable, listed));
    REQUIRE(listed.size() == 5);
    auto worker = n.connect({"late-worker", "test"});
    REQUIRE(worker.has_value());
    auto r = n.dlq_replay(dlq_kind::agent_unavailable, {listed[1].id, listed[3].id});
    CHECK_FALSE(r.error);
    CHECK(r.replayed == 2);
    CHECK(r.failed == 0);
    std::vector<std::string> got;
    for (int i = 0; i < 2; ++i) {
      auto m = (*worker)->receive(2s);
      REQUIRE(m);
      got.emplace_back(m->msg.payload);
    }
    CHECK(got == std::vector<std::string>{"task 1", "task 3"});
    REQUIRE_FALSE(n.dlq_list(dlq_kind::agent_unavailable, listed));
    CHECK(listed.size() == 3);
    REQUIRE_FALSE(n.dlq_purge(dlq_kind::agent_unavailable));
    REQUIRE_FALSE(n.dlq_list(dlq_kind::agent_unavailable, listed));
    CHECK(listed.empty());
  }

  TEST_CASE("node: without a directory the DLQ calls say so and dead letters stay in memory") {
    node_config c;
    c.workers = 1;
    node n(c);
    CHECK_FALSE(n.dlq_flush());
    std::vector<dlq_entry> out;
    CHECK(n.dlq_list(dlq_kind::unknown, out) == std::make_error_code(std::errc::operation_not_supported));
    CHECK_FALSE(n.dead().persistent());
  }
}
