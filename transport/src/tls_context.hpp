// OpenSSL contexts for the edge (private to transport/): made once per server or client from
// its tls options (tls.hpp), shared by all its connections.
#pragma once

#include <flowbus/transport/tls.hpp>

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace flowbus::transport::detail {

/// TLS 1.2+, the node's certificate and key, and with client_ca_file a client certificate
/// required. Throws std::runtime_error naming the file and OpenSSL's reason.
std::unique_ptr<boost::asio::ssl::context> make_server_tls(const tls_server_options& o);
/// TLS 1.2+, the trusted CAs, and the client's certificate if given. Throws std::runtime_error.
std::unique_ptr<boost::asio::ssl::context> make_client_tls(const tls_client_options& o);
/// Sets up `ssl` (a client connection's, before its handshake) to send SNI for `name` (unless it
/// is an IP address) and, with verify, to accept only a certificate for `name`.
void prepare_client_tls(SSL* ssl, const std::string& name, bool verify);
/// The common name of the peer's certificate (verified by the handshake); empty without one.
std::string peer_common_name(SSL* ssl);

} // namespace flowbus::transport::detail
