"""A second opinion on which genre generated clips sound like, from an instrument the model was
never measured with while it was developed: librosa's standard features (MFCCs and their change,
spectral contrast, key-invariant chroma, flatness, centroid, tempogram) and two scikit-learn
classifiers of different kinds, an RBF support-vector machine and logistic regression, where
`melfuse-judge` uses its own summary statistics and a linear model.

The classifiers learn from the training recordings, each excerpt both as recorded and through the
bundle's mel and Griffin-Lim (so that they learn genre, not the vocoder's texture, as the judge
does); they then read the held-out recordings (as recorded and vocoded: how far the instrument can
be trusted) and every generated clip.

    .venv/bin/pip install scikit-learn==1.9.1
    for g in cn edm orchestral rock; do mkdir -p gen/$g; for s in $(seq 1 192); do
      melfuse-serve generate --model models/demo --blend $g:1 --seed $s --out gen/$g/$s.wav; done; done
    .venv/bin/python models/demo/second_opinion.py --training T --held-out H --generated gen --cache ref.npz

T and H are genre folders of recordings (`T/<genre>/*.ogg`; models/demo/README.md makes them from
the cache's split), gen of generated WAVs. Uses the project venv's pinned librosa (tests/run
creates it) and scikit-learn, installed as above.
"""

import argparse
import glob
import json
import os
from concurrent.futures import ProcessPoolExecutor

import librosa
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

RATE = 22050
EXCERPT_SECONDS = 15
EXCERPTS_PER_TRACK = 4
AUDIO = (".wav", ".flac", ".ogg", ".mp3")
# Part of a --cache file's key: raise it when `features` or `vocoded` change.
FEATURES_VERSION = 2


def features(samples):
    """Standard music-information-retrieval summary of one excerpt (115 values)."""
    power = np.abs(librosa.stft(samples, n_fft=2048, hop_length=512)) ** 2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=RATE, n_mels=64))
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20)
    change = librosa.feature.delta(mfcc)
    magnitude = np.sqrt(power)
    contrast = librosa.feature.spectral_contrast(S=magnitude, sr=RATE)
    chroma = librosa.feature.chroma_stft(S=power, sr=RATE, tuning=0.0)
    flatness = librosa.feature.spectral_flatness(S=magnitude)
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=RATE)
    onset = librosa.onset.onset_strength(S=mel_db, sr=RATE)
    tempogram = librosa.feature.tempogram(onset_envelope=onset, sr=RATE, win_length=384).mean(axis=1)
    return np.concatenate([
        mfcc.mean(axis=1), mfcc.std(axis=1), change.std(axis=1),
        contrast.mean(axis=1), contrast.std(axis=1),
        np.sort(chroma.mean(axis=1)), [chroma.std(axis=1).mean()],  # sorted: the key does not matter
        [flatness.mean(), flatness.std(), np.log(centroid.mean()), centroid.std() / centroid.mean()],
        tempogram[:192:8],
    ])


def vocoded(samples, signal, db_range):
    """The excerpt through the bundle's dB mel (clipped to its range) and 32 Griffin-Lim iterations."""
    mel = librosa.feature.melspectrogram(
        y=samples, sr=RATE, n_fft=signal["n_fft"], hop_length=signal["hop_length"], n_mels=signal["n_mels"],
        fmin=signal["fmin"], fmax=signal["fmax"], power=2.0)
    db = np.clip(10 * np.log10(np.maximum(mel, signal["amin"])), db_range["db_floor"], db_range["db_ceiling"])
    magnitude = librosa.feature.inverse.mel_to_stft(
        10 ** (db / 10), sr=RATE, n_fft=signal["n_fft"], fmin=signal["fmin"], fmax=signal["fmax"])
    # A fixed starting phase, so that a rerun gives the same features and the same figures.
    audio = librosa.griffinlim(magnitude, n_iter=32, hop_length=signal["hop_length"], random_state=0)
    return librosa.util.fix_length(audio, size=len(samples))


def excerpts(path):
    """Up to EXCERPTS_PER_TRACK evenly spaced, non-overlapping 15 s excerpts (a shorter file: itself)."""
    samples, _ = librosa.load(path, sr=RATE, mono=True)
    length = EXCERPT_SECONDS * RATE
    available = len(samples) // length
    if available == 0:
        return [samples]
    count = min(EXCERPTS_PER_TRACK, available)
    starts = [round(i * (available - 1) / (count - 1)) if count > 1 else 0 for i in range(count)]
    return [samples[s * length:(s + 1) * length] for s in starts]


