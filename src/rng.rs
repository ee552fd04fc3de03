//! The one seeded random number generator every random choice draws from.
//!
//! ChaCha8 is used because its output is fixed by its specification, so a seed gives the
//! same splits, batches and augmentations on every machine and platform.

use std::sync::{Mutex, MutexGuard};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use rand::SeedableRng;

/// The generator passed down explicitly through every stage.
pub type DraRng = rand_chacha::ChaCha8Rng;

/// A generator seeded from `seed`.
pub fn seeded(seed: u64) -> DraRng {
    DraRng::seed_from_u64(seed)
}

static WEIGHT_INIT: Mutex<()> = Mutex::new(());

/// burn draws initial weights from one generator per device, shared by the whole process.
/// Every construction of weights holds this lock and draws them before releasing it (see
/// [`materialise`]), so that a run which seeds that generator gets its seed's weights even
/// when other runs share the process (parallel tests, a library user's threads).
pub(crate) fn weight_init_lock() -> MutexGuard<'static, ()> {
    WEIGHT_INIT.lock().unwrap_or_else(|e| e.into_inner())
}

/// A module built by `build` with its initial values drawn now, under the weight
/// initialisation lock: for a module made outside a model (a head on its own, say), whose
/// lazy draws would otherwise land between another run's seeding of the device generator and
/// that run's own draws.
pub fn initialised<M: Module>(build: impl FnOnce() -> M) -> M {
    let _guard = weight_init_lock();
    let module = build();
    materialise(&module);
    module
}

/// Draws the initial values of `module`'s parameters now, in field order. burn initialises
/// parameters lazily, at their first use, which would otherwise happen outside the lock.
pub(crate) fn materialise<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}
