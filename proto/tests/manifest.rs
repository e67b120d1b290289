//! Bundle manifests: a written bundle loads back unchanged, and each kind of inconsistency is refused
//! with its own error variant and a message naming the mismatch.

use std::path::Path;

use melfuse_audio::{DbRange, SignalConfig};
use melfuse_proto::manifest::{
    decoder_interface, sha256_hex, GenreDataset, Manifest, ManifestError, OnnxInfo, TrainingSummary, DECODER_FILE,
    FORMAT_VERSION, MANIFEST_FILE,
};
use melfuse_proto::onnx::{DataType, Dim, GraphBuilder, Linear, DEFAULT_OPSET};
use serde_json::Value;

const LATENT: usize = 4;

/// Signal parameters small enough for a toy decoder: 8 mel bands, 16 frames per segment.
fn signal() -> SignalConfig {
    SignalConfig {
        sample_rate: 8_000,
        segment_seconds: 1.0,
        overlap_seconds: 0.5,
        n_fft: 1024,
        hop_length: 512,
        n_mels: 8,
        frame_multiple: 8,
        ..SignalConfig::default()
    }
}

/// A decoder with the bundle interface, `z: [batch_z, latent]`, `genre: [batch, genres]` → `mel: [batch, 1,
/// n_mels, frames]` (Concat → Gemm → Reshape → Sigmoid), with each axis settable to produce mismatches.
fn decoder(latent: usize, genres: usize, n_mels: usize, frames: usize, batch: Dim) -> Vec<u8> {
    let mut g = GraphBuilder::new("decoder");
    let z = g.input("z", DataType::Float, &[batch.clone(), latent.into()]).unwrap();
    let genre = g.input("genre", DataType::Float, &[batch.clone(), genres.into()]).unwrap();
    let input = g.concat("input", &[&z, &genre], 1).unwrap();
    let out = n_mels * frames;
    let weight = vec![0.01; (latent + genres) * out];
    let projected = g
        .gemm(
            "project",
            &input,
            &Linear { weight: &weight, in_features: latent + genres, out_features: out, bias: None },
        )
        .unwrap();
    let grid = g.reshape("grid", &projected, &[0, 1, n_mels as i64, frames as i64]).unwrap();
    g.sigmoid("mel", &grid).unwrap();
    g.output("mel", DataType::Float, &[batch, 1usize.into(), n_mels.into(), frames.into()]).unwrap();
    g.to_bytes().unwrap()
}

fn genres(n: usize) -> Vec<String> {
    ["cn", "edm", "jazz", "metal", "folk"][..n].iter().map(|s| s.to_string()).collect()
}

/// A manifest that describes `decoder_bytes` for `n_genres` genres.
fn manifest(n_genres: usize, decoder_bytes: &[u8]) -> Manifest {
    let signal = signal();
    let (inputs, outputs) = decoder_interface(LATENT, n_genres, signal.n_mels, signal.model_frames(), false);
    Manifest {
        format_version: FORMAT_VERSION,
        name: "toy".into(),
        created: "2026-11-25T20:00:00Z".into(),
        genres: genres(n_genres),
        latent_dim: LATENT,
        centroids: (0..n_genres).map(|g| vec![g as f32 * 0.5; LATENT]).collect(),
        signal,
        normalization: DbRange { db_floor: -80.0, db_ceiling: 20.0 },
        onnx: OnnxInfo {
            file: DECODER_FILE.into(),
            opset: DEFAULT_OPSET,
            inputs,
            outputs,
            sha256: sha256_hex(decoder_bytes),
        },
        training: TrainingSummary {
            epochs: 3,
            steps: 120,
            final_train_loss: 0.0123,
            final_validation_loss: 0.0145,
            dataset: genres(n_genres)
                .into_iter()
                .map(|genre| GenreDataset { genre, tracks: 10, segments: 40, hours: 0.5 })
                .collect(),
        },
        latent_bank: None,
        latent_time_cells: None,
        postfilter: None,
    }
}

