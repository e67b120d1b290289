//! Evaluation on a tiny prepared cache with a freshly initialised tiny model: the metrics, the
//! centroids, both pictures with and without a font, and the files `run` writes.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use melfuse_audio::DbRange;
use melfuse_models::{Vae, VaeConfig};

use super::centroids::{centroid_separation, CentroidAccumulator, Centroids};
use super::curves::{render_curves, MetricsHistory, CURVES_SIZE};
use super::fonts::{load_font, load_font_from, TextRendering};
use super::grid::{render_grid, BACKGROUND};
use super::metrics::{clip_errors, clip_kl};
use super::*;
use crate::prepare::tiny::two_second_signal;
use crate::prepare::{self, PrepareConfig};
use crate::synth::{write_corpus, Genre, SynthCorpusConfig};

/// A prepared cache of `clips` 3 s clips per genre: 2 s segments every 1 s (2 per clip),
/// 64 mels × 160 frames.
fn tiny_cache(root: &Path, genres: &[(Genre, usize)]) -> Cache {
    let corpus = root.join("corpus");
    std::fs::create_dir_all(&corpus).expect("corpus folder");
    for &(genre, clips) in genres {
        // One genre per synthetic corpus so each can have its own clip count; then its folder
        // moves into the shared corpus.
        let rendered = root.join(format!("synth-{genre}"));
        let config = SynthCorpusConfig {
            clips_per_genre: clips,
            seconds: 3.0,
            sample_rate: 22_050,
            genres: vec![genre],
            ..Default::default()
        };
        write_corpus(&rendered, &config, false).expect("synthetic corpus");
        std::fs::rename(rendered.join(genre.as_str()), corpus.join(genre.as_str())).expect("move genre folder");
    }
    let config = PrepareConfig { signal: two_second_signal(32), validation_fraction: 0.3, ..Default::default() };
    let out = root.join("cache");
    prepare::run(&corpus, &out, &config, false).expect("prepare");
    Cache::open(&out).expect("open cache")
}

fn three_genres(root: &Path) -> Cache {
    tiny_cache(root, &[(Genre::Cn, 3), (Genre::Edm, 3), (Genre::Orchestral, 3)])
}

fn tiny_model(cache: &Cache, device: &Device) -> (Vae, VaeConfig) {
    let mut config = VaeConfig::tiny(cache.genres().len());
    config.frames = cache.frames();
    (config.init(device).expect("valid config"), config)
}

const METRICS_JSONL: &str = r#"{"kind":"train","step":0,"lr":0.0001,"beta":0.0,"loss":0.25,"reconstruction":0.25,"kl":3.0,"samples_per_second":10.0,"nonfinite_skipped":0}
{"kind":"train","step":10,"lr":0.001,"beta":0.00001,"loss":0.1,"reconstruction":0.099,"kl":40.0,"samples_per_second":11.0,"nonfinite_skipped":0}
{"kind":"train","step":20,"lr":0.001,"beta":0.00002,"loss":NaN,"reconstruction":NaN,"kl":NaN,"samples_per_second":11.0,"nonfinite_skipped":1}
{"kind":"train","step":30,"lr":0.001,"beta":0.00003,"loss":null,"reconstruction":null,"kl":null,"samples_per_second":11.0,"nonfinite_skipped":2}
{"kind":"nonfinite","step":30,"lr":0.001,"action":"skipped","consecutive":1,"total":2}
{"kind":"validation","step":30,"loss":0.08,"reconstruction":0.079,"kl":35.0}
{"kind":"train","step":40,"lr":0.0005,"beta":0.00004,"loss":0.05,"reconstruction":0.049,"kl":30.0,"samples_per_second":12.0,"nonfinite_skipped":2}
{"kind":"validation","step":40,"loss":0.06,"reconstruction":0.059,"kl":28.0}
{"kind":"train","step":50,"lr":0.0005,"be"#;

fn assert_png(path: &Path, size: (u32, u32)) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!((image.width(), image.height()), size, "{}", path.display());
}

