// XXH3-128 from Debian's libxxhash: fast, well-kept, and stable across versions.
#include "hashing.h"

#include <xxhash.h>

#include <cstdio>

namespace fusetune {

std::string content_hash(std::string_view bytes) {
  const XXH128_hash_t hash = XXH3_128bits(bytes.data(), bytes.size());
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(hash.high64),
                static_cast<unsigned long long>(hash.low64));
  return text;
}

}  // namespace fusetune
