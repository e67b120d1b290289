//! The metrics log `RUN_DIR/metrics.jsonl`: one JSON object per line, tagged by `kind`:
//!
//! - `{"kind":"train","step","lr","beta","loss","reconstruction","kl","samples_per_second","nonfinite_skipped"}`
//!   every `log_every` steps (the loss of step `step`, computed on the weights after `step − 1`
//!   steps), in the adversarial stage with an `adversarial` object (`critic`, `generator`,
//!   `feature_matching`, `balance`, `real_score`, `fake_score`: `fit::adversarial`);
//! - `{"kind":"validation","step","loss","reconstruction","kl"}` every `validate_every` steps and
//!   at the end: the whole validation split in inference mode with `z = mu` (eps = 0), on the
//!   weights after `step` steps;
//! - `{"kind":"nonfinite","step","lr","action","consecutive","total"}` for each non-finite loss
//!   (`action` is `skipped`, or `restored` when it triggered a checkpoint reload).
//!
//! Lines are appended and flushed one at a time; on `--resume` the lines after the checkpoint's
//! step are dropped so the log describes exactly one trajectory.

use crate::file_error::{io_error, write_file, FileError};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::adversarial::AdversarialMetrics;
use super::FitError;

/// One training step's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainMetrics {
    /// Steps taken including this one (1-based).
    pub step: u64,
    /// Learning rate used for this step (schedule × back-off).
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// KL weight used for this step.
    #[serde(deserialize_with = "nan_if_null")]
    pub beta: f64,
    /// `reconstruction + beta · kl`.
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// The reconstruction loss over the batch (MSE unless `[reconstruction]` says otherwise).
    #[serde(deserialize_with = "nan_if_null")]
    pub reconstruction: f64,
    /// KL divergence (summed over latent dims, mean over the batch).
    #[serde(deserialize_with = "nan_if_null")]
    pub kl: f64,
    /// Throughput since the previous `train` line.
    #[serde(deserialize_with = "nan_if_null")]
    pub samples_per_second: f64,
    /// Non-finite steps skipped so far in the run.
    pub nonfinite_skipped: u64,
    /// The critic's numbers, in the adversarial stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<AdversarialMetrics>,
}

/// One validation pass's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationMetrics {
    /// Steps taken when the pass ran.
    pub step: u64,
    /// `reconstruction + beta · kl` with the step's β.
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// The reconstruction loss over every validation segment (z = mu), as in training.
    #[serde(deserialize_with = "nan_if_null")]
    pub reconstruction: f64,
    /// Mean KL divergence over the validation segments.
    #[serde(deserialize_with = "nan_if_null")]
    pub kl: f64,
}

/// What the loop did about a non-finite loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonfiniteAction {
    /// The optimiser step was skipped; the weights are untouched.
    Skipped,
    /// Skipped, and the last checkpoint was reloaded with a lower learning rate.
    Restored,
}

/// A non-finite loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NonfiniteEvent {
    /// The step whose loss was not finite.
    pub step: u64,
    /// The learning rate the step would have used.
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// What the loop did.
    pub action: NonfiniteAction,
    /// Non-finite losses in a row, this one included.
    pub consecutive: u32,
    /// Non-finite losses in the run so far, this one included.
    pub total: u64,
}

/// One line of `metrics.jsonl`. New kinds may be added; match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum MetricRecord {
    /// A training step.
    Train(TrainMetrics),
    /// A validation pass.
    Validation(ValidationMetrics),
    /// A non-finite loss.
    Nonfinite(NonfiniteEvent),
}

impl MetricRecord {
    /// The step the record belongs to.
    pub fn step(&self) -> u64 {
        match self {
            MetricRecord::Train(m) => m.step,
            MetricRecord::Validation(m) => m.step,
            MetricRecord::Nonfinite(m) => m.step,
        }
    }
}

/// `null`, which is how serde_json writes a non-finite number, reads back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// The lines of a metrics file, each parsed: what both of its readers start from (`--resume`,
/// which refuses a damaged log, and `eval`'s curves, which skip what they cannot read).
#[derive(Debug)]
pub struct MetricsLines {
    /// `(1-based line number, the line as a record)` for every non-empty line.
    pub lines: Vec<(usize, Result<MetricRecord, serde_json::Error>)>,
    /// Lines in the file, empty ones included.
    pub total: usize,
}

