//! Image pipeline and CutMix: decoding of odd formats, resize, rotation, normalisation,
//! CutMix geometry and statistics, colour jitter.

mod common;

use image::{ImageBuffer, Luma, LumaA, Rgb, RgbImage, Rgba};

use dra::data::cutmix::{ColorJitter, PatchGeometry, cutmix};
use dra::data::transform::{Normalization, load_rgb, random_rotation, resize_square};
use dra::rng::seeded;

#[test]
fn decodes_grey_grey_alpha_rgba_and_16_bit_to_rgb() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    ImageBuffer::from_pixel(3, 2, Luma([200u8]))
        .save(p("g.png"))
        .unwrap();
    ImageBuffer::from_pixel(3, 2, LumaA([90u8, 10]))
        .save(p("ga.png"))
        .unwrap();
    ImageBuffer::from_pixel(3, 2, Rgba([1u8, 2, 3, 4]))
        .save(p("rgba.png"))
        .unwrap();
    ImageBuffer::from_pixel(3, 2, Luma([65535u16]))
        .save(p("g16.png"))
        .unwrap();
    ImageBuffer::from_pixel(3, 2, Rgb([0u16, 32896, 65535]))
        .save(p("rgb16.png"))
        .unwrap();
    ImageBuffer::from_pixel(1, 1, Rgb([9u8, 8, 7]))
        .save(p("one.bmp"))
        .unwrap();
    ImageBuffer::from_pixel(3, 2, Rgb([10u8, 20, 30]))
        .save(p("t.tiff"))
        .unwrap();
    assert_eq!(
        *load_rgb(&p("g.png")).unwrap().get_pixel(0, 0),
        Rgb([200, 200, 200])
    );
    assert_eq!(
        *load_rgb(&p("ga.png")).unwrap().get_pixel(2, 1),
        Rgb([90, 90, 90])
    );
    assert_eq!(
        *load_rgb(&p("rgba.png")).unwrap().get_pixel(1, 1),
        Rgb([1, 2, 3])
    );
    assert_eq!(
        *load_rgb(&p("g16.png")).unwrap().get_pixel(0, 0),
        Rgb([255, 255, 255])
    );
    assert_eq!(
        *load_rgb(&p("rgb16.png")).unwrap().get_pixel(0, 0),
        Rgb([0, 128, 255])
    );
    assert_eq!(load_rgb(&p("one.bmp")).unwrap().dimensions(), (1, 1));
    assert_eq!(
        *load_rgb(&p("t.tiff")).unwrap().get_pixel(2, 1),
        Rgb([10, 20, 30])
    );
}

