// Argument checks at the native boundary. Each throws ArgFailure naming the parameter, which
// Guard()/the workers turn into a TypeError with code WEFT_E_INVALID_ARGUMENT.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "errors.h"

namespace weft::args {

inline Napi::Value At(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() ? info[i] : info.Env().Undefined(); }

inline bool Present(const Napi::Value& v) { return !v.IsUndefined() && !v.IsNull(); }

inline Napi::Value Field(const Napi::Object& o, const char* key) { return o.Get(key); }

inline std::string String(const Napi::Value& v, const std::string& param) {
  if (!v.IsString()) throw ArgFailure{param, "expected a string"};
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.empty()) throw ArgFailure{param, "must not be empty"};
  if (s.find('\0') != std::string::npos) throw ArgFailure{param, "must not contain NUL"};
  return s;
}

inline std::string OptString(const Napi::Value& v, const std::string& param, const std::string& dflt = "") {
  return Present(v) ? String(v, param) : dflt;
}

inline int64_t Integer(const Napi::Value& v, const std::string& param, int64_t min, int64_t max) {
  if (!v.IsNumber()) throw ArgFailure{param, "expected an integer"};
  double d = v.As<Napi::Number>().DoubleValue();
  // Range-check as a double first: casting NaN or |d| >= 2^63 to int64_t is undefined.
  if (!std::isfinite(d) || std::trunc(d) != d) throw ArgFailure{param, "expected an integer"};
  if (d < static_cast<double>(min) || d > static_cast<double>(max))
    throw ArgFailure{param, "out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]"};
  auto n = static_cast<int64_t>(d);
  if (n < min || n > max) throw ArgFailure{param, "out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]"};
  return n;
}

inline int64_t OptInteger(const Napi::Value& v, const std::string& param, int64_t min, int64_t max, int64_t dflt) {
  return Present(v) ? Integer(v, param, min, max) : dflt;
}

inline int Fd(const Napi::Value& v, const std::string& param) { return static_cast<int>(Integer(v, param, 0, INT32_MAX)); }

inline bool OptBool(const Napi::Value& v, const std::string& param, bool dflt) {
  if (!Present(v)) return dflt;
  if (!v.IsBoolean()) throw ArgFailure{param, "expected a boolean"};
  return v.As<Napi::Boolean>().Value();
}

inline std::vector<uint8_t> Bytes(const Napi::Value& v, const std::string& param) {
  if (!v.IsBuffer()) throw ArgFailure{param, "expected a Buffer"};
  auto b = v.As<Napi::Buffer<uint8_t>>();
  return std::vector<uint8_t>(b.Data(), b.Data() + b.Length());
}

inline Napi::Object Object(const Napi::Value& v, const std::string& param) {
  if (!v.IsObject() || v.IsArray()) throw ArgFailure{param, "expected an options object"};
  return v.As<Napi::Object>();
}

}  // namespace weft::args
