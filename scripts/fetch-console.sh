#!/usr/bin/env sh
# Put the web console's browser libraries (from the npm registry) into the package, so
# /console works offline. Needs npm and tar; without them /console says how to install them
# (it never loads anything from a CDN). Build artefacts: never committed, shipped in the wheel
# and the Docker image, like GraphiQL's (scripts/fetch-graphiql.sh).
#   sh scripts/fetch-console.sh [TARGET_DIR]
set -eu

TARGET="${1:-src/bookql/server/static/console}"
UPLOT=uplot@1.6.32

if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-console: npm not found; /console will say how to install its libraries" >&2
    exit 0
fi
if [ -f "$TARGET/uPlot.esm.js" ] && [ -f "$TARGET/VERSIONS" ] &&
    [ "$(cat "$TARGET/VERSIONS")" = "$UPLOT" ]; then
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$UPLOT" >/dev/null)
mkdir -p "$work/out" "$TARGET"
tar -xzf "$work"/uplot-*.tgz -C "$work/out" package/dist/uPlot.esm.js package/dist/uPlot.min.css \
    package/LICENSE
cp "$work/out/package/dist/uPlot.esm.js" "$work/out/package/dist/uPlot.min.css" "$TARGET/"
cp "$work/out/package/LICENSE" "$TARGET/uPlot.LICENSE"
echo "$UPLOT" > "$TARGET/VERSIONS"
echo "fetch-console: console libraries in $TARGET" >&2
