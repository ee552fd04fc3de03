//! Deep SAD's head (Ruff et al., ICLR 2020) on the backbone's map: the global average pool
//! projected to 128 dimensions by a linear map without bias, φ(x); the score is the squared
//! distance ‖φ(x) − c‖² to a centre c fixed before training (the mean φ of the normal
//! training images, in inference mode). Without a bias the projection cannot reach c by
//! outputting a constant.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

/// Dimension of the projection φ (the reference code's `rep_dim`).
pub const CENTRE_DIM: usize = 128;
/// Entries of the centre nearer to 0 than this are moved to ±this, by their sign (as the
/// reference code does: a zero entry is reached too easily by zero weights).
pub const CENTRE_FLOOR: f32 = 0.1;

/// Deep SAD head: GAP → Linear C→128 (no bias) → squared distance to a fixed centre.
#[derive(Module, Debug)]
pub struct CentreHead {
    projection: Linear,
    /// The centre c: saved with the model, never trained.
    centre: Param<Tensor<1>>,
}

impl CentreHead {
    /// A head over `channels`-channel features, its centre at 0 until [`CentreHead::centred`].
    pub fn new(channels: usize, device: &Device) -> Self {
        CentreHead {
            projection: LinearConfig::new(channels, CENTRE_DIM)
                .with_bias(false)
                .init(device),
            centre: Param::from_tensor(Tensor::zeros([CENTRE_DIM], device)).set_require_grad(false),
        }
    }

    /// φ of each image, `[N, C, h, w]` → `[N, 128]`.
    pub fn embed(&self, features: Tensor<4>) -> Tensor<2> {
        let [n, c, _, _] = features.dims();
        self.projection
            .forward(features.mean_dims(&[2, 3]).reshape([n, c]))
    }

    /// ‖φ(x) − c‖², `[N, C, h, w]` → `[N]`.
    pub fn forward(&self, features: Tensor<4>) -> Tensor<1> {
        let [n, _, _, _] = features.dims();
        let centre = self.centre.val().unsqueeze::<2>();
        (self.embed(features) - centre)
            .powi_scalar(2)
            .sum_dim(1)
            .reshape([n])
    }

    /// The head with its centre at `mean` (of φ over the normal training images), every
    /// entry at least [`CENTRE_FLOOR`] from 0.
    pub fn centred(mut self, mean: &[f32]) -> Self {
        let floored: Vec<f32> = mean
            .iter()
            .map(|&v| match v {
                v if v.abs() >= CENTRE_FLOOR => v,
                v if v < 0.0 => -CENTRE_FLOOR,
                _ => CENTRE_FLOOR,
            })
            .collect();
        let device = self.centre.val().device();
        let value = Tensor::from_data(TensorData::new(floored, [mean.len()]), &device);
        self.centre = Param::from_tensor(value).set_require_grad(false);
        self
    }

    /// The centre c.
    pub fn centre(&self) -> Vec<f32> {
        self.centre
            .val()
            .into_data()
            .try_to_vec()
            .expect("f32 centre")
    }
}
