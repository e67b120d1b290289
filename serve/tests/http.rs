//! The HTTP API through actix's test service on a real bundle (written by melfuse-proto's ONNX
//! writer) and a real ONNX Runtime: formats, refusals, determinism under batching, metrics,
//! readiness, overload and deadlines.

mod support;

use std::io::Cursor;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use futures_util::future::join_all;
use melfuse_serve::config::ServeConfig;
use melfuse_serve::http::app;
use melfuse_serve::segments::SegmentPlan;
use ndarray::Array2;
use ndarray_npy::ReadNpyExt;
use serde_json::Value;

/// The test bundle, written once per test binary.
fn bundle() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        support::write_bundle(dir.path());
        dir
    });
    dir.path()
}

/// A warmed-up state on the test bundle with `adjust` applied to its configuration.
async fn ready_state(adjust: impl FnOnce(&mut ServeConfig)) -> web::Data<melfuse_serve::http::AppState> {
    let mut config = support::config(bundle());
    adjust(&mut config);
    support::ready_state(&config).await
}

/// `uri` with the characters tests use that a URI may not carry raw (`>`, space) percent-encoded.
fn encoded(uri: &str) -> String {
    uri.replace('>', "%3E").replace(' ', "%20")
}

async fn get(
    state: &web::Data<melfuse_serve::http::AppState>,
    uri: &str,
) -> (StatusCode, actix_web::http::header::HeaderMap, Vec<u8>) {
    let service = test::init_service(app(state.clone())).await;
    let response = test::call_service(&service, TestRequest::get().uri(&encoded(uri)).to_request()).await;
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, test::read_body(response).await.to_vec())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

#[actix_web::test]
async fn every_format_decodes_with_the_right_shape() {
    let state = ready_state(|_| {}).await;
    let signal = support::signal();
    let frames = SegmentPlan::frames_for_seconds(5.0, signal.sample_rate, signal.hop_length);

    let (status, headers, body) = get(&state, "/generate?blend=cn:0.6,edm:0.4&seed=1").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get("content-type").unwrap(), "audio/wav");
    assert_eq!(headers.get("x-melfuse-seed").unwrap(), "1");
    let reader = hound::WavReader::new(Cursor::new(&body)).expect("a WAV file");
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.channels, spec.bits_per_sample), (8000, 1, 16));
    assert_eq!(reader.duration(), 5 * 8000, "exactly the clip length asked for");
    let samples: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
    assert!(samples.iter().any(|&s| s.unsigned_abs() > 100), "the clip is silent");

    let (status, headers, body) = get(&state, "/generate?blend=edm&seed=1&format=png").await;
    assert_eq!((status, headers.get("content-type").unwrap().to_str().unwrap()), (StatusCode::OK, "image/png"));
    let image = image::load_from_memory(&body).expect("a PNG image");
    assert_eq!((image.width() as usize, image.height() as usize), (frames, signal.n_mels));

    let (status, headers, body) = get(&state, "/generate?blend=orchestral&seed=1&format=npy&seconds=7.5").await;
    assert_eq!((status, headers.get("content-type").unwrap().to_str().unwrap()), (StatusCode::OK, "application/x-npy"));
    let mel = Array2::<f32>::read_npy(Cursor::new(&body)).expect("a float32 2-D npy");
    let frames_7_5 = SegmentPlan::frames_for_seconds(7.5, signal.sample_rate, signal.hop_length);
    assert_eq!(mel.dim(), (signal.n_mels, frames_7_5));
    assert!(mel.iter().all(|v| v.is_finite() && (-81.0..=21.0).contains(v)), "dB values within the model range");
}

