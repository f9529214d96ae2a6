# The relive control protocol, version 1 (wire::kProtocolVersion): the messages relived agents
# exchange over an authenticated channel (src/security/tls_channel.h) before and during a
# migration. This comment is the one description of the framing; src/wire/protocol_codec.*
# implements it and src/wire/protocol_types.h holds the plain C++ types.
#
# A connection carries a sequence of frames, each:
#   offset  size  field
#        0     4  magic "RLPM"
#        4     2  protocol version (1)
#        6     2  message kind: 1 hello, 2 request, 3 ack, 4 error (must match the union below)
#        8     4  payload length (at least 8, a multiple of 8, at most 16 MiB)
#       12     4  xxhash32 of frame bytes 0..11 followed by the payload
#       16     -  the payload: one Cap'n Proto message (flat array) whose root is Envelope
# On a TLS connection the server first sends the 8 bytes "RLVAUTH1", once it has verified the
# client's certificate; the client reads them before anything else. (TLS 1.3 completes the
# client's handshake before the server judges the client, so without this a refused client
# would only learn of it from a later read.) Plaintext connections have no such prefix.
#
# All integers are little-endian; xxhash32 is XXH32 with seed 0x52454c56 ("RELV"). A reader
# checks the magic and the version before anything else, bounds the length before allocating,
# then checks the checksum, then decodes. The magic and version keep their offsets in every
# protocol version.
#
# Requests carry a 128-bit random nonce and the sender's wall-clock time so that a receiver
# can refuse replays (security::ReplayGuard). Bulk data (pages, disk blocks) never travels
# inside these messages; it follows them as LZ4 segments.
#
# Evolution: only add fields and union members; never renumber, retype or reuse an ordinal.

@0xa41c9e5d7b3f2068;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("relive::wire");

# 128 bits of randomness, unique per request.
struct Nonce {
  hi @0 :UInt64;
  lo @1 :UInt64;
}

# First message of each side on a new connection.
struct Hello {
  nodeName @0 :Text;
  nonce @1 :Nonce;
  timestampNs @2 :Int64;  # unix time, nanoseconds
}

# A command for the peer's agent (e.g. "migrate.prepare"). `body` is opaque to the framing.
struct Request {
  command @0 :Text;
  nonce @1 :Nonce;
  timestampNs @2 :Int64;  # unix time, nanoseconds
  body @3 :Data;
}

# The request with sequence number `requestSeq` was accepted.
struct Ack {
  requestSeq @0 :UInt64;
  detail @1 :Text;   # what a command that answers with a document says (ha.status: JSON)
  reply @2 :Data;    # a typed reply: schemas/migration.capnp MigrationReply, flat; empty: none
}

# The request with sequence number `requestSeq` was refused or failed.
struct Error {
  requestSeq @0 :UInt64;
  code @1 :UInt32;  # relive::Status::Code
  message @2 :Text;
}

struct Envelope {
  protocolVersion @0 :UInt16;
  sequence @1 :UInt64;  # per connection and direction: 0, 1, 2, ...
  body :union {
    hello @2 :Hello;
    request @3 :Request;
    ack @4 :Ack;
    error @5 :Error;
  }
}
