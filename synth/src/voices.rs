//! Instrument voices. Each function renders one note (or hit) and *adds* it
//! into a mono `f32` buffer at a sample offset, clipped to the buffer's end.
//! Voices are pure functions of their parameters plus a caller-owned
//! [`Noise`] source, so a clip's RNG fully determines its audio.

use std::f32::consts::TAU;
use std::ops::Range;

use super::effects::{Biquad, BiquadKind, OnePoleLowPass};

/// Fast deterministic white noise (xorshift32), seeded from the clip RNG.
/// Much cheaper per sample than drawing from ChaCha, and just as repeatable.
#[derive(Debug, Clone)]
pub struct Noise {
    state: u32,
}

impl Noise {
    /// A noise source; a zero seed (xorshift's fixed point) is remapped.
    pub fn new(seed: u32) -> Self {
        Self { state: if seed == 0 { 0x9E37_79B9 } else { seed } }
    }

    /// Next sample, uniform in [-1, 1).
    pub fn sample(&mut self) -> f32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        (x >> 8) as f32 * (2.0 / (1u32 << 24) as f32) - 1.0
    }

    /// Next value uniform in [0, 1), used for oscillator start phases.
    pub fn unit(&mut self) -> f32 {
        0.5 * (self.sample() + 1.0)
    }
}

/// Indices of `out` that a note of `len` samples starting at `start` covers.
fn span(out: &[f32], start: usize, len: usize) -> Range<usize> {
    let begin = start.min(out.len());
    begin..start.saturating_add(len).min(out.len())
}

fn seconds_to_samples(seconds: f32, sample_rate: f32) -> usize {
    (seconds.max(0.0) * sample_rate).round() as usize
}

/// Linear attack, hold until `hold_s`, linear release over `release_s`:
/// the amplitude shape of every sustained voice.
fn attack_release(t: f32, attack_s: f32, hold_s: f32, release_s: f32) -> f32 {
    if t < attack_s {
        t / attack_s
    } else if t < hold_s {
        1.0
    } else {
        (1.0 - (t - hold_s) / release_s).max(0.0)
    }
}

/// Naive saw with PolyBLEP corrections: band-limited enough for pads and
/// brass at a fraction of the cost of additive synthesis.
#[derive(Debug, Clone)]
struct Saw {
    phase: f32,
}

impl Saw {
    fn next(&mut self, increment: f32) -> f32 {
        let t = self.phase;
        let mut value = 2.0 * t - 1.0;
        if t < increment {
            let x = t / increment;
            value -= x + x - x * x - 1.0;
        } else if t > 1.0 - increment {
            let x = (t - 1.0) / increment;
            value -= x * x + x + x + 1.0;
        }
        self.phase += increment;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
        }
        value
    }
}

// ---------------------------------------------------------------- plucked

/// Parameters of a Karplus–Strong plucked string (guzheng / pipa colour).
#[derive(Debug, Clone, Copy)]
pub struct Pluck {
    /// Fundamental in Hz.
    pub freq: f32,
    /// Peak amplitude.
    pub velocity: f32,
    /// Time for the string to decay by 60 dB, in seconds.
    pub decay_s: f32,
    /// 0 = soft flesh pluck, 1 = bright nail/plectrum.
    pub brightness: f32,
}

/// Lowest cutoff of the excitation filter, as a multiple of the fundamental.
const PLUCK_EXCITATION_MIN_HARMONIC: f32 = 3.0;
/// Extra excitation bandwidth at full brightness, in harmonics.
const PLUCK_EXCITATION_HARMONIC_SPAN: f32 = 25.0;
/// Ring rendered for this many T60s (1.5 → −90 dB), so the cut-off is below
/// any spectrogram floor instead of a visible edge at −60 dB.
const PLUCK_RING_T60S: f32 = 1.5;
/// Seconds of fade at the end of a truncated ring, to avoid a click.
const PLUCK_TAIL_FADE_S: f32 = 0.02;

