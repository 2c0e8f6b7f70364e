// One include for users of the engine.
#pragma once
#include "engine/autograd.h"
#include "engine/cuda/allocator.h"
#include "engine/cuda/runtime.h"
#include "engine/error.h"
#include "engine/gradcheck.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/tensor.h"
