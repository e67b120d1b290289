//! Music theory for the synthetic corpus: pitch, scales, diatonic chords and
//! tempo timelines. Kept free of DSP so the composers in `genres` read as
//! scores, and so every musical constant has one named home.

use std::ops::RangeInclusive;

use rand::RngExt;

/// Semitones in an octave.
pub const SEMITONES_PER_OCTAVE: i32 = 12;
/// MIDI note number of concert A (A4).
const MIDI_A4: f32 = 69.0;
/// Frequency of concert A in Hz.
const HZ_A4: f32 = 440.0;

/// Major pentatonic scale (gong–shang–jue–zhi–yu), the backbone of Chinese
/// folk melody: no semitones, so every walk on it sounds "pentatonic".
pub const MAJOR_PENTATONIC: [i32; 5] = [0, 2, 4, 7, 9];
/// Ionian (major) scale.
pub const MAJOR_SCALE: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
/// Aeolian (natural minor) scale.
pub const NATURAL_MINOR_SCALE: [i32; 7] = [0, 2, 3, 5, 7, 8, 10];
/// Semitones from a major key's tonic down to its relative minor's tonic
/// (C major → A minor share all notes).
pub const RELATIVE_MINOR_OFFSET: i32 = 9;

/// Common major-key progressions as 0-based scale degrees:
/// I–vi–IV–V, I–V–vi–IV, I–IV–V–I, I–IV–vi–V.
pub const MAJOR_PROGRESSIONS: [[usize; 4]; 4] = [[0, 5, 3, 4], [0, 4, 5, 3], [0, 3, 4, 0], [0, 3, 5, 4]];
/// Common minor-key progressions as 0-based scale degrees:
/// i–VI–III–VII, i–iv–VI–V(natural v), i–VII–VI–VII, i–VI–iv–VII.
pub const MINOR_PROGRESSIONS: [[usize; 4]; 4] = [[0, 5, 2, 6], [0, 3, 5, 4], [0, 6, 5, 6], [0, 5, 3, 6]];

/// Beats per bar: every genre here is in common time.
pub const BEATS_PER_BAR: f64 = 4.0;
/// Seconds in a minute, for BPM conversions.
const SECONDS_PER_MINUTE: f64 = 60.0;

/// Note names for reporting keys in `corpus.json`.
const PITCH_CLASS_NAMES: [&str; 12] = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];

/// Frequency in Hz of a (possibly fractional) MIDI note number, equal
/// temperament at A4 = 440 Hz.
pub fn midi_to_hz(midi: f32) -> f32 {
    HZ_A4 * ((midi - MIDI_A4) / SEMITONES_PER_OCTAVE as f32).exp2()
}

/// Name of a pitch class (0 = C) for human-readable reports.
pub fn pitch_class_name(pitch_class: i32) -> &'static str {
    PITCH_CLASS_NAMES[pitch_class.rem_euclid(SEMITONES_PER_OCTAVE) as usize]
}

/// Major or minor tonality of a clip, recorded in the corpus report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Ionian / major pentatonic.
    Major,
    /// Aeolian (natural minor).
    Minor,
}

impl Mode {
    /// The seven-note scale of this mode, in semitones above the tonic.
    pub fn scale(self) -> &'static [i32; 7] {
        match self {
            Mode::Major => &MAJOR_SCALE,
            Mode::Minor => &NATURAL_MINOR_SCALE,
        }
    }

    /// The stock progressions idiomatic for this mode.
    pub fn progressions(self) -> &'static [[usize; 4]; 4] {
        match self {
            Mode::Major => &MAJOR_PROGRESSIONS,
            Mode::Minor => &MINOR_PROGRESSIONS,
        }
    }
}

/// Every MIDI note of `scale` (rooted at pitch class `tonic`) inside `range`,
/// ascending. Melodies random-walk over indices into this list.
pub fn scale_notes(tonic: i32, scale: &[i32], range: RangeInclusive<i32>) -> Vec<i32> {
    range.filter(|&midi| scale.contains(&(midi - tonic).rem_euclid(SEMITONES_PER_OCTAVE))).collect()
}

/// Diatonic triad on 0-based `degree` of `mode` in key `tonic`, as pitch
/// classes relative to C (root, third, fifth), built by stacking scale thirds.
pub fn diatonic_triad(tonic: i32, mode: Mode, degree: usize) -> [i32; 3] {
    let scale = mode.scale();
    let step = |offset: usize| {
        let index = degree + offset;
        let octave = (index / scale.len()) as i32;
        tonic + scale[index % scale.len()] + octave * SEMITONES_PER_OCTAVE
    };
    [step(0), step(2), step(4)]
}