/// Renders a plucked string: a noise burst circulating in a delay line
/// with an averaging low-pass (Karplus–Strong), fine-tuned by an all-pass.
pub fn pluck(out: &mut [f32], sample_rate: f32, start: usize, note: Pluck, noise: &mut Noise) {
    // The two-point average adds half a sample of delay to the loop.
    let period = (sample_rate / note.freq - 0.5).max(2.0);
    let whole = period.floor() as usize;
    let frac = period - whole as f32;
    let allpass = (1.0 - frac) / (1.0 + frac);
    let loop_gain = 10f32.powf(-3.0 / (note.decay_s * note.freq));

    let cutoff = note.freq * (PLUCK_EXCITATION_MIN_HARMONIC + PLUCK_EXCITATION_HARMONIC_SPAN * note.brightness);
    let mut shaper = OnePoleLowPass::new(cutoff, sample_rate);
    let mut line: Vec<f32> = (0..whole).map(|_| shaper.process(noise.sample())).collect();
    let mean = line.iter().sum::<f32>() / whole as f32;
    let excitation_peak = line.iter().fold(0.0f32, |m, &x| m.max((x - mean).abs())).max(1e-6);
    line.iter_mut().for_each(|x| *x = (*x - mean) / excitation_peak);

    let range = span(out, start, seconds_to_samples(note.decay_s * PLUCK_RING_T60S, sample_rate));
    let fade_from = range.len().saturating_sub(seconds_to_samples(PLUCK_TAIL_FADE_S, sample_rate));
    let fade_len = (range.len() - fade_from).max(1) as f32;
    let (mut index, mut previous, mut ap_in, mut ap_out) = (0usize, 0.0f32, 0.0f32, 0.0f32);
    for (i, sample) in out[range].iter_mut().enumerate() {
        let current = line[index];
        let fade = if i >= fade_from { 1.0 - (i - fade_from) as f32 / fade_len } else { 1.0 };
        *sample += current * note.velocity * fade;
        let averaged = 0.5 * (current + previous);
        previous = current;
        let tuned = allpass * averaged + ap_in - allpass * ap_out;
        ap_in = averaged;
        ap_out = tuned;
        line[index] = tuned * loop_gain;
        index += 1;
        if index == whole {
            index = 0;
        }
    }
}

// ---------------------------------------------------------------- flute

/// Parameters of a bamboo-flute (dizi-like) note.
#[derive(Debug, Clone, Copy)]
pub struct Flute {
    /// Fundamental in Hz.
    pub freq: f32,
    /// Sounding length before the release, in seconds.
    pub duration_s: f32,
    /// Peak amplitude.
    pub velocity: f32,
    /// Start phase of the vibrato LFO (0–1), so notes don't wobble in unison.
    pub vibrato_phase: f32,
}

/// Relative amplitudes of harmonics 1–4: a breathy, mostly-fundamental tone.
const FLUTE_HARMONICS: [f32; 4] = [1.0, 0.32, 0.14, 0.06];
/// Slow, blown attack.
const FLUTE_ATTACK_S: f32 = 0.12;
/// Release after the note ends.
const FLUTE_RELEASE_S: f32 = 0.15;
/// Vibrato rate in Hz.
const FLUTE_VIBRATO_HZ: f32 = 5.3;
/// Vibrato depth as a fraction of the frequency (≈ ±10 cents).
const FLUTE_VIBRATO_DEPTH: f32 = 0.006;
/// Seconds before vibrato is fully in (players add it once the note speaks).
const FLUTE_VIBRATO_ONSET_S: f32 = 0.35;
/// Breath-noise level relative to the tone while sustaining.
const FLUTE_BREATH_LEVEL: f32 = 0.06;
/// Extra breath ("chiff") during the attack.
const FLUTE_CHIFF_LEVEL: f32 = 0.25;
/// Breath noise band centre as a multiple of the fundamental.
const FLUTE_BREATH_HARMONIC: f32 = 2.5;

