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

fn bench_label(c: &mut Criterion) {
    use torchvox_core::label::{components, labels_to_image, one_hot};
    let labels = Array4::from_shape_fn((1, 128, 128, 128), |(_, i, j, k)| {
        (((i / 9) ^ (j / 7) ^ (k / 5)) % 4) as i64
    });
    c.bench_function("one_hot 1x128^3 i64 4 classes", |b| {
        b.iter(|| parallel::install(|| one_hot::one_hot(labels.view(), None)))
    });
    c.bench_function("keep_largest_component 1x128^3 i64", |b| {
        b.iter(|| {
            parallel::install(|| {
                components::keep_largest_component(
                    labels.view(),
                    components::Connectivity::Face,
                    components::ScanOrder::Fortran,
                )
            })
        })
    });
    let roles: Vec<(f64, labels_to_image::LabelRole)> = (0..4)
        .map(|l| {
            (
                l as f64,
                labels_to_image::LabelRole::Tissue {
                    mean: 0.2 * l as f32,
                    std: 0.05,
                },
            )
        })
        .collect();
    c.bench_function("labels_to_image 1x128^3 i64 4 labels", |b| {
        b.iter(|| {
            parallel::install(|| {
                labels_to_image::labels_to_image_discrete(labels.view(), &roles, None, 7)
            })
        })
    });
}

fn bench_crop_pad_statistics_rescale(c: &mut Criterion) {
    use torchvox_core::intensity::{rescale, statistics};
    use torchvox_core::spatial::crop_pad::{crop_pad, PadMode};
    // Scrambled values, so selection and histogram work on unordered data.
    let v = Array4::from_shape_fn((1, 128, 128, 128), |(_, i, j, k)| {
        (((i * 73_856_093) ^ (j * 19_349_663) ^ (k * 83_492_791)) % 10_007) as f32 * 0.1
    });
    c.bench_function("crop_pad 1x128^3 f32 -> 144x112x128 reflect", |b| {
        b.iter(|| {
            parallel::install(|| crop_pad(v.view(), [-8, 8, 0], [144, 112, 128], PadMode::Reflect))
        })
    });
    let request = statistics::StatisticsRequest {
        percentiles: vec![0.5, 50.0, 99.5],
        histogram: Some(statistics::HistogramRequest {
            num_bins: 100,
            range: None,
        }),
    };
    c.bench_function(
        "statistics 1x128^3 f32 + 3 percentiles + 100-bin histogram",
        |b| {
            b.iter(|| {
                parallel::install(|| statistics::statistics::<f32, u8>(v.view(), None, &request))
            })
        },
    );
    let params = rescale::RescaleParams {
        in_min: 10.0,
        in_max: 900.0,
        out_min: -1.0,
        out_max: 1.0,
        clip_min: Some(10.0),
        clip_max: Some(900.0),
    };
    c.bench_function("rescale 1x128^3 f32 with clip", |b| {
        b.iter(|| parallel::install(|| rescale::rescale(v.view(), &params)))
    });
}

