//! Batch sampler: which images fill each training batch, and with what label.
//!
//! A batch of B holds ⌊2B/3⌋ normal slots and B − ⌊2B/3⌋ seen-anomaly slots (all normal
//! when there are no seen anomalies). Each normal slot becomes a CutMix pseudo anomaly of a
//! uniformly drawn normal image with probability ½. Indices come from two endless streams,
//! each a fresh permutation of its pool whenever it runs out.

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

/// A normal slot, turned into a pseudo anomaly with probability ½.
pub(crate) fn normal_or_pseudo(index: usize, n_normal: usize, rng: &mut DraRng) -> Slot {
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
