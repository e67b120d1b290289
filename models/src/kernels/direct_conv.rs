//! The 3×3, stride-1, zero-padding-1 convolution computed directly on `NCHW` rows — the
//! convolution of every residual block — used for the forward pass and, with the kernel flipped
//! and transposed, for the input gradient.
//!
//! Most of the model's arithmetic is in the decoder's finest stages, where the maps are wide and
//! the channels few (tiny preset: 8–16 channels on 64 × 320; paper: 32 on 128 × 1280). There
//! im2col + GEMM (burn-flex's path) spends more time copying nine shifted copies of the input
//! than multiplying small matrices. This kernel reads each input row in place: for a run of
//! output pixels of one row as wide as a vector register it keeps the sums of up to 16 output
//! channels in registers and adds, per input channel and kernel tap, one shifted load of the
//! input row times a broadcast weight. Compiled three times — AVX-512 (16 pixels per run, 16
//! channels), AVX2 + FMA (8 and 8), chosen at run time, and portable.
//!
//! Measured against burn-flex's convolution on single layers (the 3×3 forward alone, 2 cores):
//! 32→32 channels on 128 × 1280 at batch 2, 39–42 against 17–23 GFLOP/s; 8→8 on 64 × 320 at
//! batch 8, 40–48 against 5–6 GFLOP/s; 256→256 on 8 × 80, 44–102 against 31–58 GFLOP/s.

use rayon::prelude::*;

/// Output pixels per register run: one AVX-512 register, two AVX2 ones. Rows are padded to
/// whole runs of this width whatever the instruction set.
const MAX_LANES: usize = 16;
/// Output channels per work item; a run keeps the sums of up to 16 (AVX-512) or 8 in registers.
const BLOCK: usize = 16;

/// One 3×3 "same" convolution's sizes (`NCHW`, no bias).
#[derive(Debug, Clone, Copy)]
pub struct SameConv3x3 {
    /// Images in the batch.
    pub batch: usize,
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Rows of the input and of the output.
    pub height: usize,
    /// Columns of the input and of the output.
    pub width: usize,
}

impl SameConv3x3 {
    /// Width of a padded input row: one zero on the left, the row rounded up to whole runs, and
    /// one zero plus slack on the right so every run's three shifted loads stay inside the row.
    pub(super) fn padded_width(&self) -> usize {
        self.width.div_ceil(MAX_LANES) * MAX_LANES + 2
    }

    /// Elements of one padded input image.
    fn padded_image(&self) -> usize {
        self.in_channels * (self.height + 2) * self.padded_width()
    }
}

/// `out[b, o, h, w] = Σ_{i, a, c} weight[o, i, a, c] · x[b, i, h + a − 1, w + c − 1]`, zero
/// outside the image. `x` is `[B, I, H, W]`, `weight` `[O, I, 3, 3]`, both row-major.
pub fn conv3x3_same(x: &[f32], weight: &[f32], shape: SameConv3x3) -> Vec<f32> {
    conv3x3_same_with(x, weight, shape, InstructionSet::best())
}

/// The instruction sets the kernel is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstructionSet {
    /// 16 lanes, intrinsics.
    Avx512,
    /// 8 lanes, the portable loop compiled with AVX2 + FMA.
    Avx2,
    /// The portable loop for the build's baseline target.
    Portable,
}

impl InstructionSet {
    /// The widest this CPU has.
    fn best() -> Self {
        Self::available().into_iter().next().unwrap_or(Self::Portable)
    }

    /// Every one this CPU can run, widest first.
    fn available() -> Vec<Self> {
        let mut sets = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                sets.push(Self::Avx512);
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                sets.push(Self::Avx2);
            }
        }
        sets.push(Self::Portable);
        sets
    }
}

