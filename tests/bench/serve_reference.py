#!/usr/bin/env python3
"""A reference generation server in Python, the baseline of tests/bench/serve_vs_python.

It serves the same model bundle as melfuse-serve with the same URL shape,
`GET /generate?blend=cn:0.6,edm:0.4&seed=1&griffin_lim_iters=32&seconds=15&format=wav`,
the way one would write it with the usual Python tools:

* the bundle's manifest.json and decoder.onnx, run by python `onnxruntime`
  (CPU execution provider, its default threads);
* z = Σ w_g·centroid_g + temperature·ε per decoded segment, ε from numpy's
  seeded generator (segment i draws from seed + i: the same rule as
  melfuse's, not the same numbers);
* a clip longer than one model segment is ceil(frames / segment frames)
  segments decoded in one batch and simply concatenated in time, then cut to
  the clip's frames (melfuse cross-fades overlapping segments instead: for
  15 s of the demo signal, 5 segments here and 6 there);
* normalised mel → dB (manifest `normalization`) → power, then what
  `librosa.feature.inverse.mel_to_audio` does, spelt out so that the seed
  reaches it: `mel_to_stft` (librosa's NNLS mel inversion) and `griffinlim`
  (momentum 0.99, random initial phases seeded with the request seed), with
  the manifest's sample rate, n_fft, hop length, mel bands and fmin/fmax and
  the requested iterations, cut to seconds × sample rate;
* peak limited to -1 dBFS (as melfuse's vocoder) and written as 16-bit PCM WAV
  with the standard library's `wave`.

The server is the standard library's ThreadingHTTPServer (HTTP/1.1,
keep-alive): a thread per connection. onnxruntime and numpy's FFTs release the
GIL, but librosa's NNLS mel inversion (scipy's L-BFGS-B, driven from Python)
mostly holds it, so one process gets little from a second core. It decodes and vocodes one
clip before it serves, so that the first measured request pays no import or
first-call costs, and prints `serve_reference: ready` when it (every process
of it) does. `--processes N` pre-forks N such servers on one listening socket,
as one would deploy a GIL-bound Python service on N cores.

    python tests/bench/serve_reference.py --model models/demo --bind 127.0.0.1:8081 [--processes 2]
"""

import argparse
import io
import json
import math
import os
import pathlib
import signal
import sys
import wave
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import librosa
import numpy as np
import onnxruntime

MAX_PEAK_DBFS = -1.0
DEFAULT_SECONDS = 15.0
MAX_SECONDS = 120.0
DEFAULT_ITERS = 32
MOMENTUM = 0.99


class BadRequest(Exception):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


