// Public-key agents (auth.hpp): Ed25519 with OpenSSL's EVP one-shot API, keys and signatures in
// base64url, the node's key file in JSON.
#include <flowbus/transport/auth.hpp>

#include "base64url.hpp"
#include <flowbus/transport/structured_file.hpp>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <sys/stat.h>

#include <cstdio>
#include <stdexcept>

namespace flowbus::transport {

struct agent_identity::impl {
  EVP_PKEY* key = nullptr;
  ~impl() { EVP_PKEY_free(key); }
};

namespace {

using detail::base64url;
using detail::unbase64url;
constexpr std::size_t key_bytes = 32, signature_bytes = 64;

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct md_ctx_free {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

bool ed25519_verify(const std::string& key, const std::string& sig, std::string_view msg) {
  std::unique_ptr<EVP_PKEY, pkey_free> pk(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(key.data()), key.size()));
  std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx(EVP_MD_CTX_new());
  if (!pk || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pk.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1;
}

} // namespace

const char* describe_key(auth_errc e) noexcept {
  switch (e) {
    case auth_errc::missing: return "no public_key and signature (the node requires credentials)";
    case auth_errc::malformed: return "a public key or signature that is not base64url of 32 / 64 bytes";
    case auth_errc::unknown_key: return "a public key the node does not know";
    case auth_errc::bad_signature: return "a signature that is not of this connection's nonce by this key";
    case auth_errc::id_not_permitted: return "an agent id the key does not allow";
    case auth_errc::type_not_permitted: return "an agent type the key does not allow";
    default: return describe(e);
  }
}

void agent_keys::add(const std::string& public_key, token_claims allows) {
  std::string raw;
  if (!unbase64url(public_key, raw) || raw.size() != key_bytes)
    throw std::invalid_argument("public key '" + public_key + "' is not 32 bytes of base64url");
  if (allows.id_pattern.empty()) throw std::invalid_argument("public key '" + public_key + "' allows no id");
  if (!keys_.emplace(public_key, std::move(allows)).second)
    throw std::invalid_argument("public key '" + public_key + "' is given twice");
}

auth_errc agent_keys::verify(std::string_view public_key, std::string_view signature, std::string_view nonce,
                             std::string_view id, std::string_view type, token_claims* out) const {
  if (public_key.empty() || signature.empty()) return auth_errc::missing;
  const auto it = keys_.find(public_key);
  if (it == keys_.end()) return auth_errc::unknown_key;
  std::string key, sig;
  if (!unbase64url(public_key, key) || !unbase64url(signature, sig) || sig.size() != signature_bytes)
    return auth_errc::malformed;
  // the nonce this connection was sent, nothing else: a signature of another connection's fails
  if (nonce.empty() || !ed25519_verify(key, sig, nonce)) return auth_errc::bad_signature;
  const token_claims& c = it->second;
  if (!id_matches(c.id_pattern, id)) return auth_errc::id_not_permitted;
  if (!c.agent_type.empty() && c.agent_type != type) return auth_errc::type_not_permitted;
  if (out) *out = c;
  return auth_errc::ok;
}

agent_keys read_agent_keys_file(const std::string& path) {
  using json = nlohmann::json;
  const json j = read_json_or_toml(path, "agent keys file");
  const auto list = j.is_object() ? j.find("agents") : j.end();
  if (!j.is_object() || list == j.end() || !list->is_array())
    throw std::runtime_error("agent keys file " + path + ": not {\"agents\": [...]}");
  agent_keys keys;
  std::size_t i = 0;
  try {
    for (const json& a : *list) {
      if (!a.is_object() || !a.contains("public_key") || !a.contains("id") || !a["public_key"].is_string() ||
          !a["id"].is_string())
        throw std::invalid_argument("needs \"public_key\" and \"id\" strings");
      token_claims c;
      c.id_pattern = a["id"].get<std::string>();
      for (const auto& [name, to] : {std::pair<const char*, std::string*>{"agent_type", &c.agent_type}, {"role", &c.role}})
        if (const auto it = a.find(name); it != a.end()) {
          if (!it->is_string()) throw std::invalid_argument(std::string(name) + " is not a string");
          *to = it->get<std::string>();
        }
      if (const auto it = a.find("permissions"); it != a.end())
        c.perms = std::make_shared<const permissions>(parse_permissions(it->dump()));
      keys.add(a["public_key"].get<std::string>(), std::move(c));
      ++i;
    }
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("agent keys file " + path + ", entry " + std::to_string(i) + ": " + e.what());
  }
  return keys;
}

std::string new_nonce() {
  unsigned char b[32];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  return base64url(std::string_view(reinterpret_cast<const char*>(b), sizeof b));
}

agent_identity agent_identity::generate() {
  auto p = std::make_shared<impl>();
  p->key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!p->key) throw std::runtime_error("cannot generate an Ed25519 key");
  return agent_identity(std::move(p));
}

agent_identity agent_identity::from_pem_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) throw std::runtime_error("cannot read key file " + path);
  auto p = std::make_shared<impl>();
  p->key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!p->key || EVP_PKEY_get_id(p->key) != EVP_PKEY_ED25519)
    throw std::runtime_error("key file " + path + " holds no Ed25519 private key (PEM)");
  return agent_identity(std::move(p));
}

void agent_identity::write_pem_file(const std::string& path) const {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw std::runtime_error("cannot write " + path);
  ::fchmod(fileno(f), 0600);
  const int ok = PEM_write_PrivateKey(f, p_->key, nullptr, nullptr, 0, nullptr, nullptr);
  if (std::fclose(f) != 0 || ok != 1) throw std::runtime_error("cannot write " + path);
}

std::string agent_identity::public_key() const {
  unsigned char raw[key_bytes];
  std::size_t n = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(p_->key, raw, &n) != 1 || n != key_bytes)
    throw std::runtime_error("cannot read the public key");
  return base64url(std::string_view(reinterpret_cast<const char*>(raw), n));
}

std::string agent_identity::sign(std::string_view nonce) const {
  std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx(EVP_MD_CTX_new());
  unsigned char sig[signature_bytes];
  std::size_t n = sizeof sig;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, p_->key) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &n, reinterpret_cast<const unsigned char*>(nonce.data()), nonce.size()) != 1)
    throw std::runtime_error("cannot sign with the Ed25519 key");
  return base64url(std::string_view(reinterpret_cast<const char*>(sig), n));
}

} // namespace flowbus::transport
