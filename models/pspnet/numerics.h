// The training loop's guard against silently wrong numbers: the state it checks for NaN and Inf (parameters, their
// gradients, BatchNorm's running statistics, the momentum buffers), each under a name a user can look up, and the
// error that stops the run.
//
// The loop checks the loss every step (it reads it anyway) and the gradients and the whole state after every
// optimizer step, in one fused count (framework/finite.h: one pass over the memory, one synchronisation); the
// checkpoint writer checks again before writing, so a checkpoint on disk never holds a NaN or an Inf.
#pragma once

#include <cstdint>
#include <string>

#include "framework/module.h"
#include "framework/optimizer.h"

namespace strata::pspnet {

// The parameters and buffers of model (state_dict names) and the optimizer's momentum buffers, named
// "momentum of <parameter name>".
NamedTensors training_state(const Module& model, const SGD& optimizer);
// The parameters' gradients, named "gradient of <parameter name>" (parameters without one are left out).
NamedTensors named_gradients(const Module& model);

// Throws "<context>: <the first non-finite tensor, its count and first index>. <advice>" if any tensor holds NaN
// or Inf; does nothing otherwise.
void require_finite(const NamedTensors& tensors, const std::string& context, const std::string& advice);

}  // namespace strata::pspnet
