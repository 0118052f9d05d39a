#!/usr/bin/env bash
# gen.sh regenerates the Go code of proto/ into gen/ (or into the directory
# given), with buf and the protoc plugins at the exact versions below, built
# from the Go module proxy into a cache directory on first use.
#
#   bash scripts/gen.sh            # rewrite gen/
#   bash scripts/gen.sh /tmp/out   # write elsewhere (test.sh's staleness check)
set -Eeuo pipefail

BUF=github.com/bufbuild/buf/cmd/buf@v1.75.0
PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_CONNECT_GO=connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out=${1:-$root/gen}
case $out in /*) ;; *) out=$PWD/$out ;; esac

# The tools are keyed by their versions, so a new pin rebuilds them.
key=$(printf '%s\n' "$BUF" "$PROTOC_GEN_GO" "$PROTOC_GEN_CONNECT_GO" "$(go env GOVERSION)" | sha256sum | cut -c1-12)
bin=${TRAIL_GEN_BIN:-$root/.cache/gen-tools/$key}
if [[ ! -x $bin/buf || ! -x $bin/protoc-gen-go || ! -x $bin/protoc-gen-connect-go ]]; then
	mkdir -p "$bin"
	for tool in "$BUF" "$PROTOC_GEN_GO" "$PROTOC_GEN_CONNECT_GO"; do
		GOBIN=$bin GOFLAGS=-buildvcs=false go install "$tool"
	done
fi

# buf writes relative to proto/; generate into a scratch tree and move it,
# so that a failed run leaves the output as it was.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/trail-gen.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
(cd proto && PATH="$bin:$PATH" "$bin/buf" generate --template buf.gen.yaml -o "$scratch")
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$scratch/gen" "$out"
