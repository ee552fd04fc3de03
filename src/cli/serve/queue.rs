//! The scoring thread: the one loaded detector, fed by a bounded queue of requests that it
//! gathers into batches (up to a number of images, or until a wait has passed).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use image::RgbImage;
use tokio::sync::oneshot;

use dra::run::detector::{Detection, Detector};

use super::stats::Stats;

/// One request's images, scored together with other requests' and answered on `reply`.
pub struct Job {
    pub images: Vec<RgbImage>,
    /// Whether the request asked for maps (a batch holds requests that all do or all don't).
    pub maps: bool,
    pub reply: oneshot::Sender<Result<Vec<Detection>, String>>,
}

/// How batches are gathered.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// The most images in one batch.
    pub max_batch: usize,
    /// The longest the first request of a batch waits for others.
    pub max_wait: Duration,
    /// The most requests waiting; one more is refused.
    pub queue: usize,
}

/// The sending end of the queue.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Job>,
    stats: Arc<Stats>,
}

/// Why a job was not queued.
pub enum Refused {
    /// The queue is full: try again shortly.
    Full,
    /// The scoring thread has stopped.
    Stopped,
}

impl Queue {
    /// Queues `job` without waiting.
    pub fn send(&self, job: Job) -> Result<(), Refused> {
        self.stats.queued(1);
        self.tx.try_send(job).map_err(|e| {
            self.stats.queued(-1);
            match e {
                TrySendError::Full(_) => Refused::Full,
                TrySendError::Disconnected(_) => Refused::Stopped,
            }
        })
    }
}

/// Loads the run at `dir` on a thread of its own and starts scoring there; returns the queue
/// and what the detector says of itself once it is loaded, or the error that stopped it.
pub fn start<T: Send + 'static>(
    dir: PathBuf,
    batching: Batching,
    stats: Arc<Stats>,
    describe: impl FnOnce(&Detector) -> T + Send + 'static,
) -> anyhow::Result<(Queue, T)> {
    let (tx, rx) = sync_channel::<Job>(batching.queue);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let worker_stats = stats.clone();
    std::thread::Builder::new()
        .name("scoring".into())
        .spawn(move || match Detector::open(&dir) {
            Ok(detector) => {
                let _ = ready_tx.send(Ok(describe(&detector)));
                drop(ready_tx);
                work(detector, rx, batching, &worker_stats);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })?;
    match ready_rx.recv() {
        Ok(Ok(description)) => Ok((Queue { tx, stats }, description)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => anyhow::bail!("the scoring thread stopped while loading the model"),
    }
}

fn work(mut detector: Detector, rx: Receiver<Job>, batching: Batching, stats: &Stats) {
    let mut held: Option<Job> = None;
    let received = |job: Job| {
        stats.queued(-1);
        job
    };
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => received(job),
                Err(_) => return, // every sender is gone: the server has stopped
            },
        };
        let maps = first.maps;
        let mut n = first.images.len();
        let mut jobs = vec![first];
        let until = Instant::now() + batching.max_wait;
        while n < batching.max_batch {
            let left = until.saturating_duration_since(Instant::now());
            let job = match rx.recv_timeout(left) {
                Ok(job) => received(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            };
            if job.maps != maps || n + job.images.len() > batching.max_batch {
                held = Some(job); // the next batch's first
                break;
            }
            n += job.images.len();
            jobs.push(job);
        }
        let lengths: Vec<usize> = jobs.iter().map(|j| j.images.len()).collect();
        let images: Vec<RgbImage> = (jobs.iter_mut())
            .flat_map(|j| std::mem::take(&mut j.images))
            .collect();
        let outcome = catch_unwind(AssertUnwindSafe(|| detector.detect(&images, maps)));
        stats.batch(images.len());
        let mut result = match outcome {
            Ok(Ok(detections)) => Ok(detections.into_iter()),
            Ok(Err(e)) => Err(crate::cli::one_line(&e)),
            Err(_) => Err("scoring failed inside the model (a panic); the server goes on".into()),
        };
        for (job, n) in jobs.into_iter().zip(lengths) {
            let answer = match &mut result {
                Ok(detections) => Ok(detections.by_ref().take(n).collect()),
                Err(e) => Err(e.clone()),
            };
            let _ = job.reply.send(answer); // a client that left gets nothing
        }
    }
}
