//! The latent bank (DESIGN.md, "Model"): the encoder's `mu` codes of real training segments, per
//! genre, shipped in the bundle so that generation starts from codes the decoder was trained on.
//!
//! # Why a bank
//!
//! The `prior` rule `z = Σ w_g·centroid_g + temperature·ε` lands where the decoder saw little: a
//! centroid is the *average* code of a genre, and the average of many beat phases, melodies and
//! registers decodes to their average — the seed study's soft wash. `N(0, I)` noise does not
//! help: with a small KL weight the posterior codes do not fill the prior, so a random direction
//! is as unfamiliar to the decoder as the centroid. A code from the bank is a real segment's
//! encoding: decoding it gives a reconstruction-sharp clip of that genre. Blends combine one real
//! code per weighted genre by spherical interpolation ([`slerp_by_share`]), which keeps the code's norm in
//! the range the decoder knows (linear interpolation of two near-orthogonal codes shrinks it by up
//! to √2, towards the blurry centre). `temperature` adds noise at the *posterior's* scale
//! (`sigma`, the RMS of the encoder's `exp(logvar / 2)` over the bank), not the prior's.
//!
//! # Long clips walk along real tracks
//!
//! The bank stores each genre's codes as *runs*: consecutive training segments of one track, in
//! order, `segment_seconds − overlap_seconds` apart. A clip longer than one segment ([`LatentBank::walk`])
//! picks a starting code by the seed and steps along its run, one code per decoded segment; the
//! service places those segments at the same hop, so the overlap of two neighbours is the same
//! stretch of the same track, decoded twice — the cross-fade joins matching beats and phrases
//! instead of two unrelated clips. The start is chosen so the walk fits in its run when the run is
//! long enough, and so that consecutive seeds start in different parts of the bank
//! ([`crate::walk_start`]).
//!
//! # Past a run's end: where the music goes on most alike
//!
//! A clip longer than a run (a demo stretch is 9 tiles, 33 s; a clip may be 120 s) must go on
//! elsewhere. It used to go on with the next stored run — as often as not another track, in
//! another key, tempo and texture, cut in mid-phrase. It now goes on the way unit-selection
//! synthesis and the Infinite Jukebox join their pieces: among the genre's codes in *other* runs,
//! it finds the one most like the run's last code and goes on with the code that *follows* it in
//! its own track, so the join is one the music itself makes after a passage like the one just
//! heard ([`LatentBank::continuations`]; measured in `models/demo/README.md`, "long clips").
//! "Most like" is by the angle between the codes (cosine distance over the whole code): by
//! Euclidean distance the codes of small norm — quiet, sparse passages — lie near everything,
//! and the demo's walks went on about 3 dB quieter and with less beat than the music they left.
//! The angle alone still lost beat across the join (a stretch's end is often a fade, and it went
//! on after fades), so for latent maps the cost adds how unlike the two stretches' rhythms are,
//! read from the codes' own rise along time. Each run ranks its best join into each other run
//! once, when a walk first needs one; a walk takes the best into a run it has not been in yet, so
//! a 120 s clip does not go back and forth between two stretches. Every walk that fits in its run
//! is as it was.
//!
//! # Or as tiles, decoded in one pass
//!
//! A bank whose `hop_frames` is one model segment holds *tiles*: each run is one stretch of track
//! encoded in one pass and cut into consecutive segments' worth of latent columns. With a decoder
//! whose time axis is dynamic (`latent_time_cells` in the manifest), the service joins a walk's
//! tiles into one latent map ([`crate::manifest::join_latent_maps`]) and decodes the clip in one
//! pass, with no seams to cross-fade. Judged on the demo's weights with 96 clips per genre, the
//! tiled and the segment bank read alike (accuracy 0.86 / 0.87, harmonic 0.90 / 0.88), the
//! segments more diverse (0.76 against 0.69); the demo ships tiles for the clip of any length in
//! one piece and the morph conditioned tile by tile (`models/demo/README.md`, "one pass over
//! tiles" and "where a walk starts").
//!
//! # File
//!
//! `latent_bank.bin`: the codes as little-endian IEEE half floats, row-major `[N][Z]`, genre by
//! genre in `genres` order, each genre's runs one after another (`runs[g]` holds their lengths).
//! f16 keeps a code to ~3 significant digits, far finer than the posterior's own spread; its
//! SHA-256 is in the manifest like the decoder's.

use std::sync::OnceLock;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::generation::{blend_centroids, normal_from};
use crate::walk_start::{start_of_walk, walk_position};

/// File name of the bank inside a bundle.
pub const LATENT_BANK_FILE: &str = "latent_bank.bin";
/// How many other runs a run's [`LatentBank::continuations`] rank: enough that a walk of the
/// longest clip (120 s, 33 tiles, four or five run ends) rarely has to go back into a run it has
/// been in.
pub const CONTINUATIONS_PER_RUN: usize = 8;

