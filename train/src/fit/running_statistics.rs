//! The BatchNorm running statistics of a model, saved before a training step and put back when
//! the step's loss turns out not to be finite: the loop then skips the optimiser step, but a
//! training-mode forward pass has already folded the bad batch's statistics into them.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use melfuse_models::Vae;

/// The BatchNorm running statistics of a model (its float tensors that take no gradient), so a
/// forward pass over a bad batch can be undone: the loop skips the optimiser step, but training
/// mode BatchNorm has already folded the batch's (NaN) statistics into them.
pub struct RunningStatistics(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for RunningStatistics {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            let count = value.shape().num_elements();
            self.0.insert(param.id, value.reshape([count]));
        }
    }
}

impl ModuleMapper for RunningStatistics {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.0.get(&param.id) {
            Some(saved) => {
                let saved = saved.clone();
                param.map(|current| saved.reshape(current.shape()))
            }
            None => param,
        }
    }
}

impl RunningStatistics {
    /// The current statistics (pending BatchNorm updates folded in first).
    pub fn take(model: &Vae) -> Self {
        drop(model.valid());
        let mut statistics = Self(HashMap::new());
        model.visit(&mut statistics);
        statistics
    }

    /// Puts the saved statistics back, discarding updates made since [`RunningStatistics::take`].
    pub fn restore(mut self, model: Vae) -> Vae {
        drop(model.valid());
        model.map(&mut self)
    }
}
