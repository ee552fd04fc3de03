//! `dra serve` on 127.0.0.1 with an ephemeral port, over a tiny run of the bundled ELPV
//! cells: its answers equal `dra predict`'s to the bit, its endpoints, bad input, batching,
//! a full queue, deadlines, stopping on SIGTERM, and its page in headless Chromium.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use common::http::{Answer, Server, http};
use common::{dra, s};
use serde_json::Value;

/// A trained tiny run and a few of its test images, made once for all the tests.
struct Fixture {
    _data: tempfile::TempDir,
    _runs: tempfile::TempDir,
    run: PathBuf,
    images: Vec<PathBuf>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = common::bundled_elpv();
        let runs = tempfile::tempdir().unwrap();
        // DRA_SERVE_MODEL: serve that run instead (the README's screenshot is the demo's)
        let run = match std::env::var_os("DRA_SERVE_MODEL") {
            Some(run) => PathBuf::from(run),
            None => {
                let run = runs.path().join("run");
                std::fs::create_dir_all(&run).unwrap();
                common::train(&common::tiny_elpv(data.path()), &run);
                run
            }
        };
        let elpv = data.path().join("elpv/test");
        let mut images = dra::data::layout::list_images(&elpv.join("good")).unwrap();
        images.truncate(2);
        images.extend(
            dra::data::layout::list_images(&elpv.join("mono"))
                .unwrap()
                .into_iter()
                .take(2),
        );
        Fixture {
            _data: data,
            _runs: runs,
            run,
            images,
        }
    })
}

/// `dra serve` on the fixture's run.
fn start(extra: &[&str]) -> Server {
    Server::start(&fixture().run, extra)
}

fn post(addr: &str, path: &str, body: &[u8]) -> Answer {
    http(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/octet-stream")],
        body,
    )
}

/// A multipart form of `files` (name, bytes).
fn form(files: &[(String, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "dra-test-boundary-7d1a";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; \
                 filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The files at `paths` for [`form`].
fn files(paths: &[PathBuf]) -> Vec<(String, Vec<u8>)> {
    paths
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(p).unwrap())
        })
        .collect()
}

/// A JSON number as the f32 it was written from.
fn f32_of(v: &Value) -> f32 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as f32
}

/// Asserts that two answers for one image give the same score, decision and heads, to the
/// bit.
fn assert_same(served: &Value, predicted: &Value) {
    assert_eq!(
        f32_of(&served["score"]).to_bits(),
        f32_of(&predicted["score"]).to_bits()
    );
    assert_eq!(served["anomalous"], predicted["anomalous"]);
    assert_eq!(served["threshold"], predicted["threshold"]);
    let heads = predicted["heads"].as_object().unwrap();
    assert!(!heads.is_empty());
    for (h, v) in heads {
        assert_eq!(
            f32_of(&served["heads"][h]).to_bits(),
            f32_of(v).to_bits(),
            "{h}"
        );
    }
}

/// `dra predict --json` of `images`.
fn predicted(images: &[PathBuf]) -> Vec<Value> {
    let mut args = vec!["predict", "--model", s(&fixture().run), "--json"];
    args.extend(images.iter().map(|p| s(p)));
    let out = dra(&args);
    common::succeeded(&out);
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(rows) => rows,
        other => panic!("{other}"),
    }
}

