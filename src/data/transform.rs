//! Image pipeline: decode to RGB, bilinear resize to a square, random rotation, and
//! normalisation into CHW floats.

use std::path::Path;

use image::{ImageReader, Rgb, RgbImage, imageops::FilterType};
use imageproc::geometric_transformations::{Border, Interpolation, rotate_about_center};
use rand::Rng;

use crate::choice::choice;
use crate::error::{Error, Result};
use crate::rng::DraRng;

choice! {
    /// Input normalisation setting.
    pub enum InputNorm ("normalisation") {
        /// What the backbone's pretrained weights expect (ImageNet for ResNet-18, 0.5/0.5 for
        /// EfficientNet-Lite0).
        Auto = "auto",
        /// ImageNet's mean and std (the reference code hard-codes it for every backbone).
        Imagenet = "imagenet",
        /// Mean 0.5, std 0.5.
        Half = "half",
        /// None: pixels in [0, 1] (what KDAD's code feeds its VGG16 teacher).
        Raw = "none",
    }
}

/// Per-channel mean and standard deviation applied after scaling pixels to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// torchvision's ImageNet statistics (ResNet18).
    pub const IMAGENET: Self = Self {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// Mean 0.5, std 0.5 per channel, mapping [0, 1] to [-1, 1] (EfficientNet-Lite).
    pub const HALF: Self = Self {
        mean: [0.5; 3],
        std: [0.5; 3],
    };

    /// Pixels scaled to [0, 1] and nothing else.
    pub const RAW: Self = Self {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    /// Appends `img` as normalised planes R, G, B (CHW order) to `out`.
    pub fn append_chw(&self, img: &RgbImage, out: &mut Vec<f32>) {
        for c in 0..3 {
            let (m, s) = (self.mean[c], self.std[c]);
            out.extend(img.pixels().map(|p| (p[c] as f32 / 255.0 - m) / s));
        }
    }
}

/// Images this process has decoded (successfully or not).
static DECODED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many images this process has decoded so far, for tests that count the work a run does.
pub fn images_decoded() -> usize {
    DECODED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Decodes any supported image (grey, RGBA, 16-bit, …) to 8-bit RGB. The format is taken
/// from the file's content, so a mislabelled extension still decodes if the data is an image.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    DECODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reader = ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    decoded(reader, path)
}

/// Decodes an image held in memory as [`load_rgb`] decodes a file, `name` naming it in
/// errors.
pub fn decode_rgb(bytes: &[u8], name: &Path) -> Result<RgbImage> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(name, e))?;
    decoded(reader, name)
}

fn decoded<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    name: &Path,
) -> Result<RgbImage> {
    let img = reader.decode().map_err(|source| Error::Image {
        path: name.to_path_buf(),
        source,
    })?;
    Ok(img.to_rgb8())
}

/// Bilinear resize to `size`×`size` (aspect ratio not kept, as in the reference).
pub fn resize_square(img: &RgbImage, size: u32) -> RgbImage {
    if img.width() == size && img.height() == size {
        return img.clone();
    }
    image::imageops::resize(img, size, size, FilterType::Triangle)
}

/// Rotation about the centre by an angle drawn from U(−180°, 180°), nearest-neighbour,
/// same canvas, corners black.
pub fn random_rotation(img: &RgbImage, rng: &mut DraRng) -> RgbImage {
    let theta = rng.random_range(-std::f32::consts::PI..std::f32::consts::PI);
    rotate_about_center(
        img,
        theta,
        Interpolation::Nearest,
        Border::Constant(Rgb([0, 0, 0])),
    )
}

/// ImageNet evaluation crop: bilinear resize of the shorter side to `resize`, then the
/// central `crop`×`crop` square (torchvision's `Resize(256)` + `CenterCrop(224)`).
pub fn resize_shorter_center_crop(img: &RgbImage, resize: u32, crop: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h {
        (resize, ((resize as u64 * h as u64) / w as u64) as u32)
    } else {
        (((resize as u64 * w as u64) / h as u64) as u32, resize)
    };
    let resized = image::imageops::resize(img, nw, nh, FilterType::Triangle);
    let left = ((nw.saturating_sub(crop)) as f64 / 2.0).round() as u32;
    let top = ((nh.saturating_sub(crop)) as f64 / 2.0).round() as u32;
    image::imageops::crop_imm(&resized, left, top, crop.min(nw), crop.min(nh)).to_image()
}