/// Writes `decoder_bytes` and `manifest` into `dir` (the manifest as given, without validation).
fn write_bundle(dir: &Path, manifest: &Manifest, decoder_bytes: &[u8]) {
    std::fs::write(dir.join(DECODER_FILE), decoder_bytes).unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json()).unwrap();
}

fn standard_decoder(genres: usize) -> Vec<u8> {
    let signal = signal();
    decoder(LATENT, genres, signal.n_mels, signal.model_frames(), "batch".into())
}

/// Loads a bundle made of `decoder_bytes` and the manifest JSON after `edit`.
fn load_edited(decoder_bytes: &[u8], n_genres: usize, edit: impl FnOnce(&mut Value)) -> ManifestError {
    let dir = tempfile::tempdir().unwrap();
    let mut json = serde_json::to_value(manifest(n_genres, decoder_bytes)).unwrap();
    edit(&mut json);
    std::fs::write(dir.path().join(DECODER_FILE), decoder_bytes).unwrap();
    std::fs::write(dir.path().join(MANIFEST_FILE), json.to_string()).unwrap();
    Manifest::load(dir.path()).expect_err("the bundle should be refused")
}

#[test]
fn a_written_bundle_loads_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = standard_decoder(3);
    let written = manifest(3, &bytes);
    std::fs::write(dir.path().join(DECODER_FILE), &bytes).unwrap();
    written.write(dir.path()).unwrap();
    let loaded = Manifest::load(dir.path()).unwrap();
    assert_eq!(loaded.manifest, written);
    assert_eq!(loaded.decoder_bytes, bytes);
    assert_eq!(loaded.decoder_path, dir.path().join(DECODER_FILE));
    // The written JSON stores shapes as DESIGN.md shows them, and nothing but the manifest is left behind.
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(json["onnx"]["inputs"][0]["shape"], serde_json::json!(["batch", LATENT]));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn writing_refuses_an_inconsistent_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = manifest(3, &standard_decoder(3));
    bad.centroids.pop();
    assert!(matches!(bad.write(dir.path()), Err(ManifestError::CentroidCount { genres: 3, rows: 2 })));
    assert!(!dir.path().join(MANIFEST_FILE).exists());
}

#[test]
fn a_tampered_decoder_is_refused_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = standard_decoder(3);
    let written = manifest(3, &bytes);
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    write_bundle(dir.path(), &written, &tampered);
    let err = Manifest::load(dir.path()).unwrap_err();
    assert!(matches!(err, ManifestError::HashMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&written.onnx.sha256), "{err}");
}

#[test]
fn a_missing_decoder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MANIFEST_FILE), manifest(3, &standard_decoder(3)).to_json()).unwrap();
    let err = Manifest::load(dir.path()).unwrap_err();
    assert!(matches!(err, ManifestError::DecoderMissing { .. }), "{err:?}");
    assert!(err.to_string().contains(DECODER_FILE), "{err}");
}

