#!/usr/bin/env bash
# The servership demo.
#
#   ./demo.sh             MSC4358 in one screen, embedded: `cargo run --example demo` (SQLite only)
#   ./demo.sh --synapse   the same ideas on two real Synapses federating on loopback, each with
#                         servership loaded: builds the wheel, installs it and matrix-synapse into
#                         a scratch venv (target/demo-venv), runs examples/synapse_demo.py
#
# Everything stays on 127.0.0.1; the servers are stopped (by PID) when the demo ends.
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD

case "${1:-}" in
    "") exec cargo run --quiet --example demo ;;
    --synapse) ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--synapse]" >&2; exit 2 ;;
esac

synapse_version=1.163.2   # the release .ci/run tests the module against
venv=${SERVERSHIP_DEMO_VENV:-$root/target/demo-venv}
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv"
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import synapse, sys; sys.exit(synapse.__version__ != '$synapse_version')" 2>/dev/null; then
    echo "installing matrix-synapse $synapse_version and maturin into $venv (about a minute)"
    "$venv/bin/pip" install --quiet "matrix-synapse==$synapse_version" "maturin>=1.9,<2" </dev/null
fi
echo "building the servership wheel"
rm -rf "$root/target/demo-wheels"
"$venv/bin/maturin" build --quiet --out "$root/target/demo-wheels" </dev/null
"$venv/bin/pip" install --quiet --force-reinstall --no-deps "$root"/target/demo-wheels/servership-*.whl </dev/null
# Run from outside the source tree, so the installed wheel is what Synapse loads.
cd "$root/target"
exec "$venv/bin/python" "$root/examples/synapse_demo.py" "$root/target/demo-lab"
