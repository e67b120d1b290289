//! Sample-rate conversion of mono signals with rubato's FFT resampler, so
//! that every file reaches the model at `SignalConfig::sample_rate`.
//!
//! The output is aligned with the input (the resampler's delay is trimmed)
//! and has exactly `round(len · to / from)` samples, so durations survive the
//! conversion and spectrogram frames line up with the reference tools.

use rubato::{FftFixedIn, Resampler};

use crate::config::SUPPORTED_RATES;
use crate::error::AudioError;

/// Rough number of input frames per FFT block; it sets the length of the
/// anti-aliasing filter (quality) and the granularity of the work.
const TARGET_BLOCK_FRAMES: usize = 1024;

/// Input frames per resampler call: a whole, even number of the smallest
/// block the rate ratio allows, close to [`TARGET_BLOCK_FRAMES`].
///
/// rubato's FFT block is then exactly this long, and both its input and
/// output sizes are even, so its delay (half a block) is a whole number of
/// output frames and trimming it leaves no half-sample shift.
fn block_frames(from_rate: u32, to_rate: u32) -> usize {
    let smallest = (from_rate / gcd(from_rate, to_rate)) as usize;
    let pairs = TARGET_BLOCK_FRAMES.div_ceil(2 * smallest);
    2 * pairs * smallest
}

/// Greatest common divisor (Euclid).
fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Number of samples `len` samples at `from_rate` become at `to_rate`:
/// `round(len · to_rate / from_rate)`, halves rounded up.
pub fn resampled_len(len: usize, from_rate: u32, to_rate: u32) -> usize {
    let from = u128::from(from_rate.max(1));
    ((len as u128 * u128::from(to_rate) * 2 + from) / (2 * from)) as usize
}

/// Converts mono `samples` from `from_rate` to `to_rate` Hz.
///
/// Equal rates return a copy of the input untouched. Otherwise the result has
/// exactly [`resampled_len`] samples, time-aligned with the input. Both rates
/// must lie within [`SUPPORTED_RATES`] (this keeps the FFT sizes bounded).
/// The same as feeding `samples` to a [`StreamResampler`] and finishing it.
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>, AudioError> {
    let mut resampler = StreamResampler::new(from_rate, to_rate)?;
    let mut output = Vec::with_capacity(resampled_len(samples.len(), from_rate, to_rate));
    resampler.push(samples, &mut output)?;
    resampler.finish(&mut output)?;
    Ok(output)
}

/// [`resample`] for a signal that arrives in pieces: memory is one FFT block,
/// whatever the length, and the output is identical to resampling the whole
/// signal at once (the same blocks go through the same filter).
pub struct StreamResampler {
    from_rate: u32,
    to_rate: u32,
    resampler: Option<FftFixedIn<f32>>,
    chunk: usize,
    pending: Vec<f32>,
    block_out: Vec<f32>,
    /// Output frames still to drop from the front (the resampler's delay).
    delay_left: usize,
    input_len: usize,
    emitted: usize,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler").field("from_rate", &self.from_rate).field("to_rate", &self.to_rate).finish()
    }
}