/// Lowest MIDI note with pitch class `pitch_class` that is ≥ `floor`.
pub fn place_at_or_above(pitch_class: i32, floor: i32) -> i32 {
    floor + (pitch_class - floor).rem_euclid(SEMITONES_PER_OCTAVE)
}

/// Seconds per beat at `bpm`.
pub fn beat_seconds(bpm: f64) -> f64 {
    SECONDS_PER_MINUTE / bpm
}

/// Maps musical time (beats) to clock time (seconds). Steady for dance
/// music; for `cn` the beat lengths drift to imitate rubato playing.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Start time in seconds of beat `i`; one more entry than beats so the
    /// last beat has an end.
    beat_starts: Vec<f64>,
}

/// Maximum relative slow-down/speed-up of a rubato beat.
const RUBATO_MAX_DEVIATION: f64 = 0.12;
/// How strongly each beat's tempo follows the previous one (0 = white
/// jitter, →1 = slow phrasing drift).
const RUBATO_SMOOTHING: f64 = 0.8;

impl Timeline {
    /// A metronomic timeline at `bpm` covering at least `seconds`.
    pub fn steady(bpm: f64, seconds: f64) -> Self {
        let beat = beat_seconds(bpm);
        let beats = (seconds / beat).ceil() as usize + 1;
        Self { beat_starts: (0..=beats).map(|i| i as f64 * beat).collect() }
    }

    /// A rubato timeline around `bpm`: each beat's length deviates by a
    /// smoothed random amount of up to ±`RUBATO_MAX_DEVIATION`.
    pub fn rubato<R: RngExt + ?Sized>(bpm: f64, seconds: f64, rng: &mut R) -> Self {
        let beat = beat_seconds(bpm);
        let mut starts = vec![0.0];
        let mut drift = 0.0;
        let mut now = 0.0;
        while now < seconds + beat {
            let jitter: f64 = rng.random_range(-1.0..1.0);
            drift = RUBATO_SMOOTHING * drift + (1.0 - RUBATO_SMOOTHING) * jitter;
            let factor = 1.0 + RUBATO_MAX_DEVIATION * drift.clamp(-1.0, 1.0);
            now += beat * factor;
            starts.push(now);
        }
        Self { beat_starts: starts }
    }

    /// Clock time in seconds of (fractional) beat position `beat`; linear
    /// within a beat, extrapolated past the end.
    pub fn seconds_at(&self, beat: f64) -> f64 {
        let last = self.beat_starts.len() - 1;
        let whole = (beat.max(0.0).floor() as usize).min(last.saturating_sub(1));
        let start = self.beat_starts[whole];
        let length = self.beat_starts[whole + 1] - start;
        start + (beat - whole as f64) * length
    }

    /// Number of whole beats the timeline covers.
    pub fn beats(&self) -> usize {
        self.beat_starts.len() - 1
    }
}

/// Draws a tempo from an inclusive BPM range.
pub fn draw_tempo<R: RngExt + ?Sized>(rng: &mut R, range: RangeInclusive<f64>) -> f64 {
    rng.random_range(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a4_is_440_and_octaves_double() {
        assert!((midi_to_hz(69.0) - 440.0).abs() < 1e-3);
        assert!((midi_to_hz(81.0) - 880.0).abs() < 1e-2);
    }

    #[test]
    fn pentatonic_notes_stay_in_scale() {
        let notes = scale_notes(2, &MAJOR_PENTATONIC, 60..=84);
        assert!(notes.iter().all(|n| MAJOR_PENTATONIC.contains(&((n - 2).rem_euclid(12)))));
        assert_eq!(notes.len(), 10); // two octaves of five notes (62..84 inclusive)
    }

    #[test]
    fn triads_are_diatonic() {
        // vi in C major is A minor: A C E.
        assert_eq!(diatonic_triad(0, Mode::Major, 5), [9, 12, 16]);
        // VII in A minor is G major: G B D.
        assert_eq!(diatonic_triad(9, Mode::Minor, 6), [19, 23, 26]);
    }

    #[test]
    fn timelines_are_monotonic() {
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let t = Timeline::rubato(72.0, 10.0, &mut rng);
        assert!(t.seconds_at(t.beats() as f64) >= 10.0);
        for b in 0..t.beats() {
            assert!(t.seconds_at(b as f64 + 1.0) > t.seconds_at(b as f64));
        }
        let s = Timeline::steady(120.0, 4.0);
        assert!((s.seconds_at(2.5) - 1.25).abs() < 1e-12);
    }
}
