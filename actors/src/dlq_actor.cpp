// The DLQ actors: one per dlq_kind, each owning its file. dead_letters::add queues an entry and,
// when its kind's queue was empty, sends the actor a flush; the actor takes everything queued and
// appends it with one write and one fdatasync (group commit: a burst of dead letters costs one
// disk sync per batch, not per message). A flush request answers once the batch is on disk.
#include "dlq_stream.hpp"
#include "node_impl.hpp"

#include <flowbus/actors/dlq.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <spdlog/spdlog.h>

#include <system_error>

namespace flowbus::actors {

namespace {
struct dlq_state {
  std::optional<dlq_file> file;
  static inline const char* name = "flowbus.dlq";
};
using dlq_actor_t = caf::stateful_actor<dlq_state>;
} // namespace

std::uint64_t persist_dead_letters(dead_letters& dead, dlq_file& file) {
  auto batch = dead.take_unpersisted(file.kind());
  if (batch.empty()) return 0;
  std::vector<dlq_entry> entries;
  entries.reserve(batch.size());
  for (const auto& d : batch) entries.push_back(make_dlq_entry(d));
  const std::uint64_t cut_before = file.truncated_bytes();
  const std::error_code ec = file.append(entries);
  if (const auto cut = file.truncated_bytes() - cut_before) {
    spdlog::warn("flowbus dlq {}: cut a torn tail of {} bytes before appending", to_string(file.kind()), cut);
    dead.torn_cut(cut);
  }
  if (ec) spdlog::error("flowbus dlq {}: {} entries not persisted: {}", to_string(file.kind()), entries.size(), ec.message());
  dead.persisted(file.kind(), entries.size(), !ec);
  return ec ? 0 : entries.size();
}

namespace {
caf::behavior dlq_actor(dlq_actor_t* self, node::impl* core, dlq_kind kind) {
  self->state.file.emplace(core->dlq_files[static_cast<std::size_t>(kind)]);
  self->set_default_handler(caf::drop);
  return {
      [=](flush_atom) -> std::uint64_t {
        const std::uint64_t n = persist_dead_letters(core->dead, *self->state.file);
        if (n) core->dlq_streams[static_cast<std::size_t>(kind)]->wake(); // its consumers
        return n;
      },
  };
}
} // namespace

void open_dlq(node::impl* core) {
  if (core->cfg.dlq_directory.empty()) return;
  std::string what;
  std::array<dlq_file::recovery, dlq_kind_count> rec;
  if (auto ec = open_dlq_directory(core->cfg.dlq_directory, what, core->dlq_files, rec))
    throw std::system_error(ec, "DLQ directory unusable: " + what);
  for (dlq_file& f : core->dlq_files) // shared by each kind's DLQ actor and $dlq.<kind> stream
    f.keep_open();
  for (std::size_t i = 0; i < dlq_kind_count; ++i) {
    if (rec[i].truncated_bytes)
      spdlog::warn("flowbus dlq {}: cut a torn tail of {} bytes (a crash or a full disk mid-append); {} whole bytes kept",
                   to_string(static_cast<dlq_kind>(i)), rec[i].truncated_bytes, rec[i].bytes);
    if (rec[i].damaged_bytes)
      spdlog::warn("flowbus dlq {}: {} damaged bytes between whole records (readers skip them)",
                   to_string(static_cast<dlq_kind>(i)), rec[i].damaged_bytes);
    core->dead.torn_cut(rec[i].truncated_bytes);
    core->dlq_streams[i] = std::make_unique<dlq_stream>(core, static_cast<dlq_kind>(i));
  }
}

void spawn_dlq_actors(node::impl* core) {
  if (core->cfg.dlq_directory.empty()) return;
  for (std::size_t i = 0; i < dlq_kind_count; ++i)
    core->dlqs[i] = core->sys->spawn<caf::hidden>(dlq_actor, core, static_cast<dlq_kind>(i));
  core->dlq_live.store(true);
  core->dead.persist_to(
      [core](dlq_kind k) {
        if (core->dlq_live.load(std::memory_order_acquire)) caf::anon_send(core->dlqs[static_cast<std::size_t>(k)], flush_atom::value);
      },
      core->cfg.dlq_pending_bound);
}

std::uint64_t flush_dlq_actors(node::impl* core) {
  if (!core->dlq_live.load()) return 0;
  std::uint64_t n = 0;
  caf::scoped_actor s{*core->sys};
  for (auto& a : core->dlqs)
    s->request(a, caf::infinite, flush_atom::value).receive([&](std::uint64_t k) { n += k; }, [](caf::error&) {});
  return n;
}

void stop_dlq_actors(node::impl* core) {
  if (!core->dlq_live.exchange(false)) return;
  // what arrived after the last flush is written by persist_remaining (in ~impl), without CAF
  for (auto& a : core->dlqs) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  // Wait until they are gone. CAF 0.17's scheduler shutdown cleans up an actor still queued with
  // its exit message without destroying its state (the file and its path leaked; ASan saw it),
  // and persist_remaining must be the only writer of the files once this returns.
  caf::scoped_actor s{*core->sys};
  s->wait_for(core->dlqs);
}

void persist_remaining(node::impl* core) {
  if (core->cfg.dlq_directory.empty()) return;
  for (dlq_file& f : core->dlq_files) persist_dead_letters(core->dead, f);
}

} // namespace flowbus::actors