impl StreamResampler {
    /// A resampler from `from_rate` to `to_rate` Hz (both within [`SUPPORTED_RATES`]).
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Self, AudioError> {
        for (name, rate) in [("from_rate", from_rate), ("to_rate", to_rate)] {
            if !SUPPORTED_RATES.contains(&rate) {
                return Err(AudioError::InvalidParameter {
                    name,
                    detail: format!("{rate} Hz is outside {SUPPORTED_RATES:?}"),
                });
            }
        }
        let chunk = block_frames(from_rate, to_rate);
        let resampler = if from_rate == to_rate {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(from_rate as usize, to_rate as usize, chunk, 1, 1)
                    .map_err(|err| AudioError::Resample { detail: err.to_string() })?,
            )
        };
        // The resampler's output starts `delay` frames late: they are dropped.
        let delay_left = resampler.as_ref().map_or(0, |r| r.output_delay());
        let block_out = vec![0.0; resampler.as_ref().map_or(0, |r| r.output_frames_max())];
        Ok(Self {
            from_rate,
            to_rate,
            resampler,
            chunk,
            pending: Vec::with_capacity(2 * chunk),
            block_out,
            delay_left,
            input_len: 0,
            emitted: 0,
        })
    }

    /// Feeds `samples`; appends the output they complete to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.input_len += samples.len();
        if self.resampler.is_none() {
            out.extend_from_slice(samples);
            self.emitted += samples.len();
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(samples);
        let mut start = 0;
        let mut result = Ok(());
        while result.is_ok() && pending.len() - start >= self.chunk {
            result = self.process(&pending[start..start + self.chunk], out, usize::MAX);
            start += self.chunk;
        }
        pending.drain(..start);
        self.pending = pending;
        result
    }

    /// Ends the signal: flushes the filter (feeding zeros past the end) and
    /// appends the rest, so that the whole output has exactly
    /// [`resampled_len`] samples of the input pushed.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let target = resampled_len(self.input_len, self.from_rate, self.to_rate);
        if self.resampler.is_none() {
            return Ok(());
        }
        // Output frames the flush needs: the delay, plus one block of rounding.
        let ratio = f64::from(self.from_rate) / f64::from(self.to_rate);
        let max_calls =
            ((target.saturating_sub(self.emitted) + self.delay_left) as f64 * ratio).ceil() as usize / self.chunk + 3;
        let mut block = std::mem::take(&mut self.pending);
        for _ in 0..max_calls {
            if self.emitted >= target {
                break;
            }
            block.resize(self.chunk, 0.0);
            self.process(&block, out, target)?;
            block.clear();
        }
        if self.emitted < target {
            return Err(AudioError::Resample {
                detail: format!("produced {} of {target} frames within the call budget", self.emitted),
            });
        }
        Ok(())
    }

    /// Resamples one block, drops what is left of the delay, and appends at
    /// most up to `limit` emitted frames in all.
    fn process(&mut self, block: &[f32], out: &mut Vec<f32>, limit: usize) -> Result<(), AudioError> {
        let Some(resampler) = self.resampler.as_mut() else { return Ok(()) };
        let (_, produced) = resampler
            .process_into_buffer(std::slice::from_ref(&block), std::slice::from_mut(&mut self.block_out), None)
            .map_err(|err| AudioError::Resample { detail: err.to_string() })?;
        let dropped = self.delay_left.min(produced);
        self.delay_left -= dropped;
        let available = &self.block_out[dropped..produced];
        let keep = available.len().min(limit.saturating_sub(self.emitted));
        out.extend_from_slice(&available[..keep]);
        self.emitted += keep;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(freq: f64, rate: u32, len: usize) -> Vec<f32> {
        (0..len).map(|i| (0.5 * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32).collect()
    }

    /// Frequency estimated from the rising zero crossings in the middle of `x`.
    fn zero_crossing_frequency(x: &[f32], rate: u32) -> f64 {
        let middle = &x[x.len() / 4..3 * x.len() / 4];
        let crossings: Vec<f64> = middle
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
            .map(|(i, w)| i as f64 + f64::from(-w[0] / (w[1] - w[0])))
            .collect();
        let periods = (crossings.len() - 1) as f64;
        f64::from(rate) * periods / (crossings[crossings.len() - 1] - crossings[0])
    }

    #[test]
    fn blocks_are_even_multiples_of_the_smallest_block() {
        assert_eq!(block_frames(48_000, 44_100), 1280);
        assert_eq!(block_frames(44_100, 22_050), 1024);
        assert_eq!(block_frames(44_101, 44_100), 88_202);
        assert_eq!(gcd(48_000, 44_100), 300);
    }

    #[test]
    fn equal_rates_are_the_identity() {
        let x = sine(440.0, 44_100, 1000);
        assert_eq!(resample(&x, 44_100, 44_100).unwrap(), x);
    }

    #[test]
    fn output_length_is_rounded_ratio() {
        let rates = [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000, 192_000];
        for &from in &rates {
            for &to in &[22_050u32, 44_100, 48_000] {
                for len in [0usize, 1, 7, 1000, 12_345] {
                    let x = sine(440.0, from, len);
                    let y = resample(&x, from, to).unwrap();
                    let expected = ((len as f64 * f64::from(to) / f64::from(from)) + 0.5).floor() as usize;
                    assert_eq!(y.len(), expected, "{len} samples {from} -> {to}");
                }
            }
        }
    }

    #[test]
    fn a_1khz_sine_stays_at_1khz_and_in_phase_from_48k_to_44k1() {
        let x = sine(1000.0, 48_000, 48_000);
        let y = resample(&x, 48_000, 44_100).unwrap();
        let freq = zero_crossing_frequency(&y, 44_100);
        assert!((freq - 1000.0).abs() < 0.1, "measured {freq} Hz");
        // The delay is trimmed: the output is the same sine sampled at 44.1 kHz.
        let expected = sine(1000.0, 44_100, y.len());
        let worst =
            y[1000..y.len() - 1000].iter().zip(&expected[1000..]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "largest deviation from the ideal sine: {worst}");
    }

    #[test]
    fn upsampling_keeps_the_waveform() {
        let x = sine(440.0, 22_050, 22_050);
        let y = resample(&x, 22_050, 44_100).unwrap();
        let expected = sine(440.0, 44_100, y.len());
        let worst =
            y[2000..y.len() - 2000].iter().zip(&expected[2000..]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "largest deviation: {worst}");
    }

    #[test]
    fn streaming_equals_the_whole_signal_at_once() {
        let x = sine(440.0, 48_000, 50_000);
        let whole = resample(&x, 48_000, 44_100).unwrap();
        let mut streamed = Vec::new();
        let mut resampler = StreamResampler::new(48_000, 44_100).unwrap();
        for piece in x.chunks(777) {
            resampler.push(piece, &mut streamed).unwrap();
        }
        resampler.finish(&mut streamed).unwrap();
        assert_eq!(streamed, whole);
    }

    #[test]
    fn coprime_rates_work() {
        let x = sine(440.0, 44_101, 44_101);
        let y = resample(&x, 44_101, 44_100).unwrap();
        assert_eq!(y.len(), 44_100);
        assert!((zero_crossing_frequency(&y, 44_100) - 440.0).abs() < 0.1);
    }

    #[test]
    fn unsupported_rates_are_invalid_parameters() {
        assert!(matches!(resample(&[0.0; 10], 0, 44_100), Err(AudioError::InvalidParameter { name: "from_rate", .. })));
        assert!(matches!(
            resample(&[0.0; 10], 44_100, 1_000_000),
            Err(AudioError::InvalidParameter { name: "to_rate", .. })
        ));
    }
}
