//! Choosing the bank's stretches by how faithfully the decoder renders them
//! (`--bank-choice faithful`, tiled banks).
//!
//! The bank's codes are what the service decodes: a `blend=g:1` clip *is* the decoder's rendering
//! of a stretch of a training track. Stretches differ in how close that rendering comes to the
//! music — a dense bed, a held chord or a quiet intro are each drawn with their own blur — and a
//! genre's judged figures moved by up to 0.14 with which of its 50 stretches a set of seeds met
//! (`models/demo/README.md`, "where a walk starts"). So instead of placing a track's stretches
//! evenly from its start to its end ([`super::bank::select_runs`]), every non-overlapping stretch
//! of the track is encoded, decoded with its genre's one-hot, and scored by [`relative_error`];
//! the track keeps as many stretches as the even placement gives it
//! (`bank::track_shares`: every track still contributes) and they are its lowest
//! scoring ones. The score is the decoder's own reconstruction error, not any judged measure.
//!
//! The error is relative — mean absolute error over the music's own mean deviation from each
//! band's level — because an absolute error ranks quiet, static passages first (little to get
//! wrong) and would fill the bank with intros and fades.
//!
//! Measured on the demo's weights and a second training seed's (`models/demo/README.md`, "which
//! stretches of a track the bank keeps"; 96 and 192 clips per genre): the kept stretches'
//! relative error is 0.48–0.51 for edm against 0.57–0.61 over all of its stretches (rock
//! 0.49–0.54 against 0.66–0.74), and every judged measure of edm moved the same way at both
//! seeds — harmonic lines 0.80–0.84 → 0.86–0.94, diversity 0.67–0.72 → 0.80–0.90, distance
//! 2.0–2.1× → 1.3–1.4× — with genre accuracy level. The choice costs the export about 50 s on 2
//! cores (each track's candidate stretches over its share are encoded and decoded once; 545 for
//! the demo's three large genres); the service pays nothing.

/// How `export` picks a track's stretches for the bank (`--bank-choice`; `faithful` is the
/// default for a tiled bank, `spread` the only choice for a segment bank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BankChoice {
    /// Evenly spaced from the track's start to its end (`select_runs`).
    Spread,
    /// The track's stretches the decoder renders closest to the music (lowest relative error).
    Faithful,
}

/// The starts of the non-overlapping stretches of `stretch` segments in a run of `length`
/// segments, from its start; when the last one leaves segments over, one more ends at the run's
/// end (overlapping its neighbour). Empty when the run is shorter than one stretch.
pub(crate) fn candidate_starts(length: usize, stretch: usize) -> Vec<usize> {
    if stretch == 0 || length < stretch {
        return Vec::new();
    }
    let mut starts: Vec<usize> = (0..=length - stretch).step_by(stretch).collect();
    if starts.last().is_some_and(|&last| last + stretch < length) {
        starts.push(length - stretch);
    }
    starts
}

/// The decoder's error on one stretch: mean |decoded − music| over the music's mean absolute
/// deviation from each band's mean over the stretch (both `[n_mels][width]` row-major, normalised
/// mel). 0 is a perfect rendering; 1 is as far off as drawing each band flat at its level.
/// Infinite when the music has no variation at all (a silent stretch is never preferred).
pub fn relative_error(music: &[f32], decoded: &[f32], n_mels: usize) -> f64 {
    assert_eq!(music.len(), decoded.len(), "music and rendering differ in size");
    if n_mels == 0 || music.is_empty() {
        return f64::INFINITY;
    }
    let width = music.len() / n_mels;
    let error: f64 = music.iter().zip(decoded).map(|(&m, &d)| f64::from((d - m).abs())).sum();
    let deviation: f64 = music
        .chunks_exact(width)
        .map(|band| {
            let mean = band.iter().map(|&v| f64::from(v)).sum::<f64>() / width as f64;
            band.iter().map(|&v| (f64::from(v) - mean).abs()).sum::<f64>()
        })
        .sum();
    if deviation > 0.0 {
        error / deviation
    } else {
        f64::INFINITY
    }
}

