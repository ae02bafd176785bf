//! The samplers against the reference's rules (its `cebra.distributions` and single-session loaders):
//! offsets, nearest-neighbour positives, same-label positives, the priors, the full batch; and
//! reproducibility from a seed.
use cebra::train::{window_starts, Conditional, Labels, LoaderKind, Sampler};

const T: usize = 400;

fn labels_2d() -> Vec<f32> {
    (0..T).flat_map(|t| [(t as f32 * 0.05).sin(), (t as f32 * 0.031).cos() * 2.0]).collect()
}

fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The minimum squared distance from `q` to any label among `times`.
fn min_dist(labels: &[f32], dims: usize, q: &[f32], times: impl Iterator<Item = usize>) -> f32 {
    times.map(|t| sq_dist(&labels[t * dims..(t + 1) * dims], q)).fold(f32::INFINITY, f32::min)
}

#[test]
fn time_contrastive_positives_are_offset_and_the_prior_leaves_room() {
    for offset in [1, 5] {
        let mut s = Sampler::new(T, &Labels::none(), Conditional::TimeDelta, offset, None, false, 1).unwrap();
        assert_eq!(s.kind(), LoaderKind::Continuous);
        for _ in 0..20 {
            let b = s.mini_batch(64);
            for (r, p) in b.reference.iter().zip(&b.positive) {
                assert_eq!(*p, r + offset as i64);
                assert!((0..(T - offset) as i64).contains(r));
            }
            assert!(b.negative.iter().all(|n| (0..(T - offset) as i64).contains(n)));
        }
    }
}

#[test]
fn time_delta_positives_are_nearest_neighbours_of_a_shifted_reference_label() {
    let y = labels_2d();
    let offset = 3;
    let delta: Vec<[f32; 2]> = (0..T)
        .map(|t| if t < offset { [0.0, 0.0] } else { [y[2 * t] - y[2 * (t - offset)], y[2 * t + 1] - y[2 * (t - offset) + 1]] })
        .collect();
    let mut s = Sampler::new(T, &Labels::continuous(y.clone(), 2), Conditional::TimeDelta, offset, None, false, 2).unwrap();
    let b = s.mini_batch(40);
    for (&r, &p) in b.reference.iter().zip(&b.positive) {
        // Some k gives a query whose nearest label is p's, at p's distance.
        let ok = delta.iter().any(|d| {
            let q = [y[2 * r as usize] + d[0], y[2 * r as usize + 1] + d[1]];
            let best = min_dist(&y, 2, &q, 0..T);
            sq_dist(&y[2 * p as usize..2 * p as usize + 2], &q) == best
        });
        assert!(ok, "positive {p} of reference {r} is no nearest neighbour of any y[r] + Δ[k]");
    }
    // References and negatives cover the whole recording (prior uniform over [0, T)).
    let mut seen = vec![false; T];
    for _ in 0..100 {
        for i in s.mini_batch(64).reference {
            seen[i as usize] = true;
        }
    }
    assert!(seen[T - 1] && seen[0]);
}

#[test]
fn delta_positives_stay_near_the_reference_label() {
    let y: Vec<f32> = (0..T).map(|t| t as f32 / T as f32).collect();
    for std in [0.01, 0.1] {
        let mut s = Sampler::new(T, &Labels::continuous(y.clone(), 1), Conditional::Delta, 1, Some(std), false, 3).unwrap();
        let b = s.mini_batch(2000);
        let mean_sq: f64 =
            b.reference.iter().zip(&b.positive).map(|(&r, &p)| ((y[p as usize] - y[r as usize]) as f64).powi(2)).sum::<f64>()
                / 2000.0;
        // Away from the edges the label difference is Normal(0, std²) up to the label grid (1/T).
        assert!((mean_sq.sqrt() - std).abs() < 0.25 * std + 1.0 / T as f64, "std {std}: rms {}", mean_sq.sqrt());
    }
}

#[test]
fn discrete_positives_share_the_label_and_the_prior_is_empirical() {
    let classes: Vec<i64> = (0..T).map(|t| if t < 300 { 0 } else if t < 350 { 3 } else { 1 }).collect();
    let mut s = Sampler::new(T, &Labels::discrete(classes.clone()), Conditional::TimeDelta, 1, None, false, 4).unwrap();
    assert_eq!(s.kind(), LoaderKind::Discrete);
    let mut zeros = 0;
    let mut total = 0;
    for _ in 0..50 {
        let b = s.mini_batch(100);
        for (&r, &p) in b.reference.iter().zip(&b.positive) {
            assert_eq!(classes[r as usize], classes[p as usize]);
        }
        zeros += b.reference.iter().chain(&b.negative).filter(|&&i| classes[i as usize] == 0).count();
        total += 200;
    }
    let share = zeros as f64 / total as f64;
    assert!((share - 0.75).abs() < 0.03, "class 0 is 75% of the steps, drawn {share}");
}

