#!/usr/bin/env sh
# Put GraphiQL's browser assets (from the npm registry) into the package, so /graphql works
# offline. Needs npm and tar; without npm the page falls back to a public CDN. The assets are
# build artefacts: never committed, shipped in the wheel and the Docker image.
#   sh scripts/fetch-graphiql.sh [TARGET_DIR]
set -eu

TARGET="${1:-src/bookql/server/static/graphiql}"
GRAPHIQL=graphiql@3.8.3
REACT=react@18.3.1
REACT_DOM=react-dom@18.3.1

if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-graphiql: npm not found; GraphiQL will load its assets from a CDN" >&2
    exit 0
fi
if [ -f "$TARGET/graphiql.min.js" ] && [ -f "$TARGET/VERSIONS" ] &&
    [ "$(cat "$TARGET/VERSIONS")" = "$GRAPHIQL $REACT $REACT_DOM" ]; then
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$GRAPHIQL" "$REACT" "$REACT_DOM" >/dev/null)
mkdir -p "$work/out" "$TARGET"
tar -xzf "$work"/graphiql-*.tgz -C "$work/out" package/graphiql.min.js package/graphiql.min.css
tar -xzf "$work"/react-1*.tgz -C "$work/out" package/umd/react.production.min.js
tar -xzf "$work"/react-dom-*.tgz -C "$work/out" package/umd/react-dom.production.min.js
cp "$work/out/package/graphiql.min.js" "$work/out/package/graphiql.min.css" \
    "$work/out/package/umd/react.production.min.js" \
    "$work/out/package/umd/react-dom.production.min.js" "$TARGET/"
echo "$GRAPHIQL $REACT $REACT_DOM" > "$TARGET/VERSIONS"
echo "fetch-graphiql: GraphiQL assets in $TARGET" >&2
