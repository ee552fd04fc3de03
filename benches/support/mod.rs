#![allow(dead_code)] // each benchmark uses a part
//! What the speed benchmarks share: running each case in its own process (so that peak
//! memory is per case), the PyTorch interpreter to compare with, and the peak memory.

use std::process::Command;

/// Timed steps after one warm-up (`DRA_BENCH_STEPS`, default `default`).
pub fn steps(default: usize) -> usize {
    std::env::var("DRA_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// An integer setting from the environment.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process in MiB (Linux).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The Python to run the PyTorch side with (`DRA_BENCH_PYTHON`, default `python3`), if it
/// has torch and torchvision.
pub fn python_with_torch() -> Option<String> {
    let python = std::env::var("DRA_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import torch, torchvision"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "no torch + torchvision in {python}: PyTorch columns left empty (set DRA_BENCH_PYTHON)"
        );
    }
    ok.then_some(python)
}

/// Prints the machine the figures below are from: the CPU with its vector flags and the
/// kernels this build takes there, and `python`'s PyTorch with the vector code it runs.
pub fn print_machine(python: Option<&str>) {
    println!("CPU: {}", dra::device::cpu());
    let probe = "import torch; n = torch.get_num_threads(); print(f'PyTorch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()} code, {n} thread' + 's' * (n != 1))";
    if let Some(out) = python.and_then(|p| Command::new(p).args(["-c", probe]).output().ok()) {
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// Runs `program args…` and parses the whitespace-separated numbers it prints.
pub fn child(program: &str, args: &[String]) -> Option<Vec<f64>> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect()
}

/// This benchmark's own executable, to run a case in a child process.
pub fn me() -> String {
    std::env::current_exe()
        .expect("bench binary")
        .to_string_lossy()
        .into_owned()
}

/// `--case …` arguments of this invocation, if it is a child.
pub fn case_args() -> Option<Vec<String>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    (args.first().map(String::as_str) == Some("--case")).then(|| args[1..].to_vec())
}

/// A number with `digits` decimals, or a dash.
pub fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}
