//! Opus through libopus, the reference decoder itself (symphonia reads Ogg
//! and Matroska Opus streams but has no Opus decoder).
//!
//! libopus comes from `opusic-sys` built with its bundled source (1.6.1) and
//! linked statically, so a melfuse binary needs no libopus at run time.
//! Measured on the fixtures of `tests/tests/decode_parity.rs`: the mono mix
//! of this decoder equals Debian's libopus 1.3.1 (`ffmpeg -c:a libopus`,
//! `opusdec --float`) within 7.5e-8, i.e. float rounding.
//!
//! Opus always decodes at 48 kHz (the input rate in `OpusHead` is only
//! informational, as in `opusdec`); the pre-skip of `OpusHead` is returned
//! to the caller, which trims it (see `gapless`). Channel mapping families 0
//! (mono/stereo) and 1 (Vorbis order, up to 8 channels) go through libopus's
//! multistream decoder, which handles both; the output gain of `OpusHead`
//! is applied by libopus (`OPUS_SET_GAIN`), as `opusdec` does.

use std::os::raw::c_int;
use std::ptr::NonNull;

use crate::error::AudioError;

/// Rate libopus decodes at (the only one melfuse asks for: no resampling
/// inside the decoder).
pub const OPUS_RATE: u32 = 48_000;

/// Frames per channel of the longest Opus packet (120 ms at 48 kHz).
const MAX_PACKET_FRAMES: usize = 5_760;

/// What `OpusHead` (RFC 7845 §5.1) says about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channels.
    pub channels: usize,
    /// Frames at 48 kHz to discard from the start of the decoded stream.
    pub pre_skip: u16,
    /// Output gain in Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family (0 or 1 are decoded).
    pub mapping_family: u8,
    /// Number of Opus streams in each packet.
    pub streams: u8,
    /// Number of those that are coupled (stereo).
    pub coupled_streams: u8,
    /// Output channel → decoded channel.
    pub mapping: Vec<u8>,
}

impl OpusHead {
    /// Parses the identification header (Ogg's first packet, Matroska's
    /// `CodecPrivate`).
    pub fn parse(bytes: &[u8]) -> Result<Self, AudioError> {
        let bad = |detail: &str| AudioError::Corrupt { detail: format!("OpusHead: {detail}") };
        if bytes.len() < 19 || &bytes[..8] != b"OpusHead" {
            return Err(AudioError::UnsupportedCodec {
                detail: "opus: no OpusHead identification header (Opus in MP4 is not supported)".into(),
            });
        }
        if bytes[8] >> 4 != 0 {
            return Err(bad(&format!("unsupported major version {}", bytes[8])));
        }
        let channels = usize::from(bytes[9]);
        if channels == 0 {
            return Err(bad("zero channels"));
        }
        let pre_skip = u16::from_le_bytes([bytes[10], bytes[11]]);
        let output_gain = i16::from_le_bytes([bytes[16], bytes[17]]);
        let mapping_family = bytes[18];
        let (streams, coupled_streams, mapping) = match mapping_family {
            0 if channels <= 2 => (1, (channels == 2) as u8, (0..channels as u8).collect()),
            0 => return Err(bad(&format!("mapping family 0 with {channels} channels"))),
            _ => {
                let table = bytes.get(21..21 + channels).ok_or_else(|| bad("channel mapping table cut short"))?;
                (bytes[19], bytes[20], table.to_vec())
            }
        };
        if !matches!(mapping_family, 0 | 1) {
            return Err(AudioError::UnsupportedCodec {
                detail: format!("opus: channel mapping family {mapping_family} (only 0 and 1 are decoded)"),
            });
        }
        if streams == 0 || coupled_streams > streams {
            return Err(bad(&format!("{streams} streams with {coupled_streams} coupled")));
        }
        Ok(Self { channels, pre_skip, output_gain, mapping_family, streams, coupled_streams, mapping })
    }
}

/// A libopus multistream decoder and its output buffer.
pub struct OpusDecoder {
    state: NonNull<opusic_sys::OpusMSDecoder>,
    channels: usize,
    pcm: Vec<f32>,
}

