#include "stream_json.hpp"

#include <flowbus/actors/stream_settings.hpp>

#include <stdexcept>
#include <system_error>

namespace flowbus::actors {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& why) {
  throw std::invalid_argument("'" + field + "': " + why);
}

template <class T> T number(const json& j, const char* field, T fallback, T lowest = 0) {
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() && !it->is_number_unsigned()) bad(field, "not an integer");
  if (it->is_number_integer() && it->get<std::int64_t>() < 0) bad(field, "negative");
  const auto v = it->get<std::uint64_t>();
  if (v < static_cast<std::uint64_t>(lowest)) bad(field, "at least " + std::to_string(lowest));
  if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) bad(field, "too large");
  return static_cast<T>(v);
}

std::string text(const json& j, const char* field, const std::string& fallback = {}) {
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) bad(field, "not a string");
  return it->get<std::string>();
}

const char* start_name(consumer_config::start_at s) noexcept {
  switch (s) {
  case consumer_config::start_at::first:
    return "first";
  case consumer_config::start_at::last:
    return "last";
  case consumer_config::start_at::new_only:
    return "new";
  case consumer_config::start_at::sequence:
    return "sequence";
  case consumer_config::start_at::time:
    return "time";
  }
  return "first";
}

} // namespace

consumer_config parse_consumer_config(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("a consumer is a JSON object");
  consumer_config c;
  c.name = text(j, "name");
  if (j.contains("durable") && !j["durable"].is_boolean()) bad("durable", "not true or false");
  c.durable = j.value("durable", !c.name.empty());
  c.deliver_to = text(j, "deliver_to");
  c.filter = text(j, "filter");
  c.start_seq = number<std::uint64_t>(j, "start_seq", 0);
  c.start_time_ns = number<std::uint64_t>(j, "start_time_ns", 0);
  const std::string start = text(j, "start", c.start_seq ? "sequence" : c.start_time_ns ? "time" : "first");
  if (start == "first" || start == "all")
    c.start = consumer_config::start_at::first;
  else if (start == "last")
    c.start = consumer_config::start_at::last;
  else if (start == "new")
    c.start = consumer_config::start_at::new_only;
  else if (start == "sequence")
    c.start = consumer_config::start_at::sequence;
  else if (start == "time")
    c.start = consumer_config::start_at::time;
  else
    bad("start", "first, last, new, sequence or time");
  c.ack_wait = std::chrono::milliseconds(number<std::uint32_t>(j, "ack_wait_ms", 5000, 1));
  c.max_in_flight = number<std::uint32_t>(j, "max_in_flight", 256, 1);
  c.max_deliver = number<std::uint32_t>(j, "max_deliver", 5);
  c.backoff = std::chrono::milliseconds(number<std::uint32_t>(j, "backoff_ms", 100));
  c.backoff_max = std::chrono::milliseconds(number<std::uint32_t>(j, "backoff_max_ms", 10000));
  c.inactive = std::chrono::milliseconds(number<std::uint32_t>(j, "inactive_ms", 5000, 1));
  return c;
}

json to_json(const consumer_config& c) {
  json j{{"name", c.name},
         {"durable", c.durable},
         {"deliver_to", c.deliver_to},
         {"filter", c.filter},
         {"start", start_name(c.start)},
         {"ack_wait_ms", c.ack_wait.count()},
         {"max_in_flight", c.max_in_flight},
         {"max_deliver", c.max_deliver},
         {"backoff_ms", c.backoff.count()},
         {"backoff_max_ms", c.backoff_max.count()},
         {"inactive_ms", c.inactive.count()}};
  if (c.start == consumer_config::start_at::sequence) j["start_seq"] = c.start_seq;
  if (c.start == consumer_config::start_at::time) j["start_time_ns"] = c.start_time_ns;
  return j;
}

json to_json(const consumer_status& s) {
  return json{{"config", to_json(s.config)},
              {"next", s.next},
              {"ack_floor", s.ack_floor},
              {"pending", s.pending},
              {"delivered", s.delivered},
              {"redelivered", s.redelivered},
              {"acked", s.acked},
              {"naked", s.naked},
              {"dead", s.dead},
              {"interest", s.interest}};
}

