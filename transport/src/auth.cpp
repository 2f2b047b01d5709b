#include <flowbus/transport/auth.hpp>

#include "base64url.hpp"

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace flowbus::transport {
namespace {

using detail::base64url;
using detail::unbase64url;
using json = nlohmann::json;
constexpr std::size_t mac_bytes = 32;

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), mac, &len) ||
      len != mac_bytes)
    throw std::runtime_error("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(mac), len);
}

/// A JSON object, or a discarded value for anything else.
json parse_object(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  return j.is_object() ? j : json(json::value_t::discarded);
}

/// Reads an optional claim: absent, or of the right type (else false: malformed).
template <class T> bool claim(const json& j, const char* name, T& out) {
  const auto it = j.find(name);
  if (it == j.end()) return true;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return false;
  } else {
    if (!it->is_number_integer()) return false;
  }
  out = it->get<T>();
  return true;
}

} // namespace

const char* describe(auth_errc e) noexcept {
  switch (e) {
    case auth_errc::ok: return "ok";
    case auth_errc::missing: return "no token (the node requires one)";
    case auth_errc::malformed: return "a malformed token";
    case auth_errc::unsupported_algorithm: return "a token signed with an algorithm other than HS256";
    case auth_errc::unknown_key: return "a token signed with a key the node does not have";
    case auth_errc::bad_signature: return "a token whose signature does not match";
    case auth_errc::expired: return "an expired token";
    case auth_errc::not_yet_valid: return "a token not valid yet";
    case auth_errc::id_not_permitted: return "an agent id the token does not allow";
    case auth_errc::type_not_permitted: return "an agent type the token does not allow";
    case auth_errc::unknown_role: return "a token naming a role the node does not have";
  }
  return "?";
}

bool id_matches(std::string_view pattern, std::string_view id) noexcept {
  // glob with '*' only: greedy match with backtracking to the last star (linear in practice)
  std::size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < id.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pattern.size() && pattern[p] == id[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

void token_keys::add(std::string kid, std::string secret) {
  if (kid.empty()) throw std::invalid_argument("a signing key needs an id");
  if (secret.size() < min_key_bytes)
    throw std::invalid_argument("signing key '" + kid + "' has " + std::to_string(secret.size()) +
                                " bytes; HS256 needs at least " + std::to_string(min_key_bytes));
  if (!keys_.emplace(kid, std::move(secret)).second)
    throw std::invalid_argument("signing key '" + kid + "' is given twice");
}

auth_errc token_keys::verify(std::string_view token, std::string_view id, std::string_view type, std::int64_t now_s,
                             token_claims* out) const {
  if (token.empty()) return auth_errc::missing;
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return auth_errc::malformed;
  const std::string_view head64 = token.substr(0, dot1), body64 = token.substr(dot1 + 1, dot2 - dot1 - 1),
                         mac64 = token.substr(dot2 + 1);
  std::string head_text, body_text, mac;
  if (!unbase64url(head64, head_text) || !unbase64url(body64, body_text) || !unbase64url(mac64, mac))
    return auth_errc::malformed;
  const json head = parse_object(head_text);
  if (head.is_discarded()) return auth_errc::malformed;
  const auto alg = head.find("alg");
  if (alg == head.end() || !alg->is_string()) return auth_errc::malformed;
  if (alg->get_ref<const std::string&>() != "HS256") return auth_errc::unsupported_algorithm;
  const auto kid = head.find("kid");
  if (kid == head.end() || !kid->is_string()) return auth_errc::unknown_key;
  const auto key = keys_.find(kid->get_ref<const std::string&>());
  if (key == keys_.end()) return auth_errc::unknown_key;
  // the MAC before anything the claims say: nothing unsigned is believed
  const std::string want = hmac_sha256(key->second, token.substr(0, dot2));
  if (mac.size() != want.size() || CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0)
    return auth_errc::bad_signature;
  const json body = parse_object(body_text);
  if (body.is_discarded()) return auth_errc::malformed;
  token_claims c;
  c.key_id = key->first;
  const auto sub = body.find("sub"), exp = body.find("exp");
  if (sub == body.end() || !sub->is_string() || exp == body.end() || !exp->is_number_integer())
    return auth_errc::malformed;
  c.id_pattern = sub->get<std::string>();
  c.expires = exp->get<std::int64_t>();
  if (!claim(body, "nbf", c.not_before) || !claim(body, "iat", c.issued_at) ||
      !claim(body, "agent_type", c.agent_type) || !claim(body, "role", c.role))
    return auth_errc::malformed;
  if (const auto it = body.find("permissions"); it != body.end()) {
    try {
      c.perms = std::make_shared<const permissions>(parse_permissions(it->dump()));
    } catch (const std::invalid_argument&) {
      return auth_errc::malformed;
    }
  }
  if (now_s >= c.expires) return auth_errc::expired;
  if (c.not_before && now_s < c.not_before) return auth_errc::not_yet_valid;
  if (!id_matches(c.id_pattern, id)) return auth_errc::id_not_permitted;
  if (!c.agent_type.empty() && c.agent_type != type) return auth_errc::type_not_permitted;
  if (out) *out = std::move(c);
  return auth_errc::ok;
}

std::string token_keys::issue(const token_claims& c) const {
  const auto key = keys_.find(c.key_id);
  if (key == keys_.end()) throw std::invalid_argument("no signing key '" + c.key_id + "'");
  json head = {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", c.key_id}};
  json body = {{"sub", c.id_pattern}, {"exp", c.expires}};
  if (c.not_before) body["nbf"] = c.not_before;
  if (c.issued_at) body["iat"] = c.issued_at;
  if (!c.agent_type.empty()) body["agent_type"] = c.agent_type;
  if (!c.role.empty()) body["role"] = c.role;
  if (c.perms) {
    json p = json::object();
    auto list = [](const permission_list& l) {
      json o = json::object();
      if (!l.allow.empty()) o["allow"] = l.allow;
      if (!l.deny.empty()) o["deny"] = l.deny;
      return o;
    };
    p["publish"] = list(c.perms->publish);
    p["subscribe"] = list(c.perms->subscribe);
    if (!c.perms->unicast.allow.empty() || !c.perms->unicast.deny.empty()) p["unicast"] = list(c.perms->unicast);
    if (!c.perms->broadcast) p["broadcast"] = false;
    if (const auto& r = c.perms->allow_responses; r.max)
      p["allow_responses"] = json{{"max", r.max}, {"expires_ms", r.expires.count()}};
    body["permissions"] = p;
  }
  const std::string signed_part = base64url(head.dump()) + "." + base64url(body.dump());
  return signed_part + "." + base64url(hmac_sha256(key->second, signed_part));
}

std::string read_key_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read key file " + path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (s.rfind("hex:", 0) != 0) return s;
  std::string hex;
  for (std::size_t i = 4; i < s.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(s[i]))) hex.push_back(s[i]);
  if (hex.size() % 2) throw std::runtime_error("key file " + path + ": an odd number of hex digits");
  std::string key;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    auto digit = [&](char h) {
      if (!std::isxdigit(static_cast<unsigned char>(h))) throw std::runtime_error("key file " + path + ": not hex");
      return std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : std::tolower(static_cast<unsigned char>(h)) - 'a' + 10;
    };
    key.push_back(static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1])));
  }
  return key;
}

} // namespace flowbus::transport
