#include "moebench/core/dtype.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "moebench/core/error.h"

namespace moebench {
namespace {

constexpr std::array kAllDTypes = {DType::F32,     DType::F64,     DType::BF16, DType::F16,
                                   DType::FP8E4M3, DType::FP8E5M2, DType::I32,  DType::I64};

// A binary floating-point format narrower than float: 1 sign bit, then
// exponent and mantissa fields. One description drives both directions of
// every narrow conversion, so the four formats cannot drift apart.
struct NarrowFormat {
  int exponent_bits;
  int mantissa_bits;
  bool has_infinity;   // false for e4m3fn: its top exponent holds finite values, all-ones is NaN
  uint32_t quiet_nan;  // positive canonical NaN produced for NaN inputs

  int bias() const { return (1 << (exponent_bits - 1)) - 1; }
  uint32_t sign_bit() const { return 1u << (exponent_bits + mantissa_bits); }
  uint32_t top_exponent_field() const { return (1u << exponent_bits) - 1; }
};

constexpr NarrowFormat kBF16{8, 7, true, 0x7FC0};
constexpr NarrowFormat kF16{5, 10, true, 0x7E00};
constexpr NarrowFormat kFP8E4M3{4, 3, false, 0x7F};
constexpr NarrowFormat kFP8E5M2{5, 2, true, 0x7E};

// Rounds significand * 2^exponent (significand < 2^62) to the nearest value
// of `format`, ties to even, and returns its bit pattern.
uint32_t round_to_narrow(const NarrowFormat& format, bool negative, uint64_t significand,
                         int exponent) {
  const uint32_t sign = negative ? format.sign_bit() : 0;
  if (significand == 0) return sign;
  const int top_bit = std::bit_width(significand) - 1;
  const int min_normal_exponent = 1 - format.bias();
  // The spacing of representable values around the input is 2^quantum_exponent;
  // below the normal range it stays at the subnormal spacing.
  const int quantum_exponent =
      std::max(top_bit + exponent, min_normal_exponent) - format.mantissa_bits;
  const int shift = quantum_exponent - exponent;

  uint64_t steps;  // |value| / 2^quantum_exponent, rounded to nearest even
  if (shift <= 0) {
    steps = significand << -shift;
  } else if (shift > top_bit + 1) {
    steps = 0;  // below half of one step
  } else {
    steps = significand >> shift;
    const uint64_t remainder = significand & ((uint64_t{1} << shift) - 1);
    const uint64_t half = uint64_t{1} << (shift - 1);
    if (remainder > half || (remainder == half && (steps & 1) != 0)) ++steps;
  }

  // Codes are monotonic in magnitude: (biased exponent - 1) above `steps`,
  // whose implicit leading bit adds the missing 1 to the exponent field. A
  // rounding carry therefore moves into the exponent, and subnormals (biased
  // exponent 0, no implicit bit) fall out of the same formula.
  const int64_t biased_exponent = quantum_exponent + format.mantissa_bits + format.bias();
  const int64_t code = ((biased_exponent - 1) << format.mantissa_bits) + int64_t(steps);

  const int64_t infinity_code = int64_t{format.top_exponent_field()} << format.mantissa_bits;
  const int64_t all_ones_code = int64_t{format.sign_bit()} - 1;
  if (format.has_infinity && code >= infinity_code) return sign | uint32_t(infinity_code);
  if (!format.has_infinity && code >= all_ones_code) return sign | uint32_t(all_ones_code);
  return sign | uint32_t(code);
}

uint32_t float_to_narrow(const NarrowFormat& format, float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const bool negative = (bits >> 31) != 0;
  const uint32_t sign = negative ? format.sign_bit() : 0;
  if (std::isnan(value)) return sign | format.quiet_nan;
  if (std::isinf(value)) {
    const uint32_t top = format.has_infinity ? format.top_exponent_field() << format.mantissa_bits
                                             : format.quiet_nan;
    return sign | top;
  }
  const uint32_t exponent_field = (bits >> 23) & 0xFF;
  const uint32_t mantissa = bits & 0x7FFFFF;
  if (exponent_field == 0) return round_to_narrow(format, negative, mantissa, -149);
  return round_to_narrow(format, negative, mantissa | (1u << 23), int(exponent_field) - 150);
}

uint32_t double_to_narrow(const NarrowFormat& format, double value) {
  const uint64_t bits = std::bit_cast<uint64_t>(value);
  const bool negative = (bits >> 63) != 0;
  if (std::isnan(value) || std::isinf(value)) {
    // Non-finite values need no rounding; the float path knows their codes.
    return float_to_narrow(format, static_cast<float>(value));
  }
  const uint64_t exponent_field = (bits >> 52) & 0x7FF;
  const uint64_t mantissa = bits & ((uint64_t{1} << 52) - 1);
  if (exponent_field == 0) return round_to_narrow(format, negative, mantissa, -1074);
  return round_to_narrow(format, negative, mantissa | (uint64_t{1} << 52),
                         int(exponent_field) - 1075);
}

// Every narrow value is exactly representable in float, so decoding is exact.
float narrow_to_float(const NarrowFormat& format, uint32_t bits) {
  const bool negative = (bits & format.sign_bit()) != 0;
  const uint32_t exponent_field = (bits >> format.mantissa_bits) & format.top_exponent_field();
  const uint32_t mantissa = bits & ((1u << format.mantissa_bits) - 1);
  const uint32_t all_mantissa = (1u << format.mantissa_bits) - 1;
  float magnitude;
  if (exponent_field == format.top_exponent_field() && format.has_infinity) {
    magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity()
                              : std::numeric_limits<float>::quiet_NaN();
  } else if (exponent_field == format.top_exponent_field() && mantissa == all_mantissa) {
    magnitude = std::numeric_limits<float>::quiet_NaN();
  } else if (exponent_field == 0) {
    magnitude = std::ldexp(float(mantissa), 1 - format.bias() - format.mantissa_bits);
  } else {
    magnitude = std::ldexp(float(mantissa | (1u << format.mantissa_bits)),
                           int(exponent_field) - format.bias() - format.mantissa_bits);
  }
  return negative ? -magnitude : magnitude;
}

template <typename T>
T load(const void* element) {
  T value;
  std::memcpy(&value, element, sizeof(T));
  return value;
}

template <typename T>
void store(const T& value, void* element) {
  std::memcpy(element, &value, sizeof(T));
}

template <typename Int>
Int checked_integer(double value, DType dtype) {
  // Bounds are powers of two, exact in double: [-2^(n-1), 2^(n-1)).
  const double lower = static_cast<double>(std::numeric_limits<Int>::min());
  const double upper = -lower;
  const double truncated = std::trunc(value);
  if (!(truncated >= lower && truncated < upper)) {
    std::ostringstream message;
    message << "cannot store " << value << " as " << name(dtype)
            << ": it is NaN or outside the type's range; clamp the value or use a floating dtype";
    throw Error(message.str());
  }
  return static_cast<Int>(truncated);
}

bool is_integer(DType dtype) { return dtype == DType::I32 || dtype == DType::I64; }

// Reached only when a DType holds a value outside the enum (memory corruption
// or a cast from a bad integer).
[[noreturn]] void throw_unknown_dtype(DType dtype) {
  throw Error("unknown DType value " + std::to_string(int(dtype)) + "; this is a moebench bug");
}

}  // namespace

std::string_view name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "f32";
    case DType::F64:
      return "f64";
    case DType::BF16:
      return "bf16";
    case DType::F16:
      return "f16";
    case DType::FP8E4M3:
      return "fp8e4m3";
    case DType::FP8E5M2:
      return "fp8e5m2";
    case DType::I32:
      return "i32";
    case DType::I64:
      return "i64";
  }
  throw_unknown_dtype(dtype);
}

