//! Class-balanced sampling: how often each genre's segments are drawn, so that 9 minutes of `cn`
//! are not drowned by 233 of `edm` (the Debian corpus; a user's collection is as lopsided).
//!
//! Each genre `g` with `n_g` training segments gets a weight `w_g = n_g^p · factor_g`:
//! `balance = "proportional"` (`p = 1`, the default: every segment equally often, as before),
//! `"uniform"` (`p = 0`: every genre equally often), or a number `p` in between (0.5 is the usual
//! compromise: `cn` gets more than its share without being repeated 25× per `edm` pass).
//! `genre_weights` multiplies single genres' weights (`{ cn = 2.0 }`; 0 leaves a genre out).
//!
//! An epoch keeps its length (as many draws as training segments) and is split into per-genre
//! slot counts proportional to the weights (largest remainder; a genre with a positive weight
//! gets at least one slot); [`super::batches`] fills them. `RUN_DIR/sampling.json`
//! ([`SAMPLING_FILE`]) records the resulting shares and how many times per epoch each genre's
//! segments are seen.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::batches::{BatchSampler, PoolEntry};
use super::{FitConfig, FitError};

/// The per-run record of the sampling, in the run folder.
pub const SAMPLING_FILE: &str = "sampling.json";

/// How genre weights follow the genres' segment counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BalanceRepr", into = "BalanceRepr")]
pub enum Balance {
    /// Weight ∝ segments: every segment is drawn equally often (the unbalanced default).
    Proportional,
    /// Every genre is drawn equally often.
    Uniform,
    /// Weight ∝ segments^p, `p` in `[0, 1]`.
    Power(f64),
}

/// TOML/JSON form of [`Balance`]: `"proportional"`, `"uniform"` or the power as a number.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum BalanceRepr {
    Name(String),
    Power(f64),
}

impl TryFrom<BalanceRepr> for Balance {
    type Error = String;

    fn try_from(repr: BalanceRepr) -> Result<Self, String> {
        match repr {
            BalanceRepr::Name(name) => name.parse(),
            BalanceRepr::Power(p) => Balance::Power(p).checked(),
        }
    }
}

impl From<Balance> for BalanceRepr {
    fn from(balance: Balance) -> Self {
        match balance {
            Balance::Proportional => BalanceRepr::Name("proportional".into()),
            Balance::Uniform => BalanceRepr::Name("uniform".into()),
            Balance::Power(p) => BalanceRepr::Power(p),
        }
    }
}

impl FromStr for Balance {
    type Err = String;

    /// `proportional`, `uniform` or a power in `[0, 1]`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "proportional" => Ok(Balance::Proportional),
            "uniform" => Ok(Balance::Uniform),
            other => match other.parse::<f64>() {
                Ok(p) => Balance::Power(p).checked(),
                Err(_) => Err(format!("balance {other:?}: expected proportional, uniform or a power in [0, 1]")),
            },
        }
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Balance::Proportional => f.write_str("proportional"),
            Balance::Uniform => f.write_str("uniform"),
            Balance::Power(p) => write!(f, "{p}"),
        }
    }
}

impl Balance {
    fn checked(self) -> Result<Self, String> {
        match self {
            Balance::Power(p) if !(p.is_finite() && (0.0..=1.0).contains(&p)) => {
                Err(format!("balance power {p} must be in [0, 1] (0 = uniform, 1 = proportional)"))
            }
            other => Ok(other),
        }
    }

    /// The exponent `p` of `n^p`.
    pub fn power(&self) -> f64 {
        match self {
            Balance::Proportional => 1.0,
            Balance::Uniform => 0.0,
            Balance::Power(p) => *p,
        }
    }
}

/// The `[sampling]` table of `fit.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    /// How genre weights follow segment counts.
    pub balance: Balance,
    /// Per-genre factors on the balanced weight (genre name → factor ≥ 0).
    pub genre_weights: BTreeMap<String, f64>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self { balance: Balance::Proportional, genre_weights: BTreeMap::new() }
    }
}

