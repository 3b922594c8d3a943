//! Ingest: one week whose result the simulator generates at `--ingest-mb` MB of CSV (two files),
//! collected by the real daemon; rows/s, MB/s and peak RSS of that run, against the database's
//! own load speed measured in the same run on exactly the same rows: Postgres `COPY ... FROM
//! STDIN` into a table of the same shape, SQLite one prepared INSERT stepped per row in one
//! transaction through its C API (no pool or worker thread in between).
//! The reference's rows are the stored ones, dumped to a file first and streamed from it.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::postgres::PgPoolCopyExt;

use super::fixture::{Layout, World};
use super::procstat;
use super::{verdict, BenchError, Outcome, RunCtx};
use crate::simulator::SimulatorConfig;
use crate::store::Store;

const POLL_MS: u64 = 20;
/// Files the generated result is split into.
const FILES: u32 = 2;
/// Peak RSS target of the whole process for a 1 GB result, in MB.
const RSS_TARGET_MB: f64 = 150.0;
/// Ingest rows/s target as a share of the reference's.
const RATIO_TARGET: f64 = 0.5;

pub async fn run(cx: &RunCtx<'_>) -> Result<Outcome, BenchError> {
    let mb = if cx.quick { 8 } else { cx.ingest_mb.max(1) };
    let layout = Layout {
        instances: 1,
        collections_per_instance: 1,
        weeks: 1,
    };
    let world = World::prepare(
        cx,
        "ingest",
        layout,
        SimulatorConfig {
            pending_ms: 0,
            running_ms: 0,
            publishing_ms: 0,
            large_result_kb: mb * 1024,
            large_result_files: FILES,
            ..SimulatorConfig::default()
        },
    )
    .await?;
    let mut settings = world.settings(POLL_MS);
    // The memory bound under test: the default budget of downloads.
    settings.results.max_concurrent_downloads = crate::config::Settings::default()
        .results
        .max_concurrent_downloads;
    let peak_reset = procstat::reset_peak_rss();
    let run =
        super::run_to_idle(world.fx.store.clone(), &settings, Duration::from_secs(7200)).await?;
    let peak = procstat::peak_rss();
    let World { sim, fx, .. } = world;
    sim.stop().await;

    let stored = StoredWeek::read(&fx.store, mb).await?;
    let reference = reference(&fx.store).await?;
    fx.remove().await;

    let measured = Measured {
        mb,
        secs: run.elapsed.as_secs_f64(),
        peak_mb: peak.map_or(f64::NAN, |bytes| bytes as f64 / 1_048_576.0),
        peak_reset,
        downloads: settings.results.max_concurrent_downloads,
    };
    let line = report(cx, &measured, &stored, reference);
    Ok(Outcome {
        line,
        complete: stored.complete(),
    })
}

/// The collected week as stored, and what the simulator's generated result should have given.
struct StoredWeek {
    status: String,
    rows: Option<i64>,
    checksum: Option<String>,
    expected_rows: i64,
    expected_checksum: String,
}

impl StoredWeek {
    async fn read(store: &Store, mb: u64) -> Result<StoredWeek, BenchError> {
        let (status, rows, checksum): (String, Option<i64>, Option<String>) =
            crate::store::with_pool!(store, |pool| sqlx::query_as(
                "SELECT status, row_count, data_checksum FROM report_data_weeks LIMIT 1"
            )
            .fetch_one(pool)
            .await)?;
        let (expected_rows, expected_checksum) =
            crate::simulator::large_result_summary(mb * 1024 * 1024, FILES);
        Ok(StoredWeek {
            status,
            rows,
            checksum,
            expected_rows,
            expected_checksum,
        })
    }

    /// Completed, with every row and the checksum of the generated result.
    fn complete(&self) -> bool {
        self.status == "completed"
            && self.rows == Some(self.expected_rows)
            && self.checksum.as_deref() == Some(self.expected_checksum.as_str())
    }
}

/// The database's own load speed on the stored rows: (rows, time).
async fn reference(store: &Store) -> Result<(u64, Duration), BenchError> {
    let dir = tempfile::Builder::new()
        .prefix("amc-collector-bench-ingest.")
        .tempdir()?;
    match store {
        Store::Postgres(pool) => postgres_reference(pool, &dir.path().join("rows.copy")).await,
        Store::Sqlite(pool) => sqlite_reference(pool, &dir.path().join("rows.tsv")).await,
    }
}

/// The daemon's run as the line reports it.
struct Measured {
    mb: u64,
    secs: f64,
    /// NaN where /proc gave no figure.
    peak_mb: f64,
    peak_reset: bool,
    downloads: u32,
}

