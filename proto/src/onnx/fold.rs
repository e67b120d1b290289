//! Folding inference-mode BatchNorm into the convolution before it.
//!
//! The decoder export writes every `conv → BatchNorm` pair as a single `Conv` whose weights and bias
//! absorb the normalisation: one operator fewer per pair, and the same numbers, because at inference
//! BatchNorm is a fixed per-channel affine map `y = γ·(x − μ)/√(σ² + ε) + β`.

use thiserror::Error;

/// The parameters of an inference-mode BatchNorm over `C` channels (running statistics, not batch ones).
#[derive(Debug, Clone, Copy)]
pub struct BatchNorm<'a> {
    /// Scale `γ`, `[C]`.
    pub gamma: &'a [f32],
    /// Shift `β`, `[C]`.
    pub beta: &'a [f32],
    /// Running mean `μ`, `[C]`.
    pub mean: &'a [f32],
    /// Running variance `σ²`, `[C]`.
    pub var: &'a [f32],
    /// `ε` added to the variance.
    pub epsilon: f32,
}

/// Why a BatchNorm's parameters cannot be applied to a convolution.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FoldError {
    /// One of `beta`, `mean`, `var` has a different length than `gamma`.
    #[error("batch norm `{parameter}` has {actual} channels, `gamma` has {expected}")]
    ChannelCount {
        /// The parameter with the wrong length.
        parameter: &'static str,
        /// Its length.
        actual: usize,
        /// `gamma`'s length.
        expected: usize,
    },
    /// The convolution weight does not split into `C` equal output-channel slices.
    #[error("convolution weight has {weight_len} values, not a whole number of slices for {channels} output channels")]
    WeightShape {
        /// Number of weight values.
        weight_len: usize,
        /// Output channels, from `gamma`.
        channels: usize,
    },
    /// The convolution bias length is not `C`.
    #[error("convolution bias has {actual} values, expected {expected} output channels")]
    BiasLength {
        /// Its length.
        actual: usize,
        /// Output channels, from `gamma`.
        expected: usize,
    },
}

impl BatchNorm<'_> {
    /// Checks that all four parameter vectors have one value per channel.
    pub fn check(&self) -> Result<(), FoldError> {
        let expected = self.gamma.len();
        for (parameter, values) in [("beta", self.beta), ("mean", self.mean), ("var", self.var)] {
            if values.len() != expected {
                return Err(FoldError::ChannelCount { parameter, actual: values.len(), expected });
            }
        }
        Ok(())
    }
}

/// Weight and bias of one convolution equal to `conv(weight, bias)` followed by `norm`.
///
/// `weight` is row-major with the output channel outermost (`[C, …]`, as ONNX `Conv` and burn store
/// it); a missing `bias` counts as zero. Per channel `c`, with `s = γ_c/√(σ²_c + ε)`:
/// `W'_c = s·W_c` and `b'_c = s·(b_c − μ_c) + β_c`.
pub fn fold_batch_norm_into_conv(
    weight: &[f32],
    bias: Option<&[f32]>,
    norm: &BatchNorm<'_>,
) -> Result<(Vec<f32>, Vec<f32>), FoldError> {
    norm.check()?;
    let channels = norm.gamma.len();
    if channels == 0 || !weight.len().is_multiple_of(channels) {
        return Err(FoldError::WeightShape { weight_len: weight.len(), channels });
    }
    if let Some(bias) = bias.filter(|b| b.len() != channels) {
        return Err(FoldError::BiasLength { actual: bias.len(), expected: channels });
    }
    let per_channel = weight.len() / channels;
    let mut folded_weight = Vec::with_capacity(weight.len());
    let mut folded_bias = Vec::with_capacity(channels);
    for (c, slice) in weight.chunks_exact(per_channel).enumerate() {
        let scale = norm.gamma[c] / (norm.var[c] + norm.epsilon).sqrt();
        folded_weight.extend(slice.iter().map(|w| w * scale));
        let b = bias.map_or(0.0, |b| b[c]);
        folded_bias.push((b - norm.mean[c]) * scale + norm.beta[c]);
    }
    Ok((folded_weight, folded_bias))
}
