//! The bundled demo model (`models/demo`, exported from a tiny training run) served through the
//! HTTP API exactly as the README's first command serves it: a 15 s WAV for the README's curl, the
//! other formats, a morph, and byte-identical clips whether or not they share decoder batches with
//! other requests — on the real convolutional decoder, not a test graph.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use futures_util::future::join_all;
use melfuse_proto::manifest::Manifest;
use melfuse_serve::config::ServeConfig;
use melfuse_serve::generator::Generator;
use melfuse_serve::http::{app, AppState};
use melfuse_serve::metrics::Metrics;
use ndarray::Array2;
use ndarray_npy::ReadNpyExt;

fn demo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo")
}

async fn demo_state(adjust: impl FnOnce(&mut ServeConfig)) -> web::Data<AppState> {
    std::env::set_var("ORT_DYLIB_PATH", melfuse_e2e::onnxruntime_library());
    let mut config = ServeConfig { model: demo_dir(), ..ServeConfig::default() };
    adjust(&mut config);
    let generator = Generator::start(&config, Metrics::new().unwrap()).expect("the demo bundle loads");
    let state = web::Data::new(AppState::new(Arc::new(generator), config.max_body_bytes));
    state.warm_up().await.expect("warm-up");
    state
}

#[actix_web::test]
async fn the_readme_request_returns_a_playable_15_second_clip() {
    let manifest = Manifest::load(&demo_dir()).expect("models/demo is a valid bundle").manifest;
    let state = demo_state(|_| {}).await;
    let service = test::init_service(app(state.clone())).await;
    let request = TestRequest::get().uri("/generate?blend=cn:0.6,edm:0.4&seed=1").to_request();
    let response = test::call_service(&service, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = test::read_body(response).await;
    let reader = hound::WavReader::new(Cursor::new(body.to_vec())).expect("a WAV file");
    assert_eq!(reader.spec().sample_rate, manifest.signal.sample_rate);
    assert_eq!(reader.duration(), 15 * manifest.signal.sample_rate);
    let samples: Vec<f32> = reader.into_samples::<i16>().map(|s| f32::from(s.unwrap()) / 32768.0).collect();
    let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt();
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(rms > 0.005, "the clip is (nearly) silent: rms {rms}");
    assert!(peak < 0.95, "the clip clips: peak {peak}");

    let request = TestRequest::get().uri("/generate?blend=orchestral&seed=2&format=npy&seconds=6").to_request();
    let body = test::read_body(test::call_service(&service, request).await).await;
    let mel = Array2::<f32>::read_npy(Cursor::new(body.to_vec())).expect("npy");
    assert_eq!(mel.nrows(), manifest.signal.n_mels);
    let (floor, ceiling) = (manifest.normalization.db_floor, manifest.normalization.db_ceiling);
    assert!(mel.iter().all(|&db| db.is_finite() && db >= floor - 0.01 && db <= ceiling + 0.01));

    let request = TestRequest::get().uri("/generate?morph=cn%20-%3E%20edm&seed=3&format=png&seconds=12").to_request();
    let response = test::call_service(&service, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("content-type").unwrap(), "image/png");
}

#[actix_web::test]
async fn demo_clips_do_not_depend_on_what_they_are_batched_with() {
    let state = demo_state(|c| {
        c.max_wait_ms = 50;
        c.max_batch = 5;
    })
    .await;
    let service = test::init_service(app(state.clone())).await;
    let target = "/generate?blend=rock&seed=11&seconds=10&format=npy";
    let alone = test::read_body(test::call_service(&service, TestRequest::get().uri(target).to_request()).await).await;
    let mut uris: Vec<String> =
        (0..7).map(|i| format!("/generate?blend=edm:{i},orchestral:1&seed={i}&seconds=8&format=npy")).collect();
    uris.insert(3, target.into());
    let responses =
        join_all(uris.iter().map(|u| test::call_service(&service, TestRequest::get().uri(u).to_request()))).await;
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        bodies.push(test::read_body(response).await);
    }
    assert_eq!(bodies[3], alone, "batched output must equal the solo output byte for byte");
    let metrics = state.generator().metrics();
    assert!(metrics.batch_size.get_sample_sum() / metrics.batch_size.get_sample_count() as f64 > 1.5, "no batching");
}
