//! The model registry over C: listing and unregistering (registration of C models is in `callback`).
use super::*;

/// Registered model names matching `pattern` (glob with `*`, `?`, `[seq]`; NULL = all), in registration
/// order, at most `limit` (0 = no limit), joined by `'\n'` and NUL-terminated. `*needed` (may be NULL)
/// receives the byte count including the NUL, also when the buffer is too small; `buf` NULL with
/// `buf_len` 0 is a pure size query. With `expand_parametrized == 0` each parametrized family is listed
/// once, by its first expansion.
///
/// # Safety
/// `pattern` is NULL or NUL-terminated; `buf` is NULL or holds `buf_len` writable bytes; `needed` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_get_options(
    pattern: *const c_char,
    limit: usize,
    expand_parametrized: u8,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `pattern` is NULL or NUL-terminated (contract above).
        let pattern = unsafe { optional_c_str(pattern, "pattern") }?;
        let names = crate::registry::get_options(pattern, listing_limit(limit), expand_parametrized != 0);
        // SAFETY: `buf`/`needed` as in the contract above.
        unsafe { write_name_list(&names, buf, buf_len, needed) }
    })
}

/// Removes a registered name (a reference model or a C callback model). Models already built from it
/// keep working.
///
/// # Safety
/// `name` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_unregister(name: *const c_char) -> CebraStatus {
    boundary(|| {
        // SAFETY: `name` is NULL or NUL-terminated (contract above).
        let name = unsafe { c_str(name, "name") }?;
        crate::registry::models().unregister(name)?;
        Ok(())
    })
}
