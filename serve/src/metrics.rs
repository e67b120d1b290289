//! Prometheus metrics (DESIGN.md, "Metrics", prefix `melfuse_`), registered once per service in its
//! own registry, plus the process collector under its conventional names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), which dashboards and alerts expect unprefixed.
//!
//! Bucket bounds follow measured latencies on a 2-core CPU: a 15 s WAV at 32 Griffin-Lim
//! iterations takes a few hundred milliseconds end to end, the decoder a few milliseconds per batch,
//! encoding well under a millisecond for PNG/npy; the upper buckets catch queueing under overload.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Request latency buckets, in seconds.
pub const REQUEST_BUCKETS: [f64; 18] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0];
/// Stage latency buckets, in seconds.
pub const STAGE_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.12, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0];
/// Batch-size buckets, in decoder rows.
pub const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Counter/gauge options under the `melfuse_` prefix.
fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(PREFIX)
}

/// Histogram options under the `melfuse_` prefix.
fn histogram_opts(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).namespace(PREFIX)
}

/// The namespace of the service's own metrics.
pub const PREFIX: &str = "melfuse";

/// Every metric the service exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `requests_total{endpoint,format,status}`.
    pub requests_total: IntCounterVec,
    /// `request_duration_seconds{endpoint,format}`.
    pub request_duration_seconds: HistogramVec,
    /// `stage_duration_seconds{stage}`: `queue`, `decoder`, `vocoder`, `encode`.
    pub stage_duration_seconds: HistogramVec,
    /// `batch_size`: decoder rows per decoder call.
    pub batch_size: Histogram,
    /// `queue_depth`: generation requests waiting for the decoder.
    pub queue_depth: IntGauge,
    /// `inflight_requests`: HTTP requests being handled.
    pub inflight_requests: IntGauge,
    /// `generated_audio_seconds_total`: seconds of clip produced, every format.
    pub generated_audio_seconds_total: prometheus::Counter,
    /// `blend_weight_total{genre}`: each clip's mean weight per genre, summed.
    pub blend_weight_total: prometheus::CounterVec,
    /// `model_info{model,genres,execution_provider}` = 1.
    pub model_info: IntGaugeVec,
    /// `page_loads_total`: views of the playground page (`GET /`), apart from API calls.
    pub page_loads_total: IntCounter,
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            opts("requests_total", "HTTP requests by endpoint, format and status code."),
            &["endpoint", "format", "status"],
        )?;
        let request_duration_seconds = HistogramVec::new(
            histogram_opts("request_duration_seconds", "HTTP request latency.").buckets(REQUEST_BUCKETS.to_vec()),
            &["endpoint", "format"],
        )?;
        let stage_duration_seconds = HistogramVec::new(
            histogram_opts(
                "stage_duration_seconds",
                "Time per generation stage: queue (waiting for the decoder), decoder (one batch), vocoder, encode.",
            )
            .buckets(STAGE_BUCKETS.to_vec()),
            &["stage"],
        )?;
        let batch_size = Histogram::with_opts(
            histogram_opts("batch_size", "Decoder rows (clip segments) per decoder call.")
                .buckets(BATCH_BUCKETS.to_vec()),
        )?;
        let queue_depth = IntGauge::with_opts(opts("queue_depth", "Generation requests waiting for the decoder."))?;
        let inflight_requests = IntGauge::with_opts(opts("inflight_requests", "HTTP requests being handled."))?;
        let generated_audio_seconds_total = prometheus::Counter::with_opts(opts(
            "generated_audio_seconds_total",
            "Seconds of clip generated (every format).",
        ))?;
        let blend_weight_total = prometheus::CounterVec::new(
            opts("blend_weight_total", "Sum over generated clips of each genre's mean blend weight."),
            &["genre"],
        )?;
        let model_info = IntGaugeVec::new(
            opts("model_info", "The loaded model; always 1."),
            &["model", "genres", "execution_provider"],
        )?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration_seconds.clone()))?;
        registry.register(Box::new(stage_duration_seconds.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(inflight_requests.clone()))?;
        registry.register(Box::new(generated_audio_seconds_total.clone()))?;
        registry.register(Box::new(blend_weight_total.clone()))?;
        let page_loads_total = IntCounter::with_opts(opts(
            "page_loads_total",
            "Views of the playground page (GET /); its assets and the API calls it makes are not counted here.",
        ))?;
        registry.register(Box::new(model_info.clone()))?;
        registry.register(Box::new(page_loads_total.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(Self {
            registry,
            requests_total,
            request_duration_seconds,
            stage_duration_seconds,
            batch_size,
            queue_depth,
            inflight_requests,
            generated_audio_seconds_total,
            blend_weight_total,
            model_info,
            page_loads_total,
        })
    }

    /// Observes `seconds` in the stage histogram `stage`.
    pub fn observe_stage(&self, stage: &str, seconds: f64) {
        self.stage_duration_seconds.with_label_values(&[stage]).observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_design_metric_is_exported_with_the_prefix() {
        let metrics = Metrics::new().unwrap();
        metrics.requests_total.with_label_values(&["/generate", "wav", "200"]).inc();
        metrics.request_duration_seconds.with_label_values(&["/generate", "wav"]).observe(0.3);
        metrics.observe_stage("decoder", 0.004);
        metrics.batch_size.observe(3.0);
        metrics.blend_weight_total.with_label_values(&["cn"]).inc_by(0.6);
        metrics.model_info.with_label_values(&["demo", "cn,edm", "cpu"]).set(1);
        let text = metrics.render().unwrap();
        for name in [
            "melfuse_requests_total{endpoint=\"/generate\",format=\"wav\",status=\"200\"} 1",
            "melfuse_request_duration_seconds_bucket",
            "melfuse_stage_duration_seconds_bucket{stage=\"decoder\"",
            "melfuse_batch_size_bucket",
            "melfuse_queue_depth 0",
            "melfuse_inflight_requests 0",
            "melfuse_generated_audio_seconds_total 0",
            "melfuse_blend_weight_total{genre=\"cn\"} 0.6",
            "melfuse_model_info{execution_provider=\"cpu\",genres=\"cn,edm\",model=\"demo\"} 1",
            "melfuse_page_loads_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        #[cfg(target_os = "linux")]
        assert!(text.lines().any(|l| l.starts_with("process_resident_memory_bytes ")), "{text}");
    }
}
