//! libcebra: CEBRA (Consistent EmBeddings of high-dimensional Recordings using Auxiliary variables)
//! on libtorch, with the models, losses and numbers of the Python reference `cebra` 0.6.1.
//!
//! The Rust core (this crate's public API) knows nothing of C; [`ffi`] is the thin C ABI over it.
//!
//! ```
//! use cebra::{init, ModelArgs};
//! let model = init("offset10-model", &ModelArgs::new(10, 16, 4)).unwrap();
//! let x = tch::Tensor::randn([2, 10, 12], (tch::Kind::Float, tch::Device::Cpu));
//! let y = model.forward(&x).unwrap();
//! assert_eq!(y.size(), [2, 4, 3]);
//! ```
#![warn(missing_docs)]

pub mod criterions;
pub mod error;
mod init;
pub mod ffi;
pub mod fused;
pub mod layers;
pub mod model;
pub mod offset;
pub mod options;
pub mod registry;
pub mod stream;
pub mod train;
pub mod transform;
pub mod weights;
mod zoo;

pub use error::{Error, Result};
pub use model::{Architecture, ClassifierModel, Model, ModelArgs, Network};
pub use offset::Offset;
pub use options::Options;
pub use registry::{get_options, init, models, register, ModelFactory, RegisterFlags, Registry};

/// Seeds libtorch's global generator, which model initialisation draws from.
pub fn manual_seed(seed: u64) {
    tch::manual_seed(seed as i64);
}