/// Weight of the rhythm term in a join's cost ([`LatentBank::continuations`]), next to the
/// angle between the codes. On the demo's 60 s clips (`models/demo/README.md`, "long clips"), 0
/// lost the beat across the join (pulse 0.84 → 0.79); 0.5 keeps it (0.84), at a larger change
/// of spectrum at orchestral's joins than the angle alone makes; 1 barely adds to 0.5's beat and
/// widens the joins.
pub const RHYTHM_WEIGHT: f32 = 0.5;

/// The lags, in latent columns, of a code's rhythm signature ([`LatentBank::continuations`]):
/// 0.19–1.1 s at the demo's 93 ms columns, the judge's beat periods (0.3–1.0 s) and a little
/// either side.
const RHYTHM_LAGS: std::ops::RangeInclusive<usize> = 2..=12;

/// Element type of the bank file, as the manifest names it.
pub const LATENT_BANK_DTYPE: &str = "float16";
/// Bytes per stored value.
const BYTES_PER_VALUE: usize = 2;

/// The manifest's `latent_bank` section: where the codes are and how to read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentBankInfo {
    /// File name inside the bundle, [`LATENT_BANK_FILE`].
    pub file: String,
    /// Element type, [`LATENT_BANK_DTYPE`].
    pub dtype: String,
    /// Per genre (in `genres` order), the lengths of its runs of consecutive segments of one
    /// track, in stored order; a genre's codes are the sum of its run lengths.
    pub runs: Vec<Vec<usize>>,
    /// The posterior's scale per latent dimension (`[Z]`): what `temperature = 1` adds.
    pub sigma: Vec<f32>,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// Mel frames between the starts of consecutive codes of a run. Absent: the training hop
    /// (`segment_seconds − overlap_seconds`), codes of overlapping segments. Equal to the model
    /// segment's frames: the codes *tile* their stretch of track, cut from one encoding of the
    /// whole stretch, so a walk's codes join into one latent map
    /// ([`crate::manifest::join_latent_maps`]) that a decoder with a dynamic time axis draws in
    /// one pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_frames: Option<usize>,
}

/// Why a bank was refused; the message names the field or the mismatch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("latent_bank.{field}: {message}")]
pub struct LatentBankError {
    /// The manifest field at fault (`runs`, `sigma`, `sha256`, ...).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> LatentBankError {
    LatentBankError { field, message: message.into() }
}

/// A bank that passed every check, its codes widened to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentBank {
    latent_dim: usize,
    /// First row of each genre, plus the total at the end.
    offsets: Vec<usize>,
    /// Per genre, the run lengths.
    runs: Vec<Vec<usize>>,
    codes: Vec<f32>,
    sigma: Vec<f32>,
    hop_frames: Option<usize>,
    /// Latent columns per code when the codes are latent maps (the manifest's
    /// `latent_time_cells`): what a code's rhythm signature is read along.
    time_columns: Option<usize>,
    /// Per genre and run, where a walk may go on past the run's last code, best first
    /// ([`LatentBank::continuations`]); computed when a walk first runs past a run's end.
    continuations: OnceLock<Vec<Vec<Vec<usize>>>>,
}

