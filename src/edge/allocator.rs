//! The C allocator's settings, made before any thread starts.

/// How many malloc arenas glibc may keep. By default each thread that
/// allocates gets its own (up to 8 per core) and each keeps what it freed:
/// tokio's workers and the blocking pool that hashes add a few MB of
/// retained pages apiece. A no-change redeploy of 20,000 files on moto
/// peaked at 38.1-39.2 MB with the default and 33.3-34.5 MB with 2 arenas,
/// at the same CPU time (glibc's mallopt(3), `M_ARENA_MAX`).
const ARENAS: libc::c_int = 2;

/// Blocks this large or larger are mapped apart and unmapped when freed,
/// and a heap keeps at most this much free at its top. glibc's defaults
/// (128 KiB) move up as mapped blocks are freed: after a deploy lets go of
/// a 19 MB vector, smaller ones come from the heap, and its top keeps up to
/// twice that free and resident (mallopt(3): setting either turns the
/// "dynamic mmap threshold" off). A million-file plan held 16-22 MB of such
/// free memory. Fixed at 1 MiB: the vectors of a large deploy are mapped
/// apart, and what a small deploy allocates comes from the heap as before.
const HEAP_BLOCKS_BELOW: libc::c_int = 1 << 20;

/// Caps glibc's arenas at [`ARENAS`] and fixes its thresholds at
/// [`HEAP_BLOCKS_BELOW`]; elsewhere (musl, another OS) a no-op.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; it is called
    // before the runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_BLOCKS_BELOW);
        libc::mallopt(libc::M_TRIM_THRESHOLD, HEAP_BLOCKS_BELOW);
    }
}

/// Hands the pages of what was freed back to the system (glibc's
/// malloc_trim(3), which since glibc 2.8 releases free pages anywhere in
/// the heap, not only at its top). Small blocks freed in bulk, such as a
/// million keys let go at once, otherwise stay in the process's RSS until
/// blocks of their size are asked for again; the large vectors a deploy
/// builds next are mapped apart and never reuse them. Elsewhere a no-op.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}
