// Loading and validation of search-space files, enumeration of their configs, and the
// checks of a config against the device and a problem shape. Every defect of a file is
// reported at load as one DataError line: "<file>: <what is wrong>; <what to do>".
#include "search_space.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "fusetune/errors.h"
#include "hashing.h"

namespace fusetune {

namespace {

using nlohmann::json;

/// A product larger than this is surely a mistake in the file (enumerating it would take long).
constexpr std::int64_t kMaxProductSize = std::int64_t(1) << 24;

/// Identifiers that expressions give a meaning of their own.
constexpr const char* kShapeNames[] = {"m", "n", "k"};
/// The device property grid expressions may use: the number of SMs.
constexpr const char* kDeviceName = "sm_count";
constexpr const char* kFunctionNames[] = {"min", "max", "ceil_div"};

/// The derived quantities a file declares: name and whether it is required. threads and
/// smem_bytes describe a block and may use knobs only; the grid depends on the shape.
struct DerivedField {
  const char* name;
  bool required;
  bool uses_shape;
};
constexpr DerivedField kDerivedFields[] = {
    {"threads", true, false}, {"smem_bytes", true, false}, {"grid_x", true, true},
    {"grid_y", true, true},   {"grid_z", false, true},
};

/// Replaces line breaks so that every message stays on one line.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

bool is_identifier(const std::string& text) {
  if (text.empty() || !(std::isalpha(static_cast<unsigned char>(text[0])) || text[0] == '_')) return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool is_alnum_word(const std::string& text) {
  return !text.empty() && std::isalpha(static_cast<unsigned char>(text[0])) &&
         std::all_of(text.begin(), text.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
}

/// "<family>_<abbrev><value>_..." in knob declaration order.
std::string config_name(const std::string& family, const std::vector<KnobSpec>& knobs, const KnobValues& values) {
  std::string name = family;
  for (const KnobSpec& knob : knobs) {
    const auto found = values.find(knob.name);
    name += "_" + knob.abbrev + (found == values.end() ? std::string("?") : std::to_string(found->second));
  }
  return name;
}

/// Reads the JSON of one file, failing with messages that name the file and the field.
class FileReader {
 public:
  explicit FileReader(const std::string& origin) : origin_(origin) {}

  [[noreturn]] void fail(const std::string& what, const std::string& todo) const {
    throw DataError(one_line(origin_ + ": " + what + "; " + todo));
  }

  json parse(const std::string& text) const {
    // nlohmann keeps the last of duplicate keys silently; a callback that sees every key
    // of every object reports them instead (a duplicate is as likely a typo as a new key).
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    const json::parser_callback_t callback = [&](int, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::object_start)
        open_objects.emplace_back();
      else if (event == json::parse_event_t::object_end && !open_objects.empty())
        open_objects.pop_back();
      else if (event == json::parse_event_t::key && !open_objects.empty() &&
               !open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty())
        duplicate = parsed.get<std::string>();
      return true;
    };
    json document;
    try {
      document = json::parse(text, callback);
    } catch (const json::parse_error& error) {
      std::string what = error.what();
      // Drop nlohmann's "[json.exception.parse_error.101] " prefix; the rest names line and column.
      if (const auto bracket = what.find("] "); what.rfind("[json.exception", 0) == 0 && bracket != std::string::npos)
        what = what.substr(bracket + 2);
      fail("malformed JSON: " + what, "fix the JSON syntax at that place");
    }
    if (!duplicate.empty()) fail("key '" + duplicate + "' appears twice in one object", "keep one of them");
    if (!document.is_object())
      fail("the top level is " + type_name(document) + ", not an object", "the file must be one JSON object");
    return document;
  }

  static std::string type_name(const json& value) {
    if (value.is_number_integer()) return "an integer";
    if (value.is_number()) return "a non-integer number";
    const std::string name = value.type_name();
    return (name == "array" || name == "object") ? "an " + name : "a " + name;
  }

  /// Fails on a key of `object` not in `known`.
  void check_fields(const json& object, const std::string& where, const std::vector<std::string>& known) const {
    for (const auto& [key, value] : object.items()) {
      if (std::find(known.begin(), known.end(), key) == known.end())
        fail("unknown field '" + key + "' in " + where,
             "remove it or fix its spelling (known fields: " + join(known, ", ") + ")");
    }
  }

  const json& require(const json& object, const std::string& key, const std::string& where) const {
    const auto found = object.find(key);
    if (found == object.end()) fail("missing required field '" + key + "' in " + where, "add it");
    return *found;
  }

  std::string string_field(const json& object, const std::string& key, const std::string& where,
                           bool required = true) const {
    const auto found = object.find(key);
    if (found == object.end()) {
      if (required) require(object, key, where);
      return {};
    }
    if (!found->is_string())
      fail("field '" + key + "' in " + where + " is " + type_name(*found) + ", not a string", "make it a string");
    return found->get<std::string>();
  }

  std::vector<std::string> string_list(const json& object, const std::string& key, const std::string& where) const {
    const json& list = require(object, key, where);
    if (!list.is_array())
      fail("field '" + key + "' is " + type_name(list) + ", not an array", "make it an array of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_string())
        fail(key + "[" + std::to_string(i) + "] is " + type_name(list[i]) + ", not a string", "make it a string");
      out.push_back(list[i].get<std::string>());
    }
    if (out.empty()) fail("'" + key + "' is empty", "list at least one");
    return out;
  }

  /// Parses an expression and checks that it names only `allowed` identifiers.
  Expression expression(const std::string& text, const std::string& where, const std::set<std::string>& allowed,
                        const std::string& allowed_description) const {
    Expression parsed;
    try {
      parsed = Expression::parse(text);
    } catch (const ExpressionError& error) {
      fail(where + ": " + error.what(), "fix the expression");
    }
    for (const std::string& name : parsed.identifiers()) {
      if (!allowed.count(name))
        fail(where + " '" + text + "' refers to unknown identifier '" + name + "'",
             "it may use only " + allowed_description);
    }
    return parsed;
  }

 private:
  const std::string& origin_;
};

}  // namespace

SearchSpace SearchSpace::load(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw DataError(path + ": is a directory, not a search-space file; pass the .json file itself");
  std::ifstream file(path, std::ios::binary);
  if (!file)
    throw DataError(path + ": cannot read search-space file (" + std::strerror(errno) +
                    "); check the path (search-space files are search_spaces/<family>.json)");
  std::ostringstream bytes;
  bytes << file.rdbuf();
  if (file.bad()) throw DataError(path + ": read error; check that the file is readable");
  return parse(bytes.str(), path);
}

SearchSpace SearchSpace::parse(const std::string& json_text, const std::string& origin) {
  const FileReader reader(origin);
  const json document = reader.parse(json_text);
  reader.check_fields(document, "the top level",
                      {"family", "description", "template", "entry", "launch", "weight_prep", "tma_operand_type",
                       "dtypes", "policies", "knobs", "template_args", "derived", "constraints", "shape_constraints"});
  const std::string top = "the top level";

  SearchSpace space;
  space.origin_ = origin;
  space.content_hash_ = fusetune::content_hash(json_text);
  space.family_ = reader.string_field(document, "family", top);
  if (space.family_.empty() || !is_identifier(space.family_))
    reader.fail("family '" + space.family_ + "' is not a valid name",
                "use letters, digits and '_' (it starts every config name)");
  space.description_ = reader.string_field(document, "description", top, /*required=*/false);
  space.template_file_ = reader.string_field(document, "template", top);
  const bool template_ok = space.template_file_.size() > 4 && space.template_file_.ends_with(".cuh") &&
                           std::all_of(space.template_file_.begin(), space.template_file_.end(), [](char c) {
                             return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
                           });
  if (!template_ok)
    reader.fail("template '" + space.template_file_ + "' is not a header file name",
                "name a kernel_templates/ file, e.g. \"ffma_gemm.cuh\"");
  space.entry_ = reader.string_field(document, "entry", top);
  const bool entry_ok = !space.entry_.empty() && !std::isdigit(static_cast<unsigned char>(space.entry_[0])) &&
                        std::all_of(space.entry_.begin(), space.entry_.end(), [](char c) {
                          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
                        });
  if (!entry_ok)
    reader.fail("entry '" + space.entry_ + "' is not a qualified C++ name",
                "name the device function template, e.g. \"fusetune::ffma::fused_linear\"");

  for (const std::string& name : reader.string_list(document, "dtypes", top)) {
    const auto dtype = parse_dtype(name);
    if (!dtype) reader.fail("unknown dtype '" + name + "' in dtypes", "use fp32, bf16 or fp16");
    space.dtypes_.push_back(*dtype);
  }
  for (const std::string& name : reader.string_list(document, "policies", top)) {
    const auto policy = parse_policy(name);
    if (!policy) reader.fail("unknown policy '" + name + "' in policies", "use highest, high or half");
    space.policies_.push_back(*policy);
  }

  // Knobs.
  const json& knobs = reader.require(document, "knobs", top);
  if (!knobs.is_array() || knobs.empty())
    reader.fail("'knobs' must be a non-empty array, found " + FileReader::type_name(knobs) +
                    (knobs.is_array() ? " with no elements" : ""),
                "declare each knob as {\"name\", \"abbrev\", \"values\", \"doc\"}");
  std::set<std::string> knob_names, abbrevs;
  std::int64_t product = 1;
  for (std::size_t i = 0; i < knobs.size(); ++i) {
    const std::string where = "knobs[" + std::to_string(i) + "]";
    const json& entry = knobs[i];
    if (!entry.is_object())
      reader.fail(where + " is " + FileReader::type_name(entry) + ", not an object",
                  "declare it as {\"name\", \"abbrev\", \"values\", \"doc\"}");
    reader.check_fields(entry, where, {"name", "abbrev", "values", "doc"});
    KnobSpec knob;
    knob.name = reader.string_field(entry, "name", where);
    knob.abbrev = reader.string_field(entry, "abbrev", where);
    knob.doc = reader.string_field(entry, "doc", where, /*required=*/false);
    const bool reserved =
        std::any_of(std::begin(kShapeNames), std::end(kShapeNames), [&](const char* s) { return knob.name == s; }) ||
        std::any_of(std::begin(kFunctionNames), std::end(kFunctionNames),
                    [&](const char* s) { return knob.name == s; });
    if (!is_identifier(knob.name) || reserved)
      reader.fail(where + " name '" + knob.name + "' cannot be used in expressions",
                  "use letters, digits and '_', not starting with a digit, and none of m, n, k, min, max, ceil_div");
    if (!is_alnum_word(knob.abbrev))
      reader.fail(where + " '" + knob.name + "' has abbrev '" + knob.abbrev + "'",
                  "use letters and digits starting with a letter ('_' separates the parts of config names)");
    if (!knob_names.insert(knob.name).second)
      reader.fail("duplicate knob name '" + knob.name + "' at " + where, "give each knob its own name");
    if (!abbrevs.insert(knob.abbrev).second)
      reader.fail("duplicate abbrev '" + knob.abbrev + "' at " + where + " ('" + knob.name + "')",
                  "give each knob its own abbrev, so that config names stay readable");
    const json& values = reader.require(entry, "values", where);
    if (!values.is_array())
      reader.fail(where + ".values is " + FileReader::type_name(values) + ", not an array",
                  "list the knob's integer values");
    if (values.empty())
      reader.fail(where + " '" + knob.name + "' has an empty values list", "give it at least one value");
    for (std::size_t j = 0; j < values.size(); ++j) {
      const json& value = values[j];
      const std::string at = where + ".values[" + std::to_string(j) + "]";
      if (!value.is_number_integer())
        reader.fail(at + " is " + FileReader::type_name(value) + ", not an integer", "use whole numbers");
      // Unsigned JSON numbers above INT64_MAX would wrap; template parameters are int.
      if (value.is_number_unsigned() && value.get<std::uint64_t>() > std::uint64_t(INT_MAX))
        reader.fail(at + " is out of range", "use values that fit an int");
      const std::int64_t number = value.get<std::int64_t>();
      if (number < INT_MIN || number > INT_MAX) reader.fail(at + " is out of range", "use values that fit an int");
      if (std::find(knob.values.begin(), knob.values.end(), number) != knob.values.end())
        reader.fail(at + " repeats the value " + std::to_string(number) + " of '" + knob.name + "'",
                    "list each value once");
      knob.values.push_back(number);
    }
    product *= static_cast<std::int64_t>(knob.values.size());
    if (product > kMaxProductSize)
      reader.fail("the knobs' product has more than " + std::to_string(kMaxProductSize) + " configs",
                  "split the family or remove values");
    space.knobs_.push_back(std::move(knob));
  }

  // template_args: every knob exactly once, in the template's parameter order, plus
  // constants written verbatim (integers, or named constants fusetune::kName).
  const std::string permutation_todo =
      "list every knob exactly once, in the order of the template's parameters (constants: integers or "
      "fusetune::kName)";
  const json& args = reader.require(document, "template_args", top);
  if (!args.is_array() || args.empty())
    reader.fail("'template_args' is " + FileReader::type_name(args) + (args.is_array() ? " that is empty" : "") +
                    ", not a list of template arguments",
                permutation_todo);
  std::set<std::string> seen_args;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const json& arg = args[i];
    const std::string where = "template_args[" + std::to_string(i) + "]";
    if (arg.is_number_integer()) {
      space.template_args_.push_back({"", arg.dump()});
      continue;
    }
    if (!arg.is_string())
      reader.fail(where + " is " + FileReader::type_name(arg) + ", not a knob name or a constant", permutation_todo);
    const std::string text = arg.get<std::string>();
    if (text.rfind("fusetune::k", 0) == 0 && is_identifier(text.substr(std::string("fusetune::").size()))) {
      space.template_args_.push_back({"", text});
      continue;
    }
    if (!knob_names.count(text))
      reader.fail("template_args names '" + text + "', which is not a knob", permutation_todo);
    if (!seen_args.insert(text).second) reader.fail("template_args lists '" + text + "' twice", permutation_todo);
    space.template_args_.push_back({text, ""});
  }
  for (const KnobSpec& knob : space.knobs_)
    if (!seen_args.count(knob.name)) reader.fail("template_args lacks knob '" + knob.name + "'", permutation_todo);

