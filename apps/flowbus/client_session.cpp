#include "client_session.hpp"

#include "node_cmd.hpp" // split_host_port

#include <flowbus/codec/clock.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <cctype>
#include <csignal>
#include <cstdio>

namespace flowbus::app {

using namespace std::chrono_literals;
using json = nlohmann::json;
using transport::errc;

std::atomic<bool> interrupted{false};
static void on_interrupt(int) { interrupted.store(true); }

void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int exit_for(errc e) {
  switch (e) {
  case errc::ok:
    return exit_ok;
  case errc::timeout:
    return exit_timeout;
  case errc::no_responders:
  case errc::no_capable_agent:
  case errc::agent_unavailable:
    return exit_no_responders;
  case errc::node_stopped:
    return exit_not_connected;
  default:
    return exit_refused;
  }
}

std::string lower(std::string s) {
  for (char& ch : s)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string base64(std::string_view s) {
  std::string out(4 * ((s.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

session open_session(const connection_options& c, const std::string& command, bool reconnect, bool acks,
                     transport::message_handler direct) {
  transport::client_options o;
  split_host_port(c.connect, o.host, o.port, 8081);
  o.id = c.id.empty() ? "flowbus-" + command + "-" + std::to_string(getpid()) : c.id;
  o.type = c.type;
  o.token = c.token;
  o.key_file = c.key_file;
  if (!c.tls_ca.empty() || !c.tls_server_name.empty()) {
    o.tls.enabled = true;
    o.tls.ca_file = c.tls_ca;
    o.tls.server_name = c.tls_server_name;
  }
  o.reconnect = reconnect;
  o.acks = acks;
  o.max_block = 30s; // a publisher faster than the node waits instead of being refused
  session s;
  try {
    s.client = std::make_unique<transport::client>(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowbus %s: %s\n", command.c_str(), e.what());
    s.rc = exit_usage;
    return s;
  }
  if (direct) s.client->on_message(std::move(direct));
  const errc e = s.client->connect(std::chrono::milliseconds(static_cast<long>(c.connect_timeout_s * 1000)));
  if (e != errc::ok) {
    std::fprintf(stderr, "flowbus %s: cannot connect to %s as %s: %s\n", command.c_str(), c.connect.c_str(),
                 o.id.c_str(),
                 e == errc::node_stopped || e == errc::timeout ? "no node answers there" : transport::to_string(e));
    s.client.reset();
    s.rc = exit_not_connected;
  }
  return s;
}

void add_connection_options(CLI::App& cmd, connection_options& c) {
  cmd.add_option("--connect,-s", c.connect, "host:port of the node")->capture_default_str()->envname("FLOWBUS_CONNECT");
  cmd.add_option("--id", c.id, "the agent id to register as (default: flowbus-<command>-<pid>)");
  cmd.add_option("--type", c.type, "the agent type to register as")->capture_default_str();
  cmd.add_option("--token", c.token, "a token for a node with --auth token (flowbus token issue)")
      ->envname("FLOWBUS_TOKEN");
  cmd.add_option("--key-file", c.key_file, "an Ed25519 private key for a node with --auth key (flowbus key gen)");
  cmd.add_option("--tls-ca", c.tls_ca, "connect with TLS (wss://), trusting this CA (PEM)");
  cmd.add_option("--tls-server-name", c.tls_server_name, "with TLS: the name the node's certificate must carry");
  cmd.add_option("--connect-timeout", c.connect_timeout_s, "seconds to connect and register")->capture_default_str();
}

errc respond_later(transport::client& c, const std::string& reply_to, std::uint64_t correlation_id,
                   codec::priority prio, std::string_view payload) {
  transport::incoming req;
  req.type = codec::msg_type::request;
  req.reply_to = reply_to;
  req.correlation_id = correlation_id;
  req.prio = prio;
  return c.respond(req, payload);
}

void print_message(const transport::incoming& m, std::uint64_t n, bool raw, bool as_json) {
  if (raw) {
    std::fwrite(m.payload.data(), 1, m.payload.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    return;
  }
  const std::uint64_t now = codec::wall_clock_ns();
  const double age_us = m.timestamp_ns && now > m.timestamp_ns ? static_cast<double>(now - m.timestamp_ns) / 1e3 : 0.0;
  if (as_json) {
    json j = {{"n", n},
              {"type", lower(codec::to_string(m.type))},
              {"topic", m.topic},
              {"source", m.source},
              {"priority", lower(codec::to_string(m.prio))},
              {"age_us", age_us},
              {"timestamp_ns", m.timestamp_ns}};
    if (!m.target.empty()) j["target"] = m.target;
    if (!m.reply_to.empty()) j["reply_to"] = m.reply_to;
    if (m.correlation_id) j["correlation_id"] = m.correlation_id;
    if (m.message_id) j["message_id"] = m.message_id;
    json headers = json::object();
    for (const codec::repeated_entry& e : m.repeated)
      if (e.id == codec::field::header) headers[std::string(e.key)] = e.value;
    if (!headers.empty()) j["headers"] = headers;
    std::string line;
    try {
      j["payload"] = m.payload;
      line = j.dump();
    } catch (const json::exception&) { // not UTF-8
      j.erase("payload");
      j["payload_base64"] = base64(m.payload);
      line = j.dump();
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    return;
  }
  std::printf("[#%llu] %s %.*s from %.*s (%s, %.3f ms old)\n", static_cast<unsigned long long>(n),
              codec::to_string(m.type), static_cast<int>(m.topic.empty() ? m.target.size() : m.topic.size()),
              m.topic.empty() ? m.target.data() : m.topic.data(), static_cast<int>(m.source.size()), m.source.data(),
              lower(codec::to_string(m.prio)).c_str(), age_us / 1e3);
  for (const codec::repeated_entry& e : m.repeated)
    if (e.id == codec::field::header)
      std::printf("  %.*s: %.*s\n", static_cast<int>(e.key.size()), e.key.data(), static_cast<int>(e.value.size()),
                  e.value.data());
  std::fwrite(m.payload.data(), 1, m.payload.size(), stdout);
  std::fputs("\n\n", stdout);
  std::fflush(stdout);
}

} // namespace flowbus::app