impl LatentBank {
    /// Checks `info` against the manifest's `genres` count and `latent_dim` and the file's `bytes`
    /// (size, hash, finite values) and decodes the codes.
    pub fn from_bytes(
        info: &LatentBankInfo,
        genres: usize,
        latent_dim: usize,
        bytes: &[u8],
    ) -> Result<Self, LatentBankError> {
        if info.dtype != LATENT_BANK_DTYPE {
            return Err(refuse("dtype", format!("`{}` is not supported (only {LATENT_BANK_DTYPE})", info.dtype)));
        }
        if info.runs.len() != genres {
            return Err(refuse("runs", format!("{} entries for {genres} genres", info.runs.len())));
        }
        if info.runs.iter().flatten().any(|&length| length == 0) {
            return Err(refuse("runs", "a run must hold at least one code".to_string()));
        }
        if info.sigma.len() != latent_dim || info.sigma.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err(refuse("sigma", format!("must hold {latent_dim} finite values ≥ 0")));
        }
        let rows: usize = info.runs.iter().flatten().sum();
        let expected = rows * latent_dim * BYTES_PER_VALUE;
        if bytes.len() != expected {
            return Err(refuse(
                "file",
                format!(
                    "{} is {} bytes, expected {expected} ({rows} codes × {latent_dim} × f16)",
                    info.file,
                    bytes.len()
                ),
            ));
        }
        let digest = sha256_hex(bytes);
        if digest != info.sha256 {
            return Err(refuse(
                "sha256",
                format!("{} hashes to {digest}, the manifest says {}", info.file, info.sha256),
            ));
        }
        let codes: Vec<f32> = bytes
            .chunks_exact(BYTES_PER_VALUE)
            .map(|pair| half::f16::from_le_bytes([pair[0], pair[1]]).to_f32())
            .collect();
        if codes.iter().any(|v| !v.is_finite()) {
            return Err(refuse("file", format!("{} holds non-finite values", info.file)));
        }
        let mut offsets = Vec::with_capacity(genres + 1);
        let mut start = 0;
        for runs in &info.runs {
            offsets.push(start);
            start += runs.iter().sum::<usize>();
        }
        offsets.push(start);
        Ok(Self {
            latent_dim,
            offsets,
            runs: info.runs.clone(),
            codes,
            sigma: info.sigma.clone(),
            hop_frames: info.hop_frames,
            time_columns: None,
            continuations: OnceLock::new(),
        })
    }

    /// The bank with codes that are latent maps of `columns` columns along time (the manifest's
    /// `latent_time_cells`), so that joins past a run's end also weigh rhythm
    /// ([`LatentBank::continuations`]). Without it, or with too few columns for the signature's
    /// lags, joins weigh the codes' angle alone.
    pub fn with_time_columns(mut self, columns: Option<usize>) -> Self {
        self.time_columns = columns.filter(|&c| c > *RHYTHM_LAGS.end() + 1 && self.latent_dim.is_multiple_of(c));
        self.continuations = OnceLock::new();
        self
    }

    /// Encodes `[N][Z]` codes (row-major) as the bank file's bytes.
    pub fn encode(codes: &[f32]) -> Vec<u8> {
        codes.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect()
    }

    /// Codes stored for genre `genre`.
    pub fn count(&self, genre: usize) -> usize {
        self.offsets[genre + 1] - self.offsets[genre]
    }

    /// Mel frames between consecutive codes of a run, when the manifest records them
    /// ([`LatentBankInfo::hop_frames`]).
    pub fn hop_frames(&self) -> Option<usize> {
        self.hop_frames
    }

    /// Code `index` of genre `genre`, `[Z]`.
    pub fn code(&self, genre: usize, index: usize) -> &[f32] {
        let row = self.offsets[genre] + index;
        &self.codes[row * self.latent_dim..(row + 1) * self.latent_dim]
    }

    /// The posterior's scale per latent dimension.
    pub fn sigma(&self) -> &[f32] {
        &self.sigma
    }

    /// The `bank` sampler's latent for one segment: [`LatentBank::walk`] at step 0 of 1.
    pub fn sample(&self, centroids: &[Vec<f32>], weights: &[f32], temperature: f32, seed: u64) -> Vec<f32> {
        self.walk(centroids, weights, temperature, seed, 0, 1)
    }

    /// The `bank` sampler's latent for decoded segment `step` of `steps` of a clip, for a blend
    /// (`weights` per genre, ≥ 0, not all zero):
    ///
    /// 1. one starting code per genre, for *every* genre whatever its weight (so a weight sweep at
    ///    one seed moves between the same codes, and a morph's genres keep their tracks), at the
    ///    seed's place in the genre's golden-ratio sequence over the starts from which the clip's
    ///    `steps` codes fit in their run ([`crate::walk_start`]: uniform for a random seed, spread
    ///    over the bank for consecutive seeds; a run shorter than that offers its first code);
    /// 2. each weighted genre contributes the code `step` places after its start, going on past a
    ///    run's end with its best [`LatentBank::continuations`] in a run it has not been in; they
    ///    are combined by successive spherical interpolation in genre order,
    ///    `z ← slerp_by_share(z, c_g, w_g / (w_1 + … + w_g))`, which gives each code's direction
    ///    its weight's share of the code's energy;
    /// 3. `z += temperature · sigma ⊙ ε`, `ε ~ N(0, I)` from stream `step + 1` of the same seed.
    ///
    /// A weighted genre with no code in the bank contributes its `centroids` row instead.
    pub fn walk(
        &self,
        centroids: &[Vec<f32>],
        weights: &[f32],
        temperature: f32,
        seed: u64,
        step: usize,
        steps: usize,
    ) -> Vec<f32> {
        let starts: Vec<Option<usize>> =
            self.runs.iter().enumerate().map(|(g, runs)| start_of_walk(runs, walk_position(seed, g), steps)).collect();
        let mut z: Option<Vec<f32>> = None;
        let mut total = 0.0f32;
        for (g, (&weight, start)) in weights.iter().zip(&starts).enumerate() {
            if weight <= 0.0 {
                continue;
            }
            let code: Vec<f32> = match start {
                Some(start) => self.code(g, self.walk_index(g, *start, step)).to_vec(),
                None => centroids.get(g).cloned().unwrap_or_else(|| vec![0.0; self.latent_dim]),
            };
            total += weight;
            z = Some(match z {
                None => code,
                Some(previous) => slerp_by_share(&previous, &code, weight / total),
            });
        }
        let mut z = z.unwrap_or_else(|| blend_centroids(centroids, weights, self.latent_dim));
        let mut noise_rng = ChaCha8Rng::seed_from_u64(seed);
        noise_rng.set_stream(step as u64 + 1);
        let noise = normal_from(&mut noise_rng, self.latent_dim);
        for ((value, &s), e) in z.iter_mut().zip(&self.sigma).zip(noise) {
            *value += temperature * s * e;
        }
        z
    }

    /// Index (within genre `genre`) of the code `step` places along a walk from `start`: the next
    /// code of the run, or past a run's last code the first of its [`LatentBank::continuations`]
    /// in a run the walk has not been in yet (the first of them when it has been in all).
    fn walk_index(&self, genre: usize, start: usize, step: usize) -> usize {
        let ends = self.run_ends(genre);
        let run_of = |index: usize| ends.partition_point(|&end| end <= index);
        let mut visited = vec![run_of(start)];
        let mut index = start;
        for _ in 0..step {
            index = match ends.binary_search(&(index + 1)) {
                Ok(run) => {
                    let ranked = self.continuations(genre, run);
                    let fresh = ranked.iter().find(|&&next| !visited.contains(&run_of(next)));
                    let next = fresh.or(ranked.first()).copied().unwrap_or((index + 1) % self.count(genre));
                    visited.push(run_of(next));
                    next
                }
                Err(_) => index + 1,
            };
        }
        index
    }

    /// Per run of genre `genre`, the index one past its last code.
    fn run_ends(&self, genre: usize) -> Vec<usize> {
        self.runs[genre]
            .iter()
            .scan(0, |end, &length| {
                *end += length;
                Some(*end)
            })
            .collect()
    }

    /// Where a walk may go on after the last code of run `run` of genre `genre`, best first: for
    /// each of the genre's other runs (at most [`CONTINUATIONS_PER_RUN`]), the code that follows
    /// that run's code nearest the last code (module docs, "past a run's end"), ranked by the
    /// join's cost: `1 − cos` between the two codes, plus for latent maps
    /// ([`LatentBank::with_time_columns`]) [`RHYTHM_WEIGHT`] × `(1 − cos) / 2` between the two
    /// runs' rhythm signatures — the autocorrelation, at lags of 2–12 columns, of the code's rise
    /// from column to column (the mean over its rows of the positive change: the latent's own
    /// onset envelope), averaged over the run and less the genre's average. The angle matches the
    /// texture and level at the join (a stretch's end is often a fade, so alone it went on after
    /// fades, with less beat); the rhythm asks for a stretch that moves like the one being left,
    /// as unit selection adds a target cost to its join cost. Only codes with at least half their
    /// run from them on are joined into, so a join is not followed one tile later by the next
    /// (joining wherever the codes were nearest, a demo walk could land on a run's last code and
    /// hop on after 3.7 s). Empty where no other run has such a code.
    pub fn continuations(&self, genre: usize, run: usize) -> &[usize] {
        &self.continuation_table()[genre][run]
    }

    /// Ranks every run's continuations now rather than in the first walk that needs them (the
    /// service's warm-up: about 0.1 s for the demo's bank, 1 424 codes of 2 560 values).
    pub fn precompute_continuations(&self) {
        self.continuation_table();
    }

    fn continuation_table(&self) -> &[Vec<Vec<usize>>] {
        self.continuations.get_or_init(|| (0..self.runs.len()).map(|g| self.continuations_of(g)).collect())
    }

    fn continuations_of(&self, genre: usize) -> Vec<Vec<usize>> {
        let ends = self.run_ends(genre);
        let rhythms = self.run_rhythms(genre, &ends);
        // 1 − cosine: the angle between codes, whatever their norms (module docs).
        let distance = |a: &[f32], b: &[f32]| -> f32 {
            let (dot, aa, bb) = a
                .iter()
                .zip(b)
                .fold((0.0f32, 0.0f32, 0.0f32), |(dot, aa, bb), (x, y)| (dot + x * y, aa + x * x, bb + y * y));
            1.0 - dot / (aa * bb).sqrt().max(f32::MIN_POSITIVE)
        };
        (0..ends.len())
            .map(|run| {
                let last = self.code(genre, ends[run] - 1);
                // The best join into each other run: (distance, the code after the nearest one).
                let mut joins: Vec<(f32, usize)> = Vec::new();
                let mut run_start = 0;
                for (other, &end) in ends.iter().enumerate() {
                    if other != run {
                        // At least half the run after the join, so one join is not followed at
                        // once by the next.
                        let latest = end - (end - run_start).div_ceil(2);
                        let rhythm =
                            rhythms.as_ref().map_or(0.0, |r| RHYTHM_WEIGHT * distance(&r[run], &r[other]) / 2.0);
                        let nearest = (run_start + 1..=latest)
                            .map(|next| (distance(self.code(genre, next - 1), last) + rhythm, next))
                            .min_by(|a, b| a.0.total_cmp(&b.0));
                        joins.extend(nearest);
                    }
                    run_start = end;
                }
                joins.sort_by(|a, b| a.0.total_cmp(&b.0));
                joins.into_iter().take(CONTINUATIONS_PER_RUN).map(|(_, next)| next).collect()
            })
            .collect()
    }

    /// Per run of genre `genre` (ending at `ends`), its rhythm signature less the genre's mean
    /// ([`LatentBank::continuations`]); `None` for codes without a time axis.
    fn run_rhythms(&self, genre: usize, ends: &[usize]) -> Option<Vec<Vec<f32>>> {
        let columns = self.time_columns?;
        let count = self.count(genre);
        let signatures: Vec<Vec<f32>> = (0..count).map(|i| rhythm_signature(self.code(genre, i), columns)).collect();
        let lags = RHYTHM_LAGS.count();
        let mean: Vec<f32> =
            (0..lags).map(|k| signatures.iter().map(|s| s[k]).sum::<f32>() / count.max(1) as f32).collect();
        let mut start = 0;
        let runs = ends
            .iter()
            .map(|&end| {
                let sum = (start..end).fold(vec![0.0f32; lags], |mut sum, i| {
                    for ((total, value), centre) in sum.iter_mut().zip(&signatures[i]).zip(&mean) {
                        *total += value - centre;
                    }
                    sum
                });
                start = end;
                sum
            })
            .collect();
        Some(runs)
    }
}

