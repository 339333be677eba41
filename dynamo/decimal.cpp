#include "dynamo/decimal.h"

#include <algorithm>
#include <fmt/format.h>
#include <limits>
#include <vector>

namespace dynamorph::dynamo {
namespace {

constexpr long kMinAdjusted = -130;  // smallest magnitude 1E-130
constexpr long kMaxAdjusted = 125;   // largest magnitude 9.99…E+125

void set_why(std::string* why, std::string text) {
  if (why) *why = std::move(text);
}

}  // namespace

std::optional<Decimal> Decimal::from_digits(bool negative, std::string_view digits, long exponent,
                                            std::string* why) {
  // Strip leading zeros; trailing zeros move into the exponent.
  std::size_t first = digits.find_first_not_of('0');
  if (first == std::string_view::npos) return Decimal{};
  digits.remove_prefix(first);
  std::size_t last = digits.find_last_not_of('0');
  exponent += static_cast<long>(digits.size() - 1 - last);
  digits = digits.substr(0, last + 1);
  if (digits.size() > static_cast<std::size_t>(kMaxDigits)) {
    set_why(why, "Attempting to store more than 38 significant digits");
    return std::nullopt;
  }
  long adjusted = exponent + static_cast<long>(digits.size()) - 1;
  if (adjusted > kMaxAdjusted) {
    set_why(why, "Number overflow. Attempting to store a number with magnitude larger than supported range");
    return std::nullopt;
  }
  if (adjusted < kMinAdjusted) {
    set_why(why, "Number underflow. Attempting to store a number with magnitude smaller than supported range");
    return std::nullopt;
  }
  Decimal d;
  d.negative_ = negative;
  for (char c : digits) d.coefficient_ = d.coefficient_ * 10 + static_cast<unsigned>(c - '0');
  d.exponent_ = static_cast<std::int32_t>(exponent);
  return d;
}

std::optional<Decimal> Decimal::parse(std::string_view text, std::string* why) {
  std::size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  std::string digits;
  digits.reserve(text.size());
  long exponent = 0;
  bool seen_digit = false, seen_point = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c >= '0' && c <= '9') {
      seen_digit = true;
      // Skip leading zeros early so long zero runs cannot overflow anything.
      if (!(c == '0' && digits.empty())) digits.push_back(c);
      if (seen_point) --exponent;
    } else if (c == '.' && !seen_point) {
      seen_point = true;
    } else {
      break;
    }
  }
  if (!seen_digit) {
    set_why(why, fmt::format("'{}' is not a number", text));
    return std::nullopt;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) exp_negative = text[i++] == '-';
    long e = 0;
    bool exp_digit = false;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      exp_digit = true;
      if (e < 100000) e = e * 10 + (text[i] - '0');
    }
    if (!exp_digit) {
      set_why(why, fmt::format("'{}' is not a number", text));
      return std::nullopt;
    }
    exponent += exp_negative ? -e : e;
  }
  if (i != text.size()) {
    set_why(why, fmt::format("'{}' is not a number", text));
    return std::nullopt;
  }
  auto d = from_digits(negative, digits, exponent, why);
  if (d && d->is_zero()) d->negative_ = false;
  return d;
}

Decimal Decimal::from_int(std::int64_t v) {
  std::string text = fmt::format("{}", v);
  return *parse(text);
}

std::optional<std::int64_t> Decimal::to_int64() const {
  if (exponent_ < 0) return std::nullopt;
  // The magnitude may reach 2^63 for a negative number (INT64_MIN).
  const Uint128 limit =
      static_cast<Uint128>(std::numeric_limits<std::int64_t>::max()) + (negative_ ? 1 : 0);
  Uint128 v = coefficient_;
  for (int i = 0; i < exponent_; ++i) {
    v *= 10;
    if (v > limit) return std::nullopt;
  }
  if (v > limit) return std::nullopt;
  if (negative_) return static_cast<std::int64_t>(-static_cast<std::int64_t>(v - 1) - 1);
  return static_cast<std::int64_t>(v);
}

std::string Decimal::coefficient_digits() const {
  if (coefficient_ == 0) return "0";
  char buf[40];
  int n = 0;
  for (Uint128 v = coefficient_; v; v /= 10) buf[n++] = static_cast<char>('0' + v % 10);
  std::reverse(buf, buf + n);
  return std::string(buf, n);
}

