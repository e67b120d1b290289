//! Shared by the service's integration tests: a small but real model bundle written with
//! melfuse-proto's ONNX writer (no training needed), and the ONNX Runtime library location.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use melfuse_audio::config::SignalConfig;
use melfuse_audio::normalization::DbRange;
use melfuse_proto::latent_bank::{bank_info, LatentBankInfo, LATENT_BANK_FILE};
use melfuse_proto::manifest::{
    decoder_interface, sha256_hex, GenreDataset, Manifest, OnnxInfo, TensorSpec, TrainingSummary, BATCH_AXIS,
    DECODER_FILE, FORMAT_VERSION, INPUT_GENRE, INPUT_Z, LATENT_AXIS, OUTPUT_MEL,
};
use melfuse_proto::onnx::{Conv2d, DataType, Dim, GraphBuilder, Linear};
use melfuse_serve::config::ServeConfig;
use melfuse_serve::generator::Generator;
use melfuse_serve::http::{app, AppState};
use melfuse_serve::metrics::Metrics;

/// Genres of the test bundle.
pub const GENRES: [&str; 3] = ["cn", "edm", "orchestral"];
/// Latent size of the test bundle.
pub const LATENT_DIM: usize = 8;

/// The test bundle's signal: 8 kHz, 2 s segments → 96 model frames of 16 mels.
pub fn signal() -> SignalConfig {
    SignalConfig {
        sample_rate: 8000,
        segment_seconds: 2.0,
        overlap_seconds: 1.0,
        n_fft: 256,
        hop_length: 128,
        n_mels: 16,
        ..SignalConfig::default()
    }
}

/// Points ORT_DYLIB_PATH at the project's ONNX Runtime (see [`melfuse_e2e::onnxruntime_library`]),
/// which the service then loads.
pub fn use_project_onnxruntime() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var("ORT_DYLIB_PATH", melfuse_e2e::onnxruntime_library()));
}

/// Writes a bundle into `dir`: `mel = sigmoid(z·A + genre·B)` reshaped to `[B, 1, 16, 96]`, with
/// seeded weights, so each genre and latent gives a different, deterministic spectrogram.
pub fn write_bundle(dir: &Path) -> PathBuf {
    let signal = signal();
    let (n_mels, frames) = (signal.n_mels, signal.model_frames());
    let row = n_mels * frames;
    let genres = GENRES.len();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let latent_weight: Vec<f32> = (0..LATENT_DIM * row).map(|_| next() * 0.8).collect();
    let genre_weight: Vec<f32> = (0..genres * row).map(|_| next() * 2.0).collect();
    let bias: Vec<f32> = (0..row).map(|i| -1.0 - 2.0 * (i / frames) as f32 / n_mels as f32).collect();

    let mut graph = GraphBuilder::new("test-decoder");
    let batch = Dim::from(BATCH_AXIS);
    let z = graph.input(INPUT_Z, DataType::Float, &[batch.clone(), Dim::from(LATENT_DIM)]).unwrap();
    let genre = graph.input(INPUT_GENRE, DataType::Float, &[batch.clone(), Dim::from(genres)]).unwrap();
    let from_z = graph
        .gemm(
            "from_z",
            &z,
            &Linear { weight: &latent_weight, in_features: LATENT_DIM, out_features: row, bias: Some(&bias) },
        )
        .unwrap();
    let from_genre = graph
        .gemm(
            "from_genre",
            &genre,
            &Linear { weight: &genre_weight, in_features: genres, out_features: row, bias: None },
        )
        .unwrap();
    let sum = graph.add("sum", &from_z, &from_genre).unwrap();
    let squashed = graph.sigmoid("squashed", &sum).unwrap();
    let shaped = graph.reshape("shaped", &squashed, &[0, 1, n_mels as i64, frames as i64]).unwrap();
    let (inputs, outputs) = decoder_interface(LATENT_DIM, genres, n_mels, frames, false);
    let (onnx, opset) = write_decoder(dir, graph, &shaped, &outputs);
    let centroids =
        (0..genres).map(|g| (0..LATENT_DIM).map(|i| ((g * 7 + i) % 5) as f32 * 0.4 - 0.8).collect()).collect();
    // Three codes per genre, so the default `bank` sampler has real choices.
    let codes: Vec<f32> = (0..genres * 3 * LATENT_DIM).map(|i| ((i * 13) % 11) as f32 * 0.2 - 1.0).collect();
    let (bank_info, bank_bytes) = bank_info(&codes, vec![vec![3]; genres], vec![0.3; LATENT_DIM]);
    let manifest = test_manifest(
        "test",
        BundleParts { latent_dim: LATENT_DIM, centroids, onnx: &onnx, opset, inputs, outputs, bank: bank_info },
        None,
    );
    std::fs::write(dir.join(LATENT_BANK_FILE), bank_bytes).unwrap();
    manifest.write(dir).unwrap();
    dir.to_path_buf()
}

