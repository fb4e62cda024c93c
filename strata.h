// Strata: the whole public API in one include.
//
//     #include "strata.h"          // compile with -I<path to strata>, link with -L<strata>/build -lstrata
//
// framework/ is the machine: tensors and storage on devices (tensor.h, device.h), the kernel tables ops dispatch
// through (dispatch.h), reverse-mode autograd (autograd.h), modules and the layer registry (module.h, registry.h),
// SGD and the poly schedule (optimizer.h), safetensors I/O (safetensors.h), the random generator (random.h),
// the parallel-for (parallel.h), TensorBoard event files (tensorboard.h), and the communicators and data-parallel
// helpers of multi-process training (communicator.h, data_parallel.h). layers/ holds one header per op, each with its Tensor-level function, its module
// where it has one, and its kernel signatures. docs/overview.md is the map.
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
#include "framework/random.h"
#include "framework/registry.h"
#include "framework/safetensors.h"
#include "framework/tensorboard.h"
#include "framework/tensor.h"

#include "layers/adaptive_avg_pool2d.h"
#include "layers/add.h"
#include "layers/avgpool2d.h"
#include "layers/batchnorm2d.h"
#include "layers/concat.h"
#include "layers/conv2d.h"
#include "layers/cross_entropy.h"
#include "layers/dropout2d.h"
#include "layers/linear.h"
#include "layers/maxpool2d.h"
#include "layers/mean.h"
#include "layers/mul.h"
#include "layers/relu.h"
#include "layers/sum.h"
#include "layers/upsample_bilinear2d.h"
