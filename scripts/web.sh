#!/usr/bin/env bash
# Builds the web console's assets, resources/web/dist (committed, embedded into
# fvm with go:embed), from the npm packages pinned in resources/web/package-lock.json
# (noVNC, xterm.js), bundled with our page code by esbuild. It works in a temp
# dir, so no node_modules lands in the Go tree.
#   scripts/web.sh          rebuild resources/web/dist
#   scripts/web.sh --check  fail if resources/web/dist is not what the sources build
#   scripts/web.sh --lock   refresh package-lock.json from package.json first
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-build}
src=resources/web
command -v npm >/dev/null || { echo "web: npm is needed (scripts/setup.sh installs it)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src/package.json" "$work/"
cp -r "$src/src" "$work/src"
if [[ $mode == --lock || ! -f $src/package-lock.json ]]; then
	(cd "$work" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error)
	cp "$work/package-lock.json" "$src/package-lock.json"
else
	cp "$src/package-lock.json" "$work/"
	(cd "$work" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
fi
(cd "$work" && npm run -s build)
{
	echo "The fvm web console (console.js, console.css) bundles these npm packages, unmodified;"
	echo "their sources are the packages themselves, at the versions in resources/web/package-lock.json."
	for p in @novnc/novnc:LICENSE.txt @novnc/novnc:vendor/pako/LICENSE @xterm/xterm:LICENSE @xterm/addon-fit:LICENSE; do
		pkg=${p%%:*} file=${p#*:}
		ver=$(cd "$work" && node -p "require('./node_modules/$pkg/package.json').version")
		printf '\n==== %s %s: %s ====\n\n' "$pkg" "$ver" "$file"
		cat "$work/node_modules/$pkg/$file"
	done
} >"$work/dist/THIRD_PARTY_LICENSES.txt"
if [[ $mode == --check ]]; then
	if ! diff -r "$src/dist" "$work/dist" >/dev/null; then
		echo "web: resources/web/dist is not what its sources build: run \`make web\` and commit the result" >&2
		diff -rq "$src/dist" "$work/dist" >&2 || true
		exit 1
	fi
	echo "web: resources/web/dist is up to date"
	exit 0
fi
rm -rf "$src/dist"
cp -r "$work/dist" "$src/dist"
ls -l "$src/dist"
