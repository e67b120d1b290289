//! The `blend` parameter: `genre:weight` pairs parsed against the model's genres.

use thiserror::Error;

/// A genre mixture: one weight per genre of the model, in the model's genre order, summing to 1.
#[derive(Debug, Clone, PartialEq)]
pub struct BlendSpec {
    weights: Vec<f32>,
}

/// Why a `blend` parameter was refused; each variant names the offending item.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BlendError {
    /// The parameter is empty (or only separators).
    #[error("blend is empty: give genre:weight pairs such as cn:0.6,edm:0.4")]
    Empty,
    /// A pair between commas is empty (`cn:1,,edm:1`).
    #[error("blend item {position} is empty")]
    EmptyItem {
        /// 1-based position of the item.
        position: usize,
    },
    /// A genre the model does not know.
    #[error("unknown genre `{genre}` (known: {known})")]
    UnknownGenre {
        /// The name given.
        genre: String,
        /// The model's genres, comma-separated.
        known: String,
    },
    /// A genre given twice.
    #[error("genre `{genre}` appears more than once in the blend")]
    RepeatedGenre {
        /// The name given twice.
        genre: String,
    },
    /// A weight that is not a number.
    #[error("weight `{weight}` of genre `{genre}` is not a number")]
    BadNumber {
        /// The genre.
        genre: String,
        /// The text given.
        weight: String,
    },
    /// A weight that is NaN or infinite.
    #[error("weight `{weight}` of genre `{genre}` is not finite")]
    NotFinite {
        /// The genre.
        genre: String,
        /// The text given.
        weight: String,
    },
    /// A negative weight.
    #[error("weight `{weight}` of genre `{genre}` is negative")]
    Negative {
        /// The genre.
        genre: String,
        /// The text given.
        weight: String,
    },
    /// Every weight is zero.
    #[error("all blend weights are zero; at least one must be positive")]
    AllZero,
    /// More pairs than the model has genres.
    #[error("blend has {pairs} pairs but the model has only {genres} genres")]
    TooManyPairs {
        /// Pairs given.
        pairs: usize,
        /// The model's genre count.
        genres: usize,
    },
}

impl BlendError {
    /// The stable `code` of the error body, one per variant, for clients that branch on it.
    pub fn code(&self) -> &'static str {
        match self {
            BlendError::Empty | BlendError::EmptyItem { .. } => "blend_empty",
            BlendError::UnknownGenre { .. } => "unknown_genre",
            BlendError::RepeatedGenre { .. } => "repeated_genre",
            BlendError::BadNumber { .. } | BlendError::NotFinite { .. } | BlendError::Negative { .. } => {
                "invalid_weight"
            }
            BlendError::AllZero => "blend_all_zero",
            BlendError::TooManyPairs { .. } => "blend_too_many_pairs",
        }
    }
}

impl BlendSpec {
    /// Parses `genre:weight` pairs separated by commas (`cn:0.6,edm:0.4`) against the model's ordered
    /// `genres`. A bare `cn` means `cn:1`; whitespace around names and numbers is ignored. Weights must
    /// be finite and ≥ 0 with at least one > 0; they are normalised to sum 1. Genres not named get 0.
    pub fn parse(text: &str, genres: &[String]) -> Result<Self, BlendError> {
        if text.trim().is_empty() {
            return Err(BlendError::Empty);
        }
        let items: Vec<&str> = text.split(',').collect();
        if items.len() > genres.len() {
            return Err(BlendError::TooManyPairs { pairs: items.len(), genres: genres.len() });
        }
        let mut weights = vec![0.0f64; genres.len()];
        let mut seen = vec![false; genres.len()];
        for (position, item) in items.iter().enumerate() {
            let (genre, weight_text) = match item.split_once(':') {
                Some((genre, weight)) => (genre.trim(), Some(weight.trim())),
                None => (item.trim(), None),
            };
            if genre.is_empty() && weight_text.is_none_or(str::is_empty) {
                return Err(BlendError::EmptyItem { position: position + 1 });
            }
            let index = genres
                .iter()
                .position(|g| g == genre)
                .ok_or_else(|| BlendError::UnknownGenre { genre: genre.into(), known: genres.join(",") })?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(BlendError::RepeatedGenre { genre: genre.into() });
            }
            weights[index] = match weight_text {
                None => 1.0,
                Some(text) => parse_weight(genre, text)?,
            };
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(BlendError::AllZero);
        }
        Ok(Self { weights: weights.iter().map(|w| (w / total) as f32).collect() })
    }

    /// One weight per model genre, in the model's order, summing to 1: the decoder's `genre` input row.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
}

