//! The HTTP API (DESIGN.md, "HTTP API") on actix-web: routes, JSON errors, and the middleware that
//! counts every request into `melfuse_requests_total` / `melfuse_request_duration_seconds`.
//!
//! Handlers only parse and answer; generation runs in [`Generator`], whose decoder thread and
//! worker pool keep heavy work off the async threads. The playground page ([`crate::ui`]) is
//! registered here too unless the state says it is off (`no_ui`); then `/` is an unknown route.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use melfuse_proto::api::openapi::openapi_document;
use melfuse_proto::api::request::fields_from_json;
use melfuse_proto::api::{ErrorBody, GenerateRequest, GenresResponse, RequestError};
use serde_json::json;

use crate::error::GenerateError;
use crate::generator::{GeneratedClip, Generator};

/// Header carrying the seed a clip was generated with.
pub const SEED_HEADER: &str = "X-Melfuse-Seed";

/// Seconds a client is told to wait (`Retry-After`) when the service is at capacity or not ready.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// What every handler shares.
pub struct AppState {
    generator: Arc<Generator>,
    ready: AtomicBool,
    genres: GenresResponse,
    openapi: serde_json::Value,
    max_body_bytes: usize,
    ui: bool,
}

impl AppState {
    /// State for `generator`, not yet ready (see [`AppState::warm_up`]), with the playground page on;
    /// POST bodies over `max_body_bytes` are refused with 413.
    pub fn new(generator: Arc<Generator>, max_body_bytes: usize) -> Self {
        let manifest = generator.manifest();
        let genres = GenresResponse {
            execution_provider: Some(generator.provider().label().to_string()),
            ..GenresResponse::from_manifest(manifest)
        };
        let openapi = openapi_document(&manifest.name, &manifest.genres, generator.limits(), env!("CARGO_PKG_VERSION"));
        Self { generator, ready: AtomicBool::new(false), genres, openapi, max_body_bytes, ui: true }
    }

    /// The same state with the playground page (`GET /` and `/ui/*`) on or off.
    pub fn with_ui(mut self, enabled: bool) -> Self {
        self.ui = enabled;
        self
    }

    /// Whether [`app`] serves the playground page.
    pub fn ui_enabled(&self) -> bool {
        self.ui
    }

    /// Runs one inference through the whole decoder path; `/readyz` answers 200 once it succeeded.
    pub async fn warm_up(&self) -> Result<(), GenerateError> {
        let started = Instant::now();
        self.generator.warm_up().await?;
        self.ready.store(true, Ordering::SeqCst);
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "warm-up inference done; ready");
        Ok(())
    }

    /// Whether the warm-up inference has succeeded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The generator behind the API.
    pub fn generator(&self) -> &Arc<Generator> {
        &self.generator
    }
}

/// The `format` label of a response, set by the handler for the metrics middleware.
#[derive(Debug, Clone, Copy)]
struct FormatLabel(&'static str);

/// The whole application: routes, the playground page unless it is off, JSON 404/405, and request
/// metrics.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let ui = state.ui_enabled();
    App::new()
        .app_data(state)
        .wrap(from_fn(track_requests))
        .configure(|config| {
            if ui {
                crate::ui::configure(config);
            }
        })
        .service(
            web::resource("/generate")
                .route(web::get().to(generate_get))
                .route(web::post().to(generate_post))
                .default_service(web::to(method_not_allowed)),
        )
        .service(web::resource("/genres").route(web::get().to(genres)).default_service(web::to(method_not_allowed)))
        .service(web::resource("/healthz").route(web::get().to(healthz)).default_service(web::to(method_not_allowed)))
        .service(web::resource("/readyz").route(web::get().to(readyz)).default_service(web::to(method_not_allowed)))
        .service(web::resource("/metrics").route(web::get().to(metrics)).default_service(web::to(method_not_allowed)))
        .service(
            web::resource("/openapi.json").route(web::get().to(openapi)).default_service(web::to(method_not_allowed)),
        )
        .default_service(web::to(not_found))
}

