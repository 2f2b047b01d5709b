// The node's bookkeeping of an agent's receive window (transport/src/receive_window.hpp), without
// a socket: what may be written next as data goes out and CREDIT comes back.
#include "transport/src/receive_window.hpp"

#include <doctest/doctest.h>

using flowbus::transport::detail::receive_window;
using lanes = receive_window::lanes;

TEST_SUITE("receive_window") {
  TEST_CASE("no window announced: everything may go, nothing is counted") {
    receive_window w;
    w.open(0);
    CHECK_FALSE(w.enabled());
    for (int i = 0; i < 1000; ++i)
      w.wrote_data();
    CHECK(w.may_send() == lanes::any);
    CHECK_FALSE(w.used_up());
    w.grant(5);
    CHECK(w.credit() == 0);
  }

  TEST_CASE("a window of 4: four data messages, then CRITICAL alone for one more window, then nothing") {
    receive_window w;
    w.open(4);
    for (int i = 0; i < 4; ++i) {
      CHECK(w.may_send() == lanes::any);
      w.wrote_data();
    }
    CHECK(w.used_up());
    for (int i = 0; i < 3; ++i) { // the overdraft: credit 0, -1, -2, -3 > -4
      CHECK(w.may_send() == lanes::critical_only);
      w.wrote_data();
    }
    CHECK(w.may_send() == lanes::critical_only);
    w.wrote_data();
    CHECK(w.credit() == -4);
    CHECK(w.may_send() == lanes::none);
    w.grant(4); // back to 0: still used up, CRITICAL may go
    CHECK(w.may_send() == lanes::critical_only);
    w.grant(2);
    CHECK(w.may_send() == lanes::any);
    CHECK_FALSE(w.used_up());
  }

  TEST_CASE("a grant never opens more than the announced window") {
    receive_window w;
    w.open(8);
    w.wrote_data();
    w.grant(1000000); // inflated or repeated
    CHECK(w.credit() == 8);
    for (int i = 0; i < 8; ++i)
      w.wrote_data();
    w.grant(~std::uint64_t{0});
    CHECK(w.credit() == 8);
  }

  TEST_CASE("an announced window above 2^30 messages is taken as 2^30") {
    receive_window w;
    w.open(std::uint64_t{1} << 40);
    CHECK(w.size() == receive_window::max_window);
    CHECK(w.credit() == receive_window::max_window);
  }
}
