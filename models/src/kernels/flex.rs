//! The `flex` CPU backend's training kernels: the direct 3×3 convolution where it applies
//! ([`super::direct_conv`], [`super::direct_weight_grad`]), a GEMM-shaped weight gradient for the
//! other convolutions, and a two-pass BatchNorm, forward and backward.
//!
//! Each works on contiguous `f32` data (what training produces); any other dtype or layout, and
//! grouped or dilated convolutions, fall back to burn's own operations, so the kernels are never a
//! reason for a wrong result, only for a faster one.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::{BatchNormTrain, BatchNormTrainBackward, ConvOptions, ModuleOps};
use burn::backend::Flex;
use burn::tensor::{Bytes, DType, Shape};
use rayon::prelude::*;

use super::direct_conv::{conv3x3_same, flip_transpose, SameConv3x3};
use super::direct_weight_grad::weight_grad_3x3_same;

/// Narrowest map the direct 3×3 kernel takes: below it a row is less than two register runs
/// and burn-flex's im2col + GEMM, which batches the few pixels into one matrix, is as fast.
const MIN_DIRECT_WIDTH: usize = 16;

/// Target size of one im2col tile in `f32`s (≈ 1 MiB: a tile and its accumulator stay in L2).
const TILE_ELEMENTS: usize = 1 << 18;

/// The contiguous `f32` values of `tensor`, or `None` for another dtype.
fn f32_values(tensor: &FlexTensor) -> Option<std::borrow::Cow<'_, [f32]>> {
    if tensor.dtype() != DType::F32 {
        return None;
    }
    match tensor.as_slice::<f32>() {
        Some(values) => Some(std::borrow::Cow::Borrowed(values)),
        None => Some(std::borrow::Cow::Owned(tensor.to_contiguous().as_slice::<f32>()?.to_vec())),
    }
}

/// A contiguous `f32` tensor of `shape` holding `values`.
fn f32_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape), DType::F32)
}

