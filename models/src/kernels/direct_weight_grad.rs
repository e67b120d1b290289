//! The weight gradient of [`conv3x3_same`](super::direct_conv::conv3x3_same) computed directly,
//! on AVX-512: `dW[o, i, a, c] = Σ_{b, h, w} grad[b, o, h, w] · x[b, i, h + a − 1, w + c − 1]`.
//!
//! The GEMM formulation ([`super::flex::conv2d_weight_grad`]) first copies the input nine times
//! (im2col), which costs more than the products when the channels are few. Here each work item
//! — three output channels and one input channel — keeps its 27 sums in registers as 16-lane
//! vectors and streams the rows: per run of 16 pixels, three gradient loads, nine shifted loads
//! of the zero-padded input ([`super::direct_conv`]'s layout, shared with the forward) and 27
//! fused multiply-adds; the lanes are added once at the end. Lanes past the row's end read a
//! zero gradient, so they add nothing.

use rayon::prelude::*;

use super::direct_conv::{pad_images, SameConv3x3};

/// Output channels per work item (27 of AVX-512's 32 registers hold the sums).
const CHANNELS_PER_ITEM: usize = 3;

/// `dW [O, I, 3, 3]` for `x [B, I, H, W]` and `grad [B, O, H, W]`, or `None` when this CPU has
/// no AVX-512 (the caller then uses the GEMM formulation).
pub fn weight_grad_3x3_same(x: &[f32], grad: &[f32], shape: SameConv3x3) -> Option<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        return Some(weight_grad_avx512(x, grad, shape));
    }
    let _ = (x, grad, shape);
    None
}

#[cfg(target_arch = "x86_64")]
fn weight_grad_avx512(x: &[f32], grad: &[f32], shape: SameConv3x3) -> Vec<f32> {
    let SameConv3x3 { in_channels, out_channels, .. } = shape;
    assert_eq!(x.len(), shape.batch * in_channels * shape.height * shape.width, "input size");
    assert_eq!(grad.len(), shape.batch * out_channels * shape.height * shape.width, "gradient size");
    let padded = pad_images(x, shape);
    let blocks = out_channels.div_ceil(CHANNELS_PER_ITEM);
    let sums: Vec<(usize, usize, Vec<f32>)> = (0..blocks * in_channels)
        .into_par_iter()
        .map(|item| {
            let (block, input_channel) = (item / in_channels, item % in_channels);
            let first = block * CHANNELS_PER_ITEM;
            let count = CHANNELS_PER_ITEM.min(out_channels - first);
            let mut taps = vec![0.0f32; count * 9];
            // SAFETY: the CPU has AVX-512 (checked by the caller); the item's indices are in range.
            unsafe {
                match count {
                    3 => item_avx512::<3>(&padded, grad, shape, first, input_channel, &mut taps),
                    2 => item_avx512::<2>(&padded, grad, shape, first, input_channel, &mut taps),
                    _ => item_avx512::<1>(&padded, grad, shape, first, input_channel, &mut taps),
                }
            }
            (first, input_channel, taps)
        })
        .collect();
    let mut weight_grad = vec![0.0f32; out_channels * in_channels * 9];
    for (first, input_channel, taps) in sums {
        for (k, nine) in taps.chunks_exact(9).enumerate() {
            weight_grad[((first + k) * in_channels + input_channel) * 9..][..9].copy_from_slice(nine);
        }
    }
    weight_grad
}

/// The 9·`OB` sums of output channels `first .. first + OB` against input channel `channel`,
/// written to `taps[k·9 + tap]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn item_avx512<const OB: usize>(
    padded: &[f32],
    grad: &[f32],
    shape: SameConv3x3,
    first: usize,
    channel: usize,
    taps: &mut [f32],
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps,
    };
    let SameConv3x3 { batch, in_channels, out_channels, height, width } = shape;
    let padded_width = shape.padded_width();
    let padded_plane = (height + 2) * padded_width;
    let plane = height * width;
    assert!(first + OB <= out_channels && channel < in_channels && taps.len() >= OB * 9);
    assert!(padded.len() >= batch * in_channels * padded_plane && grad.len() >= batch * out_channels * plane);
    let mut sums: [[__m512; 9]; OB] = [[_mm512_setzero_ps(); 9]; OB];
    for image in 0..batch {
        let input = padded.as_ptr().add((image * in_channels + channel) * padded_plane);
        let gradient = grad.as_ptr().add((image * out_channels + first) * plane);
        for row in 0..height {
            for start in (0..width).step_by(16) {
                let count = 16.min(width - start);
                let mask = if count == 16 { u16::MAX } else { (1u16 << count) - 1 };
                // SAFETY: gradient reads cover `k·plane + row·width + start .. + count` (masked)
                // for `k < OB`, inside the `OB` planes from `first` (asserted); input reads
                // `(row + a)·padded_width + start + c .. + 16 ≤ padded_plane` as in the forward
                // kernel (rows padded to whole runs plus two).
                let mut g: [__m512; OB] = [_mm512_setzero_ps(); OB];
                for (k, value) in g.iter_mut().enumerate() {
                    *value = _mm512_maskz_loadu_ps(mask, gradient.add(k * plane + row * width + start));
                }
                for a in 0..3 {
                    let source = input.add((row + a) * padded_width + start);
                    for c in 0..3 {
                        let values = _mm512_loadu_ps(source.add(c));
                        for k in 0..OB {
                            sums[k][a * 3 + c] = _mm512_fmadd_ps(g[k], values, sums[k][a * 3 + c]);
                        }
                    }
                }
            }
        }
    }
    for (k, nine) in sums.iter().enumerate() {
        for (tap, sum) in nine.iter().enumerate() {
            taps[k * 9 + tap] = _mm512_reduce_add_ps(*sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition_where_the_cpu_has_avx512() {
        // 7 output channels: items of 3, 3 and 1; widths with and without a partial run.
        for (batch, in_channels, out_channels, height, width) in [(2, 2, 7, 3, 21), (1, 3, 2, 4, 16), (3, 1, 1, 2, 5)] {
            let shape = SameConv3x3 { batch, in_channels, out_channels, height, width };
            let value = |k: usize, seed: usize| ((k * 7919 + seed * 104_729) % 201) as f32 / 100.0 - 1.0;
            let x: Vec<f32> = (0..batch * in_channels * height * width).map(|k| value(k, 1)).collect();
            let grad: Vec<f32> = (0..batch * out_channels * height * width).map(|k| value(k, 2)).collect();
            let Some(actual) = weight_grad_3x3_same(&x, &grad, shape) else {
                return; // no AVX-512 here: the GEMM formulation is used (and tested) instead
            };
            for o in 0..out_channels {
                for i in 0..in_channels {
                    for tap in 0..9 {
                        let (a, c) = (tap / 3, tap % 3);
                        let mut sum = 0.0f64;
                        for b in 0..batch {
                            for h in 0..height {
                                for w in 0..width {
                                    let (y, z) = ((h + a) as isize - 1, (w + c) as isize - 1);
                                    if y < 0 || z < 0 || y >= height as isize || z >= width as isize {
                                        continue;
                                    }
                                    let xv = x[((b * in_channels + i) * height + y as usize) * width + z as usize];
                                    sum += (grad[((b * out_channels + o) * height + h) * width + w] * xv) as f64;
                                }
                            }
                        }
                        let got = actual[(o * in_channels + i) * 9 + tap];
                        assert!((got as f64 - sum).abs() < 1e-4, "{shape:?} o{o} i{i} tap{tap}: {got} vs {sum}");
                    }
                }
            }
        }
    }
}
