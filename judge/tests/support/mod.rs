//! Toy reference audio for the judge's tests: four unmistakable "genres" drawn from a seeded
//! formula, so a classifier can tell them apart and the rhythm and harmonic measures have
//! something to find.

#![allow(dead_code)]

use std::f32::consts::TAU;
use std::path::Path;

/// Sample rate of the toy audio (the demo bundle's).
pub const RATE: u32 = 22_050;

/// A tiny deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// `seconds` of toy genre `kind` (0 tones, 1 tones over a beat, 2 beat and bass, 3 noise pad),
/// varied by `seed` in pitch, tempo and level.
pub fn toy_clip(kind: usize, seconds: f32, seed: u64) -> Vec<f32> {
    let mut rng = Lcg(seed * 7919 + kind as u64 * 104_729 + 1);
    let n = (seconds * RATE as f32) as usize;
    let tempo = 110.0 + 30.0 * rng.next();
    let beat = (60.0 / tempo * RATE as f32) as usize;
    let root = 220.0 * (1.0 + 0.5 * rng.next());
    let level = 0.5 + 0.3 * rng.next();
    let scale = [1.0, 9.0 / 8.0, 5.0 / 4.0, 3.0 / 2.0, 5.0 / 3.0];
    let note_len = RATE as usize / 4;
    let notes: Vec<f32> = (0..n / note_len + 1).map(|_| scale[(rng.next() * 5.0) as usize % 5]).collect();
    let mut noise = Lcg(seed + 99);
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let tone = || {
                let f = root * notes[i / note_len];
                let env = (-((i % note_len) as f32) / RATE as f32 * 6.0).exp();
                0.4 * env * (TAU * f * t).sin()
            };
            let mut kick = || {
                let since = (i % beat) as f32 / RATE as f32;
                0.8 * (-since * 30.0).exp() * (TAU * 55.0 * since).sin()
                    + 0.2 * (-since * 80.0).exp() * (noise.next() - 0.5)
            };
            let value = match kind {
                0 => tone(),
                1 => tone() + 0.6 * kick(),
                2 => kick() + 0.2 * (TAU * root / 4.0 * t).sin(),
                _ => 0.3 * (noise.next() - 0.5) * (1.0 + 0.5 * (TAU * 0.2 * t).sin()),
            };
            level * value
        })
        .collect()
}

/// Writes a reference corpus under `root`: `genres[k]/track_NN.wav` with `tracks` toy clips of
/// kind `k`, each `seconds` long.
pub fn write_reference(root: &Path, genres: &[&str], tracks: usize, seconds: f32) {
    for (kind, genre) in genres.iter().enumerate() {
        let dir = root.join(genre);
        std::fs::create_dir_all(&dir).unwrap();
        for track in 0..tracks {
            let samples = toy_clip(kind, seconds, track as u64);
            melfuse_audio::wav::write_wav_pcm16(&dir.join(format!("track_{track:02}.wav")), &samples, RATE).unwrap();
        }
    }
}
