//! What people said about a job: decisions on its approval gate and input
//! given to it, and the reviews of the jobs it depends on. Read them with
//! `ctx.reviews()` and `ctx.upstream_reviews()`.

use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::job::warren::plugin::reviews as wit;

/// What a review says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The output was accepted.
    Approve,
    /// The output was refused: this attempt is its rework.
    Reject,
    /// Input given to a job that asked for it with `Error::needs_input`.
    Input,
}

/// One decision, or input given, oldest first in every list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The job reviewed: this job's name, or an upstream job's.
    pub job: String,
    pub decision: Decision,
    /// A rejection that failed the job at once.
    pub is_final: bool,
    pub comments: Option<String>,
    /// JSON the reviewer added; see [`Review::data`].
    pub data: Option<String>,
    /// The token's name; `warren` when a gate's timeout decided.
    pub by: Option<String>,
    /// `client`, `approver` or `admin`; none when Warren decided.
    pub role: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The attempt whose output was decided on.
    pub attempt: u32,
}

impl Review {
    /// The reviewer's data, deserialized; `None` when there is none.
    pub fn data<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.data
            .as_deref()
            .map(|json| serde_json::from_str(json).map_err(Error::from))
            .transpose()
    }
}

fn from_wit(review: wit::Review) -> Review {
    Review {
        job: review.job,
        decision: match review.decision {
            wit::Decision::Approve => Decision::Approve,
            wit::Decision::Reject => Decision::Reject,
            wit::Decision::Input => Decision::Input,
        },
        is_final: review.final_,
        comments: review.comments,
        data: review.data,
        by: review.by,
        role: review.role,
        at_ms: review.at_ms,
        attempt: review.attempt,
    }
}

/// This job's reviews, oldest first.
pub(crate) fn own() -> Vec<Review> {
    wit::reviews().into_iter().map(from_wit).collect()
}

/// Reviews of the jobs this one depends on, oldest first.
pub(crate) fn upstream() -> Vec<Review> {
    wit::upstream_reviews().into_iter().map(from_wit).collect()
}
