#!/usr/bin/env python3
"""Times melfuse against librosa on the same files, in one run.

Called by tests/bench/preprocess_vs_librosa (which builds the melfuse timing
example, writes the test WAVs and sets the thread variables); run directly
only with the same arguments. Two comparisons:

* preprocessing: decode + resample to 44.1 kHz + dB mel of every WAV given,
  librosa as `librosa.load(sr=44100)` + `feature.melspectrogram(center=True,
  pad_mode='reflect', power=2)` + `power_to_db(ref=1.0, top_db=None)`,
  melfuse as `load_mono` + `MelSpectrogram::db`; both on one core, melfuse
  also on every core;
* Griffin-Lim: 32 iterations, momentum 0.99, on the magnitude of the first
  15 s of the 44.1 kHz file (computed here with librosa and handed to melfuse
  as .npy, so both start from identical input), librosa's `griffinlim(
  init='random')` against melfuse's random init (the same algorithm) and its
  default phase-locked init; each side's spectral convergence is measured
  here with one formula.

The Python process must be started with OMP/OpenBLAS/MKL/numba threads set
to 1 (the shell script does it): those variables only take effect before
numpy is imported. Timings are the best of --repeat runs (median printed
too); numba's JIT is warmed up first, so it is never timed.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import librosa
import numpy as np
import soundfile

# DESIGN.md "Signal" defaults, the same as melfuse's SignalConfig::default().
SAMPLE_RATE = 44100
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
AMIN = 1e-10
CLIP_SECONDS = 15
GL_ITERS = 32
GL_MOMENTUM = 0.99
SEED = 0
PREPROCESS_GOAL = 20.0
GRIFFIN_LIM_GOAL = 5.0


def librosa_preprocess(path):
    """librosa's side of the preprocessing, stage by stage (seconds, dB mel)."""
    t0 = time.perf_counter()
    y, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    t1 = time.perf_counter()
    power = librosa.feature.melspectrogram(
        y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, fmin=0.0,
        fmax=SAMPLE_RATE / 2, center=True, pad_mode="reflect", power=2.0, htk=False, norm="slaney",
    )
    t2 = time.perf_counter()
    db = librosa.power_to_db(power, ref=1.0, amin=AMIN, top_db=None)
    t3 = time.perf_counter()
    return {"load": t1 - t0, "mel": t2 - t1, "db": t3 - t2, "total": t3 - t0}, db


def best_and_median(times):
    return {"best_s": min(times), "median_s": float(np.median(times))}


def time_librosa_preprocess(files, repeat):
    runs = []
    for _ in range(repeat):
        per_file = [librosa_preprocess(f)[0] for f in files]
        runs.append(per_file)
    totals = [sum(p["total"] for p in run) for run in runs]
    result = best_and_median(totals)
    result["files"] = [
        {stage: best_and_median([run[i][stage] for run in runs]) for stage in ("load", "mel", "db", "total")}
        for i in range(len(files))
    ]
    return result


def run_melfuse(binary, args, threads):
    """Runs the timing example with `threads` rayon threads; its JSON line."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([binary, *args], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def spectral_convergence(target, signal):
    """‖S − |STFT(y)|‖_F / ‖S‖_F with librosa's STFT; S is [n_freqs, frames]."""
    rebuilt = np.abs(librosa.stft(signal, n_fft=N_FFT, hop_length=HOP_LENGTH, center=True, pad_mode="reflect"))
    frames = min(target.shape[1], rebuilt.shape[1])
    return float(np.linalg.norm(target[:, :frames] - rebuilt[:, :frames]) / np.linalg.norm(target))


def warm_up(files):
    """Triggers numba's JIT and librosa's lazy imports outside any timing."""
    started = time.perf_counter()
    librosa_preprocess(files[-1])  # includes a resampling file if one is given
    noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32)
    magnitude = np.abs(librosa.stft(noise, n_fft=N_FFT, hop_length=HOP_LENGTH))
    librosa.griffinlim(magnitude, n_iter=2, hop_length=HOP_LENGTH, n_fft=N_FFT, momentum=GL_MOMENTUM, random_state=SEED)
    return time.perf_counter() - started


def blas_report():
    try:
        import threadpoolctl
    except ImportError:
        return "threadpoolctl not installed; BLAS kernel unknown"
    pools = threadpoolctl.threadpool_info()
    if not pools:
        return "threadpoolctl found no BLAS/OpenMP pool"
    return "; ".join(
        f"{p.get('internal_api')} {p.get('version')} kernel={p.get('architecture')} threads={p.get('num_threads')}"
        for p in pools
    )


