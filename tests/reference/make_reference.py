#!/usr/bin/env python3
"""Regenerate melfuse's reference fixtures with librosa.

For every case in cases.json this writes, under OUT_DIR:
  mel/<name>.npy            librosa dB mel of the fixture's samples (no resampling)
  resampled_mel/<name>.npy  the same after librosa.load(sr=sample_rate) (soxr_hq)
  griffin_lim/magnitude.npy |STFT| of the Griffin-Lim input, [frames, n_freqs]
  griffin_lim/librosa.json  librosa.griffinlim's spectral convergence per seed

Signal parameters default to DESIGN.md's; a case overrides some of them. The
transform is librosa.feature.melspectrogram(center=True, pad_mode='reflect',
power=2, htk=False, norm='slaney') then power_to_db(ref=1.0, amin, top_db=None).
"""

import argparse
import json
import pathlib
import time

import librosa
import numpy as np
import soundfile

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"

DEFAULT_SIGNAL = {
    "sample_rate": 44100,
    "n_fft": 2048,
    "hop_length": 512,
    "n_mels": 128,
    "fmin": 0.0,
    "fmax": None,
    "amin": 1e-10,
}


def signal_params(overrides):
    params = dict(DEFAULT_SIGNAL)
    params.update(overrides)
    if params["fmax"] is None:
        params["fmax"] = params["sample_rate"] / 2
    return params


def read_mono(path):
    """The file's samples as float32 mono (mean of channels), unresampled."""
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1, dtype=np.float32), rate


def db_mel(samples, p):
    power = librosa.feature.melspectrogram(
        y=samples, sr=p["sample_rate"], n_fft=p["n_fft"], hop_length=p["hop_length"],
        n_mels=p["n_mels"], fmin=p["fmin"], fmax=p["fmax"], center=True,
        pad_mode="reflect", power=2.0, htk=False, norm="slaney",
    )
    return librosa.power_to_db(power, ref=1.0, amin=p["amin"], top_db=None).astype(np.float32)


def spectral_convergence(target, signal, p):
    rebuilt = np.abs(librosa.stft(signal, n_fft=p["n_fft"], hop_length=p["hop_length"], center=True, pad_mode="reflect"))
    return float(np.linalg.norm(target - rebuilt) / np.linalg.norm(target))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, required=True, help="directory for the reference files")
    parser.add_argument("--cases", type=pathlib.Path, default=HERE / "cases.json")
    args = parser.parse_args()
    cases = json.loads(args.cases.read_text())

    for kind in ("mel", "resampled_mel"):
        (args.out / kind).mkdir(parents=True, exist_ok=True)
        for case in cases[kind]:
            p = signal_params(case["signal"])
            path = FIXTURES / case["input"]
            if kind == "mel":
                samples, rate = read_mono(path)
                if rate != p["sample_rate"]:
                    raise SystemExit(f"{case['name']}: {path} is at {rate} Hz, the case wants {p['sample_rate']} Hz")
            else:
                samples, _ = librosa.load(path, sr=p["sample_rate"], mono=True)
            np.save(args.out / kind / f"{case['name']}.npy", db_mel(samples, p))
            print(f"{kind}/{case['name']}: {len(samples)} samples")

    gl = cases["griffin_lim"]
    p = signal_params(gl["signal"])
    samples, _ = read_mono(FIXTURES / gl["input"])
    magnitude = np.abs(librosa.stft(samples, n_fft=p["n_fft"], hop_length=p["hop_length"], center=True, pad_mode="reflect"))
    out = args.out / "griffin_lim"
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "magnitude.npy", np.ascontiguousarray(magnitude.T.astype(np.float32)))
    results = {"iterations": gl["iterations"], "momentum": gl["momentum"], "length": len(samples), "spectral_convergence": {}}
    for seed in gl["seeds"]:
        started = time.perf_counter()
        y = librosa.griffinlim(
            magnitude, n_iter=gl["iterations"], hop_length=p["hop_length"], n_fft=p["n_fft"], center=True,
            pad_mode="reflect", momentum=gl["momentum"], init="random", random_state=seed, length=len(samples),
        )
        results["spectral_convergence"][str(seed)] = spectral_convergence(magnitude, y, p)
        print(f"griffin_lim seed {seed}: SC {results['spectral_convergence'][str(seed)]:.4f} ({time.perf_counter() - started:.2f} s)")
    (out / "librosa.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
