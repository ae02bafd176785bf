//! No heap allocation in `Stream::push` (the compiled path) after the first push: a counting global
//! allocator counts this thread's allocations while pushing.
use cebra::stream::Stream;
use cebra::ModelArgs;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, Mutex};

struct Counting;

// Per thread: tests run in parallel, each counts its own thread's allocations.
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn push_does_not_allocate() {
    // The counter works.
    assert!(count_during(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
    for name in ["offset10-model", "offset36-model-more-dropout", "offset1-model-mse-resnet-3layers-tanh", "offset1-model-mse-clip-5-5"] {
        let model = cebra::init(name, &ModelArgs::new(120, 32, 8)).unwrap();
        let mut stream = Stream::new(Arc::new(Mutex::new(model))).unwrap();
        assert!(stream.is_compiled());
        let sample: Vec<f32> = (0..120).map(|i| (i as f32 * 0.1).sin()).collect();
        let mut e = [0f32; 8];
        stream.push(&sample, &mut e).unwrap();
        let mut ready = 0;
        let n = count_during(|| {
            for _ in 0..1000 {
                ready += stream.push(&sample, &mut e).unwrap() as usize;
            }
            stream.reset();
            stream.push(&sample, &mut e).unwrap();
        });
        assert!(ready > 900);
        assert_eq!(n, 0, "{name}: {n} allocations in 1001 pushes");
    }
}

#[test]
fn c_push_does_not_allocate() {
    use cebra::ffi::*;
    let mut model: *mut CebraModel = std::ptr::null_mut();
    let mut stream: *mut CebraStream = std::ptr::null_mut();
    // SAFETY: valid pointers to locals and NUL-terminated strings; handles freed below.
    unsafe {
        assert_eq!(cebra_model_init(c"offset10-model".as_ptr(), 120, 32, 8, std::ptr::null(), &mut model), CEBRA_STATUS_OK);
        assert_eq!(cebra_stream_new(model, &mut stream), CEBRA_STATUS_OK);
        cebra_model_free(model); // the stream keeps the model alive
        let sample: Vec<f32> = (0..120).map(|i| (i as f32 * 0.1).cos()).collect();
        let mut e = [0f32; 8];
        let mut ready = 0u8;
        assert_eq!(cebra_stream_push(stream, sample.as_ptr(), 120, e.as_mut_ptr(), 8, &mut ready), CEBRA_STATUS_OK);
        let mut ready_count = 0;
        let n = count_during(|| {
            for _ in 0..1000 {
                assert_eq!(cebra_stream_push(stream, sample.as_ptr(), 120, e.as_mut_ptr(), 8, &mut ready), CEBRA_STATUS_OK);
                ready_count += ready as usize;
            }
        });
        assert!(ready_count > 900);
        assert_eq!(n, 0, "{n} allocations in 1000 cebra_stream_push calls");
        cebra_stream_free(stream);
    }
}
