// TLS on the edge (issue 20): wss:// with the node's certificate, checked by the client against
// the name it connects to; client certificates that name the agent ids. Every way a TLS
// connection is wrong fails that connection only, counted, while TLS agents keep talking.
// Certificates: a development CA written per test run (transport::write_dev_certificates).
#include "transport/transport_support.hpp"

#include <flowbus/transport/tls.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

using namespace flowbus;
using namespace flowbus::test;
using actors::errc;

namespace {

/// A development CA in a fresh directory: node.pem for 127.0.0.1 and localhost, and client
/// certificates for `worker-*` and `coordinator`. Removed with the object.
struct dev_ca {
  std::string dir;
  dev_ca() {
    char d[] = "/tmp/flowbus-tls-XXXXXX";
    REQUIRE(mkdtemp(d) != nullptr);
    dir = d;
    transport::write_dev_certificates(dir, {"127.0.0.1", "localhost"}, {"worker-*", "coordinator"});
  }
  ~dev_ca() { std::filesystem::remove_all(dir); }
  std::string file(const std::string& name) const { return dir + "/" + name; }
  transport::server_options server(bool client_certs = false) const {
    transport::server_options o;
    o.tls.cert_file = file("node.pem");
    o.tls.key_file = file("node.key");
    if (client_certs) o.tls.client_ca_file = file("ca.pem");
    return o;
  }
  transport::client_options client(std::uint16_t port, std::string id, std::string cert = {}) const {
    transport::client_options o = client_opts(port, std::move(id));
    o.reconnect = false;
    o.tls.enabled = true;
    o.tls.ca_file = file("ca.pem");
    if (!cert.empty()) {
      o.tls.cert_file = file(cert + ".pem");
      o.tls.key_file = file(cert + ".key");
    }
    return o;
  }
};

/// `sub` receives what `pub` publishes on tls.test (both connected); unsubscribed again.
void carries(transport::client& pub, transport::client& sub, int n = 200) {
  inbox in;
  REQUIRE(sub.subscribe("tls.test", in.handler()).get() == errc::ok);
  struct unsubscribe { // (before `in` goes: its handler must not outlive it)
    transport::client& c;
    ~unsubscribe() { c.unsubscribe("tls.test").wait(); }
  } later{sub};
  for (int i = 0; i < n; ++i)
    REQUIRE(pub.publish("tls.test", "m" + std::to_string(i)) == errc::ok);
  REQUIRE(eventually([&] { return in.size() == static_cast<std::size_t>(n); }));
  const auto got = in.all();
  for (int i = 0; i < n; ++i)
    CHECK(got[static_cast<std::size_t>(i)] == "m" + std::to_string(i)); // in order, intact
}

/// A TLS node and two TLS agents on it, tls-a and tls-b, connected; tls-b answers requests "pong".
struct tls_pair {
  edge e;
  transport::client a, b;
  explicit tls_pair(const dev_ca& ca) : e(ca.server()), a(ca.client(e.port(), "tls-a")), b(ca.client(e.port(), "tls-b")) {
    b.on_message([this](const transport::incoming& in) { (void)b.respond(in, "pong"); });
    REQUIRE(a.connect() == errc::ok);
    REQUIRE(b.connect() == errc::ok);
  }
};

} // namespace