/// Counts and times every request, by route pattern (unmatched paths share one label), format and
/// status; tracks the number in flight.
async fn track_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let endpoint = request.match_pattern().unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let inflight = state.as_ref().map(|s| InflightGuard::new(s.generator.metrics().inflight_requests.clone()));
    let response = next.call(request).await;
    drop(inflight);
    if let (Some(state), Ok(response)) = (&state, &response) {
        let format = response.response().extensions().get::<FormatLabel>().map_or("none", |f| f.0);
        let metrics = state.generator.metrics();
        metrics.requests_total.with_label_values(&[endpoint.as_str(), format, response.status().as_str()]).inc();
        metrics
            .request_duration_seconds
            .with_label_values(&[endpoint.as_str(), format])
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

/// Keeps `melfuse_inflight_requests` raised while alive, also when a request is cancelled.
struct InflightGuard(prometheus::IntGauge);

impl InflightGuard {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn generate_get(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let fields = match serde_urlencoded::from_str::<Vec<(String, String)>>(request.query_string()) {
        Ok(fields) => fields,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &ErrorBody::new("invalid_query", format!("the query string is not valid: {e}"), Some("query")),
            )
        }
    };
    generate(&state, &fields).await
}

async fn generate_post(state: web::Data<AppState>, mut payload: web::Payload) -> HttpResponse {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &ErrorBody::new("invalid_body", format!("cannot read the body: {e}"), Some("body")),
                )
            }
        };
        if body.len() + chunk.len() > state.max_body_bytes {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &ErrorBody::new(
                    "body_too_large",
                    format!("the body exceeds {} bytes", state.max_body_bytes),
                    Some("body"),
                ),
            );
        }
        body.extend_from_slice(&chunk);
    }
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &ErrorBody::new("invalid_body", format!("the body is not JSON: {e}"), Some("body")),
            )
        }
    };
    match fields_from_json(&value) {
        Ok(fields) => generate(&state, &fields).await,
        Err(error) => request_error(&error),
    }
}

/// Validates `fields`, generates, and answers with the clip or the error.
async fn generate(state: &AppState, fields: &[(String, String)]) -> HttpResponse {
    let generator = &state.generator;
    let request = match GenerateRequest::from_fields(fields, &generator.manifest().genres, generator.limits()) {
        Ok(request) => request,
        Err(error) => return request_error(&error),
    };
    if !state.is_ready() {
        let mut response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &ErrorBody::new("not_ready", "the model is still warming up", None),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        return response;
    }
    let format = request.format;
    let mut response = match generator.generate(request).await {
        Ok(clip) => clip_response(clip),
        Err(error) => generate_error(&error),
    };
    response.extensions_mut().insert(FormatLabel(format.name()));
    response
}

fn clip_response(clip: GeneratedClip) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(clip.format.content_type())
        .insert_header((SEED_HEADER, clip.seed.to_string()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"melfuse-{}.{}\"", clip.seed, clip.format.name()),
        ))
        .body(clip.body)
}

fn request_error(error: &RequestError) -> HttpResponse {
    error_response(StatusCode::BAD_REQUEST, &ErrorBody::from(error))
}

/// The status and JSON body of a failed generation.
pub fn generate_error(error: &GenerateError) -> HttpResponse {
    let (status, code) = match error {
        GenerateError::Invalid(error) => return request_error(error),
        GenerateError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        GenerateError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        GenerateError::DeadlineExceeded { .. } => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
        GenerateError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(%error, "generation failed");
    }
    let mut response = error_response(status, &ErrorBody::new(code, error.to_string(), None));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

fn error_response(status: StatusCode, body: &ErrorBody) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

async fn genres(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.genres)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_ready() {
        HttpResponse::Ok().json(json!({
            "status": "ready",
            "model": state.generator.manifest().name,
            "execution_provider": state.generator.provider().label(),
        }))
    } else {
        let mut response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &ErrorBody::new("not_ready", "the model is loaded but the warm-up inference has not finished", None),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        response
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.generator.metrics().render() {
        Ok(text) => HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &ErrorBody::new("internal", format!("cannot render metrics: {e}"), None),
        ),
    }
}

async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.openapi)
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    error_response(
        StatusCode::NOT_FOUND,
        &ErrorBody::new("not_found", format!("no route {} {}", request.method(), request.path()), None),
    )
}

/// The JSON 405 of every route's other methods.
pub(crate) async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &ErrorBody::new(
            "method_not_allowed",
            format!("{} is not allowed on {}", request.method(), request.path()),
            None,
        ),
    )
}
