//! `warren:plugin/reviews`: what people said about this job (decisions on
//! its gate, input given to it) and about the jobs it depends on.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::reviews::{self, Host};
use warren_vocabulary::{Decision, Review};

/// Per-attempt state: `(job name, review)`, oldest first.
#[derive(Debug, Default)]
pub struct ReviewsState {
    own: Vec<(String, Review)>,
    upstream: Vec<(String, Review)>,
}

impl ReviewsState {
    pub fn new(own: Vec<(String, Review)>, upstream: Vec<(String, Review)>) -> Self {
        Self { own, upstream }
    }
}

fn shown((job, review): &(String, Review)) -> reviews::Review {
    reviews::Review {
        job: job.clone(),
        decision: match review.decision {
            Decision::Approve => reviews::Decision::Approve,
            Decision::Reject => reviews::Decision::Reject,
            Decision::Input => reviews::Decision::Input,
        },
        final_: review.is_final,
        comments: review.comments.clone(),
        data: review.data.clone(),
        by: review.by.name.clone(),
        role: review.by.role.map(|r| r.as_str().to_owned()),
        at_ms: review.at,
        attempt: review.attempt,
    }
}

impl Host for ReviewsState {
    fn reviews(&mut self) -> wasmtime::Result<Vec<reviews::Review>> {
        Ok(self.own.iter().map(shown).collect())
    }

    fn upstream_reviews(&mut self) -> wasmtime::Result<Vec<reviews::Review>> {
        Ok(self.upstream.iter().map(shown).collect())
    }
}

/// Adds `warren:plugin/reviews`; `get` finds this capability's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ReviewsState,
) -> anyhow::Result<()> {
    reviews::add_to_linker::<T, HasSelf<ReviewsState>>(linker, get)?;
    Ok(())
}
