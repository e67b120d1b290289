//! Reproducible batches: which segments step `s` trains on and the reparameterisation noise it
//! uses are functions of `(seed, s)` only, so a resumed run draws exactly what the uninterrupted
//! run would have drawn, and nothing depends on a backend's global RNG.
//!
//! Order: the training pool is visited epoch by epoch, each epoch a Fisher–Yates permutation
//! seeded with `(seed, epoch)`; step `s` takes positions `s·B … s·B + B − 1` of the concatenated
//! epochs, so every segment is seen once per epoch.
//!
//! Balanced ([`super::balance`]): an epoch is as long as the pool, but genre `g` fills `c_g` of
//! its slots instead of `n_g`. Genre `g`'s draws run through its own permutations of its segments
//! (seeded with `(seed, g, cycle)`), epoch `e` taking its draws `e·c_g … (e+1)·c_g − 1`: an
//! oversampled genre shows every segment before repeating one, an undersampled genre a different
//! part each epoch. The epoch's slots are then shuffled with `(seed, epoch)`. Still a function of
//! `(seed, step)` only. The default (proportional, no factors) keeps the plain permutation above,
//! so earlier runs resume and reproduce exactly.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::prepare::cache::{Cache, CacheError};
use crate::prepare::split::Split;
use melfuse_audio::DbRange;

const ORDER_STREAM: u64 = 0x6f72_6465_7200_0001;
const NOISE_STREAM: u64 = 0x6e6f_6973_6500_0002;
const GENRE_STREAM: u64 = 0x6765_6e72_6500_0003;

/// A ChaCha RNG for `(seed, stream, index)`: SplitMix64-style mixing of the three into one seed,
/// so neighbouring steps or epochs get unrelated streams.
pub fn derived_rng(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut x = seed ^ stream.rotate_left(17) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ChaCha8Rng::seed_from_u64(x ^ (x >> 31))
}

/// One training segment the sampler may draw: its index in the cache's training split and its
/// row in the conditioning vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolEntry {
    /// Index into `Cache::segments(Split::Train)`.
    pub segment: usize,
    /// Conditioning genre (index into `RunInfo::genres`).
    pub genre: usize,
}

/// Picks the pool entries of each step; see the module docs.
#[derive(Debug)]
pub struct BatchSampler {
    pool: Vec<PoolEntry>,
    batch_size: usize,
    seed: u64,
    epoch: Option<(u64, Vec<usize>)>,
    /// Per-genre slots per epoch (indexed by `PoolEntry::genre`) for balanced sampling.
    slots: Option<Vec<usize>>,
}

impl BatchSampler {
    /// A sampler over `pool` (non-empty) drawing `batch_size` entries per step, every segment
    /// once per epoch.
    pub fn new(pool: Vec<PoolEntry>, batch_size: usize, seed: u64) -> Self {
        Self { pool, batch_size, seed, epoch: None, slots: None }
    }

    /// A balanced sampler: genre `g` (a `PoolEntry::genre`) fills `slots[g]` draws per epoch.
    /// Genres without pool entries must have 0 slots; the epoch is `Σ slots` long.
    pub fn balanced(pool: Vec<PoolEntry>, batch_size: usize, seed: u64, slots: Vec<usize>) -> Self {
        Self { pool, batch_size, seed, epoch: None, slots: Some(slots) }
    }

    /// Draws per epoch.
    fn epoch_length(&self) -> usize {
        self.slots.as_ref().map_or(self.pool.len(), |slots| slots.iter().sum())
    }

    /// The entries of 0-based step `index`.
    pub fn batch(&mut self, index: u64) -> Vec<PoolEntry> {
        let n = self.epoch_length() as u64;
        (0..self.batch_size as u64)
            .map(|k| {
                let position = index * self.batch_size as u64 + k;
                let slot = self.permutation(position / n)[(position % n) as usize];
                self.pool[slot]
            })
            .collect()
    }

