//! `dra serve`: a trained detector as an HTTP service (axum on tokio). The model is loaded
//! once on a scoring thread ([`queue`]); requests are decoded on the runtime's blocking
//! pool, queued, gathered into batches and answered with the scores `dra predict` gives.

mod queue;
mod stats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Multipart, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use clap::Args;
use image::RgbImage;
use serde::Deserialize;
use serde_json::{Value, json};

use dra::data::transform::decode_rgb;
use dra::run::detector::{Detection, Detector};
use dra::run::overlay::{MapScale, overlay_with_bar};

use queue::{Batching, Job, Queue, Refused};
use stats::Stats;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run directory written by `dra train` (its reference set fixed, as by default).
    #[arg(long)]
    model: PathBuf,
    /// Address to listen on (port 0: any free port, printed). An address other than
    /// loopback needs --token, or --insecure to serve anyone who can reach it.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// A bearer token every request but `/`, `/healthz` and `/readyz` must carry
    /// (`Authorization: Bearer TOKEN`); without it, 401.
    #[arg(long)]
    token: Option<String>,
    /// Serve without a token on an address other than loopback.
    #[arg(long)]
    insecure: bool,
    /// The largest request body, in MiB; a larger one is answered 413.
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    max_body: usize,
    /// The most images scored in one batch.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// How long, in milliseconds, a request waits for others to fill its batch.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    max_wait: u64,
    /// The most requests waiting to be scored; one more is answered 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// How long, in seconds, a request may wait for its scores before it is answered 504.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    deadline: f64,
}

/// What every handler shares.
struct App {
    queue: Queue,
    stats: Arc<Stats>,
    /// `GET /v1/model`'s answer.
    model: Value,
    threshold: Option<f64>,
    token: Option<String>,
    deadline: Duration,
    /// False once the server is stopping.
    ready: AtomicBool,
}

pub fn run(a: ServeArgs) -> Result<()> {
    if a.max_batch == 0 || a.queue == 0 || a.max_body == 0 {
        bail!("--max-batch, --queue and --max-body must be at least 1");
    }
    if !(a.deadline > 0.0 && a.deadline.is_finite()) {
        bail!(
            "--deadline {} must be a positive number of seconds",
            a.deadline
        );
    }
    if !a.addr.ip().is_loopback() && a.token.is_none() && !a.insecure {
        bail!(
            "--addr {} is reachable from other machines: give --token TOKEN (clients send \
             'Authorization: Bearer TOKEN'), or --insecure to serve without one",
            a.addr
        );
    }
    let batching = Batching {
        max_batch: a.max_batch,
        max_wait: Duration::from_millis(a.max_wait),
        queue: a.queue,
    };
    let stats = Arc::new(Stats::default());
    let (queue, (model, threshold)) =
        queue::start(a.model.clone(), batching, stats.clone(), describe)?;
    let app = Arc::new(App {
        queue,
        stats,
        model,
        threshold,
        token: a.token.clone(),
        deadline: Duration::from_secs_f64(a.deadline),
        ready: AtomicBool::new(true),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(serve(app, a.addr, a.max_body << 20))
}

async fn serve(app: Arc<App>, addr: SocketAddr, max_body: usize) -> Result<()> {
    let router = Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/model", get(model))
        .route("/v1/predict", post(predict))
        .layer(middleware::from_fn_with_state(app.clone(), authorise))
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(stopping(app))
        .await
        .context("the server failed")?;
    eprintln!("stopped");
    Ok(())
}

/// What `GET /v1/model` says of the detector, and its threshold.
fn describe(d: &Detector) -> (Value, Option<f64>) {
    let settings = d.settings();
    let source = dra::run::saved_decision(d.dir())
        .ok()
        .flatten()
        .map(|decision| decision.source);
    let value = json!({
        "run": d.dir(),
        "version": env!("CARGO_PKG_VERSION"),
        "method": settings.method.name(),
        "backbone": settings.backbone.to_string(),
        "input_size": settings.img_size,
        "threshold": d.threshold(),
        "threshold_source": source,
        "score": d.fusion().to_string(),
        "settings": settings,
    });
    (value, d.threshold())
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM); the server then takes no
/// new connections and finishes the requests in flight.
async fn stopping(app: Arc<App>) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    app.ready.store(false, Ordering::SeqCst);
    eprintln!("stopping: finishing the requests in flight");
}

/// An error answer: `{"error": message}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// `res` with the header `name: value`.
fn with_header(mut res: Response, name: header::HeaderName, value: &'static str) -> Response {
    res.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    res
}

async fn authorise(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let open = matches!(req.uri().path(), "/" | "/healthz" | "/readyz");
    if let (Some(token), false) = (&app.token, open) {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            let res = error(
                StatusCode::UNAUTHORIZED,
                "this server needs 'Authorization: Bearer TOKEN' (dra serve --token)",
            );
            return with_header(res, header::WWW_AUTHENTICATE, "Bearer");
        }
    }
    next.run(req).await
}

async fn count(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let res = next.run(req).await;
    let seconds = start.elapsed().as_secs_f64();
    app.stats.request(&route, res.status().as_u16(), seconds);
    res
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.ready.load(Ordering::SeqCst) {
        true => "ready\n".into_response(),
        false => error(StatusCode::SERVICE_UNAVAILABLE, "stopping"),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let res = app.stats.text().into_response();
    with_header(res, header::CONTENT_TYPE, "text/plain; version=0.0.4")
}

async fn model(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.model.clone()).into_response()
}