  // The launch contract and the weight preparation (both optional).
  const std::string launch = reader.string_field(document, "launch", top, false);
  if (launch == "tensor_map") {
    space.launch_ = LaunchContract::kTensorMap;
    for (const char* needed : {"tile_m", "tile_n"})
      if (!knob_names.count(needed))
        reader.fail(std::string("launch 'tensor_map' needs a knob '") + needed + "'",
                    "declare it: it sets the rows of the TMA boxes of x (tile_m) and w (tile_n)");
  } else if (!launch.empty() && launch != "plain") {
    reader.fail("unknown launch '" + launch + "'",
                "use \"plain\" (FusedLinearArgs) or \"tensor_map\" (HopperLinearArgs)");
  }
  const std::string prep = reader.string_field(document, "weight_prep", top, false);
  if (prep == "tf32_split") {
    space.weight_prep_ = WeightPrep::kTf32Split;
    if (space.dtypes_ != std::vector<Dtype>{Dtype::kFloat32})
      reader.fail("weight_prep 'tf32_split' splits fp32 weights", "make dtypes [\"fp32\"]");
  } else if (!prep.empty() && prep != "none") {
    reader.fail("unknown weight_prep '" + prep + "'", "use \"none\" or \"tf32_split\"");
  }
  const std::string tma_type = reader.string_field(document, "tma_operand_type", top, false);
  if (tma_type == "tf32") {
    space.tma_operand_type_ = TmaOperandType::kTf32;
    if (space.launch_ != LaunchContract::kTensorMap)
      reader.fail("tma_operand_type 'tf32' describes TMA maps", "use it with launch \"tensor_map\"");
    if (space.dtypes_ != std::vector<Dtype>{Dtype::kFloat32})
      reader.fail("tma_operand_type 'tf32' rounds fp32 operands", "make dtypes [\"fp32\"]");
  } else if (!tma_type.empty() && tma_type != "native") {
    reader.fail("unknown tma_operand_type '" + tma_type + "'", "use \"native\" or \"tf32\"");
  }

