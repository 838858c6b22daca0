// A one-line progress bar for long tuning runs: counts, ETA and the best so far. Redrawn
// in place on a terminal; on a pipe or file it prints a plain line every few percent.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace fusetune {

class ProgressBar {
 public:
  /// `enabled` false prints nothing (--quiet).
  ProgressBar(int total, std::FILE* out, bool enabled);
  /// Records one more finished item.
  void advance(bool ok);
  /// The best result so far, shown at the end of the line.
  void set_best(const std::string& text) { best_ = text; }
  /// Ends the bar with a newline (terminal) or a last line.
  void finish();

 private:
  void draw(bool force);
  int total_;
  int done_ = 0, ok_ = 0, failed_ = 0;
  std::FILE* out_;
  bool enabled_, terminal_;
  int last_percent_printed_ = -1;
  std::string best_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace fusetune
