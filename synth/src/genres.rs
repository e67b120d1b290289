//! The composers: one function per genre that turns a clip RNG into a mono
//! mix. Shared "parts" (the `cn` melody, the `edm` backing) are separate
//! functions so `cn_edm` is literally the `cn` melody over the `edm` beat.

use std::ops::RangeInclusive;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::effects::{sidechain_gain, Reverb, ReverbParams, SidechainParams};
use super::music::{
    beat_seconds, diatonic_triad, draw_tempo, midi_to_hz, place_at_or_above, scale_notes, Mode, Timeline,
    BEATS_PER_BAR, MAJOR_PENTATONIC, RELATIVE_MINOR_OFFSET, SEMITONES_PER_OCTAVE,
};
use super::voices::{self, Bowed, Brass, Flute, Noise, Pluck, Supersaw};
use super::Genre;

/// What a composer produced: the dry-to-wet mixed samples (not yet
/// normalised) and the musical facts recorded in `corpus.json`.
#[derive(Debug, Clone)]
pub struct Composition {
    /// Mono samples at the requested rate, exactly the requested length.
    pub samples: Vec<f32>,
    /// Tempo in beats per minute (the centre tempo for rubato `cn`).
    pub tempo_bpm: f64,
    /// Tonic pitch class (0 = C) of the clip's key.
    pub tonic: i32,
    /// Major or minor.
    pub mode: Mode,
}

/// Rendering target shared by all parts of one clip.
#[derive(Debug, Clone, Copy)]
pub struct RenderTarget {
    /// Samples per second.
    pub sample_rate: f32,
    /// Clip length in samples.
    pub frames: usize,
}

impl RenderTarget {
    fn seconds(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate)
    }

    fn sample_at(&self, seconds: f64) -> usize {
        (seconds * f64::from(self.sample_rate)).round() as usize
    }
}

/// Renders one clip of `genre`. Every random choice comes from `rng`, so
/// the result is a pure function of the RNG's seed and the target.
pub fn compose(genre: Genre, rng: &mut ChaCha8Rng, target: RenderTarget) -> Composition {
    match genre {
        Genre::Cn => compose_cn(rng, target),
        Genre::Edm => compose_edm(rng, target),
        Genre::Orchestral => compose_orchestral(rng, target),
        Genre::CnEdm => compose_cn_edm(rng, target),
    }
}

fn draw_pitch_class<R: RngExt + ?Sized>(rng: &mut R) -> i32 {
    rng.random_range(0..SEMITONES_PER_OCTAVE)
}

fn noise_from(rng: &mut ChaCha8Rng) -> Noise {
    Noise::new(rng.random::<u32>())
}

// ---------------------------------------------------------------- cn

/// Free, rubato-ish tempo of solo Chinese folk playing.
const CN_TEMPO_BPM: RangeInclusive<f64> = 60.0..=90.0;
/// Melodic register (MIDI) of the pentatonic walk.
const CN_MELODY_RANGE: RangeInclusive<i32> = 62..=86;
/// Flute notes below this MIDI note are played an octave up (dizi range).
const CN_FLUTE_LOWEST: i32 = 74;
/// Register of the occasional low open-string pluck.
const CN_BASS_FLOOR: i32 = 43;
/// Chance that a phrase is played on the plucked string (else the flute).
const CN_PLUCK_PHRASE_PROB: f64 = 0.55;
/// Notes per phrase.
const CN_PHRASE_NOTES: RangeInclusive<usize> = 3..=7;
/// Note lengths in beats a phrase draws from (long notes keep it sparse).
const CN_NOTE_BEATS: [f64; 6] = [0.5, 1.0, 1.0, 1.5, 2.0, 3.0];
/// Melodic steps in scale degrees: mostly stepwise, some small leaps.
const CN_STEPS: [i32; 8] = [-2, -1, -1, 0, 1, 1, 2, 3];
/// Chance a note is replaced by a rest.
const CN_REST_PROB: f64 = 0.15;
/// Silence between phrases, in beats.
const CN_PHRASE_GAP_BEATS: RangeInclusive<f64> = 0.5..=2.0;
/// Chance a pluck is ornamented with a grace note from the scale step above.
const CN_GRACE_PROB: f64 = 0.18;
/// How long before the main note the grace note sounds.
const CN_GRACE_LEAD_S: f64 = 0.07;
/// Chance a long pluck becomes a tremolo (lunzhi) roll.
const CN_TREMOLO_PROB: f64 = 0.15;
/// Interval between tremolo plucks, seconds.
const CN_TREMOLO_INTERVAL_S: f64 = 0.065;
/// Chance a phrase opens with a low tonic/fifth pluck.
const CN_BASS_PROB: f64 = 0.6;
/// String ring time range, seconds.
const CN_PLUCK_DECAY_S: RangeInclusive<f32> = 1.5..=3.0;
/// Ring time of a single tremolo stroke.
const CN_TREMOLO_DECAY_S: f32 = 0.5;
/// Peak levels of the cn voices.
const CN_PLUCK_LEVEL: RangeInclusive<f32> = 0.55..=0.9;
const CN_FLUTE_LEVEL: RangeInclusive<f32> = 0.35..=0.55;
const CN_BASS_LEVEL: f32 = 0.45;
/// Portion of a flute note's slot that sounds (small breath gap).
const CN_FLUTE_LEGATO: f64 = 0.92;
/// Light room reverb for the cn voices.
const CN_REVERB: ReverbParams = ReverbParams { room_scale: 1.0, feedback: 0.78, damping: 0.35, wet: 0.22 };