int Decimal::digit_count() const {
  int n = 0;
  for (Uint128 v = coefficient_; v; v /= 10) ++n;
  return n == 0 ? 1 : n;
}

std::string Decimal::to_string() const {
  if (coefficient_ == 0) return "0";
  std::string digits = coefficient_digits();
  std::string out;
  if (negative_) out.push_back('-');
  if (exponent_ >= 0) {
    out += digits;
    out.append(static_cast<std::size_t>(exponent_), '0');
  } else {
    long point = static_cast<long>(digits.size()) + exponent_;  // digits before the point
    if (point > 0) {
      out.append(digits, 0, static_cast<std::size_t>(point));
      out.push_back('.');
      out.append(digits, static_cast<std::size_t>(point));
    } else {
      out += "0.";
      out.append(static_cast<std::size_t>(-point), '0');
      out += digits;
    }
  }
  return out;
}

std::strong_ordering Decimal::operator<=>(const Decimal& other) const {
  if (negative_ != other.negative_) return negative_ ? std::strong_ordering::less : std::strong_ordering::greater;
  // Same sign: compare magnitudes, flip for negatives.
  auto magnitude = [&]() -> std::strong_ordering {
    if (coefficient_ == 0 || other.coefficient_ == 0) {
      return (coefficient_ != 0) <=> (other.coefficient_ != 0);
    }
    long adj_a = exponent_ + digit_count() - 1, adj_b = other.exponent_ + other.digit_count() - 1;
    if (adj_a != adj_b) return adj_a <=> adj_b;
    // Same adjusted exponent: align both coefficients to 38 digits.
    Uint128 a = coefficient_, b = other.coefficient_;
    for (int i = digit_count(); i < kMaxDigits; ++i) a *= 10;
    for (int i = other.digit_count(); i < kMaxDigits; ++i) b *= 10;
    return a <=> b;
  }();
  if (negative_ && magnitude != std::strong_ordering::equal) {
    return magnitude == std::strong_ordering::less ? std::strong_ordering::greater : std::strong_ordering::less;
  }
  return magnitude;
}

