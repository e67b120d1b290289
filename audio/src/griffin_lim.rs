//! Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013): recovers a
//! signal whose STFT magnitude matches a target, as librosa's `griffinlim`
//! does, seeded so that the same input always gives the same audio.

use ndarray::{Array2, ArrayView2, Zip};
use realfft::num_complex::Complex32;

use crate::initial_phase::{initial_phases, PhaseInit};
use crate::stft::Stft;

/// Guards the phase normalisation against division by zero (librosa's `eps`).
const PHASE_EPSILON: f32 = 1e-16;

/// Phase reconstruction settings for one STFT.
#[derive(Debug, Clone)]
pub struct GriffinLim {
    stft: Stft,
    iterations: usize,
    momentum: f32,
    init: PhaseInit,
}

impl GriffinLim {
    /// Griffin-Lim over `stft` with `iterations` rounds and the given
    /// momentum (0.99 is the fast variant; 0 is the classic algorithm).
    pub fn new(stft: Stft, iterations: usize, momentum: f32) -> Self {
        Self { stft, iterations, momentum, init: PhaseInit::default() }
    }

    /// The same reconstruction with another iteration count.
    pub fn with_iterations(mut self, iterations: usize) -> Self {
        self.iterations = iterations;
        self
    }

    /// The same reconstruction starting from `init` phases.
    pub fn with_init(mut self, init: PhaseInit) -> Self {
        self.init = init;
        self
    }

    /// Momentum of the fast variant.
    pub fn momentum(&self) -> f32 {
        self.momentum
    }

    /// The STFT the reconstruction is consistent with.
    pub fn stft(&self) -> &Stft {
        &self.stft
    }

    /// A signal of `length` samples whose STFT magnitude approximates
    /// `magnitude` (`[frames, n_freqs]`, frame-major), starting from the
    /// configured initial phases drawn with `seed`.
    pub fn reconstruct(&self, magnitude: ArrayView2<'_, f32>, length: usize, seed: u64) -> Vec<f32> {
        let shape = magnitude.dim();
        let mut angles = initial_phases(self.init, magnitude, self.stft.n_fft(), self.stft.hop_length(), seed);
        let mut rebuilt = Array2::<Complex32>::zeros(shape);
        let mut previous = Array2::<Complex32>::zeros(shape);
        let mut estimate = Array2::<Complex32>::zeros(shape);
        let carry = self.momentum / (1.0 + self.momentum);
        let mut workspace = self.stft.inverse_workspace(shape.0, length);
        let mut signal = vec![0.0; length];
        for iteration in 0..self.iterations {
            Zip::from(&mut estimate).and(&magnitude).and(&angles).par_for_each(|e, &m, &a| *e = a * m);
            self.stft.inverse_into(estimate.view(), &mut workspace, &mut signal);
            std::mem::swap(&mut previous, &mut rebuilt);
            self.stft.forward_into(&signal, rebuilt.view_mut());
            let carry = if iteration == 0 { 0.0 } else { carry };
            Zip::from(&mut angles).and(&rebuilt).and(&previous).par_for_each(|a, &r, &p| {
                let v = r - p * carry;
                // `sqrt(norm_sqr)` and one reciprocal instead of `norm()`
                // (libm's overflow-safe hypot) and two divisions: this loop
                // runs over every bin in every iteration and hypot dominated
                // it; STFT magnitudes are far from f32's overflow range.
                *a = v * (v.norm_sqr().sqrt() + PHASE_EPSILON).recip();
            });
        }
        Zip::from(&mut estimate).and(&magnitude).and(&angles).par_for_each(|e, &m, &a| *e = a * m);
        self.stft.inverse_into(estimate.view(), &mut workspace, &mut signal);
        signal
    }
}

/// Spectral convergence `‖S − |STFT(x)|‖_F / ‖S‖_F`: how far the magnitude
/// of `signal` is from `target` (`[frames, n_freqs]`); 0 is a perfect match.
/// The measure used to compare Griffin-Lim implementations.
pub fn spectral_convergence(stft: &Stft, target: ArrayView2<'_, f32>, signal: &[f32]) -> f32 {
    let magnitude = stft.map_frames(signal, stft.n_freqs(), |spectrum, row| {
        row.iter_mut().zip(spectrum).for_each(|(m, c)| *m = c.norm());
    });
    let frames = target.nrows().min(magnitude.nrows());
    let (mut error, mut norm) = (0.0f64, 0.0f64);
    for (t, m) in target.outer_iter().take(frames).zip(magnitude.outer_iter()) {
        for (a, b) in t.iter().zip(m.iter()) {
            error += ((a - b) as f64).powi(2);
            norm += (*a as f64).powi(2);
        }
    }
    if norm == 0.0 {
        return 0.0;
    }
    (error / norm).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let envelope = (t * 3.0 * std::f32::consts::PI).sin().abs();
                envelope
                    * ((440.0 * std::f32::consts::TAU * t).sin() + 0.5 * (660.0 * std::f32::consts::TAU * t).sin())
                    * 0.3
            })
            .collect()
    }

    fn magnitude(stft: &Stft, x: &[f32]) -> Array2<f32> {
        stft.forward(x).mapv(|c| c.norm())
    }

    #[test]
    fn converges_and_momentum_helps() {
        let stft = Stft::new(512, 128).unwrap();
        let x = test_signal(16_000);
        let target = magnitude(&stft, &x);
        let sc = |iters, momentum, init| {
            let y =
                GriffinLim::new(stft.clone(), iters, momentum).with_init(init).reconstruct(target.view(), x.len(), 3);
            spectral_convergence(&stft, target.view(), &y)
        };
        let (start, slow, fast) =
            (sc(0, 0.99, PhaseInit::Random), sc(32, 0.0, PhaseInit::Random), sc(32, 0.99, PhaseInit::Random));
        assert!(slow < start * 0.8, "plain GL should improve on random phase: {start} → {slow}");
        assert!(fast < slow, "momentum should beat plain GL: {fast} vs {slow}");
        assert!(fast < 0.25, "fast GL after 32 iterations: {fast}");
        let (locked_start, locked) = (sc(0, 0.99, PhaseInit::PhaseLocked), sc(32, 0.99, PhaseInit::PhaseLocked));
        assert!(locked_start < start, "phase locking should start closer: {locked_start} vs {start}");
        assert!(locked < fast, "and end closer: {locked} vs {fast}");
    }

    #[test]
    fn seeded_and_deterministic() {
        let stft = Stft::new(256, 64).unwrap();
        let x = test_signal(4000);
        let target = magnitude(&stft, &x);
        let gl = GriffinLim::new(stft, 8, 0.99);
        let a = gl.reconstruct(target.view(), x.len(), 1);
        assert_eq!(a, gl.reconstruct(target.view(), x.len(), 1));
        assert_ne!(a, gl.reconstruct(target.view(), x.len(), 2));
        assert_eq!(a.len(), 4000);
    }

    #[test]
    fn perfect_match_has_zero_convergence() {
        let stft = Stft::new(256, 64).unwrap();
        let x = test_signal(4000);
        let target = magnitude(&stft, &x);
        assert!(spectral_convergence(&stft, target.view(), &x) < 1e-5);
    }
}