#[actix_web::test]
async fn bad_inputs_are_400s_naming_the_field() {
    let state = ready_state(|_| {}).await;
    let many_pairs = vec!["cn:1"; 10_000].join(",");
    let cases: Vec<(String, &str)> = vec![
        ("blend=polka:1".into(), "blend"),
        ("blend=cn:-0.5".into(), "blend"),
        ("blend=cn:NaN".into(), "blend"),
        ("blend=cn:inf".into(), "blend"),
        ("blend=".into(), "blend"),
        ("blend=cn:1,cn:1".into(), "blend"),
        ("blend=cn:0,edm:0".into(), "blend"),
        (format!("blend={many_pairs}"), "blend"),
        ("temperature=1".into(), "blend"),
        ("blend=cn&temperature=1e30".into(), "temperature"),
        ("blend=cn&seed=seven".into(), "seed"),
        ("blend=cn&seed=1.5".into(), "seed"),
        ("blend=cn&format=mp3".into(), "format"),
        ("blend=cn&griffin_lim_iters=0".into(), "griffin_lim_iters"),
        ("blend=cn&seconds=31".into(), "seconds"),
        ("blend=cn&morph=cn->edm".into(), "morph"),
        ("morph=cn->jazz".into(), "morph"),
        ("blend=cn&volume=11".into(), "volume"),
    ];
    for (query, field) in &cases {
        let (status, headers, body) = get(&state, &format!("/generate?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(headers.get("content-type").unwrap(), "application/json");
        let body = json(&body);
        assert_eq!(body["error"]["field"], *field, "{query}: {body}");
        assert!(body["error"]["code"].as_str().is_some_and(|c| !c.is_empty()));
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // The same refusals for JSON bodies, plus what only JSON can get wrong.
    let service = test::init_service(app(state.clone())).await;
    let posts: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (br#"{"blend": "polka"}"#.to_vec(), StatusCode::BAD_REQUEST, "blend"),
        (br#"{"blend": {"cn": -1}}"#.to_vec(), StatusCode::BAD_REQUEST, "blend"),
        (br#"{"blend": "cn", "seed": "x"}"#.to_vec(), StatusCode::BAD_REQUEST, "seed"),
        (br#"{"blend": "cn", "temperature": [1]}"#.to_vec(), StatusCode::BAD_REQUEST, "temperature"),
        (br#"{"blend": "cn""#.to_vec(), StatusCode::BAD_REQUEST, "body"),
        (format!(r#"{{"blend": "{many_pairs}"}}"#).into_bytes(), StatusCode::BAD_REQUEST, "blend"),
        (format!(r#"{{"blend": "{many_pairs},{many_pairs}"}}"#).into_bytes(), StatusCode::PAYLOAD_TOO_LARGE, "body"),
    ];
    for (body, expected, field) in posts {
        let request = TestRequest::post().uri("/generate").insert_header(("content-type", "application/json"));
        let response = test::call_service(&service, request.set_payload(body.clone()).to_request()).await;
        assert_eq!(response.status(), expected, "{}", String::from_utf8_lossy(&body[..body.len().min(80)]));
        let reply = json(&test::read_body(response).await);
        assert_eq!(reply["error"]["field"], field, "{reply}");
    }

    let (status, _, body) = get(&state, "/no/such/route").await;
    assert_eq!((status, json(&body)["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let response = test::call_service(&service, TestRequest::delete().uri("/generate").to_request()).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn post_and_get_give_the_same_bytes_and_seeds_are_reproducible() {
    let state = ready_state(|_| {}).await;
    let (_, _, first) = get(&state, "/generate?blend=cn:0.6,edm:0.4&seed=42&temperature=0.7&griffin_lim_iters=8").await;
    let (_, _, again) = get(&state, "/generate?blend=edm:2,cn:3&seed=42&temperature=0.7&griffin_lim_iters=8").await;
    assert_eq!(first, again, "same blend (normalised) and seed must give the same bytes");
    let service = test::init_service(app(state.clone())).await;
    let body =
        serde_json::json!({"blend": {"cn": 0.6, "edm": 0.4}, "seed": 42, "temperature": 0.7, "griffin_lim_iters": 8});
    let response =
        test::call_service(&service, TestRequest::post().uri("/generate").set_json(&body).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(test::read_body(response).await.to_vec(), first);
    let (_, _, other_seed) =
        get(&state, "/generate?blend=cn:0.6,edm:0.4&seed=43&temperature=0.7&griffin_lim_iters=8").await;
    assert_ne!(first, other_seed);

    // Without a seed the service draws one and reports it; asking with it reproduces the clip.
    let (_, headers, drawn) = get(&state, "/generate?blend=cn&format=npy").await;
    let seed = headers.get("x-melfuse-seed").unwrap().to_str().unwrap().to_string();
    let (_, _, replay) = get(&state, &format!("/generate?blend=cn&format=npy&seed={seed}")).await;
    assert_eq!(drawn, replay);
}

#[actix_web::test]
async fn what_a_clip_is_batched_with_does_not_change_its_bytes() {
    // A long wait lets concurrent requests share decoder calls; batches of 3 rows force a long clip
    // to be spread over several calls with different neighbours.
    let state = ready_state(|c| {
        c.max_wait_ms = 50;
        c.max_batch = 3;
    })
    .await;
    let target = "/generate?morph=cn->edm->orchestral&seed=9&seconds=12&format=npy";
    let (status, _, alone) = get(&state, target).await;
    assert_eq!(status, StatusCode::OK);

    let service = test::init_service(app(state.clone())).await;
    let mut uris: Vec<String> =
        (0..12).map(|i| format!("/generate?blend=edm:{i},cn:1&seed={i}&seconds=9&format=npy")).collect();
    uris.insert(5, target.to_string());
    let responses = join_all(
        uris.iter().map(|uri| test::call_service(&service, TestRequest::get().uri(&encoded(uri)).to_request())),
    )
    .await;
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        bodies.push(test::read_body(response).await.to_vec());
    }
    assert_eq!(bodies[5], alone, "batched output must equal the solo output byte for byte");

    let metrics = state.generator().metrics();
    let batches = metrics.batch_size.get_sample_count();
    let rows = metrics.batch_size.get_sample_sum();
    assert!(rows / batches as f64 > 1.5, "requests were not batched: {rows} rows in {batches} calls");
}

#[actix_web::test]
async fn metrics_move_and_readiness_waits_for_warm_up() {
    let config = support::config(bundle());
    let state = web::Data::new(support::state(&config));
    let (status, headers, body) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(json(&body)["error"]["code"], "not_ready");
    let (status, _, _) = get(&state, "/generate?blend=cn").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = get(&state, "/healthz").await;
    assert_eq!(status, StatusCode::OK);

    state.warm_up().await.unwrap();
    let (status, _, body) = get(&state, "/readyz").await;
    assert_eq!((status, json(&body)["execution_provider"].as_str()), (StatusCode::OK, Some("cpu")));

    for query in ["blend=cn&seed=1", "blend=cn&seed=2&format=png", "blend=polka"] {
        get(&state, &format!("/generate?{query}")).await;
    }
    let (status, headers, body) = get(&state, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/plain"));
    let text = String::from_utf8(body).unwrap();
    for line in [
        r#"melfuse_requests_total{endpoint="/generate",format="wav",status="200"} 1"#,
        r#"melfuse_requests_total{endpoint="/generate",format="png",status="200"} 1"#,
        r#"melfuse_requests_total{endpoint="/generate",format="none",status="400"} 1"#,
        r#"melfuse_requests_total{endpoint="/generate",format="none",status="503"} 1"#,
        r#"melfuse_requests_total{endpoint="/readyz",format="none",status="503"} 1"#,
        r#"melfuse_generated_audio_seconds_total 10"#,
        r#"melfuse_blend_weight_total{genre="cn"} 2"#,
        r#"melfuse_blend_weight_total{genre="edm"} 0"#,
        r#"melfuse_model_info{execution_provider="cpu",genres="cn,edm,orchestral",model="test"} 1"#,
        r#"melfuse_stage_duration_seconds_count{stage="vocoder"} 1"#,
        r#"melfuse_stage_duration_seconds_count{stage="encode"} 2"#,
        "melfuse_queue_depth 0",
        "melfuse_inflight_requests 1",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    assert!(text.contains(r#"melfuse_stage_duration_seconds_count{stage="decoder"}"#));
    assert!(text.contains("melfuse_batch_size_count"));

    let (_, _, body) = get(&state, "/genres").await;
    let genres = json(&body);
    assert_eq!(genres["model"], "test");
    assert_eq!(
        genres["genres"][1],
        serde_json::json!({"name": "edm", "training_clips": 20, "training_tracks": 2, "training_hours": 0.5})
    );
    let (_, _, body) = get(&state, "/openapi.json").await;
    assert_eq!(json(&body)["openapi"], "3.1.0");
}

#[actix_web::test]
async fn overload_is_503_with_retry_after_and_deadlines_are_504() {
    let state = ready_state(|c| c.queue_capacity = 1).await;
    let service = test::init_service(app(state.clone())).await;
    let requests = (0..8).map(|i| {
        test::call_service(
            &service,
            TestRequest::get().uri(&format!("/generate?blend=cn&seed={i}&seconds=20")).to_request(),
        )
    });
    let responses = join_all(requests).await;
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count() + statuses.iter().filter(|&&s| s == 503).count(),
        8,
        "{statuses:?}"
    );
    assert!(statuses.contains(&503) && statuses.contains(&200), "{statuses:?}");
    let refused = responses.iter().find(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE).unwrap();
    assert_eq!(refused.headers().get("retry-after").unwrap(), "1");

    let slow = ready_state(|c| c.request_timeout_ms = 1).await;
    let (status, _, body) = get(&slow, "/generate?blend=cn&seconds=30&griffin_lim_iters=256").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(json(&body)["error"]["code"], "deadline_exceeded");
}

#[actix_web::test]
async fn a_morph_moves_from_its_first_stop_to_its_last() {
    let state = ready_state(|_| {}).await;
    let signal = support::signal();
    // The prior sampler: every segment decodes its blend's centroid, so the ends are comparable with
    // one-segment clips (the bank's walk takes a different real code at every step).
    let (_, _, body) =
        get(&state, "/generate?morph=cn->orchestral&seed=3&temperature=0&seconds=20&format=npy&sampler=prior").await;
    let morph = Array2::<f32>::read_npy(Cursor::new(&body)).unwrap();
    // 1.5 s fit in one segment: these are the two genres' segments themselves.
    let (_, _, body) =
        get(&state, "/generate?blend=cn&seed=3&temperature=0&seconds=1.5&format=npy&sampler=prior").await;
    let start = Array2::<f32>::read_npy(Cursor::new(&body)).unwrap();
    let (_, _, body) =
        get(&state, "/generate?blend=orchestral&seed=3&temperature=0&seconds=1.5&format=npy&sampler=prior").await;
    let end = Array2::<f32>::read_npy(Cursor::new(&body)).unwrap();
    assert_eq!(start.ncols(), 95);
    let distance = |a: ndarray::ArrayView2<f32>, b: ndarray::ArrayView2<f32>| (&a - &b).mapv(f32::abs).mean().unwrap();
    // At temperature 0 the clip opens on exactly cn's segment and closes on exactly orchestral's
    // (outside the cross-fades).
    let total = morph.ncols();
    let segment_frames = signal.model_frames();
    assert!(distance(morph.slice(ndarray::s![.., ..30]), start.slice(ndarray::s![.., ..30])) < 1e-3);
    let tail = morph.slice(ndarray::s![.., total - 31..total - 1]);
    assert!(distance(tail, end.slice(ndarray::s![.., segment_frames - 31..segment_frames - 1])) < 1e-3);
    assert!(distance(start.view(), end.view()) > 1.0, "the genres must differ for this test to mean anything");
    assert_eq!(morph.nrows(), signal.n_mels);
}

#[actix_web::test]
async fn the_playground_page_is_served_with_security_headers_and_counted_apart() {
    let state = ready_state(|_| {}).await;
    let (status, headers, body) = get(&state, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("content-type").unwrap(), "text/html; charset=utf-8");
    let html = String::from_utf8(body).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("src=\"/ui/app.js\""), "{html}");
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = get(&state, path).await;
        assert_eq!((status, headers.get("content-type").unwrap().to_str().unwrap()), (StatusCode::OK, content_type));
        assert!(!body.is_empty(), "{path}");
        assert_eq!(headers.get("x-content-type-options").unwrap(), "nosniff", "{path}");
        let policy = headers.get("content-security-policy").unwrap().to_str().unwrap();
        let directive = |name: &str| {
            policy.split(';').map(str::trim).find(|d| d.starts_with(&format!("{name} "))).unwrap_or("").to_string()
        };
        assert_eq!(directive("default-src"), "default-src 'self'", "{policy}");
        assert_eq!(directive("script-src"), "script-src 'self'", "no inline script, no other origin: {policy}");
        assert!(directive("media-src").contains("blob:") && directive("img-src").contains("blob:"), "{policy}");
        assert!(!policy.contains("unsafe") && !policy.contains('*') && !policy.contains("http"), "{policy}");
    }
    let (status, _, body) = get(&state, "/ui/nothing.js").await;
    assert_eq!((status, json(&body)["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let service = test::init_service(app(state.clone())).await;
    let response = test::call_service(&service, TestRequest::post().uri("/").to_request()).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // What the page reads to describe the model: /genres carries the provider and the segment.
    let (_, _, body) = get(&state, "/genres").await;
    let genres = json(&body);
    let signal = support::signal();
    assert_eq!(genres["execution_provider"], "cpu");
    // 96 frames of 128 samples at 8 kHz: the decoded segment, not the nominal 2 s.
    assert!((genres["segment_seconds"].as_f64().unwrap() - 1.536).abs() < 1e-6, "{genres}");
    assert_eq!(genres["sample_rate"].as_u64(), Some(u64::from(signal.sample_rate)));

    // Two page views (GET / above), not their assets nor the API calls: page_loads_total says 2,
    // while requests_total keeps each route under its own label.
    let (_, _, body) = get(&state, "/metrics").await;
    let text = String::from_utf8(body).unwrap();
    for line in [
        "melfuse_page_loads_total 2",
        r#"melfuse_requests_total{endpoint="/",format="none",status="200"} 2"#,
        r#"melfuse_requests_total{endpoint="/",format="none",status="405"} 1"#,
        r#"melfuse_requests_total{endpoint="/ui/app.js",format="none",status="200"} 1"#,
        r#"melfuse_requests_total{endpoint="/genres",format="none",status="200"} 1"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
}

#[actix_web::test]
async fn without_the_ui_the_page_is_an_unknown_route() {
    let config = support::config(bundle());
    let state = web::Data::new(support::state(&config).with_ui(false));
    state.warm_up().await.unwrap();
    for path in ["/", "/ui/app.js", "/ui/style.css"] {
        let (status, headers, body) = get(&state, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(headers.get("content-type").unwrap(), "application/json");
        assert_eq!(json(&body)["error"]["code"], "not_found");
    }
    let (status, _, _) = get(&state, "/genres").await;
    assert_eq!(status, StatusCode::OK, "the API stays");
    let (_, _, body) = get(&state, "/metrics").await;
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("melfuse_page_loads_total 0"), "{text}");
    assert!(text.contains(r#"melfuse_requests_total{endpoint="unmatched",format="none",status="404"} 3"#), "{text}");
}
