//! Process CPU time of writing one block from borrowed spans (the server's flush path,
//! [`write_block_from`]: sort, plan, encode, statistics, commit to an in-memory store; the
//! spans are not dropped), repeated; 10 ms resolution (`/proc/self/stat`).
//!
//! With `scattered`, each span's attribute list and strings are allocated again in a random
//! order of the spans, as on a server's head, where the spans of one trace come in different
//! requests: the encoder then reads them from all over the heap, not trace by trace.
//!
//! With `shuffled`, the spans themselves are in a random order too, each allocated in that
//! order, as a head hands them over (memory order is arrival order, not trace order): the
//! writer's sort then scatters its reads of the spans and of what planning learnt of them.
//!
//! `cargo run --release -p faultline-block --example enc_time -- [spans] [repetitions] [scattered|shuffled]`
#[allow(dead_code)]
#[path = "../src/testgen.rs"]
mod testgen;

use std::sync::Arc;

use faultline_block::{write_block_from, BlockInfo, BlockSettings, SpanSource};
use faultline_model::{Span, UnixNanos};
use object_store::memory::InMemory;
use object_store::path::Path;

struct Src(Vec<Span>);
impl SpanSource for Src {
    fn spans(&self) -> Vec<&Span> {
        self.0.iter().collect()
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// User plus system time of this process, in seconds (at 100 ticks per second).
fn cpu() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("no ) in /proc/self/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks =
        |i: usize| -> Result<f64> { Ok(fields.get(i).ok_or("short stat")?.parse::<f64>()?) };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let reps: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let mode = args.next();
    let shuffled = mode.as_deref() == Some("shuffled");
    let scattered = shuffled || mode.as_deref() == Some("scattered");
    let mut spans = testgen::realistic_spans(42, n, UnixNanos(1_700_000_000_000_000_000));
    if scattered {
        let mut rng = testgen::Rng::new(7);
        let mut order: Vec<usize> = (0..spans.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut copies: Vec<Option<Span>> = vec![None; spans.len()];
        if shuffled {
            copies = order.iter().map(|i| spans.get(*i).cloned()).collect();
            order.clear();
        }
        for i in order {
            if let (Some(to), Some(s)) = (copies.get_mut(i), spans.get(i)) {
                *to = Some(s.clone());
            }
        }
        spans = copies.into_iter().flatten().collect();
    }
    let src = Arc::new(Src(spans));
    let settings = BlockSettings::default();
    let mut times = Vec::new();
    for _ in 0..reps.max(1) {
        let store = InMemory::new();
        let c = cpu()?;
        write_block_from(
            &store,
            &Path::from("b"),
            src.clone(),
            BlockInfo::default(),
            &settings,
        )
        .await?;
        times.push(cpu()? - c);
    }
    let cpus: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let min = times.first().copied().unwrap_or_default();
    println!("cpu {} median {median:.3} min {min:.3}", cpus.join(" "));
    Ok(())
}