def analyse(job):
    """(genre, features as recorded, features vocoded or None) for every excerpt of one file."""
    genre, path, vocode, signal, db_range = job
    rows = []
    for samples in excerpts(path):
        voc = features(vocoded(samples, signal, db_range)) if vocode else None
        rows.append((genre, features(samples), voc))
    return rows


def files(root, genres):
    """(genre index, path) of every audio file under root/<genre>/; a genre without any is an error."""
    found = [(g, p) for g, name in enumerate(genres) for p in sorted(glob.glob(os.path.join(root, name, "*")))
             if p.lower().endswith(AUDIO)]
    for g, name in enumerate(genres):
        if not any(f[0] == g for f in found):
            raise SystemExit(f"{root}/{name}: no audio files")
    return found


def heard_as(predicted, truth, genres):
    """Each present genre's row of the confusion matrix: the shares of its clips classified as each
    genre, in `genres` order (the diagonal is the genre's accuracy)."""
    return {g: [float((predicted[truth == g] == k).mean()) for k in range(len(genres))]
            for g in range(len(genres)) if (truth == g).any()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--training", required=True)
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--generated", required=True)
    parser.add_argument("--bundle", default="models/demo")
    parser.add_argument("--genres", default="cn,edm,orchestral,rock")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--cache", help="keep the reference's features in this .npz (reused when present: "
                        "they depend on the reference and the bundle's signal, not on the model)")
    args = parser.parse_args()
    genres = args.genres.split(",")
    with open(os.path.join(args.bundle, "manifest.json")) as manifest_file:
        manifest = json.load(manifest_file)
    signal, db_range = manifest["signal"], manifest["normalization"]
    if signal["sample_rate"] != RATE:
        raise SystemExit(f"the bundle's rate is {signal['sample_rate']} Hz; this script reads {RATE}")

    def run(found, vocode):
        jobs = [(g, p, vocode, signal, db_range) for g, p in found]
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            return [row for rows in pool.map(analyse, jobs) for row in rows]

    training_files, held_out_files = files(args.training, genres), files(args.held_out, genres)
    # What the reference's features depend on: its files and the bundle's signal and dB range.
    key = json.dumps([FEATURES_VERSION, training_files, held_out_files, signal, db_range], sort_keys=True)
    if args.cache and os.path.exists(args.cache):
        stored = np.load(args.cache, allow_pickle=True)
        if str(stored["key"]) != key:
            raise SystemExit(f"{args.cache} holds the features of another reference or signal; "
                             "remove it or name another --cache")
        training, held_out = list(stored["training"]), list(stored["held_out"])
    else:
        training = run(training_files, True)
        held_out = run(held_out_files, True)
        if args.cache:
            np.savez(args.cache, key=key, training=np.array(training, dtype=object),
                     held_out=np.array(held_out, dtype=object))
    generated = run(files(args.generated, genres), False)
    x = np.array([r[1] for r in training] + [r[2] for r in training])
    y = np.array([r[0] for r in training] * 2)
    report = {"training_excerpts": len(training), "held_out_excerpts": len(held_out),
              "generated_clips": len(generated)}
    classifiers = {
        "svm": make_pipeline(StandardScaler(), SVC(C=10, class_weight="balanced")),
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(C=1, class_weight="balanced", max_iter=5000)),
    }
    for name, model in classifiers.items():
        model.fit(x, y)
        result = {}
        for label, rows, column in [("held_out_recorded", held_out, 1), ("held_out_vocoded", held_out, 2),
                                    ("generated", generated, 1)]:
            truth = np.array([r[0] for r in rows])
            predicted = model.predict(np.array([r[column] for r in rows]))
            rows_heard = heard_as(predicted, truth, genres)
            result[label] = {"overall": round(float((predicted == truth).mean()), 3),
                             **{genres[g]: round(row[g], 3) for g, row in rows_heard.items()},
                             "heard_as": {genres[g]: [round(share, 2) for share in row]
                                          for g, row in rows_heard.items()}}
        report[name] = result
        print(name)
        for label, value in result.items():
            print(f"  {label:20} {value}")
    if args.out:
        with open(args.out, "w") as out:
            json.dump(report, out, indent=1)


if __name__ == "__main__":
    main()
