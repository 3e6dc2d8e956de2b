#!/usr/bin/env sh
# Create (or refresh) a virtual environment and install bookql into it.
# Used by `make`, by .ci/run and by the Dockerfile, so all three install the same way.
#   VENV=.venv EXTRAS=dev PYTHON=python3 sh scripts/install.sh
set -eu

VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-}"
EDITABLE="${EDITABLE:-1}"

pick_python() {
    for candidate in ${PYTHON:-} python3 python3.14 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "install.sh: bookql needs Python 3.11 or newer; none found (set PYTHON=...)" >&2
    return 1
}

if [ ! -x "$VENV/bin/python" ]; then
    python="$(pick_python)"
    "$python" -m venv "$VENV"
fi

spec="."
[ -n "$EXTRAS" ] && spec=".[${EXTRAS}]"

# GraphiQL's and the console's assets first, so that a non-editable install (the Docker
# image) ships them.
sh "$(dirname "$0")/fetch-graphiql.sh" || echo "install.sh: GraphiQL assets unavailable; using the CDN" >&2
sh "$(dirname "$0")/fetch-console.sh" || echo "install.sh: console libraries unavailable; /console says how to add them" >&2

"$VENV/bin/python" -m pip install --quiet --upgrade pip
if [ "$EDITABLE" = "1" ]; then
    "$VENV/bin/python" -m pip install --quiet -e "$spec"
else
    "$VENV/bin/python" -m pip install --quiet "$spec"
fi
