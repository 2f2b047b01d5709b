// A stream's consumers (stream.hpp, consumer_config): what each has been given, what waits for its
// acknowledgement and when it is sent again. The stream's thread owns the set: it pumps it after
// each commit (new records up to the durable mark, redeliveries that are due) and hands it the
// REPLYs that acknowledge deliveries. How a record is sent, whether anyone listens and where
// poison goes are the caller's (consumer_io), so the bookkeeping is tested without a node
// (tests/actors/stream_consumers.test.cpp). Internal to the actors layer. @threadsafe no
#pragma once

#include <flowbus/actors/segment_log.hpp>
#include <flowbus/actors/stream.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace flowbus::actors {

/// What the consumers need from their stream.
struct consumer_io {
  enum class outcome : std::uint8_t { sent, filtered, refused };
  /// Sends `rec` to the consumer (its `deliveries`-th delivery, acknowledged by a REPLY carrying
  /// `token`): sent, filtered (not for it: skipped) or refused (nobody took it: tried again later).
  std::function<outcome(const consumer_config&, const log_record& rec, std::uint64_t token, std::uint32_t deliveries)>
      deliver;
  /// Whether anyone listens at the consumer's deliver_to.
  std::function<bool(const consumer_config&)> has_interest;
  /// A record delivered max_deliver times without an ack (or terminated): to the poison DLQ.
  std::function<void(const consumer_config&, const log_record& rec, std::uint32_t deliveries)> poison;
};

class consumer_set {
public:
  using clock = std::chrono::steady_clock;
  /// `dir`: where durable consumers keep their state (one JSON file each); empty: nowhere.
  explicit consumer_set(std::filesystem::path dir);
  ~consumer_set();
  consumer_set(const consumer_set&) = delete;
  consumer_set& operator=(const consumer_set&) = delete;
  /// Reads the durable consumers kept in `dir` (a file that does not parse is logged and skipped).
  void load(const segment_log& log);
  /// Adds a consumer, or updates a durable one of that name (its delivery settings; it keeps its
  /// position). Throws std::invalid_argument naming what is wrong.
  consumer_status add(consumer_config c, const segment_log& log, clock::time_point now);
  bool remove(std::string_view name);
  std::optional<consumer_status> status(std::string_view name) const;
  std::vector<consumer_status> all() const;
  std::size_t size() const noexcept { return consumers_.size(); }

  /// A REPLY to delivery `token`: "" or "+ACK" acknowledges; "-NAK" sends it again after the
  /// backoff; "+WPI" (work in progress) restarts its ack wait; "+TERM" sends it to the poison DLQ.
  /// Returns false if no consumer has it pending (a late or duplicate ack).
  bool on_reply(std::uint64_t token, std::string_view payload, const segment_log& log, consumer_io& io,
                clock::time_point now);
  /// Delivers what is due: redeliveries, then new records up to `durable`. Returns when it next
  /// has something to do (a redelivery or an ack deadline; clock::time_point::max(): nothing
  /// timed).
  clock::time_point pump(const segment_log& log, std::uint64_t durable, consumer_io& io, clock::time_point now);
  /// Writes the durable consumers whose state changed (at most every 100 ms unless `force`).
  void persist(bool force, clock::time_point now);
  /// A durable consumer's state file, to write.
  struct state_file {
    std::string consumer;
    std::filesystem::path path;
    std::string text;
  };
  /// persist() in two halves, so that the writes (each fdatasyncs) can run outside the stream's
  /// lock: the changed consumers' files (at most every 100 ms unless `force`), then write() each.
  std::vector<state_file> changed(bool force, clock::time_point now);
  static void write(const state_file& f) noexcept; ///< (a failure is logged)
  bool has(std::string_view name) const { return consumers_.find(name) != consumers_.end(); }

  struct consumer;

private:
  void save(const consumer& c) const;
  std::optional<state_file> state_of(const consumer& c) const;
  std::filesystem::path dir_;
  std::map<std::string, std::unique_ptr<consumer>, std::less<>> consumers_;
  std::uint16_t next_id_ = 1;
  std::uint64_t next_ephemeral_ = 1;
  clock::time_point last_persist_{};
  std::minstd_rand rng_{std::random_device{}()};
};

/// What the stream API (stream_admin) serves of a stream: its status and its consumers — a stream
/// (stream_writer), or a dead-letter queue read as one (dlq_stream).
class consumable {
public:
  virtual ~consumable() = default;
  virtual stream_status status() const = 0;
  /// Adds (or rebinds) a consumer: throws std::invalid_argument naming what is wrong.
  virtual consumer_status add_consumer(consumer_config c) = 0;
  virtual bool remove_consumer(std::string_view name) = 0;
  virtual std::optional<consumer_status> consumer(std::string_view name) const = 0;
};

/// Whether `name` may name a consumer (as a stream: valid_stream_name).
bool valid_consumer_name(const std::string& name) noexcept;

} // namespace flowbus::actors