/// Renders a flute note: sine plus a few harmonics, band-passed breath
/// noise, delayed vibrato and a slow attack.
pub fn flute(out: &mut [f32], sample_rate: f32, start: usize, note: Flute, noise: &mut Noise) {
    let total = note.duration_s + FLUTE_RELEASE_S;
    let range = span(out, start, seconds_to_samples(total, sample_rate));
    let norm: f32 = FLUTE_HARMONICS.iter().sum();
    let mut breath = Biquad::new(BiquadKind::BandPass, note.freq * FLUTE_BREATH_HARMONIC, 1.2, sample_rate);
    let dt = 1.0 / sample_rate;
    let mut phase = 0.0f32;
    let mut lfo = note.vibrato_phase;
    for (i, sample) in out[range].iter_mut().enumerate() {
        let t = i as f32 * dt;
        let env = attack_release(t, FLUTE_ATTACK_S, note.duration_s, FLUTE_RELEASE_S);
        let vib_amount = (t / FLUTE_VIBRATO_ONSET_S).min(1.0) * FLUTE_VIBRATO_DEPTH;
        let vib = (TAU * lfo).sin();
        lfo += FLUTE_VIBRATO_HZ * dt;
        if lfo >= 1.0 {
            lfo -= 1.0;
        }
        phase += note.freq * (1.0 + vib_amount * vib) * dt;
        if phase >= 1.0 {
            phase -= 1.0;
        }
        // Harmonics 2–4 from one sin/cos via multiple-angle identities.
        let (s1, c1) = (TAU * phase).sin_cos();
        let s2 = 2.0 * s1 * c1;
        let c2 = 1.0 - 2.0 * s1 * s1;
        let s3 = s1 * (3.0 - 4.0 * s1 * s1);
        let s4 = 2.0 * s2 * c2;
        let tone =
            (FLUTE_HARMONICS[0] * s1 + FLUTE_HARMONICS[1] * s2 + FLUTE_HARMONICS[2] * s3 + FLUTE_HARMONICS[3] * s4)
                / norm;
        let chiff = FLUTE_CHIFF_LEVEL * (1.0 - t / FLUTE_ATTACK_S).max(0.0);
        let air = breath.process(noise.sample()) * (FLUTE_BREATH_LEVEL + chiff);
        *sample += note.velocity * env * (tone * (1.0 + 0.1 * vib_amount / FLUTE_VIBRATO_DEPTH * vib) + air);
    }
}

// ---------------------------------------------------------------- drums

/// Kick sweep start frequency in Hz.
const KICK_START_HZ: f32 = 160.0;
/// Kick sweep end (body) frequency in Hz.
const KICK_END_HZ: f32 = 48.0;
/// Time constant of the pitch sweep.
const KICK_SWEEP_TAU_S: f32 = 0.035;
/// Time constant of the body decay.
const KICK_DECAY_TAU_S: f32 = 0.12;
/// Rendered length of a kick.
const KICK_LENGTH_S: f32 = 0.45;
/// Level of the beater click.
const KICK_CLICK_LEVEL: f32 = 0.35;
/// Time constant of the click.
const KICK_CLICK_TAU_S: f32 = 0.0015;

/// Renders a kick drum: an exponentially pitch-swept sine plus a noise click.
pub fn kick(out: &mut [f32], sample_rate: f32, start: usize, velocity: f32, noise: &mut Noise) {
    let range = span(out, start, seconds_to_samples(KICK_LENGTH_S, sample_rate));
    let dt = 1.0 / sample_rate;
    let mut phase = 0.0f32;
    for (i, sample) in out[range].iter_mut().enumerate() {
        let t = i as f32 * dt;
        let freq = KICK_END_HZ + (KICK_START_HZ - KICK_END_HZ) * (-t / KICK_SWEEP_TAU_S).exp();
        phase += freq * dt;
        if phase >= 1.0 {
            phase -= 1.0;
        }
        let body = (TAU * phase).sin() * (-t / KICK_DECAY_TAU_S).exp();
        let click = noise.sample() * KICK_CLICK_LEVEL * (-t / KICK_CLICK_TAU_S).exp();
        *sample += velocity * (body + click);
    }
}

/// Hi-hat high-pass corner in Hz.
const HAT_CUTOFF_HZ: f32 = 7_000.0;
/// Number of decay time constants rendered for a hit.
const HIT_LENGTH_TAUS: f32 = 6.0;

