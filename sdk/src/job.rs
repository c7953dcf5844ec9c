use serde::{Serialize, de::DeserializeOwned};

use crate::Error;
use crate::bindings::types;
use crate::reviews::{self, Review};

/// A job: one plugin call with a JSON input and a JSON output.
pub trait Job {
    /// Deserialized from the job's JSON input.
    type Input: DeserializeOwned;
    /// Serialized into the job's JSON output.
    type Output: Serialize;

    /// Runs the job once. Returning an error ends this attempt; the error's
    /// variant decides whether the scheduler retries.
    fn run(ctx: &Context, input: Self::Input) -> Result<Self::Output, Error>;
}

/// What a job is told about the call it serves.
#[derive(Debug, Clone)]
pub struct Context {
    pub run_id: String,
    pub job_id: String,
    /// The job's name in its run.
    pub job_name: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub story_id: Option<String>,
    upstream: Vec<(String, String)>,
}

impl Context {
    /// The output of upstream job `job`, deserialized; `None` if that job is
    /// not upstream of this one.
    pub fn upstream<T: DeserializeOwned>(&self, job: &str) -> Result<Option<T>, Error> {
        self.upstream
            .iter()
            .find(|(name, _)| name == job)
            .map(|(_, output)| serde_json::from_str(output).map_err(Error::from))
            .transpose()
    }

    /// Names of the upstream jobs whose outputs this job received.
    pub fn upstream_jobs(&self) -> impl Iterator<Item = &str> {
        self.upstream.iter().map(|(name, _)| name.as_str())
    }

    /// Every review of this job, oldest first: decisions on earlier
    /// outputs (a rework reads here why it runs) and input given to it.
    pub fn reviews(&self) -> Vec<Review> {
        reviews::own()
    }

    /// Reviews of the jobs this one depends on, oldest first: an approval's
    /// data is the reviewer's addition to that job's output.
    pub fn upstream_reviews(&self) -> Vec<Review> {
        reviews::upstream()
    }
}

/// Adapts a [`Job`] to the generated `run` export.
pub fn run_job<J: Job>(ctx: types::JobContext) -> Result<String, types::JobError> {
    let input: J::Input = serde_json::from_str(&ctx.input)
        .map_err(|e| Error::permanent(format!("invalid input: {e}")))?;
    let context = Context {
        run_id: ctx.run_id,
        job_id: ctx.job_id,
        job_name: ctx.job_name,
        attempt: ctx.attempt,
        story_id: ctx.story_id,
        upstream: ctx
            .upstream
            .into_iter()
            .map(|u| (u.job, u.output))
            .collect(),
    };
    let output = J::run(&context, input)?;
    Ok(serde_json::to_string(&output)
        .map_err(|e| Error::permanent(format!("output is not JSON: {e}")))?)
}

/// Exports a [`Job`] implementation as this component's `run`.
#[macro_export]
macro_rules! export_job {
    ($job:ty) => {
        #[doc(hidden)]
        pub struct __WarrenJobExport;

        impl $crate::bindings::job::exports::warren::plugin::job_handler::Guest
            for __WarrenJobExport
        {
            fn run(
                ctx: $crate::bindings::types::JobContext,
            ) -> ::core::result::Result<::std::string::String, $crate::bindings::types::JobError>
            {
                $crate::__private::run_job::<$job>(ctx)
            }
        }

        $crate::bindings::job::__export_job_world!(__WarrenJobExport);
    };
}
