//! HTTP API types shared by `melfuse-serve` and its clients (DESIGN.md, "HTTP API"): the `blend` and
//! `morph` parameters, the validated generation request, response and error bodies, and the OpenAPI
//! document.
//!
//! Parsing lives here, not in the handlers, so that `GET ?blend=…`, `POST {"blend": …}` and the
//! offline `melfuse-serve generate` accept and refuse exactly the same inputs.

pub mod blend;
pub mod error;
pub mod openapi;
pub mod request;
pub mod response;
pub mod timeline;

pub use blend::{BlendError, BlendSpec};
pub use error::{ErrorBody, ErrorDetail};
pub use request::{GenerateRequest, OutputFormat, RequestError, RequestLimits};
pub use response::{GenreInfo, GenresResponse};
pub use timeline::{Timeline, TimelineError};
