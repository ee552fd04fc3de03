//! A test binary's tests run again on CPUs with fewer vector instructions than the machine's,
//! emulated by QEMU's user mode (`qemu-x86_64`, Debian's `qemu-user`): the kernels choose
//! their code at run time, so a machine with AVX-512 would otherwise never check their AVX2
//! and plain paths.
#![allow(dead_code)]

#[path = "skip.rs"]
mod skip;

use std::process::Command;

/// Set in a run under emulation, to the kernels that the CPU emulated must take.
const KERNELS: &str = "DRA_EMULATED_KERNELS";

/// An AMD EPYC Milan: AVX2 and FMA without AVX-512, like the AVX2-only EPYC machines CI may
/// run on; QEMU's name for it, and what `dra::device::cpu` must end with there.
pub const AVX2: (&str, &str) = ("EPYC-Milan", "AVX2 kernels");

/// An Intel Westmere: neither AVX2 nor FMA.
pub const PLAIN: (&str, &str) = ("Westmere", "kernels without AVX2");

/// Runs every test of this binary again under `qemu-x86_64 -cpu <name>` for each of `cpus`
/// and asserts that they pass, `test` (the caller's name) among them; inside such a run,
/// asserts instead that the kernels take the vectors of the CPU emulated. Skips, saying so,
/// where QEMU is not installed or the machine is not x86-64 Linux.
pub fn rerun_on(cpus: &[(&str, &str)], test: &str) {
    if let Ok(kernels) = std::env::var(KERNELS) {
        let cpu = dra::device::cpu();
        assert!(cpu.ends_with(&kernels), "{cpu}: expected {kernels}");
        return;
    }
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        eprintln!("skipped: QEMU's x86-64 CPUs are emulated on x86-64 Linux alone");
        return;
    }
    if Command::new("qemu-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        skip::skip("qemu-x86_64 is not installed (Debian: apt-get install qemu-user)");
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    for &(cpu, kernels) in cpus {
        let out = Command::new("qemu-x86_64")
            .args(["-cpu", cpu])
            .arg(&exe)
            .args(["--test-threads", "2"])
            .env(KERNELS, kernels)
            .output()
            .expect("qemu-x86_64 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // QEMU warns of each feature of the named CPU that it does not emulate
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| !line.contains("TCG doesn't support requested feature"))
            .collect();
        assert!(
            out.status.success() && stdout.contains(&format!("test {test} ... ok")),
            "under qemu-x86_64 -cpu {cpu}:\n{stdout}\n{}",
            errors.join("\n")
        );
        eprintln!("qemu-x86_64 -cpu {cpu} ({kernels}): {}", summary(&stdout));
    }
}

/// The `test result:` line of a test binary's output.
fn summary(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|line| line.starts_with("test result:"))
        .unwrap_or("no summary")
}
