#!/usr/bin/env bash
# gnet.sh: makes the patched gnet that go.mod's replace directive points at (.build/gnet).
#
#   scripts/gnet.sh            # build .build/gnet unless its stamp is current
#   scripts/gnet.sh pin        # record go.sum's hashes of the version go.mod requires (after a version
#                              # change, or after `go mod tidy` dropped them: a replaced module's sums
#                              # are not kept by tidy)
#
# The version is the one go.mod requires for github.com/panjf2000/gnet/v2. Its pristine release comes
# from the module cache (`go mod download`, which verifies it against go.sum); the build copies it to a
# scratch folder, makes that a git repository with one commit for the release and one per patch, applies
# third_party/gnet/patches/*.patch in name order with `git apply`, and moves it into place. A patch that
# no longer applies stops the build and is named; the scratch folder is left for mending it (see
# third_party/README.md, "Moving the series to a newer gnet"). The stamp (.build/gnet.stamp) holds the
# hash of the version, the release's hash, the patches and this script, so the build reruns only when
# one of them changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
module=github.com/panjf2000/gnet/v2
patches=third_party/gnet/patches
out=.build/gnet
stamp=.build/gnet.stamp

die() { echo "gnet: $*" >&2; exit 1; }
command -v go >/dev/null || die "go is not on PATH (export PATH=\$PATH:/usr/local/go/bin)"
command -v git >/dev/null || die "git is needed to apply the patch series"

version=$(awk -v m="$module" '$1 == m && $2 ~ /^v/ {print $2; exit}' go.mod)
[ -n "$version" ] || die "go.mod requires no version of $module"

# download prints the JSON of `go mod download` for the required version. Run in this module so that
# go.sum's hashes are checked; -mod=mod lets it run while the replacement folder does not exist yet.
download() { GOFLAGS=-mod=mod go mod download -json "$module@$version"; }
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p"; }

if [ "${1:-}" = pin ]; then
	json=$(download) || die "cannot download $module@$version"
	sum=$(field Sum <<<"$json") modsum=$(field GoModSum <<<"$json")
	grep -v "^$module " go.sum >go.sum.new || true
	printf '%s %s %s\n%s %s/go.mod %s\n' "$module" "$version" "$sum" "$module" "$version" "$modsum" >>go.sum.new
	LC_ALL=C sort -o go.sum go.sum.new
	rm -f go.sum.new
	echo "gnet: go.sum pins $module $version $sum"
	exit 0
fi

grep -q "^$module $version h1:" go.sum ||
	die "go.sum does not pin $module $version; run: scripts/gnet.sh pin (make gnet-pin)"

want=$({
	echo "$version"
	grep "^$module $version[ /]" go.sum
	cat "$0"
	for p in "$patches"/*.patch; do echo "$p"; cat "$p"; done
} | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ -d "$out" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi

json=$(download) || die "cannot download $module@$version (go.sum mismatch, or no module proxy)"
src=$(field Dir <<<"$json")
[ -d "$src" ] || die "go mod download gave no folder for $module@$version"

mkdir -p .build
tmp=.build/gnet.tmp
rm -rf "$tmp"
cp -R "$src" "$tmp"
chmod -R u+w "$tmp" # the module cache is read-only
git_() { git -C "$tmp" -c user.name=gnet.sh -c user.email=gnet.sh@localhost -c commit.gpgsign=false "$@"; }
git_ init -q
git_ add -A
git_ commit -qm "$module $version, as released"
n=0
for p in "$patches"/*.patch; do
	if ! git_ apply --whitespace=nowarn "$root/$p"; then
		echo "gnet: $p does not apply to $module $version (after $n patches)." >&2
		echo "gnet: the tree with the patches before it is left in $tmp (a git repository)." >&2
		exit 1
	fi
	git_ add -A
	git_ commit -qm "$(basename "$p")"
	n=$((n + 1))
done
rm -rf "$out"
mv "$tmp" "$out"
echo "$want" >"$stamp"
echo "gnet: $out is $module $version with $n patches"