/// Spherical interpolation from `a` towards `b` that gives `b`'s direction the share `share` of
/// the result's energy, with the norm interpolated linearly by `share`; nearly parallel vectors
/// fall back to linear interpolation.
///
/// The share is the squared coefficient of `b`'s unit direction over the sum of both squared
/// coefficients — for orthogonal codes, the part of the code's variance each brings. Plain
/// slerp at `t = share` (the angle `tθ`) gives `b` only `sin²(tθ) / (sin²((1 − t)θ) + sin²(tθ))` of it: 0.13 at
/// 0.25 for the demo bank's codes of two genres, 76–91° apart, so a quarter weight sounded like an
/// eighth. The angle that gives the share is `atan2(r·sin θ, 1 + r·cos θ)` with
/// `r = √(share / (1 − share))`; at 0, ½ and 1 it is plain slerp's.
pub fn slerp_by_share(a: &[f32], b: &[f32], share: f32) -> Vec<f32> {
    let share = f64::from(share.clamp(0.0, 1.0));
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    let lerp =
        || a.iter().zip(b).map(|(&x, &y)| ((1.0 - share) * f64::from(x) + share * f64::from(y)) as f32).collect();
    if na < 1e-12 || nb < 1e-12 {
        return lerp();
    }
    let cos = (a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum::<f64>() / (na * nb)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    if omega.sin().abs() < 1e-6 {
        return lerp();
    }
    // The angle from `a`'s direction towards `b`'s that gives `b` its share of the energy.
    let angle = if share >= 1.0 {
        omega
    } else {
        let r = (share / (1.0 - share)).sqrt();
        (r * omega.sin()).atan2(1.0 + r * cos)
    };
    // Unit directions combined on the great circle, then scaled to the interpolated norm.
    let (wa, wb) = ((omega - angle).sin() / omega.sin(), angle.sin() / omega.sin());
    let scale = (1.0 - share) * na + share * nb;
    a.iter().zip(b).map(|(&x, &y)| ((wa * f64::from(x) / na + wb * f64::from(y) / nb) * scale) as f32).collect()
}

/// A latent map's rhythm (`code` as `[rows][columns]`, row-major: channel-major maps are rows of
/// `columns` values along time): the autocorrelation at [`RHYTHM_LAGS`] of its rise, the mean
/// over rows of the positive change from each column to the next, less its mean; normalised by
/// the rise's energy.
fn rhythm_signature(code: &[f32], columns: usize) -> Vec<f32> {
    let rows = code.len() / columns;
    let mut rise = vec![0.0f32; columns - 1];
    for row in code.chunks_exact(columns) {
        for (total, pair) in rise.iter_mut().zip(row.windows(2)) {
            *total += (pair[1] - pair[0]).max(0.0) / rows as f32;
        }
    }
    let mean = rise.iter().sum::<f32>() / rise.len() as f32;
    rise.iter_mut().for_each(|value| *value -= mean);
    let energy = rise.iter().map(|value| value * value).sum::<f32>().max(f32::MIN_POSITIVE);
    RHYTHM_LAGS.map(|lag| rise.iter().zip(&rise[lag..]).map(|(a, b)| a * b).sum::<f32>() / energy).collect()
}

/// Lower-case hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The manifest section for `codes` (`[N][Z]`, genre by genre, run by run, `runs` giving the run
/// lengths per genre) and `sigma`, with the hash of the bytes [`LatentBank::encode`] makes of them.
pub fn bank_info(codes: &[f32], runs: Vec<Vec<usize>>, sigma: Vec<f32>) -> (LatentBankInfo, Vec<u8>) {
    let bytes = LatentBank::encode(codes);
    let info = LatentBankInfo {
        file: LATENT_BANK_FILE.into(),
        dtype: LATENT_BANK_DTYPE.into(),
        runs,
        sigma,
        sha256: sha256_hex(&bytes),
        hop_frames: None,
    };
    (info, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank() -> LatentBank {
        // Genre 0: two codes along x; genre 1: one code along y; genre 2: none.
        let codes = [2.0, 0.0, 3.0, 0.0, 0.0, 2.0];
        let (info, bytes) = bank_info(&codes, vec![vec![2], vec![1], vec![]], vec![0.5, 0.5]);
        LatentBank::from_bytes(&info, 3, 2, &bytes).expect("valid bank")
    }

    #[test]
    fn slerp_by_share_keeps_the_norm_between_orthogonal_codes() {
        let mid = slerp_by_share(&[2.0, 0.0], &[0.0, 2.0], 0.5);
        let norm = (mid[0] * mid[0] + mid[1] * mid[1]).sqrt();
        assert!((norm - 2.0).abs() < 1e-5, "{mid:?}");
        assert!((mid[0] - mid[1]).abs() < 1e-6);
        assert_eq!(slerp_by_share(&[1.0, 0.0], &[0.0, 1.0], 0.0), vec![1.0, 0.0]);
        let end = slerp_by_share(&[1.0, 0.0], &[0.0, 1.0], 1.0);
        assert!(end[0].abs() < 1e-6 && (end[1] - 1.0).abs() < 1e-6);
        // Parallel vectors: linear.
        assert_eq!(slerp_by_share(&[1.0, 0.0], &[3.0, 0.0], 0.5), vec![2.0, 0.0]);
    }

    #[test]
    fn slerp_by_share_gives_b_its_share_of_the_energy() {
        // Unit codes 80° apart, like the demo bank's genres.
        let theta = 80f32.to_radians();
        let (a, b) = ([1.0, 0.0], [theta.cos(), theta.sin()]);
        // The coefficients of a and b in z: z = α·a + β·b, solved in the plane.
        let parts = |z: &[f32]| {
            let beta = z[1] / b[1];
            (z[0] - beta * b[0], beta)
        };
        for share in [0.1f32, 0.25, 0.5, 0.75, 0.9] {
            let z = slerp_by_share(&a, &b, share);
            let (alpha, beta) = parts(&z);
            let measured = beta * beta / (alpha * alpha + beta * beta);
            assert!((measured - share).abs() < 1e-4, "share {share}: {measured}");
            assert!((z[0].hypot(z[1]) - 1.0).abs() < 1e-5, "the norm stays: {z:?}");
        }
        // Plain slerp at t (the angle tθ) gives b far less than a quarter at t = 0.25; at the
        // ends and the middle the two agree.
        let plain = |t: f32| {
            let (wa, wb) = (((1.0 - t) * theta).sin() / theta.sin(), (t * theta).sin() / theta.sin());
            vec![wa * a[0] + wb * b[0], wa * a[1] + wb * b[1]]
        };
        let (alpha, beta) = parts(&plain(0.25));
        assert!(beta * beta / (alpha * alpha + beta * beta) < 0.15);
        for share in [0.0f32, 0.5, 1.0] {
            let (x, y) = (slerp_by_share(&a, &b, share), plain(share));
            assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-6), "{share}: {x:?} {y:?}");
        }
        // The norm moves linearly with the share; parallel codes interpolate linearly.
        let z = slerp_by_share(&[2.0, 0.0], &[0.0, 4.0], 0.25);
        assert!((z[0].hypot(z[1]) - 2.5).abs() < 1e-5, "{z:?}");
        assert_eq!(slerp_by_share(&[1.0, 0.0], &[3.0, 0.0], 0.25), vec![1.5, 0.0]);
    }

    #[test]
    fn three_genres_each_get_their_weight_of_the_energy() {
        // Three orthogonal unit codes, one per genre, weights 0.5, 0.3, 0.2.
        let codes = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let (info, bytes) = bank_info(&codes, vec![vec![1], vec![1], vec![1]], vec![0.0; 3]);
        let bank = LatentBank::from_bytes(&info, 3, 3, &bytes).expect("valid bank");
        let z = bank.sample(&vec![vec![0.0; 3]; 3], &[0.5, 0.3, 0.2], 0.0, 1);
        let energy: f32 = z.iter().map(|v| v * v).sum();
        for (value, weight) in z.iter().zip([0.5f32, 0.3, 0.2]) {
            assert!((value * value / energy - weight).abs() < 1e-5, "{z:?}");
        }
    }

    #[test]
    fn one_genre_at_temperature_zero_is_a_real_code() {
        let bank = bank();
        let centroids = vec![vec![9.0, 9.0]; 3];
        for seed in 0..20 {
            let z = bank.sample(&centroids, &[1.0, 0.0, 0.0], 0.0, seed);
            assert!(z == vec![2.0, 0.0] || z == vec![3.0, 0.0], "{z:?}");
        }
        // Both codes are drawn over a few seeds.
        let drawn: std::collections::BTreeSet<u32> =
            (0..20).map(|seed| bank.sample(&centroids, &[1.0, 0.0, 0.0], 0.0, seed)[0] as u32).collect();
        assert_eq!(drawn.len(), 2);
        // A genre without codes falls back to its centroid.
        assert_eq!(bank.sample(&centroids, &[0.0, 0.0, 1.0], 0.0, 3), vec![9.0, 9.0]);
    }

    #[test]
    fn a_weight_sweep_moves_between_the_same_two_codes() {
        let bank = bank();
        let centroids = vec![vec![0.0, 0.0]; 3];
        let a = bank.sample(&centroids, &[1.0, 0.0, 0.0], 0.0, 5);
        let b = bank.sample(&centroids, &[0.0, 1.0, 0.0], 0.0, 5);
        let mut previous_angle = -1.0;
        for w in [0.0f32, 0.25, 0.5, 0.75, 1.0] {
            let z = bank.sample(&centroids, &[1.0 - w, w, 0.0], 0.0, 5);
            let angle = z[1].atan2(z[0]);
            assert!(angle >= previous_angle, "w {w}: {z:?}");
            previous_angle = angle;
            if w == 0.0 {
                assert_eq!(z, a);
            }
            if w == 1.0 {
                assert!((z[0] - b[0]).abs() < 1e-5 && (z[1] - b[1]).abs() < 1e-5, "{z:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn temperature_adds_noise_at_the_posterior_scale_reproducibly() {
        let bank = bank();
        let centroids = vec![vec![0.0, 0.0]; 3];
        let cold = bank.sample(&centroids, &[1.0, 0.0, 0.0], 0.0, 11);
        let warm = bank.sample(&centroids, &[1.0, 0.0, 0.0], 2.0, 11);
        assert_eq!(warm, bank.sample(&centroids, &[1.0, 0.0, 0.0], 2.0, 11));
        assert_ne!(warm, cold);
        // |Δ| = temperature · sigma · |ε|: bounded by 2 · 0.5 · 6 for any sane normal draw.
        assert!(warm.iter().zip(&cold).all(|(w, c)| (w - c).abs() < 6.0));
    }

    #[test]
    fn a_walk_steps_along_one_run_and_fits_in_it() {
        // One genre, runs of 5 and 3 codes; code k is [k, 1].
        let codes: Vec<f32> = (0..8).flat_map(|k| [k as f32, 1.0]).collect();
        let (info, bytes) = bank_info(&codes, vec![vec![5, 3]], vec![0.0, 0.0]);
        let bank = LatentBank::from_bytes(&info, 1, 2, &bytes).unwrap();
        let centroids = vec![vec![0.0, 0.0]];
        for seed in 0..40 {
            let walk: Vec<f32> = (0..3).map(|i| bank.walk(&centroids, &[1.0], 0.0, seed, i, 3)[0]).collect();
            assert!(walk[1] == walk[0] + 1.0 && walk[2] == walk[1] + 1.0, "seed {seed}: {walk:?}");
            // Three steps fit in either run: never across the boundary between codes 4 and 5.
            assert!(walk[0] <= 2.0 || walk[0] == 5.0, "seed {seed}: {walk:?}");
        }
        // Every start that fits is drawn about equally often (3 in the first run, 1 in the second),
        // not the last start of a run with the draws of the codes after it.
        let mut drawn = [0usize; 8];
        for seed in 0..4000 {
            drawn[bank.walk(&centroids, &[1.0], 0.0, seed, 0, 3)[0] as usize] += 1;
        }
        assert!(drawn.iter().enumerate().all(|(k, &n)| (n > 0) == [0, 1, 2, 5].contains(&k)), "{drawn:?}");
        assert!([0, 1, 2, 5].iter().all(|&k| (850..1150).contains(&drawn[k])), "{drawn:?}");
        // A walk longer than every run goes on past a run's end where the other run has a code
        // like its last one: after code 4, code 6 (whose predecessor 5 is nearest 4); after code
        // 7, code 2 (whose predecessor 1 is the nearest of the codes with half their run after).
        for seed in 0..20 {
            let long: Vec<f32> = (0..8).map(|i| bank.walk(&centroids, &[1.0], 0.0, seed, i, 8)[0]).collect();
            let expected = |k: f32| match k as usize {
                4 => 6.0,
                7 => 2.0,
                _ => k + 1.0,
            };
            assert!(long.windows(2).all(|w| w[1] == expected(w[0])), "seed {seed}: {long:?}");
        }
        // Step 0 of a walk is what `sample` gives.
        assert_eq!(bank.sample(&centroids, &[1.0], 0.0, 9), bank.walk(&centroids, &[1.0], 0.0, 9, 0, 1));
    }

    #[test]
    fn past_a_run_a_walk_goes_on_after_the_passage_most_like_its_end() {
        // One genre, three runs of codes whose direction is what they sound like and whose norm
        // how loud: a goes from x to a quiet y; b from a faint, halfway x–z code to a loud z; c
        // from a loud y to x, then z.
        let codes = [
            [9.0, 0.0, 0.0],
            [5.0, 5.0, 0.0],
            [0.0, 1.0, 0.0], // run a (0–2)
            [0.25, 0.0, 0.25],
            [0.0, 0.0, 9.0],
            [0.0, 0.0, 8.0], // run b (3–5), the next stored run
            [0.0, 9.0, 1.0],
            [9.0, 0.0, 0.0],
            [8.0, 1.0, 0.0],
            [0.0, 0.0, 7.0], // run c (6–9)
        ];
        let flat: Vec<f32> = codes.iter().flatten().copied().collect();
        let (info, bytes) = bank_info(&flat, vec![vec![3, 3, 4]], vec![0.0; 3]);
        let bank = LatentBank::from_bytes(&info, 1, 3, &bytes).unwrap();
        // After a's quiet y (index 2) the walk goes on after c's loud y: with code 7. By Euclidean
        // distance b's faint code (squared distance 1.1, against c's 65) would have won; by angle
        // it is 90° away and ranks second. Only codes with half their run after them are joined
        // into: b's after its first code (4), c's after its first two (7, 8).
        assert_eq!(bank.continuations(0, 0), &[7, 4]);
        // After b's z: c after its y with a little z (7), then a after its x (1).
        assert_eq!(bank.continuations(0, 1), &[7, 1]);
        // After c's z: b after its halfway x–z code (4), then a (1); never c itself.
        assert_eq!(bank.continuations(0, 2), &[4, 1]);
        let centroids = vec![vec![0.0; 3]];
        // A walk of 8 from a's start (no run holds 8, so only run starts are drawn): all of a,
        // then c from code 7; past c's end b ranks first and was not heard: b from code 4.
        let walks: Vec<Vec<Vec<f32>>> =
            (0..40).map(|seed| (0..8).map(|i| bank.walk(&centroids, &[1.0], 0.0, seed, i, 8)).collect()).collect();
        let from_a = walks.iter().find(|w| w[0] == bank.code(0, 0)).expect("a walk starting in a");
        let expected: Vec<&[f32]> = [0, 1, 2, 7, 8, 9, 4, 5].iter().map(|&k| bank.code(0, k)).collect();
        assert_eq!(from_a.iter().map(Vec::as_slice).collect::<Vec<_>>(), expected);
        // From c, past its end b (4, 5), then past b's end c ranks first but was heard: a (1, 2).
        let from_c = walks.iter().find(|w| w[0] == bank.code(0, 6)).expect("a walk starting in c");
        let expected: Vec<&[f32]> = [6, 7, 8, 9, 4, 5, 1, 2].iter().map(|&k| bank.code(0, k)).collect();
        assert_eq!(from_c.iter().map(Vec::as_slice).collect::<Vec<_>>(), expected);
        // A genre of one run has no other run to go on in: it wraps to its first code.
        let (info, bytes) = bank_info(&[1.0, 2.0], vec![vec![2]], vec![0.0]);
        let single = LatentBank::from_bytes(&info, 1, 1, &bytes).unwrap();
        assert!(single.continuations(0, 0).is_empty());
        let wrapped: Vec<f32> = (0..4).map(|i| single.walk(&[vec![0.0]], &[1.0], 0.0, 3, i, 4)[0]).collect();
        assert_eq!(wrapped, vec![1.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn with_a_time_axis_a_join_also_asks_for_the_rhythm_it_leaves() {
        // Latent maps of one row of 16 columns: a constant bed (which sets the angle between the
        // codes and has no rise) plus beats every 4 or every 6 columns.
        let code = |period: usize, extra: f32| -> Vec<f32> {
            (0..16).map(|t| 10.0 + if t % period == 0 { 1.0 } else { 0.0 } + if t == 1 { extra } else { 0.0 }).collect()
        };
        // Run a beats every 4; run b starts with a code equal to a's last, then beats every 6;
        // run c starts with a code a little off a's last and beats every 4 throughout.
        let codes = [code(4, 0.0), code(4, 0.0), code(4, 0.0), code(6, 0.0), code(4, 0.5), code(4, 0.0)];
        let flat: Vec<f32> = codes.concat();
        let (info, bytes) = bank_info(&flat, vec![vec![2, 2, 2]], vec![0.0; 16]);
        let plain = LatentBank::from_bytes(&info, 1, 16, &bytes).unwrap();
        // By the codes' angle alone, b's first code is a's last: b (code 3) ranks first.
        assert_eq!(plain.continuations(0, 0), &[3, 5]);
        // With the time axis, b moves every 6 where a moved every 4: c (code 5) ranks first.
        let timed = plain.clone().with_time_columns(Some(16));
        assert_eq!(timed.continuations(0, 0), &[5, 3]);
        // Too few columns for the signature's lags, or a layout that does not divide the code:
        // the angle alone.
        assert_eq!(plain.clone().with_time_columns(Some(8)).continuations(0, 0), &[3, 5]);
        assert_eq!(plain.with_time_columns(Some(15)).continuations(0, 0), &[3, 5]);
    }

    #[test]
    fn a_bad_bank_is_refused_naming_the_field() {
        let codes = [1.0, 2.0, 3.0, 4.0];
        let (info, bytes) = bank_info(&codes, vec![vec![1], vec![1]], vec![1.0, 1.0]);
        assert!(LatentBank::from_bytes(&info, 2, 2, &bytes).is_ok());
        assert_eq!(LatentBank::from_bytes(&info, 3, 2, &bytes).unwrap_err().field, "runs");
        let empty_run = LatentBankInfo { runs: vec![vec![1, 0], vec![1]], ..info.clone() };
        assert_eq!(LatentBank::from_bytes(&empty_run, 2, 2, &bytes).unwrap_err().field, "runs");
        assert_eq!(LatentBank::from_bytes(&info, 2, 3, &bytes).unwrap_err().field, "sigma");
        assert_eq!(LatentBank::from_bytes(&info, 2, 2, &bytes[..6]).unwrap_err().field, "file");
        let mut flipped = bytes.clone();
        flipped[0] ^= 1;
        assert_eq!(LatentBank::from_bytes(&info, 2, 2, &flipped).unwrap_err().field, "sha256");
        let bad_dtype = LatentBankInfo { dtype: "float32".into(), ..info };
        assert_eq!(LatentBank::from_bytes(&bad_dtype, 2, 2, &bytes).unwrap_err().field, "dtype");
    }
}
