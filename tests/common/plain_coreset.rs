//! The greedy k-center coreset as a plain loop, point by point (the library's before it was
//! vectorised across points): the oracle `tests/quality.rs` and `benches/coreset.rs` hold
//! `dra::model::memory::coreset` to, bit for bit.

use rand::Rng;
use rayon::prelude::*;

use dra::rng::DraRng;

/// Indices of `size` of the `dim`-dimensional `points` (row-major, no projection): a random
/// first, then each time the point farthest from those chosen (the lowest index among equals).
pub fn plain_coreset(points: &[f32], dim: usize, size: usize, rng: &mut DraRng) -> Vec<usize> {
    let b = points.len() / dim;
    let mut nearest = vec![f32::INFINITY; b];
    let mut chosen = Vec::with_capacity(size);
    let mut last = rng.random_range(0..b);
    while chosen.len() < size {
        chosen.push(last);
        let centre = &points[last * dim..(last + 1) * dim];
        nearest
            .par_iter_mut()
            .zip(points.par_chunks(dim))
            .for_each(|(m, p)| {
                let d2: f32 = p.iter().zip(centre).map(|(x, y)| (x - y) * (x - y)).sum();
                *m = m.min(d2);
            });
        last = (0..b)
            .max_by(|&i, &j| nearest[i].total_cmp(&nearest[j]).then(j.cmp(&i)))
            .expect("non-empty");
    }
    chosen
}
