//! Decoding the committed audio fixtures (see `fixtures/README.md`): every
//! supported format decodes to the right rate and length as mono, and every
//! broken file gives its own typed error quickly, never a panic.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use melfuse_audio::decode::{decode_bytes, decode_file, DecodedAudio};
use melfuse_audio::load::load_mono;
use melfuse_audio::AudioError;

/// Upper bound on decoding one small fixture, broken or not, in a debug build.
const QUICK: Duration = Duration::from_secs(2);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// Decodes a fixture and checks that it took no longer than [`QUICK`].
fn decode_quickly(name: &str) -> Result<DecodedAudio, AudioError> {
    let start = Instant::now();
    let result = decode_file(&fixture(name));
    assert!(start.elapsed() < QUICK, "{name} took {:?}", start.elapsed());
    result
}

struct Good {
    name: &'static str,
    rate: u32,
    channels: usize,
    frames: usize,
    lossy: bool,
}

const GOOD: [Good; 9] = [
    Good { name: "tone_44k_stereo_s16.wav", rate: 44_100, channels: 2, frames: 132_300, lossy: false },
    Good { name: "tone_22k_mono_u8.wav", rate: 22_050, channels: 1, frames: 66_150, lossy: false },
    Good { name: "tone_48k_s24.wav", rate: 48_000, channels: 1, frames: 24_000, lossy: false },
    Good { name: "tone_32k_s32.wav", rate: 32_000, channels: 1, frames: 16_000, lossy: false },
    Good { name: "tone_16k_f32.wav", rate: 16_000, channels: 1, frames: 8_000, lossy: false },
    Good { name: "tone_44k.flac", rate: 44_100, channels: 2, frames: 132_300, lossy: false },
    Good { name: "tone_44k.ogg", rate: 44_100, channels: 2, frames: 132_300, lossy: true },
    Good { name: "tone_44k.mp3", rate: 44_100, channels: 2, frames: 132_300, lossy: true },
    Good { name: "tone_48k_6ch.wav", rate: 48_000, channels: 6, frames: 12_000, lossy: false },
];

#[test]
fn every_good_fixture_decodes_to_its_rate_and_length_as_mono() {
    for good in &GOOD {
        let decoded = decode_quickly(good.name).unwrap_or_else(|e| panic!("{}: {e}", good.name));
        assert_eq!(decoded.sample_rate, good.rate, "{}", good.name);
        assert_eq!(decoded.channels, good.channels, "{}", good.name);
        if good.lossy {
            let off = (decoded.samples.len() as f64 - good.frames as f64).abs() / good.frames as f64;
            assert!(off <= 0.01, "{}: {} samples, expected about {}", good.name, decoded.samples.len(), good.frames);
        } else {
            assert_eq!(decoded.samples.len(), good.frames, "{}", good.name);
        }
        // The source is normalised to a 0.5 peak per channel; the mono mix is no louder.
        let peak = decoded.samples.iter().fold(0.0f32, |p, x| p.max(x.abs()));
        assert!(peak > 0.1 && peak < 0.6, "{}: peak {peak}", good.name);
    }
}

#[test]
fn flac_equals_the_16_bit_wav_it_was_encoded_from() {
    let wav = decode_quickly("tone_44k_stereo_s16.wav").unwrap();
    let flac = decode_quickly("tone_44k.flac").unwrap();
    assert_eq!(flac, wav);
}

#[test]
fn lossy_decodes_are_time_aligned_with_the_source() {
    // With symphonia's gapless mode the encoder delay is trimmed, so the lossy
    // decodes correlate with the source sample by sample, without any shift.
    let wav = decode_quickly("tone_44k_stereo_s16.wav").unwrap().samples;
    for name in ["tone_44k.mp3", "tone_44k.ogg"] {
        let lossy = decode_quickly(name).unwrap().samples;
        let n = wav.len().min(lossy.len());
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>();
        let correlation =
            dot(&wav[..n], &lossy[..n]) / (dot(&wav[..n], &wav[..n]) * dot(&lossy[..n], &lossy[..n])).sqrt();
        assert!(correlation > 0.95, "{name}: correlation {correlation}");
    }
}

#[test]
fn load_mono_resamples_every_good_fixture_to_44k1() {
    for good in &GOOD {
        let samples = load_mono(&fixture(good.name), 44_100).unwrap_or_else(|e| panic!("{}: {e}", good.name));
        let decoded_len = decode_file(&fixture(good.name)).unwrap().samples.len();
        let expected = (decoded_len as f64 * 44_100.0 / f64::from(good.rate)).round() as usize;
        assert_eq!(samples.len(), expected, "{}", good.name);
    }
}

