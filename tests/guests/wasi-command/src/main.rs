//! A plain WASI command (`wasi:cli/command` world): the wrong world for Warren.

fn main() {
    println!("hello from a command");
}
