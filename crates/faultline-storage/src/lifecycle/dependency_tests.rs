//! Service dependencies across head cuts, blocks, compaction and restarts: however the spans
//! of a trace were cut into heads, `/api/dependencies` counts what one block holding them all
//! would count.

use std::collections::BTreeMap;
use std::sync::Arc;

use faultline_block::{list_blocks, write_block, BlockInfo};
use faultline_model::query::service_edges;
use faultline_model::{Span, UnixNanos};
use object_store::memory::InMemory;
use object_store::ObjectStore;

use super::tests::{config, root};
use crate::test_util::{batch, calling_trace, span};
use crate::{AckMode, Store, StoreTuning};

const S: u64 = 1_000_000_000;

/// Trace `t` of [`calling_trace`], its own second apart from the others.
fn trace(t: u64) -> Vec<Span> {
    calling_trace(t, 1_700_000_000 * S + t * S)
}

/// What one block holding every span counts.
fn whole(traces: &[Vec<Span>]) -> Vec<(String, String, u64)> {
    let mut e = BTreeMap::new();
    for t in traces {
        service_edges(t, UnixNanos(0), UnixNanos(u64::MAX), &mut e);
    }
    e.into_iter().map(|((p, c), n)| (p, c, n)).collect()
}

async fn deps(store: &Store) -> Vec<(String, String, u64)> {
    store
        .dependencies(UnixNanos(0), UnixNanos(u64::MAX))
        .await
        .unwrap()
}

fn tuning() -> StoreTuning {
    StoreTuning {
        compaction_min_blocks: 2,
        ..StoreTuning::default()
    }
}

/// Appends `heads` in order, flushing after each but the last, checking after every step
/// that the store answers `want` once everything is in, and compacting at the end.
async fn check_cut(heads: Vec<Vec<Span>>, want: &[(String, String, u64)]) {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let open = || Store::open_with(config(dir.path(), Arc::clone(&objects)), tuning());
    let store = open().await.unwrap();
    let n = heads.len();
    for (i, h) in heads.into_iter().enumerate() {
        store.append(batch(h), AckMode::Durable).await.unwrap();
        if i + 1 < n {
            store.flush().await.unwrap();
        }
    }
    // Last head live, then written, then the blocks compacted, then reopened.
    assert_eq!(deps(&store).await, want, "live head");
    store.flush().await.unwrap();
    assert_eq!(store.stats().await.blocks, n as u64);
    assert_eq!(deps(&store).await, want, "all in blocks");
    store.run_maintenance().await.unwrap();
    assert_eq!(store.stats().await.blocks, 1, "compacted");
    assert_eq!(deps(&store).await, want, "compacted");
    store.shutdown().await.unwrap();
    drop(store);
    let store = open().await.unwrap();
    assert_eq!(deps(&store).await, want, "reopened");
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_trace_cut_across_heads_counts_as_in_one_block() {
    let traces: Vec<Vec<Span>> = (1..=3).map(trace).collect();
    let want = whole(&traces);
    assert_eq!(
        want,
        vec![
            ("back".to_owned(), "auth".to_owned(), 3),
            ("back".to_owned(), "postgresql".to_owned(), 3),
            ("front".to_owned(), "back".to_owned(), 3),
        ]
    );
    let pick = |idx: &[usize]| -> Vec<Span> {
        traces
            .iter()
            .flat_map(|t| idx.iter().map(|&i| t[i].clone()))
            .collect()
    };
    // One head.
    check_cut(vec![pick(&[0, 1, 2, 3, 4])], &want).await;
    // Two heads, parents first.
    check_cut(vec![pick(&[0, 1, 2]), pick(&[3, 4])], &want).await;
    // Two heads, children first: every parent arrives after its child.
    check_cut(vec![pick(&[4, 2]), pick(&[0, 1, 3])], &want).await;
    // Three heads: the client call counted as a call to `auth.internal` in the second head,
    // taken back when its callee arrives in the third.
    check_cut(vec![pick(&[1]), pick(&[0, 2, 3]), pick(&[4])], &want).await;
    // Three heads, the callee before its caller and the caller's parent last.
    check_cut(vec![pick(&[4]), pick(&[3, 2]), pick(&[0, 1])], &want).await;
}

#[tokio::test]
async fn callee_in_the_next_head_is_not_also_a_virtual_node() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Arc::new(InMemory::new())))
        .await
        .unwrap();
    let t = trace(1);
    store
        .append(batch(t[..4].to_vec()), AckMode::Durable)
        .await
        .unwrap();
    store.flush().await.unwrap();
    // Until the callee arrives, the call goes to the node its client span names.
    assert!(deps(&store)
        .await
        .contains(&("back".into(), "auth.internal".into(), 1)));
    store
        .append(batch(t[4..].to_vec()), AckMode::Durable)
        .await
        .unwrap();
    let want = whole(&[t]);
    assert_eq!(deps(&store).await, want, "callee in the live head");
    store.flush().await.unwrap();
    assert_eq!(deps(&store).await, want, "callee in the next block");
    // The first block still counts the virtual node; the second takes it back.
    let blocks = list_blocks(store.config.block_store.as_ref(), &root())
        .await
        .unwrap();
    let virtual_edge = ("back".to_owned(), "auth.internal".to_owned());
    let counts: Vec<i64> = blocks
        .iter()
        .map(|b| {
            let mut e = BTreeMap::new();
            b.edges
                .as_ref()
                .unwrap()
                .sum_into(UnixNanos(0), UnixNanos(u64::MAX), &mut e);
            e.get(&virtual_edge).copied().unwrap_or(0)
        })
        .collect();
    assert_eq!(counts, vec![1, -1]);
}

