// Public-key agents (issue 20, NATS nkeys style): the node sends a fresh nonce in CHALLENGE, the
// agent signs it with its Ed25519 key in REGISTER. Every way the answer can be wrong — no
// credentials, an unknown key, another key's signature, a replayed signature of another
// connection's nonce, a tampered one, an id the key does not allow — gets its typed ERROR and
// closes only its own connection. The C++ client answers CHALLENGE itself (client_options::key_file).
#include "transport/transport_support.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/transport/auth.hpp>
#include <flowbus/transport/reasons.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

using namespace flowbus;
using namespace flowbus::test;
using transport::agent_identity;
using transport::auth_errc;
using transport::reason;

namespace {

transport::token_claims allows(std::string pattern, std::string role = {}) {
  transport::token_claims c;
  c.id_pattern = std::move(pattern);
  c.role = std::move(role);
  return c;
}

/// REGISTER as `id` with `key`'s public key and `signature` (either may be empty: not sent).
void register_signed(raw_peer& p, const std::string& id, const std::string& key, const std::string& signature) {
  codec::message m;
  m.type = codec::msg_type::register_agent;
  m.set(codec::field::source, id);
  if (!key.empty()) m.set(codec::field::public_key, key);
  if (!signature.empty()) m.set(codec::field::signature, signature);
  p.send(m);
}

/// The CHALLENGE a new connection gets first: its nonce.
std::string challenge_of(raw_peer& p) {
  const auto c = p.next();
  REQUIRE(c);
  REQUIRE(c->type == codec::msg_type::challenge);
  REQUIRE(c->nonce.size() == 43); // base64url of 32 bytes
  return c->nonce;
}

} // namespace

