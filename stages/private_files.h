// Local files that hold a table's data (the journal's before-images, dead letters): private to
// the user (folders 0700, files 0600, whatever the umask) and durable (each call returns once
// its effect survives a crash: data fsynced, and new names fsynced in their folder). Errors
// throw dynamorph::Error "<who>: <what> <path>: <reason>". Any thread; calls on different files
// are independent, calls on one file are the caller's to order.
#pragma once

#include <filesystem>
#include <string_view>

namespace dynamorph::stages {

// Creates `dir` and any missing parents (each new one 0700), durably.
void make_private_folder(const std::filesystem::path& dir, std::string_view who);
// Replaces `file` at once with `bytes` (a temporary file beside it, then rename).
void replace_private_file(const std::filesystem::path& file, std::string_view bytes,
                          std::string_view who);
// Appends `bytes` to `file`, creating it when missing.
void append_private_file(const std::filesystem::path& file, std::string_view bytes,
                         std::string_view who);

}  // namespace dynamorph::stages