#[test]
fn scores_equal_dra_predict_one_at_a_time_and_in_a_form() {
    let f = fixture();
    let server = start(&[]);
    let expected = predicted(&f.images);
    for (image, want) in f.images.iter().zip(&expected) {
        let got = post(&server.addr, "/v1/predict", &std::fs::read(image).unwrap());
        assert_eq!(got.status, 200, "{}", got.text());
        assert_same(&got.json(), want);
    }
    let (content_type, body) = form(&files(&f.images));
    let got = http(
        &server.addr,
        "POST",
        "/v1/predict",
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(got.status, 200, "{}", got.text());
    let results = got.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), f.images.len());
    for ((r, want), image) in results.iter().zip(&expected).zip(&f.images) {
        assert_same(r, want);
        assert_eq!(
            r["name"],
            image.file_name().unwrap().to_string_lossy().as_ref()
        );
    }
    // the map as `dra predict --maps` writes it: float32 at the image's own size
    let maps = tempfile::tempdir().unwrap();
    let out = dra(&[
        "predict",
        "--model",
        s(&f.run),
        "--maps",
        s(maps.path()),
        s(&f.images[2]),
    ]);
    common::succeeded(&out);
    let written = dra::data::layout::images_under(maps.path()).unwrap();
    let npy = std::fs::read_dir(maps.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "npy"))
        .unwrap();
    let (shape, values) = dra::npy::decode(&npy, &std::fs::read(&npy).unwrap()).unwrap();
    let got = post(
        &server.addr,
        "/v1/predict?map=npy",
        &std::fs::read(&f.images[2]).unwrap(),
    );
    assert_eq!(got.status, 200, "{}", got.text());
    let answer = got.json();
    assert_same(&answer, &expected[2]);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer["map"]["data"].as_str().unwrap())
        .unwrap();
    let (served_shape, served) = dra::npy::decode(Path::new("served"), &bytes).unwrap();
    assert_eq!(served_shape, shape);
    assert_eq!(served, values);
    // and as a picture: the map over the image, with its scale beside it
    let got = post(
        &server.addr,
        "/v1/predict?map=png",
        &std::fs::read(&f.images[2]).unwrap(),
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(got.json()["map"]["data"].as_str().unwrap())
        .unwrap();
    let drawn = image::load_from_memory(&png).unwrap();
    let (w, h) = image::image_dimensions(&f.images[2]).unwrap();
    assert!(
        drawn.width() > w && drawn.height() >= h,
        "{}×{}",
        drawn.width(),
        drawn.height()
    );
    assert_eq!(
        written
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .count(),
        1
    );
}

#[test]
fn the_model_health_metrics_and_page_answer() {
    let server = start(&[]);
    let a = &server.addr;
    assert_eq!(http(a, "GET", "/healthz", &[], b"").text(), "ok\n");
    assert_eq!(http(a, "GET", "/readyz", &[], b"").status, 200);
    let model = http(a, "GET", "/v1/model", &[], b"").json();
    let decision = dra::run::saved_decision(&fixture().run).unwrap().unwrap();
    assert_eq!(model["threshold"].as_f64(), Some(decision.threshold));
    assert_eq!(model["threshold_source"], decision.source.as_str());
    assert_eq!(model["input_size"], 64);
    assert_eq!(model["backbone"], "efficientnet-lite0");
    assert!(
        model["score"].as_str().unwrap().contains("z-score"),
        "{}",
        model["score"]
    );
    let page = http(a, "GET", "/", &[], b"").text();
    assert!(page.contains("<input id=\"files\" type=\"file\""), "{page}");
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no CDN"
    );
    post(
        a,
        "/v1/predict",
        &std::fs::read(&fixture().images[0]).unwrap(),
    );
    post(a, "/v1/predict", b"not an image");
    let metrics = http(a, "GET", "/metrics", &[], b"").text();
    for line in [
        "dra_requests_total{route=\"/v1/predict\",status=\"200\"} 1",
        "dra_requests_total{route=\"/v1/predict\",status=\"400\"} 1",
        "dra_batch_size_count 1",
        "dra_batch_size_sum 1",
        "dra_queue_depth 0",
        "# TYPE dra_request_duration_seconds histogram",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from:\n{metrics}"
        );
    }
}

