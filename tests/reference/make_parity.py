"""Decode-parity fixtures: one source signal encoded by Debian's ffmpeg in
every format melfuse decodes (a few rates and channel counts), each decoded
by the reference decoder to a float WAV, plus librosa's dB mel of that
reference decode. Read by tests/tests/decode_parity.rs.

Reference decoders: libvorbis for Vorbis (through libsndfile, float), libopus
for Opus (`ffmpeg -c:a libopus`, float output), ffmpeg/libavcodec for the
rest. ffmpeg 5.1 does not apply the end of an MP4 edit list (it outputs the
AAC encoder's end padding too), so the AAC references are cut at the track's
stated duration (`ffprobe duration_ts`), which is what melfuse outputs.

Writes OUT/cases.json; when ffmpeg is missing it records that instead, and
the Rust test fails when CI=true (skips with a message otherwise).
"""

import argparse
import json
import pathlib
import shutil
import subprocess

import numpy as np
import soundfile

from make_reference import db_mel, signal_params

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parent / "fixtures" / "tone_44k_stereo_s16.wav"

# name, output file, ffmpeg encode arguments, reference decoder, max |Δ| of the mono mix.
# Tolerances: max |Δ| measured here (ffmpeg 5.1, libsndfile 1.2.2, libopus 1.3.1 against
# symphonia 0.6.1 + libopus 1.6.1) was 0 for PCM/FLAC/ALAC, 1.8e-7 Vorbis, 9e-8 Opus, 5.2e-7 MP3,
# 2.4e-7 AAC: float rounding; the limits leave headroom for other library builds. 0 = bit-exact.
CASES = [
    ("wav_s16_44k_stereo", "wav_s16_44k_stereo.wav", ["-c:a", "pcm_s16le"], "ffmpeg", 0.0),
    ("aiff_s24_48k_mono", "aiff_s24_48k_mono.aiff", ["-ar", "48000", "-ac", "1", "-c:a", "pcm_s24be"], "ffmpeg", 0.0),
    ("flac_44k_stereo", "flac_44k_stereo.flac", ["-c:a", "flac"], "ffmpeg", 0.0),
    ("flac_96k_s24_stereo", "flac_96k_s24_stereo.flac", ["-ar", "96000", "-sample_fmt", "s32", "-c:a", "flac"], "ffmpeg", 0.0),
    ("alac_44k_stereo", "alac_44k_stereo.m4a", ["-c:a", "alac"], "ffmpeg", 0.0),
    ("vorbis_44k_stereo", "vorbis_44k_stereo.ogg", ["-c:a", "libvorbis", "-q:a", "3"], "libvorbis", 1e-6),
    ("vorbis_22k_mono", "vorbis_22k_mono.ogg", ["-ar", "22050", "-ac", "1", "-c:a", "libvorbis", "-q:a", "3"], "libvorbis", 1e-6),
    ("opus_48k_stereo", "opus_48k_stereo.opus", ["-c:a", "libopus", "-b:a", "96k"], "libopus", 1e-6),
    ("opus_mono", "opus_mono.opus", ["-ac", "1", "-c:a", "libopus", "-b:a", "48k"], "libopus", 1e-6),
    ("opus_webm_stereo", "opus_webm_stereo.webm", ["-c:a", "libopus", "-b:a", "96k"], "libopus", 1e-6),
    ("mp3_44k_stereo", "mp3_44k_stereo.mp3", ["-c:a", "libmp3lame", "-b:a", "128k"], "ffmpeg", 2e-6),
    ("mp3_32k_mono", "mp3_32k_mono.mp3", ["-ar", "32000", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k"], "ffmpeg", 2e-6),
    ("aac_44k_stereo", "aac_44k_stereo.m4a", ["-c:a", "aac", "-b:a", "128k"], "ffmpeg", 1e-6),
    ("aac_48k_mono", "aac_48k_mono.m4a", ["-ar", "48000", "-ac", "1", "-c:a", "aac", "-b:a", "96k"], "ffmpeg", 1e-6),
]

FFMPEG = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]


def run(args):
    subprocess.run(args, check=True)


def duration_ts(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=duration_ts",
         "-of", "default=nw=1:nk=1", str(path)], check=True, capture_output=True, text=True).stdout.strip()
    return int(out)


def reference_decode(path, decoder, out_wav):
    if decoder == "libvorbis":
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        soundfile.write(out_wav, data, rate, subtype="FLOAT")
        return
    args = list(FFMPEG)
    if decoder == "libopus":
        args += ["-request_sample_fmt", "flt", "-c:a", "libopus"]
    args += ["-i", str(path)]
    if path.suffix == ".m4a" and decoder == "ffmpeg":
        args += ["-af", f"atrim=end_sample={duration_ts(path)}"]
    args += ["-c:a", "pcm_f32le", str(out_wav)]
    run(args)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        (args.out / "cases.json").write_text(json.dumps({"missing": missing, "cases": []}, indent=1))
        print(f"make_parity: {', '.join(missing)} not found: no decode-parity fixtures")
        return
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    cases = []
    for name, filename, encode, decoder, tolerance in CASES:
        encoded = args.out / filename
        run(FFMPEG + ["-i", str(SOURCE), "-map_metadata", "-1", "-fflags", "+bitexact"] + encode + [str(encoded)])
        reference = args.out / f"{name}.ref.wav"
        reference_decode(encoded, decoder, reference)
        data, rate = soundfile.read(reference, dtype="float32", always_2d=True)
        mono = data.mean(axis=1, dtype=np.float32)
        np.save(args.out / f"{name}.mel.npy", db_mel(mono, signal_params({"sample_rate": rate})))
        cases.append({
            "name": name, "input": filename, "reference": reference.name, "mel": f"{name}.mel.npy",
            "decoder": decoder, "sample_rate": rate, "channels": data.shape[1], "frames": data.shape[0],
            "tolerance": tolerance,
        })
    (args.out / "cases.json").write_text(json.dumps({"ffmpeg": version, "cases": cases}, indent=1))
    print(f"make_parity: {len(cases)} decode-parity cases in {args.out}")


if __name__ == "__main__":
    main()
