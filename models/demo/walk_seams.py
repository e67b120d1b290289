"""How abruptly does a long clip change where its walk leaves a bank stretch? Prints, per glob
pattern of `melfuse-serve generate --format npy` clips (dB mels), the mean change of the mean
spectrum between the second before and the second after tile boundary TILE (the demo's stretches
hold 9 tiles of 320 frames and a 60 s walk of 17 tiles fits in none, so every 60 s walk leaves
its first stretch at tile 9), the same at the tile boundaries before it, inside one stretch, and
the mean level (dB over bands and frames) before the boundary, in its last second and after it.

    for s in $(seq 1 32); do melfuse-serve generate --model models/demo --blend edm:1 --seed $s \\
        --seconds 60 --format npy --out long/edm-$s.npy; done
    python3 models/demo/walk_seams.py 9 "long/edm-*.npy"

Needs only numpy.
"""

import glob
import sys

import numpy as np

TILE_FRAMES = 320
# One second of frames at the demo's signal (22 050 Hz, hop 256).
WINDOW = 86


def jump(mel, frame):
    """Mean absolute dB change, over the bands, of the second after `frame` against the one before."""
    before = mel[:, frame - WINDOW : frame].mean(axis=1)
    after = mel[:, frame : frame + WINDOW].mean(axis=1)
    return float(np.abs(after - before).mean())


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    tile = int(sys.argv[1])
    for pattern in sys.argv[2:]:
        paths = sorted(glob.glob(pattern))
        if not paths:
            sys.exit(f"no file matches {pattern}")
        at_exit, inside, last_second, before, after = [], [], [], [], []
        for path in paths:
            mel = np.load(path)
            exit_frame = tile * TILE_FRAMES
            if mel.shape[1] < exit_frame + WINDOW:
                sys.exit(f"{path}: {mel.shape[1]} frames, too short for tile boundary {tile}")
            at_exit.append(jump(mel, exit_frame))
            inside += [jump(mel, k * TILE_FRAMES) for k in range(1, tile)]
            last_second.append(mel[:, exit_frame - WINDOW : exit_frame].mean())
            before.append(mel[:, :exit_frame].mean())
            after.append(mel[:, exit_frame:].mean())
        print(
            f"{pattern}: {len(paths)} clips; change at tile boundary {tile} {np.mean(at_exit):.2f} dB, "
            f"at the {tile - 1} before it {np.mean(inside):.2f} dB; mean level before it "
            f"{np.mean(before):.1f} dB, in its last second {np.mean(last_second):.1f} dB, after it "
            f"{np.mean(after):.1f} dB"
        )


if __name__ == "__main__":
    main()
