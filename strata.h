// Strata: the whole public API in one include.
//
//     #include "strata.h"          // compile with -I<path to strata>, link with -L<strata>/build -lstrata
//
// framework/ is the machine: tensors and storage on devices (tensor.h, device.h), the kernel tables ops dispatch
// through (dispatch.h), reverse-mode autograd (autograd.h), modules and the layer registry (module.h, registry.h),
// SGD and the poly schedule (optimizer.h), safetensors I/O (safetensors.h), the random generator (random.h),
// the parallel-for (parallel.h), TensorBoard event files (tensorboard.h), the communicators and data-parallel
// helpers of multi-process training (communicator.h, data_parallel.h), and the registrations with their owners and
// the plugin loader (registration.h, plugin.h). layers/ holds one header per op, each with its Tensor-level function,
// its module where it has one, and its kernel signatures. docs/overview.md is the map.
#pragma once

#include "framework/autograd.h"
#include "framework/check.h"
#include "framework/communicator.h"
#include "framework/data_parallel.h"
#include "framework/device.h"
#include "framework/dispatch.h"
#include "framework/module.h"
#include "framework/optimizer.h"
#include "framework/parallel.h"
#include "framework/plugin.h"
#include "framework/random.h"
#include "framework/registry.h"
#include "framework/safetensors.h"
#include "framework/tensorboard.h"
#include "framework/tensor.h"

// Every op's header (layers/*.h), listed by make in a generated file (tools/layers_header.sh): a new op needs no
// line here. Found relative to this file, so -I<path to strata> is still all a program needs.
#include "build/gen/strata_layers.h"