fn bench_warp(c: &mut Criterion) {
    use torchvox_core::affine::IDENTITY;
    use torchvox_core::spatial::{bspline, interpolation::Interpolation, warp};
    let v = volume();
    let mut rotation = IDENTITY;
    let (s, co) = (0.2f64.sin(), 0.2f64.cos());
    rotation[0][0] = co;
    rotation[0][1] = -s;
    rotation[1][0] = s;
    rotation[1][1] = co;
    let grid = warp::Grid {
        shape: [128, 128, 128],
        affine: IDENTITY,
    };
    // A ball of radius 40 on zeros (about a quarter of the volume, like a
    // skull-stripped brain): steps reading only zeros skip their gather.
    let ball = Array4::from_shape_fn((1, 128, 128, 128), |(_, i, j, k)| {
        let r2 = [i, j, k]
            .iter()
            .map(|&x| (x as f64 - 63.5).powi(2))
            .sum::<f64>();
        if r2 < 1600.0 {
            (i * 7 + j * 3 + k) as f32
        } else {
            0.0
        }
    });
    let cases = [
        (&v, Interpolation::Nearest, ""),
        (&v, Interpolation::Linear, ""),
        (&v, Interpolation::BSpline, ""),
        (&ball, Interpolation::Linear, ", ball on zeros"),
    ];
    for (input, mode, what) in cases {
        c.bench_function(&format!("warp affine 1x128^3 f32 {mode:?}{what}"), |b| {
            b.iter(|| {
                parallel::install(|| {
                    warp::warp(
                        input.view(),
                        &IDENTITY,
                        &grid,
                        &[warp::Step::Affine(rotation)],
                        mode,
                        &[0.0],
                    )
                })
            })
        });
    }
    // Ten 64^3 boxes, as a queue samples patches: about half the grid.
    let boxes: Vec<[usize; 6]> = (0..10)
        .map(|n| {
            let [i, j, k] = [(n * 37) % 65, (n * 23) % 65, (n * 53) % 65];
            [i, j, k, i + 64, j + 64, k + 64]
        })
        .collect();
    if let Ok(regions) = torchvox_core::regions::Regions::from_boxes(grid.shape, &boxes) {
        c.bench_function("warp affine 1x128^3 f32 Linear, ten 64^3 boxes", |b| {
            b.iter(|| {
                parallel::install(|| {
                    warp::warp_regions(
                        v.view(),
                        &IDENTITY,
                        &grid,
                        &[warp::Step::Affine(rotation)],
                        Interpolation::Linear,
                        &[0.0],
                        Some(&regions),
                    )
                })
            })
        });
    }
    let points = ndarray::Array4::from_shape_fn((7, 7, 7, 3), |(a, b, c, d)| {
        ((a * 5 + b * 3 + c + d) % 7) as f64 - 3.0
    });
    c.bench_function("bspline_field 7^3 -> 128^3", |b| {
        b.iter(|| parallel::install(|| bspline::bspline_field(points.view(), [128, 128, 128])))
    });
    if let Ok(field) = parallel::install(|| bspline::bspline_field(points.view(), [128, 128, 128]))
    {
        c.bench_function("warp field 1x128^3 f32 linear", |b| {
            let chain = [warp::Step::Field {
                field: field.view(),
                affine: IDENTITY,
            }];
            b.iter(|| {
                parallel::install(|| {
                    warp::warp(
                        v.view(),
                        &IDENTITY,
                        &grid,
                        &chain,
                        Interpolation::Linear,
                        &[0.0],
                    )
                })
            })
        });
    }
}

fn bench_patches(c: &mut Criterion) {
    use torchvox_core::patches::{aggregate, extract, sampling};
    let v = volume();
    let starts: Vec<[usize; 3]> = (0..8).map(|n| [n * 4, n * 3, n * 2]).collect();
    c.bench_function("extract_patches 8 x 64^3 from 1x128^3 f32", |b| {
        b.iter(|| parallel::install(|| extract::extract_patches(v.view(), &starts, [64, 64, 64])))
    });
    let map = v.index_axis(ndarray::Axis(0), 0).to_owned();
    let uniforms: Vec<f64> = (0..10).map(|n| n as f64 / 10.0).collect();
    c.bench_function("sample_centres 10 draws 128^3 f32 map", |b| {
        b.iter(|| {
            parallel::install(|| sampling::sample_centres(map.view(), [32, 32, 32], &uniforms))
        })
    });
    let locations: Vec<[i64; 6]> = starts
        .iter()
        .map(|s| {
            [
                s[0] as i64,
                s[1] as i64,
                s[2] as i64,
                s[0] as i64 + 64,
                s[1] as i64 + 64,
                s[2] as i64 + 64,
            ]
        })
        .collect();
    let patches = parallel::install(|| extract::extract_patches(v.view(), &starts, [64, 64, 64]));
    let grid = aggregate::Grid {
        overlap: [16; 3],
        padded: false,
        downsampling_factor: 1,
    };
    let mut out = Array4::<f32>::zeros((1, 128, 128, 128));
    let mut weights = Array4::<f32>::zeros((1, 128, 128, 128));
    if let Ok(patches) = patches {
        c.bench_function("aggregate hann 8 x 64^3 into 128^3 f32", |b| {
            b.iter(|| {
                parallel::install(|| {
                    aggregate::add_batch(
                        out.view_mut(),
                        Some(weights.view_mut()),
                        patches.view(),
                        &locations,
                        aggregate::OverlapMode::Hann,
                        grid,
                    )
                })
            })
        });
    }
}

