//! Offset index lookups on a full segment's index: 1 GiB at one entry per 4 KiB.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice::storage::offset_index::OffsetIndex;
use sluice::types::Offset;

const ENTRIES: u64 = 262_144;
const INTERVAL_BYTES: u64 = 4096;
/// Offsets covered by one index entry (4 KiB of ~512-byte records).
const OFFSETS_PER_ENTRY: u64 = 8;
const BASE: i64 = 1_000_000;
/// Pre-drawn targets, cycled through so the loop measures the lookup, not the RNG.
const TARGETS: usize = 1 << 16;

fn full_segment_index() -> OffsetIndex {
    let mut index = OffsetIndex::new(Offset(BASE));
    for entry in 0..ENTRIES {
        let offset = Offset(BASE + (entry * OFFSETS_PER_ENTRY) as i64);
        let position = u32::try_from(entry * INTERVAL_BYTES).expect("under 4 GiB");
        index.append(offset, position);
    }
    index
}

fn lookup(c: &mut Criterion) {
    let index = full_segment_index();
    assert_eq!(index.len() as u64, ENTRIES);
    let mut rng = StdRng::seed_from_u64(0x51_1ce);
    let span = (ENTRIES * OFFSETS_PER_ENTRY) as i64;
    let targets: Vec<Offset> = (0..TARGETS)
        .map(|_| Offset(BASE + rng.random_range(0..span)))
        .collect();

    let mut group = c.benchmark_group("offset_index");
    group.throughput(Throughput::Elements(1));
    group.bench_function("lookup_random_262144", |b| {
        let mut next = 0usize;
        b.iter(|| {
            let target = targets[next];
            next = (next + 1) & (TARGETS - 1);
            index.lookup(black_box(target)).expect("target is indexed")
        });
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