/// Frame weights of the tiled bundle's decoder: `mel[t] = sigmoid(¼ z[t−1] + ½ z[t] + ¼ z[t+1] + b·genre)`,
/// one latent column (16 values) per frame, so a decoded column depends on its neighbours.
pub const TILED_KERNEL: [f32; 3] = [0.25, 0.5, 0.25];
/// The tiled bundle's genre weights (`b`).
pub const TILED_GENRE_BIAS: [f32; 3] = [0.5, -0.5, 0.0];

/// What the tiled bundle's decoder draws, in dB, at `frame` of `band` for the joined latent map
/// `joined` (`width` columns of [`signal`]'s 16 bands, one per frame) and the genre `mixture`:
/// [`TILED_KERNEL`] along time with zeros past the map's ends, plus [`TILED_GENRE_BIAS`]·mixture,
/// through the sigmoid and `range`.
pub fn tiled_decode(joined: &[f32], width: usize, band: usize, frame: usize, mixture: &[f32], range: DbRange) -> f32 {
    let at = |t: isize| if t < 0 || t >= width as isize { 0.0 } else { joined[band * width + t as usize] };
    let bias: f32 = mixture.iter().zip(TILED_GENRE_BIAS).map(|(w, b)| w * b).sum();
    let (k, t) = (TILED_KERNEL, frame as isize);
    let value = 1.0 / (1.0 + (-(k[0] * at(t - 1) + k[1] * at(t) + k[2] * at(t + 1) + bias)).exp());
    range.db_floor + value * (range.db_ceiling - range.db_floor)
}

/// Writes a bundle whose decoder has a dynamic time axis (`latent_time_cells` = the segment's 96
/// frames, one 16-value column per frame) and whose bank tiles its runs (`hop_frames` = 96):
/// `mel = sigmoid(conv_t(z) + b·genre)` with [`TILED_KERNEL`] along time, zero-padded at the map's
/// ends. Three genres of one run of three tiles each; the bank's codes are a slow ramp.
pub fn write_tiled_bundle(dir: &Path) -> PathBuf {
    let signal = signal();
    let (n_mels, frames) = (signal.n_mels, signal.model_frames());
    let latent_dim = n_mels * frames;
    let genres = GENRES.len();
    let mut graph = GraphBuilder::new("tiled-test-decoder");
    let batch = Dim::from(BATCH_AXIS);
    let z = graph.input(INPUT_Z, DataType::Float, &[batch.clone(), Dim::from(LATENT_AXIS)]).unwrap();
    let genre = graph.input(INPUT_GENRE, DataType::Float, &[batch.clone(), Dim::from(genres)]).unwrap();
    let map = graph.reshape("map", &z, &[0, 1, n_mels as i64, -1]).unwrap();
    let layer =
        Conv2d { weight: &TILED_KERNEL, weight_dims: [1, 1, 1, 3], bias: None, strides: [1, 1], pads: [0, 1, 0, 1] };
    let mixed = graph.conv("mix_time", &map, &layer).unwrap();
    let bias = graph
        .gemm(
            "genre_bias",
            &genre,
            &Linear { weight: &TILED_GENRE_BIAS, in_features: genres, out_features: 1, bias: None },
        )
        .unwrap();
    let bias = graph.reshape("genre_bias_nchw", &bias, &[0, 1, 1, 1]).unwrap();
    let sum = graph.add("sum", &mixed, &bias).unwrap();
    let squashed = graph.sigmoid("squashed", &sum).unwrap();
    let (inputs, outputs) = decoder_interface(latent_dim, genres, n_mels, frames, true);
    let (onnx, opset) = write_decoder(dir, graph, &squashed, &outputs);
    let centroids = vec![vec![0.0; latent_dim]; genres];
    let codes: Vec<f32> = (0..genres * 3 * latent_dim)
        .map(|i| ((i % latent_dim) % frames) as f32 / frames as f32 + (i / latent_dim) as f32 * 0.3 - 1.0)
        .collect();
    let (mut bank_info, bank_bytes) = bank_info(&codes, vec![vec![3]; genres], vec![0.3; latent_dim]);
    bank_info.hop_frames = Some(frames);
    let manifest = test_manifest(
        "tiled",
        BundleParts { latent_dim, centroids, onnx: &onnx, opset, inputs, outputs, bank: bank_info },
        Some(frames),
    );
    std::fs::write(dir.join(LATENT_BANK_FILE), bank_bytes).unwrap();
    manifest.write(dir).unwrap();
    dir.to_path_buf()
}

