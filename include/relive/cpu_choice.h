// Which CPU a recording or replay binds its tracer and the traced program to (see
// src/tracee/cpu_binding.h for why): one chosen among those allowed, none, or a CPU number.
#pragma once

namespace relive {

inline constexpr int kAnyCpu = -1;  // one of the CPUs the tracer may run on, picked at random
inline constexpr int kNoCpu = -2;   // no binding

}  // namespace relive
