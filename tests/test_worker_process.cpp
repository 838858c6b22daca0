// The tuner's side of fault isolation, without a GPU: stand-in workers that answer, die
// or hang show that a death or a hang becomes a status and a fresh worker serves on.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "test_support.h"
#include "worker.h"

namespace fusetune::testing {
namespace {

/// Writes an executable shell script that plays the worker.
std::string script(const TempDir& dir, const std::string& name, const std::string& body) {
  const std::string path = dir.file(name);
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  chmod(path.c_str(), 0755);
  return path;
}

TEST(WorkerProcess, ReturnsTheAnswerOfAHealthyWorker) {
  TempDir dir;
  WorkerProcess worker(script(dir, "echo.sh", "while read line; do echo '{\"ok\":true,\"n\":7}'; done"), 0);
  const auto answer = worker.request({{"op", "device"}}, 10);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->at("n"), 7);
  EXPECT_TRUE(worker.running());
  EXPECT_EQ(worker.failure(), WorkerProcess::Failure::kNone);
}

TEST(WorkerProcess, AHangIsATimeoutAndTheWorkerIsKilled) {
  TempDir dir;
  WorkerProcess worker(script(dir, "hang.sh", "read line; sleep 600"), 0);
  const auto start = std::chrono::steady_clock::now();
  const auto answer = worker.request({{"op", "trial"}}, 1.0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(answer.has_value());
  EXPECT_EQ(worker.failure(), WorkerProcess::Failure::kTimedOut);
  EXPECT_LT(seconds, 5.0);
  EXPECT_FALSE(worker.running());
}

TEST(WorkerProcess, ADeathIsReportedWithItsSignalAndLastWords) {
  TempDir dir;
  WorkerProcess worker(script(dir, "die.sh", "read line; echo 'illegal memory access' >&2; kill -SEGV $$"), 0);
  const auto answer = worker.request({{"op", "trial"}}, 10);
  EXPECT_FALSE(answer.has_value());
  EXPECT_EQ(worker.failure(), WorkerProcess::Failure::kDied);
  EXPECT_NE(worker.failure_detail().find("signal 11"), std::string::npos) << worker.failure_detail();
  EXPECT_NE(worker.failure_detail().find("illegal memory access"), std::string::npos) << worker.failure_detail();
}

TEST(WorkerProcess, AFreshWorkerServesAfterADeath) {
  TempDir dir;
  // The first instance dies on its first request; later instances answer.
  const std::string marker = dir.file("died-once");
  WorkerProcess worker(script(dir, "flaky.sh",
                              "if [ ! -e " + marker + " ]; then touch " + marker +
                                  "; read line; exit 3; fi\nwhile read line; do echo '{\"ok\":true}'; done"),
                       0);
  EXPECT_FALSE(worker.request({{"op", "trial"}}, 10).has_value());
  EXPECT_EQ(worker.failure(), WorkerProcess::Failure::kDied);
  EXPECT_NE(worker.failure_detail().find("code 3"), std::string::npos);
  const auto answer = worker.request({{"op", "trial"}}, 10);
  ASSERT_TRUE(answer.has_value());
  EXPECT_TRUE(answer->at("ok").get<bool>());
}

}  // namespace
}  // namespace fusetune::testing
