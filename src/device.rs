//! Device choice: `cpu` (burn's pure-Rust `flex` backend), `cuda` and `wgpu` when the build
//! has their cargo features.

use crate::choice::choice;
use crate::error::{Error, Result};
use burn::tensor::Device;
use std::path::{Path, PathBuf};

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
/// benchmarks): its model with its family and model numbers and the L2 and L3 sizes Linux
/// lists, the threads the kernels share out over, the vector instruction sets it has and the
/// widest the kernels take with this build, e.g. `AMD EPYC (family 25 model 17, L2 1024K, L3
/// 32768K), 2 threads, avx2 fma avx512f avx512bw avx512cd avx512dq avx512vl, AVX-512
/// kernels`.
pub fn cpu() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = field(&cpuinfo, "model name").unwrap_or(std::env::consts::ARCH);
    let details: Vec<String> = generation(&cpuinfo)
        .into_iter()
        .chain(caches(Path::new(CACHES)))
        .collect();
    let model = if details.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({})", details.join(", "))
    };
    let threads = threads(rayon::current_num_threads());
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
    format!("{model}, {threads}, {names}{kernels}")
}

/// `1 thread`, `2 threads`.
fn threads(n: usize) -> String {
    match n {
        1 => "1 thread".into(),
        n => format!("{n} threads"),
    }
}

/// The first CPU's cache folder on Linux.
const CACHES: &str = "/sys/devices/system/cpu/cpu0/cache";

/// The AVX-512 subsets that the kernels' AVX-512 code needs (`pulp`'s and `gemm`'s x86-v4
/// level).
const AVX512: [&str; 5] = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"];

/// The value of the first `key` line of a Linux `/proc/cpuinfo`.
fn field<'a>(cpuinfo: &'a str, key: &str) -> Option<&'a str> {
    cpuinfo.lines().find_map(|line| {
        let (k, value) = line.split_once(':')?;
        (k.trim() == key).then_some(value.trim())
    })
}

/// `family F model M` from `/proc/cpuinfo`: what tells a CPU's generation where a virtual
/// machine's model name is as short as `AMD EPYC`.
fn generation(cpuinfo: &str) -> Option<String> {
    let family = field(cpuinfo, "cpu family")?;
    let model = field(cpuinfo, "model")?;
    Some(format!("family {family} model {model}"))
}

/// The sizes of the data or unified caches of levels 2 and up that Linux lists in `dir` (a
/// CPU's `cache` folder under `/sys/devices/system/cpu`), as it writes them, e.g. `L2 1024K,
/// L3 32768K`: the sizes `gemm` blocks its products for.
fn caches(dir: &Path) -> Option<String> {
    let read = |path: PathBuf| std::fs::read_to_string(path).ok();
    let mut found: Vec<(u32, String)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|entry| {
            let index = entry.path();
            let level: u32 = read(index.join("level"))?.trim().parse().ok()?;
            let kind = read(index.join("type"))?;
            let size = read(index.join("size"))?;
            (level >= 2 && kind.trim() != "Instruction").then(|| (level, size.trim().to_string()))
        })
        .collect();
    found.sort();
    let listed: Vec<String> = found
        .iter()
        .map(|(l, size)| format!("L{l} {size}"))
        .collect();
    (!listed.is_empty()).then(|| listed.join(", "))
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
    fn model_name_and_generation_are_read_from_cpuinfo() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n";
        assert_eq!(field(cpuinfo, "model name"), Some("AMD EPYC 7B13"));
        assert_eq!(generation(cpuinfo).as_deref(), Some("family 25 model 1"));
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\n";
        assert_eq!(field(arm, "model name"), None);
        assert_eq!(generation(arm), None);
    }

    #[test]
    fn caches_lists_levels_two_and_up_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let index = |name: &str, level: &str, kind: &str, size: &str| {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).unwrap();
            for (file, text) in [("level", level), ("type", kind), ("size", size)] {
                std::fs::write(d.join(file), format!("{text}\n")).unwrap();
            }
        };
        index("index0", "1", "Data", "32K");
        index("index1", "1", "Instruction", "32K");
        index("index3", "3", "Unified", "32768K");
        index("index2", "2", "Unified", "512K");
        index("index4", "2", "Instruction", "64K");
        assert_eq!(caches(dir.path()).as_deref(), Some("L2 512K, L3 32768K"));
        std::fs::create_dir(dir.path().join("power")).unwrap();
        assert_eq!(caches(dir.path()).as_deref(), Some("L2 512K, L3 32768K"));
        assert_eq!(caches(&dir.path().join("none")), None);
        assert_eq!(caches(&dir.path().join("power")), None);
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
    fn one_thread_is_singular() {
        assert_eq!(threads(1), "1 thread");
        assert_eq!(threads(2), "2 threads");
        assert_eq!(threads(16), "16 threads");
    }

    #[test]
    fn cpu_names_the_generation_caches_threads_and_flags_this_cpu_has() {
        let cpu = cpu();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        for detail in generation(&cpuinfo)
            .into_iter()
            .chain(caches(Path::new(CACHES)))
        {
            assert!(
                cpu.contains(&format!("{detail})")) || cpu.contains(&format!("{detail}, ")),
                "{detail} in {cpu}"
            );
        }
        let threads = format!(", {}, ", threads(rayon::current_num_threads()));
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
