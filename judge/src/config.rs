//! [`JudgeConfig`]: every setting of a judgement, from a TOML file (`--config`) and flags, with
//! defaults sized so that judging a demo-sized bundle takes a few minutes on two cores.

use serde::{Deserialize, Serialize};

use crate::JudgeError;

/// The settings of `melfuse-judge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeConfig {
    /// Length of every generated clip and reference excerpt, in seconds.
    pub seconds: f32,
    /// Seeds of the `blend=g:1` clips of each genre (one clip per seed).
    pub seeds: Vec<u64>,
    /// Seeds of each blend-sweep point.
    pub sweep_seeds: Vec<u64>,
    /// Weights of genre `b` along a sweep from `a` to `b`.
    pub sweep_weights: Vec<f64>,
    /// Genre pairs to sweep and morph, as `a:b`; empty means every pair of the bundle's genres.
    pub pairs: Vec<String>,
    /// Windows (each `seconds` long) of a morph clip from `a` to `b`; 0 skips morphs.
    pub morph_windows: usize,
    /// Seeds of the morph clips of each pair, whose windows' `P(b)` are averaged. Empty (the
    /// default): one morph per pair, at the first of `seeds`. A morph's later windows lie where
    /// its walks leave their bank stretches, and one seed's figure moved from 0.49 to 1.00 with
    /// the rule for that join (`models/demo/README.md`, "long clips").
    pub morph_seeds: Vec<u64>,
    /// Most excerpts cut from one reference track (evenly spaced along it).
    pub max_excerpts_per_track: usize,
    /// Extra request fields for every generated clip (e.g. `temperature`, `sampler`), as a client
    /// would send them; the service's defaults otherwise.
    pub request: Vec<(String, String)>,
    /// Genre folders of other tracks that train the genre classifier, for a reference with too
    /// few tracks per genre to give both roles (see [`crate::reference`]); every reference track is
    /// then held out. Absent: the reference's even-numbered tracks train the classifier.
    pub classifier_reference: Option<std::path::PathBuf>,
    /// The classifier's accuracy on the held-out reference below which the judge refuses to
    /// report ([`crate::classifier::MIN_HELD_OUT_ACCURACY`] by default). Recorded music with few
    /// tracks per genre may need less; the report carries the accuracy reached, so a lowered bar
    /// is visible next to every figure.
    pub min_held_out_accuracy: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            seconds: 15.0,
            seeds: (1..=8).collect(),
            sweep_seeds: (1..=4).collect(),
            sweep_weights: vec![0.0, 0.25, 0.5, 0.75, 1.0],
            pairs: Vec::new(),
            morph_windows: 3,
            morph_seeds: Vec::new(),
            max_excerpts_per_track: 4,
            request: Vec::new(),
            classifier_reference: None,
            min_held_out_accuracy: crate::classifier::MIN_HELD_OUT_ACCURACY,
        }
    }
}

