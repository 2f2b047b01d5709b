// The stream API (docs/streams.md, "The stream API"): the agent `$streams` answers JSON requests
// that add, remove, list and describe streams and their consumers.
#include <flowbus/actors/client.hpp>

#include "dlq_stream.hpp"
#include "node_impl.hpp"
#include "stream_json.hpp"
#include "stream_writer.hpp"

#include <spdlog/spdlog.h>

namespace flowbus::actors {

using nlohmann::json;

std::vector<stream_config> saved_streams(const std::string& directory, const std::vector<stream_config>& configured) {
  std::vector<stream_config> out;
  std::error_code ec;
  if (directory.empty() || !std::filesystem::is_directory(directory, ec)) return out;
  std::vector<std::filesystem::path> dirs;
  for (const auto& d : std::filesystem::directory_iterator(directory, ec))
    if (std::filesystem::exists(d.path() / "stream.json", ec)) dirs.push_back(d.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    const std::string name = d.filename().string();
    if (std::any_of(configured.begin(), configured.end(), [&](const stream_config& c) { return c.name == name; }))
      continue; // the configuration says what it is now
    try {
      std::string text;
      if (const std::error_code e = detail::read_file(d / "stream.json", text)) throw std::system_error(e, "read");
      stream_config c = parse_stream_config(json::parse(text), directory);
      if (c.name != name) throw std::invalid_argument("it names stream " + c.name);
      out.push_back(std::move(c));
    } catch (const std::exception& e) {
      spdlog::error("flowbus: {} not read ({}): that stream is not opened", (d / "stream.json").string(), e.what());
    }
  }
  return out;
}

stream_admin::~stream_admin() { stop(); }

void stream_admin::start(std::unique_ptr<client> agent) {
  agent_ = std::move(agent);
  thread_ = std::thread([this] { run(); });
}

void stream_admin::stop() {
  stopping_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  agent_.reset();
}

void stream_admin::run() {
  while (!stopping_.load(std::memory_order_acquire)) {
    std::optional<received> r = agent_->receive(std::chrono::milliseconds(100));
    if (!r || !r->msg.is_request()) continue; // only requests have someone to answer
    agent_->respond(r->msg, answer(r->msg.payload));
  }
  agent_->leave();
}

namespace {

json failure(const char* code, const std::string& description) {
  return json{{"error", {{"code", code}, {"description", description}}}};
}

std::string required(const json& j, const char* field) {
  const auto it = j.find(field);
  if (it == j.end() || !it->is_string() || it->get<std::string>().empty())
    throw std::invalid_argument(std::string("'") + field + "': required");
  return it->get<std::string>();
}

/// Runs f(stream) on the named stream — a stream, or a dead-letter queue ("$dlq.<kind>") — under
/// the streams' lock; not_found if there is none.
template <class F> json with_stream(node::impl& core, const std::string& name, F&& f) {
  std::lock_guard<std::mutex> g(core.streams_m);
  for (auto& w : core.streams)
    if (w->config().name == name) return f(static_cast<consumable&>(*w));
  for (auto& d : core.dlq_streams)
    if (d && d->name() == name) return f(static_cast<consumable&>(*d));
  return failure("not_found", "no stream " + name);
}

/// The stream `name` as it is configured; not_found if there is none (a dead-letter queue is not
/// configured: it is refused).
template <class F> json with_writer(node::impl& core, const std::string& name, F&& f) {
  std::lock_guard<std::mutex> g(core.streams_m);
  for (auto& w : core.streams)
    if (w->config().name == name) return f(*w);
  return failure("not_found", "no stream " + name);
}

bool is_dlq(const std::string& name) { return name.rfind("$dlq.", 0) == 0; }

bool same_stream(const stream_config& a, const stream_config& b) { return to_json(a) == to_json(b); }

} // namespace

std::string stream_admin::answer(std::string_view request) {
  const std::shared_ptr<node::impl> core = core_.lock();
  if (!core) return failure("unavailable", "the node is stopping").dump();
  try {
    const json j = json::parse(request.begin(), request.end());
    if (!j.is_object()) throw std::invalid_argument("a request is a JSON object");
    const std::string op = required(j, "op");
    if (op == "stream.add") {
      if (core->cfg.stream_directory.empty())
        return failure("bad_request", "the node keeps no streams (it was started without a stream directory)").dump();
      const stream_config c = parse_stream_config(j, core->cfg.stream_directory);
      json existing = with_writer(*core, c.name, [&](stream_writer& w) {
        return same_stream(w.config(), c) ? json{{"stream", to_json(w.status())}}
                                          : failure("exists", "stream " + c.name + " exists with other settings");
      });
      if (!existing.contains("error") || existing["error"]["code"] != "not_found") return existing.dump();
      add_stream(core, c);
      return with_writer(*core, c.name, [](stream_writer& w) { return json{{"stream", to_json(w.status())}}; }).dump();
    }
    if (op == "stream.rm") {
      const std::string name = required(j, "name");
      if (is_dlq(name))
        return failure("bad_request",
                       name + " is a dead-letter queue: it is not removed (flowbus dlq purge empties it)")
            .dump();
      return (remove_stream(*core, name) ? json{{"ok", true}} : failure("not_found", "no stream " + name)).dump();
    }
    if (op == "stream.ls") {
      json list = json::array();
      std::lock_guard<std::mutex> g(core->streams_m);
      for (auto& w : core->streams)
        list.push_back(to_json(w->status()));
      for (auto& d : core->dlq_streams)
        if (d) list.push_back(to_json(d->status()));
      return json{{"streams", std::move(list)}}.dump();
    }
    if (op == "stream.info")
      return with_stream(*core, required(j, "name"),
                         [](consumable& w) {
                           return json{{"stream", to_json(w.status())}};
                         })
          .dump();
    if (op == "consumer.add") {
      consumer_config c = parse_consumer_config(j.value("consumer", json::object()));
      return with_stream(*core, required(j, "stream"),
                         [&](consumable& w) {
                           return json{{"consumer", to_json(w.add_consumer(std::move(c)))}};
                         })
          .dump();
    }
    if (op == "consumer.rm" || op == "consumer.info") {
      const std::string name = required(j, "name");
      return with_stream(
                 *core, required(j, "stream"),
                 [&](consumable& w) {
                   if (op == "consumer.rm")
                     return w.remove_consumer(name) ? json{{"ok", true}} : failure("not_found", "no consumer " + name);
                   const auto s = w.consumer(name);
                   return s ? json{{"consumer", to_json(*s)}} : failure("not_found", "no consumer " + name);
                 })
          .dump();
    }
    return failure("bad_request", "unknown op '" + op + "'").dump();
  } catch (const json::exception& e) {
    return failure("bad_request", std::string("not JSON: ") + e.what()).dump();
  } catch (const std::invalid_argument& e) {
    return failure("bad_request", e.what()).dump();
  } catch (const std::exception& e) { // a log that cannot be created, a full disk
    return failure("store_failed", e.what()).dump();
  }
}

} // namespace flowbus::actors