  // Expressions: constraints and block sizes see knobs; the grid and shape constraints
  // also see m, n, k.
  std::vector<std::string> knob_list(knob_names.begin(), knob_names.end());
  const std::string knob_description = "the knob names (" + join(knob_list, ", ") + ")";
  const std::string shape_description = "the knob names and m, n, k";
  std::set<std::string> with_shape_names = knob_names;
  with_shape_names.insert(std::begin(kShapeNames), std::end(kShapeNames));
  // The grid may also depend on the device (persistent kernels launch one block per SM).
  const std::string grid_description = "the knob names, m, n, k and sm_count";
  std::set<std::string> grid_names = with_shape_names;
  grid_names.insert(kDeviceName);

  const json& derived = reader.require(document, "derived", top);
  if (!derived.is_object())
    reader.fail("'derived' is " + FileReader::type_name(derived) + ", not an object",
                "map threads, smem_bytes, grid_x, grid_y (and optionally grid_z) to expressions");
  std::vector<std::string> derived_names;
  for (const DerivedField& field : kDerivedFields) derived_names.push_back(field.name);
  reader.check_fields(derived, "derived", derived_names);
  for (const DerivedField& field : kDerivedFields) {
    const std::string text = reader.string_field(derived, field.name, "derived", field.required);
    if (!derived.contains(field.name)) continue;
    const std::string where = std::string("derived.") + field.name;
    space.derived_[field.name] = text;
    space.derived_expressions_.emplace(field.name, field.uses_shape
                                                       ? reader.expression(text, where, grid_names, grid_description)
                                                       : reader.expression(text, where, knob_names, knob_description));
  }

