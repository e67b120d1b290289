//! The `sampler` field through the HTTP API: `bank` (the default where the bundle has a latent
//! bank) decodes real codes, `prior` the blended centroids plus noise; both are reproducible by
//! seed, differ from each other, and an unknown sampler is a 400 naming the field.

mod support;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use melfuse_serve::http::app;

async fn get(state: &web::Data<melfuse_serve::http::AppState>, uri: &str) -> (StatusCode, Vec<u8>) {
    let service = test::init_service(app(state.clone())).await;
    let response = test::call_service(&service, TestRequest::get().uri(uri).to_request()).await;
    let status = response.status();
    (status, test::read_body(response).await.to_vec())
}

#[actix_web::test]
async fn bank_is_the_default_and_differs_from_the_prior() {
    let dir = tempfile::tempdir().unwrap();
    support::write_bundle(dir.path());
    let state = web::Data::new(support::state(&support::config(dir.path())));
    state.warm_up().await.expect("warm-up");

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
