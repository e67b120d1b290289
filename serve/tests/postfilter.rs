//! A bundle's postfilter through the HTTP API: the served mel is the decoder's, stitched, with the
//! manifest's gains applied frame by frame by the mixture at that place in the clip — the same
//! bundle without a postfilter, filtered by `melfuse_audio::postfilter` — and a bundle whose
//! postfilter does not fit is refused, naming the field; `no_postfilter` in the configuration
//! serves the decoder's output as it is.

mod support;

use melfuse_audio::postfilter::Postfilter;
use melfuse_proto::api::timeline::Timeline;
use melfuse_proto::manifest::Manifest;
use melfuse_serve::config::ServeConfig;
use support::{get_mel, ready_state};

/// Gains that differ by genre and band: cn sharpens the upper half's contrast ×2, edm softens
/// the lower half's ×0.5, orchestral widens dynamics ×1.5 everywhere.
fn postfilter(n_mels: usize) -> Postfilter {
    let half = |low: f32, high: f32| (0..n_mels).map(|b| if b < n_mels / 2 { low } else { high }).collect::<Vec<_>>();
    Postfilter {
        contrast_bands: 3,
        dynamics_frames: 31,
        contrast: vec![half(1.0, 2.0), half(0.5, 1.0), half(1.0, 1.0)],
        dynamics: vec![half(1.0, 1.0), half(1.0, 1.0), half(1.5, 1.5)],
    }
}

#[actix_web::test]
async fn the_served_mel_is_the_decoders_with_the_mixtures_gains_applied() {
    let plain = tempfile::tempdir().unwrap();
    let filtered = tempfile::tempdir().unwrap();
    support::write_tiled_bundle(plain.path());
    support::write_tiled_bundle(filtered.path());
    let mut manifest = Manifest::load(filtered.path()).unwrap().manifest;
    let filter = postfilter(manifest.signal.n_mels);
    manifest.postfilter = Some(filter.clone());
    manifest.write(filtered.path()).unwrap();
    let plain = ready_state(&support::config(plain.path())).await;
    let filtered_state = ready_state(&support::config(filtered.path())).await;
    // The same bundle with the postfilter left out by the configuration.
    let left_out = ready_state(&ServeConfig { no_postfilter: true, ..support::config(filtered.path()) }).await;

    for query in ["blend=cn:0.7,orchestral:0.3", "morph=cn-%3Eedm-%3Eorchestral"] {
        let uri = format!("/generate?{query}&seed=3&seconds=4&temperature=0&format=npy");
        let (raw, served) = (get_mel(&plain, &uri).await, get_mel(&filtered_state, &uri).await);
        assert_eq!(raw.dim(), served.dim());
        let timeline = if query.starts_with("blend") {
            Timeline::constant(
                melfuse_proto::api::blend::BlendSpec::parse("cn:0.7,orchestral:0.3", &manifest.genres).unwrap(),
            )
        } else {
            Timeline::parse_morph("cn->edm->orchestral", &manifest.genres).unwrap()
        };
        let last = (raw.ncols() - 1) as f32;
        let expected = filter.apply(&raw, |frame| timeline.weights_at(frame as f32 / last), manifest.normalization);
        let worst = (&served - &expected).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
        assert!(worst < 1e-3, "{query}: served mel is {worst} dB from the filtered decoder output");
        let changed = (&served - &raw).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
        assert!(changed > 0.1, "{query}: the postfilter changed nothing ({changed} dB)");
        assert_eq!(get_mel(&left_out, &uri).await, raw, "{query}: `no_postfilter` serves the decoder's output");
    }
}

#[test]
fn a_bundle_whose_postfilter_does_not_fit_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    support::write_tiled_bundle(dir.path());
    let mut manifest = Manifest::load(dir.path()).unwrap().manifest;
    manifest.postfilter = Some(postfilter(manifest.signal.n_mels));
    manifest.write(dir.path()).unwrap();
    // One gain short in edm's row (`Manifest::write` checks, so the file is edited as text).
    let path = dir.path().join("manifest.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["postfilter"]["contrast"][1].as_array_mut().unwrap().pop();
    std::fs::write(&path, json.to_string()).unwrap();
    let error = Manifest::load(dir.path()).unwrap_err().to_string();
    assert!(error.contains("postfilter.contrast") && error.contains("mel band"), "{error}");
}
