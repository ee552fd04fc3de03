//! Load on `dra serve` (loopback only, bounded in time): for each number of clients, every
//! client posts images one after another for a fixed time; throughput, p50 / p95 / p99
//! latency and errors, beside `dra predict`'s throughput on the same images in the same run.
//!
//! ```sh
//! dra demo --out runs/demo
//! cargo bench --bench serve_load -- runs/demo/run runs/demo/data/elpv/test 1,4,16 20
//! ```
//!
//! Arguments: the run, a folder of images, the numbers of clients (comma-separated) and the
//! seconds each lasts.

#[path = "../tests/common/http.rs"]
#[allow(dead_code)] // the tests read answers' bodies; the benchmark only their status
mod http;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use http::{Server, http};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [run, images, clients, seconds] = &args[..] else {
        eprintln!("usage: serve_load RUN IMAGE_DIR CLIENTS(,…) SECONDS");
        std::process::exit(2);
    };
    let run = Path::new(run);
    let paths = dra::data::layout::images_under(Path::new(images)).expect("the images");
    let bodies: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let seconds: f64 = seconds.parse().expect("seconds");
    println!("{}", dra::device::cpu());
    println!(
        "{} images from {images}, model {}",
        paths.len(),
        run.display()
    );

    let predict = time_predict(run, &paths);
    println!(
        "dra predict: {} images in {:.2} s (best of 2, model loading included): {:.1} images/s",
        paths.len(),
        predict,
        paths.len() as f64 / predict
    );

    let server = Server::start(run, &[]);
    println!(
        "| clients | requests | images/s | × dra predict | p50 ms | p95 ms | p99 ms | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in clients
        .split(',')
        .map(|c| c.parse::<usize>().expect("clients"))
    {
        let (mut latencies, errors) = load(&server.addr, &bodies, n, seconds);
        let throughput = latencies.len() as f64 / seconds;
        latencies.sort_by(f64::total_cmp);
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "| {n} | {} | {throughput:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {errors} |",
            latencies.len(),
            throughput * predict / paths.len() as f64,
            at(0.50) * 1e3,
            at(0.95) * 1e3,
            at(0.99) * 1e3,
        );
    }
}

/// Wall time of `dra predict` on `paths`, the better of two runs.
fn time_predict(run: &Path, paths: &[PathBuf]) -> f64 {
    (0..2)
        .map(|_| {
            let start = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_dra"))
                .args(["predict", "--model", run.to_str().unwrap(), "--json"])
                .args(paths)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// `clients` threads posting `bodies` round-robin for `seconds`: every successful request's
/// latency in seconds, and the number of failed ones.
fn load(addr: &str, bodies: &[Vec<u8>], clients: usize, seconds: f64) -> (Vec<f64>, usize) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                scope.spawn(move || {
                    let (mut latencies, mut errors) = (Vec::new(), 0);
                    let mut i = c;
                    while Instant::now() < until {
                        let start = Instant::now();
                        let headers = [("Content-Type", "application/octet-stream")];
                        let got = http(
                            addr,
                            "POST",
                            "/v1/predict",
                            &headers,
                            &bodies[i % bodies.len()],
                        );
                        match got.status {
                            200 => latencies.push(start.elapsed().as_secs_f64()),
                            _ => errors += 1,
                        }
                        i += clients;
                    }
                    (latencies, errors)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).fold(
            (Vec::new(), 0),
            |(mut all, e), (l, n)| {
                all.extend(l);
                (all, e + n)
            },
        )
    })
}