  const auto read_constraints = [&](const char* key, std::vector<ConstraintSpec>& specs,
                                    std::vector<Expression>& expressions, const std::set<std::string>& allowed,
                                    const std::string& allowed_description) {
    const auto found = document.find(key);
    if (found == document.end()) return;
    if (!found->is_array())
      reader.fail(std::string("'") + key + "' is " + FileReader::type_name(*found) + ", not an array",
                  "list {\"expr\", \"why\"} objects");
    for (std::size_t i = 0; i < found->size(); ++i) {
      const json& entry = (*found)[i];
      const std::string where = std::string(key) + "[" + std::to_string(i) + "]";
      if (!entry.is_object())
        reader.fail(where + " is " + FileReader::type_name(entry) + ", not an object",
                    "write {\"expr\": ..., \"why\": ...}");
      reader.check_fields(entry, where, {"expr", "why"});
      ConstraintSpec spec{reader.string_field(entry, "expr", where), reader.string_field(entry, "why", where)};
      expressions.push_back(reader.expression(spec.expr, where + ".expr", allowed, allowed_description));
      specs.push_back(std::move(spec));
    }
  };
  read_constraints("constraints", space.constraints_, space.constraint_expressions_, knob_names, knob_description);
  read_constraints("shape_constraints", space.shape_constraints_, space.shape_constraint_expressions_, with_shape_names,
                   shape_description);
  return space;
}

bool SearchSpace::supports(Dtype dtype, Policy policy) const {
  return std::find(dtypes_.begin(), dtypes_.end(), dtype) != dtypes_.end() &&
         std::find(policies_.begin(), policies_.end(), policy) != policies_.end();
}

bool SearchSpace::has_knob(const std::string& name) const {
  return std::any_of(knobs_.begin(), knobs_.end(), [&](const KnobSpec& knob) { return knob.name == name; });
}

void SearchSpace::check_knobs(const KnobValues& knobs) const {
  for (const auto& [name, value] : knobs) {
    const bool known =
        std::any_of(knobs_.begin(), knobs_.end(), [&](const KnobSpec& knob) { return knob.name == name; });
    if (!known) throw UsageError("family '" + family_ + "' has no knob '" + name + "'");
  }
  for (const KnobSpec& knob : knobs_) {
    const auto found = knobs.find(knob.name);
    if (found == knobs.end()) throw UsageError("config of family '" + family_ + "' lacks knob '" + knob.name + "'");
    if (std::find(knob.values.begin(), knob.values.end(), found->second) == knob.values.end()) {
      std::vector<std::string> allowed;
      for (const std::int64_t value : knob.values) allowed.push_back(std::to_string(value));
      throw UsageError("knob '" + knob.name + "' of family '" + family_ + "' cannot be " +
                       std::to_string(found->second) + " (allowed: " + join(allowed, ", ") + ")");
    }
  }
}

KernelConfig SearchSpace::make_config(const KnobValues& knobs) const {
  check_knobs(knobs);
  return KernelConfig{family_, config_name(family_, knobs_, knobs), knobs};
}

KernelConfig SearchSpace::config_from_name(const std::string& name) const {
  const auto fail = [&](const std::string& what) -> KernelConfig {
    throw UsageError("'" + name + "' is not a config name of family '" + family_ + "': " + what + " (expected e.g. " +
                     config_name(family_, knobs_,
                                 [this] {
                                   KnobValues first;
                                   for (const KnobSpec& knob : knobs_) first[knob.name] = knob.values.front();
                                   return first;
                                 }()) +
                     ")");
  };
  const std::string prefix = family_ + "_";
  if (name.rfind(prefix, 0) != 0) return fail("it does not start with '" + prefix + "'");
  std::vector<std::string> parts;
  std::stringstream rest(name.substr(prefix.size()));
  for (std::string part; std::getline(rest, part, '_');) parts.push_back(part);
  if (parts.size() != knobs_.size())
    return fail("it has " + std::to_string(parts.size()) + " parts, the family " + std::to_string(knobs_.size()) +
                " knobs");
  KnobValues knobs;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const KnobSpec& knob = knobs_[i];
    const std::string& part = parts[i];
    std::int64_t value = 0;
    const char* digits = part.data() + knob.abbrev.size();
    const char* end = part.data() + part.size();
    const bool prefixed = part.size() > knob.abbrev.size() && part.rfind(knob.abbrev, 0) == 0;
    if (!prefixed || std::from_chars(digits, end, value).ptr != end)
      return fail("part '" + part + "' is not '" + knob.abbrev + "' followed by a value of " + knob.name);
    knobs[knob.name] = value;
  }
  return make_config(knobs);
}

