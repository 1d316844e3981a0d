//! Write-ahead log (to be written).