/// Of the candidate stretches `(start, error)` of one track, in track order, the `count` to keep,
/// as indices into `candidates` in track order: lowest error first, skipping any that overlaps one
/// already kept (`stretch` segments long), then — when the non-overlapping ones are too few — the
/// lowest of the rest.
pub(crate) fn pick_faithful(candidates: &[(usize, f64)], count: usize, stretch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| candidates[a].1.total_cmp(&candidates[b].1).then(candidates[a].0.cmp(&candidates[b].0)));
    let mut kept: Vec<usize> = Vec::with_capacity(count);
    let overlaps = |a: usize, b: usize| {
        let (a, b) = (candidates[a].0, candidates[b].0);
        a < b + stretch && b < a + stretch
    };
    for &i in &order {
        if kept.len() == count {
            break;
        }
        if kept.iter().all(|&k| !overlaps(i, k)) {
            kept.push(i);
        }
    }
    for &i in &order {
        if kept.len() == count {
            break;
        }
        if !kept.contains(&i) {
            kept.push(i);
        }
    }
    kept.sort_unstable_by_key(|&i| candidates[i].0);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::bank::{track_shares, TrackShare};

    #[test]
    fn candidates_tile_the_track_and_reach_its_end() {
        assert_eq!(candidate_starts(20, 5), [0, 5, 10, 15]);
        assert_eq!(candidate_starts(22, 5), [0, 5, 10, 15, 17]);
        assert_eq!(candidate_starts(5, 5), [0]);
        assert!(candidate_starts(4, 5).is_empty());
    }

    #[test]
    fn the_error_is_relative_to_the_music_s_own_contrast() {
        // Two bands, four frames: band 0 alternates 0/1 (deviation 0.5 per frame), band 1 is flat.
        let music = [0.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5];
        assert_eq!(relative_error(&music, &music, 2), 0.0);
        // Drawing every band flat at its level is 1 by definition.
        let flat = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        assert!((relative_error(&music, &flat, 2) - 1.0).abs() < 1e-12);
        // The same absolute error counts more on a quieter, flatter stretch.
        let quiet = [0.0, 0.2, 0.0, 0.2, 0.1, 0.1, 0.1, 0.1];
        let off = |m: &[f32]| m.iter().map(|v| v + 0.05).collect::<Vec<f32>>();
        assert!(relative_error(&quiet, &off(&quiet), 2) > relative_error(&music, &off(&music), 2));
        assert_eq!(relative_error(&flat, &flat, 2), f64::INFINITY);
    }

    #[test]
    fn the_best_stretches_are_kept_without_overlap_then_in_track_order() {
        let candidates = [(0, 0.5), (5, 0.2), (10, 0.4), (15, 0.3), (17, 0.1)];
        let starts =
            |count| -> Vec<usize> { pick_faithful(&candidates, count, 5).iter().map(|&i| candidates[i].0).collect() };
        // 17 is best, 15 overlaps it; then 5, then 10.
        assert_eq!(starts(3), [5, 10, 17]);
        // Asked for every candidate, the overlapping one comes last.
        assert_eq!(starts(5), [0, 5, 10, 15, 17]);
        assert_eq!(starts(1), [17]);
    }

    #[test]
    fn a_track_with_stretches_to_choose_has_more_candidates_than_its_share() {
        let runs: Vec<Vec<usize>> = [40usize, 12, 4]
            .iter()
            .scan(0, |next, &n| {
                let run: Vec<usize> = (*next..*next + n).collect();
                *next += n;
                Some(run)
            })
            .collect();
        let shares = track_shares(&runs, 24, 4).expect("the genre is over the budget");
        let mut choices = 0;
        for (share, run) in shares.iter().zip(&runs) {
            if let TrackShare::Stretches(n) = share {
                choices += 1;
                assert!(candidate_starts(run.len(), 4).len() > *n, "{n} of {:?}", candidate_starts(run.len(), 4));
            }
        }
        assert!(choices > 0);
    }
}
