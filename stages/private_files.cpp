#include "stages/private_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "dynamo/errors.h"

namespace dynamorph::stages {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void sys_fail(std::string_view who, const std::string& what) {
  throw Error(fmt::format("{}: {}: {}", who, what, std::strerror(errno)));
}

void sync_folder(const fs::path& dir, std::string_view who) {
  const fs::path d = dir.empty() ? fs::path(".") : dir;
  int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) sys_fail(who, fmt::format("open {}", d.string()));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) sys_fail(who, fmt::format("fsync {}", d.string()));
}

// Writes all of `bytes`, makes them durable and closes `fd` (also when it throws).
void write_and_close(int fd, std::string_view bytes, const fs::path& file, std::string_view who) {
  auto fail = [&](const char* what) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    sys_fail(who, fmt::format("{} {}", what, file.string()));
  };
  if (::fchmod(fd, 0600) != 0) fail("chmod");  // 0600 whatever the umask
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write");
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fdatasync(fd) != 0) fail("fsync");
  ::close(fd);
}

std::atomic<unsigned> temporary_counter{0};

}  // namespace

void make_private_folder(const fs::path& dir, std::string_view who) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return;
  std::vector<fs::path> made;  // deepest first
  for (auto d = dir; !d.empty() && !fs::exists(d, ec); d = d.parent_path()) made.push_back(d);
  for (auto it = made.rbegin(); it != made.rend(); ++it) {
    if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST)
      sys_fail(who, fmt::format("create {}", it->string()));
    fs::permissions(*it, fs::perms::owner_all, ec);  // 0700 whatever the umask
    if (ec) throw Error(fmt::format("{}: cannot restrict {}: {}", who, it->string(), ec.message()));
    sync_folder(it->parent_path(), who);  // the new entry survives a crash
  }
}

void replace_private_file(const fs::path& file, std::string_view bytes, std::string_view who) {
  const fs::path dir = file.parent_path();
  const fs::path tmp = dir / fmt::format(".{}.tmp{}", file.filename().string(),
                                         temporary_counter.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) sys_fail(who, fmt::format("create {}", tmp.string()));
  write_and_close(fd, bytes, tmp, who);
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    sys_fail(who, fmt::format("rename to {}", file.string()));
  sync_folder(dir, who);
}

void append_private_file(const fs::path& file, std::string_view bytes, std::string_view who) {
  std::error_code ec;
  const bool created = !fs::exists(file, ec);
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) sys_fail(who, fmt::format("open {}", file.string()));
  write_and_close(fd, bytes, file, who);
  if (created) sync_folder(file.parent_path(), who);
}

}  // namespace dynamorph::stages
