// Client-certificate verification inside the TLS handshake, for the HBONE server.
//
// Node installs a verify callback that accepts every chain and only afterwards, in JS, closes
// the socket of a client whose chain failed: the client never learns why (no alert). Here the
// chain is verified where OpenSSL expects it, so a failure aborts the handshake with the alert
// the X.509 error maps to (certificate_expired, unknown_ca, bad_certificate, ...), as ztunnel
// (rustls) does. The SSL_CTX comes from a SecureContext's `_external` (Node's hook for addons);
// the OpenSSL symbols are the ones the running node exports, so versions cannot mismatch.
#include <napi.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <v8.h>

#include <strings.h>

#include <cstring>
#include <memory>
#include <string>

#include "args.h"
#include "errors.h"

namespace weft {
namespace {

// Node's names for X.509 verify errors (the X509_V_ERR_ suffix), for the log line.
const char* VerifyErrorName(int err) {
  switch (err) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: return "UNABLE_TO_GET_ISSUER_CERT";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: return "UNABLE_TO_GET_ISSUER_CERT_LOCALLY";
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return "UNABLE_TO_VERIFY_LEAF_SIGNATURE";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "CERT_SIGNATURE_FAILURE";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "CERT_NOT_YET_VALID";
    case X509_V_ERR_CERT_HAS_EXPIRED: return "CERT_HAS_EXPIRED";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return "DEPTH_ZERO_SELF_SIGNED_CERT";
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return "SELF_SIGNED_CERT_IN_CHAIN";
    case X509_V_ERR_CERT_CHAIN_TOO_LONG: return "CERT_CHAIN_TOO_LONG";
    case X509_V_ERR_CERT_REVOKED: return "CERT_REVOKED";
    case X509_V_ERR_INVALID_CA: return "INVALID_CA";
    case X509_V_ERR_INVALID_PURPOSE: return "INVALID_PURPOSE";
    case X509_V_ERR_CERT_UNTRUSTED: return "CERT_UNTRUSTED";
    case X509_V_ERR_CERT_REJECTED: return "CERT_REJECTED";
    default: return "UNSPECIFIED";
  }
}

// The trust domain a context accepts, as SSL_CTX ex_data (freed with the SSL_CTX).
int TrustDomainIndex() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<std::string*>(ptr); });
  return index;
}

// Fails the handshake with "weft-verify=NAME (detail)" on the error queue (same library and
// reason as OpenSSL's own entry, so Node's error code stays ERR_SSL_CERTIFICATE_VERIFY_FAILED);
// the failed handshake leaves no peer certificate to ask about afterwards, so the HBONE
// server's tlsClientError handler reads the reason from there.
int Refuse(X509_STORE_CTX* store, int x509Error, const char* name, const std::string& detail) {
  X509_STORE_CTX_set_error(store, x509Error);
  ERR_raise_data(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED, "weft-verify=%s (%s)", name, detail.c_str());
  return 0;
}

// The leaf's single spiffe:// URI SAN must name our trust domain (ztunnel checks the same).
// Refused as X509_V_ERR_APPLICATION_VERIFICATION: a handshake_failure alert.
int CheckTrustDomain(X509_STORE_CTX* store, const std::string& trustDomain) {
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  std::string spiffe;
  int count = 0;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_URI) continue;
    std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
                    static_cast<size_t>(ASN1_STRING_length(n->d.uniformResourceIdentifier)));
    if (uri.rfind("spiffe://", 0) == 0) {
      spiffe = uri;
      count++;
    }
  }
  GENERAL_NAMES_free(names);
  if (count != 1) return Refuse(store, X509_V_ERR_APPLICATION_VERIFICATION, "IDENTITY", "the client certificate has " + std::to_string(count) + " spiffe:// URI SANs, expected exactly one");
  size_t slash = spiffe.find('/', 9);
  std::string td = spiffe.substr(9, slash == std::string::npos ? std::string::npos : slash - 9);
  if (strcasecmp(td.c_str(), trustDomain.c_str()) != 0 || td.size() != trustDomain.size()) return Refuse(store, X509_V_ERR_APPLICATION_VERIFICATION, "TRUST_DOMAIN", spiffe + " is in trust domain '" + td + "', not ours ('" + trustDomain + "')");
  return 1;
}

// Runs the usual chain verification. Node's per-connection verify_cb accepts every error, so
// X509_verify_cert "succeeds"; the recorded error tells whether it really did. Returning 0
// makes OpenSSL send the alert for that error (certificate_expired, unknown_ca, ...) and fail
// the handshake. Then the trust domain, when the context has one.
int VerifyChainInHandshake(X509_STORE_CTX* store, void* /*arg*/) {
  int ok = X509_verify_cert(store);
  if (ok <= 0) return ok;
  int err = X509_STORE_CTX_get_error(store);
  if (err != X509_V_OK) {
    return Refuse(store, err, VerifyErrorName(err),
                  std::string(X509_verify_cert_error_string(err)) + ", depth " + std::to_string(X509_STORE_CTX_get_error_depth(store)));
  }
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* td = ssl ? static_cast<std::string*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), TrustDomainIndex())) : nullptr;
  return td ? CheckTrustDomain(store, *td) : 1;
}

Napi::Value VerifyClientChainInHandshake(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    // `_external` is a plain v8::External, not one made by Node-API (whose externals may be
    // wrapped), so it is read with V8's own API; the addon is built against this node's headers.
    napi_value raw = args::At(info, 0);
    v8::Local<v8::Value> v;
    static_assert(sizeof v == sizeof raw, "napi_value is a v8::Local");
    std::memcpy(static_cast<void*>(&v), &raw, sizeof raw);
    if (v.IsEmpty() || !v->IsExternal()) throw ArgFailure{"sslCtx", "expected the `_external` of a tls.SecureContext's native context"};
    auto* ctx = static_cast<SSL_CTX*>(v.As<v8::External>()->Value());
    if (ctx == nullptr) throw ArgFailure{"sslCtx", "is a null SSL_CTX"};
    std::string trustDomain = args::OptString(args::At(info, 1), "trustDomain");
    if (!trustDomain.empty()) {
      auto* old = static_cast<std::string*>(SSL_CTX_get_ex_data(ctx, TrustDomainIndex()));
      auto fresh = std::make_unique<std::string>(trustDomain);
      if (SSL_CTX_set_ex_data(ctx, TrustDomainIndex(), fresh.get()) != 1) throw Failure{ENOMEM, "SSL_CTX_set_ex_data", "trust domain", ""};
      fresh.release();
      delete old;
    }
    SSL_CTX_set_cert_verify_callback(ctx, VerifyChainInHandshake, nullptr);
    // A resumed session would skip all of the above (and Node ignores sessionTimeout: 0): no
    // tickets, no session cache, so every connection proves its identity in a full handshake.
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return info.Env().Undefined();
  });
}

}  // namespace

void InitTlsVerify(Napi::Env env, Napi::Object exports) {
  exports.Set("verifyClientChainInHandshake", Napi::Function::New(env, VerifyClientChainInHandshake, "verifyClientChainInHandshake"));
}

}  // namespace weft
