#!/usr/bin/env python3
"""Check an ONNX model written by melfuse-proto and run it with ONNX Runtime.

Usage: check_onnx.py MODEL.onnx [--inputs INPUTS.json]

1. onnx.checker.check_model(MODEL, full_check=True) (includes strict shape
   inference); a failure prints {"checker_error": "..."} and exits 1.
2. Loads MODEL in an onnxruntime CPU session and reports its declared inputs
   and outputs (symbolic axes as strings).
3. With --inputs ({"name": {"shape": [...], "data": [flat float32 values]}}),
   runs the session and reports every output's shape and flat values.

Prints one JSON object on stdout:
  {"checker": "ok", "ir_version": 8, "opset": 17,
   "session_inputs": {"z": ["batch", 3]}, "session_outputs": {...},
   "outputs": {"mel": {"shape": [2, 1, 4, 4], "data": [...]}}}
"""

import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--inputs", help="JSON file of named float32 inputs to run the model on")
    args = parser.parse_args()

    try:
        onnx.checker.check_model(args.model, full_check=True)
    except Exception as error:  # the checker raises several exception types
        print(json.dumps({"checker_error": f"{type(error).__name__}: {error}"}))
        return 1

    model = onnx.load(args.model)
    report = {
        "checker": "ok",
        "ir_version": model.ir_version,
        "opset": next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
    }

    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    report["session_inputs"] = {i.name: list(i.shape) for i in session.get_inputs()}
    report["session_outputs"] = {o.name: list(o.shape) for o in session.get_outputs()}

    if args.inputs:
        with open(args.inputs) as f:
            spec = json.load(f)
        feeds = {
            name: np.asarray(value["data"], dtype=np.float32).reshape(value["shape"]) for name, value in spec.items()
        }
        names = [o.name for o in session.get_outputs()]
        results = session.run(names, feeds)
        report["outputs"] = {
            name: {"shape": list(result.shape), "data": result.astype(np.float64).ravel().tolist()}
            for name, result in zip(names, results)
        }

    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
