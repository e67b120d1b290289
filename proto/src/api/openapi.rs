//! The OpenAPI 3.1 description served at `GET /openapi.json`, filled in with the loaded model's genres
//! and the service's limits so that clients and generated forms see the real choices.

use serde_json::{json, Value};

use super::request::{RequestLimits, GRIFFIN_LIM_ITERS, MAX_TEMPERATURE, MIN_SECONDS};
use super::timeline::{MAX_MORPH_STOPS, MORPH_SEPARATOR};

/// The OpenAPI document of the service serving `model` with `genres` under `limits`.
pub fn openapi_document(model: &str, genres: &[String], limits: &RequestLimits, version: &str) -> Value {
    let genre_list = genres.join(", ");
    let error = json!({"$ref": "#/components/schemas/Error"});
    let error_response =
        |description: &str| json!({"description": description, "content": {"application/json": {"schema": error}}});
    let generate_fields = json!({
        "blend": {"type": "string", "example": "cn:0.6,edm:0.4",
            "description": format!("genre:weight pairs separated by commas; weights finite and ≥ 0, at least one > 0, normalised to sum 1; a bare genre means weight 1. Genres: {genre_list}. Required unless `morph` is given.")},
        "morph": {"type": "string", "example": "cn:1 -> cn:0.5,edm:0.5 -> edm:1",
            "description": format!("2–{MAX_MORPH_STOPS} blends separated by `{MORPH_SEPARATOR}`, passed through at evenly spaced times along the clip; excludes `blend`.")},
        "seed": {"type": "integer", "format": "uint64", "minimum": 0,
            "description": "Seed of where the bank walks start (consecutive seeds start in far-apart parts of the bank), of the latent noise and of Griffin-Lim; drawn at random when absent and returned in X-Melfuse-Seed."},
        "temperature": {"type": "number", "minimum": 0, "maximum": MAX_TEMPERATURE, "default": super::request::DEFAULT_TEMPERATURE,
            "description": "Scale of the latent noise: 0 decodes the bank's codes as they are (sampler=bank) or the blend's centroid (sampler=prior), higher is more varied."},
        "griffin_lim_iters": {"type": "integer", "minimum": GRIFFIN_LIM_ITERS.start(), "maximum": GRIFFIN_LIM_ITERS.end(), "default": limits.default_griffin_lim_iters},
        "format": {"type": "string", "enum": ["wav", "png", "npy"], "default": "wav"},
        "seconds": {"type": "number", "minimum": MIN_SECONDS, "maximum": limits.max_seconds, "default": limits.default_seconds,
            "description": "Clip length; longer than one model segment is made of cross-faded segments."},
        "sampler": {"type": "string",
            "enum": if limits.latent_bank { vec!["bank", "prior"] } else { vec!["prior"] },
            "default": limits.default_sampler().name(),
            "description": "How latents are drawn: `bank` decodes real training codes of the blend's genres, spherically interpolated (sharpest); `prior` the blended genre centroids plus noise."}
    });
    let parameters: Vec<Value> = generate_fields
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| json!({"name": name, "in": "query", "required": false, "schema": schema}))
        .collect();
    let clip = json!({
        "description": "The generated clip.",
        "headers": {"X-Melfuse-Seed": {"description": "The seed used.", "schema": {"type": "string"}}},
        "content": {
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "application/x-npy": {"schema": {"type": "string", "format": "binary"}}
        }
    });
    let generate_responses = json!({
        "200": clip,
        "400": error_response("A field is invalid; `field` names it."),
        "413": error_response("The body is too large."),
        "503": error_response("The queue is full or the model is not ready; retry after Retry-After seconds."),
        "504": error_response("The request exceeded its deadline.")
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "melfuse",
            "version": version,
            "description": format!("Genre-fusion music generation with model `{model}` (genres: {genre_list}).")
        },
        "paths": {
            "/generate": {
                "get": {"summary": "Generate a clip", "operationId": "generateGet", "parameters": parameters, "responses": generate_responses},
                "post": {
                    "summary": "Generate a clip (fields as JSON)",
                    "operationId": "generatePost",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "additionalProperties": false, "properties": generate_fields
                    }}}},
                    "responses": generate_responses
                }
            },
            "/genres": {"get": {"summary": "The model's genres and their training data", "responses": {"200": {
                "description": "Genres in model order.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Genres"}}}
            }}}},
            "/healthz": {"get": {"summary": "The process is alive", "responses": {"200": {"description": "Alive."}}}},
            "/readyz": {"get": {"summary": "The model is loaded and warmed up", "responses": {
                "200": {"description": "Ready."},
                "503": error_response("Not ready yet.")
            }}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text format.", "content": {"text/plain": {}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1."}}}}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}
            }}},
            "Genres": {"type": "object", "properties": {
                "model": {"type": "string"},
                "genres": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string", "enum": genres},
                    "training_clips": {"type": "integer"},
                    "training_tracks": {"type": "integer"},
                    "training_hours": {"type": "number"}
                }}},
                "segment_seconds": {"type": "number", "description": "Seconds of audio one decoder output covers; longer clips are cross-faded segments."},
                "sample_rate": {"type": "integer", "description": "Sample rate of the generated audio, in Hz."},
                "execution_provider": {"type": "string", "enum": ["cpu", "cuda"], "description": "Where the decoder runs."}
            }}
        }}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_endpoint_and_the_model_genres() {
        let limits = RequestLimits {
            default_seconds: 15.0,
            max_seconds: 120.0,
            default_griffin_lim_iters: 32,
            latent_bank: true,
        };
        let doc = openapi_document("demo", &["cn".into(), "edm".into()], &limits, "0.1.0");
        for path in ["/generate", "/genres", "/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert!(doc["paths"][path].is_object(), "{path}");
        }
        let names: Vec<&str> = doc["paths"]["/generate"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for field in super::super::request::FIELDS {
            assert!(names.contains(&field), "{field}");
        }
        assert_eq!(
            doc["components"]["schemas"]["Genres"]["properties"]["genres"]["items"]["properties"]["name"]["enum"],
            json!(["cn", "edm"])
        );
        let seconds =
            doc["paths"]["/generate"]["get"]["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "seconds");
        assert_eq!(seconds.unwrap()["schema"]["maximum"], json!(120.0));
    }
}
