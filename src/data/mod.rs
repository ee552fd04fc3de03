//! The data stages: public data sets converted into the MVTec layout ([`convert`]), the folders of
//! one class ([`layout`]) or a user's plain folders ([`folders`]), the protocol split ([`protocol`]), batch slots ([`sampler`]), the
//! reference set ([`reference`](mod@reference)), decoding and augmentation ([`transform`],
//! [`cutmix`], or external images as pseudo anomalies: [`outliers`]), normalised batches
//! ([`batch`]) and a picture of one ([`preview`]).

pub mod batch;
pub mod convert;
pub mod cutmix;
pub mod folders;
pub mod layout;
pub mod outliers;
pub mod preview;
pub mod protocol;
pub mod reference;
pub mod sampler;
pub mod transform;
