// vimoe::Error: the one exception type for bad input, corrupt files and device failures.
// Messages say what was expected and what was found, e.g.
//   "matmul: inner dimensions differ: a is [2, 3], b is [4, 5]".
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace vimoe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace vimoe

// VIMOE_CHECK(cond, parts...): throw vimoe::Error with the concatenated parts when cond fails.
#define VIMOE_CHECK(cond, ...)                                          \
  do {                                                                  \
    if (!(cond)) throw ::vimoe::Error(::vimoe::detail::concat(__VA_ARGS__)); \
  } while (0)

#define VIMOE_FAIL(...) throw ::vimoe::Error(::vimoe::detail::concat(__VA_ARGS__))