#[test]
fn clip_errors_are_zero_for_a_perfect_reconstruction_and_scale_with_the_db_span() {
    let range = DbRange::new(-80.0, 20.0).expect("range");
    let target = [0.0, 0.25, 0.5, 1.0];
    let perfect = clip_errors(&target, &target, &range);
    assert_eq!((perfect.mse, perfect.mean_abs_db), (0.0, 0.0));

    // A uniform 0.1 offset inside [0, 1]: MSE 0.01, and 0.1 of the 100 dB span = 10 dB.
    let target = [0.1, 0.3, 0.5, 0.7];
    let shifted: Vec<f32> = target.iter().map(|v| v + 0.1).collect();
    let errors = clip_errors(&target, &shifted, &range);
    assert!((errors.mse - 0.01).abs() < 1e-6, "{errors:?}");
    assert!((errors.mean_abs_db - 10.0).abs() < 1e-4, "{errors:?}");
    assert!((errors.mean_abs_db - f64::from(range.span()) * errors.mse.sqrt()).abs() < 1e-4);

    // Overshooting the ceiling costs MSE but no dB: the vocoder clips it away.
    let errors = clip_errors(&[1.0], &[1.2], &range);
    assert!((errors.mse - 0.04).abs() < 1e-6 && errors.mean_abs_db.abs() < 1e-9, "{errors:?}");
}

#[test]
fn contrast_biases_tell_a_wash_from_an_even_error() {
    let range = DbRange::new(-80.0, 20.0).expect("range");
    // Ten bins from quiet to loud: the quietest fifth is bins 0–1, the loudest bins 8–9.
    let target: Vec<f32> = (0..10).map(|i| 0.1 + 0.08 * i as f32).collect();
    let even: Vec<f32> = target.iter().map(|v| v + 0.05).collect();
    let errors = clip_errors(&target, &even, &range);
    assert!((errors.quiet_bias_db - 5.0).abs() < 1e-4 && (errors.loud_bias_db - 5.0).abs() < 1e-4, "{errors:?}");

    // A wash: every bin pulled halfway towards the clip's mean (0.46). Quiet bins come back
    // louder, loud ones quieter, and the mean absolute error alone cannot say which.
    let washed: Vec<f32> = target.iter().map(|v| 0.46 + 0.5 * (v - 0.46)).collect();
    let errors = clip_errors(&target, &washed, &range);
    assert!(errors.quiet_bias_db > 15.0 && errors.loud_bias_db < -15.0, "{errors:?}");
    assert!((errors.quiet_bias_db + errors.loud_bias_db).abs() < 1e-4, "symmetric wash: {errors:?}");

    // Ties at the cut are split by position, so the counts stay exact on a flat clip.
    let flat = clip_errors(&[0.5; 7], &[0.6; 7], &range);
    assert!((flat.quiet_bias_db - 10.0).abs() < 1e-4 && (flat.loud_bias_db - 10.0).abs() < 1e-4, "{flat:?}");
}