class Model:
    """The bundle: manifest, decoder session, and one clip from request parameters."""

    def __init__(self, bundle):
        bundle = pathlib.Path(bundle)
        self.manifest = json.loads((bundle / "manifest.json").read_text())
        m = self.manifest
        self.genres = list(m["genres"])
        self.centroids = np.asarray(m["centroids"], dtype=np.float32)  # [G, Z]
        s = m["signal"]
        self.sr = int(s["sample_rate"])
        self.n_fft = int(s["n_fft"])
        self.hop = int(s["hop_length"])
        self.n_mels = int(s["n_mels"])
        self.fmin = float(s["fmin"])
        self.fmax = float(s["fmax"]) if s.get("fmax") is not None else self.sr / 2.0
        self.db_floor = float(m["normalization"]["db_floor"])
        self.db_ceiling = float(m["normalization"]["db_ceiling"])
        onnx = m["onnx"]
        self.z_name = onnx["inputs"][0]["name"]
        self.genre_name = onnx["inputs"][1]["name"]
        self.segment_frames = int(onnx["outputs"][0]["shape"][-1])
        self.session = onnxruntime.InferenceSession(
            str(bundle / onnx["file"]), providers=["CPUExecutionProvider"]
        )

    def parse_blend(self, text):
        if not text:
            raise BadRequest("blend", "blend is empty")
        weights = np.zeros(len(self.genres), dtype=np.float32)
        for part in text.split(","):
            name, _, value = part.strip().partition(":")
            if name not in self.genres:
                raise BadRequest("blend", f"unknown genre `{name}`")
            try:
                w = float(value) if value else 1.0
            except ValueError:
                raise BadRequest("blend", f"`{value}` is not a number") from None
            if not math.isfinite(w) or w < 0:
                raise BadRequest("blend", f"weight {value} must be finite and ≥ 0")
            weights[self.genres.index(name)] += w
        if weights.sum() <= 0:
            raise BadRequest("blend", "at least one weight must be > 0")
        return weights / weights.sum()

    def clip_wav(self, weights, seed, temperature, iters, seconds):
        samples = int(round(seconds * self.sr))
        frames = -(-samples // self.hop) + 1  # as melfuse: enough frames for `samples`
        segments = -(-frames // self.segment_frames)
        base = weights @ self.centroids
        z = np.stack(
            [base + temperature * np.random.default_rng(seed + i).standard_normal(base.shape[0]) for i in range(segments)]
        ).astype(np.float32)
        genre = np.repeat(weights[None, :], segments, axis=0).astype(np.float32)
        (mel,) = self.session.run(None, {self.z_name: z, self.genre_name: genre})  # [S, 1, n_mels, frames]
        normalized = np.concatenate(list(mel[:, 0]), axis=1)[:, :frames]
        db = self.db_floor + np.clip(normalized, 0.0, 1.0) * (self.db_ceiling - self.db_floor)
        power = librosa.db_to_power(db)
        # librosa.feature.inverse.mel_to_audio, spelt out: it passes no momentum or random_state on.
        magnitude = librosa.feature.inverse.mel_to_stft(
            power, sr=self.sr, n_fft=self.n_fft, power=2.0, fmin=self.fmin, fmax=self.fmax, htk=False, norm="slaney"
        )
        y = librosa.griffinlim(
            magnitude, n_iter=iters, hop_length=self.hop, n_fft=self.n_fft, window="hann", center=True,
            momentum=MOMENTUM, init="random", random_state=seed % (2**32),
        )[:samples]
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        max_peak = 10 ** (MAX_PEAK_DBFS / 20)
        if peak > max_peak:
            y = y * (max_peak / peak)
        pcm = np.clip(np.round(y * 32767.0), -32768, 32767).astype("<i2")
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sr)
            w.writeframes(pcm.tobytes())
        return out.getvalue()


def number(params, field, kind, default, low, high):
    values = params.get(field)
    if not values:
        return default
    try:
        value = kind(values[-1])
    except ValueError:
        raise BadRequest(field, f"`{values[-1]}` is not a number") from None
    if not (low <= value <= high):
        raise BadRequest(field, f"{value} is outside {low}–{high}")
    return value


def make_handler(model):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # one line per request would cost more than it tells
            pass

        def send(self, status, body, content_type, headers=()):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, code, message, field=None):
            body = json.dumps({"error": {"code": code, "message": message, "field": field}}).encode()
            self.send(status, body, "application/json")

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path in ("/readyz", "/healthz"):
                return self.send(HTTPStatus.OK, b"ok\n", "text/plain")
            if url.path != "/generate":
                return self.error(HTTPStatus.NOT_FOUND, "not_found", f"no route {url.path}")
            params = parse_qs(url.query)
            try:
                fmt = params.get("format", ["wav"])[-1]
                if fmt != "wav":
                    raise BadRequest("format", "this reference writes only wav")
                weights = model.parse_blend(params.get("blend", [""])[-1])
                seed = number(params, "seed", int, None, 0, 2**64 - 1)
                if seed is None:
                    seed = int(np.random.default_rng().integers(0, 2**63))
                temperature = number(params, "temperature", float, 1.0, 0.0, 2.0)
                iters = number(params, "griffin_lim_iters", int, DEFAULT_ITERS, 1, 256)
                seconds = number(params, "seconds", float, DEFAULT_SECONDS, 0.1, MAX_SECONDS)
            except BadRequest as e:
                return self.error(HTTPStatus.BAD_REQUEST, "invalid_request", str(e), e.field)
            body = model.clip_wav(weights, seed, temperature, iters, seconds)
            self.send(HTTPStatus.OK, body, "audio/wav", [("X-Melfuse-Seed", str(seed))])

    return Handler


def serve(listener, bundle, ready):
    """Loads the model, decodes and vocodes one clip, tells `ready`, then serves `listener`."""
    model = Model(bundle)
    warm = np.full(len(model.genres), 1.0 / len(model.genres), dtype=np.float32)
    model.clip_wav(warm, 0, 1.0, 2, DEFAULT_SECONDS)
    listener.RequestHandlerClass = make_handler(model)
    ready()
    listener.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="bundle directory (decoder.onnx + manifest.json)")
    parser.add_argument("--bind", default="127.0.0.1:8081", help="HOST:PORT")
    parser.add_argument(
        "--processes", type=int, default=1,
        help="server processes sharing the listening socket (pre-forked, each a ThreadingHTTPServer with its own "
        "model); more than one lets requests use more cores than the GIL allows one process",
    )
    args = parser.parse_args()
    host, _, port = args.bind.rpartition(":")
    # Bound before the fork, so every process accepts on the same socket; each loads its own model
    # after it (an onnxruntime session's threads do not survive a fork).
    listener = ThreadingHTTPServer((host, int(port)), BaseHTTPRequestHandler)
    listener.daemon_threads = True
    name = json.loads((pathlib.Path(args.model) / "manifest.json").read_text())["name"]
    announce = f"serve_reference: ready on {args.bind} ({name}, {args.processes} process(es))"
    if args.processes <= 1:
        try:
            serve(listener, args.model, lambda: print(announce, file=sys.stderr, flush=True))
        except KeyboardInterrupt:
            pass
        return
    read_end, write_end = os.pipe()
    children = []
    for _ in range(args.processes):
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                serve(listener, args.model, lambda: os.write(write_end, b"r"))
            finally:
                os._exit(0)
        children.append(pid)
    os.close(write_end)
    listener.socket.close()

    def stop(*_):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ready = 0
    while ready < args.processes:
        got = os.read(read_end, args.processes)
        if not got:  # a process ended before it was ready
            break
        ready += len(got)
    if ready == args.processes:
        print(announce, file=sys.stderr, flush=True)
    os.waitpid(-1, 0)  # one process ending ends the server
    stop()


if __name__ == "__main__":
    main()
