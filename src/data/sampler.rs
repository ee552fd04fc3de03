//! Batch sampler: which images fill each training batch, with what label, and the
//! reference set of normal images the residual head compares against.
//!
//! A batch of B holds ⌊2B/3⌋ normal slots and B − ⌊2B/3⌋ seen-anomaly slots (all normal
//! when there are no seen anomalies). Each normal slot becomes a CutMix pseudo anomaly of a
//! uniformly drawn normal image with probability ½. Indices come from two endless streams,
//! each a fresh permutation of its pool whenever it runs out.

use std::str::FromStr;

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::DraRng;
use crate::types::{Label, Slot};

/// An endless stream of indices `0..len`, reshuffled each time it is used up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stream {
    len: usize,
    order: Vec<usize>,
}

impl Stream {
    fn new(len: usize) -> Self {
        Stream {
            len,
            order: Vec::new(),
        }
    }

    fn next(&mut self, rng: &mut DraRng) -> usize {
        if self.order.is_empty() {
            self.order = (0..self.len).collect();
            self.order.shuffle(rng);
            self.order.reverse(); // popped from the back: keeps the permutation's order
        }
        self.order.pop().expect("stream over an empty pool")
    }
}

/// A normal slot, turned into a pseudo anomaly with probability ½.
fn normal_or_pseudo(index: usize, n_normal: usize, rng: &mut DraRng) -> Slot {
    if rng.random_bool(0.5) {
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
}

impl BatchSampler {
    /// A sampler over `n_normal` normal and `n_anomaly` seen-anomaly training images.
    pub fn new(n_normal: usize, n_anomaly: usize, batch_size: usize) -> Result<Self> {
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
        })
    }

    /// Number of normal slots per batch: ⌊2B/3⌋, or B without seen anomalies.
    pub fn normal_slots(&self) -> usize {
        match self.anomalies {
            Some(_) => 2 * self.batch_size / 3,
            None => self.batch_size,
        }
    }

    /// The next batch: normal/pseudo slots first, then seen anomalies.
    pub fn next_batch(&mut self, rng: &mut DraRng) -> Vec<Slot> {
        let n_normal_slots = self.normal_slots();
        let mut slots = Vec::with_capacity(self.batch_size);
        for _ in 0..n_normal_slots {
            let index = self.normals.next(rng);
            slots.push(normal_or_pseudo(index, self.n_normal, rng));
        }
        if let Some(stream) = &mut self.anomalies {
            for _ in n_normal_slots..self.batch_size {
                slots.push(Slot {
                    index: stream.next(rng),
                    label: Label::Seen,
                });
            }
        }
        slots
    }
}

/// How the reference set for the residual head is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefMode {
    /// Drawn once from the normal training images, never augmented (paper, eq. 6).
    Fixed,
    /// Drawn afresh for every batch through the training augmentation, about half of them
    /// pseudo anomalies (the official code's behaviour).
    Resample,
}

impl FromStr for RefMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fixed" => Ok(RefMode::Fixed),
            "resample" => Ok(RefMode::Resample),
            _ => Err(Error::Setting(format!(
                "unknown reference mode '{s}' (fixed or resample)"
            ))),
        }
    }
}

/// The reference images prepended to each batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceSet {
    mode: RefMode,
    n_normal: usize,
    fixed: Vec<usize>,
    stream: Stream,
    n_ref: usize,
}

impl ReferenceSet {
    /// `n_ref` references over `n_normal` normal training images; the fixed set is drawn now.
    pub fn new(mode: RefMode, n_ref: usize, n_normal: usize, rng: &mut DraRng) -> Result<Self> {
        if n_ref == 0 || n_ref > n_normal {
            return Err(Error::Setting(format!(
                "--n-ref {n_ref} must be between 1 and the number of normal training images ({n_normal})"
            )));
        }
        let fixed = match mode {
            RefMode::Fixed => rand::seq::index::sample(rng, n_normal, n_ref).into_vec(),
            RefMode::Resample => Vec::new(),
        };
        Ok(ReferenceSet {
            mode,
            n_normal,
            fixed,
            stream: Stream::new(n_normal),
            n_ref,
        })
    }

    /// A fixed set of the given normal-image indices (a saved run's reference set).
    pub fn fixed(indices: Vec<usize>, n_normal: usize) -> Result<Self> {
        if indices.is_empty() || indices.iter().any(|&i| i >= n_normal) {
            return Err(Error::Setting(format!(
                "reference indices {indices:?} do not fit {n_normal} normal images"
            )));
        }
        let n_ref = indices.len();
        Ok(ReferenceSet {
            mode: RefMode::Fixed,
            n_normal,
            fixed: indices,
            stream: Stream::new(n_normal),
            n_ref,
        })
    }

    /// The indices of a fixed set (empty when resampled).
    pub fn fixed_indices(&self) -> &[usize] {
        &self.fixed
    }

    /// The mode this set was built with.
    pub fn mode(&self) -> RefMode {
        self.mode
    }

    /// True when the references go through the training augmentation.
    pub fn augmented(&self) -> bool {
        self.mode == RefMode::Resample
    }

    /// The references for the next batch.
    pub fn draw(&mut self, rng: &mut DraRng) -> Vec<Slot> {
        match self.mode {
            RefMode::Fixed => self
                .fixed
                .iter()
                .map(|&index| Slot {
                    index,
                    label: Label::Normal,
                })
                .collect(),
            RefMode::Resample => (0..self.n_ref)
                .map(|_| {
                    let index = self.stream.next(rng);
                    normal_or_pseudo(index, self.n_normal, rng)
                })
                .collect(),
        }
    }
}
