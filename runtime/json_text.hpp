// Text that goes into JSON the node writes (error bodies, JSON log lines) often carries bytes a
// client sent: a request target, a header, a model name. JSON text must be UTF-8, so bytes that
// are not valid UTF-8 become U+FFFD (as a decoder replacing errors would show them) instead of
// making the whole answer unparseable.
#pragma once

#include <string>
#include <string_view>

namespace actorserve {

/// `s` with every byte sequence that is not valid UTF-8 (stray continuation bytes, truncated or
/// overlong sequences, surrogates, code points past U+10FFFF) replaced by U+FFFD.
std::string valid_utf8(std::string_view s);

/// `s` as a quoted, escaped JSON string; invalid UTF-8 replaced as valid_utf8 does.
std::string json_quote(std::string_view s);

} // namespace actorserve