TEST_SUITE("tls") {
  TEST_CASE("wss://: TLS clients that trust the node's CA exchange messages, in order, both ways") {
    const dev_ca ca;
    tls_pair t(ca);
    carries(t.a, t.b, 500);
    // a request across TLS and back
    const auto r = t.a.request(actors::destination::agent("tls-b"), "ping", 3s).get();
    CHECK(r.code == errc::ok);
    CHECK(r.payload == "pong");
    CHECK(t.e.server.stats().tls_failed == 0);
  }

  TEST_CASE("every wrong TLS connection fails alone, counted; the TLS agents keep talking") {
    const dev_ca ca;
    tls_pair t(ca);
    edge& e = t.e;

    SUBCASE("a plain WebSocket client") {
      transport::client plain(client_opts(e.port(), "plain"));
      CHECK(plain.connect(1s) != errc::ok);
    }
    SUBCASE("a client that checks for another name than the certificate's") {
      transport::client_options o = ca.client(e.port(), "wrong-name");
      o.tls.server_name = "flowbus.example.com";
      transport::client c(o);
      CHECK(c.connect(1s) != errc::ok);
    }
    SUBCASE("a client that trusts another CA") {
      const dev_ca other;
      transport::client_options o = ca.client(e.port(), "other-ca");
      o.tls.ca_file = other.file("ca.pem");
      transport::client c(o);
      CHECK(c.connect(1s) != errc::ok);
    }
    SUBCASE("a raw peer that sends a plain WebSocket upgrade: no 101, the connection ends") {
      CHECK_THROWS(raw_peer(e.port()));
    }
    REQUIRE(eventually([&] { return e.server.stats().tls_failed >= 1; }));
    carries(t.a, t.b);
  }

  TEST_CASE("not checking the certificate is possible (a test bench), and is the client's choice") {
    const dev_ca ca;
    edge e(ca.server());
    transport::client_options o = ca.client(e.port(), "unchecked");
    o.tls.ca_file = dev_ca().file("ca.pem"); // (removed already: a file that cannot be read)
    CHECK_THROWS_AS(transport::client{o}, std::runtime_error);
    o.tls.ca_file = ca.file("ca.pem");
    o.tls.server_name = "flowbus.example.com"; // not the certificate's name
    o.tls.verify = false;
    transport::client c(o);
    CHECK(c.connect() == errc::ok);
  }

  TEST_CASE("a TLS client to a plain node fails to connect; the node's plain agents keep talking") {
    const dev_ca ca;
    edge e;
    transport::client a(client_opts(e.port(), "plain-a")), b(client_opts(e.port(), "plain-b"));
    REQUIRE(a.connect() == errc::ok);
    REQUIRE(b.connect() == errc::ok);
    transport::client t(ca.client(e.port(), "tls"));
    CHECK(t.connect(1s) != errc::ok);
    carries(a, b);
  }

  TEST_CASE("client certificates: required, and their common name is the ids a client may register as") {
    const dev_ca ca;
    edge e(ca.server(true));
    transport::client coord(ca.client(e.port(), "coordinator", "coordinator"));
    REQUIRE(coord.connect() == errc::ok);
    transport::client w1(ca.client(e.port(), "worker-1", "worker-*"));
    REQUIRE(w1.connect() == errc::ok);
    carries(w1, coord);

    // no certificate: the handshake fails
    transport::client none(ca.client(e.port(), "worker-2"));
    CHECK(none.connect(1s) != errc::ok);
    REQUIRE(eventually([&] { return e.server.stats().tls_failed == 1; }));
    // a certificate from another CA: the handshake fails
    const dev_ca other;
    transport::client_options o = ca.client(e.port(), "worker-3");
    o.tls.cert_file = other.file("worker-*.pem");
    o.tls.key_file = other.file("worker-*.key");
    transport::client foreign(o);
    CHECK(foreign.connect(1s) != errc::ok);
    REQUIRE(eventually([&] { return e.server.stats().tls_failed == 2; }));
    // a worker's certificate does not let it take the coordinator's id: refused, typed
    transport::client takeover(ca.client(e.port(), "coordinator", "worker-*"));
    CHECK(takeover.connect() == errc::unauthenticated);
    CHECK(e.server.stats().auth_refused == 1);
    // the coordinator kept its id and its traffic
    carries(w1, coord);
  }

  TEST_CASE("write_dev_certificates: refuses no host, and an unwritable directory") {
    CHECK_THROWS_AS(transport::write_dev_certificates("/tmp", {}), std::runtime_error);
    CHECK_THROWS_AS(transport::write_dev_certificates("/nonexistent/dir", {"127.0.0.1"}), std::runtime_error);
  }
}