impl MetricsLines {
    /// Parses metrics text line by line.
    pub fn parse(text: &str) -> Self {
        let all: Vec<&str> = text.lines().collect();
        let lines = all
            .iter()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| (index + 1, serde_json::from_str(line)))
            .collect();
        Self { lines, total: all.len() }
    }

    /// Reads and parses `path`. Bytes that are not UTF-8 (a torn write) are replaced, so their
    /// line fails to parse instead of failing the read.
    pub fn read(path: &Path) -> Result<Self, FileError> {
        let bytes = std::fs::read(path).map_err(io_error("read", path))?;
        Ok(Self::parse(&String::from_utf8_lossy(&bytes)))
    }
}

/// Every record of a metrics file, in order. A torn last line (the process was killed while
/// writing it) is ignored; any other unparseable line is an error naming its number.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRecord>, FitError> {
    let MetricsLines { lines, total } = MetricsLines::read(path)?;
    let mut records = Vec::with_capacity(lines.len());
    for (number, parsed) in lines {
        match parsed {
            Ok(record) => records.push(record),
            Err(_) if number == total => break,
            Err(source) => return Err(FitError::MetricsLine { path: path.to_path_buf(), line: number, source }),
        }
    }
    Ok(records)
}

/// Appends records to the metrics file, one flushed line each.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `path` for appending after dropping every record with a step above `keep_through`
    /// (`None` starts an empty file): what `--resume` from the checkpoint at that step needs.
    pub fn open(path: &Path, keep_through: Option<u64>) -> Result<Self, FitError> {
        let kept = match keep_through {
            Some(step) if path.exists() => {
                read_metrics(path)?.into_iter().filter(|record| record.step() <= step).collect()
            }
            _ => Vec::new(),
        };
        let mut text = String::new();
        for record in &kept {
            text.push_str(&to_line(record, path)?);
        }
        write_file(path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(path).map_err(io_error("open", path))?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    /// Appends one record as a line and flushes it.
    pub fn append(&mut self, record: &MetricRecord) -> Result<(), FitError> {
        let line = to_line(record, &self.path)?;
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(io_error("append to", &self.path))?;
        Ok(())
    }
}

fn to_line(record: &MetricRecord, path: &Path) -> Result<String, FitError> {
    let mut line =
        serde_json::to_string(record).map_err(|source| FitError::Json { path: path.to_path_buf(), source })?;
    line.push('\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(step: u64) -> MetricRecord {
        MetricRecord::Train(TrainMetrics {
            step,
            lr: 1e-3,
            beta: 0.0,
            loss: 0.5,
            reconstruction: 0.5,
            kl: 1.0,
            samples_per_second: 10.0,
            nonfinite_skipped: 0,
            adversarial: None,
        })
    }

    #[test]
    fn lines_have_the_documented_shape_and_round_trip() {
        let line = serde_json::to_string(&train(3)).unwrap();
        assert!(line.starts_with(r#"{"kind":"train","step":3,"lr":"#), "{line}");
        let validation =
            MetricRecord::Validation(ValidationMetrics { step: 4, loss: 1.0, reconstruction: 0.5, kl: 2.0 });
        let line = serde_json::to_string(&validation).unwrap();
        assert_eq!(line, r#"{"kind":"validation","step":4,"loss":1.0,"reconstruction":0.5,"kl":2.0}"#);
        assert_eq!(serde_json::from_str::<MetricRecord>(&line).unwrap(), validation);
    }

    #[test]
    fn reopening_drops_lines_after_the_checkpoint_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut writer = MetricsWriter::open(&path, None).unwrap();
        for step in 1..=5 {
            writer.append(&train(step)).unwrap();
        }
        drop(writer);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"kind":"train","st"#);
        std::fs::write(&path, text).unwrap();
        assert_eq!(read_metrics(&path).unwrap().len(), 5);
        let mut writer = MetricsWriter::open(&path, Some(3)).unwrap();
        writer.append(&train(4)).unwrap();
        let steps: Vec<u64> = read_metrics(&path).unwrap().iter().map(MetricRecord::step).collect();
        assert_eq!(steps, [1, 2, 3, 4]);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"kind\":\"bogus\"}\n{\"kind\":\"validation\",\"step\":1,\"loss\":1,\"reconstruction\":1,\"kl\":0}\n",
        )
        .unwrap();
        let message = read_metrics(&path).unwrap_err().to_string();
        assert!(message.contains("line 1"), "{message}");
    }
}