#[tokio::test]
async fn blocks_without_an_edge_table_are_read_and_compacted_into_one() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // Two blocks written by a build before edge tables: each counts only what it holds, so the
    // call from front to back split between them is not counted (as before).
    let t1 = trace(1);
    for (i, part) in [t1[..2].to_vec(), t1[2..].to_vec()].into_iter().enumerate() {
        let info = BlockInfo {
            wal_through: i as u64,
            ..BlockInfo::default()
        };
        let meta = write_block(objects.as_ref(), &root(), part, info, &Default::default())
            .await
            .unwrap();
        assert!(meta.edges.is_none());
    }
    let store = Store::open_with(config(dir.path(), Arc::clone(&objects)), tuning())
        .await
        .unwrap();
    let old = whole(&[t1[..2].to_vec(), t1[2..].to_vec()]);
    assert_eq!(deps(&store).await, old);
    // A new trace in the head, then in a block with a table: both kinds add up.
    store
        .append(batch(trace(2)), AckMode::Durable)
        .await
        .unwrap();
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (p, c, n) in old.iter().cloned().chain(whole(&[trace(2)])) {
        *want.entry((p, c)).or_default() += n;
    }
    let want: Vec<_> = want.into_iter().map(|((p, c), n)| (p, c, n)).collect();
    assert_eq!(deps(&store).await, want);
    store.flush().await.unwrap();
    assert_eq!(deps(&store).await, want);
    // Compaction gives the old blocks the table of their own spans and sums the new one's.
    store.run_maintenance().await.unwrap();
    let blocks = list_blocks(objects.as_ref(), &root()).await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert!(blocks[0].edges.is_some());
    assert_eq!(deps(&store).await, want);
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_restart_pairs_the_replayed_head_with_the_blocks_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let open = || Store::open(config(dir.path(), Arc::clone(&objects)));
    let traces: Vec<Vec<Span>> = (1..=2).map(trace).collect();
    let want = whole(&traces);
    let store = open().await.unwrap();
    // Children (and the client call) in a block, their parents and the callee only in the WAL
    // when the process stops: the replayed head pairs with the block as if it had not.
    let part = |idx: &[usize]| -> Vec<Span> {
        traces
            .iter()
            .flat_map(|t| idx.iter().map(|&i| t[i].clone()))
            .collect()
    };
    store
        .append(batch(part(&[1, 2, 3])), AckMode::Durable)
        .await
        .unwrap();
    store.flush().await.unwrap();
    store
        .append(batch(part(&[0, 4])), AckMode::Durable)
        .await
        .unwrap();
    store.shutdown().await.unwrap();
    drop(store);
    let store = open().await.unwrap();
    assert_eq!(store.stats().await.wal_replayed_records, 1);
    assert_eq!(deps(&store).await, want, "replayed head");
    store.flush().await.unwrap();
    assert_eq!(deps(&store).await, want, "replayed head written");
    // A retried batch after the restart (the same spans again) counts nothing more.
    store
        .append(batch(part(&[0, 4])), AckMode::Durable)
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(deps(&store).await, want, "retried batch");
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_parent_arriving_after_the_window_leaves_its_child_uncounted() {
    let dir = tempfile::tempdir().unwrap();
    let tuning = StoreTuning {
        dependency_carry_spans: 4,
        ..StoreTuning::default()
    };
    let store = Store::open_with(config(dir.path(), Arc::new(InMemory::new())), tuning)
        .await
        .unwrap();
    let t = trace(1);
    store
        .append(batch(vec![t[1].clone()]), AckMode::Durable)
        .await
        .unwrap();
    store.flush().await.unwrap();
    // Two heads of other spans push the child's head out of the window (four spans).
    for h in 0..2u64 {
        let filler = (0..5).map(|i| span(90 + h, i + 1, S, "x", "op")).collect();
        store.append(batch(filler), AckMode::Durable).await.unwrap();
        store.flush().await.unwrap();
    }
    store
        .append(batch(vec![t[0].clone()]), AckMode::Durable)
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert!(deps(&store).await.is_empty());
    assert_eq!(store.stats().await.dependency_orphans_expired, 1);
}