/// Each decoder/manifest disagreement: (case, decoder bytes, manifest genre count, variant check, message part).
#[test]
fn decoder_interface_mismatches_each_have_their_own_error() {
    let s = signal();
    let frames = s.model_frames();
    type Check = fn(&ManifestError) -> bool;
    let cases: Vec<(&str, Vec<u8>, usize, Check, &str)> = vec![
        (
            "genre count",
            decoder(LATENT, 3, s.n_mels, frames, "batch".into()),
            4,
            |e| matches!(e, ManifestError::GenreCount { manifest: 4, .. }),
            "manifest says 4 genres but decoder.onnx input `genre` has 3",
        ),
        (
            "latent size",
            decoder(LATENT + 1, 3, s.n_mels, frames, "batch".into()),
            3,
            |e| matches!(e, ManifestError::LatentDim { manifest: LATENT, .. }),
            "manifest says latent_dim 4 but decoder.onnx input `z` has 5",
        ),
        (
            "mel bands",
            decoder(LATENT, 3, s.n_mels * 2, frames, "batch".into()),
            3,
            |e| matches!(e, ManifestError::MelBands { manifest: 8, .. }),
            "manifest says n_mels 8 but decoder.onnx output `mel` has height 16",
        ),
        (
            "mel frames",
            decoder(LATENT, 3, s.n_mels, frames + 8, "batch".into()),
            3,
            |e| matches!(e, ManifestError::MelFrames { manifest: 16, .. }),
            "manifest signal gives 16 frames per segment but decoder.onnx output `mel` has width 24",
        ),
        (
            "fixed batch",
            decoder(LATENT, 3, s.n_mels, frames, 1usize.into()),
            3,
            |e| matches!(e, ManifestError::GraphShape { kind: "input", .. }),
            "decoder.onnx input `z` has shape [1, 4], expected [batch, 4]",
        ),
    ];
    for (case, bytes, n_genres, check, message) in cases {
        let err = load_edited(&bytes, n_genres, |_| {});
        assert!(check(&err), "{case}: wrong variant {err:?}");
        assert!(err.to_string().contains(message), "{case}: message {err}");
    }
}