/// [`conv3x3_same`] with a chosen instruction set (the tests run each one this CPU has).
fn conv3x3_same_with(x: &[f32], weight: &[f32], shape: SameConv3x3, isa: InstructionSet) -> Vec<f32> {
    let SameConv3x3 { batch, in_channels, out_channels, height, width } = shape;
    assert_eq!(x.len(), batch * in_channels * height * width, "input size");
    assert_eq!(weight.len(), out_channels * in_channels * 9, "weight size");
    let padded = pad_images(x, shape);
    let plane = height * width;
    let mut output = vec![0.0f32; batch * out_channels * plane];
    // Work items: (image, first output channel, that block's output planes).
    let mut items = Vec::new();
    for (image, planes) in output.chunks_mut(out_channels * plane).enumerate() {
        for (index, block) in planes.chunks_mut(BLOCK * plane).enumerate() {
            items.push((image, index * BLOCK, block));
        }
    }
    items.into_par_iter().for_each(|(image, first, out)| {
        let channels = out.len() / plane;
        let packed = pack_weights(weight, in_channels, first, channels);
        let input = &padded[image * shape.padded_image()..][..shape.padded_image()];
        run_block(input, &packed, out, channels, shape, isa);
    });
    output
}

/// The kernel for the input gradient of [`conv3x3_same`]: `weight[o, i, a, c]` becomes
/// `flipped[i, o, 2 − a, 2 − c]`, so `conv3x3_same(grad, flipped)` is `∂L/∂x`.
pub fn flip_transpose(weight: &[f32], out_channels: usize, in_channels: usize) -> Vec<f32> {
    let mut flipped = vec![0.0f32; weight.len()];
    for o in 0..out_channels {
        for i in 0..in_channels {
            for tap in 0..9 {
                flipped[(i * out_channels + o) * 9 + (8 - tap)] = weight[(o * in_channels + i) * 9 + tap];
            }
        }
    }
    flipped
}

/// Each image's channels with a one-pixel zero border, rows widened to [`SameConv3x3::padded_width`].
pub(super) fn pad_images(x: &[f32], shape: SameConv3x3) -> Vec<f32> {
    let SameConv3x3 { batch, in_channels, height, width, .. } = shape;
    let padded_width = shape.padded_width();
    let padded_plane = (height + 2) * padded_width;
    let mut padded = vec![0.0f32; batch * in_channels * padded_plane];
    padded.par_chunks_mut(padded_plane).zip(x.par_chunks(height * width)).for_each(|(out, plane)| {
        for (row, source) in plane.chunks_exact(width).enumerate() {
            out[(row + 1) * padded_width + 1..][..width].copy_from_slice(source);
        }
    });
    padded
}

/// The weights of output channels `first .. first + channels`, ordered `[i][tap][channel]` so the
/// kernel reads them in sequence.
fn pack_weights(weight: &[f32], in_channels: usize, first: usize, channels: usize) -> Vec<f32> {
    let mut packed = vec![0.0f32; in_channels * 9 * channels];
    for k in 0..channels {
        for i in 0..in_channels {
            for tap in 0..9 {
                packed[(i * 9 + tap) * channels + k] = weight[((first + k) * in_channels + i) * 9 + tap];
            }
        }
    }
    packed
}

/// Computes `channels` (≤ [`BLOCK`]) output planes of one image with `isa`.
fn run_block(input: &[f32], packed: &[f32], out: &mut [f32], channels: usize, shape: SameConv3x3, isa: InstructionSet) {
    match isa {
        // SAFETY: `InstructionSet::available` lists only what this CPU supports.
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx512 => unsafe { block_avx512(input, packed, out, channels, shape) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx2 => unsafe { block_avx2(input, packed, out, channels, shape) },
        _ => dispatch_block::<8, false>(input, packed, out, channels, shape),
    }
}

/// The AVX-512 path, written with intrinsics: LLVM does not vectorise the portable loop at
/// 16 lanes × 8 channels (measured: 10× slower than the AVX2 build of the same loop).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(input: &[f32], packed: &[f32], out: &mut [f32], channels: usize, shape: SameConv3x3) {
    split_block(packed, out, channels, shape, &[16, 8, 4, 1], |weights, planes, size| match size {
        // SAFETY: this function's own target features, which the caller checked.
        16 => unsafe { block_avx512_channels::<16>(input, weights, planes, shape) },
        8 => unsafe { block_avx512_channels::<8>(input, weights, planes, shape) },
        4 => unsafe { block_avx512_channels::<4>(input, weights, planes, shape) },
        _ => unsafe { block_avx512_channels::<1>(input, weights, planes, shape) },
    });
}

