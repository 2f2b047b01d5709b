// Browser pages and the node (issue 20): a WebSocket handshake carrying an Origin the node does not
// allow is refused with 403 and its reason, counted, and affects no other connection; programs
// (no Origin) and allowed pages connect as before.
#include "transport/transport_support.hpp"
#include "transport/src/origin_policy.hpp"

#include <boost/beast/http.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace flowbus;
using namespace flowbus::test;

TEST_SUITE("origin") {
  TEST_CASE("origin_allowed: no Origin, a listed one (case, trailing '/'), '*'; nothing else") {
    using transport::detail::origin_allowed;
    const std::vector<std::string> none, listed{"https://app.example:8443", "http://LOCALHOST:3000/"}, any{"*"};
    struct row {
      const char* origin;
      const std::vector<std::string>* allowed;
      bool ok;
    };
    const row rows[] = {
        {"", &none, true},                                   // a program: no Origin header
        {"https://evil.example", &none, false},              // a page, nothing allowed
        {"null", &none, false},                              // a file:// or sandboxed page
        {"https://app.example:8443", &listed, true},         // listed
        {"HTTPS://APP.EXAMPLE:8443/", &listed, true},        // case and a trailing '/'
        {"http://localhost:3000", &listed, true},            // the list's own case and '/'
        {"https://app.example", &listed, false},             // another port
        {"http://app.example:8443", &listed, false},         // another scheme
        {"https://app.example:8443.evil.example", &listed, false}, // a prefix is not a match
        {"https://evil.example/https://app.example:8443", &listed, false},
        {"null", &listed, false},
        {"https://anything.example", &any, true},            // '*'
        {"null", &any, true},
    };
    for (const row& r : rows) {
      CAPTURE(r.origin);
      CHECK(origin_allowed(r.origin, *r.allowed) == r.ok);
    }
  }

  TEST_CASE("a cross-origin handshake gets 403 with its reason; programs and other agents go on") {
    edge e; // no origin allowed: the default
    raw_peer sub(e.port()); // a program (no Origin), connected before and after
    sub.join("sub", {"o.t"});

    const handshake_result page = upgrade_with_origin(e.port(), "https://evil.example");
    CHECK_FALSE(page.upgraded);
    CHECK(page.status == 403);
    CHECK(page.body.find("cross-origin") != std::string::npos);
    CHECK(page.body.find("https://evil.example") != std::string::npos);
    CHECK(page.body.find("--allow-origin") != std::string::npos);
    const handshake_result null_page = upgrade_with_origin(e.port(), "null");
    CHECK(null_page.status == 403);
    CHECK(e.server.stats().origins_refused == 2);

    CHECK(upgrade_with_origin(e.port(), "").upgraded); // a program still connects
    raw_peer pub(e.port());
    pub.join("pub");
    pub.send_publish("o.t", "still served");
    const auto got = sub.next();
    REQUIRE(got);
    CHECK(got->payload == "still served");
    CHECK(e.server.stats().origins_refused == 2);
  }

  TEST_CASE("a listed origin connects and registers; '*' lets any page in") {
    transport::server_options o;
    o.allowed_origins = {"https://app.example:8443"};
    edge e(o);
    CHECK(upgrade_with_origin(e.port(), "https://app.example:8443").upgraded);
    CHECK(upgrade_with_origin(e.port(), "https://App.Example:8443/").upgraded);
    CHECK(upgrade_with_origin(e.port(), "https://other.example").status == 403);
    CHECK(e.server.stats().origins_refused == 1);

    transport::server_options star;
    star.allowed_origins = {"*"};
    edge any(star);
    CHECK(upgrade_with_origin(any.port(), "https://other.example").upgraded);
    CHECK(any.server.stats().origins_refused == 0);
  }
}
