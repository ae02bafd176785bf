//! No heap allocation in `Stream::push` (the compiled path) after the first push: a counting global
//! allocator counts this thread's allocations while pushing.
use cebra::stream::Stream;
use cebra::ModelArgs;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
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