/// Which instrument plays a `cn` phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CnVoice {
    Pluck,
    Flute,
}

/// Adds a `cn` melody (plucked string and bamboo flute phrases on a random
/// walk over the major pentatonic of `tonic`) into `out`, timed by `timeline`.
fn cn_melody(out: &mut [f32], rng: &mut ChaCha8Rng, target: RenderTarget, tonic: i32, timeline: &Timeline) {
    let sr = target.sample_rate;
    let mut noise = noise_from(rng);
    let notes = scale_notes(tonic, &MAJOR_PENTATONIC, CN_MELODY_RANGE);
    let top = notes.len() as i32 - 1;
    let mut index = rng.random_range(top / 3..=2 * top / 3);
    let mut beat = 0.0f64;
    let mut first_note = true;
    while timeline.seconds_at(beat) < target.seconds() {
        let voice = if rng.random_bool(CN_PLUCK_PHRASE_PROB) { CnVoice::Pluck } else { CnVoice::Flute };
        if rng.random_bool(CN_BASS_PROB) {
            let fifth = if rng.random_bool(0.5) { 7 } else { 0 };
            let midi = place_at_or_above(tonic + fifth, CN_BASS_FLOOR);
            let note = Pluck {
                freq: midi_to_hz(midi as f32),
                velocity: CN_BASS_LEVEL,
                decay_s: *CN_PLUCK_DECAY_S.end(),
                brightness: 0.2,
            };
            voices::pluck(out, sr, target.sample_at(timeline.seconds_at(beat)), note, &mut noise);
        }
        for _ in 0..rng.random_range(CN_PHRASE_NOTES) {
            let length = CN_NOTE_BEATS[rng.random_range(0..CN_NOTE_BEATS.len())];
            let start_s = timeline.seconds_at(beat);
            let end_s = timeline.seconds_at(beat + length);
            beat += length;
            if !first_note && rng.random_bool(CN_REST_PROB) {
                continue;
            }
            first_note = false;
            let midi = notes[index as usize];
            match voice {
                CnVoice::Pluck => {
                    let upper = notes[(index + 1).min(top) as usize];
                    cn_pluck(out, rng, &mut noise, target, midi, upper, start_s, end_s);
                }
                CnVoice::Flute => {
                    let midi = if midi < CN_FLUTE_LOWEST { midi + SEMITONES_PER_OCTAVE } else { midi };
                    let note = Flute {
                        freq: midi_to_hz(midi as f32),
                        duration_s: ((end_s - start_s) * CN_FLUTE_LEGATO) as f32,
                        velocity: rng.random_range(CN_FLUTE_LEVEL),
                        vibrato_phase: rng.random(),
                    };
                    voices::flute(out, sr, target.sample_at(start_s), note, &mut noise);
                }
            }
            let step = CN_STEPS[rng.random_range(0..CN_STEPS.len())];
            index = (index + step).clamp(0, top);
        }
        beat += rng.random_range(CN_PHRASE_GAP_BEATS);
    }
}

