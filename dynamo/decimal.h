// Exact decimal numbers as DynamoDB defines them: up to 38 significant digits, magnitude from
// 1E-130 to 9.99…E+125. Values are immutable; every function is thread-safe.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dynamorph::dynamo {

// 38 decimal digits need 127 bits; __extension__ keeps -Wpedantic quiet about the GNU type.
__extension__ typedef unsigned __int128 Uint128;

class Decimal {
 public:
  static constexpr int kMaxDigits = 38;

  Decimal() = default;  // zero

  // Parses "-12.50", "1e3", "+.5", "0007". Returns nullopt and sets *why (when given) for text
  // that is not a number or that DynamoDB would reject (too many digits, out of range).
  static std::optional<Decimal> parse(std::string_view text, std::string* why = nullptr);

  // DynamoDB's canonical text: plain notation, no exponent, no trailing zeros ("1000", "0.5").
  std::string to_string() const;

  bool is_zero() const { return coefficient_ == 0; }
  bool negative() const { return negative_; }

  std::strong_ordering operator<=>(const Decimal& other) const;
  bool operator==(const Decimal& other) const = default;

  // Exact sum / difference; nullopt (with *why) when the result needs more than 38 significant
  // digits or leaves DynamoDB's range, as the server rejects such updates.
  static std::optional<Decimal> add(const Decimal& a, const Decimal& b, std::string* why = nullptr);
  static std::optional<Decimal> subtract(const Decimal& a, const Decimal& b,
                                         std::string* why = nullptr);

  // Product / quotient rounded half-even to 38 significant digits (a quotient rarely ends);
  // nullopt (with *why) when the result leaves DynamoDB's range or the divisor is zero.
  static std::optional<Decimal> multiply(const Decimal& a, const Decimal& b,
                                         std::string* why = nullptr);
  static std::optional<Decimal> divide(const Decimal& a, const Decimal& b,
                                       std::string* why = nullptr);

  static Decimal from_int(std::int64_t v);
  // The value when it is an integer that fits, else nullopt.
  std::optional<std::int64_t> to_int64() const;

 private:
  // value = (-1)^negative_ * coefficient_ * 10^exponent_, coefficient_ without trailing zeros.
  bool negative_ = false;
  Uint128 coefficient_ = 0;
  std::int32_t exponent_ = 0;

  int digit_count() const;
  static std::optional<Decimal> from_digits(bool negative, std::string_view digits, long exponent,
                                            std::string* why);
  // from_digits after rounding `digits` half-even to 38 significant digits; `sticky`: nonzero
  // digits were cut off after the last of `digits`.
  static std::optional<Decimal> from_rounded_digits(bool negative, std::string digits,
                                                    long exponent, bool sticky, std::string* why);
  std::string coefficient_digits() const;
};

}  // namespace dynamorph::dynamo
