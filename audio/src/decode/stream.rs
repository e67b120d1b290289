//! The packet loop: a [`DecodeStream`] reads one packet at a time, decodes
//! it, downmixes it to mono and trims the encoder delay and padding, so a
//! caller can process a three-hour file holding only the chunk at hand.
//!
//! Every loop over the stream is bounded by the size of the input, and the
//! symphonia and libopus calls run under `catch_unwind`: a damaged file
//! gives an error, never a panic or a hang.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use symphonia::core::codecs::audio::well_known as codec_ids;
use symphonia::core::codecs::audio::{AudioCodecId, AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use super::gapless::{matroska_discard_padding, mp4_gapless, Mp4Gapless, TrimPlan, Trimmer};
use super::opus::{OpusDecoder, OpusHead, OPUS_RATE};
use super::{downmix_interleaved, MAX_BAD_PACKET_FRACTION, TRUNCATION_TOLERANCE};
use crate::config::SUPPORTED_RATES;
use crate::error::AudioError;

/// Consecutive demuxer errors after which the container is declared corrupt
/// (a demuxer that resynchronises may report a few in a row).
const MAX_CONSECUTIVE_DEMUX_ERRORS: usize = 32;

/// Largest end padding believed from a container, in frames (one second at
/// 48 kHz; real values are below one packet): larger ones are ignored.
const MAX_END_PADDING: u64 = 48_000;

/// What a stream is, known once its headers are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The file's sample rate in Hz (Opus: always 48 000, as libopus decodes).
    pub sample_rate: u32,
    /// Channels before the downmix.
    pub channels: usize,
    /// The container, as symphonia names it (`ogg`, `mp3`, `isomp4`, `matroska`, `wave`, ...).
    pub container: String,
    /// The codec (`vorbis`, `opus`, `aac`, `alac`, `flac`, `mp3`, `pcm_s16le`, ...).
    pub codec: String,
    /// Frames the stream should yield after trimming, when the headers say.
    pub expected_frames: Option<u64>,
}

impl StreamInfo {
    /// `container/codec`, e.g. `ogg/vorbis`: the key of the per-format counts.
    pub fn format_label(&self) -> String {
        format!("{}/{}", self.container, self.codec)
    }

    /// Expected duration in seconds, when the headers say.
    pub fn expected_seconds(&self) -> Option<f64> {
        self.expected_frames.map(|frames| frames as f64 / f64::from(self.sample_rate.max(1)))
    }
}

/// The decoder of the chosen track.
enum Codec {
    Symphonia(Box<dyn AudioDecoder>),
    Opus(OpusDecoder),
}

/// Counters of what went wrong along the way.
#[derive(Default)]
struct Health {
    packets: usize,
    demux_errors: usize,
    decode_errors: usize,
    consecutive_demux_errors: usize,
    last_error: String,
    /// Frames (in track time-base units equal to frames) skipped between
    /// packets: a demuxer that resynchronises after damage jumps ahead.
    skipped_frames: u64,
    next_ts: Option<i64>,
}

/// Mono samples of one audio file, decoded packet by packet.
pub struct DecodeStream {
    reader: Box<dyn FormatReader>,
    codec: Codec,
    track_id: u32,
    /// Whether packet timestamps count frames (then gaps reveal damage).
    ts_in_frames: bool,
    info: StreamInfo,
    trimmer: Trimmer,
    interleaved: Vec<f32>,
    mono: Vec<f32>,
    out: Vec<f32>,
    health: Health,
    emitted: u64,
    packets_left: u64,
    done: bool,
}

impl std::fmt::Debug for DecodeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeStream").field("info", &self.info).field("emitted", &self.emitted).finish()
    }
}

/// What the container itself says about gapless playback, read before
/// symphonia takes the source.
enum ContainerScan {
    None,
    Mp4(Option<Mp4Gapless>),
    Matroska(Box<dyn FnOnce(u64) -> u64>),
}

/// Sniffs the container from its first bytes and reads what symphonia
/// ignores: MP4 edit lists / `iTunSMPB`, Matroska `DiscardPadding`.
fn scan_container<R: Read + Seek + 'static>(mut reader: R) -> ContainerScan {
    let mut head = [0u8; 12];
    if reader.read_exact(&mut head).is_err() || reader.rewind().is_err() {
        return ContainerScan::None;
    }
    if &head[4..8] == b"ftyp" {
        return ContainerScan::Mp4(mp4_gapless(&mut reader));
    }
    if head[..4] == [0x1A, 0x45, 0xDF, 0xA3] {
        // Walked only if the track turns out to be Opus.
        return ContainerScan::Matroska(Box::new(move |track| matroska_discard_padding(&mut reader, track)));
    }
    ContainerScan::None
}

