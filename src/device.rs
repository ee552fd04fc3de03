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

/// The CPU that a timing was measured on, for the records that carry one (grid cells, the
/// benchmarks): its model, the threads the kernels share out over, the vector instruction
/// sets it has and the widest the kernels take with this build, e.g. `AMD EPYC, 2 threads,
/// avx2 fma avx512f avx512bw avx512cd avx512dq avx512vl, AVX-512 kernels`.
pub fn cpu() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = model_name(&cpuinfo).unwrap_or(std::env::consts::ARCH);
    let threads = rayon::current_num_threads();
    let flags = vector_flags();
    let names: Vec<&str> = flags.iter().filter(|f| f.1).map(|f| f.0).collect();
    let has = |name: &str| flags.iter().any(|&(n, on)| n == name && on);
    let avx512 = AVX512.iter().all(|f| has(f));
    let kernels = kernel_code(has("avx2") && has("fma"), avx512, cfg!(feature = "x86-v4"));
    let names = if names.is_empty() {
        String::new()
    } else {
        format!("{}, ", names.join(" "))
    };
    format!("{model}, {threads} threads, {names}{kernels}")
}

/// The AVX-512 subsets that the kernels' AVX-512 code needs (`pulp`'s and `gemm`'s x86-v4
/// level).
const AVX512: [&str; 5] = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"];

/// The `model name` line of a Linux `/proc/cpuinfo`.
fn model_name(cpuinfo: &str) -> Option<&str> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then_some(value.trim())
    })
}

/// The x86 vector instruction sets the kernels choose between, each with whether this CPU
/// has it (none elsewhere).
fn vector_flags() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        vec![
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512cd", has!("avx512cd")),
            ("avx512dq", has!("avx512dq")),
            ("avx512vl", has!("avx512vl")),
        ]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// The widest vector code the matrix products and this crate's loops run: AVX-512 where the
/// CPU has it and the build has the `x86-v4` feature, AVX2 with FMA otherwise where the CPU
/// has those.
fn kernel_code(avx2_fma: bool, avx512: bool, built_with_avx512: bool) -> &'static str {
    match (avx2_fma, avx512, built_with_avx512) {
        (true, true, true) => "AVX-512 kernels",
        (true, true, false) => "AVX2 kernels (this build leaves AVX-512 out)",
        (true, false, _) => "AVX2 kernels",
        (false, ..) => "kernels without AVX2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_name_is_read_from_cpuinfo() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n";
        assert_eq!(model_name(cpuinfo), Some("AMD EPYC 7B13"));
        assert_eq!(model_name("processor\t: 0\nBogoMIPS\t: 50.00\n"), None);
    }

    #[test]
    fn kernel_code_follows_the_cpu_and_the_build() {
        assert_eq!(kernel_code(true, true, true), "AVX-512 kernels");
        assert_eq!(
            kernel_code(true, true, false),
            "AVX2 kernels (this build leaves AVX-512 out)"
        );
        assert_eq!(kernel_code(true, false, true), "AVX2 kernels");
        assert_eq!(kernel_code(false, false, true), "kernels without AVX2");
    }

    #[test]
    fn cpu_names_the_threads_and_the_flags_this_cpu_has() {
        let cpu = cpu();
        let threads = format!(", {} threads, ", rayon::current_num_threads());
        assert!(cpu.contains(&threads), "{cpu}");
        for (flag, on) in vector_flags() {
            assert_eq!(
                cpu.split([' ', ',']).any(|w| w == flag),
                on,
                "{flag} in {cpu}"
            );
        }
        assert!(cpu.ends_with("kernels") || cpu.ends_with("out)"), "{cpu}");
    }
}