/// One plucked melody note, sometimes with a grace note or as a tremolo.
#[allow(clippy::too_many_arguments)]
fn cn_pluck(
    out: &mut [f32],
    rng: &mut ChaCha8Rng,
    noise: &mut Noise,
    target: RenderTarget,
    midi: i32,
    upper: i32,
    start_s: f64,
    end_s: f64,
) {
    let sr = target.sample_rate;
    let velocity = rng.random_range(CN_PLUCK_LEVEL);
    let decay_s = rng.random_range(CN_PLUCK_DECAY_S);
    let brightness = rng.random_range(0.4..=0.9);
    let freq = midi_to_hz(midi as f32);
    if end_s - start_s > 2.0 * CN_TREMOLO_INTERVAL_S * 4.0 && rng.random_bool(CN_TREMOLO_PROB) {
        let mut t = start_s;
        while t < end_s {
            let stroke = Pluck {
                freq,
                velocity: velocity * rng.random_range(0.45..=0.65),
                decay_s: CN_TREMOLO_DECAY_S,
                brightness,
            };
            voices::pluck(out, sr, target.sample_at(t), stroke, noise);
            t += CN_TREMOLO_INTERVAL_S;
        }
        return;
    }
    let mut onset = start_s;
    if rng.random_bool(CN_GRACE_PROB) {
        let grace =
            Pluck { freq: midi_to_hz(upper as f32), velocity: 0.5 * velocity, decay_s: CN_TREMOLO_DECAY_S, brightness };
        voices::pluck(out, sr, target.sample_at(start_s), grace, noise);
        onset += CN_GRACE_LEAD_S;
    }
    voices::pluck(out, sr, target.sample_at(onset), Pluck { freq, velocity, decay_s, brightness }, noise);
}

fn compose_cn(rng: &mut ChaCha8Rng, target: RenderTarget) -> Composition {
    let tempo_bpm = draw_tempo(rng, CN_TEMPO_BPM);
    let tonic = draw_pitch_class(rng);
    let timeline = Timeline::rubato(tempo_bpm, target.seconds(), rng);
    let mut samples = vec![0.0; target.frames];
    cn_melody(&mut samples, rng, target, tonic, &timeline);
    Reverb::new(CN_REVERB, target.sample_rate).apply(&mut samples);
    Composition { samples, tempo_bpm, tonic, mode: Mode::Major }
}

// ---------------------------------------------------------------- edm

/// House/techno tempo range.
const EDM_TEMPO_BPM: RangeInclusive<f64> = 124.0..=132.0;
/// Stab rhythms, in beats within a bar (off-beat house stab and two
/// syncopated variants).
const EDM_STAB_PATTERNS: [&[f64]; 3] = [&[0.5, 1.5, 2.5, 3.5], &[0.0, 0.75, 1.5, 2.5, 3.25], &[0.5, 1.0, 2.75, 3.5]];
/// Stab length in beats.
const EDM_STAB_BEATS: f64 = 0.25;
/// Lowest MIDI note of the chord voicing.
const EDM_CHORD_FLOOR: i32 = 57;
/// Lowest MIDI note of the sub-bass root.
const EDM_SUB_FLOOR: i32 = 31;
/// Closed-hat positions in a beat (the off-beat 8th belongs to the open hat).
const EDM_CLOSED_HAT_STEPS: [f64; 3] = [0.0, 0.25, 0.75];
/// Decay time constants of closed and open hats.
const EDM_CLOSED_HAT_DECAY_S: f32 = 0.012;
const EDM_OPEN_HAT_DECAY_S: f32 = 0.06;
/// Beats of the bar (0-based) that carry the clap: 2 and 4.
const EDM_CLAP_BEATS: [usize; 2] = [1, 3];
/// Bus levels.
const EDM_KICK_LEVEL: f32 = 1.0;
const EDM_CLAP_LEVEL: f32 = 0.5;
const EDM_CLOSED_HAT_LEVEL: f32 = 0.18;
const EDM_OPEN_HAT_LEVEL: f32 = 0.22;
const EDM_PAD_LEVEL: f32 = 0.3;
const EDM_STAB_LEVEL: f32 = 0.45;
const EDM_SUB_LEVEL: f32 = 0.4;
/// Pad and stab low-pass cutoffs in Hz.
const EDM_PAD_CUTOFF_HZ: f32 = 1_800.0;
const EDM_STAB_CUTOFF_HZ: f32 = 4_500.0;
/// Kick-triggered ducking of pads and bass.
const EDM_SIDECHAIN: SidechainParams = SidechainParams { depth: 0.8, attack_s: 0.004, release_s: 0.09 };
/// Short plate-ish reverb on the music bus.
const EDM_REVERB: ReverbParams = ReverbParams { room_scale: 0.7, feedback: 0.72, damping: 0.4, wet: 0.15 };

