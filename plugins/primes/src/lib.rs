//! `primes`: counts the primes below `limit` with a sieve. A CPU-bound job
//! made of tight loops: `warren bench runtime` uses it for the worst case of
//! what fuel metering costs.

use serde::{Deserialize, Serialize};
use warren_sdk::{Context, Error, Job};

#[derive(Deserialize)]
struct Input {
    limit: u32,
}

#[derive(Serialize)]
struct Output {
    limit: u32,
    primes: u32,
}

/// Above this the sieve would need more memory than a default attempt gets.
const MAX_LIMIT: u32 = 50_000_000;

struct Primes;

impl Job for Primes {
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        if input.limit > MAX_LIMIT {
            return Err(Error::permanent(format!(
                "limit must be at most {MAX_LIMIT}"
            )));
        }
        Ok(Output {
            limit: input.limit,
            primes: count_primes(input.limit as usize),
        })
    }
}

fn count_primes(limit: usize) -> u32 {
    if limit < 3 {
        return 0;
    }
    let mut composite = vec![false; limit];
    let mut count = 0;
    for n in 2..limit {
        if composite[n] {
            continue;
        }
        count += 1;
        // `n * n` overflows a 32-bit usize for large `n`; such `n` mark nothing.
        let Some(mut multiple) = n.checked_mul(n) else {
            continue;
        };
        while multiple < limit {
            composite[multiple] = true;
            multiple += n;
        }
    }
    count
}

warren_sdk::export_job!(Primes);
