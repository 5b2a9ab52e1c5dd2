//! Gzip for export bodies, in slices between pacing checkpoints.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::destinations::ExportError;

/// Bytes compressed between two pacing checkpoints: about 50 µs of `Compression::fast()`.
pub(crate) const GZIP_SLICE: usize = 16 * 1024;

/// Gzips an export body at the fast level: on a loopback collector the CPU is the cost, and
/// the fast level already shrinks OTLP by about four times.
pub fn gzip(body: &[u8]) -> Result<bytes::Bytes, ExportError> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
    // In slices, so a large batch does not hold the core in one piece (see `pace`).
    body.chunks(GZIP_SLICE)
        .try_for_each(|piece| {
            crate::deliver::pace::checkpoint();
            enc.write_all(piece)
        })
        .and_then(|_| enc.finish())
        .map(bytes::Bytes::from)
        .map_err(|e| ExportError::permanent(format!("gzip failed: {e}")))
}