/// Options that distinguish plain `edm` from the backing under `cn_edm`.
#[derive(Debug, Clone, Copy)]
struct EdmBacking {
    bpm: f64,
    /// Tonic of the minor key.
    tonic: i32,
    /// Whether to play chord stabs (left out under a melody).
    stabs: bool,
    /// Pad level (lower under a melody).
    pad_level: f32,
}

/// Adds the EDM backing into `out`: four-on-the-floor kick, claps on 2 and
/// 4, 16th closed and off-beat open hats, supersaw pads (and stabs) on a
/// minor progression, sub-bass on the root, pads and bass pumped by the kick.
fn edm_backing(out: &mut [f32], rng: &mut ChaCha8Rng, target: RenderTarget, backing: EdmBacking) {
    let sr = target.sample_rate;
    let mut noise = noise_from(rng);
    let beat_s = beat_seconds(backing.bpm);
    let at = |beat: f64| target.sample_at(beat * beat_s);
    let beats = (target.seconds() / beat_s).ceil() as usize;
    let mut drums = vec![0.0; target.frames];
    let mut music = vec![0.0; target.frames];
    // The sub-bass stays out of the reverb: a reverberated sub smears the
    // low end and blurs the kick.
    let mut sub = vec![0.0; target.frames];

    let mut kicks = Vec::with_capacity(beats);
    for beat in 0..beats {
        let b = beat as f64;
        kicks.push(at(b));
        voices::kick(&mut drums, sr, at(b), EDM_KICK_LEVEL, &mut noise);
        if EDM_CLAP_BEATS.contains(&(beat % BEATS_PER_BAR as usize)) {
            voices::clap(&mut drums, sr, at(b), EDM_CLAP_LEVEL, &mut noise);
        }
        for (k, step) in EDM_CLOSED_HAT_STEPS.iter().enumerate() {
            let accent = if k == 0 { 1.0 } else { 0.6 };
            voices::hat(
                &mut drums,
                sr,
                at(b + step),
                EDM_CLOSED_HAT_DECAY_S,
                EDM_CLOSED_HAT_LEVEL * accent,
                &mut noise,
            );
        }
        voices::hat(&mut drums, sr, at(b + 0.5), EDM_OPEN_HAT_DECAY_S, EDM_OPEN_HAT_LEVEL, &mut noise);
    }

    let progression = Mode::Minor.progressions()[rng.random_range(0..Mode::Minor.progressions().len())];
    let stab_pattern = EDM_STAB_PATTERNS[rng.random_range(0..EDM_STAB_PATTERNS.len())];
    let bars = beats.div_ceil(BEATS_PER_BAR as usize);
    for bar in 0..bars {
        let triad = diatonic_triad(backing.tonic, Mode::Minor, progression[bar % progression.len()]);
        let mut voicing: Vec<f32> =
            triad.iter().map(|&pc| midi_to_hz(place_at_or_above(pc, EDM_CHORD_FLOOR) as f32)).collect();
        voicing.push(2.0 * midi_to_hz(place_at_or_above(triad[0], EDM_CHORD_FLOOR) as f32));
        let bar_beat = bar as f64 * BEATS_PER_BAR;
        let bar_s = (BEATS_PER_BAR * beat_s) as f32;
        let pad = Supersaw {
            freqs: &voicing,
            duration_s: bar_s,
            velocity: backing.pad_level,
            cutoff_hz: EDM_PAD_CUTOFF_HZ,
            attack_s: 0.03,
            release_s: 0.15,
        };
        voices::supersaw(&mut music, sr, at(bar_beat), pad, &mut noise);
        if backing.stabs {
            for &position in stab_pattern {
                let stab = Supersaw {
                    freqs: &voicing,
                    duration_s: (EDM_STAB_BEATS * beat_s) as f32,
                    velocity: EDM_STAB_LEVEL,
                    cutoff_hz: EDM_STAB_CUTOFF_HZ,
                    attack_s: 0.002,
                    release_s: 0.06,
                };
                voices::supersaw(&mut music, sr, at(bar_beat + position), stab, &mut noise);
            }
        }
        let root = midi_to_hz(place_at_or_above(triad[0], EDM_SUB_FLOOR) as f32);
        // One sub note per beat, restarted under each kick (where the pump
        // hides the restart), so kick and sub meet in the same phase every
        // beat and the low end punches identically.
        for beat in 0..BEATS_PER_BAR as usize {
            let onset = bar_beat + beat as f64;
            voices::sub_bass(&mut sub, sr, at(onset), root, beat_s as f32, EDM_SUB_LEVEL);
        }
    }

    let pump = sidechain_gain(target.frames, &kicks, EDM_SIDECHAIN, sr);
    music.iter_mut().zip(&pump).for_each(|(m, g)| *m *= g);
    Reverb::new(EDM_REVERB, sr).apply(&mut music);
    for (((o, d), m), (b, g)) in out.iter_mut().zip(&drums).zip(&music).zip(sub.iter().zip(&pump)) {
        *o += d + m + b * g;
    }
}