/// Renders a hi-hat: high-passed white noise with an exponential decay
/// (short `decay_s` = closed, long = open).
pub fn hat(out: &mut [f32], sample_rate: f32, start: usize, decay_s: f32, velocity: f32, noise: &mut Noise) {
    let range = span(out, start, seconds_to_samples(decay_s * HIT_LENGTH_TAUS, sample_rate));
    let mut filter = Biquad::new(BiquadKind::HighPass, HAT_CUTOFF_HZ, 0.8, sample_rate);
    let decay = (-1.0 / (decay_s * sample_rate)).exp();
    let mut env = velocity;
    for sample in &mut out[range] {
        *sample += filter.process(noise.sample()) * env;
        env *= decay;
    }
}

/// Clap band-pass centre in Hz.
const CLAP_CENTRE_HZ: f32 = 1_300.0;
/// Onsets of the clap's hand bursts, seconds after the hit.
const CLAP_BURSTS_S: [f32; 3] = [0.0, 0.011, 0.023];
/// Time constant of each burst.
const CLAP_BURST_TAU_S: f32 = 0.004;
/// Time constant of the diffuse tail after the last burst.
const CLAP_TAIL_TAU_S: f32 = 0.09;

/// Renders a hand clap: band-passed noise through three quick bursts and a
/// reverberant tail.
pub fn clap(out: &mut [f32], sample_rate: f32, start: usize, velocity: f32, noise: &mut Noise) {
    let last_burst = CLAP_BURSTS_S[CLAP_BURSTS_S.len() - 1];
    let length = last_burst + CLAP_TAIL_TAU_S * HIT_LENGTH_TAUS;
    let range = span(out, start, seconds_to_samples(length, sample_rate));
    let mut filter = Biquad::new(BiquadKind::BandPass, CLAP_CENTRE_HZ, 1.1, sample_rate);
    let dt = 1.0 / sample_rate;
    for (i, sample) in out[range].iter_mut().enumerate() {
        let t = i as f32 * dt;
        let bursts = CLAP_BURSTS_S
            .iter()
            .filter(|&&onset| t >= onset)
            .map(|&onset| (-(t - onset) / CLAP_BURST_TAU_S).exp())
            .fold(0.0f32, f32::max);
        let tail = if t >= last_burst { 0.5 * (-(t - last_burst) / CLAP_TAIL_TAU_S).exp() } else { 0.0 };
        *sample += velocity * filter.process(noise.sample()) * bursts.max(tail);
    }
}

// ---------------------------------------------------------------- synths

/// Parameters of a detuned-saw chord (pad or stab).
#[derive(Debug, Clone, Copy)]
pub struct Supersaw<'a> {
    /// Chord tones in Hz.
    pub freqs: &'a [f32],
    /// Sounding length before the release.
    pub duration_s: f32,
    /// Peak amplitude of the whole chord.
    pub velocity: f32,
    /// Low-pass cutoff in Hz.
    pub cutoff_hz: f32,
    /// Attack time in seconds.
    pub attack_s: f32,
    /// Release time in seconds.
    pub release_s: f32,
}

/// Detuned saws per chord tone.
const SUPERSAW_VOICES: usize = 5;
/// Total detune spread across the voices, in cents.
const SUPERSAW_SPREAD_CENTS: f32 = 28.0;

fn cents_to_ratio(cents: f32) -> f32 {
    (cents / 1200.0).exp2()
}

/// Renders a supersaw chord: several detuned PolyBLEP saws per note, summed
/// and low-passed, with a linear attack/release.
pub fn supersaw(out: &mut [f32], sample_rate: f32, start: usize, chord: Supersaw<'_>, noise: &mut Noise) {
    let range = span(out, start, seconds_to_samples(chord.duration_s + chord.release_s, sample_rate));
    let mut oscillators: Vec<(Saw, f32)> = Vec::with_capacity(chord.freqs.len() * SUPERSAW_VOICES);
    for &freq in chord.freqs {
        for voice in 0..SUPERSAW_VOICES {
            let position = voice as f32 / (SUPERSAW_VOICES - 1) as f32 - 0.5;
            let detuned = freq * cents_to_ratio(position * SUPERSAW_SPREAD_CENTS);
            oscillators.push((Saw { phase: noise.unit() }, detuned / sample_rate));
        }
    }
    let gain = chord.velocity / oscillators.len().max(1) as f32;
    let mut filter = Biquad::new(BiquadKind::LowPass, chord.cutoff_hz, 0.9, sample_rate);
    let dt = 1.0 / sample_rate;
    for (i, sample) in out[range].iter_mut().enumerate() {
        let t = i as f32 * dt;
        let env = attack_release(t, chord.attack_s, chord.duration_s, chord.release_s);
        let raw: f32 = oscillators.iter_mut().map(|(saw, inc)| saw.next(*inc)).sum();
        *sample += filter.process(raw * gain) * env;
    }
}

