// Everything the nn layer offers, in one include.
#pragma once

#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/init.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/loss.h"
#include "nn/module.h"
#include "nn/multihead_attention.h"
#include "nn/rnn.h"
#include "nn/token_packing.h"
#include "nn/transformer.h"
