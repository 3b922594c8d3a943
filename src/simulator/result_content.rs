//! What the simulated download host serves instead of the small per-window results, for ingest
//! tests and the `ingest` benchmark: a large generated result (any size, produced chunk by chunk
//! so the simulator never holds it), or fixed files a test supplies (hostile content: NUL bytes,
//! thousands of duplicate header names…). Also the slow-body fault's trickling stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// Header of every generated large file (the shape of the small results).
const LARGE_HEADER: &[u8] = b"week_start,campaign,impressions,clicks,note\n";
/// Size of each generated chunk.
const CHUNK_BYTES: usize = 64 * 1024;

/// The result every succeeded execution serves.
#[derive(Clone, Debug, Default)]
pub enum ResultContent {
    /// The deterministic small result of each window (`results::expected_result_files`).
    #[default]
    PerWindow,
    /// `files` generated files of `bytes` in total (each file about `bytes / files`).
    Large { bytes: u64, files: u32 },
    /// These files, for every execution.
    Files(Arc<Vec<Bytes>>),
}

impl ResultContent {
    /// Number of files, when not per window.
    pub(crate) fn file_count(&self) -> Option<usize> {
        match self {
            ResultContent::PerWindow => None,
            ResultContent::Large { files, .. } => Some((*files).max(1) as usize),
            ResultContent::Files(files) => Some(files.len()),
        }
    }
}

/// One generated large file, as a sequence of chunks of about 64 KB: a header, then rows until
/// the file reaches its size (the last row may pass it by a few bytes).
pub struct LargeFile {
    target: u64,
    written: u64,
    next_row: u64,
    file: u32,
}

impl LargeFile {
    /// File `file` of a result of `bytes` over `files` files.
    pub fn new(bytes: u64, files: u32, file: u32) -> Self {
        Self {
            target: bytes / u64::from(files.max(1)),
            written: 0,
            next_row: 0,
            file,
        }
    }
}

impl Iterator for LargeFile {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.written > 0 && self.written >= self.target {
            return None;
        }
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + 128);
        if self.written == 0 {
            chunk.extend_from_slice(LARGE_HEADER);
        }
        while chunk.len() < CHUNK_BYTES && self.written + (chunk.len() as u64) < self.target {
            large_row(&mut chunk, self.file, self.next_row);
            self.next_row += 1;
        }
        self.written += chunk.len() as u64;
        Some(chunk)
    }
}

/// One generated row: a CSV line with a quoted comma every few rows, like AMC's text columns.
fn large_row(out: &mut Vec<u8>, file: u32, row: u64) {
    use std::io::Write;
    let n = row
        .wrapping_mul(2_654_435_761)
        .wrapping_add(u64::from(file));
    let campaign = ["Spring Sale", "\"Brand, Awareness\"", "Back to School"][(n % 3) as usize];
    // Writing into a Vec cannot fail.
    let _ = writeln!(
        out,
        "2024-01-01,{campaign},{},{},\"row {row} of file {file}, generated\"",
        n % 100_000,
        n % 1_000
    );
}

/// Row count and checksum (hex SHA-256 of the files in order) of a generated large result, for
/// tests to compare the stored week with.
pub fn large_result_summary(bytes: u64, files: u32) -> (i64, String) {
    let mut hasher = Sha256::new();
    let mut rows = 0i64;
    for file in 0..files.max(1) {
        for chunk in LargeFile::new(bytes, files, file) {
            rows += chunk.iter().filter(|&&b| b == b'\n').count() as i64;
            hasher.update(&chunk);
        }
        rows -= 1; // the header line
    }
    (rows, hex::encode(hasher.finalize()))
}

/// A body that sends its first half, then one byte every 100 ms forever: every read arrives in
/// time, only a deadline on the whole file ends it.
pub(crate) fn trickle(file: Bytes) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let half = file.len() / 2;
    let head = file.slice(..half);
    let tail = file.slice(half..);
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(head) });
    let rest = futures::stream::unfold(0usize, move |at| {
        let tail = tail.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Past the end it repeats the last byte: the body never completes.
            let byte = tail.get(at).or(tail.last()).copied().unwrap_or(b' ');
            Some((Ok(Bytes::copy_from_slice(&[byte])), at + 1))
        }
    });
    first.chain(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_large_result_has_its_size_and_parses_back_with_its_row_count() {
        let bytes = 300_000;
        let files: Vec<Vec<u8>> = (0..3)
            .map(|file| LargeFile::new(bytes, 3, file).flatten().collect())
            .collect();
        let total: usize = files.iter().map(Vec::len).sum();
        assert!((300_000..300_000 + 3 * 200).contains(&total), "{total}");
        let parsed = crate::results::parse_results(&files, usize::MAX).unwrap();
        let (rows, checksum) = large_result_summary(bytes, 3);
        assert_eq!(parsed.row_count, rows);
        assert_eq!(parsed.data_checksum, checksum);
    }
}
