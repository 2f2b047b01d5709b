// Dead-letter queues on disk: the file format (append, load, tombstones, purge, a torn tail) and
// the node's DLQ actors (dead letters persisted by kind, surviving a restart, replayed).
#include <flowbus/actors/dlq.hpp>
#include <flowbus/actors/node.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace flowbus::actors;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
// A fresh directory per test, removed afterwards.
struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path() / ("flowbus-dlq-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
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

node_config with_dlq(const fs::path& dir) {
  node_config c;
  c.workers = 2;
  c.dlq_directory = dir.string();
  return c;
}
} // namespace

TEST_SUITE("dlq") {

  TEST_CASE("file: append is read back field by field; ids are offsets; tombstones remove; purge empties") {
    temp_dir d;
    dlq_file f(d.path, dlq_kind::poison);
    CHECK(f.path().filename() == "poison.dlq");
    std::vector<dlq_entry> batch{entry("a", std::string("\0\1\2frame", 8)), entry("b", "xyz", dead_reason::poison)};
    REQUIRE_FALSE(f.append(batch));
    CHECK(batch[0].id == 0);
    CHECK(batch[1].id > 0);
    std::vector<dlq_entry> more{entry("c", "")};
    REQUIRE_FALSE(f.append(more));

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
    CHECK(c.entries[2].id == more[0].id);
    CHECK(c.torn_bytes == 0);

    REQUIRE_FALSE(f.remove({batch[1].id}));
    REQUIRE_FALSE(f.load(c));
    REQUIRE(c.entries.size() == 2);
    CHECK(c.entries[1].recipient == "c");
    CHECK(c.tombstones == 1);

    REQUIRE_FALSE(f.purge());
    REQUIRE_FALSE(f.load(c));
    CHECK(c.entries.empty());
  }

  TEST_CASE("file: a torn or damaged tail is ignored and reported; a missing file is empty") {
    temp_dir d;
    dlq_file f(d.path, dlq_kind::unknown);
    dlq_file::contents c;
    REQUIRE_FALSE(f.load(c)); // no file yet
    CHECK(c.entries.empty());
    std::vector<dlq_entry> batch{entry("a", "one"), entry("b", "two")};
    REQUIRE_FALSE(f.append(batch));
    const auto size = fs::file_size(f.path());
    { // a crash in the middle of a third append
      std::ofstream out(f.path(), std::ios::binary | std::ios::app);
      out.write("FDLQ\x40\0\0\0\1\2", 10);
    }
    REQUIRE_FALSE(f.load(c));
    CHECK(c.entries.size() == 2);
    CHECK(c.torn_bytes == 10);
    { // flip a byte inside the second record: it and everything after are not trusted
      std::fstream io(f.path(), std::ios::binary | std::ios::in | std::ios::out);
      io.seekp(static_cast<std::streamoff>(size - 2));
      io.put('!');
    }
    REQUIRE_FALSE(f.load(c));
    CHECK(c.entries.size() == 1);
    CHECK(c.torn_bytes == fs::file_size(f.path()) - batch[1].id);
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
