// The one rule for names that reach the system from a configuration, a command line or a peer
// (network namespaces, interface names, container names, peer names): they become arguments of
// `ip`, file names under /run/netns, /proc/sys paths and runc container ids, so they hold only
// [A-Za-z0-9._-], never start with '-' (an option to the tool) or '.' ("..", hidden files), and
// are short. A name that passes is safe as one argv element and as one path component.
#pragma once

#include <cstddef>
#include <string_view>

#include "relive/status.h"

namespace relive {

// Longest name accepted by default; interface names have their own limit (kMaxInterfaceName).
constexpr size_t kMaxSafeName = 64;
// IFNAMSIZ - 1.
constexpr size_t kMaxInterfaceName = 15;

// Ok, or InvalidArgument naming `kind` and quoting `value`:
// "network namespace 'a;b': may hold only letters, digits, '.', '_' and '-'".
Status check_name(std::string_view kind, std::string_view value, size_t max_len = kMaxSafeName);

}  // namespace relive
