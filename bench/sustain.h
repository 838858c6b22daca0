// Probe only: sustained back-to-back launches while NVML (dlopen'ed) samples the SM clock,
// power and clock-event reasons, to compare the clocks our kernels and cuBLAS's run at.
#pragma once
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

struct Nvml {
  using Init = int (*)();
  using Handle = int (*)(unsigned, void**);
  using Clock = int (*)(void*, int, unsigned*);
  using Power = int (*)(void*, unsigned*);
  using Reasons = int (*)(void*, unsigned long long*);
  using Temp = int (*)(void*, int, unsigned*);
  Clock clock = nullptr;
  Power power = nullptr;
  Reasons reasons = nullptr;
  Temp temp = nullptr;
  void* device = nullptr;
  bool ok = false;
  Nvml() {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!lib) return;
    auto init = (Init)dlsym(lib, "nvmlInit_v2");
    auto handle = (Handle)dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
    clock = (Clock)dlsym(lib, "nvmlDeviceGetClockInfo");
    power = (Power)dlsym(lib, "nvmlDeviceGetPowerUsage");
    reasons = (Reasons)dlsym(lib, "nvmlDeviceGetCurrentClocksEventReasons");
    if (!reasons) reasons = (Reasons)dlsym(lib, "nvmlDeviceGetCurrentClocksThrottleReasons");
    temp = (Temp)dlsym(lib, "nvmlDeviceGetTemperature");
    ok = init && handle && clock && power && reasons && temp && init() == 0 && handle(0, &device) == 0;
  }
};

/// Exits with the call and CUDA's message when a CUDA call in here fails (the probes that
/// include this header each have their own check macro).
inline void sustain_check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  std::fprintf(stderr, "sustain.h: %s failed: %s\n", call, cudaGetErrorString(status));
  std::exit(1);
}
#define SUSTAIN_CHECK(call) sustain_check((call), #call)

struct Sustained {
  double ms = 0, mhz = 0, watts = 0, temp = 0;
  unsigned long long reasons = 0;
  int samples = 0;
};

/// Runs `launch` back to back for `seconds` (after `warm` seconds of the same), timing batches
/// of `batch` launches with events, while a host thread samples NVML every 2 ms.
inline Sustained sustain(const std::function<void()>& launch, double seconds, double warm = 0.3, int batch = 20) {
  static Nvml nvml;
  Sustained r;
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto t0 = now();
  while (std::chrono::duration<double>(now() - t0).count() < warm) {
    for (int i = 0; i < batch; ++i) launch();
    SUSTAIN_CHECK(cudaDeviceSynchronize());
  }
  std::atomic<bool> running{true};
  double mhz = 0, watts = 0, temp = 0;
  unsigned long long reasons = 0;
  int samples = 0;
  std::thread sampler([&] {
    while (running.load()) {
      unsigned c = 0, p = 0, t = 0;
      unsigned long long why = 0;
      if (nvml.ok && nvml.clock(nvml.device, 1, &c) == 0 && nvml.power(nvml.device, &p) == 0 &&
          nvml.reasons(nvml.device, &why) == 0 && nvml.temp(nvml.device, 0, &t) == 0) {
        mhz += c;
        watts += p / 1000.0;
        temp += t;
        reasons |= why;
        ++samples;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  cudaEvent_t a, b;
  SUSTAIN_CHECK(cudaEventCreate(&a));
  SUSTAIN_CHECK(cudaEventCreate(&b));
  std::vector<float> per_launch;
  t0 = now();
  while (std::chrono::duration<double>(now() - t0).count() < seconds) {
    SUSTAIN_CHECK(cudaEventRecord(a));
    for (int i = 0; i < batch; ++i) launch();
    SUSTAIN_CHECK(cudaEventRecord(b));
    SUSTAIN_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    SUSTAIN_CHECK(cudaEventElapsedTime(&ms, a, b));
    per_launch.push_back(ms / batch);
  }
  running = false;
  sampler.join();
  SUSTAIN_CHECK(cudaEventDestroy(a));
  SUSTAIN_CHECK(cudaEventDestroy(b));
  std::sort(per_launch.begin(), per_launch.end());
  r.ms = per_launch[per_launch.size() / 2];
  r.samples = samples;
  if (samples) {
    r.mhz = mhz / samples;
    r.watts = watts / samples;
    r.temp = temp / samples;
  }
  r.reasons = reasons;
  return r;
}

inline void print_sustained(const char* name, const Sustained& s) {
  std::printf("  sustained %-40s %8.4f ms  SM %6.0f MHz  %5.0f W  %3.0f C  reasons 0x%llx  (%d samples)\n", name, s.ms,
              s.mhz, s.watts, s.temp, s.reasons, s.samples);
}