std::int64_t SearchSpace::evaluate(const Expression& expression, const KnobValues& values,
                                   const std::string& context) const {
  try {
    return expression.evaluate(values);
  } catch (const ExpressionError& error) {
    std::string shape;
    for (const char* name : kShapeNames)
      if (const auto found = values.find(name); found != values.end())
        shape += std::string(shape.empty() ? " (" : ", ") + name + "=" + std::to_string(found->second);
    if (!shape.empty()) shape += ")";
    throw DataError(one_line(origin_ + ": " + context + " cannot be evaluated for config " +
                             config_name(family_, knobs_, values) + shape + ": " + error.what() +
                             "; fix the expression so that it is defined for every config"));
  }
}

KnobValues SearchSpace::with_shape(const KnobValues& knobs, const ProblemShape& shape) {
  KnobValues values = knobs;
  values["m"] = shape.m;
  values["n"] = shape.n;
  values["k"] = shape.k;
  return values;
}

std::vector<KernelConfig> SearchSpace::enumerate() const {
  std::vector<KernelConfig> configs;
  // Odometer over the knobs' value indices; the last knob turns fastest, so configs come
  // in declaration order of the knobs and their values.
  std::vector<std::size_t> index(knobs_.size(), 0);
  KnobValues values;
  for (const KnobSpec& knob : knobs_) values[knob.name] = knob.values.front();
  for (;;) {
    bool valid = true;
    for (std::size_t i = 0; i < constraint_expressions_.size() && valid; ++i)
      valid = evaluate(constraint_expressions_[i], values, "constraints[" + std::to_string(i) + "]") != 0;
    if (valid) configs.push_back(KernelConfig{family_, config_name(family_, knobs_, values), values});
    std::size_t position = knobs_.size();
    while (position > 0) {
      --position;
      const KnobSpec& knob = knobs_[position];
      if (++index[position] < knob.values.size()) {
        values[knob.name] = knob.values[index[position]];
        break;
      }
      index[position] = 0;
      values[knob.name] = knob.values.front();
      if (position == 0) return configs;
    }
  }
}

