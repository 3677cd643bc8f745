// runtime/file_text.hpp — the whole of a file as text, for the few places that read one at once
// (the deployment file, TLS certificates, the kernel's socket tables).
#pragma once

#include <optional>
#include <string>

namespace actorserve {

/// The whole of the file at `path` (bytes as they are), or nullopt where it cannot be opened.
std::optional<std::string> read_file(const std::string& path);

} // namespace actorserve
