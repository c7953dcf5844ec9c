//! Hostile: an agent whose `describe()` answers nonsense (a document name
//! with a path in it, another required twice). It must be quarantined.

use warren_sdk::{Agent, AgentContext, AgentInfo, Error, Reply};

struct DescribeNonsense;

impl Agent for DescribeNonsense {
    type Input = ();
    type Output = ();

    fn describe() -> AgentInfo {
        AgentInfo {
            name: "nonsense".into(),
            version: "1".into(),
            description: String::new(),
            requires: vec!["brief".into(), "brief".into()],
            produces: vec!["../etc/passwd".into()],
        }
    }

    fn invoke(_ctx: &AgentContext, _input: ()) -> Result<Reply<()>, Error> {
        Ok(Reply::new(()))
    }
}

warren_sdk::export_agent!(DescribeNonsense);
