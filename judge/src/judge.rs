//! One judgement, end to end: reference excerpts → classifier → ceiling → generated clips through
//! the service → every measure per genre, the blend curves and the morphs.

use std::path::Path;
use std::time::Instant;

use melfuse_audio::mel::MelSpectrogram;
use melfuse_audio::vocoder::Vocoder;
use melfuse_serve::config::ServeConfig;
use rayon::prelude::*;

use crate::analysis::{mean, AnalysisConfig, ClipAnalysis};
use crate::classifier::{argmax, GenreClassifier, EMBEDDING_DIMS};
use crate::config::JudgeConfig;
use crate::distance::{frechet_distance, mean_pairwise_distance};
use crate::generate::{ClipRequest, ServiceClips};
use crate::reference::{load_excerpts, Excerpt, ReferenceTracks, Role};
use crate::report::{
    correlation, crossing, ratio, Accuracy, BlendCurve, ClassifierSummary, ClipVerdict, Distance, Diversity,
    GenreReport, JudgeReport, Measure, MorphCurve,
};
use crate::JudgeError;

/// A measured clip of one of the three sets.
#[derive(Debug, Clone)]
pub struct Judged {
    /// Its genre (the requested one for generated clips).
    pub genre: usize,
    /// What the analysis measured.
    pub analysis: ClipAnalysis,
    /// Class probabilities.
    pub probabilities: Vec<f64>,
    /// Coordinates in the embedding.
    pub embedding: Vec<f64>,
    /// For held-out reference excerpts (and their ceiling clips), the half of the reference its
    /// track belongs to; 0 otherwise.
    pub half: u8,
}

/// What a judgement produced: the report and the clips behind its pictures.
pub struct Judgement {
    /// The numbers.
    pub report: JudgeReport,
    /// Held-out reference excerpts.
    pub reference: Vec<Judged>,
    /// The same excerpts through mel → vocoder.
    pub ceiling: Vec<Judged>,
    /// The `blend=g:1` clips.
    pub generated: Vec<Judged>,
}

