//! Loading a music file as the model sees it: decoded, downmixed to mono,
//! resampled to the configured rate, and rejected if silent (a silent file
//! teaches the model nothing and makes a blank spectrogram).

use std::path::Path;

use crate::decode::{decode_bytes, decode_file, DecodedAudio};
use crate::error::AudioError;
use crate::resample::resample;

/// Peak level below which a file counts as silent, in dBFS (−90 dBFS is
/// below the least significant bit of 16-bit audio, about −96 dBFS, only by
/// a small margin: anything quieter is digital silence or dither).
pub const SILENCE_THRESHOLD_DBFS: f32 = -90.0;

/// Decodes the file at `path` and returns its mono samples at `sample_rate` Hz.
///
/// Fails with [`AudioError::Silent`] when the peak is below
/// [`SILENCE_THRESHOLD_DBFS`], and with the decoder's or resampler's typed
/// error otherwise.
pub fn load_mono(path: &Path, sample_rate: u32) -> Result<Vec<f32>, AudioError> {
    finish(decode_file(path)?, sample_rate)
}

/// Like [`load_mono`], for a file already in memory; `extension_hint` is its
/// extension without the dot, if known.
pub fn load_mono_bytes(bytes: Vec<u8>, extension_hint: Option<&str>, sample_rate: u32) -> Result<Vec<f32>, AudioError> {
    finish(decode_bytes(bytes, extension_hint)?, sample_rate)
}

/// Peak absolute level of `samples` in dBFS (−∞ for all zeros or no samples).
pub fn peak_dbfs(samples: &[f32]) -> f32 {
    let peak = samples.iter().fold(0.0f32, |peak, &x| peak.max(x.abs()));
    20.0 * peak.log10()
}

/// Rejects silence, then resamples (silence is checked first: it is cheaper).
fn finish(decoded: DecodedAudio, sample_rate: u32) -> Result<Vec<f32>, AudioError> {
    let peak = peak_dbfs(&decoded.samples);
    if peak < SILENCE_THRESHOLD_DBFS {
        return Err(AudioError::Silent { peak_dbfs: peak });
    }
    resample(&decoded.samples, decoded.sample_rate, sample_rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut cursor = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for &x in samples {
            writer.write_sample(x).unwrap();
        }
        writer.finalize().unwrap();
        cursor.into_inner()
    }

    #[test]
    fn peak_level_in_dbfs() {
        assert_eq!(peak_dbfs(&[0.0, -1.0, 0.5]), 0.0);
        assert!((peak_dbfs(&[0.1]) + 20.0).abs() < 1e-5);
        assert_eq!(peak_dbfs(&[0.0; 4]), f32::NEG_INFINITY);
    }

    #[test]
    fn silence_threshold_is_minus_90_dbfs() {
        let just_below = 10f32.powf(-90.5 / 20.0);
        let just_above = 10f32.powf(-89.5 / 20.0);
        for (level, silent) in [(0.0, true), (just_below, true), (just_above, false)] {
            let mut samples = vec![0.0f32; 8000];
            samples[100] = level;
            let result = load_mono_bytes(wav_bytes(&samples, 8000), Some("wav"), 8000);
            assert_eq!(matches!(result, Err(AudioError::Silent { .. })), silent, "level {level}");
        }
    }

    #[test]
    fn loads_and_resamples() {
        let samples: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        let loaded = load_mono_bytes(wav_bytes(&samples, 16_000), Some("wav"), 44_100).unwrap();
        assert_eq!(loaded.len(), 44_100);
        let same_rate = load_mono_bytes(wav_bytes(&samples, 16_000), None, 16_000).unwrap();
        assert_eq!(same_rate, samples);
    }
}
