//! A successful C call allocates nothing in the error machinery: clearing the thread's last error
//! reuses its buffer. (The streaming path relies on it: a push must not touch the heap.)
use cebra::ffi::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counts allocations made while `COUNTING` is on (this test binary runs its one test alone).
struct CountingAllocator;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the counters are atomics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout is passed on as GlobalAlloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for alloc/dealloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn counted(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst)
}

#[test]
fn successful_calls_do_not_allocate_even_after_a_failure() {
    let mut model: *mut CebraModel = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated name, NULL options, writable out-pointer.
    let status = unsafe { cebra_model_init(c"offset10-model".as_ptr(), 7, 12, 3, std::ptr::null(), &mut model) };
    assert_eq!(status, CEBRA_STATUS_OK);
    let (mut left, mut right, mut num_input) = (0i64, 0i64, 0i64);
    // SAFETY (all calls below): `model` is a live handle and the out-pointers are writable locals.
    let call = |left: &mut i64, right: &mut i64, num_input: &mut i64| unsafe {
        assert_eq!(cebra_model_get_offset(model, left, right), CEBRA_STATUS_OK);
        assert_eq!(cebra_model_num_input(model, num_input), CEBRA_STATUS_OK);
    };
    call(&mut left, &mut right, &mut num_input); // warm-up: thread-locals, panic hook
    assert!(counted(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0, "the counter counts");
    assert_eq!(counted(|| (0..1000).for_each(|_| call(&mut left, &mut right, &mut num_input))), 0);
    // A failure stores a message; the next success clears it in place.
    // SAFETY: NULL out-pointer is reported, not written.
    assert_eq!(unsafe { cebra_model_num_input(model, std::ptr::null_mut()) }, CEBRA_STATUS_NULL_POINTER);
    assert_ne!(unsafe { *cebra_last_error() }, 0);
    assert_eq!(counted(|| call(&mut left, &mut right, &mut num_input)), 0);
    // SAFETY: the pointer is valid until the next cebra_* call on this thread.
    assert_eq!(unsafe { *cebra_last_error() }, 0, "success leaves the last error empty");
    assert_eq!((left, right, num_input), (5, 5, 7));
    // SAFETY: live handle, freed once.
    unsafe { cebra_model_free(model) };
}