impl DecodeStream {
    /// Opens the file at `path`. The extension is a hint only: the container
    /// is recognised from the bytes.
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let io_error = |source| AudioError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io_error)?;
        let byte_len = file.metadata().map_err(io_error)?.len();
        if byte_len == 0 {
            return Err(AudioError::Empty);
        }
        let scan_file = File::open(path).map_err(io_error)?;
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
        guarded(|| {
            let scan = scan_container(BufReader::new(scan_file));
            Self::from_source(Box::new(file), byte_len, extension.as_deref(), scan)
        })
    }

    /// Opens an in-memory file; `extension_hint` is its extension without the
    /// dot, if known.
    pub fn from_bytes(bytes: Vec<u8>, extension_hint: Option<&str>) -> Result<Self, AudioError> {
        if bytes.is_empty() {
            return Err(AudioError::Empty);
        }
        let byte_len = bytes.len() as u64;
        let shared: std::sync::Arc<[u8]> = bytes.into();
        guarded(|| {
            let scan = scan_container(Cursor::new(SharedBytes(shared.clone())));
            Self::from_source(Box::new(Cursor::new(SharedBytes(shared.clone()))), byte_len, extension_hint, scan)
        })
    }

    /// What the stream is.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Frames of mono output so far.
    pub fn frames_emitted(&self) -> u64 {
        self.emitted
    }

    fn from_source(
        source: Box<dyn MediaSource>,
        byte_len: u64,
        extension: Option<&str>,
        scan: ContainerScan,
    ) -> Result<Self, AudioError> {
        let mut hint = Hint::new();
        if let Some(extension) = extension {
            hint.with_extension(extension);
        }
        let stream = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let reader = symphonia::default::get_probe()
            .probe(&hint, stream, FormatOptions::default(), MetadataOptions::default())
            .map_err(probe_error)?;
        let track = reader
            .default_track(TrackType::Audio)
            .or_else(|| reader.first_track(TrackType::Audio))
            .ok_or(AudioError::Empty)?
            .clone();
        let container = reader.format_info().short_name.to_string();
        let params: AudioCodecParameters =
            track.codec_params.as_ref().and_then(|p| p.audio()).cloned().ok_or_else(|| {
                AudioError::UnsupportedCodec { detail: format!("{container}: no audio codec parameters") }
            })?;
        let codec_label = codec_name(params.codec);

        let (codec, sample_rate, channels, mut plan, mut expected) = if params.codec == codec_ids::CODEC_ID_OPUS {
            let head = OpusHead::parse(params.extra_data.as_deref().unwrap_or_default())?;
            let decoder = OpusDecoder::new(&head)?;
            let pre_skip = u64::from(head.pre_skip);
            let mut plan = TrimPlan { delay: pre_skip, ..TrimPlan::default() };
            if let ContainerScan::Matroska(scan) = scan {
                let nanoseconds = scan(u64::from(track.id));
                let frames = (u128::from(nanoseconds) * u128::from(OPUS_RATE) + 500_000_000) / 1_000_000_000;
                plan.end_padding = if frames as u64 <= MAX_END_PADDING { frames as u64 } else { 0 };
            }
            // symphonia's Ogg frame count includes the pre-skip (RFC 7845: it does not).
            let expected = track.num_frames.map(|n| n.saturating_sub(pre_skip));
            (Codec::Opus(decoder), OPUS_RATE, head.channels, plan, expected)
        } else {
            let rate = params.sample_rate.ok_or_else(|| AudioError::Corrupt { detail: "no sample rate".into() })?;
            let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
            let decoder = symphonia::default::get_codecs()
                .make_audio_decoder(&params, &AudioDecoderOptions::default())
                .map_err(|err| match err {
                    SymphoniaError::Unsupported(_) => AudioError::UnsupportedCodec { detail: codec_label.clone() },
                    other => AudioError::Corrupt { detail: format!("cannot start the decoder: {other}") },
                })?;
            // Vorbis and MP3: symphonia trims through the packets; this only
            // catches what it leaves out.
            let mut plan = TrimPlan { delay: u64::from(track.delay.unwrap_or(0)), ..TrimPlan::default() };
            let mut expected = track.num_frames;
            if let ContainerScan::Mp4(Some(gapless)) = scan {
                let timescale = gapless.media_timescale;
                plan.delay = ticks_to_frames(gapless.priming, rate, timescale);
                plan.length = gapless.length.map(|ticks| ticks_to_frames(ticks, rate, timescale));
                expected = plan.length.or(expected.map(|n| n.saturating_sub(plan.delay)));
            }
            (Codec::Symphonia(decoder), rate, channels, plan, expected)
        };
        check_rate(sample_rate)?;
        if let Some(length) = plan.length {
            expected = Some(expected.map_or(length, |e| e.min(length)));
        }
        plan.delay = plan.delay.min(u64::from(u32::MAX));
        let ts_in_frames = track.time_base.is_some_and(|tb| tb.numer.get() == 1 && tb.denom.get() == sample_rate);
        Ok(Self {
            reader,
            codec,
            track_id: track.id,
            ts_in_frames,
            info: StreamInfo { sample_rate, channels, container, codec: codec_label, expected_frames: expected },
            trimmer: Trimmer::new(plan),
            interleaved: Vec::new(),
            mono: Vec::new(),
            out: Vec::new(),
            health: Health::default(),
            emitted: 0,
            // Every packet consumes at least one byte of the input.
            packets_left: byte_len + 16,
            done: false,
        })
    }

    /// The next chunk of mono samples (usually one packet's worth), `None`
    /// at the end of a healthy stream. The end-of-stream checks (too many bad
    /// packets, frames lost in mid-stream, truncation against the header)
    /// turn the end into an error.
    pub fn next_chunk(&mut self) -> Result<Option<&[f32]>, AudioError> {
        self.out.clear();
        while self.out.is_empty() && !self.done {
            let result = guarded(|| self.step());
            if let Err(error) = result {
                self.done = true;
                return Err(error);
            }
        }
        if self.out.is_empty() {
            return Ok(None);
        }
        self.emitted += self.out.len() as u64;
        Ok(Some(&self.out))
    }

    /// Reads and decodes one packet; at the end, runs the final checks.
    fn step(&mut self) -> Result<(), AudioError> {
        if self.packets_left == 0 {
            self.done = true;
            return self.final_checks();
        }
        self.packets_left -= 1;
        let packet = match self.reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => {
                self.done = true;
                return self.final_checks();
            }
            Err(err) if is_end_of_stream(&err) => {
                self.done = true;
                return self.final_checks();
            }
            // A new chained stream (OGG): melfuse decodes the first one only.
            Err(SymphoniaError::ResetRequired) => {
                self.done = true;
                return self.final_checks();
            }
            Err(SymphoniaError::DecodeError(reason)) => {
                let health = &mut self.health;
                health.consecutive_demux_errors += 1;
                health.demux_errors += 1;
                health.last_error = reason.to_string();
                if health.consecutive_demux_errors > MAX_CONSECUTIVE_DEMUX_ERRORS {
                    return Err(AudioError::Corrupt { detail: format!("demuxer: {reason}") });
                }
                return Ok(());
            }
            Err(SymphoniaError::IoError(err)) => {
                return Err(AudioError::Corrupt { detail: format!("reading the stream: {err}") })
            }
            Err(other) => return Err(AudioError::Corrupt { detail: format!("demuxer: {other}") }),
        };
        self.health.consecutive_demux_errors = 0;
        if packet.track_id != self.track_id {
            return Ok(());
        }
        self.health.packets += 1;
        if self.ts_in_frames {
            let pts = packet.pts.get();
            if let Some(expected) = self.health.next_ts {
                self.health.skipped_frames =
                    self.health.skipped_frames.saturating_add(pts.saturating_sub(expected).max(0) as u64);
            }
            let duration = i64::try_from(packet.dur.get()).unwrap_or(i64::MAX);
            let trimmed = i64::try_from(packet.trim_start.get() + packet.trim_end.get()).unwrap_or(0);
            self.health.next_ts = Some(pts.saturating_add(duration).saturating_add(trimmed));
        }
        let trim_start = packet.trim_start.get();
        let trim_end = packet.trim_end.get();
        let channels = match &mut self.codec {
            Codec::Symphonia(decoder) => match decoder.decode(&packet) {
                Ok(buffer) => {
                    let rate = buffer.spec().rate();
                    if rate != self.info.sample_rate {
                        check_rate(rate)?;
                        return Err(AudioError::Corrupt {
                            detail: format!(
                                "sample rate changes mid-stream from {} to {rate} Hz",
                                self.info.sample_rate
                            ),
                        });
                    }
                    buffer.copy_to_vec_interleaved(&mut self.interleaved);
                    buffer.spec().channels().count()
                }
                Err(SymphoniaError::DecodeError(reason)) => {
                    self.health.decode_errors += 1;
                    self.health.last_error = reason.to_string();
                    tracing::debug!(reason, "skipping an undecodable packet");
                    return Ok(());
                }
                Err(err) if is_end_of_stream(&err) => {
                    self.done = true;
                    return self.final_checks();
                }
                Err(SymphoniaError::Unsupported(feature)) => {
                    return Err(AudioError::UnsupportedCodec { detail: format!("{}: {feature}", self.info.codec) })
                }
                Err(other) => return Err(AudioError::Corrupt { detail: format!("decoder: {other}") }),
            },
            Codec::Opus(decoder) => {
                let channels = decoder.channels();
                match decoder.decode(&packet.data) {
                    Ok(pcm) => {
                        // symphonia's Opus packets carry the trims; no decoder applies them.
                        let frames = pcm.len() / channels;
                        let start = (trim_start as usize).min(frames);
                        let end = frames.saturating_sub(trim_end as usize).max(start);
                        self.interleaved.clear();
                        self.interleaved.extend_from_slice(&pcm[start * channels..end * channels]);
                        channels
                    }
                    Err(error) => {
                        self.health.decode_errors += 1;
                        self.health.last_error = error.to_string();
                        return Ok(());
                    }
                }
            }
        };
        if channels == 0 {
            return Err(AudioError::Corrupt { detail: "a packet with zero channels".to_string() });
        }
        self.info.channels = self.info.channels.max(channels);
        self.trimmer.decoder_trimmed(trim_start);
        self.mono.clear();
        downmix_interleaved(&self.interleaved, channels, &mut self.mono);
        self.trimmer.push(&self.mono, &mut self.out);
        Ok(())
    }

    /// The end-of-stream verdict on the stream's health.
    fn final_checks(&self) -> Result<(), AudioError> {
        let health = &self.health;
        // Packets the demuxer could not even delimit count as bad packets too.
        let total_packets = health.packets + health.demux_errors;
        let bad_packets = health.demux_errors + health.decode_errors;
        let decoded = self.emitted + self.out.len() as u64;
        if bad_packets > 0 && (decoded == 0 || bad_packets as f64 > MAX_BAD_PACKET_FRACTION * total_packets as f64) {
            return Err(AudioError::Corrupt {
                detail: format!("{bad_packets} of {total_packets} packets undecodable (last: {})", health.last_error),
            });
        }
        // Frames missing from the middle are damage, not truncation.
        let skipped = health.skipped_frames;
        if skipped as f64 > TRUNCATION_TOLERANCE * decoded.saturating_add(skipped) as f64 {
            return Err(AudioError::Corrupt {
                detail: format!("{skipped} frames lost to damaged packets in mid-stream"),
            });
        }
        if let Some(expected) = self.info.expected_frames.filter(|&n| n > 0) {
            let missing = expected.saturating_sub(decoded);
            if decoded == 0 || missing as f64 > TRUNCATION_TOLERANCE * expected as f64 {
                return Err(AudioError::Truncated { decoded, expected });
            }
        }
        if decoded == 0 {
            return Err(AudioError::Empty);
        }
        Ok(())
    }
}