fn compose_edm(rng: &mut ChaCha8Rng, target: RenderTarget) -> Composition {
    let tempo_bpm = draw_tempo(rng, EDM_TEMPO_BPM);
    let tonic = draw_pitch_class(rng);
    let mut samples = vec![0.0; target.frames];
    let backing = EdmBacking { bpm: tempo_bpm, tonic, stabs: true, pad_level: EDM_PAD_LEVEL };
    edm_backing(&mut samples, rng, target, backing);
    Composition { samples, tempo_bpm, tonic, mode: Mode::Minor }
}

// ---------------------------------------------------------------- cn_edm

/// Pad level under the melody in `cn_edm` (the melody needs the space).
const CN_EDM_PAD_LEVEL: f32 = 0.18;
/// Melody level over the beat.
const CN_EDM_MELODY_LEVEL: f32 = 0.9;
/// The melody moves at half the dance tempo, so a melodic beat is a bar's half.
const CN_EDM_MELODY_TEMPO_DIVISOR: f64 = 2.0;

fn compose_cn_edm(rng: &mut ChaCha8Rng, target: RenderTarget) -> Composition {
    let tempo_bpm = draw_tempo(rng, EDM_TEMPO_BPM);
    // The melody's major pentatonic and the backing's relative minor share
    // all their notes, so the fusion stays consonant.
    let tonic = draw_pitch_class(rng);
    let minor_tonic = (tonic + RELATIVE_MINOR_OFFSET).rem_euclid(SEMITONES_PER_OCTAVE);
    let mut samples = vec![0.0; target.frames];
    let backing = EdmBacking { bpm: tempo_bpm, tonic: minor_tonic, stabs: false, pad_level: CN_EDM_PAD_LEVEL };
    edm_backing(&mut samples, rng, target, backing);

    let mut melody = vec![0.0; target.frames];
    let timeline = Timeline::steady(tempo_bpm / CN_EDM_MELODY_TEMPO_DIVISOR, target.seconds());
    cn_melody(&mut melody, rng, target, tonic, &timeline);
    Reverb::new(CN_REVERB, target.sample_rate).apply(&mut melody);
    samples.iter_mut().zip(&melody).for_each(|(s, m)| *s += CN_EDM_MELODY_LEVEL * m);
    Composition { samples, tempo_bpm, tonic, mode: Mode::Major }
}

// ---------------------------------------------------------------- orchestral

/// Slow orchestral tempo range.
const ORCH_TEMPO_BPM: RangeInclusive<f64> = 60.0..=80.0;
/// Beats per chord of the progression.
const ORCH_CHORD_BEATS: f64 = 4.0;
/// Seconds each chord overlaps the next (legato bowing).
const ORCH_LEGATO_S: f64 = 0.6;
/// Lowest MIDI notes of the bass line, the inner triad and the brass.
const ORCH_BASS_FLOOR: i32 = 36;
const ORCH_TRIAD_FLOOR: i32 = 55;
const ORCH_BRASS_FLOOR: i32 = 48;
/// Lowest MIDI note of a timpani (kettles cover roughly F2–F3).
const ORCH_TIMPANI_FLOOR: i32 = 41;
/// Bow attack range in seconds.
const ORCH_ATTACK_S: RangeInclusive<f32> = 0.45..=0.9;
/// String release.
const ORCH_RELEASE_S: f32 = 1.0;
/// Section levels.
const ORCH_BASS_LEVEL: f32 = 0.4;
const ORCH_STRING_LEVEL: f32 = 0.28;
const ORCH_BRASS_LEVEL: f32 = 0.32;
const ORCH_TIMPANI_LEVEL: f32 = 0.7;
/// Chance a chord gets a brass swell.
const ORCH_BRASS_PROB: f64 = 0.45;
/// Chance a chord opens with a timpani hit.
const ORCH_TIMPANI_PROB: f64 = 0.6;
/// Chance the last chord of a progression ends with a timpani roll.
const ORCH_ROLL_PROB: f64 = 0.35;
/// Roll strokes per beat.
const ORCH_ROLL_STROKES_PER_BEAT: usize = 6;
/// Concert-hall reverb.
const ORCH_REVERB: ReverbParams = ReverbParams { room_scale: 1.6, feedback: 0.86, damping: 0.45, wet: 0.35 };

