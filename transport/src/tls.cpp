// TLS for the edge: the OpenSSL contexts (tls_context.hpp) and the development CA (tls.hpp).
#include "tls_context.hpp"

#include <boost/asio/ip/address.hpp>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

namespace flowbus::transport {
namespace {

namespace ssl = boost::asio::ssl;

/// OpenSSL's reason for the last failure (and the queue emptied).
std::string openssl_reason() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + openssl_reason()); }

template <class F> void check(int ok, F&& what) {
  if (ok != 1) fail(what());
}

void no_old_protocols(ssl::context& ctx) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
}

void use_pair(ssl::context& ctx, const std::string& cert, const std::string& key) {
  SSL_CTX* c = ctx.native_handle();
  check(SSL_CTX_use_certificate_chain_file(c, cert.c_str()), [&] { return "TLS certificate '" + cert + "'"; });
  check(SSL_CTX_use_PrivateKey_file(c, key.c_str(), SSL_FILETYPE_PEM), [&] { return "TLS key '" + key + "'"; });
  check(SSL_CTX_check_private_key(c), [&] { return "TLS key '" + key + "' does not match '" + cert + "'"; });
}

bool is_ip(const std::string& s) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(s, ec);
  return !ec;
}

// --- the development CA ---------------------------------------------------------------------

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

pkey_ptr new_key() {
  pkey_ptr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!k) fail("generating an EC P-256 key");
  return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) fail("certificate extension " + value);
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(ok, [&] { return "adding extension " + value; });
}

using extensions = std::vector<std::pair<int, std::string>>;

/// A certificate for `cn` with `key` and `extra` extensions, signed by `issuer` / `issuer_key`
/// (itself when null: a CA).
x509_ptr make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, long serial,
                   const extensions& extra = {}) {
  x509_ptr cert(X509_new());
  if (!cert) fail("X509_new");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600);
  check(X509_set_pubkey(cert.get(), key), [] { return std::string("X509_set_pubkey"); });
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("flowbus development"),
                             -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  check(X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name),
        [] { return std::string("X509_set_issuer_name"); });
  X509* iss = issuer ? issuer : cert.get();
  add_ext(cert.get(), iss, NID_subject_key_identifier, "hash");
  if (!issuer) {
    add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(cert.get(), iss, NID_authority_key_identifier, "keyid:always");
    add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), iss, NID_key_usage, "critical,digitalSignature");
  }
  for (const auto& [nid, value] : extra)
    add_ext(cert.get(), iss, nid, value);
  if (X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) <= 0) fail("signing the certificate for " + cn);
  return cert;
}

template <class Write> void write_pem(const std::string& path, bool secret, Write&& write) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw std::runtime_error("cannot write '" + path + "'");
  if (secret) ::fchmod(fileno(f), 0600);
  const int ok = write(f);
  if (std::fclose(f) != 0 || ok != 1) fail("writing '" + path + "'");
}

void write_pair(const std::string& dir, const std::string& stem, X509* cert, EVP_PKEY* key) {
  write_pem(dir + "/" + stem + ".pem", false, [&](FILE* f) { return PEM_write_X509(f, cert); });
  write_pem(dir + "/" + stem + ".key", true,
            [&](FILE* f) { return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr); });
}

} // namespace

void write_dev_certificates(const std::string& dir, const std::vector<std::string>& hosts,
                            const std::vector<std::string>& client_ids) {
  if (hosts.empty()) throw std::runtime_error("a node certificate needs at least one host name or address");
  const pkey_ptr ca_key = new_key();
  const x509_ptr ca = make_cert("flowbus development CA", ca_key.get(), nullptr, nullptr, 1);
  write_pem(dir + "/ca.pem", false, [&](FILE* f) { return PEM_write_X509(f, ca.get()); });
  long serial = 2;
  {
    const pkey_ptr key = new_key();
    std::string san;
    for (const auto& h : hosts)
      san += (san.empty() ? "" : ",") + std::string(is_ip(h) ? "IP:" : "DNS:") + h;
    const x509_ptr cert = make_cert(hosts.front(), key.get(), ca.get(), ca_key.get(), serial++,
                                    {{NID_subject_alt_name, san}, {NID_ext_key_usage, "serverAuth"}});
    write_pair(dir, "node", cert.get(), key.get());
  }
  for (const auto& id : client_ids) {
    const pkey_ptr key = new_key();
    const x509_ptr cert =
        make_cert(id, key.get(), ca.get(), ca_key.get(), serial++, {{NID_ext_key_usage, "clientAuth"}});
    write_pair(dir, id, cert.get(), key.get());
  }
}

namespace detail {

std::unique_ptr<ssl::context> make_server_tls(const tls_server_options& o) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  no_old_protocols(*ctx);
  use_pair(*ctx, o.cert_file, o.key_file);
  if (!o.client_ca_file.empty()) {
    check(SSL_CTX_load_verify_locations(ctx->native_handle(), o.client_ca_file.c_str(), nullptr),
          [&] { return "TLS client CA file '" + o.client_ca_file + "'"; });
    SSL_CTX_set_verify(ctx->native_handle(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

std::unique_ptr<ssl::context> make_client_tls(const tls_client_options& o) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  no_old_protocols(*ctx);
  if (!o.ca_file.empty())
    check(SSL_CTX_load_verify_locations(ctx->native_handle(), o.ca_file.c_str(), nullptr),
          [&] { return "TLS CA file '" + o.ca_file + "'"; });
  else
    check(SSL_CTX_set_default_verify_paths(ctx->native_handle()), [] { return std::string("the system's CAs"); });
  if (!o.cert_file.empty()) use_pair(*ctx, o.cert_file, o.key_file);
  return ctx;
}

void prepare_client_tls(SSL* s, const std::string& name, bool verify) {
  SSL_set_verify(s, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (is_ip(name)) {
    if (verify) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name.c_str());
    return;
  }
  SSL_ctrl(s, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str()));
  if (verify) SSL_set1_host(s, name.c_str());
}

std::string peer_common_name(SSL* s) {
  X509* cert = SSL_get1_peer_certificate(s);
  if (!cert) return {};
  std::string out;
  X509_NAME* name = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i >= 0) {
    const ASN1_STRING* d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(d)), static_cast<std::size_t>(ASN1_STRING_length(d)));
  }
  X509_free(cert);
  return out;
}

} // namespace detail
} // namespace flowbus::transport