/// Level of the sub-bass second harmonic (audible on small speakers).
const SUB_SECOND_HARMONIC: f32 = 0.15;
/// Sub-bass attack.
const SUB_ATTACK_S: f32 = 0.005;
/// Sub-bass release.
const SUB_RELEASE_S: f32 = 0.04;

/// Renders a sub-bass note: a sine with a touch of second harmonic.
pub fn sub_bass(out: &mut [f32], sample_rate: f32, start: usize, freq: f32, duration_s: f32, velocity: f32) {
    let range = span(out, start, seconds_to_samples(duration_s + SUB_RELEASE_S, sample_rate));
    let dt = 1.0 / sample_rate;
    for (i, sample) in out[range].iter_mut().enumerate() {
        let t = i as f32 * dt;
        let (s, c) = (TAU * freq * t).sin_cos();
        let env = attack_release(t, SUB_ATTACK_S, duration_s, SUB_RELEASE_S);
        *sample += velocity * env * (s + SUB_SECOND_HARMONIC * 2.0 * s * c);
    }
}

/// Parameters of a bowed-string ensemble note (one chord tone of a pad).
#[derive(Debug, Clone, Copy)]
pub struct Bowed {
    /// Fundamental in Hz.
    pub freq: f32,
    /// Sounding length before the release.
    pub duration_s: f32,
    /// Peak amplitude.
    pub velocity: f32,
    /// Bow attack, seconds.
    pub attack_s: f32,
    /// Release, seconds.
    pub release_s: f32,
    /// Vibrato LFO start phase (0–1).
    pub vibrato_phase: f32,
}

/// Ensemble players per note, each a slightly detuned saw.
const STRING_SECTION_DETUNE_CENTS: [f32; 3] = [-4.0, 0.0, 3.5];
/// Ensemble vibrato rate in Hz.
const STRING_VIBRATO_HZ: f32 = 5.0;
/// Vibrato depth as a fraction of frequency.
const STRING_VIBRATO_DEPTH: f32 = 0.004;
/// Strings' tone-control low-pass, as a multiple of the fundamental…
const STRING_CUTOFF_HARMONIC: f32 = 8.0;
/// …bounded to this range in Hz so low notes stay warm and high ones soft.
const STRING_CUTOFF_RANGE_HZ: (f32, f32) = (900.0, 3_500.0);

/// Renders a bowed-string ensemble note: detuned saws with shared vibrato
/// through a low-pass, slow attack and release.
pub fn strings(out: &mut [f32], sample_rate: f32, start: usize, note: Bowed, noise: &mut Noise) {
    let range = span(out, start, seconds_to_samples(note.duration_s + note.release_s, sample_rate));
    let mut players: Vec<(Saw, f32)> = STRING_SECTION_DETUNE_CENTS
        .iter()
        .map(|&c| (Saw { phase: noise.unit() }, note.freq * cents_to_ratio(c) / sample_rate))
        .collect();
    let cutoff = (note.freq * STRING_CUTOFF_HARMONIC).clamp(STRING_CUTOFF_RANGE_HZ.0, STRING_CUTOFF_RANGE_HZ.1);
    let mut filter = Biquad::new(BiquadKind::LowPass, cutoff, 0.707, sample_rate);
    let gain = note.velocity / players.len() as f32;
    let dt = 1.0 / sample_rate;
    let mut lfo = note.vibrato_phase;
    for (i, sample) in out[range].iter_mut().enumerate() {
        let t = i as f32 * dt;
        let vib = 1.0 + STRING_VIBRATO_DEPTH * (TAU * lfo).sin();
        lfo += STRING_VIBRATO_HZ * dt;
        if lfo >= 1.0 {
            lfo -= 1.0;
        }
        let raw: f32 = players.iter_mut().map(|(saw, inc)| saw.next(*inc * vib)).sum();
        let env = attack_release(t, note.attack_s, note.duration_s, note.release_s);
        *sample += filter.process(raw * gain) * env;
    }
}