#[test]
fn unreadable_images_name_their_path() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("notes.jpg");
    std::fs::write(&text, "not an image").unwrap();
    let err = load_rgb(&text).unwrap_err().to_string();
    assert!(err.contains("notes.jpg"), "{err}");
    let png = tmp.path().join("cut.png");
    common::write_png(&png, 32, 32, 1);
    let bytes = std::fs::read(&png).unwrap();
    std::fs::write(&png, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_rgb(&png).unwrap_err().to_string();
    assert!(err.contains("cut.png"), "{err}");
    let err = load_rgb(&tmp.path().join("missing.png"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.png"), "{err}");
}

#[test]
fn resize_gives_a_square_and_keeps_flat_colour() {
    let img = RgbImage::from_pixel(300, 120, Rgb([10, 100, 200]));
    let out = resize_square(&img, 64);
    assert_eq!(out.dimensions(), (64, 64));
    assert!(out.pixels().all(|p| *p == Rgb([10, 100, 200])));
}

#[test]
fn rotation_keeps_the_canvas_and_blackens_corners() {
    let img = RgbImage::from_pixel(64, 64, Rgb([255, 255, 255]));
    let mut rng = seeded(5);
    let mut corner_black = 0;
    for _ in 0..50 {
        let out = random_rotation(&img, &mut rng);
        assert_eq!(out.dimensions(), (64, 64));
        assert_eq!(*out.get_pixel(32, 32), Rgb([255, 255, 255]));
        if *out.get_pixel(0, 0) == Rgb([0, 0, 0]) {
            corner_black += 1;
        }
    }
    // any angle farther than ~3° from a multiple of 90° exposes the corner
    assert!(corner_black >= 40, "{corner_black}");
}

#[test]
fn normalisation_maps_pixels_per_channel_in_chw_order() {
    let img = RgbImage::from_fn(2, 1, |x, _| {
        if x == 0 {
            Rgb([0, 255, 51])
        } else {
            Rgb([255, 0, 102])
        }
    });
    let mut out = Vec::new();
    Normalization::HALF.append_chw(&img, &mut out);
    let expected = [-1.0, 1.0, 1.0, -1.0, -0.6, -0.2];
    for (a, b) in out.iter().zip(expected) {
        assert!((a - b).abs() < 1e-6, "{out:?}");
    }
    let mut out = Vec::new();
    Normalization::IMAGENET.append_chw(&img, &mut out);
    assert!((out[0] - (-0.485 / 0.229)).abs() < 1e-6);
}

#[test]
fn cutmix_geometry_stays_in_range_and_matches_its_distribution() {
    let mut rng = seeded(11);
    let s = 448u32;
    let n = 20_000;
    let (mut area_sum, mut log_aspect_sum) = (0.0, 0.0);
    for _ in 0..n {
        let g = PatchGeometry::draw(s, s, &mut rng);
        let (w, h) = (g.width as f64, g.height as f64);
        let area = w * h / (s * s) as f64;
        assert!((0.019..=0.152).contains(&area), "area {area}");
        let aspect = w / h;
        assert!((0.29..=3.45).contains(&aspect), "aspect {aspect}");
        assert!(g.source.0 + g.width <= s && g.source.1 + g.height <= s);
        assert!(g.target.0 + g.width <= s && g.target.1 + g.height <= s);
        area_sum += area;
        log_aspect_sum += aspect.ln();
    }
    // E[area] = (0.02 + 0.15) / 2; log-aspect is symmetric about 0
    assert!(
        (area_sum / n as f64 - 0.085).abs() < 0.002,
        "{}",
        area_sum / n as f64
    );
    assert!((log_aspect_sum / n as f64).abs() < 0.02);
}

#[test]
fn cutmix_pastes_the_jittered_source_patch_and_changes_nothing_else() {
    let img = common::pattern(96, 96, 3);
    let mut rng = seeded(2);
    for _ in 0..30 {
        // replay the draws: geometry first, then the jitter of the patch
        let mut replay = rng.clone();
        let expected_geometry = PatchGeometry::draw(96, 96, &mut replay);
        let jitter = ColorJitter::draw(&mut replay);
        let (out, g) = cutmix(&img, &mut rng);
        assert_eq!(g, expected_geometry);
        let mut patch =
            image::imageops::crop_imm(&img, g.source.0, g.source.1, g.width, g.height).to_image();
        jitter.apply(&mut patch);
        let pasted =
            image::imageops::crop_imm(&out, g.target.0, g.target.1, g.width, g.height).to_image();
        assert_eq!(pasted, patch);
        let inside = |x: u32, y: u32| {
            x >= g.target.0
                && x < g.target.0 + g.width
                && y >= g.target.1
                && y < g.target.1 + g.height
        };
        for (x, y, p) in out.enumerate_pixels() {
            if !inside(x, y) {
                assert_eq!(p, img.get_pixel(x, y));
            }
        }
    }
}

#[test]
fn colour_jitter_operations_match_their_definitions() {
    let img = common::pattern(40, 30, 9);
    let neutral = ColorJitter {
        brightness: 1.0,
        contrast: 1.0,
        saturation: 1.0,
        hue: 0.0,
        order: [0, 1, 2, 3],
    };
    let mut copy = img.clone();
    neutral.apply(&mut copy);
    assert_eq!(copy, img);

    // brightness 0.5 halves every channel; a hue shift of 1/3 rotates pure red to green
    let dim = ColorJitter {
        brightness: 0.5,
        ..neutral
    };
    let mut red = RgbImage::from_pixel(2, 2, Rgb([200, 0, 0]));
    dim.apply(&mut red);
    assert_eq!(*red.get_pixel(0, 0), Rgb([100, 0, 0]));
    let hue = ColorJitter {
        hue: 1.0 / 3.0,
        ..neutral
    };
    hue.apply(&mut red);
    assert_eq!(*red.get_pixel(0, 0), Rgb([0, 100, 0]));
    // saturation 0 turns a pixel grey at its luma (ITU-R 601-2)
    let grey = ColorJitter {
        saturation: 0.0,
        ..neutral
    };
    let mut px = RgbImage::from_pixel(1, 1, Rgb([100, 200, 50]));
    grey.apply(&mut px);
    assert_eq!(*px.get_pixel(0, 0), Rgb([153, 153, 153]));
}
