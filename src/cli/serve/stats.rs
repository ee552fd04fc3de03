//! What `GET /metrics` reports, in Prometheus' text format: requests by route and status,
//! their latency, batch sizes and the queue's depth.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the batch-size histogram's buckets, in images.
const BATCH_BOUNDS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// A histogram with fixed buckets.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations at most each bound (not cumulative; the text sums them).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.count);
    }
}

/// The server's counters, shared by the handlers and the scoring thread.
#[derive(Debug)]
pub struct Stats {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<Histogram>,
    batches: Mutex<Histogram>,
    queue_depth: AtomicI64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: Mutex::default(),
            latency: Mutex::new(Histogram::new(&LATENCY_BOUNDS)),
            batches: Mutex::new(Histogram::new(&BATCH_BOUNDS)),
            queue_depth: AtomicI64::new(0),
        }
    }
}

impl Stats {
    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route.to_string(), status)).or_default() += 1;
        drop(requests);
        (self.latency.lock().unwrap_or_else(|e| e.into_inner())).observe(seconds);
    }

    /// Counts one scored batch of `images`.
    pub fn batch(&self, images: usize) {
        (self.batches.lock().unwrap_or_else(|e| e.into_inner())).observe(images as f64);
    }

    /// Changes the number of requests waiting by `change`.
    pub fn queued(&self, change: i64) {
        self.queue_depth.fetch_add(change, Ordering::Relaxed);
    }

    /// Everything, in Prometheus' text exposition format.
    pub fn text(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP dra_requests_total Requests answered, by route and HTTP status.\n\
             # TYPE dra_requests_total counter\n",
        );
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "dra_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        drop(requests);
        (self.latency.lock().unwrap_or_else(|e| e.into_inner())).write(
            &mut out,
            "dra_request_duration_seconds",
            "Time from a request's arrival to its answer.",
        );
        (self.batches.lock().unwrap_or_else(|e| e.into_inner())).write(
            &mut out,
            "dra_batch_size",
            "Images scored together in one batch.",
        );
        let _ = writeln!(
            out,
            "# HELP dra_queue_depth Requests waiting to be scored.\n\
             # TYPE dra_queue_depth gauge\ndra_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        out
    }
}
