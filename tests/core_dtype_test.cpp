// DType names and the narrow float conversions. Every narrow format is
// checked exhaustively: decoding against a decoder written here from the
// format definition, encoding round trips, and rounding from float (and
// double) against a reference that searches a sorted table of all
// representable values instead of manipulating bits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "moebench/core/dtype.h"
#include "moebench/core/error.h"

namespace moebench {
namespace {

struct FormatUnderTest {
  std::string name;
  int exponent_bits;
  int mantissa_bits;
  bool has_infinity;  // false: e4m3fn (all-ones exponent holds finite values, S.1111.111 is NaN)
  std::function<uint32_t(float)> encode;
  std::function<float(uint32_t)> decode;

  uint32_t sign_bit() const { return 1u << (exponent_bits + mantissa_bits); }
  uint32_t code_count() const { return sign_bit() << 1; }
};

std::vector<FormatUnderTest> all_formats() {
  return {
      {"bf16", 8, 7, true, [](float x) { return uint32_t{float_to_bf16_bits(x)}; },
       [](uint32_t b) { return bf16_bits_to_float(uint16_t(b)); }},
      {"f16", 5, 10, true, [](float x) { return uint32_t{float_to_f16_bits(x)}; },
       [](uint32_t b) { return f16_bits_to_float(uint16_t(b)); }},
      {"fp8e4m3", 4, 3, false, [](float x) { return uint32_t{float_to_fp8e4m3_bits(x)}; },
       [](uint32_t b) { return fp8e4m3_bits_to_float(uint8_t(b)); }},
      {"fp8e5m2", 5, 2, true, [](float x) { return uint32_t{float_to_fp8e5m2_bits(x)}; },
       [](uint32_t b) { return fp8e5m2_bits_to_float(uint8_t(b)); }},
  };
}

// The value of a code straight from the format definition:
// (-1)^s * 2^(e - bias) * 1.m for normals, (-1)^s * 2^(1 - bias) * 0.m for subnormals.
double value_by_definition(const FormatUnderTest& format, uint32_t code) {
  const uint32_t mantissa_count = 1u << format.mantissa_bits;
  const uint32_t exponent_top = (1u << format.exponent_bits) - 1;
  const bool negative = (code & format.sign_bit()) != 0;
  const uint32_t e = (code / mantissa_count) & exponent_top;
  const uint32_t m = code % mantissa_count;
  const int bias = (1 << (format.exponent_bits - 1)) - 1;
  double magnitude;
  if (e == exponent_top && format.has_infinity) {
    magnitude = m == 0 ? INFINITY : NAN;
  } else if (e == exponent_top && m == mantissa_count - 1) {
    magnitude = NAN;
  } else {
    const double fraction = double(m) / mantissa_count;
    magnitude = e == 0 ? std::pow(2.0, 1 - bias) * fraction
                       : std::pow(2.0, int(e) - bias) * (1.0 + fraction);
  }
  return negative ? -magnitude : magnitude;
}

// All non-negative finite values in increasing order, followed by the value
// one step past the largest (the format continued with more exponent) whose
// code is what overflow produces: +inf, or NaN for e4m3fn.
struct RepresentableTable {
  std::vector<double> values;
  std::vector<uint32_t> codes;
  uint32_t sign_bit;

  explicit RepresentableTable(const FormatUnderTest& format) : sign_bit(format.sign_bit()) {
    for (uint32_t code = 0; code < format.sign_bit(); ++code) {
      const double value = value_by_definition(format, code);
      if (std::isfinite(value)) {
        values.push_back(value);
        codes.push_back(code);
      }
    }
    std::vector<size_t> order(values.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return values[a] < values[b]; });
    std::vector<double> sorted_values;
    std::vector<uint32_t> sorted_codes;
    for (size_t i : order) {
      sorted_values.push_back(values[i]);
      sorted_codes.push_back(codes[i]);
    }
    const size_t n = sorted_values.size();
    sorted_values.push_back(2 * sorted_values[n - 1] - sorted_values[n - 2]);
    sorted_codes.push_back(sorted_codes[n - 1] + 1);
    values = std::move(sorted_values);
    codes = std::move(sorted_codes);
  }

