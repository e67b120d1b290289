//! Augmentation on a small synthetic cache: off is the plain batch, each change does what its
//! docs say, and draws are reproducible.

use std::path::{Path, PathBuf};

use super::*;
use crate::prepare::tiny::tiny_cache;

/// The tiny cache (`prepare::tiny`): 32 mels × 64 frames, 1 s segments every 0.5 s (hop 43
/// frames); 2 clips of 2.5 s per genre → 4 segments each, none held out.
fn cache(root: &Path) -> PathBuf {
    tiny_cache(root, 2, 0.0).expect("tiny cache")
}

fn entries(cache: &Cache) -> Vec<PoolEntry> {
    cache.segments(Split::Train).iter().enumerate().map(|(segment, s)| PoolEntry { segment, genre: s.genre }).collect()
}

#[test]
fn off_is_the_plain_batch_and_gain_shifts_db_before_clipping() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&cache(dir.path())).unwrap();
    let range = cache.db_range();
    let pool = entries(&cache);
    let plain = HostBatch::read(&cache, Split::Train, &pool, &range, 2).unwrap();
    let off = read_train_batch(&cache, &pool, &range, 2, &AugmentConfig::default(), 1, 5).unwrap();
    assert_eq!((off.images, off.genres), (plain.images.clone(), plain.genres.clone()));

    let config = AugmentConfig { gain_db: 6.0, ..Default::default() };
    let gained = read_train_batch(&cache, &pool, &range, 2, &config, 1, 5).unwrap();
    let changes = draw(&config, 1, 5, pool.len());
    let size = cache.n_mels() * cache.frames();
    for (row, change) in changes.iter().enumerate() {
        assert!(change.gain_db.abs() <= 6.0 && change.shift == 0 && change.pitch_ratio == 1.0);
        let db = cache.segment_db(Split::Train, pool[row].segment).unwrap();
        for (i, &v) in db.iter().enumerate().step_by(97) {
            let expected =
                ((v + change.gain_db).clamp(range.db_floor, range.db_ceiling) - range.db_floor) / range.span();
            assert!((gained.images[row * size + i] - expected).abs() < 1e-6);
        }
    }
    assert_ne!(gained.images, plain.images);
    assert!(changes.iter().any(|c| c.gain_db > 1.0) && changes.iter().any(|c| c.gain_db < -1.0), "{changes:?}");
}

#[test]
fn a_shift_reads_the_frames_that_slide_in_from_the_neighbouring_window() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&cache(dir.path())).unwrap();
    let (n_mels, frames) = (cache.n_mels(), cache.frames());
    let segments = cache.segments(Split::Train);
    assert_eq!((segments[0].index, segments[1].index, segments[0].track), (0, 1, segments[1].track));
    let (next, hop) = neighbour(segments, 0, 1, cache.signal()).expect("segment 1 follows segment 0");
    assert_eq!((next, hop), (1, 43));
    let first = cache.segment_db(Split::Train, 0).unwrap();
    let second = cache.segment_db(Split::Train, 1).unwrap();
    // The hop is right: where both windows cover the same audio, they agree (up to the frame
    // grid's fractional offset); one frame off they do not.
    let gap = |offset: usize| {
        let mut sum = 0.0;
        for m in 0..n_mels {
            for f in (hop as usize + 3)..(frames - 3) {
                sum += (first[[m, f]] - second[[m, f - hop as usize + offset]]).abs();
            }
        }
        sum / (n_mels * (frames - hop as usize - 6)) as f32
    };
    assert!(gap(0) < 1.5 && gap(0) * 3.0 < gap(2), "aligned {} dB vs misaligned {} dB", gap(0), gap(2));

    let mut db = first.as_slice().unwrap().to_vec();
    let mut scratch = vec![0.0; n_mels * frames];
    assert_eq!(apply_shift(&cache, 0, 10, &mut db, &mut scratch).unwrap(), 10);
    for m in [0, 17, 31] {
        assert_eq!(db[m * frames], first[[m, 10]]);
        assert_eq!(db[m * frames + frames - 1], second[[m, frames - 1 + 10 - hop as usize]]);
    }
    // The first window of a track cannot move earlier: it moves later instead.
    let mut db = first.as_slice().unwrap().to_vec();
    assert_eq!(apply_shift(&cache, 0, -10, &mut db, &mut scratch).unwrap(), 10);
    // The last window of a track moves earlier, reading the window before it.
    let last = segments.iter().position(|s| s.track == segments[0].track && s.index == 3).expect("4 windows");
    let before = cache.segment_db(Split::Train, last - 1).unwrap();
    let mut db = cache.segment_db(Split::Train, last).unwrap().as_slice().unwrap().to_vec();
    assert_eq!(apply_shift(&cache, last, 5, &mut db, &mut scratch).unwrap(), -5);
    assert_eq!(db[0], before[[0, hop as usize - 5]]);
    // Shifts beyond the hop are not possible.
    assert_eq!(apply_shift(&cache, 0, hop + 1, &mut db, &mut scratch).unwrap(), 0);
}