std::vector<KernelConfig> SearchSpace::valid_configs(const DeviceLimits& limits) const {
  std::vector<KernelConfig> configs = enumerate();
  std::erase_if(configs, [&](const KernelConfig& config) { return check_device(config, limits).has_value(); });
  return configs;
}

bool SearchSpace::admits(const KernelConfig& config) const {
  if (config.family != family_) return false;
  try {
    return !check_constraints(config);
  } catch (const UsageError&) {
    return false;  // a knob or value this space does not declare
  }
}

std::optional<std::string> SearchSpace::check_constraints(const KernelConfig& config) const {
  if (config.family != family_) throw UsageError("config '" + config.name + "' is not of family '" + family_ + "'");
  check_knobs(config.knobs);
  for (std::size_t i = 0; i < constraint_expressions_.size(); ++i) {
    if (evaluate(constraint_expressions_[i], config.knobs, "constraints[" + std::to_string(i) + "]") == 0)
      return constraints_[i].expr + ": " + constraints_[i].why;
  }
  return std::nullopt;
}

std::optional<std::string> SearchSpace::check_device(const KernelConfig& config, const DeviceLimits& limits) const {
  if (config.family != family_) throw UsageError("config '" + config.name + "' is not of family '" + family_ + "'");
  check_knobs(config.knobs);
  const std::int64_t threads = evaluate(derived_expressions_.at("threads"), config.knobs, "derived.threads");
  const std::int64_t smem = evaluate(derived_expressions_.at("smem_bytes"), config.knobs, "derived.smem_bytes");
  if (threads < 1) return config.name + " has " + std::to_string(threads) + " threads per block; at least 1 is needed";
  if (threads > limits.max_threads_per_block)
    return config.name + " needs " + std::to_string(threads) + " threads per block, more than the device's " +
           "max_threads_per_block of " + std::to_string(limits.max_threads_per_block);
  if (smem < 0) return config.name + " has a negative shared-memory size (" + std::to_string(smem) + " bytes)";
  if (smem > limits.max_smem_per_block)
    return config.name + " needs " + std::to_string(smem) + " bytes of shared memory per block, more than the " +
           "device's max_smem_per_block of " + std::to_string(limits.max_smem_per_block);
  return std::nullopt;
}