stream_config parse_stream_config(const json& j, const std::filesystem::path& directory) {
  if (!j.is_object()) throw std::invalid_argument("a stream is a JSON object");
  stream_config c;
  c.name = text(j, "name");
  if (!valid_stream_name(c.name)) bad("name", "1-64 letters, digits, '_' or '-'");
  const auto subjects = j.find("subjects");
  if (subjects == j.end() || !subjects->is_array() || subjects->empty()) bad("subjects", "a list of topic patterns");
  for (const json& s : *subjects) {
    if (!s.is_string()) bad("subjects", "a list of topic patterns");
    c.subjects.push_back(s.get<std::string>());
  }
  c.directory = directory;
  const std::string sync = text(j, "fsync", "group");
  if (sync == "always")
    c.log.sync = fsync_policy::always;
  else if (sync == "group")
    c.log.sync = fsync_policy::group;
  else if (sync == "never")
    c.log.sync = fsync_policy::never;
  else
    bad("fsync", "always, group or never");
  const std::string storage = text(j, "storage", "file");
  if (storage != "file" && storage != "memory") bad("storage", "file or memory");
  c.log.in_memory = storage == "memory";
  c.log.group_interval = std::chrono::milliseconds(number<std::uint32_t>(j, "group_ms", 5, 1));
  c.log.segment_bytes = number<std::uint64_t>(j, "segment_mb", 64, 1) << 20;
  c.log.max_bytes = number<std::uint64_t>(j, "max_bytes", 0);
  c.log.max_records = number<std::uint64_t>(j, "max_records", 0);
  c.log.max_age = std::chrono::seconds(number<std::uint64_t>(j, "max_age_s", 0));
  return c;
}

std::vector<stream_config> streams_from_document(const json& doc, const std::filesystem::path& directory) {
  if (!doc.is_object()) throw std::invalid_argument("not a table with \"streams\"");
  for (const auto& [key, value] : doc.items())
    if (key != "streams") throw std::invalid_argument("'" + key + "': unknown (the file holds \"streams\")");
  const auto list = doc.find("streams");
  if (list == doc.end() || !list->is_array())
    throw std::invalid_argument("'streams': a list of streams ([[streams]] tables in TOML)");
  std::vector<stream_config> out;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const json& one = (*list)[i];
    const auto name = one.is_object() ? one.find("name") : one.end();
    const std::string which = "stream " + std::to_string(i + 1) +
                              (name != one.end() && name->is_string() ? " (" + name->get<std::string>() + ")" : "");
    try {
      stream_config c = parse_stream_config(one, directory);
      const json known = to_json(c);
      for (const auto& [key, value] : one.items())
        if (!known.contains(key)) bad(key, "not a stream setting");
      for (const stream_config& before : out)
        if (before.name == c.name) throw std::invalid_argument("a second stream of that name");
      out.push_back(std::move(c));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(which + ": " + e.what());
    }
  }
  return out;
}

json to_json(const stream_config& c) {
  return json{{"name", c.name},
              {"subjects", c.subjects},
              {"storage", c.log.in_memory ? "memory" : "file"},
              {"fsync", to_string(c.log.sync)},
              {"group_ms", c.log.group_interval.count()},
              {"segment_mb", c.log.segment_bytes >> 20},
              {"max_bytes", c.log.max_bytes},
              {"max_records", c.log.max_records},
              {"max_age_s", c.log.max_age.count()}};
}

json to_json(const stream_status& s) {
  json consumers = json::array();
  for (const consumer_status& c : s.consumers)
    consumers.push_back(to_json(c));
  json j{{"name", s.name},
         {"subjects", s.subjects},
         {"storage", s.in_memory ? "memory" : "file"},
         {"fsync", to_string(s.sync)},
         {"first", s.first},
         {"last", s.last},
         {"records", s.records},
         {"bytes", s.bytes},
         {"durable", s.durable},
         {"syncs", s.syncs},
         {"failures", s.failures},
         {"recovered",
          {{"segments", s.recovered.segments},
           {"records", s.recovered.records},
           {"torn_bytes", s.recovered.torn_bytes},
           {"damaged_bytes", s.recovered.damaged_bytes},
           {"indexed", s.recovered.indexed}}},
         {"consumers", std::move(consumers)}};
  if (!s.dlq.empty()) j["dlq"] = s.dlq;
  return j;
}

} // namespace flowbus::actors
