//! Gates that keep recorded corpora clean: a minimum track length (game music ships loops and
//! stingers of a few seconds next to full tracks) and a minimum loudness per segment (fade-ins,
//! fade-outs, silent tails and quiet interludes would otherwise teach the model that "cn" sounds
//! like nothing).
//!
//! Loudness is the segment's RMS level in dBFS (`10·log10(mean(x²))`, full-scale sine ≈ −3 dBFS),
//! measured on the resampled mono samples before the mel transform: simple, independent of the
//! mel settings and of the training corpus's dB range. Both gates are off by default, so a corpus
//! prepares exactly as before; `train/configs/debian/prepare.toml` turns them on for the
//! recorded corpus (threshold chosen from its measured segment levels, see that file).
//!
//! No whole-track silence trimming: `prepare` streams a file once, segment by segment, in memory
//! bounded by a few segments (issue 14), and trimming trailing silence would need the whole track
//! or a second pass. Silent starts and ends are removed at segment granularity by the loudness
//! gate instead; a segment that is partly silence and partly music keeps both, as a listener
//! would hear it.

/// Leaves a gate out of the serialised config (and so out of the cache fingerprint) while it is
/// off, so caches built before the gates existed stay up to date.
pub fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// Leaves a count out of the report while it is zero (reports without gates stay as they were).
pub fn is_zero_count(value: &usize) -> bool {
    *value == 0
}

/// Checks the gate settings of `config`; the error is `(field, detail)`.
pub fn check_gates(config: &super::PrepareConfig) -> Result<(), (&'static str, String)> {
    if !(config.min_track_seconds.is_finite() && config.min_track_seconds >= 0.0) {
        return Err(("min_track_seconds", format!("{} must be a non-negative number", config.min_track_seconds)));
    }
    if let Some(db) = config.min_segment_rms_dbfs.filter(|db| !(db.is_finite() && *db <= 0.0)) {
        return Err(("min_segment_rms_dbfs", format!("{db} must be a level in dBFS (≤ 0)")));
    }
    Ok(())
}

/// Level given to digital silence (no sample differs from zero), in dBFS.
pub const SILENCE_DBFS: f32 = -200.0;

/// RMS level of `samples` in dBFS; [`SILENCE_DBFS`] for silence or an empty slice.
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let power = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / samples.len() as f64;
    if power <= 0.0 {
        SILENCE_DBFS
    } else {
        ((10.0 * power.log10()) as f32).max(SILENCE_DBFS)
    }
}

/// Whether a segment's RMS level reaches `min_rms_dbfs` (always, when `None`).
pub fn is_loud_enough(segment: &[f32], min_rms_dbfs: Option<f32>) -> bool {
    min_rms_dbfs.is_none_or(|min| rms_dbfs(segment) >= min)
}

/// Why a decoded track with segments is left out, or `None` to keep it.
pub fn exclusion(seconds: f64, min_track_seconds: f64) -> Option<String> {
    (seconds < min_track_seconds)
        .then(|| format!("{seconds:.1} s is shorter than min_track_seconds = {min_track_seconds} s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_levels_in_dbfs() {
        let sine: Vec<f32> = (0..44_100).map(|i| (i as f32 * 0.1).sin()).collect();
        assert!((rms_dbfs(&sine) + 3.01).abs() < 0.05, "{}", rms_dbfs(&sine));
        let quiet: Vec<f32> = sine.iter().map(|x| x * 0.001).collect();
        assert!((rms_dbfs(&quiet) + 63.01).abs() < 0.05);
        assert_eq!(rms_dbfs(&[0.0; 10]), SILENCE_DBFS);
        assert_eq!(rms_dbfs(&[]), SILENCE_DBFS);
    }

    #[test]
    fn the_gate_compares_the_segment_level() {
        let tone: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        assert!(is_loud_enough(&tone, Some(-40.0)));
        assert!(is_loud_enough(&[0.0; 10], None));
        assert!(!is_loud_enough(&[0.0; 10], Some(-120.0)));
        let faint: Vec<f32> = tone.iter().map(|x| x * 1e-4).collect();
        assert!(!is_loud_enough(&faint, Some(-50.0)));
    }

    #[test]
    fn short_tracks_are_excluded_with_the_reason() {
        assert_eq!(exclusion(60.0, 45.0), None);
        assert_eq!(exclusion(30.04, 0.0), None);
        assert_eq!(exclusion(30.04, 45.0).as_deref(), Some("30.0 s is shorter than min_track_seconds = 45 s"));
    }
}