std::optional<std::string> SearchSpace::check_shape(const KernelConfig& config, const ProblemShape& shape) const {
  if (config.family != family_) throw UsageError("config '" + config.name + "' is not of family '" + family_ + "'");
  check_knobs(config.knobs);
  const KnobValues values = with_shape(config.knobs, shape);
  for (std::size_t i = 0; i < shape_constraint_expressions_.size(); ++i) {
    if (evaluate(shape_constraint_expressions_[i], values, "shape_constraints[" + std::to_string(i) + "]") == 0)
      return shape_constraints_[i].expr + ": " + shape_constraints_[i].why;
  }
  return std::nullopt;
}

LaunchGeometry SearchSpace::launch_geometry(const KernelConfig& config, const ProblemShape& shape,
                                            const DeviceLimits& limits) const {
  if (config.family != family_) throw UsageError("config '" + config.name + "' is not of family '" + family_ + "'");
  check_knobs(config.knobs);
  KnobValues values = with_shape(config.knobs, shape);
  values[kDeviceName] = limits.sm_count;
  const auto value_of = [&](const std::string& name, std::int64_t fallback) {
    const auto found = derived_expressions_.find(name);
    return found == derived_expressions_.end() ? fallback : evaluate(found->second, values, "derived." + name);
  };
  LaunchGeometry geometry;
  const std::int64_t threads = value_of("threads", 0);
  if (threads < INT_MIN || threads > INT_MAX)
    throw DataError(origin_ + ": derived.threads is " + std::to_string(threads) + " for config " + config.name +
                    ", outside the int range; fix the expression");
  geometry.threads = static_cast<int>(threads);
  geometry.smem_bytes = value_of("smem_bytes", 0);
  geometry.grid_x = value_of("grid_x", 1);
  geometry.grid_y = value_of("grid_y", 1);
  geometry.grid_z = value_of("grid_z", 1);
  return geometry;
}

}  // namespace fusetune
