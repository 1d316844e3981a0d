//! Reading a block's data file through ranged object-store reads: the footer and page index
//! first, then only the column chunks and pages of the row groups a caller selects.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use faultline_model::TraceId;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter, RowSelection, RowSelector};
use parquet::arrow::push_decoder::ParquetPushDecoderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataPushDecoder};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::DecodeResult;

use crate::footer_cache::{Footer, FooterCache};
use crate::schema::{AttrColumns, DERIVED_KEY, DYNAMIC_KEY, PREFIXED_KEY};
use crate::{BlockError, BlockId};

/// Bytes fetched from the end of the file on open: usually the whole footer and page index in
/// one request.
const FOOTER_GUESS: u64 = 64 * 1024;
/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;

/// Runs one step of the parquet decoder, turning a panic into an error. The parquet crate
/// trusts some offsets in footers and page indexes (e.g. it subtracts page offsets unchecked),
/// and a damaged block must give a [`BlockError`], not take the process down. The decoder is
/// dropped right after such an error, so no half-updated state is used again.
fn guarded<T>(
    path: &Path,
    step: impl FnOnce() -> Result<T, parquet::errors::ParquetError>,
) -> Result<T, BlockError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(r) => Ok(r?),
        Err(_) => Err(BlockError::corrupt(
            path.to_string(),
            "the Parquet decoder panicked on this file",
        )),
    }
}

/// Whether a page with these min/max statistics may hold a wanted value.
type PageFilter<'f> = dyn Fn(Option<&[u8]>, Option<&[u8]>) -> bool + 'f;

/// An opened `data.parquet`: its location and decoded footer (with page index).
pub(crate) struct DataFile<'a> {
    store: &'a dyn ObjectStore,
    path: Path,
    footer: Arc<Footer>,
}

impl<'a> DataFile<'a> {
    /// Opens block `id`'s data file, taking its footer from `cache` when present and adding it
    /// there after a decode.
    pub(crate) async fn open_cached(
        store: &'a dyn ObjectStore,
        path: Path,
        id: &BlockId,
        cache: Option<&FooterCache>,
    ) -> Result<Self, BlockError> {
        if let Some(footer) = cache.and_then(|c| c.get(id)) {
            return Ok(Self {
                store,
                path,
                footer,
            });
        }
        let file = Self::open(store, path).await?;
        if let Some(c) = cache {
            c.insert(id.clone(), Arc::clone(&file.footer));
        }
        Ok(file)
    }

    /// Reads and decodes the footer, fetching more ranges if the decoder asks for them.
    pub(crate) async fn open(store: &'a dyn ObjectStore, path: Path) -> Result<Self, BlockError> {
        let got = store
            .get_opts(
                &path,
                GetOptions::default().with_range(Some(GetRange::Suffix(FOOTER_GUESS))),
            )
            .await?;
        let file_len = got.meta.size;
        let range = got.range.clone();
        let tail = got.bytes().await?;
        let mut decoder = ParquetMetaDataPushDecoder::try_new(file_len)?
            .with_page_index_policy(PageIndexPolicy::Optional);
        guarded(&path, || decoder.push_range(range, tail))?;
        let metadata = loop {
            match guarded(&path, || decoder.try_decode())? {
                DecodeResult::NeedsData(ranges) => {
                    let data = store.get_ranges(&path, &ranges).await?;
                    guarded(&path, || decoder.push_ranges(ranges, data))?;
                }
                DecodeResult::Data(m) => break m,
                DecodeResult::Finished => {
                    return Err(BlockError::corrupt(
                        path.to_string(),
                        "footer decoded to nothing",
                    ))
                }
            }
        };
        let entry = |key: &str| {
            metadata
                .file_metadata()
                .key_value_metadata()
                .and_then(|kvs| kvs.iter().find(|kv| kv.key == key))
                .and_then(|kv| kv.value.as_deref())
        };
        let attr_columns =
            AttrColumns::from_footer(entry(DYNAMIC_KEY), entry(PREFIXED_KEY), entry(DERIVED_KEY))?;
        let footer = guarded(&path, || Footer::new(Arc::new(metadata), attr_columns))?;
        Ok(Self {
            store,
            path,
            footer: Arc::new(footer),
        })
    }

