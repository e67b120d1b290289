//! Loading a music file as the model sees it: decoded, downmixed to mono,
//! resampled to the configured rate, and rejected if silent (a silent file
//! teaches the model nothing and makes a blank spectrogram).
//!
//! Two ways: [`load_mono`] returns the whole signal (clips, `inspect`,
//! tests); [`for_each_segment`] streams decode → resample → segments and
//! holds about one segment, so a three-hour mix or a 24-bit 192 kHz hour
//! costs the same memory as a song (`prepare` uses it for every file). Both
//! give the same samples: the resampler and the segmenter are the same code
//! fed whole or in pieces (tested).

use std::path::Path;

use crate::config::SignalConfig;
use crate::decode::{decode_bytes, decode_file, DecodeStream, DecodedAudio, StreamInfo};
use crate::error::AudioError;
use crate::resample::{resample, StreamResampler};
use crate::segment::Segmenter;

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

/// What [`for_each_segment`] saw of a whole track.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSummary {
    /// The stream: format, rate, channels.
    pub info: StreamInfo,
    /// Length after resampling, in samples at the target rate.
    pub samples: usize,
    /// Segments emitted.
    pub segments: usize,
    /// Peak level of the decoded mono signal in dBFS.
    pub peak_dbfs: f32,
}

/// Why [`for_each_segment`] stopped: the audio, or the caller's callback.
#[derive(Debug)]
pub enum SegmentError<E> {
    /// The file could not be decoded or resampled, or it is silent.
    Audio {
        /// What went wrong.
        error: AudioError,
        /// The stream, when its headers could be read (for per-format counts).
        info: Option<Box<StreamInfo>>,
    },
    /// The callback failed.
    Callback(E),
}

/// Streams the file at `path` — decoded, mono, resampled to
/// `config.sample_rate` — into segments (see [`crate::segment`]) and calls
/// `emit(start_sample, segment)` for each, in order.
///
/// Resident memory is about one segment whatever the file's length. A
/// silent file ([`SILENCE_THRESHOLD_DBFS`]) is known only at its end: its
/// segments have been emitted by then and the result is
/// [`AudioError::Silent`], so the caller must discard them.
pub fn for_each_segment<E>(
    path: &Path,
    config: &SignalConfig,
    mut emit: impl FnMut(usize, &[f32]) -> Result<(), E>,
) -> Result<TrackSummary, SegmentError<E>> {
    let mut stream = DecodeStream::open(path).map_err(|error| SegmentError::Audio { error, info: None })?;
    let info = stream.info().clone();
    let audio = |error| SegmentError::Audio { error, info: Some(Box::new(info.clone())) };
    let mut resampler = StreamResampler::new(info.sample_rate, config.sample_rate).map_err(audio)?;
    let mut segmenter = Segmenter::new(config);
    let mut resampled = Vec::new();
    let mut samples = 0usize;
    let mut peak = 0.0f32;
    while let Some(chunk) = stream.next_chunk().map_err(audio)? {
        peak = chunk.iter().fold(peak, |p, &x| p.max(x.abs()));
        resampled.clear();
        resampler.push(chunk, &mut resampled).map_err(audio)?;
        samples += resampled.len();
        segmenter.push(&resampled, &mut emit).map_err(SegmentError::Callback)?;
    }
    resampled.clear();
    resampler.finish(&mut resampled).map_err(audio)?;
    samples += resampled.len();
    segmenter.push(&resampled, &mut emit).map_err(SegmentError::Callback)?;
    let peak_dbfs = 20.0 * peak.log10();
    if peak_dbfs < SILENCE_THRESHOLD_DBFS {
        return Err(audio(AudioError::Silent { peak_dbfs }));
    }
    Ok(TrackSummary { info: stream.info().clone(), samples, segments: segmenter.count(), peak_dbfs })
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
    fn streamed_segments_equal_the_whole_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        let samples: Vec<f32> = (0..48_000 * 5).map(|i| (i as f32 * 0.013).sin() * 0.4).collect();
        std::fs::write(&path, wav_bytes(&samples, 48_000)).unwrap();
        let config =
            SignalConfig { sample_rate: 22_050, segment_seconds: 1.5, overlap_seconds: 0.5, ..Default::default() };
        let whole = load_mono(&path, config.sample_rate).unwrap();
        let mut got = Vec::new();
        let summary = for_each_segment(&path, &config, |start, segment| {
            got.push((start, segment.to_vec()));
            Ok::<_, ()>(())
        })
        .unwrap();
        let want: Vec<(usize, Vec<f32>)> = crate::segment::segment_ranges(whole.len(), &config)
            .into_iter()
            .map(|r| (r.start, whole[r].to_vec()))
            .collect();
        assert_eq!(summary.samples, whole.len());
        assert_eq!(summary.segments, want.len());
        assert_eq!(got, want);
        assert_eq!(summary.info.format_label(), "wave/pcm_f32le");
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