#[test]
fn bad_input_gets_its_status_and_one_line() {
    let f = fixture();
    let server = start(&["--max-body", "1"]);
    let a = &server.addr;
    let big = vec![7u8; 3 << 20];
    assert_eq!(post(a, "/v1/predict", &big).status, 413);
    let png = std::fs::read(&f.images[0]).unwrap();
    for (body, needle) in [
        (&b"not an image at all"[..], "image"),
        (&png[..png.len() / 2], "image"),
        (&b""[..], "empty"),
    ] {
        let got = post(a, "/v1/predict", body);
        assert_eq!(got.status, 400, "{}", got.text());
        let message = got.json()["error"].as_str().unwrap().to_string();
        assert!(
            message.contains(needle) && !message.contains('\n'),
            "{message}"
        );
    }
    assert_eq!(post(a, "/v1/predict?map=gif", &png).status, 400);
    // the server goes on
    assert_eq!(post(a, "/v1/predict", &png).status, 200);

    let guarded = start(&["--token", "s3cret"]);
    let g = &guarded.addr;
    assert_eq!(post(g, "/v1/predict", &png).status, 401);
    let wrong = [("Authorization", "Bearer nope")];
    assert_eq!(http(g, "POST", "/v1/predict", &wrong, &png).status, 401);
    let right = [("Authorization", "Bearer s3cret")];
    assert_eq!(http(g, "POST", "/v1/predict", &right, &png).status, 200);
    assert_eq!(http(g, "GET", "/v1/model", &[], b"").status, 401);
    assert_eq!(http(g, "GET", "/healthz", &[], b"").status, 200);

    let open = dra(&["serve", "--model", s(&f.run), "--addr", "0.0.0.0:0"]);
    common::assert_one_line_error(&open, &["0.0.0.0", "--token", "--insecure"]);
    let missing = dra(&["serve", "--model", "/nowhere/run"]);
    common::assert_one_line_error(&missing, &["/nowhere/run"]);
}

#[test]
fn concurrent_requests_are_batched_and_a_full_queue_answers_503() {
    let f = fixture();
    let server = start(&["--max-batch", "8", "--max-wait", "400"]);
    let expected = predicted(&f.images);
    let bodies: Vec<Vec<u8>> = f.images.iter().map(|p| std::fs::read(p).unwrap()).collect();
    // eight clients, two of each image, each gets its own image's answer
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let body = &bodies[i % bodies.len()];
                (i, scope.spawn(|| post(&server.addr, "/v1/predict", body)))
            })
            .collect();
        for (i, h) in handles {
            let got = h.join().unwrap();
            assert_eq!(got.status, 200, "{}", got.text());
            assert_same(&got.json(), &expected[i % bodies.len()]);
        }
    });
    let png = bodies[1].clone();
    let metrics = http(&server.addr, "GET", "/metrics", &[], b"").text();
    let value = |name: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("dra_batch_size_sum"), 8.0);
    assert!(
        value("dra_batch_size_count") < 8.0,
        "not batched:\n{metrics}"
    );

    // one request of many images keeps the scoring thread busy: one more waits, the rest
    // are turned away
    let busy = start(&["--max-batch", "1", "--max-wait", "0", "--queue", "1"]);
    let many: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| {
            let mut png = Vec::new();
            let image = common::pattern(64, 64, i);
            image
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            (format!("p{i}.png"), png)
        })
        .collect();
    let (content_type, body) = form(&many);
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let big = scope.spawn(|| {
            http(
                &busy.addr,
                "POST",
                "/v1/predict",
                &[("Content-Type", &content_type)],
                &body,
            )
            .status
        });
        std::thread::sleep(Duration::from_millis(500));
        let small: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let got = post(&busy.addr, "/v1/predict", &png);
                    (got.status, got.header("retry-after").map(String::from))
                })
            })
            .collect();
        let mut out: Vec<_> = small.into_iter().map(|h| h.join().unwrap()).collect();
        out.push((big.join().unwrap(), None));
        out
    });
    assert!(
        statuses.iter().all(|(s, _)| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!refused.is_empty(), "nothing refused: {statuses:?}");
    assert!(
        refused.iter().all(|(_, r)| r.as_deref() == Some("1")),
        "{statuses:?}"
    );
    assert_eq!(statuses.last().unwrap().0, 200);
}