/// Judges the bundle `serve.model` against the genre folders under `reference_dir`.
pub fn judge(serve: &ServeConfig, reference_dir: &Path, config: &JudgeConfig) -> Result<Judgement, JudgeError> {
    config.validate()?;
    let started = Instant::now();
    let service = ServiceClips::start(serve)?;
    let manifest = service.generator().manifest().clone();
    let genres = &manifest.genres;
    let pairs = config.genre_pairs(genres)?;
    let rate = manifest.signal.sample_rate;
    let analysis = AnalysisConfig::new(rate)?;
    let excerpt_samples = (f64::from(config.seconds) * f64::from(rate)).round() as usize;

    tracing::info!("reading the reference");
    let tracks = match &config.classifier_reference {
        Some(classifier) => ReferenceTracks::separate(reference_dir, classifier, genres)?,
        None => ReferenceTracks::split(reference_dir, genres)?,
    };
    let excerpts = load_excerpts(&tracks, rate, excerpt_samples, config.max_excerpts_per_track)?;
    let analysed: Vec<ClipAnalysis> = excerpts.par_iter().map(|e| analysis.analyze(&e.samples)).collect();

    let train: Vec<usize> = (0..excerpts.len()).filter(|&i| excerpts[i].role == Role::Train).collect();
    let held_out: Vec<usize> = (0..excerpts.len()).filter(|&i| excerpts[i].role != Role::Train).collect();

    // Every excerpt through mel → the service's vocoder: the ceiling of the held-out ones, and a
    // second view of the training ones so the classifier learns genre, not vocoder texture.
    tracing::info!("vocoding the reference");
    let mel = MelSpectrogram::new(&manifest.signal).map_err(|e| JudgeError::Analysis(e.to_string()))?;
    let vocoder = Vocoder::new(&manifest.signal, &serve.vocoder).map_err(|e| JudgeError::Analysis(e.to_string()))?;
    let range = manifest.normalization;
    let vocoded: Vec<ClipAnalysis> = excerpts
        .par_iter()
        .map(|excerpt: &Excerpt| {
            // The model's output range clips the dB mel: the ceiling cannot be brighter or darker.
            let db = range.denormalize(&range.normalize(&mel.db(&excerpt.samples)));
            let mut samples = vocoder.db_to_audio(db.view(), 0);
            samples.resize(excerpt.samples.len(), 0.0);
            analysis.analyze(&samples)
        })
        .collect();

    let training_rows: Vec<Vec<f64>> =
        train.iter().flat_map(|&i| [analysed[i].features.clone(), vocoded[i].features.clone()]).collect();
    let training_labels: Vec<usize> = train.iter().flat_map(|&i| [excerpts[i].genre; 2]).collect();
    let classifier = GenreClassifier::fit(&training_rows, &training_labels, genres.len());
    let half = |role: Role| if let Role::HeldOut(h) = role { h } else { 0 };
    let judged = |genre: usize, half: u8, analysis: ClipAnalysis| Judged {
        genre,
        probabilities: classifier.probabilities(&analysis.features),
        embedding: classifier.embed(&analysis.features),
        analysis,
        half,
    };
    let reference: Vec<Judged> =
        held_out.iter().map(|&i| judged(excerpts[i].genre, half(excerpts[i].role), analysed[i].clone())).collect();
    let ceiling: Vec<Judged> =
        held_out.iter().map(|&i| judged(excerpts[i].genre, half(excerpts[i].role), vocoded[i].clone())).collect();
    let held_out_accuracy = accuracy(&reference);
    tracing::info!(held_out_accuracy, "classifier trained");
    if held_out_accuracy < config.min_held_out_accuracy {
        let per_genre: Vec<String> =
            (0..genres.len()).map(|g| format!("{} {:.2}", genres[g], genre_accuracy(&reference, g))).collect();
        return Err(JudgeError::CannotJudge(format!(
            "the genre classifier recognises only {:.1} % of the held-out reference excerpts ({}); below {:.0} % its \
             verdicts on generated clips would be noise. Give the reference more (or longer) tracks per genre, \
             or genres that differ in sound (or lower --min-held-out-accuracy, knowingly).",
            100.0 * held_out_accuracy,
            per_genre.join(", "),
            100.0 * config.min_held_out_accuracy
        )));
    }

    tracing::info!("generating through the service");
    let extra = &config.request;
    let mut generated = Vec::new();
    for (g, genre) in genres.iter().enumerate() {
        for &seed in &config.seeds {
            let samples = service.generate(&ClipRequest::blend(&format!("{genre}:1"), seed, config.seconds, extra))?;
            generated.push(judged(g, 0, analysis.analyze(&samples)));
        }
    }
    let mut blends = Vec::new();
    let mut morphs = Vec::new();
    for &(a, b) in &pairs {
        if !config.sweep_weights.is_empty() {
            blends.push(blend_curve(&service, &classifier, &analysis, genres, (a, b), config)?);
        }
        if config.morph_windows > 0 {
            morphs.push(morph_curve(&service, &classifier, &analysis, genres, (a, b), config, excerpt_samples)?);
        }
    }

    let seeds_per_genre = config.seeds.len().max(1);
    let clips: Vec<ClipVerdict> = generated
        .iter()
        .enumerate()
        .map(|(i, clip)| ClipVerdict {
            genre: genres[clip.genre].clone(),
            seed: config.seeds[i % seeds_per_genre],
            heard_as: genres[argmax(&clip.probabilities)].clone(),
            probability: clip.probabilities[clip.genre],
        })
        .collect();
    let rows: Vec<GenreReport> =
        (0..genres.len()).map(|g| genre_report(&genres[g], Some(g), &reference, &ceiling, &generated)).collect();
    let overall = genre_report("overall", None, &reference, &ceiling, &generated);
    let report = JudgeReport {
        bundle: serve.model.display().to_string(),
        model: manifest.name.clone(),
        reference: reference_dir.display().to_string(),
        settings: config.clone(),
        postfilter: service.generator().postfilter().is_some(),
        classifier: ClassifierSummary {
            train_excerpts: training_rows.len(),
            held_out_excerpts: held_out.len(),
            held_out_accuracy,
            features: analysed.first().map_or(0, |a| a.features.len()),
            embedding_dims: EMBEDDING_DIMS,
        },
        genres: rows,
        overall,
        blends,
        morphs,
        clips,
        seconds_taken: started.elapsed().as_secs_f64(),
    };
    Ok(Judgement { report, reference, ceiling, generated })
}

/// Fraction of clips whose most probable class is their genre.
fn accuracy(clips: &[Judged]) -> f64 {
    ratio(clips.iter().filter(|c| argmax(&c.probabilities) == c.genre).count() as f64, clips.len() as f64)
}

/// The share of `clips` whose most probable class is each class (empty for no clips).
fn heard_as(clips: &[Judged]) -> Vec<f64> {
    let classes = clips.first().map_or(0, |c| c.probabilities.len());
    let mut counts = vec![0.0; classes];
    for clip in clips {
        counts[argmax(&clip.probabilities)] += 1.0;
    }
    counts.iter().map(|c| ratio(*c, clips.len() as f64)).collect()
}

fn genre_accuracy(clips: &[Judged], genre: usize) -> f64 {
    accuracy(&clips.iter().filter(|c| c.genre == genre).cloned().collect::<Vec<_>>())
}

