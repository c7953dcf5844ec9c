//! Hostile: a job that imports an interface Warren does not provide.

wit_bindgen::generate!({
    world: "test:unknown-import/unknown-import",
    path: ["../../../wit", "wit"],
    generate_all,
});

use exports::warren::plugin::job_handler::Guest;
use warren::plugin::types::{JobContext, JobError};

struct UnknownImport;

impl Guest for UnknownImport {
    fn run(_ctx: JobContext) -> Result<String, JobError> {
        Ok(test::unknown_import::gadget::ping().to_string())
    }
}

export!(UnknownImport);
