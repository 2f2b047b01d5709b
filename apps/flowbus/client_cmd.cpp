#include "client_cmd.hpp"
#include "client_session.hpp"

#include "node_cmd.hpp" // split_host_port
#include "top_cmd.hpp"  // fetch

#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/message.hpp>
#include <flowbus/codec/types.hpp>
#include <flowbus/scheduling/fixed_rate.hpp>
#include <flowbus/transport/client.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <future>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace flowbus::app {

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using clk = std::chrono::steady_clock;
using transport::errc;



const std::map<std::string, codec::priority> priorities = {{"critical", codec::priority::critical},
                                                           {"high", codec::priority::high},
                                                           {"normal", codec::priority::normal},
                                                           {"low", codec::priority::low},
                                                           {"background", codec::priority::background}};

/// KEY=VALUE options as application headers; `store` keeps the strings the entries view.
codec::repeated_fields headers_of(const std::vector<std::string>& given, std::vector<codec::repeated_entry>& store) {
  store.clear();
  for (const std::string& h : given) {
    const std::size_t eq = h.find('=');
    store.push_back({codec::field::header, std::string_view(h).substr(0, eq),
                     eq == std::string::npos ? std::string_view{} : std::string_view(h).substr(eq + 1)});
  }
  return codec::repeated_fields(store.data(), store.size());
}


std::string read_all(std::istream& in) { return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}; }




/// `pub --count` runs that last: a line on stderr every second (rewritten in place on a terminal).
class progress {
public:
  explicit progress(std::uint64_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void tick(std::uint64_t done) {
    if ((done & 255) != 0 && done != total_) return;
    const auto now = clk::now();
    if (now - last_ < 1s) return;
    last_ = now;
    shown_ = true;
    const double secs = std::chrono::duration<double>(now - t0_).count();
    std::fprintf(stderr, "%sflowbus pub: %llu", tty_ ? "\r" : "", static_cast<unsigned long long>(done));
    if (total_) std::fprintf(stderr, "/%llu (%.0f%%)", static_cast<unsigned long long>(total_), 100.0 * static_cast<double>(done) / static_cast<double>(total_));
    std::fprintf(stderr, ", %.0f msgs/s%s", static_cast<double>(done) / secs, tty_ ? "   " : "\n");
  }
  void end() const {
    if (shown_ && tty_) std::fputc('\n', stderr);
  }
  double seconds() const { return std::chrono::duration<double>(clk::now() - t0_).count(); }

private:
  std::uint64_t total_;
  bool tty_;
  bool shown_ = false;
  clk::time_point t0_ = clk::now(), last_ = clk::now();
};

int run_pub(const connection_options& conn, const pub_options& p) {
  session s = open_session(conn, "pub", false, false);
  if (!s.client) return s.rc;
  transport::client& c = *s.client;
  std::vector<codec::repeated_entry> store;
  transport::send_options so;
  so.prio = priorities.at(p.priority);
  so.headers = headers_of(p.headers, store);
  // acked: at most 1024 unconfirmed at once, each answered on the client's I/O thread (a callback,
  // not a future: a future's promise makes a system call per message)
  std::mutex am;
  std::condition_variable acv;
  std::size_t unconfirmed = 0;
  errc first_failure = errc::ok;
  std::uint64_t sent = 0, failed = 0;
  const auto note = [&](errc e) {
    if (e == errc::ok) return;
    if (failed++ == 0) {
      first_failure = e;
      std::fprintf(stderr, "flowbus pub: %s: %s\n", p.topic.c_str(), transport::to_string(e));
    }
  };
  progress shown(p.message ? p.count : 0);
  const auto publish_one = [&](std::string_view payload) {
    if (p.acked) {
      {
        std::unique_lock<std::mutex> g(am);
        acv.wait(g, [&] { return unconfirmed < 1024; });
        ++unconfirmed;
      }
      c.publish_acked(p.topic, payload, so, [&](errc e) {
        std::lock_guard<std::mutex> g(am);
        note(e);
        --unconfirmed;
        acv.notify_one();
      });
    } else {
      const errc e = c.publish(p.topic, payload, so);
      note(e);
      if (e != errc::ok) return false; // a refused publish will be refused again: stop
    }
    shown.tick(++sent);
    return true;
  };
  if (p.message) {
    const auto stop = [&] { return interrupted.load() || (!p.acked && failed); };
    if (p.rate > 0) {
      scheduling::offer_at_fixed_rate(p.rate, p.count, [&](std::uint64_t, std::uint64_t) { publish_one(*p.message); }, stop);
    } else {
      for (std::uint64_t i = 0; i < p.count && !stop(); ++i)
        publish_one(*p.message);
    }
  } else { // each line of standard input, paced by --rate if given
    const auto t0 = clk::now();
    std::string line;
    while (!interrupted.load() && std::getline(std::cin, line)) {
      if (p.rate > 0) std::this_thread::sleep_until(t0 + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(static_cast<double>(sent) / p.rate)));
      if (!publish_one(line)) break;
    }
  }
  {
    std::unique_lock<std::mutex> g(am); // each is answered within ack_attempts x ack_timeout
    acv.wait(g, [&] { return unconfirmed == 0; });
  }
  shown.end();
  c.close(); // writes what is queued (close_timeout)
  const transport::client_stats st = c.stats();
  const double secs = shown.seconds();
  const std::string confirmed =
      !p.acked ? "" : failed ? ", " + std::to_string(failed) + " not acknowledged" : ", each acknowledged";
  std::fprintf(stderr, "flowbus pub: %llu message%s to %s in %.3f s (%.0f msgs/s)%s\n",
               static_cast<unsigned long long>(sent - st.unsent), sent - st.unsent == 1 ? "" : "s", p.topic.c_str(),
               secs, static_cast<double>(sent - st.unsent) / secs, confirmed.c_str());
  if (failed) return exit_for(first_failure);
  if (st.refused) {
    std::fprintf(stderr, "flowbus pub: the node refused %llu\n", static_cast<unsigned long long>(st.refused));
    return exit_refused;
  }
  if (st.unsent) {
    std::fprintf(stderr, "flowbus pub: %llu not written before the close timed out\n", static_cast<unsigned long long>(st.unsent));
    return exit_timeout;
  }
  return exit_ok;
}



