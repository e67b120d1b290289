//! Measuring the dB range that maps the training mels onto `[0, 1]`: a
//! histogram of every stored dB value of the training split, read at two
//! percentiles.
//!
//! The cache stores dB values as f16, so the histogram simply counts each of
//! the 65 536 f16 bit patterns: its bins are the f16 steps themselves (1/32
//! dB between 32 and 64 dB, 1/16 dB between 64 and 128 dB), finer than the
//! 0.05 dB the range needs, exact with respect to what `fit` will read, and
//! the same 512 KiB whatever the corpus size.

use half::f16;
use melfuse_audio::DbRange;
use serde::{Deserialize, Serialize};

/// How the dB range is read from the training histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbRangeSettings {
    /// Percentile (0–100) of all training dB values that maps to 1: slightly
    /// below 100 so that a handful of outlier bins do not squash the scale.
    pub ceiling_percentile: f64,
    /// Percentile (0–100) of all training dB values that maps to 0.
    pub floor_percentile: f64,
    /// Widest range kept: the floor is raised to `ceiling − this` so that
    /// digital silence (the `amin` floor) does not waste the model's scale.
    pub max_dynamic_range_db: f32,
}

impl Default for DbRangeSettings {
    fn default() -> Self {
        Self { ceiling_percentile: 99.99, floor_percentile: 1.0, max_dynamic_range_db: 100.0 }
    }
}

/// Counts of each f16 value (by bit pattern) seen in a set of segments.
#[derive(Debug, Clone)]
pub struct F16Histogram {
    counts: Vec<u64>,
}

impl Default for F16Histogram {
    fn default() -> Self {
        Self { counts: vec![0; 1 << 16] }
    }
}

impl F16Histogram {
    /// Counts every value of `bytes`, little-endian f16 as stored in shards
    /// (a trailing odd byte is ignored).
    pub fn add_f16le(&mut self, bytes: &[u8]) {
        for pair in bytes.chunks_exact(2) {
            self.counts[usize::from(u16::from_le_bytes([pair[0], pair[1]]))] += 1;
        }
    }

    /// Adds another histogram's counts (for parallel reduction).
    pub fn merge(mut self, other: &F16Histogram) -> Self {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self
    }

    /// Finite values counted, with their counts, from lowest to highest.
    fn ascending(&self) -> Vec<(f32, u64)> {
        let mut values: Vec<(f32, u64)> = self
            .counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(bits, &c)| (f16::from_bits(bits as u16).to_f32(), c))
            .filter(|(v, _)| v.is_finite())
            .collect();
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        values
    }

    /// Number of finite values counted.
    pub fn total(&self) -> u64 {
        self.ascending().iter().map(|&(_, c)| c).sum()
    }

    /// The smallest counted value `v` such that at least `percentile`% of the
    /// values are ≤ `v` (0 gives the minimum, 100 the maximum); `None` when
    /// nothing finite was counted.
    pub fn percentile(&self, percentile: f64) -> Option<f32> {
        let values = self.ascending();
        let total: u64 = values.iter().map(|&(_, c)| c).sum();
        if total == 0 {
            return None;
        }
        let rank = ((percentile.clamp(0.0, 100.0) / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        values
            .into_iter()
            .find(|&(_, c)| {
                seen += c;
                seen >= rank
            })
            .map(|(v, _)| v)
    }
}

/// Why no dB range could be measured.
#[derive(Debug, thiserror::Error)]
pub enum DbRangeError {
    /// The training split holds no finite values.
    #[error("no training data to measure the dB range on")]
    NoData,
    /// The percentiles give an empty range (for example a corpus of one
    /// constant level).
    #[error(
        "the training data give an empty dB range (floor {floor} dB, ceiling {ceiling} dB); the corpus has no dynamics"
    )]
    Empty {
        /// Measured floor.
        floor: f32,
        /// Measured ceiling.
        ceiling: f32,
    },
}

/// The range of `histogram` under `settings`: ceiling at
/// `ceiling_percentile`, floor at `floor_percentile` but no lower than
/// `ceiling − max_dynamic_range_db`.
pub fn measure_db_range(histogram: &F16Histogram, settings: &DbRangeSettings) -> Result<DbRange, DbRangeError> {
    let ceiling = histogram.percentile(settings.ceiling_percentile).ok_or(DbRangeError::NoData)?;
    let floor = histogram.percentile(settings.floor_percentile).ok_or(DbRangeError::NoData)?;
    let floor = floor.max(ceiling - settings.max_dynamic_range_db);
    DbRange::new(floor, ceiling).map_err(|_| DbRangeError::Empty { floor, ceiling })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram_of(values: &[f32]) -> F16Histogram {
        let bytes: Vec<u8> = values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
        let mut h = F16Histogram::default();
        h.add_f16le(&bytes);
        h
    }

    #[test]
    fn percentiles_of_a_ramp() {
        let values: Vec<f32> = (0..1000).map(|i| -99.0 + i as f32 * 0.125).collect();
        let h = histogram_of(&values);
        assert_eq!(h.total(), 1000);
        assert_eq!(h.percentile(0.0), Some(-99.0));
        assert_eq!(h.percentile(100.0), Some(values[999]));
        assert_eq!(h.percentile(50.0), Some(values[499]));
        assert_eq!(h.percentile(1.0), Some(values[9]));
        assert_eq!(F16Histogram::default().percentile(50.0), None);
    }

    #[test]
    fn merge_adds_counts() {
        let merged = histogram_of(&[1.0, 2.0]).merge(&histogram_of(&[2.0, 3.0]));
        assert_eq!(merged.total(), 4);
        assert_eq!(merged.percentile(50.0), Some(2.0));
    }

    #[test]
    fn floor_is_limited_by_the_dynamic_range() {
        let mut values = vec![-100.0f32; 500];
        values.extend((0..500).map(|i| -40.0 + i as f32 * 0.1));
        let h = histogram_of(&values);
        let settings = DbRangeSettings { ceiling_percentile: 100.0, max_dynamic_range_db: 200.0, ..Default::default() };
        let range = measure_db_range(&h, &settings).unwrap();
        assert_eq!(range.db_floor, -100.0);
        let narrow = DbRangeSettings { max_dynamic_range_db: 60.0, ..settings };
        let range = measure_db_range(&h, &narrow).unwrap();
        assert_eq!(range.db_ceiling, f16::from_f32(9.9).to_f32());
        assert_eq!(range.db_floor, range.db_ceiling - 60.0);
    }

    #[test]
    fn constant_data_is_an_error() {
        let h = histogram_of(&[-20.0; 100]);
        assert!(matches!(measure_db_range(&h, &DbRangeSettings::default()), Err(DbRangeError::Empty { .. })));
        assert!(matches!(measure_db_range(&F16Histogram::default(), &Default::default()), Err(DbRangeError::NoData)));
    }
}
