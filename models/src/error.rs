//! Errors of [`crate::VaeConfig::validate`], each naming the offending config field.

use thiserror::Error;

/// Why a [`crate::VaeConfig`] cannot build a model. [`VaeConfigError::field`] names the field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VaeConfigError {
    /// A spatial size is not a positive multiple of 32 (the encoder halves it five times and
    /// the decoder doubles it five times, so anything else cannot round-trip).
    #[error("`{field}` is {value}; it must be a positive multiple of 32 (the model downsamples by 32)")]
    NotMultipleOf32 {
        /// The config field.
        field: &'static str,
        /// Its value.
        value: usize,
    },
    /// A count or size that must be at least 1 is 0.
    #[error("`{field}` must be at least 1")]
    Zero {
        /// The config field.
        field: &'static str,
    },
    /// A per-stage list has the wrong number of entries.
    #[error("`{field}` has {actual} entries; the model needs exactly {expected}")]
    WrongLength {
        /// The config field.
        field: &'static str,
        /// Entries the architecture needs.
        expected: usize,
        /// Entries given.
        actual: usize,
    },
    /// A per-stage list contains a 0.
    #[error("`{field}` contains 0 at index {index}; every entry must be at least 1")]
    ZeroEntry {
        /// The config field.
        field: &'static str,
        /// Position of the zero.
        index: usize,
    },
    /// A latent map ([`crate::LatentHead::Map`]) needs `latent_dim` to be a whole number of
    /// channels per cell of the `n_mels/32 × frames/32` grid.
    #[error(
        "`latent_dim` is {latent_dim}; a latent map needs a multiple of its {cells} cells \
         (n_mels/32 × frames/32), e.g. {example}"
    )]
    LatentMapSize {
        /// The configured latent size.
        latent_dim: usize,
        /// Cells of the latent grid.
        cells: usize,
        /// The nearest valid size at or above `latent_dim`.
        example: usize,
    },
    /// The latent grid's down-sampling is not one the encoder's stages can produce.
    #[error("`latent_downsampling` is {value}; it must be 8, 16 or 32")]
    LatentDownsampling {
        /// The configured value.
        value: usize,
    },
    /// The log-variance clamp range is empty or not finite.
    #[error("`logvar_min` ({min}) must be finite and below `logvar_max` ({max})")]
    LogvarRange {
        /// The configured lower bound.
        min: f64,
        /// The configured upper bound.
        max: f64,
    },
}

impl VaeConfigError {
    /// The name of the config field at fault (`logvar_min` for an empty clamp range).
    pub fn field(&self) -> &'static str {
        match self {
            Self::NotMultipleOf32 { field, .. }
            | Self::Zero { field }
            | Self::WrongLength { field, .. }
            | Self::ZeroEntry { field, .. } => field,
            Self::LatentMapSize { .. } => "latent_dim",
            Self::LatentDownsampling { .. } => "latent_downsampling",
            Self::LogvarRange { .. } => "logvar_min",
        }
    }
}
