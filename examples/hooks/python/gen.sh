#!/bin/sh
# gen.sh [OUTDIR] generates the Python stubs of respawner's hook protocol,
# hooks_pb2.py and hooks_pb2_grpc.py, from pkg/hooks/proto/hooks.proto into
# OUTDIR (default: build/ beside this script, where maintenance.py looks for
# them), with Debian's python3-grpc-tools. The stubs are generated where the
# hook runs, not committed: they must match the protobuf runtime installed
# there, and hooks.proto stays the one source.
#
#   HOOKS_PROTO  the .proto (default: ../../../pkg/hooks/proto/hooks.proto from here)
#   PYTHON       the interpreter (default: /usr/bin/python3, Debian's)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
proto=${HOOKS_PROTO:-$here/../../../pkg/hooks/proto/hooks.proto}
python=${PYTHON:-/usr/bin/python3}

if ! "$python" -c 'import grpc_tools.protoc' 2>/dev/null; then
	echo "gen.sh: $python cannot import grpc_tools: apt-get install python3-grpc-tools" >&2
	exit 1
fi
[ -f "$proto" ] || { echo "gen.sh: no $proto (set HOOKS_PROTO)" >&2; exit 1; }
mkdir -p "$out"
# -I is the .proto's own directory, so that hooks_pb2_grpc.py imports
# hooks_pb2 as a top-level module, found on maintenance.py's sys.path.
"$python" -m grpc_tools.protoc -I "$(dirname "$proto")" \
	--python_out="$out" --grpc_python_out="$out" "$(basename "$proto")"
echo "gen.sh: generated $out/hooks_pb2.py $out/hooks_pb2_grpc.py"
