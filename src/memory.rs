//! Process-wide memory settings, applied once at start-up before any thread exists.
//!
//! glibc gives threads their own malloc arenas (up to 8 per core). The collector's threads (the
//! actors' thread, the DbWriter's, sqlx's one thread per SQLite connection, tokio's blocking
//! pool) each kept an arena of freed memory, about 35 MB at 10,000 collections; two arenas
//! serve a 2-core machine's contention just as well.

/// Most malloc arenas (glibc); the same as running with `MALLOC_ARENA_MAX=2`.
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas, unless the operator set `MALLOC_ARENA_MAX` (glibc honours it).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only adjusts allocator parameters; it is called before any thread
        // is started, and a refused setting (return value 0) leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

/// Hands memory malloc holds but nobody uses back to the system (the benchmark does this between
/// scenarios, so one scenario's peak memory does not include the previous one's leftovers).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free memory of malloc's heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
