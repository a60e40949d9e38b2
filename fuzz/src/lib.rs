//! What the fuzz targets share.

use std::thread;

/// The stack of a tokio worker thread, where the server loads, validates and compiles packages,
/// jq programs and schemas. The fuzzer's main thread has a larger one, which would hide a
/// recursion that overflows in production.
pub const WORKER_STACK_BYTES: usize = 2 * 1024 * 1024;

/// Runs `work` on a thread with a worker's stack and waits for it. A panic there aborts the
/// process (libfuzzer-sys installs an aborting panic hook), and so does a stack overflow; both
/// are reported as crashes.
pub fn on_worker_stack<F: FnOnce() + Send>(work: F) {
    thread::scope(|scope| {
        let handle = thread::Builder::new()
            .name("fuzz-worker".to_owned())
            .stack_size(WORKER_STACK_BYTES)
            .spawn_scoped(scope, work)
            .expect("the fuzzer can start a thread");
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
    });
}