size_t size_in_bytes(DType dtype) {
  switch (dtype) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::BF16:
    case DType::F16:
      return 2;
    case DType::FP8E4M3:
    case DType::FP8E5M2:
      return 1;
  }
  throw_unknown_dtype(dtype);
}

bool is_floating_point(DType dtype) { return !is_integer(dtype); }

DType parse_dtype(std::string_view text) {
  for (DType dtype : kAllDTypes) {
    if (name(dtype) == text) return dtype;
  }
  std::string allowed;
  for (DType dtype : kAllDTypes) {
    allowed += allowed.empty() ? "" : ", ";
    allowed += name(dtype);
  }
  throw Error("unknown dtype '" + std::string(text) + "'; use one of: " + allowed);
}

uint16_t float_to_bf16_bits(float value) { return uint16_t(float_to_narrow(kBF16, value)); }
// bf16 is the upper half of a float, so widening is a shift (NaN payloads kept).
float bf16_bits_to_float(uint16_t bits) { return std::bit_cast<float>(uint32_t{bits} << 16); }
uint16_t float_to_f16_bits(float value) { return uint16_t(float_to_narrow(kF16, value)); }
float f16_bits_to_float(uint16_t bits) { return narrow_to_float(kF16, bits); }
uint8_t float_to_fp8e4m3_bits(float value) { return uint8_t(float_to_narrow(kFP8E4M3, value)); }
float fp8e4m3_bits_to_float(uint8_t bits) { return narrow_to_float(kFP8E4M3, bits); }
uint8_t float_to_fp8e5m2_bits(float value) { return uint8_t(float_to_narrow(kFP8E5M2, value)); }
float fp8e5m2_bits_to_float(uint8_t bits) { return narrow_to_float(kFP8E5M2, bits); }

