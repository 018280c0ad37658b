//! Criterion benchmarks of the core kernels on volumes sized for 2 cores.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array4;
use torchvox_core::{parallel, spatial};

fn volume() -> Array4<f32> {
    Array4::from_shape_fn((1, 128, 128, 128), |(_, i, j, k)| {
        (i * 7 + j * 3 + k) as f32
    })
}

fn bench_flip(c: &mut Criterion) {
    let v = volume();
    c.bench_function("flip 1x128^3 f32 axes 0,1,2", |b| {
        b.iter(|| parallel::install(|| spatial::flip::flip(v.view(), &[0, 1, 2])))
    });
}

criterion_group!(benches, bench_flip);
criterion_main!(benches);
