//! The WAL writer: one thread that owns the current segment and commits in groups.
//!
//! Appenders encode their record, queue it on a bounded channel and wait for the writer's
//! answer. The writer takes everything queued at that moment (up to a byte cap), writes it with
//! one `writev` of the records' own buffers (no copy into a group buffer), calls `sync_data`
//! once for the whole group, and only then answers every waiter. Under load many appends share
//! one fsync, which is what makes durable ingest fast.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::record::Encoded;
use super::{segment_path, sync_dir};
use crate::StorageError;

/// Settings of the WAL writer.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Directory holding the segments.
    pub dir: PathBuf,
    /// How many requests may wait in the queue; appenders wait for room beyond that.
    pub queue_capacity: usize,
    /// A group stops taking queued records once it holds this many bytes.
    pub max_group_bytes: usize,
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// What the writer has done since start.
#[derive(Debug, Default)]
pub struct WalCounters {
    /// Records written.
    pub records: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// `sync_data` calls; `records / syncs` is how many appends shared an fsync.
    pub syncs: AtomicU64,
}

enum Request {
    Append {
        record: Encoded,
        done: Option<Reply<()>>,
    },
    Rotate {
        done: Reply<u64>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// Handle to the WAL writer thread.
pub struct Wal {
    tx: mpsc::Sender<Request>,
    queued_bytes: Arc<AtomicUsize>,
    counters: Arc<WalCounters>,
    dir: PathBuf,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A reserved place in the writer's queue; whatever is sent through it is ordered at the moment
/// of sending, so a caller can order WAL records with its own state changes.
pub struct WalPermit<'a> {
    permit: mpsc::Permit<'a, Request>,
    queued_bytes: &'a AtomicUsize,
}

/// An answer still to come from the writer.
pub struct Pending<T>(oneshot::Receiver<Result<T, String>>, PathBuf);

impl<T> Pending<T> {
    /// Waits for the writer's answer.
    pub async fn wait(self) -> Result<T, StorageError> {
        match self.0.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(msg)) => Err(StorageError::io(&self.1, std::io::Error::other(msg))),
            Err(_) => Err(StorageError::ShuttingDown),
        }
    }
}

impl Wal {
    /// Creates segment `first_seq` (which must not exist yet) and starts the writer thread.
    pub fn start(opts: WalOptions, first_seq: u64) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&opts.dir).map_err(|e| StorageError::io(&opts.dir, e))?;
        let file = create_segment(&opts.dir, first_seq)?;
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(WalCounters::default());
        let writer = Writer {
            counters: Arc::clone(&counters),
            dir: opts.dir.clone(),
            seq: first_seq,
            file,
            len: 0,
            max_group_bytes: opts.max_group_bytes.max(1),
            queued_bytes: Arc::clone(&queued_bytes),
            broken: None,
        };
        let thread = std::thread::Builder::new()
            .name("faultline-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageError::io(&opts.dir, e))?;
        Ok(Self {
            tx,
            queued_bytes,
            counters,
            dir: opts.dir,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Waits for room in the queue.
    pub async fn reserve(&self) -> Result<WalPermit<'_>, StorageError> {
        let permit = self
            .tx
            .reserve()
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        Ok(WalPermit {
            permit,
            queued_bytes: &self.queued_bytes,
        })
    }

    /// What the writer has done since start.
    pub fn counters(&self) -> &WalCounters {
        &self.counters
    }

    /// Bytes queued but not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Writes and fsyncs what is queued, then stops the writer thread. Later calls do nothing.
    pub async fn close(&self) -> Result<(), StorageError> {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Request::Shutdown { done }).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self
            .thread
            .lock()
            .map_err(|_| StorageError::ShuttingDown)?
            .take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StorageError::io(&self.dir, std::io::Error::other(e)))?
                .map_err(|_| {
                    StorageError::io(&self.dir, std::io::Error::other("WAL writer panicked"))
                })?;
        }
        Ok(())
    }
}

impl WalPermit<'_> {
    /// Queues an encoded record. With `durable`, the returned [`Pending`] resolves once the
    /// record is fsynced; otherwise nobody waits and write errors are only logged.
    pub fn append(self, record: Encoded, durable: bool, dir: &Path) -> Option<Pending<()>> {
        self.queued_bytes
            .fetch_add(record.wal_bytes(), Ordering::Relaxed);
        if durable {
            let (done, rx) = oneshot::channel();
            self.permit.send(Request::Append {
                record,
                done: Some(done),
            });
            Some(Pending(rx, dir.to_owned()))
        } else {
            self.permit.send(Request::Append { record, done: None });
            None
        }
    }

    /// Closes the current segment after everything queued before it, and opens the next one.
    /// Resolves to the sequence number of the segment that was closed.
    pub fn rotate(self, dir: &Path) -> Pending<u64> {
        let (done, rx) = oneshot::channel();
        self.permit.send(Request::Rotate { done });
        Pending(rx, dir.to_owned())
    }
}

