#!/usr/bin/env bash
# The serve images' build steps as a plain script. deploy/Dockerfile.serve and
# deploy/Dockerfile.serve-cuda run exactly this in their build stage, and deploy/validate runs it
# in CI (no Docker engine there), so a step that breaks fails CI rather than the next `docker build`.
#
#   deploy/build-serve.sh [--gpu] OUT
#
# Builds melfuse-serve (release, --locked), installs the pinned ONNX Runtime wheel from PyPI
# (serve/onnxruntime; --gpu: onnxruntime-gpu, whose CUDA execution provider needs the CUDA and
# cuDNN libraries of the runtime image) and stages everything the runtime image holds:
#
#   OUT/bin/melfuse-serve
#   OUT/lib/libonnxruntime.so -> libonnxruntime.so.<version>  (the ORT_DYLIB_PATH of the image)
#   OUT/lib/libonnxruntime_providers_{shared,cuda}.so          (--gpu only)
#   OUT/models/demo/{manifest.json,decoder.onnx,latent_bank.bin,preview.png,CREDITS.md}  (demo)
#
# Needs a Rust toolchain, Python 3 with venv, and network access to crates.io and PyPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

variant=cpu
if [ "${1:-}" = "--gpu" ]; then
    variant=gpu
    shift
fi
if [ $# -ne 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
step() { echo "deploy/build-serve.sh: $*" >&2; }

# 1. The demo bundle first: it is cheap to check and the image is useless without it.
demo="$root/models/demo"
for file in manifest.json decoder.onnx; do
    if [ ! -f "$demo/$file" ]; then
        step "missing $demo/$file: the image bakes in the demo bundle (models/demo, see README)"
        exit 1
    fi
done

# 2. The service, with the locked dependencies.
step "building melfuse-serve (release, --locked)"
cargo build --release --locked -p melfuse-serve --manifest-path "$root/Cargo.toml"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
binary="$target_dir/release/melfuse-serve"

# 3. ONNX Runtime: the pinned wheel's shared libraries, nothing of its Python API.
flag=()
if [ "$variant" = gpu ]; then flag=(--gpu); fi
step "installing the pinned ONNX Runtime ($variant) with serve/onnxruntime"
library=$("$root/serve/onnxruntime" "${flag[@]}")
capi=$(dirname "$library")

# 4. Stage.
rm -rf "${out:?}/bin" "${out:?}/lib" "${out:?}/models"
mkdir -p "$out/bin" "$out/lib" "$out/models/demo"
install -m 0755 "$binary" "$out/bin/melfuse-serve"
# The release profile keeps line tables (debug = 1) for profiling; the image does not need them
# (about 90 MB of the binary's 100). Symbols stay, so backtraces still name functions.
if command -v strip >/dev/null; then
    strip --strip-debug "$out/bin/melfuse-serve"
else
    step "no \`strip\` (binutils): the binary keeps its debug line tables"
fi
cp "$library" "$out/lib/"
ln -s "$(basename "$library")" "$out/lib/libonnxruntime.so"
if [ "$variant" = gpu ]; then
    # The CUDA provider is loaded by ONNX Runtime from the directory of libonnxruntime.so. The
    # TensorRT provider is left out: it needs TensorRT, which the image does not carry.
    for provider in libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
        if [ ! -f "$capi/$provider" ]; then
            step "the onnxruntime-gpu wheel has no $provider"
            exit 1
        fi
        cp "$capi/$provider" "$out/lib/"
    done
fi
# The latent bank is part of the bundle (the manifest hashes it); CREDITS.md is the attribution its
# training music's licences require wherever the bundle is distributed.
for file in manifest.json decoder.onnx latent_bank.bin preview.png CREDITS.md; do
    if [ -f "$demo/$file" ]; then cp "$demo/$file" "$out/models/demo/"; fi
done

# 5. The staged binary runs (deploy/validate then serves the demo model from OUT).
"$out/bin/melfuse-serve" --version >&2
step "staged into $out: $(du -sh "$out" | cut -f1)"
