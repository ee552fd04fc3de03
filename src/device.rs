//! Device choice: `cpu` (burn's pure-Rust `flex` backend), `cuda` and `wgpu` when the build
//! has their cargo features.

use crate::choice::choice;
use crate::error::{Error, Result};
use burn::tensor::Device;

choice! {
    /// A compute device named on the command line.
    pub enum DeviceChoice ("device") {
        /// burn's pure-Rust `flex` backend.
        Cpu = "cpu",
        /// The first CUDA GPU (builds with `--features cuda`).
        Cuda = "cuda",
        /// The default wgpu adapter (builds with `--features wgpu`).
        Wgpu = "wgpu",
    }
}

impl DeviceChoice {
    /// The burn device, or an error naming the cargo feature the build lacks.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => Ok(Device::cuda(0)),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Ok(Device::wgpu(Default::default())),
            #[allow(unreachable_patterns)]
            other => Err(Error::Setting(format!(
                "this build has no {other} support: rebuild with `cargo build --release --features {other}`"
            ))),
        }
    }
}

/// Keeps freed memory in the process for the next allocation (glibc on Linux; elsewhere a
/// no-op). glibc serves every block over 32 MiB from its own `mmap` and unmaps it on free, so
/// each activation map of a 448² batch would come back as fresh pages the kernel zeroes again;
/// this makes the heap keep and reuse them (`docs/PERFORMANCE.md`: a DRA training step 1.4×
/// to 2.4× faster). The process's resident memory then stays at its peak until it exits.
/// Call once, early: the command line and the benchmarks do.
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes glibc's thresholds; -1 disables trimming (mallopt(3))
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}
