//! Real text and seeded randomness shared by the attribution quality tests.

use std::process::Command;

/// Verses of the King James Version (public domain; Debian's bible-kjv, installed by `cargo
/// xtask setup`) in `range`, e.g. `gen1:1-rev22:21`.
pub fn bible(range: &str) -> String {
    let out = Command::new("bible")
        .arg(range)
        .output()
        .expect("`bible` (Debian bible-kjv) is missing: run `cargo xtask setup`");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The distinct lower-case words of more than two letters in `texts`, sorted: what planted
/// passages are drawn from, so they look like the corpus word by word.
pub fn vocabulary<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut words: Vec<String> = texts
        .into_iter()
        .flat_map(|d| {
            d.split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphabetic()).to_lowercase())
        })
        .filter(|w| w.len() > 2)
        .collect();
    words.sort();
    words.dedup();
    words
}

/// xorshift64: seeded, and the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