impl SamplingConfig {
    /// Whether this is the default (every segment equally often, the sampler of earlier runs).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the balance and the factors; the error is `(field, detail)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.balance.checked().map_err(|detail| ("sampling.balance", detail))?;
        match invalid_genre_factor(&self.genre_weights) {
            Some(detail) => Err(("sampling.genre_weights", detail)),
            None => Ok(()),
        }
    }

    /// Per-genre slots of an epoch of `Σ segments` draws, for genres with `segments[g]` training
    /// segments named `names[g]`; see the module docs. `Err` names a `genre_weights` key that is
    /// not a genre, or says that every weight is zero.
    pub fn slots(&self, names: &[String], segments: &[usize]) -> Result<Vec<usize>, String> {
        if let Some(unknown) = unknown_genre(&self.genre_weights, names) {
            return Err(format!("genre_weights {unknown}"));
        }
        let p = self.balance.power();
        let weights: Vec<f64> = names
            .iter()
            .zip(segments)
            .map(|(name, &n)| {
                let factor = genre_factor(&self.genre_weights, name);
                if n == 0 {
                    0.0
                } else {
                    (n as f64).powf(p) * factor
                }
            })
            .collect();
        let total_weight: f64 = weights.iter().sum();
        if total_weight <= 0.0 {
            return Err("every genre with training segments has weight 0".into());
        }
        let length: usize = segments.iter().sum();
        let exact: Vec<f64> = weights.iter().map(|w| w / total_weight * length as f64).collect();
        let mut slots: Vec<usize> =
            exact.iter().zip(&weights).map(|(&e, &w)| if w > 0.0 { (e.floor() as usize).max(1) } else { 0 }).collect();
        let mut order: Vec<usize> = (0..slots.len()).filter(|&g| weights[g] > 0.0).collect();
        order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
        let missing = length.saturating_sub(slots.iter().sum());
        for &g in order.iter().cycle().take(missing) {
            slots[g] += 1;
        }
        Ok(slots)
    }
}

/// One genre's line of `sampling.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreSampling {
    /// The genre.
    pub genre: String,
    /// Its training segments.
    pub segments: usize,
    /// Its draws per epoch.
    pub slots: usize,
    /// Its share of the draws.
    pub share: f64,
    /// Draws per segment per epoch (1 = as often as unbalanced; 5 = each segment five times).
    pub draws_per_segment: f64,
}

/// A `{ genre = factor }` table's first factor that is negative or not finite, as its message
/// (`[sampling]`'s `genre_weights` and `[adversarial]`'s share these three helpers).
pub(super) fn invalid_genre_factor(factors: &BTreeMap<String, f64>) -> Option<String> {
    factors
        .iter()
        .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        .map(|(genre, w)| format!("{genre} = {w} must be a finite factor ≥ 0"))
}

/// The table's first key that is not one of the run's genres `names`, as its message.
pub(super) fn unknown_genre(factors: &BTreeMap<String, f64>, names: &[String]) -> Option<String> {
    factors
        .keys()
        .find(|k| !names.contains(k))
        .map(|unknown| format!("names `{unknown}`, which is not a genre of the run ({})", names.join(", ")))
}

/// The table's factor for genre `name`: 1 when the table does not name it.
pub(super) fn genre_factor(factors: &BTreeMap<String, f64>, name: &str) -> f64 {
    factors.get(name).copied().unwrap_or(1.0)
}

/// `sampling.json`: the configuration and what it made of the run's genres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingReport {
    /// The configuration.
    pub config: SamplingConfig,
    /// Draws per epoch.
    pub epoch_length: usize,
    /// Per genre, in conditioning order.
    pub genres: Vec<GenreSampling>,
}

impl SamplingReport {
    /// The report for `slots` of genres `names` with `segments`.
    pub fn new(config: &SamplingConfig, names: &[String], segments: &[usize], slots: &[usize]) -> Self {
        let epoch_length = slots.iter().sum::<usize>();
        let genres = names
            .iter()
            .zip(segments.iter().zip(slots))
            .map(|(genre, (&segments, &slots))| GenreSampling {
                genre: genre.clone(),
                segments,
                slots,
                share: slots as f64 / epoch_length.max(1) as f64,
                draws_per_segment: if segments == 0 { 0.0 } else { slots as f64 / segments as f64 },
            })
            .collect();
        Self { config: config.clone(), epoch_length, genres }
    }
}