fn parse_weight(genre: &str, text: &str) -> Result<f64, BlendError> {
    let error = |make: fn(String, String) -> BlendError| make(genre.into(), text.into());
    let weight: f64 = text.parse().map_err(|_| error(|genre, weight| BlendError::BadNumber { genre, weight }))?;
    if !weight.is_finite() {
        return Err(error(|genre, weight| BlendError::NotFinite { genre, weight }));
    }
    if weight < 0.0 || (weight == 0.0 && weight.is_sign_negative()) {
        return Err(error(|genre, weight| BlendError::Negative { genre, weight }));
    }
    Ok(weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genres() -> Vec<String> {
        ["cn", "edm", "jazz"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn good_blends_normalise_to_the_model_genre_order() {
        let cases: &[(&str, [f32; 3])] = &[
            ("cn:0.6,edm:0.4", [0.6, 0.4, 0.0]),
            ("edm:0.4,cn:0.6", [0.6, 0.4, 0.0]),
            ("cn", [1.0, 0.0, 0.0]),
            ("jazz:3,cn:1", [0.25, 0.0, 0.75]),
            (" cn : 2 , edm:2 ", [0.5, 0.5, 0.0]),
            ("cn:0,edm:1e-3", [0.0, 1.0, 0.0]),
            ("cn,edm,jazz", [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]),
        ];
        for (text, expected) in cases {
            let blend = BlendSpec::parse(text, &genres()).unwrap_or_else(|e| panic!("{text}: {e}"));
            for (got, want) in blend.weights().iter().zip(expected) {
                assert!((got - want).abs() < 1e-6, "{text}: {:?} vs {expected:?}", blend.weights());
            }
            assert!((blend.weights().iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn bad_blends_each_name_the_offending_item() {
        let unknown = |genre: &str| BlendError::UnknownGenre { genre: genre.into(), known: "cn,edm,jazz".into() };
        let bad = |genre: &str, weight: &str| BlendError::BadNumber { genre: genre.into(), weight: weight.into() };
        let cases: Vec<(&str, BlendError, &str)> = vec![
            ("", BlendError::Empty, "empty"),
            ("  ", BlendError::Empty, "empty"),
            ("cn:1,,edm:1", BlendError::EmptyItem { position: 2 }, "item 2"),
            ("polka:1", unknown("polka"), "`polka`"),
            ("cn:0.5,CN:0.5", unknown("CN"), "`CN`"),
            (":1", unknown(""), "unknown genre ``"),
            ("cn:1,cn:2", BlendError::RepeatedGenre { genre: "cn".into() }, "`cn`"),
            ("cn:abc", bad("cn", "abc"), "`abc`"),
            ("cn:", bad("cn", ""), "genre `cn`"),
            ("cn:0.5:0.5", bad("cn", "0.5:0.5"), "`0.5:0.5`"),
            ("cn:NaN", BlendError::NotFinite { genre: "cn".into(), weight: "NaN".into() }, "`NaN`"),
            ("edm:inf", BlendError::NotFinite { genre: "edm".into(), weight: "inf".into() }, "`inf`"),
            ("cn:1e999", BlendError::NotFinite { genre: "cn".into(), weight: "1e999".into() }, "`1e999`"),
            ("cn:-0.5", BlendError::Negative { genre: "cn".into(), weight: "-0.5".into() }, "`-0.5`"),
            ("cn:-0", BlendError::Negative { genre: "cn".into(), weight: "-0".into() }, "`-0`"),
            ("cn:0,edm:0", BlendError::AllZero, "zero"),
            ("cn,edm,jazz,cn", BlendError::TooManyPairs { pairs: 4, genres: 3 }, "4 pairs"),
        ];
        for (text, expected, message) in cases {
            let err = BlendSpec::parse(text, &genres()).expect_err(text);
            assert_eq!(err, expected, "{text:?}");
            assert!(err.to_string().contains(message), "{text:?}: {err}");
        }
    }
}
