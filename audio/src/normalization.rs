//! The model's input scale: dB mel values clipped to a measured range and
//! mapped to `[0, 1]`, and back.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::AudioError;

/// The dB range mapped onto `[0, 1]`: measured on the training corpus and
/// stored in the bundle manifest, so that generation undoes exactly the
/// scaling training applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbRange {
    /// dB value mapped to 0 (quieter values are clipped to it).
    pub db_floor: f32,
    /// dB value mapped to 1 (louder values are clipped to it).
    pub db_ceiling: f32,
}

impl DbRange {
    /// A range, checked to be finite and non-empty.
    pub fn new(db_floor: f32, db_ceiling: f32) -> Result<Self, AudioError> {
        if !(db_floor.is_finite() && db_ceiling.is_finite() && db_floor < db_ceiling) {
            return Err(AudioError::InvalidParameter {
                name: "db_floor",
                detail: format!("need finite db_floor ({db_floor}) < db_ceiling ({db_ceiling})"),
            });
        }
        Ok(Self { db_floor, db_ceiling })
    }

    /// Width of the range in dB.
    pub fn span(&self) -> f32 {
        self.db_ceiling - self.db_floor
    }

    /// One dB value → `[0, 1]`, clipping outside the range.
    pub fn normalize_value(&self, db: f32) -> f32 {
        (db.clamp(self.db_floor, self.db_ceiling) - self.db_floor) / self.span()
    }

    /// dB → `[0, 1]`, clipping outside the range.
    pub fn normalize(&self, db: &Array2<f32>) -> Array2<f32> {
        db.mapv(|v| self.normalize_value(v))
    }

    /// `[0, 1]` → dB; values outside `[0, 1]` are clipped first, so a decoder
    /// that overshoots cannot produce louder-than-trained audio.
    pub fn denormalize(&self, normalized: &Array2<f32>) -> Array2<f32> {
        let span = self.span();
        normalized.mapv(|v| self.db_floor + v.clamp(0.0, 1.0) * span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn round_trip_inside_the_range_and_clip_outside() {
        let range = DbRange::new(-80.0, 20.0).unwrap();
        let db = array![[-100.0, -80.0, -30.0], [20.0, 35.0, 0.0]];
        let n = range.normalize(&db);
        assert_eq!(n, array![[0.0, 0.0, 0.5], [1.0, 1.0, 0.8]]);
        let back = range.denormalize(&n);
        assert_eq!(back, array![[-80.0, -80.0, -30.0], [20.0, 20.0, 0.0]]);
        assert_eq!(range.denormalize(&array![[-1.0, 2.0]]), array![[-80.0, 20.0]]);
    }

    #[test]
    fn rejects_empty_or_non_finite_ranges() {
        assert!(DbRange::new(0.0, 0.0).is_err());
        assert!(DbRange::new(f32::NAN, 1.0).is_err());
        assert!(DbRange::new(10.0, -10.0).is_err());
    }
}
