#include "drivers/criu/tcp_stream_image.h"

#include <fmt/format.h>

#include <array>
#include <vector>

#include "drivers/criu/pb_reader.h"

namespace relive::criu {
namespace {

constexpr uint32_t kImgCommonMagic = 0x54564319;  // criu/include/magic.h
// A TcpStreamEntry is under 100 bytes; this leaves room for fields CRIU may add.
constexpr uint32_t kMaxEntryBytes = 64 * 1024;

// Field numbers of images/tcp-stream.proto's tcp_stream_entry.
enum Field : uint32_t {
  kInqLen = 1,
  kInqSeq = 2,
  kOutqLen = 3,
  kOutqSeq = 4,
  kOptMask = 5,
  kSndWscale = 6,
  kMssClamp = 7,
  kRcvWscale = 8,
  kTimestamp = 9,
  kCork = 10,
  kNodelay = 11,
  kUnsqLen = 12,
  kSndWl1 = 13,
  kSndWnd = 14,
  kMaxWindow = 15,
  kRcvWnd = 16,
  kRcvWup = 17,
  kLastKnown = 17,
};

// The fields patch_tcp_stream_image() replaces.
bool is_dynamic(uint32_t f) {
  return f == kInqLen || f == kInqSeq || f == kOutqLen || f == kOutqSeq || f == kTimestamp ||
         (f >= kUnsqLen && f <= kRcvWup);
}

// One field of the entry as it stands in the file.
struct RawField {
  uint32_t number = 0;
  uint64_t value = 0;      // varint fields only
  std::string_view bytes;  // key and value, verbatim
};

// The image cut into its parts.
struct Parts {
  std::string_view header;  // the magic(s)
  std::string_view entry;   // the TcpStreamEntry, without its length
  std::string_view queues;  // everything after the entry
};

bool read_varint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    auto byte = static_cast<uint8_t>((*in)[0]);
    in->remove_prefix(1);
    *v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

Status corrupt(std::string_view what) {
  return Status::Corruption(fmt::format("tcp-stream image: {}", what));
}

Result<Parts> split(std::string_view image) {
  Parts p;
  size_t at = 0;
  if (image.size() >= 4 && pb::le32(image, 0) == kImgCommonMagic) at = 4;
  if (image.size() < at + 8 || pb::le32(image, at) != kTcpStreamMagic)
    return corrupt("bad magic or truncated header");
  p.header = image.substr(0, at + 4);
  uint32_t len = pb::le32(image, at + 4);
  std::string_view rest = image.substr(at + 8);
  if (len > kMaxEntryBytes || len > rest.size())
    return corrupt(fmt::format("entry of {} bytes does not fit the {} left", len, rest.size()));
  p.entry = rest.substr(0, len);
  p.queues = rest.substr(len);
  return p;
}

// Known fields must be varints; unknown ones may be of any wire type but a group.
Result<std::vector<RawField>> scan(std::string_view entry) {
  std::vector<RawField> out;
  while (!entry.empty()) {
    std::string_view start = entry;
    uint64_t key, v = 0;
    if (!read_varint(&entry, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
      return corrupt("bad field key");
    RawField f;
    f.number = static_cast<uint32_t>(key >> 3);
    uint32_t type = key & 7;
    bool ok = true;
    if (type == 0) {
      ok = read_varint(&entry, &v);
    } else if (type == 2) {
      ok = read_varint(&entry, &v) && v <= entry.size();
      if (ok) entry.remove_prefix(v);
    } else if (type == 1 || type == 5) {
      size_t n = type == 1 ? 8 : 4;
      ok = n <= entry.size();
      if (ok) entry.remove_prefix(n);
    } else {
      ok = false;
    }
    if (!ok)
      return corrupt(fmt::format("field {} is truncated or of wire type {}", f.number, type));
    if (f.number <= kLastKnown && (type != 0 || v > UINT32_MAX))
      return corrupt(fmt::format("field {} is not a uint32 varint", f.number));
    f.value = v;
    f.bytes = start.substr(0, start.size() - entry.size());
    out.push_back(f);
  }
  return out;
}

using Values = std::array<std::optional<uint32_t>, kLastKnown + 1>;

Values latest(const std::vector<RawField>& fields) {
  Values v;
  for (const RawField& f : fields)
    if (f.number <= kLastKnown) v[f.number] = static_cast<uint32_t>(f.value);  // last one wins
  return v;
}

Result<TcpStreamImage> from_values(const Values& v, std::string_view queues) {
  for (uint32_t f = kInqLen; f <= kMssClamp; ++f)
    if (!v[f]) return corrupt(fmt::format("required field {} is missing", f));
  TcpStreamImage img;
  TcpStreamState& s = img.stream;
  s.opt_mask = *v[kOptMask];
  s.inq_seq = *v[kInqSeq];
  s.outq_seq = *v[kOutqSeq];
  s.unsq_len = v[kUnsqLen].value_or(0);
  s.timestamp = v[kTimestamp];
  if (v[kSndWnd])
    s.window = TcpWindow{v[kSndWl1].value_or(0), *v[kSndWnd], v[kMaxWindow].value_or(0),
                         v[kRcvWnd].value_or(0), v[kRcvWup].value_or(0)};
  img.snd_wscale = *v[kSndWscale];
  img.mss_clamp = *v[kMssClamp];
  img.rcv_wscale = v[kRcvWscale];
  if (v[kCork]) img.cork = *v[kCork] != 0;
  if (v[kNodelay]) img.nodelay = *v[kNodelay] != 0;
  img.has_unsq_len = v[kUnsqLen].has_value();
  uint64_t inq = *v[kInqLen], outq = *v[kOutqLen];
  if (inq + outq != queues.size())
    return corrupt(fmt::format("queues of {}+{} bytes, but {} bytes follow the entry", inq, outq,
                               queues.size()));
  if (s.unsq_len > outq) return corrupt("more unsent bytes than the send queue holds");
  s.inq.assign(queues.substr(0, inq));
  s.outq.assign(queues.substr(inq));
  return img;
}

void put_varint(std::string* out, uint64_t v) {
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    out->push_back(static_cast<char>(v != 0 ? b | 0x80 : b));
  } while (v != 0);
}

void put_field(std::string* out, uint32_t number, uint64_t value) {
  put_varint(out, uint64_t{number} << 3);
  put_varint(out, value);
}

void put_u32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// The value `now` gives dynamic field `f`, if any.
std::optional<uint32_t> dynamic_value(const TcpStreamState& now, uint32_t f) {
  const std::optional<TcpWindow>& w = now.window;
  switch (f) {
    case kInqLen:
      return static_cast<uint32_t>(now.inq.size());
    case kInqSeq:
      return now.inq_seq;
    case kOutqLen:
      return static_cast<uint32_t>(now.outq.size());
    case kOutqSeq:
      return now.outq_seq;
    case kTimestamp:
      return now.timestamp;
    case kUnsqLen:
      return now.unsq_len;
    case kSndWl1:
      return w ? std::optional(w->snd_wl1) : std::nullopt;
    case kSndWnd:
      return w ? std::optional(w->snd_wnd) : std::nullopt;
    case kMaxWindow:
      return w ? std::optional(w->max_window) : std::nullopt;
    case kRcvWnd:
      return w ? std::optional(w->rcv_wnd) : std::nullopt;
    case kRcvWup:
      return w ? std::optional(w->rcv_wup) : std::nullopt;
    default:
      return std::nullopt;
  }
}

Status check_fits(const TcpStreamImage& base, const TcpStreamState& now) {
  if (now.opt_mask != base.stream.opt_mask)
    return Status::InvalidArgument(fmt::format(
        "connection options {:#x} differ from the base image's {:#x}: not the same connection",
        now.opt_mask, base.stream.opt_mask));
  if ((now.opt_mask & kTcpiOptTimestamps) != 0 && !now.timestamp)
    return Status::InvalidArgument("timestamps were negotiated but no timestamp was captured");
  if (now.unsq_len > now.outq.size())
    return Status::InvalidArgument("more unsent bytes than the send queue holds");
  if (now.inq.size() + now.outq.size() > UINT32_MAX)
    return Status::InvalidArgument("queues too large for a tcp-stream image");
  return Status::Ok();
}

}  // namespace

Result<TcpStreamImage> decode_tcp_stream_image(std::string_view image) {
  RELIVE_ASSIGN_OR_RETURN(Parts p, split(image));
  RELIVE_ASSIGN_OR_RETURN(std::vector<RawField> fields, scan(p.entry));
  return from_values(latest(fields), p.queues);
}

Result<std::string> patch_tcp_stream_image(std::string_view base_image, const TcpStreamState& now) {
  RELIVE_ASSIGN_OR_RETURN(Parts p, split(base_image));
  RELIVE_ASSIGN_OR_RETURN(std::vector<RawField> fields, scan(p.entry));
  RELIVE_ASSIGN_OR_RETURN(TcpStreamImage base, from_values(latest(fields), p.queues));
  RELIVE_RETURN_IF_ERROR(check_fits(base, now));
  // Each dynamic field goes where its first occurrence was (CRIU writes them in number order);
  // later duplicates are dropped, and ones the base lacks are appended.
  std::string entry;
  std::array<bool, kLastKnown + 1> written{};
  auto put_dynamic = [&](uint32_t f) {
    written[f] = true;
    if (std::optional<uint32_t> v = dynamic_value(now, f)) put_field(&entry, f, *v);
  };
  for (const RawField& f : fields) {
    if (!is_dynamic(f.number)) {
      entry.append(f.bytes);
    } else if (!written[f.number]) {
      put_dynamic(f.number);
    }
  }
  for (uint32_t f = 1; f <= kLastKnown; ++f)
    if (is_dynamic(f) && !written[f]) put_dynamic(f);
  std::string out(p.header);
  put_u32(&out, static_cast<uint32_t>(entry.size()));
  out += entry;
  out += now.inq;
  out += now.outq;
  return out;
}

std::string encode_tcp_stream_image(const TcpStreamImage& image) {
  const TcpStreamState& s = image.stream;
  Values v;
  for (uint32_t f = 1; f <= kLastKnown; ++f) v[f] = dynamic_value(s, f);
  if (!image.has_unsq_len) v[kUnsqLen].reset();
  v[kOptMask] = s.opt_mask;
  v[kSndWscale] = image.snd_wscale;
  v[kMssClamp] = image.mss_clamp;
  v[kRcvWscale] = image.rcv_wscale;
  if (image.cork) v[kCork] = *image.cork ? 1 : 0;
  if (image.nodelay) v[kNodelay] = *image.nodelay ? 1 : 0;
  std::string entry;
  for (uint32_t f = 1; f <= kLastKnown; ++f)
    if (v[f]) put_field(&entry, f, *v[f]);
  std::string out;
  put_u32(&out, kImgCommonMagic);
  put_u32(&out, kTcpStreamMagic);
  put_u32(&out, static_cast<uint32_t>(entry.size()));
  return out + entry + s.inq + s.outq;
}

}  // namespace relive::criu
