//! Prints the instruction sets of `makemore_core::simd::Isa` and whether this CPU (as the core
//! detects it at run time) can run each: `cargo run -p makemore-core --example isas`.
//! One line per path, `<name> yes|no`, then `best <name>` (what `auto` picks); CI reads it.

use makemore_core::simd::Isa;

fn main() {
    for isa in Isa::ALL {
        let yes = if isa.is_available() { "yes" } else { "no" };
        println!("{:<7} {yes}", isa.name());
    }
    println!("{:<7} {}", "best", Isa::best());
}
