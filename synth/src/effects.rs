//! Small, allocation-free signal processors shared by the voices and the
//! genre mixes: one-pole and biquad filters, a Schroeder/Freeverb-style
//! reverb, the sidechain "pumping" gain curve and peak normalisation.

use std::f32::consts::{PI, TAU};

/// Highest cutoff a filter is allowed, as a fraction of the sample rate, so
/// designs stay stable at low rates (e.g. a 7 kHz hat filter at 8 kHz).
const MAX_CUTOFF_FRACTION: f32 = 0.45;
/// Lowest cutoff a filter is allowed, in Hz.
const MIN_CUTOFF_HZ: f32 = 10.0;

fn clamp_cutoff(cutoff_hz: f32, sample_rate: f32) -> f32 {
    cutoff_hz.clamp(MIN_CUTOFF_HZ, MAX_CUTOFF_FRACTION * sample_rate)
}

/// One-pole low-pass (6 dB/octave). Cheap enough to retune every sample,
/// which the brass brightness envelope and the strings need.
#[derive(Debug, Clone)]
pub struct OnePoleLowPass {
    coefficient: f32,
    state: f32,
}

impl OnePoleLowPass {
    /// A filter at `cutoff_hz` for audio at `sample_rate`.
    pub fn new(cutoff_hz: f32, sample_rate: f32) -> Self {
        let mut filter = Self { coefficient: 0.0, state: 0.0 };
        filter.set_cutoff(cutoff_hz, sample_rate);
        filter
    }

    /// Retunes the filter; state is kept so sweeps are click-free.
    pub fn set_cutoff(&mut self, cutoff_hz: f32, sample_rate: f32) {
        let w = TAU * clamp_cutoff(cutoff_hz, sample_rate) / sample_rate;
        self.coefficient = 1.0 - (-w).exp();
    }

    /// Filters one sample.
    pub fn process(&mut self, x: f32) -> f32 {
        self.state += self.coefficient * (x - self.state);
        self.state
    }
}

/// Response of a [`Biquad`].
#[derive(Debug, Clone, Copy)]
pub enum BiquadKind {
    /// 12 dB/octave low-pass.
    LowPass,
    /// 12 dB/octave high-pass.
    HighPass,
    /// Band-pass with 0 dB peak gain.
    BandPass,
}

/// RBJ-cookbook biquad (direct form I), used where a steeper or resonant
/// response than a one-pole is wanted: hats, claps, breath noise, pads.
#[derive(Debug, Clone)]
pub struct Biquad {
    b0: f32,
    b1: f32,
    b2: f32,
    a1: f32,
    a2: f32,
    x1: f32,
    x2: f32,
    y1: f32,
    y2: f32,
}

impl Biquad {
    /// Designs a filter of `kind` at `cutoff_hz` with quality factor `q`.
    pub fn new(kind: BiquadKind, cutoff_hz: f32, q: f32, sample_rate: f32) -> Self {
        let w0 = TAU * clamp_cutoff(cutoff_hz, sample_rate) / sample_rate;
        let (sin_w0, cos_w0) = w0.sin_cos();
        let alpha = sin_w0 / (2.0 * q);
        let (b0, b1, b2) = match kind {
            BiquadKind::LowPass => ((1.0 - cos_w0) / 2.0, 1.0 - cos_w0, (1.0 - cos_w0) / 2.0),
            BiquadKind::HighPass => ((1.0 + cos_w0) / 2.0, -(1.0 + cos_w0), (1.0 + cos_w0) / 2.0),
            BiquadKind::BandPass => (alpha, 0.0, -alpha),
        };
        let a0 = 1.0 + alpha;
        Self {
            b0: b0 / a0,
            b1: b1 / a0,
            b2: b2 / a0,
            a1: -2.0 * cos_w0 / a0,
            a2: (1.0 - alpha) / a0,
            x1: 0.0,
            x2: 0.0,
            y1: 0.0,
            y2: 0.0,
        }
    }