/// Parameters of a brass swell.
#[derive(Debug, Clone, Copy)]
pub struct Brass {
    /// Fundamental in Hz.
    pub freq: f32,
    /// Sounding length before the release.
    pub duration_s: f32,
    /// Peak amplitude.
    pub velocity: f32,
}

/// Brass swell rise time: a crescendo, not a hit.
const BRASS_SWELL_S: f32 = 0.8;
/// Brass release.
const BRASS_RELEASE_S: f32 = 0.5;
/// Cutoff at silence, as a multiple of the fundamental (dark, muted).
const BRASS_DARK_HARMONIC: f32 = 1.5;
/// Extra harmonics of brightness at full level (brass brightens when loud).
const BRASS_BRIGHT_HARMONICS: f32 = 10.0;
/// Detune between the two players, cents.
const BRASS_DETUNE_CENTS: f32 = 5.0;

/// Renders a brass swell: two band-limited saws through a two-pole low-pass
/// whose cutoff follows the loudness envelope (the brightness envelope).
pub fn brass(out: &mut [f32], sample_rate: f32, start: usize, note: Brass, noise: &mut Noise) {
    let range = span(out, start, seconds_to_samples(note.duration_s + BRASS_RELEASE_S, sample_rate));
    let increments = [note.freq / sample_rate, note.freq * cents_to_ratio(BRASS_DETUNE_CENTS) / sample_rate];
    let mut players = [Saw { phase: noise.unit() }, Saw { phase: noise.unit() }];
    let mut stage_a = OnePoleLowPass::new(note.freq, sample_rate);
    let mut stage_b = OnePoleLowPass::new(note.freq, sample_rate);
    let dt = 1.0 / sample_rate;
    let swell = BRASS_SWELL_S.min(note.duration_s);
    for (i, sample) in out[range].iter_mut().enumerate() {
        let t = i as f32 * dt;
        // Swell up, ease back a little while holding, then release.
        let env = attack_release(t, swell, note.duration_s, BRASS_RELEASE_S)
            * if t > swell { 1.0 - 0.25 * ((t - swell) / note.duration_s).min(1.0) } else { 1.0 };
        let cutoff = note.freq * (BRASS_DARK_HARMONIC + BRASS_BRIGHT_HARMONICS * env * env);
        stage_a.set_cutoff(cutoff, sample_rate);
        stage_b.set_cutoff(cutoff, sample_rate);
        let raw = 0.5 * (players[0].next(increments[0]) + players[1].next(increments[1]));
        *sample += note.velocity * env * stage_b.process(stage_a.process(raw));
    }
}

/// Timpani partials: (frequency ratio, relative level, relative decay time).
/// Ratios follow a tuned kettle drum's circular-membrane modes (1,1)…(6,1),
/// which the kettle pulls near 1 : 1.5 : 2 but leaves inharmonic.
const TIMPANI_PARTIALS: [(f32, f32, f32); 6] =
    [(1.0, 1.0, 1.0), (1.504, 0.55, 0.75), (1.742, 0.3, 0.5), (2.0, 0.3, 0.55), (2.245, 0.16, 0.35), (2.494, 0.1, 0.3)];
/// Decay time constant of the fundamental.
const TIMPANI_DECAY_TAU_S: f32 = 0.7;
/// Rendered length of a timpani hit.
const TIMPANI_LENGTH_S: f32 = 3.0;
/// Initial pitch overshoot (tension rises when struck), as a ratio.
const TIMPANI_PITCH_BEND: f32 = 0.025;
/// Time constant of the pitch settling.
const TIMPANI_BEND_TAU_S: f32 = 0.06;
/// Mallet noise level and time constant.
const TIMPANI_MALLET_LEVEL: f32 = 0.5;
const TIMPANI_MALLET_TAU_S: f32 = 0.012;
/// Mallet noise low-pass in Hz (felt mallets are dull).
const TIMPANI_MALLET_CUTOFF_HZ: f32 = 900.0;

