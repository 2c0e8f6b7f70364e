// Whole-file writes that readers never see half done.
#pragma once
#include <string>
#include <string_view>

namespace vimoe::io {

// Writes `bytes` to a fresh temporary file beside `path` (path.tmp.<pid>.<n>), syncs it and
// renames it over `path`: readers see the old file or the complete new one, and a failure
// removes the temporary. Throws vimoe::Error naming `who`, the path and the system's reason.
void write_file_atomic(const std::string& path, std::string_view bytes, const char* who);

}  // namespace vimoe::io