fn compose_orchestral(rng: &mut ChaCha8Rng, target: RenderTarget) -> Composition {
    let sr = target.sample_rate;
    let tempo_bpm = draw_tempo(rng, ORCH_TEMPO_BPM);
    let tonic = draw_pitch_class(rng);
    let mode = if rng.random_bool(0.5) { Mode::Major } else { Mode::Minor };
    let progression = mode.progressions()[rng.random_range(0..mode.progressions().len())];
    let mut noise = noise_from(rng);
    let beat_s = beat_seconds(tempo_bpm);
    let chord_s = ORCH_CHORD_BEATS * beat_s;
    let mut samples = vec![0.0; target.frames];

    let mut chord = 0usize;
    while chord as f64 * chord_s < target.seconds() {
        let start_s = chord as f64 * chord_s;
        let start = target.sample_at(start_s);
        let triad = diatonic_triad(tonic, mode, progression[chord % progression.len()]);
        let attack_s = rng.random_range(ORCH_ATTACK_S);
        let duration_s = (chord_s + ORCH_LEGATO_S) as f32;
        let mut section = vec![(place_at_or_above(triad[0], ORCH_BASS_FLOOR), ORCH_BASS_LEVEL)];
        section.extend(triad.iter().map(|&pc| (place_at_or_above(pc, ORCH_TRIAD_FLOOR), ORCH_STRING_LEVEL)));
        for (midi, velocity) in section {
            let note = Bowed {
                freq: midi_to_hz(midi as f32),
                duration_s,
                velocity,
                attack_s,
                release_s: ORCH_RELEASE_S,
                vibrato_phase: rng.random(),
            };
            voices::strings(&mut samples, sr, start, note, &mut noise);
        }
        if rng.random_bool(ORCH_BRASS_PROB) {
            for pc in [triad[0], triad[2]] {
                let note = Brass {
                    freq: midi_to_hz(place_at_or_above(pc, ORCH_BRASS_FLOOR) as f32),
                    duration_s: chord_s as f32,
                    velocity: ORCH_BRASS_LEVEL,
                };
                voices::brass(&mut samples, sr, start, note, &mut noise);
            }
        }
        let kettle = midi_to_hz(place_at_or_above(triad[0], ORCH_TIMPANI_FLOOR) as f32);
        if rng.random_bool(ORCH_TIMPANI_PROB) {
            voices::timpani(&mut samples, sr, start, kettle, ORCH_TIMPANI_LEVEL, &mut noise);
        }
        if chord % progression.len() == progression.len() - 1 && rng.random_bool(ORCH_ROLL_PROB) {
            // Crescendo roll over the chord's last beat, leading into the next.
            let roll_start = start_s + (ORCH_CHORD_BEATS - 1.0) * beat_s;
            for stroke in 0..ORCH_ROLL_STROKES_PER_BEAT {
                let t = roll_start + stroke as f64 * beat_s / ORCH_ROLL_STROKES_PER_BEAT as f64;
                let swell = 0.3 + 0.5 * stroke as f32 / ORCH_ROLL_STROKES_PER_BEAT as f32;
                voices::timpani(&mut samples, sr, target.sample_at(t), kettle, ORCH_TIMPANI_LEVEL * swell, &mut noise);
            }
        }
        chord += 1;
    }
    Reverb::new(ORCH_REVERB, sr).apply(&mut samples);
    Composition { samples, tempo_bpm, tonic, mode }
}
