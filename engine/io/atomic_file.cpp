#include "engine/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

#include "engine/error.h"

namespace vimoe::io {

namespace {
std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }
}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes, const char* who) {
  VIMOE_CHECK(!path.empty(), who, ": empty output path");
  static std::atomic<unsigned> counter{0};
  const std::string tmp =
      path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  VIMOE_CHECK(fd >= 0, who, ": cannot write ", path, ": creating ", tmp, " failed: ",
              errno_text(errno));
  auto fail = [&](const char* what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    VIMOE_FAIL(who, ": cannot write ", path, ": ", what, " ", tmp, " failed: ", errno_text(err));
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("writing", n < 0 ? errno : EIO);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail("syncing", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    VIMOE_FAIL(who, ": cannot write ", path, ": closing ", tmp, " failed: ", errno_text(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    VIMOE_FAIL(who, ": cannot write ", path, ": renaming ", tmp, " over it failed: ",
               errno_text(err));
  }
}

}  // namespace vimoe::io
