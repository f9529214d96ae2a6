@0xd3c6a2b1e4f50917;
# placeholder, replaced by the trace schema
struct Placeholder { x @0 :UInt8; }
