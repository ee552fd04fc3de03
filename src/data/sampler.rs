//! Batch sampler: which images fill each training batch, and with what label.
//!
//! A method's [`Composition`] fills a batch of B: DRA's holds ⌊2B/3⌋ normal slots and
//! B − ⌊2B/3⌋ seen-anomaly slots (all normal when there are no seen anomalies), and each
//! normal slot becomes a CutMix pseudo anomaly of a uniformly drawn normal image with
//! probability ½; DevNet's holds ⌊B/2⌋ normal slots and no pseudo anomaly. SAOE's is DRA's
//! with B outlier-exposure slots after them, when there are outlier images; KDAD's is B
//! normal images, unaugmented. Indices come from
//! endless streams, each a fresh permutation of its pool whenever it runs out.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::DraRng;
use crate::types::{Label, Slot};

/// An endless stream of indices `0..len`, reshuffled each time it is used up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stream {
    len: usize,
    order: Vec<usize>,
}

impl Stream {
    pub(crate) fn new(len: usize) -> Self {
        Stream {
            len,
            order: Vec::new(),
        }
    }

    pub(crate) fn next(&mut self, rng: &mut DraRng) -> usize {
        if self.order.is_empty() {
            self.order = (0..self.len).collect();
            self.order.shuffle(rng);
            self.order.reverse(); // popped from the back: keeps the permutation's order
        }
        self.order.pop().expect("stream over an empty pool")
    }
}

/// How a method fills a training batch of B images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Composition {
    /// Normal slots per batch as a fraction (numerator, denominator): ⌊B·n/d⌋ of them, or B
    /// when there are no seen anomalies.
    pub normal_share: (usize, usize),
    /// Probability that a normal slot becomes a CutMix pseudo anomaly (0: never, no draw).
    pub pseudo_rate: f64,
    /// B more slots of outlier images (`--outlier-root`) after the batch's own, for outlier
    /// exposure, where the run has outlier images.
    #[serde(default)]
    pub exposure: bool,
    /// Training images are augmented (rotated; pseudo anomalies CutMix-ed).
    #[serde(default = "augmented")]
    pub augment: bool,
}

fn augmented() -> bool {
    true
}

impl Composition {
    /// DRA's: ⌊2B/3⌋ normal slots, each a pseudo anomaly with probability ½.
    pub const DRA: Composition = Composition {
        normal_share: (2, 3),
        pseudo_rate: 0.5,
        exposure: false,
        augment: true,
    };
    /// DRA's slots without pseudo anomalies: ⌊2B/3⌋ normal (Deep SAD's).
    pub const DRA_WITHOUT_PSEUDO: Composition = Composition {
        normal_share: (2, 3),
        pseudo_rate: 0.0,
        exposure: false,
        augment: true,
    };
    /// DevNet's: ⌊B/2⌋ normal slots, no pseudo anomaly.
    pub const HALVES: Composition = Composition {
        normal_share: (1, 2),
        pseudo_rate: 0.0,
        exposure: false,
        augment: true,
    };
    /// SAOE's: DRA's, then B outlier-exposure slots.
    pub const WITH_EXPOSURE: Composition = Composition {
        exposure: true,
        ..Composition::DRA
    };
    /// KDAD's: normal images only, as they are (no augmentation).
    pub const PLAIN_NORMALS: Composition = Composition {
        normal_share: (1, 1),
        pseudo_rate: 0.0,
        exposure: false,
        augment: false,
    };
}

impl Default for Composition {
    fn default() -> Self {
        Composition::DRA
    }
}

/// A normal slot, turned into a pseudo anomaly with probability `rate`.
pub(crate) fn normal_or_pseudo(index: usize, n_normal: usize, rate: f64, rng: &mut DraRng) -> Slot {
    if rate > 0.0 && rng.random_bool(rate) {
        Slot {
            index: rng.random_range(0..n_normal),
            label: Label::Pseudo,
        }
    } else {
        Slot {
            index,
            label: Label::Normal,
        }
    }
}

/// Draws the slots of training batches. Its position (the streams' remaining orders) is
/// saved in checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSampler {
    n_normal: usize,
    normals: Stream,
    anomalies: Option<Stream>,
    batch_size: usize,
    /// (Checkpoints written before methods existed hold DRA's.)
    #[serde(default)]
    composition: Composition,
    /// The outlier images' stream, when the composition exposes them and there are some.
    #[serde(default)]
    outliers: Option<Stream>,
}

impl BatchSampler {
    /// A sampler over `n_normal` normal and `n_anomaly` seen-anomaly training images.
    pub fn new(
        n_normal: usize,
        n_anomaly: usize,
        batch_size: usize,
        composition: Composition,
    ) -> Result<Self> {
        if n_normal == 0 {
            return Err(Error::Setting("no normal training images to sample".into()));
        }
        if batch_size < 2 {
            return Err(Error::Setting(format!(
                "--batch-size {batch_size} is below 2"
            )));
        }
        Ok(BatchSampler {
            n_normal,
            normals: Stream::new(n_normal),
            anomalies: (n_anomaly > 0).then(|| Stream::new(n_anomaly)),
            batch_size,
            composition,
            outliers: None,
        })
    }

    /// The sampler with `n_outliers` outlier images to fill the exposure slots from, if its
    /// composition has them (none: the batches have no such slot).
    pub fn with_outliers(self, n_outliers: usize) -> Self {
        let outliers =
            (self.composition.exposure && n_outliers > 0).then(|| Stream::new(n_outliers));
        BatchSampler { outliers, ..self }
    }

    /// Number of normal slots per batch: ⌊B·n/d⌋ of the composition, or B without seen
    /// anomalies.
    pub fn normal_slots(&self) -> usize {
        let (n, d) = self.composition.normal_share;
        match self.anomalies {
            Some(_) => n * self.batch_size / d,
            None => self.batch_size,
        }
    }

    /// Outlier-exposure slots per batch (B, or none).
    pub fn exposure_slots(&self) -> usize {
        match self.outliers {
            Some(_) => self.batch_size,
            None => 0,
        }
    }

    /// The next batch: normal/pseudo slots first, then seen anomalies, then outlier images.
    pub fn next_batch(&mut self, rng: &mut DraRng) -> Vec<Slot> {
        let n_normal_slots = self.normal_slots();
        let mut slots = Vec::with_capacity(self.batch_size);
        for _ in 0..n_normal_slots {
            let index = self.normals.next(rng);
            let rate = self.composition.pseudo_rate;
            slots.push(normal_or_pseudo(index, self.n_normal, rate, rng));
        }
        if let Some(stream) = &mut self.anomalies {
            for _ in n_normal_slots..self.batch_size {
                slots.push(Slot {
                    index: stream.next(rng),
                    label: Label::Seen,
                });
            }
        }
        if let Some(stream) = &mut self.outliers {
            for _ in 0..self.batch_size {
                slots.push(Slot {
                    index: stream.next(rng),
                    label: Label::Outlier,
                });
            }
        }
        slots
    }
}
