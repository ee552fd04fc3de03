//! The reference set: the normal images the residual head compares each query with, fixed
//! once (paper, eq. 6) or drawn afresh for every batch (the official code).

use serde::{Deserialize, Serialize};

use crate::choice::choice;
use crate::data::sampler::{Composition, Stream, normal_or_pseudo};
use crate::error::{Error, Result};
use crate::rng::DraRng;
use crate::types::{Label, Slot};

choice! {
    /// How the reference set for the residual head is chosen.
    pub enum RefMode ("reference mode") {
        /// Drawn once from the normal training images, never augmented (paper, eq. 6).
        Fixed = "fixed",
        /// Drawn afresh for every batch through the training augmentation, about half of
        /// them pseudo anomalies (the official code's behaviour).
        Resample = "resample",
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

    /// The reference slots for the next batch: the fixed set, or a fresh draw.
    pub fn slots(&mut self, rng: &mut DraRng) -> Vec<Slot> {
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
                    // as DRA's training batches draw them, pseudo anomalies included
                    normal_or_pseudo(index, self.n_normal, Composition::DRA.pseudo_rate, rng)
                })
                .collect(),
        }
    }
}
