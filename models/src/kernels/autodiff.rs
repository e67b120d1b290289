//! [`TrainOps`] on an autodiff backend: one graph node per convolution and per BatchNorm, whose
//! backward passes call the inner backend's [`TrainKernels`].
//!
//! The structure follows burn-autodiff's own `conv2d` and `batch_norm_train` (the same
//! checkpointed state, the same input gradient); only the kernels behind the weight gradient and
//! the BatchNorm differ, so gradient checkpointing strategies behave as they do for burn's ops.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend};

use super::{TrainKernels, TrainOps};

/// Backward of a bias-free convolution through [`TrainKernels`]' input and weight gradients.
#[derive(Debug)]
struct Conv2dBackward;

impl<B: TrainKernels> Backward<B, 2> for Conv2dBackward {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);

        if let Some(node) = node_x {
            let x_grad = B::conv2d_input_grad(x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, x_grad);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, B::conv2d_weight_grad(x, weight, grad, options));
        }
    }
}

/// Backward of training-mode BatchNorm through [`TrainKernels::batch_norm_backward`].
#[derive(Debug)]
struct BatchNormBackward;

impl<B: TrainKernels> Backward<B, 3> for BatchNormBackward {
    /// Checkpointed input and gamma; the batch statistics as the forward computed them; epsilon.
    type State = (NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, gamma_state, mean, variance, epsilon) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma_state);

        let backward = B::batch_norm_backward(x, gamma, mean, variance, epsilon, grad);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, backward.x_grad);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, backward.gamma_grad);
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, backward.beta_grad);
        }
    }
}

impl<B: TrainOps + TrainKernels, C: CheckpointStrategy> TrainOps for Autodiff<B, C> {
    fn conv2d_no_bias(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        match Conv2dBackward.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output = B::conv2d_forward(x.into_primitive(), weight.into_primitive(), options.clone());
                prep.finish((x_state, weight_state, options), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::conv2d_forward(x.into_primitive(), weight.into_primitive(), options))
            }
        }
    }

    fn batch_norm_batch_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        match BatchNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let result =
                    B::batch_norm_forward(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon);
                let state = (x_state, gamma_state, result.mean.clone(), result.variance.clone(), epsilon);
                let output = prep.finish(state, result.output);
                (output, Self::from_inner(result.mean), Self::from_inner(result.variance))
            }
            OpsKind::UnTracked(prep) => {
                let result =
                    B::batch_norm_forward(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon);
                (prep.finish(result.output), Self::from_inner(result.mean), Self::from_inner(result.variance))
            }
        }
    }
}
