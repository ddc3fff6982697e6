#pragma once
// Element types of moebench tensors and exact host-side conversions between
// float and the narrow floating-point formats (bf16, f16, fp8 e4m3 / e5m2).
//
// Rounding rule for every conversion into a narrow format: round to nearest,
// ties to even, subnormals included; NaN stays NaN (sign kept, quiet NaN).
// Overflow:
//   bf16, f16, fp8 e5m2  IEEE-like: a value that rounds past the largest
//                        finite value becomes +-inf.
//   fp8 e4m3 (OCP e4m3fn) has no infinity; its only NaN is S.1111.111 and
//                        its largest finite value is 448. As PyTorch's
//                        float8_e4m3fn cast, a value that rounds past 448
//                        (|x| > 464, the midpoint to the next step) and +-inf
//                        become NaN; there is no saturation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moebench {

enum class DType { F32, F64, BF16, F16, FP8E4M3, FP8E5M2, I32, I64 };

// Short names, as used in configs and error messages: "f32" "f64" "bf16"
// "f16" "fp8e4m3" "fp8e5m2" "i32" "i64".
std::string_view name(DType dtype);
size_t size_in_bytes(DType dtype);
bool is_floating_point(DType dtype);
// Accepts the short names above; throws Error listing them otherwise.
DType parse_dtype(std::string_view text);

// --- bit-level conversions ---------------------------------------------------
uint16_t float_to_bf16_bits(float value);
float bf16_bits_to_float(uint16_t bits);
uint16_t float_to_f16_bits(float value);
float f16_bits_to_float(uint16_t bits);
uint8_t float_to_fp8e4m3_bits(float value);
float fp8e4m3_bits_to_float(uint8_t bits);
uint8_t float_to_fp8e5m2_bits(float value);
float fp8e5m2_bits_to_float(uint8_t bits);

// --- element access by runtime dtype ------------------------------------------
// Reads one element of type `dtype` at `element` as a double (exact for every
// floating type and for integers up to 2^53).
double load_element_as_double(DType dtype, const void* element);
// Writes `value` as one element of type `dtype`. Floating types round to
// nearest even directly from double (no double rounding through float);
// integer types truncate toward zero and throw Error for NaN or out of range.
void store_element_from_double(DType dtype, double value, void* element);
// Converts one element between any two dtypes; integer to integer is exact
// (range-checked), everything else goes through double as above.
void convert_element(DType from, const void* source, DType to, void* destination);

// --- host value types ----------------------------------------------------------
// A storage-only narrow float: constructed from float (rounding as above),
// read back as float; arithmetic happens in float.
template <typename Bits, Bits (*kFromFloat)(float), float (*kToFloat)(Bits)>
struct NarrowFloatValue {
  Bits bits = 0;
  NarrowFloatValue() = default;
  explicit NarrowFloatValue(float value) : bits(kFromFloat(value)) {}
  static NarrowFloatValue from_bits(Bits raw) {
    NarrowFloatValue value;
    value.bits = raw;
    return value;
  }
  operator float() const { return kToFloat(bits); }
};

using bfloat16 = NarrowFloatValue<uint16_t, float_to_bf16_bits, bf16_bits_to_float>;
using float16 = NarrowFloatValue<uint16_t, float_to_f16_bits, f16_bits_to_float>;
using float8_e4m3 = NarrowFloatValue<uint8_t, float_to_fp8e4m3_bits, fp8e4m3_bits_to_float>;
using float8_e5m2 = NarrowFloatValue<uint8_t, float_to_fp8e5m2_bits, fp8e5m2_bits_to_float>;

// The DType that stores C++ type T: dtype_of<float> == DType::F32, ...
// Using a type with no DType is a compile error.
// clang-format off
template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<bfloat16> { static constexpr DType value = DType::BF16; };
template <> struct DTypeOf<float16> { static constexpr DType value = DType::F16; };
template <> struct DTypeOf<float8_e4m3> { static constexpr DType value = DType::FP8E4M3; };
template <> struct DTypeOf<float8_e5m2> { static constexpr DType value = DType::FP8E5M2; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };
// clang-format on
template <typename T>
inline constexpr DType dtype_of = DTypeOf<T>::value;

}  // namespace moebench
