//! Decoding of music files (WAV, FLAC, OGG Vorbis, MP3) into mono `f32`
//! samples with symphonia, with a typed [`AudioError`] for every way a file
//! can be unusable, so that a corpus build can skip and count bad files.
//!
//! Every loop over the stream is bounded by the size of the input, and the
//! symphonia calls run under `catch_unwind`: a damaged file gives an error,
//! never a panic or a hang.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{self, CodecType, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::config::SUPPORTED_RATES;
use crate::error::AudioError;

/// A decoded file: its samples downmixed to mono, at the file's own rate.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Mono samples, the mean of the file's channels frame by frame: in
    /// [-1, 1] for integer formats; floating-point files are passed through
    /// as stored (like librosa), so they may exceed it.
    pub samples: Vec<f32>,
    /// The file's sample rate in Hz (always within [`SUPPORTED_RATES`]).
    pub sample_rate: u32,
    /// How many channels the file had before the downmix.
    pub channels: usize,
}

impl DecodedAudio {
    /// Duration of the decoded audio in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Fraction of packets that may fail to decode (and be skipped) before the
/// whole stream is declared corrupt.
pub const MAX_BAD_PACKET_FRACTION: f64 = 0.10;

/// Fraction of the frames that may be missing, at the end of the stream
/// (against the header's count) or skipped in its middle, before the stream
/// is declared truncated or corrupt (encoders round, and lossy codecs pad or
/// trim their last packet).
pub const TRUNCATION_TOLERANCE: f64 = 0.01;

/// Consecutive demuxer errors after which the container is declared corrupt
/// (a demuxer that resynchronises may report a few in a row).
const MAX_CONSECUTIVE_DEMUX_ERRORS: usize = 32;

/// Decodes the file at `path` into mono samples.
///
/// The extension is passed to symphonia as a hint only: the container is
/// recognised from the bytes, so a misnamed file still decodes (and random
/// bytes named `.flac` are rejected).
pub fn decode_file(path: &Path) -> Result<DecodedAudio, AudioError> {
    let bytes = std::fs::read(path).map_err(|source| AudioError::Io { path: path.to_path_buf(), source })?;
    let extension = path.extension().and_then(|ext| ext.to_str());
    decode_bytes(bytes, extension)
}

/// Decodes an in-memory file into mono samples.
///
/// `extension_hint` is the file's extension without the dot (`"mp3"`), if
/// known; it only speeds up and disambiguates the container probe.
pub fn decode_bytes(bytes: Vec<u8>, extension_hint: Option<&str>) -> Result<DecodedAudio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let byte_count = bytes.len();
    match catch_unwind(AssertUnwindSafe(|| decode_stream(bytes, byte_count, extension_hint))) {
        Ok(result) => result,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown reason".to_string());
            Err(AudioError::Corrupt { detail: format!("the decoder panicked: {reason}") })
        }
    }
}