    /// The file's attribute columns (fixed and dynamic).
    pub(crate) fn attr_columns(&self) -> &AttrColumns {
        &self.footer.attr_columns
    }

    pub(crate) fn metadata(&self) -> &ParquetMetaData {
        &self.footer.metadata
    }

    /// Leaf column index of a top-level column (the schema is flat).
    pub(crate) fn leaf(&self, name: &str) -> Result<usize, BlockError> {
        self.metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.name() == name)
            .ok_or_else(|| BlockError::corrupt(self.path.to_string(), format!("no column {name}")))
    }

    /// Decodes the selected row groups (and rows within them), calling `on_batch` per batch.
    /// `columns` limits which columns are fetched at all; `None` reads every column.
    pub(crate) async fn read(
        &self,
        columns: Option<&[&str]>,
        row_groups: Vec<usize>,
        selection: Option<RowSelection>,
        on_batch: impl FnMut(RecordBatch) -> Result<(), BlockError>,
    ) -> Result<(), BlockError> {
        self.read_filtered(columns, row_groups, selection, None, on_batch)
            .await
    }

    /// Like [`Self::read`], with a row filter: the decoder evaluates the filter's columns first
    /// and decodes the other columns only for the rows it keeps.
    pub(crate) async fn read_filtered(
        &self,
        columns: Option<&[&str]>,
        row_groups: Vec<usize>,
        selection: Option<RowSelection>,
        filter: Option<RowFilter>,
        mut on_batch: impl FnMut(RecordBatch) -> Result<(), BlockError>,
    ) -> Result<(), BlockError> {
        if row_groups.is_empty() {
            return Ok(());
        }
        let mut builder = ParquetPushDecoderBuilder::new_with_metadata(self.footer.reader.clone())
            .with_batch_size(BATCH_ROWS)
            .with_row_groups(row_groups);
        if let Some(cols) = columns {
            let leaves = cols
                .iter()
                .map(|c| self.leaf(c))
                .collect::<Result<Vec<_>, _>>()?;
            let mask =
                ProjectionMask::leaves(self.metadata().file_metadata().schema_descr(), leaves);
            builder = builder.with_projection(mask);
        }
        if let Some(sel) = selection {
            builder = builder.with_row_selection(sel);
        }
        if let Some(filter) = filter {
            builder = builder.with_row_filter(filter);
        }
        let mut decoder = guarded(&self.path, || builder.build())?;
        loop {
            match guarded(&self.path, || decoder.try_decode())? {
                DecodeResult::NeedsData(ranges) => {
                    let data = self.store.get_ranges(&self.path, &ranges).await?;
                    guarded(&self.path, || decoder.push_ranges(ranges, data))?;
                }
                DecodeResult::Data(batch) => on_batch(batch)?,
                DecodeResult::Finished => return Ok(()),
            }
        }
    }

    /// Projection of the named top-level columns, for row-filter predicates.
    pub(crate) fn mask(&self, columns: &[&str]) -> Result<ProjectionMask, BlockError> {
        let leaves = columns
            .iter()
            .map(|c| self.leaf(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProjectionMask::leaves(
            self.metadata().file_metadata().schema_descr(),
            leaves,
        ))
    }

    /// A row filter keeping rows whose trace ID is in `wanted`.
    pub(crate) fn trace_filter(&self, wanted: BTreeSet<TraceId>) -> Result<RowFilter, BlockError> {
        let mask = self.mask(&[crate::schema::TRACE_ID])?;
        let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            let ids = batch
                .column(0)
                .as_fixed_size_binary_opt()
                .filter(|a| a.value_length() == 16)
                .ok_or_else(|| {
                    ArrowError::InvalidArgumentError("trace_id is not 16-byte binary".into())
                })?;
            Ok((0..ids.len())
                .map(|row| {
                    let mut id = [0u8; 16];
                    id.copy_from_slice(ids.value(row));
                    Some(wanted.contains(&TraceId(id)))
                })
                .collect::<BooleanArray>())
        });
        Ok(RowFilter::new(vec![Box::new(predicate)]))
    }

    /// All row groups.
    pub(crate) fn all_row_groups(&self) -> Vec<usize> {
        (0..self.metadata().num_row_groups()).collect()
    }

    /// Row groups, and pages within them, whose `trace_id` range can hold one of `ids`. Uses the
    /// row-group statistics, then the column index; without an index a group is read whole.
    pub(crate) fn select_traces(
        &self,
        ids: &BTreeSet<TraceId>,
    ) -> Result<(Vec<usize>, RowSelection), BlockError> {
        let leaf = self.leaf(crate::schema::TRACE_ID)?;
        let any_in = |min: Option<&[u8]>, max: Option<&[u8]>| match (min, max) {
            (Some(lo), Some(hi)) => match (<[u8; 16]>::try_from(lo), <[u8; 16]>::try_from(hi)) {
                // Untruncated 16-byte bounds: a range query on the sorted IDs (`range` would
                // panic on inverted bounds, which a damaged file can have).
                (Ok(lo), Ok(hi)) => {
                    lo <= hi && ids.range(TraceId(lo)..=TraceId(hi)).next().is_some()
                }
                _ => ids
                    .iter()
                    .any(|id| id.0.as_slice() >= lo && id.0.as_slice() <= hi),
            },
            _ => true,
        };
        let mut groups = Vec::new();
        let mut selectors: Vec<RowSelector> = Vec::new();
        for (rg, meta) in self.metadata().row_groups().iter().enumerate() {
            let stats = meta.columns().get(leaf).and_then(|c| c.statistics());
            let keep = stats.is_none_or(|s| any_in(s.min_bytes_opt(), s.max_bytes_opt()));
            if !keep {
                continue;
            }
            groups.push(rg);
            let rows = usize::try_from(meta.num_rows()).unwrap_or(0);
            let pages = self.page_ranges(rg, leaf, rows, &any_in);
            match pages {
                Some(pages) => {
                    for (len, select) in pages {
                        selectors.push(if select {
                            RowSelector::select(len)
                        } else {
                            RowSelector::skip(len)
                        });
                    }
                }
                None => selectors.push(RowSelector::select(rows)),
            }
        }
        Ok((groups, RowSelection::from(selectors)))
    }

    /// `(rows, selected)` runs covering one row group from the page index of column `leaf`, or
    /// `None` when the index is missing or inconsistent (then the whole group is read).
    fn page_ranges(
        &self,
        rg: usize,
        leaf: usize,
        rows: usize,
        keep: &PageFilter<'_>,
    ) -> Option<Vec<(usize, bool)>> {
        let index = self.metadata().page_index_for_row_group(rg);
        let locations = index.offset_index(leaf)?.page_locations();
        let ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(ci) = index.column_index(leaf)? else {
            return None;
        };
        if ci.num_pages() as usize != locations.len() || locations.is_empty() {
            return None;
        }
        let mut runs = Vec::with_capacity(locations.len());
        let mut covered = 0usize;
        for (p, loc) in locations.iter().enumerate() {
            let first = usize::try_from(loc.first_row_index).ok()?;
            let end = match locations.get(p + 1) {
                Some(next) => usize::try_from(next.first_row_index).ok()?,
                None => rows,
            };
            if first != covered || end < first || end > rows {
                return None;
            }
            covered = end;
            runs.push((end - first, keep(ci.min_value(p), ci.max_value(p))));
        }
        (covered == rows).then_some(runs)
    }
}