fn create_segment(dir: &Path, seq: u64) -> Result<File, StorageError> {
    let path = segment_path(dir, seq);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| StorageError::io(&path, e))?;
    // The new file's directory entry must survive a crash, or its fsynced records would vanish.
    sync_dir(dir)?;
    Ok(file)
}

struct Writer {
    counters: Arc<WalCounters>,
    dir: PathBuf,
    seq: u64,
    file: File,
    /// Length of the segment up to the end of the last fully written group.
    len: u64,
    max_group_bytes: usize,
    queued_bytes: Arc<AtomicUsize>,
    /// Set when the segment could not be restored after a failed write; every later append
    /// fails rather than land behind garbage that replay would stop at.
    broken: Option<String>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut group: Vec<Encoded> = Vec::new();
        let mut waiters: Vec<Reply<()>> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            let mut control = None;
            let mut written = 0;
            while let Some(req) = next.take() {
                match req {
                    Request::Append { record, done } => {
                        written += record.wal_bytes();
                        group.push(record);
                        waiters.extend(done);
                    }
                    other => {
                        control = Some(other);
                        break;
                    }
                }
                if written < self.max_group_bytes {
                    next = rx.try_recv().ok();
                }
            }
            // Received-mode groups skip the fsync; a later durable group or rotation syncs them.
            let sync = !waiters.is_empty() || control.is_some();
            let result = self.write_group(&group, written, sync);
            self.queued_bytes.fetch_sub(written, Ordering::Relaxed);
            if result.is_ok() {
                let c = &self.counters;
                c.records.fetch_add(group.len() as u64, Ordering::Relaxed);
                c.bytes.fetch_add(written as u64, Ordering::Relaxed);
                c.syncs.fetch_add(u64::from(sync), Ordering::Relaxed);
            }
            // The payloads are released here, once the kernel has them.
            group.clear();
            if let Err(e) = &result {
                tracing::error!(segment = self.seq, error = %e, "WAL write failed");
            }
            for w in waiters.drain(..) {
                let _ = w.send(result.clone());
            }
            match control {
                Some(Request::Rotate { done }) => {
                    // Rotate even if the group failed (its waiters have their error): the
                    // store has already moved its head on, and later records must not land in
                    // the segment it is about to retire.
                    let _ = done.send(self.rotate());
                }
                Some(Request::Shutdown { done }) => {
                    let _ = done.send(());
                    return;
                }
                _ => {}
            }
        }
    }

    /// Writes `group` (`bytes` long in all) after the end of the last good group, and fsyncs it
    /// when `sync`.
    fn write_group(&mut self, group: &[Encoded], bytes: usize, sync: bool) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let mut slices: Vec<IoSlice<'_>> = group.iter().flat_map(Encoded::io_slices).collect();
        let res = write_all_vectored(&mut self.file, &mut slices).and_then(|()| {
            if sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match res {
            Ok(()) => {
                self.len += bytes as u64;
                Ok(())
            }
            Err(e) => {
                // Cut the partial group off so later records are not stranded behind it.
                if let Err(e2) = self.file.set_len(self.len) {
                    self.broken = Some(format!(
                        "WAL segment {} is unusable after a failed write ({e}) and a failed repair ({e2})",
                        self.seq
                    ));
                }
                Err(e.to_string())
            }
        }
    }

    fn rotate(&mut self) -> Result<u64, String> {
        let next = self.seq + 1;
        // The store has already moved its head on to segment `next`: records written to the
        // old segment from now on would be deleted with it, so refuse them instead.
        let file = create_segment(&self.dir, next).map_err(|e| {
            let why = format!("WAL rotation to segment {next} failed: {e}");
            self.broken = Some(why.clone());
            why
        })?;
        let closed = self.seq;
        self.file = file;
        self.seq = next;
        self.len = 0;
        Ok(closed)
    }
}

