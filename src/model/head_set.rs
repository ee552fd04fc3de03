//! Which heads a model has (`--heads`) and how their scores combine (`--head-norm`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::choice::choice;
use crate::error::{Error, Result};
use crate::types::Head;

/// A non-empty set of heads, parsed from `seen,pseudo,residual,normal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeadSet(Vec<Head>);

impl HeadSet {
    /// All four heads (full DRA).
    pub fn all() -> Self {
        HeadSet(Head::ALL.to_vec())
    }

    /// True when `head` is in the set.
    pub fn contains(&self, head: Head) -> bool {
        self.0.contains(&head)
    }

    /// The heads in paper order.
    pub fn heads(&self) -> &[Head] {
        &self.0
    }
}

impl Default for HeadSet {
    fn default() -> Self {
        HeadSet::all()
    }
}

/// The names `--heads` takes, comma-separated.
fn head_names() -> String {
    let names: Vec<_> = Head::NETWORK.iter().map(|h| h.name()).collect();
    names.join(", ")
}

impl FromStr for HeadSet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut heads = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let head = Head::NETWORK
                .into_iter()
                .find(|h| h.name() == name)
                .ok_or_else(|| {
                    Error::Setting(format!("unknown head '{name}' ({})", head_names()))
                })?;
            if !heads.contains(&head) {
                heads.push(head);
            }
        }
        if heads.is_empty() {
            return Err(Error::Setting(format!(
                "--heads needs at least one of {}",
                head_names()
            )));
        }
        heads.sort();
        Ok(HeadSet(heads))
    }
}

impl TryFrom<String> for HeadSet {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<HeadSet> for String {
    fn from(h: HeadSet) -> String {
        h.to_string()
    }
}

impl fmt::Display for HeadSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.0.iter().map(|h| h.name()).collect();
        f.write_str(&names.join(","))
    }
}

choice! {
    /// How head scores are combined into the anomaly score.
    pub enum HeadNorm ("head normalisation") {
        /// s = −g_n + g_s + g_p + g_r (the paper's).
        None = "none",
        /// Each head's score as a z-score over the normal training images (mean and std of
        /// that head on them, unaugmented) before the signed sum.
        Standardise = "standardise",
    }
}