/// `POST /v1/predict`'s query.
#[derive(Debug, Deserialize)]
struct PredictQuery {
    /// `png` (the map over the image, with its scale) or `npy` (float32, the image's own
    /// height × width), base64 in the answer.
    map: Option<String>,
}

/// How a map is returned.
#[derive(Debug, Clone, Copy, PartialEq)]
enum MapFormat {
    Png,
    Npy,
}

async fn predict(
    State(app): State<Arc<App>>,
    Query(q): Query<PredictQuery>,
    req: Request,
) -> Response {
    let format = match q.map.as_deref() {
        None => None,
        Some("png") => Some(MapFormat::Png),
        Some("npy") => Some(MapFormat::Npy),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("map={other}: ask for map=png or map=npy"),
            );
        }
    };
    let multipart = (req.headers().get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let uploads = match multipart {
        true => match read_multipart(req, &app).await {
            Ok(files) => files,
            Err(res) => return res,
        },
        false => match Bytes::from_request(req, &app).await {
            Ok(body) => vec![("image".to_string(), body)],
            Err(e) => return e.into_response(),
        },
    };
    if uploads.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no image in the request's form");
    }
    let decoded = tokio::task::spawn_blocking(move || decode_all(uploads)).await;
    let (names, images) = match decoded {
        Ok(Ok(decoded)) => decoded,
        Ok(Err(message)) => return error(StatusCode::BAD_REQUEST, message),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let sources = format.map(|_| images.clone());
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        images,
        maps: format.is_some(),
        reply,
    };
    match app.queue.send(job) {
        Ok(()) => {}
        Err(Refused::Full) => {
            let res = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the queue is full (dra serve --queue): retry shortly",
            );
            return with_header(res, header::RETRY_AFTER, "1");
        }
        Err(Refused::Stopped) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the scoring thread has stopped",
            );
        }
    }
    let detections = match tokio::time::timeout(app.deadline, answer).await {
        Ok(Ok(Ok(detections))) => detections,
        Ok(Ok(Err(message))) => return error(StatusCode::INTERNAL_SERVER_ERROR, message),
        Ok(Err(_)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the scoring thread stopped",
            );
        }
        Err(_) => {
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "not scored within {} s (dra serve --deadline)",
                    app.deadline.as_secs_f64()
                ),
            );
        }
    };
    let threshold = app.threshold;
    let rendered = tokio::task::spawn_blocking(move || {
        (names.iter().enumerate())
            .zip(detections)
            .map(|((i, name), d)| {
                let source = sources.as_ref().map(|s| &s[i]);
                result(name, &d, threshold, format.zip(source))
            })
            .collect::<Result<Vec<Value>>>()
    })
    .await;
    let results = match rendered {
        Ok(Ok(results)) => results,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match multipart {
        true => axum::Json(json!({ "results": results })).into_response(),
        false => axum::Json(results.into_iter().next()).into_response(),
    }
}

/// Every file of a multipart form, with its file name (or field name).
async fn read_multipart(req: Request, app: &Arc<App>) -> Result<Vec<(String, Bytes)>, Response> {
    let mut form = Multipart::from_request(req, app)
        .await
        .map_err(IntoResponse::into_response)?;
    let mut files = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(IntoResponse::into_response)?
    {
        let name = (field.file_name().or(field.name()))
            .unwrap_or("image")
            .to_string();
        let bytes = field.bytes().await.map_err(IntoResponse::into_response)?;
        files.push((name, bytes));
    }
    Ok(files)
}

/// Decodes every upload, or says in one line which one is not an image and why.
fn decode_all(uploads: Vec<(String, Bytes)>) -> Result<(Vec<String>, Vec<RgbImage>), String> {
    let mut names = Vec::with_capacity(uploads.len());
    let mut images = Vec::with_capacity(uploads.len());
    for (name, bytes) in uploads {
        if bytes.is_empty() {
            return Err(format!(
                "{name}: empty: send an image's bytes (png, jpeg, bmp or tiff)"
            ));
        }
        let image = decode_rgb(&bytes, Path::new(&name)).map_err(|e| {
            format!(
                "{} (is it a whole png, jpeg, bmp or tiff image?)",
                crate::cli::one_line(&e)
            )
        })?;
        names.push(name);
        images.push(image);
    }
    Ok((names, images))
}

/// One image's answer, as `dra predict --json` gives it (with `name` for `path`), and its
/// map in `format` over `source` when asked for.
fn result(
    name: &str,
    d: &Detection,
    threshold: Option<f64>,
    map: Option<(MapFormat, &RgbImage)>,
) -> Result<Value> {
    let mut value = super::predict::prediction_json(d.score, &d.heads, threshold);
    value["name"] = json!(name);
    let (Some((format, source)), Some(map)) = (map, &d.map) else {
        return Ok(value);
    };
    let framed = map.resized(source.width(), source.height());
    let (w, h) = (source.width() as usize, source.height() as usize);
    let bytes = match format {
        MapFormat::Npy => dra::npy::encode(&[h, w], &framed.values),
        MapFormat::Png => {
            let drawn = overlay_with_bar(source, &framed, &MapScale::of_threshold(threshold))?;
            let mut png = Vec::new();
            drawn.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
            png
        }
    };
    value["map"] = json!({
        "format": match format { MapFormat::Png => "png", MapFormat::Npy => "npy" },
        "data": base64::engine::general_purpose::STANDARD.encode(bytes),
    });
    Ok(value)
}
