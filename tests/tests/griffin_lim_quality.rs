//! Griffin-Lim quality: on the same magnitude and at the same iteration
//! count, melfuse's spectral convergence is no worse than
//! `librosa.griffinlim(momentum=0.99)`'s (averaged over the same seeds).

use melfuse_audio::griffin_lim::{spectral_convergence, GriffinLim};
use melfuse_audio::stft::Stft;
use melfuse_audio::SignalConfig;
use melfuse_e2e::{reference_cases, reference_file};
use ndarray::Array2;
use ndarray_npy::read_npy;

#[test]
fn spectral_convergence_is_no_worse_than_librosa() {
    let cases = reference_cases();
    let case = &cases["griffin_lim"];
    let signal: SignalConfig = serde_json::from_value(case["signal"].clone()).unwrap();
    let magnitude: Array2<f32> = read_npy(reference_file("griffin_lim/magnitude.npy")).unwrap();
    let librosa: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference_file("griffin_lim/librosa.json")).unwrap()).unwrap();
    let length = librosa["length"].as_u64().unwrap() as usize;
    let iterations = case["iterations"].as_u64().unwrap() as usize;
    let momentum = case["momentum"].as_f64().unwrap() as f32;
    let stft = Stft::new(signal.n_fft, signal.hop_length).unwrap();
    let griffin_lim = GriffinLim::new(stft.clone(), iterations, momentum);

    let seeds: Vec<u64> = case["seeds"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
    let ours: Vec<f32> = seeds
        .iter()
        .map(|&seed| {
            spectral_convergence(&stft, magnitude.view(), &griffin_lim.reconstruct(magnitude.view(), length, seed))
        })
        .collect();
    let theirs: Vec<f32> =
        seeds.iter().map(|s| librosa["spectral_convergence"][s.to_string()].as_f64().unwrap() as f32).collect();
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    println!(
        "spectral convergence after {iterations} iterations: melfuse {ours:?} (mean {:.4}), librosa {theirs:?} (mean {:.4})",
        mean(&ours),
        mean(&theirs)
    );
    assert!(mean(&ours) <= mean(&theirs), "melfuse {} > librosa {}", mean(&ours), mean(&theirs));
}
