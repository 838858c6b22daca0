// Content hashing (xxHash XXH3-128) for cache keys and template/search-space identity.
#pragma once

#include <string>
#include <string_view>

namespace fusetune {

/// 32 lowercase hex digits of XXH3-128 of the bytes.
std::string content_hash(std::string_view bytes);

}  // namespace fusetune