#[test]
fn a_request_past_its_deadline_gets_504_and_the_server_goes_on() {
    let server = start(&["--max-wait", "1500", "--deadline", "0.2"]);
    let png = std::fs::read(&fixture().images[0]).unwrap();
    let got = post(&server.addr, "/v1/predict", &png);
    assert_eq!(got.status, 504, "{}", got.text());
    assert!(got.json()["error"].as_str().unwrap().contains("--deadline"));
    assert_eq!(http(&server.addr, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn sigterm_finishes_the_requests_in_flight_and_stops() {
    let mut server = start(&["--max-wait", "1500"]);
    let png = std::fs::read(&fixture().images[0]).unwrap();
    let addr = server.addr.clone();
    let pid = server.child.id().to_string();
    let status = std::thread::scope(|scope| {
        let request = scope.spawn(|| post(&addr, "/v1/predict", &png).status);
        std::thread::sleep(Duration::from_millis(400));
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        request.join().unwrap()
    });
    assert_eq!(status, 200);
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// A program on the PATH, or where Debian installs it.
fn program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A WebDriver command's answer (`value`), failing on an HTTP error.
fn webdriver(driver: &str, method: &str, path: &str, body: Value) -> Value {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let got = http(
        driver,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(got.status, 200, "{method} {path}: {}", got.text());
    got.json()["value"].clone()
}

/// The page in headless Chromium (through chromedriver's WebDriver): choosing an image
/// shows its score, decision and map. `DRA_SCREENSHOT=FILE` saves what it shows.
#[test]
fn the_page_scores_a_chosen_image_in_headless_chromium() {
    let (Some(chromium), Some(chromedriver)) = (program("chromium"), program("chromedriver"))
    else {
        common::skip("no chromium and chromedriver (Debian's chromium, chromium-driver)");
        return;
    };
    let f = fixture();
    let server = start(&[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut driver = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wd = format!("127.0.0.1:{port}");
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        TcpStream::connect(&wd).is_ok()
    });
    assert!(up, "chromedriver did not start");
    let profile = tempfile::tempdir().unwrap();
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=900,1100",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": args},
    }}});
    let session = webdriver(&wd, "POST", "/session", caps)["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let at = |p: &str| format!("/session/{session}{p}");
    let url = format!("http://{}/", server.addr);
    webdriver(&wd, "POST", &at("/url"), serde_json::json!({ "url": url }));
    let script = |code: &str| {
        webdriver(
            &wd,
            "POST",
            &at("/execute/sync"),
            serde_json::json!({"script": code, "args": []}),
        )
    };
    let input = webdriver(
        &wd,
        "POST",
        &at("/element"),
        serde_json::json!({"using": "css selector", "value": "#files"}),
    );
    let input = input
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let image = &f.images[2];
    webdriver(
        &wd,
        "POST",
        &at(&format!("/element/{input}/value")),
        serde_json::json!({ "text": s(image) }),
    );
    let shown = (0..300).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let v = script(
            "const li = document.querySelector('#results li'); const img = li && li.querySelector('img');\
             return img && img.complete && img.naturalWidth > 0 ? li.innerText : null;",
        );
        v.as_str().map(String::from)
    });
    let text = shown.expect("no result with its map within 30 s");
    let expected = &predicted(std::slice::from_ref(image))[0];
    let name = image.file_name().unwrap().to_string_lossy();
    let verdict = if expected["anomalous"] == true {
        "anomalous"
    } else {
        "normal"
    };
    let score = format!("score {:.4}", expected["score"].as_f64().unwrap());
    for needle in [name.as_ref(), verdict, score.as_str()] {
        assert!(text.contains(needle), "{needle} missing from {text:?}");
    }
    let model = script("return document.getElementById('model').textContent;");
    assert!(
        model.as_str().unwrap().contains("anomalous above"),
        "{model}"
    );
    if let Some(path) = std::env::var_os("DRA_SCREENSHOT") {
        let png = webdriver(&wd, "GET", &at("/screenshot"), Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
    http(&wd, "DELETE", &at(""), &[], b"");
    let _ = driver.kill();
    let _ = driver.wait();
}