TEST_SUITE("pubkeys") {
  TEST_CASE("agent_keys::verify: the signature of this nonce by a known key, then the id and type") {
    const agent_identity a = agent_identity::generate(), b = agent_identity::generate();
    transport::agent_keys keys;
    transport::token_claims typed = allows("worker-*");
    typed.agent_type = "worker";
    keys.add(a.public_key(), typed);
    const std::string nonce = transport::new_nonce(), other = transport::new_nonce();
    CHECK(nonce != other);
    std::string tampered = a.sign(nonce);
    tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
    struct row {
      const char* what;
      std::string key, sig, id, type;
      auth_errc want;
    } rows[] = {
        {"good", a.public_key(), a.sign(nonce), "worker-1", "worker", auth_errc::ok},
        {"no signature", a.public_key(), "", "worker-1", "worker", auth_errc::missing},
        {"unknown key", b.public_key(), b.sign(nonce), "worker-1", "worker", auth_errc::unknown_key},
        {"another key's signature", a.public_key(), b.sign(nonce), "worker-1", "worker", auth_errc::bad_signature},
        {"replayed: another nonce's signature", a.public_key(), a.sign(other), "worker-1", "worker",
         auth_errc::bad_signature},
        {"tampered signature", a.public_key(), tampered, "worker-1", "worker", auth_errc::bad_signature},
        {"truncated signature", a.public_key(), a.sign(nonce).substr(0, 40), "worker-1", "worker", auth_errc::malformed},
        {"another id", a.public_key(), a.sign(nonce), "coordinator", "worker", auth_errc::id_not_permitted},
        {"another type", a.public_key(), a.sign(nonce), "worker-1", "spy", auth_errc::type_not_permitted},
    };
    for (const row& r : rows) {
      CAPTURE(r.what);
      transport::token_claims got;
      CHECK(keys.verify(r.key, r.sig, nonce, r.id, r.type, &got) == r.want);
      if (r.want == auth_errc::ok) CHECK(got.id_pattern == "worker-*");
    }
    CHECK_THROWS_AS(keys.add(a.public_key(), allows("x")), std::invalid_argument); // twice
    CHECK_THROWS_AS(keys.add("not-a-key", allows("x")), std::invalid_argument);
    CHECK_THROWS_AS(keys.add(b.public_key(), allows("")), std::invalid_argument);
  }

  TEST_CASE("the golden vector of protocol.md §12 (public-key agents)") {
    // seed 00 01 .. 1f; the nonce is base64url of bytes 0x20 .. 0x3f, signed as its 43 ASCII bytes
    transport::agent_keys keys;
    keys.add("A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg", allows("worker-*"));
    const std::string nonce = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
    const std::string sig = "fZtkK55Xv4epzYv9K_2-682_pyMQF1p5sIV7H0S2cY3SEYvEfz7-bdYvOlK0RROlxwEXnHOdw3GJlmOMZ2IpBw";
    CHECK(keys.verify("A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg", sig, nonce, "worker-3", "", nullptr) == auth_errc::ok);
    CHECK(keys.verify("A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg", sig, nonce.substr(1) + "A", "worker-3", "", nullptr) ==
          auth_errc::bad_signature);
  }

  TEST_CASE("the agent keys file, in JSON or TOML") {
    const agent_identity a = agent_identity::generate();
    char dir[] = "/tmp/flowbus-agents-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    const std::string json_file = std::string(dir) + "/agents.json", toml_file = std::string(dir) + "/agents.toml";
    std::ofstream(json_file) << R"({"agents": [{"public_key": ")" << a.public_key()
                             << R"(", "id": "worker-*", "agent_type": "worker", "role": "worker"}]})";
    std::ofstream(toml_file) << "[[agents]]\npublic_key = \"" << a.public_key()
                             << "\"\nid = \"worker-*\"\nagent_type = \"worker\"\nrole = \"worker\"\n";
    const std::string nonce = transport::new_nonce();
    for (const std::string& f : {json_file, toml_file}) {
      CAPTURE(f);
      const transport::agent_keys k = transport::read_agent_keys_file(f);
      transport::token_claims got;
      CHECK(k.verify(a.public_key(), a.sign(nonce), nonce, "worker-1", "worker", &got) == auth_errc::ok);
      CHECK(got.role == "worker");
      CHECK(k.verify(a.public_key(), a.sign(nonce), nonce, "worker-1", "other", &got) == auth_errc::type_not_permitted);
    }
    std::ofstream(toml_file) << "[[agents]]\nid = \"x\"\n"; // no key
    CHECK_THROWS_AS(transport::read_agent_keys_file(toml_file), std::runtime_error);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("through a node: every wrong answer to CHALLENGE is typed and closes that connection only") {
    const agent_identity a = agent_identity::generate(), b = agent_identity::generate();
    auto keys = std::make_shared<transport::agent_keys>();
    keys->add(a.public_key(), allows("worker-*"));
    keys->add(b.public_key(), allows("coordinator"));
    transport::server_options o;
    o.public_keys = keys;
    edge e(o);

    raw_peer boss(e.port()); // the coordinator, registered first
    register_signed(boss, "coordinator", b.public_key(), b.sign(challenge_of(boss)));
    auto w = boss.next();
    REQUIRE(w);
    REQUIRE(w->type == codec::msg_type::welcome);
    codec::message sub;
    sub.type = codec::msg_type::subscribe;
    sub.set_topic("tasks.>");
    boss.send(sub);

    std::string replayed; // a worker's good signature, of its own connection's nonce
    {
      raw_peer first(e.port());
      const std::string n = challenge_of(first);
      replayed = a.sign(n);
      register_signed(first, "worker-1", a.public_key(), replayed);
      w = first.next();
      REQUIRE(w);
      CHECK(w->type == codec::msg_type::welcome);
    }
    const agent_identity stranger = agent_identity::generate();
    struct row {
      const char* what;
      std::string id;
      std::function<std::pair<std::string, std::string>(const std::string& nonce)> answer; // key, signature
      reason want;
    };
    const row rows[] = {
        {"no credentials", "worker-2", [&](const std::string&) { return std::pair<std::string, std::string>{}; },
         reason::auth_required},
        {"an unknown key", "worker-2", [&](const std::string& n) { return std::pair{stranger.public_key(), stranger.sign(n)}; },
         reason::auth_failed},
        {"another key's signature", "worker-2", [&](const std::string& n) { return std::pair{a.public_key(), b.sign(n)}; },
         reason::auth_failed},
        {"a replayed signature", "worker-1", [&](const std::string&) { return std::pair{a.public_key(), replayed}; },
         reason::auth_failed},
        {"takeover of the coordinator's id", "coordinator",
         [&](const std::string& n) { return std::pair{a.public_key(), a.sign(n)}; }, reason::id_not_permitted},
    };
    for (const row& r : rows) {
      CAPTURE(r.what);
      raw_peer p(e.port());
      const auto [key, sig] = r.answer(challenge_of(p));
      register_signed(p, r.id, key, sig);
      std::uint64_t code = 0;
      std::string why;
      for (const got_frame& f : p.until_closed(3s))
        if (f.type == codec::msg_type::error && !code) {
          code = f.error_code;
          why = f.reason;
        }
      CHECK(p.closed());
      CHECK(code == transport::code_of(r.want));
      CHECK(why.find("refused") != std::string::npos);
    }
    CHECK(e.server.stats().auth_refused == std::size(rows));

    // the coordinator kept its id and its traffic: a C++ client with a key file reaches it
    char dir[] = "/tmp/flowbus-keys-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    const std::string file = std::string(dir) + "/worker.key";
    a.write_pem_file(file);
    CHECK(agent_identity::from_pem_file(file).public_key() == a.public_key());
    CHECK((std::filesystem::status(file).permissions() & std::filesystem::perms::others_read) ==
          std::filesystem::perms::none);
    transport::client_options co = client_opts(e.port(), "worker-9");
    co.key_file = file;
    transport::client worker(co);
    REQUIRE(worker.connect() == actors::errc::ok);
    REQUIRE(worker.publish("tasks.new", "signed in") == actors::errc::ok);
    auto got = boss.next();
    while (got && got->type != codec::msg_type::publish) // (its SUBSCRIBE's ACK first)
      got = boss.next();
    REQUIRE(got);
    CHECK(got->payload == "signed in");
    CHECK(got->source == "worker-9");
    // a client whose key the node does not know: connect() says so and it does not retry
    const std::string other = std::string(dir) + "/other.key";
    stranger.write_pem_file(other);
    co = client_opts(e.port(), "worker-10");
    co.key_file = other;
    transport::client refused(co);
    CHECK(refused.connect() == actors::errc::unauthenticated);
    // a node without agent keys sends no CHALLENGE (its 101 says so): a client with a key registers at once
    {
      edge open;
      co = client_opts(open.port(), "worker-11");
      co.key_file = file;
      transport::client plain(co);
      CHECK(plain.connect(3s) == actors::errc::ok);
    }
    // a key file that is not a key
    co.key_file = std::string(dir) + "/missing.key";
    CHECK_THROWS_AS(transport::client{co}, std::runtime_error);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("keys and tokens together: each agent by what it presents; a key's role is its permissions") {
    const agent_identity a = agent_identity::generate();
    auto keys = std::make_shared<transport::agent_keys>();
    keys->add(a.public_key(), allows("reader-*", "reader"));
    auto tokens = std::make_shared<transport::token_keys>();
    tokens->add("k1", std::string(32, 'k'));
    auto roles = std::make_shared<transport::role_table>();
    roles->roles["reader"] = transport::parse_permissions(R"({"publish": {"deny": [">"]}})");
    transport::server_options o;
    o.public_keys = keys;
    o.auth = tokens;
    o.roles = roles;
    edge e(o);
    transport::token_claims c = allows("tok-*");
    c.expires = static_cast<std::int64_t>(codec::wall_clock_ns() / 1000000000u) + 3600;
    c.key_id = "k1";
    transport::client_options co = client_opts(e.port(), "tok-1");
    co.token = tokens->issue(c);
    transport::client by_token(co);
    CHECK(by_token.connect() == actors::errc::ok); // (it ignores the CHALLENGE)

    raw_peer reader(e.port());
    register_signed(reader, "reader-1", a.public_key(), a.sign(challenge_of(reader)));
    auto w = reader.next();
    REQUIRE(w);
    REQUIRE(w->type == codec::msg_type::welcome);
    reader.send_publish("news.x", "not mine to say");
    const auto err = reader.next();
    REQUIRE(err);
    CHECK(err->error_code == transport::code_of(actors::errc::not_permitted));
    CHECK_FALSE(reader.closed());
  }
}