/// The training run's sampler over `pool` (conditioning rows `genres`), balanced as
/// `config.sampling` says, with its record written to `RUN_DIR/sampling.json` and logged.
pub fn run_sampler(
    pool: Vec<PoolEntry>,
    config: &FitConfig,
    genres: &[String],
    run_dir: &std::path::Path,
) -> Result<BatchSampler, FitError> {
    let mut segments = vec![0usize; genres.len()];
    for entry in &pool {
        segments[entry.genre] += 1;
    }
    let slots = config
        .sampling
        .slots(genres, &segments)
        .map_err(|detail| FitError::InvalidConfig { field: "sampling.genre_weights", detail })?;
    let report = SamplingReport::new(&config.sampling, genres, &segments, &slots);
    let shares: Vec<String> = report
        .genres
        .iter()
        .map(|g| format!("{} {:.1}% ({:.2}×/epoch)", g.genre, 100.0 * g.share, g.draws_per_segment))
        .collect();
    tracing::info!("sampling ({}): {}", config.sampling.balance, shares.join(", "));
    let path = run_dir.join(SAMPLING_FILE);
    let mut json =
        serde_json::to_string_pretty(&report).map_err(|source| FitError::Json { path: path.clone(), source })?;
    json.push('\n');
    crate::file_error::write_file(&path, json.as_bytes())?;
    Ok(if config.sampling.is_default() {
        BatchSampler::new(pool, config.batch_size, config.seed)
    } else {
        BatchSampler::balanced(pool, config.batch_size, config.seed, slots)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["cn", "edm", "orchestral", "rock"].map(String::from).to_vec()
    }

    /// Segments of the Debian corpus (15 s segments every 10 s ≈ 6 per minute): 9, 233, 89, 92 min.
    const SEGMENTS: [usize; 4] = [54, 1398, 534, 552];

    #[test]
    fn balances_split_an_epoch() {
        let total: usize = SEGMENTS.iter().sum();
        let slots = |balance| SamplingConfig { balance, ..Default::default() }.slots(&names(), &SEGMENTS).unwrap();
        assert_eq!(slots(Balance::Proportional), SEGMENTS);
        let uniform = slots(Balance::Uniform);
        assert_eq!(uniform, [635, 635, 634, 634]);
        assert_eq!(uniform.iter().sum::<usize>(), total);
        let sqrt = slots(Balance::Power(0.5));
        assert_eq!(sqrt.iter().sum::<usize>(), total);
        // √n: cn gets 7.35/(7.35+37.39+23.11+23.49) = 8.0 % instead of 2.7 %.
        assert!((sqrt[0] as f64 / total as f64 - 0.0805).abs() < 0.002, "{sqrt:?}");
        assert!(sqrt[0] > SEGMENTS[0] && sqrt[1] < SEGMENTS[1]);
    }

    #[test]
    fn genre_weights_multiply_and_zero_leaves_a_genre_out() {
        let mut config = SamplingConfig { balance: Balance::Uniform, ..Default::default() };
        config.genre_weights.insert("cn".into(), 2.0);
        config.genre_weights.insert("rock".into(), 0.0);
        let slots = config.slots(&names(), &[10, 10, 10, 10]).unwrap();
        assert_eq!(slots, [20, 10, 10, 0]);
        config.genre_weights.insert("jazz".into(), 1.0);
        assert!(config.slots(&names(), &[10, 10, 10, 10]).unwrap_err().contains("`jazz`"));
        let none =
            SamplingConfig { genre_weights: names().into_iter().map(|n| (n, 0.0)).collect(), ..Default::default() };
        assert!(none.slots(&names(), &[1, 1, 1, 1]).is_err());
    }

    #[test]
    fn a_tiny_genre_gets_at_least_one_slot_and_empty_genres_none() {
        let config = SamplingConfig::default();
        let slots = config.slots(&names(), &[0, 1000, 1, 0]).unwrap();
        assert_eq!(slots, [0, 1000, 1, 0]);
        let report = SamplingReport::new(&config, &names(), &[0, 1000, 1, 0], &slots);
        assert_eq!(report.epoch_length, 1001);
        assert_eq!(report.genres[2].draws_per_segment, 1.0);
        assert_eq!(report.genres[0].draws_per_segment, 0.0);
    }

    #[test]
    fn balance_parses_from_toml_and_flags() {
        #[derive(Deserialize)]
        struct T {
            sampling: SamplingConfig,
        }
        let t: T = toml::from_str("[sampling]\nbalance = 0.5\ngenre_weights = { cn = 2.0 }\n").unwrap();
        assert_eq!(t.sampling.balance, Balance::Power(0.5));
        let t: T = toml::from_str("[sampling]\nbalance = \"uniform\"\n").unwrap();
        assert_eq!(t.sampling.balance, Balance::Uniform);
        assert!(toml::from_str::<T>("[sampling]\nbalance = 2.0\n").is_err());
        assert!(toml::from_str::<T>("[sampling]\nbalance = \"flat\"\n").is_err());
        assert_eq!("0.25".parse::<Balance>().unwrap(), Balance::Power(0.25));
        assert!("-1".parse::<Balance>().is_err());
        let json =
            serde_json::to_string(&SamplingConfig { balance: Balance::Power(0.5), ..Default::default() }).unwrap();
        assert_eq!(json, r#"{"balance":0.5,"genre_weights":{}}"#);
        assert_eq!(Balance::Uniform.to_string(), "uniform");
    }
}
