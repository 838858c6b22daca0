// Recursive-descent parser and tree evaluator of search-space expressions (expression.h).
// One function per precedence level; evaluation checks every int64 operation for
// overflow and division by zero.
#include "expression.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

namespace fusetune {

/// Turns text into Expression::nodes_. Holds the position of the next unread character.
class Expression::Parser {
 public:
  explicit Parser(Expression& out) : out_(out), text_(out.text_) {}

  int parse_all() {
    const int root = parse_or();
    skip_space();
    if (pos_ < text_.size()) fail("unexpected '" + std::string(1, text_[pos_]) + "' after a complete expression");
    return root;
  }

 private:
  /// Deeper nesting than this is rejected instead of risking the stack.
  static constexpr int kMaxDepth = 200;

  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }
  [[noreturn]] void fail_at(std::size_t pos, const std::string& what) const {
    throw ExpressionError("syntax error at column " + std::to_string(pos + 1) + " of '" + text_ + "': " + what);
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  /// Consumes `token` (after spaces) if it is next.
  bool accept(std::string_view token) {
    skip_space();
    if (text_.compare(pos_, token.size(), token) != 0) return false;
    pos_ += token.size();
    return true;
  }
  void expect(std::string_view token, const char* context) {
    if (!accept(token)) {
      fail("expected '" + std::string(token) + "' " + context + ", found " + describe_next());
    }
  }
  std::string describe_next() const {
    if (pos_ >= text_.size()) return "the end";
    std::string quoted = "'";  // built piecewise: GCC 12 warns falsely (-Wrestrict) on a + b + c here
    quoted += text_[pos_];
    quoted += '\'';
    return quoted;
  }

  int add(Node node) {
    out_.nodes_.push_back(std::move(node));
    return static_cast<int>(out_.nodes_.size()) - 1;
  }
  int binary(Op op, int lhs, int rhs) { return add(Node{op, 0, {}, lhs, rhs}); }

  int parse_or() {
    int lhs = parse_and();
    while (accept("||")) lhs = binary(Op::kOr, lhs, parse_and());
    return lhs;
  }
  int parse_and() {
    int lhs = parse_equality();
    while (accept("&&")) lhs = binary(Op::kAnd, lhs, parse_equality());
    return lhs;
  }
  int parse_equality() {
    int lhs = parse_relational();
    for (;;) {
      if (accept("=="))
        lhs = binary(Op::kEqual, lhs, parse_relational());
      else if (accept("!="))
        lhs = binary(Op::kNotEqual, lhs, parse_relational());
      else
        return lhs;
    }
  }
  int parse_relational() {
    int lhs = parse_additive();
    for (;;) {
      if (accept("<="))
        lhs = binary(Op::kLessEqual, lhs, parse_additive());
      else if (accept(">="))
        lhs = binary(Op::kGreaterEqual, lhs, parse_additive());
      else if (accept("<"))
        lhs = binary(Op::kLess, lhs, parse_additive());
      else if (accept(">"))
        lhs = binary(Op::kGreater, lhs, parse_additive());
      else
        return lhs;
    }
  }
  int parse_additive() {
    int lhs = parse_multiplicative();
    for (;;) {
      if (accept("+"))
        lhs = binary(Op::kAdd, lhs, parse_multiplicative());
      else if (accept("-"))
        lhs = binary(Op::kSubtract, lhs, parse_multiplicative());
      else
        return lhs;
    }
  }
  int parse_multiplicative() {
    int lhs = parse_unary();
    for (;;) {
      if (accept("*"))
        lhs = binary(Op::kMultiply, lhs, parse_unary());
      else if (accept("/"))
        lhs = binary(Op::kDivide, lhs, parse_unary());
      else if (accept("%"))
        lhs = binary(Op::kModulo, lhs, parse_unary());
      else
        return lhs;
    }
  }
  int parse_unary() {
    skip_space();
    // "!=" never starts an operand, so a '!' here is logical not.
    Op op;
    if (accept("-"))
      op = Op::kNegate;
    else if (accept("+"))
      op = Op::kPlus;
    else if (accept("!"))
      op = Op::kNot;
    else
      return parse_primary();
    DepthGuard guard(*this);
    return add(Node{op, 0, {}, parse_unary(), -1});
  }
  int parse_primary() {
    skip_space();
    if (pos_ >= text_.size()) fail("expected an operand, found the end");
    const char c = text_[pos_];
    if (c == '(') {
      ++pos_;
      DepthGuard guard(*this);
      const int inner = parse_or();
      expect(")", "to close '('");
      return inner;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return parse_literal();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') return parse_name();
    fail("expected an operand, found '" + std::string(1, c) + "'");
  }
  int parse_literal() {
    const std::size_t start = pos_;
    while (pos_ < text_.size() && std::isalnum(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    std::int64_t value = 0;
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    const auto [end, error] = std::from_chars(first, last, value);
    if (error == std::errc::result_out_of_range) fail_at(start, "integer literal out of int64 range");
    if (error != std::errc() || end != last)
      fail_at(start, "malformed integer literal '" + std::string(first, last) + "'");
    return add(Node{Op::kLiteral, value, {}, -1, -1});
  }
  int parse_name() {
    const std::size_t start = pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) ++pos_;
    std::string name = text_.substr(start, pos_ - start);
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '(') {
      Op op;
      if (name == "min")
        op = Op::kMin;
      else if (name == "max")
        op = Op::kMax;
      else if (name == "ceil_div")
        op = Op::kCeilDiv;
      else
        fail_at(start, "unknown function '" + name + "' (known: min, max, ceil_div)");
      ++pos_;
      DepthGuard guard(*this);
      const int lhs = parse_or();
      expect(",", ("between the two arguments of " + name + "()").c_str());
      const int rhs = parse_or();
      expect(")", ("after the second argument of " + name + "() (it takes two)").c_str());
      return binary(op, lhs, rhs);
    }
    return add(Node{Op::kIdentifier, 0, std::move(name), -1, -1});
  }

  /// Counts nesting of parentheses, calls and unary operators.
  struct DepthGuard {
    explicit DepthGuard(Parser& parser) : parser_(parser) {
      if (++parser_.depth_ > kMaxDepth) parser_.fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    ~DepthGuard() { --parser_.depth_; }
    Parser& parser_;
  };

  Expression& out_;
  const std::string& text_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

Expression Expression::parse(std::string_view text) {
  Expression expression;
  expression.text_ = std::string(text);
  Parser parser(expression);
  expression.root_ = parser.parse_all();
  return expression;
}

std::int64_t Expression::evaluate(const Lookup& lookup) const {
  if (root_ < 0) throw ExpressionError("evaluating an expression that was never parsed");
  return evaluate_node(root_, lookup);
}

std::int64_t Expression::evaluate(const std::map<std::string, std::int64_t>& values) const {
  return evaluate([&values](std::string_view name) -> std::optional<std::int64_t> {
    const auto found = values.find(std::string(name));
    if (found == values.end()) return std::nullopt;
    return found->second;
  });
}

std::vector<std::string> Expression::identifiers() const {
  std::vector<std::string> names;
  for (const Node& node : nodes_)
    if (node.op == Op::kIdentifier) names.push_back(node.name);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::int64_t Expression::evaluate_node(int index, const Lookup& lookup) const {
  const Node& node = nodes_[static_cast<std::size_t>(index)];
  const auto fail = [this](const std::string& what) -> std::int64_t {
    throw ExpressionError(what + " in '" + text_ + "'");
  };
  std::int64_t result = 0;
  // `overflowed` is the return value of a __builtin_*_overflow that wrote `result`.
  const auto checked = [&](bool overflowed) { return overflowed ? fail("int64 overflow") : result; };
  switch (node.op) {
    case Op::kLiteral:
      return node.value;
    case Op::kIdentifier: {
      const auto value = lookup(node.name);
      return value ? *value : fail("unknown identifier '" + node.name + "'");
    }
    case Op::kNegate: {
      const std::int64_t operand = evaluate_node(node.lhs, lookup);
      return checked(__builtin_sub_overflow(std::int64_t(0), operand, &result));
    }
    case Op::kPlus:
      return evaluate_node(node.lhs, lookup);
    case Op::kNot:
      return evaluate_node(node.lhs, lookup) == 0 ? 1 : 0;
    case Op::kAnd:
      return evaluate_node(node.lhs, lookup) != 0 && evaluate_node(node.rhs, lookup) != 0 ? 1 : 0;
    case Op::kOr:
      return evaluate_node(node.lhs, lookup) != 0 || evaluate_node(node.rhs, lookup) != 0 ? 1 : 0;
    default:
      break;
  }
  const std::int64_t a = evaluate_node(node.lhs, lookup);
  const std::int64_t b = evaluate_node(node.rhs, lookup);
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  switch (node.op) {
    case Op::kAdd:
      return checked(__builtin_add_overflow(a, b, &result));
    case Op::kSubtract:
      return checked(__builtin_sub_overflow(a, b, &result));
    case Op::kMultiply:
      return checked(__builtin_mul_overflow(a, b, &result));
    case Op::kDivide:
      if (b == 0) return fail("division by zero");
      return a == kMin && b == -1 ? fail("int64 overflow") : a / b;
    case Op::kModulo:
      if (b == 0) return fail("modulo by zero");
      return b == -1 ? 0 : a % b;
    case Op::kCeilDiv: {
      if (b == 0) return fail("division by zero (ceil_div)");
      if (a == kMin && b == -1) return fail("int64 overflow");
      // C++ division truncates toward zero; round up when the exact quotient is positive
      // and not whole.
      const std::int64_t quotient = a / b;
      return a % b != 0 && ((a < 0) == (b < 0)) ? quotient + 1 : quotient;
    }
    case Op::kEqual:
      return a == b;
    case Op::kNotEqual:
      return a != b;
    case Op::kLess:
      return a < b;
    case Op::kLessEqual:
      return a <= b;
    case Op::kGreater:
      return a > b;
    case Op::kGreaterEqual:
      return a >= b;
    case Op::kMin:
      return std::min(a, b);
    case Op::kMax:
      return std::max(a, b);
    default:
      return fail("internal error: unhandled operator");
  }
}

}  // namespace fusetune