double load_element_as_double(DType dtype, const void* element) {
  switch (dtype) {
    case DType::F32:
      return load<float>(element);
    case DType::F64:
      return load<double>(element);
    case DType::BF16:
      return bf16_bits_to_float(load<uint16_t>(element));
    case DType::F16:
      return f16_bits_to_float(load<uint16_t>(element));
    case DType::FP8E4M3:
      return fp8e4m3_bits_to_float(load<uint8_t>(element));
    case DType::FP8E5M2:
      return fp8e5m2_bits_to_float(load<uint8_t>(element));
    case DType::I32:
      return load<int32_t>(element);
    case DType::I64:
      return double(load<int64_t>(element));
  }
  throw_unknown_dtype(dtype);
}

void store_element_from_double(DType dtype, double value, void* element) {
  switch (dtype) {
    case DType::F32:
      return store(static_cast<float>(value), element);
    case DType::F64:
      return store(value, element);
    case DType::BF16:
      return store(uint16_t(double_to_narrow(kBF16, value)), element);
    case DType::F16:
      return store(uint16_t(double_to_narrow(kF16, value)), element);
    case DType::FP8E4M3:
      return store(uint8_t(double_to_narrow(kFP8E4M3, value)), element);
    case DType::FP8E5M2:
      return store(uint8_t(double_to_narrow(kFP8E5M2, value)), element);
    case DType::I32:
      return store(checked_integer<int32_t>(value, dtype), element);
    case DType::I64:
      return store(checked_integer<int64_t>(value, dtype), element);
  }
  throw_unknown_dtype(dtype);
}

void convert_element(DType from, const void* source, DType to, void* destination) {
  if (from == to) {
    std::memcpy(destination, source, size_in_bytes(from));
    return;
  }
  if (is_integer(from) && is_integer(to)) {
    if (from == DType::I32) {
      store(int64_t{load<int32_t>(source)}, destination);
    } else {  // i64 -> i32 narrows; values near the int32 bounds are exact in double
      store(checked_integer<int32_t>(double(load<int64_t>(source)), to), destination);
    }
    return;
  }
  store_element_from_double(to, load_element_as_double(from, source), destination);
}

}  // namespace moebench
