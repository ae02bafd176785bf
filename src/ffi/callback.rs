//! Models implemented by the caller (C, MATLAB, Julia), registered by name.
use super::*;
use crate::error::Result as CoreResult;
use crate::model::{Architecture, Model, ModelArgs};
use crate::offset::Offset;
use crate::registry::{ModelFactory, RegisterFlags};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tch::Tensor;

/// Forward of a caller-implemented model: reads `input` `(batch, num_input, time)`, writes `output`
/// `(batch, num_output, out_time)`; returns 0 on success.
pub type CebraForwardFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        input: *const f32,
        batch: i64,
        num_input: i64,
        time: i64,
        output: *mut f32,
        num_output: i64,
        out_time: i64,
    ) -> i32,
>;

/// Releases the `user_data` of a registration.
pub type CebraFreeFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// One registration: shared by the registry entry and every model built from it, so `free_user_data`
/// runs exactly once, when the last of them is gone.
struct Registration {
    name: String,
    offset: Offset,
    forward: unsafe extern "C" fn(*mut c_void, *const f32, i64, i64, i64, *mut f32, i64, i64) -> i32,
    user_data: *mut c_void,
    free_user_data: CebraFreeFn,
    /// False until the registration succeeded: a failed registration leaves `user_data` to the caller.
    owns_user_data: AtomicBool,
}

// SAFETY: the caller promises (header documentation) that its callbacks and `user_data` may be used
// from any thread; everything else in a Registration is owned Rust data.
unsafe impl Send for Registration {}
// SAFETY: as for Send; shared access only reads the fields (the atomic flag is synchronised).
unsafe impl Sync for Registration {}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.owns_user_data.load(Ordering::SeqCst)
            && let Some(free) = self.free_user_data
        {
            // SAFETY: the registration owns `user_data` and this Drop runs once, when the last
            // holder (registry entry or model) is gone; the caller's function releases it.
            unsafe { free(self.user_data) };
        }
    }
}

struct CallbackModel {
    registration: Arc<Registration>,
    architecture: Architecture,
}

impl Model for CallbackModel {
    fn architecture(&self) -> &Architecture {
        &self.architecture
    }
    fn offset(&self) -> Offset {
        self.registration.offset
    }
    fn num_input(&self) -> i64 {
        self.architecture.args.num_neurons
    }
    fn num_output(&self) -> i64 {
        self.architecture.args.num_output
    }
    fn is_convolutional(&self) -> bool {
        true
    }
    fn output_time(&self, time: i64) -> CoreResult<i64> {
        crate::model::check_receptive_field(&self.architecture.name, self.registration.offset, time)?;
        Ok(time - self.registration.offset.len() + 1)
    }
    fn forward(&self, input: &Tensor) -> CoreResult<Tensor> {
        let size = input.size();
        if size.len() != 3 || size[1] != self.num_input() {
            return Err(Error::ShapeMismatch(format!(
                "model '{}' takes a (batch, {}, time) input, got shape {size:?}",
                self.architecture.name,
                self.num_input()
            )));
        }
        let (batch, time) = (size[0], size[2]);
        let out_time = self.output_time(time)?;
        let x = input.f_to_kind(tch::Kind::Float)?.f_contiguous()?;
        let mut data = vec![0f32; x.numel()];
        let count = data.len();
        x.f_copy_data(&mut data, count)?;
        let num_output = self.num_output();
        let mut out = vec![0f32; (batch * num_output * out_time) as usize];
        // SAFETY: the input holds batch*num_input*time floats and the output batch*num_output*out_time,
        // as the callback is told; `user_data` is the caller's, valid while the registration lives.
        let code = unsafe {
            (self.registration.forward)(
                self.registration.user_data,
                data.as_ptr(),
                batch,
                self.num_input(),
                time,
                out.as_mut_ptr(),
                num_output,
                out_time,
            )
        };
        if code != 0 {
            return Err(Error::CallbackFailed(format!(
                "the forward callback of model '{}' returned {code}",
                self.registration.name
            )));
        }
        let y = Tensor::f_from_slice(&out)?;
        Ok(if out_time == 1 { y.f_reshape([batch, num_output])? } else { y.f_reshape([batch, num_output, out_time])? })
    }
    fn forward_train(&self, _input: &Tensor) -> CoreResult<Tensor> {
        Err(Error::Unsupported(format!(
            "model '{}' is a callback model, for inference only: it cannot be trained",
            self.architecture.name
        )))
    }
    // A callback model has no weights: its state dict is empty, and loading accepts only an empty one
    // (any tensor is reported as unexpected by the shared check).
    fn parameters(&self) -> Vec<Tensor> {
        Vec::new()
    }
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    fn load_state_dict(&mut self, tensors: &[(String, Tensor)]) -> CoreResult<()> {
        crate::model::check_state_dict(&[], tensors)
    }
    // No dropout to switch: training mode is not recorded, and the model reports inference mode.
    fn set_training(&mut self, _training: bool) {}
    fn is_training(&self) -> bool {
        false
    }
}