// SAFETY: the decoder state is owned by this struct alone and libopus keeps
// no thread-local or global mutable state per decoder.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    /// Creates a decoder for the stream `head` describes, at 48 kHz.
    pub fn new(head: &OpusHead) -> Result<Self, AudioError> {
        let channels = c_int::try_from(head.channels).unwrap_or(c_int::MAX);
        let mut error: c_int = 0;
        // SAFETY: `mapping` holds `channels` entries, as libopus requires.
        let state = unsafe {
            opusic_sys::opus_multistream_decoder_create(
                OPUS_RATE as i32,
                channels,
                c_int::from(head.streams),
                c_int::from(head.coupled_streams),
                head.mapping.as_ptr(),
                &mut error,
            )
        };
        let state = match NonNull::new(state) {
            Some(state) if error == opusic_sys::OPUS_OK => state,
            _ => {
                return Err(AudioError::Corrupt {
                    detail: format!("cannot start the opus decoder: {}", opus_error(error)),
                })
            }
        };
        let decoder = Self { state, channels: head.channels, pcm: vec![0.0; MAX_PACKET_FRAMES * head.channels] };
        if head.output_gain != 0 {
            // SAFETY: a valid decoder and the documented variadic argument (opus_int32).
            let status = unsafe {
                opusic_sys::opus_multistream_decoder_ctl(
                    decoder.state.as_ptr(),
                    opusic_sys::OPUS_SET_GAIN_REQUEST,
                    i32::from(head.output_gain),
                )
            };
            if status != opusic_sys::OPUS_OK {
                return Err(AudioError::Corrupt { detail: format!("opus output gain: {}", opus_error(status)) });
            }
        }
        Ok(decoder)
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Decodes one packet into interleaved samples at 48 kHz.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], AudioError> {
        let length = i32::try_from(packet.len())
            .map_err(|_| AudioError::Corrupt { detail: "an opus packet larger than 2 GiB".into() })?;
        // SAFETY: `pcm` has room for MAX_PACKET_FRAMES frames of `channels` samples.
        let frames = unsafe {
            opusic_sys::opus_multistream_decode_float(
                self.state.as_ptr(),
                packet.as_ptr(),
                length,
                self.pcm.as_mut_ptr(),
                MAX_PACKET_FRAMES as c_int,
                0,
            )
        };
        if frames < 0 {
            return Err(AudioError::Corrupt { detail: format!("opus packet: {}", opus_error(frames)) });
        }
        Ok(&self.pcm[..frames as usize * self.channels])
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_multistream_decoder_create, destroyed once.
        unsafe { opusic_sys::opus_multistream_decoder_destroy(self.state.as_ptr()) }
    }
}

/// libopus's text for an error code.
fn opus_error(code: c_int) -> String {
    // SAFETY: opus_strerror returns a pointer to a static C string.
    let text = unsafe { std::ffi::CStr::from_ptr(opusic_sys::opus_strerror(code)) };
    format!("{} ({code})", text.to_string_lossy())
}

/// The version string of the linked libopus (for logs and reports).
pub fn libopus_version() -> String {
    // SAFETY: a pointer to a static C string.
    unsafe { std::ffi::CStr::from_ptr(opusic_sys::opus_get_version_string()) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, family: u8) -> Vec<u8> {
        let mut bytes = b"OpusHead".to_vec();
        bytes.extend_from_slice(&[1, channels, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, family]);
        if family == 1 {
            bytes.extend_from_slice(&[channels - 1, 1]);
            bytes.extend(0..channels);
        }
        bytes
    }

    #[test]
    fn parses_stereo_and_surround_heads() {
        let stereo = OpusHead::parse(&head(2, 0)).unwrap();
        assert_eq!((stereo.channels, stereo.pre_skip, stereo.streams, stereo.coupled_streams), (2, 312, 1, 1));
        let six = OpusHead::parse(&head(6, 1)).unwrap();
        assert_eq!((six.channels, six.streams, six.coupled_streams, six.mapping.len()), (6, 5, 1, 6));
        assert!(OpusDecoder::new(&six).is_ok());
    }

    #[test]
    fn rejects_what_it_cannot_decode() {
        assert!(matches!(OpusHead::parse(b"OpusHea"), Err(AudioError::UnsupportedCodec { .. })));
        assert!(matches!(OpusHead::parse(&head(3, 0)), Err(AudioError::Corrupt { .. })));
        let mut ambisonic = head(4, 1);
        ambisonic[18] = 2;
        assert!(matches!(OpusHead::parse(&ambisonic), Err(AudioError::UnsupportedCodec { .. })));
    }

    #[test]
    fn a_garbage_packet_is_an_error_not_a_crash() {
        let mut decoder = OpusDecoder::new(&OpusHead::parse(&head(2, 0)).unwrap()).unwrap();
        // Code 3 (several frames) announcing zero frames is invalid (RFC 6716 §3.2.5).
        assert!(matches!(decoder.decode(&[0x03, 0x00]), Err(AudioError::Corrupt { .. })));
        assert!(!libopus_version().is_empty());
    }
}
