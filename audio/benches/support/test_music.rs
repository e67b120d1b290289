//! Deterministic "musical" test audio for the signal-chain benchmarks: a
//! chord progression and a melody of harmonic tones with plucked envelopes,
//! hi-hat-like noise bursts and a low noise floor, in stereo.
//!
//! Benchmarks need input whose spectrum looks like music (partials, onsets,
//! broadband noise) so that nothing is timed on a degenerate signal (silence
//! or one sine), and it must be the same on every run and machine without
//! committing minutes of audio. Shared by `benches/signal.rs` and
//! `examples/signal_timing.rs` (`synth` subcommand) through `#[path]`, so the
//! Criterion benchmark and the librosa comparison time the same content.

use std::f64::consts::TAU;
use std::path::Path;

/// Seconds per chord of the progression.
const CHORD_SECONDS: f64 = 2.0;
/// Seconds per melody note (and between noise bursts, halved).
const NOTE_SECONDS: f64 = 0.25;
/// MIDI notes of the chords (A minor – F – C – G, in the octave below A4).
const CHORDS: [[f64; 3]; 4] = [[57.0, 60.0, 64.0], [53.0, 57.0, 60.0], [48.0, 52.0, 55.0], [55.0, 59.0, 62.0]];
/// A-minor pentatonic degrees (semitones above A4) the melody draws from.
const MELODY_SCALE: [f64; 6] = [0.0, 3.0, 5.0, 7.0, 10.0, 12.0];
/// Harmonics per tone; harmonic `h` has amplitude `1/h`.
const HARMONICS: usize = 5;

/// Frequency in Hz of MIDI note `note` (A4 = 69 = 440 Hz).
fn midi_hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// xorshift64* — a tiny, seedable, dependency-free noise source.
struct Noise(u64);

impl Noise {
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        bits as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Sum of [`HARMONICS`] harmonics of `hz` at time `t`, band-limited below
/// Nyquist (`max_hz`) so that no partial aliases.
fn harmonic_tone(hz: f64, t: f64, max_hz: f64) -> f64 {
    (1..=HARMONICS).take_while(|&h| hz * h as f64 <= max_hz).map(|h| (TAU * hz * h as f64 * t).sin() / h as f64).sum()
}

/// `seconds` of test music at `sample_rate` Hz as interleaved stereo
/// `[left, right]` frames in [-1, 1]; the same arguments always give the
/// same samples.
pub fn stereo_music(sample_rate: u32, seconds: f64) -> Vec<[f32; 2]> {
    let rate = f64::from(sample_rate);
    let max_hz = 0.45 * rate;
    let frames = (seconds * rate).round() as usize;
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut melody_rng = Noise(0xD1B5_4A32_D192_ED03);
    let mut melody_hz = midi_hz(69.0);
    let mut out = Vec::with_capacity(frames);
    for i in 0..frames {
        let t = i as f64 / rate;
        let chord = CHORDS[(t / CHORD_SECONDS) as usize % CHORDS.len()];
        let chord_t = t % CHORD_SECONDS;
        let note_t = t % NOTE_SECONDS;
        if i == 0 || (note_t * rate) < 1.0 {
            // A new melody note: a pentatonic degree chosen by the seeded RNG.
            let degree = ((melody_rng.next() + 1.0) * 0.5 * MELODY_SCALE.len() as f64) as usize;
            melody_hz = midi_hz(69.0 + MELODY_SCALE[degree.min(MELODY_SCALE.len() - 1)]);
        }
        let chord_env = (-1.5 * chord_t).exp() * (chord_t * 200.0).min(1.0);
        let chords: f64 = chord.iter().map(|&n| harmonic_tone(midi_hz(n), chord_t, max_hz)).sum::<f64>() * chord_env;
        let melody = harmonic_tone(melody_hz, note_t, max_hz) * (-8.0 * note_t).exp() * (note_t * 400.0).min(1.0);
        let hat_t = t % (NOTE_SECONDS / 2.0);
        let hat = noise.next() * (-60.0 * hat_t).exp();
        let floor = noise.next() * 0.01;
        let left = 0.12 * chords + 0.25 * melody + 0.08 * hat + floor;
        let right = 0.16 * chords + 0.15 * melody + 0.08 * hat - floor;
        out.push([left.clamp(-1.0, 1.0) as f32, right.clamp(-1.0, 1.0) as f32]);
    }
    out
}

/// Mono mean of [`stereo_music`] (what the decoder's downmix yields).
#[allow(dead_code)] // used by the benchmark, not by the example
pub fn mono_music(sample_rate: u32, seconds: f64) -> Vec<f32> {
    stereo_music(sample_rate, seconds).iter().map(|[l, r]| (l + r) * 0.5).collect()
}

/// Writes [`stereo_music`] as a 16-bit PCM stereo WAV file.
pub fn write_music_wav(path: &Path, sample_rate: u32, seconds: f64) -> Result<(), hound::Error> {
    let spec =
        hound::WavSpec { channels: 2, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let music = stereo_music(sample_rate, seconds);
    let mut writer = hound::WavWriter::create(path, spec)?;
    {
        let mut samples = writer.get_i16_writer(music.len() as u32 * 2);
        for [left, right] in music {
            samples.write_sample((left * 32_767.0).round() as i16);
            samples.write_sample((right * 32_767.0).round() as i16);
        }
        samples.flush()?;
    }
    writer.finalize()
}
