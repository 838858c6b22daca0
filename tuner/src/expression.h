// Integer expressions of search-space files ("tile_m % thread_m == 0", "ceil_div(n, tile_n)"):
// parsed once into a tree, evaluated many times against knob (and m, n, k) values.
// int64 arithmetic; booleans are 0/1; evaluation errors (division by zero, overflow,
// unknown identifier) are exceptions, never silent values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fusetune {

/// A syntax error (with its position) or an evaluation error of an Expression. Callers that
/// know where the expression came from rethrow it as DataError naming the file.
struct ExpressionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A parsed expression. Grammar, loosest binding first (all binary operators left-assoc):
///   ||   &&   == !=   < <= > >=   + -   * / %   unary - + !   primary
///   primary: integer literal | identifier | min(a, b) | max(a, b) | ceil_div(a, b) | ( expr )
/// `/` and `%` truncate toward zero as in C++; && and || short-circuit. A default-constructed
/// Expression is empty: evaluating it throws.
class Expression {
 public:
  /// Resolves an identifier to its value; nullopt if the name is unknown.
  using Lookup = std::function<std::optional<std::int64_t>(std::string_view name)>;

  /// Parses `text`. Throws ExpressionError "syntax error at column C of '<text>': <what>"
  /// (C counts from 1) on malformed input.
  static Expression parse(std::string_view text);

  /// The value of the expression. Throws ExpressionError naming the expression on an unknown
  /// identifier, division or modulo by zero, or int64 overflow.
  std::int64_t evaluate(const Lookup& lookup) const;
  /// Same, with identifiers looked up in `values`.
  std::int64_t evaluate(const std::map<std::string, std::int64_t>& values) const;

  /// Every identifier the expression refers to, sorted, each once (including those in
  /// branches that short-circuiting may skip): what load-time validation checks.
  std::vector<std::string> identifiers() const;
  /// The text the expression was parsed from.
  const std::string& text() const { return text_; }

 private:
  enum class Op {
    kLiteral,
    kIdentifier,
    kNegate,
    kPlus,
    kNot,
    kAdd,
    kSubtract,
    kMultiply,
    kDivide,
    kModulo,
    kEqual,
    kNotEqual,
    kLess,
    kLessEqual,
    kGreater,
    kGreaterEqual,
    kAnd,
    kOr,
    kMin,
    kMax,
    kCeilDiv,
  };
  /// One node of the tree; children are indices into nodes_ (-1 where absent).
  struct Node {
    Op op = Op::kLiteral;
    std::int64_t value = 0;  ///< kLiteral only
    std::string name;        ///< kIdentifier only
    int lhs = -1;            ///< operand of unary ops, left operand of binary ops
    int rhs = -1;            ///< right operand of binary ops
  };
  class Parser;

  std::int64_t evaluate_node(int index, const Lookup& lookup) const;

  std::string text_;
  std::vector<Node> nodes_;  ///< the tree, flat; copying an Expression copies it
  int root_ = -1;
};

}  // namespace fusetune
