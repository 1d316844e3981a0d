//! The Parquet block format (being written).