#[test]
fn clip_kl_matches_the_model_crates_convention() {
    assert_eq!(clip_kl(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
    // mu = 1, logvar = 0: ½ per dimension, summed.
    assert!((clip_kl(&[1.0, 1.0, 1.0, 1.0], &[0.0; 4]) - 2.0).abs() < 1e-12);
    let device = Device::flex();
    let mu = Tensor::<2>::from_floats([[0.3, -1.2, 0.5]], &device);
    let logvar = Tensor::<2>::from_floats([[-0.4, 0.7, 0.0]], &device);
    let expected = tensor_values(melfuse_models::kl_divergence(mu, logvar)).expect("values")[0];
    assert!((clip_kl(&[0.3, -1.2, 0.5], &[-0.4, 0.7, 0.0]) - f64::from(expected)).abs() < 1e-5);
}

#[test]
fn centroids_are_the_per_genre_means_of_mu() {
    let mut accumulator = CentroidAccumulator::new(3, 2);
    accumulator.add(&[1.0, 2.0, 5.0, -1.0], &[0, 1]);
    accumulator.add(&[3.0, 4.0], &[0]);
    let genres = ["a", "b", "c"].map(String::from);
    let centroids = accumulator.centroids(&genres);
    assert_eq!(centroids.centroids, vec![vec![2.0, 3.0], vec![5.0, -1.0], vec![0.0, 0.0]]);
    assert_eq!(centroids.clips_per_genre, vec![2, 1, 0]);
    assert_eq!(centroids.latent_dim, 2);
    centroids.validate().expect("valid shape");
    let spread = accumulator.within_genre_rms();
    assert!((spread[0].expect("clips") - 2f64.sqrt()).abs() < 1e-9, "{spread:?}");
    assert_eq!(spread[1], Some(0.0));
    assert_eq!(spread[2], None);

    let separation = centroid_separation(&centroids, spread);
    assert!((separation.distances[0][1] - 5.0).abs() < 1e-9);
    assert_eq!(separation.distances[1][0], separation.distances[0][1]);
    assert_eq!(separation.distances[2][2], 0.0);
    // The genre without clips is left out of the ratio: 5 / mean(√2, 0).
    let ratio = separation.separation_ratio.expect("ratio");
    assert!((ratio - 5.0 / (2f64.sqrt() / 2.0)).abs() < 1e-9, "{ratio}");
    assert_eq!(centroids.blend(&[0.5, 0.5, 0.0]), vec![3.5, 1.0]);
}

#[test]
fn metrics_and_centroids_of_a_fresh_model_on_a_tiny_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = three_genres(dir.path());
    let device = Device::flex();
    let (model, _) = tiny_model(&cache, &device);
    let evaluator = Evaluator { batch_size: 4, ..Evaluator::new(&model, &cache, &device) };

    let metrics = evaluator.reconstruction(None).expect("metrics");
    assert_eq!(metrics.genres.len(), 3);
    assert!(!metrics.includes_training_clips);
    let mut clips = 0;
    for (g, genre) in metrics.genres.iter().enumerate() {
        assert_eq!(genre.genre, cache.genres()[g]);
        assert_eq!(genre.split, Split::Validation);
        let expected = cache.segments(Split::Validation).iter().filter(|s| s.genre == g).count();
        assert!(expected > 0);
        assert_eq!((genre.metrics.clips, genre.validation_clips), (expected, expected));
        let m = genre.metrics;
        for value in [m.mse, m.mean_abs_db_error, m.kl] {
            let value = value.expect("clips were evaluated");
            assert!(value.is_finite() && value >= 0.0, "{genre:?}");
        }
        // |e| ≤ sqrt(mean e²) for the part inside [0, 1]; the decoder's sigmoid never leaves it.
        let db_bound = f64::from(cache.db_range().span()) * m.mse.expect("mse").sqrt();
        assert!(m.mean_abs_db_error.expect("db") <= db_bound + 1e-6, "{m:?}");
        clips += expected;
    }
    assert_eq!(metrics.overall.clips, clips);
    let weighted: f64 = metrics.genres.iter().map(|g| g.metrics.mse.unwrap_or(0.0) * g.metrics.clips as f64).sum();
    assert!((metrics.overall.mse.expect("mse") - weighted / clips as f64).abs() < 1e-12);

    // A batch of 4 and a batch of 16 give the same numbers: rows are independent in inference.
    let again = Evaluator { batch_size: 16, ..evaluator }.reconstruction(None).expect("metrics");
    let (a, b) = (metrics.overall.mse.expect("mse"), again.overall.mse.expect("mse"));
    assert!((a - b).abs() < 1e-6 * a.max(1e-9), "{a} vs {b}");

    let accumulator = evaluator.accumulate_centroids().expect("centroids");
    let centroids = accumulator.centroids(cache.genres());
    let latent = model.latent_dim();
    assert_eq!(centroids.centroids.len(), 3);
    assert!(centroids.centroids.iter().all(|row| row.len() == latent));
    // Hand-computed: encode each training clip alone and average per genre.
    let mut sums = vec![vec![0.0f64; latent]; 3];
    let mut counts = [0usize; 3];
    for (i, segment) in cache.segments(Split::Train).iter().enumerate() {
        let input = batch_tensor(evaluator.clip(Split::Train, i).expect("clip"), 1, &cache, &device);
        let mu = tensor_values(model.encode(input).0).expect("mu");
        for (s, v) in sums[segment.genre].iter_mut().zip(mu) {
            *s += f64::from(v);
        }
        counts[segment.genre] += 1;
    }
    assert_eq!(centroids.clips_per_genre, counts.to_vec());
    for g in 0..3 {
        for (z, &value) in centroids.centroids[g].iter().enumerate() {
            let expected = sums[g][z] / counts[g] as f64;
            assert!((f64::from(value) - expected).abs() < 1e-4, "genre {g} dim {z}: {value} vs {expected}");
        }
    }
}

#[test]
fn a_genre_without_validation_clips_is_evaluated_on_training_clips_and_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A genre with a single track keeps it for training.
    let cache = tiny_cache(dir.path(), &[(Genre::Cn, 3), (Genre::Edm, 1)]);
    let device = Device::flex();
    let (model, _) = tiny_model(&cache, &device);
    let metrics = Evaluator::new(&model, &cache, &device).reconstruction(None).expect("metrics");
    let edm = &metrics.genres[1];
    assert_eq!((edm.genre.as_str(), edm.split, edm.validation_clips), ("edm", Split::Train, 0));
    assert!(edm.metrics.clips > 0 && edm.note.is_some());
    assert_eq!(metrics.genres[0].split, Split::Validation);
    assert!(metrics.includes_training_clips);
}

