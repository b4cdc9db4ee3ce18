// Everything the autograd layer offers, in one include.
#pragma once

#include "autograd/dot.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/variable.h"
#include "tensor/ops.h"