/// Probes the container, picks the first audio track and decodes it to the end.
fn decode_stream(bytes: Vec<u8>, byte_count: usize, extension_hint: Option<&str>) -> Result<DecodedAudio, AudioError> {
    let mut hint = Hint::new();
    if let Some(extension) = extension_hint {
        hint.with_extension(extension);
    }
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), MediaSourceStreamOptions::default());
    let format_options = FormatOptions { enable_gapless: true, ..Default::default() };
    let probed = symphonia::default::get_probe()
        .format(&hint, source, &format_options, &MetadataOptions::default())
        .map_err(probe_error)?;
    let mut reader = probed.format;

    let track = reader
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != codecs::CODEC_TYPE_NULL)
        .ok_or(AudioError::Empty)?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    if let Some(rate) = params.sample_rate {
        check_rate(rate)?;
    }
    let mut decoder =
        symphonia::default::get_codecs().make(&params, &DecoderOptions::default()).map_err(|err| match err {
            SymphoniaError::Unsupported(_) => AudioError::UnsupportedCodec { detail: codec_name(params.codec) },
            other => AudioError::Corrupt { detail: format!("cannot start the decoder: {other}") },
        })?;

    let mut mono = Downmixer::default();
    let mut packets = 0usize;
    let mut demux_errors = 0usize;
    let mut decode_errors = 0usize;
    let mut consecutive_demux_errors = 0usize;
    let mut last_error = String::new();
    // Frames skipped between packets: a demuxer that resynchronises after a
    // damaged region jumps ahead in time instead of reporting an error.
    let mut skipped_frames = 0u64;
    let mut next_timestamp: Option<u64> = None;
    // Every packet consumes at least one byte of the input, so this bounds the
    // loop even for a reader that would otherwise never reach the end.
    let max_packets = byte_count + 16;
    for _ in 0..max_packets {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(err) if is_end_of_stream(&err) => break,
            // A new chained stream (OGG): melfuse decodes the first one only.
            Err(SymphoniaError::ResetRequired) => break,
            Err(SymphoniaError::DecodeError(reason)) => {
                consecutive_demux_errors += 1;
                demux_errors += 1;
                last_error = reason.to_string();
                if consecutive_demux_errors > MAX_CONSECUTIVE_DEMUX_ERRORS {
                    return Err(AudioError::Corrupt { detail: format!("demuxer: {reason}") });
                }
                continue;
            }
            Err(SymphoniaError::IoError(err)) => {
                return Err(AudioError::Corrupt { detail: format!("reading the stream: {err}") })
            }
            Err(other) => return Err(AudioError::Corrupt { detail: format!("demuxer: {other}") }),
        };
        consecutive_demux_errors = 0;
        if packet.track_id() != track_id {
            continue;
        }
        packets += 1;
        if let Some(expected_ts) = next_timestamp {
            skipped_frames = skipped_frames.saturating_add(packet.ts().saturating_sub(expected_ts));
        }
        next_timestamp = Some(packet.ts().saturating_add(packet.dur()));
        match decoder.decode(&packet) {
            Ok(buffer) => {
                let rate = buffer.spec().rate;
                check_rate(rate)?;
                mono.push(buffer, rate)?;
            }
            Err(SymphoniaError::DecodeError(reason)) => {
                decode_errors += 1;
                last_error = reason.to_string();
                tracing::debug!(reason, "skipping an undecodable packet");
            }
            Err(err) if is_end_of_stream(&err) => break,
            Err(SymphoniaError::Unsupported(feature)) => {
                return Err(AudioError::UnsupportedCodec { detail: format!("{}: {feature}", codec_name(params.codec)) })
            }
            Err(other) => return Err(AudioError::Corrupt { detail: format!("decoder: {other}") }),
        }
    }

    // Packets the demuxer could not even delimit count as bad packets too.
    let total_packets = packets + demux_errors;
    let bad_packets = demux_errors + decode_errors;
    if bad_packets > 0
        && (mono.samples.is_empty() || bad_packets as f64 > MAX_BAD_PACKET_FRACTION * total_packets as f64)
    {
        return Err(AudioError::Corrupt {
            detail: format!("{bad_packets} of {total_packets} packets undecodable (last: {last_error})"),
        });
    }
    let decoded = mono.samples.len() as u64;
    // Frames missing from the middle are damage, not truncation.
    if skipped_frames as f64 > TRUNCATION_TOLERANCE * decoded.saturating_add(skipped_frames) as f64 {
        return Err(AudioError::Corrupt {
            detail: format!("{skipped_frames} frames lost to damaged packets in mid-stream"),
        });
    }
    if let Some(expected) = params.n_frames.filter(|&n| n > 0) {
        let missing = expected.saturating_sub(decoded);
        if decoded == 0 || missing as f64 > TRUNCATION_TOLERANCE * expected as f64 {
            return Err(AudioError::Truncated { decoded, expected });
        }
    }
    let (Some(sample_rate), false) = (mono.sample_rate.or(params.sample_rate), mono.samples.is_empty()) else {
        return Err(AudioError::Empty);
    };
    Ok(DecodedAudio { samples: mono.samples, sample_rate, channels: mono.channels })
}

/// Accumulates decoded packets as mono samples.
#[derive(Default)]
struct Downmixer {
    samples: Vec<f32>,
    sample_rate: Option<u32>,
    channels: usize,
    interleaved: Option<SampleBuffer<f32>>,
}

