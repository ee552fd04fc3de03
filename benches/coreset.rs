//! The memory's greedy k-center coreset (`dra::model::memory::coreset`) against the plain
//! point-by-point loop it replaced, on the same projected points: seconds for each and
//! whether they chose the same points. An ELPV cell's memory runs three of these (221 000
//! normal patches to 10 000, and each half to 10 000).
//!
//! ```sh
//! cargo bench --bench coreset                                   # 50 000 points → 2 000
//! DRA_BENCH_POINTS=221000 DRA_BENCH_SIZE=10000 cargo bench --bench coreset
//! ```

#[path = "../tests/common/plain_coreset.rs"]
mod plain_coreset;
#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use burn::prelude::*;
use dra::model::memory::{PROJECTION, coreset};
use dra::rng::seeded;
use support::env_usize;

fn main() {
    let b = env_usize("DRA_BENCH_POINTS", 50_000);
    let size = env_usize("DRA_BENCH_SIZE", 2_000);
    let dim = PROJECTION; // what the coreset measures in after its projection
    let points: Vec<f32> = (0..b * dim)
        .map(|i| ((i * 2654435761) % 10007) as f32 / 10007.0 - 0.5)
        .collect();
    let rows = Tensor::<2>::from_data(TensorData::new(points.clone(), [b, dim]), &Device::flex());
    println!(
        "{b} points of {dim} dimensions → {size}, {} threads",
        rayon::current_num_threads()
    );
    let t = Instant::now();
    let fast = coreset(&rows, size, &mut seeded(0));
    let fast_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let plain = plain_coreset::plain_coreset(&points, dim, size, &mut seeded(0));
    let plain_s = t.elapsed().as_secs_f64();
    println!("| coreset | seconds |");
    println!("|---|---|");
    println!("| plain loop (point by point) | {plain_s:.2} |");
    println!("| dra (blocks of 64 points) | {fast_s:.2} |");
    println!(
        "speed-up {:.1}×, same points chosen: {}",
        plain_s / fast_s,
        fast == plain
    );
    assert_eq!(
        fast, plain,
        "the coreset must choose what the plain loop chooses"
    );
}
