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
#include <v8.h>

#include <cstring>

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

// Runs the usual chain verification. Node's per-connection verify_cb accepts every error, so
// X509_verify_cert "succeeds"; the recorded error tells whether it really did. Returning 0
// makes OpenSSL send the alert for that error and fail the handshake. The failed handshake
// leaves no peer certificate to ask about afterwards, so the reason rides on the error queue
// (same library and reason as OpenSSL's own entry, so Node's error code is unchanged) as
// "weft-verify=NAME", which the HBONE server's tlsClientError handler reads.
int VerifyChainInHandshake(X509_STORE_CTX* store, void* /*arg*/) {
  int ok = X509_verify_cert(store);
  if (ok <= 0) return ok;
  int err = X509_STORE_CTX_get_error(store);
  if (err == X509_V_OK) return 1;
  ERR_raise_data(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED, "weft-verify=%s (%s, depth %d)", VerifyErrorName(err),
                 X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(store));
  return 0;
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
    SSL_CTX_set_cert_verify_callback(ctx, VerifyChainInHandshake, nullptr);
    return info.Env().Undefined();
  });
}

}  // namespace

void InitTlsVerify(Napi::Env env, Napi::Object exports) {
  exports.Set("verifyClientChainInHandshake", Napi::Function::New(env, VerifyClientChainInHandshake, "verifyClientChainInHandshake"));
}

}  // namespace weft