impl Downmixer {
    /// Appends one decoded packet, averaging its channels.
    fn push(&mut self, buffer: symphonia::core::audio::AudioBufferRef<'_>, rate: u32) -> Result<(), AudioError> {
        match self.sample_rate {
            None => self.sample_rate = Some(rate),
            Some(first) if first != rate => {
                return Err(AudioError::Corrupt {
                    detail: format!("sample rate changes mid-stream from {first} to {rate} Hz"),
                })
            }
            Some(_) => {}
        }
        let spec = *buffer.spec();
        let channels = spec.channels.count();
        if channels == 0 {
            return Err(AudioError::Corrupt { detail: "a packet with zero channels".to_string() });
        }
        self.channels = self.channels.max(channels);
        if buffer.frames() == 0 {
            return Ok(());
        }
        let needs_new = match &self.interleaved {
            Some(existing) => existing.capacity() < buffer.capacity() * channels,
            None => true,
        };
        if needs_new {
            self.interleaved = Some(SampleBuffer::new(buffer.capacity() as u64, spec));
        }
        if let Some(interleaved) = self.interleaved.as_mut() {
            interleaved.copy_interleaved_ref(buffer);
            downmix_interleaved(interleaved.samples(), channels, &mut self.samples);
        }
        Ok(())
    }
}

/// Appends the frame-by-frame mean of `channels` interleaved channels to `out`.
///
/// Averaging (rather than summing) keeps the mono signal within [-1, 1].
pub fn downmix_interleaved(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(interleaved.chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() * scale));
}

/// Rejects rates outside [`SUPPORTED_RATES`] before any work is spent on them.
fn check_rate(rate: u32) -> Result<(), AudioError> {
    if SUPPORTED_RATES.contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::UnsupportedSampleRate { rate })
    }
}

/// symphonia 0.5 reports the normal end of a stream as an unexpected EOF.
fn is_end_of_stream(err: &SymphoniaError) -> bool {
    matches!(err, SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
}

/// Maps a failure to recognise or open the container to a typed error.
fn probe_error(err: SymphoniaError) -> AudioError {
    match err {
        SymphoniaError::Unsupported(what) => AudioError::UnsupportedFormat { detail: what.to_string() },
        SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::Corrupt { detail: "the file ends inside its header".to_string() }
        }
        other => AudioError::Corrupt { detail: format!("unreadable header: {other}") },
    }
}

