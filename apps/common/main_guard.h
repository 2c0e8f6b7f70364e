// The programs' main(): nothing escapes it. Every exception -- the engine's vimoe::Error, a
// library's std::exception (a JSON type error, a filesystem error, bad_alloc), anything else
// -- becomes one line "<program>: error: <what>" on stderr and exit status 1, instead of
// std::terminate's abort. CLI11's parse errors, raised inside `body` by CLI11_PARSE, keep
// CLI11's own report and status.
#pragma once
#include <functional>

namespace vimoe::app {

int guarded_main(const char* program, const std::function<int()>& body);

}  // namespace vimoe::app
