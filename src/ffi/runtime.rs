//! Runtime settings.
use super::*;

/// Seeds the generator that model initialisation (and dropout) draw from.
#[unsafe(no_mangle)]
pub extern "C" fn cebra_manual_seed(seed: u64) -> CebraStatus {
    boundary(|| {
        crate::manual_seed(seed);
        Ok(())
    })
}

/// Sets the number of threads libtorch uses for intra-op parallelism (at least 1).
#[unsafe(no_mangle)]
pub extern "C" fn cebra_set_num_threads(n: i32) -> CebraStatus {
    boundary(|| {
        positive(n as i64, "n")?;
        tch::set_num_threads(n);
        Ok(())
    })
}

/// 1 when a CUDA device can be used, else 0.
#[unsafe(no_mangle)]
pub extern "C" fn cebra_cuda_is_available() -> u8 {
    std::panic::catch_unwind(tch::Cuda::is_available).unwrap_or(false) as u8
}
