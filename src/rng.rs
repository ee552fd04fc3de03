//! The one seeded random number generator every random choice draws from.
//!
//! ChaCha8 is used because its output is fixed by its specification, so a seed gives the
//! same splits, batches and augmentations on every machine and platform.

use rand::SeedableRng;

/// The generator passed down explicitly through every stage.
pub type DraRng = rand_chacha::ChaCha8Rng;

/// A generator seeded from `seed`.
pub fn seeded(seed: u64) -> DraRng {
    DraRng::seed_from_u64(seed)
}
