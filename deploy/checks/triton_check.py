#!/usr/bin/env python3
"""Checks a Triton model directory written by `melfuse-train export --triton` against the bundle.

    triton_check.py MODEL_DIR BUNDLE_DIR

config.pbtxt is parsed with Triton's own ModelConfig protobuf schema (model_config_pb2 from the
`tritonclient` wheel), strictly, so a misspelt field or enum fails as it would when Triton loads
it; then every field is compared with BUNDLE_DIR/manifest.json: name, ONNX Runtime backend,
input/output names, FP32 types and shapes without the batch axis (max_batch_size > 0), dynamic
batching, and 1/model.onnx byte-identical to the manifest's sha256.
"""

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import tritonclient
from google.protobuf import text_format


def model_config_pb2():
    """Triton's ModelConfig messages, loaded from the file so tritonclient.grpc (and grpcio) are
    not imported."""
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(model_dir, bundle_dir):
    pb = model_config_pb2()
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), pb.ModelConfig())
    problems = []

    def expect(what, found, wanted):
        if found != wanted:
            problems.append(f"{what}: config.pbtxt has {found!r}, the manifest implies {wanted!r}")

    expect("name", config.name, manifest["name"])
    expect("model directory", model_dir.name, manifest["name"])
    expect("backend", config.backend, "onnxruntime")
    expect("platform", config.platform, "onnxruntime_onnx")
    if config.max_batch_size < 1:
        problems.append("max_batch_size must be > 0 (the decoder has a dynamic batch axis)")
    for side, tensors in [("input", config.input), ("output", config.output)]:
        declared = manifest["onnx"][side + "s"]
        expect(f"{side} names", [t.name for t in tensors], [d["name"] for d in declared])
        for tensor, spec in zip(tensors, declared):
            expect(f"{side} {tensor.name} data_type", pb.DataType.Name(tensor.data_type), "TYPE_FP32")
            if isinstance(spec["shape"][0], int):
                problems.append(f"{side} {tensor.name}: the manifest's first axis is not the symbolic batch axis")
            expect(f"{side} {tensor.name} dims (batch axis left out)", list(tensor.dims), spec["shape"][1:])
    latent, genres = manifest["latent_dim"], len(manifest["genres"])
    expect("z dims vs latent_dim", list(config.input[0].dims), [latent])
    expect("genre dims vs genres", list(config.input[1].dims), [genres])
    n_mels = manifest["signal"]["n_mels"]
    expect("mel dims[0:2] vs n_mels", list(config.output[0].dims)[:2], [1, n_mels])
    if not config.HasField("dynamic_batching"):
        problems.append("no dynamic_batching")
    else:
        preferred = list(config.dynamic_batching.preferred_batch_size)
        if not preferred or max(preferred) > config.max_batch_size or preferred != sorted(set(preferred)):
            problems.append(f"preferred_batch_size {preferred} must be increasing and ≤ max_batch_size")
    model = model_dir / "1" / "model.onnx"
    if not model.is_file():
        problems.append("1/model.onnx is missing")
    elif hashlib.sha256(model.read_bytes()).hexdigest() != manifest["onnx"]["sha256"]:
        problems.append("1/model.onnx is not the bundle's decoder (sha256 differs from the manifest)")
    if problems:
        for problem in problems:
            print(f"FAILED {model_dir / 'config.pbtxt'}: {problem}", file=sys.stderr)
        return 1
    print(
        f"triton: {model_dir} — backend onnxruntime, max_batch_size {config.max_batch_size}, "
        f"inputs z[{latent}] genre[{genres}], output mel{list(config.output[0].dims)}, "
        f"preferred batches {list(config.dynamic_batching.preferred_batch_size)}, model.onnx = decoder.onnx"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(check(Path(sys.argv[1]), Path(sys.argv[2])))
