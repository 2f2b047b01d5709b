#include "dlq_cmd.hpp"

#include "node_cmd.hpp"

#include <flowbus/actors/dlq.hpp>
#include <flowbus/transport/client.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <unistd.h>

namespace flowbus::app {

namespace {
std::vector<actors::dlq_kind> selected(const dlq_options& o) {
  std::vector<actors::dlq_kind> out;
  for (std::size_t i = 0; i < actors::dlq_kind_count; ++i) {
    const auto k = static_cast<actors::dlq_kind>(i);
    if (o.kinds.empty() || std::find(o.kinds.begin(), o.kinds.end(), actors::to_string(k)) != o.kinds.end())
      out.push_back(k);
  }
  return out;
}

int fail(const char* what, const std::string& path, const std::error_code& ec) {
  std::fprintf(stderr, "flowbus dlq: %s %s: %s\n", what, path.c_str(), ec.message().c_str());
  return 1;
}

int list(const dlq_options& o) {
  for (auto k : selected(o)) {
    actors::dlq_file f(o.dir, k);
    actors::dlq_file::contents c;
    if (auto ec = f.load(c)) return fail("cannot read", f.path().string(), ec);
    if (!o.json) {
      std::printf("%s: %zu entries\n", actors::to_string(k), c.entries.size());
      if (c.damaged_bytes)
        std::printf("  %llu damaged bytes in %llu places skipped (whole records after them are listed)\n",
                    static_cast<unsigned long long>(c.damaged_bytes), static_cast<unsigned long long>(c.damaged_regions));
      if (c.torn_bytes)
        std::printf("  a torn record of %llu bytes at the end was cut off (a crash mid-append)\n",
                    static_cast<unsigned long long>(c.torn_bytes));
    } else if (c.damaged_bytes || c.torn_bytes) { // stdout stays one entry per line
      std::fprintf(stderr, "flowbus dlq: %s: %llu damaged bytes in %llu places skipped, %llu torn bytes at the end\n",
                   actors::to_string(k), static_cast<unsigned long long>(c.damaged_bytes),
                   static_cast<unsigned long long>(c.damaged_regions), static_cast<unsigned long long>(c.torn_bytes));
    }
    for (const auto& e : c.entries) {
      if (o.json) {
        nlohmann::json j{{"kind", actors::to_string(k)}, {"id", e.id}, {"reason", actors::to_string(e.reason)},
                         {"attempts", e.attempts}, {"first_ns", e.first_ns}, {"last_ns", e.last_ns},
                         {"source", e.source}, {"recipient", e.recipient}, {"frame_bytes", e.frame.size()}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("  id %-10llu %-18s attempts %u  %s -> %s  (%zu bytes)\n", static_cast<unsigned long long>(e.id),
                    actors::to_string(e.reason), e.attempts, e.source.empty() ? "?" : e.source.c_str(),
                    e.recipient.c_str(), e.frame.size());
      }
    }
  }
  return 0;
}

int purge(const dlq_options& o) {
  for (auto k : selected(o)) {
    actors::dlq_file f(o.dir, k);
    if (auto ec = f.purge()) return fail("cannot purge", f.path().string(), ec);
    std::printf("%s: purged\n", actors::to_string(k));
  }
  return 0;
}

int replay(const dlq_options& o) {
  transport::client_options co;
  split_host_port(o.connect, co.host, co.port);
  co.id = "flowbus.dlq.replay." + std::to_string(::getpid());
  co.type = "flowbus";
  co.reconnect = false;
  transport::client c(co);
  if (auto e = c.connect(); e != actors::errc::ok) {
    std::fprintf(stderr, "flowbus dlq: cannot connect to %s: %s\n", o.connect.c_str(), actors::to_string(e));
    return 1;
  }
  const auto target = actors::replay_through(c);
  struct sent {
    actors::dlq_file file;
    actors::replay_outcome out;
  };
  std::vector<sent> all;
  for (auto k : selected(o)) {
    actors::dlq_file f(o.dir, k);
    actors::dlq_file::contents contents;
    if (auto ec = f.load(contents)) return fail("cannot read", f.path().string(), ec);
    all.push_back({f, actors::replay_entries(contents.entries, o.ids, target)});
  }
  c.close(); // writes everything queued, then GOODBYE: the entries leave the files only after
  int rc = 0;
  for (auto& s : all) {
    if (auto ec = s.file.remove(s.out.sent)) return fail("cannot update", s.file.path().string(), ec);
    std::printf("%s: replayed %zu, failed %zu\n", actors::to_string(s.file.kind()), s.out.sent.size(), s.out.failed);
    if (s.out.failed) rc = 1;
  }
  return rc;
}
} // namespace

int run_dlq(const dlq_options& o) {
  if (o.action == "list") return list(o);
  if (o.action == "purge") return purge(o);
  return replay(o);
}

} // namespace flowbus::app
