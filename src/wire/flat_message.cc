#include "wire/flat_message.h"

#include <cstdint>
#include <cstring>

namespace relive::wire {
namespace {

// Deep enough for every relive schema (Event -> SyscallEvent -> List(MemWrite) -> MemWrite),
// shallow enough that recursion on hostile input stays cheap.
constexpr int kNestingLimit = 16;

}  // namespace

std::string to_flat_bytes(capnp::MessageBuilder& builder) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(builder);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

AlignedWords::AlignedWords(std::string_view bytes) {
  size_t n = bytes.size() / sizeof(capnp::word);
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(capnp::word) == 0) {
    view_ = kj::arrayPtr(reinterpret_cast<const capnp::word*>(bytes.data()), n);
    return;
  }
  copy_ = kj::heapArray<capnp::word>(n);
  std::memcpy(copy_.begin(), bytes.data(), n * sizeof(capnp::word));
  view_ = kj::arrayPtr(static_cast<const capnp::word*>(copy_.begin()), n);
}

capnp::ReaderOptions reader_options_for(size_t size) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 4 * (size / sizeof(capnp::word)) + 64;
  options.nestingLimit = kNestingLimit;
  return options;
}

}  // namespace relive::wire