/// Names `last` the graph's `mel`, declares the interface's `outputs`, and writes the graph as
/// `dir`'s decoder: its bytes and opset.
fn write_decoder(dir: &Path, mut graph: GraphBuilder, last: &str, outputs: &[TensorSpec]) -> (Vec<u8>, i64) {
    graph.node("Identity", &[last], &[OUTPUT_MEL], vec![]).unwrap();
    for spec in outputs {
        graph.output(&spec.name, DataType::Float, &spec.shape).unwrap();
    }
    let opset = graph.opset();
    let onnx = graph.to_bytes().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(DECODER_FILE), &onnx).unwrap();
    (onnx, opset)
}

/// What differs between the test bundles' manifests.
struct BundleParts<'a> {
    latent_dim: usize,
    centroids: Vec<Vec<f32>>,
    onnx: &'a [u8],
    opset: i64,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    bank: LatentBankInfo,
}

/// The manifest of a test bundle named `name` on [`signal`] and [`GENRES`].
fn test_manifest(name: &str, parts: BundleParts<'_>, latent_time_cells: Option<usize>) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        name: name.into(),
        created: "2026-11-25T00:00:00Z".into(),
        genres: GENRES.iter().map(|g| g.to_string()).collect(),
        latent_dim: parts.latent_dim,
        centroids: parts.centroids,
        signal: signal(),
        normalization: DbRange::new(-80.0, 20.0).unwrap(),
        onnx: OnnxInfo {
            file: DECODER_FILE.into(),
            opset: parts.opset,
            inputs: parts.inputs,
            outputs: parts.outputs,
            sha256: sha256_hex(parts.onnx),
        },
        training: TrainingSummary {
            epochs: 1,
            steps: 10,
            final_train_loss: 0.1,
            final_validation_loss: 0.2,
            dataset: GENRES
                .iter()
                .enumerate()
                .map(|(i, g)| GenreDataset { genre: g.to_string(), tracks: i + 1, segments: 10 * (i + 1), hours: 0.5 })
                .collect(),
        },
        latent_bank: Some(parts.bank),
        latent_time_cells,
        postfilter: None,
    }
}

/// A service configuration on the test bundle: short clips, small pool.
pub fn config(model: &Path) -> ServeConfig {
    ServeConfig {
        model: model.to_path_buf(),
        default_seconds: 5.0,
        max_seconds: 30.0,
        vocoder_threads: 2,
        ..ServeConfig::default()
    }
}

/// A started generator and its (not yet warmed-up) HTTP state for `config`.
pub fn state(config: &ServeConfig) -> AppState {
    use_project_onnxruntime();
    let generator = Generator::start(config, Metrics::new().unwrap()).expect("start the generator");
    AppState::new(Arc::new(generator), config.max_body_bytes)
}

/// [`state`] for `config`, warmed up (ready).
pub async fn ready_state(config: &ServeConfig) -> web::Data<AppState> {
    let state = web::Data::new(state(config));
    state.warm_up().await.expect("warm-up");
    state
}

/// `GET uri` from the app on `state`: the status and the body.
pub async fn get(state: &web::Data<AppState>, uri: &str) -> (StatusCode, Vec<u8>) {
    let service = test::init_service(app(state.clone())).await;
    let response = test::call_service(&service, TestRequest::get().uri(uri).to_request()).await;
    let status = response.status();
    (status, test::read_body(response).await.to_vec())
}

/// The dB mel of a `format=npy` request `uri`, which must succeed.
pub async fn get_mel(state: &web::Data<AppState>, uri: &str) -> ndarray::Array2<f32> {
    let (status, body) = get(state, uri).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    ndarray_npy::ReadNpyExt::read_npy(body.as_slice()).expect("npy")
}