/// Each manifest-only fault, injected into otherwise valid JSON: (case, edit, variant check, message part).
#[test]
fn manifest_faults_each_have_their_own_error() {
    type Edit = fn(&mut Value);
    type Check = Box<dyn Fn(&ManifestError) -> bool>;
    let missing = |field: &'static str| move |e: &ManifestError| matches!(e, ManifestError::MissingField { field: f } if f == field);
    let cases: Vec<(&str, Edit, Check, &str)> = vec![
        (
            "missing top-level field",
            |j| drop(j.as_object_mut().unwrap().remove("name")),
            Box::new(missing("name")),
            "missing field `name`",
        ),
        (
            "missing nested field",
            |j| drop(j["onnx"].as_object_mut().unwrap().remove("sha256")),
            Box::new(missing("onnx.sha256")),
            "missing field `onnx.sha256`",
        ),
        (
            "missing signal parameter",
            |j| drop(j["signal"].as_object_mut().unwrap().remove("n_mels")),
            Box::new(missing("signal.n_mels")),
            "missing field `signal.n_mels`",
        ),
        (
            "missing version",
            |j| drop(j.as_object_mut().unwrap().remove("format_version")),
            Box::new(missing("format_version")),
            "missing field `format_version`",
        ),
        (
            "wrong version",
            |j| j["format_version"] = 2.into(),
            Box::new(|e| matches!(e, ManifestError::UnsupportedVersion { found: 2, supported: 1 })),
            "format_version 2 is not supported",
        ),
        (
            "mistyped field",
            |j| j["latent_dim"] = "four".into(),
            Box::new(|e| matches!(e, ManifestError::InvalidField { field, .. } if field == "latent_dim")),
            "manifest field `latent_dim`",
        ),
        (
            "centroid row too short",
            |j| drop(j["centroids"][1].as_array_mut().unwrap().pop()),
            Box::new(|e| matches!(e, ManifestError::CentroidLength { found: 3, latent_dim: 4, .. })),
            "centroid of genre `edm` has 3 values but latent_dim is 4",
        ),
        (
            "centroid row missing",
            |j| drop(j["centroids"].as_array_mut().unwrap().pop()),
            Box::new(|e| matches!(e, ManifestError::CentroidCount { genres: 3, rows: 2 })),
            "manifest has 3 genres but 2 centroid rows",
        ),
        (
            "duplicate genre",
            |j| j["genres"][2] = "cn".into(),
            Box::new(|e| matches!(e, ManifestError::DuplicateGenre { genre } if genre == "cn")),
            "genre `cn` twice",
        ),
        (
            "no genres",
            |j| j["genres"] = serde_json::json!([]),
            Box::new(|e| matches!(e, ManifestError::NoGenres)),
            "no genres",
        ),
        (
            "genre name with a comma",
            |j| j["genres"][0] = "c,n".into(),
            Box::new(|e| matches!(e, ManifestError::InvalidGenreName { .. })),
            "\"c,n\"",
        ),
        (
            "empty normalisation range",
            |j| j["normalization"]["db_floor"] = 30.0.into(),
            Box::new(|e| matches!(e, ManifestError::Normalization { .. })),
            "db_floor (30) must be finite and below db_ceiling (20)",
        ),
        (
            "bad timestamp",
            |j| j["created"] = "yesterday".into(),
            Box::new(|e| matches!(e, ManifestError::Created { .. })),
            "\"yesterday\" is not an RFC 3339 timestamp",
        ),
        (
            "invalid signal",
            |j| j["signal"]["hop_length"] = 0.into(),
            Box::new(|e| matches!(e, ManifestError::Signal(_))),
            "hop_length",
        ),
        (
            "opset mismatch",
            |j| j["onnx"]["opset"] = 13.into(),
            Box::new(|e| matches!(e, ManifestError::OpsetMismatch { manifest: 13, model: 17, .. })),
            "manifest says opset 13 but decoder.onnx imports opset 17",
        ),
        (
            "declared shape differs from the graph",
            |j| j["onnx"]["inputs"][0]["shape"] = serde_json::json!(["n", 4]),
            Box::new(|e| matches!(e, ManifestError::DeclaredShape { .. })),
            "manifest declares input `z` as [n, 4] but decoder.onnx has [batch, 4]",
        ),
        (
            "undeclared output",
            |j| j["onnx"]["outputs"] = serde_json::json!([]),
            Box::new(|e| matches!(e, ManifestError::MissingDeclaration { kind: "output", .. })),
            "onnx.outputs does not declare `mel`",
        ),
        (
            "decoder outside the bundle",
            |j| j["onnx"]["file"] = "../decoder.onnx".into(),
            Box::new(|e| matches!(e, ManifestError::DecoderFileName { .. })),
            "must be a plain file name",
        ),
        (
            "unknown dataset genre",
            |j| j["training"]["dataset"][0]["genre"] = "polka".into(),
            Box::new(|e| matches!(e, ManifestError::UnknownDatasetGenre { genre } if genre == "polka")),
            "`polka`",
        ),
    ];
    let bytes = standard_decoder(3);
    for (case, edit, check, message) in cases {
        let err = load_edited(&bytes, 3, edit);
        assert!(check(&err), "{case}: wrong variant {err:?}");
        assert!(err.to_string().contains(message), "{case}: message {err}");
    }
}

#[test]
fn a_manifest_that_is_not_json_is_refused_as_such() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MANIFEST_FILE), "{\"format_version\": 1,").unwrap();
    let err = Manifest::load(dir.path()).unwrap_err();
    assert!(matches!(err, ManifestError::Json { .. }), "{err:?}");
    assert!(err.to_string().contains("line 1"), "{err}");
}

/// `latent_time_cells` says the decoder's time axis is dynamic: a fixed graph is then refused
/// naming the axis, and a count that does not divide the latent or the segment is refused as a
/// field.
#[test]
fn a_dynamic_time_axis_must_match_the_graph_and_divide_the_segment() {
    let bytes = standard_decoder(3);
    let err = load_edited(&bytes, 3, |j| j["latent_time_cells"] = 2.into());
    assert!(matches!(err, ManifestError::TimeAxis { manifest: true, .. }), "{err:?}");
    assert!(err.to_string().contains("input `z` has axis 4"), "{err}");
    assert!(err.to_string().contains("gives latent_time_cells"), "{err}");
    let err = load_edited(&bytes, 3, |j| j["latent_time_cells"] = 3.into());
    assert!(matches!(&err, ManifestError::InvalidField { field, .. } if field == "latent_time_cells"), "{err:?}");
}