impl JudgeConfig {
    /// Reads a TOML file of any subset of the fields.
    pub fn load(path: &std::path::Path) -> Result<Self, JudgeError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| JudgeError::Io { path: path.to_path_buf(), source })?;
        toml::from_str(&text).map_err(|e| JudgeError::Config(format!("{}: {e}", path.display())))
    }

    /// The seeds of each pair's morph clips: `morph_seeds`, or the first of `seeds`.
    pub fn morph_clip_seeds(&self) -> Vec<u64> {
        if self.morph_seeds.is_empty() {
            self.seeds.iter().take(1).copied().collect()
        } else {
            self.morph_seeds.clone()
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), JudgeError> {
        let bad = |detail: String| Err(JudgeError::Config(detail));
        if !(self.seconds.is_finite() && self.seconds >= 2.0) {
            return bad(format!(
                "seconds: {} must be at least 2 (the pulse looks for periods up to 1 s)",
                self.seconds
            ));
        }
        if self.seeds.len() < 2 {
            return bad("seeds: at least 2 (diversity and distances need two clips per genre)".into());
        }
        if self.sweep_weights.iter().any(|w| !(w.is_finite() && (0.0..=1.0).contains(w))) {
            return bad(format!("sweep_weights: {:?} must lie in [0, 1]", self.sweep_weights));
        }
        if !self.sweep_weights.is_empty() && self.sweep_seeds.is_empty() {
            return bad("sweep_seeds: at least one seed when sweep_weights is not empty".into());
        }
        if !(self.min_held_out_accuracy > 0.0 && self.min_held_out_accuracy <= 1.0) {
            return bad(format!("min_held_out_accuracy: {} must lie in (0, 1]", self.min_held_out_accuracy));
        }
        if self.max_excerpts_per_track == 0 {
            return bad("max_excerpts_per_track: must be at least 1".into());
        }
        if let Some((name, _)) = self
            .request
            .iter()
            .find(|(name, _)| ["blend", "morph", "seed", "seconds", "format"].contains(&name.as_str()))
        {
            return bad(format!("request: `{name}` is set by the judge itself"));
        }
        Ok(())
    }

    /// The genre pairs `(a, b)` as indices into `genres`: `pairs`, or every pair in genre order.
    pub fn genre_pairs(&self, genres: &[String]) -> Result<Vec<(usize, usize)>, JudgeError> {
        if self.pairs.is_empty() {
            return Ok((0..genres.len()).flat_map(|a| (a + 1..genres.len()).map(move |b| (a, b))).collect());
        }
        self.pairs
            .iter()
            .map(|pair| {
                let find = |name: &str| {
                    genres.iter().position(|g| g == name).ok_or_else(|| {
                        JudgeError::Config(format!("pairs: `{pair}` names `{name}`, not one of {}", genres.join(", ")))
                    })
                };
                match pair.split_once(':') {
                    Some((a, b)) if a != b => Ok((find(a.trim())?, find(b.trim())?)),
                    _ => Err(JudgeError::Config(format!("pairs: `{pair}` must be two different genres as a:b"))),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genres() -> Vec<String> {
        ["cn", "edm", "rock"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn morphs_take_the_first_seed_unless_given_their_own() {
        let config = JudgeConfig::default();
        assert_eq!(config.morph_clip_seeds(), vec![1]);
        let own = JudgeConfig { morph_seeds: vec![3, 4, 5], ..JudgeConfig::default() };
        assert_eq!(own.morph_clip_seeds(), vec![3, 4, 5]);
        let parsed: JudgeConfig = toml::from_str("morph_seeds = [7, 8]").unwrap();
        assert_eq!(parsed.morph_clip_seeds(), vec![7, 8]);
    }

    #[test]
    fn defaults_validate_and_pair_every_genre() {
        let config = JudgeConfig::default();
        config.validate().unwrap();
        assert_eq!(config.genre_pairs(&genres()).unwrap(), vec![(0, 1), (0, 2), (1, 2)]);
        let config = JudgeConfig { pairs: vec!["rock:cn".into()], ..JudgeConfig::default() };
        assert_eq!(config.genre_pairs(&genres()).unwrap(), vec![(2, 0)]);
    }

    #[test]
    fn bad_settings_name_the_field() {
        for (config, field) in [
            (JudgeConfig { seconds: 0.5, ..JudgeConfig::default() }, "seconds"),
            (JudgeConfig { seeds: vec![1], ..JudgeConfig::default() }, "seeds"),
            (JudgeConfig { sweep_weights: vec![1.5], ..JudgeConfig::default() }, "sweep_weights"),
            (JudgeConfig { max_excerpts_per_track: 0, ..JudgeConfig::default() }, "max_excerpts_per_track"),
            (JudgeConfig { min_held_out_accuracy: 0.0, ..JudgeConfig::default() }, "min_held_out_accuracy"),
            (JudgeConfig { request: vec![("seed".into(), "3".into())], ..JudgeConfig::default() }, "request"),
        ] {
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(field), "{error}");
        }
        for pair in ["cn:cn", "cn", "cn:jazz"] {
            let config = JudgeConfig { pairs: vec![pair.into()], ..JudgeConfig::default() };
            assert!(config.genre_pairs(&genres()).unwrap_err().to_string().contains("pairs"));
        }
        let parsed: JudgeConfig = toml::from_str("seconds = 10.0\nseeds = [3, 4]").unwrap();
        assert_eq!((parsed.seconds, parsed.seeds.clone()), (10.0, vec![3, 4]));
        assert!(toml::from_str::<JudgeConfig>("colour = 1").is_err());
    }
}
