//! The `sampler` field through the HTTP API: `bank` (the default where the bundle has a latent
//! bank) decodes real codes, `prior` the blended centroids plus noise; both are reproducible by
//! seed, differ from each other, and an unknown sampler is a 400 naming the field; the offline
//! `melfuse-serve generate --sampler` writes the bytes the API answers.

mod support;

use actix_web::http::StatusCode;
use actix_web::web;
use support::get;

#[actix_web::test]
async fn bank_is_the_default_and_differs_from_the_prior() {
    let dir = tempfile::tempdir().unwrap();
    support::write_bundle(dir.path());
    let state = support::ready_state(&support::config(dir.path())).await;

    let uri = |extra: &str| format!("/generate?blend=cn:0.5,edm:0.5&seed=3&seconds=1&format=npy{extra}");
    let (status, default) = get(&state, &uri("")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, bank) = get(&state, &uri("&sampler=bank")).await;
    let (_, prior) = get(&state, &uri("&sampler=prior")).await;
    let (_, prior_again) = get(&state, &uri("&sampler=prior")).await;
    assert_eq!(default, bank, "bank is the default where the bundle has one");
    assert_eq!(prior, prior_again, "reproducible by seed");
    assert_ne!(bank, prior, "the two samplers draw different latents");

    let (status, body) = get(&state, &uri("&sampler=diffusion")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["field"], "sampler");

    let (_, doc) = get(&state, "/openapi.json").await;
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    let sampler = doc["paths"]["/generate"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sampler")
        .expect("sampler is documented")
        .clone();
    assert_eq!(sampler["schema"]["default"], "bank");
}

#[actix_web::test]
async fn the_offline_command_takes_the_sampler_and_writes_what_the_api_answers() {
    let dir = tempfile::tempdir().unwrap();
    support::write_bundle(dir.path());
    let state = support::ready_state(&support::config(dir.path())).await;
    for sampler in ["bank", "prior"] {
        let out = dir.path().join(format!("{sampler}.npy"));
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_melfuse-serve"))
            .args(["generate", "--model"])
            .arg(dir.path())
            .args(["--blend", "cn:0.5,edm:0.5", "--seed", "3", "--seconds", "1", "--sampler", sampler, "--out"])
            .arg(&out)
            .output()
            .expect("run melfuse-serve generate");
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let uri = format!("/generate?blend=cn:0.5,edm:0.5&seed=3&seconds=1&format=npy&sampler={sampler}");
        let (status, body) = get(&state, &uri).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(std::fs::read(&out).unwrap(), body, "{sampler}: the file is the API's body");
    }
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_melfuse-serve"))
        .args(["generate", "--model"])
        .arg(dir.path())
        .args(["--blend", "cn", "--sampler", "diffusion", "--out"])
        .arg(dir.path().join("x.npy"))
        .output()
        .expect("run melfuse-serve generate");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("--sampler"), "{stderr}");
    assert!(!dir.path().join("x.npy").exists(), "nothing is written for a refused request");
}

#[actix_web::test]
async fn a_tiled_bank_walk_is_decoded_in_one_pass_without_seams() {
    // The bundle's decoder mixes each latent column with its neighbours; a walk of two tiles drawn
    // in one pass mixes the last column of the first tile with the first of the second, which
    // two segments decoded apart and joined could not.
    let tiled = TiledBundle::start().await;
    let (manifest, bank) = (&tiled.loaded.manifest, tiled.bank());
    let (n_mels, frames) = (manifest.signal.n_mels, manifest.signal.model_frames());

    // 2.5 s at 62.5 frames/s: two tiles of 96 frames cut to the clip's length.
    let mel = tiled.mel("/generate?blend=edm:1&seed=5&seconds=2.5&temperature=0&format=npy").await;
    let total = mel.ncols();
    assert_eq!(mel.nrows(), n_mels);
    assert!(total > frames && total < 2 * frames, "{total} frames");

    let weights = [0.0, 1.0, 0.0];
    let tiles: Vec<Vec<f32>> = (0..2).map(|step| bank.walk(&manifest.centroids, &weights, 0.0, 5, step, 2)).collect();
    let joined = melfuse_proto::manifest::join_latent_maps(&[&tiles[0], &tiles[1]], frames);
    let width = 2 * frames;
    let range = manifest.normalization;
    let mut worst = 0.0f32;
    for band in 0..n_mels {
        for frame in 0..total {
            let expected = support::tiled_decode(&joined, width, band, frame, &weights, range);
            worst = worst.max((mel[[band, frame]] - expected).abs());
        }
    }
    assert!(worst < 1e-3, "one-pass decode differs from the joined map's by {worst} dB");
    // The seam column reads its neighbour across the tiles' border.
    let border = |band: usize| (joined[band * width + frames - 1], joined[band * width + frames]);
    assert!(
        (0..n_mels).any(|band| (border(band).0 - border(band).1).abs() > 0.05),
        "the two tiles differ at the seam, so decoding them apart would have shown there"
    );
}