/// Renders a timpani hit: decaying inharmonic membrane partials with a
/// little pitch glide, plus low-passed mallet noise.
pub fn timpani(out: &mut [f32], sample_rate: f32, start: usize, freq: f32, velocity: f32, noise: &mut Noise) {
    let range = span(out, start, seconds_to_samples(TIMPANI_LENGTH_S, sample_rate));
    let dt = 1.0 / sample_rate;
    let mut phases = [0.0f32; TIMPANI_PARTIALS.len()];
    let decays: Vec<f32> =
        TIMPANI_PARTIALS.iter().map(|&(_, _, decay)| (-dt / (TIMPANI_DECAY_TAU_S * decay)).exp()).collect();
    let mut levels: Vec<f32> = TIMPANI_PARTIALS.iter().map(|&(_, level, _)| level).collect();
    let mut mallet = OnePoleLowPass::new(TIMPANI_MALLET_CUTOFF_HZ, sample_rate);
    let norm: f32 = TIMPANI_PARTIALS.iter().map(|&(_, level, _)| level).sum();
    for (i, sample) in out[range].iter_mut().enumerate() {
        let t = i as f32 * dt;
        let bend = 1.0 + TIMPANI_PITCH_BEND * (-t / TIMPANI_BEND_TAU_S).exp();
        let mut tone = 0.0;
        for (k, &(ratio, _, _)) in TIMPANI_PARTIALS.iter().enumerate() {
            phases[k] += freq * ratio * bend * dt;
            if phases[k] >= 1.0 {
                phases[k] -= 1.0;
            }
            tone += levels[k] * (TAU * phases[k]).sin();
            levels[k] *= decays[k];
        }
        let thump = mallet.process(noise.sample()) * TIMPANI_MALLET_LEVEL * (-t / TIMPANI_MALLET_TAU_S).exp();
        *sample += velocity * (tone / norm + thump);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pitch from the autocorrelation peak between 50 and 1000 Hz.
    fn autocorrelation_pitch_hz(x: &[f32], sr: f32) -> f32 {
        let lags = (sr / 1000.0) as usize..(sr / 50.0) as usize;
        let score = |lag: usize| x.iter().zip(&x[lag..]).map(|(a, b)| a * b).sum::<f32>();
        let best = lags.max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap_or(1);
        sr / best as f32
    }

    #[test]
    fn karplus_strong_is_in_tune_and_decays() {
        let sr = 44_100.0;
        let mut buf = vec![0.0; 44_100];
        let mut noise = Noise::new(7);
        pluck(&mut buf, sr, 0, Pluck { freq: 220.0, velocity: 1.0, decay_s: 1.0, brightness: 0.0 }, &mut noise);
        // Let the bright transient die, then measure the pitch.
        let hz = autocorrelation_pitch_hz(&buf[4410..22_050], sr);
        assert!((hz - 220.0).abs() < 2.5, "pitch {hz}");
        let early = buf[..4410].iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let late = buf[39_690..].iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(late < early * 0.01, "early {early} late {late}");
    }

    #[test]
    fn voices_stay_finite_and_inside_buffer() {
        let sr = 8_000.0;
        let mut buf = vec![0.0; 800];
        let mut noise = Noise::new(3);
        kick(&mut buf, sr, 700, 1.0, &mut noise);
        hat(&mut buf, sr, 790, 0.05, 1.0, &mut noise);
        clap(&mut buf, sr, 10_000, 1.0, &mut noise);
        timpani(&mut buf, sr, 0, 98.0, 1.0, &mut noise);
        flute(&mut buf, sr, 0, Flute { freq: 3_000.0, duration_s: 1.0, velocity: 1.0, vibrato_phase: 0.3 }, &mut noise);
        brass(&mut buf, sr, 0, Brass { freq: 110.0, duration_s: 0.05, velocity: 1.0 }, &mut noise);
        assert!(buf.iter().all(|x| x.is_finite()));
        assert!(buf.iter().any(|&x| x != 0.0));
    }
}