/// Converts a duration in a media time scale to frames at `rate`.
fn ticks_to_frames(ticks: u64, rate: u32, timescale: u32) -> u64 {
    (u128::from(ticks) * u128::from(rate) / u128::from(timescale.max(1))) as u64
}

/// Bytes shared between the container scan and symphonia (no copy).
struct SharedBytes(std::sync::Arc<[u8]>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Runs `f`, turning a panic inside a decoder into [`AudioError::Corrupt`].
fn guarded<T>(f: impl FnOnce() -> Result<T, AudioError>) -> Result<T, AudioError> {
    match catch_unwind(AssertUnwindSafe(f)) {
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

/// Rejects rates outside [`SUPPORTED_RATES`] before any work is spent on them.
fn check_rate(rate: u32) -> Result<(), AudioError> {
    if SUPPORTED_RATES.contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::UnsupportedSampleRate { rate })
    }
}

/// A source that ends inside a packet reports an unexpected EOF.
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

/// A readable name for a codec ("opus", "aac", "pcm_s16le", ...).
fn codec_name(codec: AudioCodecId) -> String {
    let known = [
        (codec_ids::CODEC_ID_OPUS, "opus"),
        (codec_ids::CODEC_ID_AAC, "aac"),
        (codec_ids::CODEC_ID_ALAC, "alac"),
        (codec_ids::CODEC_ID_MP3, "mp3"),
        (codec_ids::CODEC_ID_VORBIS, "vorbis"),
        (codec_ids::CODEC_ID_FLAC, "flac"),
        (codec_ids::CODEC_ID_SPEEX, "speex"),
        (codec_ids::CODEC_ID_AC3, "ac-3"),
        (codec_ids::CODEC_ID_EAC3, "e-ac-3"),
        (codec_ids::CODEC_ID_WAVPACK, "wavpack"),
        (codec_ids::CODEC_ID_MONKEYS_AUDIO, "monkey's audio"),
        (codec_ids::CODEC_ID_WMA, "wma"),
        (codec_ids::CODEC_ID_DCA, "dts"),
    ];
    match known.iter().find(|(candidate, _)| *candidate == codec) {
        Some((_, name)) => (*name).to_string(),
        None => match symphonia::default::get_codecs().get_audio_decoder(codec) {
            Some(registered) => registered.codec.info.short_name.to_string(),
            None => format!("codec {codec}"),
        },
    }
}
