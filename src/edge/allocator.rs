//! The C allocator's settings, made before any thread starts.

/// How many malloc arenas glibc may keep. By default each thread that
/// allocates gets its own (up to 8 per core) and each keeps what it freed:
/// tokio's workers and the blocking pool that hashes add a few MB of
/// retained pages apiece. A no-change redeploy of 20,000 files on moto
/// peaked at 38.1-39.2 MB with the default and 33.3-34.5 MB with 2 arenas,
/// at the same CPU time (glibc's mallopt(3), `M_ARENA_MAX`).
const ARENAS: libc::c_int = 2;

/// Caps glibc's arenas at [`ARENAS`]; elsewhere (musl, another OS) a no-op.
pub fn cap_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; it is called
    // before the runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
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
