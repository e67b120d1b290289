//! How the genre mixture moves along a generated clip: a single blend (`blend=cn:0.6,edm:0.4`) holds
//! still, a morph (`morph=cn:1 -> cn:0.5,edm:0.5 -> edm:1`) passes through its stops at evenly spaced
//! times, interpolating linearly between neighbours.

use thiserror::Error;

use super::blend::{BlendError, BlendSpec};

/// Separator between morph stops.
pub const MORPH_SEPARATOR: &str = "->";

/// Most stops a morph may have; more could not be heard apart in a clip of sensible length.
pub const MAX_MORPH_STOPS: usize = 32;

/// A blend per point in time: one stop (a constant blend) or several (a morph).
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    stops: Vec<BlendSpec>,
}

/// Why a `morph` parameter was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TimelineError {
    /// Fewer than two stops: a morph needs somewhere to go (use `blend` for one mixture).
    #[error("morph needs at least two stops separated by `->` (for one mixture use `blend`)")]
    TooFewStops,
    /// More than [`MAX_MORPH_STOPS`] stops.
    #[error("morph has {stops} stops; at most {MAX_MORPH_STOPS} are allowed")]
    TooManyStops {
        /// Stops given.
        stops: usize,
    },
    /// One stop is not a valid blend.
    #[error("morph stop {stop}: {source}")]
    Stop {
        /// 1-based position of the stop.
        stop: usize,
        /// What is wrong with it.
        source: BlendError,
    },
}

impl TimelineError {
    /// The stable `code` of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            TimelineError::TooFewStops => "morph_too_few_stops",
            TimelineError::TooManyStops { .. } => "morph_too_many_stops",
            TimelineError::Stop { source, .. } => source.code(),
        }
    }
}

impl Timeline {
    /// A constant blend.
    pub fn constant(blend: BlendSpec) -> Self {
        Self { stops: vec![blend] }
    }

    /// Parses `blend -> blend -> …` against the model's `genres`; each stop follows
    /// [`BlendSpec::parse`].
    pub fn parse_morph(text: &str, genres: &[String]) -> Result<Self, TimelineError> {
        let items: Vec<&str> = text.split(MORPH_SEPARATOR).collect();
        if items.len() > MAX_MORPH_STOPS {
            return Err(TimelineError::TooManyStops { stops: items.len() });
        }
        if items.len() < 2 {
            return Err(TimelineError::TooFewStops);
        }
        let stops = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                BlendSpec::parse(item, genres).map_err(|source| TimelineError::Stop { stop: i + 1, source })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { stops })
    }

    /// The stops in time order.
    pub fn stops(&self) -> &[BlendSpec] {
        &self.stops
    }

    /// Whether the blend changes along the clip.
    pub fn is_morph(&self) -> bool {
        self.stops.len() > 1
    }

    /// The mixture at `position` ∈ [0, 1] of the clip (clamped): stop `k` of `n` sits at `k/(n−1)`,
    /// and between two stops the weights are interpolated linearly (so they still sum to 1).
    pub fn weights_at(&self, position: f32) -> Vec<f32> {
        let last = self.stops.len() - 1;
        if last == 0 {
            return self.stops[0].weights().to_vec();
        }
        let scaled = position.clamp(0.0, 1.0) * last as f32;
        let left = (scaled.floor() as usize).min(last - 1);
        let t = scaled - left as f32;
        let (a, b) = (self.stops[left].weights(), self.stops[left + 1].weights());
        a.iter().zip(b).map(|(&a, &b)| (1.0 - t) * a + t * b).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genres() -> Vec<String> {
        ["cn", "edm", "orchestral"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn morph_interpolates_between_evenly_spaced_stops() {
        let timeline = Timeline::parse_morph("cn:1 -> cn:0.5,edm:0.5 -> edm:1", &genres()).unwrap();
        assert!(timeline.is_morph());
        assert_eq!(timeline.weights_at(0.0), vec![1.0, 0.0, 0.0]);
        assert_eq!(timeline.weights_at(0.5), vec![0.5, 0.5, 0.0]);
        assert_eq!(timeline.weights_at(1.0), vec![0.0, 1.0, 0.0]);
        assert_eq!(timeline.weights_at(0.25), vec![0.75, 0.25, 0.0]);
        assert_eq!(timeline.weights_at(7.0), vec![0.0, 1.0, 0.0]);
        for i in 0..=20 {
            let sum: f32 = timeline.weights_at(i as f32 / 20.0).iter().sum();
            assert!((sum - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn a_constant_timeline_is_its_blend_everywhere() {
        let blend = BlendSpec::parse("cn:3,orchestral:1", &genres()).unwrap();
        let timeline = Timeline::constant(blend);
        assert!(!timeline.is_morph());
        assert_eq!(timeline.weights_at(0.3), vec![0.75, 0.0, 0.25]);
    }

    #[test]
    fn bad_morphs_name_the_stop() {
        let error = Timeline::parse_morph("cn:1 -> polka:1", &genres()).unwrap_err();
        assert_eq!(error.code(), "unknown_genre");
        assert!(error.to_string().starts_with("morph stop 2: unknown genre `polka`"), "{error}");
        assert_eq!(Timeline::parse_morph("cn:1", &genres()).unwrap_err(), TimelineError::TooFewStops);
        assert_eq!(Timeline::parse_morph("cn -> ", &genres()).unwrap_err().code(), "blend_empty");
        let long = vec!["cn"; 40].join("->");
        assert_eq!(Timeline::parse_morph(&long, &genres()).unwrap_err(), TimelineError::TooManyStops { stops: 40 });
    }
}