fn bench_kspace_intensity_filter(c: &mut Criterion) {
    use torchvox_core::filter::gaussian;
    use torchvox_core::intensity::{bias_field, gamma, noise};
    use torchvox_core::kspace::{ghosting, motion, spike};
    let v = Array4::from_shape_fn((1, 128, 128, 128), |(_, i, j, k)| {
        (((i * 73_856_093) ^ (j * 19_349_663) ^ (k * 83_492_791)) % 1009) as f32
    });
    for axis in [0, 2] {
        c.bench_function(&format!("ghosting 1x128^3 f32 axis {axis}"), |b| {
            b.iter(|| parallel::install(|| ghosting::ghosting(v.view(), 6, axis, 0.8, None)))
        });
    }
    c.bench_function("spike 1x128^3 f32 1 spike", |b| {
        b.iter(|| parallel::install(|| spike::spike(v.view(), &[[10, 70, 100]], 1.5, false)))
    });
    c.bench_function(
        "motion segments 1x128^3 f32 3 sources (no resampling)",
        |b| {
            let copies = [v.view(), v.view()];
            b.iter(|| {
                parallel::install(|| motion::motion(v.view(), &copies, &[40, 80, 128], &[1, 0, 2]))
            })
        },
    );
    let coefficients: Vec<f64> = (0..20).map(|t| t as f64 * 0.02 - 0.2).collect();
    c.bench_function("bias_field 1x128^3 f32 order 3", |b| {
        b.iter(|| {
            parallel::install(|| bias_field::apply_bias_field(v.view(), 3, &coefficients, false))
        })
    });
    c.bench_function("gaussian_filter 1x128^3 f32 sigma 1.5", |b| {
        b.iter(|| parallel::install(|| gaussian::gaussian_filter(v.view(), [1.5; 3], 4.0)))
    });
    c.bench_function("noise 1x128^3 f32", |b| {
        b.iter(|| parallel::install(|| noise::add_noise(v.view(), 0.0, 1.0, 7, false)))
    });
    let boxes: Vec<[usize; 6]> = (0..10)
        .map(|n| {
            let [i, j, k] = [(n * 37) % 65, (n * 23) % 65, (n * 53) % 65];
            [i, j, k, i + 64, j + 64, k + 64]
        })
        .collect();
    if let Ok(regions) = torchvox_core::regions::Regions::from_boxes([128, 128, 128], &boxes) {
        let mut noisy = v.clone();
        c.bench_function("noise 1x128^3 f32 in place, ten 64^3 boxes", |b| {
            b.iter(|| {
                parallel::install(|| {
                    noise::add_noise_in_regions(noisy.view_mut(), 0.0, 1.0, 7, false, &regions)
                })
            })
        });
    }
    c.bench_function("gamma 1x128^3 f32", |b| {
        b.iter(|| parallel::install(|| gamma::gamma(v.view(), &[0.8], false)))
    });
}

criterion_group!(
    benches,
    bench_patches,
    bench_warp,
    bench_crop_pad_statistics_rescale,
    bench_flip,
    bench_label,
    bench_kspace_intensity_filter
);
criterion_main!(benches);