#[test]
fn truncated_mp3_is_truncated() {
    match decode_quickly("broken/truncated.mp3") {
        Err(AudioError::Truncated { decoded, expected }) => {
            assert_eq!(expected, 132_300);
            assert!(decoded > 0 && decoded < expected * 6 / 10, "decoded {decoded}");
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn truncated_flac_is_truncated() {
    match decode_quickly("broken/truncated.flac") {
        Err(AudioError::Truncated { decoded, expected }) => {
            assert_eq!(expected, 132_300);
            assert!(decoded < expected / 2, "decoded {decoded}");
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn zero_byte_file_is_empty() {
    assert!(matches!(decode_quickly("broken/zero_bytes.wav"), Err(AudioError::Empty)));
}

#[test]
fn header_without_data_is_truncated_to_nothing() {
    match decode_quickly("broken/header_only.wav") {
        Err(AudioError::Truncated { decoded: 0, expected: 44_100 }) => {}
        other => panic!("expected Truncated {{ decoded: 0, expected: 44100 }}, got {other:?}"),
    }
}

#[test]
fn random_bytes_named_flac_are_rejected() {
    match decode_quickly("broken/random_bytes.flac") {
        Err(AudioError::UnsupportedFormat { .. } | AudioError::Corrupt { .. }) => {}
        other => panic!("expected UnsupportedFormat or Corrupt, got {other:?}"),
    }
}

#[test]
fn silence_decodes_but_does_not_load() {
    let decoded = decode_quickly("broken/silence.wav").unwrap();
    assert_eq!(decoded.samples.len(), 16_000);
    match load_mono(&fixture("broken/silence.wav"), 44_100) {
        Err(AudioError::Silent { peak_dbfs }) => assert_eq!(peak_dbfs, f32::NEG_INFINITY),
        other => panic!("expected Silent, got {other:?}"),
    }
}

#[test]
fn opus_decodes_at_48k_with_its_pre_skip_trimmed() {
    // opusenc resampled the 3 s 44.1 kHz source to 48 kHz: 144 000 frames once
    // the pre-skip and the end padding are trimmed.
    let decoded = decode_quickly("tone_44k.opus").unwrap();
    assert_eq!((decoded.sample_rate, decoded.channels, decoded.samples.len()), (48_000, 2, 144_000));
    let peak = decoded.samples.iter().fold(0.0f32, |p, x| p.max(x.abs()));
    assert!(peak > 0.1 && peak < 0.6, "peak {peak}");
}

#[test]
fn unknown_codec_in_a_known_container_is_unsupported_codec() {
    // A WAV whose format tag (0x0055, MPEG layer 3 in RIFF) no decoder here handles.
    let mut bytes = std::fs::read(fixture("tone_16k_f32.wav")).unwrap();
    bytes[20..22].copy_from_slice(&0x0055u16.to_le_bytes());
    match decode_bytes(bytes, Some("wav")) {
        Err(
            AudioError::UnsupportedCodec { .. } | AudioError::UnsupportedFormat { .. } | AudioError::Corrupt { .. },
        ) => {}
        other => panic!("expected an unsupported-codec error, got {other:?}"),
    }
}

#[test]
fn absurd_sample_rate_is_rejected() {
    assert!(matches!(
        decode_quickly("broken/absurd_rate.wav"),
        Err(AudioError::UnsupportedSampleRate { rate: 1_000_000 })
    ));
}

#[test]
fn missing_file_is_an_io_error() {
    match decode_file(&fixture("no_such_file.wav")) {
        Err(AudioError::Io { path, .. }) => assert!(path.ends_with("no_such_file.wav")),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn flac_damaged_in_the_middle_is_corrupt_not_truncated() {
    // The FLAC reader resynchronises past damaged frames; the gap in the
    // frame timestamps tells damage apart from a stream that simply ends.
    let mut bytes = std::fs::read(fixture("tone_44k.flac")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 1000].fill(0x55);
    match decode_bytes(bytes, Some("flac")) {
        Err(AudioError::Corrupt { detail }) => assert!(detail.contains("lost"), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// A small deterministic generator (xorshift64*), so the damage is reproducible.
struct Damage(u64);

impl Damage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn damaged_and_cut_files_never_panic_or_hang() {
    let mut damage = Damage(0x9E37_79B9_7F4A_7C15);
    for name in
        ["tone_44k.flac", "tone_44k.ogg", "tone_44k.mp3", "tone_44k.opus", "tone_48k_s24.wav", "tone_16k_f32.wav"]
    {
        let original = std::fs::read(fixture(name)).unwrap();
        let extension = name.rsplit('.').next();
        for round in 0..12 {
            let mut bytes = original.clone();
            if round % 3 == 0 {
                // Cut at a random point, header included.
                bytes.truncate((damage.next() % original.len() as u64) as usize);
            } else {
                // Overwrite a run of bytes anywhere, the header included.
                let start = (damage.next() % original.len() as u64) as usize;
                let run = 1 + (damage.next() % 2000) as usize;
                for byte in bytes.iter_mut().skip(start).take(run) {
                    *byte = damage.next() as u8;
                }
            }
            let start = Instant::now();
            let result = decode_bytes(bytes, extension);
            assert!(start.elapsed() < QUICK, "{name} round {round} took {:?}", start.elapsed());
            if let Ok(decoded) = result {
                assert!(!decoded.samples.is_empty(), "{name} round {round}: Ok but empty");
            }
        }
    }
}
