#!/usr/bin/env python3
"""Preprocessing speed per codec (issue 14): melfuse against librosa on the
same song encoded by ffmpeg as WAV, FLAC, OGG Vorbis, Opus, MP3 and M4A
(AAC), with the decode-only floor of the reference decoders beside it.

Called by tests/bench/preprocess_vs_librosa_formats (which builds the timing
example, synthesises the song and pins every side to one thread). Per file:

* melfuse: `signal_timing preprocess` (decode + resample to 44.1 kHz + dB
  mel), one rayon thread; its decode stage alone too;
* librosa: `librosa.load(sr=44100)` + melspectrogram + power_to_db (soundfile
  for WAV/FLAC/OGG/Opus/MP3; audioread, i.e. an ffmpeg subprocess, for M4A);
* floor: `ffmpeg -threads 1 -i FILE -f f32le -` to /dev/null (the reference
  decoder alone, process start included) and `soundfile.read` where
  libsndfile reads the format (libvorbis, libopus, mpg123, libFLAC).

Best of --repeat runs; numba's JIT is warmed up first.
"""

import argparse
import json
import os
import pathlib
import subprocess
import time
import warnings

import librosa
import numpy as np
import soundfile

SAMPLE_RATE = 44100
FORMATS = [
    ("wav", "song.wav", ["-c:a", "pcm_s16le"]),
    ("flac", "song.flac", ["-c:a", "flac"]),
    ("ogg vorbis", "song.ogg", ["-c:a", "libvorbis", "-q:a", "5"]),
    ("opus", "song.opus", ["-c:a", "libopus", "-b:a", "128k"]),
    ("mp3", "song.mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]),
    ("m4a aac", "song.m4a", ["-c:a", "aac", "-b:a", "192k"]),
]


def best(f, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def librosa_preprocess(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    power = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=2048, hop_length=512, n_mels=128,
                                           center=True, pad_mode="reflect", power=2.0)
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--melfuse", required=True)
    parser.add_argument("--workdir", type=pathlib.Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("source", type=pathlib.Path)
    args = parser.parse_args()

    files = []
    for label, name, codec in FORMATS:
        path = args.workdir / name
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(args.source), *codec,
                        str(path)], check=True)
        files.append((label, path))
    librosa_preprocess(str(files[2][1]))  # numba warm-up, not timed
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    out = subprocess.run([args.melfuse, "preprocess", *[str(p) for _, p in files], "--repeat", str(args.repeat)],
                         env=env, check=True, capture_output=True, text=True).stdout
    melfuse = json.loads(out.strip().splitlines()[-1])["files"]
    seconds = soundfile.info(str(args.source)).duration
    print(f"{seconds:.0f} s stereo song, one thread each side, best of {args.repeat}")
    header = f"{'format':<11} {'librosa s':>9} {'melfuse s':>9} {'ratio':>6}  {'melfuse decode s':>16} {'ffmpeg decode s':>15} {'soundfile decode s':>18}"
    print(header)
    print("-" * len(header))
    for (label, path), ours in zip(files, melfuse):
        lib = best(lambda: librosa_preprocess(str(path)), args.repeat)
        floor = best(lambda: subprocess.run(["ffmpeg", "-threads", "1", "-nostdin", "-loglevel", "error", "-i", str(path),
                                             "-f", "f32le", "-y", "/dev/null"], check=True), args.repeat)
        try:
            sf_floor = f"{best(lambda: soundfile.read(str(path), dtype='float32'), args.repeat):18.3f}"
        except Exception:  # libsndfile does not read MP4
            sf_floor = f"{'n/a':>18}"
        total = ours["total"]["best_s"]
        decode = ours["decode"]["best_s"]
        print(f"{label:<11} {lib:9.3f} {total:9.3f} {lib / total:5.1f}×  {decode:16.3f} {floor:15.3f} {sf_floor}")


if __name__ == "__main__":
    main()
