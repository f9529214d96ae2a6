// A fast epoch's images travel as one file, the patch bundle (relive-patch.img): the threads'
// states, the rewritten pagemaps and the patched tcp-stream images, each as a name and its bytes.
// One file keeps the epoch's shipping and the backup's commit independent of how many
// connections the workload has; the backup unpacks it over the base's images only when it builds
// them for a restore. relive's own format: the names and lengths are checked, as the bundle
// comes from the primary over the network.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "relive/result.h"

namespace relive::ha {

inline constexpr const char* kPatchBundle = "relive-patch.img";

using BundleFiles = std::vector<std::pair<std::string, std::string>>;  // name, content

std::string encode_patch_bundle(const BundleFiles& files);
// Corruption when `bundle` is not well formed or names something other than a plain file name.
Result<BundleFiles> decode_patch_bundle(std::string_view bundle);

// Checks that every file of the bundle is one a fast epoch carries and decodes: the threads'
// states, pagemaps, tcp-stream images. Corruption otherwise; the backup refuses such an epoch
// rather than find out at a takeover.
Status check_patch_bundle(const BundleFiles& files);

// If `images_dir` holds a patch bundle, writes its files there (replacing their namesakes) and
// removes it.
Status unpack_patch_bundle(const std::string& images_dir);

}  // namespace relive::ha
