//! Hostile: an agent whose `describe()` panics. It must be quarantined.

use warren_sdk::{Agent, AgentContext, AgentInfo, Error, Reply};

struct DescribeTrap;

impl Agent for DescribeTrap {
    type Input = ();
    type Output = ();

    fn describe() -> AgentInfo {
        panic!("no description today")
    }

    fn invoke(_ctx: &AgentContext, _input: ()) -> Result<Reply<()>, Error> {
        Ok(Reply::new(()))
    }
}

warren_sdk::export_agent!(DescribeTrap);
