//! Instruction counts of the room core under callgrind, which repeat exactly on a noisy
//! machine (criterion's interval here is about ±4 %). Run:
//!
//! ```sh
//! cargo bench --bench room_callgrind --no-run
//! valgrind --tool=callgrind --toggle-collect='*run_ticks*' target/release/deps/room_callgrind-*[^.d]
//! valgrind --tool=callgrind --toggle-collect='*run_messages*' target/release/deps/room_callgrind-*[^.d]
//! ```
//!
//! and divide the total `Ir` by `MEASURED` (1,000). Without valgrind it just runs.

mod support;

use std::hint::black_box;

/// Ticks (and messages) measured; the warm-up happens in `BenchRoom::arena`.
const MEASURED: u64 = 1000;

/// 1,000 ticks of a 10-player `arena` room through the generic core.
#[inline(never)]
fn run_ticks(room: &mut support::BenchRoom, n: u64) -> usize {
    (0..n).map(|_| room.tick()).sum()
}

/// 1,000 chat lines through the core, each broadcast to 10 players.
#[inline(never)]
fn run_messages(room: &mut support::BenchRoom, n: u64) -> usize {
    (0..n)
        .map(|seq| {
            room.room.message(1, seq + 1, b"gg, well played");
            room.drain()
        })
        .sum()
}

fn main() {
    let mut room = support::BenchRoom::arena(10);
    let bytes = run_ticks(black_box(&mut room), black_box(MEASURED));
    println!(
        "{MEASURED} ticks of a 10-player arena room: {bytes} bytes queued ({:.0} per player per tick)",
        bytes as f64 / MEASURED as f64 / 10.0
    );
    let mut room = support::BenchRoom::arena(10);
    let bytes = run_messages(black_box(&mut room), black_box(MEASURED));
    println!("{MEASURED} chat lines broadcast to 10 players: {bytes} bytes queued");
}
