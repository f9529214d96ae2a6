// Single Cap'n Proto messages as flat byte strings (segment table included), read with the
// limits that make hostile bytes safe. Internal to src/wire/: it includes Cap'n Proto library
// headers, so only src/wire/*.cc include it.
#pragma once

#include <capnp/blob.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fmt/format.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "relive/result.h"

namespace relive::wire {

// Views of std::string as Cap'n Proto Data and Text, and back. Text is built with an explicit
// size: the implicit std::string conversion goes through c_str() and would cut at a NUL.
inline kj::ArrayPtr<const kj::byte> as_data(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}
inline capnp::Text::Reader as_text(const std::string& s) {
  return capnp::Text::Reader(s.c_str(), s.size());
}
inline std::string to_string(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}
inline std::string to_string(capnp::Text::Reader t) { return std::string(t.begin(), t.size()); }

// The flat-array encoding of a built message.
std::string to_flat_bytes(capnp::MessageBuilder& builder);

// A word-aligned view of message bytes. Cap'n Proto reads words in place, so bytes at an
// unaligned address (a string_view into a larger buffer) are copied once into aligned storage.
// `bytes` must stay alive while this object is in use.
class AlignedWords {
 public:
  // bytes.size() must be a multiple of 8.
  explicit AlignedWords(std::string_view bytes);
  kj::ArrayPtr<const capnp::word> words() const { return view_; }

 private:
  kj::Array<capnp::word> copy_;
  kj::ArrayPtr<const capnp::word> view_;
};

// Limits for reading a message of `size` bytes: the traversal limit is a small multiple of the
// input, so a message cannot make the reader walk (and copy) far more data than it holds.
capnp::ReaderOptions reader_options_for(size_t size);

// Decodes `bytes` as one message whose root is `Root` and returns fn(root reader), a Result.
// Cap'n Proto validates lazily and reports bad input by throwing kj::Exception from the
// reader's constructor, from getRoot() and from fn's accessors; every such exception becomes
// Corruption here, so nothing escapes to the caller.
template <typename Root, typename Fn>
auto decode_flat(std::string_view bytes, Fn&& fn)
    -> decltype(fn(std::declval<typename Root::Reader>())) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return Status::Corruption(
        fmt::format("message of {} bytes is not a whole number of words", bytes.size()));
  }
  AlignedWords aligned(bytes);
  try {
    capnp::FlatArrayMessageReader reader(aligned.words(), reader_options_for(bytes.size()));
    if (reader.getEnd() != aligned.words().end()) {
      return Status::Corruption("trailing bytes after message");
    }
    return std::forward<Fn>(fn)(reader.getRoot<Root>());
  } catch (const kj::Exception& e) {
    return Status::Corruption(std::string("malformed message: ") + e.getDescription().cStr());
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("malformed message: ") + e.what());
  }
}

}  // namespace relive::wire
