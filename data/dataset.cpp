#include "data/dataset.h"

#include "engine/error.h"

namespace vimoe::data {

void check_index(const Dataset& dataset, int64_t index) {
  VIMOE_CHECK(index >= 0 && index < dataset.size(), dataset.name(), ": index ", index,
              " out of range [0, ", dataset.size(), ")");
}

}  // namespace vimoe::data