#[test]
fn metrics_history_skips_unreadable_lines_and_keeps_null_values_as_nan() {
    let history = MetricsHistory::parse(METRICS_JSONL);
    // The NaN line is not JSON and the torn last line is incomplete.
    assert_eq!(history.unreadable_lines, 2);
    assert_eq!(history.train.len(), 4);
    assert_eq!(history.validation.len(), 2);
    assert_eq!(history.nonfinite_steps, [30]);
    assert!(history.train[2].loss.is_nan() && history.train[2].lr == 0.001);
}

#[test]
fn curves_render_at_the_requested_size_with_and_without_a_font() {
    let history = MetricsHistory::parse(METRICS_JSONL);
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in [("labelled.png", load_font()), ("plain.png", TextRendering::None)] {
        let path = dir.path().join(name);
        curves::write_curves_png(&history, CURVES_SIZE, &text, &path).expect("curves");
        assert_png(&path, CURVES_SIZE);
    }
    // Some pixels are neither white nor grey: the coloured lines were drawn.
    let image = render_curves(&history, (640, 360), &TextRendering::None).expect("curves");
    assert!(image.pixels().any(|p| p.0 == [31, 119, 180]), "no training line");
    // An empty history is still a picture (empty panels).
    let empty = render_curves(&MetricsHistory::default(), (320, 200), &TextRendering::None).expect("curves");
    assert_eq!(empty.dimensions(), (320, 200));
}

#[test]
fn fonts_fall_back_to_no_text_when_no_candidate_is_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_a_font = dir.path().join("not-a-font.ttf");
    std::fs::write(&not_a_font, b"definitely not TrueType").expect("write");
    let candidates = [dir.path().join("missing.ttf"), not_a_font];
    assert_eq!(load_font_from(&candidates), TextRendering::None);
    assert!(TextRendering::None.style(12.0, plotters::style::BLACK).is_none());
}

