// What the emulator's own source files share (never included by kernels or backend code).
#pragma once

#include <source_location>
#include <string>

#include "cuda/emu/runtime.h"

namespace cuemu::detail {

enum class Severity { Error, Warning };

// Prints (unless a CaptureReports exists) and counts one report. `message` is complete except for the
// "cuemu error: " / "cuemu warning: " prefix.
void report(Severity severity, const std::string& message);
// A report about a host API call: "<file>:<line>: host: <message>".
void report_host(Severity severity, const std::source_location& where, const std::string& message);
std::string location(const std::source_location& where);  // "file:line"
std::string hex(uint64_t value);                           // "0x1f"

// Device memory, as the emulated cudaMalloc tracks it.
bool is_device_pointer(const void* ptr);
// Checks that [ptr, ptr + bytes) lies inside one live cudaMalloc allocation; reports "<api>: <what> ..." if not.
bool check_device_range(const char* api, const char* what, const void* ptr, size_t bytes,
                        const std::source_location& where);

// This host thread's CUDA error state.
void set_last_error(cudaError_t error);
void set_launch_failed();  // a kernel reported an error: the next synchronize returns cudaErrorLaunchFailure
bool is_valid_stream(cudaStream_t stream);
int current_device();
// The device of the cudaMalloc allocation that contains ptr (-1: not device memory).
int device_of_pointer(const void* ptr);
// The device a stream was created on (the current device for the null stream).
int device_of_stream(cudaStream_t stream);
int max_dynamic_shared(const void* kernel);  // from cudaFuncSetAttribute; 48 KiB by default

}  // namespace cuemu::detail
