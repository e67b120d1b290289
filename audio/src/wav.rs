//! 16-bit PCM WAV output, the format every player and game engine reads.

use std::io::Cursor;
use std::path::Path;

use crate::atomic_file::write_atomically;
use crate::error::AudioError;

/// Mono 16-bit PCM WAV bytes of `samples` (in [-1, 1]; beyond is clipped,
/// non-finite samples become silence) at `sample_rate`.
pub fn encode_wav_pcm16(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, AudioError> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut bytes = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let mut writer = hound::WavWriter::new(&mut bytes, spec)?;
        let mut pcm = writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            pcm.write_sample(to_pcm16(s));
        }
        pcm.flush()?;
        writer.finalize()?;
    }
    Ok(bytes.into_inner())
}

/// Writes [`encode_wav_pcm16`]'s output to `path` atomically.
pub fn write_wav_pcm16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), AudioError> {
    write_atomically(path, &encode_wav_pcm16(samples, sample_rate)?)
}

/// One sample to 16-bit PCM, rounded, clipped, NaN → 0.
fn to_pcm16(sample: f32) -> i16 {
    if sample.is_finite() {
        (sample.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_hound() {
        let samples = vec![0.0, 0.5, -0.5, 1.0, -1.0, 2.0, f32::NAN];
        let bytes = encode_wav_pcm16(&samples, 22_050).unwrap();
        let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(reader.spec().sample_rate, 22_050);
        assert_eq!(reader.spec().channels, 1);
        let read: Vec<i16> = reader.into_samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(read, vec![0, 16_384, -16_384, 32_767, -32_767, 32_767, 0]);
    }

    #[test]
    fn writes_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav_pcm16(&path, &[0.1; 100], 8000).unwrap();
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 100);
    }
}
