#include "record/codec.h"