    /// The pool positions of epoch `epoch`, in draw order.
    fn permutation(&mut self, epoch: u64) -> &[usize] {
        if self.epoch.as_ref().is_none_or(|(cached, _)| *cached != epoch) {
            let mut order: Vec<usize> = match &self.slots {
                None => (0..self.pool.len()).collect(),
                Some(slots) => self.balanced_draws(slots, epoch),
            };
            shuffle(&mut order, &mut derived_rng(self.seed, ORDER_STREAM, epoch));
            self.epoch = Some((epoch, order));
        }
        &self.epoch.as_ref().expect("set above").1
    }

    /// Epoch `epoch`'s draws of each genre (unshuffled): see the module docs.
    fn balanced_draws(&self, slots: &[usize], epoch: u64) -> Vec<usize> {
        let mut draws = Vec::with_capacity(slots.iter().sum());
        for (genre, &count) in slots.iter().enumerate() {
            let members: Vec<usize> = (0..self.pool.len()).filter(|&i| self.pool[i].genre == genre).collect();
            if members.is_empty() || count == 0 {
                continue;
            }
            let n = members.len() as u64;
            let first = epoch * count as u64;
            let mut cycle: Option<(u64, Vec<usize>)> = None;
            for position in first..first + count as u64 {
                let number = position / n;
                if cycle.as_ref().is_none_or(|(c, _)| *c != number) {
                    let mut order = members.clone();
                    let stream = GENRE_STREAM ^ (genre as u64).wrapping_mul(0x1000_0000_01b3);
                    shuffle(&mut order, &mut derived_rng(self.seed, stream, number));
                    cycle = Some((number, order));
                }
                draws.push(cycle.as_ref().expect("set above").1[(position % n) as usize]);
            }
        }
        draws
    }
}

/// Fisher–Yates shuffle.
fn shuffle(order: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
}