#[test]
fn pitch_moves_a_spectral_peak_along_the_band_axis() {
    let signal = SignalConfig { sample_rate: 22_050, n_fft: 1024, hop_length: 256, n_mels: 32, ..Default::default() };
    let identity = pitch_source_bands(&signal, 1.0);
    assert!(identity.iter().enumerate().all(|(m, &s)| (s - m as f64).abs() < 1e-9), "{identity:?}");
    let up = pitch_source_bands(&signal, 2f64.powf(2.0 / 12.0));
    assert!(up.iter().enumerate().skip(1).all(|(m, &s)| s < m as f64));
    // Two frames of a peak at band 24 (log part of the scale): a tone up reads from ~1.3 bands
    // lower, so the peak lands above band 24.
    let frames = 2;
    let mut db = vec![-80.0f32; 32 * frames];
    db[24 * frames..25 * frames].fill(-10.0);
    apply_pitch(&mut db, 32, frames, &up);
    let peak = (0..32).max_by(|&a, &b| db[a * frames].total_cmp(&db[b * frames])).unwrap();
    assert!(peak > 24, "peak at band {peak}");
    let mut db = vec![-80.0f32; 32 * frames];
    db[24 * frames..25 * frames].fill(-10.0);
    apply_pitch(&mut db, 32, frames, &pitch_source_bands(&signal, 2f64.powf(-2.0 / 12.0)));
    let peak = (0..32).max_by(|&a, &b| db[a * frames].total_cmp(&db[b * frames])).unwrap();
    assert!(peak < 24, "peak at band {peak}");
}

#[test]
fn draws_are_reproducible_per_seed_and_step_and_stay_in_range() {
    let config = AugmentConfig { gain_db: 3.0, shift_frames: 4, pitch_semitones: 1.0 };
    let a = draw(&config, 9, 100, 64);
    assert_eq!(a, draw(&config, 9, 100, 64));
    assert_ne!(a, draw(&config, 9, 101, 64));
    assert_ne!(a, draw(&config, 10, 100, 64));
    let shifts: std::collections::BTreeSet<i64> = a.iter().map(|c| c.shift).collect();
    assert_eq!(shifts, (-4..=4).collect());
    for c in &a {
        assert!(c.gain_db.abs() <= 3.0 && (2f64.powf(-1.0 / 12.0)..=2f64.powf(1.0 / 12.0)).contains(&c.pitch_ratio));
    }
    // Turning one kind on leaves the others' draws alone.
    let gain_only = draw(&AugmentConfig { gain_db: 3.0, ..Default::default() }, 9, 100, 64);
    assert!(gain_only.iter().zip(&a).all(|(g, c)| g.gain_db == c.gain_db));
    assert!(AugmentConfig { gain_db: -1.0, ..Default::default() }.validate().is_err());
    assert!(AugmentConfig { pitch_semitones: f32::NAN, ..Default::default() }.validate().is_err());
}
