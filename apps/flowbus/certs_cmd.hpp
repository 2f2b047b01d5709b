// `flowbus certs`: a development CA and certificates for trying TLS; `flowbus key`: an agent's
// Ed25519 key (docs/security.md).
#pragma once

#include <string>
#include <vector>

namespace flowbus::app {

struct certs_options {
  std::string dir = ".";
  std::vector<std::string> hosts{"127.0.0.1", "localhost"}; ///< the node certificate's names
  std::vector<std::string> clients;                           ///< client certificates, by agent id (pattern)
};

/// Writes them and says which files are which; 0, or 2 with the reason on stderr.
int run_certs(const certs_options& o);

/// `flowbus key gen --out F`: a new Ed25519 key for a public-key agent; `flowbus key pub --out F`:
/// the public key of one.
struct key_options {
  std::string action = "gen";
  std::string file;
};
/// Prints the public key (base64url) on stdout; 0, or 2 with the reason on stderr.
int run_key(const key_options& o);

} // namespace flowbus::app
