//! MINNS (Wang et al., Pattern Recognition 2018) as the DRA paper built it on DevNet's code:
//! each image a bag whose instances are the backbone's feature-map cells, scored by MI-Net
//! (the bag head: an instance perceptron, max-pooling over the cells, a linear bag logit),
//! trained by binary cross-entropy on DevNet's batches and trainer (24 normal + 24 seen of
//! 48, 50 epochs, Adam 2e-4), the logits of the two scales averaged.

use super::{MethodSpec, choices, devnet, table};

pub(super) fn spec() -> MethodSpec {
    let mut profile = table(devnet::PROFILE);
    profile.insert("heads".into(), "bag".into());
    profile.insert("criterion".into(), "bce".into());
    let mut list = devnet::CHOICES.to_vec();
    list.push((
        "A19",
        "MI-Net (instance embeddings 256-128-64, dropout 0.5, max-pooled, a linear bag \
         logit), binary cross-entropy",
    ));
    MethodSpec {
        profile,
        composition: devnet::spec().composition,
        needs_anomalies: true,
        choices: choices(&list),
    }
}
