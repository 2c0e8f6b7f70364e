#include "apps/common/main_guard.h"

#include <cstdio>
#include <exception>
#include <new>

#include "engine/error.h"

namespace vimoe::app {

int guarded_main(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of host memory\n", program);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: error: an unknown exception\n", program);
  }
  return 1;
}

}  // namespace vimoe::app
