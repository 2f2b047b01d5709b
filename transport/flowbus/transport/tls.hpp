// TLS on the edge (wss://): the node's certificate and, optionally, its clients' — the settings
// server_options and client_options carry, and a development certificate authority for trying it
// out. OpenSSL (Debian's libssl) does the work; TLS 1.2 is the oldest version either side speaks.
// docs/security.md says how to run a node with TLS.
#pragma once

#include <string>
#include <vector>

namespace flowbus::transport {

/// The node's side. Empty cert_file: plain WebSocket (ws://).
struct tls_server_options {
  std::string cert_file; ///< PEM: the node's certificate, then its chain
  std::string key_file;  ///< PEM: its private key
  /// Non-empty: every client must present a certificate signed by one of these CAs (PEM), and
  /// may register only as an id its certificate's common name allows (an id, or a pattern with
  /// `*`, as a token's `sub`); a REGISTER as another id is refused with id_not_permitted.
  std::string client_ca_file;
  bool enabled() const noexcept { return !cert_file.empty(); }
};

/// The client's side.
struct tls_client_options {
  bool enabled = false;
  /// PEM of the CAs to trust; empty: the system's trust store (/etc/ssl/certs).
  std::string ca_file;
  /// The name the node's certificate must carry (DNS name, or IP address); empty: the host
  /// connected to. Sent as SNI when it is a name.
  std::string server_name;
  /// false: no check of the node's certificate at all — for a test bench only; an attacker on
  /// the path then reads and writes everything.
  bool verify = true;
  std::string cert_file, key_file; ///< a client certificate, for a node that asks for one
};

/// Writes a development CA and certificates into `dir` (PEM, EC P-256, valid 30 days):
/// `ca.pem`; `node.pem` and `node.key` for `hosts` (DNS names or IP addresses, in the
/// certificate's subject alternative names, the first one its common name); and for each id in
/// `client_ids`, `<id>.pem` and `<id>.key` (common name = the id, for client certificates). The
/// keys are written readable by their owner only. Throws std::runtime_error on failure.
/// Never for production: whoever holds ca.pem's key (not written; it is gone when this returns)
/// could issue more — but whoever trusts ca.pem trusts these certificates.
void write_dev_certificates(const std::string& dir, const std::vector<std::string>& hosts,
                            const std::vector<std::string>& client_ids = {});

} // namespace flowbus::transport
