//! tickroom-fuzz: a proptest-driven fuzz harness for every decoder in the workspace (codec,
//! frame decoder, tokens, API JSON, game inputs, views, messages and saves) and for the
//! gateway's JSON bodies. cargo-fuzz needs a nightly compiler (`-Zsanitizer`), and the
//! project's machines and CI have only the stable toolchain, so the targets are ordinary
//! tests: `cargo test` runs them, in CI too.
//!
//! The targets live in `tests/`; this library holds what they share: the case count
//! ([`config`]), the byte mutators ([`mutate`]) and a counting global allocator
//! ([`alloc`]) that measures the largest single allocation made while decoding, so a
//! target can assert that a decoder never allocates beyond its limit.
//!
//! `TICKROOM_FUZZ_CASES` sets the cases per target (default [`DEFAULT_CASES`], a few seconds
//! in all); each run draws a fresh random seed, printed when a target fails, and
//! `TICKROOM_FUZZ_SEED` replays one. For a long run:
//!
//! ```text
//! TICKROOM_FUZZ_CASES=1000000 nice -n 10 cargo test --release --no-fail-fast -p tickroom-fuzz -- --nocapture
//! ```

pub mod alloc;
pub mod mutate;

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::hash::BuildHasher;
use std::time::Instant;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use crate::alloc::AllocStats;

/// Cases per target when `TICKROOM_FUZZ_CASES` is unset: small enough that every target
/// together runs in seconds in CI on 2 cores.
pub const DEFAULT_CASES: u32 = 2_000;
/// The environment variable that sets the cases per target.
pub const CASES_ENV: &str = "TICKROOM_FUZZ_CASES";
/// The environment variable that replays a run: the seed a failing target printed.
pub const SEED_ENV: &str = "TICKROOM_FUZZ_SEED";
/// Shrink steps for a failing case: enough to reach a short reproducer, bounded for CI.
const MAX_SHRINK_ITERS: u32 = 20_000;
/// Longest a failing case is shrunk, in milliseconds, so a failure in CI ends in bounded time.
const MAX_SHRINK_TIME_MS: u32 = 60_000;

/// Cases per target: `TICKROOM_FUZZ_CASES`, or [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    match std::env::var(CASES_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{CASES_ENV}={text:?} is not a whole number")),
        Err(_) => DEFAULT_CASES,
    }
}

/// The run's seed: `TICKROOM_FUZZ_SEED`, or a fresh random one.
pub fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_ENV}={text:?} is not a whole number")),
        // std's hasher keys are random per process: a seed without another dependency.
        Err(_) => RandomState::new().hash_one(std::process::id()),
    }
}

/// The 32-byte ChaCha seed grown from `seed` (SplitMix64 steps).
fn rng(seed: u64) -> TestRng {
    let mut state = seed;
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// The proptest configuration of every target: [`cases`] cases. Failures are not persisted
/// to files (the working tree is shared): a failing input is shrunk and printed, and kept by
/// hand as a regression test.
pub fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: MAX_SHRINK_ITERS,
        max_shrink_time: MAX_SHRINK_TIME_MS,
        ..Config::default()
    }
}

thread_local! {
    /// The largest allocation [`check_alloc`] saw during the current [`run`], if it checked.
    static LARGEST_SEEN: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Runs one fuzz target: [`cases`] cases of `strategy` through `case`. A failing case is
/// shrunk and the test panics with the smallest input found and the seed that replays it; a
/// passing run prints its case count, time and the largest allocation [`check_alloc`] saw
/// (shown with `--nocapture`).
pub fn run<S>(name: &str, strategy: S, case: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let seed = seed();
    let mut runner = TestRunner::new_with_rng(config(), rng(seed));
    LARGEST_SEEN.set(None);
    let started = Instant::now();
    // Counted here rather than read from the config: the summary says what really ran.
    let cases = Cell::new(0u64);
    let counted = |input| {
        cases.set(cases.get() + 1);
        case(input)
    };
    if let Err(e) = runner.run(&strategy, counted) {
        panic!("fuzz target {name} failed (replay with {SEED_ENV}={seed}): {e}");
    }
    let cases = cases.get();
    let largest = LARGEST_SEEN
        .get()
        .map(|bytes| format!(", largest allocation while decoding {bytes} bytes"))
        .unwrap_or_default();
    println!(
        "fuzz {name}: {cases} cases in {:.1} s (seed {seed}){largest}",
        started.elapsed().as_secs_f64()
    );
}

/// Fails the case, showing the input's hex, when `stats` has an allocation over `limit`.
pub fn check_alloc(
    what: &str,
    input: &[u8],
    stats: AllocStats,
    limit: usize,
) -> Result<(), TestCaseError> {
    LARGEST_SEEN.set(Some(
        LARGEST_SEEN.get().unwrap_or(0).max(stats.largest_bytes),
    ));
    if stats.largest_bytes > limit {
        return Err(TestCaseError::fail(format!(
            "{what} allocated {} bytes at once (limit {limit}) for {} input bytes: {}",
            stats.largest_bytes,
            input.len(),
            hex(input)
        )));
    }
    Ok(())
}

/// Lower-case hex of bytes, for failure messages a reproducer can be pasted from.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