/// The scenario's printed line.
fn report(
    cx: &RunCtx<'_>,
    measured: &Measured,
    stored: &StoredWeek,
    reference: (u64, Duration),
) -> String {
    let Measured {
        mb, secs, peak_mb, ..
    } = *measured;
    let rows = stored.rows.unwrap_or(0);
    let rate = rows as f64 / secs;
    let reference_rate = reference.0 as f64 / reference.1.as_secs_f64();
    let ratio = rate / reference_rate;
    let met = ratio >= RATIO_TARGET && peak_mb <= RSS_TARGET_MB;
    let reference_kind = match cx.backend {
        super::Backend::Postgres => "COPY FROM STDIN into a table of the same shape",
        super::Backend::Sqlite => {
            "one transaction, one prepared INSERT with each row bound, SQLite's C API, same shape"
        }
    };
    format!(
        "ingest [{backend}]: {mb} MB CSV, {rows} rows in {secs:.1} s = {rate:.0} rows/s, \
         {mbps:.1} MB/s; reference {reference_rate:.0} rows/s ({reference_kind}) = {ratio:.2} x reference; \
         peak RSS {peak} MB{peak_note} (targets: >= {RATIO_TARGET} x reference, <= {RSS_TARGET_MB} MB: {verdict}){incomplete}; \
         setup: 1 week, {FILES} files, results.max_concurrent_downloads {downloads}",
        backend = cx.backend.name(),
        mbps = mb as f64 / secs,
        peak = if peak_mb.is_nan() {
            "?".to_string()
        } else {
            format!("{peak_mb:.0}")
        },
        peak_note = procstat::peak_note(measured.peak_reset),
        verdict = verdict(cx.quick, met),
        incomplete = if stored.complete() {
            String::new()
        } else {
            format!(
                " INCOMPLETE: week {status} with {rows} rows, expected {expected_rows} and its checksum",
                status = stored.status,
                expected_rows = stored.expected_rows,
            )
        },
        downloads = measured.downloads,
    )
}

/// Dumps the stored rows to `path`, then times `COPY FROM STDIN` of that file into a copy of the
/// rows table. Returns (rows, time).
async fn postgres_reference(
    pool: &sqlx::PgPool,
    path: &std::path::Path,
) -> Result<(u64, Duration), BenchError> {
    use tokio::io::AsyncWriteExt;
    let columns = "week_id, collection_id, execution_id, file_index, row_index, data";
    let mut file = tokio::fs::File::create(path).await?;
    let mut dump = pool
        .copy_out_raw(&format!(
            "COPY (SELECT {columns} FROM report_data_rows) TO STDOUT"
        ))
        .await?;
    while let Some(chunk) = dump.try_next().await? {
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    drop(file);
    sqlx::query("CREATE TABLE ingest_reference (LIKE report_data_rows INCLUDING ALL)")
        .execute(pool)
        .await?;
    let started = Instant::now();
    let mut copy = pool
        .copy_in_raw(&format!("COPY ingest_reference ({columns}) FROM STDIN"))
        .await?;
    copy.read_from(tokio::fs::File::open(path).await?).await?;
    let rows = copy.finish().await?;
    Ok((rows, started.elapsed()))
}

/// Dumps the stored rows to `path` (one tab-separated line each), then times the plainest fast
/// load of them into a table of the same shape: one transaction, one prepared INSERT, each row's
/// values bound and the statement stepped, through SQLite's C API on a connection of its own
/// (rusqlite; what Python's `executemany` does). Returns (rows, time).
async fn sqlite_reference(
    pool: &sqlx::SqlitePool,
    path: &std::path::Path,
) -> Result<(u64, Duration), BenchError> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut rows = sqlx::query_as::<_, (String, String, String, i32, i32, String)>(
        "SELECT week_id, collection_id, execution_id, file_index, row_index, data \
         FROM report_data_rows",
    )
    .fetch(pool);
    while let Some((week, collection, execution, file, row, data)) = rows.try_next().await? {
        writeln!(
            out,
            "{week}\t{collection}\t{execution}\t{file}\t{row}\t{data}"
        )?;
    }
    drop(rows);
    out.flush()?;
    drop(out);
    for sql in [
        "CREATE TABLE ingest_reference (week_id TEXT NOT NULL, collection_id TEXT NOT NULL, \
         execution_id TEXT NOT NULL, file_index INTEGER NOT NULL, row_index INTEGER NOT NULL, \
         data TEXT NOT NULL, PRIMARY KEY (week_id, file_index, row_index))",
        "CREATE INDEX ingest_reference_collection_idx ON ingest_reference (collection_id)",
    ] {
        sqlx::query(sql).execute(pool).await?;
    }
    let database = pool.connect_options().get_filename().to_path_buf();
    let dump = path.to_path_buf();
    tokio::task::spawn_blocking(move || load_with_c_api(&database, &dump))
        .await
        .map_err(|e| BenchError::Setup(format!("the SQLite reference load died: {e}")))?
}

/// The timed part of [`sqlite_reference`], on a blocking thread.
fn load_with_c_api(
    database: &std::path::Path,
    dump: &std::path::Path,
) -> Result<(u64, Duration), BenchError> {
    let failed = |e: rusqlite::Error| BenchError::Setup(format!("SQLite reference load: {e}"));
    let mut connection = rusqlite::Connection::open(database).map_err(failed)?;
    connection
        .busy_timeout(Duration::from_secs(30))
        .map_err(failed)?;
    let lines = std::io::BufReader::new(std::fs::File::open(dump)?).lines();
    let started = Instant::now();
    let tx = connection.transaction().map_err(failed)?;
    let mut count = 0u64;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO ingest_reference \
                 (week_id, collection_id, execution_id, file_index, row_index, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(failed)?;
        for line in lines {
            let line = line?;
            let fields: Vec<&str> = line.splitn(6, '\t').collect();
            let [week, collection, execution, file, row, data] = fields[..] else {
                return Err(BenchError::Setup("a dumped row is malformed".into()));
            };
            let (Ok(file), Ok(row)) = (file.parse::<i64>(), row.parse::<i64>()) else {
                return Err(BenchError::Setup("a dumped row is malformed".into()));
            };
            insert
                .execute(rusqlite::params![
                    week, collection, execution, file, row, data
                ])
                .map_err(failed)?;
            count += 1;
        }
    }
    tx.commit().map_err(failed)?;
    Ok((count, started.elapsed()))
}