int run_sub(const connection_options& conn, const sub_options& s) {
  std::mutex out;
  std::atomic<std::uint64_t> seen{0};
  const auto handler = [&](const transport::incoming& m) {
    std::lock_guard<std::mutex> g(out);
    const std::uint64_t n = seen.load() + 1;
    if (s.count && n > s.count) return;
    seen.store(n);
    print_message(m, n, s.raw, s.json);
  };
  session ses = open_session(conn, "sub", true, s.acks, handler); // and what is sent to its id
  if (!ses.client) return ses.rc;
  const errc e = ses.client->subscribe(s.pattern, handler, s.queue).get();
  if (e != errc::ok) {
    std::fprintf(stderr, "flowbus sub: %s: %s\n", s.pattern.c_str(), transport::to_string(e));
    return exit_for(e);
  }
  std::fprintf(stderr, "flowbus sub: listening on %s%s%s at %s\n", s.pattern.c_str(), s.queue.empty() ? "" : " in group ",
               s.queue.c_str(), conn.connect.c_str());
  const bool in_time = wait_until_done([&] { return s.count && seen.load() >= s.count; }, s.timeout_s);
  ses.client->close();
  if (!in_time) {
    std::fprintf(stderr, "flowbus sub: %llu of %llu messages in %.1f s\n", static_cast<unsigned long long>(seen.load()),
                 static_cast<unsigned long long>(s.count), s.timeout_s);
    return exit_timeout;
  }
  return exit_ok;
}

/// A topic, agent:ID or capability:NAME.
transport::destination destination_of(const std::string& target) {
  if (target.rfind("agent:", 0) == 0) return transport::destination::agent(std::string_view(target).substr(6));
  if (target.rfind("capability:", 0) == 0) return transport::destination::capability(std::string_view(target).substr(11));
  return transport::destination::topic(target);
}