    /// Filters one sample.
    pub fn process(&mut self, x: f32) -> f32 {
        let y = self.b0 * x + self.b1 * self.x1 + self.b2 * self.x2 - self.a1 * self.y1 - self.a2 * self.y2;
        self.x2 = self.x1;
        self.x1 = x;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Character of a [`Reverb`]: how big, how long, how dark, how wet.
#[derive(Debug, Clone, Copy)]
pub struct ReverbParams {
    /// Multiplies the comb/all-pass delay lengths (1 = Freeverb's room).
    pub room_scale: f32,
    /// Comb feedback; higher rings longer (0.7 short room … 0.88 hall).
    pub feedback: f32,
    /// Low-pass inside the comb loops, 0 = bright, 1 = dark.
    pub damping: f32,
    /// Wet level added to the dry signal.
    pub wet: f32,
}

/// Freeverb comb delays in samples at 44.1 kHz (mutually prime-ish).
const COMB_DELAYS_44K: [f32; 4] = [1116.0, 1188.0, 1277.0, 1356.0];
/// Freeverb all-pass delays in samples at 44.1 kHz.
const ALLPASS_DELAYS_44K: [f32; 2] = [556.0, 441.0];
/// All-pass diffusion feedback.
const ALLPASS_FEEDBACK: f32 = 0.5;
/// Rate the delay tables above were tuned for.
const REFERENCE_RATE: f32 = 44_100.0;
/// Input attenuation so four parallel combs don't overload the mix.
const COMB_INPUT_GAIN: f32 = 0.25;

/// Schroeder reverb: four damped feedback combs in parallel into two
/// all-passes. Mono, cheap (≈ 6 delay taps a sample) and deterministic.
#[derive(Debug, Clone)]
pub struct Reverb {
    params: ReverbParams,
    combs: Vec<(Vec<f32>, usize, f32)>,
    allpasses: Vec<(Vec<f32>, usize)>,
}

impl Reverb {
    /// A reverb with `params`, delay lines scaled to `sample_rate`.
    pub fn new(params: ReverbParams, sample_rate: f32) -> Self {
        let scale = params.room_scale * sample_rate / REFERENCE_RATE;
        let line = |delay: f32| vec![0.0; ((delay * scale) as usize).max(1)];
        Self {
            params,
            combs: COMB_DELAYS_44K.iter().map(|&d| (line(d), 0, 0.0)).collect(),
            allpasses: ALLPASS_DELAYS_44K.iter().map(|&d| (line(d), 0)).collect(),
        }
    }

    /// Adds the reverberated signal to `buffer` in place.
    pub fn apply(&mut self, buffer: &mut [f32]) {
        let ReverbParams { feedback, damping, wet, .. } = self.params;
        for sample in buffer.iter_mut() {
            let input = *sample * COMB_INPUT_GAIN;
            let mut acc = 0.0;
            for (line, pos, filtered) in &mut self.combs {
                let out = line[*pos];
                *filtered = out * (1.0 - damping) + *filtered * damping;
                line[*pos] = input + *filtered * feedback;
                *pos = if *pos + 1 == line.len() { 0 } else { *pos + 1 };
                acc += out;
            }
            for (line, pos) in &mut self.allpasses {
                let delayed = line[*pos];
                line[*pos] = acc + delayed * ALLPASS_FEEDBACK;
                acc = delayed - acc;
                *pos = if *pos + 1 == line.len() { 0 } else { *pos + 1 };
            }
            *sample += wet * acc;
        }
    }
}

/// Shape of the sidechain duck triggered by each kick.
#[derive(Debug, Clone, Copy)]
pub struct SidechainParams {
    /// Fraction of level removed at the bottom of the duck (0–1).
    pub depth: f32,
    /// Seconds to pull the level down (short, avoids clicks).
    pub attack_s: f32,
    /// Time constant in seconds of the recovery.
    pub release_s: f32,
}

/// Gain curve (length `len`) that ducks at every sample index in `triggers`
/// and recovers exponentially: multiply pads and bass by it to get the EDM
/// "pump" locked to the kick.
pub fn sidechain_gain(len: usize, triggers: &[usize], params: SidechainParams, sample_rate: f32) -> Vec<f32> {
    let attack = (params.attack_s * sample_rate).max(1.0);
    let release = params.release_s * sample_rate;
    let mut gain = vec![1.0; len];
    let mut sorted = triggers.to_vec();
    sorted.sort_unstable();
    for (i, &start) in sorted.iter().enumerate() {
        let end = sorted.get(i + 1).copied().unwrap_or(len).min(len);
        for (offset, g) in gain[start.min(len)..end].iter_mut().enumerate() {
            let t = offset as f32;
            let duck = if t < attack { t / attack } else { (-(t - attack) / release).exp() };
            *g = 1.0 - params.depth * duck;
        }
    }
    gain
}

/// Converts dBFS to a linear amplitude.
pub fn db_to_amplitude(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Largest absolute sample value.
pub fn peak(buffer: &[f32]) -> f32 {
    buffer.iter().fold(0.0f32, |m, &x| m.max(x.abs()))
}

/// Scales `buffer` so its peak sits at `target_dbfs`; returns the gain used.
/// A silent buffer is left untouched (gain 1).
pub fn normalize_peak(buffer: &mut [f32], target_dbfs: f64) -> f32 {
    let current = peak(buffer);
    if current <= f32::MIN_POSITIVE {
        return 1.0;
    }
    let gain = (db_to_amplitude(target_dbfs) / f64::from(current)) as f32;
    buffer.iter_mut().for_each(|x| *x *= gain);
    gain
}

/// Removes DC with a gentle high-pass, so normalisation measures the music
/// rather than an offset (plucks and noise bursts can leave a small one).
pub fn remove_dc(buffer: &mut [f32], sample_rate: f32) {
    /// Corner of the DC blocker in Hz: below any note we synthesise.
    const DC_CORNER_HZ: f32 = 15.0;
    let r = 1.0 - PI * 2.0 * DC_CORNER_HZ / sample_rate;
    let (mut x1, mut y1) = (0.0f32, 0.0f32);
    for sample in buffer.iter_mut() {
        let y = *sample - x1 + r * y1;
        x1 = *sample;
        y1 = y;
        *sample = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, sr: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| (TAU * freq * i as f32 / sr).sin()).collect()
    }

    #[test]
    fn lowpass_passes_lows_and_cuts_highs() {
        let sr = 44_100.0;
        let run = |freq| {
            let mut f = Biquad::new(BiquadKind::LowPass, 1000.0, 0.707, sr);
            let out: Vec<f32> = sine(freq, sr, 8192).into_iter().map(|x| f.process(x)).collect();
            peak(&out[4096..])
        };
        assert!(run(100.0) > 0.9);
        assert!(run(8000.0) < 0.05);
    }

    #[test]
    fn sidechain_ducks_then_recovers() {
        let g = sidechain_gain(
            44_100,
            &[0, 22_050],
            SidechainParams { depth: 0.8, attack_s: 0.005, release_s: 0.05 },
            44_100.0,
        );
        assert!((g[220] - 0.2).abs() < 0.01);
        assert!(g[22_000] > 0.99);
        assert!(g[22_050 + 220] < 0.25);
    }

    #[test]
    fn normalize_hits_target_and_reverb_stays_finite() {
        let mut buf = sine(220.0, 44_100.0, 44_100);
        Reverb::new(ReverbParams { room_scale: 1.5, feedback: 0.88, damping: 0.3, wet: 0.4 }, 44_100.0).apply(&mut buf);
        normalize_peak(&mut buf, -3.0);
        assert!(buf.iter().all(|x| x.is_finite()));
        assert!((peak(&buf) - db_to_amplitude(-3.0) as f32).abs() < 1e-6);
    }
}