def ratio_line(label, librosa_s, melfuse_s, goal=None):
    ratio = librosa_s / melfuse_s
    line = f"{label}: melfuse/librosa speed ratio: {ratio:.1f}×  (librosa {librosa_s:.3f} s, melfuse {melfuse_s:.3f} s)"
    if goal is not None:
        line += f"  goal ≥ {goal:.0f}×: {'met' if ratio >= goal else 'NOT met'}"
    print(line)
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--melfuse", required=True, help="path of the release signal_timing example")
    parser.add_argument("--workdir", type=pathlib.Path, required=True, help="scratch directory for the magnitude and outputs")
    parser.add_argument("--repeat", type=int, default=5, help="preprocessing runs per side (best is reported)")
    parser.add_argument("--gl-repeat", type=int, default=3, help="Griffin-Lim runs per side")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="threads for melfuse's multi-core figure")
    parser.add_argument("--json", type=pathlib.Path, help="also write every measurement here")
    parser.add_argument("files", nargs="+", help="WAV files to preprocess; the first is the 44.1 kHz one")
    args = parser.parse_args()

    threads = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    print(f"python {sys.version.split()[0]}, librosa {librosa.__version__}, numpy {np.__version__}; {threads}")
    print(f"BLAS: {blas_report()}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')} OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', 'unset')}")
    print(f"numba/librosa warm-up: {warm_up(args.files):.1f} s (not timed)")
    results = {}

    # --- preprocessing -----------------------------------------------------
    print(f"\npreprocessing {len(args.files)} file(s), best of {args.repeat}:")
    lib = time_librosa_preprocess(args.files, args.repeat)
    preprocess_args = ["preprocess", *args.files, "--repeat", str(args.repeat), "--stages"]
    mf1 = run_melfuse(args.melfuse, preprocess_args, 1)
    mfn = run_melfuse(args.melfuse, preprocess_args, args.cores)
    results["preprocess"] = {"librosa": lib, "melfuse_1_core": mf1, f"melfuse_{args.cores}_cores": mfn}
    for i, path in enumerate(args.files):
        info = soundfile.info(path)
        lf, m1, mn = lib["files"][i], mf1["files"][i], mfn["files"][i]
        print(f"  {pathlib.Path(path).name} ({info.samplerate} Hz, {info.channels} ch, {info.duration:.0f} s):")
        print(f"    librosa 1 core: load {lf['load']['best_s']:.3f}  mel {lf['mel']['best_s']:.3f}  db {lf['db']['best_s']:.3f}  total {lf['total']['best_s']:.3f} s")
        for label, m in (("melfuse 1 core", m1), (f"melfuse {args.cores} cores", mn)):
            print(
                f"    {label}: decode {m['decode']['best_s']:.3f}  resample {m['resample']['best_s']:.3f}  "
                f"mel {m['mel']['best_s']:.3f} (bare STFT {m['stft_only']['best_s']:.3f})  db {m['db']['best_s']:.3f}  "
                f"total {m['total']['best_s']:.3f} s"
            )
        ratio_line(f"    {pathlib.Path(path).name}, 1 core", lf["total"]["best_s"], m1["total"]["best_s"])
    ratio_line("preprocessing, 1 core", lib["best_s"], mf1["best_s"], PREPROCESS_GOAL)
    ratio_line(f"preprocessing, melfuse on {args.cores} cores vs librosa on 1", lib["best_s"], mfn["best_s"])

    # --- Griffin-Lim -------------------------------------------------------
    args.workdir.mkdir(parents=True, exist_ok=True)
    samples, rate = soundfile.read(args.files[0], dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise SystemExit(f"{args.files[0]} is at {rate} Hz; the Griffin-Lim clip must be at {SAMPLE_RATE} Hz")
    clip = samples[: CLIP_SECONDS * SAMPLE_RATE].mean(axis=1, dtype=np.float32)
    target = np.abs(librosa.stft(clip, n_fft=N_FFT, hop_length=HOP_LENGTH, center=True, pad_mode="reflect"))
    magnitude_path = args.workdir / "magnitude.npy"
    np.save(magnitude_path, np.ascontiguousarray(target.T.astype(np.float32)))
    print(f"\nGriffin-Lim, {GL_ITERS} iterations, momentum {GL_MOMENTUM}, {CLIP_SECONDS} s clip "
          f"({target.shape[1]} frames × {target.shape[0]} bins), best of {args.gl_repeat}:")
    times, y = [], None
    for _ in range(args.gl_repeat):
        started = time.perf_counter()
        y = librosa.griffinlim(
            target, n_iter=GL_ITERS, hop_length=HOP_LENGTH, n_fft=N_FFT, center=True, pad_mode="reflect",
            momentum=GL_MOMENTUM, init="random", random_state=SEED, length=len(clip),
        )
        times.append(time.perf_counter() - started)
    lib_gl = best_and_median(times)
    lib_gl["spectral_convergence"] = spectral_convergence(target, y)
    print(f"  librosa griffinlim (random init, 1 core): {lib_gl['best_s']:.3f} s, spectral convergence {lib_gl['spectral_convergence']:.4f}")
    results["griffin_lim"] = {"librosa": lib_gl}
    for init in ("random", "phase-locked"):
        for threads in (1, args.cores):
            out_path = args.workdir / f"melfuse_gl_{init}_{threads}.npy"
            m = run_melfuse(args.melfuse, [
                "griffin-lim", str(magnitude_path), "--iters", str(GL_ITERS), "--momentum", str(GL_MOMENTUM),
                "--init", init, "--seed", str(SEED), "--length", str(len(clip)), "--repeat", str(args.gl_repeat),
                "--write", str(out_path),
            ], threads)
            m["spectral_convergence_librosa_stft"] = spectral_convergence(target, np.load(out_path))
            results["griffin_lim"][f"melfuse_{init}_{threads}"] = m
            print(f"  melfuse {init} init, {threads} core(s): {m['best_s']:.3f} s, spectral convergence "
                  f"{m['spectral_convergence_librosa_stft']:.4f} (melfuse's own STFT: {m['spectral_convergence']:.4f})")
            goal = GRIFFIN_LIM_GOAL if threads == 1 else None
            ratio_line(f"  Griffin-Lim {init} init, melfuse on {threads} core(s)", lib_gl["best_s"], m["best_s"], goal)

    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nall measurements: {args.json}")


if __name__ == "__main__":
    main()