/// Runs the whole evaluation into `out` with `text` and checks every output file.
fn run_and_check(text: TextRendering) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = three_genres(dir.path());
    let device = Device::flex();
    let (model, config) = tiny_model(&cache, &device);
    let metrics = dir.path().join("metrics.jsonl");
    std::fs::write(&metrics, METRICS_JSONL).expect("metrics");
    let genres = cache.genres().to_vec();
    let inputs = EvalInputs {
        model: &model,
        vae_config: &config,
        genres: &genres,
        db_range: cache.db_range(),
        step: Some(40),
        cache: &cache,
        metrics: &metrics,
        device: &device,
    };
    let out: PathBuf = dir.path().join("run").join(EVAL_DIR);
    let settings = EvalSettings { batch_size: 5, ..Default::default() };
    let report = run(&inputs, &settings, &out, &text).expect("eval");
    assert_eq!(report.labelled_plots, text.enabled());
    assert!(format!("{report}").contains("overall"));

    let written: EvalReport =
        serde_json::from_str(&std::fs::read_to_string(out.join(EVAL_FILE)).expect("eval.json")).expect("parse");
    // serde_json may round the last bit of an f64; compare the numbers with a tolerance.
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(1.0),
        (a, b) => a == b,
    };
    for (w, r) in written.reconstruction.genres.iter().zip(&report.reconstruction.genres) {
        assert_eq!((&w.genre, w.split, w.metrics.clips), (&r.genre, r.split, r.metrics.clips));
        assert!(close(w.metrics.mse, r.metrics.mse) && close(w.metrics.kl, r.metrics.kl));
        assert!(close(w.metrics.mean_abs_db_error, r.metrics.mean_abs_db_error));
    }
    assert_eq!(written.reconstruction.genres.len(), 3);
    assert_eq!(written.step, Some(40));
    let centroids = Centroids::read(&out.join(centroids::CENTROIDS_FILE)).expect("centroids.json");
    assert_eq!(centroids.genres, genres);
    assert_eq!((centroids.centroids.len(), centroids.latent_dim), (3, model.latent_dim()));

    assert_png(&out.join(CURVES_FILE), CURVES_SIZE);
    // 3 rows (real, reconstruction, generated) × 4 columns (3 genres + the blend).
    let layout = report.grid;
    assert_eq!((layout.rows, layout.columns), (3, 4));
    assert_eq!((layout.tile_width, layout.tile_height), (cache.frames() as u32, cache.n_mels() as u32));
    let (width, height) = layout.size();
    assert_eq!(
        (width, height),
        (
            grid::LABEL_WIDTH + 4 * (cache.frames() as u32 + grid::GAP),
            grid::HEADER_HEIGHT + 3 * (cache.n_mels() as u32 + grid::GAP)
        )
    );
    assert_png(&out.join(GRID_FILE), (width, height));
    let image = image::open(out.join(GRID_FILE)).expect("grid").to_rgb8();
    // Every genre tile is filled; the blend column has only a generated tile.
    for row in 0..3 {
        for column in 0..4 {
            let (x, y) = layout.tile_origin(row, column);
            let centre = *image.get_pixel(x + layout.tile_width / 2, y + layout.tile_height / 2);
            let empty = column == 3 && row < 2;
            assert_eq!(centre == BACKGROUND, empty, "tile ({row}, {column}) is {centre:?}");
        }
    }
    // Nothing but the expected files, and no temporary leftovers.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    names.sort();
    assert_eq!(names, [CENTROIDS_FILE, CURVES_FILE, EVAL_FILE, GRID_FILE]);
}

#[test]
fn run_writes_all_outputs_with_a_font() {
    run_and_check(load_font());
}

#[test]
fn run_writes_all_outputs_without_a_font() {
    run_and_check(TextRendering::None);
}

#[test]
fn grid_draws_labels_only_with_a_font() {
    let layout = grid::GridLayout { rows: 1, columns: 2, tile_width: 40, tile_height: 16 };
    let content = grid::GridContent {
        layout,
        row_labels: vec!["real".into()],
        column_labels: vec!["cn".into(), "edm".into()],
        tiles: vec![Some(vec![0.5; 16 * 40]), None],
    };
    let plain = render_grid(&content, &TextRendering::None).expect("grid");
    assert_eq!(plain.dimensions(), layout.size());
    // Without text the label strip is untouched background.
    assert!((0..grid::LABEL_WIDTH).all(|x| (0..grid::HEADER_HEIGHT).all(|y| *plain.get_pixel(x, y) == BACKGROUND)));
    let text = load_font();
    if text.enabled() {
        let labelled = render_grid(&content, &text).expect("grid");
        assert_ne!(labelled, plain, "labels were drawn");
    }
}

#[test]
fn a_model_for_other_genres_or_sizes_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = tiny_cache(dir.path(), &[(Genre::Cn, 1), (Genre::Edm, 1)]);
    let genres = cache.genres().to_vec();
    let mut config = VaeConfig::tiny(2);
    config.frames = cache.frames();
    check_compatible(&genres, &config, &cache).expect("compatible");
    let swapped = vec![genres[1].clone(), genres[0].clone()];
    assert!(matches!(check_compatible(&swapped, &config, &cache), Err(EvalError::Mismatch { .. })));
    let mut wide = VaeConfig::tiny(2);
    wide.frames = cache.frames() + 32;
    let error = check_compatible(&genres, &wide, &cache).expect_err("frames differ");
    assert!(error.to_string().contains("frames"), "{error}");
    let bad = EvalSettings { temperature: 3.0, ..Default::default() };
    assert!(matches!(bad.validate(), Err(EvalError::InvalidSetting { name: "temperature", .. })));
}