int run_req(const connection_options& conn, const req_options& r) {
  const std::string payload = r.message ? *r.message : read_all(std::cin);
  session s = open_session(conn, "req", false, false);
  if (!s.client) return s.rc;
  const transport::reply_result rr =
      s.client->request(destination_of(r.target), payload, std::chrono::milliseconds(static_cast<long>(r.timeout_s * 1000))).get();
  s.client->close();
  if (rr.code != errc::ok) {
    std::fprintf(stderr, "flowbus req: %s: %s\n", r.target.c_str(), transport::to_string(rr.code));
    return exit_for(rr.code);
  }
  std::fwrite(rr.payload.data(), 1, rr.payload.size(), stdout);
  if (rr.payload.empty() || rr.payload.back() != '\n') std::fputc('\n', stdout);
  return exit_ok;
}

/// Runs `sh -c command` with `input` on its standard input; its standard output (its exit status
/// is said on stderr when not 0).
std::string run_command(const std::string& command, const std::string& input) {
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return {};
  const pid_t child = fork();
  if (child == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  std::string result;
  std::size_t written = 0;
  int to_child = in[1];
  if (input.empty()) close(std::exchange(to_child, -1));
  for (;;) { // write the input and read the output together: neither side waits on a full pipe
    pollfd fds[2] = {{out[0], POLLIN, 0}, {to_child, POLLOUT, 0}};
    if (poll(fds, to_child >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (to_child >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = write(to_child, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (n < 0 || written == input.size()) close(std::exchange(to_child, -1));
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      const ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      result.append(buf, static_cast<std::size_t>(n));
    }
  }
  if (to_child >= 0) close(to_child);
  close(out[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    std::fprintf(stderr, "flowbus reply: `%s` exited with status %d\n", command.c_str(),
                 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return result;
}

int run_reply(const connection_options& conn, const reply_options& r) {
  struct job {
    std::string reply_to, source, payload;
    std::uint64_t correlation_id;
    codec::priority prio;
  };
  // the answers are made on another thread, not the client's I/O thread: a command may take its time
  std::mutex m;
  std::condition_variable cv;
  std::deque<job> jobs;
  std::atomic<std::uint64_t> taken{0}, answered{0};
  bool stopping = false;
  // requests on the topic, and requests sent to this agent's id (agent:ID)
  const auto handler = [&](const transport::incoming& in) {
    if (!in.is_request() || in.reply_to.empty()) {
      std::fprintf(stderr, "flowbus reply: a %s from %.*s is not a request: not answered\n", codec::to_string(in.type),
                   static_cast<int>(in.source.size()), in.source.data());
      return;
    }
    if (r.count && taken.fetch_add(1) >= r.count) return;
    std::lock_guard<std::mutex> g(m);
    jobs.push_back({std::string(in.reply_to), std::string(in.source), std::string(in.payload), in.correlation_id, in.prio});
    cv.notify_one();
  };
  session s = open_session(conn, "reply", true, false, handler);
  if (!s.client) return s.rc;
  transport::client& c = *s.client;
  std::thread worker([&] {
    for (;;) {
      job j;
      {
        std::unique_lock<std::mutex> g(m);
        cv.wait(g, [&] { return stopping || !jobs.empty(); });
        if (jobs.empty()) return;
        j = std::move(jobs.front());
        jobs.pop_front();
      }
      const std::string answer = r.message ? *r.message : r.command.empty() ? j.payload : run_command(r.command, j.payload);
      const errc e = respond_later(c, j.reply_to, j.correlation_id, j.prio, answer);
      const std::uint64_t n = answered.fetch_add(1) + 1;
      std::fprintf(stderr, "flowbus reply: [#%llu] answered %s%s%s\n", static_cast<unsigned long long>(n),
                   j.source.c_str(), e == errc::ok ? "" : ": ", e == errc::ok ? "" : transport::to_string(e));
    }
  });
  const errc e = c.subscribe(r.topic, handler, r.queue).get();
  int rc = exit_ok;
  if (e != errc::ok) {
    std::fprintf(stderr, "flowbus reply: %s: %s\n", r.topic.c_str(), transport::to_string(e));
    rc = exit_for(e);
  } else {
    std::fprintf(stderr, "flowbus reply: answering requests on %s%s%s at %s\n", r.topic.c_str(),
                 r.queue.empty() ? "" : " in group ", r.queue.c_str(), conn.connect.c_str());
    wait_until_done([&] { return r.count && answered.load() >= r.count; }, 0);
  }
  {
    std::lock_guard<std::mutex> g(m);
    stopping = true;
  }
  cv.notify_one();
  worker.join();
  c.close();
  return rc;
}

/// The node's directory (/agentz) and subscriptions (/subsz) from its monitoring port.
int run_directory(const directory_options& d, bool topics) {
  std::string host;
  std::uint16_t port = 0;
  split_host_port(d.monitor, host, port, 8222);
  json agents, subs;
  try {
    agents = fetch(host, port, "/agentz");
    if (topics) subs = fetch(host, port, "/subsz?subs=1&limit=100000");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowbus %s: the monitoring port %s: %s (start the node with --monitor-port)\n",
                 topics ? "topics" : "agents", d.monitor.c_str(), e.what());
    return exit_not_connected;
  }
  if (!topics) {
    if (d.json) return std::printf("%s\n", agents.dump(2).c_str()), exit_ok;
    std::printf("%-28s %-14s %-10s %-10s %-9s %-22s %s\n", "AGENT", "TYPE", "HANDLED", "IN_FLIGHT", "BREAKER",
                "CAPABILITIES", "SUBSCRIPTIONS");
    for (const json& a : agents["agents"]) {
      std::string caps, interest;
      for (const json& c : a["capabilities"])
        caps += (caps.empty() ? "" : ",") + c.get<std::string>();
      for (const json& p : a["subscriptions"])
        interest += (interest.empty() ? "" : ", ") + p.get<std::string>();
      std::printf("%-28s %-14s %-10llu %-10llu %-9s %-22s %s\n", a["id"].get<std::string>().c_str(),
                  a["type"].get<std::string>().c_str(), a["handled"].get<unsigned long long>(),
                  a["in_flight"].get<unsigned long long>(), a["breaker"].get<std::string>().c_str(),
                  caps.empty() ? "-" : caps.c_str(), interest.empty() ? "-" : interest.c_str());
    }
    std::printf("%zu agents\n", agents["agents"].size());
    return exit_ok;
  }
  // every pattern of the routing table, with the local agents holding it (and their groups)
  std::map<std::string, std::vector<std::string>> who;
  for (const json& p : subs.value("patterns", json::array()))
    who[p.get<std::string>()];
  for (const json& a : agents["agents"])
    for (const json& p : a["subscriptions"]) {
      const std::string s = p.get<std::string>();
      const std::size_t sp = s.find(' ');
      const std::string id = a["id"].get<std::string>();
      who[s.substr(0, sp)].push_back(sp == std::string::npos ? id : id + " (group " + s.substr(sp + 1) + ")");
    }
  if (d.json) {
    json j = json::object();
    for (const auto& [pattern, ids] : who)
      j[pattern] = ids;
    return std::printf("%s\n", j.dump(2).c_str()), exit_ok;
  }
  std::printf("%-40s %s\n", "PATTERN", "SUBSCRIBERS");
  for (const auto& [pattern, ids] : who) {
    std::string list;
    for (const std::string& id : ids)
      list += (list.empty() ? "" : ", ") + id;
    std::printf("%-40s %s\n", pattern.c_str(), list.empty() ? "(other nodes)" : list.c_str());
  }
  std::printf("%zu patterns, %llu subscriptions, %llu queue groups\n", who.size(),
              subs.value("num_subscriptions", 0ull), subs.value("num_queue_groups", 0ull));
  return exit_ok;
}


std::vector<std::string> priority_names() {
  std::vector<std::string> names;
  for (const auto& [name, p] : priorities)
    names.push_back(name);
  return names;
}

} // namespace

client_commands::client_commands(CLI::App& app) {
  pub_cmd_ = app.add_subcommand("pub", "publish a message (or each line of standard input) to a topic");
  pub_cmd_->add_option("topic", pub_.topic, "the topic")->required();
  pub_cmd_->add_option("message", pub_.message, "the payload (default: each line of standard input is one message)");
  pub_cmd_->add_option("--count,-n", pub_.count, "with a message: publish it this many times")->capture_default_str();
  pub_cmd_->add_option("--rate", pub_.rate, "messages per second, at fixed intervals (default: as fast as the node takes them)");
  pub_cmd_->add_option("--priority,-p", pub_.priority, "critical, high, normal, low, background")
      ->capture_default_str()
      ->check(CLI::IsMember(priority_names()));
  pub_cmd_->add_flag("--acked", pub_.acked, "wait for the node to confirm each message (at least once; exit 4 if not)");
  pub_cmd_->add_option("--header,-H", pub_.headers, "an application header KEY=VALUE (repeatable)");
  add_connection_options(*pub_cmd_, conn_);

  sub_cmd_ = app.add_subcommand("sub", "print the messages of a topic pattern (* one level, > the rest)");
  sub_cmd_->add_option("pattern", sub_.pattern, "the pattern")->required();
  sub_cmd_->add_option("--queue,-q", sub_.queue, "join this queue group (each message to one member)");
  sub_cmd_->add_option("--count,-n", sub_.count, "exit after this many messages (default: until interrupted)");
  sub_cmd_->add_option("--timeout", sub_.timeout_s, "with --count: exit 4 if they did not all arrive in this many seconds");
  auto* raw = sub_cmd_->add_flag("--raw,-r", sub_.raw, "print the payloads only, one per line");
  sub_cmd_->add_flag("--json", sub_.json, "one JSON object per message (payload_base64 if it is not UTF-8)")->excludes(raw);
  sub_cmd_->add_flag("--acks", sub_.acks, "acknowledge each message (the node keeps what is unacknowledged)");
  add_connection_options(*sub_cmd_, conn_);

  req_cmd_ = app.add_subcommand("req", "send a request and print its reply");
  req_cmd_->add_option("target", req_.target, "a topic, agent:ID or capability:NAME")->required();
  req_cmd_->add_option("message", req_.message, "the payload (default: standard input)");
  req_cmd_->add_option("--timeout", req_.timeout_s, "seconds to wait for the reply (exit 4 past it)")->capture_default_str();
  add_connection_options(*req_cmd_, conn_);

  reply_cmd_ = app.add_subcommand("reply", "answer the requests of a topic: with MSG, a command's output, or the request");
  reply_cmd_->add_option("topic", reply_.topic, "the topic (or pattern) to answer")->required();
  auto* msg = reply_cmd_->add_option("message", reply_.message, "the answer (default: the request's own payload)");
  reply_cmd_->add_option("--command,-c", reply_.command, "answer with the output of `sh -c COMMAND`, the request on its standard input")
      ->excludes(msg);
  reply_cmd_->add_option("--queue,-q", reply_.queue, "answer as a member of this queue group");
  reply_cmd_->add_option("--count,-n", reply_.count, "exit after answering this many (default: until interrupted)");
  add_connection_options(*reply_cmd_, conn_);

  agents_cmd_ = app.add_subcommand("agents", "the agents registered on a node (its --monitor-port)");
  topics_cmd_ = app.add_subcommand("topics", "the subscriptions of a node, pattern by pattern (its --monitor-port)");
  for (CLI::App* cmd : {agents_cmd_, topics_cmd_}) {
    cmd->add_option("--monitor", dir_.monitor, "host:port of the node's monitoring port")->capture_default_str();
    cmd->add_flag("--json", dir_.json, "print JSON");
  }
}

std::optional<int> client_commands::run() const {
  for (const CLI::App* cmd : {pub_cmd_, sub_cmd_, req_cmd_, reply_cmd_})
    if (cmd->parsed()) catch_interrupts();
  if (pub_cmd_->parsed()) return run_pub(conn_, pub_);
  if (sub_cmd_->parsed()) return run_sub(conn_, sub_);
  if (req_cmd_->parsed()) return run_req(conn_, req_);
  if (reply_cmd_->parsed()) return run_reply(conn_, reply_);
  if (agents_cmd_->parsed()) return run_directory(dir_, false);
  if (topics_cmd_->parsed()) return run_directory(dir_, true);
  return std::nullopt;
}

} // namespace flowbus::app