  // Nearest representable value, ties to the even code (even last mantissa bit).
  uint32_t round(double x) const {
    const uint32_t sign = std::signbit(x) ? sign_bit : 0;
    const double a = std::fabs(x);
    if (a >= values.back()) return sign | codes.back();
    const size_t upper = std::lower_bound(values.begin(), values.end(), a) - values.begin();
    if (values[upper] == a) return sign | codes[upper];
    const size_t lower = upper - 1;
    const double below = a - values[lower];
    const double above = values[upper] - a;
    if (below < above) return sign | codes[lower];
    if (above < below) return sign | codes[upper];
    return sign | ((codes[lower] % 2 == 0) ? codes[lower] : codes[upper]);
  }
};

bool is_nan_code(const FormatUnderTest& format, uint32_t code) {
  return std::isnan(value_by_definition(format, code));
}

// Floats probing every rounding boundary: each representable value, each
// midpoint between neighbours, and the float neighbours of both, in both signs.
std::vector<float> boundary_probes(const RepresentableTable& table) {
  std::vector<double> centres(table.values.begin(), table.values.end());
  for (size_t i = 0; i + 1 < table.values.size(); ++i) {
    centres.push_back((table.values[i] + table.values[i + 1]) / 2);
  }
  std::vector<float> probes;
  for (double centre : centres) {
    const float f = static_cast<float>(centre);
    if (double(f) != centre) continue;  // beyond float range
    for (float probe : {f, std::nextafter(f, -INFINITY), std::nextafter(f, INFINITY)}) {
      probes.push_back(probe);
      probes.push_back(-probe);
    }
  }
  return probes;
}

TEST(DTypeNames, RoundTripThroughParse) {
  for (DType dtype : {DType::F32, DType::F64, DType::BF16, DType::F16, DType::FP8E4M3,
                      DType::FP8E5M2, DType::I32, DType::I64}) {
    EXPECT_EQ(parse_dtype(name(dtype)), dtype);
  }
  EXPECT_EQ(size_in_bytes(DType::F64), 8u);
  EXPECT_EQ(size_in_bytes(DType::I32), 4u);
  EXPECT_EQ(size_in_bytes(DType::BF16), 2u);
  EXPECT_EQ(size_in_bytes(DType::FP8E5M2), 1u);
  EXPECT_TRUE(is_floating_point(DType::FP8E4M3));
  EXPECT_FALSE(is_floating_point(DType::I64));
}

TEST(DTypeNames, UnknownNameListsAllowedNames) {
  try {
    parse_dtype("float32");
    FAIL() << "parse_dtype accepted 'float32'";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'float32'"), std::string::npos) << message;
    EXPECT_NE(message.find("f32, f64, bf16, f16, fp8e4m3, fp8e5m2, i32, i64"), std::string::npos)
        << message;
  }
}

TEST(NarrowFloat, DecodesEveryCodeAsTheDefinitionSays) {
  for (const FormatUnderTest& format : all_formats()) {
    for (uint32_t code = 0; code < format.code_count(); ++code) {
      const double expected = value_by_definition(format, code);
      const float actual = format.decode(code);
      if (std::isnan(expected)) {
        EXPECT_TRUE(std::isnan(actual)) << format.name << " code " << code;
      } else {
        ASSERT_EQ(double(actual), expected) << format.name << " code " << code;
        ASSERT_EQ(std::signbit(actual), std::signbit(expected)) << format.name << " code " << code;
      }
    }
  }
}

TEST(NarrowFloat, EveryCodeRoundTripsThroughFloat) {
  for (const FormatUnderTest& format : all_formats()) {
    for (uint32_t code = 0; code < format.code_count(); ++code) {
      const uint32_t again = format.encode(format.decode(code));
      if (is_nan_code(format, code)) {
        EXPECT_TRUE(is_nan_code(format, again)) << format.name << " code " << code;
        EXPECT_EQ(again & format.sign_bit(), code & format.sign_bit()) << format.name;
      } else {
        ASSERT_EQ(again, code) << format.name;
      }
    }
  }
}

TEST(NarrowFloat, RoundsFloatsAtEveryBoundaryLikeTheReference) {
  for (const FormatUnderTest& format : all_formats()) {
    const RepresentableTable table(format);
    for (float probe : boundary_probes(table)) {
      ASSERT_EQ(format.encode(probe), table.round(probe)) << format.name << " input " << probe;
    }
  }
}

TEST(NarrowFloat, RoundsPseudoRandomFloatsLikeTheReference) {
  // Float bit patterns from a fixed 64-bit LCG: all exponents, including
  // float subnormals, far overflow, infinities and NaNs.
  uint64_t state = 0x9E3779B97F4A7C15ull;
  std::vector<float> inputs;
  for (int i = 0; i < 200000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t bits = uint32_t(state >> 32);
    float x;
    std::memcpy(&x, &bits, sizeof(x));
    inputs.push_back(x);
  }
  for (const FormatUnderTest& format : all_formats()) {
    const RepresentableTable table(format);
    for (float x : inputs) {
      const uint32_t code = format.encode(x);
      if (std::isnan(x)) {
        ASSERT_TRUE(is_nan_code(format, code)) << format.name;
      } else {
        ASSERT_EQ(code, table.round(x)) << format.name << " input " << x;
      }
    }
  }
}

TEST(NarrowFloat, SpecialValues) {
  for (const FormatUnderTest& format : all_formats()) {
    EXPECT_EQ(format.encode(0.0f), 0u) << format.name;
    EXPECT_EQ(format.encode(-0.0f), format.sign_bit()) << format.name;
    EXPECT_TRUE(is_nan_code(format, format.encode(NAN))) << format.name;
    EXPECT_TRUE(is_nan_code(format, format.encode(-NAN))) << format.name;
    EXPECT_EQ(format.encode(std::numeric_limits<float>::denorm_min()), 0u) << format.name;
    const uint32_t huge = format.encode(std::numeric_limits<float>::max());
    const uint32_t inf = format.encode(INFINITY);
    EXPECT_EQ(huge, inf) << format.name;
    if (format.has_infinity) {
      EXPECT_TRUE(std::isinf(format.decode(inf))) << format.name;
    } else {
      EXPECT_TRUE(is_nan_code(format, inf)) << format.name;
    }
  }
}

TEST(NarrowFloat, KnownCodes) {
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3F80);
  EXPECT_EQ(float_to_f16_bits(1.0f), 0x3C00);
  EXPECT_EQ(float_to_f16_bits(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_f16_bits(65519.0f), 0x7BFF);
  EXPECT_EQ(float_to_f16_bits(65520.0f), 0x7C00);  // tie with the odd max rounds to inf
  EXPECT_EQ(float_to_f16_bits(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_f16_bits(std::ldexp(1.0f, -25)), 0x0000);  // tie to even zero
  EXPECT_EQ(float_to_fp8e4m3_bits(448.0f), 0x7E);
  EXPECT_EQ(float_to_fp8e4m3_bits(464.0f), 0x7E);  // tie to even 448
  EXPECT_EQ(float_to_fp8e4m3_bits(465.0f), 0x7F);  // PyTorch e4m3fn: NaN, no saturation
  EXPECT_EQ(float_to_fp8e4m3_bits(-1000.0f), 0xFF);
  EXPECT_EQ(float_to_fp8e4m3_bits(-INFINITY), 0xFF);
  EXPECT_EQ(float_to_fp8e4m3_bits(std::ldexp(1.0f, -9)), 0x01);
  EXPECT_EQ(float_to_fp8e4m3_bits(std::ldexp(1.5f, -9)), 0x02);  // tie 1.5 steps -> 2
  EXPECT_EQ(float_to_fp8e5m2_bits(57344.0f), 0x7B);
  EXPECT_EQ(float_to_fp8e5m2_bits(61440.0f), 0x7C);  // tie with the odd max rounds to inf
  EXPECT_EQ(float_to_fp8e5m2_bits(-INFINITY), 0xFC);
  EXPECT_EQ(float(bfloat16(3.0f)), 3.0f);
  EXPECT_EQ(float(float8_e4m3(0.3f)), 0.3125f);
  EXPECT_EQ(float8_e5m2::from_bits(0x3C).bits, 0x3C);
  static_assert(sizeof(bfloat16) == 2 && sizeof(float16) == 2);
  static_assert(sizeof(float8_e4m3) == 1 && sizeof(float8_e5m2) == 1);
  static_assert(dtype_of<float8_e5m2> == DType::FP8E5M2);
}

TEST(NarrowFloat, DoubleInputsRoundOnceNotThroughFloat) {
  // 1 + 2^-8 + 2^-30 is just above the bf16 midpoint between 1 and 1 + 2^-7,
  // but as a float it is exactly the midpoint, which would round down to 1.
  uint16_t bits = 0;
  store_element_from_double(DType::BF16, 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30), &bits);
  EXPECT_EQ(bits, 0x3F81);

  // Near every midpoint, double inputs match the reference.
  const std::vector<std::pair<FormatUnderTest, DType>> formats = {
      {all_formats()[0], DType::BF16},
      {all_formats()[1], DType::F16},
      {all_formats()[2], DType::FP8E4M3},
      {all_formats()[3], DType::FP8E5M2}};
  for (const auto& [format, dtype] : formats) {
    const RepresentableTable table(format);
    for (size_t i = 0; i + 1 < table.values.size(); ++i) {
      const double midpoint = (table.values[i] + table.values[i + 1]) / 2;
      for (double x : {midpoint, midpoint * (1 + 0x1p-40), midpoint * (1 - 0x1p-40)}) {
        uint64_t stored = 0;
        store_element_from_double(dtype, x, &stored);
        ASSERT_EQ(uint32_t(stored), table.round(x)) << format.name << " input " << x;
      }
    }
  }
}

TEST(ElementAccess, IntegersTruncateAndRejectOutOfRange) {
  int32_t i32 = 0;
  store_element_from_double(DType::I32, -2.9, &i32);
  EXPECT_EQ(i32, -2);
  EXPECT_THROW(store_element_from_double(DType::I32, 3e9, &i32), Error);
  EXPECT_THROW(store_element_from_double(DType::I32, NAN, &i32), Error);
  int64_t i64 = 0;
  EXPECT_THROW(store_element_from_double(DType::I64, 0x1p63, &i64), Error);
  store_element_from_double(DType::I64, -0x1p63, &i64);
  EXPECT_EQ(i64, std::numeric_limits<int64_t>::min());

  // Integer to integer is exact, not through double.
  const int64_t big = (int64_t{1} << 60) + 1;
  int64_t copied = 0;
  convert_element(DType::I64, &big, DType::I64, &copied);
  EXPECT_EQ(copied, big);
  const int32_t small = -7;
  convert_element(DType::I32, &small, DType::I64, &copied);
  EXPECT_EQ(copied, -7);
  EXPECT_THROW(convert_element(DType::I64, &big, DType::I32, &i32), Error);

  const float value = 2.5f;
  uint16_t half = 0;
  convert_element(DType::F32, &value, DType::F16, &half);
  EXPECT_EQ(load_element_as_double(DType::F16, &half), 2.5);
}

}  // namespace
}  // namespace moebench
