//! A bounded cache of decoded block footers (Parquet metadata with page index, and the
//! attribute-column layout), so that repeated reads of one block skip the footer fetch and
//! decode. Blocks are immutable and their IDs never reused, so an entry never goes stale; it
//! only has to leave when the block is deleted or the cache is over its byte budget.
//!
//! The cache is owned by the caller (the store), not by this crate: the crate itself keeps no
//! state between calls.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::datatypes::{DataType, FieldRef, Schema};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

use crate::schema::{AttrColumns, ValueType};
use crate::BlockId;

/// What opening a block's data file decodes from its footer.
pub(crate) struct Footer {
    pub(crate) metadata: Arc<ParquetMetaData>,
    pub(crate) attr_columns: AttrColumns,
    /// The metadata with the Arrow schema readers decode into (see [`read_schema`]).
    pub(crate) reader: ArrowReaderMetadata,
    /// Approximate heap bytes, counted against the cache budget.
    bytes: usize,
}

impl Footer {
    pub(crate) fn new(
        metadata: Arc<ParquetMetaData>,
        attr_columns: AttrColumns,
    ) -> Result<Self, ParquetError> {
        let bytes = metadata.memory_size()
            + attr_columns
                .columns
                .iter()
                .map(|c| {
                    let derived = c.derived.as_ref().map_or(0, |d| {
                        d.default.len()
                            + d.by_name
                                .iter()
                                .map(|(k, v)| k.len() + v.len() + 64)
                                .sum::<usize>()
                    });
                    c.key.len() + c.column.len() + 64 + derived
                })
                .sum::<usize>();
        let reader = read_schema(Arc::clone(&metadata), &attr_columns)?;
        Ok(Self {
            metadata,
            attr_columns,
            reader,
            bytes,
        })
    }
}

/// The file's own Arrow schema, except that string attribute columns are read as plain
/// `Utf8` rather than dictionaries. Their values are mostly distinct (paths, addresses,
/// request IDs), so their chunks fall back from dictionary to plain pages, and asking for a
/// dictionary array then makes the reader hash and compare every value to rebuild one: that
/// was a tenth of a compaction. Every value becomes its own `String` in a span anyway.
fn read_schema(
    metadata: Arc<ParquetMetaData>,
    attr_columns: &AttrColumns,
) -> Result<ArrowReaderMetadata, ParquetError> {
    let as_written =
        ArrowReaderMetadata::try_new(Arc::clone(&metadata), ArrowReaderOptions::new())?;
    let strings: HashSet<&str> = attr_columns
        .columns
        .iter()
        .filter(|c| c.ty == ValueType::Str)
        .map(|c| c.column.as_str())
        .collect();
    let schema = as_written.schema();
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, v)
                if **v == DataType::Utf8 && strings.contains(f.name().as_str()) =>
            {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8))
            }
            _ => Arc::clone(f),
        })
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    ArrowReaderMetadata::try_new(metadata, ArrowReaderOptions::new().with_schema(schema))
}

struct Entry {
    footer: Arc<Footer>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<BlockId, Entry>,
    bytes: usize,
    clock: u64,
}

/// Decoded footers of recently read blocks, at most `budget_bytes` of them, least recently
/// used evicted first.
///
/// ```
/// let cache = faultline_block::FooterCache::new(16 << 20);
/// assert_eq!(cache.len(), 0);
/// ```
pub struct FooterCache {
    inner: Mutex<Inner>,
    budget_bytes: usize,
}

impl FooterCache {
    /// A cache holding at most about `budget_bytes` of decoded footers; `0` disables caching.
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            budget_bytes,
        }
    }

    /// Number of cached footers.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes the cached footers take, approximately.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Forgets a block's footer (call when the block is deleted).
    pub fn remove(&self, id: &BlockId) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.remove(id) {
            inner.bytes -= e.footer.bytes;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The guarded data is only a cache: a panic elsewhere while holding the lock cannot
        // leave it inconsistent in a way that matters, so a poisoned lock is simply reused.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: &BlockId) -> Option<Arc<Footer>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let e = inner.entries.get_mut(id)?;
        e.last_used = now;
        Some(Arc::clone(&e.footer))
    }

    pub(crate) fn insert(&self, id: BlockId, footer: Arc<Footer>) {
        if footer.bytes > self.budget_bytes {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.bytes += footer.bytes;
        if let Some(old) = inner.entries.insert(
            id,
            Entry {
                footer,
                last_used: now,
            },
        ) {
            inner.bytes -= old.footer.bytes;
        }
        // A linear scan per eviction: a store holds hundreds of blocks, not millions, and
        // inserts happen once per block read from cold.
        while inner.bytes > self.budget_bytes {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes -= e.footer.bytes;
            }
        }
    }
}

impl std::fmt::Debug for FooterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FooterCache")
            .field("entries", &self.len())
            .field("bytes", &self.bytes())
            .field("budget_bytes", &self.budget_bytes)
            .finish()
    }
}
