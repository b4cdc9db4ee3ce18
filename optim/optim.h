// Everything in optim/: optimizers (SGD, Adam, AdamW), gradient clipping and lr schedules.
#pragma once

#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