/// A readable name for a codec, for error messages ("opus", "aac", ...).
fn codec_name(codec: CodecType) -> String {
    let known = [
        (codecs::CODEC_TYPE_OPUS, "opus"),
        (codecs::CODEC_TYPE_AAC, "aac"),
        (codecs::CODEC_TYPE_ALAC, "alac"),
        (codecs::CODEC_TYPE_SPEEX, "speex"),
        (codecs::CODEC_TYPE_MP1, "mp1"),
        (codecs::CODEC_TYPE_MP2, "mp2"),
        (codecs::CODEC_TYPE_MP3, "mp3"),
        (codecs::CODEC_TYPE_VORBIS, "vorbis"),
        (codecs::CODEC_TYPE_FLAC, "flac"),
        (codecs::CODEC_TYPE_WAVPACK, "wavpack"),
        (codecs::CODEC_TYPE_MONKEYS_AUDIO, "monkey's audio"),
        (codecs::CODEC_TYPE_TTA, "tta"),
        (codecs::CODEC_TYPE_MUSEPACK, "musepack"),
        (codecs::CODEC_TYPE_EAC3, "e-ac-3"),
        (codecs::CODEC_TYPE_AC4, "ac-4"),
        (codecs::CODEC_TYPE_DCA, "dts"),
        (codecs::CODEC_TYPE_WMA, "wma"),
    ];
    match known.iter().find(|(candidate, _)| *candidate == codec) {
        Some((_, name)) => (*name).to_string(),
        None => match symphonia::default::get_codecs().get_codec(codec) {
            Some(descriptor) => descriptor.short_name.to_string(),
            None => format!("codec {codec}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 440 Hz sine at half scale, `frames` long, identical in every channel
    /// except that channel `c` is scaled by `1 - c/4` (so the mean is known).
    fn test_frames(frames: usize, channels: usize, rate: u32) -> Vec<Vec<f64>> {
        (0..frames)
            .map(|i| {
                let x = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / rate as f64).sin();
                (0..channels).map(|c| x * (1.0 - c as f64 / 4.0)).collect()
            })
            .collect()
    }

    fn expected_mono(frames: &[Vec<f64>]) -> Vec<f64> {
        frames.iter().map(|f| f.iter().sum::<f64>() / f.len() as f64).collect()
    }

    fn wav_bytes(spec: hound::WavSpec, frames: &[Vec<f64>]) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for frame in frames {
            for &x in frame {
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => writer.write_sample(x as f32).unwrap(),
                    (hound::SampleFormat::Int, 8) => writer.write_sample((x * 127.0).round() as i8).unwrap(),
                    (hound::SampleFormat::Int, 16) => writer.write_sample((x * 32767.0).round() as i16).unwrap(),
                    (hound::SampleFormat::Int, 24) => writer.write_sample((x * 8_388_607.0).round() as i32).unwrap(),
                    (hound::SampleFormat::Int, _) => writer.write_sample((x * 2_147_483_647.0).round() as i32).unwrap(),
                }
            }
        }
        writer.finalize().unwrap();
        cursor.into_inner()
    }

    #[test]
    fn downmix_is_the_mean_of_the_channels() {
        let mut out = Vec::new();
        downmix_interleaved(&[1.0, 0.0, -1.0, 0.5, 0.5, 0.5], 3, &mut out);
        assert_eq!(out, vec![0.0, 0.5]);
        downmix_interleaved(&[0.25, -0.25], 1, &mut out);
        assert_eq!(out, vec![0.0, 0.5, 0.25, -0.25]);
    }

    #[test]
    fn decodes_in_memory_wavs_of_every_bit_depth() {
        let rate = 22_050;
        let cases = [
            (8, hound::SampleFormat::Int, 1.0 / 64.0),
            (16, hound::SampleFormat::Int, 1e-4),
            (24, hound::SampleFormat::Int, 1e-6),
            (32, hound::SampleFormat::Int, 1e-6),
            (32, hound::SampleFormat::Float, 1e-6),
        ];
        for channels in [1usize, 2, 6] {
            let frames = test_frames(1000, channels, rate);
            let expected = expected_mono(&frames);
            for (bits, format, tolerance) in cases {
                let spec = hound::WavSpec {
                    channels: channels as u16,
                    sample_rate: rate,
                    bits_per_sample: bits,
                    sample_format: format,
                };
                let decoded = decode_bytes(wav_bytes(spec, &frames), Some("wav"))
                    .unwrap_or_else(|e| panic!("{bits}-bit {format:?} x{channels}: {e}"));
                assert_eq!(decoded.sample_rate, rate);
                assert_eq!(decoded.channels, channels);
                assert_eq!(decoded.samples.len(), expected.len(), "{bits}-bit {format:?}");
                let worst = decoded
                    .samples
                    .iter()
                    .zip(&expected)
                    .map(|(&got, &want)| (got as f64 - want).abs())
                    .fold(0.0, f64::max);
                assert!(worst < tolerance, "{bits}-bit {format:?} x{channels}: error {worst}");
            }
        }
    }

    #[test]
    fn decodes_64_bit_float_wav() {
        // hound cannot write f64, so build the file by hand (WAVE_FORMAT_IEEE_FLOAT, 64 bits).
        let values = [0.5f64, -0.25, 0.125, 1.0];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&8000u32.to_le_bytes());
        bytes.extend_from_slice(&64000u32.to_le_bytes());
        bytes.extend_from_slice(&8u16.to_le_bytes());
        bytes.extend_from_slice(&64u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&data);
        let decoded = decode_bytes(bytes, Some("wav")).unwrap();
        assert_eq!(decoded.samples, vec![0.5, -0.25, 0.125, 1.0]);
        assert_eq!(decoded.sample_rate, 8000);
    }

    #[test]
    fn empty_and_garbage_inputs_give_typed_errors() {
        assert!(matches!(decode_bytes(Vec::new(), Some("wav")), Err(AudioError::Empty)));
        let text = b"this is not audio at all, just some text".repeat(20);
        assert!(matches!(decode_bytes(text, Some("mp3")), Err(AudioError::UnsupportedFormat { .. })));
    }

    #[test]
    fn wav_with_unsupported_rate_is_rejected() {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 4000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let bytes = wav_bytes(spec, &test_frames(100, 1, 4000));
        assert!(matches!(decode_bytes(bytes, None), Err(AudioError::UnsupportedSampleRate { rate: 4000 })));
    }

    #[test]
    fn wav_cut_short_is_truncated() {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut bytes = wav_bytes(spec, &test_frames(8000, 1, 8000));
        bytes.truncate(44 + 8000);
        match decode_bytes(bytes, Some("wav")) {
            Err(AudioError::Truncated { decoded, expected }) => {
                assert_eq!(expected, 8000);
                assert_eq!(decoded, 4000);
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let path = Path::new("/nonexistent/melfuse/none.wav");
        assert!(matches!(decode_file(path), Err(AudioError::Io { .. })));
    }
}