#[test]
fn mixed_positives_share_the_label_and_are_nearest_within_it() {
    let y = labels_2d();
    let classes: Vec<i64> = (0..T).map(|t| ((t / 7) % 3) as i64).collect();
    let labels = Labels::continuous(y.clone(), 2).with_discrete(classes.clone());
    let mut s = Sampler::new(T, &labels, Conditional::TimeDelta, 1, None, false, 5).unwrap();
    assert_eq!(s.kind(), LoaderKind::Mixed);
    let b = s.mini_batch(30);
    for (&r, &p) in b.reference.iter().zip(&b.positive) {
        let c = classes[r as usize];
        assert_eq!(classes[p as usize], c);
        let ok = (0..T).any(|k| {
            let d = if k < 1 { [0.0, 0.0] } else { [y[2 * k] - y[2 * (k - 1)], y[2 * k + 1] - y[2 * (k - 1) + 1]] };
            let q = [y[2 * r as usize] + d[0], y[2 * r as usize + 1] + d[1]];
            let best = min_dist(&y, 2, &q, (0..T).filter(|&t| classes[t] == c));
            sq_dist(&y[2 * p as usize..2 * p as usize + 2], &q) == best
        });
        assert!(ok, "positive {p} of reference {r}");
    }
    // The prior is class-balanced: with unequal classes each is drawn about a third of the time.
    let unequal: Vec<i64> = (0..T).map(|t| if t < 320 { 0 } else if t < 360 { 1 } else { 2 }).collect();
    let mut s = Sampler::new(T, &Labels::continuous(y, 2).with_discrete(unequal.clone()), Conditional::TimeDelta, 1, None, false, 6)
        .unwrap();
    let mut counts = [0usize; 3];
    for _ in 0..30 {
        let b = s.mini_batch(200);
        for i in b.reference.iter().chain(&b.negative) {
            counts[unequal[*i as usize] as usize] += 1;
        }
    }
    for c in counts {
        assert!((c as f64 / 12000.0 - 1.0 / 3.0).abs() < 0.03, "{counts:?}");
    }
}

#[test]
fn hybrid_batches_hold_behaviour_then_time_positives() {
    let y: Vec<f32> = (0..T).map(|t| (t as f32 * 0.02).sin()).collect();
    let mut s = Sampler::new(T, &Labels::continuous(y, 1), Conditional::TimeDelta, 2, None, true, 7).unwrap();
    assert_eq!(s.kind(), LoaderKind::Hybrid);
    let b = s.mini_batch(50);
    assert_eq!(b.positive.len(), 100);
    for (i, &r) in b.reference.iter().enumerate() {
        assert!((0..(T - 2) as i64).contains(&r));
        assert_eq!(b.positive[50 + i], r + 2);
    }
}

#[test]
fn full_batch_uses_every_valid_reference_in_order() {
    let y: Vec<f32> = (0..T).map(|t| (t as f32 * 0.02).sin()).collect();
    let mut s = Sampler::new(T, &Labels::continuous(y, 1), Conditional::TimeDelta, 1, None, false, 8).unwrap();
    // Offset (5, 5): references 5 .. T - 10 - 1.
    let b = s.full_batch(5, 10).unwrap();
    assert_eq!(b.reference, (5..(T as i64 - 11)).collect::<Vec<_>>());
    let mut sorted = b.negative.clone();
    sorted.sort();
    assert_eq!(sorted, b.reference);
    assert_ne!(b.negative, b.reference);
    assert!(s.full_batch(200, 199).is_err());
    let mut d = Sampler::new(T, &Labels::discrete(vec![0; T]), Conditional::TimeDelta, 1, None, false, 8).unwrap();
    assert!(d.full_batch(5, 10).unwrap_err().to_string().contains("batch_size"));
}

#[test]
fn sampling_is_reproducible_from_the_seed() {
    let y = labels_2d();
    let classes: Vec<i64> = (0..T).map(|t| (t % 4) as i64).collect();
    for labels in [Labels::none(), Labels::continuous(y.clone(), 2), Labels::discrete(classes.clone()), Labels::continuous(y, 2).with_discrete(classes)] {
        let draw = |seed| {
            let mut s = Sampler::new(T, &labels, Conditional::TimeDelta, 1, None, false, seed).unwrap();
            (0..3).map(|_| s.mini_batch(32)).collect::<Vec<_>>()
        };
        assert_eq!(draw(11), draw(11));
        assert_ne!(draw(11), draw(12));
    }
}

#[test]
fn windows_are_clamped_at_the_edges() {
    // T = 20, Offset(5, 5): index 0 → window 0..9 (as index 5), 7 → 2..11, 19 → 10..19.
    assert_eq!(window_starts(&[0, 5, 7, 15, 19], 5, 5, 20), vec![0, 0, 2, 10, 10]);
    // Offset (0, 1): every index is its own window.
    assert_eq!(window_starts(&[0, 19], 0, 1, 20), vec![0, 19]);
}

#[test]
fn bad_sampler_input_is_refused() {
    let e = |r: cebra::Result<Sampler>| r.unwrap_err().to_string();
    assert!(e(Sampler::new(10, &Labels::none(), Conditional::Time, 10, None, false, 0)).contains("time_offsets"));
    assert!(e(Sampler::new(10, &Labels::none(), Conditional::Time, 0, None, false, 0)).contains("time_offsets"));
    assert!(e(Sampler::new(10, &Labels::continuous(vec![0.0; 9], 1), Conditional::TimeDelta, 1, None, false, 0)).contains("continuous labels"));
    assert!(e(Sampler::new(10, &Labels::continuous(vec![f32::NAN; 10], 1), Conditional::TimeDelta, 1, None, false, 0)).contains("finite"));
    assert!(e(Sampler::new(10, &Labels::continuous(vec![0.0; 10], 1), Conditional::Delta, 1, Some(-1.0), false, 0)).contains("delta"));
    assert!(e(Sampler::new(10, &Labels::discrete(vec![0; 10]), Conditional::TimeDelta, 1, None, true, 0)).contains("hybrid"));
}