/// The measures over the clips of `genre` (all clips for `None`) of the held-out `reference`,
/// its `ceiling` and the `generated` clips.
pub fn genre_report(
    name: &str,
    genre: Option<usize>,
    reference: &[Judged],
    ceiling: &[Judged],
    generated: &[Judged],
) -> GenreReport {
    let pick = |set: &[Judged]| -> Vec<Judged> {
        set.iter().filter(|c| genre.is_none_or(|g| c.genre == g)).cloned().collect()
    };
    let (reference, ceiling, generated) = (pick(reference), pick(ceiling), pick(generated));
    let measure = |f: fn(&ClipAnalysis) -> f64| {
        let m = |set: &[Judged]| mean(&set.iter().map(|c| f(&c.analysis)).collect::<Vec<_>>());
        Measure::new(m(&reference), m(&ceiling), m(&generated))
    };
    let embeddings = |set: &[Judged]| set.iter().map(|c| c.embedding.clone()).collect::<Vec<_>>();
    // The two halves of the held-out reference, split by track (excerpts of one track are alike).
    let half = |h: u8| reference.iter().filter(|c| c.half == h).map(|c| c.embedding.clone()).collect::<Vec<_>>();
    let split_half = frechet_distance(&half(0), &half(1)).unwrap_or(f64::NAN);
    let to_reference = |set: &[Judged]| frechet_distance(&embeddings(set), &embeddings(&reference)).unwrap_or(f64::NAN);
    let (ceiling_distance, generated_distance) = (to_reference(&ceiling), to_reference(&generated));
    let diversity_reference = mean_pairwise_distance(&embeddings(&reference)).unwrap_or(f64::NAN);
    let diversity_generated = mean_pairwise_distance(&embeddings(&generated)).unwrap_or(f64::NAN);
    GenreReport {
        genre: name.to_string(),
        reference_excerpts: reference.len(),
        generated_clips: generated.len(),
        accuracy: Accuracy {
            reference: accuracy(&reference),
            ceiling: accuracy(&ceiling),
            generated: accuracy(&generated),
            generated_heard_as: heard_as(&generated),
        },
        pulse: measure(|a| a.pulse),
        flux: measure(|a| a.flux),
        harmonic_peak_db: measure(|a| a.harmonic_peak_db),
        distance: Distance {
            split_half,
            ceiling: ceiling_distance,
            generated: generated_distance,
            ceiling_ratio: ratio(ceiling_distance, split_half),
            generated_ratio: ratio(generated_distance, split_half),
        },
        diversity: Diversity {
            reference: diversity_reference,
            generated: diversity_generated,
            ratio: ratio(diversity_generated, diversity_reference),
        },
    }
}

/// `P(b) / (P(a) + P(b))` of a probability row.
fn share_of_b(probabilities: &[f64], (a, b): (usize, usize)) -> f64 {
    ratio(probabilities[b], probabilities[a] + probabilities[b])
}

fn blend_curve(
    service: &ServiceClips,
    classifier: &GenreClassifier,
    analysis: &AnalysisConfig,
    genres: &[String],
    (a, b): (usize, usize),
    config: &JudgeConfig,
) -> Result<BlendCurve, JudgeError> {
    let mut p_b = Vec::new();
    let mut probabilities = Vec::new();
    for &w in &config.sweep_weights {
        let blend = format!("{}:{},{}:{}", genres[a], 1.0 - w, genres[b], w);
        let mut shares = Vec::new();
        let mut sums = vec![0.0; genres.len()];
        for &seed in &config.sweep_seeds {
            let samples = service.generate(&ClipRequest::blend(&blend, seed, config.seconds, &config.request))?;
            let p = classifier.probabilities(&analysis.analyze(&samples).features);
            shares.push(share_of_b(&p, (a, b)));
            sums.iter_mut().zip(&p).for_each(|(s, v)| *s += v);
        }
        p_b.push(mean(&shares));
        probabilities.push(sums.iter().map(|s| s / config.sweep_seeds.len() as f64).collect());
    }
    Ok(BlendCurve {
        a: genres[a].clone(),
        b: genres[b].clone(),
        correlation: correlation(&config.sweep_weights, &p_b),
        crossing: crossing(&config.sweep_weights, &p_b),
        weights: config.sweep_weights.clone(),
        p_b,
        probabilities,
    })
}

fn morph_curve(
    service: &ServiceClips,
    classifier: &GenreClassifier,
    analysis: &AnalysisConfig,
    genres: &[String],
    (a, b): (usize, usize),
    config: &JudgeConfig,
    window: usize,
) -> Result<MorphCurve, JudgeError> {
    let windows = config.morph_windows;
    let morph = format!("{}:1 -> {}:1", genres[a], genres[b]);
    let seeds = config.morph_clip_seeds();
    let mut p_b = vec![0.0; windows];
    for &seed in &seeds {
        let samples =
            service.generate(&ClipRequest::morph(&morph, seed, config.seconds * windows as f32, &config.request))?;
        for (sum, chunk) in p_b.iter_mut().zip(samples.chunks_exact(window)) {
            *sum +=
                share_of_b(&classifier.probabilities(&analysis.analyze(chunk).features), (a, b)) / seeds.len() as f64;
        }
    }
    let centres = (0..windows).map(|k| (k as f64 + 0.5) * f64::from(config.seconds)).collect();
    Ok(MorphCurve { a: genres[a].clone(), b: genres[b].clone(), window_seconds: centres, p_b, clips: seeds.len() })
}