#[actix_web::test]
async fn a_morph_over_tiles_conditions_each_tile_on_its_own_mixture() {
    // The tiled bundle's genre input adds b·genre to every frame (cn +0.5, edm −0.5): a morph
    // decoded as one row would hear the mean mixture everywhere; each tile must hear its own, and
    // away from the short fades every frame is the whole joined map's decode with that mixture.
    let tiled = TiledBundle::start().await;
    let (manifest, bank) = (&tiled.loaded.manifest, tiled.bank());
    let (n_mels, frames) = (manifest.signal.n_mels, manifest.signal.model_frames());

    // 5 s at 62.5 frames/s: 314 frames, four tiles of 96.
    let mel = tiled.mel("/generate?morph=cn-%3Eedm&seed=5&seconds=5&temperature=0&format=npy").await;
    let (total, tiles) = (mel.ncols(), 4);
    assert!(total > 3 * frames && total <= tiles * frames, "{total} frames");

    let timeline = melfuse_proto::api::timeline::Timeline::parse_morph("cn->edm", &manifest.genres).unwrap();
    let mixtures: Vec<Vec<f32>> =
        (0..tiles).map(|tile| timeline.weights_at(tile as f32 / (tiles - 1) as f32)).collect();
    let codes: Vec<Vec<f32>> =
        (0..tiles).map(|tile| bank.walk(&manifest.centroids, &mixtures[tile], 0.0, 5, tile, tiles)).collect();
    let views: Vec<&[f32]> = codes.iter().map(Vec::as_slice).collect();
    let joined = melfuse_proto::manifest::join_latent_maps(&views, frames);
    let width = tiles * frames;
    let range = manifest.normalization;
    let expected =
        |band: usize, frame: usize, mixture: &[f32]| support::tiled_decode(&joined, width, band, frame, mixture, range);
    let fade = (tiled.config.walk_crossfade_seconds * 62.5).round() as usize;
    let mean: Vec<f32> = (0..3).map(|g| mixtures.iter().map(|m| m[g]).sum::<f32>() / tiles as f32).collect();
    for (tile, mixture) in mixtures.iter().enumerate() {
        let from = if tile == 0 { 0 } else { tile * frames + fade };
        let to = ((tile + 1) * frames).min(total);
        let mut worst = 0.0f32;
        let mut from_mean = 0.0f32;
        for band in 0..n_mels {
            for frame in from..to {
                worst = worst.max((mel[[band, frame]] - expected(band, frame, mixture)).abs());
                from_mean = from_mean.max((mel[[band, frame]] - expected(band, frame, &mean)).abs());
            }
        }
        assert!(worst < 1e-3, "tile {tile} differs from its own mixture's decode by {worst} dB");
        if tile == 0 || tile == tiles - 1 {
            assert!(from_mean > 1.0, "tile {tile} is {from_mean} dB from the mean mixture's decode");
        }
    }
    // Each fade moves from one tile's decode to the next's without a jump.
    for tile in 1..tiles {
        let border = tile * frames;
        for band in 0..n_mels {
            let low = expected(band, border, &mixtures[tile - 1]).min(expected(band, border, &mixtures[tile]));
            let high = expected(band, border, &mixtures[tile - 1]).max(expected(band, border, &mixtures[tile]));
            let value = mel[[band, border]];
            assert!(
                value >= low - 0.5 && value <= high + 0.5,
                "tile {tile}, band {band}: {value} outside {low}..{high}"
            );
        }
    }
}

/// The tiled test bundle ([`support::write_tiled_bundle`]) served and warmed up, with its manifest
/// and bank as the service loaded them.
struct TiledBundle {
    _dir: tempfile::TempDir,
    config: melfuse_serve::config::ServeConfig,
    state: web::Data<melfuse_serve::http::AppState>,
    loaded: melfuse_proto::manifest::LoadedBundle,
}

impl TiledBundle {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        support::write_tiled_bundle(dir.path());
        let config = support::config(dir.path());
        let state = support::ready_state(&config).await;
        let loaded = melfuse_proto::manifest::Manifest::load(dir.path()).expect("the tiled bundle loads");
        Self { _dir: dir, config, state, loaded }
    }

    fn bank(&self) -> &melfuse_proto::latent_bank::LatentBank {
        self.loaded.latent_bank.as_ref().expect("a bank")
    }

    /// The dB mel of a `format=npy` request.
    async fn mel(&self, uri: &str) -> ndarray::Array2<f32> {
        support::get_mel(&self.state, uri).await
    }
}