/// Standard-normal noise `[rows, latent_dim]` for 0-based step `index` (Box–Muller on a ChaCha
/// stream seeded with `(seed, index)`).
pub fn noise(seed: u64, index: u64, rows: usize, latent_dim: usize) -> Vec<f32> {
    let mut rng = derived_rng(seed, NOISE_STREAM, index);
    let count = rows * latent_dim;
    let mut values = Vec::with_capacity(count + 1);
    while values.len() < count {
        // 1 − u ∈ (0, 1] keeps the logarithm finite.
        let radius = (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt();
        let angle = std::f64::consts::TAU * rng.random::<f64>();
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    values.truncate(count);
    values
}

/// A batch on the host, ready to upload.
#[derive(Debug, Clone)]
pub struct HostBatch {
    /// Normalised segments, `rows × n_mels × frames`, row-major.
    pub images: Vec<f32>,
    /// One-hot conditioning rows, `rows × n_genres`.
    pub genres: Vec<f32>,
    /// Segments in the batch.
    pub rows: usize,
}

impl HostBatch {
    /// Reads `entries` of `split` from the cache, normalised with `range`, one-hot over `n_genres`.
    pub fn read(
        cache: &Cache,
        split: Split,
        entries: &[PoolEntry],
        range: &DbRange,
        n_genres: usize,
    ) -> Result<Self, CacheError> {
        let size = cache.n_mels() * cache.frames();
        let mut images = vec![0.0f32; entries.len() * size];
        let mut genres = vec![0.0f32; entries.len() * n_genres];
        for (row, entry) in entries.iter().enumerate() {
            cache.normalized_segment_into(split, entry.segment, range, &mut images[row * size..(row + 1) * size])?;
            genres[row * n_genres + entry.genre] = 1.0;
        }
        Ok(Self { images, genres, rows: entries.len() })
    }

    /// Uploads the batch: images `[rows, 1, n_mels, frames]` and genres `[rows, n_genres]`.
    pub fn to_tensors(&self, n_mels: usize, frames: usize, device: &Device) -> (Tensor<4>, Tensor<2>) {
        let n_genres = self.genres.len() / self.rows.max(1);
        let images = Tensor::from_data(TensorData::new(self.images.clone(), [self.rows, 1, n_mels, frames]), device);
        let genres = Tensor::from_data(TensorData::new(self.genres.clone(), [self.rows, n_genres]), device);
        (images, genres)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Vec<PoolEntry> {
        (0..n).map(|segment| PoolEntry { segment, genre: segment % 2 }).collect()
    }

    #[test]
    fn each_epoch_visits_every_segment_once_and_steps_are_reproducible() {
        let mut sampler = BatchSampler::new(pool(10), 5, 7);
        let mut seen: Vec<usize> = (0..2).flat_map(|s| sampler.batch(s)).map(|e| e.segment).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let later = sampler.batch(13);
        let mut fresh = BatchSampler::new(pool(10), 5, 7);
        assert_eq!(fresh.batch(13), later, "a step's batch must not depend on the steps drawn before");
        assert_ne!(BatchSampler::new(pool(10), 5, 8).batch(13), later);
    }

    #[test]
    fn batches_wrap_across_epochs() {
        let mut sampler = BatchSampler::new(pool(3), 4, 1);
        assert_eq!(sampler.batch(0).len(), 4);
        let mut first_three: Vec<usize> = sampler.batch(0)[..3].iter().map(|e| e.segment).collect();
        first_three.sort_unstable();
        assert_eq!(first_three, [0, 1, 2]);
    }

    #[test]
    fn balanced_epochs_fill_the_slots_and_cycle_through_each_genre() {
        // Genre 0: 2 segments, genre 1: 8; uniform slots 5 + 5 per 10-draw epoch.
        let pool: Vec<PoolEntry> =
            (0..10).map(|segment| PoolEntry { segment, genre: usize::from(segment >= 2) }).collect();
        let mut sampler = BatchSampler::balanced(pool.clone(), 5, 3, vec![5, 5]);
        let epochs: Vec<Vec<PoolEntry>> =
            (0..4).map(|e| [sampler.batch(2 * e), sampler.batch(2 * e + 1)].concat()).collect();
        for epoch in &epochs {
            assert_eq!(epoch.iter().filter(|e| e.genre == 0).count(), 5);
        }
        // Genre 1 (8 segments, 5 draws per epoch): no repeat within an epoch, all 8 in two.
        let genre_one = |epochs: &[Vec<PoolEntry>]| -> Vec<usize> {
            let mut seen: Vec<usize> = epochs.concat().iter().filter(|e| e.genre == 1).map(|e| e.segment).collect();
            seen.sort_unstable();
            seen.dedup();
            seen
        };
        assert_eq!(genre_one(&epochs[..1]).len(), 5);
        assert_eq!(genre_one(&epochs[..2]), (2..10).collect::<Vec<_>>());
        // Genre 0 (oversampled ×2.5): each of its segments 2 or 3 times per epoch.
        for epoch in &epochs {
            let zeros = epoch.iter().filter(|e| e.segment == 0).count();
            assert!((2..=3).contains(&zeros), "{epoch:?}");
        }
        // Reproducible from (seed, step) alone.
        assert_eq!(BatchSampler::balanced(pool.clone(), 5, 3, vec![5, 5]).batch(7), sampler.batch(7));
        assert_ne!(BatchSampler::balanced(pool, 5, 4, vec![5, 5]).batch(7), sampler.batch(7));
    }

    #[test]
    fn noise_is_standard_normal_and_seeded_per_step() {
        let values = noise(3, 5, 100, 64);
        assert_eq!(values.len(), 6400);
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
        assert!(mean.abs() < 0.05 && (variance - 1.0).abs() < 0.06, "mean {mean} variance {variance}");
        assert_eq!(noise(3, 5, 2, 3), noise(3, 5, 2, 3));
        assert_ne!(noise(3, 5, 2, 3), noise(3, 6, 2, 3));
    }
}
