#include "certs_cmd.hpp"

#include <flowbus/transport/auth.hpp>
#include <flowbus/transport/tls.hpp>

#include <cstdio>
#include <exception>

namespace flowbus::app {

int run_certs(const certs_options& o) {
  try {
    transport::write_dev_certificates(o.dir, o.hosts, o.clients);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowbus certs: %s\n", e.what());
    return 2;
  }
  std::printf("flowbus certs: wrote a development CA and certificates (valid 30 days) into %s:\n"
              "  ca.pem                the CA: clients trust it (--tls-ca), a node checks client certificates with it\n"
              "  node.pem, node.key    the node's (flowbus node --tls-cert node.pem --tls-key node.key)\n",
              o.dir.c_str());
  for (const auto& c : o.clients)
    std::printf("  %s.pem, %s.key  a client certificate for agent id '%s'\n", c.c_str(), c.c_str(), c.c_str());
  std::printf("For development only: the CA's key is not kept, but anyone who trusts ca.pem trusts these.\n");
  return 0;
}

int run_key(const key_options& o) {
  try {
    const transport::agent_identity id =
        o.action == "gen" ? transport::agent_identity::generate() : transport::agent_identity::from_pem_file(o.file);
    if (o.action == "gen") id.write_pem_file(o.file);
    std::printf("%s\n", id.public_key().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowbus key: %s\n", e.what());
    return 2;
  }
  return 0;
}

} // namespace flowbus::app
