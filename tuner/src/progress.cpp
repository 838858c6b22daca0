// Progress bar drawing. Hand-written: Debian packages no C++ progress-bar library, and
// this needs only a line of text.
#include "progress.h"

#include <unistd.h>

namespace fusetune {

namespace {
std::string format_duration(double seconds) {
  const long total = static_cast<long>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof text, "%ld:%02ld", total / 60, total % 60);
  return text;
}
}  // namespace

ProgressBar::ProgressBar(int total, std::FILE* out, bool enabled)
    : total_(total), out_(out), enabled_(enabled), terminal_(isatty(fileno(out)) != 0) {
  draw(true);
}

void ProgressBar::advance(bool ok) {
  ++done_;
  (ok ? ok_ : failed_)++;
  draw(false);
}

void ProgressBar::draw(bool force) {
  if (!enabled_ || total_ <= 0) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string eta = done_ > 0 ? format_duration(elapsed / done_ * (total_ - done_)) : "?";
  const int percent = 100 * done_ / total_;
  if (terminal_) {
    constexpr int kWidth = 28;
    const int filled = kWidth * done_ / total_;
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
    std::fprintf(out_, "\r\033[K[%s] %d/%d ok %d failed %d ETA %s%s%s", bar.c_str(), done_, total_, ok_, failed_,
                 eta.c_str(), best_.empty() ? "" : " best ", best_.c_str());
    std::fflush(out_);
    return;
  }
  // Not a terminal: a line every 10 percent (and at the start and the end).
  if (!force && percent / 10 == last_percent_printed_ / 10 && done_ != total_) return;
  last_percent_printed_ = percent;
  std::fprintf(out_, "progress %d/%d (%d%%) ok %d failed %d elapsed %s ETA %s%s%s\n", done_, total_, percent, ok_,
               failed_, format_duration(elapsed).c_str(), eta.c_str(), best_.empty() ? "" : " best ", best_.c_str());
  std::fflush(out_);
}

void ProgressBar::finish() {
  if (!enabled_ || total_ <= 0) return;
  if (terminal_) {
    std::fprintf(out_, "\n");
  } else if (last_percent_printed_ != 100) {
    last_percent_printed_ = 99;
    draw(true);
  }
  std::fflush(out_);
}

}  // namespace fusetune
