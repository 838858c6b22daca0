// Tests of the search-space expression evaluator: precedence, associativity, integer
// division, comparisons and logic, functions, and the errors (syntax with position,
// unknown identifier, division by zero, overflow).
#include <gtest/gtest.h>

#include <limits>

#include "expression.h"

namespace fusetune {
namespace {

std::int64_t eval(const std::string& text, const std::map<std::string, std::int64_t>& values = {}) {
  return Expression::parse(text).evaluate(values);
}

/// The message of the ExpressionError that `action` throws ("" if none).
template <typename Action>
std::string error_of(Action action) {
  try {
    action();
  } catch (const ExpressionError& error) {
    return error.what();
  }
  return "";
}

TEST(Expression, LiteralsAndIdentifiers) {
  EXPECT_EQ(eval("42"), 42);
  EXPECT_EQ(eval("  7  "), 7);
  EXPECT_EQ(eval("tile_m", {{"tile_m", 128}}), 128);
  EXPECT_EQ(eval("_x1 + y", {{"_x1", 3}, {"y", 4}}), 7);
}

TEST(Expression, Precedence) {
  EXPECT_EQ(eval("2 + 3 * 4"), 14);
  EXPECT_EQ(eval("(2 + 3) * 4"), 20);
  EXPECT_EQ(eval("2 * 3 + 4 * 5"), 26);
  EXPECT_EQ(eval("1 + 2 < 4"), 1);    // + binds tighter than <
  EXPECT_EQ(eval("1 < 2 == 1"), 1);   // < binds tighter than ==
  EXPECT_EQ(eval("1 || 0 && 0"), 1);  // && binds tighter than ||
  EXPECT_EQ(eval("(1 || 0) && 0"), 0);
  EXPECT_EQ(eval("-2 * 3"), -6);
  EXPECT_EQ(eval("-(2 + 3)"), -5);
  EXPECT_EQ(eval("!0 + 1"), 2);  // unary ! binds tighter than +
  EXPECT_EQ(eval("!(0 + 1)"), 0);
  EXPECT_EQ(eval("2 * -3"), -6);
  EXPECT_EQ(eval("10 % 4 * 3"), 6);  // same level, left to right
}

TEST(Expression, LeftAssociativity) {
  EXPECT_EQ(eval("10 - 3 - 2"), 5);
  EXPECT_EQ(eval("100 / 10 / 5"), 2);
  EXPECT_EQ(eval("17 % 10 % 4"), 3);
  EXPECT_EQ(eval("8 / 2 * 4"), 16);
  EXPECT_EQ(eval("3 > 2 > 1"), 0);  // (3 > 2) > 1 is 1 > 1, as in C
  EXPECT_EQ(eval("--5"), 5);
  EXPECT_EQ(eval("!!7"), 1);
}

TEST(Expression, IntegerDivisionTruncatesTowardZero) {
  EXPECT_EQ(eval("7 / 2"), 3);
  EXPECT_EQ(eval("-7 / 2"), -3);
  EXPECT_EQ(eval("7 / -2"), -3);
  EXPECT_EQ(eval("7 % 3"), 1);
  EXPECT_EQ(eval("-7 % 3"), -1);
  EXPECT_EQ(eval("7 % -3"), 1);
  EXPECT_EQ(eval("8192 % 128 == 0"), 1);
}

TEST(Expression, ComparisonsAndLogic) {
  EXPECT_EQ(eval("3 == 3"), 1);
  EXPECT_EQ(eval("3 != 3"), 0);
  EXPECT_EQ(eval("2 < 3"), 1);
  EXPECT_EQ(eval("3 <= 3"), 1);
  EXPECT_EQ(eval("4 > 5"), 0);
  EXPECT_EQ(eval("5 >= 6"), 0);
  EXPECT_EQ(eval("2 && 3"), 1);  // any nonzero is true; results are 0/1
  EXPECT_EQ(eval("0 || -4"), 1);
  EXPECT_EQ(eval("0 && 1"), 0);
  EXPECT_EQ(eval("!5"), 0);
}

TEST(Expression, LogicShortCircuits) {
  // The right side would divide by zero; short-circuiting never evaluates it.
  EXPECT_EQ(eval("b != 0 && a / b > 1", {{"a", 4}, {"b", 0}}), 0);
  EXPECT_EQ(eval("b == 0 || a / b > 1", {{"a", 4}, {"b", 0}}), 1);
}

TEST(Expression, Functions) {
  EXPECT_EQ(eval("min(3, 5)"), 3);
  EXPECT_EQ(eval("max(3, 5)"), 5);
  EXPECT_EQ(eval("min(-1, max(2, 7))"), -1);
  EXPECT_EQ(eval("ceil_div(10, 3)"), 4);
  EXPECT_EQ(eval("ceil_div(9, 3)"), 3);
  EXPECT_EQ(eval("ceil_div(1, 128)"), 1);
  EXPECT_EQ(eval("ceil_div(0, 128)"), 0);
  EXPECT_EQ(eval("ceil_div(-7, 2)"), -3);  // the mathematical ceiling of -3.5
  EXPECT_EQ(eval("ceil_div(7, -2)"), -3);
  EXPECT_EQ(eval("ceil_div(-7, -2)"), 4);
  EXPECT_EQ(eval("ceil_div(n, tile_n) * tile_n", {{"n", 1000}, {"tile_n", 128}}), 1024);
  EXPECT_EQ(eval("max (1 , 2)"), 2);  // spaces around the parentheses and comma
}

TEST(Expression, EvaluatesManyTimesWithDifferentValues) {
  const Expression expression = Expression::parse("tile_m % thread_m == 0");
  EXPECT_EQ(expression.evaluate({{"tile_m", 128}, {"thread_m", 8}}), 1);
  EXPECT_EQ(expression.evaluate({{"tile_m", 128}, {"thread_m", 3}}), 0);
  const Expression::Lookup lookup = [](std::string_view name) -> std::optional<std::int64_t> {
    if (name == "tile_m") return 64;
    if (name == "thread_m") return 4;
    return std::nullopt;
  };
  EXPECT_EQ(expression.evaluate(lookup), 1);
  EXPECT_EQ(expression.text(), "tile_m % thread_m == 0");
}

TEST(Expression, IdentifiersAreSortedAndUnique) {
  const Expression expression = Expression::parse("b + a * b + min(c, a) + 0 && zz || max(1, 2)");
  EXPECT_EQ(expression.identifiers(), (std::vector<std::string>{"a", "b", "c", "zz"}));
  EXPECT_TRUE(Expression::parse("1 + 2").identifiers().empty());
}

TEST(Expression, SyntaxErrorsNameTheColumn) {
  EXPECT_EQ(error_of([] { Expression::parse("1 + * 2"); }),
            "syntax error at column 5 of '1 + * 2': expected an operand, found '*'");
  EXPECT_EQ(error_of([] { Expression::parse("(1 + 2"); }),
            "syntax error at column 7 of '(1 + 2': expected ')' to close '(', found the end");
  EXPECT_EQ(error_of([] { Expression::parse("1 2"); }),
            "syntax error at column 3 of '1 2': unexpected '2' after a complete expression");
  EXPECT_EQ(error_of([] { Expression::parse("foo(1, 2)"); }),
            "syntax error at column 1 of 'foo(1, 2)': unknown function 'foo' (known: min, max, ceil_div)");
  EXPECT_NE(error_of([] { Expression::parse(""); }).find("column 1"), std::string::npos);
  EXPECT_NE(error_of([] { Expression::parse("min(1)"); }).find("column 6"), std::string::npos);
  EXPECT_NE(error_of([] { Expression::parse("min(1, 2, 3)"); }).find("column 9"), std::string::npos);
  EXPECT_NE(error_of([] { Expression::parse("a & b"); }).find("column 3"), std::string::npos);
  EXPECT_NE(error_of([] { Expression::parse("a = b"); }).find("column 3"), std::string::npos);
  EXPECT_NE(error_of([] { Expression::parse("12ab"); }).find("malformed integer literal '12ab'"), std::string::npos);
  EXPECT_NE(error_of([] { Expression::parse("99999999999999999999"); }).find("out of int64 range"), std::string::npos);
  EXPECT_NE(error_of([] { Expression::parse("1 + $"); }).find("column 5"), std::string::npos);
}

TEST(Expression, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = std::string(100000, '(') + "1" + std::string(100000, ')');
  EXPECT_NE(error_of([&] { Expression::parse(deep); }).find("nested deeper"), std::string::npos);
  const std::string ok = std::string(50, '(') + "1" + std::string(50, ')');
  EXPECT_EQ(eval(ok), 1);
}

TEST(Expression, UnknownIdentifierIsNamed) {
  const Expression expression = Expression::parse("tile_m + tile_q");
  EXPECT_EQ(error_of([&] {
              expression.evaluate({{"tile_m", 1}});
            }),
            "unknown identifier 'tile_q' in 'tile_m + tile_q'");
}

TEST(Expression, DivisionAndModuloByZeroAreErrors) {
  EXPECT_EQ(error_of([] { eval("1 / 0"); }), "division by zero in '1 / 0'");
  EXPECT_EQ(error_of([] { eval("a % b", {{"a", 5}, {"b", 0}}); }), "modulo by zero in 'a % b'");
  EXPECT_NE(error_of([] { eval("ceil_div(4, 0)"); }).find("division by zero"), std::string::npos);
}

TEST(Expression, OverflowIsAnError) {
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  const std::int64_t min = std::numeric_limits<std::int64_t>::min();
  EXPECT_EQ(eval("x - 1", {{"x", max}}), max - 1);
  EXPECT_NE(error_of([&] { eval("x + 1", {{"x", max}}); }).find("overflow"), std::string::npos);
  EXPECT_NE(error_of([&] { eval("x * 2", {{"x", max}}); }).find("overflow"), std::string::npos);
  EXPECT_NE(error_of([&] { eval("x - 1", {{"x", min}}); }).find("overflow"), std::string::npos);
  EXPECT_NE(error_of([&] { eval("-x", {{"x", min}}); }).find("overflow"), std::string::npos);
  EXPECT_NE(error_of([&] { eval("x / -1", {{"x", min}}); }).find("overflow"), std::string::npos);
  EXPECT_EQ(eval("x % -1", {{"x", min}}), 0);
}

TEST(Expression, CopiesAreIndependent) {
  Expression copy = Expression::parse("a * 2");
  {
    const Expression original = Expression::parse("a + 1");
    copy = original;
  }
  EXPECT_EQ(copy.evaluate({{"a", 4}}), 5);
}

}  // namespace
}  // namespace fusetune
