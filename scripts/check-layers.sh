#!/usr/bin/env bash
# Checks that every #include "..." under src/ and include/relive/ follows the layer order written
# in src/CMakeLists.txt (the "# layer:" lines, lowest first). A file may include:
#   - headers of its own folder;
#   - headers of folders on a lower layer line;
#   - the public API (relive/...);
#   - generated Cap'n Proto headers (schemas/..., *.capnp.h) only from src/wire/.
# Folders on the same line are siblings and may not include each other. Public headers in
# include/relive/ include only public headers.
# Prints file:line: the offending include and why, and exits 1 when there is any.
# Usage: scripts/check-layers.sh [source root]   (default: the repository this script lives in)
set -euo pipefail

root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
order_file="$root/src/CMakeLists.txt"
[[ -f $order_file ]] || { echo "check-layers: $order_file not found" >&2; exit 2; }

layers=$(awk '/^# layer:/ { sub(/^# layer:[ \t]*/, ""); print }' "$order_file")
[[ -n $layers ]] || { echo "check-layers: no '# layer:' lines in $order_file" >&2; exit 2; }

# Every folder under src/ that holds sources must have a layer.
status=0
while IFS= read -r dir; do
  folder=${dir#"$root/src/"}
  if ! awk -v f="$folder" '{ for (i = 1; i <= NF; i++) if ($i == f) found = 1 }
                           END { exit !found }' <<<"$layers"; then
    echo "$order_file: folder src/$folder has no '# layer:' line"
    status=1
  fi
done < <(find "$root/src" -type f \( -name '*.h' -o -name '*.cc' -o -name '*.c' \) \
           -printf '%h\n' | sort -u)

files=$(find "$root/src" "$root/include/relive" -type f \( -name '*.h' -o -name '*.cc' -o -name '*.c' \) | sort)
# shellcheck disable=SC2086
grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' $files /dev/null | awk -v root="$root/" -v layers="$layers" '
  BEGIN {
    n = split(layers, lines, "\n")
    for (l = 1; l <= n; l++) {
      k = split(lines[l], names, /[ \t]+/)
      for (j = 1; j <= k; j++) if (names[j] != "") level[names[j]] = l
    }
    bad = 0
  }
  # The listed folder that is the longest prefix of path (a directory path), or "".
  function folder_of(path,    f, best) {
    best = ""
    for (f in level)
      if ((path == f || index(path, f "/") == 1) && length(f) > length(best)) best = f
    return best
  }
  function report(why) {
    printf "%s:%s: %s  (%s)\n", rel, lineno, text, why
    bad = 1
  }
  {
    # grep -Hn output: FILE:LINE:TEXT (file names here hold no colon).
    file = $0; sub(/:.*/, "", file)
    rest = substr($0, length(file) + 2)
    lineno = rest; sub(/:.*/, "", lineno)
    text = substr(rest, length(lineno) + 2)
    sub(/^[ \t]+/, "", text)
    inc = text; sub(/^#[ \t]*include[ \t]*"/, "", inc); sub(/".*/, "", inc)
    rel = substr(file, length(root) + 1)

    if (index(rel, "include/relive/") == 1) {
      if (index(inc, "relive/") != 1) report("public headers include only relive/ headers")
      next
    }
    dir = rel; sub(/^src\//, "", dir); sub(/\/[^\/]*$/, "", dir)
    me = folder_of(dir)
    if (inc ~ /\.capnp\.h$/ || index(inc, "schemas/") == 1) {
      if (me != "wire") report("only src/wire/ includes Cap\047n Proto headers")
      next
    }
    if (index(inc, "relive/") == 1) next  # the public API, below every layer
    if (index(inc, "/") == 0) next         # a header of the same folder
    incdir = inc; sub(/\/[^\/]*$/, "", incdir)
    them = folder_of(incdir)
    if (them == "") { report("includes a folder with no layer in src/CMakeLists.txt"); next }
    if (them == me) next
    if (level[them] > level[me]) report(me " (layer " level[me] ") includes higher layer " them " (layer " level[them] ")")
    else if (level[them] == level[me]) report(me " and " them " are siblings on layer " level[me])
  }
  END { exit bad }
' || status=1

if [[ $status -ne 0 ]]; then
  echo "check-layers: includes against the layer order in src/CMakeLists.txt (see docs/architecture.md)" >&2
fi
exit "$status"
