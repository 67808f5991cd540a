//! Record batch validation (header checks + CRC32C) and raw CRC32C throughput.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::record::builder::build_filler_batch;
use sluice::record::validate_batch;

/// (label, target batch size, records in the batch): about 1 KiB per record.
const SIZES: [(&str, usize, usize); 3] = [
    ("1KiB", 1 << 10, 1),
    ("16KiB", 16 << 10, 16),
    ("1MiB", 1 << 20, 1024),
];

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_batch");
    for (label, size, count) in SIZES {
        let batch = build_filler_batch(size, count, 1_700_000_000_000);
        validate_batch(&batch).expect("the filler batch is valid");
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &batch, |b, batch| {
            b.iter(|| validate_batch(black_box(batch)).expect("valid"));
        });
    }
    group.finish();
}

fn crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc32c");
    for (label, size, count) in SIZES {
        let batch = build_filler_batch(size, count, 1_700_000_000_000);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &batch, |b, batch| {
            b.iter(|| crc32c::crc32c(black_box(batch)));
        });
    }
    group.finish();
}

criterion_group!(benches, validate, crc);
criterion_main!(benches);