/// Writes every byte of `slices` in order, with as few `writev` calls as the kernel allows (it
/// takes at most `IOV_MAX` slices per call and may write less than asked).
fn write_all_vectored(file: &mut File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    // Drops leading empty slices, so that a group with no bytes left makes no call at all
    // (a `writev` of nothing answers 0, which would read as a failed write).
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::record::RecordKind;
    use super::super::replay;
    use super::*;

    fn record(payload: &[u8]) -> Encoded {
        Encoded::new(RecordKind::Traces, bytes::Bytes::copy_from_slice(payload)).unwrap()
    }

    #[tokio::test]
    async fn durable_appends_are_on_disk_when_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            dir: dir.path().to_owned(),
            queue_capacity: 8,
            max_group_bytes: 1 << 20,
        };
        let wal = Arc::new(Wal::start(opts, 5).unwrap());
        let mut tasks = Vec::new();
        for i in 0..50u32 {
            let wal = Arc::clone(&wal);
            let path = dir.path().to_owned();
            tasks.push(tokio::spawn(async move {
                let permit = wal.reserve().await.unwrap();
                let pending = permit
                    .append(record(&i.to_le_bytes()), true, &path)
                    .unwrap();
                pending.wait().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let closed = wal.reserve().await.unwrap().rotate(dir.path()).wait().await;
        assert_eq!(closed.unwrap(), 5);
        wal.close().await.unwrap();
        assert_eq!(wal.queued_bytes(), 0);
        let c = wal.counters();
        assert_eq!(c.records.load(Ordering::Relaxed), 50);
        assert_eq!(c.bytes.load(Ordering::Relaxed), 50 * (9 + 4));
        let syncs = c.syncs.load(Ordering::Relaxed);
        assert!((1..=52).contains(&syncs), "{syncs} syncs");

        let mut seen = Vec::new();
        let stats = replay(dir.path(), None, |seq, r| {
            assert_eq!(seq, 5);
            seen.push(u32::from_le_bytes(r.payload.try_into().unwrap()));
        })
        .unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(stats.segments, vec![5, 6]);
        // Closing twice is harmless, and appends after close are refused.
        wal.close().await.unwrap();
        assert!(matches!(
            wal.reserve().await,
            Err(StorageError::ShuttingDown)
        ));
    }

    /// More slices than one `writev` takes (`IOV_MAX` is 1024 on Linux), some of them empty,
    /// land whole and in order.
    #[test]
    fn vectored_writes_past_iov_max_are_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        let chunks: Vec<Vec<u8>> = (0..2500u32)
            .map(|i| vec![i as u8; i as usize % 3])
            .collect();
        let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        write_all_vectored(&mut file, &mut slices).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), chunks.concat());
        // Nothing to write is not a failed write.
        let mut empty = [IoSlice::new(&[]), IoSlice::new(&[])];
        write_all_vectored(&mut file, &mut empty).unwrap();
    }

    /// Many queued records, some with empty payloads, are written as they were queued, however
    /// the writer groups them.
    #[tokio::test]
    async fn queued_records_are_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let n = 1500u32;
        let opts = WalOptions {
            dir: dir.path().to_owned(),
            queue_capacity: n as usize + 1,
            max_group_bytes: 1 << 30,
        };
        let wal = Wal::start(opts, 1).unwrap();
        let mut expected = Vec::new();
        for i in 0..n {
            // Every seventh record has an empty payload.
            let payload = if i % 7 == 0 {
                Vec::new()
            } else {
                i.to_le_bytes().repeat(1 + i as usize % 5)
            };
            let permit = wal.reserve().await.unwrap();
            assert!(permit.append(record(&payload), false, dir.path()).is_none());
            expected.push(payload);
        }
        let closed = wal.reserve().await.unwrap().rotate(dir.path()).wait().await;
        assert_eq!(closed.unwrap(), 1);
        wal.close().await.unwrap();
        let c = wal.counters();
        assert_eq!(c.records.load(Ordering::Relaxed), u64::from(n));
        let bytes: usize = expected.iter().map(|p| 9 + p.len()).sum();
        assert_eq!(c.bytes.load(Ordering::Relaxed), bytes as u64);
        let mut seen = Vec::new();
        replay(dir.path(), None, |_, r| seen.push(r.payload)).unwrap();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn refuses_to_reuse_an_existing_segment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(segment_path(dir.path(), 3), b"x").unwrap();
        let opts = WalOptions {
            dir: dir.path().to_owned(),
            queue_capacity: 1,
            max_group_bytes: 1,
        };
        assert!(Wal::start(opts, 3).is_err());
    }
}
