//! Response bodies other than the generated clip itself.

use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;

/// `GET /genres`: what the loaded model can blend, with how much training data stands behind each genre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenresResponse {
    /// The bundle's name.
    pub model: String,
    /// One entry per genre, in the model's order.
    pub genres: Vec<GenreInfo>,
    /// Seconds of audio one decoder output covers (`signal.segment_seconds` cropped to the model's
    /// frames); longer clips are cross-faded segments.
    #[serde(default)]
    pub segment_seconds: f32,
    /// Sample rate of the generated audio, in Hz.
    #[serde(default)]
    pub sample_rate: u32,
    /// Where the decoder runs (`cpu`, `cuda`); only the service knows, so a bundle alone leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_provider: Option<String>,
}

/// One genre of `GET /genres`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreInfo {
    /// The name used in `blend`.
    pub name: String,
    /// Training clips (segments) of the genre.
    pub training_clips: usize,
    /// Source tracks they were cut from.
    pub training_tracks: usize,
    /// Hours of audio in those tracks.
    pub training_hours: f64,
}

impl GenresResponse {
    /// The `/genres` body of a bundle, without an execution provider; genres without a dataset entry
    /// report zero clips.
    pub fn from_manifest(manifest: &Manifest) -> Self {
        let genres = manifest
            .genres
            .iter()
            .map(|name| {
                let dataset = manifest.training.dataset.iter().find(|d| &d.genre == name);
                GenreInfo {
                    name: name.clone(),
                    training_clips: dataset.map_or(0, |d| d.segments),
                    training_tracks: dataset.map_or(0, |d| d.tracks),
                    training_hours: dataset.map_or(0.0, |d| d.hours),
                }
            })
            .collect();
        Self {
            model: manifest.name.clone(),
            genres,
            segment_seconds: (manifest.signal.model_frames() * manifest.signal.hop_length) as f32
                / manifest.signal.sample_rate as f32,
            sample_rate: manifest.signal.sample_rate,
            execution_provider: None,
        }
    }
}