namespace {

// Magnitude arithmetic on little-endian digit vectors aligned at a common exponent; arithmetic
// is rare (SET a = a + :n), so clarity beats speed here.
std::vector<int> aligned_digits(const std::string& coefficient, long exponent, long base_exponent) {
  std::vector<int> v(static_cast<std::size_t>(exponent - base_exponent), 0);
  for (auto it = coefficient.rbegin(); it != coefficient.rend(); ++it) v.push_back(*it - '0');
  return v;
}

int compare_digits(const std::vector<int>& a, const std::vector<int>& b) {
  std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = n; i-- > 0;) {
    int x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

}  // namespace

std::optional<Decimal> Decimal::add(const Decimal& a, const Decimal& b, std::string* why) {
  if (a.is_zero()) return b;
  if (b.is_zero()) return a;
  long base = std::min(a.exponent_, b.exponent_);
  std::vector<int> x = aligned_digits(a.coefficient_digits(), a.exponent_, base);
  std::vector<int> y = aligned_digits(b.coefficient_digits(), b.exponent_, base);
  std::vector<int> r;
  bool negative;
  if (a.negative_ == b.negative_) {
    negative = a.negative_;
    int carry = 0;
    for (std::size_t i = 0; i < std::max(x.size(), y.size()) || carry; ++i) {
      int s = carry + (i < x.size() ? x[i] : 0) + (i < y.size() ? y[i] : 0);
      r.push_back(s % 10);
      carry = s / 10;
    }
  } else {
    int c = compare_digits(x, y);
    if (c == 0) return Decimal{};
    const auto& big = c > 0 ? x : y;
    const auto& small = c > 0 ? y : x;
    negative = c > 0 ? a.negative_ : b.negative_;
    int borrow = 0;
    for (std::size_t i = 0; i < big.size(); ++i) {
      int s = big[i] - borrow - (i < small.size() ? small[i] : 0);
      borrow = s < 0;
      r.push_back(s < 0 ? s + 10 : s);
    }
  }
  std::string digits;
  for (auto it = r.rbegin(); it != r.rend(); ++it) digits.push_back(static_cast<char>('0' + *it));
  return from_digits(negative, digits, base, why);
}

std::optional<Decimal> Decimal::from_rounded_digits(bool negative, std::string digits,
                                                    long exponent, bool sticky, std::string* why) {
  std::size_t first = digits.find_first_not_of('0');
  if (first == std::string::npos) return Decimal{};
  digits.erase(0, first);
  if (digits.size() > static_cast<std::size_t>(kMaxDigits)) {
    const std::size_t keep = static_cast<std::size_t>(kMaxDigits);
    const char next = digits[keep];
    sticky = sticky || digits.find_first_not_of('0', keep + 1) != std::string::npos;
    exponent += static_cast<long>(digits.size() - keep);
    digits.resize(keep);
    const bool odd = (digits.back() - '0') % 2 == 1;
    if (next > '5' || (next == '5' && (sticky || odd))) {
      std::size_t i = digits.size();
      while (i > 0 && digits[i - 1] == '9') digits[--i] = '0';
      if (i == 0)
        digits.insert(digits.begin(), '1');  // 99…9 + 1: one more digit, the rest zeros
      else
        ++digits[i - 1];
    }
  }
  auto d = from_digits(negative, digits, exponent, why);
  if (d && d->is_zero()) d->negative_ = false;
  return d;
}

std::optional<Decimal> Decimal::multiply(const Decimal& a, const Decimal& b, std::string* why) {
  if (a.is_zero() || b.is_zero()) return Decimal{};
  const std::string x = a.coefficient_digits(), y = b.coefficient_digits();
  std::vector<int> r(x.size() + y.size(), 0);  // little-endian
  for (std::size_t i = 0; i < x.size(); ++i) {
    for (std::size_t j = 0; j < y.size(); ++j)
      r[i + j] += (x[x.size() - 1 - i] - '0') * (y[y.size() - 1 - j] - '0');
  }
  for (std::size_t i = 0; i + 1 < r.size(); ++i) {
    r[i + 1] += r[i] / 10;
    r[i] %= 10;
  }
  std::string digits;
  for (auto it = r.rbegin(); it != r.rend(); ++it) digits.push_back(static_cast<char>('0' + *it));
  return from_rounded_digits(a.negative_ != b.negative_, std::move(digits),
                             static_cast<long>(a.exponent_) + b.exponent_, false, why);
}

std::optional<Decimal> Decimal::divide(const Decimal& a, const Decimal& b, std::string* why) {
  if (b.is_zero()) {
    set_why(why, "Division by zero");
    return std::nullopt;
  }
  if (a.is_zero()) return Decimal{};
  // Long division of a's digits followed by enough zeros for 40 quotient digits (38 kept, one
  // to round on, and the remainder says whether anything follows).
  const std::string x = a.coefficient_digits(), y = b.coefficient_digits();
  const long extra = std::max(0L, 40L + static_cast<long>(y.size()) - static_cast<long>(x.size()));
  std::vector<int> divisor, rem;  // little-endian
  for (auto it = y.rbegin(); it != y.rend(); ++it) divisor.push_back(*it - '0');
  std::string quotient;
  const std::size_t steps = x.size() + static_cast<std::size_t>(extra);
  for (std::size_t i = 0; i < steps; ++i) {
    rem.insert(rem.begin(), i < x.size() ? x[i] - '0' : 0);
    while (!rem.empty() && rem.back() == 0) rem.pop_back();
    int q = 0;
    while (compare_digits(rem, divisor) >= 0) {
      int borrow = 0;
      for (std::size_t k = 0; k < rem.size(); ++k) {
        int s = rem[k] - borrow - (k < divisor.size() ? divisor[k] : 0);
        borrow = s < 0;
        rem[k] = s < 0 ? s + 10 : s;
      }
      while (!rem.empty() && rem.back() == 0) rem.pop_back();
      ++q;
    }
    quotient.push_back(static_cast<char>('0' + q));
  }
  return from_rounded_digits(a.negative_ != b.negative_, std::move(quotient),
                             static_cast<long>(a.exponent_) - b.exponent_ - extra, !rem.empty(),
                             why);
}

std::optional<Decimal> Decimal::subtract(const Decimal& a, const Decimal& b, std::string* why) {
  Decimal nb = b;
  if (!nb.is_zero()) nb.negative_ = !nb.negative_;
  return add(a, nb, why);
}

}  // namespace dynamorph::dynamo
