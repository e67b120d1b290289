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
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>, AudioError> {
    for (name, rate) in [("from_rate", from_rate), ("to_rate", to_rate)] {
        if !SUPPORTED_RATES.contains(&rate) {
            return Err(AudioError::InvalidParameter {
                name,
                detail: format!("{rate} Hz is outside {SUPPORTED_RATES:?}"),
            });
        }
    }
    if from_rate == to_rate {
        return Ok(samples.to_vec());
    }
    let target = resampled_len(samples.len(), from_rate, to_rate);
    if target == 0 {
        return Ok(Vec::new());
    }

    let chunk = block_frames(from_rate, to_rate);
    let mut resampler = FftFixedIn::<f32>::new(from_rate as usize, to_rate as usize, chunk, 1, 1)
        .map_err(|err| AudioError::Resample { detail: err.to_string() })?;
    // The resampler's output starts `delay` frames late: produce that many
    // extra frames (feeding zeros past the end) and drop them from the front.
    let delay = resampler.output_delay();
    let wanted = delay + target;
    let mut output = Vec::with_capacity(wanted + resampler.output_frames_max());
    let mut block_out = vec![0.0f32; resampler.output_frames_max()];
    let mut block_in = vec![0.0f32; chunk];

    // Input needed for `wanted` output frames, plus one block of rounding.
    let ratio = f64::from(from_rate) / f64::from(to_rate);
    let input_needed = (wanted as f64 * ratio).ceil() as usize + chunk + 1;
    let max_calls = input_needed / chunk + 2;

    let mut position = 0usize;
    for _ in 0..max_calls {
        if output.len() >= wanted {
            break;
        }
        block_in.fill(0.0);
        if position < samples.len() {
            let end = (position + chunk).min(samples.len());
            block_in[..end - position].copy_from_slice(&samples[position..end]);
        }
        position += chunk;
        let (_, produced) = resampler
            .process_into_buffer(std::slice::from_ref(&block_in), std::slice::from_mut(&mut block_out), None)
            .map_err(|err| AudioError::Resample { detail: err.to_string() })?;
        output.extend_from_slice(&block_out[..produced]);
    }
    if output.len() < wanted {
        return Err(AudioError::Resample {
            detail: format!("produced {} of {wanted} frames within the call budget", output.len()),
        });
    }
    output.truncate(wanted);
    output.drain(..delay);
    Ok(output)
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