/// [`block`] for 16 lanes and `OB` channels with AVX-512 intrinsics.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512_channels<const OB: usize>(input: &[f32], packed: &[f32], out: &mut [f32], shape: SameConv3x3) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    };
    let SameConv3x3 { in_channels, height, width, .. } = shape;
    let padded_width = shape.padded_width();
    let padded_plane = (height + 2) * padded_width;
    assert!(input.len() >= in_channels * padded_plane && packed.len() >= in_channels * 9 * OB);
    assert!(out.len() >= OB * height * width);
    for row in 0..height {
        for start in (0..width).step_by(MAX_LANES) {
            let mut sums: [__m512; OB] = [_mm512_setzero_ps(); OB];
            for i in 0..in_channels {
                for a in 0..3 {
                    // SAFETY: `(row + a) * padded_width + start + c + 16 ≤ padded_plane` for
                    // `row < height`, `a, c ≤ 2`, `start + 16 ≤ padded_width − 2` (rows are padded
                    // to whole runs plus two), and `i < in_channels`: inside `input` (asserted).
                    // The weights read are `(i·9 + tap)·OB + k < in_channels·9·OB` (asserted).
                    let source = input.as_ptr().add(i * padded_plane + (row + a) * padded_width + start);
                    for c in 0..3 {
                        let values = _mm512_loadu_ps(source.add(c));
                        let weights = packed.as_ptr().add((i * 9 + a * 3 + c) * OB);
                        for (k, sum) in sums.iter_mut().enumerate() {
                            *sum = _mm512_fmadd_ps(_mm512_set1_ps(*weights.add(k)), values, *sum);
                        }
                    }
                }
            }
            let count = MAX_LANES.min(width - start);
            let mask = if count == MAX_LANES { u16::MAX } else { (1u16 << count) - 1 };
            for (k, sum) in sums.iter().enumerate() {
                // SAFETY: the masked store writes `count` values at `k·H·W + row·W + start`, and
                // `start + count ≤ width`: inside `out` (asserted).
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(k * height * width + row * width + start), mask, *sum);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(input: &[f32], packed: &[f32], out: &mut [f32], channels: usize, shape: SameConv3x3) {
    dispatch_block::<8, true>(input, packed, out, channels, shape);
}

/// The portable loop on sub-blocks of 8, 4 and 1 channels (8 × 8 sums fill AVX2's registers).
#[inline(always)]
fn dispatch_block<const LANES: usize, const FMA: bool>(
    input: &[f32],
    packed: &[f32],
    out: &mut [f32],
    channels: usize,
    shape: SameConv3x3,
) {
    split_block(packed, out, channels, shape, &[8, 4, 1], |weights, planes, size| match size {
        8 => block::<8, LANES, FMA>(input, weights, planes, shape),
        4 => block::<4, LANES, FMA>(input, weights, planes, shape),
        _ => block::<1, LANES, FMA>(input, weights, planes, shape),
    });
}

/// Splits a block's `channels` output planes into sub-blocks of the given sizes (largest that
/// fits first; the list ends with 1) and runs `kernel(weights, planes, size)` on each with the
/// sub-block's weights in [`pack_weights`]' order.
#[inline(always)]
fn split_block(
    packed: &[f32],
    out: &mut [f32],
    channels: usize,
    shape: SameConv3x3,
    sizes: &[usize],
    mut kernel: impl FnMut(&[f32], &mut [f32], usize),
) {
    let plane = shape.height * shape.width;
    let taps = packed.len() / channels;
    let mut first = 0;
    let mut rest = out;
    while first < channels {
        let size = sizes.iter().copied().find(|&size| size <= channels - first).unwrap_or(1);
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(size * plane);
        if size == channels {
            kernel(packed, head, size);
        } else {
            let weights: Vec<f32> =
                (0..taps).flat_map(|tap| (0..size).map(move |k| packed[tap * channels + first + k])).collect();
            kernel(&weights, head, size);
        }
        rest = tail;
        first += size;
    }
}

/// The register-blocked loop: for every run of `LANES` (≤ [`MAX_LANES`]) pixels of every output row, the sums of
/// `OB` output channels over all input channels and the nine taps.
#[inline(always)]
fn block<const OB: usize, const LANES: usize, const FMA: bool>(
    input: &[f32],
    packed: &[f32],
    out: &mut [f32],
    shape: SameConv3x3,
) {
    let SameConv3x3 { in_channels, height, width, .. } = shape;
    let padded_width = shape.padded_width();
    let padded_plane = (height + 2) * padded_width;
    for row in 0..height {
        for start in (0..width).step_by(LANES) {
            let mut sums = [[0.0f32; LANES]; OB];
            for i in 0..in_channels {
                let plane = &input[i * padded_plane..][..padded_plane];
                for a in 0..3 {
                    let source = &plane[(row + a) * padded_width + start..][..LANES + 2];
                    for c in 0..3 {
                        let values: &[f32; LANES] = source[c..c + LANES].try_into().expect("LANES values");
                        let weights: &[f32; OB] =
                            packed[(i * 9 + a * 3 + c) * OB..][..OB].try_into().expect("OB weights");
                        for k in 0..OB {
                            for lane in 0..LANES {
                                sums[k][lane] = if FMA {
                                    weights[k].mul_add(values[lane], sums[k][lane])
                                } else {
                                    sums[k][lane] + weights[k] * values[lane]
                                };
                            }
                        }
                    }
                }
            }
            let count = LANES.min(width - start);
            for (k, sum) in sums.iter().enumerate() {
                out[k * height * width + row * width + start..][..count].copy_from_slice(&sum[..count]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, term by term.
    fn reference(x: &[f32], weight: &[f32], s: SameConv3x3) -> Vec<f32> {
        let mut out = vec![0.0f32; s.batch * s.out_channels * s.height * s.width];
        for b in 0..s.batch {
            for o in 0..s.out_channels {
                for h in 0..s.height {
                    for w in 0..s.width {
                        let mut sum = 0.0f64;
                        for i in 0..s.in_channels {
                            for a in 0..3 {
                                for c in 0..3 {
                                    let (y, z) = ((h + a) as isize - 1, (w + c) as isize - 1);
                                    if y < 0 || z < 0 || y >= s.height as isize || z >= s.width as isize {
                                        continue;
                                    }
                                    let xv =
                                        x[((b * s.in_channels + i) * s.height + y as usize) * s.width + z as usize];
                                    sum += (weight[((o * s.in_channels + i) * 3 + a) * 3 + c] * xv) as f64;
                                }
                            }
                        }
                        out[((b * s.out_channels + o) * s.height + h) * s.width + w] = sum as f32;
                    }
                }
            }
        }
        out
    }

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|k| ((k as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1 << 23) as f32 - 1.0)
            .collect()
    }

    #[test]
    fn matches_the_definition_for_odd_sizes_and_channel_counts_on_every_instruction_set() {
        // Widths below, at and between whole runs of 8 and 16; output channel counts 1, 3, 4, 8,
        // 13, 16 and 29 (a block of 16, then 8, 4 and 1).
        for (batch, in_channels, out_channels, height, width) in [
            (2, 3, 13, 5, 7),
            (1, 1, 1, 1, 1),
            (1, 4, 8, 3, 8),
            (2, 5, 4, 4, 17),
            (1, 2, 3, 6, 33),
            (1, 3, 16, 2, 16),
            (2, 2, 29, 3, 40),
        ] {
            let shape = SameConv3x3 { batch, in_channels, out_channels, height, width };
            let x = values(batch * in_channels * height * width, 1);
            let weight = values(out_channels * in_channels * 9, 7);
            let expected = reference(&x, &weight, shape);
            for isa in InstructionSet::available() {
                let actual = conv3x3_same_with(&x, &weight, shape, isa);
                let worst = actual.iter().zip(&expected).map(|(a, e)| (a - e).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-5, "{shape:?} with {isa:?}: off by {worst}");
            }
        }
    }

    #[test]
    fn flip_transpose_reverses_taps_and_swaps_channels() {
        let weight: Vec<f32> = (0..2 * 3 * 9).map(|v| v as f32).collect();
        let flipped = flip_transpose(&weight, 2, 3);
        // weight[o = 1, i = 2, tap 0] lands at flipped[i = 2, o = 1, tap 8].
        assert_eq!(flipped[(2 * 2 + 1) * 9 + 8], weight[(3 + 2) * 9]);
        assert_eq!(flip_transpose(&flipped, 3, 2), weight);
    }
}
