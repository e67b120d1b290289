//! Set-to-set distances in the classifier's embedding: the Fréchet distance between two sets of
//! clips (how far generated audio sits from real audio of the genre, as FID does for images) and
//! the mean pairwise distance within a set (diversity: a model that collapses onto one clip has
//! none).
//!
//! The Fréchet distance of small sets is biased upwards (each covariance is noisy), so the judge
//! never reports it alone: it divides by the distance between two halves of the reference itself,
//! measured the same way, which carries the same small-sample bias.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// `‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)` between the Gaussians fitted to `a` and `b`
/// (rows of one length); 0 for identical sets. `None` when either set has fewer than two rows.
pub fn frechet_distance(a: &[Vec<f64>], b: &[Vec<f64>]) -> Option<f64> {
    let (mean_a, cov_a) = moments(a)?;
    let (mean_b, cov_b) = moments(b)?;
    let root_a = psd_sqrt(&cov_a);
    let middle = &root_a * &cov_b * &root_a;
    let cross = psd_sqrt(&((&middle + middle.transpose()) * 0.5)).trace();
    let distance = (mean_a - mean_b).norm_squared() + cov_a.trace() + cov_b.trace() - 2.0 * cross;
    Some(distance.max(0.0))
}

/// Mean Euclidean distance over all pairs of rows; `None` with fewer than two rows.
pub fn mean_pairwise_distance(rows: &[Vec<f64>]) -> Option<f64> {
    if rows.len() < 2 {
        return None;
    }
    let mut sum = 0.0;
    let mut pairs = 0usize;
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            sum += a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
            pairs += 1;
        }
    }
    Some(sum / pairs as f64)
}

/// Mean and (population) covariance of the rows.
fn moments(rows: &[Vec<f64>]) -> Option<(DVector<f64>, DMatrix<f64>)> {
    if rows.len() < 2 {
        return None;
    }
    let dims = rows[0].len();
    let n = rows.len() as f64;
    let mean = DVector::from_fn(dims, |d, _| rows.iter().map(|r| r[d]).sum::<f64>() / n);
    let covariance =
        DMatrix::from_fn(dims, dims, |i, j| rows.iter().map(|r| (r[i] - mean[i]) * (r[j] - mean[j])).sum::<f64>() / n);
    Some((mean, covariance))
}

/// The square root of a symmetric positive semi-definite matrix (negative rounding-error
/// eigenvalues are taken as 0).
fn psd_sqrt(matrix: &DMatrix<f64>) -> DMatrix<f64> {
    let eigen = SymmetricEigen::new(matrix.clone());
    let roots = eigen.eigenvalues.map(|v| v.max(0.0).sqrt());
    &eigen.eigenvectors * DMatrix::from_diagonal(&roots) * eigen.eigenvectors.transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(offset: f64, scale: f64) -> Vec<Vec<f64>> {
        (0..30).map(|i| vec![offset + scale * (i % 5) as f64, scale * (i / 5) as f64 * 0.5]).collect()
    }

    #[test]
    fn a_set_is_at_distance_zero_from_itself() {
        let set = grid(0.0, 1.0);
        assert!(frechet_distance(&set, &set).unwrap() < 1e-9);
    }

    #[test]
    fn shifting_or_spreading_a_set_moves_it_away() {
        let set = grid(0.0, 1.0);
        let shifted = grid(2.0, 1.0);
        // A pure shift by 2 along one axis: the squared mean difference, 4.
        assert!((frechet_distance(&set, &shifted).unwrap() - 4.0).abs() < 1e-6);
        let near = frechet_distance(&set, &grid(0.0, 1.2)).unwrap();
        let far = frechet_distance(&set, &grid(0.0, 2.0)).unwrap();
        assert!(near > 0.0 && far > near, "{near} {far}");
        assert!(frechet_distance(&set[..1], &set).is_none());
    }

    #[test]
    fn a_collapsed_set_has_no_diversity() {
        let collapsed = vec![vec![1.0, 2.0]; 5];
        assert_eq!(mean_pairwise_distance(&collapsed), Some(0.0));
        let spread = grid(0.0, 1.0);
        assert!(mean_pairwise_distance(&spread).unwrap() > 1.0);
        // Unit square corners: 4 sides of 1 and 2 diagonals of √2.
        let square = vec![vec![0.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        let expected = (4.0 + 2.0 * 2f64.sqrt()) / 6.0;
        assert!((mean_pairwise_distance(&square).unwrap() - expected).abs() < 1e-12);
    }
}