/// Registers a model implemented by the caller under `name`. `cebra_model_init(name, …)` then gives a
/// model whose forward calls `forward` with `num_input = num_neurons`, the model's `num_output` and
/// `out_time = time - (offset_left + offset_right) + 1` (`num_units` and options are ignored).
/// `free_user_data` (may be NULL) runs exactly once, when the registration and every model created from
/// it are gone; if registration fails it is not called. `flags`: `CEBRA_REGISTER_OVERRIDE`,
/// `CEBRA_REGISTER_DEPRECATED`. Callbacks may be called from any thread; models are inference-only.
///
/// # Safety
/// `name` is NULL or NUL-terminated; `forward` (and `free_user_data`, if given) are functions with the
/// documented signatures that may be called from any thread with `user_data`, until `free_user_data`
/// has run.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_register_callback(
    name: *const c_char,
    offset_left: i64,
    offset_right: i64,
    forward: CebraForwardFn,
    user_data: *mut c_void,
    free_user_data: CebraFreeFn,
    flags: u32,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `name` is NULL or NUL-terminated (contract above).
        let name = unsafe { c_str(name, "name") }?;
        let forward = forward.ok_or(FfiError::NullPointer("forward"))?;
        if flags & !(CEBRA_REGISTER_OVERRIDE | CEBRA_REGISTER_DEPRECATED) != 0 {
            return Err(Error::InvalidArgument(format!("unknown bits in 'flags': {flags:#x}")).into());
        }
        let offset = Offset::new(offset_left, offset_right)?;
        let registration = Arc::new(Registration {
            name: name.to_string(),
            offset,
            forward,
            user_data,
            free_user_data,
            owns_user_data: AtomicBool::new(true),
        });
        let captured = registration.clone();
        let factory: ModelFactory = Arc::new(move |name: &str, args: &ModelArgs| -> CoreResult<Box<dyn Model>> {
            for (value, what) in [(args.num_neurons, "num_neurons"), (args.num_output, "num_output")] {
                if value < 1 {
                    return Err(Error::InvalidArgument(format!("'{what}' must be at least 1, got {value}")));
                }
            }
            Ok(Box::new(CallbackModel {
                registration: captured.clone(),
                architecture: Architecture { name: name.to_string(), args: args.clone() },
            }))
        });
        let flags = RegisterFlags {
            override_existing: flags & CEBRA_REGISTER_OVERRIDE != 0,
            deprecated: flags & CEBRA_REGISTER_DEPRECATED != 0,
        };
        if let Err(e) = crate::registry::register(name, factory, flags) {
            // The registry dropped its copy; ours is the last, and must not free the caller's data.
            registration.owns_user_data.store(false, Ordering::SeqCst);
            return Err(e.into());
        }
        Ok(())
    })
}