/// The four dimensions of a rank-4 tensor.
fn dims4(tensor: &FlexTensor) -> [usize; 4] {
    let shape = tensor.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

/// The sizes of a convolution the direct 3×3 kernel computes: `f32`, 3×3, stride 1, padding 1
/// on every side, no dilation or groups, a map at least [`MIN_DIRECT_WIDTH`] wide.
fn direct_shape(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<SameConv3x3> {
    let [batch, in_channels, height, width] = dims4(x);
    let [out_channels, weight_in, kernel_h, kernel_w] = dims4(weight);
    let plain = options.stride == [1, 1]
        && options.padding == [(1, 1), (1, 1)]
        && options.dilation == [1, 1]
        && options.groups == 1;
    let fits = [kernel_h, kernel_w] == [3, 3] && weight_in == in_channels && width >= MIN_DIRECT_WIDTH;
    let floats = x.dtype() == DType::F32 && weight.dtype() == DType::F32;
    (plain && fits && floats).then_some(SameConv3x3 { batch, in_channels, out_channels, height, width })
}

/// `conv2d(x, weight)` without bias: the direct kernel where it applies, burn-flex's otherwise.
pub fn conv2d_forward(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
    let Some(shape) = direct_shape(&x, &weight, &options) else {
        return Flex::conv2d(x, weight, None, options);
    };
    let (Some(xs), Some(weights)) = (f32_values(&x), f32_values(&weight)) else {
        return Flex::conv2d(x, weight, None, options);
    };
    let output = conv3x3_same(&xs, &weights, shape);
    f32_tensor(output, Shape::new([shape.batch, shape.out_channels, shape.height, shape.width]))
}

/// Gradient of `conv2d(x, weight)` with respect to `x`: for the direct kernel's convolutions the
/// same kernel on the output gradient with the weights flipped and transposed, burn's otherwise.
pub fn conv2d_input_grad(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    let direct = direct_shape(&x, &weight, &options);
    let (Some(shape), Some(weights), Some(grads)) = (direct, f32_values(&weight), f32_values(&output_grad)) else {
        return Flex::conv2d_x_backward(x, weight, output_grad, options);
    };
    let flipped = flip_transpose(&weights, shape.out_channels, shape.in_channels);
    let backward = SameConv3x3 { in_channels: shape.out_channels, out_channels: shape.in_channels, ..shape };
    let x_grad = conv3x3_same(&grads, &flipped, backward);
    f32_tensor(x_grad, Shape::new([shape.batch, shape.in_channels, shape.height, shape.width]))
}

/// One convolution's geometry, in the names of the weight-gradient loops.
struct ConvShape {
    batch: usize,
    in_channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    kernel: [usize; 2],
    out_height: usize,
    out_width: usize,
    stride: [usize; 2],
    padding: [usize; 2],
}

impl ConvShape {
    /// Columns of the im2col matrix: one per weight of an output channel.
    fn patch(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }
}

/// Gradient of `conv2d(x, weight)` with respect to `weight` (shape `[O, I, kh, kw]`).
///
/// `dW[O, I·kh·kw] = Σ_b grad_b[O, P] · im2col(x_b)[P, I·kh·kw]` over the `P` output positions,
/// computed tile by tile of output rows: each tile's im2col is written transposed (one
/// contiguous run per input row and kernel tap, so the copy streams) and multiplied in by one
/// GEMM into the thread's accumulator; the accumulators are summed at the end.
pub fn conv2d_weight_grad(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    let plain = options.groups == 1 && options.dilation == [1, 1] && !options.is_asymmetric();
    let (Some(x_values), Some(grad_values), true) = (f32_values(&x), f32_values(&output_grad), plain) else {
        return Flex::conv2d_weight_backward(x, weight, output_grad, options);
    };
    let direct = direct_shape(&x, &weight, &options);
    if let Some(values) = direct.and_then(|shape| weight_grad_3x3_same(&x_values, &grad_values, shape)) {
        return f32_tensor(values, weight.layout().shape().clone());
    }
    let [batch, in_channels, height, width] = dims4(&x);
    let [out_channels, _, kernel_h, kernel_w] = dims4(&weight);
    let [_, _, out_height, out_width] = dims4(&output_grad);
    let shape = ConvShape {
        batch,
        in_channels,
        height,
        width,
        out_channels,
        kernel: [kernel_h, kernel_w],
        out_height,
        out_width,
        stride: options.stride,
        padding: options.padding_begin(),
    };
    let values = weight_grad_f32(&x_values, &grad_values, &shape);
    f32_tensor(values, weight.layout().shape().clone())
}

/// [`conv2d_weight_grad`] on raw values: `x [B, I, H, W]`, `grad [B, O, Ho, Wo]` → `[O, I·kh·kw]`.
fn weight_grad_f32(x: &[f32], grad: &[f32], shape: &ConvShape) -> Vec<f32> {
    let patch = shape.patch();
    let rows_per_tile = (TILE_ELEMENTS / (patch * shape.out_width).max(1)).clamp(1, shape.out_height.max(1));
    let tiles_per_image = shape.out_height.div_ceil(rows_per_tile);
    let tiles = shape.batch * tiles_per_image;
    let accumulator = || (vec![0.0f32; shape.out_channels * patch], Vec::<f32>::new());
    (0..tiles)
        .into_par_iter()
        .fold(accumulator, |(mut sum, mut columns), tile| {
            let image = tile / tiles_per_image;
            let first_row = (tile % tiles_per_image) * rows_per_tile;
            let rows = rows_per_tile.min(shape.out_height - first_row);
            let positions = rows * shape.out_width;
            columns.resize(patch * positions, 0.0);
            im2col_transposed(x, shape, image, first_row, rows, &mut columns);
            let grad_image = &grad[image * shape.out_channels * shape.out_height * shape.out_width..];
            let grad_tile = &grad_image[first_row * shape.out_width..];
            // sum[O, patch] += grad_tile[O, positions] · columnsᵀ, columns being [patch, positions].
            // SAFETY: every pointer/stride pair addresses memory inside its slice: `sum` is
            // O × patch row-major, `grad_tile` has O rows of stride Ho·Wo of which the first
            // `positions` are read (`first_row·Wo + positions ≤ Ho·Wo`), `columns` is
            // patch × positions row-major.
            unsafe {
                gemm::gemm(
                    shape.out_channels,
                    patch,
                    positions,
                    sum.as_mut_ptr(),
                    1,
                    patch as isize,
                    true,
                    grad_tile.as_ptr(),
                    1,
                    (shape.out_height * shape.out_width) as isize,
                    columns.as_ptr(),
                    positions as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            (sum, columns)
        })
        .map(|(sum, _)| sum)
        .reduce_with(|mut total, part| {
            total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
            total
        })
        .unwrap_or_else(|| vec![0.0; shape.out_channels * patch])
}

/// Writes `columns[c, p]` = the input value under kernel tap `c = (i, a, b)` for output position
/// `p` of rows `first_row .. first_row + rows` of `image` (zero in the padding).
fn im2col_transposed(x: &[f32], shape: &ConvShape, image: usize, first_row: usize, rows: usize, columns: &mut [f32]) {
    let [kernel_h, kernel_w] = shape.kernel;
    let [stride_h, stride_w] = shape.stride;
    let [pad_h, pad_w] = shape.padding;
    let positions = rows * shape.out_width;
    let plane = shape.height * shape.width;
    for channel in 0..shape.in_channels {
        let input = &x[(image * shape.in_channels + channel) * plane..][..plane];
        for tap_h in 0..kernel_h {
            for tap_w in 0..kernel_w {
                let column = (channel * kernel_h + tap_h) * kernel_w + tap_w;
                let out = &mut columns[column * positions..][..positions];
                // Output columns whose input column `ow·s + tap_w − pad` lies inside the image.
                let first_valid = pad_w.saturating_sub(tap_w).div_ceil(stride_w).min(shape.out_width);
                let end_valid = (shape.width + pad_w).saturating_sub(tap_w).div_ceil(stride_w).min(shape.out_width);
                let end_valid = end_valid.max(first_valid);
                for row in 0..rows {
                    let out_row = &mut out[row * shape.out_width..][..shape.out_width];
                    let input_row = ((first_row + row) * stride_h + tap_h).checked_sub(pad_h);
                    let Some(input_row) = input_row.filter(|&r| r < shape.height) else {
                        out_row.fill(0.0);
                        continue;
                    };
                    let source = &input[input_row * shape.width..][..shape.width];
                    out_row[..first_valid].fill(0.0);
                    out_row[end_valid..].fill(0.0);
                    if first_valid < end_valid {
                        let start = first_valid * stride_w + tap_w - pad_w;
                        let valid = &mut out_row[first_valid..end_valid];
                        if stride_w == 1 {
                            valid.copy_from_slice(&source[start..start + valid.len()]);
                        } else {
                            valid.iter_mut().enumerate().for_each(|(k, value)| *value = source[start + k * stride_w]);
                        }
                    }
                }
            }
        }
    }
}

/// `Σ term(a[i], b[i])` over two equally long slices: eight `f32` lanes within blocks of 1024
/// (so the loop vectorises), blocks added in `f64` (so long sums keep their precision).
fn lane_sum(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f64 {
    a.chunks(1024)
        .zip(b.chunks(1024))
        .map(|(a, b)| {
            let mut lanes = [0.0f32; 8];
            let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
            for (x, y) in (&mut a8).zip(&mut b8) {
                for lane in 0..8 {
                    lanes[lane] += term(x[lane], y[lane]);
                }
            }
            let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(&x, &y)| term(x, y)).sum();
            lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
        })
        .sum()
}

/// `(channels, elements per channel plane, elements per channel)` of a `[B, C, ...]` shape.
fn channel_layout(shape: &Shape) -> (usize, usize, f64) {
    let channels = shape[1];
    let plane = shape.num_elements() / (shape[0] * channels).max(1);
    (channels, plane, (shape[0] * plane).max(1) as f64)
}

/// Per-channel `(scale, shift)` with `scale = γ / √(var + ε)` and `shift = β − mean · scale`.
fn affine(gamma: &[f32], beta: &[f32], mean: &[f32], inv_std: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
    let shift = beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    (scale, shift)
}

/// `1 / √(var + ε)` per channel.
fn inverse_std(variance: &[f32], epsilon: f64) -> Vec<f32> {
    variance.iter().map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32).collect()
}

/// Training-mode BatchNorm on `x [B, C, ...]`: per-channel mean and biased variance (two passes:
/// the mean, then the mean square of the centred values, as burn computes them), then `y = x · scale + shift`.
pub fn batch_norm_forward(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> BatchNormTrain<Flex> {
    let fused = x.layout().shape().num_dims() >= 2;
    let (Some(xs), Some(gammas), Some(betas), true) = (f32_values(&x), f32_values(&gamma), f32_values(&beta), fused)
    else {
        return Flex::batch_norm_train(x, gamma, beta, epsilon);
    };
    let shape = x.layout().shape().clone();
    let (channels, plane, count) = channel_layout(&shape);
    let stats: Vec<(f32, f32)> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let planes = || xs.chunks_exact(plane).skip(c).step_by(channels);
            let mean = (planes().map(|p| lane_sum(p, p, |v, _| v)).sum::<f64>() / count) as f32;
            let variance = planes().map(|p| lane_sum(p, p, |v, _| (v - mean) * (v - mean))).sum::<f64>() / count;
            (mean, variance as f32)
        })
        .collect();
    let (mean, variance): (Vec<f32>, Vec<f32>) = stats.into_iter().unzip();
    let (scale, shift) = affine(&gammas, &betas, &mean, &inverse_std(&variance, epsilon));
    let mut output = vec![0.0f32; xs.len()];
    output.par_chunks_mut(plane).zip(xs.par_chunks(plane)).enumerate().for_each(|(index, (out, input))| {
        let c = index % channels;
        let (s, t) = (scale[c], shift[c]);
        out.iter_mut().zip(input).for_each(|(o, &v)| *o = v * s + t);
    });
    BatchNormTrain::new(
        f32_tensor(output, shape),
        f32_tensor(mean, Shape::new([channels])),
        f32_tensor(variance, Shape::new([channels])),
    )
}

/// Gradients of [`batch_norm_forward`]: with `x̂ = (x − mean)/σ`, per channel `Σdy` (β's
/// gradient) and `Σdy·x̂` (γ's), then `dx = γ/σ · (dy − Σdy/N − x̂ · Σdy·x̂/N)`.
pub fn batch_norm_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> BatchNormTrainBackward<Flex> {
    let fused = x.layout().shape().num_dims() >= 2;
    let values =
        (f32_values(&x), f32_values(&gamma), f32_values(&mean), f32_values(&variance), f32_values(&output_grad));
    let (Some(xs), Some(gammas), Some(means), Some(variances), Some(grads), true) =
        (values.0, values.1, values.2, values.3, values.4, fused)
    else {
        return Flex::batch_norm_train_backward(x, gamma, mean, variance, epsilon, output_grad);
    };
    let shape = x.layout().shape().clone();
    let (channels, plane, count) = channel_layout(&shape);
    let inv_std = inverse_std(&variances, epsilon);
    let sums: Vec<(f64, f64)> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let (m, s) = (means[c], inv_std[c]);
            let x_planes = xs.chunks_exact(plane).skip(c).step_by(channels);
            let grad_planes = grads.chunks_exact(plane).skip(c).step_by(channels);
            x_planes.zip(grad_planes).fold((0.0, 0.0), |(sum_dy, sum_dy_xhat), (xp, gp)| {
                (sum_dy + lane_sum(gp, gp, |g, _| g), sum_dy_xhat + lane_sum(xp, gp, |v, g| g * (v - m) * s))
            })
        })
        .collect();
    let mut x_grad = vec![0.0f32; xs.len()];
    x_grad.par_chunks_mut(plane).enumerate().for_each(|(index, out)| {
        let c = index % channels;
        let (m, s) = (means[c], inv_std[c]);
        let scale = gammas[c] * s;
        let mean_dy = (sums[c].0 / count) as f32;
        let mean_dy_xhat = (sums[c].1 / count) as f32;
        let (xp, gp) = (&xs[index * plane..][..plane], &grads[index * plane..][..plane]);
        out.iter_mut().zip(xp.iter().zip(gp)).for_each(|(o, (&v, &g))| {
            *o = scale * (g - mean_dy - (v - m) * s * mean_dy_xhat);
        });
    });
    let gamma_grad = sums.iter().map(|&(_, dy_xhat)| dy_xhat as f32).collect();
    let beta_grad = sums.iter().map(|&(dy, _)| dy as f32).collect();
    BatchNormTrainBackward::new(
        f32_tensor(x_grad, shape),
        f32_tensor(gamma_grad, Shape::new([channels])),
        f32_tensor(beta_grad, Shape::new([channels])),
    )
}
