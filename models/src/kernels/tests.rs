//! The kernels against burn's own operations: same outputs, same gradients (within float
//! rounding), same running statistics, on every convolution shape the model uses.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::{batch_norm, conv2d};
use crate::test_support::{autodiff_device, device, values};

/// Largest difference relative to the larger magnitude of the reference (1 where it is ~0).
fn relative_error<const D: usize>(actual: Tensor<D>, expected: Tensor<D>) -> f32 {
    let (actual, expected) = (values(actual), values(expected));
    assert_eq!(actual.len(), expected.len());
    let scale = expected.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    actual.iter().zip(&expected).map(|(a, e)| (a - e).abs() / scale).fold(0.0, f32::max)
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// A copy of `conv` with its own parameter ids (so two graphs never share a gradient).
fn twin(conv: &Conv2d) -> Conv2d {
    Conv2d {
        weight: Param::from_tensor(conv.weight.val().detach()),
        bias: conv.bias.as_ref().map(|bias| Param::from_tensor(bias.val().detach())),
        ..conv.clone()
    }
}

/// Runs `conv` both ways on `input_shape`; asserts outputs and the three gradients agree.
fn assert_conv_matches(config: Conv2dConfig, input_shape: [usize; 4]) {
    let device = autodiff_device();
    let ours = config.init(&device);
    let theirs = twin(&ours);
    let input = random(input_shape, &device);
    let x_ours = input.clone().detach().require_grad();
    let x_theirs = input.detach().require_grad();
    let out_ours = conv2d(&ours, x_ours.clone());
    let out_theirs = theirs.forward(x_theirs.clone());
    assert_eq!(out_ours.dims(), out_theirs.dims());
    assert!(relative_error(out_ours.clone(), out_theirs.clone()) < 1e-5, "{config:?}: forward differs");
    // A random weighting of the output, so every output position gets its own gradient.
    let weighting = random(out_ours.dims(), &device).detach();
    let grads_ours = (out_ours * weighting.clone()).sum().backward();
    let grads_theirs = (out_theirs * weighting).sum().backward();
    let pairs = [
        ("input", x_ours.grad(&grads_ours), x_theirs.grad(&grads_theirs)),
        ("weight", ours.weight.val().grad(&grads_ours), theirs.weight.val().grad(&grads_theirs)),
    ];
    for (name, a, b) in pairs {
        let (a, b) = (a.expect("gradient"), b.expect("gradient"));
        let error = relative_error(a, b);
        assert!(error < 1e-4, "{config:?} on {input_shape:?}: {name} gradient differs by {error}");
    }
    if let (Some(a), Some(b)) = (&ours.bias, &theirs.bias) {
        let error = relative_error(
            a.val().grad(&grads_ours).expect("bias gradient"),
            b.val().grad(&grads_theirs).expect("bias gradient"),
        );
        assert!(error < 1e-4, "{config:?}: bias gradient differs by {error}");
    }
}

#[test]
fn convolution_gradients_equal_burns_on_the_models_shapes() {
    let explicit = |p| PaddingConfig2d::Explicit(p, p, p, p);
    // 3×3 stride 1 and 2 (blocks, narrow stem), 1×1 stride 1 and 2 (projections, heads),
    // 7×7 stride 2 (wide stem), the biased output convolution; odd and non-square sizes.
    let cases = [
        (Conv2dConfig::new([3, 5], [3, 3]).with_padding(explicit(1)).with_bias(false), [2, 3, 9, 21]),
        (
            Conv2dConfig::new([4, 6], [3, 3]).with_stride([2, 2]).with_padding(explicit(1)).with_bias(false),
            [3, 4, 11, 16],
        ),
        (Conv2dConfig::new([6, 3], [1, 1]).with_bias(false), [2, 6, 8, 10]),
        (Conv2dConfig::new([5, 7], [1, 1]).with_stride([2, 2]).with_bias(false), [2, 5, 8, 12]),
        (
            Conv2dConfig::new([1, 8], [7, 7]).with_stride([2, 2]).with_padding(explicit(3)).with_bias(false),
            [2, 1, 16, 40],
        ),
        (Conv2dConfig::new([8, 1], [3, 3]).with_padding(explicit(1)), [2, 8, 16, 32]),
        // A wide map: one tile holds fewer than all output rows.
        (Conv2dConfig::new([16, 16], [3, 3]).with_padding(explicit(1)).with_bias(false), [1, 16, 20, 1100]),
        // Dilated: not the fast kernel's case, burn's own weight gradient.
        (Conv2dConfig::new([2, 3], [3, 3]).with_dilation([2, 2]).with_padding(explicit(2)), [1, 2, 9, 9]),
    ];
    for (config, shape) in cases {
        assert_conv_matches(config, shape);
    }
}

#[test]
fn convolution_without_autodiff_is_burns_forward() {
    let device = device();
    let conv = Conv2dConfig::new([3, 4], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device);
    let input = random([2, 3, 8, 20], &device);
    assert!(relative_error(conv2d(&conv, input.clone()), conv.forward(input)) < 1e-6);
}

/// A BatchNorm with non-trivial γ, β and running statistics, and an independent copy of it.
fn batch_norm_pair(channels: usize, device: &Device) -> (BatchNorm, BatchNorm) {
    let norm = BatchNormConfig::new(channels).with_momentum(0.3).init(device);
    let norm = BatchNorm {
        gamma: Param::from_tensor(random([channels], device).add_scalar(1.0)),
        beta: Param::from_tensor(random([channels], device)),
        ..norm
    };
    let copy = BatchNorm {
        gamma: Param::from_tensor(norm.gamma.val().detach()),
        beta: Param::from_tensor(norm.beta.val().detach()),
        ..BatchNormConfig::new(channels).with_momentum(0.3).init(device)
    };
    (norm, copy)
}

#[test]
fn batch_norm_training_equals_burns_outputs_gradients_and_running_statistics() {
    let device = autodiff_device();
    for shape in [[4, 3, 5, 7], [2, 8, 16, 40], [1, 2, 1, 1300]] {
        let (ours, theirs) = batch_norm_pair(shape[1], &device);
        // Off-centre, scaled input: the statistics matter.
        let input = random(shape, &device).mul_scalar(3.0).add_scalar(2.0);
        let x_ours = input.clone().detach().require_grad();
        let x_theirs = input.detach().require_grad();
        let out_ours = batch_norm(&ours, x_ours.clone());
        let out_theirs = theirs.forward(x_theirs.clone());
        assert!(relative_error(out_ours.clone(), out_theirs.clone()) < 1e-5, "{shape:?}: forward differs");
        let weighting = random(shape, &device).detach();
        let grads_ours = (out_ours * weighting.clone()).sum().backward();
        let grads_theirs = (out_theirs * weighting).sum().backward();
        let error = relative_error(
            x_ours.grad(&grads_ours).expect("gradient"),
            x_theirs.grad(&grads_theirs).expect("gradient"),
        );
        assert!(error < 1e-4, "{shape:?}: input gradient differs by {error}");
        let pairs = [
            ("gamma", ours.gamma.val().grad(&grads_ours), theirs.gamma.val().grad(&grads_theirs)),
            ("beta", ours.beta.val().grad(&grads_ours), theirs.beta.val().grad(&grads_theirs)),
        ];
        for (name, a, b) in pairs {
            let error = relative_error(a.expect("gradient"), b.expect("gradient"));
            assert!(error < 1e-4, "{shape:?}: {name} gradient differs by {error}");
        }
        let running = [
            (ours.running_mean.value(), theirs.running_mean.value()),
            (ours.running_var.value(), theirs.running_var.value()),
        ];
        for (a, b) in running {
            assert!(relative_error(a, b) < 1e-5, "{shape:?}: running statistics differ");
        }
    }
}

#[test]
fn batch_norm_uses_running_statistics_without_autodiff_or_when_frozen() {
    let device = device();
    let (norm, _) = batch_norm_pair(3, &device);
    let input = random([2, 3, 4, 4], &device);
    assert!(relative_error(batch_norm(&norm, input.clone()), norm.forward(input)) < 1e-6);

    let device = autodiff_device();
    let (norm, _) = batch_norm_pair(3, &device);
    let frozen = norm.clone().freeze();
    let input = random([2, 3, 4, 4], &device);
    let expected = frozen.forward(input.clone());
    assert!(relative_error(batch_norm(&frozen, input), expected) < 1e-6);
    let mean = values(frozen.running_mean.value());
    assert!(mean.iter().all(|&m| m == 0.0), "a frozen layer's running mean must not move: {mean:?}");
}
